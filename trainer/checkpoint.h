/*
 * A training run's state and its checkpoint file: the model, the Adam
 * moments and step, the options the run was started with and where it
 * stands (epoch, batch, running loss, history), in one safetensors file
 * written atomically. Loading one and continuing gives exactly the model
 * an uninterrupted run gives.
 */
#ifndef TRAINER_CHECKPOINT_H
#define TRAINER_CHECKPOINT_H

#include <stdint.h>

#include "ae/modelfile.h"
#include "ae/safetensors.h"
#include "ae/train.h"
#include "report.h"

#define MAX_EPOCHS 10000
#define MAX_BATCH  4096 /* images per training step (aetrain --batch) */

typedef struct train_opts {
	char data[2048], split[8], out[2048], resume[2048];
	char targets[2048];                 /* --targets DIR: the images --data's are paired with; "" for none */
	char classes[256], contaminate[32]; /* --classes, --contaminate; "" for none */
	int resize[2];                      /* --resize HxW; 0x0 for none */
	ae_transform transform;             /* --input; AE_TF_NONE for none */
	ae_arch_spec spec;
	long epochs, batch, limit;
	long threads;          /* as asked (0: every core), saved in checkpoints */
	long threads_run;      /* as run: the count the trainer took */
	long checkpoint_every; /* batches between checkpoints; 0: only when stopped */
	double lr, val;
	int loss;
	ae_noise noise;
	uint64_t seed;
	int quiet;
	long dist_timeout; /* --dist-timeout: not saved (the resuming command's) */
} train_opts;

typedef struct progress {
	int epoch, batch; /* where to continue */
	double loss_sum;
	long loss_n;
	double elapsed;
	epoch_row rows[MAX_EPOCHS];
	int n_rows;
} progress;

/* What a checkpoint holds besides the model. */
typedef struct ckpt_state {
	train_opts opts;        /* as the run was started (quiet and resume excepted) */
	progress *p;            /* borrowed: filled by ckpt_parse */
	float *adam_m, *adam_v; /* n_params each, malloc'd by ckpt_parse; the caller frees */
	long adam_step;
} ckpt_state;

/* Writes path atomically; prints the reason and returns non-zero on failure
 * (the previous file at path, if any, is left as it was). */
int ckpt_save(const char *path, const train_opts *o, ae_model *m, ae_trainer *tr, const progress *p);

/* Validates a parsed checkpoint and builds its model; NULL + err on any
 * fault (not a checkpoint, malformed metadata, wrong optimiser sizes). */
ae_model *ckpt_parse(const ae_st *st, ckpt_state *cs, ae_error *err);

/* Reads and parses path; prints the reason (naming the file) on failure. */
ae_model *ckpt_load(const char *path, ckpt_state *cs);

#endif
