/*
 * Image-to-image transforms: gray is BT.601 luma in every channel,
 * downscale averages each block, mask blacks out exactly one square per
 * image (the same one for the same stream), and the text forms.
 */
#include "test.h"

#include "ae/transform.h"

static void test_text(void)
{
	ae_transform t;
	ae_error err = { 0 };
	static const char *ok[] = { "none", "gray", "downscale:4", "mask:8" };
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		char back[32];
		CHECK(ae_transform_parse(&t, ok[i], &err) == 0);
		ae_transform_format(&t, back, sizeof back);
		CHECK_MSG(strcmp(back, ok[i]) == 0, "%s read back as %s", ok[i], back);
	}
	static const char *bad[] = { "grey", "downscale:1", "downscale:", "mask:0", "mask:8x8", "downscale:4:4" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		CHECK_MSG(ae_transform_parse(&t, bad[i], &err) != 0 && strstr(err.msg, bad[i]), "%s", bad[i]);
	ae_transform_parse(&t, "gray", NULL);
	CHECK(ae_transform_check(&t, 1, 8, 8, &err) != 0 && strstr(err.msg, "colour"));
	ae_transform_parse(&t, "downscale:3", NULL);
	CHECK(ae_transform_check(&t, 3, 8, 9, &err) != 0 && strstr(err.msg, "divisible by 3"));
	ae_transform_parse(&t, "mask:9", NULL);
	CHECK(ae_transform_check(&t, 3, 8, 9, &err) != 0 && strstr(err.msg, "larger"));
}

static void test_apply(void)
{
	enum { C = 3, H = 8, W = 8, N = 2, PER = C * H * W };
	float x[N * PER], y[N * PER], z[N * PER];
	for (int i = 0; i < N * PER; i++)
		x[i] = (float)((i * 37) % 101) / 100.0f;
	ae_transform t;
	ae_transform_parse(&t, "gray", NULL);
	ae_transform_apply(&t, y, x, N, C, H, W, 1, 2, 3);
	int bad = 0;
	for (int i = 0; i < N; i++)
		for (int p = 0; p < H * W; p++) {
			const float *a = x + i * PER, *b = y + i * PER;
			float l = 0.299f * a[p] + 0.587f * a[H * W + p] + 0.114f * a[2 * H * W + p];
			bad += fabsf(b[p] - l) > 1e-6f || b[H * W + p] != b[p] || b[2 * H * W + p] != b[p];
		}
	CHECK_MSG(bad == 0, "%d gray pixels wrong", bad);
	ae_transform_parse(&t, "downscale:4", NULL);
	ae_transform_apply(&t, y, x, N, C, H, W, 1, 2, 3);
	float s = 0;
	for (int yy = 4; yy < 8; yy++)
		for (int xx = 0; xx < 4; xx++)
			s += x[PER + 2 * H * W + yy * W + xx];
	CHECK_CLOSE(y[PER + 2 * H * W + 5 * W + 2], s / 16.0f, 1e-6);
	CHECK(y[PER + 2 * H * W + 7 * W + 3] == y[PER + 2 * H * W + 4 * W + 0]);
	ae_transform_parse(&t, "mask:3", NULL);
	ae_transform_apply(&t, y, x, N, C, H, W, 1, 2, 3);
	ae_transform_apply(&t, z, x, N, C, H, W, 1, 2, 3);
	int differ = 0; /* the same stream, the same squares */
	for (int i = 0; i < N * PER; i++)
		differ += y[i] != z[i];
	CHECK(differ == 0);
	for (int i = 0; i < N; i++) {
		int zeroed = 0, changed = 0;
		for (int k = 0; k < PER; k++) {
			zeroed += y[i * PER + k] == 0.0f && x[i * PER + k] != 0.0f;
			changed += y[i * PER + k] != x[i * PER + k];
		}
		CHECK_MSG(changed <= 3 * 3 * C && zeroed == changed, "image %d: %d changed", i, changed);
	}
}

int main(void)
{
	test_text();
	test_apply();
	return TEST_DONE();
}
