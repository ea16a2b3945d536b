/*
 * Elementwise activations. Backward passes use the forward output, so the
 * trainer keeps one buffer per layer and never the pre-activation.
 */
#include "ae/ops.h"

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

void ae_lrelu_forward(float *y, const float *x, float slope, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

void ae_lrelu_backward(float *dx, const float *dy, const float *y, float slope, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dx[i] = y[i] > 0.0f ? dy[i] : dy[i] * slope;
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
