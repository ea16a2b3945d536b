/*
 * Image-to-image transforms (ae/transform.h).
 */
#include "ae/transform.h"

#include <stdio.h>
#include <string.h>

#include "ae/parse.h"
#include "ae/rng.h"

int ae_transform_parse(ae_transform *t, const char *s, ae_error *err)
{
	*t = (ae_transform){ AE_TF_NONE, 0 };
	if (!s || strcmp(s, "none") == 0 || !*s) return AE_OK;
	if (strcmp(s, "gray") == 0) return t->kind = AE_TF_GRAY, AE_OK;
	if (strcmp(s, "pairs") == 0) return t->kind = AE_TF_PAIRS, AE_OK;
	const char *colon = strchr(s, ':');
	long k;
	int down = colon && (size_t)(colon - s) == 9 && strncmp(s, "downscale", 9) == 0;
	int mask = colon && (size_t)(colon - s) == 4 && strncmp(s, "mask", 4) == 0;
	if ((down || mask) && ae_parse_long(colon + 1, down ? 2 : 1, 1024, &k, NULL) == AE_OK) {
		t->kind = down ? AE_TF_DOWNSCALE : AE_TF_MASK;
		t->k = (int)k;
		return AE_OK;
	}
	return ae_fail(err, AE_ERR_INVAL, "'%s' is not none, gray, downscale:K (2..1024), mask:S (1..1024) or pairs",
	               s);
}

void ae_transform_format(const ae_transform *t, char *buf, size_t cap)
{
	if (t->kind == AE_TF_GRAY)
		snprintf(buf, cap, "gray");
	else if (t->kind == AE_TF_DOWNSCALE)
		snprintf(buf, cap, "downscale:%d", t->k);
	else if (t->kind == AE_TF_MASK)
		snprintf(buf, cap, "mask:%d", t->k);
	else if (t->kind == AE_TF_PAIRS)
		snprintf(buf, cap, "pairs");
	else
		snprintf(buf, cap, "none");
}

int ae_transform_check(const ae_transform *t, int c, int h, int w, ae_error *err)
{
	if (t->kind == AE_TF_GRAY && c != 3)
		return ae_fail(err, AE_ERR_INVAL, "gray input needs colour images to learn from (--channels 3)");
	if (t->kind == AE_TF_DOWNSCALE && (h % t->k || w % t->k))
		return ae_fail(err, AE_ERR_INVAL, "downscale:%d needs sides divisible by %d; the images are %dx%d",
		               t->k, t->k, h, w);
	if (t->kind == AE_TF_MASK && (t->k > h || t->k > w))
		return ae_fail(err, AE_ERR_INVAL, "mask:%d is larger than the %dx%d images", t->k, h, w);
	return AE_OK;
}

const char *ae_transform_expects(const ae_transform *t)
{
	static const char *const what[] = { "an image like its training images",
		                            "a gray image (as RGB, or gray, which is replicated); answers it in colour",
		                            "an image shown at full size from one K times smaller; answers it sharp",
		                            "an image with a part blacked out; answers it filled in",
		                            "an image like its training inputs; answers what their pairs were like" };
	return what[t->kind];
}

void ae_transform_apply(const ae_transform *t, float *dst, const float *src, int n, int c, int h, int w, uint64_t seed,
                        uint64_t tag, uint64_t index)
{
	const size_t hw = (size_t)h * w, per = (size_t)c * hw;
	if (dst != src) memcpy(dst, src, (size_t)n * per * sizeof *dst);
	for (int i = 0; i < n; i++) {
		float *x = dst + (size_t)i * per;
		if (t->kind == AE_TF_GRAY && c == 3) {
			/* ITU-R BT.601 luma, as the PNG decoder makes gray */
			for (size_t p = 0; p < hw; p++) {
				float l = 0.299f * x[p] + 0.587f * x[hw + p] + 0.114f * x[2 * hw + p];
				x[p] = x[hw + p] = x[2 * hw + p] = l;
			}
		} else if (t->kind == AE_TF_DOWNSCALE) {
			const int k = t->k;
			for (int ch = 0; ch < c; ch++)
				for (int by = 0; by + k <= h; by += k)
					for (int bx = 0; bx + k <= w; bx += k) {
						float *b = x + (size_t)ch * hw + (size_t)by * w + bx, s = 0.0f;
						for (int y = 0; y < k; y++)
							for (int xx = 0; xx < k; xx++)
								s += b[(size_t)y * w + xx];
						s /= (float)(k * k);
						for (int y = 0; y < k; y++)
							for (int xx = 0; xx < k; xx++)
								b[(size_t)y * w + xx] = s;
					}
		} else if (t->kind == AE_TF_MASK && t->k <= h && t->k <= w) {
			ae_rng r;
			ae_rng_seed_stream(&r, seed, tag, index + (uint64_t)i);
			int y0 = (int)(ae_rng_uniform(&r) * (float)(h - t->k + 1)),
			    x0 = (int)(ae_rng_uniform(&r) * (float)(w - t->k + 1));
			y0 = y0 > h - t->k ? h - t->k : y0, x0 = x0 > w - t->k ? w - t->k : x0;
			for (int ch = 0; ch < c; ch++)
				for (int y = y0; y < y0 + t->k; y++)
					memset(x + (size_t)ch * hw + (size_t)y * w + x0, 0, (size_t)t->k * sizeof *x);
		}
	}
}
