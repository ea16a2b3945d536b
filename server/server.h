/*
 * aeserve's shared types: configuration, loaded models with their bounded
 * queues and inference workers, inference jobs, and the per-request state
 * that lives in libmicrohttpd's *con_cls from the first callback to
 * NOTIFY_COMPLETED.
 */
#ifndef SRV_SERVER_H
#define SRV_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "ae/infer.h"

#define SRV_MAX_MODELS 16

enum srv_op { SRV_ENCODE, SRV_DECODE, SRV_RECONSTRUCT, SRV_DENOISE, SRV_ANOMALY, SRV_N_OPS };
enum srv_log { SRV_LOG_TEXT, SRV_LOG_JSON, SRV_LOG_NONE };

typedef struct srv_config {
	char addr[64];
	int port;
	int http_threads;
	int workers;          /* inference workers per model */
	int max_batch;        /* images per batched forward pass */
	int batch_delay_us;   /* how long a worker waits to fill a batch */
	int queue_len;        /* requests waiting per model */
	size_t body_limit;    /* bytes */
	int timeout_ms;       /* a request's deadline for inference */
	int conn_limit;
	int conn_timeout_s;   /* idle or slow clients are dropped after this */
	int log_format;
	char default_model[64];
	const char **paths;   /* model files or folders */
	int n_paths;
} srv_config;

typedef struct srv_job srv_job;

/* One inference request's work. The HTTP thread fills op/n/in/out and
 * suspends its connection; a worker computes, sets state and resumes it. */
struct srv_job {
	int op;
	int n;
	float *in;            /* n x (decode ? latent : C*H*W) */
	float *out;           /* n x (encode ? latent : C*H*W) */
	double deadline;      /* monotonic seconds */
	atomic_int state;     /* JOB_QUEUED, JOB_DONE, JOB_EXPIRED */
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
	size_t in_size;       /* C*H*W */
	/* queue */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	srv_job *head, *tail;
	int depth;
	long queued_images;
	int idle;             /* workers waiting for a first job */
	int stopping;
	pthread_t *threads;
	int n_threads;
	const srv_config *cfg;
	/* metrics */
	atomic_long batches;
	atomic_long batch_hist[10];  /* le 1,2,4,...,256,+Inf */
	atomic_long batch_images;
} srv_model;

typedef struct srv_state {
	srv_config cfg;
	srv_model *models[SRV_MAX_MODELS];
	int n_models;
	srv_model *default_model;
	atomic_int ready;     /* every model loaded, not draining */
	atomic_int inflight;  /* requests suspended on a worker */
	struct MHD_Daemon *daemon;
} srv_state;

/* ---- registry.c: models, queues, workers ---- */
/* Loads every model named by cfg->paths; prints each failure by name. */
int srv_models_load(srv_state *s);
void srv_models_free(srv_state *s);
srv_model *srv_model_find(srv_state *s, const char *name);
/* Suspends the job's connection and queues the job; returns 0, or -1 (and
 * leaves the connection alone) when the queue is full or stopping. */
int srv_enqueue(srv_model *m, srv_job *j);
double srv_now(void);

/* ---- http.c ---- */
enum MHD_Result srv_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size,
                           void **con_cls);
void srv_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                   enum MHD_RequestTerminationCode toe);

/* ---- reply.c: every response goes through these ---- */
enum MHD_Result srv_reply_buf(struct MHD_Connection *conn, unsigned status, const char *ctype,
                              void *buf, size_t len, const char **headers);
enum MHD_Result srv_reply_json(struct MHD_Connection *conn, unsigned status, char *json);
/* {"error": {"code", "message"}}; a 503 also says Retry-After: 1. */
enum MHD_Result srv_reply_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same body with the given headers (name, value, ..., NULL), e.g. a 405's Allow. */
enum MHD_Result srv_reply_error_with(struct MHD_Connection *conn, unsigned status, const char **headers,
                                     const char *code, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* ---- metrics.c ---- */
enum srv_route {
	R_ENCODE, R_DECODE, R_RECONSTRUCT, R_DENOISE, R_ANOMALY, R_MODELS, R_MODEL,
	R_LIVEZ, R_READYZ, R_METRICS, R_OTHER, R_N
};
void srv_metrics_request(int route, unsigned status, double seconds);
char *srv_metrics_render(srv_state *s, size_t *len);
const char *srv_route_name(int route);

/* ---- log.c ---- */
void srv_access_log(int format, struct MHD_Connection *conn, const char *method, const char *path,
                    unsigned status, size_t bytes, double seconds);

#endif

/* ---- inputs.c: request bodies to float tensors ---- */
typedef struct srv_fail {
	unsigned status;
	const char *code;
	char msg[400];
} srv_fail;

typedef struct srv_in_opts {
	int resize, invert;
} srv_in_opts;

#define SRV_MAX_IMAGES 4096
#define SRV_MAX_PIXELS (4096u * 4096u)

/* Each returns 0 and a malloc'd (n, per) array in *out, or -1 with f set.
 * per is the model's C*H*W (images) or latent size (decode's codes). */
int srv_parse_png(const uint8_t *body, size_t len, const srv_model *m, const srv_in_opts *o,
                  int *n, float **out, srv_fail *f);
int srv_parse_multipart(const uint8_t *body, size_t len, const char *ctype, const srv_model *m,
                        const srv_in_opts *o, int *n, float **out, srv_fail *f);
int srv_parse_json(const uint8_t *body, size_t len, const srv_model *m, int codes, const srv_in_opts *o,
                   int *n, float **out, srv_fail *f);
int srv_fail_set(srv_fail *f, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* ---- outputs.c: results to response bodies (malloc'd) ---- */
char *srv_json_tensor(const srv_model *m, const char *op, const float *v, int n, const int *dims, int ndims,
                      size_t *len);
char *srv_json_anomaly(const srv_model *m, const float *x, const float *y, int n, double threshold,
                       double quantile, size_t *len);
char *srv_json_model(const srv_model *m, int is_default, size_t *len);

/* ---- reply.c: what the last reply on this thread sent (for the log) ---- */
void srv_reply_last(unsigned *status, size_t *bytes);
