/*
 * Every response goes out through these helpers, so every error body has
 * the same shape: {"error": {"code": "...", "message": "..."}}.
 */
#include "server.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Replies happen on the HTTP thread that handles the request, so the
 * access log can read them back without threading them through every call. */
static _Thread_local unsigned last_status;
static _Thread_local size_t last_bytes;

void srv_reply_last(unsigned *status, size_t *bytes)
{
	*status = last_status;
	*bytes = last_bytes;
}

enum MHD_Result srv_reply_buf(struct MHD_Connection *conn, unsigned status, const char *ctype,
                              void *buf, size_t len, const char **headers)
{
	last_status = status;
	last_bytes = len;
	struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	for (int i = 0; headers && headers[i]; i += 2)
		MHD_add_response_header(r, headers[i], headers[i + 1]);
	enum MHD_Result rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

enum MHD_Result srv_reply_json(struct MHD_Connection *conn, unsigned status, char *json)
{
	if (!json)
		return srv_reply_error(conn, 500, "internal", "out of memory building the response");
	return srv_reply_buf(conn, status, "application/json", json, strlen(json), NULL);
}

static enum MHD_Result reply_error_v(struct MHD_Connection *conn, unsigned status, const char **headers,
                                     const char *code, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return MHD_NO;
	return srv_reply_buf(conn, status, "application/json", body, strlen(body), headers);
}

enum MHD_Result srv_reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                const char *fmt, ...)
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
