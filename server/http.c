/*
 * The libmicrohttpd access handler: routing, limits on the request's size,
 * bounded body collection, handing inference to a model's queue (the
 * connection is suspended until a worker resumes it) and answering.
 *
 * A request's state lives in *con_cls from its first callback to
 * srv_completed, which alone frees it, releases the model it held, writes
 * the access log and the metrics, and takes it out of the in-flight count:
 * however a request ends (answered, timed out, its client gone), it ends
 * there once.
 */
#define _GNU_SOURCE /* strcasestr */
#include "server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ae/image.h"

/* A request line or header block past these is refused before any work:
 * the path of a real request is under 100 bytes. (libmicrohttpd refuses
 * requests that overflow its 32 KiB connection buffer itself, with its own
 * HTML body; between these limits and that one, the answer is ours.) */
#define SRV_MAX_URL          8192
#define SRV_MAX_HEADER_BYTES 16384

enum { PH_RECEIVING, PH_ANSWERED, PH_SUBMITTED };

typedef struct srv_req {
	double t0;
	int route;
	const srv_opdef *op; /* NULL on the GET routes */
	int phase;
	unsigned media;        /* srv_input bit of the body */
	const char *ctype_hdr; /* the Content-Type header, owned by MHD for the request */
	srv_model *model;      /* held until srv_completed */
	srv_conn *sc;
	char method[16], path[512];
	uint8_t *body;
	size_t len, cap;
	int too_large; /* a chunked body passed the limit: discarding */
	srv_job job;
	float *in, *out;
	srv_params params;
} srv_req;

/* Records that an answer is queued (or the connection must close). */
static enum MHD_Result answered(srv_req *r, enum MHD_Result rc)
{
	if (rc == MHD_YES) r->phase = PH_ANSWERED;
	return rc;
}

/* ------------------------------------------------------------- GET routes */

static enum MHD_Result get_models(srv_state *s, struct MHD_Connection *c)
{
	/* room for the head whatever the default model's name (up to 63 chars) */
	size_t cap = strlen(s->default_model->name) + 32, len = 0;
	char *out = malloc(cap);
	int ok = out != NULL;
	if (ok) len = (size_t)snprintf(out, cap, "{\"default\":\"%s\",\"models\":[", s->default_model->name);
	for (int i = 0; ok && i < s->n_models; i++) {
		size_t ml;
		char *mj = srv_json_model(s->models[i], s->models[i] == s->default_model, &ml);
		char *grown = mj ? realloc(out, len + ml + 8) : NULL;
		ok = grown != NULL;
		if (ok) {
			out = grown;
			if (i) out[len++] = ',';
			memcpy(out + len, mj, ml);
			len += ml;
		}
		free(mj);
	}
	if (!ok) {
		free(out);
		return srv_reply_error(c, 500, "internal", "out of memory");
	}
	memcpy(out + len, "]}", 3);
	return srv_reply_buf(c, 200, "application/json", out, len + 2, NULL);
}

static enum MHD_Result get_route(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	switch (r->route) {
	case R_LIVEZ: return srv_reply_json(c, 200, strdup("{\"status\":\"alive\"}"));
	case R_READYZ:
		return atomic_load(&s->loaded) && !atomic_load(&s->draining)
		               ? srv_reply_json(c, 200, strdup("{\"status\":\"ready\"}"))
		               : srv_reply_error(c, 503, "not_ready", "models are loading or the server is draining");
	case R_METRICS: {
		size_t len;
		char *m = srv_metrics_render(s, &len);
		return m ? srv_reply_buf(c, 200, "text/plain; version=0.0.4; charset=utf-8", m, len, NULL)
		         : srv_reply_error(c, 500, "internal", "out of memory");
	}
	case R_MODELS: return get_models(s, c);
	default: {
		size_t len;
		char *j = srv_json_model(r->model, r->model == s->default_model, &len);
		return j ? srv_reply_buf(c, 200, "application/json", j, len, NULL)
		         : srv_reply_error(c, 500, "internal", "out of memory");
	}
	}
}

/* ---------------------------------------------------------------- routing */

/* Splits the path into r->route/op and the model name (empty: the default
 * model). Returns the methods the route allows, or NULL for no route. */
static const char *match(srv_req *r, const char *url, char *name, size_t cap)
{
	static const struct {
		const char *path;
		int route;
	} fixed[] = {
		{ "/livez", R_LIVEZ }, { "/readyz", R_READYZ }, { "/metrics", R_METRICS }, { "/v1/models", R_MODELS }
	};
	name[0] = '\0';
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		if (strcmp(url, fixed[i].path) == 0) return r->route = fixed[i].route, "GET, HEAD";
	if (strncmp(url, "/v1/models/", 11) == 0) {
		const char *n = url + 11, *slash = strchr(n, '/');
		size_t len = slash ? (size_t)(slash - n) : strlen(n);
		if (len == 0) return NULL;
		/* Longer than any model's name: it names none, and says so. */
		snprintf(name, cap, "%.*s", (int)(len < cap ? len : cap - 1), n);
		if (!slash) return r->route = R_MODEL, "GET, HEAD";
		r->op = srv_op_find(slash + 1);
	} else if (strncmp(url, "/v1/", 4) == 0)
		r->op = srv_op_find(url + 4);
	if (!r->op) return NULL;
	r->route = (int)(r->op - srv_ops);
	return "POST";
}

/* Fills r->route/op/model from the path; answers 404/405/503 itself and
 * returns 0 then, else 1. */
static int route(srv_state *s, srv_req *r, struct MHD_Connection *c, const char *url, const char *method,
                 enum MHD_Result *rc)
{
	char name[80];
	r->route = R_OTHER;
	const char *allow = match(r, url, name, sizeof name);
	if (!allow) {
		*rc = srv_reply_error(c, 404, "not_found", "no route %s %.200s", method, url);
		return 0;
	}
	int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	if (r->op ? strcmp(method, "POST") != 0 : !is_get) {
		const char *hdrs[] = { "Allow", allow, NULL };
		*rc = srv_reply_error_with(c, 405, hdrs, "method_not_allowed", "%s is not allowed on %.150s; use %s",
		                           method, url, allow);
		return 0;
	}
	if (r->route == R_LIVEZ || r->route == R_READYZ || r->route == R_METRICS) return 1;
	if (!atomic_load(&s->loaded)) {
		*rc = srv_reply_error(c, 503, "not_ready", "models are loading");
		return 0;
	}
	if (r->route == R_MODELS) return 1;
	r->model = name[0] ? srv_model_hold(s, name) : srv_model_hold_default(s);
	if (!r->model) {
		*rc = srv_reply_error(c, 404, "model_not_found", "no model named '%s'", name);
		return 0;
	}
	return 1;
}

/* Every query parameter, checked against what the operation takes. */
typedef struct param_walk {
	srv_req *r;
	srv_fail f;
	int failed;
} param_walk;

static enum MHD_Result param_one(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	param_walk *pw = cls;
	if (srv_params_set(&pw->r->params, pw->r->op->params, key, value, &pw->f)) {
		pw->failed = 1;
		return MHD_NO;
	}
	return MHD_YES;
}

/* First callback of a POST: headers only. Answers 413/415, and 400 for bad
 * query parameters, before the body is read. */
static int check_post_headers(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > s->cfg.body_limit) {
		*rc = srv_reply_error(c, 413, "body_too_large", "the body is %.40s bytes; the limit is %zu", cl,
		                      s->cfg.body_limit);
		return 0;
	}
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	r->ctype_hdr = ct;
	r->media = srv_media_type(ct);
	if (!(r->media & r->op->inputs)) {
		*rc = srv_reply_error(c, 415, "unsupported_media_type",
		                      "Content-Type '%.100s' is not accepted here; send %s", ct ? ct : "(none)",
		                      r->op->inputs == SRV_IN_JSON
		                              ? "application/json codes"
		                              : "image/png, multipart/form-data or application/json");
		return 0;
	}
	param_walk pw = { .r = r };
	srv_params_init(&r->params);
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, param_one, &pw);
	if (pw.failed || srv_params_done(&r->params, &pw.f)) {
		*rc = srv_reply_error(c, pw.f.status, pw.f.code, "%s", pw.f.msg);
		return 0;
	}
	return 1;
}

static int append_body(srv_state *s, srv_req *r, const char *data, size_t n)
{
	if (r->len + n > s->cfg.body_limit) return -1;
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n)
			cap *= 2;
		if (cap > s->cfg.body_limit) cap = s->cfg.body_limit;
		uint8_t *b = realloc(r->body, cap);
		if (!b) return -1;
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	return 0;
}

/* The body is complete: parse it and hand the job to the model's queue. */
static enum MHD_Result submit(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	srv_fail f = { 0 };
	srv_parse_ctx x = { .m = r->model, .op = r->op, .p = &r->params };
	int n = 0, rc;
	if (r->media == SRV_IN_PNG)
		rc = srv_parse_png(r->body, r->len, &x, &n, &r->in, &f);
	else if (r->media == SRV_IN_MULTIPART)
		rc = srv_parse_multipart(r->body, r->len, r->ctype_hdr, &x, &n, &r->in, &f);
	else
		rc = srv_parse_json(r->body, r->len, &x, &n, &r->in, &f);
	free(r->body); /* parsed: only the tensor is needed now */
	r->body = NULL;
	if (rc) return answered(r, srv_reply_error(c, f.status, f.code, "%s", f.msg));
	r->out = malloc((size_t)n * ae_plan_out_size(r->model->plan, r->op->engine) * sizeof(float));
	if (!r->out) return answered(r, srv_reply_error(c, 500, "internal", "out of memory"));
	srv_job *j = &r->job;
	j->op = r->op->engine;
	j->n = n;
	j->in = r->in;
	j->out = r->out;
	j->conn = c;
	/* The deadline covers the server's own work: it starts now that the
	 * client has sent everything, however slowly it did. */
	j->deadline = srv_now() + s->cfg.timeout_ms / 1000.0;
	srv_conn_wait(r->sc, W_NONE);
	r->phase = PH_SUBMITTED;
	if (srv_enqueue(r->model, j) != 0)
		return answered(r, srv_reply_error(c, 503, "overloaded",
		                                   "model '%s' has %d requests waiting; retry shortly", r->model->name,
		                                   s->cfg.queue_len));
	return MHD_YES;
}

static int wants_png(struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	return a && strcasestr(a, "image/png") != NULL;
}

static enum MHD_Result reply_png(srv_req *r, struct MHD_Connection *c)
{
	const srv_model *m = r->model;
	uint8_t *pix = malloc(m->image_size), *png = NULL;
	size_t len = 0;
	ae_error err = { 0 };
	if (pix) ae_float_to_u8(pix, r->out, m->image_size);
	int rc = pix ? ae_png_encode(pix, m->c, m->h, m->w, &png, &len, &err) : -1;
	free(pix);
	if (rc) return srv_reply_error(c, 500, "internal", "PNG encoding failed: %s", err.msg);
	return srv_reply_buf(c, 200, "image/png", png, len, NULL);
}

/* A worker resumed us: answer with the result. */
static enum MHD_Result respond(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	const srv_model *m = r->model;
	if (atomic_load(&r->job.state) == JOB_EXPIRED)
		return srv_reply_error(c, 504, "timeout", "no inference worker reached the request within %d ms",
		                       s->cfg.timeout_ms);
	int n = r->job.n;
	size_t len = 0;
	char *body = NULL;
	switch (r->op->output) {
	case SRV_OUT_SCORES: {
		const srv_params *p = &r->params;
		double t = isnan(p->threshold) ? ae_model_quantile(m->m, p->quantile) : p->threshold;
		body = srv_json_anomaly(m, r->in, r->out, n, t, p->quantile, &len);
		break;
	}
	case SRV_OUT_CODES: {
		int dim = (int)ae_plan_out_size(m->plan, r->op->engine);
		body = srv_json_tensor(m, r->op->name, r->out, n, &dim, 1, &len);
		break;
	}
	default: {
		if (n == 1 && wants_png(c)) return reply_png(r, c);
		int dims[3] = { m->c, m->h, m->w };
		body = srv_json_tensor(m, r->op->name, r->out, n, dims, 3, &len);
	}
	}
	if (!body) return srv_reply_error(c, 500, "internal", "out of memory");
	return srv_reply_buf(c, 200, "application/json", body, len, NULL);
}

/* The first callback: headers are in. Sets up the request and answers
 * everything that needs no body. */
static enum MHD_Result begin(srv_state *s, srv_req *r, struct MHD_Connection *c, const char *url, const char *method)
{
	enum MHD_Result rc = MHD_YES;
	const union MHD_ConnectionInfo *hi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	if (strlen(url) > SRV_MAX_URL)
		return answered(r, srv_reply_error(c, 414, "uri_too_long", "the path is %zu bytes; the limit is %d",
		                                   strlen(url), SRV_MAX_URL));
	if (hi && hi->header_size > SRV_MAX_HEADER_BYTES)
		return answered(r, srv_reply_error(c, 431, "headers_too_large",
		                                   "the headers are %zu bytes; the limit is %d", hi->header_size,
		                                   SRV_MAX_HEADER_BYTES));
	if (!route(s, r, c, url, method, &rc)) return answered(r, rc);
	if (!r->op) return answered(r, get_route(s, r, c));
	if (!check_post_headers(s, r, c, &rc)) return answered(r, rc);
	return MHD_YES;
}

enum MHD_Result srv_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)version;
	srv_state *s = cls;
	srv_req *r = *con_cls;
	if (!r) {
		if (!(r = calloc(1, sizeof *r))) return MHD_NO;
		*con_cls = r;
		atomic_fetch_add(&s->inflight, 1);
		r->t0 = srv_now();
		r->sc = srv_conn_of(c);
		if (r->sc) {
			r->sc->status = 0;
			r->sc->bytes = 0;
			atomic_store(&r->sc->reaped, 0);
			srv_conn_wait(r->sc, W_BODY);
		}
		snprintf(r->method, sizeof r->method, "%s", method);
		snprintf(r->path, sizeof r->path, "%s", url);
		return begin(s, r, c, url, method);
	}
	if (r->phase == PH_ANSWERED) {
		*upload_data_size = 0; /* an early answer: drop what is still coming */
		return MHD_YES;
	}
	if (r->phase == PH_SUBMITTED) return answered(r, respond(s, r, c));
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		/* Only a body without Content-Length gets here past the limit.
		 * Answering now would make libmicrohttpd close a socket the client
		 * is still writing to, and the reset loses the answer; so stop
		 * storing, discard the rest, and answer 413 when it ends. */
		if (!r->too_large && append_body(s, r, upload_data, n)) {
			r->too_large = 1;
			free(r->body);
			r->body = NULL;
			r->len = r->cap = 0;
		}
		return MHD_YES;
	}
	if (r->too_large)
		return answered(r, srv_reply_error(c, 413, "body_too_large", "the body exceeds the limit of %zu bytes",
		                                   s->cfg.body_limit));
	if (r->len == 0) return answered(r, srv_reply_error(c, 400, "empty_body", "the request has no body"));
	return submit(s, r, c);
}

void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	srv_state *s = cls;
	srv_req *r = *con_cls;
	(void)toe;
	if (!r) return;
	double dt = srv_now() - r->t0;
	srv_conn *sc = r->sc;
	/* Cut off at a deadline: 408; gone before its answer: 499. */
	unsigned status = sc && atomic_load(&sc->reaped) ? 408 : r->phase == PH_ANSWERED && sc ? sc->status : 499;
	srv_metrics_request(r->route, status, dt);
	srv_access_log(s->cfg.log_format, c, r->method, r->path, status, sc ? sc->bytes : 0, dt);
	srv_model_release(r->model);
	free(r->body);
	free(r->in);
	free(r->out);
	free(r);
	*con_cls = NULL;
	srv_conn_wait(sc, W_IDLE);
	atomic_fetch_sub(&s->inflight, 1);
}
