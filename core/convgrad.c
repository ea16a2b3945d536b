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

/* acc (ct columns of na blocks of 16 a-values, at wt + c * a_stride; the
 * last block masked by m) += sum over npx pixels of r[px] (na * 16 of a)
 * times q[px][0..ct). na and ct are constants where this is inlined, so acc
 * lives in registers. A pixel costs na loads of r and ct broadcasts of q
 * for na * ct FMAs: one block of 16 columns needed a load for every FMA and
 * ran at 62-67 GFLOP/s on the 64-channel layers, where 4 x 6 blocks need 10
 * loads for 24 FMAs. Each accumulator is a chain of FMAs 4 cycles deep;
 * below 8 chains too few keep both FMA units busy, so even and odd pixels
 * go to two sets, added at the end (the decoder's 3-channel output layer:
 * 0.46 -> 0.32 ms an image). */
AVX512 static inline __attribute__((always_inline)) void dw_tile(float *wt, size_t a_stride, const float *r,
                                                                 size_t r_step, const float *q, size_t q_step, int npx,
                                                                 __mmask16 m, const int na, const int ct)
{
	__m512 acc[4][16], odd[4][8];
	int px = 0;
#pragma GCC unroll 4
	for (int j = 0; j < na; j++)
#pragma GCC unroll 16
		for (int c = 0; c < ct; c++)
			acc[j][c] = _mm512_maskz_loadu_ps(j == na - 1 ? m : 0xFFFF, wt + (size_t)c * a_stride + 16 * j);
	if (na * ct < 8) {
#pragma GCC unroll 4
		for (int j = 0; j < na; j++)
#pragma GCC unroll 8
			for (int c = 0; c < ct; c++)
				odd[j][c] = _mm512_setzero_ps();
		for (; px + 2 <= npx; px += 2, r += 2 * r_step, q += 2 * q_step) {
#pragma GCC unroll 4
			for (int j = 0; j < na; j++) {
				__mmask16 mj = j == na - 1 ? m : 0xFFFF;
				__m512 r0 = _mm512_maskz_loadu_ps(mj, r + 16 * j),
				       r1 = _mm512_maskz_loadu_ps(mj, r + r_step + 16 * j);
#pragma GCC unroll 8
				for (int c = 0; c < ct; c++) {
					acc[j][c] = _mm512_fmadd_ps(r0, _mm512_set1_ps(q[c]), acc[j][c]);
					odd[j][c] = _mm512_fmadd_ps(r1, _mm512_set1_ps(q[q_step + c]), odd[j][c]);
				}
			}
		}
#pragma GCC unroll 4
		for (int j = 0; j < na; j++)
#pragma GCC unroll 8
			for (int c = 0; c < ct; c++)
				acc[j][c] = _mm512_add_ps(acc[j][c], odd[j][c]);
	}
	for (; px < npx; px++, r += r_step, q += q_step) {
		__m512 rv[4];
#pragma GCC unroll 4
		for (int j = 0; j < na; j++)
			rv[j] = _mm512_maskz_loadu_ps(j == na - 1 ? m : 0xFFFF, r + 16 * j);
#pragma GCC unroll 16
		for (int c = 0; c < ct; c++) {
			__m512 qc = _mm512_set1_ps(q[c]);
#pragma GCC unroll 4
			for (int j = 0; j < na; j++)
				acc[j][c] = _mm512_fmadd_ps(rv[j], qc, acc[j][c]);
		}
	}
#pragma GCC unroll 4
	for (int j = 0; j < na; j++)
#pragma GCC unroll 16
		for (int c = 0; c < ct; c++)
			_mm512_mask_storeu_ps(wt + (size_t)c * a_stride + 16 * j, j == na - 1 ? m : 0xFFFF, acc[j][c]);
}

/* The widest tile of na blocks of a: 24 accumulators, or 16 in one block. */
static int dw_columns(int na)
{
	return na == 1 ? 16 : 24 / na;
}

#define DW_CASE(na, ct) \
	case ct: dw_tile(wt, a_stride, r, r_step, q, q_step, npx, m, na, ct); break

/* One instance per shape, each with its accumulators in registers. */
AVX512 static void dw_tile_1(float *wt, size_t a_stride, const float *r, size_t r_step, const float *q, size_t q_step,
                             int npx, __mmask16 m, int ct)
{
	switch (ct) {
		DW_CASE(1, 1);
		DW_CASE(1, 2);
		DW_CASE(1, 3);
		DW_CASE(1, 4);
		DW_CASE(1, 5);
		DW_CASE(1, 6);
		DW_CASE(1, 7);
		DW_CASE(1, 8);
		DW_CASE(1, 9);
		DW_CASE(1, 10);
		DW_CASE(1, 11);
		DW_CASE(1, 12);
		DW_CASE(1, 13);
		DW_CASE(1, 14);
		DW_CASE(1, 15);
		DW_CASE(1, 16);
	}
}

AVX512 static void dw_tile_2(float *wt, size_t a_stride, const float *r, size_t r_step, const float *q, size_t q_step,
                             int npx, __mmask16 m, int ct)
{
	switch (ct) {
		DW_CASE(2, 1);
		DW_CASE(2, 2);
		DW_CASE(2, 3);
		DW_CASE(2, 4);
		DW_CASE(2, 5);
		DW_CASE(2, 6);
		DW_CASE(2, 7);
		DW_CASE(2, 8);
		DW_CASE(2, 9);
		DW_CASE(2, 10);
		DW_CASE(2, 11);
		DW_CASE(2, 12);
	}
}

AVX512 static void dw_tile_4(float *wt, size_t a_stride, const float *r, size_t r_step, const float *q, size_t q_step,
                             int npx, __mmask16 m, int ct)
{
	switch (ct) {
		DW_CASE(4, 1);
		DW_CASE(4, 2);
		DW_CASE(4, 3);
		DW_CASE(4, 4);
		DW_CASE(4, 5);
		DW_CASE(4, 6);
	}
}

/* w (c, a) += sum over npx pixels of r[px] (a values) times q[px] (C
 * values, px at q + px * q_step), in tiles of up to four blocks of 16 of
 * a by as many of C as the accumulators allow. */
AVX512 static void dw_pixels(float *w, int a, const float *r, const float *q, size_t q_step, int C, int npx)
{
	for (int a0 = 0, na; a0 < a; a0 += 16 * na) {
		const int left = a - a0;
		na = left >= 64 ? 4 : left > 16 ? 2 : 1;
		const int last = (left < 16 * na ? left : 16 * na) - 16 * (na - 1);
		const __mmask16 m = last == 16 ? 0xFFFF : (__mmask16)((1u << last) - 1);
		const int blocks = (C + dw_columns(na) - 1) / dw_columns(na);
		for (int c0 = 0, k = 0; k < blocks; k++) {
			/* C split evenly: 32 is 6+6+5+5+5+5, not 6 x 5 + 2 */
			const int ct = (C - c0 + blocks - k - 1) / (blocks - k);
			float *wt = w + (size_t)c0 * a + a0;
			if (na == 4)
				dw_tile_4(wt, (size_t)a, r + a0, (size_t)a, q + c0, q_step, npx, m, ct);
			else if (na == 2)
				dw_tile_2(wt, (size_t)a, r + a0, (size_t)a, q + c0, q_step, npx, m, ct);
			else
				dw_tile_1(wt, (size_t)a, r + a0, (size_t)a, q + c0, q_step, npx, m, ct);
			c0 += ct;
		}
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
					dw_pixels(w0, a, r0, q0, (size_t)s * C, C, x1 - x0);
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
