/*
 * Corruption for denoising (see ae/noise.h): its text form and its
 * application to batches from named random streams.
 */
#include "ae/noise.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int ae_noise_parse(ae_noise *nz, const char *s, ae_error *err)
{
	memset(nz, 0, sizeof *nz);
	char tail;
	float a, b;
	if (strcmp(s, "none") == 0) return AE_OK;
	if (sscanf(s, "gaussian:%f:%f%c", &a, &b, &tail) == 2) {
		if (!isfinite(a) || !isfinite(b) || b < 0.0f || fabsf(a) > 1.0f || b > 10.0f)
			return ae_fail(err, AE_ERR_INVAL,
			               "gaussian noise needs |MEAN| <= 1 and 0 <= STD <= 10, got '%s'", s);
		nz->kind = AE_NOISE_GAUSSIAN, nz->a = a, nz->b = b;
		return AE_OK;
	}
	if (sscanf(s, "saltpepper:%f%c", &a, &tail) == 1) {
		if (!(a >= 0.0f && a <= 1.0f))
			return ae_fail(err, AE_ERR_INVAL, "salt-and-pepper probability must be in [0, 1], got '%s'", s);
		nz->kind = AE_NOISE_SALTPEPPER, nz->a = a;
		return AE_OK;
	}
	return ae_fail(err, AE_ERR_INVAL, "bad corruption '%s' (expected none, gaussian:MEAN:STD or saltpepper:P)", s);
}

void ae_noise_format(const ae_noise *nz, char *buf, size_t cap)
{
	switch (nz->kind) {
	case AE_NOISE_GAUSSIAN: snprintf(buf, cap, "gaussian:%g:%g", nz->a, nz->b); break;
	case AE_NOISE_SALTPEPPER: snprintf(buf, cap, "saltpepper:%g", nz->a); break;
	default: snprintf(buf, cap, "none");
	}
}

void ae_noise_apply(const ae_noise *nz, float *x, size_t n, ae_rng *r)
{
	if (nz->kind == AE_NOISE_GAUSSIAN) {
		for (size_t i = 0; i < n; i++) {
			float v = x[i] + nz->a + nz->b * ae_rng_normal(r);
			x[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
		}
	} else if (nz->kind == AE_NOISE_SALTPEPPER) {
		for (size_t i = 0; i < n; i++)
			if (ae_rng_uniform(r) < nz->a) x[i] = ae_rng_uniform(r) < 0.5f ? 0.0f : 1.0f;
	}
}

void ae_noise_corrupt(const ae_noise *nz, float *dst, const float *src, size_t n, uint64_t seed, uint64_t tag,
                      uint64_t index)
{
	if (dst != src) memcpy(dst, src, n * sizeof *dst);
	ae_rng r;
	ae_rng_seed_stream(&r, seed, tag, index);
	ae_noise_apply(nz, dst, n, &r);
}
