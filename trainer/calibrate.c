/*
 * The anomaly scores' statistics, computed once a model is trained (see
 * calibrate.h). The mean squared error's quantiles are calibrated beside
 * the training loop, as they always were; this adds the others.
 */
#include "calibrate.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "ae/modelfile.h"
#include "ae/codes.h"
#include "ae/scores.h"
#include "ae/stats.h"

#define CHUNK 256
/* Training codes the Gaussian is fitted to, at most: a 16-value code's
 * covariance is steady long before this. */
#define FIT_MAX 20000

/* Codes of images idx[0..n) into z (n, latent). */
static void encode(ae_infer *w, const ae_dataset *ds, const int *idx, int n, float *x, float *z, int latent)
{
	for (int at = 0; at < n; at += CHUNK) {
		int b = n - at < CHUNK ? n - at : CHUNK;
		ae_dataset_batch(ds, idx + at, b, x);
		ae_infer_encode(w, x, b, z + (size_t)at * latent);
	}
}

/* Anomalies the default score is chosen on, at most. */
#define OTHERS_MAX 2000

/* The score that best tells the held-out images (scores s, n_val rows)
 * from images of other classes, by AUROC; prints each. */
static int choose_default(const ae_model *m, ae_infer *w, const double *s, int n_val, const ae_dataset *others)
{
	const int n_o = others->n < OTHERS_MAX ? others->n : OTHERS_MAX, n = n_val + n_o;
	ae_dataset sub = *others;
	sub.n = n_o; /* the first ones: their order is the data set's, not a choice */
	double *so = malloc((size_t)n_o * AE_SCORE_COUNT * sizeof *so), *col = malloc((size_t)n * sizeof *col);
	int *pos = malloc((size_t)n * sizeof *pos), best = AE_SCORE_MSE;
	double best_auc = -1;
	if (so && col && pos && cli_score_all(m, w, &sub, so) == 0) {
		printf("held-out AUROC against %d images of other classes:", n_o);
		for (int k = 0; k < AE_SCORE_COUNT; k++) {
			int ok = m->cal[k].present;
			for (int i = 0; ok && i < n; i++) {
				col[i] = i < n_val ? s[(size_t)i * AE_SCORE_COUNT + k]
				                   : so[(size_t)(i - n_val) * AE_SCORE_COUNT + k];
				pos[i] = i >= n_val;
				ok = !isnan(col[i]);
			}
			if (!ok) continue;
			double auc = ae_auroc(col, pos, (size_t)n);
			printf(" %s %.4f", ae_score_name((ae_score_kind)k), auc);
			if (auc > best_auc) best_auc = auc, best = k;
		}
		printf("; default %s\n", ae_score_name((ae_score_kind)best));
	}
	free(so), free(col), free(pos);
	return best;
}

/* Every score of the held-out images val_idx[0..n_val) as w computes
 * them, each calibrated into m->cal (combined last, since it standardizes
 * the others by their calibration), and the mean squared error's table as
 * the model's ae.errors. s (n_val x AE_SCORE_COUNT) keeps the scores; x,
 * y (CHUNK images), z (n_val codes) and col (n_val) are scratch. */
static int calibrate_heldout(ae_model *m, ae_infer *w, const ae_dataset *ds, const int *val_idx, int n_val, float *x,
                             float *y, float *z, double *s, double *col, ae_error *err)
{
	const int L = m->net.spec.latent;
	int rc = AE_OK;
	/* every score of the held-out images, each calibrated; combined last,
	 * since it standardizes the others by their calibration */
	for (int at = 0; rc == AE_OK && at < n_val; at += CHUNK) {
		int b = n_val - at < CHUNK ? n_val - at : CHUNK;
		ae_dataset_batch(ds, val_idx + at, b, x);
		ae_infer_reconstruct(w, x, b, y, z + (size_t)at * L);
		ae_model_scores(m, x, y, z + (size_t)at * L, b, s + (size_t)at * AE_SCORE_COUNT);
	}
	/* The mean squared error's table is also the model's ae.errors. */
	if (rc == AE_OK && n_val >= 2) {
		for (int i = 0; i < n_val; i++)
			col[i] = s[(size_t)i * AE_SCORE_COUNT + AE_SCORE_MSE];
		rc = ae_score_calibrate(&m->cal[AE_SCORE_MSE], col, n_val, err);
		m->n_quant = m->cal[AE_SCORE_MSE].n_quant;
		memcpy(m->qp, m->cal[AE_SCORE_MSE].qp, sizeof m->qp);
		memcpy(m->qv, m->cal[AE_SCORE_MSE].qv, sizeof m->qv);
	}
	for (int pass = 0; pass < 2; pass++)
		for (int k = 0; rc == AE_OK && k < AE_SCORE_COUNT; k++) {
			if ((k == AE_SCORE_COMBINED) != (pass == 1)) continue;
			if (pass == 1) /* now that the others are calibrated */
				for (int at = 0; at < n_val; at += CHUNK) {
					int b = n_val - at < CHUNK ? n_val - at : CHUNK;
					ae_dataset_batch(ds, val_idx + at, b, x);
					ae_infer_reconstruct(w, x, b, y, z + (size_t)at * L);
					ae_model_scores(m, x, y, z + (size_t)at * L, b,
					                s + (size_t)at * AE_SCORE_COUNT);
				}
			int ok = 1;
			for (int i = 0; i < n_val; i++)
				ok &= !isnan(col[i] = s[(size_t)i * AE_SCORE_COUNT + k]);
			if (ok) rc = ae_score_calibrate(&m->cal[k], col, n_val, err);
		}
	return rc;
}

/* The activation ranges of m's linear layers over the held-out images
 * (an fp32 plan's), then each reduced precision's own anomaly calibration
 * on them, by a plan of that precision: the CPU's kernels, or where it
 * lacks them the portable ones (the same arithmetic, slower), so that
 * the thresholds do not depend on the host that computed them. Scratch
 * as calibrate_heldout's. */
static int calibrate_precisions(ae_model *m, const ae_dataset *ds, const int *val_idx, int n_val, float *x, float *y,
                                float *z, double *s, double *col, ae_error *err)
{
	if (n_val < 2) return AE_OK;
	ae_plan *p = ae_plan_new(m, err);
	int rc = p ? AE_OK : AE_ERR_NOMEM;
	for (int i = 0; i < AE_MAX_LAYERS; i++)
		m->act_range.lo[i] = INFINITY, m->act_range.hi[i] = -INFINITY;
	for (int at = 0; rc == AE_OK && at < n_val; at += CHUNK) {
		int b = n_val - at < CHUNK ? n_val - at : CHUNK;
		ae_dataset_batch(ds, val_idx + at, b, x);
		rc = ae_plan_observe(p, x, b, m->act_range.lo, m->act_range.hi, err);
	}
	ae_plan_free(p);
	m->act_range.present = rc == AE_OK;
	m->act_range.images = n_val;
	/* each precision calibrates into m->cal, fp32's kept aside meanwhile */
	ae_score_cal *keep = malloc(sizeof m->cal);
	double *qv = malloc(sizeof m->qv), *qp = malloc(sizeof m->qp);
	const int n_quant = m->n_quant;
	if (rc == AE_OK && (!keep || !qv || !qp)) rc = ae_fail(err, AE_ERR_NOMEM, "out of memory");
	if (rc == AE_OK)
		memcpy(keep, m->cal, sizeof m->cal), memcpy(qv, m->qv, sizeof m->qv), memcpy(qp, m->qp, sizeof m->qp);
	for (int prec = AE_PREC_FP32 + 1; rc == AE_OK && prec < AE_PREC_COUNT; prec++) {
		ae_plan_opts o = { .precision = prec, .reference = !ae_precision_supported(prec) };
		ae_plan *pp = ae_plan_new_opts(m, &o, err);
		ae_infer *w = pp ? ae_infer_new(pp, CHUNK, cli_threads(0), err) : NULL;
		rc = w ? calibrate_heldout(m, w, ds, val_idx, n_val, x, y, z, s, col, err) : AE_ERR_NOMEM;
		if (rc == AE_OK) {
			memcpy(m->prec_cal[prec], m->cal, sizeof m->cal);
			/* what its own threshold flags of the held-out images, and what fp32's would */
			double own = ae_score_quantile(&m->cal[AE_SCORE_MSE], 0.99);
			double f32 = ae_score_quantile(&keep[AE_SCORE_MSE], 0.99);
			int n_own = 0, n_f32 = 0;
			for (int i = 0; i < n_val; i++) {
				double v = s[(size_t)i * AE_SCORE_COUNT + AE_SCORE_MSE];
				n_own += v > own, n_f32 += v > f32;
			}
			printf("%s: mse p99 %.6g (fp32 %.6g): flags %.2f%% of the held-out images (fp32's "
			       "threshold would flag %.2f%%)%s\n",
			       ae_precision_name(prec), own, f32, 100.0 * n_own / n_val, 100.0 * n_f32 / n_val,
			       o.reference ? "; on the portable kernels (this CPU lacks the instructions)" : "");
		}
		ae_infer_free(w);
		ae_plan_free(pp);
	}
	if (keep && qv && qp) {
		memcpy(m->cal, keep, sizeof m->cal);
		memcpy(m->qv, qv, sizeof m->qv);
		memcpy(m->qp, qp, sizeof m->qp);
		m->n_quant = n_quant;
	}
	free(keep), free(qv), free(qp);
	return rc;
}

int calibrate_scores(ae_model *m, ae_infer *w, const ae_dataset *ds, const int *train_idx, int n_train,
                     const int *val_idx, int n_val, const ae_dataset *others)
{
	const int L = m->net.spec.latent;
	const size_t per = (size_t)ds->c * ds->h * ds->w;
	const int n_fit = n_train < FIT_MAX ? n_train : FIT_MAX;
	float *x = malloc(CHUNK * per * sizeof(float)), *y = malloc(CHUNK * per * sizeof(float));
	float *z = malloc((size_t)(n_fit > n_val ? n_fit : n_val) * L * sizeof(float));
	double *s = malloc((size_t)(n_val ? n_val : 1) * AE_SCORE_COUNT * sizeof *s);
	double *col = malloc((size_t)(n_val ? n_val : 1) * sizeof *col);
	ae_error err = { 0 };
	int rc = x && y && z && s && col ? AE_OK : ae_fail(&err, AE_ERR_NOMEM, "out of memory");
	m->default_score = AE_SCORE_MSE;
	/* the Gaussian of the training codes (the first n_fit of a shuffled order) */
	/* (a model calibrated again replaces what it had) */
	free(m->latent_mean), free(m->latent_prec), free(m->code_scale);
	m->latent_mean = NULL, m->latent_prec = NULL, m->code_scale = NULL;
	if (rc == AE_OK && L <= AE_LATENT_STATS_MAX) {
		m->latent_mean = malloc((size_t)L * sizeof *m->latent_mean);
		m->latent_prec = malloc((size_t)L * L * sizeof *m->latent_prec);
		rc = m->latent_mean && m->latent_prec ? AE_OK : ae_fail(&err, AE_ERR_NOMEM, "out of memory");
		if (rc == AE_OK) encode(w, ds, train_idx, n_fit, x, z, L);
		if (rc == AE_OK && ae_latent_fit(z, n_fit, L, m->latent_mean, m->latent_prec, &err)) {
			/* no latent score, the others still */
			fprintf(stderr, "aetrain: no latent score: %s\n", err.msg);
			free(m->latent_mean), free(m->latent_prec);
			m->latent_mean = NULL, m->latent_prec = NULL;
		}
		/* the int8 codes' scale, from the same training codes */
		if (m->latent_mean && (m->code_scale = malloc((size_t)L * sizeof *m->code_scale)))
			ae_codes_int8_scale(z, n_fit, L, m->code_scale);
	}
	if (rc == AE_OK) rc = calibrate_heldout(m, w, ds, val_idx, n_val, x, y, z, s, col, &err);
	if (rc == AE_OK && others && others->n > 0 && n_val >= 2) {
		/* s holds every score of the held-out images by now */
		m->default_score = choose_default(m, w, s, n_val, others);
	}
	if (rc == AE_OK) rc = calibrate_precisions(m, ds, val_idx, n_val, x, y, z, s, col, &err);
	if (rc) fprintf(stderr, "aetrain: score calibration: %s\n", err.msg);
	free(x), free(y), free(z), free(s), free(col);
	return rc ? -1 : 0;
}

/* ------------------------------------------------------ aetrain calibrate */

static void calibrate_usage(FILE *f)
{
	fprintf(f, "usage: aetrain calibrate MODEL DATA [--split NAME] [--out FILE.safetensors]\n"
	           "\n"
	           "Computes a model's anomaly-score statistics (every score's held-out calibration, the\n"
	           "Gaussian of its training codes) again on the data it was trained on: the same images\n"
	           "and the same held-out ones, chosen again by its seed. Models written before the\n"
	           "scores existed gain them. The model is rewritten atomically (in place unless --out);\n"
	           "its weights and their checksum stay.\n"
	           "\n"
	           "  --split NAME   train (default) or test, for a folder of IDX files\n"
	           "  --out FILE     write here instead\n");
}

int cmd_calibrate(int argc, char **argv)
{
	enum { O_SPLIT = 1000, O_OUT, O_HELP };
	static const struct option lo[] = {
		{ "split", 1, 0, O_SPLIT }, { "out", 1, 0, O_OUT }, { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 }
	};
	const char *out = NULL;
	char split[8] = "train";
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == O_SPLIT && cli_split(optarg, split, sizeof split) == 0) continue;
		if (c == O_OUT) {
			out = optarg;
			continue;
		}
		if (c == O_HELP) {
			calibrate_usage(stdout);
			return 0;
		}
		if (c != O_SPLIT)
			fprintf(stderr, "aetrain: calibrate: unknown option or missing value: %s\n", argv[optind - 1]);
		return 2;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "aetrain: calibrate: name MODEL and DATA (see aetrain calibrate --help)\n");
		return 2;
	}
	argv += optind - 1;
	const char *path = argv[1];
	ae_error err = { 0 };
	ae_model *m = ae_model_load(path, &err);
	ae_plan *p = m ? ae_plan_new(m, &err) : NULL;
	ae_infer *w = p ? ae_infer_new(p, CHUNK, cli_threads(0), &err) : NULL;
	ae_dataset ds = { 0 };
	int *idx = NULL, n_val = 0, rc = 1;
	if (!w) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		goto done;
	}
	const ae_train_info *t = &m->train;
	int rs[2];
	if (cli_load_data(&ds, argv[2], split, &m->net.spec, cli_model_resize(m, rs), 0) ||
	    cli_select(&ds, t->classes, t->contaminate, t->seed))
		goto done;
	if (ds.n != t->samples + t->val_samples) {
		fprintf(stderr,
		        "aetrain: %s holds %d images; the model was trained on %ld (+%ld held out): not its data\n",
		        ds.source, ds.n, t->samples, t->val_samples);
		goto done;
	}
	if (!(idx = cli_split_indices(ds.n, (double)t->val_samples / ds.n, t->seed, &n_val)) ||
	    n_val != t->val_samples) {
		fprintf(stderr, "aetrain: cannot find the model's %ld held-out images again\n", t->val_samples);
		goto done;
	}
	if (calibrate_scores(m, w, &ds, idx + n_val, ds.n - n_val, idx, n_val, NULL)) goto done;
	char before[24];
	snprintf(before, sizeof before, "%s", m->checksum);
	if (ae_model_save(m, out ? out : path, NULL, 0, NULL, NULL, &err)) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		goto done;
	}
	printf("wrote %s (%s, weights %s)\n", out ? out : path, m->checksum,
	       strcmp(before, m->checksum) == 0 ? "unchanged" : "CHANGED");
	for (int k = 0; k < AE_SCORE_COUNT; k++)
		if (m->cal[k].present)
			printf("%s: p50 %.6g, p99 %.6g\n", ae_score_name((ae_score_kind)k),
			       ae_score_quantile(&m->cal[k], 0.5), ae_score_quantile(&m->cal[k], 0.99));
	rc = 0;
done:
	free(idx);
	ae_dataset_free(&ds);
	ae_infer_free(w);
	ae_plan_free(p);
	ae_model_free(m);
	return rc;
}
