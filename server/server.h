/*
 * aeserve's shared types: configuration, the tables of operations and
 * routes, loaded models (held by reference) with their bounded queues and
 * inference workers, inference jobs, the per-connection state that carries
 * a connection's deadlines and its last answer, and a request's state.
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

typedef struct srv_fail srv_fail;

enum srv_log { SRV_LOG_TEXT, SRV_LOG_JSON, SRV_LOG_NONE };

typedef struct srv_config {
	char addr[64];
	int port;
	int reuse_port; /* share the port with other processes (SO_REUSEPORT) */
	int http_threads;
	int workers;        /* inference workers per model */
	int max_batch;      /* images per batched forward pass */
	int precision;      /* AE_PREC_* or AE_PREC_AUTO: each model's plan (ae/infer.h) */
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
	int drift_window;               /* scored images the drift gauge looks back over */
	int metrics_public;             /* /metrics without a key even when keys are set */
	int no_playground;              /* no page at / */
	const char *api_keys;           /* file of API keys, or NULL */
	const char *tls_cert, *tls_key; /* PEM files: serve HTTPS */
	char default_model[64];
	char **paths; /* model files or folders (argv's) */
	int n_paths;
} srv_config;

typedef struct srv_state srv_state;
typedef struct srv_model srv_model;
typedef struct srv_req srv_req;

/* ---- ops.c: the operations, one row each ---- */

enum srv_input { SRV_IN_PNG = 1, SRV_IN_MULTIPART = 2, SRV_IN_JSON = 4, SRV_IN_ANY = 8 };
/* Which protocol a route speaks: its paths and its error bodies. */
enum srv_front { SRV_V1, SRV_V2 };
enum srv_items { SRV_ITEMS_IMAGES, SRV_ITEMS_CODES };
enum srv_output { SRV_OUT_CODES, SRV_OUT_IMAGES, SRV_OUT_SCORES, SRV_OUT_V2 };
/* Query parameters, as bits of srv_opdef.params. */
enum srv_param {
	SRV_P_RESIZE = 1,
	SRV_P_INVERT = 2,
	SRV_P_THRESHOLD = 4,
	SRV_P_QUANTILE = 8,
	SRV_P_MAP = 16,    /* anomaly: the per-pixel error maps in the JSON answer */
	SRV_P_SCALE = 32,  /* anomaly: a heatmap PNG's size, times the input's */
	SRV_P_SCORE = 64,  /* anomaly: which score (ae/scores.h) */
	SRV_P_FORMAT = 128 /* encode, decode: the codes' form (ae/codes.h) */
};
/* srv_opdef.engine of an operation whose request names what it wants
 * (V2 infer's "outputs"): the least the plan must run to give it all. */
#define SRV_ENGINE_BY_OUTPUTS (-1)

typedef struct srv_opdef {
	const char *name; /* its route segment and metric label */
	int front;        /* srv_front: /v1/models/NAME/OP and /v1/OP, or /v2/models/NAME/OP */
	int engine;       /* the ae_op the plan runs, whose shapes it reads and writes; or SRV_ENGINE_BY_OUTPUTS */
	int items;        /* srv_items: what a request sends, images or codes */
	unsigned inputs;  /* srv_input bits: body forms accepted (ANY: the protocol's framing decides) */
	unsigned params;  /* srv_param bits: query parameters accepted */
	int output;       /* srv_output */
	int scored;       /* compares each input with its reconstruction (srv_plan_scored) */
} srv_opdef;

/* Room for operations and for other routes in the metric label space. */
#define SRV_MAX_OPS    16
#define SRV_MAX_ROUTES 31
extern const srv_opdef srv_ops[];
extern const int srv_n_ops;
const srv_opdef *srv_op_find(int front, const char *name);
/* Whether plan p can run op: 0, or -1 with f set (422, naming the shapes). */
int srv_op_offered(const srv_opdef *op, const char *model, const ae_plan *p, srv_fail *f);

/* ---- routes.c: every route, one row each ---- */

enum srv_method { SRV_GET, SRV_POST }; /* GET routes answer HEAD too */
/* Who may call a route: anyone; a key holder (anyone when the server has
 * no keys); a key holder, and without keys loopback only; a key holder,
 * or anyone with --metrics-public. */
enum srv_access { SRV_ACCESS_OPEN, SRV_ACCESS_KEY, SRV_ACCESS_LOOPBACK, SRV_ACCESS_KEY_OR_PUBLIC };
/* What must be there before the route answers: nothing (health, /metrics);
 * every model loaded (503 before); and the model the path names (or the
 * default), held for the request (404 if none). */
enum srv_needs { SRV_NEEDS_NOTHING, SRV_NEEDS_LOADED, SRV_NEEDS_MODEL };

/* check: refusals the headers alone decide (before any body is read),
 * answering itself and returning 0 then, else 1; run: the answer, once
 * the body (if any) is in. */
typedef int (*srv_check_fn)(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc);
typedef enum MHD_Result (*srv_run_fn)(srv_state *s, srv_req *r, struct MHD_Connection *c);

typedef struct srv_route {
	const char *label; /* metric label; NULL: the operation's ({op}) */
	/* Literal text; {model}: a model name (a path segment); {version}: a
	 * segment; {op}: an operation of the path's front end; [...]: what is
	 * inside, or nothing; {asset}: the whole path, one of the
	 * playground's files. */
	const char *pattern;
	int method;      /* srv_method */
	int access;      /* srv_access */
	int needs;       /* srv_needs */
	size_t max_body; /* POST: bytes; 0: --max-body */
	srv_check_fn check;
	srv_run_fn run;
} srv_route;

extern const srv_route srv_routes[];
extern const int srv_n_routes;
/* The route whose pattern the path matches (filling r's op, name,
 * bad_version and asset), or NULL. */
const srv_route *srv_route_match(const srv_state *s, srv_req *r, const char *path);

/* Metric labels: operation k is k, route j is SRV_MAX_OPS + j, and a
 * request no route takes is SRV_LABEL_OTHER. */
#define SRV_MAX_LABELS  (SRV_MAX_OPS + SRV_MAX_ROUTES + 1)
#define SRV_LABEL_OTHER (SRV_MAX_LABELS - 1)
int srv_label_of(const srv_route *rt, const srv_opdef *op);
/* The label's name, or NULL for an id no table row has. */
const char *srv_label_name(int label);

/* ---- registry.c: models, queues, workers ---- */

typedef struct srv_job srv_job;
typedef struct srv_drift srv_drift;

/* One inference request's work. The HTTP thread fills it and suspends its
 * connection; a worker computes, sets state and resumes it. */
struct srv_job {
	const ae_plan *plan; /* what it runs on: every size below is this plan's */
	ae_op op;
	int n;
	const float *in;  /* (n, ae_plan_in_size(op)) */
	float *out;       /* (n, ae_plan_out_size(op)) */
	float *codes;     /* reconstruct: also the codes, (n, ae_plan_out_size(AE_OP_ENCODE)), or NULL */
	double deadline;  /* monotonic seconds */
	atomic_int state; /* JOB_QUEUED, JOB_DONE, JOB_EXPIRED */
	struct MHD_Connection *conn;
	srv_job *next;
};
enum { JOB_NONE, JOB_QUEUED, JOB_DONE, JOB_EXPIRED };

/* The batch-size histogram's buckets: le 1, 2, 4, ..., 256, then +Inf. */
#define SRV_BATCH_BUCKETS 9

struct srv_model {
	char name[64];
	char path[1024];
	/* The file as it was when read: a reload compares these. */
	unsigned long long dev, ino, size, mtime_ns;
	ae_model *m;
	/* The one source of every size the server reads or writes: what each
	 * operation takes and gives (ae_plan_in_shape, ae_plan_out_shape). */
	ae_plan *plan;
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
	atomic_long batch_hist[SRV_BATCH_BUCKETS + 1];
	atomic_long batch_images;
	srv_drift *drift; /* the scores served, for drift alerts */
};

typedef struct srv_conns srv_conns;
typedef struct srv_keys srv_keys;

/* Why the last load of a name failed, for the repository index. */
typedef struct srv_load_note {
	char name[64];
	char reason[300];
} srv_load_note;

struct srv_state {
	srv_config cfg;
	/* The registry: which model each name serves now. reg_mu guards the
	 * slots (held only to look up or swap a pointer); load_mu makes loads,
	 * reloads and unloads one at a time (held while a file is read). */
	pthread_mutex_t reg_mu, load_mu;
	srv_model *models[SRV_MAX_MODELS];
	int n_models;
	char default_name[64];
	srv_load_note notes[SRV_MAX_MODELS * 2];
	atomic_long loads_ok, loads_failed, unloads;
	atomic_int loaded;   /* every model loaded */
	atomic_int draining; /* SIGTERM came: /readyz 503, answers close their connection */
	atomic_int inflight; /* requests between their first callback and completion */
	struct MHD_Daemon *daemon;
	srv_conns *conns;
	srv_keys *keys; /* NULL: no access control */
};

void srv_registry_init(srv_state *s);
/* Reads, checks and compiles the model file at path and starts its
 * workers: a model that is ready to serve, held once for the caller, or
 * NULL with f set. The file must not change while it is read. */
srv_model *srv_model_open(const srv_config *cfg, const char *name, const char *path, srv_fail *f);
/* Whether m's file is no longer the file m was read from. */
int srv_model_file_changed(const srv_model *m);
/* Puts m in the registry under its name, in place of the model serving it
 * (whose reference the registry drops), taking over the caller's hold. */
int srv_registry_put(srv_state *s, srv_model *m);
/* Takes the model named out of the registry; its requests finish. */
int srv_registry_remove(srv_state *s, const char *name);
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
/* Every model served now, held, in name order; returns the count. */
int srv_models_snapshot(srv_state *s, srv_model **out);
void srv_models_release_snapshot(srv_model **ms, int n);
/* Models in memory: served ones and replaced ones still held. */
int srv_models_in_memory(void);
/* Suspends the job's connection and queues the job; returns 0, or -1 (and
 * leaves the connection alone) when the queue is full or stopping. */
int srv_enqueue(srv_model *m, srv_job *j);
double srv_now(void);

/* ---- repo.c: the model repository: load, reload, unload by name ---- */

/* A model name is one path segment: letters, digits, '.', '_', '-', not
 * starting with '.', at most 63 characters. */
int srv_model_name_ok(const char *name);
/* Loads (or reloads) the model named from its file; the new model serves
 * only once it has been read and checked whole, and the one it replaces
 * finishes the requests it has. 0, or -1 with f set (and the old model,
 * if any, still serving). */
int srv_repo_load(srv_state *s, const char *name, srv_fail *f);
int srv_repo_unload(srv_state *s, const char *name, srv_fail *f);
/* SIGHUP: reloads every model whose file changed; returns the failures. */
int srv_repo_refresh(srv_state *s);
/* The repository index, as the protocol's JSON array (malloc'd): every
 * model loaded or offered by the folders, or the loaded ones alone. */
char *srv_repo_index(srv_state *s, int ready_only, size_t *len);
/* Bytes of a repository call's body (a small JSON object). */
#define SRV_MAX_REPO_BODY 65536

/* ---- conn.c: connections, their deadlines and the reaper ---- */

/* An X-Request-Id taken from a request: 1 to this many characters of
 * [A-Za-z0-9._:-]; another is replaced by one of ours. */
#define SRV_REQUEST_ID_MAX 128

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
	int front;                               /* srv_front of the request: the form of its errors */
	char request_id[SRV_REQUEST_ID_MAX + 1]; /* the request's X-Request-Id, echoed on its answer */
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
/* Connections waiting on `waiting` now (W_HEADERS: open, their next
 * request not begun). */
int srv_conns_waiting(srv_state *s, int waiting);
/* Whether the client connects from this host (127.0.0.0/8 or ::1). */
int srv_client_is_loopback(struct MHD_Connection *c);

/* ---- drift.c: what the anomaly scores served say about incoming data ---- */

#define SRV_DRIFT_WINDOW_DEFAULT 1000
#define SRV_SCORE_BUCKETS        12
extern const double srv_score_le[SRV_SCORE_BUCKETS];
srv_drift *srv_drift_new(int window, double p99);
void srv_drift_free(srv_drift *d);
/* Counts n scored images by their mean squared errors (the histogram, the
 * window of those over the model's held-out p99) and the anomalies the
 * answer reported. */
void srv_drift_observe(srv_drift *d, const float *mse, int n, int anomalies);
typedef struct srv_drift_view {
	long bucket[SRV_SCORE_BUCKETS + 1]; /* cumulative counts, le srv_score_le[k], then +Inf */
	double sum;
	long anomalies;
	double share; /* of the window over p99; NAN while empty */
	int filled;
} srv_drift_view;
void srv_drift_read(srv_drift *d, srv_drift_view *v);

/* ---- keys.c: API keys ---- */

#define SRV_KEY_MIN  16 /* characters: shorter keys are refused as guessable */
#define SRV_KEY_MAX  256
#define SRV_KEYS_MAX 1024 /* keys in one file */
enum { SRV_KEY_OK, SRV_KEY_MISSING, SRV_KEY_INVALID };
/* Reads the key file; NULL with err set if it cannot be read or holds a
 * bad line (named by number, never by content) or no key. */
srv_keys *srv_keys_open(const char *path, char *err, size_t cap);
/* Rereads it; on failure the keys stay as they were. */
int srv_keys_reload(srv_keys *k, char *err, size_t cap);
int srv_keys_count(srv_keys *k);
/* An Authorization header (or NULL) against the keys: SRV_KEY_*. */
int srv_keys_check(srv_keys *k, const char *authorization);
void srv_keys_free(srv_keys *k);

/* ---- playground.c: the page at /, its files under /ui/ ---- */
typedef struct srv_asset {
	const char *path, *type, *etag;
	const unsigned char *data;
	size_t len;
} srv_asset;
/* Generated at build time from server/web/ (server/web/embed.c); ends
 * with a row whose path is NULL. */
extern const srv_asset srv_assets[];
const srv_asset *srv_asset_find(const char *path);
/* 200 with the file, or 304 if If-None-Match names its ETag. */
enum MHD_Result srv_asset_reply(struct MHD_Connection *conn, const srv_asset *a);

/* ---- reply.c: every response goes through these; each records its status
 * and size on the connection for the log and metrics ---- */
enum MHD_Result srv_reply_buf(struct MHD_Connection *conn, unsigned status, const char *ctype, void *buf, size_t len,
                              const char **headers);
/* A buffer that outlives the server (the embedded playground's files). */
enum MHD_Result srv_reply_static(struct MHD_Connection *conn, unsigned status, const char *ctype, const void *buf,
                                 size_t len, const char **headers);
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
/* request_id is a plain token (checked or made by http.c). */
void srv_access_log(int format, struct MHD_Connection *conn, const char *method, const char *path, unsigned status,
                    size_t bytes, double seconds, const char *request_id);

/* ---- params.c: query parameters ---- */
#define SRV_HEATMAP_MAX_SCALE 32
typedef struct srv_params {
	int resize, invert, map, scale;
	int score;                  /* ae_score_kind, or -1: the model's default */
	int format;                 /* ae_code_format of codes out (encode) or in (decode) */
	double quantile, threshold; /* threshold NAN: the quantile's */
	unsigned seen;              /* srv_param bits given */
} srv_params;

struct srv_fail {
	unsigned status;
	const char *code;
	char msg[400];
};

void srv_params_init(srv_params *p);
/* Takes one key=value of the query for an operation that accepts the
 * srv_param bits in `accepted`. 0, or -1 with f set (400, naming it). */
int srv_params_set(srv_params *p, unsigned accepted, const char *key, const char *value, srv_fail *f);
/* After the last parameter: checks the combination. */
int srv_params_done(const srv_params *p, srv_fail *f);

/* ---- inputs.c: request bodies to float tensors ---- */

#define SRV_MAX_IMAGES 4096
/* Bytes of decompressed PNG data one request may cost, all images counted,
 * checked against each image's header before it is decoded. (Its pixels:
 * AE_PNG_MAX_PIXELS, ae/image.h.) */
#define SRV_MAX_DECODED_BYTES (64u << 20)

int srv_fail_set(srv_fail *f, unsigned status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* What a body is parsed for: the model (its name, its codes' scale), the
 * plan and the engine operation whose input shape is each item's, the
 * route's operation (images or codes) and the query's options. */
typedef struct srv_parse_ctx {
	const srv_model *m;
	const ae_plan *plan;
	ae_op engine;
	const srv_opdef *op;
	const srv_params *p;
} srv_parse_ctx;

/* Each returns 0 and a malloc'd (n, ae_plan_in_size(plan, engine)) array
 * in *out, or -1 with f set. */
int srv_parse_png(const uint8_t *body, size_t len, const srv_parse_ctx *x, int *n, float **out, srv_fail *f);
int srv_parse_multipart(const uint8_t *body, size_t len, const char *ctype, const srv_parse_ctx *x, int *n, float **out,
                        srv_fail *f);
int srv_parse_json(const uint8_t *body, size_t len, const srv_parse_ctx *x, int *n, float **out, srv_fail *f);
/* Whether model m can give or take codes in format (int8 needs the
 * model's scale): 0, or -1 with f set (422). */
int srv_check_format(const srv_model *m, int format, srv_fail *f);
/* A request's PNG decoding, all images counted against one budget. */
typedef struct srv_png_budget {
	uint64_t left; /* inflated bytes still allowed */
} srv_png_budget;
/* Decodes one PNG into dst (one item of the input shape). which names it
 * in messages ("the image", "part 2"). */
int srv_png_decode_one(const uint8_t *buf, size_t len, const srv_parse_ctx *x, srv_png_budget *b, float *dst,
                       const char *which, srv_fail *f);
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
/* Judges a parsed tensor (shape, count, range) against the model and the
 * operation; 0, or -1 with f set. */
int srv_tensor_check(const srv_tensor_in *t, const srv_parse_ctx *x, srv_fail *f);
/* Just a data value (a number array, nested or flat) into t->v. */
int srv_tensor_data(const uint8_t *p, size_t len, int check_range, srv_tensor_in *t, srv_fail *f);

/* An Open Inference Protocol request without a JSON tree for its numbers:
 * the whole document is validated, each inputs[k].data is located, and
 * what remains (the skeleton, with each data cut to []) is small enough
 * for jansson. */
#define SRV_V2_MAX_INPUTS   8
#define SRV_V2_MAX_SKELETON 65536 /* bytes of JSON outside the tensor data */
typedef struct srv_v2_span {
	size_t off, len; /* len 0: no data member */
} srv_v2_span;
typedef struct srv_v2_split {
	char *skel; /* malloc'd, NUL-terminated */
	size_t skel_len;
	srv_v2_span data[SRV_V2_MAX_INPUTS];
	int too_many; /* more inputs than SRV_V2_MAX_INPUTS */
} srv_v2_split;
int srv_json_split_v2(const uint8_t *body, size_t len, srv_v2_split *sp, srv_fail *f);

/* ---- outputs.c: results to response bodies (malloc'd) ---- */
/* A half float (ae/codes.h) in the fewest digits that read back as it. */
int srv_fmt_half(char *p, uint16_t h);
/* Writes v in the fewest digits that read back as exactly v, without
 * locale or format parsing; returns the length (at most 16). */
int srv_fmt_float(char *p, float v);
/* encode's answer: n codes of shape s in format (ae/codes.h); int8 codes
 * carry the model's scale. */
char *srv_json_codes(const srv_model *m, const float *v, int n, ae_shape s, int format, size_t *len);
/* {"model", "op", "shape": [n, s...], "data"}: n items of shape s. */
char *srv_json_tensor(const srv_model *m, const char *op, const float *v, int n, ae_shape s, size_t *len);
char *srv_json_anomaly(const srv_model *m, int kind, const float *scores, int n, double threshold, double quantile,
                       size_t *len);
/* The anomaly answer with the maps (n, H, W) as a tensor ("maps"). */
char *srv_json_anomaly_maps(const srv_model *m, int kind, const float *scores, const float *maps, int n, int h, int w,
                            double threshold, double quantile, size_t *len);
char *srv_json_model(const srv_model *m, int is_default, size_t *len);

/* ---- scores.c: anomaly scores of a model's answers ---- */
/* Whether plan p gives back its input's shape, as comparing each input
 * with its reconstruction needs (anomaly, V2's score and anomaly). */
int srv_plan_scored(const ae_plan *p);
/* The score asked (-1: the model's default) as the kind the model has, or
 * -1 with f set (422, naming the scores it has). */
int srv_score_kind(const srv_model *m, int asked, srv_fail *f);
/* Whether that kind needs the codes (z) of the images. */
int srv_score_needs_codes(int kind);
/* The score's value at quantile q, and where a value falls (0..100), from
 * the model's held-out calibration of it. */
double srv_score_quantile(const srv_model *m, int kind, double q);
double srv_score_percentile(const srv_model *m, int kind, double v);
/* The threshold a request's parameters set: its value, else the score's
 * value at its quantile. */
double srv_score_threshold(const srv_model *m, int kind, const srv_params *p);
/* The scoring step of an answer: each of the n items' score of `kind`
 * into scores (x the inputs, y their reconstructions by plan p, z the
 * codes for latent and combined), counted toward the model's drift, which
 * watches the mean squared error against its p99 whatever the score, and
 * the anomalies the answer reports (scores over threshold). 0, or -1 when
 * out of memory. */
int srv_score_answer(const srv_model *m, const ae_plan *p, int kind, const float *x, const float *y, const float *z,
                     int n, double threshold, float *scores);
/* Each item's per-pixel error map, (n, H, W): |x - y| averaged over the
 * channels of image shape s. */
void srv_error_maps(ae_shape s, const float *x, const float *y, int n, float *maps);

/* ---- heatmap.c ---- */
/* One image's heatmap as an RGB PNG (malloc'd), scale times its size: the
 * input x (of image shape s) in gray under a colour map of its error map.
 * 0, or -1 with err. */
int srv_heatmap_png(ae_shape s, const float *x, const float *map, int scale, uint8_t **png, size_t *len, ae_error *err);

/* ---- v2.c: the Open Inference Protocol ---- */

#define SRV_V2_MAX_ID 256 /* bytes of a request's "id" */
/* The model's outputs, rows of v2.c's output table. */
enum { SRV_V2_LATENT, SRV_V2_RECON, SRV_V2_SCORE, SRV_V2_ANOMALY, SRV_V2_N_OUT };

typedef struct srv_v2_req {
	char *id;                /* echoed; NULL when the request had none */
	int order[SRV_V2_N_OUT]; /* the outputs asked, in the order asked */
	int n_out;
	unsigned binary;   /* bit k: output k answered as binary data */
	int latent_format; /* ae_code_format of the latent output (its "datatype" parameter) */
	srv_params p;      /* threshold, quantile, resize, invert */
	ae_op engine;      /* the least the plan runs to give every output asked */
	int codes, scored; /* an output asked needs the codes; the scores */
} srv_v2_req;

/* header_len: Inference-Header-Content-Length, or -1 when absent. Fills q
 * and the (n, ae_plan_in_size) inputs; 0, or -1 with f set. */
int srv_v2_parse(const uint8_t *body, size_t len, long long header_len, const srv_parse_ctx *x, srv_v2_req *q, int *n,
                 float **out, srv_fail *f);
void srv_v2_req_free(srv_v2_req *q);

/* What an answer is made of. */
typedef struct srv_v2_out {
	const srv_model *m;
	const ae_plan *plan; /* the shapes of z and y */
	const srv_v2_req *q;
	int n;
	const float *z, *y, *scores; /* (n, codes), (n, reconstruction), (n): NULL if not asked */
	double threshold;
	int score; /* ae_score_kind of scores */
} srv_v2_out;
/* The response body: JSON, then the binary outputs; *json_len is the
 * JSON's length (the Inference-Header-Content-Length). */
char *srv_v2_response(const srv_v2_out *o, size_t *len, size_t *json_len);
char *srv_v2_server_json(size_t *len);
char *srv_v2_model_json(const srv_model *m, size_t *len);

/* ---- http.c: one request, from its first callback to srv_completed ---- */

enum { PH_RECEIVING, PH_ANSWERED, PH_SUBMITTED };

struct srv_req {
	double t0;
	const srv_route *route; /* NULL until routed (and when no route takes it) */
	int label;              /* its metric label (srv_label_of) */
	int front;              /* srv_front of the path: the form of its errors */
	int bad_version;        /* a /v2 path named a model version other than 1 */
	char name[80];          /* the model the path names ({model}; as long as the matcher reads) */
	const srv_opdef *op;    /* an operation's route: which ({op}); else NULL */
	const srv_asset *asset; /* the playground's file ({asset}) */
	int phase;
	unsigned media;        /* srv_input bit of the body */
	const char *ctype_hdr; /* the Content-Type header, owned by MHD for the request */
	srv_model *model;      /* held until srv_completed */
	const ae_plan *plan;   /* the model's plan this request runs on */
	srv_conn *sc;
	char method[16], path[512];
	uint8_t *body;
	size_t len, cap;
	int too_large; /* a chunked body passed the limit: discarding */
	srv_job job;
	float *in, *out, *codes;
	srv_params params;
	long long header_len; /* V2: Inference-Header-Content-Length, -1 if none */
	int score_kind;       /* the anomaly score answered (ae_score_kind) */
	srv_v2_req v2;
};

enum MHD_Result srv_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls);
void srv_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe);

/* ---- inference.c: an operation's request: body to job, results to answer ---- */

/* The route check of an operation: its media type, the V2 header length,
 * the query parameters, whether the model offers it. */
int srv_infer_check(srv_state *s, srv_req *r, struct MHD_Connection *c, enum MHD_Result *rc);
/* The body is in: parse it and queue the job (the connection waits). */
enum MHD_Result srv_infer_submit(srv_state *s, srv_req *r, struct MHD_Connection *c);
/* A worker resumed the request: the answer from the job's results. */
enum MHD_Result srv_infer_respond(srv_state *s, srv_req *r, struct MHD_Connection *c);

#endif
