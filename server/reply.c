/*
 * Every response goes out through these helpers, so every error body has
 * the same shape, {"error": {"code": "...", "message": "..."}} (on /v2,
 * the protocol's {"error": "..."}), every answer carries the request's
 * X-Request-Id, every
 * answer is recorded on its connection (status and size, for the log and
 * metrics) and starts the deadline for the client to take it, and while
 * the server drains every answer closes its connection.
 */
#include "server.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An error body that needs no allocation, for when building one fails
 * (libmicrohttpd takes a non-const pointer; it never writes a persistent
 * buffer). */
static char oom_body[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status, const char *ctype, struct MHD_Response *r,
                             size_t len, const char **headers)
{
	srv_conn *sc = srv_conn_of(conn);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	for (int i = 0; headers && headers[i]; i += 2)
		MHD_add_response_header(r, headers[i], headers[i + 1]);
	if (sc && sc->request_id[0]) MHD_add_response_header(r, "X-Request-Id", sc->request_id);
	/* Keep-alive clients learn to go elsewhere with their next request. */
	if (sc && atomic_load(&sc->s->draining)) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	if (sc && rc == MHD_YES) {
		sc->status = status;
		sc->bytes = len;
		srv_conn_wait(sc, W_SEND);
	}
	return rc;
}

enum MHD_Result srv_reply_buf(struct MHD_Connection *conn, unsigned status, const char *ctype, void *buf, size_t len,
                              const char **headers)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(buf);
		r = MHD_create_response_from_buffer(sizeof oom_body - 1, oom_body, MHD_RESPMEM_PERSISTENT);
		if (!r) return MHD_NO;
		return queue(conn, 500, "application/json", r, sizeof oom_body - 1, NULL);
	}
	return queue(conn, status, ctype, r, len, headers);
}

enum MHD_Result srv_reply_static(struct MHD_Connection *conn, unsigned status, const char *ctype, const void *buf,
                                 size_t len, const char **headers)
{
	/* libmicrohttpd takes a non-const pointer but never writes a
	 * persistent buffer. */
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)buf, MHD_RESPMEM_PERSISTENT);
	return r ? queue(conn, status, ctype, r, len, headers) : MHD_NO;
}

enum MHD_Result srv_reply_json(struct MHD_Connection *conn, unsigned status, char *json)
{
	if (!json) return srv_reply_error(conn, 500, "internal", "out of memory building the response");
	return srv_reply_buf(conn, status, "application/json", json, strlen(json), NULL);
}

static enum MHD_Result reply_error_v(struct MHD_Connection *conn, unsigned status, const char **headers,
                                     const char *code, const char *fmt, va_list ap)
{
	char raw[512], msg[700];
	vsnprintf(raw, sizeof raw, fmt, ap);
	/* Messages quote paths, parameters and media types: any bytes. */
	srv_text_clean(msg, sizeof msg, raw);
	/* The Open Inference Protocol's errors are {"error": "message"}. */
	const srv_conn *sc = srv_conn_of(conn);
	json_t *o = sc && sc->front == SRV_V2 ? json_pack("{s:s}", "error", msg)
	                                      : json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body) {
		struct MHD_Response *r = MHD_create_response_from_buffer(sizeof oom_body - 1, oom_body,
		                                                         MHD_RESPMEM_PERSISTENT);
		return r ? queue(conn, 500, "application/json", r, sizeof oom_body - 1, NULL) : MHD_NO;
	}
	return srv_reply_buf(conn, status, "application/json", body, strlen(body), headers);
}

enum MHD_Result srv_reply_error(struct MHD_Connection *conn, unsigned status, const char *code, const char *fmt, ...)
{
	static const char *retry[] = { "Retry-After", "1", NULL };
	va_list ap;
	va_start(ap, fmt);
	enum MHD_Result rc = reply_error_v(conn, status, status == 503 ? retry : NULL, code, fmt, ap);
	va_end(ap);
	return rc;
}

enum MHD_Result srv_reply_error_with(struct MHD_Connection *conn, unsigned status, const char **headers,
                                     const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	enum MHD_Result rc = reply_error_v(conn, status, headers, code, fmt, ap);
	va_end(ap);
	return rc;
}
