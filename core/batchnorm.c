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

/* The reductions below go through RB rows at a time and, within them,
 * the channels CB at a time, so that a block's sums and constants stay in
 * registers (16 doubles are two AVX-512 vectors) instead of going through
 * memory once per row, while the RB rows stay in L1 for the next block
 * (all rows per block fetched an image's 2 MB at 128x128 twice from beyond
 * L2). Every block runs as one function instance for CB and one for the
 * rest of a row. The passes are built for each vector width (GCC picks
 * one at load time); each value is the same chain of operations in every
 * build, so they agree to the bit. */
#define CB 16
#define RB 64
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define WIDE __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE
#endif
#define BLOCK static inline __attribute__((always_inline))

BLOCK void shifted_block(double *s1, double *s2, const float *x, const float *shift, size_t rows, int c, int w)
{
	double a[CB] = { 0 }, b[CB] = { 0 }, sh[CB] = { 0 };
	for (int j = 0; j < w; j++)
		sh[j] = shift[j];
	for (size_t r = 0; r < rows; r++, x += c)
		for (int j = 0; j < w; j++) {
			double d = (double)x[j] - sh[j];
			a[j] += d;
			b[j] += d * d;
		}
	for (int j = 0; j < w; j++) {
		s1[j] += a[j];
		s2[j] += b[j];
	}
}

WIDE void ae_bn_shifted_sums(double *s1, double *s2, const float *x, const float *shift, int n, int c, int p)
{
	const size_t rows = (size_t)n * p;
	for (size_t r0 = 0; r0 < rows; r0 += RB, x += (size_t)RB * c) {
		const size_t nr = rows - r0 < RB ? rows - r0 : RB;
		for (int c0 = 0; c0 < c; c0 += CB) {
			if (c - c0 >= CB)
				shifted_block(s1 + c0, s2 + c0, x + c0, shift + c0, nr, c, CB);
			else
				shifted_block(s1 + c0, s2 + c0, x + c0, shift + c0, nr, c, c - c0);
		}
	}
}

void ae_bn_moments(double *mu, double *ss, const double *s1, const double *s2, const float *shift, size_t m, int c)
{
	for (int ch = 0; ch < c; ch++) {
		double d = s1[ch] / (double)m, v = s2[ch] - s1[ch] * d;
		mu[ch] = shift[ch] + d;
		ss[ch] = v > 0.0 ? v : 0.0;
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

/* One pass along whole rows: it writes, and a block at a time would
 * write each cache line of a row in parts. */
WIDE void ae_bn_normalize(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                          const float *beta, int n, int c, int p)
{
	const size_t rows = (size_t)n * p;
	for (size_t r = 0; r < rows; r++, x += c, y += c)
		for (int ch = 0; ch < c; ch++)
			y[ch] = (x[ch] - mean[ch]) * invstd[ch] * gamma[ch] + beta[ch];
}

void ae_bn_forward_train(float *y, float *mean, float *invstd, float *run_mean, float *run_var, const float *x,
                         const float *gamma, const float *beta, int n, int c, int p, float momentum, float eps)
{
	/* c is a layer's channel count, which ae_net_build bounds. */
	assert(c <= AE_MAX_FILTERS);
	double s1[AE_MAX_FILTERS] = { 0 }, s2[AE_MAX_FILTERS] = { 0 }, mu[AE_MAX_FILTERS], ss[AE_MAX_FILTERS];
	const size_t m = (size_t)n * p;
	const float *shift = x; /* the first pixel's values: near the data */
	ae_bn_shifted_sums(s1, s2, x, shift, n, c, p);
	ae_bn_moments(mu, ss, s1, s2, shift, m, c);
	ae_bn_stats(mean, invstd, run_mean, run_var, mu, ss, m, c, momentum, eps);
	ae_bn_normalize(y, x, mean, invstd, gamma, beta, n, c, p);
}

BLOCK void dsums_block(double *sdy, double *sdyx, const float *dy, const float *x, const float *mean,
                       const float *invstd, size_t rows, int c, int w)
{
	double a[CB] = { 0 }, b[CB] = { 0 };
	float mu[CB] = { 0 }, is[CB] = { 0 };
	for (int j = 0; j < w; j++)
		mu[j] = mean[j], is[j] = invstd[j];
	for (size_t r = 0; r < rows; r++, dy += c, x += c)
		for (int j = 0; j < w; j++) {
			a[j] += dy[j];
			b[j] += dy[j] * (x[j] - mu[j]) * is[j];
		}
	for (int j = 0; j < w; j++) {
		sdy[j] += a[j];
		sdyx[j] += b[j];
	}
}

WIDE void ae_bn_backward_sums(double *sdy, double *sdyx, const float *dy, const float *x, const float *mean,
                              const float *invstd, int n, int c, int p)
{
	const size_t rows = (size_t)n * p;
	for (size_t r0 = 0; r0 < rows; r0 += RB, dy += (size_t)RB * c, x += (size_t)RB * c) {
		const size_t nr = rows - r0 < RB ? rows - r0 : RB;
		for (int c0 = 0; c0 < c; c0 += CB) {
			if (c - c0 >= CB)
				dsums_block(sdy + c0, sdyx + c0, dy + c0, x + c0, mean + c0, invstd + c0, nr, c, CB);
			else
				dsums_block(sdy + c0, sdyx + c0, dy + c0, x + c0, mean + c0, invstd + c0, nr, c,
				            c - c0);
		}
	}
}

/* dx = k * (m * dy - sdy - xhat * sdyx) with k = gamma * invstd / m; with
 * lrelu, times the LeakyReLU's slope where its output x is not positive
 * (as ae_lrelu_backward does), and db[ch] = the sum of channel ch's dx.
 * One pass along whole rows, as ae_bn_normalize. */
WIDE static void backward_dx(float *dx, double *db, const float *dy, const float *x, const float *mean,
                             const float *invstd, const float *gamma, const double *sdy, const double *sdyx, size_t m,
                             int n, int c, int p, int lrelu, float slope)
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
		for (size_t r = 0; r < rows; r++, dy += c, x += c, dx += c)
			for (int ch = 0; ch < c; ch++) {
				float xh = (x[ch] - mean[ch]) * invstd[ch];
				dx[ch] = k[ch] * (fm * dy[ch] - a[ch] - xh * b[ch]);
			}
		return;
	}
	memset(db, 0, (size_t)c * sizeof *db);
	for (size_t r = 0; r < rows; r++, dy += c, x += c, dx += c)
		for (int ch = 0; ch < c; ch++) {
			float xh = (x[ch] - mean[ch]) * invstd[ch];
			float v = k[ch] * (fm * dy[ch] - a[ch] - xh * b[ch]);
			v = v * (x[ch] > 0.0f ? 1.0f : slope);
			dx[ch] = v;
			db[ch] += v;
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
	double sdy[AE_MAX_FILTERS] = { 0 }, sdyx[AE_MAX_FILTERS] = { 0 };
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
