/*
 * openloop: an open-loop HTTP load generator. Requests are due at a fixed
 * rate (exponential gaps, a Poisson process, from a fixed seed) whatever
 * the replies do, and each one's latency runs from when it was due, not
 * from when a free connection let it go: a server that stalls is charged
 * for every request that waited behind the stall. A closed loop (wrk: each
 * connection sends its next request when the last one is answered) slows
 * down with the server and hides exactly that ("coordinated omission").
 *
 * One thread, epoll, keep-alive connections opened as needed (up to
 * --conns); a due request takes an idle connection, else opens one, else
 * waits in order for the next to come free. Prints one JSON object: the
 * rate asked and achieved, answers, errors, and the latency percentiles
 * p50, p90, p99, p99.9 and max in ms.
 *
 *   openloop PORT PATH FILE CONTENT_TYPE ACCEPT RATE SECONDS [CONNS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS  4096
#define HEAD_LIMIT 8192
/* Requests still unanswered this long after the run are counted as
 * timeouts. */
#define DRAIN_SECS 5.0

typedef struct conn {
	int fd;
	int busy;    /* a request is out on it */
	double due;  /* when that request was due */
	size_t sent; /* bytes of the request written */
	char head[HEAD_LIMIT];
	size_t got;     /* bytes of the answer's head read */
	long body_left; /* -1 until the head is complete */
	int status;
} conn;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

/* Uniform in (0, 1): xorshift64*, enough for arrival gaps. */
static double uniform(void)
{
	rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
	return ((rng_state * 2685821657736338717ull >> 11) + 0.5) / 9007199254740992.0;
}

static int open_conn(int port, int ep, conn *c)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0) return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	memset(c, 0, sizeof *c);
	c->fd = fd;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	return 0;
}

static void close_conn(int ep, conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->busy = 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The state of a run. */
typedef struct run {
	const char *req;
	size_t req_len;
	double *lat; /* answered requests' latencies, seconds */
	long n_lat, cap_lat;
	long ok, bad_status, conn_errors;
} run;

static void start_request(conn *c, double due)
{
	c->busy = 1;
	c->due = due;
	c->sent = 0;
	c->got = 0;
	c->body_left = -1;
	c->status = 0;
}

/* Writes what is left of c's request; -1 on a broken connection. */
static int pump_write(conn *c, const run *r)
{
	while (c->sent < r->req_len) {
		ssize_t k = write(c->fd, r->req + c->sent, r->req_len - c->sent);
		if (k > 0) {
			c->sent += (size_t)k;
			continue;
		}
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) return 0;
		return -1;
	}
	return 0;
}

/* Parses a complete head: status and Content-Length. */
static int parse_head(conn *c, size_t head_len)
{
	c->head[head_len - 1] = 0;
	if (sscanf(c->head, "HTTP/1.%*d %d", &c->status) != 1) return -1;
	long len = -1;
	for (char *line = strstr(c->head, "\r\n"); line; line = strstr(line + 2, "\r\n"))
		if (strncasecmp(line + 2, "Content-Length:", 15) == 0) len = strtol(line + 17, NULL, 10);
	if (len < 0) return -1;
	/* what of the body came with the head */
	long extra = (long)(c->got - head_len);
	c->body_left = len - extra;
	return 0;
}

/* Reads what has come of c's answer; 1 when it is complete, -1 on error. */
static int pump_read(conn *c)
{
	char buf[65536];
	for (;;) {
		ssize_t k;
		if (c->body_left < 0) {
			k = read(c->fd, c->head + c->got, sizeof c->head - 1 - c->got);
			if (k > 0) {
				c->got += (size_t)k;
				c->head[c->got] = 0;
				char *end = strstr(c->head, "\r\n\r\n");
				if (end) {
					if (parse_head(c, (size_t)(end - c->head) + 4)) return -1;
				} else if (c->got >= sizeof c->head - 1) {
					return -1;
				}
			}
		} else if (c->body_left > 0) {
			k = read(c->fd, buf, sizeof buf < (size_t)c->body_left ? sizeof buf : (size_t)c->body_left);
			if (k > 0) c->body_left -= k;
		} else {
			return 1;
		}
		if (c->body_left == 0) return 1;
		if (k == 0) return -1;
		if (k < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
}

static void record(run *r, double lat)
{
	if (r->n_lat == r->cap_lat) {
		r->cap_lat = r->cap_lat ? 2 * r->cap_lat : 65536;
		double *p = realloc(r->lat, (size_t)r->cap_lat * sizeof *p);
		if (!p) {
			fprintf(stderr, "openloop: out of memory\n");
			exit(1);
		}
		r->lat = p;
	}
	r->lat[r->n_lat++] = lat;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

/* The q quantile of the latencies in ms as JSON (null if none). */
static const char *pct(const run *r, double q, char *buf, size_t cap)
{
	if (r->n_lat == 0) return "null";
	long i = (long)ceil(q * (double)r->n_lat) - 1;
	snprintf(buf, cap, "%.3f", r->lat[i < 0 ? 0 : i >= r->n_lat ? r->n_lat - 1 : i] * 1e3);
	return buf;
}

int main(int argc, char **argv)
{
	if (argc < 8 || argc > 9) {
		fprintf(stderr, "usage: openloop PORT PATH FILE CONTENT_TYPE ACCEPT RATE SECONDS [CONNS]\n");
		return 2;
	}
	const int port = atoi(argv[1]);
	const double rate = atof(argv[6]), secs = atof(argv[7]);
	const int max_conns = argc > 8 ? atoi(argv[8]) : 512;
	if (port < 1 || port > 65535 || !(rate > 0) || !(secs > 0) || max_conns < 1 || max_conns > MAX_CONNS) {
		fprintf(stderr, "openloop: PORT 1..65535, RATE and SECONDS > 0, CONNS 1..%d\n", MAX_CONNS);
		return 2;
	}
	size_t body_len;
	char *body = read_file(argv[3], &body_len);
	if (!body) {
		fprintf(stderr, "openloop: cannot read %s\n", argv[3]);
		return 2;
	}
	char head[1024];
	int hl = snprintf(head, sizeof head,
	                  "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\nAccept: %s\r\n"
	                  "Content-Length: %zu\r\n\r\n",
	                  argv[2], port, argv[4], argv[5], body_len);
	run r = { 0 };
	r.req_len = (size_t)hl + body_len;
	char *req = malloc(r.req_len);
	memcpy(req, head, (size_t)hl);
	memcpy(req + hl, body, body_len);
	r.req = req;
	conn *conns = calloc((size_t)max_conns, sizeof *conns);
	int n_conns = 0, ep = epoll_create1(0);
	/* due times of requests waiting for a connection (a ring) */
	const long wait_cap = (long)(rate * secs) + 16;
	double *waiting = malloc((size_t)wait_cap * sizeof *waiting);
	long w_head = 0, w_tail = 0, issued = 0, late = 0;
	const double t0 = now() + 0.01, t_end = t0 + secs;
	double next = t0;
	struct epoll_event evs[256];
	for (;;) {
		double t = now();
		/* every request due by now joins the line */
		while (next <= t && next < t_end && w_tail < wait_cap) {
			waiting[w_tail++] = next;
			issued++;
			next += -log(uniform()) / rate;
		}
		/* the line takes idle connections, or new ones */
		while (w_head < w_tail) {
			conn *c = NULL;
			for (int i = 0; i < n_conns && !c; i++)
				if (conns[i].fd >= 0 && !conns[i].busy) c = &conns[i];
			for (int i = 0; i < n_conns && !c; i++)
				if (conns[i].fd < 0 && open_conn(port, ep, &conns[i]) == 0) c = &conns[i];
			if (!c && n_conns < max_conns && open_conn(port, ep, &conns[n_conns]) == 0)
				c = &conns[n_conns++];
			if (!c) break;
			if (t - waiting[w_head] > 1e-3) late++;
			start_request(c, waiting[w_head++]);
			if (pump_write(c, &r)) {
				r.conn_errors++;
				close_conn(ep, c);
			}
		}
		int busy = 0;
		for (int i = 0; i < n_conns; i++)
			busy += conns[i].fd >= 0 && conns[i].busy;
		if (t >= t_end && w_head == w_tail && (busy == 0 || t > t_end + DRAIN_SECS)) break;
		double wait_s = next < t_end ? next - t : 0.001;
		int timeout_ms = wait_s <= 0 ? 0 : (int)ceil(wait_s * 1e3);
		if (timeout_ms > 10) timeout_ms = 10;
		int ne = epoll_wait(ep, evs, 256, timeout_ms);
		double tr = now();
		for (int e = 0; e < ne; e++) {
			conn *c = evs[e].data.ptr;
			if (c->fd < 0 || !c->busy) {
				if (c->fd >= 0 && (evs[e].events & (EPOLLHUP | EPOLLERR))) close_conn(ep, c);
				continue;
			}
			int rc = pump_write(c, &r);
			int done = rc ? -1 : pump_read(c);
			if (done == 1) {
				if (c->status == 200) {
					r.ok++;
					record(&r, tr - c->due);
				} else {
					r.bad_status++;
				}
				c->busy = 0;
			} else if (done < 0) {
				r.conn_errors++;
				close_conn(ep, c);
			}
		}
	}
	long unanswered = 0;
	for (int i = 0; i < n_conns; i++)
		unanswered += conns[i].fd >= 0 && conns[i].busy;
	unanswered += w_tail - w_head;
	qsort(r.lat, (size_t)r.n_lat, sizeof *r.lat, cmp_double);
	char b[5][32];
	printf("{\"rate_asked\": %.1f, \"seconds\": %.1f, \"issued\": %ld, \"answered_200\": %ld, \"other_status\": %ld, "
	       "\"connection_errors\": %ld, \"timeouts\": %ld, \"sent_late_over_1ms\": %ld, \"connections\": %d, "
	       "\"rate_answered\": %.1f, \"p50_ms\": %s, \"p90_ms\": %s, \"p99_ms\": %s, \"p999_ms\": %s, "
	       "\"max_ms\": %s}\n",
	       rate, secs, issued, r.ok, r.bad_status, r.conn_errors, unanswered, late, n_conns, r.ok / secs,
	       pct(&r, 0.5, b[0], sizeof b[0]), pct(&r, 0.9, b[1], sizeof b[1]), pct(&r, 0.99, b[2], sizeof b[2]),
	       pct(&r, 0.999, b[3], sizeof b[3]), pct(&r, 1.0, b[4], sizeof b[4]));
	for (int i = 0; i < n_conns; i++)
		if (conns[i].fd >= 0) close(conns[i].fd);
	close(ep);
	free(conns), free(waiting), free(req), free(body), free(r.lat);
	return 0;
}
