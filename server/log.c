/*
 * One access-log line per request on stdout: text or JSON lines. The
 * method and path are the client's bytes: JSON lines escape them and keep
 * them valid UTF-8; text lines show control characters and invalid bytes
 * as '?' and U+FFFD (and quotes as ') so a line is always one line.
 */
#include "server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <time.h>

static void client_addr(struct MHD_Connection *conn, char *buf, size_t cap)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(buf, cap, "-");
	if (!ci || !ci->client_addr) return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)cap);
}

void srv_access_log(int format, struct MHD_Connection *conn, const char *method, const char *path, unsigned status,
                    size_t bytes, double seconds, const char *request_id)
{
	if (format == SRV_LOG_NONE) return;
	char addr[64], ts[32], m[64], p[1024];
	client_addr(conn, addr, sizeof addr);
	time_t now = time(NULL);
	struct tm tm;
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	if (format == SRV_LOG_JSON) {
		srv_json_escape(m, sizeof m, method);
		srv_json_escape(p, sizeof p, path);
		printf("{\"time\":\"%s\",\"client\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%u,"
		       "\"bytes\":%zu,\"duration_s\":%.6f,\"request_id\":\"%s\"}\n",
		       ts, addr, m, p, status, bytes, seconds, request_id);
	} else {
		srv_text_clean(m, sizeof m, method);
		srv_text_clean(p, sizeof p, path);
		for (char *q = p; *q; q++)
			if (*q == '"') *q = '\''; /* the path is quoted on the line */
		printf("%s %s \"%s %s\" %u %zu %.6f %s\n", ts, addr, m, p, status, bytes, seconds, request_id);
	}
	fflush(stdout);
}
