/*
 * Inference: a plan compiled once from a model (batch norm folded, bias and
 * activation fused into the pass that writes each linear layer's output),
 * shared read-only by any number of workers, each of which owns scratch
 * sized once for its largest batch. Running a plan allocates nothing.
 */
#ifndef AE_INFER_H
#define AE_INFER_H

#include "ae/net.h"

typedef struct ae_plan ae_plan;
typedef struct ae_infer ae_infer;

/* What a plan can run. Each takes (n, in_size) floats and writes (n,
 * out_size), sizes the plan gives: encode image -> code, decode code ->
 * image, reconstruct image -> image. */
typedef enum ae_op { AE_OP_ENCODE, AE_OP_DECODE, AE_OP_RECONSTRUCT, AE_OP_COUNT } ae_op;

/* Compiles m (borrowed: must outlive the plan). NULL + err on failure. */
ae_plan *ae_plan_new(const ae_model *m, ae_error *err);
void ae_plan_free(ae_plan *p);
const ae_model *ae_plan_model(const ae_plan *p);
/* Floats per item read (in) and written (out) by op: the one place these
 * sizes are decided. A caller that stages batches sizes its buffers from
 * these, never from its own idea of the model. */
size_t ae_plan_in_size(const ae_plan *p, ae_op op);
size_t ae_plan_out_size(const ae_plan *p, ae_op op);

/* An inference context: one caller at a time. Each batch is cut into
 * chunks of up to max_batch images (at most 16; the convolutions go
 * through a chunk a cache-sized part at a time), which `threads` lanes (the
 * caller plus threads-1 helper threads it starts) take in turn, each with
 * scratch sized once. */
ae_infer *ae_infer_new(const ae_plan *p, int max_batch, int threads, ae_error *err);
void ae_infer_free(ae_infer *w);

/* Runs op on n >= 0 items: in is (n, ae_plan_in_size), out is (n,
 * ae_plan_out_size). */
void ae_infer_run(ae_infer *w, ae_op op, const float *in, int n, float *out);

/* The same, named. x, y: (n, C, H, W) in [0, 1]; z: (n, latent). */
void ae_infer_encode(ae_infer *w, const float *x, int n, float *z);
void ae_infer_decode(ae_infer *w, const float *z, int n, float *y);
/* z may be NULL. */
void ae_infer_reconstruct(ae_infer *w, const float *x, int n, float *y, float *z);

#endif
