/*
 * Float arrays aligned to a cache line. The kernels load 64-byte vectors
 * from rows that start at multiples of 16 floats (a pixel's channels, a
 * weight block); on malloc's 16-byte alignment every such load spans two
 * cache lines and costs two.
 */
#include "ops.h"

#include <stdint.h>
#include <stdlib.h>

float *ae_floats(size_t n)
{
	size_t bytes = (n ? n : 1) * sizeof(float);
	if (bytes / sizeof(float) != (n ? n : 1) || bytes > SIZE_MAX - 63) return NULL;
	return aligned_alloc(64, (bytes + 63) / 64 * 64);
}
