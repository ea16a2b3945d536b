/*
 * What training shows and leaves behind: the progress line or bar, the CSV
 * of losses per epoch and the PNG grid of held-out reconstructions.
 */
#ifndef TRAINER_REPORT_H
#define TRAINER_REPORT_H

#include <stdio.h>

#include "ae/dataset.h"
#include "ae/noise.h"
#include "ae/infer.h"

typedef struct epoch_row {
	int epoch;
	double train_loss, val_loss, seconds;
} epoch_row;

/* A progress bar on a terminal, redrawn at most every 100 ms. */
void report_progress(int epoch, int epochs, int batch, int batches, double loss, double img_per_s, double eta_s);
void report_progress_end(void);

int report_csv(const char *path, const epoch_row *rows, int n);

/* Rows: held-out inputs, their corrupted versions (if noise), reconstructions. */
int report_grid(const char *path, ae_infer *w, const ae_dataset *ds, const int *idx, int n, const ae_noise *noise,
                const ae_transform *tf, uint64_t seed);

#endif
