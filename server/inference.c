/*
 * An operation's request (ops.c's rows, routed by routes.c): the checks its
 * headers allow (media type, the V2 header length, query parameters,
 * whether the model offers it), its body parsed into a job on the model's
 * queue, and, once a worker has run the job, the answer in the
 * operation's form: codes, images (JSON or PNG), anomaly scores (with
 * maps or a heatmap), or the Open Inference Protocol's outputs.
 *
 * Every size here is the plan's, for the operation at hand: what a body
 * is parsed into is the engine operation's input shape, what is answered
 * its output shape; the two differ (an encode's codes, an image-to-image
 * model's other image). The job carries the plan it runs on.
 */
#define _GNU_SOURCE /* strcasestr */
#include "server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae/image.h"

/* ----------------------------------------------------------- the headers */

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

int srv_infer_check(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc)
{
	(void)s;
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

/* -------------------------------------------------------------- the body */

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

enum MHD_Result srv_infer_submit(srv_state *s, srv_req *r, struct MHD_Connection *c)
{
	if (r->len == 0) return srv_reply_error(c, 400, "empty_body", "the request has no body");
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
	if (rc) return srv_reply_error(c, f.status, f.code, "%s", f.msg);
	r->out = malloc((size_t)n * ae_plan_out_size(r->plan, op) * sizeof(float));
	if (!r->out) return srv_reply_error(c, 500, "internal", "out of memory");
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
	if (srv_enqueue(r->model, j) != 0) {
		r->phase = PH_RECEIVING;
		return srv_reply_error(c, 503, "overloaded", "model '%s' has %d requests waiting; retry shortly",
		                       r->model->name, s->cfg.queue_len);
	}
	return MHD_YES;
}

/* ------------------------------------------------------------ the answer */

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

enum MHD_Result srv_infer_respond(srv_state *s, srv_req *r, struct MHD_Connection *c)
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
