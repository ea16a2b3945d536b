/*
 * aeserve: serves autoencoder model files over HTTP. Options, start-up
 * (the listener comes up first so /livez answers and /readyz says 503 until
 * every model is loaded), and shutdown on SIGTERM/SIGINT: /readyz turns 503
 * at once, the listener closes, in-flight requests drain within a bound.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ae/parse.h"

#define DRAIN_SECONDS 10

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: aeserve [options] MODEL_OR_FOLDER...\n"
	        "\n"
	        "Serves every .safetensors model in the folders (and the files) named, each under\n"
	        "its file name: /v1/models/NAME/{encode,decode,reconstruct,denoise,anomaly}; /v1/...\n"
	        "uses the default model. See openapi.yaml for the API.\n"
	        "\n"
	        "  --addr ADDR           address to listen on (default 127.0.0.1; :: or 0.0.0.0 for all)\n"
	        "  --port N              port (default 8080)\n"
	        "  --default NAME        the model /v1/... uses (default: the first loaded, by name)\n"
	        "  --http-threads N      libmicrohttpd threads parsing and answering (default 2)\n"
	        "  --workers N           inference workers per model (default: one per core)\n"
	        "  --max-batch N         images per batched forward pass (default 32)\n"
	        "  --batch-delay-us N    how long a worker waits to fill a batch (default 200)\n"
	        "  --queue N             requests waiting per model before 503 (default 256)\n"
	        "  --body-limit BYTES    largest request body (default 8388608)\n"
	        "  --timeout-ms N        a request's deadline for inference, then 504 (default 5000)\n"
	        "  --conn-limit N        concurrent connections (default 1024)\n"
	        "  --conn-timeout S      idle or slow clients are dropped after S seconds (default 30)\n"
	        "  --log-format FMT      access log on stdout: text (default), json or none\n"
	        "  --help                this text\n");
}

static int int_opt(const char *opt, const char *v, long lo, long hi, long *out)
{
	ae_error err;
	if (ae_parse_long(v, lo, hi, out, &err) == 0)
		return 0;
	fprintf(stderr, "aeserve: %s: %s\n", opt, err.msg);
	return -1;
}

static int parse(srv_config *c, int argc, char **argv)
{
	enum { O_ADDR = 1000, O_PORT, O_DEFAULT, O_HTTP, O_WORKERS, O_BATCH, O_DELAY, O_QUEUE, O_BODY, O_TIMEOUT,
	       O_CONNS, O_CONN_TIMEOUT, O_LOG, O_HELP };
	static const struct option lo[] = {
		{ "addr", 1, 0, O_ADDR }, { "port", 1, 0, O_PORT }, { "default", 1, 0, O_DEFAULT },
		{ "http-threads", 1, 0, O_HTTP }, { "workers", 1, 0, O_WORKERS }, { "max-batch", 1, 0, O_BATCH },
		{ "batch-delay-us", 1, 0, O_DELAY }, { "queue", 1, 0, O_QUEUE }, { "body-limit", 1, 0, O_BODY },
		{ "timeout-ms", 1, 0, O_TIMEOUT }, { "conn-limit", 1, 0, O_CONNS }, { "conn-timeout", 1, 0, O_CONN_TIMEOUT },
		{ "log-format", 1, 0, O_LOG }, { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 },
	};
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	/* A worker per core lets one busy model use the whole machine; idle
	 * workers sleep on their queue and cost only their scratch. */
	*c = (srv_config){ .addr = "127.0.0.1", .port = 8080, .http_threads = 2,
	                   .workers = cores < 1 ? 1 : cores > 64 ? 64 : (int)cores, .max_batch = 32,
	                   .batch_delay_us = 200, .queue_len = 256, .body_limit = 8u << 20, .timeout_ms = 5000,
	                   .conn_limit = 1024, .conn_timeout_s = 30, .log_format = SRV_LOG_TEXT };
	long v;
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case O_ADDR: {
			unsigned char tmp[16];
			if (strlen(optarg) >= sizeof c->addr ||
			    (inet_pton(AF_INET, optarg, tmp) != 1 && inet_pton(AF_INET6, optarg, tmp) != 1)) {
				fprintf(stderr, "aeserve: --addr: '%s' is not an IPv4 or IPv6 address\n", optarg);
				return -1;
			}
			snprintf(c->addr, sizeof c->addr, "%s", optarg);
			break;
		}
		case O_PORT: if (int_opt("--port", optarg, 1, 65535, &v)) return -1; c->port = (int)v; break;
		case O_DEFAULT: snprintf(c->default_model, sizeof c->default_model, "%s", optarg); break;
		case O_HTTP: if (int_opt("--http-threads", optarg, 1, 256, &v)) return -1; c->http_threads = (int)v; break;
		case O_WORKERS: if (int_opt("--workers", optarg, 1, 64, &v)) return -1; c->workers = (int)v; break;
		case O_BATCH: if (int_opt("--max-batch", optarg, 1, 1024, &v)) return -1; c->max_batch = (int)v; break;
		case O_DELAY: if (int_opt("--batch-delay-us", optarg, 0, 1000000, &v)) return -1; c->batch_delay_us = (int)v; break;
		case O_QUEUE: if (int_opt("--queue", optarg, 1, 1000000, &v)) return -1; c->queue_len = (int)v; break;
		case O_BODY: if (int_opt("--body-limit", optarg, 1024, 1L << 30, &v)) return -1; c->body_limit = (size_t)v; break;
		case O_TIMEOUT: if (int_opt("--timeout-ms", optarg, 1, 3600000, &v)) return -1; c->timeout_ms = (int)v; break;
		case O_CONNS: if (int_opt("--conn-limit", optarg, 1, 100000, &v)) return -1; c->conn_limit = (int)v; break;
		case O_CONN_TIMEOUT: if (int_opt("--conn-timeout", optarg, 1, 86400, &v)) return -1; c->conn_timeout_s = (int)v; break;
		case O_LOG:
			if (strcmp(optarg, "text") == 0) c->log_format = SRV_LOG_TEXT;
			else if (strcmp(optarg, "json") == 0) c->log_format = SRV_LOG_JSON;
			else if (strcmp(optarg, "none") == 0) c->log_format = SRV_LOG_NONE;
			else {
				fprintf(stderr, "aeserve: --log-format: '%s' is not text, json or none\n", optarg);
				return -1;
			}
			break;
		case O_HELP: usage(stdout); exit(0);
		default:
			fprintf(stderr, "aeserve: unknown option or missing value: %s (see aeserve --help)\n", argv[optind - 1]);
			return -1;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "aeserve: name at least one model file or folder (see aeserve --help)\n");
		return -1;
	}
	c->paths = (const char **)argv + optind;
	c->n_paths = argc - optind;
	return 0;
}

static struct MHD_Daemon *start(srv_state *s)
{
	const srv_config *c = &s->cfg;
	struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)c->port) };
	int ipv6 = inet_pton(AF_INET, c->addr, &v4.sin_addr) != 1;
	if (ipv6)
		inet_pton(AF_INET6, c->addr, &v6.sin6_addr);
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
	                 MHD_USE_ERROR_LOG | MHD_USE_TURBO | (ipv6 ? MHD_USE_IPv6 : 0);
	return MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, srv_handle, s,
	                        MHD_OPTION_SOCK_ADDR, ipv6 ? (struct sockaddr *)&v6 : (struct sockaddr *)&v4,
	                        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->http_threads,
	                        MHD_OPTION_CONNECTION_LIMIT, (unsigned)c->conn_limit,
	                        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->conn_timeout_s,
	                        MHD_OPTION_NOTIFY_COMPLETED, srv_completed, s,
	                        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
	                        MHD_OPTION_END);
}

int main(int argc, char **argv)
{
	static srv_state s;
	if (parse(&s.cfg, argc, argv))
		return 2;
	/* Signals are taken by sigwait in this thread only. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	s.daemon = start(&s);
	if (!s.daemon) {
		fprintf(stderr, "aeserve: cannot listen on %s port %d: %s\n", s.cfg.addr, s.cfg.port, strerror(errno));
		return 1;
	}
	if (srv_models_load(&s)) {
		fprintf(stderr, "aeserve: not starting: a model failed to load\n");
		MHD_stop_daemon(s.daemon);
		srv_models_free(&s);
		return 1;
	}
	atomic_store(&s.ready, 1);
	fprintf(stderr, "aeserve: serving");
	for (int i = 0; i < s.n_models; i++)
		fprintf(stderr, "%s %s%s", i ? "," : "", s.models[i]->name, s.models[i] == s.default_model ? " (default)" : "");
	fprintf(stderr, " on http://%s%s%s:%d\n", strchr(s.cfg.addr, ':') ? "[" : "", s.cfg.addr,
	        strchr(s.cfg.addr, ':') ? "]" : "", s.cfg.port);

	int sig = 0;
	sigwait(&set, &sig);
	fprintf(stderr, "aeserve: %s: draining\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	atomic_store(&s.ready, 0);
	MHD_socket lsock = MHD_quiesce_daemon(s.daemon);
	if (lsock != MHD_INVALID_SOCKET)
		close(lsock);
	double until = srv_now() + DRAIN_SECONDS;
	while (atomic_load(&s.inflight) > 0 && srv_now() < until)
		usleep(2000);
	/* Workers finish what is queued; their resumes reach a live daemon. */
	srv_models_free(&s);
	MHD_stop_daemon(s.daemon);
	fprintf(stderr, "aeserve: stopped\n");
	return 0;
}
