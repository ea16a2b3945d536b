/*
 * Conv2D forward and backward: im2col + one batched cblas_sgemm, and the
 * plain reference loops the tests hold it to.
 */
#include "ops.h"

#include <cblas.h>
#include <string.h>

void ae_conv2d_forward(float *y, float *col, float *t, const float *x, const float *w, const ae_epilogue *ep, int n,
                       int oc, const ae_conv_geom *g)
{
	const int kk = g->c * g->k * g->k;
	const int p = g->oh * g->ow, np = n * p;
	ae_im2col(col, x, n, g);
	float *out = ae_channel_major_dst(t, y, n);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, oc, np, kk, 1.0f, w, kk, col, np, 0.0f, out, np);
	ae_scatter_channels(y, out, n, oc, p, ep);
}

void ae_conv2d_backward(float *dx, float *dw, float *db, float *col, float *t, const float *dy, const float *x,
                        const float *w, int n, int oc, const ae_conv_geom *g)
{
	const int kk = g->c * g->k * g->k;
	const int p = g->oh * g->ow, np = n * p;
	const float *dyc = ae_gather_channels(t, dy, n, oc, p);
	if (db)
		for (int o = 0; o < oc; o++) {
			db[o] += (float)ae_sum_f32(dyc + (size_t)o * np, (size_t)np);
		}
	ae_im2col(col, x, n, g);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, oc, kk, np, 1.0f, dyc, np, col, np, 1.0f, dw, kk);
	if (dx) {
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kk, np, oc, 1.0f, w, kk, dyc, np, 0.0f, col, np);
		ae_col2im(dx, col, n, g);
	}
}

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
