/*
 * What the fuzz targets share: the small served model of srv_fixture.h, for
 * the server's parsers, and the input as a string.
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

#include "../srv_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline srv_model *fuzz_model(void)
{
	return srv_fixture_model();
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
