/*
 * Batch normalisation with PyTorch's semantics: batch statistics (biased
 * variance) while training, running statistics updated with momentum and the
 * unbiased variance, and at inference a per-channel affine that the inference
 * plan folds into the pass of the layer before it.
 */
#include "ae/net.h"
#include "ops.h"

#include <assert.h>
#include <math.h>

/* ---- training mode, in steps that lanes holding parts of a batch can
 * each run on their images, adding their sums between steps ---- */

/* Squared deviations from mu, in double over interleaved accumulators as
 * ae_sum_f32 (core/reduce.c) sums. */
static double row_sqdev(const float *r, double mu, int p)
{
	double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	int j = 0;
	for (; j + 4 <= p; j += 4) {
		double d0 = r[j] - mu, d1 = r[j + 1] - mu, d2 = r[j + 2] - mu, d3 = r[j + 3] - mu;
		a0 += d0 * d0;
		a1 += d1 * d1;
		a2 += d2 * d2;
		a3 += d3 * d3;
	}
	for (; j < p; j++) {
		double d = r[j] - mu;
		a0 += d * d;
	}
	return (a0 + a1) + (a2 + a3);
}

/* sum of d, and of d * xhat with xhat = (x - mu) * is */
static void row_dsums(double *sd, double *sdx, const float *d, const float *x, float mu, float is, int p)
{
	double a[4] = { 0 }, b[4] = { 0 };
	int j = 0;
	for (; j + 4 <= p; j += 4)
		for (int u = 0; u < 4; u++) {
			a[u] += d[j + u];
			b[u] += d[j + u] * (x[j + u] - mu) * is;
		}
	for (; j < p; j++) {
		a[0] += d[j];
		b[0] += d[j] * (x[j] - mu) * is;
	}
	*sd += (a[0] + a[1]) + (a[2] + a[3]);
	*sdx += (b[0] + b[1]) + (b[2] + b[3]);
}

void ae_bn_sum(double *s, const float *x, int n, int c, int p)
{
	for (int ch = 0; ch < c; ch++) {
		double acc = 0.0;
		for (int i = 0; i < n; i++)
			acc += ae_sum_f32(x + ((size_t)i * c + ch) * p, (size_t)p);
		s[ch] = acc;
	}
}

void ae_bn_sqdev(double *ss, const float *x, const double *mu, int n, int c, int p)
{
	for (int ch = 0; ch < c; ch++) {
		double acc = 0.0;
		for (int i = 0; i < n; i++)
			acc += row_sqdev(x + ((size_t)i * c + ch) * p, mu[ch], p);
		ss[ch] = acc;
	}
}

void ae_bn_stats(float *mean, float *invstd, float *run_mean, float *run_var, const double *mu, const double *ss,
                 size_t m, int c, float momentum, float eps)
{
	for (int ch = 0; ch < c; ch++) {
		double var = ss[ch] / (double)m;
		mean[ch] = (float)mu[ch];
		invstd[ch] = (float)(1.0 / sqrt(var + eps));
		if (run_mean) {
			double unbiased = m > 1 ? ss[ch] / (double)(m - 1) : var;
			run_mean[ch] = (1.0f - momentum) * run_mean[ch] + momentum * (float)mu[ch];
			run_var[ch] = (1.0f - momentum) * run_var[ch] + momentum * (float)unbiased;
		}
	}
}

void ae_bn_normalize(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                     const float *beta, int n, int c, int p)
{
	for (int ch = 0; ch < c; ch++) {
		const float fm = mean[ch], is = invstd[ch], g = gamma[ch], b = beta[ch];
		for (int i = 0; i < n; i++) {
			const float *r = x + ((size_t)i * c + ch) * p;
			float *o = y + ((size_t)i * c + ch) * p;
			for (int j = 0; j < p; j++)
				o[j] = (r[j] - fm) * is * g + b;
		}
	}
}

void ae_bn_forward_train(float *y, float *mean, float *invstd, float *run_mean, float *run_var, const float *x,
                         const float *gamma, const float *beta, int n, int c, int p, float momentum, float eps)
{
	/* c is a layer's channel count, which ae_net_build bounds. */
	assert(c <= AE_MAX_FILTERS);
	double s[AE_MAX_FILTERS], ss[AE_MAX_FILTERS];
	const size_t m = (size_t)n * p;
	ae_bn_sum(s, x, n, c, p);
	for (int ch = 0; ch < c; ch++)
		s[ch] /= (double)m;
	ae_bn_sqdev(ss, x, s, n, c, p);
	ae_bn_stats(mean, invstd, run_mean, run_var, s, ss, m, c, momentum, eps);
	ae_bn_normalize(y, x, mean, invstd, gamma, beta, n, c, p);
}

void ae_bn_backward_sums(double *sdy, double *sdyx, const float *dy, const float *x, const float *mean,
                         const float *invstd, int n, int c, int p)
{
	for (int ch = 0; ch < c; ch++) {
		double a = 0.0, b = 0.0;
		for (int i = 0; i < n; i++) {
			size_t at = ((size_t)i * c + ch) * p;
			row_dsums(&a, &b, dy + at, x + at, mean[ch], invstd[ch], p);
		}
		sdy[ch] = a;
		sdyx[ch] = b;
	}
}

/* One channel's p values of dx; with lrelu, times the LeakyReLU's slope
 * where its output x is not positive (as ae_lrelu_backward does), and the
 * values' sum returned. */
static double row_dx(float *o, const float *d, const float *r, float mu, float is, float k, float m, float a, float b,
                     int lrelu, float slope, int p)
{
	if (!lrelu) {
		for (int j = 0; j < p; j++) {
			float xh = (r[j] - mu) * is;
			o[j] = k * (m * d[j] - a - xh * b);
		}
		return 0.0;
	}
	double s[4] = { 0 }; /* interleaved, as row_dsums */
	int j = 0;
	for (; j + 4 <= p; j += 4)
		for (int u = 0; u < 4; u++) {
			float xh = (r[j + u] - mu) * is;
			float v = k * (m * d[j + u] - a - xh * b);
			v = v * (r[j + u] > 0.0f ? 1.0f : slope);
			o[j + u] = v;
			s[u] += v;
		}
	for (; j < p; j++) {
		float xh = (r[j] - mu) * is;
		float v = k * (m * d[j] - a - xh * b);
		v = v * (r[j] > 0.0f ? 1.0f : slope);
		o[j] = v;
		s[0] += v;
	}
	return (s[0] + s[1]) + (s[2] + s[3]);
}

static void backward_dx(float *dx, double *db, const float *dy, const float *x, const float *mean, const float *invstd,
                        const float *gamma, const double *sdy, const double *sdyx, size_t m, int n, int c, int p,
                        int lrelu, float slope)
{
	for (int ch = 0; ch < c; ch++) {
		const float mu = mean[ch], is = invstd[ch];
		const float k = gamma[ch] * is / (float)m;
		const float a = (float)sdy[ch], b = (float)sdyx[ch];
		double sum = 0.0;
		for (int i = 0; i < n; i++) {
			size_t at = ((size_t)i * c + ch) * p;
			sum += row_dx(dx + at, dy + at, x + at, mu, is, k, (float)m, a, b, lrelu, slope, p);
		}
		if (db) db[ch] = sum;
	}
}

void ae_bn_backward_dx(float *dx, const float *dy, const float *x, const float *mean, const float *invstd,
                       const float *gamma, const double *sdy, const double *sdyx, size_t m, int n, int c, int p)
{
	backward_dx(dx, NULL, dy, x, mean, invstd, gamma, sdy, sdyx, m, n, c, p, 0, 0.0f);
}

void ae_bn_lrelu_backward_dx(float *dx, double *db, const float *dy, const float *x, const float *mean,
                             const float *invstd, const float *gamma, const double *sdy, const double *sdyx, size_t m,
                             int n, int c, int p, float slope)
{
	backward_dx(dx, db, dy, x, mean, invstd, gamma, sdy, sdyx, m, n, c, p, 1, slope);
}

void ae_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                    const float *invstd, const float *gamma, int n, int c, int p)
{
	assert(c <= AE_MAX_FILTERS);
	double sdy[AE_MAX_FILTERS], sdyx[AE_MAX_FILTERS];
	ae_bn_backward_sums(sdy, sdyx, dy, x, mean, invstd, n, c, p);
	for (int ch = 0; ch < c; ch++) {
		dgamma[ch] += (float)sdyx[ch];
		dbeta[ch] += (float)sdy[ch];
	}
	if (dx) ae_bn_backward_dx(dx, dy, x, mean, invstd, gamma, sdy, sdyx, (size_t)n * p, n, c, p);
}

void ae_bn_fold(float *scale, float *shift, const float *gamma, const float *beta, const float *run_mean,
                const float *run_var, int c, float eps)
{
	for (int ch = 0; ch < c; ch++) {
		float s = gamma[ch] / sqrtf(run_var[ch] + eps);
		scale[ch] = s;
		shift[ch] = beta[ch] - run_mean[ch] * s;
	}
}
