/*
 * Anomaly scores and their calibration (ae/scores.h). The window scores
 * (ssim, max) run on integral images, so each costs a few passes over the
 * image whatever the window.
 */
#include "ae/scores.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ae/stats.h"

_Static_assert(AE_SCORE_COUNT == AE_N_SCORES, "ae/net.h sizes the calibrations");

static const char *const names[AE_SCORE_COUNT] = { "mse", "ssim", "max", "latent", "combined" };

/* scikit-image's structural_similarity defaults for data in [0, 1]. */
#define SSIM_WIN 7
#define SSIM_C1  (0.01 * 0.01)
#define SSIM_C2  (0.03 * 0.03)
#define MAX_WIN  4
/* The covariance's ridge, relative to its mean variance. */
#define RIDGE 1e-3

const char *ae_score_name(ae_score_kind k)
{
	return k >= 0 && k < AE_SCORE_COUNT ? names[k] : "?";
}

int ae_score_find(const char *name)
{
	for (int k = 0; k < AE_SCORE_COUNT; k++)
		if (strcmp(name, names[k]) == 0) return k;
	return -1;
}

/* Integral image of f over (h, w) into I ((h+1) x (w+1)). */
static void integral(const double *f, int h, int w, double *I)
{
	memset(I, 0, (size_t)(w + 1) * sizeof *I);
	for (int y = 0; y < h; y++) {
		double row = 0;
		I[(size_t)(y + 1) * (w + 1)] = 0;
		for (int x = 0; x < w; x++) {
			row += f[(size_t)y * w + x];
			I[(size_t)(y + 1) * (w + 1) + x + 1] = I[(size_t)y * (w + 1) + x + 1] + row;
		}
	}
}

static double box(const double *I, int w, int y, int x, int k)
{
	const int W = w + 1;
	return I[(size_t)(y + k) * W + x + k] - I[(size_t)y * W + x + k] - I[(size_t)(y + k) * W + x] +
	       I[(size_t)y * W + x];
}

/* The window: k, or the image's smaller side (odd for ssim). */
static int window(int k, int h, int w, int odd)
{
	int m = h < w ? h : w;
	if (k > m) k = odd && m % 2 == 0 ? m - 1 : m;
	return k < 1 ? 1 : k;
}

/* Mean SSIM of one channel's plane, over every whole window (as
 * scikit-image, which crops the borders), with the sample covariance. */
static double ssim_plane(const float *a, const float *b, int h, int w, double *buf)
{
	const int k = window(SSIM_WIN, h, w, 1), n = k * k;
	const size_t hw = (size_t)h * w, isz = (size_t)(h + 1) * (w + 1);
	double *f = buf, *I = buf + 5 * hw;
	for (size_t p = 0; p < hw; p++) {
		f[p] = a[p], f[hw + p] = b[p];
		f[2 * hw + p] = (double)a[p] * a[p], f[3 * hw + p] = (double)b[p] * b[p];
		f[4 * hw + p] = (double)a[p] * b[p];
	}
	for (int j = 0; j < 5; j++)
		integral(f + j * hw, h, w, I + j * isz);
	const double cov = (double)n / (n > 1 ? n - 1 : 1);
	double sum = 0;
	int count = 0;
	for (int y = 0; y + k <= h; y++)
		for (int x = 0; x + k <= w; x++) {
			double ua = box(I, w, y, x, k) / n, ub = box(I + isz, w, y, x, k) / n;
			double vaa = cov * (box(I + 2 * isz, w, y, x, k) / n - ua * ua);
			double vbb = cov * (box(I + 3 * isz, w, y, x, k) / n - ub * ub);
			double vab = cov * (box(I + 4 * isz, w, y, x, k) / n - ua * ub);
			sum += ((2 * ua * ub + SSIM_C1) * (2 * vab + SSIM_C2)) /
			       ((ua * ua + ub * ub + SSIM_C1) * (vaa + vbb + SSIM_C2));
			count++;
		}
	return count ? sum / count : 1.0;
}

/* The largest mean squared error over k x k windows of the channels' mean. */
static double max_window(const float *a, const float *b, int c, int h, int w, double *buf)
{
	const int k = window(MAX_WIN, h, w, 0);
	const size_t hw = (size_t)h * w;
	double *f = buf, *I = buf + hw;
	for (size_t p = 0; p < hw; p++) {
		double e = 0;
		for (int ch = 0; ch < c; ch++) {
			double d = (double)a[(size_t)ch * hw + p] - b[(size_t)ch * hw + p];
			e += d * d;
		}
		f[p] = e / c;
	}
	integral(f, h, w, I);
	double best = 0;
	for (int y = 0; y + k <= h; y++)
		for (int x = 0; x + k <= w; x++) {
			double v = box(I, w, y, x, k) / (k * k);
			best = v > best ? v : best;
		}
	return best;
}

void ae_score_images(ae_score_kind k, const float *x, const float *y, int n, int c, int h, int w, double *out)
{
	const size_t hw = (size_t)h * w, per = (size_t)c * hw;
	double *buf = NULL;
	if (k == AE_SCORE_SSIM || k == AE_SCORE_MAX)
		buf = malloc((5 * hw + (size_t)5 * (h + 1) * (w + 1)) * sizeof *buf);
	for (int i = 0; i < n; i++) {
		const float *a = x + (size_t)i * per, *b = y + (size_t)i * per;
		/* (NAN: a score this does not compute, or no memory for it) */
		out[i] = NAN;
		if (k == AE_SCORE_MSE) {
			ae_mse_per_image(out + i, b, a, 1, per);
		} else if (buf && k == AE_SCORE_SSIM) {
			double s = 0;
			for (int ch = 0; ch < c; ch++)
				s += ssim_plane(a + (size_t)ch * hw, b + (size_t)ch * hw, h, w, buf);
			out[i] = 1.0 - s / c;
		} else if (buf && k == AE_SCORE_MAX)
			out[i] = max_window(a, b, c, h, w, buf);
	}
	free(buf);
}

int ae_latent_fit(const float *z, int n, int dim, double *mean, double *prec, ae_error *err)
{
	if (n < 2 || dim < 1 || dim > AE_LATENT_STATS_MAX)
		return ae_fail(err, AE_ERR_INVAL, "a latent Gaussian needs 2 or more codes of 1 to %d values",
		               AE_LATENT_STATS_MAX);
	const size_t d = (size_t)dim;
	double *cov = calloc(d * d, sizeof *cov), *L = calloc(d * d, sizeof *L);
	if (!cov || !L) {
		free(cov), free(L);
		return ae_fail(err, AE_ERR_NOMEM, "out of memory fitting the latent Gaussian");
	}
	for (size_t j = 0; j < d; j++)
		mean[j] = 0;
	for (int i = 0; i < n; i++)
		for (size_t j = 0; j < d; j++)
			mean[j] += z[(size_t)i * d + j];
	for (size_t j = 0; j < d; j++)
		mean[j] /= n;
	for (int i = 0; i < n; i++) {
		const float *v = z + (size_t)i * d;
		for (size_t a = 0; a < d; a++)
			for (size_t b = 0; b <= a; b++)
				cov[a * d + b] += (v[a] - mean[a]) * (v[b] - mean[b]);
	}
	double tr = 0;
	for (size_t a = 0; a < d; a++) {
		for (size_t b = 0; b <= a; b++)
			cov[a * d + b] = cov[b * d + a] = cov[a * d + b] / (n - 1);
		tr += cov[a * d + a];
	}
	const double ridge = RIDGE * (tr > 0 ? tr / dim : 1.0);
	for (size_t a = 0; a < d; a++)
		cov[a * d + a] += ridge;
	/* Cholesky, cov = L L^T, then prec = L^-T L^-1 column by column. */
	int ok = 1;
	for (size_t a = 0; ok && a < d; a++)
		for (size_t b = 0; b <= a; b++) {
			double s = cov[a * d + b];
			for (size_t k = 0; k < b; k++)
				s -= L[a * d + k] * L[b * d + k];
			if (a == b) {
				ok = s > 0;
				L[a * d + a] = ok ? sqrt(s) : 0;
			} else
				L[a * d + b] = s / L[b * d + b];
		}
	for (size_t col = 0; ok && col < d; col++) {
		double *e = cov; /* reused: the column solved */
		for (size_t a = 0; a < d; a++) {
			double s = a == col;
			for (size_t k = 0; k < a; k++)
				s -= L[a * d + k] * e[k];
			e[a] = s / L[a * d + a];
		}
		for (size_t a = d; a-- > 0;) {
			double s = e[a];
			for (size_t k = a + 1; k < d; k++)
				s -= L[k * d + a] * prec[k * d + col];
			prec[a * d + col] = s / L[a * d + a];
		}
	}
	free(cov), free(L);
	return ok ? AE_OK : ae_fail(err, AE_ERR_INVAL, "the codes' covariance is not positive definite");
}

void ae_latent_distance(const double *mean, const double *prec, int dim, const float *z, int n, double *out)
{
	const size_t d = (size_t)dim;
	double v[AE_LATENT_STATS_MAX];
	for (int i = 0; i < n; i++) {
		for (size_t j = 0; j < d; j++)
			v[j] = z[(size_t)i * d + j] - mean[j];
		double s = 0;
		for (size_t a = 0; a < d; a++) {
			double r = 0;
			for (size_t b = 0; b < d; b++)
				r += prec[a * d + b] * v[b];
			s += v[a] * r;
		}
		out[i] = sqrt(s > 0 ? s : 0);
	}
}

void ae_model_scores(const ae_model *m, const float *x, const float *y, const float *z, int n, double *out)
{
	const ae_arch_spec *s = &m->net.spec;
	double *col = malloc((size_t)(n ? n : 1) * sizeof *col);
	for (int k = 0; col && k < AE_SCORE_COMBINED; k++) {
		if (k == AE_SCORE_LATENT && (!z || !m->latent_mean))
			for (int i = 0; i < n; i++)
				col[i] = NAN;
		else if (k == AE_SCORE_LATENT)
			ae_latent_distance(m->latent_mean, m->latent_prec, s->latent, z, n, col);
		else
			ae_score_images((ae_score_kind)k, x, y, n, s->c, s->h, s->w, col);
		for (int i = 0; i < n; i++)
			out[(size_t)i * AE_SCORE_COUNT + k] = col[i];
	}
	free(col);
	for (int i = 0; i < n; i++) {
		double c = 0;
		int have = 0;
		for (int k = 0; k < AE_SCORE_COMBINED; k++) {
			const ae_score_cal *cal = &m->cal[k];
			double v = out[(size_t)i * AE_SCORE_COUNT + k];
			if (!cal->present || !(cal->std > 0) || isnan(v)) continue;
			c += (v - cal->mean) / cal->std;
			have++;
		}
		out[(size_t)i * AE_SCORE_COUNT + AE_SCORE_COMBINED] = have ? c : NAN;
	}
}

int ae_score_calibrate(ae_score_cal *cal, const double *v, int n, ae_error *err)
{
	if (n < 2) return ae_fail(err, AE_ERR_INVAL, "calibration needs 2 or more held-out images");
	double s = 0, s2 = 0;
	for (int i = 0; i < n; i++)
		s += v[i];
	double mean = s / n;
	for (int i = 0; i < n; i++)
		s2 += (v[i] - mean) * (v[i] - mean);
	/* 0 to 0.99 by 0.01, then the tail in finer steps, as the MSE's table. */
	static const double tail[] = { 0.995, 0.998, 0.999, 0.9995, 0.9999, 1.0 };
	int k = 0;
	for (int i = 0; i < 100; i++)
		cal->qp[k++] = i / 100.0;
	for (size_t i = 0; i < sizeof tail / sizeof *tail; i++)
		cal->qp[k++] = tail[i];
	int rc = ae_quantiles(v, (size_t)n, cal->qp, k, cal->qv, err);
	if (rc) return rc;
	cal->n_quant = k;
	cal->mean = mean;
	cal->std = sqrt(s2 / (n - 1));
	cal->present = 1;
	return AE_OK;
}

double ae_table_percentile(const double *qp, const double *qv, int n, double score)
{
	if (n < 2) return NAN;
	if (score <= qv[0]) return 100.0 * qp[0];
	for (int i = 1; i < n; i++)
		if (score <= qv[i]) {
			double span = qv[i] - qv[i - 1];
			double t = span > 0 ? (score - qv[i - 1]) / span : 1.0;
			return 100.0 * (qp[i - 1] + t * (qp[i] - qp[i - 1]));
		}
	return 100.0 * qp[n - 1];
}

double ae_table_quantile(const double *qp, const double *qv, int n, double q)
{
	if (n < 2) return NAN;
	if (q <= qp[0]) return qv[0];
	for (int i = 1; i < n; i++)
		if (q <= qp[i]) {
			double span = qp[i] - qp[i - 1];
			double t = span > 0 ? (q - qp[i - 1]) / span : 1.0;
			return qv[i - 1] + t * (qv[i] - qv[i - 1]);
		}
	return qv[n - 1];
}

double ae_score_percentile(const ae_score_cal *c, double score)
{
	return ae_table_percentile(c->qp, c->qv, c->n_quant, score);
}

double ae_score_quantile(const ae_score_cal *c, double q)
{
	return ae_table_quantile(c->qp, c->qv, c->n_quant, q);
}
