/*
 * Training state for one model: gradients, Adam moments, activations and
 * scratch, each one allocation sized from the architecture and the largest
 * batch, so a training step allocates nothing.
 */
#ifndef AE_TRAIN_H
#define AE_TRAIN_H

#include "ae/net.h"

enum { AE_LOSS_MSE, AE_LOSS_BCE };

typedef struct ae_trainer ae_trainer;

/* Training across processes (data-parallel): each process holds the whole
 * model and steps on its part of every batch; a reducer sums buffers in
 * place across the processes, so that every process gets the same bits.
 * The trainer calls it for batch norm's per-channel sums (forward and
 * backward, doubles, blocking) and for the gradients (floats): started a
 * bucket at a time as the backward pass finishes the layers when `start`
 * is given, else one blocking `sum` of all of them after the backward
 * pass. Every call comes from the thread that called the step, in the
 * same order on every process. A call returns 0, or non-zero when the sum
 * failed: the step then returns NaN. The trainer knows nothing of how the
 * sums travel (trainer/dist_mpi.c sums over MPI). */
enum { AE_RED_F32, AE_RED_F64 };
typedef struct ae_reducer {
	void *ctx;
	/* Sums n values (AE_RED_F32 floats or AE_RED_F64 doubles) of buf in
	 * place; returns when done. */
	int (*sum)(void *ctx, void *buf, size_t n, int type);
	/* Optional: starts summing n floats of buf in place; buf is the
	 * reducer's until finish returns. */
	int (*start)(void *ctx, float *buf, size_t n);
	/* Optional: lets started sums move on while the step computes
	 * (called often, between layers). */
	void (*progress)(void *ctx);
	/* Waits for every started sum. */
	int (*finish)(void *ctx);
	/* Floats a started bucket holds at least, the last excepted (0: 64 Ki,
	 * 256 KB: each sum costs a few network latencies whatever its size). */
	size_t bucket;
} ae_reducer;

/* m is borrowed and must outlive the trainer; its params/state are updated
 * in place. Each step's images are split over `threads` lanes (the caller
 * and threads-1 helpers it starts), which meet at every batch norm for the
 * whole batch's statistics and add their gradients at the end; OpenBLAS
 * should then run one thread per caller. Through the convolutions a lane
 * takes the next chunk of images no lane has taken (a slower core takes
 * fewer), and every sum is kept per chunk: the same call gives the same
 * bits whichever lane took what. Returns NULL and fills err on failure. */
ae_trainer *ae_trainer_new(ae_model *m, int max_batch, int threads, int loss, ae_error *err);
void ae_trainer_free(ae_trainer *t);

/* One optimisation step on n <= max_batch images: forward with batch
 * statistics, loss against target, backward, Adam. Returns the loss. */
double ae_trainer_step(ae_trainer *t, const float *x, const float *target, int n, float lr);

/* r (borrowed, NULL: one process) sums across processes from the next
 * step on. */
void ae_trainer_set_reducer(ae_trainer *t, const ae_reducer *r);
/* A step of a data-parallel run: this process's n images (0 allowed) of
 * a batch of n_all across the processes. Batch norm's statistics and the
 * loss are the whole batch's, the gradients summed by the reducer, so
 * every process takes the step one process would take on the n_all
 * images. Returns this process's part of the loss (the parts add up to
 * the batch's loss), NaN if a sum failed. */
double ae_trainer_step_part(ae_trainer *t, const float *x, const float *target, int n, int n_all, float lr);

/* The pieces of a step, for tests that compare against PyTorch. */
void ae_trainer_zero_grad(ae_trainer *t);
/* Returns the decoder output (n, C, H, W), owned by the trainer. */
const float *ae_trainer_forward(ae_trainer *t, const float *x, int n);
/* The same for n of a data-parallel batch of n_all (ae_trainer_step_part). */
const float *ae_trainer_forward_part(ae_trainer *t, const float *x, int n, int n_all);
/* Loss of the last forward against target; backpropagates into the grads
 * (with a reducer, summed across processes when it returns; the loss is
 * this process's part). x and n must be the last forward's. */
double ae_trainer_backward(ae_trainer *t, const float *x, const float *target, int n);
void ae_trainer_adam(ae_trainer *t, float lr);

/* Gradient block (n_params, same layout as params) and Adam state. */
float *ae_trainer_grads(ae_trainer *t);
float *ae_trainer_adam_m(ae_trainer *t);
float *ae_trainer_adam_v(ae_trainer *t);
long *ae_trainer_adam_step(ae_trainer *t);

#endif
