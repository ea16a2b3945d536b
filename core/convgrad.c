/*
 * Parameter gradients of convolutions on channels-last (NHWC) images, as
 * the trainer keeps them. A weight gradient is one GEMM over the pixels:
 * the patches of one operand (a row of k*k taps x c channels per pixel,
 * each tap a contiguous copy of c floats) against the other operand's
 * rows. Input gradients are not here: they are direct convolutions with
 * the same weights (dconv.h), see core/train.c.
 */
#include "ops.h"

#include <cblas.h>
#include <string.h>

/* dw (a, c, tap) += wt (a, tap, c), the GEMM's layout into PyTorch's. */
static void add_from_a_tap_c(float *dw, const float *wt, int a, int C, int kk)
{
	for (int o = 0; o < a; o++)
		for (int c = 0; c < C; c++) {
			float *d = dw + ((size_t)o * C + c) * kk;
			const float *s = wt + (size_t)o * kk * C + c;
			for (int t = 0; t < kk; t++)
				d[t] += s[(size_t)t * C];
		}
}

/* dw (a, c, tap) += wt (tap, c, a), the direct kernel's layout. */
static void add_from_tap_c_a(float *dw, const float *wt, int a, int C, int kk)
{
	for (int o = 0; o < a; o++)
		for (int c = 0; c < C; c++) {
			float *d = dw + ((size_t)o * C + c) * kk;
			for (int t = 0; t < kk; t++)
				d[t] += wt[((size_t)t * C + c) * a + o];
		}
}

static void weight_grad_gemm(float *dw, float *wt, float *col, const float *src, const float *rows, int n, int a,
                             const ae_conv_geom *g)
{
	const int C = g->c, kk = g->k * g->k, width = kk * C;
	const int np = n * g->oh * g->ow;
	ae_im2col_nhwc(col, src, n, g);
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a, width, np, 1.0f, rows, a, col, width, 0.0f, wt, width);
	add_from_a_tap_c(dw, wt, a, C, kk);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_DIRECT 1
#define AVX512      __attribute__((target("avx512f")))

/* Input columns [*x0, *x1) of a row that tap kx reaches inside the image. */
static void inside(const ae_conv_geom *g, int kx, int *x0, int *x1)
{
	const int s = g->stride, pad = g->pad;
	int lo = pad > kx ? (pad - kx + s - 1) / s : 0, hi = (g->w + pad - kx + s - 1) / s;
	if (hi > g->ow) hi = g->ow;
	if (lo > hi) lo = hi;
	*x0 = lo, *x1 = hi;
}

/* acc (ct columns of 16 a-values, at wt + c * a_stride) += sum over npx
 * pixels of r[px] (16 of a, masked) times q[px][0..ct). ct is a constant
 * where this is inlined, so acc lives in registers. Each accumulator is a
 * chain of FMAs 4 cycles deep; below 8 columns, too few chains keep both
 * FMA units busy, so even and odd pixels go to two sets, added at the end
 * (the decoder's 3-channel output layer: 0.46 -> 0.32 ms an image). */
AVX512 static inline __attribute__((always_inline)) void dw_tile(float *wt, size_t a_stride, const float *r,
                                                                 size_t r_step, const float *q, size_t q_step, int npx,
                                                                 __mmask16 m, const int ct)
{
	__m512 acc[16], odd[8];
	int px = 0;
#pragma GCC unroll 16
	for (int c = 0; c < ct; c++)
		acc[c] = _mm512_maskz_loadu_ps(m, wt + (size_t)c * a_stride);
	if (ct <= 8) {
#pragma GCC unroll 8
		for (int c = 0; c < ct; c++)
			odd[c] = _mm512_setzero_ps();
		for (; px + 2 <= npx; px += 2, r += 2 * r_step, q += 2 * q_step) {
			__m512 r0 = _mm512_maskz_loadu_ps(m, r), r1 = _mm512_maskz_loadu_ps(m, r + r_step);
#pragma GCC unroll 8
			for (int c = 0; c < ct; c++) {
				acc[c] = _mm512_fmadd_ps(r0, _mm512_set1_ps(q[c]), acc[c]);
				odd[c] = _mm512_fmadd_ps(r1, _mm512_set1_ps(q[q_step + c]), odd[c]);
			}
		}
#pragma GCC unroll 8
		for (int c = 0; c < ct; c++)
			acc[c] = _mm512_add_ps(acc[c], odd[c]);
	}
	for (; px < npx; px++, r += r_step, q += q_step) {
		__m512 rv = _mm512_maskz_loadu_ps(m, r);
#pragma GCC unroll 16
		for (int c = 0; c < ct; c++)
			acc[c] = _mm512_fmadd_ps(rv, _mm512_set1_ps(q[c]), acc[c]);
	}
#pragma GCC unroll 16
	for (int c = 0; c < ct; c++)
		_mm512_mask_storeu_ps(wt + (size_t)c * a_stride, m, acc[c]);
}

AVX512 static void dw_tile_any(float *wt, size_t a_stride, const float *r, size_t r_step, const float *q, size_t q_step,
                               int npx, __mmask16 m, int ct)
{
	/* one instance per width, each with its accumulators in registers */
	switch (ct) {
	case 1: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 1); break;
	case 2: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 2); break;
	case 3: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 3); break;
	case 4: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 4); break;
	case 5: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 5); break;
	case 6: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 6); break;
	case 7: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 7); break;
	case 8: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 8); break;
	case 9: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 9); break;
	case 10: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 10); break;
	case 11: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 11); break;
	case 12: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 12); break;
	case 13: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 13); break;
	case 14: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 14); break;
	case 15: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 15); break;
	default: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, 16); break;
	}
}

/* wt (tap, c, a) += each pixel's rows times its patch, read from src in
 * place row by row: a tap's inside pixels of an output row read src at a
 * constant step, and taps on padding add nothing, so they are skipped. */
AVX512 static void weight_grad_direct(float *wt, const float *src, const float *rows, int n, int a,
                                      const ae_conv_geom *g)
{
	const int C = g->c, K = g->k, s = g->stride, pad = g->pad;
	const size_t P = (size_t)g->oh * g->ow, img = (size_t)g->h * g->w * C;
	for (int i = 0; i < n; i++)
		for (int oy = 0; oy < g->oh; oy++)
			for (int ky = 0; ky < K; ky++) {
				const int iy = oy * s - pad + ky;
				if (iy < 0 || iy >= g->h) continue;
				for (int kx = 0; kx < K; kx++) {
					int x0, x1;
					inside(g, kx, &x0, &x1);
					if (x0 >= x1) continue;
					const float *r0 = rows + ((size_t)i * P + (size_t)oy * g->ow + x0) * a;
					const float *q0 = src + i * img +
					                  ((size_t)iy * g->w + (size_t)x0 * s - pad + kx) * C;
					float *w0 = wt + (size_t)(ky * K + kx) * C * a;
					for (int a0 = 0; a0 < a; a0 += 16) {
						__mmask16 m = a - a0 >= 16 ? 0xFFFF : (__mmask16)((1u << (a - a0)) - 1);
						for (int c0 = 0; c0 < C; c0 += 16) {
							int ct = C - c0 < 16 ? C - c0 : 16;
							dw_tile_any(w0 + (size_t)c0 * a + a0, (size_t)a, r0 + a0,
							            (size_t)a, q0 + c0, (size_t)s * C, x1 - x0, m, ct);
						}
					}
				}
			}
}
#endif

void ae_conv_weight_grad_simd(float *dw, float *wt, float *col, const float *src, const float *rows, int n, int a,
                              const ae_conv_geom *g, int simd)
{
#ifdef HAVE_DIRECT
	if (simd >= AE_SIMD_AVX512) {
		const size_t width = (size_t)g->k * g->k * g->c;
		memset(wt, 0, width * a * sizeof(float));
		weight_grad_direct(wt, src, rows, n, a, g);
		add_from_tap_c_a(dw, wt, a, g->c, g->k * g->k);
		return;
	}
#endif
	(void)simd;
	weight_grad_gemm(dw, wt, col, src, rows, n, a, g);
}

int ae_conv_weight_grad_col(int simd)
{
#ifdef HAVE_DIRECT
	if (simd >= AE_SIMD_AVX512) return 0;
#endif
	(void)simd;
	return 1;
}

void ae_conv_weight_grad(float *dw, float *wt, float *col, const float *src, const float *rows, int n, int a,
                         const ae_conv_geom *g)
{
	ae_conv_weight_grad_simd(dw, wt, col, src, rows, n, a, g, ae_cpu_simd());
}

void ae_bias_grad_nhwc(float *db, const float *dy, size_t rows, int c, double *acc)
{
	memset(acc, 0, (size_t)c * sizeof *acc);
	for (size_t r = 0; r < rows; r++) {
		const float *d = dy + r * c;
		for (int ch = 0; ch < c; ch++)
			acc[ch] += d[ch];
	}
	for (int ch = 0; ch < c; ch++)
		db[ch] += (float)acc[ch];
}
