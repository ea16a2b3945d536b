/*
 * What the fuzz targets share: a small model served the way aeserve serves
 * one (28x28 gray, latent 5), built once, for the server's parsers.
 *
 * Every target runs under libFuzzer with ASan and UBSan (make fuzz), with
 * the memory limits of the code it exercises (tests/fuzz/run.sh says
 * which); a crash, leak, timeout or allocation past the limit is a finding.
 */
#ifndef AE_FUZZ_H
#define AE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline srv_model *fuzz_model(void)
{
	static srv_model sm;
	if (!sm.plan) {
		ae_arch_spec s;
		ae_arch_defaults(&s, "conv", NULL);
		s.f1 = 4, s.f2 = 8, s.latent = 5;
		sm.m = ae_model_new(&s, 1, NULL);
		sm.plan = ae_plan_new(sm.m, NULL);
		snprintf(sm.name, sizeof sm.name, "fuzz");
		sm.c = s.c, sm.h = s.h, sm.w = s.w, sm.latent = s.latent;
		sm.image_size = (size_t)s.c * s.h * s.w;
	}
	return &sm;
}

/* The input as a NUL-terminated string (callers free). */
static inline char *fuzz_str(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);
	memcpy(s, d, n);
	s[n] = '\0';
	return s;
}

#endif
