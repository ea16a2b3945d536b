/*
 * Anomaly scores of an image against its reconstruction (and its code),
 * and their calibration on held-out images of the training data:
 *
 *   mse       mean squared error (the score every model has)
 *   ssim      1 - mean structural similarity (7x7 windows, as scikit-image)
 *   max       the largest mean squared error over 4x4 windows: local defects
 *   latent    Mahalanobis distance of the code under a Gaussian fitted to
 *             the training codes
 *   combined  the four standardized by their held-out mean and deviation,
 *             and summed
 *
 * Larger is more anomalous for every one.
 */
#ifndef AE_SCORES_H
#define AE_SCORES_H

#include <stddef.h>

#include "ae/error.h"
#include "ae/net.h"

typedef enum ae_score_kind {
	AE_SCORE_MSE,
	AE_SCORE_SSIM,
	AE_SCORE_MAX,
	AE_SCORE_LATENT,
	AE_SCORE_COMBINED,
	AE_SCORE_COUNT
} ae_score_kind;

const char *ae_score_name(ae_score_kind k);
/* The kind named, or -1. */
int ae_score_find(const char *name);

/* Scores that need only images: x and y (n, c, h, w) -> out[n]. */
void ae_score_images(ae_score_kind k, const float *x, const float *y, int n, int c, int h, int w, double *out);

/* A Gaussian fitted to codes z (n, dim): its mean and precision (the
 * inverse of its covariance, with a small ridge so that it exists). */
int ae_latent_fit(const float *z, int n, int dim, double *mean, double *prec, ae_error *err);
/* Mahalanobis distance of each code under (mean, prec). */
void ae_latent_distance(const double *mean, const double *prec, int dim, const float *z, int n, double *out);

/* Every score of n images for a model that has the statistics (scores it
 * lacks are NAN) and gives back its input's shape
 * (ae_arch_check_autoencoder): x, y (n, C*H*W), z (n, latent) or NULL;
 * out (n, AE_SCORE_COUNT), row-major. */
void ae_model_scores(const ae_model *m, const float *x, const float *y, const float *z, int n, double *out);

/* Calibrates score k from its values on held-out images: mean,
 * deviation and a quantile table (as the MSE's). */
int ae_score_calibrate(ae_score_cal *cal, const double *v, int n, ae_error *err);
/* A quantile table (qp ascending in [0, 1], qv the values there): where
 * a value falls (0..100), the value at q (0..1); both interpolate. */
double ae_table_percentile(const double *qp, const double *qv, int n, double score);
double ae_table_quantile(const double *qp, const double *qv, int n, double q);
/* Where a score falls (0..100) / the score at quantile q (0..1). */
double ae_score_percentile(const ae_score_cal *cal, double score);
double ae_score_quantile(const ae_score_cal *cal, double q);

#endif
