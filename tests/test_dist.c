/*
 * Data-parallel training without MPI: N "processes" are threads, each with
 * its own model and trainer, summing through a reducer that meets at a
 * barrier and adds every process's buffer in process order. A step split
 * this way over 2, 3 and 4 processes (and a batch smaller than the
 * process count, so that one holds no image) gives one process's batch
 * statistics, gradients and weights within 1e-5; split over one process
 * through the reducer it gives the very bits of the plain step; started
 * buckets and one blocking sum give the same bits.
 */
#include "test.h"

#include <pthread.h>
#include <stdlib.h>

#include "ae/train.h"

#define MAX_PROCS 4

/* What the simulated processes share. */
typedef struct world {
	int size;
	pthread_barrier_t meet;
	void *bufs[MAX_PROCS];
} world;

/* One process's reducer state. */
typedef struct proc {
	world *w;
	int rank;
	int sums; /* calls, to check every process made as many */
} proc;

/* Every process's buffer added in process order, as trainer/dist_mpi.c
 * adds small sums: the same bits everywhere. */
static int sim_sum(void *ctx, void *buf, size_t n, int type)
{
	proc *p = ctx;
	world *w = p->w;
	const size_t es = type == AE_RED_F64 ? sizeof(double) : sizeof(float);
	void *tot = calloc(n ? n : 1, es);
	if (!tot) return -1;
	w->bufs[p->rank] = buf;
	pthread_barrier_wait(&w->meet);
	for (int r = 0; r < w->size; r++)
		for (size_t i = 0; i < n; i++) {
			if (type == AE_RED_F64)
				((double *)tot)[i] += ((const double *)w->bufs[r])[i];
			else
				((float *)tot)[i] += ((const float *)w->bufs[r])[i];
		}
	pthread_barrier_wait(&w->meet);
	memcpy(buf, tot, n * es);
	free(tot);
	p->sums++;
	return 0;
}

static int sim_start(void *ctx, float *buf, size_t n)
{
	return sim_sum(ctx, buf, n, AE_RED_F32);
}

static int sim_finish(void *ctx)
{
	(void)ctx;
	return 0;
}

typedef struct job {
	proc p;
	ae_reducer red;
	ae_model *m;
	ae_trainer *t;
	const float *x;
	int lo, n, n_all;
	double loss;
} job;

static void *run_job(void *arg)
{
	job *j = arg;
	const size_t per = ae_net_input_size(&j->m->net);
	const float *x = j->x + (size_t)j->lo * per;
	j->loss = ae_trainer_step_part(j->t, x, x, j->n, j->n_all, 1e-3f);
	return NULL;
}

static ae_arch_spec small_conv(void)
{
	ae_arch_spec s;
	ae_arch_defaults(&s, "conv", NULL);
	s.c = 1, s.h = 12, s.w = 12, s.f1 = 4, s.f2 = 8, s.latent = 4;
	return s;
}

static float *images(int n, size_t per, uint64_t seed)
{
	ae_rng r;
	ae_rng_seed(&r, seed);
	float *x = malloc((size_t)n * per * sizeof(float));
	for (size_t i = 0; x && i < (size_t)n * per; i++)
		x[i] = ae_rng_uniform(&r);
	return x;
}

/* One step of n images split over `procs` processes (buckets: started
 * sums, else one blocking sum); every process's model and gradients
 * into m[], g[] (the caller frees). Returns the summed loss. */
static double split_step(int procs, int buckets, const float *x, int n, ae_model **m, float **g)
{
	ae_arch_spec s = small_conv();
	world w = { .size = procs };
	pthread_barrier_init(&w.meet, NULL, (unsigned)procs);
	job jobs[MAX_PROCS];
	pthread_t th[MAX_PROCS];
	const int share = (n + procs - 1) / procs;
	for (int r = 0; r < procs; r++) {
		job *j = &jobs[r];
		*j = (job){ .p = { .w = &w, .rank = r }, .x = x, .n_all = n };
		j->lo = (int)((long)n * r / procs);
		j->n = (int)((long)n * (r + 1) / procs) - j->lo;
		j->red = (ae_reducer){ .ctx = &j->p, .sum = sim_sum };
		/* a bucket at every run's end: the most buckets a step can have */
		if (buckets) j->red.start = sim_start, j->red.finish = sim_finish, j->red.bucket = 1;
		j->m = m[r] = ae_model_new(&s, 7, NULL);
		j->t = ae_trainer_new(j->m, share > 0 ? share : 1, 1, AE_LOSS_MSE, NULL);
		ae_trainer_set_reducer(j->t, &j->red);
	}
	for (int r = 0; r < procs; r++)
		pthread_create(&th[r], NULL, run_job, &jobs[r]);
	double loss = 0.0;
	for (int r = 0; r < procs; r++) {
		pthread_join(th[r], NULL);
		loss += jobs[r].loss;
		size_t np = jobs[r].m->net.n_params;
		g[r] = malloc(np * sizeof(float));
		memcpy(g[r], ae_trainer_grads(jobs[r].t), np * sizeof(float));
		ae_trainer_free(jobs[r].t);
		CHECK_MSG(jobs[r].p.sums == jobs[0].p.sums, "process %d summed %d times, process 0 %d", r,
		          jobs[r].p.sums, jobs[0].p.sums);
	}
	pthread_barrier_destroy(&w.meet);
	return loss;
}

/* The plain one-process step: model, gradients, loss. */
static double plain_step(const float *x, int n, ae_model **m, float **g)
{
	ae_arch_spec s = small_conv();
	*m = ae_model_new(&s, 7, NULL);
	ae_trainer *t = ae_trainer_new(*m, n, 1, AE_LOSS_MSE, NULL);
	double loss = ae_trainer_step(t, x, x, n, 1e-3f);
	*g = malloc((*m)->net.n_params * sizeof(float));
	memcpy(*g, ae_trainer_grads(t), (*m)->net.n_params * sizeof(float));
	ae_trainer_free(t);
	return loss;
}

static void free_all(ae_model **m, float **g, int n)
{
	for (int r = 0; r < n; r++) {
		ae_model_free(m[r]);
		free(g[r]);
	}
}

static void test_split(int n)
{
	ae_arch_spec s = small_conv();
	ae_model *m0, *m[MAX_PROCS];
	float *g0, *g[MAX_PROCS];
	float *x = images(n, (size_t)s.c * s.h * s.w, 3);
	double loss0 = plain_step(x, n, &m0, &g0);
	const size_t np = m0->net.n_params, ns = m0->net.n_state;
	for (int procs = 1; procs <= MAX_PROCS; procs++)
		for (int buckets = 0; buckets < 2; buckets++) {
			double loss = split_step(procs, buckets, x, n, m, g);
			CHECK_CLOSE(loss, loss0, 1e-6);
			for (int r = 0; r < procs; r++) {
				double eg = test_rel_err(g[r], g0, np), ew = test_rel_err(m[r]->params, m0->params, np);
				double es = test_rel_err(m[r]->state, m0->state, ns);
				CHECK_MSG(eg < 1e-5 && ew < 1e-5 && es < 1e-5,
				          "batch %d over %d processes (%s), process %d: gradients %.2g, weights %.2g, "
				          "running statistics %.2g",
				          n, procs, buckets ? "buckets" : "one sum", r, eg, ew, es);
				/* Adam steps identically on every process */
				CHECK(test_same_bits(m[r]->params, m[0]->params, np));
				CHECK(test_same_bits(m[r]->state, m[0]->state, ns));
			}
			if (procs == 1) {
				CHECK_MSG(test_same_bits(g[0], g0, np) && test_same_bits(m[0]->params, m0->params, np),
				          "one process through the reducer (%s) is not the plain step's bits",
				          buckets ? "buckets" : "one sum");
			}
			free_all(m, g, procs);
		}
	free(x);
	ae_model_free(m0);
	free(g0);
}

int main(void)
{
	test_split(16); /* 4 images a process at 4 */
	test_split(7);  /* uneven shares */
	test_split(3);  /* one process of four holds none */
	return TEST_DONE();
}
