/*
 * `aetrain eval` (reconstruction quality, per-class error, one-class AUROC)
 * and `aetrain encode` (latent codes to .npy or .csv).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ae/dataset.h"
#include "ae/stats.h"
#include "ae/noise.h"
#include "ae/fileio.h"
#include "ae/infer.h"
#include "ae/modelfile.h"
#include "ae/scores.h"
#include "ae/codes.h"
#include "ae/image.h"
#include "cli.h"
#include "precision.h"
#include "report.h"

#define CHUNK 256

typedef struct eval_opts {
	const char *model, *data, *out, *grid;
	char split[8];
	long limit, normal, threads;
	int noise_set;
	ae_noise noise;
	int resize[2];       /* --resize; 0x0: the model's own (if it was trained with one) */
	int codes;           /* --codes: the compression report */
	const char *targets; /* --targets DIR: DATA's pairs (a model trained on pairs) */
	int precision;       /* --precision: AE_PREC_* or AE_PREC_AUTO */
	int prec_set;
	long knn; /* --knn N: kNN-5 of the codes among N labelled training images */
} eval_opts;

static void eval_usage(FILE *f)
{
	fprintf(f, "usage: aetrain eval MODEL DATA [options]\n"
	           "       aetrain encode MODEL DATA --out FILE.npy|FILE.csv [options]\n"
	           "\n"
	           "eval reports the mean per-image MSE and PSNR of the model's output against the clean\n"
	           "images, the error per class where the data has labels, and with --normal-class the\n"
	           "one-class anomaly AUROC (score: reconstruction MSE; anomalies: every other class).\n"
	           "encode writes one latent code per image (.npy float32 (N, latent), or CSV with the\n"
	           "label first when the data has labels).\n"
	           "\n"
	           "  --split NAME        test (default) or train, for a folder of IDX files\n"
	           "  --noise SPEC        corrupt inputs first (default: the corruption the model was\n"
	           "                      trained with, so a denoising model is scored on denoising)\n"
	           "  --normal-class K    eval: the class taken as normal for AUROC\n"
	           "  --limit N           use only the first N images\n"
	           "  --resize HxW        resample the images to the model's size (default: as the model\n"
	           "                      was trained, if it was trained with --resize)\n"
	           "  --codes             eval: also the model as a compressor: for its code as f32, f16 and\n"
	           "                      int8, bytes per image and the MSE and PSNR of what decodes from\n"
	           "                      it; and the bytes of each image as PNG (lossless)\n"
	           "  --grid FILE.png     eval: the first 16 images (top), what the model was given (if it\n"
	           "                      was not the image itself) and its output, as one PNG\n"
	           "  --targets DIR       a model trained on pairs: DATA's images are its inputs, the PNGs\n"
	           "                      of the same names in DIR what it should give back\n"
	           "  --precision P       fp32 (default), bf16, int8 or auto (the fastest this CPU runs that the\n"
	           "                      model has what it needs for); eval then also prints the share of\n"
	           "                      images over the precision's own p99 threshold and, below fp32,\n"
	           "                      the change in MSE and the codes' cosine similarity against fp32\n"
	           "  --knn N             eval: kNN-5 accuracy of the codes among those of the first N images\n"
	           "                      of DATA's train split (labelled data)\n"
	           "  --threads N         threads (default: every core)\n"
	           "  --out FILE          encode: output file, .npy or .csv\n");
}

static int parse(eval_opts *o, int argc, char **argv, const char *cmd)
{
	enum {
		O_SPLIT = 1000,
		O_NOISE,
		O_NORMAL,
		O_LIMIT,
		O_THREADS,
		O_OUT,
		O_RESIZE,
		O_CODES,
		O_GRID,
		O_TARGETS,
		O_PRECISION,
		O_KNN,
		O_HELP
	};
	static const struct option lo[] = {
		{ "split", 1, 0, O_SPLIT },
		{ "noise", 1, 0, O_NOISE },
		{ "normal-class", 1, 0, O_NORMAL },
		{ "limit", 1, 0, O_LIMIT },
		{ "threads", 1, 0, O_THREADS },
		{ "out", 1, 0, O_OUT },
		{ "resize", 1, 0, O_RESIZE },
		{ "codes", 0, 0, O_CODES },
		{ "grid", 1, 0, O_GRID },
		{ "targets", 1, 0, O_TARGETS },
		{ "help", 0, 0, O_HELP },
		{ "precision", 1, 0, O_PRECISION },
		{ "knn", 1, 0, O_KNN },
		{ 0, 0, 0, 0 },
	};
	memset(o, 0, sizeof *o);
	snprintf(o->split, sizeof o->split, "test");
	o->normal = -1;
	ae_error err = { 0 };
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_SPLIT:
			if (cli_split(optarg, o->split, sizeof o->split)) return -1;
			break;
		case O_NOISE:
			if (ae_noise_parse(&o->noise, optarg, &err)) {
				fprintf(stderr, "aetrain: --noise: %s\n", err.msg);
				return -1;
			}
			o->noise_set = 1;
			break;
		case O_NORMAL:
			if (cli_int("--normal-class", optarg, 0, 32767, &o->normal)) return -1;
			break;
		case O_LIMIT:
			if (cli_int("--limit", optarg, 1, 100000000, &o->limit)) return -1;
			break;
		case O_THREADS:
			if (cli_int("--threads", optarg, 1, AE_MAX_THREADS, &o->threads)) return -1;
			break;
		case O_OUT: o->out = optarg; break;
		case O_CODES: o->codes = 1; break;
		case O_GRID: o->grid = optarg; break;
		case O_TARGETS: o->targets = optarg; break;
		case O_PRECISION:
			if ((o->precision = ae_precision_parse(optarg)) < AE_PREC_AUTO) {
				fprintf(stderr, "aetrain: --precision: '%s' is not fp32, bf16, int8 or auto\n", optarg);
				return -1;
			}
			o->prec_set = 1;
			break;
		case O_KNN:
			if (cli_int("--knn", optarg, 1, 1000000, &o->knn)) return -1;
			break;
		case O_RESIZE:
			if (cli_size("--resize", optarg, o->resize)) return -1;
			break;
		case O_HELP: eval_usage(stdout); exit(0);
		default:
			fprintf(stderr, "aetrain: %s: unknown option or missing value: %s\n", cmd, argv[optind - 1]);
			return -1;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "aetrain: %s: expected MODEL and DATA (see aetrain %s --help)\n", cmd, cmd);
		return -1;
	}
	o->model = argv[optind];
	o->data = argv[optind + 1];
	return 0;
}

static void teardown(ae_model *m, ae_plan *p, ae_infer *w, ae_dataset *ds);

/* Loads model, plan, worker and data; on failure prints the error, releases
 * what it loaded and returns -1. */
static int setup(const eval_opts *o, ae_model **m, ae_plan **p, ae_infer **w, ae_dataset *ds)
{
	ae_error err = { 0 };
	*p = NULL;
	*w = NULL;
	memset(ds, 0, sizeof *ds);
	int threads = cli_threads(o->threads);
	ae_plan_opts po = { 0 };
	if ((*m = ae_model_load(o->model, &err))) po.precision = ae_precision_resolve(*m, o->precision);
	if (!*m || !(*p = ae_plan_new_opts(*m, &po, &err)) || !(*w = ae_infer_new(*p, CHUNK, threads, &err))) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		teardown(*m, *p, *w, ds);
		return -1;
	}
	/* scores and thresholds as calibrated at the precision that runs */
	ae_model_use_precision(*m, ae_plan_precision(*p));
	int rs[2];
	const int *resize = o->resize[0] ? o->resize : cli_model_resize(*m, rs);
	if ((*m)->transform.kind == AE_TF_PAIRS && !o->targets) {
		fprintf(stderr, "aetrain: %s was trained on pairs: --targets DIR gives DATA's\n", o->model);
		teardown(*m, *p, *w, ds);
		return -1;
	}
	if (cli_load_data(ds, o->data, o->split, &(*m)->net.spec, resize, o->limit) ||
	    (o->targets && cli_pair(ds, o->targets, o->split, &(*m)->net.spec, resize, o->limit))) {
		teardown(*m, *p, *w, ds);
		return -1;
	}
	return 0;
}

static void teardown(ae_model *m, ae_plan *p, ae_infer *w, ae_dataset *ds)
{
	ae_dataset_free(ds);
	ae_infer_free(w);
	ae_plan_free(p);
	ae_model_free(m);
}

/* Per-image MSE of the model's output on corrupted inputs against the clean
 * images (mse), of the corrupted inputs themselves (noisy), and the anomaly
 * score MSE(recon(x), x) of the clean images (score). */
static int score_all(ae_infer *w, const ae_dataset *ds, const ae_noise *nz, const ae_transform *tf, double *mse,
                     double *noisy, double *score)
{
	const size_t per = (size_t)ds->c * ds->h * ds->w;
	float *x = malloc(CHUNK * per * sizeof(float)), *in = malloc(CHUNK * per * sizeof(float));
	float *y = malloc(CHUNK * per * sizeof(float));
	int *idx = malloc(CHUNK * sizeof(int));
	int rc = x && in && y && idx ? 0 : -1;
	for (int at = 0; rc == 0 && at < ds->n; at += CHUNK) {
		int b = ds->n - at < CHUNK ? ds->n - at : CHUNK;
		for (int i = 0; i < b; i++)
			idx[i] = at + i;
		cli_batch(ds, idx, b, x, in, nz, tf, 12345, 0x6576616c, (uint64_t)at);
		ae_infer_reconstruct(w, in, b, y, NULL);
		ae_mse_per_image(mse + at, y, x, b, per);
		ae_mse_per_image(noisy + at, in, x, b, per);
		if (nz->kind != AE_NOISE_NONE || tf->kind != AE_TF_NONE) ae_infer_reconstruct(w, x, b, y, NULL);
		ae_mse_per_image(score + at, y, x, b, per);
	}
	free(x), free(in), free(y), free(idx);
	return rc;
}

/* The model as a compressor: each code format's bytes and the error of
 * what decodes from it (PSNR of the mean MSE, as above), and each image's
 * size as PNG (lossless), over the whole data set. */
static int codes_report(const ae_model *m, ae_infer *w, const ae_dataset *ds)
{
	const size_t per = (size_t)ds->c * ds->h * ds->w;
	const int L = m->net.spec.latent;
	float *x = malloc(CHUNK * per * sizeof(float)), *y = malloc(CHUNK * per * sizeof(float));
	float *z = malloc((size_t)CHUNK * L * sizeof(float));
	int *idx = malloc(CHUNK * sizeof(int));
	double sq[AE_CODE_FORMATS] = { 0 }, png_bytes = 0;
	int rc = x && y && z && idx ? 0 : -1;
	if (rc) fprintf(stderr, "aetrain: out of memory\n");
	for (int at = 0; rc == 0 && at < ds->n; at += CHUNK) {
		int b = ds->n - at < CHUNK ? ds->n - at : CHUNK;
		for (int i = 0; i < b; i++)
			idx[i] = at + i;
		ae_dataset_batch(ds, idx, b, x);
		for (int f = 0; f < AE_CODE_FORMATS; f++) {
			if (f == AE_CODE_INT8 && !m->code_scale) continue;
			ae_infer_encode(w, x, b, z);
			ae_codes_round_trip((ae_code_format)f, z, b, L, m->code_scale);
			ae_infer_decode(w, z, b, y);
			for (size_t i = 0; i < (size_t)b * per; i++)
				sq[f] += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
		}
		for (int i = 0; rc == 0 && i < b; i++) {
			uint8_t *png = NULL;
			size_t len = 0;
			ae_error err = { 0 };
			if (ae_png_encode(ds->pix + (size_t)(at + i) * per, ds->c, ds->h, ds->w, &png, &len, &err)) {
				fprintf(stderr, "aetrain: %s\n", err.msg);
				rc = -1;
			}
			png_bytes += (double)len;
			free(png);
		}
	}
	for (int f = 0; rc == 0 && f < AE_CODE_FORMATS; f++) {
		if (f == AE_CODE_INT8 && !m->code_scale) {
			printf("code_int8: none (the model has no int8 scale; aetrain calibrate adds one)\n");
			continue;
		}
		double mse = sq[f] / ((double)ds->n * (double)per);
		printf("code_%s: bytes %zu, mse %.6f, psnr_db %.3f\n", ae_code_format_name((ae_code_format)f),
		       ae_code_bytes((ae_code_format)f, L), mse, 10.0 * log10(1.0 / mse));
	}
	if (rc == 0) printf("png: bytes %.1f (mean of %d images; lossless)\n", png_bytes / ds->n, ds->n);
	free(x), free(y), free(z), free(idx);
	return rc;
}

static double mean(const double *v, int n)
{
	double s = 0;
	for (int i = 0; i < n; i++)
		s += v[i];
	return n ? s / n : NAN;
}

/* One-class AUROC of every score the model has, class `normal` against
 * the rest (scores of the clean images). */
static int auroc_all(const ae_model *m, ae_infer *w, const ae_dataset *ds, long normal)
{
	if (!ds->labels) {
		fprintf(stderr, "aetrain: --normal-class needs labelled data; %s has none\n", ds->source);
		return -1;
	}
	double *s = malloc((size_t)ds->n * AE_SCORE_COUNT * sizeof *s), *col = malloc((size_t)ds->n * sizeof *col);
	int *pos = malloc((size_t)ds->n * sizeof *pos), npos = 0, rc = 0;
	if (!s || !col || !pos) {
		fprintf(stderr, "aetrain: out of memory\n");
		rc = -1;
	}
	for (int i = 0; rc == 0 && i < ds->n; i++)
		npos += pos[i] = ds->labels[i] != normal;
	if (rc == 0 && (npos == 0 || npos == ds->n)) {
		fprintf(stderr, "aetrain: --normal-class %ld: the data needs both that class and others\n", normal);
		rc = -1;
	}
	if (rc == 0) rc = cli_score_all(m, w, ds, s);
	for (int k = 0; rc == 0 && k < AE_SCORE_COUNT; k++) {
		int ok = 1;
		for (int i = 0; i < ds->n; i++)
			ok &= !isnan(col[i] = s[(size_t)i * AE_SCORE_COUNT + k]);
		/* The plain name for mse, as before there were other scores. */
		if (ok && k == AE_SCORE_MSE)
			printf("auroc_normal_class_%ld: %.4f\n", normal, ae_auroc(col, pos, (size_t)ds->n));
		if (ok)
			printf("auroc_normal_class_%ld_%s: %.4f\n", normal, ae_score_name((ae_score_kind)k),
			       ae_auroc(col, pos, (size_t)ds->n));
	}
	free(s), free(col), free(pos);
	return rc;
}

int cmd_eval(int argc, char **argv)
{
	eval_opts o;
	if (parse(&o, argc, argv, "eval")) return 2;
	ae_model *m = NULL;
	ae_plan *p = NULL;
	ae_infer *w = NULL;
	ae_dataset ds;
	if (setup(&o, &m, &p, &w, &ds)) return 1;
	const ae_noise nz = o.noise_set ? o.noise : m->noise;
	double *mse = malloc((size_t)ds.n * sizeof *mse), *noisy = malloc((size_t)ds.n * sizeof *noisy);
	double *score = malloc((size_t)ds.n * sizeof *score);
	int rc = mse && noisy && score ? score_all(w, &ds, &nz, &m->transform, mse, noisy, score) : -1;
	if (rc == 0) {
		char ns[64];
		ae_noise_format(&nz, ns, sizeof ns);
		double mm = mean(mse, ds.n);
		printf("model: %s\nchecksum: %s\ndata: %s (%d images)\ncorruption: %s\n", o.model, m->checksum,
		       ds.source, ds.n, ns);
		printf("mse: %.6f\npsnr_db: %.3f\n", mm, 10.0 * log10(1.0 / mm));
		if (nz.kind != AE_NOISE_NONE) printf("mse_noisy_input: %.6f\n", mean(noisy, ds.n));
		if (m->transform.kind != AE_TF_NONE) {
			/* what the model is given, as an answer itself: the bar it must clear */
			char ts[32];
			ae_transform_format(&m->transform, ts, sizeof ts);
			double mi = mean(noisy, ds.n);
			printf("input: %s\nmse_input: %.6f\npsnr_input_db: %.3f\n", ts, mi, 10.0 * log10(1.0 / mi));
		}
		for (int c = 0; ds.labels && c < ds.n_classes; c++) {
			double s = 0;
			int k = 0;
			for (int i = 0; i < ds.n; i++)
				if (ds.labels[i] == c) s += mse[i], k++;
			if (k) printf("class %d: mse %.6f (%d images)\n", c, s / k, k);
		}
	}
	if (rc == 0 && o.prec_set) {
		int run = ae_plan_precision(p), asked = ae_precision_resolve(m, o.precision);
		printf("precision: %s%s\n", ae_precision_name(run),
		       run != asked ? " (asked for more: this CPU lacks its instructions)" : "");
		ae_dataset ref = { 0 };
		int rs[2];
		const int *resize = o.resize[0] ? o.resize : cli_model_resize(m, rs);
		if (o.knn && cli_load_data(&ref, o.data, "train", &m->net.spec, resize, o.knn)) rc = -1;
		if (rc == 0) rc = precision_report(m, w, &ds, o.knn ? &ref : NULL, cli_threads(o.threads));
		ae_dataset_free(&ref);
	}
	if (rc == 0 && o.normal >= 0) rc = auroc_all(m, w, &ds, o.normal);
	if (rc == 0 && o.codes) rc = codes_report(m, w, &ds);
	if (rc == 0 && o.grid) {
		int idx[16], n = ds.n < 16 ? ds.n : 16;
		for (int i = 0; i < n; i++)
			idx[i] = i;
		rc = report_grid(o.grid, w, &ds, idx, n, &nz, &m->transform, 12345);
		if (rc == 0) printf("grid: %s\n", o.grid);
	}
	free(mse), free(noisy), free(score);
	teardown(m, p, w, &ds);
	return rc ? 1 : 0;
}

/* ---- encode ---- */

static int ends_with(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcmp(s + a - b, suf) == 0;
}

static void write_npy_header(FILE *f, int n, int k)
{
	char h[128];
	int len = snprintf(h, sizeof h, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, k);
	/* magic(6) + version(2) + len(2) + header, padded with spaces to 64 and ending in '\n' */
	int total = 10 + len + 1, pad = (64 - total % 64) % 64;
	fwrite("\x93NUMPY\x01\x00", 1, 8, f);
	uint16_t hl = (uint16_t)(len + pad + 1);
	fputc(hl & 0xff, f);
	fputc(hl >> 8, f);
	fwrite(h, 1, (size_t)len, f);
	for (int i = 0; i < pad; i++)
		fputc(' ', f);
	fputc('\n', f);
}

int cmd_encode(int argc, char **argv)
{
	eval_opts o;
	if (parse(&o, argc, argv, "encode")) return 2;
	if (!o.out || !(ends_with(o.out, ".npy") || ends_with(o.out, ".csv"))) {
		fprintf(stderr, "aetrain: encode: --out FILE.npy or --out FILE.csv is required\n");
		return 2;
	}
	ae_model *m = NULL;
	ae_plan *p = NULL;
	ae_infer *w = NULL;
	ae_dataset ds;
	if (setup(&o, &m, &p, &w, &ds)) return 1;
	const int L = m->net.spec.latent;
	const size_t per = ae_net_input_size(&m->net);
	float *x = malloc(CHUNK * per * sizeof(float)), *z = malloc((size_t)ds.n * L * sizeof(float));
	int *idx = malloc(CHUNK * sizeof(int));
	ae_error err = { 0 };
	ae_atomic_file af = { 0 };
	int rc = x && z && idx ? ae_atomic_open(&af, o.out, &err) : ae_fail(&err, AE_ERR_NOMEM, "out of memory");
	for (int at = 0; rc == 0 && at < ds.n; at += CHUNK) {
		int b = ds.n - at < CHUNK ? ds.n - at : CHUNK;
		for (int i = 0; i < b; i++)
			idx[i] = at + i;
		ae_dataset_batch(&ds, idx, b, x);
		ae_infer_encode(w, x, b, z + (size_t)at * L);
	}
	if (rc == 0 && ends_with(o.out, ".npy")) {
		write_npy_header(af.fp, ds.n, L);
		fwrite(z, sizeof(float), (size_t)ds.n * L, af.fp);
	} else if (rc == 0) {
		fprintf(af.fp, "%s", ds.labels ? "label" : "");
		for (int j = 0; j < L; j++)
			fprintf(af.fp, "%sz%d", ds.labels || j ? "," : "", j);
		fputc('\n', af.fp);
		for (int i = 0; i < ds.n; i++) {
			if (ds.labels) fprintf(af.fp, "%d", ds.labels[i]);
			for (int j = 0; j < L; j++)
				fprintf(af.fp, "%s%.7g", ds.labels || j ? "," : "", z[(size_t)i * L + j]);
			fputc('\n', af.fp);
		}
	}
	if (rc == 0) rc = ae_atomic_commit(&af, &err);
	if (rc)
		fprintf(stderr, "aetrain: %s\n", err.msg);
	else
		printf("wrote %d codes of %d values to %s\n", ds.n, L, o.out);
	free(x), free(z), free(idx);
	teardown(m, p, w, &ds);
	return rc ? 1 : 0;
}
