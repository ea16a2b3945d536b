#define _GNU_SOURCE /* strcasestr */
/*
 * hammer: C concurrent clients on keep-alive connections POST PNG bodies to
 * one path for a fixed time and check EVERY reply against the reply the
 * same body got alone, before the load: same status, and each number of
 * "data" within 1e-4 relative. Batching that mixed two clients' images would
 * show up as a mismatch. Prints one summary line; exits 1 on any error or
 * mismatch.
 *
 *   hammer PORT PATH CLIENTS SECONDS FILE.png...
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

typedef struct body {
	char *req; /* the whole HTTP request */
	size_t req_len;
	double *want; /* expected data */
	size_t n_want;
} body;

static int port;
static const char *path;
static body *bodies;
static int n_bodies;
static double stop_at;
static atomic_long n_ok, n_err, n_bad;

static double now(void)
{
	return client_now();
}

static int connect_local(void)
{
	return client_connect(port);
}

/* Sends req and reads one response; returns the status, body in *out. */
static int exchange(int fd, const body *b, char **out, size_t *out_len)
{
	size_t sent = 0;
	while (sent < b->req_len) {
		ssize_t k = send(fd, b->req + sent, b->req_len - sent, MSG_NOSIGNAL);
		if (k <= 0) return -1;
		sent += (size_t)k;
	}
	static _Thread_local char buf[1 << 20];
	size_t have = 0;
	char *hdr_end = NULL;
	while (!hdr_end) {
		ssize_t k = recv(fd, buf + have, sizeof buf - 1 - have, 0);
		if (k <= 0) return -1;
		have += (size_t)k;
		buf[have] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
	}
	int status = atoi(buf + 9);
	const char *cl = strcasestr(buf, "Content-Length:");
	size_t len = cl ? strtoul(cl + 15, NULL, 10) : 0, start = (size_t)(hdr_end + 4 - buf);
	while (have < start + len) {
		ssize_t k = recv(fd, buf + have, sizeof buf - 1 - have, 0);
		if (k <= 0) return -1;
		have += (size_t)k;
	}
	*out = buf + start;
	*out_len = len;
	return status;
}

static double *data_of(const char *json, size_t len, size_t *n)
{
	json_error_t je;
	json_t *o = json_loadb(json, len, 0, &je), *d = json_object_get(o, "data");
	double *v = NULL;
	*n = json_array_size(d);
	if (*n && (v = malloc(*n * sizeof *v)))
		for (size_t i = 0; i < *n; i++)
			v[i] = json_number_value(json_array_get(d, i));
	json_decref(o);
	return v;
}

static int matches(const body *b, const char *json, size_t len)
{
	size_t n;
	double *v = data_of(json, len, &n);
	int ok = v && n == b->n_want;
	for (size_t i = 0; ok && i < n; i++)
		ok = fabs(v[i] - b->want[i]) <= 1e-4 * fmax(1.0, fabs(b->want[i]));
	free(v);
	return ok;
}

static void *client(void *arg)
{
	long id = (long)arg;
	int fd = connect_local();
	for (long k = 0; now() < stop_at; k++) {
		const body *b = &bodies[(id + k) % n_bodies];
		char *resp;
		size_t len;
		int st = fd >= 0 ? exchange(fd, b, &resp, &len) : -1;
		if (st != 200) {
			atomic_fetch_add(&n_err, 1);
			if (fd >= 0) close(fd);
			fd = connect_local();
			continue;
		}
		atomic_fetch_add(matches(b, resp, len) ? &n_ok : &n_bad, 1);
	}
	if (fd >= 0) close(fd);
	return NULL;
}

static int load_body(body *b, const char *file)
{
	FILE *f = fopen(file, "rb");
	if (!f) return -1;
	static char png[1 << 20];
	size_t n = fread(png, 1, sizeof png, f);
	fclose(f);
	char head[512];
	int hl = snprintf(
	        head, sizeof head,
	        "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nContent-Length: %zu\r\n\r\n", path,
	        n);
	b->req = malloc((size_t)hl + n);
	memcpy(b->req, head, (size_t)hl);
	memcpy(b->req + hl, png, n);
	b->req_len = (size_t)hl + n;
	int fd = connect_local();
	char *resp;
	size_t len;
	int st = fd >= 0 ? exchange(fd, b, &resp, &len) : -1;
	if (st == 200) b->want = data_of(resp, len, &b->n_want);
	if (fd >= 0) close(fd);
	return st == 200 && b->want ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: hammer PORT PATH CLIENTS SECONDS FILE.png...\n");
		return 2;
	}
	port = atoi(argv[1]);
	path = argv[2];
	int clients = atoi(argv[3]);
	double secs = atof(argv[4]);
	n_bodies = argc - 5;
	bodies = calloc((size_t)n_bodies, sizeof *bodies);
	for (int i = 0; i < n_bodies; i++)
		if (load_body(&bodies[i], argv[5 + i])) {
			fprintf(stderr, "hammer: %s: no single-request reply to compare with\n", argv[5 + i]);
			return 1;
		}
	pthread_t *t = malloc((size_t)clients * sizeof *t);
	double t0 = now();
	stop_at = t0 + secs;
	for (long i = 0; i < clients; i++)
		pthread_create(&t[i], NULL, client, (void *)i);
	for (int i = 0; i < clients; i++)
		pthread_join(t[i], NULL);
	double dt = now() - t0;
	long ok = atomic_load(&n_ok), err = atomic_load(&n_err), bad = atomic_load(&n_bad);
	free(t);
	for (int i = 0; i < n_bodies; i++)
		free(bodies[i].req), free(bodies[i].want);
	free(bodies);
	printf("hammer: %d clients, %.1f s: %ld replies matched, %ld errors, %ld mismatches, %.0f req/s\n", clients, dt,
	       ok, err, bad, (double)(ok + err + bad) / dt);
	return err || bad || ok == 0 ? 1 : 0;
}
