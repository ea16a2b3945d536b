/*
 * Loaded models, their bounded request queues and inference workers.
 *
 * A worker takes the oldest job, then gathers more jobs that run the same
 * engine operation (encode, decode or reconstruct) on the same plan until
 * it has max_batch images or the batch delay has passed, runs them as ONE
 * forward pass through its own preallocated scratch, and resumes each
 * job's connection. Jobs whose deadline passed while queued are resumed
 * unrun (the HTTP side answers 504). Staging sizes come from the plan,
 * which alone knows how many floats each operation reads and writes per
 * image.
 *
 * A model is held by reference: the registry holds one, each request
 * that uses it another, and the last release stops its workers and frees
 * it, so nothing frees a model a request still reads.
 */
#include "server.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ae/modelfile.h"

/* Models allocated and not yet freed: those the registry serves, plus
 * replaced ones that requests still hold. */
static atomic_int alive;

int srv_models_in_memory(void)
{
	return atomic_load(&alive);
}

double srv_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct worker {
	srv_model *m;
	ae_infer *inf;
	float *stage_in, *stage_out, *stage_z;
} worker;

/* Takes the next batch off the queue (caller holds m->mu); returns the
 * number of jobs put in batch[], 0 when stopping. */
static int take_batch(srv_model *m, srv_job **batch, int *images)
{
	m->idle++;
	while (!m->head && !m->stopping)
		pthread_cond_wait(&m->cv, &m->mu);
	m->idle--;
	if (!m->head) return 0;
	const int max = m->cfg->max_batch;
	srv_job *first = m->head;
	m->head = first->next;
	if (!m->head) m->tail = NULL;
	m->depth--;
	m->queued_images -= first->n;
	int n = 1;
	*images = first->n;
	batch[0] = first;
	/* One pass runs one operation of one plan: a batch never mixes two,
	 * so plans made per image size or per precision (several for one
	 * model) batch each with its own kind and no more. */
	const ae_op kind = first->op;
	const ae_plan *plan = first->plan;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	long ns = until.tv_nsec + (long)m->cfg->batch_delay_us * 1000;
	until.tv_sec += ns / 1000000000L;
	until.tv_nsec = ns % 1000000000L;
	while (*images < max && n < max) {
		srv_job *prev = NULL, *j = m->head;
		while (j && (j->op != kind || j->plan != plan || *images + j->n > max))
			prev = j, j = j->next;
		if (j) {
			if (prev)
				prev->next = j->next;
			else
				m->head = j->next;
			if (m->tail == j) m->tail = prev;
			m->depth--;
			m->queued_images -= j->n;
			batch[n++] = j;
			*images += j->n;
			continue;
		}
		if (m->cfg->batch_delay_us <= 0 || m->stopping ||
		    pthread_cond_timedwait(&m->cv, &m->mu, &until) == ETIMEDOUT)
			break;
	}
	return n;
}

static void finish(srv_job *j, int state)
{
	/* The connection is suspended until this resume, so the job (which
	 * lives in the request state) is not touched after it. */
	struct MHD_Connection *c = j->conn;
	atomic_store(&j->state, state);
	MHD_resume_connection(c);
}

static void run_batch(worker *w, srv_job **batch, int n, int images)
{
	srv_model *m = w->m;
	const double now = srv_now();
	int live = 0;
	for (int i = 0; i < n; i++) {
		if (now > batch[i]->deadline) {
			images -= batch[i]->n;
			finish(batch[i], JOB_EXPIRED);
		} else
			batch[live++] = batch[i];
	}
	if (!live) return;
	const ae_op op = batch[0]->op;
	const ae_plan *plan = batch[0]->plan;
	/* The worker's inference context was made for its model's plan, the
	 * only one a job can carry until plans per size or precision come. */
	assert(plan == m->plan);
	const size_t isz = ae_plan_in_size(plan, op), osz = ae_plan_out_size(plan, op);
	if (live == 1 && batch[0]->codes)
		ae_infer_reconstruct(w->inf, batch[0]->in, batch[0]->n, batch[0]->out, batch[0]->codes);
	else if (live == 1)
		ae_infer_run(w->inf, op, batch[0]->in, batch[0]->n, batch[0]->out);
	else {
		size_t at = 0;
		for (int i = 0; i < live; i++) {
			memcpy(w->stage_in + at * isz, batch[i]->in, (size_t)batch[i]->n * isz * sizeof(float));
			at += (size_t)batch[i]->n;
		}
		/* A reconstruction's codes land in stage_z, which costs nothing:
		 * the pass writes them somewhere anyway. */
		if (op == AE_OP_RECONSTRUCT)
			ae_infer_reconstruct(w->inf, w->stage_in, images, w->stage_out, w->stage_z);
		else
			ae_infer_run(w->inf, op, w->stage_in, images, w->stage_out);
		const size_t zsz = ae_plan_out_size(plan, AE_OP_ENCODE);
		at = 0;
		for (int i = 0; i < live; i++) {
			memcpy(batch[i]->out, w->stage_out + at * osz, (size_t)batch[i]->n * osz * sizeof(float));
			if (batch[i]->codes)
				memcpy(batch[i]->codes, w->stage_z + at * zsz,
				       (size_t)batch[i]->n * zsz * sizeof(float));
			at += (size_t)batch[i]->n;
		}
	}
	int b = 0;
	while (b < SRV_BATCH_BUCKETS && (1 << b) < images)
		b++;
	atomic_fetch_add(&m->batch_hist[b], 1);
	atomic_fetch_add(&m->batches, 1);
	atomic_fetch_add(&m->batch_images, images);
	for (int i = 0; i < live; i++)
		finish(batch[i], JOB_DONE);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	srv_model *m = w->m;
	srv_job **batch = malloc((size_t)m->cfg->max_batch * sizeof(srv_job *));
	for (;;) {
		int images = 0;
		pthread_mutex_lock(&m->mu);
		int n = batch ? take_batch(m, batch, &images) : 0;
		pthread_mutex_unlock(&m->mu);
		if (!n) break;
		run_batch(w, batch, n, images);
	}
	free(batch);
	ae_infer_free(w->inf);
	free(w->stage_in);
	free(w->stage_out);
	free(w->stage_z);
	free(w);
	return NULL;
}

int srv_enqueue(srv_model *m, srv_job *j)
{
	pthread_mutex_lock(&m->mu);
	if (m->depth >= m->cfg->queue_len || m->stopping) {
		pthread_mutex_unlock(&m->mu);
		return -1;
	}
	/* Suspended under the queue lock, before any worker can see the job:
	 * a resume that came before the suspend would be lost. */
	MHD_suspend_connection(j->conn);
	atomic_store(&j->state, JOB_QUEUED);
	j->next = NULL;
	if (m->tail)
		m->tail->next = j;
	else
		m->head = j;
	m->tail = j;
	m->depth++;
	m->queued_images += j->n;
	/* Wake a worker only when one is idle or a batch can be filled now: a
	 * worker gathering a batch takes what queued at its deadline anyway,
	 * and a wakeup per request was a tenth of the server's CPU. */
	if (m->idle > 0 || m->queued_images >= m->cfg->max_batch) pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return 0;
}

/* ---------------------------------------------------------------- loading */

/* The most floats any operation of the plan reads (in) or writes per image. */
static void stage_sizes(const ae_plan *p, size_t *in, size_t *out)
{
	*in = *out = 0;
	for (int op = 0; op < AE_OP_COUNT; op++) {
		size_t i = ae_plan_in_size(p, (ae_op)op), o = ae_plan_out_size(p, (ae_op)op);
		*in = i > *in ? i : *in;
		*out = o > *out ? o : *out;
	}
}

static int start_workers(srv_model *sm, const srv_config *cfg)
{
	ae_error err = { 0 };
	size_t in_max, out_max;
	stage_sizes(sm->plan, &in_max, &out_max);
	sm->threads = calloc((size_t)cfg->workers, sizeof *sm->threads);
	if (!sm->threads) return -1;
	for (int i = 0; i < cfg->workers; i++) {
		worker *w = calloc(1, sizeof *w);
		if (!w) return -1;
		w->m = sm;
		w->inf = ae_infer_new(sm->plan, cfg->max_batch, 1, &err);
		w->stage_in = malloc((size_t)cfg->max_batch * in_max * sizeof(float));
		w->stage_out = malloc((size_t)cfg->max_batch * out_max * sizeof(float));
		w->stage_z = malloc((size_t)cfg->max_batch * ae_plan_out_size(sm->plan, AE_OP_ENCODE) * sizeof(float));
		if (!w->inf || !w->stage_in || !w->stage_out || !w->stage_z ||
		    pthread_create(&sm->threads[i], NULL, worker_main, w) != 0) {
			fprintf(stderr, "aeserve: %s: cannot start worker: %s\n", sm->name,
			        err.msg[0] ? err.msg : "out of memory");
			ae_infer_free(w->inf);
			free(w->stage_in), free(w->stage_out), free(w->stage_z), free(w);
			return -1;
		}
		sm->n_threads++;
	}
	return 0;
}

static srv_model *hold(srv_model *m)
{
	if (m) atomic_fetch_add(&m->refs, 1);
	return m;
}

static int file_id(const char *path, srv_model *m)
{
	struct stat sb;
	if (stat(path, &sb) != 0) return -1;
	m->dev = (unsigned long long)sb.st_dev;
	m->ino = (unsigned long long)sb.st_ino;
	m->size = (unsigned long long)sb.st_size;
	m->mtime_ns = (unsigned long long)sb.st_mtim.tv_sec * 1000000000ull + (unsigned long long)sb.st_mtim.tv_nsec;
	return 0;
}

int srv_model_file_changed(const srv_model *m)
{
	srv_model now;
	return file_id(m->path, &now) != 0 || now.dev != m->dev || now.ino != m->ino || now.size != m->size ||
	       now.mtime_ns != m->mtime_ns;
}

srv_model *srv_model_open(const srv_config *cfg, const char *name, const char *path, srv_fail *f)
{
	srv_model *sm = calloc(1, sizeof *sm);
	if (!sm) {
		srv_fail_set(f, 500, "internal", "out of memory");
		return NULL;
	}
	snprintf(sm->path, sizeof sm->path, "%s", path);
	if (file_id(path, sm) != 0) {
		srv_fail_set(f, 404, "model_file_missing", "model '%s': %s: %s", name, path, strerror(errno));
		free(sm);
		return NULL;
	}
	ae_error err = { 0 };
	ae_model *m = ae_model_load(path, &err);
	ae_plan_opts po = { .precision = m ? ae_precision_resolve(m, cfg->precision) : AE_PREC_FP32 };
	ae_plan *plan = m ? ae_plan_new_opts(m, &po, &err) : NULL;
	/* its anomaly thresholds as calibrated at the precision it runs */
	if (plan) ae_model_use_precision(m, ae_plan_precision(plan));
	/* A file being copied or written in place can be read while it is
	 * short and still parse: compare the file now with the file before,
	 * and refuse a moving target. */
	int moved = plan && srv_model_file_changed(sm);
	if (!plan || moved) {
		if (moved)
			srv_fail_set(f, 409, "model_file_changing",
			             "model '%s': %s changed while it was read; load it again once it is written", name,
			             path);
		else
			srv_fail_set(f, 422, "invalid_model_file", "model '%s': %s", name,
			             err.msg[0] ? err.msg : "out of memory");
		ae_plan_free(plan);
		ae_model_free(m);
		free(sm);
		return NULL;
	}
	snprintf(sm->name, sizeof sm->name, "%s", name);
	sm->m = m;
	sm->plan = plan;
	sm->cfg = cfg;
	atomic_store(&sm->refs, 1); /* the caller's */
	atomic_fetch_add(&alive, 1);
	sm->drift = srv_drift_new(cfg->drift_window, ae_model_quantile(m, 0.99));
	pthread_mutex_init(&sm->mu, NULL);
	pthread_cond_init(&sm->cv, NULL);
	if (!sm->drift || start_workers(sm, cfg) != 0) {
		srv_fail_set(f, 500, "internal", "model '%s': cannot start its inference workers", name);
		srv_model_release(sm);
		return NULL;
	}
	return sm;
}

void srv_registry_init(srv_state *s)
{
	pthread_mutex_init(&s->reg_mu, NULL);
	pthread_mutex_init(&s->load_mu, NULL);
}

/* The slot of the name (caller holds reg_mu), or -1. */
static int slot(const srv_state *s, const char *name)
{
	for (int i = 0; i < s->n_models; i++)
		if (strcmp(s->models[i]->name, name) == 0) return i;
	return -1;
}

int srv_registry_put(srv_state *s, srv_model *m)
{
	pthread_mutex_lock(&s->reg_mu);
	int i = slot(s, m->name);
	srv_model *old = i >= 0 ? s->models[i] : NULL;
	if (i < 0 && s->n_models >= SRV_MAX_MODELS) {
		pthread_mutex_unlock(&s->reg_mu);
		return -1;
	}
	if (i < 0) {
		/* kept in name order, so listings and metrics are stable */
		i = s->n_models++;
		while (i > 0 && strcmp(s->models[i - 1]->name, m->name) > 0) {
			s->models[i] = s->models[i - 1];
			i--;
		}
	}
	s->models[i] = m;
	pthread_mutex_unlock(&s->reg_mu);
	/* Outside the lock: if no request holds the old model, this stops its
	 * workers and frees it; otherwise its last request does. */
	srv_model_release(old);
	return 0;
}

int srv_registry_remove(srv_state *s, const char *name)
{
	pthread_mutex_lock(&s->reg_mu);
	int i = slot(s, name);
	srv_model *old = i >= 0 ? s->models[i] : NULL;
	if (old) {
		memmove(&s->models[i], &s->models[i + 1], (size_t)(s->n_models - i - 1) * sizeof(srv_model *));
		s->n_models--;
	}
	pthread_mutex_unlock(&s->reg_mu);
	srv_model_release(old);
	return old ? 0 : -1;
}

srv_model *srv_model_hold(srv_state *s, const char *name)
{
	pthread_mutex_lock(&s->reg_mu);
	int i = slot(s, name);
	srv_model *m = i >= 0 ? hold(s->models[i]) : NULL;
	pthread_mutex_unlock(&s->reg_mu);
	return m;
}

srv_model *srv_model_hold_default(srv_state *s)
{
	return srv_model_hold(s, s->default_name);
}

int srv_models_snapshot(srv_state *s, srv_model **out)
{
	pthread_mutex_lock(&s->reg_mu);
	int n = s->n_models;
	for (int i = 0; i < n; i++)
		out[i] = hold(s->models[i]);
	pthread_mutex_unlock(&s->reg_mu);
	return n;
}

void srv_models_release_snapshot(srv_model **ms, int n)
{
	for (int i = 0; i < n; i++)
		srv_model_release(ms[i]);
}

/* Workers finish what is queued (answering expired jobs 504), then exit. */
static void stop_workers(srv_model *m)
{
	pthread_mutex_lock(&m->mu);
	m->stopping = 1;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	for (int t = 0; t < m->n_threads; t++)
		pthread_join(m->threads[t], NULL);
	m->n_threads = 0;
}

void srv_model_release(srv_model *m)
{
	if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
	stop_workers(m);
	free(m->threads);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	ae_plan_free(m->plan);
	ae_model_free(m->m);
	srv_drift_free(m->drift);
	free(m);
	atomic_fetch_sub(&alive, 1);
}

void srv_models_stop(srv_state *s)
{
	pthread_mutex_lock(&s->reg_mu);
	for (int i = 0; i < s->n_models; i++)
		stop_workers(s->models[i]);
	pthread_mutex_unlock(&s->reg_mu);
}

void srv_models_release_all(srv_state *s)
{
	pthread_mutex_lock(&s->reg_mu);
	int n = s->n_models;
	s->n_models = 0;
	pthread_mutex_unlock(&s->reg_mu);
	for (int i = 0; i < n; i++)
		srv_model_release(s->models[i]);
}
