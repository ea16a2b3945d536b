/*
 * Direct convolution on channels-last (NHWC) images, for inference.
 *
 * A convolution or transposed convolution is compiled once into groups of
 * output pixels that share one set of kernel taps: one group for a
 * convolution, s*s phase groups for a stride-s transposed convolution
 * (output pixel (s*m+a, s*n+b) only meets taps with ky = a+pad (mod s)).
 * Each group keeps, per output pixel and tap, the offset of the input pixel
 * it reads (or "padding"), and the weights packed for the kernel. A forward
 * pass then reads the input in place: no im2col copy, no col2im sum, no
 * second packing inside a GEMM, and bias, activation and batch-norm shift
 * are applied in registers before the one store of each output.
 *
 * Kernels: 6 output pixels x 16 (or 8) output channels per tile with FMA
 * vectors along the channels, for layers with at least 8 output channels;
 * a dot product along the input channels for narrower ones (the decoder's
 * 1-channel output layer). AVX-512 versions (14 pixels x up to 32 channels
 * per tile) or AVX2+FMA ones run when the CPU has them (checked at run
 * time); portable C versions otherwise. Every output is one FMA chain in
 * the same order in the wide kernels of each set, so the AVX2 and AVX-512
 * wide kernels give the same bits.
 */
#ifndef AE_DCONV_H
#define AE_DCONV_H

#include "ae/net.h"
#include "ops.h"

#include <stdint.h>

typedef struct ae_dconv_shape {
	int transposed; /* 0: Conv2d, weight (oc, ic, k, k);
	                         * 1: ConvTranspose2d, weight (ic, oc, k, k) */
	int ic, ih, iw;
	int oc, oh, ow;
	int k, stride, pad;
} ae_dconv_shape;

#define AE_DCONV_MAX_K 11

typedef struct ae_dconv_group {
	int ntaps, npix;
	size_t pix_at; /* into pix: npix output pixel indices */
	size_t off_at; /* into off: npix * ntaps input offsets */
	size_t w_at;   /* into w: this group's packed weights */
	/* Narrow and one-group layers: pixels [0, n_inner) (moved first) read
	 * every tap at their first tap's offset plus delta, so their tiles
	 * test no padding (the narrow kernels': no pointer table). */
	int n_inner;
	int32_t delta[AE_DCONV_MAX_K * AE_DCONV_MAX_K];
	/* A transposed convolution's phase groups keep raster order instead;
	 * outer[p] (npix + 1 of them, NULL if no pixel reads at delta) counts
	 * the pixels before p that do not. */
	int32_t *outer;
} ae_dconv_group;

typedef struct ae_dconv {
	ae_dconv_shape s;
	int ocp;     /* oc rounded up to 8: the packed weight rows */
	int narrow;  /* oc < 8: dot-product kernel */
	int simd;    /* the widest kernels the CPU runs (AE_SIMD_*); tests lower it
	                         * to check the narrower ones */
	int per_tap; /* wide kernels: 0 sums all taps and input channels in one
	                         * chain; 1 rounds each tap's sum over the input channels on
	                         * its own and adds the taps in order, as an im2col or col2im
	                         * lowering onto a GEMM does (training: see core/train.c) */
	int n_grp;
	ae_dconv_group *grp;
	int32_t *pix;
	int32_t *off; /* in floats from the image's start (pixel * ic); -1: padding */
	float *w;
	float *bias, *scale, *shift; /* ocp each: bias 0, scale 1, shift 0 where absent */
	int act;
	float slope;
	float *zeros; /* ic zeros, what padding taps read */
	/* Floats between the inputs of two pixels next to each other in a
	 * group's row: stride * ic, or ic for a transposed one's phases. */
	int pixel_step;
	/* Narrow layers of up to 4 channels: a tile's sums (channel-major) to
	 * its pixels' interleaved channels, as vector lanes (dconv.c). */
	int32_t store_idx[32];
} ae_dconv;

/* Compiles a layer: w is PyTorch's weight layout for s.transposed (any BN
 * already folded in), ep what follows it (pointers copied, may be NULL).
 * w NULL compiles the geometry alone (groups, pixels, offsets), for
 * kernels that pack weights of their own (qconv.h). Returns 0, or -1 on a
 * bad shape or out of memory (d is then empty). */
int ae_dconv_init(ae_dconv *d, const ae_dconv_shape *s, const float *w, const ae_epilogue *ep);
void ae_dconv_deinit(ae_dconv *d);

/* Group g's taps (ky, kx), as the kernels visit them; returns how many. */
int ae_dconv_group_taps(const ae_dconv_shape *s, int g, int *ty, int *tx);
/* Weight of output channel o, input channel c, tap (ky, kx) in PyTorch's
 * layout for s's kind. */
float ae_dconv_weight_at(const ae_dconv_shape *s, const float *w, int o, int c, int ky, int kx);

/* The adjoint of s, from its output back to its input: the input gradient
 * of a layer as a direct convolution with the layer's own weights, read in
 * the other kind's layout (a convolution's (oc, ic, k, k) are a transposed
 * one's with in = oc and out = ic, and the other way round). */
void ae_dconv_adjoint(ae_dconv_shape *adj, const ae_dconv_shape *s);

/* Packs new weights and epilogue (same shape) into d's storage, as init
 * did: for a layer whose weights change, once per training step. Allocates
 * nothing. */
void ae_dconv_pack(ae_dconv *d, const float *w, const ae_epilogue *ep);

/* y (n, oh, ow, oc) from x (n, ih, iw, ic). Allocates nothing. */
void ae_dconv_forward(float *y, const float *x, int n, const ae_dconv *d);

/* A dense layer (weight (oc, ic)) is compiled as a 1x1 convolution of a
 * 1x1 image; this runs it on n rows x (n, ic) -> y (n, oc), each row a
 * pixel of the tiles. Every row's sums run in the same order whatever n
 * is, so a row's result does not depend on the batch it came in. */
void ae_dconv_forward_rows(float *y, const float *x, int n, const ae_dconv *d);

/* NCHW <-> NHWC for n images of c channels and p pixels. */
void ae_nchw_to_nhwc(float *dst, const float *src, int n, int c, int p);
void ae_nhwc_to_nchw(float *dst, const float *src, int n, int c, int p);

/* ---- layers as kernels (net.c) ---- */
/* The lowering geometry of a conv layer, or for a transposed conv that of
 * its adjoint convolution (from its output down to its input). */
void ae_layer_geom(const ae_layer *l, ae_conv_geom *g);
/* A conv, transposed conv or dense layer as a direct convolution (dense:
 * a 1x1 convolution of a 1x1 image). */
void ae_layer_dconv_shape(const ae_layer *l, ae_dconv_shape *s);

#endif
