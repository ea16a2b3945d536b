/*
 * aeserve's shared types: configuration, the table of operations, loaded
 * models (held by reference) with their bounded queues and inference
 * workers, inference jobs, and the per-connection state that carries a
 * connection's deadlines and its last answer.
 */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ae/infer.h"

#define SRV_MAX_MODELS 16

enum srv_log { SRV_LOG_TEXT, SRV_LOG_JSON, SRV_LOG_NONE };

typedef struct srv_config {
	char addr[64];
	int port;
	int reuse_port; /* share the port with other processes (SO_REUSEPORT) */
	int http_threads;
	int workers;        /* inference workers per model */
	int max_batch;      /* images per batched forward pass */
	int batch_delay_us; /* how long a worker waits to fill a batch */
	int queue_len;      /* requests waiting per model */
	size_t body_limit;  /* bytes */
	int timeout_ms;     /* inference deadline, from the end of the body */
	int conn_limit;
	int per_client_limit; /* connections per client address; 0: no limit */
	int conn_timeout_s;   /* an idle connection is closed after this */
	int header_timeout_s; /* a new connection's request headers must arrive within this */
	int body_timeout_s;   /* a body must arrive, and an answer be taken, within this */
	int drain_delay_s;    /* SIGTERM: keep serving with /readyz 503 for this long */
	int drain_timeout_s;  /* then wait at most this long for requests in flight */
	int log_format;
	char default_model[64];
	char **paths; /* model files or folders (argv's) */
	int n_paths;
} srv_config;

/* ---- ops.c: the operations, one row each ---- */

enum srv_input { SRV_IN_PNG = 1, SRV_IN_MULTIPART = 2, SRV_IN_JSON = 4 };
enum srv_items { SRV_ITEMS_IMAGES, SRV_ITEMS_CODES };
enum srv_output { SRV_OUT_CODES, SRV_OUT_IMAGES, SRV_OUT_SCORES };
/* Query parameters, as bits of srv_opdef.params. */
enum srv_param { SRV_P_RESIZE = 1, SRV_P_INVERT = 2, SRV_P_THRESHOLD = 4, SRV_P_QUANTILE = 8 };

typedef struct srv_opdef {
	const char *name; /* its route segment and metric label */
	ae_op engine;     /* what the plan runs; sizes come from the plan */
	int items;        /* srv_items: what a request sends, images or codes */
	unsigned inputs;  /* srv_input bits: body forms accepted */
	unsigned params;  /* srv_param bits: query parameters accepted */
	int output;       /* srv_output */
} srv_opdef;

#define SRV_N_OPS 5
extern const srv_opdef srv_ops[SRV_N_OPS];
const srv_opdef *srv_op_find(const char *name);

/* Metric and log labels: the operations first (route k is srv_ops[k]),
 * then the other routes. */
enum srv_route { R_MODELS = SRV_N_OPS, R_MODEL, R_LIVEZ, R_READYZ, R_METRICS, R_OTHER, R_N };
const char *srv_route_name(int route);

/* ---- registry.c: models, queues, workers ---- */

typedef struct srv_job srv_job;

/* One inference request's work. The HTTP thread fills it and suspends its
 * connection; a worker computes, sets state and resumes it. */
struct srv_job {
	ae_op op;
	int n;
	const float *in;  /* (n, ae_plan_in_size(op)) */
	float *out;       /* (n, ae_plan_out_size(op)) */
	double deadline;  /* monotonic seconds */
	atomic_int state; /* JOB_QUEUED, JOB_DONE, JOB_EXPIRED */
	struct MHD_Connection *conn;
	srv_job *next;
};
enum { JOB_NONE, JOB_QUEUED, JOB_DONE, JOB_EXPIRED };

typedef struct srv_model {
	char name[64];
	char path[1024];
	ae_model *m;
	ae_plan *plan;
	int c, h, w, latent;
	size_t image_size; /* C*H*W, what a PNG decodes to */
	/* Held by the registry and by every request that uses the model; the
	 * last release stops the workers and frees it. */
	atomic_int refs;
	/* queue */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	srv_job *head, *tail;
	int depth;
	long queued_images;
	int idle; /* workers waiting for a first job */
	int stopping;
	pthread_t *threads;
	int n_threads;
	const srv_config *cfg;
	/* metrics */
	atomic_long batches;
	atomic_long batch_hist[10]; /* le 1,2,4,...,256,+Inf */
	atomic_long batch_images;
} srv_model;

typedef struct srv_conns srv_conns;

typedef struct srv_state {
	srv_config cfg;
	srv_model *models[SRV_MAX_MODELS];
	int n_models;
	srv_model *default_model;
	atomic_int loaded;   /* every model loaded */
	atomic_int draining; /* SIGTERM came: /readyz 503, answers close their connection */
	atomic_int inflight; /* requests between their first callback and completion */
	struct MHD_Daemon *daemon;
	srv_conns *conns;
} srv_state;

/* Loads every model named by cfg->paths; prints each failure by name. */
int srv_models_load(srv_state *s);
/* Stops every model's workers after they finish what is queued. */
void srv_models_stop(srv_state *s);
/* Drops the registry's references (the models are freed with the last). */
void srv_models_release_all(srv_state *s);
/* The model named, held for the caller (release it), or NULL. */
srv_model *srv_model_hold(srv_state *s, const char *name);
srv_model *srv_model_hold_default(srv_state *s);
void srv_model_release(srv_model *m);
/* Suspends the job's connection and queues the job; returns 0, or -1 (and
 * leaves the connection alone) when the queue is full or stopping. */
int srv_enqueue(srv_model *m, srv_job *j);
double srv_now(void);

/* ---- conn.c: connections, their deadlines and the reaper ---- */

/* Why a connection has a deadline now. */
enum srv_wait { W_NONE, W_HEADERS, W_BODY, W_SEND, W_IDLE };

/* One per TCP connection, from accept to close (libmicrohttpd's socket
 * context). Written by the connection's own HTTP thread; the reaper reads
 * the deadline and may shut the socket down once it has passed, which no
 * trickle of bytes can postpone. */
typedef struct srv_conn {
	srv_state *s;
	int fd;
	atomic_llong deadline_ms; /* monotonic ms; 0: none */
	atomic_int waiting;       /* enum srv_wait behind the deadline */
	atomic_int reaped;        /* the srv_wait it was cut off in, or 0 */
	unsigned status;          /* the last answer queued on it */
	size_t bytes;
	struct srv_conn *prev, *next;
} srv_conn;

int srv_conns_start(srv_state *s);
void srv_conns_stop(srv_state *s);
void srv_conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);
srv_conn *srv_conn_of(struct MHD_Connection *c);
/* Starts the deadline for what the connection waits on next (W_NONE: none). */
void srv_conn_wait(srv_conn *sc, int waiting);
long srv_conns_reaped(int waiting);

/* ---- http.c ---- */
enum MHD_Result srv_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls);
void srv_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe);

/* ---- reply.c: every response goes through these; each records its status
 * and size on the connection for the log and metrics ---- */
enum MHD_Result srv_reply_buf(struct MHD_Connection *conn, unsigned status, const char *ctype, void *buf, size_t len,
                              const char **headers);
enum MHD_Result srv_reply_json(struct MHD_Connection *conn, unsigned status, char *json);
/* {"error": {"code", "message"}}; a 503 also says Retry-After: 1. The
 * message may quote the client's bytes: it is made valid UTF-8 first. */
enum MHD_Result srv_reply_error(struct MHD_Connection *conn, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* The same body with the given headers (name, value, ..., NULL), e.g. a 405's Allow. */
enum MHD_Result srv_reply_error_with(struct MHD_Connection *conn, unsigned status, const char **headers,
                                     const char *code, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- text.c: client bytes made safe to show ---- */
/* Length of the valid UTF-8 sequence at p within [p, end) (1 to 4), or 0
 * if none starts there: no overlong forms, no surrogates, nothing past
 * U+10FFFF. The one definition of valid UTF-8 in the server. */
int srv_utf8_len(const unsigned char *p, const unsigned char *end);
/* Copies src into dst (cap > 0 bytes, always terminated) as valid UTF-8:
 * each invalid byte becomes U+FFFD, control characters become '?'.
 * Truncates on a character boundary. Returns dst. */
char *srv_text_clean(char *dst, size_t cap, const char *src);
/* Appends s to dst as the inside of a JSON string (escaped, valid UTF-8);
 * returns the length written, at most cap - 1. */
size_t srv_json_escape(char *dst, size_t cap, const char *s);

/* ---- metrics.c ---- */
void srv_metrics_request(int route, unsigned status, double seconds);
char *srv_metrics_render(srv_state *s, size_t *len);

/* ---- log.c ---- */
void srv_access_log(int format, struct MHD_Connection *conn, const char *method, const char *path, unsigned status,
                    size_t bytes, double seconds);

/* ---- params.c: query parameters ---- */
typedef struct srv_params {
	int resize, invert;
	double quantile, threshold; /* threshold NAN: the quantile's */
	unsigned seen;              /* srv_param bits given */
} srv_params;

typedef struct srv_fail {
	unsigned status;
	const char *code;
	char msg[400];
} srv_fail;

void srv_params_init(srv_params *p);
/* Takes one key=value of the query for an operation that accepts the
 * srv_param bits in `accepted`. 0, or -1 with f set (400, naming it). */
int srv_params_set(srv_params *p, unsigned accepted, const char *key, const char *value, srv_fail *f);
/* After the last parameter: checks the combination. */
int srv_params_done(const srv_params *p, srv_fail *f);

/* ---- inputs.c: request bodies to float tensors ---- */

#define SRV_MAX_IMAGES 4096
#define SRV_MAX_PIXELS (4096u * 4096u)
/* Bytes of decompressed PNG data one request may cost, all images counted,
 * checked against each image's header before it is decoded. */
#define SRV_MAX_DECODED_BYTES (64u << 20)

int srv_fail_set(srv_fail *f, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* What a body is parsed for: the model, the operation (whose plan input
 * size is the per-item size), and the query's options. */
typedef struct srv_parse_ctx {
	const srv_model *m;
	const srv_opdef *op;
	const srv_params *p;
} srv_parse_ctx;

/* Each returns 0 and a malloc'd (n, ae_plan_in_size) array in *out, or -1
 * with f set. */
int srv_parse_png(const uint8_t *body, size_t len, const srv_parse_ctx *x, int *n, float **out, srv_fail *f);
int srv_parse_multipart(const uint8_t *body, size_t len, const char *ctype, const srv_parse_ctx *x, int *n, float **out,
                        srv_fail *f);
int srv_parse_json(const uint8_t *body, size_t len, const srv_parse_ctx *x, int *n, float **out, srv_fail *f);
/* The body's media type as a srv_input bit, 0 if none we take. */
unsigned srv_media_type(const char *ctype);

/* ---- jsontensor.c: {"shape": [...], "data": [...]} without a JSON tree ---- */

#define SRV_TENSOR_MAX_DIMS    8
#define SRV_TENSOR_MAX_DIM     (1L << 24)
#define SRV_TENSOR_MAX_NESTING 6 /* arrays inside the data array */

/* What the document held; the caller judges it against the model. */
typedef struct srv_tensor_in {
	int is_object, has_shape, has_data;
	int shape_not_array, data_not_array;
	int ndim; /* entries of "shape" (past the max: max + 1) */
	long dims[SRV_TENSOR_MAX_DIMS];
	int shape_bad; /* an entry is not an integer in [1, 2^24] */
	size_t shape_bad_at;
	float *v;      /* the numbers of "data" in order, flattened */
	size_t n, cap; /* n counts them all, even past cap */
	int data_not_number, data_too_deep;
	int bad_set; /* the first number outside [0, 1] (when checked) */
	size_t bad_index;
	double bad_value;
	int oom;
} srv_tensor_in;

/* Parses and validates the whole body; 0, or -1 with f set (400
 * invalid_json naming line and column, 500 if memory ran out). t->v is
 * the caller's to free (srv_tensor_free), whatever the result. */
int srv_tensor_parse(const uint8_t *body, size_t len, int check_range, srv_tensor_in *t, srv_fail *f);
void srv_tensor_free(srv_tensor_in *t);

/* ---- outputs.c: results to response bodies (malloc'd) ---- */
char *srv_json_tensor(const srv_model *m, const char *op, const float *v, int n, const int *dims, int ndims,
                      size_t *len);
char *srv_json_anomaly(const srv_model *m, const float *x, const float *y, int n, double threshold, double quantile,
                       size_t *len);
char *srv_json_model(const srv_model *m, int is_default, size_t *len);
/* Writes v like "%.6g" without locale or format parsing; returns the
 * length (at most 16). */
int srv_fmt_float(char *p, float v);

#endif
