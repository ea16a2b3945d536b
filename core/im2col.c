/*
 * Convolution geometry, and the lowering of a convolution on channels-last
 * images to a matrix product: per output pixel, a row of its k*k taps of
 * c channels, each a contiguous copy (the weight gradient's GEMM path,
 * core/convgrad.c).
 */
#include "ops.h"

#include <string.h>

int ae_conv_geom_init(ae_conv_geom *g, int c, int h, int w, int k, int stride, int pad)
{
	g->c = c;
	g->h = h;
	g->w = w;
	g->k = k;
	g->stride = stride;
	g->pad = pad;
	if (c <= 0 || h <= 0 || w <= 0 || k <= 0 || stride <= 0 || pad < 0) return -1;
	g->oh = (h + 2 * pad - k) / stride + 1;
	g->ow = (w + 2 * pad - k) / stride + 1;
	return (h + 2 * pad < k || w + 2 * pad < k || g->oh <= 0 || g->ow <= 0) ? -1 : 0;
}

void ae_im2col_nhwc(float *col, const float *x, int n, const ae_conv_geom *g)
{
	const int C = g->c, K = g->k;
	const size_t cb = (size_t)C * sizeof(float);
	for (int i = 0; i < n; i++) {
		const float *xi = x + (size_t)i * g->h * g->w * C;
		for (int oy = 0; oy < g->oh; oy++)
			for (int ox = 0; ox < g->ow; ox++)
				for (int ky = 0; ky < K; ky++) {
					const int iy = oy * g->stride - g->pad + ky;
					for (int kx = 0; kx < K; kx++, col += C) {
						const int ix = ox * g->stride - g->pad + kx;
						if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
							memset(col, 0, cb);
						else
							memcpy(col, xi + ((size_t)iy * g->w + ix) * C, cb);
					}
				}
	}
}
