/*
 * Every kernel's fast paths against its reference loop, and every layer's
 * backward pass against finite differences of its forward pass.
 */
#include "test.h"

#include <stdlib.h>

#include "dconv.h"
#include "ops.h"
#include "ae/rng.h"

static ae_rng rng;

static float *zeros(size_t n)
{
	return calloc(n, sizeof(float));
}

static double dot(const float *a, const float *b, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += (double)a[i] * b[i];
	return s;
}

/* ---- Convolutions as the trainer runs them, on channels-last images ---- */

/* The layer's reference forward, NCHW. */
static void ref_forward(float *y, const float *x, const float *wt, const float *b, int n, const ae_dconv_shape *s,
                        const ae_conv_geom *g)
{
	if (s->transposed)
		ae_convt2d_forward_ref(y, x, wt, b, n, s->ic, g);
	else
		ae_conv2d_forward_ref(y, x, wt, b, n, s->oc, g);
}

/* <dy, layer(x)>, whose derivatives are dx and dw. */
static double ref_loss(const float *dy, const float *x, const float *wt, const float *b, int n, const ae_dconv_shape *s,
                       const ae_conv_geom *g, float *y)
{
	ref_forward(y, x, wt, b, n, s, g);
	return dot(dy, y, (size_t)n * s->oc * s->oh * s->ow);
}

/* Out of NHWC into a fresh NCHW copy, to compare with the references. */
static float *to_nchw(const float *src, int n, int c, int p)
{
	float *d = zeros((size_t)n * c * p);
	ae_nhwc_to_nchw(d, src, n, c, p);
	return d;
}

/* One layer of shape s on n images: forward (per-tap for a transposed
 * one) and input gradient (the adjoint direct convolution) against the
 * NCHW reference loops, the weight gradient with every kernel set this
 * CPU has and the bias gradient too, and the references' own gradients
 * against finite differences of their forward pass. */
static void check_train_layer(const ae_dconv_shape *s, int n)
{
	ae_conv_geom g; /* the lowering: a convolution's, or a transposed one's adjoint */
	if (s->transposed) {
		CHECK(ae_conv_geom_init(&g, s->oc, s->oh, s->ow, s->k, s->stride, s->pad) == 0);
		g.oh = s->ih, g.ow = s->iw;
	} else {
		CHECK(ae_conv_geom_init(&g, s->ic, s->ih, s->iw, s->k, s->stride, s->pad) == 0);
		CHECK(g.oh == s->oh && g.ow == s->ow);
	}
	const int pi = s->ih * s->iw, po = s->oh * s->ow;
	const size_t xs = (size_t)n * s->ic * pi, ws = (size_t)s->ic * s->oc * s->k * s->k, ys = (size_t)n * s->oc * po;
	float *x = test_rand_buf(&rng, xs, 1), *wt = test_rand_buf(&rng, ws, 0.5f),
	      *b = test_rand_buf(&rng, s->oc, 0.5f);
	float *dy = test_rand_buf(&rng, ys, 1), *yr = zeros(ys), *dxr = zeros(xs), *dwr = zeros(ws),
	      *dbr = zeros(s->oc);
	if (s->transposed)
		ae_convt2d_backward_ref(dxr, dwr, dbr, dy, x, wt, n, s->ic, &g);
	else
		ae_conv2d_backward_ref(dxr, dwr, dbr, dy, x, wt, n, s->oc, &g);
	ref_forward(yr, x, wt, b, n, s, &g);
	float *xh = zeros(xs), *dyh = zeros(ys), *yh = zeros(ys), *dxh = zeros(xs);
	ae_nchw_to_nhwc(xh, x, n, s->ic, pi);
	ae_nchw_to_nhwc(dyh, dy, n, s->oc, po);

	ae_dconv fwd, adj;
	ae_dconv_shape as;
	ae_dconv_adjoint(&as, s);
	ae_epilogue ep = { .bias = b };
	CHECK(ae_dconv_init(&fwd, s, wt, &ep) == 0 && ae_dconv_init(&adj, &as, wt, NULL) == 0);
	fwd.per_tap = s->transposed;
	adj.per_tap = as.transposed;
	ae_dconv_forward(yh, xh, n, &fwd);
	ae_dconv_forward(dxh, dyh, n, &adj);
	float *y = to_nchw(yh, n, s->oc, po), *dx = to_nchw(dxh, n, s->ic, pi);
	CHECK_MSG(test_rel_err(y, yr, ys) < 1e-5, "forward err %g", test_rel_err(y, yr, ys));
	CHECK_MSG(test_rel_err(dx, dxr, xs) < 1e-5, "dx err %g", test_rel_err(dx, dxr, xs));

	const int a = s->transposed ? s->ic : s->oc;
	float *dw = zeros(ws), *wtmp = zeros(ws), *col = zeros((size_t)n * g.oh * g.ow * g.c * g.k * g.k);
	const int levels[2] = { AE_SIMD_NONE, ae_cpu_simd() };
	for (int k = 0; k < 2; k++) {
		for (size_t j = 0; j < ws; j++)
			dw[j] = 1.0f; /* it adds */
		if (s->transposed)
			ae_conv_weight_grad_simd(dw, wtmp, col, dyh, xh, n, a, &g, levels[k]);
		else
			ae_conv_weight_grad_simd(dw, wtmp, col, xh, dyh, n, a, &g, levels[k]);
		for (size_t j = 0; j < ws; j++)
			dw[j] -= 1.0f;
		CHECK_MSG(test_rel_err(dw, dwr, ws) < 1e-5, "dw err %g (kernels up to %d)", test_rel_err(dw, dwr, ws),
		          levels[k]);
	}
	float db[AE_MAX_FILTERS] = { 0 };
	double acc[AE_MAX_FILTERS];
	ae_bias_grad_nhwc(db, dyh, (size_t)n * po, s->oc, acc);
	CHECK_MSG(test_rel_err(db, dbr, s->oc) < 1e-5, "db err %g", test_rel_err(db, dbr, s->oc));

	const float e = 1e-2f;
	int bad = 0;
	for (int trial = 0; trial < 8; trial++) {
		size_t i = ae_rng_below(&rng, (uint32_t)xs), j = ae_rng_below(&rng, (uint32_t)ws);
		float keep = x[i];
		x[i] = keep + e;
		double lp = ref_loss(dy, x, wt, b, n, s, &g, yr);
		x[i] = keep - e;
		double lm = ref_loss(dy, x, wt, b, n, s, &g, yr);
		x[i] = keep;
		if (fabs((lp - lm) / (2 * e) - dxr[i]) > 1e-2 * (1 + fabs(dxr[i]))) bad++;
		keep = wt[j];
		wt[j] = keep + e;
		lp = ref_loss(dy, x, wt, b, n, s, &g, yr);
		wt[j] = keep - e;
		lm = ref_loss(dy, x, wt, b, n, s, &g, yr);
		wt[j] = keep;
		if (fabs((lp - lm) / (2 * e) - dwr[j]) > 1e-2 * (1 + fabs(dwr[j]))) bad++;
	}
	CHECK_MSG(bad == 0, "finite differences: %d mismatches", bad);
	ae_dconv_deinit(&fwd);
	ae_dconv_deinit(&adj);
	float *bufs[] = { x, wt, b, dy, yr, dxr, dwr, dbr, xh, dyh, yh, dxh, y, dx, dw, wtmp, col };
	for (size_t k = 0; k < sizeof bufs / sizeof *bufs; k++)
		free(bufs[k]);
}

/* Conv2d from (n, c, h, w) to oc channels. */
static void test_conv2d(int n, int c, int h, int w, int oc, int k, int s, int p)
{
	ae_conv_geom g;
	CHECK(ae_conv_geom_init(&g, c, h, w, k, s, p) == 0);
	ae_dconv_shape sh = {
		.ic = c, .ih = h, .iw = w, .oc = oc, .oh = g.oh, .ow = g.ow, .k = k, .stride = s, .pad = p
	};
	check_train_layer(&sh, n);
}

/* ConvTranspose2d from (n, ic, hi, wi) to oc channels, output padding op. */
static void test_convt2d(int n, int ic, int hi, int wi, int oc, int k, int s, int p, int op)
{
	ae_dconv_shape sh = { .transposed = 1,
		              .ic = ic,
		              .ih = hi,
		              .iw = wi,
		              .oc = oc,
		              .oh = (hi - 1) * s - 2 * p + k + op,
		              .ow = (wi - 1) * s - 2 * p + k + op,
		              .k = k,
		              .stride = s,
		              .pad = p };
	check_train_layer(&sh, n);
}

static void test_dense(int n, int in, int out)
{
	size_t xs = (size_t)n * in, ws = (size_t)in * out, ys = (size_t)n * out;
	float *x = test_rand_buf(&rng, xs, 1), *wt = test_rand_buf(&rng, ws, 0.5f), *b = test_rand_buf(&rng, out, 0.5f);
	float *y = zeros(ys), *yr = zeros(ys);
	ae_epilogue ep = { .bias = b };
	ae_dense_forward(y, x, wt, &ep, n, in, out);
	ae_dense_forward_ref(yr, x, wt, b, n, in, out);
	CHECK_MSG(test_rel_err(y, yr, ys) < 1e-5, "dense forward err %g", test_rel_err(y, yr, ys));
	float *dy = test_rand_buf(&rng, ys, 1), *dx = zeros(xs), *dxr = zeros(xs);
	float *dw = zeros(ws), *dwr = zeros(ws), *db = zeros(out), *dbr = zeros(out);
	ae_dense_backward(dx, dw, db, dy, x, wt, n, in, out);
	ae_dense_backward_ref(dxr, dwr, dbr, dy, x, wt, n, in, out);
	CHECK(test_rel_err(dx, dxr, xs) < 1e-5);
	CHECK(test_rel_err(dw, dwr, ws) < 1e-5);
	CHECK(test_rel_err(db, dbr, out) < 1e-5);
	/* finite difference on one weight and one input */
	const float e = 1e-2f;
	size_t j = ae_rng_below(&rng, (uint32_t)ws), i = ae_rng_below(&rng, (uint32_t)xs);
	float keep = wt[j];
	wt[j] = keep + e;
	ae_dense_forward_ref(yr, x, wt, b, n, in, out);
	double lp = dot(dy, yr, ys);
	wt[j] = keep - e;
	ae_dense_forward_ref(yr, x, wt, b, n, in, out);
	double lm = dot(dy, yr, ys);
	wt[j] = keep;
	CHECK_CLOSE((lp - lm) / (2 * e), dw[j], 1e-2);
	keep = x[i];
	x[i] = keep + e;
	ae_dense_forward_ref(yr, x, wt, b, n, in, out);
	lp = dot(dy, yr, ys);
	x[i] = keep - e;
	ae_dense_forward_ref(yr, x, wt, b, n, in, out);
	lm = dot(dy, yr, ys);
	x[i] = keep;
	CHECK_CLOSE((lp - lm) / (2 * e), dx[i], 1e-2);
	free(x);
	free(wt);
	free(b);
	free(y);
	free(yr);
	free(dy);
	free(dx);
	free(dxr);
	free(dw);
	free(dwr);
	free(db);
	free(dbr);
}

/* L = <dy, act(x)>; checks dL/dx from backward against central differences. */
static void test_activations(void)
{
	const size_t n = 64;
	float *x = test_rand_buf(&rng, n, 3), *y = zeros(n), *dy = test_rand_buf(&rng, n, 1), *dx = zeros(n);
	for (int kind = 0; kind < 3; kind++) {
		int bad = 0;
		if (kind == 0) {
			ae_relu_forward(y, x, n);
			ae_relu_backward(dx, dy, y, n);
		}
		if (kind == 1) {
			ae_lrelu_forward(y, x, 0.2f, n);
			ae_lrelu_backward(dx, dy, y, 0.2f, n);
		}
		if (kind == 2) {
			ae_sigmoid_forward(y, x, n);
			ae_sigmoid_backward(dx, dy, y, n);
		}
		for (size_t i = 0; i < n; i++) {
			if (fabsf(x[i]) < 2e-3f) continue; /* the kink */
			const float e = 1e-3f;
			float a = x[i] + e, b = x[i] - e, ya, yb;
			if (kind == 0) {
				ae_relu_forward(&ya, &a, 1);
				ae_relu_forward(&yb, &b, 1);
			}
			if (kind == 1) {
				ae_lrelu_forward(&ya, &a, 0.2f, 1);
				ae_lrelu_forward(&yb, &b, 0.2f, 1);
			}
			if (kind == 2) {
				ae_sigmoid_forward(&ya, &a, 1);
				ae_sigmoid_forward(&yb, &b, 1);
			}
			double fd = dy[i] * (ya - yb) / (2 * e);
			if (fabs(fd - dx[i]) > 1e-2 * (1 + fabs(fd)) || !isfinite(dx[i])) bad++;
		}
		CHECK_MSG(bad == 0, "activation %d: %d finite-difference mismatches", kind, bad);
	}
	free(x);
	free(y);
	free(dy);
	free(dx);
}

static void bn_loss(double *out, const float *x, const float *gamma, const float *beta, const float *dy, int n, int c,
                    int p)
{
	size_t sz = (size_t)n * c * p;
	float *y = zeros(sz), mean[16], inv[16];
	ae_bn_forward_train(y, mean, inv, NULL, NULL, x, gamma, beta, n, c, p, 0.1f, 1e-5f);
	*out = dot(dy, y, sz);
	free(y);
}

static void test_batchnorm(void)
{
	const int n = 4, c = 3, p = 5;
	size_t sz = (size_t)n * c * p;
	float *x = test_rand_buf(&rng, sz, 2), *dy = test_rand_buf(&rng, sz, 1), *y = zeros(sz), *dx = zeros(sz);
	float gamma[3] = { 1.5f, 0.5f, -1.0f }, beta[3] = { 0.1f, -0.2f, 0.3f };
	float mean[3], inv[3], rm[3] = { 0 }, rv[3] = { 1, 1, 1 }, dg[3] = { 0 }, dbt[3] = { 0 };
	ae_bn_forward_train(y, mean, inv, rm, rv, x, gamma, beta, n, c, p, 0.1f, 1e-5f);
	/* normalised output has the channel's mean beta */
	double s = 0;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < p; j++)
			s += y[((size_t)i * p + j) * c + 1]; /* channels-last */
	CHECK_CLOSE(s / (n * p), beta[1], 1e-5);
	CHECK_CLOSE(rm[0], 0.1 * mean[0], 1e-6);
	ae_bn_backward(dx, dg, dbt, dy, x, mean, inv, gamma, n, c, p);
	const float e = 1e-2f;
	int bad = 0;
	for (size_t i = 0; i < sz; i += 7) {
		double lp, lm;
		float keep = x[i];
		x[i] = keep + e;
		bn_loss(&lp, x, gamma, beta, dy, n, c, p);
		x[i] = keep - e;
		bn_loss(&lm, x, gamma, beta, dy, n, c, p);
		x[i] = keep;
		if (fabs((lp - lm) / (2 * e) - dx[i]) > 2e-2 * (1 + fabs(dx[i]))) bad++;
	}
	for (int ch = 0; ch < c; ch++) {
		double lp, lm;
		float keep = gamma[ch];
		gamma[ch] = keep + e;
		bn_loss(&lp, x, gamma, beta, dy, n, c, p);
		gamma[ch] = keep - e;
		bn_loss(&lm, x, gamma, beta, dy, n, c, p);
		gamma[ch] = keep;
		if (fabs((lp - lm) / (2 * e) - dg[ch]) > 1e-2 * (1 + fabs(dg[ch]))) bad++;
	}
	CHECK_MSG(bad == 0, "batchnorm finite differences: %d mismatches", bad);
	free(x);
	free(dy);
	free(y);
	free(dx);
}

static void test_losses(void)
{
	float y[4] = { 0.1f, 0.5f, 0.9f, 0.999f }, t[4] = { 0, 1, 1, 0 }, d[4];
	double l = ae_mse_loss(d, y, t, 4);
	CHECK_CLOSE(l, (0.01 + 0.25 + 0.01 + 0.998001) / 4, 1e-6);
	CHECK_CLOSE(d[1], 2 * (0.5 - 1) / 4, 1e-6);
	l = ae_bce_loss(d, y, t, 4);
	double want = -(log(0.9) + log(0.5) + log(0.9) + log(1 - 0.999)) / 4;
	CHECK_CLOSE(l, want, 1e-4);
	float e = 1e-4f, yp = y[0] + e, ym = y[0] - e;
	double fd = (ae_bce_loss(NULL, &yp, t, 1) - ae_bce_loss(NULL, &ym, t, 1)) / (2 * e) / 4;
	CHECK_CLOSE(d[0], fd, 1e-2);
	/* y == 0 with target 1: clamped, finite */
	float z = 0.0f, one = 1.0f;
	CHECK(isfinite(ae_bce_loss(d, &z, &one, 1)));
	CHECK(isfinite(d[0]));
}

static void test_adam(void)
{
	/* One step from zero moments moves each parameter by ~lr against its gradient. */
	float p[2] = { 1.0f, -1.0f }, m[2] = { 0 }, v[2] = { 0 }, g[2] = { 0.5f, -2.0f };
	ae_adam_update(p, m, v, g, 2, 1e-3f, 0.9f, 0.999f, 1e-8f, 1);
	CHECK_CLOSE(p[0], 1.0 - 1e-3, 1e-6);
	CHECK_CLOSE(p[1], -1.0 + 1e-3, 1e-6);
}

int main(void)
{
	ae_rng_seed(&rng, 1234);
	test_conv2d(3, 2, 8, 8, 4, 3, 2, 1);
	test_conv2d(2, 3, 7, 5, 5, 3, 1, 1);
	test_conv2d(1, 1, 28, 28, 8, 3, 2, 1);
	test_conv2d(2, 2, 6, 6, 3, 1, 1, 0);
	/* the direct weight-gradient kernel's tiles: one block of 16 output
	 * channels by up to 16 input ones, a masked remainder of each (19, 20
	 * = 16 + 4), and the decoder's widths; two blocks by up to 12 (50 =
	 * 32 + 16 + 2, 25 = 9 + 8 + 8); four by up to 6 (70 = 64 + 6, 13 =
	 * 5 + 4 + 4), with a one-block remainder */
	test_conv2d(2, 20, 9, 7, 19, 3, 2, 1);
	test_conv2d(1, 16, 8, 8, 32, 3, 2, 1);
	test_conv2d(2, 3, 12, 10, 33, 3, 2, 1);
	test_conv2d(1, 25, 5, 5, 50, 3, 1, 1);
	test_conv2d(2, 13, 6, 6, 70, 3, 2, 1);
	test_convt2d(1, 64, 4, 4, 32, 3, 2, 1, 1);
	test_convt2d(3, 4, 4, 4, 2, 3, 2, 1, 1);
	test_convt2d(2, 3, 5, 6, 4, 3, 1, 1, 0);
	test_convt2d(2, 2, 7, 7, 3, 3, 2, 1, 1);
	test_convt2d(2, 3, 4, 5, 2, 4, 2, 1, 0);
	test_convt2d(2, 2, 3, 4, 3, 5, 3, 2, 2);
	test_convt2d(1, 2, 3, 3, 2, 2, 2, 0, 0);
	test_convt2d(1, 2, 3, 3, 2, 1, 3, 0, 0);
	test_convt2d(1, 3, 4, 36, 2, 3, 2, 1, 1);
	test_convt2d(2, 17, 5, 4, 18, 3, 2, 1, 1);
	test_convt2d(1, 32, 6, 6, 3, 3, 1, 1, 0);
	test_convt2d(2, 8, 4, 4, 32, 3, 2, 1, 1);
	test_dense(5, 17, 9);
	test_dense(1, 3136, 16);
	test_activations();
	test_batchnorm();
	test_losses();
	test_adam();
	return TEST_DONE();
}
