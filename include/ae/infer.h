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
 * out_size), shapes the plan gives: encode image -> code, decode code ->
 * image, reconstruct image -> image (another image than it is given, for
 * an image-to-image model). */
typedef enum ae_op { AE_OP_ENCODE, AE_OP_DECODE, AE_OP_RECONSTRUCT, AE_OP_COUNT } ae_op;

/* One item's shape, without the batch: an image (C, H, W), a code vector
 * (latent) or a code map (C, H, W). d[k] for k >= rank are 1. */
typedef struct ae_shape {
	int rank;
	int d[3];
} ae_shape;

static inline size_t ae_shape_size(ae_shape s)
{
	return (size_t)s.d[0] * s.d[1] * s.d[2];
}

/* How a plan is compiled. A zeroed struct (or NULL) is the default. */
typedef struct ae_plan_opts {
	/* AE_PREC_FP32 (0), AE_PREC_BF16 or AE_PREC_INT8 (ae/net.h). A
	 * reduced precision runs where this CPU has its instructions
	 * (AVX512_BF16; AVX512-VNNI) and fp32 elsewhere: ae_plan_precision
	 * says which. int8 needs the model's activation ranges (aetrain
	 * calibrate). Layers with fewer than 16 outputs, or whose inputs
	 * would be mostly padding (one channel), stay fp32. */
	int precision;
	/* 1: the precision's portable kernels whatever the CPU: the same
	 * arithmetic, slower (calibration on any host, tests). */
	int reference;
} ae_plan_opts;

/* Compiles m (borrowed: must outlive the plan) as o asks (NULL: fp32).
 * NULL + err on failure. */
ae_plan *ae_plan_new_opts(const ae_model *m, const ae_plan_opts *o, ae_error *err);
/* ae_plan_new_opts(m, NULL, err). */
ae_plan *ae_plan_new(const ae_model *m, ae_error *err);
/* The precision p runs (AE_PREC_*): the one asked, or fp32. */
int ae_plan_precision(const ae_plan *p);

#define AE_PREC_AUTO (-1)
/* AE_PREC_* for a name, AE_PREC_AUTO for "auto", -2 for anything else. */
int ae_precision_parse(const char *name);
/* Whether this CPU runs prec's kernels (fp32: always). */
int ae_precision_supported(int prec);
/* What "auto" means for m on this CPU: int8 where it runs and m has its
 * activation ranges, else bf16 where it runs, else fp32. */
int ae_precision_auto(const ae_model *m);
/* Resolves AE_PREC_AUTO (others are returned as they are). */
int ae_precision_resolve(const ae_model *m, int prec);

/* Calibration: widens lo[i] and hi[i] (per layer i of the model's net,
 * linear layers only; start them at +inf and -inf) to the range of the
 * values layer i reads when p reconstructs x (n, C, H, W). Runs on the
 * calling thread; allocates its own buffers. */
int ae_plan_observe(const ae_plan *p, const float *x, int n, float *lo, float *hi, ae_error *err);
void ae_plan_free(ae_plan *p);
const ae_model *ae_plan_model(const ae_plan *p);
/* The shape of one item op reads (in) and writes (out): the one place
 * these are decided. An operation's output need not have its input's
 * shape (encode: an image to a code; an image-to-image model's
 * reconstruct: gray to colour, small to large); a caller reads with the
 * one and writes with the other, never with its own idea of the model. */
ae_shape ae_plan_in_shape(const ae_plan *p, ae_op op);
ae_shape ae_plan_out_shape(const ae_plan *p, ae_op op);
/* Floats per item: the product of the shape. A caller that stages
 * batches sizes its buffers from these. */
size_t ae_plan_in_size(const ae_plan *p, ae_op op);
size_t ae_plan_out_size(const ae_plan *p, ae_op op);

/* An inference context: one caller at a time. Each batch is cut into
 * chunks of up to max_batch images (at most 16; the convolutions go
 * through a chunk a cache-sized part at a time), which `threads` lanes (the
 * caller plus threads-1 helper threads it starts) take in turn, each with
 * scratch sized once. */
ae_infer *ae_infer_new(const ae_plan *p, int max_batch, int threads, ae_error *err);
void ae_infer_free(ae_infer *w);
/* The plan w runs (borrowed). */
const ae_plan *ae_infer_plan(const ae_infer *w);

/* Runs op on n >= 0 items: in is (n, ae_plan_in_size), out is (n,
 * ae_plan_out_size). */
void ae_infer_run(ae_infer *w, ae_op op, const float *in, int n, float *out);

/* The same, named. x, y: (n, C, H, W) in [0, 1]; z: (n, latent). */
void ae_infer_encode(ae_infer *w, const float *x, int n, float *z);
void ae_infer_decode(ae_infer *w, const float *z, int n, float *y);
/* z may be NULL. */
void ae_infer_reconstruct(ae_infer *w, const float *x, int n, float *y, float *z);

#endif
