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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

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
	int front;              /* srv_front of the path */
	int bad_version;        /* a /v2 path named a model version other than 1 */
	char name[80];          /* the model a repository call names (as long as route() reads) */
	const srv_opdef *op;    /* NULL on the other routes */
	const srv_asset *asset; /* R_PAGE: the playground's file */
	int phase;
	unsigned media;        /* srv_input bit of the body */
	const char *ctype_hdr; /* the Content-Type header, owned by MHD for the request */
	srv_model *model;      /* held until srv_completed */
	const ae_plan *plan;   /* the model's plan this request runs on */
	srv_conn *sc;
	char method[16], path[512];
	uint8_t *body;
	size_t len, cap;
	int too_large; /* a chunked body passed the limit: discarding */
	srv_job job;
	float *in, *out, *codes;
	srv_params params;
	long long header_len; /* V2: Inference-Header-Content-Length, -1 if none */
	int score_kind;       /* the anomaly score answered (ae_score_kind) */
	srv_v2_req v2;
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
	srv_model *ms[SRV_MAX_MODELS];
	int n = srv_models_snapshot(s, ms);
	/* room for the head whatever the default model's name (up to 63 chars) */
	size_t cap = strlen(s->default_name) + 32, len = 0;
	char *out = malloc(cap);
	int ok = out != NULL;
	if (ok) len = (size_t)snprintf(out, cap, "{\"default\":\"%s\",\"models\":[", s->default_name);
	for (int i = 0; ok && i < n; i++) {
		size_t ml;
		char *mj = srv_json_model(ms[i], strcmp(ms[i]->name, s->default_name) == 0, &ml);
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
	srv_models_release_snapshot(ms, n);
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
	case R_PAGE: return srv_asset_reply(c, r->asset);
	case R_V2_LIVE: return srv_reply_json(c, 200, strdup("{\"live\":true}"));
	case R_V2_READY:
		return atomic_load(&s->loaded) && !atomic_load(&s->draining)
		               ? srv_reply_json(c, 200, strdup("{\"ready\":true}"))
		               : srv_reply_error(c, 503, "not_ready", "models are loading or the server is draining");
	case R_V2_SERVER: {
		size_t len;
		char *j = srv_v2_server_json(&len);
		return j ? srv_reply_buf(c, 200, "application/json", j, len, NULL)
		         : srv_reply_error(c, 500, "internal", "out of memory");
	}
	case R_V2_MODEL: {
		size_t len;
		char *j = srv_v2_model_json(r->model, &len);
		return j ? srv_reply_buf(c, 200, "application/json", j, len, NULL)
		         : srv_reply_error(c, 500, "internal", "out of memory");
	}
	case R_V2_MODEL_READY: {
		if (atomic_load(&s->draining)) return srv_reply_error(c, 503, "not_ready", "the server is draining");
		char j[128];
		snprintf(j, sizeof j, "{\"name\":\"%s\",\"ready\":true}", r->model->name);
		return srv_reply_json(c, 200, strdup(j));
	}
	default: {
		size_t len;
		char *j = srv_json_model(r->model, strcmp(r->model->name, s->default_name) == 0, &len);
		return j ? srv_reply_buf(c, 200, "application/json", j, len, NULL)
		         : srv_reply_error(c, 500, "internal", "out of memory");
	}
	}
}

/* ---------------------------------------------------------------- routing */

/* The segment at p up to the next '/' into name (cap bytes; a longer one
 * is cut, and so names no model and says so); returns what follows it. */
static const char *segment(const char *p, char *name, size_t cap)
{
	const char *slash = strchr(p, '/');
	size_t len = slash ? (size_t)(slash - p) : strlen(p);
	snprintf(name, cap, "%.*s", (int)(len < cap ? len : cap - 1), p);
	return p + len;
}

/* /v2/models/NAME[/versions/V][/ready|/infer] */
static const char *match_v2_model(srv_req *r, const char *p, char *name, size_t cap)
{
	p = segment(p, name, cap);
	if (!name[0]) return NULL;
	if (strncmp(p, "/versions/", 10) == 0) {
		char v[16];
		p = segment(p + 10, v, sizeof v);
		r->bad_version = strcmp(v, "1") != 0;
	}
	if (!*p) return r->route = R_V2_MODEL, "GET, HEAD";
	if (strcmp(p, "/ready") == 0) return r->route = R_V2_MODEL_READY, "GET, HEAD";
	if (*p == '/' && (r->op = srv_op_find(SRV_V2, p + 1))) return r->route = (int)(r->op - srv_ops), "POST";
	return NULL;
}

/* Splits the path into r->route/op and the model name (empty: the default
 * model). Returns the methods the route allows, or NULL for no route. */
static const char *match(srv_req *r, const char *url, char *name, size_t cap)
{
	static const struct {
		const char *path;
		int route;
		const char *allow;
	} fixed[] = {
		{ "/livez", R_LIVEZ, "GET, HEAD" },
		{ "/readyz", R_READYZ, "GET, HEAD" },
		{ "/metrics", R_METRICS, "GET, HEAD" },
		{ "/v1/models", R_MODELS, "GET, HEAD" },
		{ "/v2", R_V2_SERVER, "GET, HEAD" },
		{ "/v2/health/live", R_V2_LIVE, "GET, HEAD" },
		{ "/v2/health/ready", R_V2_READY, "GET, HEAD" },
		{ "/v2/repository/index", R_REPO_INDEX, "POST" },
	};
	name[0] = '\0';
	for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
		if (strcmp(url, fixed[i].path) == 0) return r->route = fixed[i].route, fixed[i].allow;
	if (strncmp(url, "/v2/models/", 11) == 0) return match_v2_model(r, url + 11, name, cap);
	if (strncmp(url, "/v2/repository/models/", 22) == 0) {
		const char *rest = segment(url + 22, name, cap);
		if (!name[0]) return NULL;
		if (strcmp(rest, "/load") == 0) return r->route = R_REPO_LOAD, "POST";
		if (strcmp(rest, "/unload") == 0) return r->route = R_REPO_UNLOAD, "POST";
		return NULL;
	}
	if (strncmp(url, "/v1/models/", 11) == 0) {
		const char *rest = segment(url + 11, name, cap);
		if (!name[0]) return NULL;
		if (!*rest) return r->route = R_MODEL, "GET, HEAD";
		r->op = srv_op_find(SRV_V1, rest + 1);
	} else if (strncmp(url, "/v1/", 4) == 0)
		r->op = srv_op_find(SRV_V1, url + 4);
	if (!r->op) return NULL;
	r->route = (int)(r->op - srv_ops);
	return "POST";
}

static int is_health(int route)
{
	return route == R_LIVEZ || route == R_READYZ || route == R_V2_LIVE || route == R_V2_READY;
}

static int is_repo(int route)
{
	return route == R_REPO_INDEX || route == R_REPO_LOAD || route == R_REPO_UNLOAD;
}

/* Who may ask: with keys, every route but health and the playground's
 * files (the page must load to ask for a key; it holds no data) needs one,
 * and /metrics unless public; without keys, the repository answers
 * loopback only. Answers 401/403 itself and returns 0 then, else 1. */
static int allowed(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
	if (is_health(r->route) || r->route == R_PAGE || (r->route == R_METRICS && s->cfg.metrics_public)) return 1;
	if (s->keys) {
		const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		int why = srv_keys_check(s->keys, h);
		if (why == SRV_KEY_OK) return 1;
		const char *hdrs[] = { "WWW-Authenticate",
			               why == SRV_KEY_MISSING ? "Bearer realm=\"aeserve\""
			                                      : "Bearer realm=\"aeserve\", error=\"invalid_token\"",
			               NULL };
		*rc = srv_reply_error_with(c, 401, hdrs, "unauthorized", "%s",
		                           why == SRV_KEY_MISSING
		                                   ? "this route needs an API key: Authorization: Bearer KEY"
		                                   : "the API key is not valid");
		return 0;
	}
	if (is_repo(r->route) && !srv_client_is_loopback(c)) {
		*rc = srv_reply_error(c, 403, "forbidden",
		                      "repository calls come only from loopback unless the server has --api-keys");
		return 0;
	}
	return 1;
}

/* Fills r->route/op/model from the path; answers 401/403/404/405/503
 * itself and returns 0 then, else 1. */
static int route(srv_state *s, srv_req *r, struct MHD_Connection *c, const char *url, const char *method,
                 enum MHD_Result *rc)
{
	char name[80];
	r->route = R_OTHER;
	r->asset = s->cfg.no_playground ? NULL : srv_asset_find(url);
	if (r->asset) r->route = R_PAGE;
	const char *allow = r->asset ? "GET, HEAD" : match(r, url, name, sizeof name);
	if (!allow) {
		*rc = srv_reply_error(c, 404, "not_found", "no route %s %.200s", method, url);
		return 0;
	}
	int is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	if (strcmp(allow, "POST") == 0 ? strcmp(method, "POST") != 0 : !is_get) {
		const char *hdrs[] = { "Allow", allow, NULL };
		*rc = srv_reply_error_with(c, 405, hdrs, "method_not_allowed", "%s is not allowed on %.150s; use %s",
		                           method, url, allow);
		return 0;
	}
	if (!allowed(s, r, c, rc)) return 0;
	if (is_health(r->route) || r->route == R_METRICS || r->route == R_V2_SERVER || r->route == R_PAGE) return 1;
	if (!atomic_load(&s->loaded)) {
		*rc = srv_reply_error(c, 503, "not_ready", "models are loading");
		return 0;
	}
	if (r->route == R_MODELS || is_repo(r->route)) {
		snprintf(r->name, sizeof r->name, "%s", name);
		return 1;
	}
	r->model = name[0] ? srv_model_hold(s, name) : srv_model_hold_default(s);
	if (!r->model || r->bad_version) {
		*rc = srv_reply_error(c, 404, "model_not_found",
		                      r->model ? "model '%s' has one version, 1" : "no model named '%s'", name);
		return 0;
	}
	r->plan = r->model->plan;
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
/* Inference-Header-Content-Length: -1 when absent; -2 when it is not a
 * byte count. */
static long long header_length(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Inference-Header-Content-Length");
	if (!h) return -1;
	long long v = 0;
	if (!*h || strspn(h, "0123456789") != strlen(h) || strlen(h) > 12) return -2;
	for (; *h; h++)
		v = v * 10 + (*h - '0');
	return v;
}

/* First callback of a POST: headers only. Answers 413/415, and 400 for bad
 * query parameters, before the body is read. */
static int check_post_headers(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	size_t limit = r->op ? s->cfg.body_limit : SRV_MAX_REPO_BODY;
	if (cl && strtoull(cl, NULL, 10) > limit) {
		*rc = srv_reply_error(c, 413, "body_too_large", "the body is %.40s bytes; the limit is %zu", cl, limit);
		return 0;
	}
	if (!r->op) return 1; /* a repository call: its body is checked whole */
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	r->ctype_hdr = ct;
	r->media = r->op->inputs == SRV_IN_ANY ? SRV_IN_ANY : srv_media_type(ct);
	if (!(r->media & r->op->inputs)) {
		*rc = srv_reply_error(c, 415, "unsupported_media_type",
		                      "Content-Type '%.100s' is not accepted here; send %s", ct ? ct : "(none)",
		                      r->op->inputs == SRV_IN_JSON
		                              ? "application/json codes"
		                              : "image/png, multipart/form-data or application/json");
		return 0;
	}
	r->header_len = header_length(c);
	if (r->header_len == -2) {
		*rc = srv_reply_error(c, 400, "invalid_header_length",
		                      "Inference-Header-Content-Length is not a byte count");
		return 0;
	}
	param_walk pw = { .r = r };
	srv_params_init(&r->params);
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, param_one, &pw);
	if (pw.failed || srv_params_done(&r->params, &pw.f) || srv_op_offered(r->op, r->model->name, r->plan, &pw.f)) {
		*rc = srv_reply_error(c, pw.f.status, pw.f.code, "%s", pw.f.msg);
		return 0;
	}
	return 1;
}

static size_t body_limit(const srv_state *s, const srv_req *r)
{
	return r->op ? s->cfg.body_limit : SRV_MAX_REPO_BODY;
}

static int append_body(srv_state *s, srv_req *r, const char *data, size_t n)
{
	const size_t limit = body_limit(s, r);
	if (r->len + n > limit) return -1;
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->len + n)
			cap *= 2;
		if (cap > limit) cap = limit;
		uint8_t *b = realloc(r->body, cap);
		if (!b) return -1;
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	return 0;
}

/* Parses the body into r->in (items of the engine operation's input
 * shape); sets the operation the plan runs. */
static int parse_body(srv_req *r, int *n, ae_op *op, srv_fail *f)
{
	srv_parse_ctx x = { .m = r->model, .plan = r->plan, .op = r->op, .p = &r->params };
	int codes = 0;
	if (r->op->engine == SRV_ENGINE_BY_OUTPUTS) {
		if (srv_v2_parse(r->body, r->len, r->header_len, &x, &r->v2, n, &r->in, f) ||
		    srv_check_format(r->model, r->v2.latent_format, f))
			return -1;
		*op = r->v2.engine;
		if ((r->score_kind = srv_score_kind(r->model, r->v2.p.score, f)) < 0) return -1;
		codes = r->v2.codes || (r->v2.scored && srv_score_needs_codes(r->score_kind));
	} else {
		*op = x.engine = (ae_op)r->op->engine;
		int rc = r->media == SRV_IN_PNG ? srv_parse_png(r->body, r->len, &x, n, &r->in, f)
		         : r->media == SRV_IN_MULTIPART
		                 ? srv_parse_multipart(r->body, r->len, r->ctype_hdr, &x, n, &r->in, f)
		                 : srv_parse_json(r->body, r->len, &x, n, &r->in, f);
		if (rc) return rc;
		if (r->op->output == SRV_OUT_CODES) return srv_check_format(r->model, r->params.format, f);
		if (r->op->output != SRV_OUT_SCORES) return 0;
		if ((r->score_kind = srv_score_kind(r->model, r->params.score, f)) < 0) return -1;
		codes = srv_score_needs_codes(r->score_kind);
	}
	if (codes && *op == AE_OP_RECONSTRUCT &&
	    !(r->codes = malloc((size_t)*n * ae_plan_out_size(r->plan, AE_OP_ENCODE) * sizeof(float))))
		return srv_fail_set(f, 500, "internal", "out of memory");
	return 0;
}

/* The body is complete: parse it and hand the job to the model's queue. */
static enum MHD_Result submit(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	srv_fail f = { 0 };
	int n = 0;
	ae_op op = AE_OP_RECONSTRUCT;
	int rc = parse_body(r, &n, &op, &f);
	free(r->body); /* parsed: only the tensor is needed now */
	r->body = NULL;
	/* The protocol answers a request it cannot run 400, however it is
	 * wrong (/v1 tells a malformed body, 400, from one that does not fit
	 * the model, 422). */
	if (rc && r->front == SRV_V2 && f.status == 422) f.status = 400;
	if (rc) return answered(r, srv_reply_error(c, f.status, f.code, "%s", f.msg));
	r->out = malloc((size_t)n * ae_plan_out_size(r->plan, op) * sizeof(float));
	if (!r->out) return answered(r, srv_reply_error(c, 500, "internal", "out of memory"));
	srv_job *j = &r->job;
	j->plan = r->plan;
	j->op = op;
	j->n = n;
	j->in = r->in;
	j->out = r->out;
	j->codes = r->codes;
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

/* The Open Inference Protocol's answer, from the job's results. */
static enum MHD_Result respond_v2(srv_req *r, struct MHD_Connection *c)
{
	const srv_model *m = r->model;
	const srv_v2_req *q = &r->v2;
	const int n = r->job.n, encode = r->job.op == AE_OP_ENCODE;
	srv_v2_out o = { .m = m, .plan = r->job.plan, .q = q, .n = n };
	o.z = encode ? r->out : r->codes;
	o.y = encode ? NULL : r->out;
	o.threshold = srv_score_threshold(m, r->score_kind, &q->p);
	o.score = r->score_kind;
	float *scores = q->scored ? malloc((size_t)n * sizeof *scores) : NULL;
	if (q->scored && (!scores || srv_score_answer(m, r->job.plan, r->score_kind, r->in, r->out, r->codes, n,
	                                              o.threshold, scores))) {
		free(scores);
		return srv_reply_error(c, 500, "internal", "out of memory");
	}
	o.scores = scores;
	size_t len = 0, json_len = 0;
	char *body = srv_v2_response(&o, &len, &json_len);
	free(scores);
	if (!body) return srv_reply_error(c, 500, "internal", "out of memory");
	if (json_len == len) return srv_reply_buf(c, 200, "application/json", body, len, NULL);
	char hl[24];
	snprintf(hl, sizeof hl, "%zu", json_len);
	const char *hdrs[] = { "Inference-Header-Content-Length", hl, NULL };
	return srv_reply_buf(c, 200, "application/octet-stream", body, len, hdrs);
}

static int wants_png(struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
	return a && strcasestr(a, "image/png") != NULL;
}

/* Whether items of shape s are images a PNG holds (gray or RGB). */
static int png_holds(ae_shape s)
{
	return s.rank == 3 && (s.d[0] == 1 || s.d[0] == 3);
}

/* One image (of shape s) as a PNG. */
static enum MHD_Result reply_png(const float *v, ae_shape s, struct MHD_Connection *c)
{
	const size_t size = ae_shape_size(s);
	uint8_t *pix = malloc(size), *png = NULL;
	size_t len = 0;
	ae_error err = { 0 };
	if (pix) ae_float_to_u8(pix, v, size);
	int rc = pix ? ae_png_encode(pix, s.d[0], s.d[1], s.d[2], &png, &len, &err) : -1;
	free(pix);
	if (rc) return srv_reply_error(c, 500, "internal", "PNG encoding failed: %s", err.msg);
	return srv_reply_buf(c, 200, "image/png", png, len, NULL);
}

/* Scores; with ?map=true the error maps too; one image with Accept:
 * image/png, its heatmap. The operation compares each input with its
 * reconstruction, so both have the input's shape (srv_op_offered). */
static enum MHD_Result respond_anomaly(srv_req *r, struct MHD_Connection *c)
{
	const srv_model *m = r->model;
	const srv_params *p = &r->params;
	const int n = r->job.n;
	const ae_shape img = ae_plan_in_shape(r->job.plan, r->job.op);
	const int h = img.d[1], w = img.d[2];
	const size_t hw = (size_t)h * w;
	const int png = n == 1 && wants_png(c);
	if (png && (size_t)p->scale * p->scale * hw > AE_PNG_MAX_PIXELS)
		return srv_reply_error(c, 422, "image_too_large",
		                       "scale %d makes a %dx%d heatmap, over the limit of %u pixels", p->scale,
		                       w * p->scale, h * p->scale, AE_PNG_MAX_PIXELS);
	const int kind = r->score_kind;
	const double t = srv_score_threshold(m, kind, p);
	float *scores = malloc((size_t)n * sizeof *scores);
	float *maps = png || p->map ? malloc((size_t)n * hw * sizeof *maps) : NULL;
	if (!scores || ((png || p->map) && !maps) ||
	    srv_score_answer(m, r->job.plan, kind, r->in, r->out, r->codes, n, t, scores)) {
		free(scores), free(maps);
		return srv_reply_error(c, 500, "internal", "out of memory");
	}
	if (maps) srv_error_maps(img, r->in, r->out, n, maps);
	size_t len = 0;
	if (png) {
		uint8_t *heat = NULL;
		ae_error err = { 0 };
		int rc = srv_heatmap_png(img, r->in, maps, p->scale, &heat, &len, &err);
		free(scores), free(maps);
		if (rc) return srv_reply_error(c, 500, "internal", "heatmap: %s", err.msg);
		return srv_reply_buf(c, 200, "image/png", heat, len, NULL);
	}
	char *body = maps ? srv_json_anomaly_maps(m, kind, scores, maps, n, h, w, t, p->quantile, &len)
	                  : srv_json_anomaly(m, kind, scores, n, t, p->quantile, &len);
	free(scores), free(maps);
	if (!body) return srv_reply_error(c, 500, "internal", "out of memory");
	return srv_reply_buf(c, 200, "application/json", body, len, NULL);
}

/* A worker resumed us: answer with the result. */
static enum MHD_Result respond(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	const srv_model *m = r->model;
	if (atomic_load(&r->job.state) == JOB_EXPIRED)
		return srv_reply_error(c, 504, "timeout", "no inference worker reached the request within %d ms",
		                       s->cfg.timeout_ms);
	const int n = r->job.n;
	const ae_shape out = ae_plan_out_shape(r->job.plan, r->job.op);
	size_t len = 0;
	char *body = NULL;
	switch (r->op->output) {
	case SRV_OUT_V2: return respond_v2(r, c);
	case SRV_OUT_SCORES: return respond_anomaly(r, c);
	case SRV_OUT_CODES: body = srv_json_codes(m, r->out, n, out, r->params.format, &len); break;
	default:
		if (n == 1 && png_holds(out) && wants_png(c)) return reply_png(r->out, out, c);
		body = srv_json_tensor(m, r->op->name, r->out, n, out, &len);
	}
	if (!body) return srv_reply_error(c, 500, "internal", "out of memory");
	return srv_reply_buf(c, 200, "application/json", body, len, NULL);
}

/* ------------------------------------------------------------ repository */

/* A repository call's body: empty, or a JSON object with only the
 * members named in `known` (NULL-terminated). */
static json_t *repo_body(const srv_req *r, const char *const *known, srv_fail *f)
{
	if (r->len == 0) return json_object();
	json_error_t je;
	json_t *o = json_loadb((const char *)r->body, r->len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		srv_fail_set(f, 400, "invalid_json", "the body is not a JSON object%s%s", o ? "" : ": ",
		             o ? "" : je.text);
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		int ok = 0;
		for (int i = 0; known[i]; i++)
			ok |= strcmp(key, known[i]) == 0;
		if (!ok) {
			char k[80];
			srv_text_clean(k, sizeof k, key);
			srv_fail_set(f, 400, "invalid_request", "'%s' is not a member this call takes", k);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static enum MHD_Result repo_call(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	static const char *const index_keys[] = { "ready", NULL }, *const load_keys[] = { NULL };
	srv_fail f = { 0 };
	json_t *b = repo_body(r, r->route == R_REPO_INDEX ? index_keys : load_keys, &f);
	if (!b) return srv_reply_error(c, f.status, f.code, "%s", f.msg);
	json_t *ready = json_object_get(b, "ready");
	int rc = ready && !json_is_boolean(ready)
	                 ? srv_fail_set(&f, 400, "invalid_request", "'ready' is not true or false")
	                 : 0;
	json_decref(b);
	if (rc) return srv_reply_error(c, f.status, f.code, "%s", f.msg);
	if (r->route == R_REPO_INDEX) {
		size_t len;
		char *j = srv_repo_index(s, json_is_true(ready), &len);
		return j ? srv_reply_buf(c, 200, "application/json", j, len, NULL)
		         : srv_reply_error(c, 500, "internal", "out of memory");
	}
	rc = r->route == R_REPO_LOAD ? srv_repo_load(s, r->name, &f) : srv_repo_unload(s, r->name, &f);
	if (rc) return srv_reply_error(c, f.status, f.code, "%s", f.msg);
	return srv_reply_json(c, 200, strdup("{}"));
}

static unsigned long long id_start;

static void stamp_start(void)
{
	id_start = (unsigned long long)(srv_now() * 1e6) ^ ((unsigned long long)getpid() << 40);
}

/* The client's X-Request-Id if it is a plain token, else one of ours. */
static void request_id(struct MHD_Connection *c, char id[SRV_REQUEST_ID_MAX + 1])
{
	static atomic_ullong counter;
	static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
	size_t n = h ? strlen(h) : 0;
	if (n && n <= SRV_REQUEST_ID_MAX && strspn(h, ok) == n) {
		memcpy(id, h, n + 1);
		return;
	}
	/* Unique within the process, and across restarts by the start time:
	 * (a splitmix64 of) the count, after the process's start stamp. */
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, stamp_start);
	unsigned long long x = atomic_fetch_add(&counter, 1) + id_start;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	snprintf(id, SRV_REQUEST_ID_MAX + 1, "%016llx", x);
}

/* The first callback: headers are in. Sets up the request and answers
 * everything that needs no body. */
static enum MHD_Result begin(srv_state *s, srv_req *r, struct MHD_Connection *c, const char *url, const char *method)
{
	enum MHD_Result rc = MHD_YES;
	const union MHD_ConnectionInfo *hi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	/* Errors on /v2 paths take the protocol's form, {"error": "..."}. */
	r->front = strncmp(url, "/v2", 3) == 0 && (url[3] == '/' || !url[3]) ? SRV_V2 : SRV_V1;
	if (r->sc) r->sc->front = r->front;
	if (strlen(url) > SRV_MAX_URL)
		return answered(r, srv_reply_error(c, 414, "uri_too_long", "the path is %zu bytes; the limit is %d",
		                                   strlen(url), SRV_MAX_URL));
	if (hi && hi->header_size > SRV_MAX_HEADER_BYTES)
		return answered(r, srv_reply_error(c, 431, "headers_too_large",
		                                   "the headers are %zu bytes; the limit is %d", hi->header_size,
		                                   SRV_MAX_HEADER_BYTES));
	if (!route(s, r, c, url, method, &rc)) return answered(r, rc);
	if (!r->op && !is_repo(r->route)) return answered(r, get_route(s, r, c));
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
			r->sc->front = SRV_V1;
			request_id(c, r->sc->request_id);
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
		                                   body_limit(s, r)));
	if (!r->op) return answered(r, repo_call(s, r, c));
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
	srv_access_log(s->cfg.log_format, c, r->method, r->path, status, sc ? sc->bytes : 0, dt,
	               sc ? sc->request_id : "-");
	srv_model_release(r->model);
	free(r->body);
	free(r->in);
	free(r->out);
	free(r->codes);
	srv_v2_req_free(&r->v2);
	free(r);
	*con_cls = NULL;
	srv_conn_wait(sc, W_IDLE);
	atomic_fetch_sub(&s->inflight, 1);
}
