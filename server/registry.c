/*
 * Loaded models, their bounded request queues and inference workers.
 *
 * A worker takes the oldest job, then gathers more jobs that run the same
 * engine operation (encode, decode or reconstruct) until it has max_batch
 * images or the batch delay has passed, runs them as ONE forward pass
 * through its own preallocated scratch, and resumes each job's connection.
 * Jobs whose deadline passed while queued are resumed unrun (the HTTP side
 * answers 504). Staging sizes come from the plan, which alone knows how
 * many floats each operation reads and writes per image.
 *
 * A model is held by reference: the registry holds one, each request
 * that uses it another, and the last release stops its workers and frees
 * it, so nothing frees a model a request still reads.
 */
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ae/modelfile.h"

double srv_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct worker {
	srv_model *m;
	ae_infer *inf;
	float *stage_in, *stage_out;
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
	const ae_op kind = first->op;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	long ns = until.tv_nsec + (long)m->cfg->batch_delay_us * 1000;
	until.tv_sec += ns / 1000000000L;
	until.tv_nsec = ns % 1000000000L;
	while (*images < max && n < max) {
		srv_job *prev = NULL, *j = m->head;
		while (j && (j->op != kind || *images + j->n > max))
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
	const size_t isz = ae_plan_in_size(m->plan, op), osz = ae_plan_out_size(m->plan, op);
	if (live == 1) {
		ae_infer_run(w->inf, op, batch[0]->in, batch[0]->n, batch[0]->out);
	} else {
		size_t at = 0;
		for (int i = 0; i < live; i++) {
			memcpy(w->stage_in + at * isz, batch[i]->in, (size_t)batch[i]->n * isz * sizeof(float));
			at += (size_t)batch[i]->n;
		}
		ae_infer_run(w->inf, op, w->stage_in, images, w->stage_out);
		at = 0;
		for (int i = 0; i < live; i++) {
			memcpy(batch[i]->out, w->stage_out + at * osz, (size_t)batch[i]->n * osz * sizeof(float));
			at += (size_t)batch[i]->n;
		}
	}
	int b = 0;
	while (b < 9 && (1 << b) < images)
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
		if (!w->inf || !w->stage_in || !w->stage_out ||
		    pthread_create(&sm->threads[i], NULL, worker_main, w) != 0) {
			fprintf(stderr, "aeserve: %s: cannot start worker: %s\n", sm->name,
			        err.msg[0] ? err.msg : "out of memory");
			ae_infer_free(w->inf);
			free(w->stage_in), free(w->stage_out), free(w);
			return -1;
		}
		sm->n_threads++;
	}
	return 0;
}

static srv_model *find(srv_state *s, const char *name)
{
	for (int i = 0; i < s->n_models; i++)
		if (strcmp(s->models[i]->name, name) == 0) return s->models[i];
	return NULL;
}

static int has_ext(const char *n, const char *ext)
{
	size_t a = strlen(n), b = strlen(ext);
	return a > b && strcmp(n + a - b, ext) == 0;
}

static int load_one(srv_state *s, const char *path)
{
	if (s->n_models >= SRV_MAX_MODELS) {
		fprintf(stderr, "aeserve: %s: more than %d models\n", path, SRV_MAX_MODELS);
		return -1;
	}
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t len = strlen(base);
	if (has_ext(base, ".safetensors")) len -= strlen(".safetensors");
	if (len == 0 || len >= 64) {
		fprintf(stderr, "aeserve: %s: cannot name a model after this file\n", path);
		return -1;
	}
	char name[64];
	snprintf(name, sizeof name, "%.*s", (int)len, base);
	/* A name is a path segment of every route and a label in metrics and
	 * JSON: keep it to characters that need no escaping anywhere. */
	if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != len) {
		fprintf(stderr,
		        "aeserve: %s: a model's name (its file name) may hold only letters, digits, '.', '_' and '-'\n",
		        path);
		return -1;
	}
	if (find(s, name)) {
		fprintf(stderr, "aeserve: %s: a model named '%s' is already loaded\n", path, name);
		return -1;
	}
	ae_error err = { 0 };
	ae_model *m = ae_model_load(path, &err);
	ae_plan *plan = m ? ae_plan_new(m, &err) : NULL;
	srv_model *sm = plan ? calloc(1, sizeof *sm) : NULL;
	if (!sm) {
		fprintf(stderr, "aeserve: model '%s' failed to load: %s\n", name,
		        err.msg[0] ? err.msg : "out of memory");
		ae_plan_free(plan);
		ae_model_free(m);
		return -1;
	}
	snprintf(sm->name, sizeof sm->name, "%s", name);
	snprintf(sm->path, sizeof sm->path, "%s", path);
	sm->m = m;
	sm->plan = plan;
	sm->c = m->net.spec.c, sm->h = m->net.spec.h, sm->w = m->net.spec.w;
	sm->latent = m->net.spec.latent;
	sm->image_size = (size_t)sm->c * sm->h * sm->w;
	sm->cfg = &s->cfg;
	atomic_store(&sm->refs, 1); /* the registry's */
	pthread_mutex_init(&sm->mu, NULL);
	pthread_cond_init(&sm->cv, NULL);
	s->models[s->n_models++] = sm;
	return start_workers(sm, &s->cfg);
}

int srv_models_load(srv_state *s)
{
	int rc = 0;
	for (int i = 0; i < s->cfg.n_paths; i++) {
		const char *p = s->cfg.paths[i];
		struct stat sb;
		if (stat(p, &sb) != 0) {
			fprintf(stderr, "aeserve: %s: %s\n", p, strerror(errno));
			rc = -1;
			continue;
		}
		if (!S_ISDIR(sb.st_mode)) {
			rc |= load_one(s, p);
			continue;
		}
		struct dirent **ents;
		int n = scandir(p, &ents, NULL, alphasort), found = 0;
		for (int k = 0; k < n; k++) {
			if (has_ext(ents[k]->d_name, ".safetensors")) {
				char full[2048];
				snprintf(full, sizeof full, "%s/%s", p, ents[k]->d_name);
				rc |= load_one(s, full);
				found++;
			}
			free(ents[k]);
		}
		if (n >= 0) free(ents);
		if (!found) {
			fprintf(stderr, "aeserve: %s: no .safetensors model files\n", p);
			rc = -1;
		}
	}
	if (rc == 0 && s->n_models == 0) {
		fprintf(stderr, "aeserve: no models to serve\n");
		rc = -1;
	}
	if (rc == 0) {
		s->default_model = s->cfg.default_model[0] ? find(s, s->cfg.default_model) : s->models[0];
		if (!s->default_model) {
			fprintf(stderr, "aeserve: --default: no model named '%s' is loaded\n", s->cfg.default_model);
			rc = -1;
		}
	}
	return rc;
}

static srv_model *hold(srv_model *m)
{
	if (m) atomic_fetch_add(&m->refs, 1);
	return m;
}

srv_model *srv_model_hold(srv_state *s, const char *name)
{
	return hold(find(s, name));
}

srv_model *srv_model_hold_default(srv_state *s)
{
	return hold(s->default_model);
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
	free(m);
}

void srv_models_stop(srv_state *s)
{
	for (int i = 0; i < s->n_models; i++)
		stop_workers(s->models[i]);
}

void srv_models_release_all(srv_state *s)
{
	s->default_model = NULL;
	for (int i = 0; i < s->n_models; i++)
		srv_model_release(s->models[i]);
	s->n_models = 0;
}
