/*
 * The statistics reported about a model: quantiles of reconstruction
 * error, one-class AUROC, per-image MSE.
 */
#include "ae/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int ae_quantiles(const double *v, size_t n, const double *q, int k, double *out, ae_error *err)
{
	if (n == 0) return ae_fail(err, AE_ERR_INVAL, "no values to take quantiles of");
	double *s = malloc(n * sizeof *s);
	if (!s) return ae_fail(err, AE_ERR_NOMEM, "out of memory");
	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp_double);
	for (int i = 0; i < k; i++) {
		double pos = q[i] * (double)(n - 1);
		size_t lo = (size_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
		out[i] = s[lo] + (pos - (double)lo) * (s[hi] - s[lo]);
	}
	free(s);
	return AE_OK;
}

typedef struct scored {
	double s;
	int pos;
} scored;

static int cmp_scored(const void *a, const void *b)
{
	const scored *x = a, *y = b;
	return (x->s > y->s) - (x->s < y->s);
}

double ae_auroc(const double *score, const int *positive, size_t n)
{
	scored *v = malloc(n * sizeof *v);
	if (!v) return NAN;
	size_t npos = 0;
	for (size_t i = 0; i < n; i++) {
		v[i].s = score[i];
		v[i].pos = positive[i] != 0;
		npos += (size_t)v[i].pos;
	}
	qsort(v, n, sizeof *v, cmp_scored);
	/* Mann-Whitney U: sum of the positives' ranks, ties given mean rank. */
	double rank_sum = 0.0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && v[j].s == v[i].s)
			j++;
		double mean_rank = (double)(i + 1 + j) / 2.0;
		for (size_t t = i; t < j; t++)
			if (v[t].pos) rank_sum += mean_rank;
		i = j;
	}
	free(v);
	size_t nneg = n - npos;
	if (npos == 0 || nneg == 0) return NAN;
	return (rank_sum - (double)npos * (npos + 1) / 2.0) / ((double)npos * nneg);
}

void ae_mse_per_image(double *out, const float *a, const float *b, int n, size_t per)
{
	for (int i = 0; i < n; i++) {
		double s = 0.0;
		const float *x = a + (size_t)i * per, *y = b + (size_t)i * per;
		for (size_t j = 0; j < per; j++) {
			double d = (double)x[j] - y[j];
			s += d * d;
		}
		out[i] = s / (double)per;
	}
}
