/*
 * Fork-join thread team (see team.h). Helpers sleep on a condition
 * variable between runs and count generations, so a broadcast that a
 * helper misses while still busy cannot make it skip or repeat a run.
 *
 * Before sleeping, a waiter spins for a while (SPIN_ROUNDS) on the count
 * it waits for: on a virtual machine a sleeping thread's CPU halts, and
 * waking it costs far more than the few microseconds lanes usually wait
 * for each other at a barrier or for the next run.
 */
#include "team.h"
#include "ae/net.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Pauses a waiter spins through before it sleeps: about 100 us on the
 * hosts measured (a pause is 40-140 cycles). */
#define SPIN_ROUNDS 2000

struct ae_team {
	int size;
	pthread_t *helpers;
	int started;
	int numbered; /* lane numbers handed to helpers as they start */
	pthread_mutex_t mu;
	pthread_cond_t go, done, meet;
	atomic_ulong gen; /* bumped per run */
	void (*fn)(void *, int);
	void *arg;
	int lanes, quit;
	atomic_int pending;
	int arrived;           /* at the current barrier */
	atomic_ulong crossing; /* barriers completed in this team's life */
};

/* Spins while *v == old, at most SPIN_ROUNDS pauses; returns whether it
 * changed (an acquire load: what was written before it changed is seen). */
static int spin_ulong(atomic_ulong *v, unsigned long old)
{
	for (int i = 0; i < SPIN_ROUNDS; i++) {
		if (atomic_load_explicit(v, memory_order_acquire) != old) return 1;
		CPU_RELAX();
	}
	return 0;
}

static int spin_zero(atomic_int *v)
{
	for (int i = 0; i < SPIN_ROUNDS; i++) {
		if (atomic_load_explicit(v, memory_order_acquire) == 0) return 1;
		CPU_RELAX();
	}
	return 0;
}

static void *helper_main(void *p)
{
	ae_team *t = p;
	pthread_mutex_lock(&t->mu);
	int k = ++t->numbered;
	unsigned long seen = 0; /* gen is 0 until the first run */
	for (;;) {
		if (!t->quit && t->gen == seen) {
			pthread_mutex_unlock(&t->mu);
			spin_ulong(&t->gen, seen);
			pthread_mutex_lock(&t->mu);
		}
		while (!t->quit && t->gen == seen)
			pthread_cond_wait(&t->go, &t->mu);
		if (t->quit) break;
		seen = t->gen;
		if (k < t->lanes) {
			pthread_mutex_unlock(&t->mu);
			t->fn(t->arg, k);
			pthread_mutex_lock(&t->mu);
			if (--t->pending == 0) pthread_cond_signal(&t->done);
		}
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

ae_team *ae_team_new(int threads)
{
	if (threads < 1 || threads > AE_MAX_THREADS) return NULL;
	ae_team *t = calloc(1, sizeof *t);
	if (!t) return NULL;
	t->size = threads;
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->go, NULL);
	pthread_cond_init(&t->done, NULL);
	pthread_cond_init(&t->meet, NULL);
	t->helpers = calloc((size_t)threads, sizeof *t->helpers);
	if (!t->helpers) {
		ae_team_free(t);
		return NULL;
	}
	for (int k = 1; k < threads; k++, t->started++)
		if (pthread_create(&t->helpers[k - 1], NULL, helper_main, t)) {
			ae_team_free(t);
			return NULL;
		}
	return t;
}

void ae_team_free(ae_team *t)
{
	if (!t) return;
	pthread_mutex_lock(&t->mu);
	t->quit = 1;
	pthread_cond_broadcast(&t->go);
	pthread_mutex_unlock(&t->mu);
	for (int k = 0; k < t->started; k++)
		pthread_join(t->helpers[k], NULL);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->go);
	pthread_cond_destroy(&t->done);
	pthread_cond_destroy(&t->meet);
	free(t->helpers);
	free(t);
}

int ae_team_size(const ae_team *t)
{
	return t->size;
}

void ae_team_run(ae_team *t, int lanes, void (*fn)(void *arg, int k), void *arg)
{
	if (lanes > t->size) lanes = t->size;
	if (lanes <= 1) {
		/* under the lock: a helper left idle by the last run may still be
		 * reading lanes on its way back to sleep */
		pthread_mutex_lock(&t->mu);
		t->lanes = 1;
		pthread_mutex_unlock(&t->mu);
		fn(arg, 0);
		return;
	}
	pthread_mutex_lock(&t->mu);
	t->fn = fn;
	t->arg = arg;
	t->lanes = lanes;
	t->arrived = 0;
	t->pending = lanes - 1;
	t->gen++;
	pthread_cond_broadcast(&t->go);
	pthread_mutex_unlock(&t->mu);
	fn(arg, 0);
	if (spin_zero(&t->pending)) {
		/* the helper that zeroed it may still hold the lock to signal */
		pthread_mutex_lock(&t->mu);
		pthread_mutex_unlock(&t->mu);
		return;
	}
	pthread_mutex_lock(&t->mu);
	while (t->pending)
		pthread_cond_wait(&t->done, &t->mu);
	pthread_mutex_unlock(&t->mu);
}

void ae_team_barrier(ae_team *t)
{
	if (t->lanes <= 1) return;
	pthread_mutex_lock(&t->mu);
	unsigned long mine = t->crossing;
	if (++t->arrived == t->lanes) {
		t->arrived = 0;
		t->crossing++;
		pthread_cond_broadcast(&t->meet);
		pthread_mutex_unlock(&t->mu);
		return;
	}
	pthread_mutex_unlock(&t->mu);
	if (spin_ulong(&t->crossing, mine)) return;
	pthread_mutex_lock(&t->mu);
	while (t->crossing == mine)
		pthread_cond_wait(&t->meet, &t->mu);
	pthread_mutex_unlock(&t->mu);
}
