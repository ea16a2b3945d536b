/*
 * What a training step sends between processes, without the step's
 * arithmetic (make mpi-bench):
 *
 *   mpi_comm MODEL...                     the bytes a process sums per step
 *                                         (MODEL: a model file, or conv:HxWxC
 *                                         for the conv preset's defaults)
 *   mpirun -np N mpi_comm --time ITERS MODEL.safetensors
 *                                         the time of one step's sums: per
 *                                         batch norm, its sums forward and
 *                                         backward (2 x channels doubles
 *                                         each), the gradients (one
 *                                         MPI_Allreduce of every parameter:
 *                                         nothing overlapped), the loss
 *
 * The sums go through trainer/dist_mpi.c, as aetrain-mpi's do. Rank 0
 * prints the median, the fastest and the slowest step of ITERS (after 5
 * to warm up), in microseconds, and the gradient part alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ae/modelfile.h"
#include "dist.h"

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Gradient floats and batch-norm channels of m. */
static void sizes(const ae_model *m, size_t *params, int *bn_layers, int *bn_channels)
{
	*params = m->net.n_params;
	*bn_layers = *bn_channels = 0;
	for (int i = 0; i < m->net.n_layers; i++)
		if (m->net.layers[i].kind == AE_L_BN) (*bn_layers)++, *bn_channels += m->net.layers[i].oc;
}

/* A model file, or "conv:HxWxC": the conv preset at that size. */
static ae_model *model_of(const char *what, ae_error *err)
{
	int h, w, c;
	if (sscanf(what, "conv:%dx%dx%d", &h, &w, &c) != 3) return ae_model_load(what, err);
	ae_arch_spec s;
	ae_arch_defaults(&s, "conv", NULL);
	s.h = h, s.w = w, s.c = c;
	return ae_model_new(&s, 1, err);
}

static int bytes(int n, char **paths)
{
	printf("model\tinput\tparameters\tgradient_bytes\tbn_layers\tbn_bytes\tloss_bytes\tstep_bytes\n");
	for (int i = 0; i < n; i++) {
		ae_error err = { 0 };
		ae_model *m = model_of(paths[i], &err);
		if (!m) {
			fprintf(stderr, "mpi_comm: %s\n", err.msg);
			return 1;
		}
		size_t np;
		int bl, bc;
		sizes(m, &np, &bl, &bc);
		/* forward and backward: sums and sums of squares, dy and dy*xhat, doubles */
		const size_t g = np * sizeof(float), bn = 2 * 2 * (size_t)bc * sizeof(double),
		             loss = 2 * sizeof(double);
		printf("%s\t%dx%dx%d\t%zu\t%zu\t%d\t%zu\t%zu\t%zu\n", paths[i], m->net.spec.h, m->net.spec.w,
		       m->net.spec.c, np, g, bl, bn, loss, g + bn + loss);
		ae_model_free(m);
	}
	return 0;
}

static int timing(int iters, const char *path)
{
	if (dist_init(600)) return 1;
	ae_error err = { 0 };
	ae_model *m = model_of(path, &err);
	if (!m) {
		fprintf(stderr, "mpi_comm: %s\n", err.msg);
		dist_end(1);
		return 1;
	}
	size_t np;
	int bl, bc;
	sizes(m, &np, &bl, &bc);
	const ae_reducer *red = dist_reducer();
	float *g = calloc(np, sizeof(float));
	double bn[2 * AE_MAX_FILTERS] = { 0 }, loss[2] = { 0 };
	double *step = malloc((size_t)iters * sizeof(double)), *grad = malloc((size_t)iters * sizeof(double));
	const int widest = bl ? bc / bl : 0; /* sums are per layer: its channels */
	for (int it = -5; it < iters; it++) {
		double t0 = now_us();
		for (int l = 0; l < 2 * bl; l++)
			dist_sum(bn, 2 * (size_t)widest);
		double t1 = now_us();
		red->sum(red->ctx, g, np, AE_RED_F32);
		double t2 = now_us();
		dist_sum(loss, 2);
		double t3 = now_us();
		if (it >= 0) step[it] = t3 - t0, grad[it] = t2 - t1;
	}
	if (dist_rank() == 0) {
		qsort(step, (size_t)iters, sizeof *step, cmp_double);
		qsort(grad, (size_t)iters, sizeof *grad, cmp_double);
		printf("%s\t%d processes\tstep_us median %.1f min %.1f max %.1f\tgradient_us median %.1f\n", path,
		       dist_size(), step[iters / 2], step[0], step[iters - 1], grad[iters / 2]);
	}
	free(g), free(step), free(grad);
	ae_model_free(m);
	dist_end(0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--time") == 0) return timing(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1, argv[3]);
	if (argc >= 2 && argv[1][0] != '-') return bytes(argc - 1, argv + 1);
	fprintf(stderr, "usage: mpi_comm MODEL... | mpirun -np N mpi_comm --time ITERS MODEL\n");
	return 2;
}
