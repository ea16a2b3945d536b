/*
 * bench_parts: the engine's parts, for comparing two builds of a change
 * (run each build's binary in turn, several times: the host is noisy).
 *
 *   bench_parts layers [IMAGES [C H W]]
 *                                 each conv preset layer (at C x H x W,
 *                                 default 1x28x28) as a direct
 *                                 convolution, one thread: us per image
 *                                 and GFLOP/s, then the five together
 *   bench_parts train LANES STEPS training steps of batch 32 on the conv
 *                                 preset: img/s and CPU seconds (all
 *                                 threads), the figure least moved by
 *                                 other tenants
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dconv.h"
#include "ae/rng.h"
#include "ae/train.h"

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *rand_buf(ae_rng *r, size_t n, float scale)
{
	float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
	for (size_t i = 0; p && i < n; i++)
		p[i] = (2.0f * ae_rng_uniform(r) - 1.0f) * scale;
	return p;
}

static int layers(int n, int c, int h, int width)
{
	/* conv preset at c x h x w: transposed, ic, ih, iw, oc, oh, ow, k, stride, pad */
	const int h2 = h / 2, w2 = width / 2, h4 = h / 4, w4 = width / 4;
	const ae_dconv_shape sh[5] = {
		{ 0, c, h, width, 32, h2, w2, 3, 2, 1 },   { 0, 32, h2, w2, 64, h4, w4, 3, 2, 1 },
		{ 1, 64, h4, w4, 64, h2, w2, 3, 2, 1 },    { 1, 64, h2, w2, 32, h, width, 3, 2, 1 },
		{ 1, 32, h, width, c, h, width, 3, 1, 1 },
	};
	ae_rng r;
	ae_rng_seed(&r, 1);
	double total = 0, flops = 0;
	for (int i = 0; i < 5; i++) {
		const ae_dconv_shape *s = &sh[i];
		size_t xs = (size_t)n * s->ic * s->ih * s->iw, ys = (size_t)n * s->oc * s->oh * s->ow;
		float *w = rand_buf(&r, (size_t)s->ic * s->oc * 9, 0.1f), *b = rand_buf(&r, (size_t)s->oc, 0.1f);
		float *x = rand_buf(&r, xs, 1.0f), *y = aligned_alloc(64, (ys * sizeof(float) + 63) / 64 * 64);
		ae_epilogue ep = { .bias = b, .act = i == 4 ? AE_ACT_SIGMOID : AE_ACT_LRELU, .slope = 0.2f };
		ae_dconv d;
		if (!w || !b || !x || !y || ae_dconv_init(&d, s, w, &ep) != 0) {
			fprintf(stderr, "bench_parts: out of memory\n");
			return 1;
		}
		double f = 2.0 * s->ic * s->oc * 9 * (s->transposed ? s->ih * s->iw : s->oh * s->ow);
		int reps = 0;
		double t0 = clock_s(CLOCK_MONOTONIC), t;
		do {
			ae_dconv_forward(y, x, n, &d);
			reps++;
		} while ((t = clock_s(CLOCK_MONOTONIC) - t0) < 0.5);
		double per = t / reps / n;
		printf("layer %d (%s %d->%d): %.2f us/img, %.1f GFLOP/s\n", i, s->transposed ? "convT" : "conv", s->ic,
		       s->oc, per * 1e6, f / per * 1e-9);
		total += per, flops += f;
		ae_dconv_deinit(&d);
		free(w), free(b), free(x), free(y);
	}
	printf("five layers: %.2f us/img, %.0f img/s, %.1f GFLOP/s\n", total * 1e6, 1 / total, flops / total * 1e-9);
	return 0;
}

static int train(int lanes, int steps)
{
	enum { B = 32, POOL = 256 };
	ae_arch_spec s;
	ae_error err = { 0 };
	ae_arch_defaults(&s, "conv", NULL);
	ae_model *m = ae_model_new(&s, 1, &err);
	ae_trainer *t = m ? ae_trainer_new(m, B, lanes, AE_LOSS_MSE, &err) : NULL;
	ae_rng r;
	ae_rng_seed(&r, 2);
	float *x = rand_buf(&r, (size_t)POOL * 784, 0.5f);
	if (!t || !x) {
		fprintf(stderr, "bench_parts: %s\n", err.msg[0] ? err.msg : "out of memory");
		return 1;
	}
	for (size_t i = 0; i < (size_t)POOL * 784; i++)
		x[i] += 0.5f;
	openblas_set_num_threads(1);
	double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
	for (int k = 0; k < steps; k++) {
		const float *b = x + (size_t)(k % (POOL / B)) * B * 784;
		ae_trainer_step(t, b, b, B, 1e-3f);
	}
	double wall = clock_s(CLOCK_MONOTONIC) - w0, cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
	printf("%d steps of %d on %d lanes: %.0f img/s, %.2f CPU s (%.1f CPU us/img)\n", steps, B, lanes,
	       steps * B / wall, cpu, cpu / (steps * B) * 1e6);
	ae_trainer_free(t);
	ae_model_free(m);
	free(x);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "layers") == 0) {
		int n = argc > 2 ? atoi(argv[2]) : 8, c = argc > 5 ? atoi(argv[3]) : 1;
		int h = argc > 5 ? atoi(argv[4]) : 28, w = argc > 5 ? atoi(argv[5]) : 28;
		if (n < 1 || c < 1 || h < 4 || w < 4 || h % 4 || w % 4) {
			fprintf(stderr, "bench_parts layers: IMAGES >= 1, C >= 1, H and W multiples of 4\n");
			return 2;
		}
		return layers(n, c, h, w);
	}
	if (argc == 4 && strcmp(argv[1], "train") == 0 && atoi(argv[2]) >= 1 && atoi(argv[3]) >= 1)
		return train(atoi(argv[2]), atoi(argv[3]));
	fprintf(stderr, "usage: bench_parts layers [IMAGES [C H W]] | bench_parts train LANES STEPS\n");
	return 2;
}
