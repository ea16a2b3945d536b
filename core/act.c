/*
 * Elementwise activations. Backward passes use the forward output, so the
 * trainer keeps one buffer per layer and never the pre-activation.
 */
#include "ops.h"

#include <math.h>

void ae_relu_forward(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void ae_relu_backward(float *dx, const float *dy, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* Written branch-free so the compiler vectorises it: the sign of a
 * pre-activation is a coin toss, and a branch per value mispredicts half
 * the time. In-place use (y == x, dx == dy) is fine: each value is read
 * before it is written. */
void ae_lrelu_forward(float *y, const float *x, float slope, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float v = x[i];
		y[i] = v * (v > 0.0f ? 1.0f : slope);
	}
}

void ae_lrelu_backward(float *dx, const float *dy, const float *y, float slope, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dx[i] = dy[i] * (y[i] > 0.0f ? 1.0f : slope);
}

void ae_sigmoid_forward(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = 1.0f / (1.0f + expf(-x[i]));
}

void ae_sigmoid_backward(float *dx, const float *dy, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}
