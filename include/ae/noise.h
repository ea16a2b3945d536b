/*
 * Corruption of images, for denoising: what a denoising model was trained
 * against, named in text ("none", "gaussian:MEAN:STD", "saltpepper:P") on
 * the command line and in model files, and applied to batches of floats
 * in [0, 1] from a named random stream, so the same (seed, tag, index)
 * always corrupts the same way.
 */
#ifndef AE_NOISE_H
#define AE_NOISE_H

#include <stddef.h>
#include <stdint.h>

#include "ae/error.h"
#include "ae/rng.h"

enum { AE_NOISE_NONE, AE_NOISE_GAUSSIAN, AE_NOISE_SALTPEPPER };

typedef struct ae_noise {
	int kind;
	float a, b; /* gaussian: mean, std; saltpepper: p */
} ae_noise;

/* Parses s into nz; AE_ERR_INVAL naming what is wrong otherwise. */
int ae_noise_parse(ae_noise *nz, const char *s, ae_error *err);
/* The text form of nz, which ae_noise_parse reads back. */
void ae_noise_format(const ae_noise *nz, char *buf, size_t cap);

/* gaussian: x + mean + std*N(0,1) clipped to [0,1]; saltpepper: each value
 * becomes 0 or 1 (even odds) with probability p. Draws from r. */
void ae_noise_apply(const ae_noise *nz, float *x, size_t n, ae_rng *r);

/* dst = src corrupted (n values; dst may be src), drawing from the stream
 * (seed, tag, index) of ae_rng_seed_stream. */
void ae_noise_corrupt(const ae_noise *nz, float *dst, const float *src, size_t n, uint64_t seed, uint64_t tag,
                      uint64_t index);

#endif
