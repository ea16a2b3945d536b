/*
 * A small seeded random generator (xoshiro256**, seeded by splitmix64).
 *
 * Training draws every random number from one of these, derived from the
 * user's seed and the (epoch, batch) position, so a run is reproducible and a
 * resumed run draws exactly what the uninterrupted one would have.
 */
#ifndef AE_RNG_H
#define AE_RNG_H

#include <stdint.h>

typedef struct ae_rng {
	uint64_t s[4];
} ae_rng;

void ae_rng_seed(ae_rng *r, uint64_t seed);
/* Seeds r from a seed and two stream coordinates (epoch, batch, ...). */
void ae_rng_seed_stream(ae_rng *r, uint64_t seed, uint64_t a, uint64_t b);
uint64_t ae_rng_u64(ae_rng *r);
/* Uniform in [0, 1). */
float ae_rng_uniform(ae_rng *r);
/* Standard normal (Box-Muller). */
float ae_rng_normal(ae_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint32_t ae_rng_below(ae_rng *r, uint32_t n);
/* Fisher-Yates shuffle of idx[0..n). */
void ae_rng_shuffle(ae_rng *r, int *idx, int n);

#endif
