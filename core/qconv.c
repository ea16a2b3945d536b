/*
 * Reduced-precision stages (see qconv.h): compiling a layer into int8 or
 * bf16 weights over the float kernels' tap groups, converting a stage's
 * input, and the tile kernels: AVX512-VNNI and AVX512_BF16 ones, chosen
 * when the CPU has them, and portable ones that compute the same.
 *
 * A tile is NRQ output pixels (or rows) x two blocks of 16 output
 * channels: 28 accumulators, two weight vectors and a broadcast in the 32
 * registers, as the float AVX-512 tile. Each instruction does 64 (int8)
 * or 32 (bf16) multiply-adds where a float FMA does 16.
 */
#include "qconv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define AE_QX86 1
#endif

#define NRQ   14 /* output pixels per tile */
#define BLOCK 16 /* output channels per vector */
#define MAX_K AE_DCONV_MAX_K

/* Input values per 32-bit group the instructions take. */
static int per_group(int prec)
{
	return prec == AE_PREC_INT8 ? 4 : 2;
}

static size_t elem_size(int prec)
{
	return prec == AE_PREC_INT8 ? 1 : 2;
}

/* Whether the CPU has AVX-VNNI's 256-bit instructions in their VEX form
 * (without it, AE_QSIMD_YMM runs their EVEX form of AVX512-VNNI): CPUID
 * leaf 7, sub-leaf 1, EAX bit 4 (not every compiler's
 * __builtin_cpu_supports knows the name). The OS saving the YMM state is
 * the caller's check (ae_cpu_simd). */
static int has_avxvnni(void)
{
#ifdef AE_QX86
	unsigned a, b, c, d;
	return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1u);
#else
	return 0;
#endif
}

/* The compiler's checks ask the OS too (XGETBV) for the wider registers. */
int ae_qconv_supported(int prec)
{
	if (prec == AE_PREC_FP32) return AE_QSIMD_ZMM;
#ifdef AE_QX86
	const int simd = ae_cpu_simd();
	__builtin_cpu_init();
	if (prec == AE_PREC_INT8 && simd >= AE_SIMD_AVX512 && __builtin_cpu_supports("avx512vnni") &&
	    __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
		return AE_QSIMD_ZMM;
	if (prec == AE_PREC_INT8 && simd >= AE_SIMD_AVX2 && has_avxvnni()) return AE_QSIMD_YMM;
	if (prec == AE_PREC_BF16 && simd >= AE_SIMD_AVX512 && __builtin_cpu_supports("avx512bf16") &&
	    __builtin_cpu_supports("avx512bw"))
		return AE_QSIMD_ZMM;
#endif
	return AE_QSIMD_NONE;
}

/* float32 to bfloat16, to nearest, ties to even (as vcvtneps2bf16). */
static uint16_t to_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
	return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

static float from_bf16(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* ---- compiling ---- */

/* Input quantization from the calibrated range, widened to hold 0. */
static void input_scale(ae_qconv *q, float lo, float hi)
{
	if (!(lo <= 0.0f)) lo = 0.0f;
	if (!(hi >= 0.0f)) hi = 0.0f;
	if (!(hi - lo > 1e-30f)) hi = lo + 1.0f;
	q->in_inv = 255.0f / (hi - lo);
	float zp = nearbyintf(-lo * q->in_inv);
	q->in_zp = zp < 0.0f ? 0.0f : zp > 255.0f ? 255.0f : zp;
}

/* Output channel o's weight scale: its largest magnitude over 127. */
static float weight_scale(const ae_dconv_shape *s, const float *w, int o)
{
	float m = 0.0f;
	for (int c = 0; c < s->ic; c++)
		for (int ky = 0; ky < s->k; ky++)
			for (int kx = 0; kx < s->k; kx++) {
				float v = fabsf(ae_dconv_weight_at(s, w, o, c, ky, kx));
				if (v > m) m = v;
			}
	return m > 0.0f ? m / 127.0f : 1.0f;
}

/* Packs group g (taps ty, tx) into q->w at wp; int8 also sums each
 * output channel's weights into acc0. */
static void pack_group(ae_qconv *q, const ae_dconv_shape *s, const float *w, const float *sw, int g, const int *ty,
                       const int *tx, int nt, size_t at)
{
	const int k = per_group(q->prec), ngr = q->icp / k;
	int32_t *acc0 = q->prec == AE_PREC_INT8 ? q->acc0 + (size_t)g * q->ocp : NULL;
	for (int o = 0; o < q->ocp; o++) {
		int32_t sum = 0;
		for (int t = 0; t < nt; t++)
			for (int c = 0; c < q->icp; c++) {
				float v = o < s->oc && c < s->ic ? ae_dconv_weight_at(s, w, o, c, ty[t], tx[t]) : 0.0f;
				size_t i = at +
				           ((((size_t)(o / BLOCK) * nt + t) * ngr + c / k) * BLOCK + o % BLOCK) * k +
				           c % k;
				if (q->prec == AE_PREC_INT8) {
					float r = nearbyintf(v / sw[o]);
					int8_t qv = (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : r);
					((int8_t *)q->w)[i] = qv;
					sum += qv;
				} else {
					((uint16_t *)q->w)[i] = to_bf16(v);
				}
			}
		if (acc0) acc0[o] = -(int32_t)q->in_zp * sum;
	}
}

static void copy_epilogue(ae_qconv *q, const ae_epilogue *ep, const float *sw)
{
	for (int o = 0; o < q->ocp; o++) {
		int in = o < q->oc;
		q->bias[o] = in && ep && ep->bias ? ep->bias[o] : 0.0f;
		q->scale[o] = in && ep && ep->scale ? ep->scale[o] : 1.0f;
		q->shift[o] = in && ep && ep->shift ? ep->shift[o] : 0.0f;
		q->wscale[o] = sw ? sw[o] / q->in_inv : 1.0f;
	}
	q->act = ep ? ep->act : AE_ACT_NONE;
	q->slope = ep ? ep->slope : 0.0f;
}

int ae_qconv_init(ae_qconv *q, const ae_dconv_shape *s, const float *w, const ae_epilogue *ep, int prec, float lo,
                  float hi, int simd)
{
	memset(q, 0, sizeof *q);
	if (prec != AE_PREC_INT8 && prec != AE_PREC_BF16) return -1;
	const int k = per_group(prec);
	q->prec = prec;
	q->ic = s->ic, q->icp = (s->ic + k - 1) / k * k;
	q->oc = s->oc, q->ocp = (s->oc + BLOCK - 1) / BLOCK * BLOCK;
	const int top = ae_qconv_supported(prec);
	q->simd = simd < top ? simd : top;
	if (prec == AE_PREC_BF16 && q->simd == AE_QSIMD_YMM) q->simd = AE_QSIMD_NONE; /* no 256-bit bf16 kernel */
	q->vex = q->simd == AE_QSIMD_YMM && has_avxvnni();
	ae_dconv_shape gs = *s;
	gs.ic = q->icp;
	if (ae_dconv_init(&q->g, &gs, NULL, NULL)) return -1;
	size_t n_w = 0;
	int ty[MAX_K * MAX_K], tx[MAX_K * MAX_K];
	for (int g = 0; g < q->g.n_grp; g++) {
		int nt = ae_dconv_group_taps(s, g, ty, tx);
		n_w += (size_t)nt * q->icp * q->ocp;
		if (nt > q->ntap_max) q->ntap_max = nt;
	}
	q->w = aligned_alloc(64, (n_w * elem_size(prec) + 63) / 64 * 64 + 64);
	q->acc0 = calloc((size_t)q->g.n_grp * q->ocp, sizeof *q->acc0);
	q->wscale = malloc((size_t)q->ocp * 4 * sizeof(float));
	q->pad = malloc((size_t)q->icp * elem_size(prec));
	float *sw = malloc((size_t)q->ocp * sizeof *sw);
	if (!q->w || !q->acc0 || !q->wscale || !q->pad || !sw) {
		free(sw);
		ae_qconv_deinit(q);
		return -1;
	}
	q->bias = q->wscale + q->ocp;
	q->scale = q->bias + q->ocp;
	q->shift = q->scale + q->ocp;
	if (prec == AE_PREC_INT8) {
		input_scale(q, lo, hi);
		for (int o = 0; o < q->ocp; o++)
			sw[o] = o < s->oc ? weight_scale(s, w, o) : 1.0f;
		memset(q->pad, (int)q->in_zp, (size_t)q->icp);
	} else {
		q->in_inv = 1.0f;
		memset(q->pad, 0, (size_t)q->icp * 2);
	}
	size_t at = 0;
	for (int g = 0; g < q->g.n_grp; g++) {
		int nt = ae_dconv_group_taps(s, g, ty, tx);
		pack_group(q, s, w, sw, g, ty, tx, nt, at);
		q->g.grp[g].w_at = at;
		at += (size_t)nt * q->icp * q->ocp;
	}
	copy_epilogue(q, ep, prec == AE_PREC_INT8 ? sw : NULL);
	free(sw);
	return 0;
}

void ae_qconv_deinit(ae_qconv *q)
{
	ae_dconv_deinit(&q->g);
	free(q->w);
	free(q->acc0);
	free(q->wscale);
	free(q->pad);
	memset(q, 0, sizeof *q);
}

size_t ae_qconv_scratch(const ae_qconv *q, int n)
{
	size_t px = (size_t)q->g.s.ih * q->g.s.iw;
	return (size_t)n * px * q->icp * elem_size(q->prec) + 64;
}

/* ---- converting the input ---- */

static uint8_t quantize_one(float x, const ae_qconv *q)
{
	float f = x * q->in_inv;
	f = f + q->in_zp;
	f = fminf(fmaxf(f, 0.0f), 255.0f);
	return (uint8_t)nearbyintf(f);
}

#ifdef AE_QX86
#define QAVX512       __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))
#define VNNI          __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")))
#define BF16          __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define ALWAYS_INLINE __attribute__((always_inline))

/* 16 values at a time, as quantize_one: the same operations. */
QAVX512 static void quantize_row16(uint8_t *dst, const float *x, int n, const ae_qconv *q)
{
	const __m512 inv = _mm512_set1_ps(q->in_inv), zp = _mm512_set1_ps(q->in_zp);
	const __m512 z = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f);
	int c = 0;
	for (; c + 16 <= n; c += 16) {
		__m512 f = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(x + c), inv), zp);
		f = _mm512_min_ps(_mm512_max_ps(f, z), top);
		_mm_storeu_si128((__m128i *)(dst + c), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(f)));
	}
	for (; c < n; c++)
		dst[c] = quantize_one(x[c], q);
}

BF16 static void bf16_row16(uint16_t *dst, const float *x, int n)
{
	int c = 0;
	for (; c + 16 <= n; c += 16) {
		__m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x + c));
		_mm256_storeu_si256((__m256i *)(dst + c), (__m256i)h);
	}
	for (; c < n; c++)
		dst[c] = to_bf16(x[c]);
}
#endif

/* rows (rows, ic) of x into (rows, icp) of the stage's input type; the
 * padding channels read as 0. */
static void convert(void *dst, const float *x, size_t rows, const ae_qconv *q)
{
	const int ic = q->ic, icp = q->icp;
	const int dense = ic == icp;
	for (size_t r = 0; r < rows; r++) {
		const float *xr = x + r * ic;
		if (q->prec == AE_PREC_INT8) {
			uint8_t *d = (uint8_t *)dst + r * icp;
#ifdef AE_QX86
			if (q->simd == AE_QSIMD_ZMM && dense) {
				quantize_row16(d, xr, ic, q);
				continue;
			}
#endif
			for (int c = 0; c < icp; c++)
				d[c] = c < ic ? quantize_one(xr[c], q) : (uint8_t)q->in_zp;
		} else {
			uint16_t *d = (uint16_t *)dst + r * icp;
#ifdef AE_QX86
			if (q->simd == AE_QSIMD_ZMM && dense) {
				bf16_row16(d, xr, ic);
				continue;
			}
#endif
			for (int c = 0; c < icp; c++)
				d[c] = c < ic ? to_bf16(xr[c]) : 0;
		}
		(void)dense;
	}
}

/* ---- tiles ---- */

typedef struct qtile {
	const unsigned char *ptr[MAX_K * MAX_K * NRQ]; /* tap t, pixel j: ptr[t * NRQ + j] */
	float *out[NRQ];
	int np; /* valid pixels (the rest repeat the last) */
} qtile;

static float epilogue_one(const ae_qconv *q, float v, int o)
{
	switch (q->act) {
	case AE_ACT_RELU: v = fmaxf(v, 0.0f); break;
	case AE_ACT_LRELU: v = fmaf(q->slope, fminf(v, 0.0f), fmaxf(v, 0.0f)); break;
	case AE_ACT_SIGMOID: v = 1.0f / (1.0f + expf(-v)); break;
	default: break;
	}
	return fmaf(v, q->scale[o], q->shift[o]);
}

/* The sum of output o before the epilogue's activation: int8's scaled
 * integer sum, or bf16's float one, plus the bias. */
static float sum_to_float(const ae_qconv *q, float acc, int o)
{
	return q->prec == AE_PREC_INT8 ? fmaf(acc, q->wscale[o], q->bias[o]) : acc + q->bias[o];
}

/* Channels [o, o + 16) of one pixel from their int8 sums, through the
 * portable epilogue (its operations are those of the vector ones). */
static void store16_i8(float *out, const int32_t *acc, const ae_qconv *q, int o)
{
	for (int i = 0; i < BLOCK && o + i < q->oc; i++)
		out[o + i] = epilogue_one(q, sum_to_float(q, (float)acc[i], o + i), o + i);
}

static void tile_portable(const qtile *tl, const ae_qconv *q, int ntaps, const void *w, const int32_t *acc0)
{
	const int k = per_group(q->prec), ngr = q->icp / k;
	const size_t bs = (size_t)ntaps * q->icp * BLOCK;
	for (int j = 0; j < tl->np; j++)
		for (int o = 0; o < q->oc; o++) {
			const size_t wo = (size_t)(o / BLOCK) * bs + (size_t)(o % BLOCK) * k;
			float v;
			if (q->prec == AE_PREC_INT8) {
				int32_t acc = acc0[o];
				for (int t = 0; t < ntaps; t++) {
					const uint8_t *x = tl->ptr[t * NRQ + j];
					const int8_t *wt = (const int8_t *)w + wo + (size_t)t * ngr * BLOCK * k;
					for (int c = 0; c < q->icp; c++)
						acc += (int32_t)x[c] * wt[(size_t)(c / k) * BLOCK * k + c % k];
				}
				v = (float)acc;
			} else {
				float acc = 0.0f;
				for (int t = 0; t < ntaps; t++) {
					const uint16_t *x = (const uint16_t *)tl->ptr[t * NRQ + j];
					const uint16_t *wt = (const uint16_t *)w + wo + (size_t)t * ngr * BLOCK * k;
					for (int c = 0; c < q->icp; c += 2) {
						const uint16_t *wc = wt + (size_t)(c / 2) * BLOCK * 2;
						/* the instruction's order: the odd product, then the even */
						acc += from_bf16(x[c + 1]) * from_bf16(wc[1]);
						acc += from_bf16(x[c]) * from_bf16(wc[0]);
					}
				}
				v = acc;
			}
			tl->out[j][o] = epilogue_one(q, sum_to_float(q, v, o), o);
		}
}

#ifdef AE_QX86
/* 16 sums of channels [o, o + 16) through the epilogue to out (masked
 * past oc); v holds int8's integer sums or bf16's float ones. */
QAVX512 static inline void store16(float *out, __m512 v, const ae_qconv *q, int o)
{
	if (q->prec == AE_PREC_INT8)
		v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_castps_si512(v)), _mm512_loadu_ps(q->wscale + o),
		                    _mm512_loadu_ps(q->bias + o));
	else
		v = _mm512_add_ps(v, _mm512_loadu_ps(q->bias + o));
	const int nv = q->oc - o < BLOCK ? q->oc - o : BLOCK;
	if (q->act == AE_ACT_SIGMOID) {
		float raw[BLOCK];
		_mm512_storeu_ps(raw, v);
		for (int i = 0; i < nv; i++)
			out[o + i] = epilogue_one(q, raw[i], o + i);
		return;
	}
	const __m512 z = _mm512_setzero_ps();
	if (q->act == AE_ACT_RELU)
		v = _mm512_max_ps(v, z);
	else if (q->act == AE_ACT_LRELU)
		v = _mm512_fmadd_ps(_mm512_set1_ps(q->slope), _mm512_min_ps(v, z), _mm512_max_ps(v, z));
	v = _mm512_fmadd_ps(v, _mm512_loadu_ps(q->scale + o), _mm512_loadu_ps(q->shift + o));
	_mm512_mask_storeu_ps(out + o, (__mmask16)((1u << nv) - 1), v);
}

/* The epilogue of one block of 16 channels, its vectors loaded once per
 * tile. */
typedef struct ep16q {
	__m512 ws, bias, scale, shift, slope;
} ep16q;

QAVX512 static inline ep16q ep16q_load(const ae_qconv *q, int o)
{
	return (ep16q){ _mm512_loadu_ps(q->wscale + o), _mm512_loadu_ps(q->bias + o), _mm512_loadu_ps(q->scale + o),
		        _mm512_loadu_ps(q->shift + o), _mm512_set1_ps(q->slope) };
}

/* As store16 for a whole block and an activation other than the sigmoid:
 * the same operations in the same order. */
QAVX512 static inline __m512 ep16q_apply(const ep16q *e, const ae_qconv *q, __m512i acc)
{
	__m512 v = q->prec == AE_PREC_INT8 ? _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), e->ws, e->bias)
	                                   : _mm512_add_ps(_mm512_castsi512_ps(acc), e->bias);
	const __m512 z = _mm512_setzero_ps();
	if (q->act == AE_ACT_RELU)
		v = _mm512_max_ps(v, z);
	else if (q->act == AE_ACT_LRELU)
		v = _mm512_fmadd_ps(e->slope, _mm512_min_ps(v, z), _mm512_max_ps(v, z));
	return _mm512_fmadd_ps(v, e->scale, e->shift);
}

/* A tile's sums a[j][b] through the epilogue to its pixels. */
QAVX512 static inline void store_tile(const qtile *tl, const ae_qconv *q, __m512i (*a)[2], int o0, const int nb)
{
	if (q->act == AE_ACT_SIGMOID || o0 + BLOCK * nb > q->oc) {
		for (int j = 0; j < tl->np; j++)
			for (int b = 0; b < nb; b++)
				store16(tl->out[j], _mm512_castsi512_ps(a[j][b]), q, o0 + BLOCK * b);
		return;
	}
	const ep16q e0 = ep16q_load(q, o0), e1 = nb > 1 ? ep16q_load(q, o0 + BLOCK) : e0;
	for (int j = 0; j < tl->np; j++) {
		_mm512_storeu_ps(tl->out[j] + o0, ep16q_apply(&e0, q, a[j][0]));
		if (nb > 1) _mm512_storeu_ps(tl->out[j] + o0 + BLOCK, ep16q_apply(&e1, q, a[j][1]));
	}
}

static inline int32_t load32(const unsigned char *p)
{
	int32_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* One tile, channels [o0, o0 + 16 nb), int8 or bf16 (a constant where
 * inlined): w is block o0 / 16's weights, the next block bs values on. */
#define TILE_BODY(DOT, INIT0, INIT1)                                                                   \
	__m512i a[NRQ][2];                                                                             \
	_Pragma("GCC unroll 14") for (int j = 0; j < NRQ; j++)                                         \
	{                                                                                              \
		a[j][0] = INIT0;                                                                       \
		a[j][1] = INIT1;                                                                       \
	}                                                                                              \
	for (int t = 0; t < ntaps; t++) {                                                              \
		const unsigned char *const *pt = tl->ptr + t * NRQ;                                    \
		const unsigned char *wt = wb + (size_t)t * ngr * 64;                                   \
		for (int c = 0; c < ngr; c++) {                                                        \
			const __m512i w0 = _mm512_loadu_si512(wt + (size_t)c * 64);                    \
			const __m512i w1 = nb > 1 ? _mm512_loadu_si512(wt + bs + (size_t)c * 64) : w0; \
			_Pragma("GCC unroll 14") for (int j = 0; j < NRQ; j++)                         \
			{                                                                              \
				const __m512i x = _mm512_set1_epi32(load32(pt[j] + (size_t)c * 4));    \
				a[j][0] = DOT(a[j][0], x, w0);                                         \
				if (nb > 1) a[j][1] = DOT(a[j][1], x, w1);                             \
			}                                                                              \
		}                                                                                      \
	}                                                                                              \
	store_tile(tl, q, a, o0, nb);

#define DOT_I8(a, x, w) _mm512_dpbusd_epi32(a, x, w)
#define DOT_BF(a, x, w) _mm512_castps_si512(_mm512_dpbf16_ps(_mm512_castsi512_ps(a), (__m512bh)(x), (__m512bh)(w)))

VNNI ALWAYS_INLINE static inline void tile_i8(const qtile *tl, const ae_qconv *q, int ntaps, const unsigned char *wb,
                                              size_t bs, const int32_t *acc0, int o0, const int nb)
{
	const int ngr = q->icp / 4;
	const __m512i i0 = _mm512_loadu_si512(acc0 + o0);
	const __m512i i1 = nb > 1 ? _mm512_loadu_si512(acc0 + o0 + BLOCK) : i0;
	TILE_BODY(DOT_I8, i0, i1)
}

VNNI static void tile_i8_1(const qtile *tl, const ae_qconv *q, int ntaps, const unsigned char *wb, size_t bs,
                           const int32_t *acc0, int o0)
{
	tile_i8(tl, q, ntaps, wb, bs, acc0, o0, 1);
}

VNNI static void tile_i8_2(const qtile *tl, const ae_qconv *q, int ntaps, const unsigned char *wb, size_t bs,
                           const int32_t *acc0, int o0)
{
	tile_i8(tl, q, ntaps, wb, bs, acc0, o0, 2);
}

BF16 ALWAYS_INLINE static inline void tile_bf(const qtile *tl, const ae_qconv *q, int ntaps, const unsigned char *wb,
                                              size_t bs, int o0, const int nb)
{
	const int ngr = q->icp / 2;
	const __m512i zero = _mm512_setzero_si512();
	TILE_BODY(DOT_BF, zero, zero)
}

BF16 static void tile_bf_1(const qtile *tl, const ae_qconv *q, int ntaps, const unsigned char *wb, size_t bs,
                           const int32_t *acc0, int o0)
{
	(void)acc0;
	tile_bf(tl, q, ntaps, wb, bs, o0, 1);
}

BF16 static void tile_bf_2(const qtile *tl, const ae_qconv *q, int ntaps, const unsigned char *wb, size_t bs,
                           const int32_t *acc0, int o0)
{
	(void)acc0;
	tile_bf(tl, q, ntaps, wb, bs, o0, 2);
}

typedef void qkernel(const qtile *tl, const ae_qconv *q, int ntaps, const unsigned char *wb, size_t bs,
                     const int32_t *acc0, int o0);

/* A tile through every block of output channels, two at a time. */
static void tile_simd(const qtile *tl, const ae_qconv *q, int ntaps, const void *w, const int32_t *acc0)
{
	const size_t bs = (size_t)ntaps * q->icp * BLOCK * elem_size(q->prec); /* bytes a block */
	qkernel *two = q->prec == AE_PREC_INT8 ? tile_i8_2 : tile_bf_2;
	qkernel *one = q->prec == AE_PREC_INT8 ? tile_i8_1 : tile_bf_1;
	const unsigned char *wb = w;
	int o0 = 0;
	for (; o0 + 2 * BLOCK <= q->ocp; o0 += 2 * BLOCK, wb += 2 * bs)
		two(tl, q, ntaps, wb, bs, acc0, o0);
	if (o0 < q->ocp) one(tl, q, ntaps, wb, bs, acc0, o0);
}
#endif

#ifdef AE_QX86
/* ---- int8 on 256-bit vectors: AVX-VNNI (VEX) or AVX512-VNNI (EVEX) ---- */

#define NRY 6 /* pixels per 256-bit tile: 12 sums, two weights and a broadcast in 16 registers */

/* Pixels [j0, j0 + NRY) of a tile (the last repeated past NRQ) x one
 * block of 16 channels, as two vectors of 8: the zmm kernel's packing
 * read half a row at a time. The sums and the epilogue are the zmm
 * kernel's (store16 per pixel, through a 16-wide buffer). */
#define TILE_YMM(NAME, TARGET, DOT)                                                                                 \
	TARGET static void NAME(const qtile *tl, const ae_qconv *q, int ntaps, const unsigned char *wb, int j0,     \
	                        const int32_t *acc0, int o0)                                                        \
	{                                                                                                           \
		const int ngr = q->icp / 4;                                                                         \
		const __m256i i0 = _mm256_loadu_si256((const __m256i *)(acc0 + o0));                                \
		const __m256i i1 = _mm256_loadu_si256((const __m256i *)(acc0 + o0 + 8));                            \
		__m256i a[NRY][2];                                                                                  \
		for (int j = 0; j < NRY; j++)                                                                       \
			a[j][0] = i0, a[j][1] = i1;                                                                 \
		for (int t = 0; t < ntaps; t++) {                                                                   \
			const unsigned char *pj[NRY];                                                               \
			for (int j = 0; j < NRY; j++)                                                               \
				pj[j] = tl->ptr[t * NRQ + (j0 + j < NRQ ? j0 + j : NRQ - 1)];                       \
			const unsigned char *wt = wb + (size_t)t * ngr * 64;                                        \
			for (int c = 0; c < ngr; c++) {                                                             \
				const __m256i w0 = _mm256_loadu_si256((const __m256i *)(wt + (size_t)c * 64));      \
				const __m256i w1 = _mm256_loadu_si256((const __m256i *)(wt + (size_t)c * 64 + 32)); \
				for (int j = 0; j < NRY; j++) {                                                     \
					const __m256i x = _mm256_set1_epi32(load32(pj[j] + (size_t)c * 4));         \
					a[j][0] = DOT(a[j][0], x, w0);                                              \
					a[j][1] = DOT(a[j][1], x, w1);                                              \
				}                                                                                   \
			}                                                                                           \
		}                                                                                                   \
		for (int j = 0; j < NRY && j0 + j < tl->np; j++) {                                                  \
			int32_t v[16];                                                                              \
			_mm256_storeu_si256((__m256i *)v, a[j][0]);                                                 \
			_mm256_storeu_si256((__m256i *)(v + 8), a[j][1]);                                           \
			store16_i8(tl->out[j0 + j], v, q, o0);                                                      \
		}                                                                                                   \
	}

TILE_YMM(tile_i8_vex, __attribute__((target("avxvnni,avx2,fma"))), _mm256_dpbusd_avx_epi32)
TILE_YMM(tile_i8_evex, __attribute__((target("avx512vnni,avx512vl,avx512f,avx2,fma"))), _mm256_dpbusd_epi32)

static void tile_ymm(const qtile *tl, const ae_qconv *q, int ntaps, const void *w, const int32_t *acc0)
{
	const size_t bs = (size_t)ntaps * q->icp * BLOCK;
	const unsigned char *wb = w;
	for (int o0 = 0; o0 < q->ocp; o0 += BLOCK, wb += bs)
		for (int j0 = 0; j0 < tl->np; j0 += NRY) {
			if (q->vex)
				tile_i8_vex(tl, q, ntaps, wb, j0, acc0, o0);
			else
				tile_i8_evex(tl, q, ntaps, wb, j0, acc0, o0);
		}
}
#endif

static void tile_run(const qtile *tl, const ae_qconv *q, int ntaps, const void *w, const int32_t *acc0)
{
#ifdef AE_QX86
	if (q->simd == AE_QSIMD_ZMM) {
		tile_simd(tl, q, ntaps, w, acc0);
		return;
	}
	if (q->simd == AE_QSIMD_YMM) {
		tile_ymm(tl, q, ntaps, w, acc0);
		return;
	}
#endif
	tile_portable(tl, q, ntaps, w, acc0);
}

/* ---- forward ---- */

void ae_qconv_forward(float *y, const float *x, int n, const ae_qconv *q, void *scratch)
{
	const ae_dconv *d = &q->g;
	const size_t esz = elem_size(q->prec), ipx = (size_t)d->s.ih * d->s.iw, opx = (size_t)d->s.oh * d->s.ow;
	convert(scratch, x, (size_t)n * ipx, q);
	qtile tl;
	for (int i = 0; i < n; i++) {
		const unsigned char *xi = (const unsigned char *)scratch + (size_t)i * ipx * q->icp * esz;
		float *yi = y + (size_t)i * opx * q->oc;
		for (int gi = 0; gi < d->n_grp; gi++) {
			const ae_dconv_group *g = &d->grp[gi];
			const void *w = (const unsigned char *)q->w + g->w_at * esz;
			const int32_t *acc0 = q->acc0 + (size_t)gi * q->ocp;
			for (int p0 = 0; p0 < g->npix; p0 += NRQ) {
				tl.np = g->npix - p0 < NRQ ? g->npix - p0 : NRQ;
				for (int j = 0; j < NRQ; j++) {
					int p = p0 + (j < tl.np ? j : tl.np - 1);
					const int32_t *off = d->off + g->off_at + (size_t)p * g->ntaps;
					for (int t = 0; t < g->ntaps; t++)
						tl.ptr[t * NRQ + j] = off[t] < 0 ? q->pad : xi + (size_t)off[t] * esz;
					tl.out[j] = yi + (size_t)d->pix[g->pix_at + p] * q->oc;
				}
				tile_run(&tl, q, g->ntaps, w, acc0);
			}
		}
	}
}

void ae_qconv_forward_rows(float *y, const float *x, int n, const ae_qconv *q, void *scratch)
{
	const size_t esz = elem_size(q->prec);
	convert(scratch, x, (size_t)n, q);
	qtile tl;
	for (int p0 = 0; p0 < n; p0 += NRQ) {
		tl.np = n - p0 < NRQ ? n - p0 : NRQ;
		for (int j = 0; j < NRQ; j++) {
			int r = p0 + (j < tl.np ? j : tl.np - 1);
			tl.ptr[j] = (const unsigned char *)scratch + (size_t)r * q->icp * esz;
			tl.out[j] = y + (size_t)r * q->oc;
		}
		tile_run(&tl, q, 1, q->w, q->acc0);
	}
}
