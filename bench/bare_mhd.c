/*
 * bare_mhd: the ceiling for aeserve's HTTP numbers. The same libmicrohttpd
 * daemon configuration as aeserve (epoll thread pool, turbo), reading the
 * whole POST body and answering a short JSON, with no decoding and no model.
 *
 *   bare_mhd PORT [HTTP_THREADS]     runs until SIGINT/SIGTERM
 */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* libmicrohttpd takes a non-const pointer; it never writes a persistent buffer. */
static char REPLY[] = "{\"ok\":true}";

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **state)
{
	(void)cls, (void)url, (void)method, (void)version, (void)data;
	/* First call: a non-NULL marker so the body arrives on the next calls. */
	if (!*state) {
		*state = (void *)1;
		return MHD_YES;
	}
	if (*size) {
		*size = 0;
		return MHD_YES;
	}
	struct MHD_Response *r = MHD_create_response_from_buffer(sizeof REPLY - 1, REPLY, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bare_mhd PORT [HTTP_THREADS]\n");
		return 2;
	}
	int port = atoi(argv[1]), threads = argc > 2 ? atoi(argv[2]) : 2;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct MHD_Daemon *d = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_TURBO, (uint16_t)port,
	        NULL, NULL, handle, NULL, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT,
	        1024u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "bare_mhd: cannot listen on port %d\n", port);
		return 1;
	}
	int sig;
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	return 0;
}
