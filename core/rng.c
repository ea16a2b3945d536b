/*
 * xoshiro256** seeded through splitmix64: fast, tiny, and good enough for
 * initialisation, shuffling and noise.
 */
#include "ae/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void ae_rng_seed(ae_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

void ae_rng_seed_stream(ae_rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
	uint64_t x = seed;
	uint64_t h = splitmix64(&x);
	x = h ^ (a * 0xd1342543de82ef95ULL);
	h = splitmix64(&x);
	x = h ^ (b * 0xaf251af3b0f025b5ULL);
	ae_rng_seed(r, splitmix64(&x));
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t ae_rng_u64(ae_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

float ae_rng_uniform(ae_rng *r)
{
	return (float)(ae_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float ae_rng_normal(ae_rng *r)
{
	/* 1 - u keeps the log argument in (0, 1]. */
	double u1 = 1.0 - (double)(ae_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
	double u2 = (double)(ae_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
	return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t ae_rng_below(ae_rng *r, uint32_t n)
{
	uint64_t m = (uint64_t)(uint32_t)ae_rng_u64(r) * n;
	uint32_t lo = (uint32_t)m;
	if (lo < n) {
		uint32_t t = (uint32_t)(-n) % n;
		while (lo < t) {
			m = (uint64_t)(uint32_t)ae_rng_u64(r) * n;
			lo = (uint32_t)m;
		}
	}
	return (uint32_t)(m >> 32);
}

void ae_rng_shuffle(ae_rng *r, int *idx, int n)
{
	for (int i = n - 1; i > 0; i--) {
		int j = (int)ae_rng_below(r, (uint32_t)i + 1);
		int t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
}
