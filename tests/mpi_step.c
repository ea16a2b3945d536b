/*
 * One training step across processes, for tests/it_mpi.sh:
 *
 *   mpirun -np N mpi_step OUT BATCH   one step of a BATCH-image batch, each
 *                                     process taking its share; rank 0
 *                                     writes the summed gradients, the
 *                                     weights after Adam and the running
 *                                     statistics to OUT (floats)
 *   mpi_step --compare A B            the largest normalised difference of
 *                                     each part (test_rel_err); exits 1 past 1e-5
 *
 * Every process checks that it holds the same weights as the others
 * (dist_check_same). Without a launcher it is the one-process step.
 */
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

#include "ae/modelfile.h"
#include "ae/train.h"
#include "dist.h"

static ae_arch_spec spec(void)
{
	ae_arch_spec s;
	ae_arch_defaults(&s, "conv", NULL);
	s.c = 1, s.h = 28, s.w = 28, s.f1 = 8, s.f2 = 16, s.latent = 8;
	return s;
}

static int step(const char *out, int batch)
{
	if (dist_init(10)) return 1;
	ae_arch_spec s = spec();
	ae_model *m = ae_model_new(&s, 7, NULL);
	const size_t per = ae_net_input_size(&m->net), np = m->net.n_params, ns = m->net.n_state;
	float *x = malloc((size_t)batch * per * sizeof(float));
	ae_rng r;
	ae_rng_seed(&r, 3);
	for (size_t i = 0; i < (size_t)batch * per; i++)
		x[i] = ae_rng_uniform(&r);
	const int R = dist_rank(), N = dist_size(), lo = batch * R / N, n = batch * (R + 1) / N - lo;
	ae_trainer *t = ae_trainer_new(m, (batch + N - 1) / N, 1, AE_LOSS_MSE, NULL);
	ae_trainer_set_reducer(t, dist_reducer());
	double loss[1] = { ae_trainer_step_part(t, x + (size_t)lo * per, x + (size_t)lo * per, n, batch, 1e-3f) };
	int rc = dist_sum(loss, 1) || dist_check_same(m, 1) ? 1 : 0;
	if (rc == 0 && R == 0) {
		FILE *f = fopen(out, "wb");
		float l = (float)loss[0];
		rc = !f || fwrite(&l, sizeof l, 1, f) != 1 || fwrite(ae_trainer_grads(t), sizeof(float), np, f) != np ||
		     fwrite(m->params, sizeof(float), np, f) != np || fwrite(m->state, sizeof(float), ns, f) != ns;
		if (f && fclose(f)) rc = 1;
		printf("%d processes, batch %d: loss %.7f\n", N, batch, l);
	}
	ae_trainer_free(t);
	ae_model_free(m);
	free(x);
	dist_end(rc);
	return rc;
}

static float *load(const char *path, size_t n)
{
	float *v = malloc(n * sizeof(float));
	FILE *f = fopen(path, "rb");
	if (!v || !f || fread(v, sizeof(float), n, f) != n) {
		fprintf(stderr, "mpi_step: cannot read %zu floats from %s\n", n, path);
		free(v), v = NULL;
	}
	if (f) fclose(f);
	return v;
}

static int compare(const char *a_path, const char *b_path)
{
	ae_arch_spec s = spec();
	ae_model *m = ae_model_new(&s, 7, NULL);
	const size_t np = m->net.n_params, ns = m->net.n_state, n = 1 + 2 * np + ns;
	ae_model_free(m);
	float *a = load(a_path, n), *b = load(b_path, n);
	if (!a || !b) return 1;
	double el = test_rel_err(a, b, 1), eg = test_rel_err(a + 1, b + 1, np);
	double ew = test_rel_err(a + 1 + np, b + 1 + np, np), es = test_rel_err(a + 1 + 2 * np, b + 1 + 2 * np, ns);
	printf("%s against %s: loss %.2g, gradients %.2g, weights %.2g, running statistics %.2g\n", a_path, b_path, el,
	       eg, ew, es);
	CHECK(el < 1e-5 && eg < 1e-5 && ew < 1e-5 && es < 1e-5);
	free(a), free(b);
	return test_fail_ ? 1 : 0; /* the script counts it */
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--compare") == 0) return compare(argv[2], argv[3]);
	if (argc == 3) return step(argv[1], atoi(argv[2]));
	fprintf(stderr, "usage: mpi_step OUT BATCH | mpi_step --compare A B\n");
	return 2;
}
