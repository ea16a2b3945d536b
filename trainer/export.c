/*
 * `aetrain export DATA --out DIR`: writes images of a data set as PNG files
 * (and optionally one JSON request body), corrupted if asked, so that a
 * model can be tried with curl on real test images: noisy digits for the
 * denoiser, clothes for the digit model's anomaly detector.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "ae/dataset.h"
#include "ae/noise.h"
#include "ae/fileio.h"
#include "ae/image.h"
#include "cli.h"

static void export_usage(FILE *f)
{
	fprintf(f, "usage: aetrain export DATA --out DIR [options]\n"
	           "\n"
	           "Writes images of DATA as DIR/NNNNN.png (the data set's index), for trying a served model.\n"
	           "\n"
	           "  --out DIR           folder to write (created if missing)\n"
	           "  --split NAME        test (default) or train, for a folder of IDX files\n"
	           "  --first N           first image to write (default 0)\n"
	           "  --limit N           how many (default 10)\n"
	           "  --channels C        1 (default) or 3\n"
	           "  --noise SPEC        corrupt the images: gaussian:MEAN:STD or saltpepper:P\n"
	           "  --seed N            seed for the corruption (default 1)\n"
	           "  --json FILE         also write one JSON request body {\"shape\", \"data\"} of them\n");
}

static int write_json(const char *path, const float *x, int n, int c, int h, int w)
{
	ae_atomic_file af;
	ae_error err = { 0 };
	if (ae_atomic_open(&af, path, &err)) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		return -1;
	}
	fprintf(af.fp, "{\"shape\":[%d,%d,%d,%d],\"data\":[", n, c, h, w);
	size_t total = (size_t)n * c * h * w;
	for (size_t i = 0; i < total; i++)
		fprintf(af.fp, "%s%.6g", i ? "," : "", x[i]);
	fprintf(af.fp, "]}\n");
	if (ae_atomic_commit(&af, &err)) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		return -1;
	}
	return 0;
}

int cmd_export(int argc, char **argv)
{
	enum { O_OUT = 1000, O_SPLIT, O_FIRST, O_LIMIT, O_CHANNELS, O_NOISE, O_SEED, O_JSON, O_HELP };
	static const struct option lo[] = {
		{ "out", 1, 0, O_OUT },           { "split", 1, 0, O_SPLIT },
		{ "first", 1, 0, O_FIRST },       { "limit", 1, 0, O_LIMIT },
		{ "channels", 1, 0, O_CHANNELS }, { "noise", 1, 0, O_NOISE },
		{ "seed", 1, 0, O_SEED },         { "json", 1, 0, O_JSON },
		{ "help", 0, 0, O_HELP },         { 0, 0, 0, 0 },
	};
	const char *out = NULL, *json = NULL;
	char split[8] = "test";
	long first = 0, limit = 10, channels = 1;
	uint64_t seed = 1;
	ae_noise nz = { 0 };
	ae_error err = { 0 };
	int o;
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case O_OUT: out = optarg; break;
		case O_JSON: json = optarg; break;
		case O_SPLIT:
			if (cli_split(optarg, split, sizeof split)) return 2;
			break;
		case O_FIRST:
			if (cli_int("--first", optarg, 0, 100000000, &first)) return 2;
			break;
		case O_LIMIT:
			if (cli_int("--limit", optarg, 1, 100000, &limit)) return 2;
			break;
		case O_CHANNELS:
			if (cli_int("--channels", optarg, 1, 3, &channels) || channels == 2) {
				if (channels == 2) fprintf(stderr, "aetrain: --channels: must be 1 or 3\n");
				return 2;
			}
			break;
		case O_NOISE:
			if (ae_noise_parse(&nz, optarg, &err)) {
				fprintf(stderr, "aetrain: --noise: %s\n", err.msg);
				return 2;
			}
			break;
		case O_SEED:
			if (cli_u64("--seed", optarg, &seed)) return 2;
			break;
		case O_HELP: export_usage(stdout); return 0;
		default:
			fprintf(stderr, "aetrain: export: unknown option or missing value: %s\n", argv[optind - 1]);
			return 2;
		}
	}
	if (argc - optind != 1 || !out) {
		fprintf(stderr, "aetrain: export: expected DATA and --out DIR (see aetrain export --help)\n");
		return 2;
	}
	ae_dataset ds;
	if (ae_dataset_load(&ds, argv[optind], split, (int)channels, &err)) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		return 1;
	}
	if (first >= ds.n) {
		fprintf(stderr, "aetrain: --first %ld: %s has only %d images\n", first, ds.source, ds.n);
		ae_dataset_free(&ds);
		return 1;
	}
	int n = (int)(first + limit > ds.n ? ds.n - first : limit);
	size_t per = (size_t)ds.c * ds.h * ds.w;
	float *x = malloc((size_t)n * per * sizeof(float));
	int *idx = malloc((size_t)n * sizeof(int));
	uint8_t *u8 = malloc(per);
	int rc = x && idx && u8 ? 0 : 1;
	mkdir(out, 0755);
	for (int i = 0; rc == 0 && i < n; i++)
		idx[i] = (int)first + i;
	if (rc == 0) {
		ae_dataset_batch(&ds, idx, n, x);
		ae_noise_corrupt(&nz, x, x, (size_t)n * per, seed, 0x6578706f7274, 0);
	}
	for (int i = 0; rc == 0 && i < n; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%05d.png", out, idx[i]);
		ae_float_to_u8(u8, x + (size_t)i * per, per);
		if (ae_png_write_file(path, u8, ds.c, ds.h, ds.w, &err)) {
			fprintf(stderr, "aetrain: %s\n", err.msg);
			rc = 1;
		}
	}
	if (rc == 0 && json) rc = write_json(json, x, n, ds.c, ds.h, ds.w) ? 1 : 0;
	if (rc == 0) printf("wrote %d images to %s%s%s\n", n, out, json ? " and " : "", json ? json : "");
	free(x), free(idx), free(u8);
	ae_dataset_free(&ds);
	return rc;
}
