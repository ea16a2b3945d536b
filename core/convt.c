/*
 * ConvTranspose2D forward and backward. A transposed convolution is the
 * adjoint of a convolution, so it reuses the same lowering run backwards:
 * forward = sgemm then col2im, backward = im2col then sgemm. The geometry g
 * describes that adjoint convolution (from our output down to our input).
 */
#include "ops.h"

#include <cblas.h>
#include <string.h>

void ae_convt2d_forward(float *y, float *col, float *t, const float *x, const float *w, const ae_epilogue *ep, int n,
                        int ic, const ae_conv_geom *g)
{
	const int oc = g->c, okk = oc * g->k * g->k;
	const int p = g->oh * g->ow, np = n * p;
	const float *xc = ae_gather_channels(t, x, n, ic, p);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, okk, np, ic, 1.0f, w, okk, xc, np, 0.0f, col, np);
	ae_col2im(y, col, n, g);
	ae_epilogue_apply(y, n, oc, g->h * g->w, ep);
}

void ae_convt2d_backward(float *dx, float *dw, float *db, float *col, float *t, const float *dy, const float *x,
                         const float *w, int n, int ic, const ae_conv_geom *g)
{
	const int oc = g->c, okk = oc * g->k * g->k;
	const int p = g->oh * g->ow, np = n * p;
	const int po = g->h * g->w;
	if (db)
		for (int i = 0; i < n; i++)
			for (int o = 0; o < oc; o++) {
				db[o] += (float)ae_sum_f32(dy + ((size_t)i * oc + o) * po, (size_t)po);
			}
	ae_im2col(col, dy, n, g);
	const float *xc = ae_gather_channels(t, x, n, ic, p);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ic, okk, np, 1.0f, xc, np, col, np, 1.0f, dw, okk);
	if (dx) {
		float *out = ae_channel_major_dst(t, dx, n);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ic, np, okk, 1.0f, w, okk, col, np, 0.0f, out,
		            np);
		ae_scatter_channels(dx, out, n, ic, p, NULL);
	}
}

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
