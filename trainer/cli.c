/*
 * Option-value parsing and data loading shared by the aetrain subcommands.
 */
#include "cli.h"
#include "ae/rng.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ae/parse.h"
#include "ae/scores.h"

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

int cli_text(const char *opt, const char *s, char *buf, size_t cap)
{
	if (strlen(s) >= cap) {
		fprintf(stderr, "aetrain: %s: longer than %zu characters\n", opt, cap - 1);
		return -1;
	}
	memcpy(buf, s, strlen(s) + 1);
	return 0;
}

int cli_channels(const char *s, long *out)
{
	long v;
	if (cli_int("--channels", s, 1, 3, &v)) return -1;
	if (v == 2) {
		fprintf(stderr, "aetrain: --channels: must be 1 or 3\n");
		return -1;
	}
	*out = v;
	return 0;
}

int cli_size(const char *opt, const char *s, int size[2])
{
	char *end;
	long h = strtol(s, &end, 10), w = 0;
	if (end != s && (*end == 'x' || *end == 'X')) {
		const char *p = end + 1;
		w = strtol(p, &end, 10);
		if (end == p) w = 0;
	}
	if (*end || h < 1 || w < 1 || h > AE_MAX_SIDE || w > AE_MAX_SIDE) {
		fprintf(stderr, "aetrain: %s: '%s' is not HEIGHTxWIDTH, each 1..%d (e.g. 32x32)\n", opt, s,
		        AE_MAX_SIDE);
		return -1;
	}
	size[0] = (int)h, size[1] = (int)w;
	return 0;
}

int cli_pair(ae_dataset *ds, const char *targets, const char *split, const ae_arch_spec *spec, const int resize[2],
             long limit)
{
	ae_dataset t;
	ae_error err = { 0 };
	if (cli_load_data(&t, targets, split, spec, resize, limit)) {
		ae_dataset_free(ds);
		return -1;
	}
	if (ae_dataset_pair(&t, ds, &err)) {
		fprintf(stderr, "aetrain: --targets: %s\n", err.msg);
		ae_dataset_free(&t);
		ae_dataset_free(ds);
		return -1;
	}
	*ds = t;
	return 0;
}

const int *cli_model_resize(const ae_model *m, int size[2])
{
	return m->train.resize[0] && sscanf(m->train.resize, "%dx%d", &size[0], &size[1]) == 2 ? size : NULL;
}

static int load(ae_dataset *ds, const char *path, const char *split, int c, const int resize[2], long limit)
{
	ae_error err = { 0 };
	if (ae_dataset_load_sized(ds, path, split, c, resize ? resize[0] : 0, resize ? resize[1] : 0, &err)) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		return -1;
	}
	if (limit > 0 && limit < ds->n) ds->n = (int)limit;
	return 0;
}

/* Every command here compares a model's output with the images it is
 * given (or trains it to give them back). */
static int same_shape(const ae_arch_spec *spec)
{
	ae_error err = { 0 };
	if (ae_arch_check_autoencoder(spec, &err) == AE_OK) return 0;
	fprintf(stderr, "aetrain: %s\n", err.msg);
	return -1;
}

int cli_load_data(ae_dataset *ds, const char *path, const char *split, const ae_arch_spec *spec, const int resize[2],
                  long limit)
{
	if (same_shape(spec) || load(ds, path, split, spec->c, resize, limit)) return -1;
	if (ds->h != spec->h || ds->w != spec->w) {
		fprintf(stderr,
		        "aetrain: %s: images are %dx%d (height x width), the model takes %dx%d: --resize %dx%d "
		        "resamples them\n",
		        ds->source, ds->h, ds->w, spec->h, spec->w, spec->h, spec->w);
		ae_dataset_free(ds);
		return -1;
	}
	return 0;
}

int cli_load_train_data(ae_dataset *ds, const char *path, const char *split, ae_arch_spec *spec, const int resize[2],
                        long limit)
{
	if (same_shape(spec) || load(ds, path, split, spec->c, resize, limit)) return -1;
	spec->h = ds->h, spec->w = ds->w;
	ae_error err = { 0 };
	if (ae_arch_validate(spec, &err)) {
		fprintf(stderr, "aetrain: %s: %s%s\n", ds->source, err.msg,
		        resize ? "" : " (--resize HxW resamples the images)");
		ae_dataset_free(ds);
		return -1;
	}
	return 0;
}

void cli_corrupt(const ae_noise *nz, const ae_transform *tf, float *dst, const float *src, int n, int c, int h, int w,
                 uint64_t seed, uint64_t tag, uint64_t index)
{
	ae_transform_apply(tf, dst, src, n, c, h, w, seed, tag ^ 0x7472616e73666fULL, index);
	/* a stream per image, as the transform draws: the same draws
	 * whichever batch or process holds it */
	const size_t per = (size_t)c * h * w;
	for (int i = 0; i < n; i++)
		ae_noise_corrupt(nz, dst + (size_t)i * per, dst + (size_t)i * per, per, seed, tag, index + (uint64_t)i);
}

void cli_batch(const ae_dataset *ds, const int *idx, int n, float *x, float *in, const ae_noise *nz,
               const ae_transform *tf, uint64_t seed, uint64_t tag, uint64_t index)
{
	ae_dataset_batch(ds, idx, n, x);
	if (ds->input) ae_dataset_batch_inputs(ds, idx, n, in);
	cli_corrupt(nz, tf, in, ds->input ? in : x, n, ds->c, ds->h, ds->w, seed, tag, index);
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

/* "1" or "0,2,5": a bit per class. */
static int parse_classes(const char *txt, uint64_t *mask)
{
	*mask = 0;
	const char *p = txt;
	while (*p) {
		char *end;
		long c = strtol(p, &end, 10);
		if (end == p || c < 0 || c >= AE_DATASET_MAX_CLASSES || (*end && *end != ',')) return -1;
		*mask |= 1ull << c;
		p = *end ? end + 1 : end;
	}
	return *mask ? 0 : -1;
}

/* "3:0.01": class and share. */
static int parse_contaminate(const char *txt, int *cls, double *frac)
{
	char *end;
	long c = strtol(txt, &end, 10);
	if (end == txt || *end != ':' || c < 0 || c >= AE_DATASET_MAX_CLASSES) return -1;
	char *end2;
	double f = strtod(end + 1, &end2);
	if (end2 == end + 1 || *end2 || !(f > 0.0 && f < 0.5)) return -1;
	*cls = (int)c, *frac = f;
	return 0;
}

int cli_check_selection(const char *classes, const char *contaminate)
{
	uint64_t mask;
	int cls;
	double frac;
	if (classes[0] && parse_classes(classes, &mask)) {
		fprintf(stderr, "aetrain: --classes: '%s' is not a list of class numbers 0 to %d (\"1\" or \"0,2\")\n",
		        classes, AE_DATASET_MAX_CLASSES - 1);
		return -1;
	}
	if (contaminate[0] && !classes[0]) {
		fprintf(stderr, "aetrain: --contaminate needs --classes\n");
		return -1;
	}
	if (contaminate[0] && parse_contaminate(contaminate, &cls, &frac)) {
		fprintf(stderr, "aetrain: --contaminate: '%s' is not CLASS:SHARE with a share in (0, 0.5)\n",
		        contaminate);
		return -1;
	}
	if (contaminate[0] && (mask >> cls & 1)) {
		fprintf(stderr, "aetrain: --contaminate: class %d is one of --classes\n", cls);
		return -1;
	}
	return 0;
}

int cli_select(ae_dataset *ds, const char *classes, const char *contaminate, uint64_t seed)
{
	uint64_t mask = 0;
	int cls = -1;
	double frac = 0.0;
	if (!classes[0]) return 0;
	if (cli_check_selection(classes, contaminate) || parse_classes(classes, &mask) ||
	    (contaminate[0] && parse_contaminate(contaminate, &cls, &frac)))
		return -1;
	ae_error err = { 0 };
	if (ae_dataset_select(ds, mask, cls, frac, seed, &err)) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		return -1;
	}
	return 0;
}

int *cli_split_indices(int n, double val, uint64_t seed, int *n_val)
{
	int *idx = malloc((size_t)(n ? n : 1) * sizeof *idx);
	if (!idx) return NULL;
	for (int i = 0; i < n; i++)
		idx[i] = i;
	ae_rng r;
	ae_rng_seed_stream(&r, seed, 0x73706c6974, 0);
	ae_rng_shuffle(&r, idx, n);
	*n_val = (int)(n * val + 0.5);
	if (val > 0 && *n_val < 1) *n_val = 1;
	return idx;
}

int cli_score_all(const ae_model *m, ae_infer *w, const ae_dataset *ds, double *out)
{
	enum { CHUNK = 256 };
	const size_t per = (size_t)ds->c * ds->h * ds->w;
	const int L = m->net.spec.latent;
	float *x = malloc(CHUNK * per * sizeof(float)), *y = malloc(CHUNK * per * sizeof(float));
	float *z = malloc((size_t)CHUNK * L * sizeof(float));
	int *idx = malloc(CHUNK * sizeof *idx), rc = x && y && z && idx ? 0 : -1;
	for (int at = 0; rc == 0 && at < ds->n; at += CHUNK) {
		int b = ds->n - at < CHUNK ? ds->n - at : CHUNK;
		for (int i = 0; i < b; i++)
			idx[i] = at + i;
		ae_dataset_batch(ds, idx, b, x);
		ae_infer_reconstruct(w, x, b, y, z);
		ae_model_scores(m, x, y, z, b, out + (size_t)at * AE_SCORE_COUNT);
	}
	free(x), free(y), free(z), free(idx);
	if (rc) fprintf(stderr, "aetrain: out of memory scoring %s\n", ds->source);
	return rc;
}

int cli_others(const ae_dataset *ds, const char *classes, ae_dataset *others)
{
	memset(others, 0, sizeof *others);
	uint64_t mask;
	if (!classes[0] || !ds->labels || parse_classes(classes, &mask)) return 0;
	const size_t bytes = (size_t)ds->n * ds->c * ds->h * ds->w;
	*others = *ds;
	others->pix = malloc(bytes ? bytes : 1);
	others->labels = malloc((size_t)ds->n * sizeof *others->labels);
	if (!others->pix || !others->labels) {
		ae_dataset_free(others);
		memset(others, 0, sizeof *others);
		fprintf(stderr, "aetrain: out of memory keeping the other classes\n");
		return -1;
	}
	memcpy(others->pix, ds->pix, bytes);
	memcpy(others->labels, ds->labels, (size_t)ds->n * sizeof *others->labels);
	ae_error err = { 0 };
	if (ae_dataset_select(others, ~mask, -1, 0.0, 0, &err)) { /* no other class: no choice to make */
		ae_dataset_free(others);
		memset(others, 0, sizeof *others);
	}
	return 0;
}
