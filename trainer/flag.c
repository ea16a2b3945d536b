/*
 * `aetrain flag`: the anomaly tutorial's experiment. Scores every image of
 * a data set selected as the model was trained (its classes, its
 * contaminating class and share, its seed: all recorded in the model
 * file), flags those whose score is above a quantile of the scores (0.999,
 * as the tutorial does), and says how many were flagged and of which
 * labels; a grid shows the flagged images over their reconstructions.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "report.h"
#include "ae/dataset.h"
#include "ae/infer.h"
#include "ae/modelfile.h"
#include "ae/scores.h"
#include "ae/stats.h"

#define CHUNK    256
#define GRID_MAX 32 /* flagged images shown at most */

typedef struct flag_opts {
	const char *model, *data, *grid;
	char split[8];
	double quantile;
	long threads;
	int score; /* ae_score_kind */
} flag_opts;

static void flag_usage(FILE *f)
{
	fprintf(f, "usage: aetrain flag MODEL DATA [options]\n"
	           "\n"
	           "Scores the images of DATA the model was trained on (its classes and contamination,\n"
	           "as the model file records them, chosen again with its seed), flags those whose\n"
	           "reconstruction error is above the given quantile of all their errors, and prints\n"
	           "how many were flagged and their labels.\n"
	           "\n"
	           "  --split NAME     train (default) or test, for a folder of IDX files\n"
	           "  --quantile Q     flag above this quantile of the scores (default 0.999)\n"
	           "  --score NAME     mse (default), ssim, max, latent or combined\n"
	           "  --grid FILE.png  the flagged images (top row) over their reconstructions\n"
	           "  --threads N      threads (default: every core)\n");
}

static int parse(flag_opts *o, int argc, char **argv)
{
	enum { O_SPLIT = 1000, O_QUANTILE, O_GRID, O_THREADS, O_SCORE, O_HELP };
	static const struct option lo[] = {
		{ "split", 1, 0, O_SPLIT },
		{ "quantile", 1, 0, O_QUANTILE },
		{ "grid", 1, 0, O_GRID },
		{ "threads", 1, 0, O_THREADS },
		{ "score", 1, 0, O_SCORE },
		{ "help", 0, 0, O_HELP },
		{ 0, 0, 0, 0 },
	};
	memset(o, 0, sizeof *o);
	snprintf(o->split, sizeof o->split, "train");
	o->quantile = 0.999;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_SPLIT:
			if (cli_split(optarg, o->split, sizeof o->split)) return -1;
			break;
		case O_QUANTILE:
			if (cli_float("--quantile", optarg, 0.5, 1.0, &o->quantile)) return -1;
			break;
		case O_GRID: o->grid = optarg; break;
		case O_SCORE:
			if ((o->score = ae_score_find(optarg)) < 0) {
				fprintf(stderr,
				        "aetrain: flag: --score: '%s' is not mse, ssim, max, latent or combined\n",
				        optarg);
				return -1;
			}
			break;
		case O_THREADS:
			if (cli_int("--threads", optarg, 1, AE_MAX_THREADS, &o->threads)) return -1;
			break;
		case O_HELP: flag_usage(stdout); exit(0);
		default:
			fprintf(stderr, "aetrain: flag: unknown option or missing value: %s\n", argv[optind - 1]);
			return -1;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "aetrain: flag: name MODEL and DATA (see aetrain flag --help)\n");
		return -1;
	}
	o->model = argv[optind], o->data = argv[optind + 1];
	return 0;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The q-quantile of v[0..n), linearly interpolated (numpy's default). */
static double quantile(const double *v, int n, double q)
{
	double *s = malloc((size_t)n * sizeof *s);
	if (!s) return NAN;
	memcpy(s, v, (size_t)n * sizeof *s);
	qsort(s, (size_t)n, sizeof *s, by_value);
	double pos = q * (n - 1);
	int lo = (int)pos;
	double r = lo + 1 < n ? s[lo] + (pos - lo) * (s[lo + 1] - s[lo]) : s[n - 1];
	free(s);
	return r;
}

/* "1: 5, 3: 2": flagged images per label, most first. */
static void print_labels(const ae_dataset *ds, const int *flagged, int n)
{
	int count[64] = { 0 };
	for (int i = 0; i < n; i++)
		if (ds->labels[flagged[i]] >= 0 && ds->labels[flagged[i]] < 64) count[ds->labels[flagged[i]]]++;
	printf("flagged_by_label:");
	for (int shown = 0; shown < n;) {
		int best = 0;
		for (int c = 1; c < 64; c++)
			if (count[c] > count[best]) best = c;
		printf("%s %d: %d", shown ? "," : "", best, count[best]);
		shown += count[best];
		count[best] = 0;
	}
	printf("\n");
}

int cmd_flag(int argc, char **argv)
{
	flag_opts o;
	if (parse(&o, argc, argv)) return 2;
	ae_error err = { 0 };
	ae_model *m = ae_model_load(o.model, &err);
	ae_plan *p = m ? ae_plan_new(m, &err) : NULL;
	ae_infer *w = p ? ae_infer_new(p, CHUNK, cli_threads(o.threads), &err) : NULL;
	ae_dataset ds = { 0 };
	double *s = NULL;
	int *flagged = NULL, rc = 1;
	if (!w) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		goto out;
	}
	const ae_train_info *t = &m->train;
	int rs[2];
	if (cli_load_data(&ds, o.data, o.split, &m->net.spec, cli_model_resize(m, rs), 0) ||
	    cli_select(&ds, t->classes, t->contaminate, t->seed))
		goto out;
	if (!ds.labels) {
		fprintf(stderr, "aetrain: flag: %s has no labels to report\n", ds.source);
		goto out;
	}
	s = malloc((size_t)ds.n * AE_SCORE_COUNT * sizeof *s);
	flagged = malloc((size_t)ds.n * sizeof *flagged);
	if (!s || !flagged) {
		fprintf(stderr, "aetrain: out of memory\n");
		goto out;
	}
	if (cli_score_all(m, w, &ds, s)) goto out;
	/* The score asked, in place at the front of s. */
	for (int i = 0; i < ds.n; i++)
		s[i] = s[(size_t)i * AE_SCORE_COUNT + o.score];
	if (isnan(s[0])) {
		fprintf(stderr, "aetrain: flag: %s has no %s score (aetrain calibrate adds it)\n", o.model,
		        ae_score_name((ae_score_kind)o.score));
		goto out;
	}
	double thr = quantile(s, ds.n, o.quantile);
	int nf = 0;
	for (int i = 0; i < ds.n; i++)
		if (s[i] > thr) flagged[nf++] = i;
	printf("model: %s (classes %s, contamination %s)\n", o.model, t->classes[0] ? t->classes : "all",
	       t->contaminate[0] ? t->contaminate : "none");
	printf("data: %s (%d images)\n", ds.source, ds.n);
	printf("threshold: %.6g (the %g quantile of the %s scores)\nflagged: %d\n", thr, o.quantile,
	       ae_score_name((ae_score_kind)o.score), nf);
	print_labels(&ds, flagged, nf);
	rc = 0;
	if (o.grid && nf) {
		rc = report_grid(o.grid, w, &ds, flagged, nf < GRID_MAX ? nf : GRID_MAX, &(ae_noise){ 0 },
		                 &(ae_transform){ 0 }, 0)
		             ? 1
		             : 0;
		if (rc == 0) printf("grid: %s\n", o.grid);
	}
out:
	free(s);
	free(flagged);
	ae_dataset_free(&ds);
	ae_infer_free(w);
	ae_plan_free(p);
	ae_model_free(m);
	return rc;
}
