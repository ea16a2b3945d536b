/*
 * Prometheus metrics, text exposition format 0.0.4, base units (seconds):
 * requests by route and status code, request latency and batch-size
 * histograms, requests in flight, queue depth, connections cut off at a
 * deadline, and a model info gauge carrying each model's checksum.
 * Counters are lock-free atomics bumped on the HTTP threads.
 */
#include "server.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Indexed by the status code itself, so every code has its own label. */
#define MIN_STATUS 100
#define N_STATUS   500
static const double lat_le[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };
#define N_LAT (sizeof lat_le / sizeof *lat_le)

/* By metric label (srv_label_of: the operations, the routes, "other"). */
static atomic_long req_count[SRV_MAX_LABELS][N_STATUS];
static atomic_long lat_bucket[SRV_MAX_LABELS][N_LAT + 1];
static _Atomic double lat_sum[SRV_MAX_LABELS];

void srv_metrics_request(int route, unsigned status, double seconds)
{
	if (!srv_label_name(route)) route = SRV_LABEL_OTHER;
	if (status < MIN_STATUS || status >= MIN_STATUS + N_STATUS)
		status = 500; /* never sent: the answers are built here */
	atomic_fetch_add(&req_count[route][status - MIN_STATUS], 1);
	size_t b = 0;
	while (b < N_LAT && seconds > lat_le[b])
		b++;
	atomic_fetch_add(&lat_bucket[route][b], 1);
	double old = atomic_load(&lat_sum[route]);
	while (!atomic_compare_exchange_weak(&lat_sum[route], &old, old + seconds))
		;
}

typedef struct sbuf {
	char *p;
	size_t len, cap;
	int oom; /* a line could not be added: the page is incomplete */
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = b->p ? vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap) : -1;
		va_end(ap);
		if (n >= 0 && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 8192;
		char *p = b->oom ? NULL : realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

static void requests(sbuf *b)
{
	put(b, "# HELP aeserve_http_requests_total HTTP requests answered, by route and status.\n"
	       "# TYPE aeserve_http_requests_total counter\n");
	for (int r = 0; r < SRV_MAX_LABELS; r++)
		for (unsigned s = 0; s < N_STATUS; s++) {
			long v = atomic_load(&req_count[r][s]);
			if (v)
				put(b, "aeserve_http_requests_total{route=\"%s\",status=\"%u\"} %ld\n",
				    srv_label_name(r), s + MIN_STATUS, v);
		}
	put(b, "# HELP aeserve_http_request_duration_seconds Time from the first byte of a request to its response.\n"
	       "# TYPE aeserve_http_request_duration_seconds histogram\n");
	for (int r = 0; r < SRV_MAX_LABELS; r++) {
		long cum = 0;
		for (size_t i = 0; i <= N_LAT; i++)
			cum += atomic_load(&lat_bucket[r][i]);
		if (!cum) continue;
		long acc = 0;
		for (size_t i = 0; i < N_LAT; i++) {
			acc += atomic_load(&lat_bucket[r][i]);
			put(b, "aeserve_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %ld\n",
			    srv_label_name(r), lat_le[i], acc);
		}
		put(b, "aeserve_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %ld\n",
		    srv_label_name(r), cum);
		put(b, "aeserve_http_request_duration_seconds_sum{route=\"%s\"} %.9g\n", srv_label_name(r),
		    atomic_load(&lat_sum[r]));
		put(b, "aeserve_http_request_duration_seconds_count{route=\"%s\"} %ld\n", srv_label_name(r), cum);
	}
}

static void connections(sbuf *b, srv_state *s)
{
	static const char *waits[] = {
		[W_HEADERS] = "headers", [W_BODY] = "body", [W_SEND] = "send", [W_IDLE] = "idle"
	};
	/* The scrape asking is itself in flight; it is left out, so an idle
	 * server shows 0. */
	int inflight = atomic_load(&s->inflight) - 1;
	put(b,
	    "# HELP aeserve_requests_in_flight Requests received and not yet completed, this scrape excepted.\n"
	    "# TYPE aeserve_requests_in_flight gauge\naeserve_requests_in_flight %d\n",
	    inflight < 0 ? 0 : inflight);
	put(b,
	    "# HELP aeserve_connections_timed_out_total Connections closed at a deadline, by what they were waiting on.\n"
	    "# TYPE aeserve_connections_timed_out_total counter\n");
	for (int w = W_HEADERS; w <= W_IDLE; w++)
		put(b, "aeserve_connections_timed_out_total{waiting=\"%s\"} %ld\n", waits[w], srv_conns_reaped(w));
}

static void drift(sbuf *b, srv_model **ms, int n)
{
	put(b, "# HELP aeserve_anomaly_score Anomaly scores (reconstruction MSE) of the images answered with one.\n"
	       "# TYPE aeserve_anomaly_score histogram\n");
	srv_drift_view v[SRV_MAX_MODELS];
	for (int i = 0; i < n; i++) {
		srv_drift_read(ms[i]->drift, &v[i]);
		for (int k = 0; k < SRV_SCORE_BUCKETS; k++)
			put(b, "aeserve_anomaly_score_bucket{model=\"%s\",le=\"%g\"} %ld\n", ms[i]->name,
			    srv_score_le[k], v[i].bucket[k]);
		put(b, "aeserve_anomaly_score_bucket{model=\"%s\",le=\"+Inf\"} %ld\n", ms[i]->name,
		    v[i].bucket[SRV_SCORE_BUCKETS]);
		put(b, "aeserve_anomaly_score_sum{model=\"%s\"} %.9g\n", ms[i]->name, v[i].sum);
		put(b, "aeserve_anomaly_score_count{model=\"%s\"} %ld\n", ms[i]->name, v[i].bucket[SRV_SCORE_BUCKETS]);
	}
	put(b, "# HELP aeserve_anomalies_total Images answered as anomalous (score over the answer's threshold).\n"
	       "# TYPE aeserve_anomalies_total counter\n");
	for (int i = 0; i < n; i++)
		put(b, "aeserve_anomalies_total{model=\"%s\"} %ld\n", ms[i]->name, v[i].anomalies);
	put(b, "# HELP aeserve_drift_share Share of the last --drift-window scored images over the model's held-out "
	       "p99 (about 0.01 for data like the training data).\n# TYPE aeserve_drift_share gauge\n");
	for (int i = 0; i < n; i++)
		if (v[i].filled) put(b, "aeserve_drift_share{model=\"%s\"} %.6g\n", ms[i]->name, v[i].share);
	put(b, "# HELP aeserve_drift_window_images Scored images the drift share is over (at most --drift-window).\n"
	       "# TYPE aeserve_drift_window_images gauge\n");
	for (int i = 0; i < n; i++)
		put(b, "aeserve_drift_window_images{model=\"%s\"} %d\n", ms[i]->name, v[i].filled);
}

static void models(sbuf *b, srv_state *s)
{
	srv_model *ms[SRV_MAX_MODELS];
	int n = srv_models_snapshot(s, ms);
	put(b, "# HELP aeserve_batch_size Images per batched forward pass.\n# TYPE aeserve_batch_size histogram\n");
	for (int i = 0; i < n; i++) {
		srv_model *m = ms[i];
		long acc = 0;
		for (int k = 0; k < SRV_BATCH_BUCKETS; k++) {
			acc += atomic_load(&m->batch_hist[k]);
			put(b, "aeserve_batch_size_bucket{model=\"%s\",le=\"%d\"} %ld\n", m->name, 1 << k, acc);
		}
		acc += atomic_load(&m->batch_hist[SRV_BATCH_BUCKETS]);
		put(b, "aeserve_batch_size_bucket{model=\"%s\",le=\"+Inf\"} %ld\n", m->name, acc);
		put(b, "aeserve_batch_size_sum{model=\"%s\"} %ld\n", m->name, atomic_load(&m->batch_images));
		put(b, "aeserve_batch_size_count{model=\"%s\"} %ld\n", m->name, atomic_load(&m->batches));
	}
	put(b,
	    "# HELP aeserve_queue_depth Requests waiting for an inference worker.\n# TYPE aeserve_queue_depth gauge\n");
	for (int i = 0; i < n; i++) {
		srv_model *m = ms[i];
		pthread_mutex_lock(&m->mu);
		int d = m->depth;
		pthread_mutex_unlock(&m->mu);
		put(b, "aeserve_queue_depth{model=\"%s\"} %d\n", m->name, d);
	}
	put(b, "# HELP aeserve_model_info A loaded model; the value is always 1.\n# TYPE aeserve_model_info gauge\n");
	for (int i = 0; i < n; i++) {
		srv_model *m = ms[i];
		put(b, "aeserve_model_info{model=\"%s\",checksum=\"%s\",task=\"%s\",latent=\"%d\",default=\"%s\"} 1\n",
		    m->name, m->m->checksum, m->m->task, (int)ae_plan_out_size(m->plan, AE_OP_ENCODE),
		    strcmp(m->name, s->default_name) == 0 ? "true" : "false");
	}
	drift(b, ms, n);
	srv_models_release_snapshot(ms, n);
	put(b,
	    "# HELP aeserve_model_loads_total Model loads since start (files named at start, repository calls, "
	    "SIGHUP), by result.\n# TYPE aeserve_model_loads_total counter\n"
	    "aeserve_model_loads_total{result=\"ok\"} %ld\naeserve_model_loads_total{result=\"failed\"} %ld\n"
	    "# HELP aeserve_models_in_memory Models in memory: those served, and replaced ones that requests still use.\n"
	    "# TYPE aeserve_models_in_memory gauge\naeserve_models_in_memory %d\n"
	    "# HELP aeserve_model_unloads_total Models unloaded by a repository call.\n"
	    "# TYPE aeserve_model_unloads_total counter\naeserve_model_unloads_total %ld\n",
	    atomic_load(&s->loads_ok), atomic_load(&s->loads_failed), srv_models_in_memory(), atomic_load(&s->unloads));
	put(b,
	    "# HELP aeserve_ready Whether every model is loaded and the server is not draining.\n"
	    "# TYPE aeserve_ready gauge\naeserve_ready %d\n",
	    atomic_load(&s->loaded) && !atomic_load(&s->draining));
}

char *srv_metrics_render(srv_state *s, size_t *len)
{
	sbuf b = { 0 };
	requests(&b);
	connections(&b, s);
	models(&b, s);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
