/*
 * hostile: HTTP clients that misbehave, over raw sockets, for the
 * reliability tests and the soak. Every subcommand prints one summary line
 * (key=value words) that the shell tests read; none of them judges the
 * server itself, except where the exit status says so.
 *
 *   hostile request PORT METHOD PATH [CTYPE FILE]
 *       one request; prints status=, ms=, bytes= and the body on stderr.
 *       status=0 means the connection ended without an answer.
 *   hostile trickle PORT N SECONDS INTERVAL_MS
 *       N connections, each sending one byte of a request's headers every
 *       INTERVAL_MS; prints how many the server closed and when.
 *   hostile halfclose PORT PATH CTYPE FILE N
 *       N requests, each followed by shutdown(SHUT_WR); prints how many
 *       got an answer and how many got none.
 *   hostile abort PORT PATH CTYPE FILE N
 *       N requests cut off at a random point (mid-headers, mid-body, after
 *       the body, while the answer comes) by a reset.
 *   hostile slowbody PORT PATH CTYPE FILE SECONDS
 *       the headers at once, then the body spread over SECONDS.
 *   hostile hold PORT N SECONDS
 *       N connections that send nothing, for SECONDS.
 *   hostile soak PORT SECONDS THREADS TRICKLERS SPEC [PID]
 *       mixed traffic for SECONDS from THREADS clients (keep-alive), plus
 *       TRICKLERS connections trickling header bytes (reopened when the
 *       server closes them). Each line of SPEC is one kind of request:
 *         WEIGHT EXPECT METHOD PATH CTYPE FILE ACCEPT
 *       ('-' for none). EXPECT 200: the answer must be 200 and equal the
 *       one fetched before the load; another status: that status; "half":
 *       sent, then shutdown(SHUT_WR); "abort": cut at a random point.
 *       Prints a line every 10 s and a summary; exits 1 if a valid request
 *       failed or a bad one got a 5xx or no answer. With the server's PID,
 *       every 30 s the clients pause for 1.5 s and the server's RSS is
 *       printed ("quiet t=... rss_kb=..."): what it keeps with nothing in
 *       flight, which requests in flight cannot blur.
 *
 *   Environment, for every request of the soak:
 *     HOSTILE_HEADER="Name: value"  one more header line (an API key)
 *     HOSTILE_REFUSED_OK=1          a refused connection (a server that
 *                                   has stopped accepting) is counted as
 *                                   refused=, not as a failure: what a
 *                                   drain test needs, where only requests
 *                                   the server accepted must succeed
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

static int port;

static double now(void)
{
	return client_now();
}

static int connect_local(void)
{
	return client_connect(port);
}

static void reset_close(int fd)
{
	struct linger l = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(fd);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

/* A whole request: headers (Content-Length when there is a body) + body. */
static char *build(const char *method, const char *path, const char *ctype, const char *body, size_t blen, size_t *len,
                   size_t *head_len)
{
	char head[4096];
	int h = ctype ? snprintf(head, sizeof head,
	                         "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
	                         method, path, ctype, blen)
	              : snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", method, path);
	char *r = malloc((size_t)h + blen);
	memcpy(r, head, (size_t)h);
	if (blen) memcpy(r + h, body, blen);
	*len = (size_t)h + blen;
	*head_len = (size_t)h;
	return r;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0) return -1;
		p += k, n -= (size_t)k;
	}
	return 0;
}

/* Reads one response (Content-Length framed) within timeout_s; returns the
 * status, 0 if the connection ended first, -1 on timeout. */
static int read_response(int fd, double timeout_s, char **body_out, size_t *body_len)
{
	size_t cap = 1 << 16, len = 0;
	char *b = malloc(cap);
	double until = now() + timeout_s;
	long need = -1;
	size_t head = 0;
	int status = 0;
	for (;;) {
		if (head && need >= 0 && len >= head + (size_t)need) break;
		int left = (int)((until - now()) * 1000);
		struct pollfd p = { fd, POLLIN, 0 };
		if (left <= 0 || poll(&p, 1, left) == 0) {
			status = -1;
			break;
		}
		if (len + 4096 > cap) {
			char *g = realloc(b, cap * 2);
			if (!g) {
				status = -1; /* out of memory: as good as no answer */
				break;
			}
			b = g;
			cap *= 2;
		}
		ssize_t k = recv(fd, b + len, cap - len - 1, 0);
		if (k <= 0) break;
		len += (size_t)k;
		b[len] = '\0';
		char *end = head ? NULL : strstr(b, "\r\n\r\n");
		if (end) {
			head = (size_t)(end - b) + 4;
			sscanf(b, "HTTP/1.%*d %d", &status);
			char *cl = strcasestr(b, "\r\ncontent-length:");
			need = cl && cl < end ? atol(cl + 17) : 0;
		}
	}
	if (status > 0 && (!head || len < head + (size_t)need)) status = 0; /* cut short */
	if (body_out) {
		*body_len = head && len >= head ? len - head : 0;
		memmove(b, b + head, *body_len);
		b[*body_len] = '\0';
		*body_out = b;
	} else
		free(b);
	return status;
}

/* A POST of FILE as CTYPE to PATH: the whole request in a new buffer, its
 * length, the length of its headers and of its body; NULL if FILE cannot be
 * read. */
static char *post_of(const char *path, const char *ctype, const char *file, size_t *len, size_t *head_len,
                     size_t *body_len)
{
	char *body = slurp(file, body_len);
	if (!body) return NULL;
	char *req = build("POST", path, ctype, body, *body_len, len, head_len);
	free(body);
	return req;
}

/* ------------------------------------------------------------ request */

static int cmd_request(int argc, char **argv)
{
	if (argc != 2 && argc != 4) return 2;
	size_t blen = 0, len, hl;
	char *body = argc == 4 ? slurp(argv[3], &blen) : NULL;
	if (argc == 4 && !body) return 2;
	char *req = build(argv[0], argv[1], argc == 4 ? argv[2] : NULL, body, blen, &len, &hl);
	double t0 = now();
	int fd = connect_local(), st = 0;
	char *resp = NULL;
	size_t rl = 0;
	if (fd >= 0 && send_all(fd, req, len) == 0) st = read_response(fd, 30, &resp, &rl);
	printf("status=%d ms=%.1f bytes=%zu\n", st, (now() - t0) * 1000, rl);
	if (resp) fprintf(stderr, "%s\n", resp);
	if (fd >= 0) close(fd);
	free(resp), free(req), free(body);
	return 0;
}

/* ------------------------------------------------------------ trickle */

static int cmd_trickle(int argc, char **argv)
{
	if (argc != 3) return 2;
	int n = atoi(argv[0]);
	double secs = atof(argv[1]), interval = atof(argv[2]) / 1000.0;
	static const char req[] =
	        "POST /v1/encode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
	        "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
	struct rlimit rl = { (rlim_t)n + 64, (rlim_t)n + 64 };
	setrlimit(RLIMIT_NOFILE, &rl);
	int *fd = calloc((size_t)n, sizeof *fd);
	size_t *at = calloc((size_t)n, sizeof *at);
	double *closed_at = calloc((size_t)n, sizeof *closed_at);
	int opened = 0;
	double t0 = now();
	for (int i = 0; i < n; i++) {
		fd[i] = connect_local();
		if (fd[i] >= 0) opened++;
	}
	/* Spread the connections' bytes over the interval. */
	double next = now();
	int closed = 0;
	while (now() - t0 < secs) {
		for (int i = 0; i < n; i++) {
			if (fd[i] < 0) continue;
			char c = req[at[i] % (sizeof req - 1)];
			struct pollfd p = { fd[i], POLLIN, 0 };
			if ((poll(&p, 1, 0) == 1 && recv(fd[i], &(char){ 0 }, 1, MSG_DONTWAIT) <= 0) ||
			    send(fd[i], &c, 1, MSG_NOSIGNAL) != 1) {
				closed_at[closed++] = now() - t0;
				close(fd[i]);
				fd[i] = -1;
				continue;
			}
			at[i]++;
		}
		next += interval;
		double w = next - now();
		if (w > 0) usleep((useconds_t)(w * 1e6));
	}
	for (int i = 0; i < n; i++)
		if (fd[i] >= 0) close(fd[i]);
	double first = closed ? closed_at[0] : 0, last = closed ? closed_at[closed - 1] : 0;
	printf("opened=%d closed_by_server=%d first_closed_s=%.1f last_closed_s=%.1f\n", opened, closed, first, last);
	free(fd), free(at), free(closed_at);
	return 0;
}

/* ------------------------------------------------------------ halfclose */

static int cmd_halfclose(int argc, char **argv)
{
	size_t blen, len, hl;
	char *req = argc == 4 ? post_of(argv[0], argv[1], argv[2], &len, &hl, &blen) : NULL;
	if (!req) return 2;
	int n = atoi(argv[3]), answered = 0, none = 0;
	for (int i = 0; i < n; i++) {
		int fd = connect_local();
		if (fd < 0 || send_all(fd, req, len) != 0) {
			none++;
			if (fd >= 0) close(fd);
			continue;
		}
		shutdown(fd, SHUT_WR);
		int st = read_response(fd, 10, NULL, NULL);
		if (st > 0)
			answered++;
		else
			none++;
		close(fd);
	}
	printf("sent=%d answered=%d unanswered=%d\n", n, answered, none);
	free(req);
	return 0;
}

/* ------------------------------------------------------------ abort */

static int cmd_abort(int argc, char **argv)
{
	size_t blen, len, hl;
	char *req = argc == 4 ? post_of(argv[0], argv[1], argv[2], &len, &hl, &blen) : NULL;
	if (!req) return 2;
	int n = atoi(argv[3]);
	unsigned seed = 12345;
	int where[4] = { 0 };
	for (int i = 0; i < n; i++) {
		int fd = connect_local();
		if (fd < 0) continue;
		int kind = (int)(rand_r(&seed) % 4);
		where[kind]++;
		size_t cut = kind == 0   ? 1 + rand_r(&seed) % (hl - 1)
		             : kind == 1 ? hl + rand_r(&seed) % (blen ? blen : 1)
		                         : len;
		send_all(fd, req, cut);
		if (kind == 3) {
			/* wait for the first bytes of the answer, then go */
			struct pollfd p = { fd, POLLIN, 0 };
			poll(&p, 1, 2000);
		} else if (kind == 2)
			usleep(1000);
		reset_close(fd);
	}
	printf("aborted=%d mid_headers=%d mid_body=%d after_body=%d mid_answer=%d\n", n, where[0], where[1], where[2],
	       where[3]);
	free(req);
	return 0;
}

/* ------------------------------------------------------------ slowbody */

static int cmd_slowbody(int argc, char **argv)
{
	size_t blen, len, hl;
	char *req = argc == 4 ? post_of(argv[0], argv[1], argv[2], &len, &hl, &blen) : NULL;
	if (!req) return 2;
	double secs = atof(argv[3]), t0 = now();
	int fd = connect_local(), st = 0;
	if (fd >= 0 && send_all(fd, req, hl) == 0) {
		size_t steps = blen < 50 ? blen : 50, sent = 0;
		for (size_t s = 1; s <= steps; s++) {
			usleep((useconds_t)(secs / (double)steps * 1e6));
			size_t upto = blen * s / steps;
			if (send_all(fd, req + hl + sent, upto - sent) != 0) break;
			sent = upto;
		}
		char *resp = NULL;
		size_t rl;
		st = read_response(fd, 30, &resp, &rl);
		if (resp) fprintf(stderr, "%s\n", resp);
		free(resp);
	}
	printf("status=%d ms=%.1f\n", st, (now() - t0) * 1000);
	if (fd >= 0) close(fd);
	free(req);
	return 0;
}

/* ------------------------------------------------------------ hold */

static int cmd_hold(int argc, char **argv)
{
	if (argc != 2) return 2;
	int n = atoi(argv[0]), opened = 0;
	struct rlimit rl = { (rlim_t)n + 64, (rlim_t)n + 64 };
	setrlimit(RLIMIT_NOFILE, &rl);
	int *fd = calloc((size_t)n, sizeof *fd);
	for (int i = 0; i < n; i++)
		opened += (fd[i] = connect_local()) >= 0;
	usleep((useconds_t)(atof(argv[1]) * 1e6));
	for (int i = 0; i < n; i++)
		if (fd[i] >= 0) close(fd[i]);
	printf("held=%d\n", opened);
	free(fd);
	return 0;
}

/* ------------------------------------------------------------ soak */

typedef struct kind {
	int weight;
	char expect[16];
	char *req; /* the whole request */
	size_t len, head_len;
	char *want; /* the reference answer (EXPECT 200) */
	size_t want_len;
	char label[160];
} kind;

enum { LAT_BUCKETS = 400 }; /* 0.1 ms to 100 s, 20 per decade */

typedef struct soak_stats {
	atomic_long valid, valid_fail, bad, bad_fail, hostile, refused, statuses[600];
	atomic_long lat[LAT_BUCKETS];
} soak_stats;

static kind *kinds;
static int n_kinds, total_weight;
static soak_stats st;
static atomic_int soak_stop, soak_paused;
static int refused_ok;

static int lat_bucket(double ms)
{
	int b = ms <= 0.1 ? 0 : (int)(log10(ms / 0.1) * 20);
	return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

static double lat_quantile(const long *h, long n, double q)
{
	long want = (long)(q * (double)n), acc = 0;
	for (int b = 0; b < LAT_BUCKETS; b++)
		if ((acc += h[b]) > want) return 0.1 * pow(10.0, (b + 1) / 20.0);
	return 0;
}

static int load_spec(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) return -1;
	char line[2048];
	while (fgets(line, sizeof line, f)) {
		char expect[16], method[16], upath[1024], ctype[128], file[1024], accept[64];
		int w;
		if (line[0] == '#' || sscanf(line, "%d %15s %15s %1023s %127s %1023s %63s", &w, expect, method, upath,
		                             ctype, file, accept) != 7)
			continue;
		kind *more = realloc(kinds, (size_t)(n_kinds + 1) * sizeof *kinds);
		if (!more) break;
		kinds = more;
		kind *k = &kinds[n_kinds++];
		memset(k, 0, sizeof *k);
		k->weight = w;
		total_weight += w;
		snprintf(k->expect, sizeof k->expect, "%s", expect);
		snprintf(k->label, sizeof k->label, "%s %.100s", method, upath);
		size_t blen = 0;
		char *body = strcmp(file, "-") ? slurp(file, &blen) : NULL;
		char head[4096];
		int h = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, upath);
		if (strcmp(ctype, "-") != 0)
			h += snprintf(head + h, sizeof head - (size_t)h, "Content-Type: %s\r\nContent-Length: %zu\r\n",
			              ctype, blen);
		if (strcmp(accept, "-") != 0)
			h += snprintf(head + h, sizeof head - (size_t)h, "Accept: %s\r\n", accept);
		const char *extra = getenv("HOSTILE_HEADER");
		if (extra && *extra) h += snprintf(head + h, sizeof head - (size_t)h, "%s\r\n", extra);
		h += snprintf(head + h, sizeof head - (size_t)h, "\r\n");
		k->req = malloc((size_t)h + blen);
		memcpy(k->req, head, (size_t)h);
		if (blen) memcpy(k->req + h, body, blen);
		k->len = (size_t)h + blen;
		k->head_len = (size_t)h;
		free(body);
	}
	fclose(f);
	return n_kinds ? 0 : -1;
}

enum { REFUSED = -3 }; /* roundtrip: the connection was refused */

/* One request on *fd (opened if -1; closed and reset on any failure). A
 * kept-alive connection the server closed between requests (idle timeout,
 * an earlier "Connection: close") is retried once on a new one, as an HTTP
 * client does; a new connection that fails is a failure. */
static int roundtrip(int *fd, const kind *k, char **body, size_t *blen)
{
	int reused = *fd >= 0;
	for (;;) {
		if (*fd < 0 && (*fd = connect_local()) < 0) return errno == ECONNREFUSED ? REFUSED : 0;
		/* A server may answer before the whole body is sent (a 413): read
		 * whatever came back even when the send was cut short. */
		send_all(*fd, k->req, k->len);
		int status = read_response(*fd, 30, body, blen);
		if (status > 0) return status;
		free(*body);
		*body = NULL;
		int nothing = *blen == 0;
		close(*fd);
		*fd = -1;
		if (!reused || !nothing || status < 0) return status;
		reused = 0;
	}
}

static void fetch_references(void)
{
	for (int i = 0; i < n_kinds; i++) {
		kind *k = &kinds[i];
		if (strcmp(k->expect, "200") != 0 || strstr(k->label, "/metrics")) continue;
		int fd = -1;
		char *body = NULL;
		size_t blen = 0;
		if (roundtrip(&fd, k, &body, &blen) == 200) {
			k->want = body;
			k->want_len = blen;
		} else
			free(body);
		if (fd >= 0) close(fd);
	}
}

static void one_hostile(const kind *k, unsigned *seed)
{
	int fd = connect_local();
	if (fd < 0) return;
	if (strcmp(k->expect, "half") == 0) {
		send_all(fd, k->req, k->len);
		shutdown(fd, SHUT_WR);
		read_response(fd, 10, NULL, NULL);
		close(fd);
	} else {
		size_t cut = 1 + rand_r(seed) % k->len;
		send_all(fd, k->req, cut);
		if (rand_r(seed) % 2) {
			struct pollfd p = { fd, POLLIN, 0 };
			poll(&p, 1, 50);
		}
		reset_close(fd);
	}
	atomic_fetch_add(&st.hostile, 1);
}

static void *soak_client(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg * 7919u + 1;
	int fd = -1;
	while (!atomic_load(&soak_stop)) {
		if (atomic_load(&soak_paused)) {
			usleep(10000);
			continue;
		}
		int r = (int)(rand_r(&seed) % (unsigned)total_weight), i = 0;
		while (r >= kinds[i].weight)
			r -= kinds[i++].weight;
		const kind *k = &kinds[i];
		if (strcmp(k->expect, "half") == 0 || strcmp(k->expect, "abort") == 0) {
			one_hostile(k, &seed);
			continue;
		}
		char *body = NULL;
		size_t blen = 0;
		double t0 = now();
		int status = roundtrip(&fd, k, &body, &blen);
		double ms = (now() - t0) * 1000;
		if (status == REFUSED && refused_ok) {
			atomic_fetch_add(&st.refused, 1);
			usleep(10000);
			continue;
		}
		if (status > 0 && status < 600) atomic_fetch_add(&st.statuses[status], 1);
		if (strcmp(k->expect, "200") == 0) {
			atomic_fetch_add(&st.valid, 1);
			atomic_fetch_add(&st.lat[lat_bucket(ms)], 1);
			int ok = status == 200 &&
			         (!k->want || (blen == k->want_len && memcmp(body, k->want, blen) == 0));
			if (!ok) {
				atomic_fetch_add(&st.valid_fail, 1);
				fprintf(stderr, "soak: %s: status %d%s\n", k->label, status,
				        status == 200 ? ", answer differs" : "");
			}
		} else {
			atomic_fetch_add(&st.bad, 1);
			if (status != atoi(k->expect)) {
				atomic_fetch_add(&st.bad_fail, 1);
				fprintf(stderr, "soak: %s: status %d, wanted %s\n", k->label, status, k->expect);
			}
		}
		free(body);
		/* The server closes after some answers (errors sent early): start over. */
		if (status != 200 && fd >= 0) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0) close(fd);
	return NULL;
}

static atomic_int trickle_open;

static void *soak_trickle(void *arg)
{
	int n = (int)(intptr_t)arg;
	static const char req[] =
	        "GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
	int *fd = calloc((size_t)n, sizeof *fd);
	size_t *at = calloc((size_t)n, sizeof *at);
	for (int i = 0; i < n; i++)
		fd[i] = -1;
	while (!atomic_load(&soak_stop)) {
		int open_now = 0;
		for (int i = 0; i < n; i++) {
			if (fd[i] < 0) {
				fd[i] = connect_local();
				at[i] = 0;
			}
			if (fd[i] < 0) continue;
			char c = req[at[i]++ % (sizeof req - 1)];
			if (send(fd[i], &c, 1, MSG_NOSIGNAL) != 1) {
				close(fd[i]);
				fd[i] = -1;
				continue;
			}
			open_now++;
		}
		atomic_store(&trickle_open, open_now);
		usleep(1000 * 1000);
	}
	for (int i = 0; i < n; i++)
		if (fd[i] >= 0) close(fd[i]);
	free(fd), free(at);
	return NULL;
}

static void soak_line(const char *what, double t)
{
	long h[LAT_BUCKETS], n = 0;
	for (int b = 0; b < LAT_BUCKETS; b++)
		n += h[b] = atomic_load(&st.lat[b]);
	printf("%s t=%.0f valid=%ld valid_failed=%ld bad=%ld bad_failed=%ld hostile=%ld refused=%ld p50_ms=%.2f "
	       "p99_ms=%.2f p999_ms=%.2f trickling=%d\n",
	       what, t, atomic_load(&st.valid), atomic_load(&st.valid_fail), atomic_load(&st.bad),
	       atomic_load(&st.bad_fail), atomic_load(&st.hostile), atomic_load(&st.refused), lat_quantile(h, n, 0.5),
	       lat_quantile(h, n, 0.99), lat_quantile(h, n, 0.999), atomic_load(&trickle_open));
	fflush(stdout);
}

static long rss_kb(int pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
	if (f) fclose(f);
	return kb;
}

static int cmd_soak(int argc, char **argv)
{
	if (argc != 4 && argc != 5) return 2;
	int pid = argc == 5 ? atoi(argv[4]) : 0;
	double secs = atof(argv[0]);
	int threads = atoi(argv[1]), tricklers = atoi(argv[2]);
	refused_ok = getenv("HOSTILE_REFUSED_OK") && atoi(getenv("HOSTILE_REFUSED_OK"));
	if (load_spec(argv[3])) {
		fprintf(stderr, "hostile soak: %s: no request kinds\n", argv[3]);
		return 2;
	}
	struct rlimit rl = { (rlim_t)tricklers + (rlim_t)threads * 2 + 64,
		             (rlim_t)tricklers + (rlim_t)threads * 2 + 64 };
	setrlimit(RLIMIT_NOFILE, &rl);
	fetch_references();
	pthread_t *t = calloc((size_t)threads + 1, sizeof *t);
	for (int i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, soak_client, (void *)(uintptr_t)(i + 1));
	pthread_create(&t[threads], NULL, soak_trickle, (void *)(intptr_t)tricklers);
	double t0 = now(), next_line = 10, next_quiet = 30;
	while (now() - t0 < secs) {
		usleep(100 * 1000);
		double at = now() - t0;
		if (at >= next_line) {
			soak_line("soak", at);
			next_line += 10;
		}
		if (pid && at >= next_quiet) {
			atomic_store(&soak_paused, 1);
			usleep(1500 * 1000); /* what is in flight finishes */
			printf("quiet t=%.0f rss_kb=%ld\n", at, rss_kb(pid));
			fflush(stdout);
			atomic_store(&soak_paused, 0);
			next_quiet += 30;
		}
	}
	atomic_store(&soak_stop, 1);
	for (int i = 0; i <= threads; i++)
		pthread_join(t[i], NULL);
	soak_line("total", now() - t0);
	printf("statuses:");
	for (int c = 100; c < 600; c++)
		if (atomic_load(&st.statuses[c])) printf(" %d=%ld", c, atomic_load(&st.statuses[c]));
	printf("\n");
	free(t);
	return atomic_load(&st.valid_fail) || atomic_load(&st.bad_fail) ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = { { "request", cmd_request }, { "trickle", cmd_trickle },   { "halfclose", cmd_halfclose },
		     { "abort", cmd_abort },     { "slowbody", cmd_slowbody }, { "hold", cmd_hold },
		     { "soak", cmd_soak } };
	if (argc >= 3) {
		port = atoi(argv[2]);
		for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
			if (strcmp(argv[1], cmds[i].name) == 0) {
				int rc = cmds[i].fn(argc - 3, argv + 3);
				if (rc == 2)
					fprintf(stderr,
					        "hostile %s: wrong arguments (see the comment at the top of hostile.c)\n",
					        argv[1]);
				return rc;
			}
	}
	fprintf(stderr, "usage: hostile request|trickle|halfclose|abort|slowbody|hold|soak PORT ...\n");
	return 2;
}
