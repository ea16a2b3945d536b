/*
 * Compact latent codes: half floats and scaled int8 (ae/codes.h).
 */
#include "ae/codes.h"

#include <math.h>
#include <string.h>

static const char *const names[AE_CODE_FORMATS] = { "f32", "f16", "int8" };

int ae_code_format_find(const char *name)
{
	for (int f = 0; f < AE_CODE_FORMATS; f++)
		if (strcmp(name, names[f]) == 0) return f;
	return -1;
}

const char *ae_code_format_name(ae_code_format f)
{
	return f >= 0 && f < AE_CODE_FORMATS ? names[f] : "?";
}

size_t ae_code_bytes(ae_code_format f, int dim)
{
	static const size_t per[AE_CODE_FORMATS] = { 4, 2, 1 };
	return per[f] * (size_t)dim;
}

/* Bit-exact IEEE 754 binary32 -> binary16, round to nearest even, with
 * subnormals, infinities and NaN (as F16C's vcvtps2ph does). */
uint16_t ae_f32_to_f16(float x)
{
	uint32_t u;
	memcpy(&u, &x, sizeof u);
	uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
	uint32_t a = u & 0x7fffffffu;
	if (a >= 0x7f800000u) return sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u); /* NaN, Inf */
	if (a >= 0x477ff000u) return sign | 0x7c00u;                               /* rounds past 65504 */
	if (a < 0x38800000u) {                                                     /* a half subnormal or 0 */
		if (a < 0x33000000u) return sign;                                  /* under half the least */
		uint32_t m = (a & 0x7fffffu) | 0x800000u;
		int shift = 126 - (int)(a >> 23); /* 14..24: bits below the half's last */
		uint32_t half = m >> shift, rest = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
		if (rest > mid || (rest == mid && (half & 1u))) half++;
		return sign | (uint16_t)half;
	}
	uint32_t h = ((a >> 13) - (112u << 10)); /* rebias 127 -> 15 */
	uint32_t rest = a & 0x1fffu;
	if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++; /* a carry into the exponent is right */
	return sign | (uint16_t)h;
}

float ae_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
	if (e == 0x1f)
		u = sign | 0x7f800000u | (m << 13);
	else if (e)
		u = sign | ((e + 112u) << 23) | (m << 13);
	else if (!m)
		u = sign;
	else { /* subnormal: normalise */
		int s = 0;
		while (!(m & 0x400u))
			m <<= 1, s++;
		u = sign | ((uint32_t)(113 - s) << 23) | ((m & 0x3ffu) << 13);
	}
	float x;
	memcpy(&x, &u, sizeof x);
	return x;
}

void ae_codes_int8_scale(const float *z, int n, int dim, float *scale)
{
	for (int d = 0; d < dim; d++) {
		float big = 0.0f;
		for (int i = 0; i < n; i++)
			big = fmaxf(big, fabsf(z[(size_t)i * dim + d]));
		scale[d] = big > 0.0f && isfinite(big) ? big / 127.0f : 1.0f;
	}
}

void ae_codes_to_int8(const float *z, int n, int dim, const float *scale, int8_t *q)
{
	for (size_t i = 0; i < (size_t)n * dim; i++) {
		float v = rintf(z[i] / scale[i % (size_t)dim]);
		q[i] = (int8_t)(v > 127.0f ? 127 : v < -127.0f ? -127 : isnan(v) ? 0 : (int)v);
	}
}

void ae_codes_from_int8(const int8_t *q, int n, int dim, const float *scale, float *z)
{
	for (size_t i = 0; i < (size_t)n * dim; i++)
		z[i] = (float)q[i] * scale[i % (size_t)dim];
}

void ae_codes_round_trip(ae_code_format f, float *z, int n, int dim, const float *scale)
{
	size_t total = (size_t)n * dim;
	if (f == AE_CODE_F16)
		for (size_t i = 0; i < total; i++)
			z[i] = ae_f16_to_f32(ae_f32_to_f16(z[i]));
	else if (f == AE_CODE_INT8)
		for (size_t i = 0; i < total; i++) {
			int8_t q;
			ae_codes_to_int8(z + i, 1, 1, scale + i % (size_t)dim, &q);
			z[i] = (float)q * scale[i % (size_t)dim];
		}
}
