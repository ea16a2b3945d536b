/*
 * The precision report of `aetrain eval` (see precision.h).
 */
#include "precision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae/stats.h"

#define CHUNK 256
#define KNN   5
/* Labels counted in a vote; others never win one. */
#define MAX_CLASSES 1024

/* Codes (n, L) and, if y, per-image MSE of the reconstructions (n) of
 * every image of ds. */
static void run_all(ae_infer *w, const ae_dataset *ds, int L, float *z, double *mse)
{
	const size_t per = (size_t)ds->c * ds->h * ds->w;
	float *x = malloc(CHUNK * per * sizeof(float)), *y = malloc(CHUNK * per * sizeof(float));
	int idx[CHUNK];
	for (int at = 0; x && y && at < ds->n; at += CHUNK) {
		int b = ds->n - at < CHUNK ? ds->n - at : CHUNK;
		for (int i = 0; i < b; i++)
			idx[i] = at + i;
		ae_dataset_batch(ds, idx, b, x);
		if (mse) {
			ae_infer_reconstruct(w, x, b, y, z + (size_t)at * L);
			ae_mse_per_image(mse + at, y, x, b, per);
		} else {
			ae_infer_encode(w, x, b, z + (size_t)at * L);
		}
	}
	free(x), free(y);
}

/* The majority label of a query's KNN nearest references (Euclidean);
 * a tie goes to the label of the nearest among the tied. */
static int knn_label(const float *q, const float *r, const int16_t *rl, int nr, int L, int n_classes)
{
	double best[KNN];
	int lab[KNN] = { 0 }, k = 0;
	for (int i = 0; i < nr; i++) {
		double d = 0;
		for (int j = 0; j < L; j++) {
			double e = (double)q[j] - r[(size_t)i * L + j];
			d += e * e;
		}
		if (k < KNN || d < best[k - 1]) {
			int at = k < KNN ? k++ : KNN - 1;
			while (at > 0 && best[at - 1] > d) {
				best[at] = best[at - 1], lab[at] = lab[at - 1];
				at--;
			}
			best[at] = d, lab[at] = rl[i];
		}
	}
	int votes[MAX_CLASSES] = { 0 }, top = lab[0];
	for (int i = 0; i < k; i++)
		if (lab[i] >= 0 && lab[i] < n_classes && lab[i] < MAX_CLASSES) votes[lab[i]]++;
	for (int i = 0; i < k; i++)
		if (votes[lab[i]] > votes[top]) top = lab[i];
	return top;
}

int precision_report(const ae_model *m, ae_infer *w, const ae_dataset *ds, const ae_dataset *knn_ref, int threads)
{
	const int L = m->net.spec.latent;
	const int prec = ae_plan_precision(ae_infer_plan(w));
	float *z = malloc((size_t)ds->n * L * sizeof *z), *z32 = NULL;
	double *mse = malloc((size_t)ds->n * sizeof *mse), *mse32 = NULL;
	ae_plan *p32 = NULL;
	ae_infer *w32 = NULL;
	ae_error err = { 0 };
	int rc = z && mse ? 0 : -1;
	if (rc == 0) run_all(w, ds, L, z, mse);
	double thr = ae_model_quantile(m, 0.99);
	int flagged = 0;
	for (int i = 0; rc == 0 && i < ds->n; i++)
		flagged += mse[i] > thr;
	if (rc == 0)
		printf("flagged_p99: %.2f%% (%d of %d images over %s's p99 threshold %.6g)\n", 100.0 * flagged / ds->n,
		       flagged, ds->n, ae_precision_name(prec), thr);
	if (rc == 0 && prec != AE_PREC_FP32) {
		z32 = malloc((size_t)ds->n * L * sizeof *z32);
		mse32 = malloc((size_t)ds->n * sizeof *mse32);
		p32 = ae_plan_new(m, &err);
		w32 = p32 ? ae_infer_new(p32, CHUNK, threads, &err) : NULL;
		rc = z32 && mse32 && w32 ? 0 : -1;
		if (rc == 0) run_all(w32, ds, L, z32, mse32);
		double a = 0, b = 0, cmean = 0, cmin = 1;
		for (int i = 0; rc == 0 && i < ds->n; i++) {
			a += mse[i], b += mse32[i];
			double ab = 0, aa = 0, bb = 0;
			for (int j = 0; j < L; j++) {
				double u = z[(size_t)i * L + j], v = z32[(size_t)i * L + j];
				ab += u * v, aa += u * u, bb += v * v;
			}
			double c = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
			cmean += c;
			if (c < cmin) cmin = c;
		}
		if (rc == 0)
			printf("vs_fp32: mse %.6f against %.6f (%+.2f%%), code cosine mean %.6f, min %.6f\n", a / ds->n,
			       b / ds->n, 100.0 * (a / b - 1.0), cmean / ds->n, cmin);
	}
	if (rc == 0 && knn_ref && ds->labels && knn_ref->labels) {
		float *zr = malloc((size_t)knn_ref->n * L * sizeof *zr);
		rc = zr ? 0 : -1;
		if (rc == 0) run_all(w, knn_ref, L, zr, NULL);
		int right = 0;
		for (int i = 0; rc == 0 && i < ds->n; i++)
			right += knn_label(z + (size_t)i * L, zr, knn_ref->labels, knn_ref->n, L, knn_ref->n_classes) ==
			         ds->labels[i];
		if (rc == 0)
			printf("knn5_accuracy: %.2f%% (%d of %d, among the codes of %d labelled images, at %s)\n",
			       100.0 * right / ds->n, right, ds->n, knn_ref->n, ae_precision_name(prec));
		free(zr);
	}
	if (rc) fprintf(stderr, "aetrain: precision report: %s\n", err.msg[0] ? err.msg : "out of memory");
	ae_infer_free(w32);
	ae_plan_free(p32);
	free(z), free(z32), free(mse), free(mse32);
	return rc;
}
