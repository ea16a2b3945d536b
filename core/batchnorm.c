/*
 * Batch normalisation with PyTorch's semantics: batch statistics (biased
 * variance) while training, running statistics updated with momentum and the
 * unbiased variance, and at inference a per-channel affine that the inference
 * plan folds into the pass of the layer before it.
 *
 * Training runs on channels-last images (n, p, c), as the trainer keeps
 * them: each pass walks rows of c channels in memory order with one
 * accumulator per channel, so it streams the tensor once, in full vectors.
 */
#include "ae/net.h"
#include "ops.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* ---- training mode, in steps that lanes holding parts of a batch can
 * each run on their images, adding their sums between steps ---- */

void ae_bn_sum(double *s, const float *x, int n, int c, int p)
{
	const size_t rows = (size_t)n * p;
	memset(s, 0, (size_t)c * sizeof *s);
	for (size_t r = 0; r < rows; r++) {
		const float *xr = x + r * c;
		for (int ch = 0; ch < c; ch++)
			s[ch] += xr[ch];
	}
}

void ae_bn_sqdev(double *ss, const float *x, const double *mu, int n, int c, int p)
{
	const size_t rows = (size_t)n * p;
	memset(ss, 0, (size_t)c * sizeof *ss);
	for (size_t r = 0; r < rows; r++) {
		const float *xr = x + r * c;
		for (int ch = 0; ch < c; ch++) {
			double d = xr[ch] - mu[ch];
			ss[ch] += d * d;
		}
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
	const size_t rows = (size_t)n * p;
	for (size_t r = 0; r < rows; r++) {
		const float *xr = x + r * c;
		float *o = y + r * c;
		for (int ch = 0; ch < c; ch++)
			o[ch] = (xr[ch] - mean[ch]) * invstd[ch] * gamma[ch] + beta[ch];
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
	const size_t rows = (size_t)n * p;
	memset(sdy, 0, (size_t)c * sizeof *sdy);
	memset(sdyx, 0, (size_t)c * sizeof *sdyx);
	for (size_t r = 0; r < rows; r++) {
		const float *d = dy + r * c, *xr = x + r * c;
		for (int ch = 0; ch < c; ch++) {
			sdy[ch] += d[ch];
			sdyx[ch] += d[ch] * (xr[ch] - mean[ch]) * invstd[ch];
		}
	}
}

/* dx = k * (m * dy - sdy - xhat * sdyx) with k = gamma * invstd / m; with
 * lrelu, times the LeakyReLU's slope where its output x is not positive
 * (as ae_lrelu_backward does), and db[ch] = the sum of channel ch's dx. */
static void backward_dx(float *dx, double *db, const float *dy, const float *x, const float *mean, const float *invstd,
                        const float *gamma, const double *sdy, const double *sdyx, size_t m, int n, int c, int p,
                        int lrelu, float slope)
{
	float k[AE_MAX_FILTERS], a[AE_MAX_FILTERS], b[AE_MAX_FILTERS];
	const float fm = (float)m;
	for (int ch = 0; ch < c; ch++) {
		k[ch] = gamma[ch] * invstd[ch] / fm;
		a[ch] = (float)sdy[ch];
		b[ch] = (float)sdyx[ch];
	}
	const size_t rows = (size_t)n * p;
	if (!lrelu) {
		for (size_t r = 0; r < rows; r++) {
			const float *d = dy + r * c, *xr = x + r * c;
			float *o = dx + r * c;
			for (int ch = 0; ch < c; ch++) {
				float xh = (xr[ch] - mean[ch]) * invstd[ch];
				o[ch] = k[ch] * (fm * d[ch] - a[ch] - xh * b[ch]);
			}
		}
		return;
	}
	memset(db, 0, (size_t)c * sizeof *db);
	for (size_t r = 0; r < rows; r++) {
		const float *d = dy + r * c, *xr = x + r * c;
		float *o = dx + r * c;
		for (int ch = 0; ch < c; ch++) {
			float xh = (xr[ch] - mean[ch]) * invstd[ch];
			float v = k[ch] * (fm * d[ch] - a[ch] - xh * b[ch]);
			v = v * (xr[ch] > 0.0f ? 1.0f : slope);
			o[ch] = v;
			db[ch] += v;
		}
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
