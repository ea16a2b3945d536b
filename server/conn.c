/*
 * Connections and their deadlines. libmicrohttpd's own timeout is an idle
 * timeout: every byte restarts it, so a client sending one header byte
 * every few seconds holds its slot for ever (slowloris). Here every
 * connection carries one absolute deadline for what it waits on now:
 *
 *   accepted, no request yet          --header-timeout
 *   headers in, body arriving         --body-timeout
 *   answer queued, client reading it  --body-timeout
 *   kept alive between requests       --conn-timeout
 *   body in, inference running        none (the inference deadline answers 504)
 *
 * A reaper thread shuts down the socket of a connection past its deadline;
 * libmicrohttpd then sees the end of the stream and closes it the usual
 * way, completing its request (logged 408). The reaper works only under
 * the list lock, and a connection leaves the list (NOTIFY_CLOSED) before
 * libmicrohttpd closes its descriptor, so the reaper never touches a
 * descriptor number that has been reused.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How often the reaper looks: deadlines hold to within this. */
#define REAP_EVERY_MS 100

struct srv_conns {
	pthread_mutex_t mu;
	srv_conn *head;
	pthread_t thread;
	int started;
	atomic_int stop;
};

static atomic_long reaped[W_IDLE + 1];

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void srv_conn_wait(srv_conn *sc, int waiting)
{
	if (!sc) return;
	const srv_config *c = &sc->s->cfg;
	int secs = waiting == W_HEADERS                     ? c->header_timeout_s
	           : waiting == W_BODY || waiting == W_SEND ? c->body_timeout_s
	           : waiting == W_IDLE                      ? c->conn_timeout_s
	                                                    : 0;
	atomic_store(&sc->waiting, waiting);
	atomic_store(&sc->deadline_ms, secs ? now_ms() + secs * 1000LL : 0);
}

srv_conn *srv_conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

int srv_conns_waiting(srv_state *s, int waiting)
{
	srv_conns *cs = s->conns;
	int n = 0;
	pthread_mutex_lock(&cs->mu);
	for (srv_conn *sc = cs->head; sc; sc = sc->next)
		n += atomic_load(&sc->waiting) == waiting && !atomic_load(&sc->reaped);
	pthread_mutex_unlock(&cs->mu);
	return n;
}

long srv_conns_reaped(int waiting)
{
	return waiting >= 0 && waiting <= W_IDLE ? atomic_load(&reaped[waiting]) : 0;
}

void srv_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
	srv_state *s = cls;
	srv_conns *cs = s->conns;
	srv_conn *sc = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		/* Without its state a connection could not be timed out: refuse it
		 * by closing its socket at once. */
		if (!(sc = calloc(1, sizeof *sc))) {
			if (ci) shutdown(ci->connect_fd, SHUT_RDWR);
			return;
		}
		sc->s = s;
		sc->fd = ci ? ci->connect_fd : -1;
		srv_conn_wait(sc, W_HEADERS);
		pthread_mutex_lock(&cs->mu);
		sc->next = cs->head;
		if (cs->head) cs->head->prev = sc;
		cs->head = sc;
		pthread_mutex_unlock(&cs->mu);
		*socket_context = sc;
		return;
	}
	if (!sc) return;
	pthread_mutex_lock(&cs->mu);
	if (sc->prev)
		sc->prev->next = sc->next;
	else
		cs->head = sc->next;
	if (sc->next) sc->next->prev = sc->prev;
	pthread_mutex_unlock(&cs->mu);
	free(sc);
	*socket_context = NULL;
}

static void *reaper(void *arg)
{
	srv_conns *cs = arg;
	while (!atomic_load(&cs->stop)) {
		usleep(REAP_EVERY_MS * 1000);
		long long now = now_ms();
		pthread_mutex_lock(&cs->mu);
		for (srv_conn *sc = cs->head; sc; sc = sc->next) {
			long long d = atomic_load(&sc->deadline_ms);
			if (d == 0 || now < d || atomic_load(&sc->reaped) || sc->fd < 0) continue;
			int w = atomic_load(&sc->waiting);
			atomic_store(&sc->reaped, w);
			atomic_fetch_add(&reaped[w], 1);
			shutdown(sc->fd, SHUT_RDWR);
		}
		pthread_mutex_unlock(&cs->mu);
	}
	return NULL;
}

int srv_conns_start(srv_state *s)
{
	srv_conns *cs = calloc(1, sizeof *cs);
	if (!cs) return -1;
	pthread_mutex_init(&cs->mu, NULL);
	s->conns = cs;
	if (pthread_create(&cs->thread, NULL, reaper, cs) != 0) return -1;
	cs->started = 1;
	return 0;
}

/* After the daemon has stopped: every connection is closed by then. */
void srv_conns_stop(srv_state *s)
{
	srv_conns *cs = s->conns;
	if (!cs) return;
	atomic_store(&cs->stop, 1);
	if (cs->started) pthread_join(cs->thread, NULL);
	pthread_mutex_destroy(&cs->mu);
	free(cs);
	s->conns = NULL;
}

int srv_client_is_loopback(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!ci || !ci->client_addr) return 0;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET) return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family != AF_INET6) return 0;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
	return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}
