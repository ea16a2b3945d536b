/*
 * The statistics reported about a model: quantiles of reconstruction
 * error, one-class AUROC, per-image MSE.
 */
#ifndef AE_STATS_H
#define AE_STATS_H

#include <stddef.h>

#include "ae/error.h"

/* Linear-interpolated quantiles (type 7) of v[0..n) at probabilities q[0..k). */
int ae_quantiles(const double *v, size_t n, const double *q, int k, double *out, ae_error *err);
/* Area under the ROC curve of scores for positives vs negatives (ties 1/2). */
double ae_auroc(const double *score, const int *positive, size_t n);
/* Per-image mean squared error between a and b, each (n, per). */
void ae_mse_per_image(double *out, const float *a, const float *b, int n, size_t per);

#endif
