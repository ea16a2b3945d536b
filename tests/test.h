/*
 * A tiny test harness: CHECK and CHECK_CLOSE record failures without
 * stopping; TEST_DONE prints "N passed, N failed" and yields the exit code.
 */
#ifndef AE_TEST_H
#define AE_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae/rng.h"

static int test_pass_, test_fail_;

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (cond)                                                                  \
			test_pass_++;                                                      \
		else {                                                                     \
			test_fail_++;                                                      \
			fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
		}                                                                          \
	} while (0)

#define CHECK_MSG(cond, ...)                                                               \
	do {                                                                               \
		if (cond)                                                                  \
			test_pass_++;                                                      \
		else {                                                                     \
			test_fail_++;                                                      \
			fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                      \
			fputc('\n', stderr);                                               \
		}                                                                          \
	} while (0)

/* |a-b| <= tol * max(1, |b|): relative for large values, absolute near 0. */
#define CHECK_CLOSE(a, b, tol)                                                                                \
	do {                                                                                                  \
		double a_ = (a), b_ = (b), s_ = fabs(b_) > 1.0 ? fabs(b_) : 1.0;                              \
		CHECK_MSG(isfinite(a_) && fabs(a_ - b_) <= (tol)*s_, "%s = %.9g, expected %.9g", #a, a_, b_); \
	} while (0)

/* The error message must contain the substring. */
#define CHECK_ERR(rc, err, substr)                                                                                     \
	do {                                                                                                           \
		CHECK_MSG((rc) < 0 && strstr((err).msg, (substr)) != NULL, "rc=%d message '%s' lacks '%s'", (int)(rc), \
		          (err).msg, (substr));                                                                        \
	} while (0)

#define TEST_DONE() (printf("%d passed, %d failed\n", test_pass_, test_fail_), test_fail_ ? 1 : 0)

/* Largest |a-b| / max(1e-3, max|b|) over n values: a normalised error. */
static inline double test_rel_err(const float *a, const float *b, size_t n)
{
	double maxd = 0.0, maxb = 1e-3;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)a[i] - b[i]);
		if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
		if (d > maxd) maxd = d;
		if (fabs(b[i]) > maxb) maxb = fabs(b[i]);
	}
	return maxd / maxb;
}

/* Are a and b the same n floats bit for bit (as a result computed twice
 * must be, where values that compare equal, 0 and -0, are not enough)? */
static inline int test_same_bits(const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t ua, ub;
		memcpy(&ua, &a[i], sizeof ua);
		memcpy(&ub, &b[i], sizeof ub);
		if (ua != ub) return 0;
	}
	return 1;
}

/* n floats uniform in [-scale, scale) from r; the caller frees them. */
static inline float *test_rand_buf(ae_rng *r, size_t n, float scale)
{
	float *p = malloc(n * sizeof(float));
	for (size_t i = 0; p && i < n; i++)
		p[i] = (2.0f * ae_rng_uniform(r) - 1.0f) * scale;
	return p;
}

#endif
