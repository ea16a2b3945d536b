/*
 * Direct (channels-last) convolution against the NCHW reference loops, for
 * convolutions and transposed convolutions of many shapes, through every
 * epilogue, with the AVX-512 and AVX2 kernels (where the CPU has them) and
 * the portable ones, the wide vector kernels bit for bit alike; the vector sigmoid; the per-tap mode training uses, against a loop that
 * rounds the same way; repacking; dense layers run as rows, each row
 * independent of the batch it came in; and the layout transposes.
 */
#include "test.h"

#include <math.h>
#include <stdlib.h>

#include "dconv.h"
#include "ae/rng.h"

static ae_rng rng;

/* The reference: NCHW loop plus the epilogue pass, transposed to NHWC. */
static void reference(float *y, const float *x_nchw, const float *w, const ae_epilogue *ep, int n,
                      const ae_dconv_shape *s)
{
	size_t ys = (size_t)n * s->oc * s->oh * s->ow;
	float *t = malloc(ys * sizeof(float));
	ae_conv_geom g;
	if (s->transposed) {
		ae_conv_geom_init(&g, s->oc, s->oh, s->ow, s->k, s->stride, s->pad);
		g.oh = s->ih, g.ow = s->iw;
		ae_convt2d_forward_ref(t, x_nchw, w, NULL, n, s->ic, &g);
	} else {
		ae_conv_geom_init(&g, s->ic, s->ih, s->iw, s->k, s->stride, s->pad);
		ae_conv2d_forward_ref(t, x_nchw, w, NULL, n, s->oc, &g);
	}
	ae_epilogue_apply(t, n, s->oc, s->oh * s->ow, ep);
	ae_nchw_to_nhwc(y, t, n, s->oc, s->oh * s->ow);
	free(t);
}

static void check_shape(int n, ae_dconv_shape s, int act)
{
	if (s.transposed) {
		/* output_padding stride-1 makes every output pixel reachable */
		s.oh = (s.ih - 1) * s.stride - 2 * s.pad + s.k + (s.stride - 1);
		s.ow = (s.iw - 1) * s.stride - 2 * s.pad + s.k + (s.stride - 1);
	} else {
		s.oh = (s.ih + 2 * s.pad - s.k) / s.stride + 1;
		s.ow = (s.iw + 2 * s.pad - s.k) / s.stride + 1;
	}
	size_t xs = (size_t)n * s.ic * s.ih * s.iw, ys = (size_t)n * s.oc * s.oh * s.ow;
	size_t ws = (size_t)s.ic * s.oc * s.k * s.k;
	float *x = test_rand_buf(&rng, xs, 1), *w = test_rand_buf(&rng, ws, 0.5f), *xh = malloc(xs * sizeof(float));
	float *b = test_rand_buf(&rng, (size_t)s.oc, 0.5f), *sc = test_rand_buf(&rng, (size_t)s.oc, 1.5f),
	      *sh = test_rand_buf(&rng, (size_t)s.oc, 0.5f);
	float *want = malloc(ys * sizeof(float));
	ae_epilogue ep = { .bias = b,
		           .act = act,
		           .slope = 0.2f,
		           .scale = act == AE_ACT_SIGMOID ? NULL : sc,
		           .shift = act == AE_ACT_SIGMOID ? NULL : sh };
	reference(want, x, w, &ep, n, &s);
	ae_nchw_to_nhwc(xh, x, n, s.ic, s.ih * s.iw);
	ae_dconv d;
	CHECK(ae_dconv_init(&d, &s, w, &ep) == 0);
	int have_simd = d.simd;
	float *wide = NULL; /* the widest vector kernels' output */
	for (int simd = have_simd; simd >= 0; simd--) {
		d.simd = simd;
		float *y = test_rand_buf(&rng, ys, 100); /* garbage: every output must be written */
		ae_dconv_forward(y, xh, n, &d);
		double e = test_rel_err(y, want, ys);
		CHECK_MSG(e < 1e-5, "%s ic%d oc%d %dx%d k%d s%d p%d act%d simd%d: err %g",
		          s.transposed ? "convt" : "conv", s.ic, s.oc, s.ih, s.iw, s.k, s.stride, s.pad, act, simd, e);
		/* the AVX-512 and AVX2 wide kernels run the same FMA chains */
		if (simd && !d.narrow && wide)
			CHECK_MSG(memcmp(y, wide, ys * sizeof(float)) == 0, "%s ic%d oc%d: simd%d differs from simd%d",
			          s.transposed ? "convt" : "conv", s.ic, s.oc, simd, have_simd);
		if (simd == have_simd)
			wide = y;
		else
			free(y);
	}
	free(wide);
	ae_dconv_deinit(&d);
	free(x);
	free(w);
	free(xh);
	free(b);
	free(sc);
	free(sh);
	free(want);
}

/* Per-tap rounding spelt out: each tap's FMA chain over the input channels
 * from zero, the taps added in (ky, kx) order, then the bias. NHWC out. */
static void per_tap_loop(float *y, const float *x, const float *w, const float *b, int n, const ae_dconv_shape *s)
{
	for (int i = 0; i < n; i++)
		for (int oy = 0; oy < s->oh; oy++)
			for (int ox = 0; ox < s->ow; ox++)
				for (int o = 0; o < s->oc; o++) {
					float acc = 0.0f;
					for (int ky = 0; ky < s->k; ky++)
						for (int kx = 0; kx < s->k; kx++) {
							int ty = oy + s->pad - ky, tx = ox + s->pad - kx;
							if (ty < 0 || tx < 0 || ty % s->stride || tx % s->stride)
								continue;
							int iy = ty / s->stride, ix = tx / s->stride;
							if (iy >= s->ih || ix >= s->iw) continue;
							float tap = 0.0f;
							for (int c = 0; c < s->ic; c++)
								tap = fmaf(
								        w[((size_t)(c * s->oc + o) * s->k + ky) * s->k +
								          kx],
								        x[(((size_t)i * s->ih + iy) * s->iw + ix) *
								                  s->ic +
								          c],
								        tap);
							acc += tap;
						}
					y[(((size_t)i * s->oh + oy) * s->ow + ox) * s->oc + o] = acc + b[o];
				}
}

/* Training's transposed convolutions: per-tap mode with a bias. The AVX2
 * kernels round exactly as per_tap_loop; the portable ones (no FMA) agree
 * with the reference. Repacking new weights gives what a fresh init gives. */
static void check_per_tap(int n, int ic, int ih, int oc)
{
	ae_dconv_shape s = { .transposed = 1,
		             .ic = ic,
		             .ih = ih,
		             .iw = ih,
		             .oc = oc,
		             .oh = 2 * ih,
		             .ow = 2 * ih,
		             .k = 3,
		             .stride = 2,
		             .pad = 1 };
	size_t xs = (size_t)n * ic * ih * ih, ys = (size_t)n * oc * s.oh * s.ow, ws = (size_t)ic * oc * 9;
	float *x = test_rand_buf(&rng, xs, 1), *xh = malloc(xs * sizeof(float));
	float *w0 = test_rand_buf(&rng, ws, 0.5f), *w = test_rand_buf(&rng, ws, 0.5f);
	float *b = test_rand_buf(&rng, (size_t)oc, 0.5f), *y = malloc(ys * sizeof(float));
	float *want = malloc(ys * sizeof(float)), *ref = malloc(ys * sizeof(float));
	ae_nchw_to_nhwc(xh, x, n, ic, ih * ih);
	per_tap_loop(want, xh, w, b, n, &s);
	ae_epilogue ep = { .bias = b };
	reference(ref, x, w, &ep, n, &s);
	ae_dconv d, fresh;
	CHECK(ae_dconv_init(&d, &s, w0, NULL) == 0);
	CHECK(ae_dconv_init(&fresh, &s, w, &ep) == 0);
	ae_dconv_pack(&d, w, &ep);
	d.per_tap = fresh.per_tap = 1;
	for (int simd = d.simd; simd >= 0; simd--) {
		d.simd = fresh.simd = simd;
		ae_dconv_forward(y, xh, n, &d);
		if (simd)
			CHECK_MSG(memcmp(y, want, ys * sizeof(float)) == 0,
			          "per-tap ic%d oc%d %dx%d simd%d: rounds unlike the per-tap loop", ic, oc, ih, ih,
			          simd);
		CHECK_MSG(test_rel_err(y, ref, ys) < 1e-5, "per-tap ic%d oc%d simd%d: err %g", ic, oc, simd,
		          test_rel_err(y, ref, ys));
		ae_dconv_forward(want, xh, n, &fresh);
		CHECK_MSG(memcmp(y, want, ys * sizeof(float)) == 0,
		          "per-tap ic%d oc%d simd%d: repacked weights differ from fresh ones", ic, oc, simd);
	}
	ae_dconv_deinit(&d);
	ae_dconv_deinit(&fresh);
	free(x);
	free(xh);
	free(w0);
	free(w);
	free(b);
	free(y);
	free(want);
	free(ref);
}

/* The output layer's sigmoid through a 1x1 layer of weight 1: within a few
 * ulp of 1 / (1 + expf(-x)) over [-30, 30], and in [0, 1] far outside. */
static void check_sigmoid(void)
{
	enum { N = 6016 };
	static float x[N], y[N];
	for (int i = 0; i < N - 16; i++)
		x[i] = -30.0f + 0.01f * (float)i;
	for (int i = 0; i < 16; i++)
		x[N - 16 + i] = (i & 1 ? 1.0f : -1.0f) * (float)(50 << (i / 2));
	float w = 1.0f, b = 0.0f;
	ae_epilogue ep = { .bias = &b, .act = AE_ACT_SIGMOID };
	ae_dconv_shape s = { .ic = 1, .ih = 1, .iw = N, .oc = 1, .oh = 1, .ow = N, .k = 1, .stride = 1 };
	ae_dconv d;
	CHECK(ae_dconv_init(&d, &s, &w, &ep) == 0);
	for (int simd = d.simd; simd >= 0; simd--) {
		d.simd = simd;
		ae_dconv_forward(y, x, 1, &d);
		double worst = 0.0;
		int in_range = 1;
		for (int i = 0; i < N; i++) {
			double want = 1.0 / (1.0 + exp(-(double)x[i]));
			if (i < N - 16 && fabs(y[i] - want) / want > worst) worst = fabs(y[i] - want) / want;
			in_range &= y[i] >= 0.0f && y[i] <= 1.0f;
		}
		CHECK_MSG(worst < 5e-7, "sigmoid simd%d: relative error %g", simd, worst);
		CHECK_MSG(in_range, "sigmoid simd%d: a value outside [0, 1] for large inputs", simd);
	}
	ae_dconv_deinit(&d);
}

static ae_dconv_shape conv(int ic, int ih, int iw, int oc, int k, int s, int p)
{
	return (ae_dconv_shape){
		.transposed = 0, .ic = ic, .ih = ih, .iw = iw, .oc = oc, .k = k, .stride = s, .pad = p
	};
}

static ae_dconv_shape convt(int ic, int ih, int iw, int oc, int k, int s, int p)
{
	return (ae_dconv_shape){
		.transposed = 1, .ic = ic, .ih = ih, .iw = iw, .oc = oc, .k = k, .stride = s, .pad = p
	};
}

/* Dense layers run as 1x1 convolutions over rows: each row matches the
 * reference loop, and equals, bit for bit, the same row run alone. */
static void check_rows(int n, int in, int out, int act)
{
	float *x = test_rand_buf(&rng, (size_t)n * in, 1), *w = test_rand_buf(&rng, (size_t)in * out, 0.5f);
	float *b = test_rand_buf(&rng, (size_t)out, 0.5f), *want = malloc((size_t)n * out * sizeof(float));
	float *y = test_rand_buf(&rng, (size_t)n * out, 100), *one = malloc((size_t)out * sizeof(float));
	ae_dense_forward_ref(want, x, w, b, n, in, out);
	ae_epilogue ep = { .bias = b, .act = act, .slope = 0.2f }, ref_ep = { .act = act, .slope = 0.2f };
	ae_epilogue_apply(want, n, out, 1, &ref_ep);
	ae_dconv_shape s = { .ic = in, .ih = 1, .iw = 1, .oc = out, .oh = 1, .ow = 1, .k = 1, .stride = 1 };
	ae_dconv d;
	CHECK(ae_dconv_init(&d, &s, w, &ep) == 0);
	for (int simd = d.simd; simd >= 0; simd--) {
		d.simd = simd;
		ae_dconv_forward_rows(y, x, n, &d);
		CHECK_MSG(test_rel_err(y, want, (size_t)n * out) < 1e-5, "rows %dx%d->%d simd%d: err %g", n, in, out,
		          simd, test_rel_err(y, want, (size_t)n * out));
		int same = 1;
		for (int i = 0; i < n; i++) {
			ae_dconv_forward_rows(one, x + (size_t)i * in, 1, &d);
			same &= memcmp(one, y + (size_t)i * out, (size_t)out * sizeof(float)) == 0;
		}
		CHECK_MSG(same, "rows %dx%d->%d simd%d: a row alone differs from the same row in a batch", n, in, out,
		          simd);
	}
	ae_dconv_deinit(&d);
	free(x);
	free(w);
	free(b);
	free(want);
	free(y);
	free(one);
}

/* Every element where the layout says, for shapes on and off the 8x8
 * blocks the vector transpose takes and the 16-pixel blocks of 2 to 4
 * channels, and back again. */
static void check_layout(int n, int c, int p)
{
	size_t sz = (size_t)n * c * p;
	float *x = test_rand_buf(&rng, sz, 1), *t = malloc(sz * sizeof(float)), *back = malloc(sz * sizeof(float));
	ae_nchw_to_nhwc(t, x, n, c, p);
	int ok = 1;
	for (int i = 0; i < n; i++)
		for (int ch = 0; ch < c; ch++)
			for (int q = 0; q < p; q++)
				ok &= t[((size_t)i * p + q) * c + ch] == x[((size_t)i * c + ch) * p + q];
	CHECK_MSG(ok, "NCHW -> NHWC misplaces values for n%d c%d p%d", n, c, p);
	ae_nhwc_to_nchw(back, t, n, c, p);
	CHECK_MSG(memcmp(back, x, sz * sizeof(float)) == 0, "NHWC -> NCHW does not undo it for n%d c%d p%d", n, c, p);
	free(x);
	free(t);
	free(back);
}

static void test_bad_shapes(void)
{
	ae_dconv d;
	ae_dconv_shape s = conv(0, 4, 4, 8, 3, 1, 1);
	s.oh = s.ow = 4;
	float w[1] = { 0 };
	CHECK(ae_dconv_init(&d, &s, w, NULL) == -1);
	s = conv(1, 4, 4, 8, 12, 1, 1); /* kernel over the limit */
	s.oh = s.ow = 4;
	CHECK(ae_dconv_init(&d, &s, w, NULL) == -1);
}

int main(void)
{
	ae_rng_seed(&rng, 99);
	/* the conv preset's five layers, through their own activations */
	check_shape(3, conv(1, 28, 28, 32, 3, 2, 1), AE_ACT_LRELU);
	check_shape(3, conv(32, 14, 14, 64, 3, 2, 1), AE_ACT_LRELU);
	check_shape(3, convt(64, 7, 7, 64, 3, 2, 1), AE_ACT_LRELU);
	check_shape(3, convt(64, 14, 14, 32, 3, 2, 1), AE_ACT_LRELU);
	check_shape(3, convt(32, 28, 28, 1, 3, 1, 1), AE_ACT_SIGMOID);
	/* channel counts off the kernels' 8/16 blocks, and narrow layers */
	for (int act = AE_ACT_NONE; act <= AE_ACT_SIGMOID; act++) {
		check_shape(2, conv(3, 9, 7, 12, 3, 1, 1), act);
		check_shape(2, conv(5, 8, 8, 20, 3, 2, 1), act);
		check_shape(1, conv(13, 6, 5, 3, 3, 1, 0), act);
		check_shape(2, convt(4, 4, 5, 8, 3, 2, 1), act);
		check_shape(2, convt(9, 5, 4, 5, 4, 2, 1), act);
	}
	/* kernel and stride corners: 1x1, 5x5 stride 3, stride above kernel */
	check_shape(2, conv(8, 5, 5, 16, 1, 1, 0), AE_ACT_RELU);
	check_shape(1, conv(6, 11, 10, 24, 5, 3, 2), AE_ACT_RELU);
	check_shape(1, conv(2, 9, 9, 8, 2, 3, 0), AE_ACT_NONE);
	check_shape(2, convt(3, 3, 4, 16, 5, 3, 2), AE_ACT_RELU);
	check_shape(1, convt(2, 3, 3, 8, 1, 3, 0), AE_ACT_NONE);
	check_shape(1, convt(2, 3, 3, 2, 1, 3, 0), AE_ACT_LRELU);
	/* narrow layers with a wide kernel and padding, output larger than input */
	check_shape(2, conv(4, 7, 9, 1, 5, 1, 2), AE_ACT_SIGMOID);
	check_shape(2, convt(3, 5, 6, 2, 3, 1, 0), AE_ACT_RELU);
	check_shape(1, conv(16, 4, 4, 7, 3, 1, 0), AE_ACT_NONE);
	/* the AVX-512 tiles: 48 channels (a two-block and a one-block pass),
	 * pixel counts off 12 and 8, narrow layers with 3+3+1 output channels
	 * and input channels off 16 (a masked last chunk) */
	check_shape(2, conv(8, 9, 11, 48, 3, 1, 1), AE_ACT_LRELU);
	check_shape(1, convt(40, 5, 5, 3, 3, 1, 1), AE_ACT_SIGMOID);
	check_shape(1, conv(17, 6, 7, 4, 3, 1, 1), AE_ACT_NONE);
	check_shape(2, conv(32, 6, 6, 7, 3, 1, 1), AE_ACT_LRELU);
	/* regular AVX-512 tiles (no pointer table), pixel steps 64, 128, 32,
	 * 2 and 6 (3 has no regular kernel), rows of at least 14 pixels,
	 * beside the table's tiles that cross a row or read padding */
	check_shape(1, conv(32, 32, 32, 64, 3, 2, 1), AE_ACT_LRELU);
	check_shape(1, conv(64, 30, 34, 64, 3, 2, 1), AE_ACT_RELU);
	check_shape(1, convt(64, 16, 17, 32, 3, 2, 1), AE_ACT_LRELU);
	check_shape(1, convt(32, 15, 16, 64, 3, 2, 1), AE_ACT_NONE);
	check_shape(1, convt(64, 20, 16, 32, 3, 1, 1), AE_ACT_SIGMOID);
	check_shape(2, conv(1, 40, 36, 32, 3, 2, 1), AE_ACT_LRELU);
	check_shape(1, conv(3, 34, 40, 64, 3, 2, 1), AE_ACT_LRELU);
	check_shape(1, conv(3, 18, 17, 32, 3, 1, 1), AE_ACT_NONE);
	check_per_tap(1, 64, 16, 32);
	check_rows(7, 3136, 16, AE_ACT_NONE);
	check_rows(9, 16, 3136, AE_ACT_NONE);
	check_rows(5, 33, 20, AE_ACT_LRELU);
	check_rows(3, 12, 5, AE_ACT_SIGMOID);
	check_per_tap(3, 64, 7, 64);
	check_per_tap(2, 64, 14, 32);
	check_per_tap(2, 5, 3, 12);
	check_per_tap(2, 16, 5, 48);
	check_sigmoid();
	check_layout(2, 3, 5);
	check_layout(2, 64, 49);
	check_layout(1, 13, 21);
	check_layout(3, 8, 8);
	check_layout(1, 16, 784);
	check_layout(2, 1, 784);
	check_layout(2, 2, 37);
	check_layout(3, 3, 149);
	check_layout(1, 3, 16);
	check_layout(2, 4, 70);
	check_layout(1, 5, 33);
	test_bad_shapes();
	return TEST_DONE();
}
