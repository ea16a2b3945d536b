/*
 * Image data sets held as 8-bit planar images (a 60,000-image set is 47 MB
 * rather than 188 MB of floats), read from MNIST-family IDX files (raw or
 * gzip) or from folders of PNG files, and turned into float batches on
 * demand.
 */
#ifndef AE_DATASET_H
#define AE_DATASET_H

#include <stdint.h>

#include "ae/error.h"

typedef struct ae_dataset {
	int n, c, h, w;
	uint8_t *pix;    /* (n, c, h, w), owned */
	int16_t *labels; /* n class labels, or NULL; owned */
	int n_classes;   /* 1 + largest label, 0 without labels */
	char **names;    /* a PNG folder's files, relative to it, or NULL; owned */
	int n_names;     /* how many names (n may be cut below it by a limit) */
	uint8_t *input;  /* paired inputs (ae_dataset_pair), as pix; NULL: the model is given pix */
	char source[4096];
} ae_dataset;

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
/* Makes inputs the images targets' are paired with (an image-to-image model
 * learns to give targets' image for inputs' one): both PNG folders of the
 * same size holding the same file names; inputs' pixels move to
 * targets->input and inputs is freed. The error names the first file
 * without a partner. */
int ae_dataset_pair(ae_dataset *targets, ae_dataset *inputs, ae_error *err);
/* The model's inputs for images idx: the paired ones if any, else the images. */
void ae_dataset_batch_inputs(const ae_dataset *ds, const int *idx, int n, float *out);
/* The same, every image resampled (bilinear) to h x w as it is read; h = w
 * = 0 keeps the size (and then every image must have the same). */
int ae_dataset_load_sized(ae_dataset *ds, const char *path, const char *split, int want_c, int h, int w, ae_error *err);
void ae_dataset_free(ae_dataset *ds);

/* Class numbers a selection can name: bits of a uint64_t. */
#define AE_DATASET_MAX_CLASSES 64
/* Keeps the images whose label is a class of `keep` (bit c for class c,
 * classes below AE_DATASET_MAX_CLASSES), in their order, plus images of class `extra` (-1:
 * none), chosen with the seed, that make up `fraction` of the result (the
 * tutorial's contamination: 0.01 is 1 in 100). The data set must have
 * labels. */
int ae_dataset_select(ae_dataset *ds, uint64_t keep, int extra, double fraction, uint64_t seed, ae_error *err);

/* Writes images idx[0..n) as floats in [0, 1] into out (n, c, h, w). */
void ae_dataset_batch(const ae_dataset *ds, const int *idx, int n, float *out);

#endif
