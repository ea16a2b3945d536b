/*
 * Anomaly scores of the answers a model gives: which score a request gets,
 * each item's score of its input against its reconstruction (sizes from
 * the plan that ran them), the threshold and percentiles from the model's
 * held-out calibration, the per-pixel error maps, and the one scoring step
 * every answer with scores goes through (/v1 anomaly, V2's score and
 * anomaly outputs), which also counts what it scored toward drift.
 */
#include "server.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ae/scores.h"
#include "ae/stats.h"

int srv_plan_scored(const ae_plan *p)
{
	ae_shape in = ae_plan_in_shape(p, AE_OP_RECONSTRUCT), out = ae_plan_out_shape(p, AE_OP_RECONSTRUCT);
	return in.rank == out.rank && memcmp(in.d, out.d, sizeof in.d) == 0;
}

int srv_score_kind(const srv_model *m, int asked, srv_fail *f)
{
	const ae_model *a = m->m;
	int kind = asked >= 0 ? asked : a->cal[a->default_score].present ? a->default_score : AE_SCORE_MSE;
	/* every model has mse (its quantiles in ae.errors); the others need
	 * their calibration, and latent the Gaussian of the codes */
	if (kind == AE_SCORE_MSE || (a->cal[kind].present && (kind != AE_SCORE_LATENT || a->latent_mean))) return kind;
	char have[80] = "mse";
	for (int k = 1; k < AE_SCORE_COUNT; k++)
		if (a->cal[k].present) {
			strcat(have, ", ");
			strcat(have, ae_score_name((ae_score_kind)k));
		}
	srv_fail_set(f, 422, "score_unavailable",
	             "model '%s' has no %s score (its file predates it, or its codes are too long); it has %s", m->name,
	             ae_score_name((ae_score_kind)kind), have);
	return -1;
}

int srv_score_needs_codes(int kind)
{
	return kind == AE_SCORE_LATENT || kind == AE_SCORE_COMBINED;
}

double srv_score_quantile(const srv_model *m, int kind, double q)
{
	return kind == AE_SCORE_MSE ? ae_model_quantile(m->m, q) : ae_score_quantile(&m->m->cal[kind], q);
}

double srv_score_percentile(const srv_model *m, int kind, double v)
{
	return kind == AE_SCORE_MSE ? ae_model_percentile(m->m, v) : ae_score_percentile(&m->m->cal[kind], v);
}

double srv_score_threshold(const srv_model *m, int kind, const srv_params *p)
{
	return isnan(p->threshold) ? srv_score_quantile(m, kind, p->quantile) : p->threshold;
}

/* Each item's mean squared error of y against x, per floats each
 * (ae_mse_per_image, as floats); -1 when out of memory. */
static int mse(size_t per, const float *x, const float *y, int n, float *out)
{
	double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
	if (!d) return -1;
	ae_mse_per_image(d, x, y, n, per);
	for (int i = 0; i < n; i++)
		out[i] = (float)d[i];
	free(d);
	return 0;
}

/* Score `kind` of each item (z: the codes, for latent and combined); NAN
 * where memory for it ran out. */
static void scores_of(const srv_model *m, const ae_plan *p, int kind, const float *x, const float *y, const float *z,
                      int n, float *out)
{
	const ae_shape img = ae_plan_in_shape(p, AE_OP_RECONSTRUCT);
	if (kind == AE_SCORE_MSE) {
		if (mse(ae_shape_size(img), x, y, n, out))
			for (int i = 0; i < n; i++)
				out[i] = NAN;
		return;
	}
	double *all = malloc((size_t)(n ? n : 1) * AE_SCORE_COUNT * sizeof *all);
	double *one = malloc((size_t)(n ? n : 1) * sizeof *one);
	if (!all || !one) {
		for (int i = 0; i < n; i++)
			out[i] = NAN;
	} else if (kind == AE_SCORE_COMBINED) {
		ae_model_scores(m->m, x, y, z, n, all);
		for (int i = 0; i < n; i++)
			out[i] = (float)all[(size_t)i * AE_SCORE_COUNT + kind];
	} else {
		if (kind == AE_SCORE_LATENT)
			ae_latent_distance(m->m->latent_mean, m->m->latent_prec, (int)ae_plan_out_size(p, AE_OP_ENCODE),
			                   z, n, one);
		else
			ae_score_images((ae_score_kind)kind, x, y, n, img.d[0], img.d[1], img.d[2], one);
		for (int i = 0; i < n; i++)
			out[i] = (float)one[i];
	}
	free(all);
	free(one);
}

int srv_score_answer(const srv_model *m, const ae_plan *p, int kind, const float *x, const float *y, const float *z,
                     int n, double threshold, float *scores)
{
	scores_of(m, p, kind, x, y, z, n, scores);
	/* Drift watches the mean squared error against its p99, whatever the
	 * score answered; the anomalies counted are the answer's. */
	float *e = kind == AE_SCORE_MSE ? scores : malloc((size_t)(n ? n : 1) * sizeof *e);
	if (!e || (e != scores && mse(ae_plan_in_size(p, AE_OP_RECONSTRUCT), x, y, n, e))) {
		if (e != scores) free(e);
		return -1;
	}
	int flagged = 0;
	for (int i = 0; i < n; i++)
		flagged += scores[i] > threshold;
	srv_drift_observe(m->drift, e, n, flagged);
	if (e != scores) free(e);
	return 0;
}

void srv_error_maps(ae_shape s, const float *x, const float *y, int n, float *maps)
{
	const int c = s.d[0];
	const size_t hw = (size_t)s.d[1] * s.d[2], per = ae_shape_size(s);
	for (int i = 0; i < n; i++) {
		const float *a = x + (size_t)i * per, *b = y + (size_t)i * per;
		float *o = maps + (size_t)i * hw;
		for (size_t q = 0; q < hw; q++) {
			float e = 0.0f;
			for (int k = 0; k < c; k++)
				e += fabsf(a[(size_t)k * hw + q] - b[(size_t)k * hw + q]);
			o[q] = e / (float)c;
		}
	}
}
