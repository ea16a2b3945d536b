/*
 * aeserve: serves autoencoder model files over HTTP. Options, start-up and
 * shutdown.
 *
 * Start: the listen socket is ours and exclusive (a second server on the
 * same port fails to start, unless both ask for --reuse-port); the
 * listener comes up first so /livez answers and /readyz says 503 until
 * every model is loaded.
 *
 * Stop (SIGTERM): /readyz turns 503 while the server keeps serving for
 * --drain-delay seconds, so a load balancer or Kubernetes takes it out of
 * rotation before anything is refused; then it stops accepting, waits up to
 * --drain-timeout for requests in flight, lets the workers finish what is
 * queued, closes the remaining connections and frees the models last.
 * SIGINT does the same without the delay; a second SIGTERM or SIGINT cuts
 * the delay short.
 *
 * SIGHUP reloads every model whose file changed (and rereads the API
 * keys); SIGUSR1 and SIGUSR2 are logged and ignored. None of them is ever
 * fatal, whichever thread the kernel hands it to.
 */
#define _GNU_SOURCE /* pipe2 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ae/blas.h"
#include "ae/parse.h"
#include "ae/version.h"

/* A PEM certificate chain or key larger than this is not one. */
#define SRV_MAX_PEM (1 << 20)

/* File descriptors beyond the connections: models, epoll and eventfds of
 * the HTTP threads, stdio. */
#define FD_RESERVE 64

static void usage(FILE *f)
{
	fprintf(f, "usage: aeserve [options] MODEL_OR_FOLDER...\n"
	           "\n"
	           "Serves every .safetensors model in the folders (and the files) named, each under\n"
	           "its file name: /v1/models/NAME/{encode,decode,reconstruct,denoise,transform,anomaly};\n"
	           "/v1/... uses the default model; the playground page is at /. See openapi.yaml for the API.\n"
	           "\n"
	           "  --addr ADDR           address to listen on (default 127.0.0.1; :: or 0.0.0.0 for all)\n"
	           "  --port N              port (default 8080); 0: a free one. Once bound, the port is on\n"
	           "                        stderr as the line \"aeserve: listening on ADDR port N\"\n"
	           "  --reuse-port          share the port with other processes (SO_REUSEPORT); without it\n"
	           "                        a port already in use is an error\n"
	           "  --default NAME        the model /v1/... uses (default: the first loaded, by name)\n"
	           "  --http-threads N      libmicrohttpd threads parsing and answering (default 2)\n"
	           "  --workers N           inference workers per model (default: one per core)\n"
	           "  --max-batch N         images per batched forward pass (default 32)\n"
	           "  --precision P         fp32 (default), bf16, int8 or auto: the arithmetic each model runs;\n"
	           "                        bf16 and int8 run where the CPU has AVX512_BF16 / AVX512-VNNI (fp32\n"
	           "                        elsewhere), int8 needs a model with activation ranges (aetrain\n"
	           "                        calibrate); auto: the fastest of these a model can run here\n"
	           "  --batch-delay-us N    how long a worker waits to fill a batch (default 200)\n"
	           "  --queue N             requests waiting per model before 503 (default 256)\n"
	           "  --body-limit BYTES    largest request body (default 8388608)\n"
	           "  --timeout-ms N        inference deadline from the end of the body, then 504 (default 5000)\n"
	           "  --conn-limit N        concurrent connections (default 4096)\n"
	           "  --per-client-limit N  concurrent connections from one address (default 0: no limit;\n"
	           "                        behind a load balancer every client has its address)\n"
	           "  --header-timeout S    a new connection must send its request headers within S\n"
	           "                        seconds, however it trickles them (default 10)\n"
	           "  --body-timeout S      a request body must arrive, and an answer be read, within S\n"
	           "                        seconds each (default 30)\n"
	           "  --conn-timeout S      an idle keep-alive connection is closed after S seconds (default 30)\n"
	           "  --drain-delay S       on SIGTERM keep serving with /readyz 503 for S seconds before\n"
	           "                        refusing connections (default 0; set it to the time your load\n"
	           "                        balancer takes to notice, e.g. 5 under Kubernetes)\n"
	           "  --drain-timeout S     then wait at most S seconds for requests in flight (default 10)\n"
	           "  --log-format FMT      access log on stdout: text (default), json or none\n"
	           "  --drift-window N      scored images aeserve_drift_share looks back over (default 1000)\n"
	           "  --api-keys FILE       require Authorization: Bearer KEY on every route but the health\n"
	           "                        routes; FILE holds one key per line (16 to 256 characters),\n"
	           "                        reread on SIGHUP\n"
	           "  --metrics-public      /metrics without a key even with --api-keys\n"
	           "  --no-playground       no playground page at / (its requests count in the metrics and\n"
	           "                        the drift gauge like any client's)\n"
	           "  --tls-cert FILE       serve HTTPS (TLS 1.2 or newer) with this PEM certificate chain\n"
	           "  --tls-key FILE        and this PEM private key\n"
	           "  --version             the version\n"
	           "  --help                this text\n");
}

static int int_opt(const char *opt, const char *v, long lo, long hi, long *out)
{
	ae_error err;
	if (ae_parse_long(v, lo, hi, out, &err) == 0) return 0;
	fprintf(stderr, "aeserve: %s: %s\n", opt, err.msg);
	return -1;
}

static int parse(srv_config *c, int argc, char **argv)
{
	enum {
		O_ADDR = 1000,
		O_PORT,
		O_REUSE,
		O_DEFAULT,
		O_HTTP,
		O_WORKERS,
		O_BATCH,
		O_DELAY,
		O_QUEUE,
		O_BODY,
		O_TIMEOUT,
		O_CONNS,
		O_PER_CLIENT,
		O_HEADER_TIMEOUT,
		O_BODY_TIMEOUT,
		O_CONN_TIMEOUT,
		O_DRAIN_DELAY,
		O_DRAIN_TIMEOUT,
		O_LOG,
		O_DRIFT,
		O_KEYS,
		O_METRICS_PUBLIC,
		O_NO_PLAYGROUND,
		O_TLS_CERT,
		O_TLS_KEY,
		O_PRECISION,
		O_VERSION,
		O_HELP
	};
	static const struct option lo[] = {
		{ "addr", 1, 0, O_ADDR },
		{ "port", 1, 0, O_PORT },
		{ "reuse-port", 0, 0, O_REUSE },
		{ "default", 1, 0, O_DEFAULT },
		{ "http-threads", 1, 0, O_HTTP },
		{ "workers", 1, 0, O_WORKERS },
		{ "max-batch", 1, 0, O_BATCH },
		{ "batch-delay-us", 1, 0, O_DELAY },
		{ "queue", 1, 0, O_QUEUE },
		{ "body-limit", 1, 0, O_BODY },
		{ "timeout-ms", 1, 0, O_TIMEOUT },
		{ "conn-limit", 1, 0, O_CONNS },
		{ "per-client-limit", 1, 0, O_PER_CLIENT },
		{ "header-timeout", 1, 0, O_HEADER_TIMEOUT },
		{ "body-timeout", 1, 0, O_BODY_TIMEOUT },
		{ "conn-timeout", 1, 0, O_CONN_TIMEOUT },
		{ "drain-delay", 1, 0, O_DRAIN_DELAY },
		{ "drain-timeout", 1, 0, O_DRAIN_TIMEOUT },
		{ "log-format", 1, 0, O_LOG },
		{ "drift-window", 1, 0, O_DRIFT },
		{ "api-keys", 1, 0, O_KEYS },
		{ "metrics-public", 0, 0, O_METRICS_PUBLIC },
		{ "no-playground", 0, 0, O_NO_PLAYGROUND },
		{ "tls-cert", 1, 0, O_TLS_CERT },
		{ "tls-key", 1, 0, O_TLS_KEY },
		{ "precision", 1, 0, O_PRECISION },
		{ "version", 0, 0, O_VERSION },
		{ "help", 0, 0, O_HELP },
		{ 0, 0, 0, 0 },
	};
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	/* A worker per core lets one busy model use the whole machine; idle
	 * workers sleep on their queue and cost only their scratch. */
	*c = (srv_config){ .addr = "127.0.0.1",
		           .port = 8080,
		           .http_threads = 2,
		           .workers = cores < 1                ? 1
		                      : cores > AE_MAX_THREADS ? AE_MAX_THREADS
		                                               : (int)cores,
		           .max_batch = 32,
		           .batch_delay_us = 200,
		           .queue_len = 256,
		           .body_limit = 8u << 20,
		           .timeout_ms = 5000,
		           .conn_limit = 4096,
		           .conn_timeout_s = 30,
		           .header_timeout_s = 10,
		           .body_timeout_s = 30,
		           .drain_timeout_s = 10,
		           .drift_window = SRV_DRIFT_WINDOW_DEFAULT,
		           .log_format = SRV_LOG_TEXT };
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
		case O_PORT:
			if (int_opt("--port", optarg, 0, 65535, &v)) return -1;
			c->port = (int)v;
			break;
		case O_REUSE: c->reuse_port = 1; break;
		case O_DEFAULT: snprintf(c->default_model, sizeof c->default_model, "%s", optarg); break;
		case O_HTTP:
			if (int_opt("--http-threads", optarg, 1, 256, &v)) return -1;
			c->http_threads = (int)v;
			break;
		case O_WORKERS:
			if (int_opt("--workers", optarg, 1, AE_MAX_THREADS, &v)) return -1;
			c->workers = (int)v;
			break;
		case O_BATCH:
			if (int_opt("--max-batch", optarg, 1, 1024, &v)) return -1;
			c->max_batch = (int)v;
			break;
		case O_DELAY:
			if (int_opt("--batch-delay-us", optarg, 0, 1000000, &v)) return -1;
			c->batch_delay_us = (int)v;
			break;
		case O_QUEUE:
			if (int_opt("--queue", optarg, 1, 1000000, &v)) return -1;
			c->queue_len = (int)v;
			break;
		case O_BODY:
			if (int_opt("--body-limit", optarg, 1024, 1L << 30, &v)) return -1;
			c->body_limit = (size_t)v;
			break;
		case O_TIMEOUT:
			if (int_opt("--timeout-ms", optarg, 1, 3600000, &v)) return -1;
			c->timeout_ms = (int)v;
			break;
		case O_CONNS:
			if (int_opt("--conn-limit", optarg, 1, 1000000, &v)) return -1;
			c->conn_limit = (int)v;
			break;
		case O_PER_CLIENT:
			if (int_opt("--per-client-limit", optarg, 0, 1000000, &v)) return -1;
			c->per_client_limit = (int)v;
			break;
		case O_HEADER_TIMEOUT:
			if (int_opt("--header-timeout", optarg, 1, 3600, &v)) return -1;
			c->header_timeout_s = (int)v;
			break;
		case O_BODY_TIMEOUT:
			if (int_opt("--body-timeout", optarg, 1, 3600, &v)) return -1;
			c->body_timeout_s = (int)v;
			break;
		case O_CONN_TIMEOUT:
			if (int_opt("--conn-timeout", optarg, 1, 86400, &v)) return -1;
			c->conn_timeout_s = (int)v;
			break;
		case O_DRAIN_DELAY:
			if (int_opt("--drain-delay", optarg, 0, 3600, &v)) return -1;
			c->drain_delay_s = (int)v;
			break;
		case O_DRAIN_TIMEOUT:
			if (int_opt("--drain-timeout", optarg, 0, 3600, &v)) return -1;
			c->drain_timeout_s = (int)v;
			break;
		case O_LOG:
			if (strcmp(optarg, "text") == 0)
				c->log_format = SRV_LOG_TEXT;
			else if (strcmp(optarg, "json") == 0)
				c->log_format = SRV_LOG_JSON;
			else if (strcmp(optarg, "none") == 0)
				c->log_format = SRV_LOG_NONE;
			else {
				fprintf(stderr, "aeserve: --log-format: '%s' is not text, json or none\n", optarg);
				return -1;
			}
			break;
		case O_DRIFT:
			if (int_opt("--drift-window", optarg, 10, 1000000, &v)) return -1;
			c->drift_window = (int)v;
			break;
		case O_KEYS: c->api_keys = optarg; break;
		case O_METRICS_PUBLIC: c->metrics_public = 1; break;
		case O_NO_PLAYGROUND: c->no_playground = 1; break;
		case O_TLS_CERT: c->tls_cert = optarg; break;
		case O_TLS_KEY: c->tls_key = optarg; break;
		case O_PRECISION:
			if ((c->precision = ae_precision_parse(optarg)) < AE_PREC_AUTO) {
				fprintf(stderr, "aeserve: --precision: '%s' is not fp32, bf16, int8 or auto\n", optarg);
				return -1;
			}
			break;
		case O_HELP: usage(stdout); exit(0);
		case O_VERSION: printf("aeserve %s (OpenBLAS core %s)\n", AE_VERSION, ae_blas_core()); exit(0);
		default:
			fprintf(stderr, "aeserve: unknown option or missing value: %s (see aeserve --help)\n",
			        argv[optind - 1]);
			return -1;
		}
	}
	if (!c->tls_cert != !c->tls_key) {
		fprintf(stderr, "aeserve: --tls-cert and --tls-key go together\n");
		return -1;
	}
	if (optind >= argc) {
		fprintf(stderr, "aeserve: name at least one model file or folder (see aeserve --help)\n");
		return -1;
	}
	c->paths = argv + optind;
	c->n_paths = argc - optind;
	return 0;
}

/* Each connection is a descriptor: raise the soft limit as far as the hard
 * one allows, and serve fewer connections (saying so) if it is too low. */
static int fit_fd_limit(srv_config *c)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
	rlim_t need = (rlim_t)c->conn_limit + FD_RESERVE;
	if (rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur >= need) return 0;
	if (rl.rlim_cur < 2 * FD_RESERVE) {
		fprintf(stderr, "aeserve: only %lu file descriptors are allowed (ulimit -n); too few to serve\n",
		        (unsigned long)rl.rlim_cur);
		return -1;
	}
	fprintf(stderr,
	        "aeserve: --conn-limit %d needs %lu file descriptors and the limit is %lu (ulimit -n): "
	        "serving at most %lu connections\n",
	        c->conn_limit, (unsigned long)need, (unsigned long)rl.rlim_cur,
	        (unsigned long)(rl.rlim_cur - FD_RESERVE));
	c->conn_limit = (int)(rl.rlim_cur - FD_RESERVE);
	return 0;
}

/* Our own listen socket, so that it is exclusive unless --reuse-port asks
 * otherwise (libmicrohttpd's address-reuse option also sets SO_REUSEPORT,
 * which let a second server split the traffic), and so that a port in use
 * is reported as such. */
static int listen_on(const srv_config *c)
{
	struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)c->port) };
	int ipv6 = inet_pton(AF_INET, c->addr, &v4.sin_addr) != 1;
	if (ipv6) inet_pton(AF_INET6, c->addr, &v6.sin6_addr);
	int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0;
	if (fd < 0) return -1;
	/* SO_REUSEADDR lets a restart bind while old connections linger in
	 * TIME_WAIT; on Linux it never lets two sockets listen on one port. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (c->reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (ipv6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	int rc = ipv6 ? bind(fd, (struct sockaddr *)&v6, sizeof v6) : bind(fd, (struct sockaddr *)&v4, sizeof v4);
	if (rc != 0 || listen(fd, SOMAXCONN) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* The port a socket is bound to (the kernel's choice for --port 0). */
static int bound_port(int fd, int *port)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof sa;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0) return -1;
	*port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
	                                       : ((struct sockaddr_in *)&sa)->sin_port);
	return 0;
}

/* A whole PEM file, NUL-terminated, or NULL (said why). */
static char *read_pem(const char *opt, const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = f ? malloc(SRV_MAX_PEM + 1) : NULL;
	size_t n = buf ? fread(buf, 1, SRV_MAX_PEM + 1, f) : 0;
	if (f) fclose(f);
	if (!buf || n == 0 || n > SRV_MAX_PEM) {
		fprintf(stderr, "aeserve: %s %s: %s\n", opt, path,
		        !f                ? strerror(errno)
		        : n > SRV_MAX_PEM ? "larger than 1 MiB"
		                          : "empty or unreadable");
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

/* TLS 1.2 and 1.3 only, GnuTLS's default ciphers for them. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static struct MHD_Daemon *start(srv_state *s, int lfd, const char *cert, const char *key)
{
	const srv_config *c = &s->cfg;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
	                 MHD_USE_ERROR_LOG | MHD_USE_TURBO | (cert ? MHD_USE_TLS : 0);
	/* The TLS options are passed only with TLS (MHD_OPTION_END ends the
	 * list early otherwise). */
	return MHD_start_daemon(
	        flags, (uint16_t)c->port, NULL, NULL, srv_handle, s, MHD_OPTION_LISTEN_SOCKET, lfd,
	        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)c->http_threads, MHD_OPTION_CONNECTION_LIMIT,
	        (unsigned)c->conn_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)c->per_client_limit,
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)c->conn_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, srv_completed,
	        s, MHD_OPTION_NOTIFY_CONNECTION, srv_conn_notify, s, cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END,
	        cert, MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_HTTPS_PRIORITIES, TLS_PRIORITIES, MHD_OPTION_END);
}

/* Stops listening without losing a client: connections the kernel has
 * accepted and libmicrohttpd has not yet taken sit in the listen socket's
 * backlog, and closing the socket would reset them, failing requests
 * their clients already sent. Each is handed to the daemon (which serves
 * it like any other, answering with Connection: close), then the socket is
 * closed; what arrives after that is refused, as it should be. */
static void adopt_backlog(struct MHD_Daemon *d, MHD_socket lfd)
{
	int flags = fcntl(lfd, F_GETFL);
	if (flags >= 0) fcntl(lfd, F_SETFL, flags | O_NONBLOCK);
	for (int n = 0; n < SOMAXCONN * 4; n++) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof sa;
		int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) break;
		/* (on failure libmicrohttpd closes the socket itself) */
		MHD_add_connection(d, fd, (struct sockaddr *)&sa, len);
	}
	close(lfd);
}

/* How long the gate below stays up before the socket closes: handshakes
 * under way when it went up finish in a round trip; this is many. */
#define GATE_MS 200

/* Lets no new connection start, so that none can be caught half-made when
 * the socket closes (the kernel completes handshakes on its own and would
 * reset those still in its backlog): a classic BPF filter on the listen
 * socket drops every packet that opens a connection (SYN without ACK),
 * while the ACKs of handshakes under way pass and complete them, to be
 * accepted as usual. A client whose SYN was dropped sends it again a second
 * later and is then refused (or, under SO_REUSEPORT, taken by another
 * server of the group): refused, never accepted and dropped. The filter
 * sees the TCP header at offset 0; byte 13 holds its flags. */
static void gate_new_connections(int lfd)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13), BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12), /* SYN | ACK */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1), BPF_STMT(BPF_RET | BPF_K, 0),     /* SYN alone: drop */
		BPF_STMT(BPF_RET | BPF_K, 0xffffffffu) /* anything else: keep */
	};
	struct sock_fprog prog = { (unsigned short)(sizeof code / sizeof *code), code };
	if (setsockopt(lfd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) != 0) {
		fprintf(stderr, "aeserve: cannot hold new connections off while draining (%s)\n", strerror(errno));
		return;
	}
	struct timespec t = { 0, GATE_MS * 1000000L };
	while (nanosleep(&t, &t) != 0 && errno == EINTR) {
	}
}

/* Signals arrive through a pipe. Blocking them and calling sigwait is not
 * enough: libraries start threads before main (OpenBLAS's pool, from its
 * constructor) with nothing blocked, and a signal the kernel hands to one
 * of those would take its default action and kill the server undrained.
 * A handler installed for the whole process catches it in any thread. */
static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	if (write(sig_pipe[1], &b, 1) < 0) {
		/* the pipe is full of signals not yet read: this one adds nothing */
	}
	errno = saved;
}

static int catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2 };
	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* Waits for a signal for at most `seconds` (forever if < 0); returns it,
 * or 0 when the time is up. */
static int wait_signal(double seconds)
{
	struct pollfd p = { sig_pipe[0], POLLIN, 0 };
	double until = srv_now() + seconds;
	for (;;) {
		int ms = seconds < 0 ? -1 : (int)((until - srv_now()) * 1000);
		if (seconds >= 0 && ms <= 0) return 0;
		if (poll(&p, 1, ms) > 0) {
			unsigned char b;
			if (read(sig_pipe[0], &b, 1) == 1) return b;
		}
	}
}

static const char *sig_name(int sig)
{
	return sig == SIGTERM   ? "SIGTERM"
	       : sig == SIGINT  ? "SIGINT"
	       : sig == SIGHUP  ? "SIGHUP"
	       : sig == SIGUSR1 ? "SIGUSR1"
	                        : "SIGUSR2";
}

/* Serves until SIGTERM or SIGINT; returns that signal. SIGHUP reloads
 * every model whose file changed. */
static int serve_until_stopped(srv_state *s)
{
	for (;;) {
		int sig = wait_signal(-1);
		if (sig == SIGTERM || sig == SIGINT) return sig;
		if (sig != SIGHUP) {
			fprintf(stderr, "aeserve: %s: ignored; still serving\n", sig_name(sig));
			continue;
		}
		fprintf(stderr, "aeserve: SIGHUP: reloading the models whose files changed\n");
		char err[300];
		if (s->keys && srv_keys_reload(s->keys, err, sizeof err))
			fprintf(stderr, "aeserve: SIGHUP: API keys not reread, the old ones stay: %s\n", err);
		else if (s->keys)
			fprintf(stderr, "aeserve: SIGHUP: %d API keys\n", srv_keys_count(s->keys));
		int failed = srv_repo_refresh(s);
		if (failed)
			fprintf(stderr, "aeserve: SIGHUP: %d reloads failed; those models serve as before\n", failed);
	}
}

/* The pre-stop delay: still serving, /readyz 503. A second SIGTERM or
 * SIGINT ends it early. */
static void pre_stop_delay(int seconds)
{
	double until = srv_now() + seconds;
	for (double left = seconds; left > 0; left = until - srv_now()) {
		int sig = wait_signal(left);
		if (sig == SIGTERM || sig == SIGINT) {
			fprintf(stderr, "aeserve: %s again: stopping now\n", sig_name(sig));
			return;
		}
	}
}

int main(int argc, char **argv)
{
	ae_blas_tune(argv);
	static srv_state s;
	if (parse(&s.cfg, argc, argv)) return 2;
	srv_registry_init(&s);
	if (catch_signals() || fit_fd_limit(&s.cfg)) return 1;

	int lfd = listen_on(&s.cfg);
	if (lfd < 0) {
		int e = errno;
		fprintf(stderr, "aeserve: cannot listen on %s port %d: %s%s\n", s.cfg.addr, s.cfg.port,
		        e == EADDRINUSE ? "address already in use (another process listens there; "
		                          "--reuse-port on both shares it on purpose)"
		                        : strerror(e),
		        "");
		return 1;
	}
	if (s.cfg.port == 0 && bound_port(lfd, &s.cfg.port)) {
		fprintf(stderr, "aeserve: cannot read the port the kernel chose: %s\n", strerror(errno));
		close(lfd);
		return 1;
	}
	/* The one line a script reads to learn the port (--port 0), printed
	 * before the models load: /livez answers from here on. */
	fprintf(stderr, "aeserve: listening on %s port %d\n", s.cfg.addr, s.cfg.port);
	char *cert = NULL, *key = NULL, err[300];
	if (s.cfg.api_keys && !(s.keys = srv_keys_open(s.cfg.api_keys, err, sizeof err))) {
		fprintf(stderr, "aeserve: --api-keys: %s\n", err);
		close(lfd);
		return 1;
	}
	if (s.cfg.tls_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		fprintf(stderr, "aeserve: this libmicrohttpd was built without TLS\n");
		close(lfd);
		return 1;
	}
	if (s.cfg.tls_cert &&
	    (!(cert = read_pem("--tls-cert", s.cfg.tls_cert)) || !(key = read_pem("--tls-key", s.cfg.tls_key)))) {
		close(lfd);
		return 1;
	}
	if (srv_conns_start(&s) || !(s.daemon = start(&s, lfd, cert, key))) {
		fprintf(stderr, "aeserve: cannot start the %s server on %s port %d%s\n", cert ? "HTTPS" : "HTTP",
		        s.cfg.addr, s.cfg.port, cert ? " (is the key the certificate's, both PEM?)" : "");
		close(lfd);
		return 1;
	}
	int rc = 0;
	if (srv_models_load(&s)) {
		fprintf(stderr, "aeserve: not starting: a model failed to load\n");
		rc = 1;
	} else {
		atomic_store(&s.loaded, 1);
		fprintf(stderr, "aeserve: serving");
		for (int i = 0; i < s.n_models; i++)
			fprintf(stderr, "%s %s%s", i ? "," : "", s.models[i]->name,
			        strcmp(s.models[i]->name, s.default_name) == 0 ? " (default)" : "");
		const char *br = strchr(s.cfg.addr, ':') ? "[" : "", *ket = *br ? "]" : "";
		fprintf(stderr, " on %s://%s%s%s:%d%s\n", cert ? "https" : "http", br, s.cfg.addr, ket, s.cfg.port,
		        s.keys ? " (API keys required)" : "");

		int sig = serve_until_stopped(&s);
		atomic_store(&s.draining, 1);
		if (sig == SIGTERM && s.cfg.drain_delay_s > 0) {
			fprintf(stderr, "aeserve: SIGTERM: /readyz 503, still serving for %d s\n", s.cfg.drain_delay_s);
			pre_stop_delay(s.cfg.drain_delay_s);
		}
		fprintf(stderr, "aeserve: %s: draining\n", sig_name(sig));
		gate_new_connections(lfd);
		MHD_socket q = MHD_quiesce_daemon(s.daemon);
		if (q != MHD_INVALID_SOCKET) adopt_backlog(s.daemon, q);
		double until = srv_now() + s.cfg.drain_timeout_s;
		/* In flight: requests begun, and connections whose request has not
		 * begun yet (just accepted, or adopted from the backlog). */
		while ((atomic_load(&s.inflight) > 0 || srv_conns_waiting(&s, W_HEADERS) > 0) && srv_now() < until)
			usleep(2000);
		int left = atomic_load(&s.inflight);
		if (left > 0)
			fprintf(stderr, "aeserve: %d requests still in flight after %d s; closing them\n", left,
			        s.cfg.drain_timeout_s);
	}
	/* Workers first: they finish (or expire) what is queued and resume each
	 * suspended connection, so the daemon stops with none suspended; the
	 * daemon's stop completes every request, which releases its model; the
	 * models go last. */
	srv_models_stop(&s);
	MHD_stop_daemon(s.daemon);
	srv_conns_stop(&s);
	srv_models_release_all(&s);
	srv_keys_free(s.keys);
	if (key) memset(key, 0, strlen(key));
	free(cert);
	free(key);
	fprintf(stderr, "aeserve: stopped\n");
	return rc;
}
