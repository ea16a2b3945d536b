/*
 * The libmicrohttpd access handler: routing, bounded body collection,
 * handing inference to a model's queue (the connection is suspended until
 * a worker resumes it) and answering. Per-request state lives in *con_cls
 * from the first callback; it is freed only in srv_completed, which also
 * writes the access log and the metrics.
 */
#define _GNU_SOURCE /* strcasestr */
#include "server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ae/image.h"
#include "ae/parse.h"

enum { PH_RECEIVING, PH_ANSWERED, PH_SUBMITTED };
enum { CT_NONE, CT_PNG, CT_MULTIPART, CT_JSON };

typedef struct srv_req {
	double t0;
	int route, op, phase, ctype;
	const char *ctype_hdr;  /* the Content-Type header, owned by MHD for the request */
	srv_model *model;
	char method[16], path[256];
	uint8_t *body;
	size_t len, cap;
	int too_large;        /* a chunked body passed the limit: discarding */
	srv_job job;
	float *in, *out;
	srv_in_opts opts;
	double quantile, threshold;  /* anomaly: threshold NAN means "the quantile's" */
	unsigned status;
	size_t bytes;
} srv_req;

static const char *op_names[SRV_N_OPS] = { "encode", "decode", "reconstruct", "denoise", "anomaly" };

static int op_of(const char *s)
{
	for (int i = 0; i < SRV_N_OPS; i++)
		if (strcmp(s, op_names[i]) == 0)
			return i;
	return -1;
}

/* Records what was just sent, for the log and metrics. */
static enum MHD_Result answered(srv_req *r, enum MHD_Result rc)
{
	srv_reply_last(&r->status, &r->bytes);
	r->phase = PH_ANSWERED;
	return rc;
}

static int flag_arg(struct MHD_Connection *c, const char *name)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 || !*v);
}

/* ------------------------------------------------------------- GET routes */

static enum MHD_Result get_models(srv_state *s, struct MHD_Connection *c)
{
	/* room for the head whatever the default model's name (up to 63 chars) */
	size_t cap = strlen(s->default_model->name) + 32, len = 0;
	char *out = malloc(cap);
	int ok = out != NULL;
	if (ok)
		len = (size_t)snprintf(out, cap, "{\"default\":\"%s\",\"models\":[", s->default_model->name);
	for (int i = 0; ok && i < s->n_models; i++) {
		size_t ml;
		char *mj = srv_json_model(s->models[i], s->models[i] == s->default_model, &ml);
		char *grown = mj ? realloc(out, len + ml + 8) : NULL;
		ok = grown != NULL;
		if (ok) {
			out = grown;
			if (i)
				out[len++] = ',';
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
	case R_LIVEZ:
		return srv_reply_json(c, 200, strdup("{\"status\":\"alive\"}"));
	case R_READYZ:
		return atomic_load(&s->ready) ? srv_reply_json(c, 200, strdup("{\"status\":\"ready\"}"))
		                              : srv_reply_error(c, 503, "not_ready", "models are loading or the server is draining");
	case R_METRICS: {
		size_t len;
		char *m = srv_metrics_render(s, &len);
		return m ? srv_reply_buf(c, 200, "text/plain; version=0.0.4; charset=utf-8", m, len, NULL)
		         : srv_reply_error(c, 500, "internal", "out of memory");
	}
	case R_MODELS:
		return get_models(s, c);
	default: {
		size_t len;
		char *j = srv_json_model(r->model, r->model == s->default_model, &len);
		return j ? srv_reply_buf(c, 200, "application/json", j, len, NULL)
		         : srv_reply_error(c, 500, "internal", "out of memory");
	}
	}
}

/* ---------------------------------------------------------------- routing */

/* Fills r->route/op/model from the path; answers 404/405/503 itself and
 * returns 0 then, else 1. */
static int route(srv_state *s, srv_req *r, struct MHD_Connection *c, const char *url, const char *method,
                 enum MHD_Result *rc)
{
	int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	int is_post = strcmp(method, "POST") == 0;
	const char *allow = NULL;
	char name[80] = "", op[32] = "";
	r->route = R_OTHER;
	r->op = -1;
	if (strcmp(url, "/livez") == 0) r->route = R_LIVEZ, allow = "GET, HEAD";
	else if (strcmp(url, "/readyz") == 0) r->route = R_READYZ, allow = "GET, HEAD";
	else if (strcmp(url, "/metrics") == 0) r->route = R_METRICS, allow = "GET, HEAD";
	else if (strcmp(url, "/v1/models") == 0) r->route = R_MODELS, allow = "GET, HEAD";
	else if (sscanf(url, "/v1/models/%79[^/]/%31[^/]", name, op) == 2 && op_of(op) >= 0 &&
	         strlen(url) == strlen("/v1/models///") + strlen(name) + strlen(op) - 1)
		r->op = op_of(op), allow = "POST";
	else if (sscanf(url, "/v1/models/%79[^/]", name) == 1 && strlen(url) == strlen("/v1/models/") + strlen(name))
		r->route = R_MODEL, allow = "GET, HEAD";
	else if (strncmp(url, "/v1/", 4) == 0 && op_of(url + 4) >= 0)
		r->op = op_of(url + 4), allow = "POST";
	if (r->op >= 0)
		r->route = R_ENCODE + r->op;
	if (!allow) {
		*rc = srv_reply_error(c, 404, "not_found", "no route %s %s", method, url);
		return 0;
	}
	if ((strcmp(allow, "POST") == 0 && !is_post) || (strcmp(allow, "POST") != 0 && !is_get)) {
		const char *hdrs[] = { "Allow", allow, NULL };
		*rc = srv_reply_error_with(c, 405, hdrs, "method_not_allowed", "%s is not allowed on %.150s; use %s",
		                           method, url, allow);
		return 0;
	}
	if (r->route == R_LIVEZ || r->route == R_READYZ || r->route == R_METRICS)
		return 1;
	if (!atomic_load(&s->ready)) {
		*rc = srv_reply_error(c, 503, "not_ready", "models are loading or the server is draining");
		return 0;
	}
	r->model = name[0] ? srv_model_find(s, name) : s->default_model;
	if (!r->model) {
		*rc = srv_reply_error(c, 404, "model_not_found", "no model named '%s'", name);
		return 0;
	}
	return 1;
}

static int content_type(const char *ct)
{
	if (!ct)
		return CT_NONE;
	if (strncasecmp(ct, "image/png", 9) == 0)
		return CT_PNG;
	if (strncasecmp(ct, "multipart/form-data", 19) == 0)
		return CT_MULTIPART;
	if (strncasecmp(ct, "application/json", 16) == 0)
		return CT_JSON;
	return CT_NONE;
}

/* ?threshold=T (a score) or ?quantile=Q of the training errors (default
 * 0.99), checked before any work is queued. Answers 400 itself and
 * returns 0 then, else 1. */
static int anomaly_args(srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
	const char *qs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "quantile");
	const char *ts = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "threshold");
	ae_error err;
	r->quantile = 0.99;
	r->threshold = NAN;
	if (ts) {
		r->quantile = NAN;
		if (ae_parse_double(ts, 0.0, HUGE_VAL, &r->threshold, &err) == 0)
			return 1;
		*rc = srv_reply_error(c, 400, "invalid_parameter", "threshold '%s' is not a non-negative number", ts);
		return 0;
	}
	if (qs && (ae_parse_double(qs, 0.0, 1.0, &r->quantile, &err) || r->quantile == 0.0)) {
		*rc = srv_reply_error(c, 400, "invalid_parameter", "quantile '%s' is not a number in (0, 1]", qs);
		return 0;
	}
	return 1;
}

/* First callback of a POST: headers only. Answers 413/415, and 400 for
 * bad anomaly arguments, early. */
static int check_post_headers(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > s->cfg.body_limit) {
		*rc = srv_reply_error(c, 413, "body_too_large", "the body is %s bytes; the limit is %zu", cl, s->cfg.body_limit);
		return 0;
	}
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	r->ctype_hdr = ct;
	r->ctype = content_type(ct);
	if (r->ctype == CT_NONE || (r->op == SRV_DECODE && r->ctype != CT_JSON)) {
		*rc = srv_reply_error(c, 415, "unsupported_media_type", "Content-Type '%s' is not accepted here; send %s",
		                      ct ? ct : "(none)", r->op == SRV_DECODE ? "application/json codes"
		                                         : "image/png, multipart/form-data or application/json");
		return 0;
	}
	r->opts.resize = flag_arg(c, "resize");
	r->opts.invert = flag_arg(c, "invert");
	return r->op != SRV_ANOMALY || anomaly_args(r, c, rc);
}

static int append_body(srv_state *s, srv_req *r, const char *data, size_t n)
{
	if (r->len + n > s->cfg.body_limit)
		return -1;
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n)
			cap *= 2;
		if (cap > s->cfg.body_limit)
			cap = s->cfg.body_limit;
		uint8_t *b = realloc(r->body, cap);
		if (!b)
			return -1;
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
	int n = 0, rc;
	if (r->ctype == CT_PNG)
		rc = srv_parse_png(r->body, r->len, r->model, &r->opts, &n, &r->in, &f);
	else if (r->ctype == CT_MULTIPART)
		rc = srv_parse_multipart(r->body, r->len, r->ctype_hdr, r->model, &r->opts, &n, &r->in, &f);
	else
		rc = srv_parse_json(r->body, r->len, r->model, r->op == SRV_DECODE, &r->opts, &n, &r->in, &f);
	if (rc)
		return answered(r, srv_reply_error(c, f.status, f.code, "%s", f.msg));
	size_t out_per = r->op == SRV_ENCODE ? (size_t)r->model->latent : r->model->in_size;
	r->out = malloc((size_t)n * out_per * sizeof(float));
	if (!r->out)
		return answered(r, srv_reply_error(c, 500, "internal", "out of memory"));
	srv_job *j = &r->job;
	j->op = r->op;
	j->n = n;
	j->in = r->in;
	j->out = r->out;
	j->conn = c;
	j->deadline = r->t0 + s->cfg.timeout_ms / 1000.0;
	atomic_fetch_add(&s->inflight, 1);
	r->phase = PH_SUBMITTED;
	if (srv_enqueue(r->model, j) != 0) {
		atomic_fetch_sub(&s->inflight, 1);
		return answered(r, srv_reply_error(c, 503, "overloaded", "model '%s' has %d requests waiting; retry shortly",
		                                   r->model->name, s->cfg.queue_len));
	}
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
	uint8_t *pix = malloc(m->in_size), *png = NULL;
	size_t len = 0;
	ae_error err = { 0 };
	if (pix)
		ae_float_to_u8(pix, r->out, m->in_size);
	int rc = pix ? ae_png_encode(pix, m->c, m->h, m->w, &png, &len, &err) : -1;
	free(pix);
	if (rc)
		return srv_reply_error(c, 500, "internal", "PNG encoding failed: %s", err.msg);
	return srv_reply_buf(c, 200, "image/png", png, len, NULL);
}

/* A worker resumed us: answer with the result. */
static enum MHD_Result respond(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	atomic_fetch_sub(&s->inflight, 1);
	const srv_model *m = r->model;
	if (atomic_load(&r->job.state) == JOB_EXPIRED)
		return srv_reply_error(c, 504, "timeout", "no inference worker reached the request within %d ms",
		                       s->cfg.timeout_ms);
	int n = r->job.n;
	size_t len = 0;
	char *body = NULL;
	if (r->op == SRV_ANOMALY) {
		double t = isnan(r->threshold) ? ae_model_quantile(m->m, r->quantile) : r->threshold;
		body = srv_json_anomaly(m, r->in, r->out, n, t, r->quantile, &len);
	} else if (r->op != SRV_ENCODE && n == 1 && wants_png(c)) {
		return reply_png(r, c);
	} else if (r->op == SRV_ENCODE) {
		body = srv_json_tensor(m, op_names[r->op], r->out, n, &m->latent, 1, &len);
	} else {
		int dims[3] = { m->c, m->h, m->w };
		body = srv_json_tensor(m, op_names[r->op], r->out, n, dims, 3, &len);
	}
	if (!body)
		return srv_reply_error(c, 500, "internal", "out of memory");
	return srv_reply_buf(c, 200, "application/json", body, len, NULL);
}

enum MHD_Result srv_handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)version;
	srv_state *s = cls;
	srv_req *r = *con_cls;
	enum MHD_Result rc = MHD_YES;
	if (!r) {
		if (!(r = calloc(1, sizeof *r)))
			return MHD_NO;
		*con_cls = r;
		r->t0 = srv_now();
		snprintf(r->method, sizeof r->method, "%s", method);
		snprintf(r->path, sizeof r->path, "%s", url);
		if (!route(s, r, c, url, method, &rc))
			return answered(r, rc);
		if (r->op < 0)
			return answered(r, get_route(s, r, c));
		if (!check_post_headers(s, r, c, &rc))
			return answered(r, rc);
		return MHD_YES;
	}
	if (r->phase == PH_ANSWERED) {
		*upload_data_size = 0;  /* an early answer: drop what is still coming */
		return MHD_YES;
	}
	if (r->phase == PH_SUBMITTED)
		return answered(r, respond(s, r, c));
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
	if (r->len == 0)
		return answered(r, srv_reply_error(c, 400, "empty_body", "the request has no body"));
	return submit(s, r, c);
}

void srv_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	srv_state *s = cls;
	srv_req *r = *con_cls;
	(void)toe;
	if (!r)
		return;
	double dt = srv_now() - r->t0;
	unsigned status = r->phase == PH_ANSWERED ? r->status : 499;  /* client went away first */
	srv_metrics_request(r->route, status, dt);
	srv_access_log(s->cfg.log_format, c, r->method, r->path, status, r->bytes, dt);
	free(r->body);
	free(r->in);
	free(r->out);
	free(r);
	*con_cls = NULL;
}
