/*
 * Direct convolution on channels-last images (see dconv.h): compiling a
 * layer into tap groups with packed weights, and the tile kernels that run
 * them. The portable kernels are plain loops the compiler vectorises as it
 * can; the AVX2+FMA ones keep a 6x16 tile of outputs in 12 registers while
 * streaming the input channels, which is what lets a small layer run near
 * the FMA units' rate instead of the memory system's.
 */
#include "dconv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AE_X86 1
#endif

#define NR        6  /* output pixels per wide tile */
#define NRZ       14 /* output pixels per AVX-512 wide tile */
#define NR_NARROW 4  /* output pixels per narrow (dot product) tile */
#define NRN       8  /* output pixels per AVX-512 narrow tile */
/* Output channels up to which an AVX-512 narrow tile of NRN consecutive
 * pixels is stored as whole vectors: its sums v[o * NRN + j] are a
 * permutation of the out[j * oc + o] it writes, within two vectors. One
 * store a vector instead of one a value. */
#define NARROW_STORE 4
#define BAND_ROWS    8 /* output rows per band of a transposed convolution */
#define MAX_K        AE_DCONV_MAX_K

/* ---- compiling a layer ---- */

/* Input offset (floats from the image's start) that output pixel (oy, ox)
 * reads through tap (ky, kx), or -1 where the tap falls on padding. */
static int32_t tap_offset(const ae_dconv_shape *s, int oy, int ox, int ky, int kx)
{
	int iy, ix;
	if (s->transposed) {
		int ny = oy + s->pad - ky, nx = ox + s->pad - kx;
		if (ny < 0 || nx < 0 || ny % s->stride || nx % s->stride) return -1;
		iy = ny / s->stride, ix = nx / s->stride;
	} else {
		iy = oy * s->stride - s->pad + ky, ix = ox * s->stride - s->pad + kx;
	}
	if (iy < 0 || ix < 0 || iy >= s->ih || ix >= s->iw) return -1;
	return (int32_t)(((size_t)iy * s->iw + ix) * s->ic);
}

float ae_dconv_weight_at(const ae_dconv_shape *s, const float *w, int o, int c, int ky, int kx)
{
	size_t kk = (size_t)ky * s->k + kx;
	if (s->transposed) return w[((size_t)c * s->oc + o) * s->k * s->k + kk];
	return w[((size_t)o * s->ic + c) * s->k * s->k + kk];
}

/* Group g's phase: which taps and which output pixels belong to it. A
 * convolution has one group holding every tap and pixel. */
static int in_phase(const ae_dconv_shape *s, int g, int y, int x)
{
	if (!s->transposed) return 1;
	int a = g / s->stride, b = g % s->stride;
	return (y + s->pad) % s->stride == a && (x + s->pad) % s->stride == b;
}

int ae_dconv_group_taps(const ae_dconv_shape *s, int g, int *ty, int *tx)
{
	int n = 0;
	for (int ky = 0; ky < s->k; ky++)
		for (int kx = 0; kx < s->k; kx++) {
			/* tap (ky, kx) reaches output y only when y + pad = ky (mod s) */
			if (s->transposed && (ky % s->stride != g / s->stride || kx % s->stride != g % s->stride))
				continue;
			ty[n] = ky, tx[n] = kx, n++;
		}
	return n;
}

static int block_width(int ocp, int o0)
{
	return ocp - o0 >= 16 ? 16 : 8;
}

/* Wide layout per group: for each block of 16 (or a last 8) output
 * channels, [tap][input channel][channel in block], zero past oc.
 * Narrow layout: [output channel][tap][input channel]. */
static void pack_group(float *wp, const ae_dconv *d, const float *w, const int *ty, const int *tx, int nt)
{
	const ae_dconv_shape *s = &d->s;
	if (d->narrow) {
		for (int o = 0; o < s->oc; o++)
			for (int t = 0; t < nt; t++)
				for (int c = 0; c < s->ic; c++)
					*wp++ = ae_dconv_weight_at(s, w, o, c, ty[t], tx[t]);
		return;
	}
	for (int o0 = 0; o0 < d->ocp; o0 += block_width(d->ocp, o0)) {
		int bw = block_width(d->ocp, o0);
		for (int t = 0; t < nt; t++)
			for (int c = 0; c < s->ic; c++)
				for (int j = 0; j < bw; j++)
					*wp++ = o0 + j < s->oc ? ae_dconv_weight_at(s, w, o0 + j, c, ty[t], tx[t])
					                       : 0.0f;
	}
}

static void copy_epilogue(ae_dconv *d, const ae_epilogue *ep)
{
	for (int o = 0; o < d->ocp; o++) {
		int in = o < d->s.oc;
		d->bias[o] = in && ep && ep->bias ? ep->bias[o] : 0.0f;
		d->scale[o] = in && ep && ep->scale ? ep->scale[o] : 1.0f;
		d->shift[o] = in && ep && ep->shift ? ep->shift[o] : 0.0f;
	}
	d->act = ep ? ep->act : AE_ACT_NONE;
	d->slope = ep ? ep->slope : 0.0f;
}

static int cpu_has_avx2(void)
{
#if defined(AE_X86) && (defined(__GNUC__) || defined(__clang__))
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
	return 0;
#endif
}

/* The compiler's check asks the OS too (XGETBV) before it says AVX-512. */
int ae_cpu_simd(void)
{
	if (!cpu_has_avx2()) return AE_SIMD_NONE;
#if defined(AE_X86) && (defined(__GNUC__) || defined(__clang__))
	if (__builtin_cpu_supports("avx512f")) return AE_SIMD_AVX512;
#endif
	return AE_SIMD_AVX2;
}

static int reads_padding(const int32_t *off, int nt)
{
	for (int t = 0; t < nt; t++)
		if (off[t] < 0) return 1;
	return 0;
}

static int reads_at_delta(const int32_t *off, const int32_t *delta, int nt)
{
	for (int t = 0; t < nt; t++)
		if (off[t] < 0 || off[t] - off[0] != delta[t]) return 0;
	return 1;
}

/* Narrow and one-group layers: the group's tap deltas, from its first
 * pixel that reads no padding, and the pixels that read at them moved
 * first, in raster order, so that their tiles are not broken at every
 * row's ends (a pixel's result does not depend on its tile). A transposed
 * convolution's phase groups keep raster order: their tiles run in bands
 * of rows (ae_dconv_forward). Returns -1 out of memory. */
/* The group's tap deltas, from its first pixel that reads no padding;
 * returns 0 if there is none (or no tap). */
static int group_delta(const ae_dconv *d, ae_dconv_group *g)
{
	const int nt = g->ntaps, np = g->npix;
	const int32_t *go = d->off + g->off_at;
	int first = 0;
	while (first < np && reads_padding(go + (size_t)first * nt, nt))
		first++;
	if (nt == 0 || first == np) /* a tapless phase group has no first tap */
		return 0;
	for (int t = 0; t < nt; t++)
		g->delta[t] = go[(size_t)first * nt + t] - go[(size_t)first * nt];
	return 1;
}

static int inner_first(ae_dconv *d, ae_dconv_group *g)
{
	const int nt = g->ntaps, np = g->npix;
	int32_t *gp = d->pix + g->pix_at, *go = d->off + g->off_at;
	if (!group_delta(d, g)) return 0;
	int32_t *pix = malloc((size_t)np * (nt + 1) * sizeof *pix), *off = pix ? pix + np : NULL;
	if (!pix) return -1;
	int k = 0;
	for (int pass = 1; pass >= 0; pass--)
		for (int p = 0; p < np; p++)
			if (reads_at_delta(go + (size_t)p * nt, g->delta, nt) == pass) {
				pix[k] = gp[p];
				memcpy(off + (size_t)k * nt, go + (size_t)p * nt, (size_t)nt * sizeof *off);
				k++;
				g->n_inner += pass;
			}
	memcpy(gp, pix, (size_t)np * sizeof *pix);
	memcpy(go, off, (size_t)np * nt * sizeof *off);
	free(pix);
	return 0;
}

/* A phase group's outer counts (ae_dconv_group.outer). Returns -1 out of
 * memory. */
static int outer_counts(ae_dconv *d, ae_dconv_group *g)
{
	const int nt = g->ntaps;
	const int32_t *go = d->off + g->off_at;
	if (!group_delta(d, g)) return 0;
	if (!(g->outer = malloc(((size_t)g->npix + 1) * sizeof *g->outer))) return -1;
	g->outer[0] = 0;
	for (int p = 0; p < g->npix; p++)
		g->outer[p + 1] = g->outer[p] + !reads_at_delta(go + (size_t)p * nt, g->delta, nt);
	return 0;
}

int ae_dconv_init(ae_dconv *d, const ae_dconv_shape *s, const float *w, const ae_epilogue *ep)
{
	memset(d, 0, sizeof *d);
	if (s->ic < 1 || s->oc < 1 || s->k < 1 || s->k > MAX_K || s->stride < 1 || s->stride > MAX_K || s->pad < 0 ||
	    s->ih < 1 || s->iw < 1 || s->oh < 1 || s->ow < 1 || (size_t)s->ih * s->iw * s->ic > INT32_MAX)
		return -1;
	d->s = *s;
	d->ocp = (s->oc + 7) / 8 * 8;
	d->narrow = s->oc < 8;
	d->simd = ae_cpu_simd();
	d->n_grp = s->transposed ? s->stride * s->stride : 1;
	d->pixel_step = s->transposed ? s->ic : s->stride * s->ic;
	int ty[MAX_K * MAX_K], tx[MAX_K * MAX_K];
	size_t n_off = 0, n_w = 0;
	for (int g = 0; g < d->n_grp; g++) {
		int nt = ae_dconv_group_taps(s, g, ty, tx), np = 0;
		for (int y = 0; y < s->oh; y++)
			for (int x = 0; x < s->ow; x++)
				np += in_phase(s, g, y, x);
		n_off += (size_t)np * nt;
		n_w += (size_t)nt * s->ic * d->ocp;
	}
	d->grp = calloc((size_t)d->n_grp, sizeof *d->grp);
	d->pix = malloc((size_t)s->oh * s->ow * sizeof *d->pix);
	d->off = malloc((n_off ? n_off : 1) * sizeof *d->off);
	/* every 8-float row 32-byte aligned (ocp is a multiple of 8), so no
	 * vector load splits a cache line */
	d->w = aligned_alloc(64, ((w ? n_w : 0) * sizeof *d->w + 63) / 64 * 64 + 64);
	d->bias = malloc((size_t)d->ocp * 3 * sizeof(float));
	d->zeros = calloc((size_t)s->ic, sizeof(float));
	if (!d->grp || !d->pix || !d->off || !d->w || !d->bias || !d->zeros) {
		ae_dconv_deinit(d);
		return -1;
	}
	d->scale = d->bias + d->ocp;
	d->shift = d->scale + d->ocp;
	for (int e = 0; d->narrow && s->oc <= NARROW_STORE && e < NRN * s->oc; e++)
		d->store_idx[e] = e % s->oc * NRN + e / s->oc;
	size_t pix_at = 0, off_at = 0, w_at = 0;
	for (int g = 0; g < d->n_grp; g++) {
		ae_dconv_group *gr = &d->grp[g];
		gr->ntaps = ae_dconv_group_taps(s, g, ty, tx);
		gr->pix_at = pix_at, gr->off_at = off_at, gr->w_at = w_at;
		for (int y = 0; y < s->oh; y++)
			for (int x = 0; x < s->ow; x++) {
				if (!in_phase(s, g, y, x)) continue;
				d->pix[pix_at + gr->npix++] = y * s->ow + x;
				for (int t = 0; t < gr->ntaps; t++)
					d->off[off_at++] = tap_offset(s, y, x, ty[t], tx[t]);
			}
		if ((d->narrow || d->n_grp == 1) ? inner_first(d, gr) : outer_counts(d, gr)) {
			ae_dconv_deinit(d);
			return -1;
		}
		pix_at += gr->npix;
		w_at += (size_t)gr->ntaps * s->ic * d->ocp;
	}
	if (w) ae_dconv_pack(d, w, ep);
	return 0;
}

void ae_dconv_adjoint(ae_dconv_shape *adj, const ae_dconv_shape *s)
{
	*adj = (ae_dconv_shape){ .transposed = !s->transposed,
		                 .ic = s->oc,
		                 .ih = s->oh,
		                 .iw = s->ow,
		                 .oc = s->ic,
		                 .oh = s->ih,
		                 .ow = s->iw,
		                 .k = s->k,
		                 .stride = s->stride,
		                 .pad = s->pad };
}

void ae_dconv_pack(ae_dconv *d, const float *w, const ae_epilogue *ep)
{
	int ty[MAX_K * MAX_K], tx[MAX_K * MAX_K];
	copy_epilogue(d, ep);
	for (int g = 0; g < d->n_grp; g++) {
		int nt = ae_dconv_group_taps(&d->s, g, ty, tx);
		pack_group(d->w + d->grp[g].w_at, d, w, ty, tx, nt);
	}
}

void ae_dconv_deinit(ae_dconv *d)
{
	for (int g = 0; d->grp && g < d->n_grp; g++)
		free(d->grp[g].outer);
	free(d->grp);
	free(d->pix);
	free(d->off);
	free(d->w);
	free(d->bias);
	free(d->zeros);
	memset(d, 0, sizeof *d);
}

/* ---- tiles ---- */

/* A tile's inputs: per tap, the nr input pixels its output pixels read.
 * A regular tile (base not NULL; AVX-512 wide kernels) has no table: its
 * pixel j reads tap t at base + delta[t] + j * pixel_step. */
typedef struct tile {
	const float *ptr[MAX_K * MAX_K * NRZ];
	float *out[NRZ]; /* where each output pixel's channels go */
	int np;          /* valid pixels (the rest repeat the last) */
	const float *base;
	const int32_t *delta;
} tile;

static void tile_setup(tile *tl, const ae_dconv *d, const ae_dconv_group *g, int p0, int nr, const float *x, float *y)
{
	int np = g->npix - p0 < nr ? g->npix - p0 : nr;
	for (int j = 0; j < nr; j++) {
		int p = p0 + (j < np ? j : np - 1);
		const int32_t *off = d->off + g->off_at + (size_t)p * g->ntaps;
		for (int t = 0; t < g->ntaps; t++)
			tl->ptr[t * nr + j] = off[t] < 0 ? d->zeros : x + off[t];
		tl->out[j] = y + (size_t)d->pix[g->pix_at + p] * d->s.oc;
	}
	tl->np = np;
	tl->base = NULL;
}

/* As tile_setup, for nr of the group's inner pixels: no padding to test,
 * each tap's pointers are the pixels' first-tap pointers plus its delta.
 * For layers with few input channels per tap, the table is most of a
 * tile's work. */
static void tile_setup_inner(tile *tl, const ae_dconv *d, const ae_dconv_group *g, int p0, int nr, const float *x,
                             float *y)
{
	const float *base[NRZ];
	for (int j = 0; j < nr; j++) {
		base[j] = x + d->off[g->off_at + (size_t)(p0 + j) * g->ntaps];
		tl->out[j] = y + (size_t)d->pix[g->pix_at + p0 + j] * d->s.oc;
	}
	for (int t = 0; t < g->ntaps; t++)
		for (int j = 0; j < nr; j++)
			tl->ptr[t * nr + j] = base[j] + g->delta[t];
	tl->np = nr;
	tl->base = NULL;
}

/* As tile_setup_inner, for a regular tile: no pointer table. */
static void tile_setup_regular(tile *tl, const ae_dconv *d, const ae_dconv_group *g, int p0, int nr, const float *x,
                               float *y)
{
	tl->base = x + d->off[g->off_at + (size_t)p0 * g->ntaps];
	tl->delta = g->delta;
	for (int j = 0; j < nr; j++)
		tl->out[j] = y + (size_t)d->pix[g->pix_at + p0 + j] * d->s.oc;
	tl->np = nr;
}

static float epilogue_one(const ae_dconv *d, float v, int o)
{
	v += d->bias[o];
	switch (d->act) {
	case AE_ACT_RELU: v = v > 0.0f ? v : 0.0f; break;
	case AE_ACT_LRELU: v = v > 0.0f ? v : d->slope * v; break;
	case AE_ACT_SIGMOID: v = 1.0f / (1.0f + expf(-v)); break;
	default: break;
	}
	return v * d->scale[o] + d->shift[o];
}

/* Stores acc (np pixels x bw channels from o0) through the epilogue. */
static void tile_store(const tile *tl, const ae_dconv *d, const float *acc, int bw, int o0)
{
	int nv = d->s.oc - o0 < bw ? d->s.oc - o0 : bw;
	for (int j = 0; j < tl->np; j++)
		for (int q = 0; q < nv; q++)
			tl->out[j][o0 + q] = epilogue_one(d, acc[j * bw + q], o0 + q);
}

/* Adds tap t's products over every input channel into acc (NR x bw). */
static void tap_portable(float *acc, const tile *tl, int ic, int t, const float *w, int bw)
{
	for (int c = 0; c < ic; c++, w += bw)
		for (int j = 0; j < NR; j++) {
			float xv = tl->ptr[t * NR + j][c];
			for (int q = 0; q < bw; q++)
				acc[j * bw + q] += w[q] * xv;
		}
}

static void wide_portable(const tile *tl, const ae_dconv *d, int ntaps, const float *w, int bw, int o0)
{
	float acc[NR * 16] = { 0 };
	int ic = d->s.ic;
	for (int t = 0; t < ntaps; t++, w += (size_t)ic * bw) {
		if (!d->per_tap) {
			tap_portable(acc, tl, ic, t, w, bw);
			continue;
		}
		float part[NR * 16] = { 0 };
		tap_portable(part, tl, ic, t, w, bw);
		for (int i = 0; i < NR * bw; i++)
			acc[i] += part[i];
	}
	tile_store(tl, d, acc, bw, o0);
}

static void narrow_portable(const tile *tl, const ae_dconv *d, int ntaps, const float *w)
{
	int ic = d->s.ic;
	for (int o = 0; o < d->s.oc; o++)
		for (int j = 0; j < tl->np; j++) {
			float acc = 0.0f;
			const float *wo = w + (size_t)o * ntaps * ic;
			for (int t = 0; t < ntaps; t++)
				for (int c = 0; c < ic; c++)
					acc += wo[t * ic + c] * tl->ptr[t * NR_NARROW + j][c];
			tl->out[j][o] = epilogue_one(d, acc, o);
		}
}

#ifdef AE_X86
#define AVX2          __attribute__((target("avx2,fma")))
#define ALWAYS_INLINE __attribute__((always_inline))

/* The epilogue of 8 channels, its vectors loaded once per tile. */
typedef struct ep8 {
	__m256 bias, scale, shift, slope;
} ep8;

AVX2 static inline ep8 ep8_load(const ae_dconv *d, int o)
{
	return (ep8){ _mm256_loadu_ps(d->bias + o), _mm256_loadu_ps(d->scale + o), _mm256_loadu_ps(d->shift + o),
		      _mm256_set1_ps(d->slope) };
}

/* bias, ReLU or LeakyReLU, scale and shift; not sigmoid */
AVX2 static inline __m256 ep8_apply(const ep8 *e, int act, __m256 v)
{
	__m256 z = _mm256_setzero_ps();
	v = _mm256_add_ps(v, e->bias);
	if (act == AE_ACT_RELU)
		v = _mm256_max_ps(v, z);
	else if (act == AE_ACT_LRELU)
		v = _mm256_fmadd_ps(e->slope, _mm256_min_ps(v, z), _mm256_max_ps(v, z));
	return _mm256_fmadd_ps(v, e->scale, e->shift);
}

/* Tiles whose block holds channels past oc, or whose activation is the
 * sigmoid: the raw sums go through the scalar epilogue. */
AVX2 static void store_scalar(const tile *tl, const ae_dconv *d, const __m256 *acc, int n8, int o0)
{
	float raw[NR * 16];
	for (int j = 0; j < NR; j++)
		for (int h = 0; h < n8; h++)
			_mm256_storeu_ps(raw + (j * n8 + h) * 8, acc[j * n8 + h]);
	tile_store(tl, d, raw, 8 * n8, o0);
}

#define FMA2(j)                                            \
	do {                                               \
		__m256 b = _mm256_broadcast_ss(p##j + c);  \
		a##j##0 = _mm256_fmadd_ps(w0, b, a##j##0); \
		a##j##1 = _mm256_fmadd_ps(w1, b, a##j##1); \
	} while (0)

/* One FMA chain per output through taps [t0, t1), from zero, into r. */
AVX2 static inline void chain16_avx2(__m256 *r, const tile *tl, int ic, int t0, int t1, const float *w)
{
	__m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
	__m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
	for (int t = t0; t < t1; t++) {
		const float *const *pt = tl->ptr + t * NR;
		const float *p0 = pt[0], *p1 = pt[1], *p2 = pt[2], *p3 = pt[3], *p4 = pt[4], *p5 = pt[5];
		for (int c = 0; c < ic; c++, w += 16) {
			__m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
			FMA2(0);
			FMA2(1);
			FMA2(2);
			FMA2(3);
			FMA2(4);
			FMA2(5);
		}
	}
	r[0] = a00, r[1] = a01, r[2] = a10, r[3] = a11, r[4] = a20, r[5] = a21;
	r[6] = a30, r[7] = a31, r[8] = a40, r[9] = a41, r[10] = a50, r[11] = a51;
}

typedef void chain_fn(__m256 *r, const tile *tl, int ic, int t0, int t1, const float *w);

/* A tile's nv sum vectors (bw channels wide) into r: one chain through
 * every tap, or one per tap with the taps added in order (per_tap). */
AVX2 static inline void sum_taps_avx2(__m256 *r, int nv, chain_fn *chain, const tile *tl, const ae_dconv *d, int ntaps,
                                      const float *w, int bw)
{
	int ic = d->s.ic;
	if (!d->per_tap) {
		chain(r, tl, ic, 0, ntaps, w);
		return;
	}
	chain(r, tl, ic, 0, 1, w);
	for (int t = 1; t < ntaps; t++) {
		__m256 part[NR * 2];
		chain(part, tl, ic, t, t + 1, w + (size_t)t * ic * bw);
		for (int i = 0; i < nv; i++)
			r[i] = _mm256_add_ps(r[i], part[i]);
	}
}

AVX2 static void wide16_avx2(const tile *tl, const ae_dconv *d, int ntaps, const float *w, int o0)
{
	__m256 r[NR * 2];
	sum_taps_avx2(r, NR * 2, chain16_avx2, tl, d, ntaps, w, 16);
	if (d->act == AE_ACT_SIGMOID || o0 + 16 > d->s.oc) {
		store_scalar(tl, d, r, 2, o0);
		return;
	}
	ep8 e0 = ep8_load(d, o0), e1 = ep8_load(d, o0 + 8);
	for (int j = 0; j < tl->np; j++) {
		_mm256_storeu_ps(tl->out[j] + o0, ep8_apply(&e0, d->act, r[2 * j]));
		_mm256_storeu_ps(tl->out[j] + o0 + 8, ep8_apply(&e1, d->act, r[2 * j + 1]));
	}
}

#define FMA1(j) a##j = _mm256_fmadd_ps(w0, _mm256_broadcast_ss(p##j + c), a##j)

AVX2 static inline void chain8_avx2(__m256 *r, const tile *tl, int ic, int t0, int t1, const float *w)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
	for (int t = t0; t < t1; t++) {
		const float *const *pt = tl->ptr + t * NR;
		const float *p0 = pt[0], *p1 = pt[1], *p2 = pt[2], *p3 = pt[3], *p4 = pt[4], *p5 = pt[5];
		for (int c = 0; c < ic; c++, w += 8) {
			__m256 w0 = _mm256_loadu_ps(w);
			FMA1(0);
			FMA1(1);
			FMA1(2);
			FMA1(3);
			FMA1(4);
			FMA1(5);
		}
	}
	r[0] = a0, r[1] = a1, r[2] = a2, r[3] = a3, r[4] = a4, r[5] = a5;
}

AVX2 static void wide8_avx2(const tile *tl, const ae_dconv *d, int ntaps, const float *w, int o0)
{
	__m256 r[NR];
	sum_taps_avx2(r, NR, chain8_avx2, tl, d, ntaps, w, 8);
	if (d->act == AE_ACT_SIGMOID || o0 + 8 > d->s.oc) {
		store_scalar(tl, d, r, 1, o0);
		return;
	}
	ep8 e = ep8_load(d, o0);
	for (int j = 0; j < tl->np; j++)
		_mm256_storeu_ps(tl->out[j] + o0, ep8_apply(&e, d->act, r[j]));
}

AVX2 static float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
	return _mm_cvtss_f32(s);
}

/* One output channel's sums for four pixels: a and e take alternate blocks
 * of 8 input channels (two FMA chains per pixel, not one waiting on
 * itself), s the channels past the last multiple of 8. */
typedef struct dot4 {
	__m256 a0, a1, a2, a3, e0, e1, e2, e3;
	float s0, s1, s2, s3;
} dot4;

/* Adds one tap: the four pixels' inputs at q0..q3, its weights at wo. Four
 * pixels share each load of the weights. */
/* Inlined into both kernels so r stays in registers: as a call, it was
 * 24 -> 39 us per image on the 32->1 layer. */
AVX2 ALWAYS_INLINE static inline void dot4_tap(dot4 *r, const float *q0, const float *q1, const float *q2,
                                               const float *q3, const float *wo, int ic)
{
	int c = 0;
	for (; c + 16 <= ic; c += 16) {
		__m256 wv = _mm256_loadu_ps(wo + c), wu = _mm256_loadu_ps(wo + c + 8);
		r->a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q0 + c), r->a0);
		r->a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q1 + c), r->a1);
		r->a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q2 + c), r->a2);
		r->a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q3 + c), r->a3);
		r->e0 = _mm256_fmadd_ps(wu, _mm256_loadu_ps(q0 + c + 8), r->e0);
		r->e1 = _mm256_fmadd_ps(wu, _mm256_loadu_ps(q1 + c + 8), r->e1);
		r->e2 = _mm256_fmadd_ps(wu, _mm256_loadu_ps(q2 + c + 8), r->e2);
		r->e3 = _mm256_fmadd_ps(wu, _mm256_loadu_ps(q3 + c + 8), r->e3);
	}
	for (; c + 8 <= ic; c += 8) {
		__m256 wv = _mm256_loadu_ps(wo + c);
		r->a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q0 + c), r->a0);
		r->a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q1 + c), r->a1);
		r->a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q2 + c), r->a2);
		r->a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(q3 + c), r->a3);
	}
	for (; c < ic; c++) {
		r->s0 += wo[c] * q0[c], r->s1 += wo[c] * q1[c];
		r->s2 += wo[c] * q2[c], r->s3 += wo[c] * q3[c];
	}
}

/* exp(x) to about 2 ulp: x = n ln2 + r with |r| <= ln2/2, Cephes' degree-6
 * polynomial for e^r, and n put into the exponent. Inputs are clamped to
 * where the result stays finite and normal. */
AVX2 static inline __m128 exp4_avx2(__m128 x)
{
	x = _mm_min_ps(_mm_max_ps(x, _mm_set1_ps(-87.3f)), _mm_set1_ps(88.3f));
	__m128 n = _mm_round_ps(_mm_mul_ps(x, _mm_set1_ps(1.44269504088896341f)),
	                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m128 r = _mm_fnmadd_ps(n, _mm_set1_ps(0.693359375f), x);
	r = _mm_fnmadd_ps(n, _mm_set1_ps(-2.12194440e-4f), r);
	__m128 p = _mm_set1_ps(1.9875691500e-4f);
	p = _mm_fmadd_ps(p, r, _mm_set1_ps(1.3981999507e-3f));
	p = _mm_fmadd_ps(p, r, _mm_set1_ps(8.3334519073e-3f));
	p = _mm_fmadd_ps(p, r, _mm_set1_ps(4.1665795894e-2f));
	p = _mm_fmadd_ps(p, r, _mm_set1_ps(1.6666665459e-1f));
	p = _mm_fmadd_ps(p, r, _mm_set1_ps(5.0000001201e-1f));
	p = _mm_fmadd_ps(p, _mm_mul_ps(r, r), _mm_add_ps(r, _mm_set1_ps(1.0f)));
	__m128i e = _mm_slli_epi32(_mm_add_epi32(_mm_cvtps_epi32(n), _mm_set1_epi32(127)), 23);
	return _mm_mul_ps(p, _mm_castsi128_ps(e));
}

/* 1 / (1 + e^-x): the output layer's activation, four pixels at a time,
 * where the scalar expf calls were a fifth of the layer. */
AVX2 static inline __m128 sigmoid4_avx2(__m128 x)
{
	__m128 one = _mm_set1_ps(1.0f);
	return _mm_div_ps(one, _mm_add_ps(one, exp4_avx2(_mm_sub_ps(_mm_setzero_ps(), x))));
}

/* The four sums of output channel o through the epilogue into v: the
 * sigmoid four at a time. */
AVX2 ALWAYS_INLINE static inline void dot4_finish(float *v, const dot4 *r, const ae_dconv *d, int o)
{
	v[0] = hsum8(_mm256_add_ps(r->a0, r->e0)) + r->s0;
	v[1] = hsum8(_mm256_add_ps(r->a1, r->e1)) + r->s1;
	v[2] = hsum8(_mm256_add_ps(r->a2, r->e2)) + r->s2;
	v[3] = hsum8(_mm256_add_ps(r->a3, r->e3)) + r->s3;
	if (d->act == AE_ACT_SIGMOID) {
		__m128 x = sigmoid4_avx2(_mm_add_ps(_mm_loadu_ps(v), _mm_set1_ps(d->bias[o])));
		_mm_storeu_ps(v, _mm_fmadd_ps(x, _mm_set1_ps(d->scale[o]), _mm_set1_ps(d->shift[o])));
		return;
	}
	for (int j = 0; j < NR_NARROW; j++)
		v[j] = epilogue_one(d, v[j], o);
}

AVX2 static void narrow_avx2(const tile *tl, const ae_dconv *d, int ntaps, const float *w)
{
	int ic = d->s.ic;
	for (int o = 0; o < d->s.oc; o++) {
		dot4 r = { 0 };
		const float *wo = w + (size_t)o * ntaps * ic;
		for (int t = 0; t < ntaps; t++, wo += ic) {
			const float *const *pt = tl->ptr + t * NR_NARROW;
			dot4_tap(&r, pt[0], pt[1], pt[2], pt[3], wo, ic);
		}
		float v[NR_NARROW];
		dot4_finish(v, &r, d, o);
		for (int j = 0; j < tl->np; j++)
			tl->out[j][o] = v[j];
	}
}

/* A narrow tile of NR_NARROW inner pixels (see ae_dconv_group.n_inner):
 * each tap's input is the pixel's first-tap input plus the group's delta,
 * so no pointer table is built (building it was 40% of the 32->1 output
 * layer). */
AVX2 static void narrow_inner_avx2(const ae_dconv *d, const ae_dconv_group *g, int p0, const float *x, float *y)
{
	const int ic = d->s.ic, nt = g->ntaps;
	const int32_t *off = d->off + g->off_at + (size_t)p0 * nt;
	const float *b0 = x + off[0], *b1 = x + off[nt], *b2 = x + off[2 * nt], *b3 = x + off[3 * nt];
	for (int o = 0; o < d->s.oc; o++) {
		dot4 r = { 0 };
		const float *wo = d->w + g->w_at + (size_t)o * nt * ic;
		for (int t = 0; t < nt; t++, wo += ic) {
			int32_t dt = g->delta[t];
			dot4_tap(&r, b0 + dt, b1 + dt, b2 + dt, b3 + dt, wo, ic);
		}
		float v[NR_NARROW];
		dot4_finish(v, &r, d, o);
		for (int j = 0; j < NR_NARROW; j++)
			y[(size_t)d->pix[g->pix_at + p0 + j] * d->s.oc + o] = v[j];
	}
}

/* ---- AVX-512: the wide kernels at twice the width ---- */

/* Tiles of NRZ pixels x up to 2 blocks of 16 channels: 28 sums, the two
 * weight vectors and a broadcast in 31 of the 32 registers. More pixels
 * than the AVX2 tile, so each weight loaded from L2 serves as many products
 * per byte as there (6 pixels x 4 blocks measured 20% slower than AVX2 at
 * 128x128: the weights' L2 traffic doubled); 14 pixels against 12 measured
 * 2-12% faster per layer at 128x128 (fewer tiles to set up). */
#define AVX512     __attribute__((target("avx512f,avx2,fma")))
#define ZMM_BLOCKS 2

typedef struct ep16 {
	__m512 bias, scale, shift, slope;
} ep16;

AVX512 static inline ep16 ep16_load(const ae_dconv *d, int o)
{
	return (ep16){ _mm512_loadu_ps(d->bias + o), _mm512_loadu_ps(d->scale + o), _mm512_loadu_ps(d->shift + o),
		       _mm512_set1_ps(d->slope) };
}

/* As ep8_apply: the same operations in the same order, so the same bits. */
AVX512 static inline __m512 ep16_apply(const ep16 *e, int act, __m512 v)
{
	__m512 z = _mm512_setzero_ps();
	v = _mm512_add_ps(v, e->bias);
	if (act == AE_ACT_RELU)
		v = _mm512_max_ps(v, z);
	else if (act == AE_ACT_LRELU)
		v = _mm512_fmadd_ps(e->slope, _mm512_min_ps(v, z), _mm512_max_ps(v, z));
	return _mm512_fmadd_ps(v, e->scale, e->shift);
}

#define ZFMA(j)                                                             \
	do {                                                                \
		__m512 x = _mm512_set1_ps(ps ? q[(j)*ps + c] : pt[(j)][c]); \
		a##j##_0 = _mm512_fmadd_ps(w0, x, a##j##_0);                \
		if (nb > 1) a##j##_1 = _mm512_fmadd_ps(w1, x, a##j##_1);    \
	} while (0)

#define ZOUT(j)                                       \
	do {                                          \
		r[(j)*nb] = a##j##_0;                 \
		if (nb > 1) r[(j)*nb + 1] = a##j##_1; \
	} while (0)

/* NRZ pixels x nb blocks of 16 channels, one FMA chain per output through
 * taps [t0, t1) from zero, into r[j * nb + b]. w is tap t0's weights in
 * block 0; block 1's are bs floats on. nb and ps are constants where this
 * is inlined, so the unused sums and loads vanish; ps > 0 reads a regular
 * tile whose pixel step is ps, each input at a constant offset from one
 * pointer a tap. */
AVX512 ALWAYS_INLINE static inline void chain_zmm(__m512 *r, const tile *tl, int ic, int t0, int t1, const float *w,
                                                  size_t bs, const int nb, const int ps)
{
	__m512 z = _mm512_setzero_ps();
	__m512 a0_0 = z, a0_1 = z, a1_0 = z, a1_1 = z, a2_0 = z, a2_1 = z, a3_0 = z, a3_1 = z;
	__m512 a4_0 = z, a4_1 = z, a5_0 = z, a5_1 = z, a6_0 = z, a6_1 = z, a7_0 = z, a7_1 = z;
	__m512 a8_0 = z, a8_1 = z, a9_0 = z, a9_1 = z, a10_0 = z, a10_1 = z, a11_0 = z, a11_1 = z;
	__m512 a12_0 = z, a12_1 = z, a13_0 = z, a13_1 = z;
	for (int t = t0; t < t1; t++) {
		const float *const *pt = tl->ptr + t * NRZ;
		const float *q = ps ? tl->base + tl->delta[t] : NULL;
		for (int c = 0; c < ic; c++, w += 16) {
			__m512 w0 = _mm512_loadu_ps(w), w1 = nb > 1 ? _mm512_loadu_ps(w + bs) : z;
			ZFMA(0);
			ZFMA(1);
			ZFMA(2);
			ZFMA(3);
			ZFMA(4);
			ZFMA(5);
			ZFMA(6);
			ZFMA(7);
			ZFMA(8);
			ZFMA(9);
			ZFMA(10);
			ZFMA(11);
			ZFMA(12);
			ZFMA(13);
		}
	}
	ZOUT(0);
	ZOUT(1);
	ZOUT(2);
	ZOUT(3);
	ZOUT(4);
	ZOUT(5);
	ZOUT(6);
	ZOUT(7);
	ZOUT(8);
	ZOUT(9);
	ZOUT(10);
	ZOUT(11);
	ZOUT(12);
	ZOUT(13);
}

/* A tile's sums through every tap into r, as sum_taps_avx2 does. */
AVX512 ALWAYS_INLINE static inline void sum_taps_zmm(__m512 *r, const tile *tl, const ae_dconv *d, int ntaps,
                                                     const float *w, const int nb, const int ps)
{
	const int ic = d->s.ic;
	const size_t bs = (size_t)ntaps * ic * 16;
	if (!d->per_tap) {
		chain_zmm(r, tl, ic, 0, ntaps, w, bs, nb, ps);
		return;
	}
	chain_zmm(r, tl, ic, 0, 1, w, bs, nb, ps);
	for (int t = 1; t < ntaps; t++) {
		__m512 part[NRZ * ZMM_BLOCKS];
		chain_zmm(part, tl, ic, t, t + 1, w + (size_t)t * ic * 16, bs, nb, ps);
		for (int i = 0; i < NRZ * nb; i++)
			r[i] = _mm512_add_ps(r[i], part[i]);
	}
}

/* Channels [o0, o0 + 16 nb) of a tile. */
AVX512 ALWAYS_INLINE static inline void wide_zmm(const tile *tl, const ae_dconv *d, int ntaps, const float *w, int o0,
                                                 const int nb, const int ps)
{
	__m512 r[NRZ * ZMM_BLOCKS];
	sum_taps_zmm(r, tl, d, ntaps, w, nb, ps);
	if (d->act == AE_ACT_SIGMOID || o0 + 16 * nb > d->s.oc) {
		float raw[NRZ * 16 * ZMM_BLOCKS];
		for (int i = 0; i < NRZ * nb; i++)
			_mm512_storeu_ps(raw + 16 * i, r[i]);
		tile_store(tl, d, raw, 16 * nb, o0);
		return;
	}
	ep16 e0 = ep16_load(d, o0), e1 = nb > 1 ? ep16_load(d, o0 + 16) : e0;
	for (int j = 0; j < tl->np; j++) {
		_mm512_storeu_ps(tl->out[j] + o0, ep16_apply(&e0, d->act, r[j * nb]));
		if (nb > 1) _mm512_storeu_ps(tl->out[j] + o0 + 16, ep16_apply(&e1, d->act, r[j * nb + 1]));
	}
}

AVX512 static void wide_zmm1(const tile *tl, const ae_dconv *d, int ntaps, const float *w, int o0)
{
	wide_zmm(tl, d, ntaps, w, o0, 1, 0);
}

AVX512 static void wide_zmm2(const tile *tl, const ae_dconv *d, int ntaps, const float *w, int o0)
{
	wide_zmm(tl, d, ntaps, w, o0, 2, 0);
}

/* Regular tiles of the pixel steps the preset's layers have (ic, or 2 ic
 * at stride 2, for 1, 3, 32 and 64 input channels; not 3, the one layer of
 * which, the output layer's adjoint in training, measured 1% slower in
 * steps at 128x128x3): with no pointer table, 14 pointers a tap no longer
 * go through memory (they did not fit in registers) and the table is not
 * built (it was 5-7% of a 64-channel layer, and most of the work of a
 * layer with few input channels). */
#define WIDE_ZMM2_REGULAR(ps)                                                                                     \
	AVX512 static void wide_zmm2_ps##ps(const tile *tl, const ae_dconv *d, int ntaps, const float *w, int o0) \
	{                                                                                                         \
		wide_zmm(tl, d, ntaps, w, o0, 2, ps);                                                             \
	}
WIDE_ZMM2_REGULAR(2)
WIDE_ZMM2_REGULAR(6)
WIDE_ZMM2_REGULAR(32)
WIDE_ZMM2_REGULAR(64)
WIDE_ZMM2_REGULAR(128)

typedef void zmm_kernel(const tile *tl, const ae_dconv *d, int ntaps, const float *w, int o0);

/* The regular kernel for d's pixel step with two blocks, or NULL. */
static zmm_kernel *wide_zmm2_regular(const ae_dconv *d)
{
	switch (d->pixel_step) {
	case 2: return wide_zmm2_ps2;
	case 6: return wide_zmm2_ps6;
	case 32: return wide_zmm2_ps32;
	case 64: return wide_zmm2_ps64;
	case 128: return wide_zmm2_ps128;
	default: return NULL;
	}
}

/* Narrow layers: NRN pixels x up to 3 output channels per pass, each
 * output's products summed along 16 input channels at a time (the last
 * chunk masked) and reduced once at the end. Against the AVX2 kernel, one
 * pass reads each input once for all its output channels. */
#define NFMA(j)                                                          \
	do {                                                             \
		const float *q = inner ? base[(j)] + dt : pt[(j)];       \
		__m512 x = _mm512_maskz_loadu_ps(m, q + c);              \
		s##j##_0 = _mm512_fmadd_ps(w0, x, s##j##_0);             \
		if (no > 1) s##j##_1 = _mm512_fmadd_ps(w1, x, s##j##_1); \
		if (no > 2) s##j##_2 = _mm512_fmadd_ps(w2, x, s##j##_2); \
	} while (0)

/* v[0..7] = the sums of the lanes of a0..a7: a transposing tree, 24
 * shuffles and adds where eight separate reductions take 72. */
AVX512 static inline void reduce8_zmm(float *v, __m512 a0, __m512 a1, __m512 a2, __m512 a3, __m512 a4, __m512 a5,
                                      __m512 a6, __m512 a7)
{
	/* each vector's 4 quarters to 2, two vectors per register */
	__m512 s01 = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, 0x44), _mm512_shuffle_f32x4(a0, a1, 0xEE));
	__m512 s23 = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, 0x44), _mm512_shuffle_f32x4(a2, a3, 0xEE));
	__m512 s45 = _mm512_add_ps(_mm512_shuffle_f32x4(a4, a5, 0x44), _mm512_shuffle_f32x4(a4, a5, 0xEE));
	__m512 s67 = _mm512_add_ps(_mm512_shuffle_f32x4(a6, a7, 0x44), _mm512_shuffle_f32x4(a6, a7, 0xEE));
	/* to 1 quarter each: quarter k holds vector k's 4 partial sums */
	__m512 u0 = _mm512_add_ps(_mm512_shuffle_f32x4(s01, s23, 0x88), _mm512_shuffle_f32x4(s01, s23, 0xDD));
	__m512 u4 = _mm512_add_ps(_mm512_shuffle_f32x4(s45, s67, 0x88), _mm512_shuffle_f32x4(s45, s67, 0xDD));
	/* quarter k: [k: 0+1, k: 2+3, k+4: 0+1, k+4: 2+3], then pairs added */
	__m512 z = _mm512_add_ps(_mm512_shuffle_ps(u0, u4, 0x88), _mm512_shuffle_ps(u0, u4, 0xDD));
	z = _mm512_add_ps(z, _mm512_permute_ps(z, 0xB1));
	const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
	_mm256_storeu_ps(v, _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, z)));
}

/* The sums v[o * NRN + j] of no output channels whose weights start at w
 * (the next channel's ntaps * ic floats on). A pixel reads tap t at
 * base[j] + delta[t] (inner) or at tl->ptr[t * NRN + j]. */
AVX512 ALWAYS_INLINE static inline void narrow_sums_zmm(float *v, const tile *tl, const float *const *base,
                                                        const int32_t *delta, const float *w, int ntaps, int ic,
                                                        const int no, const int inner)
{
	__m512 z = _mm512_setzero_ps();
	__m512 s0_0 = z, s0_1 = z, s0_2 = z, s1_0 = z, s1_1 = z, s1_2 = z, s2_0 = z, s2_1 = z, s2_2 = z;
	__m512 s3_0 = z, s3_1 = z, s3_2 = z, s4_0 = z, s4_1 = z, s4_2 = z, s5_0 = z, s5_1 = z, s5_2 = z;
	__m512 s6_0 = z, s6_1 = z, s6_2 = z, s7_0 = z, s7_1 = z, s7_2 = z;
	const size_t os = (size_t)ntaps * ic;
	const __mmask16 tail = (__mmask16)((1u << (ic % 16)) - 1);
	for (int t = 0; t < ntaps; t++) {
		const int32_t dt = inner ? delta[t] : 0;
		const float *const *pt = inner ? NULL : tl->ptr + t * NRN;
		const float *wt = w + (size_t)t * ic;
		for (int c = 0; c < ic; c += 16) {
			__mmask16 m = c + 16 <= ic ? (__mmask16)0xFFFF : tail;
			__m512 w0 = _mm512_maskz_loadu_ps(m, wt + c);
			__m512 w1 = no > 1 ? _mm512_maskz_loadu_ps(m, wt + os + c) : z;
			__m512 w2 = no > 2 ? _mm512_maskz_loadu_ps(m, wt + 2 * os + c) : z;
			NFMA(0);
			NFMA(1);
			NFMA(2);
			NFMA(3);
			NFMA(4);
			NFMA(5);
			NFMA(6);
			NFMA(7);
		}
	}
	reduce8_zmm(v, s0_0, s1_0, s2_0, s3_0, s4_0, s5_0, s6_0, s7_0);
	if (no > 1) reduce8_zmm(v + NRN, s0_1, s1_1, s2_1, s3_1, s4_1, s5_1, s6_1, s7_1);
	if (no > 2) reduce8_zmm(v + 2 * NRN, s0_2, s1_2, s2_2, s3_2, s4_2, s5_2, s6_2, s7_2);
}

/* exp4_avx2 sixteen at a time: the same operations in the same order. */
AVX512 static inline __m512 exp16_avx512(__m512 x)
{
	x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
	__m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
	                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
	__m512 p = _mm512_set1_ps(1.9875691500e-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
	p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
	__m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
	return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

/* A per-channel value for output channels o (low half) and o + 1 (high). */
AVX512 static inline __m512 pair_of(const float *a, int o)
{
	return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(a[o])),
	                                           _mm256_castps_pd(_mm256_set1_ps(a[o + 1])), 1));
}

_Static_assert(NRN == 8, "narrow_finish_zmm takes two output channels' NRN sums per vector");

/* The sums v[o * NRN + j] through the epilogue, in place: the sigmoid two
 * output channels (16 values) at a time, where it was a fifth of the
 * layer four at a time. */
AVX512 static void narrow_finish_zmm(float *v, const ae_dconv *d)
{
	const int oc = d->s.oc;
	if (d->act != AE_ACT_SIGMOID) {
		for (int o = 0; o < oc; o++)
			for (int j = 0; j < NRN; j++)
				v[o * NRN + j] = epilogue_one(d, v[o * NRN + j], o);
		return;
	}
	for (int o = 0; o < oc; o += 2) {
		/* bias, scale and shift are ocp long: o + 1 is in range */
		__mmask16 m = o + 1 < oc ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
		__m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(m, v + o * NRN), pair_of(d->bias, o));
		__m512 one = _mm512_set1_ps(1.0f);
		x = _mm512_div_ps(one, _mm512_add_ps(one, exp16_avx512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
		x = _mm512_fmadd_ps(x, pair_of(d->scale, o), pair_of(d->shift, o));
		_mm512_mask_storeu_ps(v + o * NRN, m, x);
	}
}

AVX512 ALWAYS_INLINE static inline void narrow_zmm(float *v, const ae_dconv *d, const tile *tl,
                                                   const float *const *base, const int32_t *delta, const float *w,
                                                   int ntaps, const int inner)
{
	const int ic = d->s.ic;
	for (int o = 0; o < d->s.oc; o += 3) {
		const float *wo = w + (size_t)o * ntaps * ic;
		float *vo = v + (size_t)o * NRN;
		int no = d->s.oc - o < 3 ? d->s.oc - o : 3;
		if (no == 3)
			narrow_sums_zmm(vo, tl, base, delta, wo, ntaps, ic, 3, inner);
		else if (no == 2)
			narrow_sums_zmm(vo, tl, base, delta, wo, ntaps, ic, 2, inner);
		else
			narrow_sums_zmm(vo, tl, base, delta, wo, ntaps, ic, 1, inner);
	}
	narrow_finish_zmm(v, d);
}

/* A narrow tile of NRN pixels from its pointer table. */
AVX512 static void narrow_avx512(const tile *tl, const ae_dconv *d, int ntaps, const float *w)
{
	float v[8 * NRN];
	narrow_zmm(v, d, tl, NULL, NULL, w, ntaps, 0);
	for (int j = 0; j < tl->np; j++)
		for (int o = 0; o < d->s.oc; o++)
			tl->out[j][o] = v[o * NRN + j];
}

_Static_assert(NRN *NARROW_STORE <= 32, "narrow_store_zmm permutes within two vectors");

/* out[j * oc + o] = v[o * NRN + j] for NRN pixels, oc <= NARROW_STORE,
 * by d->store_idx. */
AVX512 static void narrow_store_zmm(float *out, float *v, const ae_dconv *d)
{
	const int n = NRN * d->s.oc;
	for (int e = n; e < 32; e++)
		v[e] = 0.0f; /* read below, never stored */
	const __m512 lo = _mm512_loadu_ps(v), hi = _mm512_loadu_ps(v + 16);
	for (int e0 = 0; e0 < n; e0 += 16) {
		__mmask16 m = n - e0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - e0)) - 1);
		__m512 r = _mm512_permutex2var_ps(lo, _mm512_loadu_si512(d->store_idx + e0), hi);
		_mm512_mask_storeu_ps(out + e0, m, r);
	}
}

/* NRN inner pixels (as narrow_inner_avx2). */
AVX512 static void narrow_inner_avx512(const ae_dconv *d, const ae_dconv_group *g, int p0, const float *x, float *y)
{
	const int nt = g->ntaps;
	const int32_t *off = d->off + g->off_at + (size_t)p0 * nt;
	const float *base[NRN];
	for (int j = 0; j < NRN; j++)
		base[j] = x + off[(size_t)j * nt];
	float v[8 * NRN];
	narrow_zmm(v, d, NULL, base, g->delta, d->w + g->w_at, nt, 1);
	const int32_t *pix = d->pix + g->pix_at + p0;
	if (d->s.oc <= NARROW_STORE && pix[NRN - 1] - pix[0] == NRN - 1) {
		narrow_store_zmm(y + (size_t)pix[0] * d->s.oc, v, d);
		return;
	}
	for (int j = 0; j < NRN; j++) {
		float *out = y + (size_t)pix[j] * d->s.oc;
		for (int o = 0; o < d->s.oc; o++)
			out[o] = v[o * NRN + j];
	}
}

/* A tile of NRZ pixels through every block of output channels. */
static void tile_run_avx512(const tile *tl, const ae_dconv *d, int ntaps, const float *w)
{
	const size_t bsz = (size_t)ntaps * d->s.ic * 16;
	zmm_kernel *two = tl->base ? wide_zmm2_regular(d) : wide_zmm2;
	int o0 = 0;
	for (; o0 + 32 <= d->ocp; o0 += 32, w += 2 * bsz)
		two(tl, d, ntaps, w, o0);
	if (o0 < d->ocp) wide_zmm1(tl, d, ntaps, w, o0);
}
#endif

/* ---- forward ---- */

static void wide_tile(const tile *tl, const ae_dconv *d, int ntaps, const float *w, int bw, int o0)
{
#ifdef AE_X86
	if (d->simd) {
		if (bw == 16)
			wide16_avx2(tl, d, ntaps, w, o0);
		else
			wide8_avx2(tl, d, ntaps, w, o0);
		return;
	}
#endif
	wide_portable(tl, d, ntaps, w, bw, o0);
}

static void narrow_tile(const tile *tl, const ae_dconv *d, int ntaps, const float *w)
{
#ifdef AE_X86
	if (d->simd >= AE_SIMD_AVX512) {
		narrow_avx512(tl, d, ntaps, w);
		return;
	}
	if (d->simd) {
		narrow_avx2(tl, d, ntaps, w);
		return;
	}
#endif
	narrow_portable(tl, d, ntaps, w);
}

/* AVX-512 tiles take whole 16-channel blocks; a layer with a last block
 * of 8 runs the AVX2 kernels throughout. */
static int uses_zmm(const ae_dconv *d)
{
	return d->simd >= AE_SIMD_AVX512 && !d->narrow && d->ocp % 16 == 0;
}

/* Output pixels per tile for d's kernels. */
static int tile_pixels(const ae_dconv *d)
{
	if (d->narrow) return d->simd >= AE_SIMD_AVX512 ? NRN : NR_NARROW;
	return uses_zmm(d) ? NRZ : NR;
}

/* A tile through the whole group's weights: each tile's input pointers are
 * found once and serve every block of output channels (measured faster
 * than keeping one block's weights in L1 across all pixels: the pointer
 * setup is what small layers spend on). */
static void tile_run(const tile *tl, const ae_dconv *d, int ntaps, const float *w)
{
	if (d->narrow) {
		narrow_tile(tl, d, ntaps, w);
		return;
	}
#ifdef AE_X86
	if (uses_zmm(d)) {
		tile_run_avx512(tl, d, ntaps, w);
		return;
	}
#endif
	for (int o0 = 0; o0 < d->ocp; o0 += block_width(d->ocp, o0)) {
		int bw = block_width(d->ocp, o0);
		wide_tile(tl, d, ntaps, w, bw, o0);
		w += (size_t)ntaps * d->s.ic * bw;
	}
}

/* Can the nr pixels from p run as a regular tile? Only where a regular
 * kernel exists: AVX-512 wide tiles with a 32-channel multiple of output
 * channels (a 16-channel rest would need the table) and a pixel step
 * wide_zmm2_regular has. The pixels must all read at the group's deltas
 * and lie next to each other in one row of the group. */
static int tile_regular(const ae_dconv *d, const ae_dconv_group *g, int p, int nr)
{
#ifdef AE_X86
	if (!uses_zmm(d) || d->ocp % 32 || !wide_zmm2_regular(d) || p + nr > g->npix) return 0;
	const int32_t *pix = d->pix + g->pix_at + p;
	const int step = d->n_grp == 1 ? 1 : d->s.stride;
	if (pix[nr - 1] - pix[0] != (nr - 1) * step || pix[nr - 1] / d->s.ow != pix[0] / d->s.ow) return 0;
	if (g->outer) return g->outer[p + nr] == g->outer[p];
	return p + nr <= g->n_inner;
#else
	(void)d, (void)g, (void)p, (void)nr;
	return 0;
#endif
}

/* Group g's tiles from pixel *p (advanced) while they start before end,
 * for one image x -> y. */
static void run_tiles(const ae_dconv *d, const ae_dconv_group *g, int *p, int end, const float *x, float *y)
{
	const int nr = tile_pixels(d);
	tile tl;
	for (; *p < end; *p += nr) {
#ifdef AE_X86
		if (d->narrow && d->simd && *p + nr <= g->n_inner) {
			if (d->simd >= AE_SIMD_AVX512)
				narrow_inner_avx512(d, g, *p, x, y);
			else
				narrow_inner_avx2(d, g, *p, x, y);
			continue;
		}
#endif
		if (tile_regular(d, g, *p, nr))
			tile_setup_regular(&tl, d, g, *p, nr, x, y);
		else if (*p + nr <= g->n_inner)
			tile_setup_inner(&tl, d, g, *p, nr, x, y);
		else
			tile_setup(&tl, d, g, *p, nr, x, y);
		tile_run(&tl, d, g->ntaps, d->w + g->w_at);
	}
}

/* The first of group g's pixels (in raster order) on output row y or
 * below: npix if none. */
static int row_start(const ae_dconv *d, const ae_dconv_group *g, int y)
{
	const int32_t *pix = d->pix + g->pix_at;
	const int32_t first = y * d->s.ow;
	int lo = 0, hi = g->npix;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (pix[mid] < first)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void ae_dconv_forward(float *y, const float *x, int n, const ae_dconv *d)
{
	const size_t isz = (size_t)d->s.ih * d->s.iw * d->s.ic, osz = (size_t)d->s.oh * d->s.ow * d->s.oc;
	for (int i = 0; i < n; i++) {
		const float *xi = x + i * isz;
		float *yi = y + i * osz;
		int at[MAX_K * MAX_K] = { 0 }; /* each group's next pixel */
		if (d->n_grp == 1 || d->narrow) {
			for (int gi = 0; gi < d->n_grp; gi++)
				run_tiles(d, &d->grp[gi], &at[gi], d->grp[gi].npix, xi, yi);
			continue;
		}
		/* A transposed convolution's phase groups each cover the whole
		 * output, every s-th pixel of every s-th row: run one group
		 * after another over the image and each output cache line is
		 * fetched s times, from beyond L2 once the image outgrows it.
		 * Run them band by band of BAND_ROWS output rows instead. */
		for (int y1 = BAND_ROWS;; y1 += BAND_ROWS) {
			int yb = y1 < d->s.oh ? y1 : d->s.oh;
			for (int gi = 0; gi < d->n_grp; gi++)
				run_tiles(d, &d->grp[gi], &at[gi], row_start(d, &d->grp[gi], yb), xi, yi);
			if (yb == d->s.oh) break;
		}
	}
}

void ae_dconv_forward_rows(float *y, const float *x, int n, const ae_dconv *d)
{
	int nr = tile_pixels(d), ic = d->s.ic, oc = d->s.oc;
	tile tl;
	tl.base = NULL;
	for (int p = 0; p < n; p += nr) {
		tl.np = n - p < nr ? n - p : nr;
		for (int j = 0; j < nr; j++) {
			int q = p + (j < tl.np ? j : tl.np - 1);
			tl.ptr[j] = x + (size_t)q * ic;
			tl.out[j] = y + (size_t)q * oc;
		}
		tile_run(&tl, d, 1, d->w);
	}
}

/* ---- layout ---- */

/* dst (cols x rows) = transpose of src (rows x cols), both row-major,
 * except the block [0, r0) x [0, c0) that the vector kernel did; writes run
 * along dst's rows. */
static void transpose_portable(float *dst, const float *src, int rows, int cols, int r0, int c0)
{
	for (int c = 0; c < cols; c++)
		for (int r = c < c0 ? r0 : 0; r < rows; r++)
			dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

#ifdef AE_X86
AVX2 static void transpose8_avx2(float *dst, size_t ds, const float *src, size_t ss)
{
	__m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ss);
	__m256 r2 = _mm256_loadu_ps(src + 2 * ss), r3 = _mm256_loadu_ps(src + 3 * ss);
	__m256 r4 = _mm256_loadu_ps(src + 4 * ss), r5 = _mm256_loadu_ps(src + 5 * ss);
	__m256 r6 = _mm256_loadu_ps(src + 6 * ss), r7 = _mm256_loadu_ps(src + 7 * ss);
	__m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
	__m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
	__m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
	__m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
	__m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
	__m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
	__m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
	__m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
	_mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
	_mm256_storeu_ps(dst + ds, _mm256_permute2f128_ps(u1, u5, 0x20));
	_mm256_storeu_ps(dst + 2 * ds, _mm256_permute2f128_ps(u2, u6, 0x20));
	_mm256_storeu_ps(dst + 3 * ds, _mm256_permute2f128_ps(u3, u7, 0x20));
	_mm256_storeu_ps(dst + 4 * ds, _mm256_permute2f128_ps(u0, u4, 0x31));
	_mm256_storeu_ps(dst + 5 * ds, _mm256_permute2f128_ps(u1, u5, 0x31));
	_mm256_storeu_ps(dst + 6 * ds, _mm256_permute2f128_ps(u2, u6, 0x31));
	_mm256_storeu_ps(dst + 7 * ds, _mm256_permute2f128_ps(u3, u7, 0x31));
}

AVX2 static void transpose_blocks_avx2(float *dst, const float *src, int rows, int cols, int r0, int c0)
{
	for (int r = 0; r < r0; r += 8)
		for (int c = 0; c < c0; c += 8)
			transpose8_avx2(dst + (size_t)c * rows + r, (size_t)rows, src + (size_t)r * cols + c,
			                (size_t)cols);
}
#endif

/* Images of 2 to 4 channels (gray+alpha, RGB, RGBA) move between planes
 * and pixels 16 pixels at a time: each of the c vectors on the interleaved
 * side takes its values from the c planes by c masked permutes. The general
 * transpose works in 8 x 8 blocks, so for these it fell to the scalar loop:
 * 3% of a 128x128x3 reconstruct. */
#define FEW_CHANNELS 4

/* For interleaved vector k and plane ch: which lanes come from that plane
 * (mask) and from which of its 16 lanes (idx). */
typedef struct few_map {
	uint16_t mask[FEW_CHANNELS][FEW_CHANNELS];
	int32_t idx[FEW_CHANNELS][FEW_CHANNELS][16];
} few_map;

static void few_map_init(few_map *m, int c)
{
	memset(m, 0, sizeof *m);
	for (int e = 0; e < 16 * c; e++) {
		int k = e / 16, lane = e % 16, px = e / c, ch = e % c;
		m->mask[k][ch] |= (uint16_t)(1u << lane);
		m->idx[k][ch][lane] = px;
	}
}

#ifdef AE_X86
/* 16 pixels: c planes (at src + ch * ps) to c vectors of pixels at dst. */
AVX512 static void few_to_pixels(float *dst, const float *src, size_t ps, int c, const few_map *m)
{
	__m512 plane[FEW_CHANNELS];
	for (int ch = 0; ch < c; ch++)
		plane[ch] = _mm512_loadu_ps(src + ch * ps);
	for (int k = 0; k < c; k++) {
		__m512 v = _mm512_setzero_ps();
		for (int ch = 0; ch < c; ch++)
			v = _mm512_mask_permutexvar_ps(v, m->mask[k][ch], _mm512_loadu_si512(m->idx[k][ch]), plane[ch]);
		_mm512_storeu_ps(dst + 16 * k, v);
	}
}

/* The inverse: c vectors of 16 interleaved pixels at src to c planes. A
 * plane's lane px is interleaved value px * c + ch: in vector k, at a lane
 * that few_map gives in reverse. */
AVX512 static void few_to_planes(float *dst, size_t ps, const float *src, int c, const few_map *inv)
{
	__m512 pix[FEW_CHANNELS];
	for (int k = 0; k < c; k++)
		pix[k] = _mm512_loadu_ps(src + 16 * k);
	for (int ch = 0; ch < c; ch++) {
		__m512 v = _mm512_setzero_ps();
		for (int k = 0; k < c; k++)
			v = _mm512_mask_permutexvar_ps(v, inv->mask[ch][k], _mm512_loadu_si512(inv->idx[ch][k]),
			                               pix[k]);
		_mm512_storeu_ps(dst + ch * ps, v);
	}
}
#endif

/* For few_to_planes: plane ch's lane px comes from vector (px*c+ch) / 16. */
static void few_map_inverse(few_map *m, int c)
{
	memset(m, 0, sizeof *m);
	for (int ch = 0; ch < c; ch++)
		for (int px = 0; px < 16; px++) {
			int e = px * c + ch;
			m->mask[ch][e / 16] |= (uint16_t)(1u << px);
			m->idx[ch][e / 16][px] = e % 16;
		}
}

/* n images of c channels and p pixels: planes to interleaved pixels
 * (to_pixels) or back, by the vector kernels and the scalar loop for the
 * last p % 16 pixels. Returns 0, having done nothing, unless the CPU has
 * AVX-512 and c is 2 to FEW_CHANNELS. */
static int few_channels(float *dst, const float *src, int n, int c, int p, int to_pixels)
{
#ifdef AE_X86
	if (c < 2 || c > FEW_CHANNELS || ae_cpu_simd() < AE_SIMD_AVX512) return 0;
	few_map m;
	if (to_pixels)
		few_map_init(&m, c);
	else
		few_map_inverse(&m, c);
	const int p16 = p / 16 * 16;
	for (int i = 0; i < n; i++, src += (size_t)c * p, dst += (size_t)c * p) {
		for (int q = 0; q < p16; q += 16) {
			if (to_pixels)
				few_to_pixels(dst + (size_t)q * c, src + q, (size_t)p, c, &m);
			else
				few_to_planes(dst + q, (size_t)p, src + (size_t)q * c, c, &m);
		}
		if (to_pixels)
			transpose_portable(dst, src, c, p, c, p16);
		else
			transpose_portable(dst, src, p, c, p16, c);
	}
	return 1;
#else
	(void)dst, (void)src, (void)n, (void)c, (void)p, (void)to_pixels;
	return 0;
#endif
}

static void transpose(float *dst, const float *src, int rows, int cols)
{
	int r0 = rows / 8 * 8, c0 = cols / 8 * 8;
#ifdef AE_X86
	if (cpu_has_avx2()) {
		transpose_blocks_avx2(dst, src, rows, cols, r0, c0);
		transpose_portable(dst, src, rows, cols, r0, c0);
		return;
	}
#endif
	transpose_portable(dst, src, rows, cols, 0, 0);
}

void ae_nchw_to_nhwc(float *dst, const float *src, int n, int c, int p)
{
	if (few_channels(dst, src, n, c, p, 1)) return;
	for (int i = 0; i < n; i++, src += (size_t)c * p, dst += (size_t)c * p)
		transpose(dst, src, c, p);
}

void ae_nhwc_to_nchw(float *dst, const float *src, int n, int c, int p)
{
	if (few_channels(dst, src, n, c, p, 0)) return;
	for (int i = 0; i < n; i++, src += (size_t)c * p, dst += (size_t)c * p)
		transpose(dst, src, p, c);
}
