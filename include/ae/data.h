/*
 * Image data sets held as 8-bit planar images (a 60,000-image set is 47 MB
 * rather than 188 MB of floats), read from MNIST-family IDX files (raw or
 * gzip) or from folders of PNG files, and turned into float batches on
 * demand. Also: corruption for denoising, and the statistics the trainer
 * reports.
 */
#ifndef AE_DATA_H
#define AE_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "ae/error.h"
#include "ae/net.h"
#include "ae/rng.h"

typedef struct ae_dataset {
	int n, c, h, w;
	uint8_t *pix;        /* (n, c, h, w), owned */
	int16_t *labels;     /* n class labels, or NULL; owned */
	int n_classes;       /* 1 + largest label, 0 without labels */
	char source[4096];
} ae_dataset;

/* ---- IDX (the MNIST container): big-endian header, unsigned bytes ---- */
/* Reads an IDX file of unsigned bytes with 1 to 3 dimensions (gzip or raw).
 * *data is owned by the caller. */
int ae_idx_read(const char *path, uint8_t **data, int *ndim, int dims[3], ae_error *err);
/* Writes an IDX file of unsigned bytes, atomically, uncompressed. */
int ae_idx_write(const char *path, const uint8_t *data, int ndim, const int dims[3], ae_error *err);

/*
 * Loads a data set for a model with want_c channels (1 or 3):
 *  - an IDX images file; labels are read from the labels file beside it
 *    ("...-images-idx3-ubyte[.gz]" -> "...-labels-idx1-ubyte[.gz]") if any;
 *  - a folder holding train-/t10k- IDX files: split "train" or "test";
 *  - a folder of PNG files (sorted by name); PNGs in subfolders are
 *    labelled by subfolder, in sorted order.
 * Every image must have the same size. Errors name the file and the problem.
 */
int ae_dataset_load(ae_dataset *ds, const char *path, const char *split, int want_c, ae_error *err);
void ae_dataset_free(ae_dataset *ds);

/* Writes images idx[0..n) as floats in [0, 1] into out (n, c, h, w). */
void ae_dataset_batch(const ae_dataset *ds, const int *idx, int n, float *out);

/* ---- Corruption ---- */
/* gaussian: x + mean + std*N(0,1) clipped to [0,1]; saltpepper: each value
 * becomes 0 or 1 (even odds) with probability p. */
void ae_noise_apply(const ae_noise *nz, float *x, size_t n, ae_rng *r);

/* ---- Statistics ---- */
/* Linear-interpolated quantiles (type 7) of v[0..n) at probabilities q[0..k). */
int ae_quantiles(const double *v, size_t n, const double *q, int k, double *out, ae_error *err);
/* Area under the ROC curve of scores for positives vs negatives (ties 1/2). */
double ae_auroc(const double *score, const int *positive, size_t n);
/* Per-image mean squared error between a and b, each (n, per). */
void ae_mse_per_image(double *out, const float *a, const float *b, int n, size_t per);

#endif
