/*
 * Batch normalisation with PyTorch's semantics: batch statistics (biased
 * variance) while training, running statistics updated with momentum and the
 * unbiased variance, and at inference a per-channel affine that the inference
 * plan folds into the pass of the layer before it.
 */
#include "ae/ops.h"

#include <math.h>

void ae_bn_forward_train(float *y, float *mean, float *invstd, float *run_mean, float *run_var,
                         const float *x, const float *gamma, const float *beta,
                         int n, int c, int p, float momentum, float eps)
{
	const size_t m = (size_t)n * p;
	for (int ch = 0; ch < c; ch++) {
		double s = 0.0, ss = 0.0;
		for (int i = 0; i < n; i++) {
			const float *r = x + ((size_t)i * c + ch) * p;
			for (int j = 0; j < p; j++)
				s += r[j];
		}
		double mu = s / (double)m;
		for (int i = 0; i < n; i++) {
			const float *r = x + ((size_t)i * c + ch) * p;
			for (int j = 0; j < p; j++) {
				double d = r[j] - mu;
				ss += d * d;
			}
		}
		double var = ss / (double)m;
		float is = (float)(1.0 / sqrt(var + eps));
		mean[ch] = (float)mu;
		invstd[ch] = is;
		float g = gamma[ch], b = beta[ch], fm = (float)mu;
		for (int i = 0; i < n; i++) {
			const float *r = x + ((size_t)i * c + ch) * p;
			float *o = y + ((size_t)i * c + ch) * p;
			for (int j = 0; j < p; j++)
				o[j] = (r[j] - fm) * is * g + b;
		}
		if (run_mean) {
			double unbiased = m > 1 ? ss / (double)(m - 1) : var;
			run_mean[ch] = (1.0f - momentum) * run_mean[ch] + momentum * (float)mu;
			run_var[ch] = (1.0f - momentum) * run_var[ch] + momentum * (float)unbiased;
		}
	}
}

void ae_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                    const float *mean, const float *invstd, const float *gamma,
                    int n, int c, int p)
{
	const size_t m = (size_t)n * p;
	for (int ch = 0; ch < c; ch++) {
		double sdy = 0.0, sdyx = 0.0;
		const float mu = mean[ch], is = invstd[ch];
		for (int i = 0; i < n; i++) {
			const float *r = x + ((size_t)i * c + ch) * p;
			const float *d = dy + ((size_t)i * c + ch) * p;
			for (int j = 0; j < p; j++) {
				sdy += d[j];
				sdyx += d[j] * (r[j] - mu) * is;
			}
		}
		dgamma[ch] += (float)sdyx;
		dbeta[ch] += (float)sdy;
		if (!dx)
			continue;
		const float k = gamma[ch] * is / (float)m;
		const float a = (float)sdy, b = (float)sdyx;
		for (int i = 0; i < n; i++) {
			const float *r = x + ((size_t)i * c + ch) * p;
			const float *d = dy + ((size_t)i * c + ch) * p;
			float *o = dx + ((size_t)i * c + ch) * p;
			for (int j = 0; j < p; j++) {
				float xh = (r[j] - mu) * is;
				o[j] = k * ((float)m * d[j] - a - xh * b);
			}
		}
	}
}

void ae_bn_fold(float *scale, float *shift, const float *gamma, const float *beta,
                const float *run_mean, const float *run_var, int c, float eps)
{
	for (int ch = 0; ch < c; ch++) {
		float s = gamma[ch] / sqrtf(run_var[ch] + eps);
		scale[ch] = s;
		shift[ch] = beta[ch] - run_mean[ch] * s;
	}
}
