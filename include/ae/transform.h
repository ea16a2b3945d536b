/*
 * Image-to-image models: what the model is given is a transform of what it
 * must produce. Named in text on the command line and in model files:
 *
 *   none          the image itself (an autoencoder, or a denoiser with --noise)
 *   gray          colour to gray, replicated over the three channels: colorization
 *   downscale:K   each KxK block averaged, shown at full size: super-resolution
 *   mask:S        an SxS square of each image blacked out, placed at random: inpainting
 *   pairs         another image, given with each (aetrain --targets): anything to anything
 *
 * Applied to batches of floats in [0, 1]; mask places its squares from a
 * named random stream, so the same (seed, tag, index) masks the same way.
 */
#ifndef AE_TRANSFORM_H
#define AE_TRANSFORM_H

#include <stdint.h>

#include "ae/error.h"

enum { AE_TF_NONE, AE_TF_GRAY, AE_TF_DOWNSCALE, AE_TF_MASK, AE_TF_PAIRS };

typedef struct ae_transform {
	int kind;
	int k; /* downscale: the factor; mask: the square's side */
} ae_transform;

int ae_transform_parse(ae_transform *t, const char *s, ae_error *err);
void ae_transform_format(const ae_transform *t, char *buf, size_t cap);
/* Whether t applies to c x h x w images (gray needs colour; downscale's
 * factor must divide both sides; a mask must fit); the error says why not. */
int ae_transform_check(const ae_transform *t, int c, int h, int w, ae_error *err);
/* What a client should send a model with t, in words. */
const char *ae_transform_expects(const ae_transform *t);
/* dst = t applied to the n images of src (c x h x w each; dst may be src). */
void ae_transform_apply(const ae_transform *t, float *dst, const float *src, int n, int c, int h, int w, uint64_t seed,
                        uint64_t tag, uint64_t index);

#endif
