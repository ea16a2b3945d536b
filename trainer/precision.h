/*
 * `aetrain eval --precision`: what a reduced-precision plan changes
 * against fp32 on the same images: reconstruction error, the codes'
 * direction, codes as features (kNN-5 accuracy), and the share of images
 * the precision's own p99 threshold flags.
 */
#ifndef TRAINER_PRECISION_H
#define TRAINER_PRECISION_H

#include "ae/dataset.h"
#include "ae/infer.h"

/* Prints, for the images of ds at w's precision: "flagged_p99" (the share
 * of images whose MSE exceeds m's p99: m must use w's precision's
 * calibration); if w is not fp32, against a plan of fp32 made here
 * (threads): the relative change of the mean MSE and the codes' cosine
 * similarity (mean, min); with knn_ref (labelled, may be NULL) the kNN-5
 * accuracy of ds's codes among knn_ref's (both at w's precision; ds
 * labelled). Returns 0, or -1 (printed) on failure. */
int precision_report(const ae_model *m, ae_infer *w, const ae_dataset *ds, const ae_dataset *knn_ref, int threads);

#endif
