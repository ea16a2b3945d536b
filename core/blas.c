/*
 * OpenBLAS's kernels, checked against the CPU (see ae/blas.h for why).
 */
#include "ae/blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

const char *ae_blas_core(void)
{
	return openblas_get_corename();
}

/* Cores whose kernels use neither AVX2 nor AVX-512 (OpenBLAS's names). */
static int weak_core(const char *core)
{
	static const char *const weak[] = { "prescott",    "core2",       "penryn",    "dunnington", "nehalem",
		                            "sandybridge", "atom",        "katmai",    "coppermine", "northwood",
		                            "banias",      "opteron",     "barcelona", "bobcat",     "bulldozer",
		                            "piledriver",  "steamroller", "excavator", "unknown" };
	for (size_t i = 0; i < sizeof weak / sizeof *weak; i++)
		if (strcasecmp(core, weak[i]) == 0) return 1;
	return 0;
}

const char *ae_blas_better_core(void)
{
	if (getenv("OPENBLAS_CORETYPE")) return NULL;
	const char *core = openblas_get_corename();
	if (!core || !weak_core(core)) return NULL;
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
		return "SkylakeX";
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
	return NULL;
}

void ae_blas_tune(char **argv)
{
	const char *want = ae_blas_better_core();
	if (!want || setenv("OPENBLAS_CORETYPE", want, 1) != 0) return;
	execv("/proc/self/exe", argv);
	/* No /proc, or no exec: the kernels we have still give right answers. */
	unsetenv("OPENBLAS_CORETYPE");
}
