/*
 * Layer kernels over flat float32 arrays, in the llm.c manner: outputs
 * first, then inputs, then shapes; gradient arguments start with `d`;
 * backward passes ACCUMULATE (+=) into parameter gradients and OVERWRITE
 * input gradients. No kernel allocates: scratch comes from the caller.
 *
 * Convolutions run direct on channels-last (NHWC) images, in training and
 * inference alike (dconv.h; their weight gradients below); each has a
 * plain NCHW reference loop (`_ref`) that the tests compare against.
 * Batch norm in training works on channels-last images too; dense layers
 * and the elementwise ones do not care.
 */
#ifndef AE_OPS_H
#define AE_OPS_H

#include <stddef.h>

/* Vector kernel sets, each the one below it plus wider vectors, and the
 * widest this CPU (and its OS, which must save the registers) runs. */
enum { AE_SIMD_NONE, AE_SIMD_AVX2, AE_SIMD_AVX512 };
int ae_cpu_simd(void);

/* What a pass over a few images at a time keeps a layer's input and
 * output within, so that what one layer writes is still in the core's L2
 * (2 MB on the hosts measured) when the next reads it: inference's
 * sub-chunks (infer.c) and training's runs (train.c). */
#define AE_L2_BYTES (1536 * 1024)

/* How many of n images a pass over them takes so that per_image bytes
 * each stay within budget: at least 1, at most n. */
static inline int ae_images_within(size_t budget, size_t per_image, int n)
{
	size_t fit = per_image ? budget / per_image : (size_t)n;
	return fit < 1 ? 1 : fit < (size_t)n ? (int)fit : n;
}

/* n floats (at least one) aligned to 64 bytes, for activations and
 * scratch the vector kernels read; free() releases them. NULL when out of
 * memory or n is too large. */
float *ae_floats(size_t n);

/* Geometry of a 2-D convolution from (c, h, w) to (oh, ow). */
typedef struct ae_conv_geom {
	int c, h, w; /* input channels and size */
	int k, stride, pad;
	int oh, ow; /* output size */
} ae_conv_geom;

/* Fills oh/ow from the rest; returns 0, or -1 if the output would be empty. */
int ae_conv_geom_init(ae_conv_geom *g, int c, int h, int w, int k, int stride, int pad);

/* Activation applied in the pass that writes a linear layer's output. */
enum { AE_ACT_NONE = 0, AE_ACT_RELU, AE_ACT_LRELU, AE_ACT_SIGMOID };

/*
 * What is applied to each output value of channel c, in this order:
 *   v = (v + bias[c]) ; v = act(v) ; v = v * scale[c] + shift[c]
 * Any pointer may be NULL (skip). scale/shift carry a batch norm that
 * follows the activation, folded into the same pass.
 */
typedef struct ae_epilogue {
	const float *bias;
	int act;
	float slope;
	const float *scale, *shift;
} ae_epilogue;

/* Applies ep in place to one row of a dense layer's output: unit u is
 * channel u. */
void ae_epilogue_units(float *y, int units, const ae_epilogue *ep);
/* Applies ep in place to y (n, ch, p), NCHW: the references' epilogue. */
void ae_epilogue_apply(float *y, int n, int ch, int p, const ae_epilogue *ep);

/* ---- Conv2D, weight (oc, c, k, k), bias (oc): reference loops ---- */
void ae_conv2d_forward_ref(float *y, const float *x, const float *w, const float *b, int n, int oc,
                           const ae_conv_geom *g);
void ae_conv2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                            int oc, const ae_conv_geom *g);

/* ---- ConvTranspose2D, weight (ic, oc, k, k), bias (oc): reference loops ----
 * g is the geometry of the *adjoint* convolution: from the output
 * (oc, H_out, W_out) down to the input (g->c = oc, g->h = H_out,
 * g->oh = H_in). */
void ae_convt2d_forward_ref(float *y, const float *x, const float *w, const float *b, int n, int ic,
                            const ae_conv_geom *g);
void ae_convt2d_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                             int ic, const ae_conv_geom *g);

/* ---- Dense, weight (out, in), bias (out); x (n, in), y (n, out) ---- */
void ae_dense_forward(float *y, const float *x, const float *w, const ae_epilogue *ep, int n, int in, int out);
void ae_dense_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n, int in,
                       int out);
void ae_dense_forward_ref(float *y, const float *x, const float *w, const float *b, int n, int in, int out);
void ae_dense_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                           int in, int out);

/* ---- Elementwise activations (n values). Backward takes the forward
 * OUTPUT y, which is enough for all three (slope > 0 keeps LeakyReLU's sign). */
void ae_relu_forward(float *y, const float *x, size_t n);
void ae_relu_backward(float *dx, const float *dy, const float *y, size_t n);
void ae_lrelu_forward(float *y, const float *x, float slope, size_t n);
void ae_lrelu_backward(float *dx, const float *dy, const float *y, float slope, size_t n);
void ae_sigmoid_forward(float *y, const float *x, size_t n);
void ae_sigmoid_backward(float *dx, const float *dy, const float *y, size_t n);

/* ---- BatchNorm over channels-last (n, p, c): p = h*w (BatchNorm2d) or 1
 * (BatchNorm1d) ----
 * Training: normalises with batch statistics, saves mean and invstd (c each)
 * for backward, and updates running stats as PyTorch does (momentum,
 * unbiased variance). */
void ae_bn_forward_train(float *y, float *mean, float *invstd, float *run_mean, float *run_var, const float *x,
                         const float *gamma, const float *beta, int n, int c, int p, float momentum, float eps);
void ae_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x, const float *mean,
                    const float *invstd, const float *gamma, int n, int c, int p);
/* The same in steps, for lanes that each hold part of the batch and go
 * through it a few images at a time: each adds its images' sums, the
 * lanes' sums are added, and each lane finishes its own images with the
 * totals (m = values per channel in the batch). */
/* Adds to s1 and s2 (c each) the sums of x - shift and of its square, in
 * double: one pass for mean and variance. The shift (any values near the
 * channels' means: the running means) keeps the variance's two terms from
 * cancelling. */
void ae_bn_shifted_sums(double *s1, double *s2, const float *x, const float *shift, int n, int c, int p);
/* The batch mean mu and the sum of squared deviations ss from the totals
 * of ae_bn_shifted_sums over m values per channel. */
void ae_bn_moments(double *mu, double *ss, const double *s1, const double *s2, const float *shift, size_t m, int c);
/* mean and invstd from the batch mean and total ss; updates the running
 * statistics too when run_mean is not NULL. */
void ae_bn_stats(float *mean, float *invstd, float *run_mean, float *run_var, const double *mu, const double *ss,
                 size_t m, int c, float momentum, float eps);
void ae_bn_normalize(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                     const float *beta, int n, int c, int p);
/* Adds to sdy the sum of dy and to sdyx that of dy * xhat: dbeta and
 * dgamma. */
void ae_bn_backward_sums(double *sdy, double *sdyx, const float *dy, const float *x, const float *mean,
                         const float *invstd, int n, int c, int p);
void ae_bn_backward_dx(float *dx, const float *dy, const float *x, const float *mean, const float *invstd,
                       const float *gamma, const double *sdy, const double *sdyx, size_t m, int n, int c, int p);
/* ae_bn_backward_dx for a batch norm whose input x is a LeakyReLU's
 * output, with that LeakyReLU's backward in the same pass (dx is then
 * the gradient at the LeakyReLU's input, as ae_lrelu_backward would make
 * it, bit for bit), and db[ch] = the sum of dx over channel ch: the
 * bias gradient of the layer before the LeakyReLU. */
void ae_bn_lrelu_backward_dx(float *dx, double *db, const float *dy, const float *x, const float *mean,
                             const float *invstd, const float *gamma, const double *sdy, const double *sdyx, size_t m,
                             int n, int c, int p, float slope);
/* Inference form: y = x*scale + shift with scale/shift from running stats. */
void ae_bn_fold(float *scale, float *shift, const float *gamma, const float *beta, const float *run_mean,
                const float *run_var, int c, float eps);

/* ---- gradients of convolutions on channels-last images ---- */
/* col (n*oh*ow, k*k*c): per output pixel of g, its k*k taps of c channels
 * from x (n, h, w, c), zeros where a tap falls on padding. */
void ae_im2col_nhwc(float *col, const float *x, int n, const ae_conv_geom *g);
/* Adds to dw (a, g->c, k, k) the sum over n images' pixels of the patches
 * of src under g times rows (n*oh*ow, a). For a convolution, g is its own
 * geometry, src its input and rows its output gradient (a = out channels);
 * for a transposed one, g is its adjoint's (ae_layer_geom), src its output
 * gradient and rows its input (a = in channels). Scratch: wt (a, k*k*c),
 * col as ae_im2col_nhwc fills it. */
void ae_conv_weight_grad(float *dw, float *wt, float *col, const float *src, const float *rows, int n, int a,
                         const ae_conv_geom *g);
/* The same with the kernels of at most simd (AE_SIMD_*): with AVX-512, a
 * direct kernel reading src in place; below, ae_im2col_nhwc and a GEMM.
 * Tests lower simd to check both. */
void ae_conv_weight_grad_simd(float *dw, float *wt, float *col, const float *src, const float *rows, int n, int a,
                              const ae_conv_geom *g, int simd);
/* Whether the weight gradient at simd reads col (the GEMM's patches);
 * when not, col may be NULL or of any size. */
int ae_conv_weight_grad_col(int simd);
/* Adds to db (c) the sums of dy (rows, c) over its rows, accumulated in
 * acc (c doubles, scratch). */
void ae_bias_grad_nhwc(float *db, const float *dy, size_t rows, int c, double *acc);

/* ---- Losses: mean over n values; write d(loss)/d(y) into dy (may be NULL) ---- */
double ae_mse_loss(float *dy, const float *y, const float *target, size_t n);
/* y in (0,1); log clamped at -100 as PyTorch's BCELoss does. */
double ae_bce_loss(float *dy, const float *y, const float *target, size_t n);
/* n of a batch's total values: their share of the mean loss, and dy as the
 * whole batch's mean gives it. */
double ae_mse_loss_part(float *dy, const float *y, const float *target, size_t n, size_t total);
double ae_bce_loss_part(float *dy, const float *y, const float *target, size_t n, size_t total);

/* ---- Adam (PyTorch defaults: betas 0.9/0.999, eps 1e-8, no weight decay) ----
 * step is the 1-based step count after this update. */
void ae_adam_update(float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1, float beta2,
                    float eps, long step);

#endif
