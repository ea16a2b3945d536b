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

/* Images per row of a sheet: wide enough to stay a compact PNG, narrow
 * enough for any browser's canvas. */
enum { SHEET_COLUMNS = 20 };

static void export_usage(FILE *f)
{
	fprintf(f,
	        "usage: aetrain export DATA --out DIR [options]\n"
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
	        "  --json FILE         also write one JSON request body {\"shape\", \"data\"} of them\n"
	        "  --sheet PREFIX      also write them as one image, PREFIX.png (rows of %d), and their\n"
	        "                      labels as PREFIX.json (the playground's map of codes reads both)\n",
	        SHEET_COLUMNS);
}

/* PREFIX.png: the n images tiled SHEET_COLUMNS to a row (black after the
 * last); PREFIX.json: {"tile":[C,H,W],"columns","count","labels"}. */
static int write_sheet(const char *prefix, const uint8_t *pix, const int16_t *labels, int n, int c, int h, int w)
{
	int cols = n < SHEET_COLUMNS ? n : SHEET_COLUMNS, rows = (n + cols - 1) / cols;
	size_t W = (size_t)cols * w, H = (size_t)rows * h;
	uint8_t *sheet = calloc(W * H * (size_t)c, 1);
	if (!sheet) return fprintf(stderr, "aetrain: out of memory\n"), -1;
	for (int i = 0; i < n; i++)
		for (int ch = 0; ch < c; ch++)
			for (int y = 0; y < h; y++)
				memcpy(sheet + ((size_t)ch * H + (size_t)(i / cols) * h + y) * W +
				               (size_t)(i % cols) * w,
				       pix + (((size_t)i * c + ch) * h + y) * w, (size_t)w);
	char path[4096];
	ae_error err = { 0 };
	snprintf(path, sizeof path, "%s.png", prefix);
	int rc = ae_png_write_file(path, sheet, c, (int)H, (int)W, &err);
	free(sheet);
	if (rc) return fprintf(stderr, "aetrain: %s\n", err.msg), -1;
	ae_atomic_file af;
	snprintf(path, sizeof path, "%s.json", prefix);
	if (ae_atomic_open(&af, path, &err)) return fprintf(stderr, "aetrain: %s\n", err.msg), -1;
	fprintf(af.fp, "{\"tile\":[%d,%d,%d],\"columns\":%d,\"count\":%d,\"labels\":[", c, h, w, cols, n);
	for (int i = 0; i < n; i++)
		fprintf(af.fp, "%s%d", i ? "," : "", labels ? labels[i] : -1);
	fprintf(af.fp, "]}\n");
	if (ae_atomic_commit(&af, &err)) return fprintf(stderr, "aetrain: %s\n", err.msg), -1;
	return 0;
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
	enum { O_OUT = 1000, O_SPLIT, O_FIRST, O_LIMIT, O_CHANNELS, O_NOISE, O_SEED, O_JSON, O_SHEET, O_HELP };
	static const struct option lo[] = {
		{ "out", 1, 0, O_OUT },
		{ "split", 1, 0, O_SPLIT },
		{ "first", 1, 0, O_FIRST },
		{ "limit", 1, 0, O_LIMIT },
		{ "channels", 1, 0, O_CHANNELS },
		{ "noise", 1, 0, O_NOISE },
		{ "seed", 1, 0, O_SEED },
		{ "json", 1, 0, O_JSON },
		{ "sheet", 1, 0, O_SHEET },
		{ "help", 0, 0, O_HELP },
		{ 0, 0, 0, 0 },
	};
	const char *out = NULL, *json = NULL, *sheet = NULL;
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
		case O_SHEET: sheet = optarg; break;
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
			if (cli_channels(optarg, &channels)) return 2;
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
	uint8_t *u8 = malloc((size_t)n * per);
	int16_t *lab = ds.labels ? malloc((size_t)n * sizeof(int16_t)) : NULL;
	int rc = x && idx && u8 && (lab || !ds.labels) ? 0 : 1;
	mkdir(out, 0755);
	for (int i = 0; rc == 0 && i < n; i++) {
		idx[i] = (int)first + i;
		if (lab) lab[i] = ds.labels[idx[i]];
	}
	if (rc == 0) {
		ae_dataset_batch(&ds, idx, n, x);
		ae_noise_corrupt(&nz, x, x, (size_t)n * per, seed, 0x6578706f7274, 0);
		ae_float_to_u8(u8, x, (size_t)n * per);
	}
	for (int i = 0; rc == 0 && i < n; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%05d.png", out, idx[i]);
		if (ae_png_write_file(path, u8 + (size_t)i * per, ds.c, ds.h, ds.w, &err)) {
			fprintf(stderr, "aetrain: %s\n", err.msg);
			rc = 1;
		}
	}
	if (rc == 0 && json) rc = write_json(json, x, n, ds.c, ds.h, ds.w) ? 1 : 0;
	if (rc == 0 && sheet) rc = write_sheet(sheet, u8, lab, n, ds.c, ds.h, ds.w) ? 1 : 0;
	if (rc == 0) printf("wrote %d images to %s%s%s\n", n, out, json ? " and " : "", json ? json : "");
	free(x), free(idx), free(u8), free(lab);
	ae_dataset_free(&ds);
	return rc;
}
