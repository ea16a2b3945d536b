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

/* The pieces of a step, for tests that compare against PyTorch. */
void ae_trainer_zero_grad(ae_trainer *t);
/* Returns the decoder output (n, C, H, W), owned by the trainer. */
const float *ae_trainer_forward(ae_trainer *t, const float *x, int n);
/* Loss of the last forward against target; backpropagates into the grads.
 * x and n must be the last forward's. */
double ae_trainer_backward(ae_trainer *t, const float *x, const float *target, int n);
void ae_trainer_adam(ae_trainer *t, float lr);

/* Gradient block (n_params, same layout as params) and Adam state. */
float *ae_trainer_grads(ae_trainer *t);
float *ae_trainer_adam_m(ae_trainer *t);
float *ae_trainer_adam_v(ae_trainer *t);
long *ae_trainer_adam_step(ae_trainer *t);

#endif
