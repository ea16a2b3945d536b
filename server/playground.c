/*
 * The playground page: GET / and its files under /ui/, embedded in the
 * binary at build time (server/web/, by server/web/embed.c), so it works
 * with no network and no files beside the binary. --no-playground turns
 * it off (404).
 *
 * Each file is answered from the binary's own memory with its ETag (a
 * hash of its bytes), revalidated on every use (Cache-Control: no-cache;
 * If-None-Match gets a 304) so a new build is seen at once, and with a
 * Content-Security-Policy that lets the page load nothing, and talk to
 * nothing, outside this server.
 */
#include "server.h"

#include <stdint.h>
#include <string.h>

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                          "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const srv_asset *srv_asset_find(const char *path)
{
	for (const srv_asset *a = srv_assets; a->path; a++)
		if (strcmp(a->path, path) == 0) return a;
	return NULL;
}

/* Whether If-None-Match (a list of entity tags, or "*") names etag; a
 * weak tag W/"x" matches "x", as RFC 9110 asks of GET. */
static int etag_matches(const char *inm, const char *etag)
{
	size_t n = strlen(etag);
	for (const char *p = inm; p && *p;) {
		p += strspn(p, " \t,");
		if (*p == '*') return 1;
		if (strncmp(p, "W/", 2) == 0) p += 2;
		if (strncmp(p, etag, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t')) return 1;
		p = strchr(p, ',');
	}
	return 0;
}

enum MHD_Result srv_asset_reply(struct MHD_Connection *c, const srv_asset *a)
{
	const char *headers[] = { "ETag",
		                  a->etag,
		                  "Cache-Control",
		                  "no-cache",
		                  "Content-Security-Policy",
		                  csp,
		                  "X-Content-Type-Options",
		                  "nosniff",
		                  "Referrer-Policy",
		                  "no-referrer",
		                  NULL };
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm && etag_matches(inm, a->etag)) return srv_reply_static(c, 304, a->type, "", 0, headers);
	return srv_reply_static(c, 200, a->type, a->data, a->len, headers);
}
