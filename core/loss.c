/*
 * Reconstruction losses, averaged over every value as PyTorch's default
 * reduction='mean' does, with their gradients.
 */
#include "ops.h"

#include <math.h>

double ae_mse_loss(float *dy, const float *y, const float *target, size_t n)
{
	return ae_mse_loss_part(dy, y, target, n, n);
}

double ae_bce_loss(float *dy, const float *y, const float *target, size_t n)
{
	return ae_bce_loss_part(dy, y, target, n, n);
}

double ae_mse_loss_part(float *dy, const float *y, const float *target, size_t n, size_t total)
{
	double s = 0.0;
	const float k = 2.0f / (float)total;
	for (size_t i = 0; i < n; i++) {
		float d = y[i] - target[i];
		s += (double)d * d;
		if (dy) dy[i] = k * d;
	}
	return s / (double)total;
}

double ae_bce_loss_part(float *dy, const float *y, const float *target, size_t n, size_t total)
{
	double s = 0.0;
	const float inv = 1.0f / (float)total;
	for (size_t i = 0; i < n; i++) {
		double ly = fmax(log((double)y[i]), -100.0);
		double l1y = fmax(log(1.0 - (double)y[i]), -100.0);
		s -= target[i] * ly + (1.0 - target[i]) * l1y;
		if (dy) {
			/* PyTorch clamps the denominator at 1e-12 as well. */
			double den = fmax((double)y[i] * (1.0 - (double)y[i]), 1e-12);
			dy[i] = (float)(((double)y[i] - target[i]) / den) * inv;
		}
	}
	return s / (double)total;
}
