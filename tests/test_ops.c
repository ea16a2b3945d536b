/*
 * Every kernel's OpenBLAS path against its reference loop, and every layer's
 * backward pass against finite differences of its forward pass.
 */
#include "test.h"

#include <stdlib.h>

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

/* ---- Conv2D ---- */
static void test_conv2d(int n, int c, int h, int w, int oc, int k, int s, int p)
{
	ae_conv_geom g;
	CHECK(ae_conv_geom_init(&g, c, h, w, k, s, p) == 0);
	size_t xs = (size_t)n * c * h * w, ws = (size_t)oc * c * k * k;
	size_t ys = (size_t)n * oc * g.oh * g.ow, cs = (size_t)c * k * k * n * g.oh * g.ow;
	float *x = test_rand_buf(&rng, xs, 1), *wt = test_rand_buf(&rng, ws, 0.5f), *b = test_rand_buf(&rng, oc, 0.5f);
	float *y = zeros(ys), *yr = zeros(ys), *col = zeros(cs), *t = zeros((size_t)oc * n * g.oh * g.ow);
	ae_epilogue ep = { .bias = b };
	ae_conv2d_forward(y, col, t, x, wt, &ep, n, oc, &g);
	ae_conv2d_forward_ref(yr, x, wt, b, n, oc, &g);
	CHECK_MSG(test_rel_err(y, yr, ys) < 1e-5, "conv forward err %g", test_rel_err(y, yr, ys));

	float *dy = test_rand_buf(&rng, ys, 1), *dx = zeros(xs), *dxr = zeros(xs);
	float *dw = zeros(ws), *dwr = zeros(ws), *db = zeros(oc), *dbr = zeros(oc);
	ae_conv2d_backward(dx, dw, db, col, t, dy, x, wt, n, oc, &g);
	ae_conv2d_backward_ref(dxr, dwr, dbr, dy, x, wt, n, oc, &g);
	CHECK_MSG(test_rel_err(dx, dxr, xs) < 1e-5, "conv dx err %g", test_rel_err(dx, dxr, xs));
	CHECK_MSG(test_rel_err(dw, dwr, ws) < 1e-5, "conv dw err %g", test_rel_err(dw, dwr, ws));
	CHECK_MSG(test_rel_err(db, dbr, oc) < 1e-5, "conv db err %g", test_rel_err(db, dbr, oc));

	/* Finite differences of L = <dy, conv(x)> against the analytic dx, dw. */
	const float e = 1e-2f;
	int bad = 0;
	for (int trial = 0; trial < 8; trial++) {
		size_t i = ae_rng_below(&rng, (uint32_t)xs);
		float keep = x[i];
		x[i] = keep + e;
		ae_conv2d_forward_ref(yr, x, wt, b, n, oc, &g);
		double lp = dot(dy, yr, ys);
		x[i] = keep - e;
		ae_conv2d_forward_ref(yr, x, wt, b, n, oc, &g);
		double lm = dot(dy, yr, ys);
		x[i] = keep;
		if (fabs((lp - lm) / (2 * e) - dx[i]) > 1e-2 * (1 + fabs(dx[i]))) bad++;
		size_t j = ae_rng_below(&rng, (uint32_t)ws);
		keep = wt[j];
		wt[j] = keep + e;
		ae_conv2d_forward_ref(yr, x, wt, b, n, oc, &g);
		lp = dot(dy, yr, ys);
		wt[j] = keep - e;
		ae_conv2d_forward_ref(yr, x, wt, b, n, oc, &g);
		lm = dot(dy, yr, ys);
		wt[j] = keep;
		if (fabs((lp - lm) / (2 * e) - dw[j]) > 1e-2 * (1 + fabs(dw[j]))) bad++;
	}
	CHECK_MSG(bad == 0, "conv finite differences: %d mismatches", bad);
	free(x);
	free(wt);
	free(b);
	free(y);
	free(yr);
	free(col);
	free(t);
	free(dy);
	free(dx);
	free(dxr);
	free(dw);
	free(dwr);
	free(db);
	free(dbr);
}

/* ---- ConvTranspose2D: in (n, ic, hi, wi) -> (n, oc, ho, wo) ---- */
static void test_convt2d(int n, int ic, int hi, int wi, int oc, int k, int s, int p, int op)
{
	int ho = (hi - 1) * s - 2 * p + k + op, wo = (wi - 1) * s - 2 * p + k + op;
	ae_conv_geom g;
	ae_conv_geom_init(&g, oc, ho, wo, k, s, p);
	CHECK(g.oh == hi && g.ow == wi);
	g.oh = hi, g.ow = wi;
	size_t xs = (size_t)n * ic * hi * wi, ws = (size_t)ic * oc * k * k, ys = (size_t)n * oc * ho * wo;
	size_t cs = (size_t)oc * k * k * n * hi * wi, ts = (size_t)ic * n * hi * wi;
	float *x = test_rand_buf(&rng, xs, 1), *wt = test_rand_buf(&rng, ws, 0.5f), *b = test_rand_buf(&rng, oc, 0.5f);
	float *y = zeros(ys), *yr = zeros(ys), *col = zeros(cs), *t = zeros(ts);
	ae_epilogue ep = { .bias = b };
	ae_convt2d_forward(y, col, t, x, wt, &ep, n, ic, &g);
	ae_convt2d_forward_ref(yr, x, wt, b, n, ic, &g);
	CHECK_MSG(test_rel_err(y, yr, ys) < 1e-5, "convt forward err %g", test_rel_err(y, yr, ys));

	float *dy = test_rand_buf(&rng, ys, 1), *dx = zeros(xs), *dxr = zeros(xs);
	float *dw = zeros(ws), *dwr = zeros(ws), *db = zeros(oc), *dbr = zeros(oc);
	ae_convt2d_backward(dx, dw, db, col, t, dy, x, wt, n, ic, &g);
	ae_convt2d_backward_ref(dxr, dwr, dbr, dy, x, wt, n, ic, &g);
	CHECK_MSG(test_rel_err(dx, dxr, xs) < 1e-5, "convt dx err %g", test_rel_err(dx, dxr, xs));
	CHECK_MSG(test_rel_err(dw, dwr, ws) < 1e-5, "convt dw err %g", test_rel_err(dw, dwr, ws));
	CHECK_MSG(test_rel_err(db, dbr, oc) < 1e-5, "convt db err %g", test_rel_err(db, dbr, oc));

	const float e = 1e-2f;
	int bad = 0;
	for (int trial = 0; trial < 8; trial++) {
		size_t i = ae_rng_below(&rng, (uint32_t)xs);
		float keep = x[i];
		x[i] = keep + e;
		ae_convt2d_forward_ref(yr, x, wt, b, n, ic, &g);
		double lp = dot(dy, yr, ys);
		x[i] = keep - e;
		ae_convt2d_forward_ref(yr, x, wt, b, n, ic, &g);
		double lm = dot(dy, yr, ys);
		x[i] = keep;
		if (fabs((lp - lm) / (2 * e) - dx[i]) > 1e-2 * (1 + fabs(dx[i]))) bad++;
		size_t j = ae_rng_below(&rng, (uint32_t)ws);
		keep = wt[j];
		wt[j] = keep + e;
		ae_convt2d_forward_ref(yr, x, wt, b, n, ic, &g);
		lp = dot(dy, yr, ys);
		wt[j] = keep - e;
		ae_convt2d_forward_ref(yr, x, wt, b, n, ic, &g);
		lm = dot(dy, yr, ys);
		wt[j] = keep;
		if (fabs((lp - lm) / (2 * e) - dw[j]) > 1e-2 * (1 + fabs(dw[j]))) bad++;
	}
	CHECK_MSG(bad == 0, "convt finite differences: %d mismatches", bad);
	free(x);
	free(wt);
	free(b);
	free(y);
	free(yr);
	free(col);
	free(t);
	free(dy);
	free(dx);
	free(dxr);
	free(dw);
	free(dwr);
	free(db);
	free(dbr);
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
			s += y[((size_t)i * c + 1) * p + j];
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
	/* rows wide enough for the AVX-512 stride-2 column gather, with its
	 * scalar tail; one image (no gather/scatter copies) and two */
	test_conv2d(1, 2, 6, 70, 3, 3, 2, 1);
	test_conv2d(2, 1, 5, 67, 4, 3, 2, 1);
	test_convt2d(3, 4, 4, 4, 2, 3, 2, 1, 1);
	test_convt2d(2, 3, 5, 6, 4, 3, 1, 1, 0);
	test_convt2d(2, 2, 7, 7, 3, 3, 2, 1, 1);
	test_convt2d(2, 3, 4, 5, 2, 4, 2, 1, 0);
	test_convt2d(2, 2, 3, 4, 3, 5, 3, 2, 2);
	test_convt2d(1, 2, 3, 3, 2, 2, 2, 0, 0);
	test_convt2d(1, 2, 3, 3, 2, 1, 3, 0, 0);
	test_convt2d(1, 3, 4, 36, 2, 3, 2, 1, 1);
	test_dense(5, 17, 9);
	test_dense(1, 3136, 16);
	test_activations();
	test_batchnorm();
	test_losses();
	test_adam();
	return TEST_DONE();
}
