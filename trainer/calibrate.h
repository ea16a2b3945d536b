/*
 * After training: the statistics the anomaly scores need (ae/scores.h),
 * from the model's own data: the Gaussian of the training images' codes,
 * and every score's held-out mean, deviation and quantiles.
 */
#ifndef TRAINER_CALIBRATE_H
#define TRAINER_CALIBRATE_H

#include "ae/dataset.h"
#include "ae/infer.h"

/* others (may be NULL or empty): images of other classes; with them the
 * default score is the one that best tells the held-out images from them
 * (AUROC), else mse. */
int calibrate_scores(ae_model *m, ae_infer *w, const ae_dataset *ds, const int *train_idx, int n_train,
                     const int *val_idx, int n_val, const ae_dataset *others);

#endif
