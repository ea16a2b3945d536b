/*
 * Reduced-precision stages for inference: a convolution, transposed
 * convolution or dense layer whose products run in int8 or bf16, over
 * the tap groups of the float kernels (dconv.h) and through the same
 * float epilogue.
 *
 * int8 (AVX512-VNNI, vpdpbusd: unsigned 8-bit activations times signed
 * 8-bit weights, four products at a time summed exactly into int32):
 *   - weights per output channel, symmetric: q_w = round(w / s_w[o]),
 *     s_w[o] = max |w[o, ...]| / 127;
 *   - the stage's input per tensor, asymmetric, from its calibrated range
 *     [lo, hi] (widened to hold 0): s_a = (hi - lo) / 255, zp = round(-lo /
 *     s_a), q_a = clamp(round(x / s_a + zp), 0, 255); padding reads zp,
 *     the value 0;
 *   - acc = sum q_w (q_a - zp), exact (started at -zp * the sum of q_w over
 *     the group's taps), y = acc * (s_a s_w[o]) + bias[o], then the
 *     activation and batch norm's scale and shift as in float32.
 * bf16 (AVX512_BF16, vdpbf16ps: pairs of bfloat16 products summed into
 * float32): activations and weights rounded to the nearest bfloat16
 * (ties to even), y = acc + bias[o], then the same epilogue.
 *
 * A stage reads float32 channels-last input, converts it into the
 * caller's scratch in one pass (small beside the products: a byte or two
 * per input value against 9 * oc products), and writes float32: stages of
 * any precision chain. Every kernel has a portable version computing the
 * same arithmetic (int8: the same integer sums and float epilogue, so the
 * same bits; bf16: the pairs added in the instruction's order), which the
 * tests hold the vector kernels to and which calibration runs on hosts
 * without the instructions, so that a model's thresholds do not depend on
 * the host that computed them.
 */
#ifndef AE_QCONV_H
#define AE_QCONV_H

#include "dconv.h"

#include <stdint.h>

typedef struct ae_qconv {
	ae_dconv g;  /* the geometry, over input pixels of icp channels */
	int prec;    /* AE_PREC_INT8 or AE_PREC_BF16 */
	int ic, icp; /* input channels, and padded: a multiple of 4 (int8) or 2 (bf16) */
	int oc, ocp; /* output channels, and padded to whole blocks of 16 */
	int simd;    /* the kernels that run (AE_QSIMD_*): at most the CPU's; tests lower it */
	int vex;     /* AE_QSIMD_YMM in AVX-VNNI's encoding (else AVX512-VNNI's) */
	int ntap_max;
	void *w;                     /* per group: [block of 16][tap][icp / k][16][k] values, k = 4 or 2 */
	int32_t *acc0;               /* int8: per group, ocp: -zp * the sum of the group's q_w */
	float *wscale;               /* int8: s_a * s_w[o], ocp */
	float *bias, *scale, *shift; /* ocp each: bias 0, scale 1, shift 0 past oc */
	int act;
	float slope;
	float in_inv, in_zp; /* int8: 1 / s_a and zp */
	unsigned char *pad;  /* icp values that padding taps read */
} ae_qconv;

/* Kernel sets for reduced precision, each needing more of the CPU:
 * portable C; int8 on 256-bit vectors (AVX-VNNI, as on Intel client
 * CPUs, or AVX512-VNNI's 256-bit form, which runs the same kernel); the
 * 512-bit int8 and bf16 kernels (AVX512-VNNI, AVX512_BF16). */
enum { AE_QSIMD_NONE, AE_QSIMD_YMM, AE_QSIMD_ZMM };

/* The widest kernel set this CPU (and its OS) runs for prec
 * (AE_QSIMD_*); fp32 needs none and is always AE_QSIMD_ZMM here. */
int ae_qconv_supported(int prec);

/* Compiles a layer of shape s for prec: w and ep as ae_dconv_init takes
 * them; [lo, hi] the calibrated range of its input (int8 only); simd the
 * widest kernel set to use (AE_QSIMD_*, lowered to what the CPU runs).
 * Returns 0, or -1 on a bad shape or out of memory (q is then empty). */
int ae_qconv_init(ae_qconv *q, const ae_dconv_shape *s, const float *w, const ae_epilogue *ep, int prec, float lo,
                  float hi, int simd);
void ae_qconv_deinit(ae_qconv *q);

/* Bytes of scratch the forward passes take for n images (or rows). */
size_t ae_qconv_scratch(const ae_qconv *q, int n);

/* y (n, oh, ow, oc) from x (n, ih, iw, ic), as ae_dconv_forward. */
void ae_qconv_forward(float *y, const float *x, int n, const ae_qconv *q, void *scratch);
/* A dense layer: y (n, oc) from x (n, ic), as ae_dconv_forward_rows. */
void ae_qconv_forward_rows(float *y, const float *x, int n, const ae_qconv *q, void *scratch);

#endif
