/*
 * The epilogue (bias, activation, folded batch norm) in plain loops: for
 * dense layers' outputs, and NCHW for the tests' reference convolutions.
 * The direct convolutions apply the same operations in registers
 * (dconv.c).
 */
#include "ops.h"

#include <math.h>

static inline float act_apply(float v, int act, float slope)
{
	switch (act) {
	case AE_ACT_RELU: return v > 0.0f ? v : 0.0f;
	case AE_ACT_LRELU: return v > 0.0f ? v : v * slope;
	case AE_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
	default: return v;
	}
}

/* One channel's run of p values through the epilogue, src -> dst. */
static void epilogue_row(float *dst, const float *src, size_t p, int c, const ae_epilogue *ep)
{
	const float b = ep && ep->bias ? ep->bias[c] : 0.0f;
	const int act = ep ? ep->act : AE_ACT_NONE;
	const float slope = ep ? ep->slope : 0.0f;
	const float sc = ep && ep->scale ? ep->scale[c] : 1.0f;
	const float sh = ep && ep->shift ? ep->shift[c] : 0.0f;
	if (act == AE_ACT_LRELU) {
		for (size_t i = 0; i < p; i++) {
			float v = src[i] + b;
			v = v > 0.0f ? v : v * slope;
			dst[i] = v * sc + sh;
		}
	} else if (act == AE_ACT_NONE && sc == 1.0f && sh == 0.0f) {
		for (size_t i = 0; i < p; i++)
			dst[i] = src[i] + b;
	} else {
		for (size_t i = 0; i < p; i++)
			dst[i] = act_apply(src[i] + b, act, slope) * sc + sh;
	}
}

/* Pass by pass, so each loop is a plain vectorisable one. */
void ae_epilogue_units(float *y, int units, const ae_epilogue *ep)
{
	if (!ep) return;
	if (ep->bias)
		for (int u = 0; u < units; u++)
			y[u] += ep->bias[u];
	if (ep->act == AE_ACT_LRELU)
		for (int u = 0; u < units; u++)
			y[u] = y[u] > 0.0f ? y[u] : y[u] * ep->slope;
	else if (ep->act != AE_ACT_NONE)
		for (int u = 0; u < units; u++)
			y[u] = act_apply(y[u], ep->act, ep->slope);
	if (ep->scale)
		for (int u = 0; u < units; u++)
			y[u] *= ep->scale[u];
	if (ep->shift)
		for (int u = 0; u < units; u++)
			y[u] += ep->shift[u];
}

void ae_epilogue_apply(float *y, int n, int ch, int p, const ae_epilogue *ep)
{
	for (int img = 0; img < n; img++)
		for (int c = 0; c < ch; c++) {
			float *r = y + ((size_t)img * ch + c) * p;
			epilogue_row(r, r, (size_t)p, c, ep);
		}
}
