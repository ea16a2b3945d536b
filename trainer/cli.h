/*
 * What the aetrain subcommands share: strict parsing of option values (a bad
 * value is reported with the option's name), and loading a data set that
 * must match a model's input.
 */
#ifndef TRAINER_CLI_H
#define TRAINER_CLI_H

#include <stdint.h>

#include "ae/dataset.h"
#include "ae/infer.h"
#include "ae/net.h"

/* Each returns 0, or prints "aetrain: --opt: ..." to stderr and returns -1. */
int cli_int(const char *opt, const char *s, long lo, long hi, long *out);
int cli_float(const char *opt, const char *s, double lo, double hi, double *out);
int cli_u64(const char *opt, const char *s, uint64_t *out);

/* A text option (a path, a list) into buf of cap bytes; one that does not
 * fit is refused, never cut short. */
int cli_text(const char *opt, const char *s, char *buf, size_t cap);
/* --channels: 1 (gray) or 3 (RGB), the two an image is read as. */
int cli_channels(const char *s, long *out);

/* Accepts "train" or "test" for --split into out; prints and returns -1 otherwise. */
int cli_split(const char *v, char *out, size_t cap);

/* "HEIGHTxWIDTH" (--resize) into size; prints and returns -1 otherwise. */
int cli_size(const char *opt, const char *s, int size[2]);

/* Loads path (split "train"/"test") for the model's channels, resampled to
 * resize (HxW; NULL: as they are), and checks the images have the model's
 * size, saying how to resample them if not. Prints the error and returns
 * -1 on failure. limit > 0 keeps only the first limit images. */
int cli_load_data(ae_dataset *ds, const char *path, const char *split, const ae_arch_spec *spec, const int resize[2],
                  long limit);
/* Replaces ds (the inputs) by the PNG folder `targets`, its images paired
 * with ds's by name (ae_dataset_pair), loaded the same way (model size,
 * resize, limit). Prints the error and returns -1 on failure (ds freed). */
int cli_pair(ae_dataset *ds, const char *targets, const char *split, const ae_arch_spec *spec, const int resize[2],
             long limit);
/* The resampling a model was trained with (into size), or NULL. */
const int *cli_model_resize(const ae_model *m, int size[2]);
/* The same for a new model: its size is taken from the data (spec->h, w),
 * and a size the architecture cannot take is refused naming those that
 * work. */
int cli_load_train_data(ae_dataset *ds, const char *path, const char *split, ae_arch_spec *spec, const int resize[2],
                        long limit);

/* The thread count to train and infer with (0: every core); sets OpenBLAS
 * to one thread per caller. */
int cli_threads(long n);
/* --classes LIST and --contaminate CLASS:SHARE ("" for none): checks the
 * texts (saying what is wrong), then keeps those classes of ds and mixes
 * in the share of the other class, chosen with the seed. */
/* Splits 0..n-1 by a seeded shuffle: the first *n_val (val of n, at least
 * one if val > 0) are held out, the rest train. The one split rule, which
 * calibration repeats to find a model's held-out images again. */
int *cli_split_indices(int n, double val, uint64_t seed, int *n_val);
/* Every score (ae/scores.h) of every image of ds, clean: out is (n,
 * AE_SCORE_COUNT). 0, or -1 (said why). */
int cli_score_all(const ae_model *m, ae_infer *w, const ae_dataset *ds, double *out);
int cli_check_selection(const char *classes, const char *contaminate);
int cli_select(ae_dataset *ds, const char *classes, const char *contaminate, uint64_t seed);
/* The images of ds of every class but `classes` (a copy; empty when there
 * are none, or no classes were chosen): the anomalies that choose a
 * one-class model's default score. 0, or -1 (said why). */
int cli_others(const ae_dataset *ds, const char *classes, ae_dataset *others);

/* What a model is given for the clean images src (n of c x h x w): the
 * transform (image-to-image models), then the noise (denoisers), image i
 * drawing from the stream (seed, tag, index + i). dst may be src. */
void cli_corrupt(const ae_noise *nz, const ae_transform *tf, float *dst, const float *src, int n, int c, int h, int w,
                 uint64_t seed, uint64_t tag, uint64_t index);

/* Images idx of ds into x (what the model must produce) and what it is
 * given into in: the paired inputs if ds has them, else the images, then
 * cli_corrupt. */
void cli_batch(const ae_dataset *ds, const int *idx, int n, float *x, float *in, const ae_noise *nz,
               const ae_transform *tf, uint64_t seed, uint64_t tag, uint64_t index);

/* "dir/name.safetensors" + ".grid.png" -> "dir/name.grid.png" */
void cli_sibling(char *out, size_t cap, const char *model_path, const char *suffix);

#endif
