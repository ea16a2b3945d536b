/*
 * The libmicrohttpd access handler: a request's stages, in order: its
 * headers (the URL's and headers' size), its route (routes.c: 404, 405),
 * who may call it (401, 403), the model it needs (503, 404, held until
 * the request ends), its limits and headers (413; the route's check:
 * 415, 400, 422), its body (bounded), then the route's answer, which
 * for an operation queues a job and answers when a worker resumes the
 * connection (inference.c).
 *
 * A request's state lives in *con_cls from its first callback to
 * srv_completed, which alone frees it, releases the model it held, writes
 * the access log and the metrics, and takes it out of the in-flight count:
 * however a request ends (answered, timed out, its client gone), it ends
 * there once.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A request line or header block past these is refused before any work:
 * the path of a real request is under 100 bytes. (libmicrohttpd refuses
 * requests that overflow its 32 KiB connection buffer itself, with its own
 * HTML body; between these limits and that one, the answer is ours.) */
#define SRV_MAX_URL          8192
#define SRV_MAX_HEADER_BYTES 16384

/* Records that an answer is queued (or the connection must close). */
static enum MHD_Result answered(srv_req *r, enum MHD_Result rc)
{
	if (rc == MHD_YES) r->phase = PH_ANSWERED;
	return rc;
}

/* ----------------------------------------------------------------- stages */

/* The URL's and the headers' size: 414, 431. */
static int headers_fit(srv_req *r, struct MHD_Connection *c, const char *url, enum MHD_Result *rc)
{
	const union MHD_ConnectionInfo *hi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	(void)r;
	if (strlen(url) > SRV_MAX_URL) {
		*rc = srv_reply_error(c, 414, "uri_too_long", "the path is %zu bytes; the limit is %d", strlen(url),
		                      SRV_MAX_URL);
		return 0;
	}
	if (hi && hi->header_size > SRV_MAX_HEADER_BYTES) {
		*rc = srv_reply_error(c, 431, "headers_too_large", "the headers are %zu bytes; the limit is %d",
		                      hi->header_size, SRV_MAX_HEADER_BYTES);
		return 0;
	}
	return 1;
}

/* The route the path takes and its method: 404, 405. */
static int route(srv_state *s, srv_req *r, struct MHD_Connection *c, const char *url, const char *method,
                 enum MHD_Result *rc)
{
	r->route = srv_route_match(s, r, url);
	r->label = srv_label_of(r->route, r->op);
	if (!r->route) {
		*rc = srv_reply_error(c, 404, "not_found", "no route %s %.200s", method, url);
		return 0;
	}
	const int get = r->route->method == SRV_GET;
	const char *allow = get ? "GET, HEAD" : "POST";
	if (get ? strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 : strcmp(method, "POST") != 0) {
		const char *hdrs[] = { "Allow", allow, NULL };
		*rc = srv_reply_error_with(c, 405, hdrs, "method_not_allowed", "%s is not allowed on %.150s; use %s",
		                           method, url, allow);
		return 0;
	}
	return 1;
}

/* Who may ask (the route's access): with keys, every route but the open
 * ones needs one (/metrics too unless public); without keys, loopback
 * routes answer loopback only. Answers 401/403 itself and returns 0 then. */
static int allowed(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
	const int access = r->route->access;
	if (access == SRV_ACCESS_OPEN || (access == SRV_ACCESS_KEY_OR_PUBLIC && s->cfg.metrics_public)) return 1;
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
	if (access == SRV_ACCESS_LOOPBACK && !srv_client_is_loopback(c)) {
		*rc = srv_reply_error(c, 403, "forbidden",
		                      "repository calls come only from loopback unless the server has --api-keys");
		return 0;
	}
	return 1;
}

/* What the route needs loaded: 503 while models load; the model the path
 * names (or the default), held until srv_completed, and its plan: 404. */
static int hold(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
	const int needs = r->route->needs;
	if (needs == SRV_NEEDS_NOTHING) return 1;
	if (!atomic_load(&s->loaded)) {
		*rc = srv_reply_error(c, 503, "not_ready", "models are loading");
		return 0;
	}
	if (needs == SRV_NEEDS_LOADED) return 1;
	r->model = r->name[0] ? srv_model_hold(s, r->name) : srv_model_hold_default(s);
	if (!r->model || r->bad_version) {
		*rc = srv_reply_error(c, 404, "model_not_found",
		                      r->model ? "model '%s' has one version, 1" : "no model named '%s'", r->name);
		return 0;
	}
	r->plan = r->model->plan;
	return 1;
}

static size_t body_limit(const srv_state *s, const srv_req *r)
{
	return r->route->max_body ? r->route->max_body : s->cfg.body_limit;
}

/* A POST's declared length against the route's limit: 413 before the
 * body is read. */
static int length_fits(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	const size_t limit = body_limit(s, r);
	if (cl && strtoull(cl, NULL, 10) > limit) {
		*rc = srv_reply_error(c, 413, "body_too_large", "the body is %.40s bytes; the limit is %zu", cl, limit);
		return 0;
	}
	return 1;
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

/* The route's answer; a request whose job is queued answers later. */
static enum MHD_Result run(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	enum MHD_Result rc = r->route->run(s, r, c);
	return r->phase == PH_SUBMITTED ? rc : answered(r, rc);
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

/* The first callback: headers are in. Takes the request through every
 * stage that needs no body, and answers a GET. */
static enum MHD_Result begin(srv_state *s, srv_req *r, struct MHD_Connection *c, const char *url, const char *method)
{
	enum MHD_Result rc = MHD_YES;
	/* Errors on /v2 paths take the protocol's form, {"error": "..."}. */
	r->front = strncmp(url, "/v2", 3) == 0 && (url[3] == '/' || !url[3]) ? SRV_V2 : SRV_V1;
	if (r->sc) r->sc->front = r->front;
	if (!headers_fit(r, c, url, &rc) || !route(s, r, c, url, method, &rc) || !allowed(s, r, c, &rc) ||
	    !hold(s, r, c, &rc))
		return answered(r, rc);
	if (r->route->method == SRV_GET) return run(s, r, c);
	if (!length_fits(s, r, c, &rc) || (r->route->check && !r->route->check(s, r, c, &rc))) return answered(r, rc);
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
		r->label = SRV_LABEL_OTHER;
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
	if (r->phase == PH_SUBMITTED) return answered(r, srv_infer_respond(s, r, c));
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
	return run(s, r, c);
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
	srv_metrics_request(r->label, status, dt);
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
