/*
 * Compact codes: half floats bit-exact against the compiler's _Float16
 * conversion (round to nearest even) over every half and a sweep of
 * floats; int8 within half a step of the value, clamped, and its scale.
 */
#include "test.h"

#include <stdint.h>

#include "ae/codes.h"

static uint32_t bits(float x)
{
	uint32_t u;
	memcpy(&u, &x, sizeof u);
	return u;
}

static void test_f16(void)
{
	int bad = 0;
	/* Every half reads back as itself (NaNs stay NaN). */
	for (uint32_t h = 0; h < 0x10000u; h++) {
		float x = ae_f16_to_f32((uint16_t)h);
		uint16_t back = ae_f32_to_f16(x);
		bad += isnan(x) ? !((back & 0x7c00u) == 0x7c00u && (back & 0x3ffu)) : back != h;
	}
	CHECK_MSG(bad == 0, "%d halves do not read back", bad);
#ifdef __FLT16_MAX__
	/* Floats to halves as the compiler converts them: a stride over every
	 * bit pattern (exponents, subnormals, ties), and each half's midpoints. */
	bad = 0;
	for (uint64_t u = 0; u < 0x100000000ull; u += 4099) {
		uint32_t v = (uint32_t)u;
		float x;
		memcpy(&x, &v, sizeof x);
		if (isnan(x)) continue;
		_Float16 ref = (_Float16)x;
		uint16_t r;
		memcpy(&r, &ref, sizeof r);
		bad += ae_f32_to_f16(x) != r;
	}
	for (uint32_t h = 0; h < 0x7c00u; h++) {
		float mid = (ae_f16_to_f32((uint16_t)h) + ae_f16_to_f32((uint16_t)(h + 1))) / 2.0f;
		_Float16 ref = (_Float16)mid;
		uint16_t r;
		memcpy(&r, &ref, sizeof r);
		bad += ae_f32_to_f16(mid) != r;
	}
	CHECK_MSG(bad == 0, "%d floats convert unlike _Float16", bad);
#endif
	CHECK(ae_f32_to_f16(65504.0f) == 0x7bffu);
	CHECK(ae_f32_to_f16(1e6f) == 0x7c00u);
	CHECK(ae_f32_to_f16(-0.0f) == 0x8000u);
	CHECK(bits(ae_f16_to_f32(0x3c00u)) == bits(1.0f));
	CHECK(ae_f16_to_f32(0x0001u) == ldexpf(1.0f, -24));
}

static void test_int8(void)
{
	enum { N = 200, D = 4 };
	float z[N * D], back[N * D], scale[D];
	int8_t q[N * D];
	ae_rng r;
	ae_rng_seed(&r, 7);
	for (int i = 0; i < N * D; i++)
		z[i] = (float)(ae_rng_normal(&r) * (1 + i % D) * 3.0);
	z[3] = 0.0f;
	ae_codes_int8_scale(z, N, D, scale);
	float big[D] = { 0 };
	for (int i = 0; i < N * D; i++)
		big[i % D] = fmaxf(big[i % D], fabsf(z[i]));
	for (int d = 0; d < D; d++)
		CHECK_CLOSE(scale[d], big[d] / 127.0f, 1e-6);
	ae_codes_to_int8(z, N, D, scale, q);
	ae_codes_from_int8(q, N, D, scale, back);
	int far = 0;
	for (int i = 0; i < N * D; i++)
		far += fabsf(back[i] - z[i]) > scale[i % D] * 0.5f + 1e-6f;
	CHECK_MSG(far == 0, "%d values further than half a step", far);
	float out_of_range[D] = { 1e3f, -1e3f, 0.0f, NAN };
	int8_t qq[D];
	ae_codes_to_int8(out_of_range, 1, D, scale, qq);
	CHECK(qq[0] == 127 && qq[1] == -127 && qq[2] == 0 && qq[3] == 0);
	memcpy(back, z, sizeof z);
	ae_codes_round_trip(AE_CODE_INT8, back, N, D, scale);
	float again[N * D];
	ae_codes_from_int8(q, N, D, scale, again);
	int differ = 0;
	for (int i = 0; i < N * D; i++)
		differ += back[i] != again[i];
	CHECK(differ == 0);
	CHECK(ae_code_bytes(AE_CODE_F32, 16) == 64 && ae_code_bytes(AE_CODE_F16, 16) == 32 &&
	      ae_code_bytes(AE_CODE_INT8, 16) == 16);
	CHECK(ae_code_format_find("int8") == AE_CODE_INT8 && ae_code_format_find("fp16") == -1);
}

int main(void)
{
	test_f16();
	test_int8();
	return TEST_DONE();
}
