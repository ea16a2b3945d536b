/*
 * Every route aeserve answers, one row each: its path pattern, method,
 * who may call it, what must be loaded first, its body limit, and the
 * functions that check its headers and answer it. http.c walks a request
 * through these stages in that order; the metric label of a route is its
 * row's (or, for an operation's routes, the operation's: ops.c). A new
 * route is a row here and its answer.
 *
 * The answers of the routes that run no inference live here too: health,
 * metrics, model metadata, the repository calls.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ------------------------------------------------------------- answers */

static enum MHD_Result json_or_oom(struct MHD_Connection *c, char *json, size_t len)
{
	return json ? srv_reply_buf(c, 200, "application/json", json, len, NULL)
	            : srv_reply_error(c, 500, "internal", "out of memory");
}

static int ready(const srv_state *s)
{
	return atomic_load(&s->loaded) && !atomic_load(&s->draining);
}

/* A readiness answer: body while ready, else 503. */
static enum MHD_Result when_ready(const srv_state *s, struct MHD_Connection *c, const char *body)
{
	return ready(s) ? srv_reply_json(c, 200, strdup(body))
	                : srv_reply_error(c, 503, "not_ready", "models are loading or the server is draining");
}

static enum MHD_Result get_livez(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	(void)s, (void)r;
	return srv_reply_json(c, 200, strdup("{\"status\":\"alive\"}"));
}

static enum MHD_Result get_readyz(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	(void)r;
	return when_ready(s, c, "{\"status\":\"ready\"}");
}

static enum MHD_Result get_v2_live(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	(void)s, (void)r;
	return srv_reply_json(c, 200, strdup("{\"live\":true}"));
}

static enum MHD_Result get_v2_ready(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	(void)r;
	return when_ready(s, c, "{\"ready\":true}");
}

static enum MHD_Result get_metrics(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	(void)r;
	size_t len;
	char *m = srv_metrics_render(s, &len);
	return m ? srv_reply_buf(c, 200, "text/plain; version=0.0.4; charset=utf-8", m, len, NULL)
	         : srv_reply_error(c, 500, "internal", "out of memory");
}

static enum MHD_Result get_models(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	(void)r;
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

static enum MHD_Result get_model(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	size_t len = 0;
	char *j = srv_json_model(r->model, strcmp(r->model->name, s->default_name) == 0, &len);
	return json_or_oom(c, j, len);
}

static enum MHD_Result get_v2_server(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	(void)s, (void)r;
	size_t len = 0;
	char *j = srv_v2_server_json(&len);
	return json_or_oom(c, j, len);
}

static enum MHD_Result get_v2_model(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	(void)s;
	size_t len = 0;
	char *j = srv_v2_model_json(r->model, &len);
	return json_or_oom(c, j, len);
}

static enum MHD_Result get_v2_model_ready(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	if (atomic_load(&s->draining)) return srv_reply_error(c, 503, "not_ready", "the server is draining");
	char j[128];
	snprintf(j, sizeof j, "{\"name\":\"%s\",\"ready\":true}", r->model->name);
	return srv_reply_json(c, 200, strdup(j));
}

static enum MHD_Result get_page(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	(void)s;
	return srv_asset_reply(c, r->asset);
}

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

static enum MHD_Result repo_index(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	static const char *const keys[] = { "ready", NULL };
	srv_fail f = { 0 };
	json_t *b = repo_body(r, keys, &f);
	if (!b) return srv_reply_error(c, f.status, f.code, "%s", f.msg);
	json_t *ready_only = json_object_get(b, "ready");
	int bad = ready_only && !json_is_boolean(ready_only), only = json_is_true(ready_only);
	json_decref(b);
	if (bad) return srv_reply_error(c, 400, "invalid_request", "'ready' is not true or false");
	size_t len = 0;
	char *j = srv_repo_index(s, only, &len);
	return json_or_oom(c, j, len);
}

static enum MHD_Result repo_load_or_unload(srv_state *s, srv_req *r, struct MHD_Connection *c,
                                           int (*act)(srv_state *, const char *, srv_fail *))
{
	static const char *const keys[] = { NULL };
	srv_fail f = { 0 };
	json_t *b = repo_body(r, keys, &f);
	if (!b) return srv_reply_error(c, f.status, f.code, "%s", f.msg);
	json_decref(b);
	if (act(s, r->name, &f)) return srv_reply_error(c, f.status, f.code, "%s", f.msg);
	return srv_reply_json(c, 200, strdup("{}"));
}

static enum MHD_Result repo_load(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	return repo_load_or_unload(s, r, c, srv_repo_load);
}

static enum MHD_Result repo_unload(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	return repo_load_or_unload(s, r, c, srv_repo_unload);
}

/* --------------------------------------------------------------- the table */

#define GET      SRV_GET
#define POST     SRV_POST
#define OPEN     SRV_ACCESS_OPEN
#define KEY      SRV_ACCESS_KEY
#define LOOPBACK SRV_ACCESS_LOOPBACK
#define NOTHING  SRV_NEEDS_NOTHING
#define LOADED   SRV_NEEDS_LOADED
#define MODEL    SRV_NEEDS_MODEL

/* In the order of their metric labels (after the operations'); a path
 * takes the first row whose pattern it matches. */
const srv_route srv_routes[] = {
	/* label                pattern                                          method access  needs    body */
	{ NULL, "/v1/models/{model}/{op}", POST, KEY, MODEL, 0, srv_infer_check, srv_infer_submit },
	{ NULL, "/v1/{op}", POST, KEY, MODEL, 0, srv_infer_check, srv_infer_submit },
	{ NULL, "/v2/models/{model}[/versions/{version}]/{op}", POST, KEY, MODEL, 0, srv_infer_check,
	  srv_infer_submit },
	{ "models", "/v1/models", GET, KEY, LOADED, 0, NULL, get_models },
	{ "model", "/v1/models/{model}", GET, KEY, MODEL, 0, NULL, get_model },
	{ "livez", "/livez", GET, OPEN, NOTHING, 0, NULL, get_livez },
	{ "readyz", "/readyz", GET, OPEN, NOTHING, 0, NULL, get_readyz },
	{ "metrics", "/metrics", GET, SRV_ACCESS_KEY_OR_PUBLIC, NOTHING, 0, NULL, get_metrics },
	{ "v2_server", "/v2", GET, KEY, NOTHING, 0, NULL, get_v2_server },
	{ "v2_live", "/v2/health/live", GET, OPEN, NOTHING, 0, NULL, get_v2_live },
	{ "v2_ready", "/v2/health/ready", GET, OPEN, NOTHING, 0, NULL, get_v2_ready },
	{ "v2_model", "/v2/models/{model}[/versions/{version}]", GET, KEY, MODEL, 0, NULL, get_v2_model },
	{ "v2_model_ready", "/v2/models/{model}[/versions/{version}]/ready", GET, KEY, MODEL, 0, NULL,
	  get_v2_model_ready },
	{ "repository_index", "/v2/repository/index", POST, LOOPBACK, LOADED, SRV_MAX_REPO_BODY, NULL, repo_index },
	{ "repository_load", "/v2/repository/models/{model}/load", POST, LOOPBACK, LOADED, SRV_MAX_REPO_BODY, NULL,
	  repo_load },
	{ "repository_unload", "/v2/repository/models/{model}/unload", POST, LOOPBACK, LOADED, SRV_MAX_REPO_BODY, NULL,
	  repo_unload },
	/* the page must load to ask for a key; it holds no data */
	{ "page", "{asset}", GET, OPEN, NOTHING, 0, NULL, get_page },
};
const int srv_n_routes = sizeof srv_routes / sizeof *srv_routes;
_Static_assert(sizeof srv_routes / sizeof *srv_routes <= SRV_MAX_ROUTES, "more routes than metric labels for them");

int srv_label_of(const srv_route *rt, const srv_opdef *op)
{
	if (!rt) return SRV_LABEL_OTHER;
	return rt->label ? SRV_MAX_OPS + (int)(rt - srv_routes) : (int)(op - srv_ops);
}

const char *srv_label_name(int label)
{
	if (label == SRV_LABEL_OTHER) return "other";
	if (label >= 0 && label < srv_n_ops) return srv_ops[label].name;
	if (label >= SRV_MAX_OPS && label < SRV_MAX_OPS + srv_n_routes) return srv_routes[label - SRV_MAX_OPS].label;
	return NULL;
}

/* ------------------------------------------------------------- matching */

/* What a pattern's captures took from the path. */
typedef struct captures {
	char name[80];
	char version[16];
	const srv_opdef *op;
	const srv_asset *asset;
} captures;

/* The segment at p up to the next '/' into buf (cap bytes; a longer one
 * is cut, and so names no model and says so); returns what follows it.
 * (Every request is matched against every pattern before it: no printf.) */
static const char *segment(const char *p, char *buf, size_t cap)
{
	size_t len = strcspn(p, "/"), n = len < cap ? len : cap - 1;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return p + len;
}

/* The position just past the ']' that closes the group opened at pat. */
static const char *group_end(const char *pat)
{
	const char *e = strchr(pat, ']');
	return e ? e + 1 : pat + strlen(pat);
}

static int match_at(const srv_state *s, int front, const char *pat, const char *path, captures *cap)
{
	while (*pat) {
		if (*pat == ']') {
			pat++;
			continue;
		}
		if (*pat == '[') {
			/* the group and the rest, else the rest without it */
			captures saved = *cap;
			if (match_at(s, front, pat + 1, path, cap)) return 1;
			*cap = saved;
			pat = group_end(pat);
			continue;
		}
		if (*pat != '{') {
			if (*pat++ != *path++) return 0;
			continue;
		}
		size_t n = strcspn(pat, "}");
		char seg[80];
		if (strncmp(pat, "{asset}", n + 1) == 0) {
			cap->asset = s->cfg.no_playground ? NULL : srv_asset_find(path);
			return cap->asset != NULL;
		}
		path = segment(path, seg, sizeof seg);
		if (!seg[0]) return 0;
		if (strncmp(pat, "{model}", n + 1) == 0)
			memcpy(cap->name, seg, strlen(seg) + 1);
		else if (strncmp(pat, "{version}", n + 1) == 0)
			segment(seg, cap->version, sizeof cap->version);
		else if (strncmp(pat, "{op}", n + 1) != 0 || !(cap->op = srv_op_find(front, seg)))
			return 0;
		pat += n + 1;
	}
	return *path == '\0';
}

const srv_route *srv_route_match(const srv_state *s, srv_req *r, const char *path)
{
	_Static_assert(sizeof r->name >= sizeof((captures *)0)->name, "a model name fits the request's");
	for (int i = 0; i < srv_n_routes; i++) {
		captures cap = { .name = "", .version = "" };
		if (!match_at(s, r->front, srv_routes[i].pattern, path, &cap)) continue;
		memcpy(r->name, cap.name, strlen(cap.name) + 1);
		r->bad_version = cap.version[0] && strcmp(cap.version, "1") != 0;
		r->op = cap.op;
		r->asset = cap.asset;
		return &srv_routes[i];
	}
	return NULL;
}
