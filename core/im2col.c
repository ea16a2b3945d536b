/*
 * Lowering of convolutions to matrix products, batched: n images become one
 * (c*k*k, n*oh*ow) column matrix, so they take ONE sgemm rather than n small
 * ones (core/train.c picks n: as many as keep the matrix under 1 MB). The
 * GEMM result comes out channel-major (ch, n*p); the
 * scatter/gather helpers move between that and NCHW, applying the fused
 * epilogue (bias, activation, folded batch norm) in the same pass.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AE_GATHER2_AVX512 1

/* d[ox] = xr[2 ox + off] for ox from ox0 while a step's 32 loaded floats
 * lie inside the row (w wide) and before ox1; returns the first ox not
 * done. A stride-2 lowering's columns were a tenth of a training step at
 * 128x128, one scalar load and store per value. */
__attribute__((target("avx512f"))) static int gather2_avx512(float *d, const float *xr, int ox0, int ox1, int off,
                                                             int w)
{
	const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
	int ox = ox0;
	for (; ox + 16 <= ox1 && 2 * ox + off + 32 <= w; ox += 16) {
		const float *src = xr + 2 * ox + off;
		_mm512_storeu_ps(d + ox, _mm512_permutex2var_ps(_mm512_loadu_ps(src), even, _mm512_loadu_ps(src + 16)));
	}
	return ox;
}
#endif

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

void ae_im2col(float *col, const float *x, int n, const ae_conv_geom *g)
{
	const int k = g->k, s = g->stride, pad = g->pad;
	const int oh = g->oh, ow = g->ow, h = g->h, w = g->w;
	const size_t p = (size_t)oh * ow, np = (size_t)n * p;
	const int wide = s == 2 && ae_cpu_simd() >= AE_SIMD_AVX512;
	for (int c = 0; c < g->c; c++)
		for (int ky = 0; ky < k; ky++)
			for (int kx = 0; kx < k; kx++) {
				float *row = col + ((size_t)(c * k + ky) * k + kx) * np;
				/* Output columns whose input column ox*s - pad + kx is inside. */
				int ox0 = pad > kx ? (pad - kx + s - 1) / s : 0;
				int ox1 = (w + pad - kx + s - 1) / s;
				if (ox1 > ow) ox1 = ow;
				if (ox1 < 0) ox1 = 0;
				if (ox0 > ox1) ox0 = ox1;
				for (int img = 0; img < n; img++) {
					const float *xc = x + ((size_t)img * g->c + c) * h * w;
					float *dst = row + (size_t)img * p;
					for (int oy = 0; oy < oh; oy++) {
						int iy = oy * s - pad + ky;
						float *d = dst + (size_t)oy * ow;
						if (iy < 0 || iy >= h) {
							memset(d, 0, sizeof(float) * (size_t)ow);
							continue;
						}
						/* Branch-free inside [ox0, ox1): rows are 7-28 wide. */
						const float *xr = xc + (size_t)iy * w;
						const int off = kx - pad;
						int ox = 0;
						for (; ox < ox0; ox++)
							d[ox] = 0.0f;
#ifdef AE_GATHER2_AVX512
						if (wide) ox = gather2_avx512(d, xr, ox0, ox1, off, w);
#endif
						if (s == 1)
							for (; ox < ox1; ox++)
								d[ox] = xr[ox + off];
						else
							for (; ox < ox1; ox++)
								d[ox] = xr[ox * s + off];
						for (; ox < ow; ox++)
							d[ox] = 0.0f;
					}
				}
			}
}

void ae_col2im(float *x, const float *col, int n, const ae_conv_geom *g)
{
	const int k = g->k, s = g->stride, pad = g->pad;
	const int oh = g->oh, ow = g->ow, h = g->h, w = g->w;
	const size_t p = (size_t)oh * ow, np = (size_t)n * p;
	memset(x, 0, sizeof(float) * (size_t)n * g->c * h * w);
	for (int c = 0; c < g->c; c++)
		for (int ky = 0; ky < k; ky++)
			for (int kx = 0; kx < k; kx++) {
				const float *row = col + ((size_t)(c * k + ky) * k + kx) * np;
				for (int img = 0; img < n; img++) {
					float *xc = x + ((size_t)img * g->c + c) * h * w;
					const float *src = row + (size_t)img * p;
					for (int oy = 0; oy < oh; oy++) {
						int iy = oy * s - pad + ky;
						if (iy < 0 || iy >= h) continue;
						const float *sr = src + (size_t)oy * ow;
						float *xr = xc + (size_t)iy * w;
						for (int ox = 0; ox < ow; ox++) {
							int ix = ox * s - pad + kx;
							if (ix >= 0 && ix < w) xr[ix] += sr[ox];
						}
					}
				}
			}
}

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
void ae_epilogue_row(float *dst, const float *src, size_t p, int c, const ae_epilogue *ep)
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

void ae_scatter_channels(float *y, const float *t, int n, int ch, int p, const ae_epilogue *ep)
{
	if (t == y && !ep) return; /* in place with nothing to apply */
	const size_t np = (size_t)n * p;
	for (int c = 0; c < ch; c++)
		for (int img = 0; img < n; img++)
			ae_epilogue_row(y + ((size_t)img * ch + c) * p, t + c * np + (size_t)img * p, (size_t)p, c, ep);
}

const float *ae_gather_channels(float *t, const float *y, int n, int ch, int p)
{
	if (n == 1) return y;
	const size_t np = (size_t)n * p;
	for (int img = 0; img < n; img++)
		for (int c = 0; c < ch; c++)
			memcpy(t + c * np + (size_t)img * p, y + ((size_t)img * ch + c) * p, sizeof(float) * (size_t)p);
	return t;
}

void ae_epilogue_apply(float *y, int n, int ch, int p, const ae_epilogue *ep)
{
	for (int img = 0; img < n; img++)
		for (int c = 0; c < ch; c++) {
			float *r = y + ((size_t)img * ch + c) * p;
			ae_epilogue_row(r, r, (size_t)p, c, ep);
		}
}
