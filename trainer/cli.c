/*
 * Option-value parsing and data loading shared by the aetrain subcommands.
 */
#include "cli.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ae/parse.h"

int cli_int(const char *opt, const char *s, long lo, long hi, long *out)
{
	ae_error err;
	if (ae_parse_long(s, lo, hi, out, &err) == 0) return 0;
	fprintf(stderr, "aetrain: %s: %s\n", opt, err.msg);
	return -1;
}

int cli_float(const char *opt, const char *s, double lo, double hi, double *out)
{
	ae_error err;
	if (ae_parse_double(s, lo, hi, out, &err) == 0) return 0;
	fprintf(stderr, "aetrain: %s: %s\n", opt, err.msg);
	return -1;
}

int cli_u64(const char *opt, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-') {
		fprintf(stderr, "aetrain: %s: '%s' is not a non-negative integer\n", opt, s);
		return -1;
	}
	*out = v;
	return 0;
}

int cli_split(const char *v, char *out, size_t cap)
{
	if (strcmp(v, "train") != 0 && strcmp(v, "test") != 0) {
		fprintf(stderr, "aetrain: --split: '%s' is neither train nor test\n", v);
		return -1;
	}
	snprintf(out, cap, "%s", v);
	return 0;
}

int cli_load_data(ae_dataset *ds, const char *path, const char *split, const ae_arch_spec *spec, long limit)
{
	ae_error err = { 0 };
	if (ae_dataset_load(ds, path, split, spec->c, &err)) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		return -1;
	}
	if (ds->h != spec->h || ds->w != spec->w) {
		fprintf(stderr, "aetrain: %s: images are %dx%d, the model takes %dx%d\n", ds->source, ds->w, ds->h,
		        spec->w, spec->h);
		ae_dataset_free(ds);
		return -1;
	}
	if (limit > 0 && limit < ds->n) ds->n = (int)limit;
	return 0;
}

int cli_threads(long n)
{
	if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0) n = 1;
	if (n > AE_MAX_THREADS) n = AE_MAX_THREADS; /* one per core, as far as the engine goes */
	/* The trainer's lanes and inference's split work themselves; inside
	 * a lane, OpenBLAS's own threads would only compete for the cores. */
	openblas_set_num_threads(1);
	return (int)n;
}

void cli_sibling(char *out, size_t cap, const char *model_path, const char *suffix)
{
	const char *dot = strrchr(model_path, '.');
	const char *slash = strrchr(model_path, '/');
	size_t stem = (dot && (!slash || dot > slash)) ? (size_t)(dot - model_path) : strlen(model_path);
	snprintf(out, cap, "%.*s%s", (int)stem, model_path, suffix);
}
