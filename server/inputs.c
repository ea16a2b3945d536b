/*
 * Request bodies to float tensors: one PNG, multipart/form-data with PNG
 * parts, or JSON {"shape": [...], "data": [...]} (flat or nested). Every
 * refusal names what was wrong. A PNG's structure, pixel count and the
 * decompression it will cost (counted over all of a request's images) are
 * checked before any of it is decoded; the per-item size is the plan's.
 */
#define _GNU_SOURCE /* strcasestr */
#include "server.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ae/codes.h"
#include "ae/image.h"

int srv_fail_set(srv_fail *f, unsigned status, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->msg, sizeof f->msg, fmt, ap);
	va_end(ap);
	f->status = status;
	f->code = code;
	return -1;
}

unsigned srv_media_type(const char *ctype)
{
	static const struct {
		const char *type;
		unsigned bit;
	} types[] = { { "image/png", SRV_IN_PNG },
		      { "multipart/form-data", SRV_IN_MULTIPART },
		      { "application/json", SRV_IN_JSON } };
	if (!ctype) return 0;
	/* type/subtype ends at its parameters (";") or trailing space */
	size_t n = strcspn(ctype, "; \t");
	for (size_t i = 0; i < sizeof types / sizeof *types; i++)
		if (n == strlen(types[i].type) && strncasecmp(ctype, types[i].type, n) == 0) return types[i].bit;
	return 0;
}

int srv_png_decode_one(const uint8_t *buf, size_t len, const srv_parse_ctx *x, srv_png_budget *b, float *dst,
                       const char *which, srv_fail *f)
{
	const srv_model *m = x->m;
	/* what the operation reads: an image, (C, H, W) */
	const ae_shape s = ae_plan_in_shape(x->plan, x->engine);
	const int c = s.d[0], h = s.d[1], w = s.d[2];
	ae_png_info info;
	ae_error err = { 0 };
	if (s.rank != 3 || (c != 1 && c != 3))
		return srv_fail_set(f, 415, "unsupported_media_type", "model '%s' takes no images here", m->name);
	if (ae_png_inspect(buf, len, &info, &err)) return srv_fail_set(f, 400, "invalid_png", "%s: %s", which, err.msg);
	/* Refused on the header alone, before any pixel memory exists. */
	if ((uint64_t)info.w * (uint64_t)info.h > AE_PNG_MAX_PIXELS)
		return srv_fail_set(f, 422, "image_too_large", "%s declares %dx%d pixels, over the limit of %u", which,
		                    info.w, info.h, AE_PNG_MAX_PIXELS);
	if (info.raw_bytes > b->left)
		return srv_fail_set(f, 422, "image_too_large",
		                    "%s would decompress to %llu bytes; a request may decompress at most %u in all",
		                    which, (unsigned long long)info.raw_bytes, SRV_MAX_DECODED_BYTES);
	b->left -= info.raw_bytes;
	/* Decoded before the size check, so a corrupt file is called corrupt
	 * whatever its size. */
	ae_image img;
	if (ae_png_decode(buf, len, c, AE_PNG_MAX_PIXELS, &img, &err))
		return srv_fail_set(f, 400, "invalid_png", "%s: %s", which, err.msg);
	if ((img.w != w || img.h != h) && !x->p->resize) {
		ae_image_free(&img);
		return srv_fail_set(
		        f, 422, "wrong_size",
		        "%s is %dx%d (height x width); model '%s' takes %dx%d images (ask for resize=true to "
		        "resample)",
		        which, img.h, img.w, m->name, h, w);
	}
	const size_t per = ae_shape_size(s);
	if (img.w == w && img.h == h)
		for (size_t i = 0; i < per; i++)
			dst[i] = img.pix[i] * (1.0f / 255.0f);
	else
		ae_resample_bilinear(img.pix, c, img.h, img.w, dst, h, w);
	if (x->p->invert)
		for (size_t i = 0; i < per; i++)
			dst[i] = 1.0f - dst[i];
	ae_image_free(&img);
	return 0;
}

int srv_parse_png(const uint8_t *body, size_t len, const srv_parse_ctx *x, int *n, float **out, srv_fail *f)
{
	srv_png_budget b = { SRV_MAX_DECODED_BYTES };
	float *v = malloc(ae_plan_in_size(x->plan, x->engine) * sizeof(float));
	if (!v) return srv_fail_set(f, 500, "internal", "out of memory");
	if (srv_png_decode_one(body, len, x, &b, v, "the image", f)) {
		free(v);
		return -1;
	}
	*n = 1;
	*out = v;
	return 0;
}

/* ---- multipart/form-data (RFC 7578) over a complete body ---- */

static const uint8_t *find(const uint8_t *hay, size_t n, const char *needle, size_t k)
{
	if (k == 0 || n < k) return NULL;
	for (const uint8_t *p = hay; (p = memchr(p, needle[0], (size_t)(hay + n - p) - k + 1)); p++)
		if (memcmp(p, needle, k) == 0) return p;
	return NULL;
}

static int boundary_of(const char *ctype, char *b, size_t cap)
{
	const char *p = strcasestr(ctype, "boundary=");
	if (!p) return -1;
	p += 9;
	int quoted = *p == '"';
	p += quoted;
	size_t i = 0;
	while (*p && i + 1 < cap && (quoted ? *p != '"' : (*p != ';' && *p != ' ')))
		b[i++] = *p++;
	b[i] = '\0';
	return i > 0 && i <= 70 ? 0 : -1;
}

int srv_parse_multipart(const uint8_t *body, size_t len, const char *ctype, const srv_parse_ctx *x, int *n, float **out,
                        srv_fail *f)
{
	const size_t per = ae_plan_in_size(x->plan, x->engine);
	srv_png_budget budget = { SRV_MAX_DECODED_BYTES };
	char b[80], delim[84], nd[86];
	if (boundary_of(ctype, b, sizeof b))
		return srv_fail_set(f, 400, "invalid_multipart", "multipart/form-data needs a boundary parameter");
	const int dl = snprintf(delim, sizeof delim, "--%s", b), nl = snprintf(nd, sizeof nd, "\r\n%s", delim);
	const uint8_t *p = find(body, len, delim, (size_t)dl), *end = body + len;
	if (!p) return srv_fail_set(f, 400, "invalid_multipart", "the body does not contain its boundary");
	float *v = NULL;
	int count = 0, cap = 0, rc = 0;
	for (;;) {
		p += dl;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-') break; /* closing delimiter */
		const uint8_t *hdr_end = find(p, (size_t)(end - p), "\r\n\r\n", 4);
		const uint8_t *data = hdr_end ? hdr_end + 4 : NULL;
		const uint8_t *next = data ? find(data, (size_t)(end - data), nd, (size_t)nl) : NULL;
		if (!hdr_end) {
			rc = srv_fail_set(f, 400, "invalid_multipart", "part %d: headers are not terminated",
			                  count + 1);
			goto fail;
		}
		if (!next) {
			rc = srv_fail_set(f, 400, "invalid_multipart",
			                  "part %d is not closed by the boundary (truncated body?)", count + 1);
			goto fail;
		}
		if (count >= SRV_MAX_IMAGES) {
			rc = srv_fail_set(f, 413, "too_many_images", "more than %d images in one request",
			                  SRV_MAX_IMAGES);
			goto fail;
		}
		if (count == cap) {
			cap = cap ? cap * 2 : 4;
			float *nv = realloc(v, (size_t)cap * per * sizeof(float));
			if (!nv) {
				rc = srv_fail_set(f, 500, "internal", "out of memory");
				goto fail;
			}
			v = nv;
		}
		char which[32];
		snprintf(which, sizeof which, "part %d", count + 1);
		if ((rc = srv_png_decode_one(data, (size_t)(next - data), x, &budget, v + (size_t)count * per, which,
		                             f)))
			goto fail;
		count++;
		p = next + 2; /* at the delimiter */
	}
	if (count == 0) {
		rc = srv_fail_set(f, 400, "invalid_multipart", "no image parts in the form");
		goto fail;
	}
	*n = count;
	*out = v;
	return 0;
fail:
	free(v);
	return rc;
}

/* ---- JSON tensors ---- */

/* The shape as the client wrote it, for messages. */
static void shape_str(const srv_tensor_in *t, char *buf, size_t cap)
{
	size_t at = (size_t)snprintf(buf, cap, "[");
	for (int i = 0; i < t->ndim && i < SRV_TENSOR_MAX_DIMS && at < cap; i++)
		at += (size_t)snprintf(buf + at, cap - at, "%s%ld", i ? "," : "", t->dims[i]);
	if (at < cap) snprintf(buf + at, cap - at, "]");
}

/* Whether the dimensions after N fit the input shape s: exactly, as one
 * flat row, or (a one-channel image) without the channel. */
static int fits(const srv_tensor_in *t, ae_shape s)
{
	const long *d = t->dims;
	size_t rest = 1;
	for (int i = 1; i < t->ndim; i++)
		rest *= (size_t)d[i];
	if (t->ndim == 2) return rest == ae_shape_size(s);
	if (s.rank != 3) return 0;
	return (t->ndim == 4 && d[1] == s.d[0] && d[2] == s.d[1] && d[3] == s.d[2]) ||
	       (t->ndim == 3 && s.d[0] == 1 && d[1] == s.d[1] && d[2] == s.d[2]);
}

/* Judges a parsed tensor against the operation's input shape. */
int srv_tensor_check(const srv_tensor_in *t, const srv_parse_ctx *x, srv_fail *f)
{
	const srv_model *m = x->m;
	const int codes = x->op->items == SRV_ITEMS_CODES;
	if (!t->is_object || !t->has_shape || !t->has_data || t->shape_not_array || t->data_not_array)
		return srv_fail_set(f, 400, "invalid_json", "expected an object {\"shape\": [...], \"data\": [...]}");
	if (t->ndim < 2 || t->ndim > 4)
		return srv_fail_set(f, 400, "invalid_shape", "shape must have 2 to 4 dimensions, N first");
	if (t->shape_bad)
		return srv_fail_set(f, 400, "invalid_shape", "shape entry %zu is not a positive integer",
		                    t->shape_bad_at);
	char sh[128];
	shape_str(t, sh, sizeof sh);
	const long *d = t->dims;
	const ae_shape s = ae_plan_in_shape(x->plan, x->engine);
	const size_t per = ae_shape_size(s);
	if (d[0] > SRV_MAX_IMAGES)
		return srv_fail_set(f, 413, "too_many_images", "%ld items in one request; the limit is %d", d[0],
		                    SRV_MAX_IMAGES);
	if (!fits(t, s) && codes && s.rank == 1)
		return srv_fail_set(f, 422, "wrong_shape",
		                    "shape %s does not fit model '%s': decode takes codes [N,%zu]", sh, m->name, per);
	if (!fits(t, s)) {
		char hw[48] = "";
		if (s.d[0] == 1) snprintf(hw, sizeof hw, ", [N,%d,%d]", s.d[1], s.d[2]);
		return srv_fail_set(f, 422, "wrong_shape",
		                    "shape %s does not fit model '%s', which takes [N,%d,%d,%d]%s or [N,%zu]", sh,
		                    m->name, s.d[0], s.d[1], s.d[2], hw, per);
	}
	if (t->data_not_number)
		return srv_fail_set(f, 400, "invalid_json", "data holds something that is not a number");
	if (t->data_too_deep) return srv_fail_set(f, 400, "invalid_json", "data is nested too deeply");
	if (t->n != (size_t)d[0] * per)
		return srv_fail_set(f, 400, "shape_mismatch", "data holds %zu values; shape %s needs %zu", t->n, sh,
		                    (size_t)d[0] * per);
	if (t->bad_set)
		return srv_fail_set(f, 422, "value_out_of_range", "data[%zu] = %g is outside [0, 1]", t->bad_index,
		                    t->bad_value);
	return 0;
}

int srv_check_format(const srv_model *m, int format, srv_fail *f)
{
	if (format == AE_CODE_INT8 && !m->m->code_scale)
		return srv_fail_set(f, 422, "format_unavailable",
		                    "model '%s' has no int8 scale for its codes (aetrain calibrate adds one)", m->name);
	return 0;
}

/* Codes sent in a compact format, checked and read back as the floats the
 * model decodes: int8 values must be integers in [-127, 127] (times the
 * model's scale); f16 values finite halves (rounded to the nearest). */
static int codes_in(const srv_parse_ctx *x, float *v, size_t n, srv_fail *f)
{
	const int format = x->p->format, dim = (int)ae_plan_in_size(x->plan, x->engine);
	if (format == AE_CODE_F32) return 0;
	if (srv_check_format(x->m, format, f)) return -1;
	for (size_t i = 0; i < n; i++) {
		if (format == AE_CODE_INT8 && !(v[i] == rintf(v[i]) && fabsf(v[i]) <= 127.0f))
			return srv_fail_set(f, 422, "value_out_of_range",
			                    "data[%zu] = %g is not an int8 code (-127 to 127)", i, (double)v[i]);
		if (format == AE_CODE_F16 && !(fabsf(v[i]) <= 65504.0f))
			return srv_fail_set(f, 422, "value_out_of_range", "data[%zu] = %g is not a half float", i,
			                    (double)v[i]);
	}
	if (format == AE_CODE_INT8)
		for (size_t i = 0; i < n; i++)
			v[i] *= x->m->m->code_scale[i % (size_t)dim];
	else
		ae_codes_round_trip(AE_CODE_F16, v, (int)(n / (size_t)dim), dim, NULL);
	return 0;
}

int srv_parse_json(const uint8_t *body, size_t len, const srv_parse_ctx *x, int *n, float **out, srv_fail *f)
{
	const int codes = x->op->items == SRV_ITEMS_CODES;
	srv_tensor_in t;
	if (srv_tensor_parse(body, len, !codes, &t, f) || srv_tensor_check(&t, x, f) ||
	    (codes && codes_in(x, t.v, t.n, f))) {
		srv_tensor_free(&t);
		return -1;
	}
	if (x->p->invert && !codes)
		for (size_t i = 0; i < t.n; i++)
			t.v[i] = 1.0f - t.v[i];
	*n = (int)t.dims[0];
	*out = t.v;
	return 0;
}
