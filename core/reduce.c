/*
 * Sums of float rows, in double over four interleaved accumulators: a
 * single chain of dependent adds waits on each add's latency, and these
 * sums (batch-norm statistics, bias gradients) ran at a quarter of the
 * machine's add rate that way (measured: 11% of a training step).
 */
#include "ops.h"

double ae_sum_f32(const float *x, size_t n)
{
	double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	size_t j = 0;
	for (; j + 4 <= n; j += 4) {
		a0 += x[j];
		a1 += x[j + 1];
		a2 += x[j + 2];
		a3 += x[j + 3];
	}
	for (; j < n; j++)
		a0 += x[j];
	return (a0 + a1) + (a2 + a3);
}
