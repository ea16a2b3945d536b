/*
 * ConvTranspose2D's plain reference loops, NCHW: what the tests hold the
 * trainer's and inference's direct convolutions (dconv.h) and weight
 * gradients (convgrad.c) to. The geometry g describes the adjoint
 * convolution (from our output down to our input).
 */
#include "ops.h"

#include <string.h>

void ae_convt2d_forward_ref(float *y, const float *x, const float *w, const float *b, int n, int ic,
                            const ae_conv_geom *g)
{
	const int oc = g->c, H = g->h, W = g->w, K = g->k;
	for (int i = 0; i < n; i++)
		for (int o = 0; o < oc; o++)
			for (int j = 0; j < H * W; j++)
				y[((size_t)i * oc + o) * H * W + j] = b ? b[o] : 0.0f;
	for (int i = 0; i < n; i++)
		for (int c = 0; c < ic; c++)
			for (int iy = 0; iy < g->oh; iy++)
				for (int ix = 0; ix < g->ow; ix++) {
					float xv = x[(((size_t)i * ic + c) * g->oh + iy) * g->ow + ix];
					for (int o = 0; o < oc; o++)
						for (int ky = 0; ky < K; ky++)
							for (int kx = 0; kx < K; kx++) {
								int Y = iy * g->stride - g->pad + ky;
								int X = ix * g->stride - g->pad + kx;
								if (Y < 0 || Y >= H || X < 0 || X >= W) continue;
								y[(((size_t)i * oc + o) * H + Y) * W + X] +=
								        xv * w[((c * oc + o) * K + ky) * K + kx];
							}
				}
}

void ae_convt2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                             int ic, const ae_conv_geom *g)
{
	const int oc = g->c, H = g->h, W = g->w, K = g->k;
	if (db)
		for (int i = 0; i < n; i++)
			for (int o = 0; o < oc; o++)
				for (int j = 0; j < H * W; j++)
					db[o] += dy[((size_t)i * oc + o) * H * W + j];
	for (int i = 0; i < n; i++)
		for (int c = 0; c < ic; c++)
			for (int iy = 0; iy < g->oh; iy++)
				for (int ix = 0; ix < g->ow; ix++) {
					size_t xi = (((size_t)i * ic + c) * g->oh + iy) * g->ow + ix;
					double acc = 0.0;
					for (int o = 0; o < oc; o++)
						for (int ky = 0; ky < K; ky++)
							for (int kx = 0; kx < K; kx++) {
								int Y = iy * g->stride - g->pad + ky;
								int X = ix * g->stride - g->pad + kx;
								if (Y < 0 || Y >= H || X < 0 || X >= W) continue;
								size_t wi = ((size_t)(c * oc + o) * K + ky) * K + kx;
								float d = dy[(((size_t)i * oc + o) * H + Y) * W + X];
								dw[wi] += x[xi] * d;
								acc += (double)w[wi] * d;
							}
					if (dx) dx[xi] = (float)acc;
				}
}
