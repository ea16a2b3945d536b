/*
 * One access-log line per request on stdout: text or JSON lines.
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
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)cap);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)cap);
}

void srv_access_log(int format, struct MHD_Connection *conn, const char *method, const char *path,
                    unsigned status, size_t bytes, double seconds)
{
	if (format == SRV_LOG_NONE)
		return;
	char addr[64], ts[32];
	client_addr(conn, addr, sizeof addr);
	time_t now = time(NULL);
	struct tm tm;
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	/* The path is the client's: keep it out of the JSON syntax. */
	char safe[256];
	size_t j = 0;
	for (size_t i = 0; path[i] && j < sizeof safe - 1; i++)
		safe[j++] = (path[i] == '"' || path[i] == '\\' || (unsigned char)path[i] < 0x20) ? '_' : path[i];
	safe[j] = '\0';
	if (format == SRV_LOG_JSON)
		printf("{\"time\":\"%s\",\"client\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"status\":%u,"
		       "\"bytes\":%zu,\"duration_s\":%.6f}\n", ts, addr, method, safe, status, bytes, seconds);
	else
		printf("%s %s \"%s %s\" %u %zu %.6f\n", ts, addr, method, safe, status, bytes, seconds);
	fflush(stdout);
}
