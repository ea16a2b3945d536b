/*
 * Conv2D's plain reference loops, NCHW: what the tests hold the trainer's
 * and inference's direct convolutions (dconv.h) and weight gradients
 * (convgrad.c) to.
 */
#include "ops.h"

#include <string.h>

void ae_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b, int n, int oc,
                           const ae_conv_geom *g)
{
	const int C = g->c, H = g->h, W = g->w, K = g->k;
	for (int i = 0; i < n; i++)
		for (int o = 0; o < oc; o++)
			for (int oy = 0; oy < g->oh; oy++)
				for (int ox = 0; ox < g->ow; ox++) {
					double s = b ? b[o] : 0.0;
					for (int c = 0; c < C; c++)
						for (int ky = 0; ky < K; ky++)
							for (int kx = 0; kx < K; kx++) {
								int iy = oy * g->stride - g->pad + ky;
								int ix = ox * g->stride - g->pad + kx;
								if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
								s += (double)w[((o * C + c) * K + ky) * K + kx] *
								     x[(((size_t)i * C + c) * H + iy) * W + ix];
							}
					y[(((size_t)i * oc + o) * g->oh + oy) * g->ow + ox] = (float)s;
				}
}

void ae_conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                            int oc, const ae_conv_geom *g)
{
	const int C = g->c, H = g->h, W = g->w, K = g->k;
	if (dx) memset(dx, 0, sizeof(float) * (size_t)n * C * H * W);
	for (int i = 0; i < n; i++)
		for (int o = 0; o < oc; o++)
			for (int oy = 0; oy < g->oh; oy++)
				for (int ox = 0; ox < g->ow; ox++) {
					float d = dy[(((size_t)i * oc + o) * g->oh + oy) * g->ow + ox];
					if (db) db[o] += d;
					for (int c = 0; c < C; c++)
						for (int ky = 0; ky < K; ky++)
							for (int kx = 0; kx < K; kx++) {
								int iy = oy * g->stride - g->pad + ky;
								int ix = ox * g->stride - g->pad + kx;
								if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
								size_t xi = (((size_t)i * C + c) * H + iy) * W + ix;
								size_t wi = ((size_t)(o * C + c) * K + ky) * K + kx;
								dw[wi] += d * x[xi];
								if (dx) dx[xi] += d * w[wi];
							}
				}
}
