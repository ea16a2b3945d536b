/*
 * The Open Inference Protocol ("V2", KServe and Triton) over the same
 * models, queues and workers as /v1: server and model metadata, and the
 * infer request and response, in JSON and with the binary tensor data
 * extension.
 *
 * A model has one input, "input": FP32 [N,C,H,W] (or [N,C*H*W], or
 * [N,H,W] for one channel) with values in [0, 1], or BYTES [N] whose
 * elements are PNG files. Its outputs are the rows of one table (below),
 * which the metadata, the parsing of a request's "outputs" and the answer
 * all read: "latent" FP32 [N,latent], "reconstruction" FP32 [N,C',H',W']
 * (the plan's output, which an image-to-image model gives in another
 * shape), and, for a model that gives back its input's shape, "score"
 * FP32 [N] and "anomaly" BOOL [N] (score above the threshold); a request
 * gets all the model has unless its "outputs" names some.
 *
 * A request's JSON numbers never become a JSON tree (jsontensor.c cuts
 * them out first); binary tensors are read in place after the JSON
 * header, whose length Inference-Header-Content-Length gives. A header
 * length of 0 makes the whole body one raw input: a PNG file, or FP32
 * images.
 */
#include "server.h"

#include "ae/codes.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae/scores.h"
#include "ae/version.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "binary tensor data is little-endian; this file assumes the host is too"
#endif

/* ---------------------------------------------------------------- outputs */

typedef struct obuf {
	char *p;
	size_t len, cap;
} obuf;

static int grow(obuf *b, size_t more)
{
	if (b->len + more <= b->cap) return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int put_str(obuf *b, const char *s)
{
	size_t n = strlen(s);
	if (grow(b, n)) return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

/* How an output's values go out: its datatype as answered, the bytes of
 * a value as binary data, value i as JSON (at most 18 bytes), count values
 * as binary data, and whether it has output parameters of its own, which
 * put_params writes (NULL: never). */
typedef struct v2_writer {
	const char *(*datatype)(const srv_v2_out *o);
	size_t (*bytes)(const srv_v2_out *o);
	int (*json)(char *p, const srv_v2_out *o, const float *v, size_t i);
	void (*binary)(uint8_t *at, const srv_v2_out *o, const float *v, size_t count);
	int (*has_params)(const srv_v2_out *o);
	int (*put_params)(obuf *b, const srv_v2_out *o);
} v2_writer;

/* FP32 values as they are. */
static const char *f32_type(const srv_v2_out *o)
{
	(void)o;
	return "FP32";
}
static size_t f32_bytes(const srv_v2_out *o)
{
	(void)o;
	return sizeof(float);
}
static int f32_put(char *p, const srv_v2_out *o, const float *v, size_t i)
{
	(void)o;
	return srv_fmt_float(p, v[i]);
}
static void f32_put_binary(uint8_t *at, const srv_v2_out *o, const float *v, size_t count)
{
	(void)o;
	memcpy(at, v, count * sizeof(float));
}
static const v2_writer f32_writer = { f32_type, f32_bytes, f32_put, f32_put_binary, NULL, NULL };

/* BOOL: a score over the threshold. */
static const char *flag_type(const srv_v2_out *o)
{
	(void)o;
	return "BOOL";
}
static size_t flag_bytes(const srv_v2_out *o)
{
	(void)o;
	return 1;
}
static int flag_put(char *p, const srv_v2_out *o, const float *v, size_t i)
{
	return sprintf(p, "%s", v[i] > o->threshold ? "true" : "false");
}
static void flag_put_binary(uint8_t *at, const srv_v2_out *o, const float *v, size_t count)
{
	for (size_t i = 0; i < count; i++)
		at[i] = v[i] > o->threshold;
}
static const v2_writer flag_writer = { flag_type, flag_bytes, flag_put, flag_put_binary, NULL, NULL };

/* Codes in the form the request asked (its "datatype" parameter: FP32,
 * FP16 or INT8, ae/codes.h); INT8 codes carry the model's scale. */
static const char *const code_types[] = { "FP32", "FP16", "INT8" };
static const char *codes_type(const srv_v2_out *o)
{
	return code_types[o->q->latent_format];
}
static size_t codes_bytes(const srv_v2_out *o)
{
	static const size_t bytes[] = { 4, 2, 1 };
	return bytes[o->q->latent_format];
}
static size_t code_dim(const srv_v2_out *o)
{
	return ae_plan_out_size(o->plan, AE_OP_ENCODE);
}
static int codes_put(char *p, const srv_v2_out *o, const float *v, size_t i)
{
	if (o->q->latent_format == AE_CODE_F16) return srv_fmt_half(p, ae_f32_to_f16(v[i]));
	if (o->q->latent_format == AE_CODE_INT8) {
		int8_t q;
		ae_codes_to_int8(v + i, 1, 1, o->m->m->code_scale + i % code_dim(o), &q);
		return sprintf(p, "%d", q);
	}
	return srv_fmt_float(p, v[i]);
}
static void codes_put_binary(uint8_t *at, const srv_v2_out *o, const float *v, size_t count)
{
	if (o->q->latent_format == AE_CODE_F16)
		for (size_t i = 0; i < count; i++) { /* little-endian, as the protocol's binary data is */
			uint16_t h = ae_f32_to_f16(v[i]);
			at[2 * i] = (uint8_t)h, at[2 * i + 1] = (uint8_t)(h >> 8);
		}
	else if (o->q->latent_format == AE_CODE_INT8)
		ae_codes_to_int8(v, o->n, (int)code_dim(o), o->m->m->code_scale, (int8_t *)at);
	else
		memcpy(at, v, count * sizeof(float));
}
/* An INT8 latent's scale (values are q * scale[d]), as output parameters. */
static int codes_has_params(const srv_v2_out *o)
{
	return o->q->latent_format == AE_CODE_INT8;
}
static int codes_put_params(obuf *b, const srv_v2_out *o)
{
	const float *s = o->m->m->code_scale;
	const size_t dim = code_dim(o);
	if (grow(b, 16 + dim * 18)) return -1;
	b->len += (size_t)sprintf(b->p + b->len, "\"scale\":[");
	for (size_t d = 0; d < dim; d++) {
		if (d) b->p[b->len++] = ',';
		b->len += (size_t)srv_fmt_float(b->p + b->len, s[d]);
	}
	return put_str(b, "]");
}
static const v2_writer codes_writer = { codes_type,       codes_bytes,      codes_put,
	                                codes_put_binary, codes_has_params, codes_put_params };

static const float *codes_of(const srv_v2_out *o)
{
	return o->z;
}
static const float *images_of(const srv_v2_out *o)
{
	return o->y;
}
static const float *scores_of(const srv_v2_out *o)
{
	return o->scores;
}

/* The outputs, one row each: what the metadata lists, what a request's
 * "outputs" may name, what the answer writes. */
typedef struct v2_output {
	const char *name;
	const char *datatype; /* in the metadata (the latent's may be asked in other forms) */
	ae_op engine;         /* what the plan runs to give it (a reconstruction gives the codes too) */
	int scalar;           /* one value per item; else an item of the plan's output of engine */
	int scored;           /* needs each input's score against its reconstruction */
	int typed;            /* takes a "datatype" parameter (the codes' forms) */
	const float *(*values)(const srv_v2_out *o);
	const v2_writer *w;
} v2_output;

static const v2_output outputs[] = {
	[SRV_V2_LATENT] = { "latent", "FP32", AE_OP_ENCODE, 0, 0, 1, codes_of, &codes_writer },
	[SRV_V2_RECON] = { "reconstruction", "FP32", AE_OP_RECONSTRUCT, 0, 0, 0, images_of, &f32_writer },
	[SRV_V2_SCORE] = { "score", "FP32", AE_OP_RECONSTRUCT, 1, 1, 0, scores_of, &f32_writer },
	[SRV_V2_ANOMALY] = { "anomaly", "BOOL", AE_OP_RECONSTRUCT, 1, 1, 0, scores_of, &flag_writer },
};
_Static_assert(sizeof outputs / sizeof *outputs == SRV_V2_N_OUT, "a row for every output");

/* Values per item of output k. */
static size_t per_item(const v2_output *out, const ae_plan *p)
{
	return out->scalar ? 1 : ae_plan_out_size(p, out->engine);
}

/* ------------------------------------------------------------- metadata */

char *srv_v2_server_json(size_t *len)
{
	char *s = NULL;
	json_t *o = json_pack("{s:s, s:s, s:[s,s]}", "name", "aeserve", "version", AE_VERSION, "extensions",
	                      "binary_tensor_data", "model_repository");
	if (o) s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s) *len = strlen(s);
	return s;
}

static int offered(const v2_output *out, const ae_plan *p)
{
	return !out->scored || srv_plan_scored(p);
}

/* [-1, d...]: a batch of any size of items of shape s. */
static json_t *tensor_meta(const char *name, const char *type, const ae_shape *s)
{
	json_t *shape = json_array();
	json_array_append_new(shape, json_integer(-1));
	for (int i = 0; s && i < s->rank; i++)
		json_array_append_new(shape, json_integer(s->d[i]));
	return json_pack("{s:s, s:s, s:o}", "name", name, "datatype", type, "shape", shape);
}

char *srv_v2_model_json(const srv_model *m, size_t *len)
{
	const ae_shape in = ae_plan_in_shape(m->plan, AE_OP_RECONSTRUCT);
	json_t *outs = json_array();
	for (int k = 0; k < SRV_V2_N_OUT; k++) {
		const v2_output *out = &outputs[k];
		ae_shape s = ae_plan_out_shape(m->plan, out->engine);
		if (offered(out, m->plan))
			json_array_append_new(outs, tensor_meta(out->name, out->datatype, out->scalar ? NULL : &s));
	}
	json_t *o = json_pack("{s:s, s:[s], s:s, s:[o], s:o, s:{s:s, s:s, s:f, s:s}}", "name", m->name, "versions", "1",
	                      "platform", "aeserve_autoencoder", "inputs", tensor_meta("input", "FP32", &in), "outputs",
	                      outs, "parameters", "checksum", m->m->checksum, "task", m->m->task, "default_threshold",
	                      ae_model_quantile(m->m, 0.99), "precision",
	                      ae_precision_name(ae_plan_precision(m->plan)));
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
	json_decref(o);
	if (s) *len = strlen(s);
	return s;
}

/* -------------------------------------------------------------- request */

void srv_v2_req_free(srv_v2_req *q)
{
	free(q->id);
	q->id = NULL;
}

/* A number or boolean parameter as the text srv_params_set reads, so each
 * rule on its value lives in params.c alone. */
static int param_text(const json_t *v, char *buf, size_t cap)
{
	if (json_is_boolean(v)) return snprintf(buf, cap, "%s", json_is_true(v) ? "true" : "false"), 0;
	if (json_is_number(v)) return snprintf(buf, cap, "%.17g", json_number_value(v)), 0;
	return -1;
}

/* The request parameters of an infer, besides binary_data_output. */
#define SRV_V2_PARAMS (SRV_P_RESIZE | SRV_P_INVERT | SRV_P_THRESHOLD | SRV_P_QUANTILE | SRV_P_SCORE)

static int request_params(json_t *params, srv_v2_req *q, int *bin_all, srv_fail *f)
{
	const char *key;
	json_t *v;
	char text[64];
	if (!params) return 0;
	if (!json_is_object(params)) return srv_fail_set(f, 400, "invalid_request", "'parameters' is not an object");
	json_object_foreach(params, key, v)
	{
		if (strcmp(key, "binary_data_output") == 0) {
			if (!json_is_boolean(v))
				return srv_fail_set(f, 400, "invalid_parameter",
				                    "binary_data_output is not true or false");
			*bin_all = json_is_true(v);
			continue;
		}
		if (strcmp(key, "score") == 0 && json_is_string(v)) {
			if (srv_params_set(&q->p, SRV_V2_PARAMS, key, json_string_value(v), f)) return -1;
			continue;
		}
		if (param_text(v, text, sizeof text) != 0) {
			char k[80];
			srv_text_clean(k, sizeof k, key);
			return srv_fail_set(f, 400, "invalid_parameter", "parameter '%s' is not a number or boolean",
			                    k);
		}
		if (srv_params_set(&q->p, SRV_V2_PARAMS, key, text, f)) return -1;
	}
	return srv_params_done(&q->p, f);
}

/* "latent, reconstruction, score, anomaly": every output's name, for messages. */
static void output_names(char *buf, size_t cap)
{
	size_t at = 0;
	buf[0] = '\0';
	for (int k = 0; k < SRV_V2_N_OUT && at < cap; k++)
		at += (size_t)snprintf(buf + at, cap - at, "%s%s", k ? ", " : "", outputs[k].name);
}

static int output_index(const char *name)
{
	for (int k = 0; k < SRV_V2_N_OUT; k++)
		if (strcmp(name, outputs[k].name) == 0) return k;
	return -1;
}

/* Output k's parameters: binary_data (into *bin) and, for an output that
 * takes one, its datatype. */
static int output_params(json_t *v, int k, const char *nm, srv_v2_req *q, int *bin, srv_fail *f)
{
	const char *pk;
	json_t *pv;
	if (!json_is_object(v))
		return srv_fail_set(f, 400, "invalid_request", "output '%s': parameters is not an object", nm);
	json_object_foreach(v, pk, pv)
	{
		/* the latent's compact forms (ae/codes.h), as the output's datatype */
		if (outputs[k].typed && strcmp(pk, "datatype") == 0) {
			const char *t = json_string_value(pv);
			int fm = -1;
			for (int ti = 0; t && ti < 3; ti++)
				if (strcmp(t, code_types[ti]) == 0) fm = ti;
			if (fm < 0)
				return srv_fail_set(f, 400, "invalid_parameter",
				                    "output '%s': datatype is FP32, FP16 or INT8", nm);
			q->latent_format = fm;
			continue;
		}
		if (strcmp(pk, "binary_data") != 0 || !json_is_boolean(pv))
			return srv_fail_set(f, 400, "invalid_parameter",
			                    "output '%s': the parameters are binary_data (true or false)%s", nm,
			                    outputs[k].typed ? " and datatype" : "");
		*bin = json_is_true(pv);
	}
	return 0;
}

/* What the outputs asked need: the least the plan runs to give them all
 * (an encode for the codes alone), the codes, the scores. */
static void outputs_need(srv_v2_req *q)
{
	q->engine = AE_OP_ENCODE;
	q->codes = q->scored = 0;
	for (int i = 0; i < q->n_out; i++) {
		const v2_output *out = &outputs[q->order[i]];
		if (out->engine != AE_OP_ENCODE) q->engine = AE_OP_RECONSTRUCT;
		q->codes |= out->values == codes_of;
		q->scored |= out->scored;
	}
}

/* The "outputs" member: which outputs, in what order, which as binary;
 * without it, every output the model has. */
static int request_outputs(json_t *outs, srv_v2_req *q, int bin_all, const srv_parse_ctx *x, srv_fail *f)
{
	q->n_out = 0;
	q->binary = 0;
	if (!outs) {
		for (int i = 0; i < SRV_V2_N_OUT; i++)
			if (offered(&outputs[i], x->plan)) {
				q->order[q->n_out++] = i;
				if (bin_all) q->binary |= 1u << i;
			}
		outputs_need(q);
		return 0;
	}
	if (!json_is_array(outs) || json_array_size(outs) == 0 || json_array_size(outs) > SRV_V2_N_OUT)
		return srv_fail_set(f, 400, "invalid_request", "'outputs' must be an array of 1 to %d outputs",
		                    SRV_V2_N_OUT);
	size_t i;
	json_t *o;
	json_array_foreach(outs, i, o)
	{
		const char *name = json_string_value(json_object_get(o, "name"));
		int k = name ? output_index(name) : -1;
		char nm[80], all[80];
		srv_text_clean(nm, sizeof nm, name ? name : "(none)");
		output_names(all, sizeof all);
		if (!json_is_object(o) || k < 0)
			return srv_fail_set(f, 400, "unknown_output", "output '%s' is not one of %s", nm, all);
		if (!offered(&outputs[k], x->plan)) {
			ae_shape in = ae_plan_in_shape(x->plan, AE_OP_RECONSTRUCT);
			ae_shape rec = ae_plan_out_shape(x->plan, AE_OP_RECONSTRUCT);
			return srv_fail_set(f, 400, "unknown_output",
			                    "output '%s' compares an image with its reconstruction; model '%s' gives "
			                    "[%d,%d,%d] images for [%d,%d,%d] ones",
			                    nm, x->m->name, rec.d[0], rec.d[1], rec.d[2], in.d[0], in.d[1], in.d[2]);
		}
		for (int j = 0; j < q->n_out; j++)
			if (q->order[j] == k)
				return srv_fail_set(f, 400, "unknown_output", "output '%s' is asked twice", nm);
		int bin = bin_all;
		const char *key;
		json_t *v;
		json_object_foreach(o, key, v)
		{
			if (strcmp(key, "name") == 0) continue;
			if (strcmp(key, "parameters") != 0)
				return srv_fail_set(f, 400, "invalid_request", "output '%s': unknown member", nm);
			if (output_params(v, k, nm, q, &bin, f)) return -1;
		}
		q->order[q->n_out++] = k;
		if (bin) q->binary |= 1u << k;
	}
	outputs_need(q);
	return 0;
}

/* What one input said, before its data is read. */
typedef struct input_desc {
	const char *type;
	long dims[SRV_TENSOR_MAX_DIMS];
	int nd;
	long long bin_size; /* -1: data in the JSON */
} input_desc;

static int describe_input(json_t *in, input_desc *d, srv_fail *f)
{
	const char *key;
	json_t *v;
	char k[80];
	d->type = NULL;
	d->nd = -1;
	d->bin_size = -1;
	if (!json_is_object(in)) return srv_fail_set(f, 400, "invalid_request", "an input is not an object");
	json_object_foreach(in, key, v)
	{
		srv_text_clean(k, sizeof k, key);
		if (strcmp(key, "name") == 0) {
			if (!json_is_string(v) || strcmp(json_string_value(v), "input") != 0) {
				char n[80];
				srv_text_clean(n, sizeof n,
				               json_is_string(v) ? json_string_value(v) : "(not a string)");
				return srv_fail_set(f, 400, "unknown_input",
				                    "input '%s': the model's one input is 'input'", n);
			}
		} else if (strcmp(key, "datatype") == 0) {
			d->type = json_string_value(v);
			if (!d->type || (strcmp(d->type, "FP32") != 0 && strcmp(d->type, "BYTES") != 0))
				return srv_fail_set(
				        f, 400, "invalid_datatype",
				        "input datatype must be FP32 (pixels in [0, 1]) or BYTES (PNG files)");
		} else if (strcmp(key, "shape") == 0) {
			size_t i;
			json_t *e;
			if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > SRV_TENSOR_MAX_DIMS)
				return srv_fail_set(f, 400, "invalid_shape",
				                    "shape must be an array of 1 to %d integers", SRV_TENSOR_MAX_DIMS);
			json_array_foreach(v, i, e)
			{
				json_int_t x = json_integer_value(e);
				if (!json_is_integer(e) || x < 1 || x > SRV_TENSOR_MAX_DIM)
					return srv_fail_set(f, 400, "invalid_shape",
					                    "shape entry %zu is not an integer in [1, %ld]", i,
					                    SRV_TENSOR_MAX_DIM);
				d->dims[i] = (long)x;
			}
			d->nd = (int)json_array_size(v);
		} else if (strcmp(key, "parameters") == 0) {
			/* KServe's clients may add a content_type (a codec hint):
			 * a string, which an FP32 or PNG input does not need. */
			json_t *b = json_object_get(v, "binary_data_size"), *ct = json_object_get(v, "content_type");
			if (!json_is_object(v) || (ct && !json_is_string(ct)) ||
			    json_object_size(v) != (b ? 1u : 0u) + (ct ? 1u : 0u))
				return srv_fail_set(f, 400, "invalid_parameter",
				                    "input parameters are binary_data_size and content_type only");
			if (b && (!json_is_integer(b) || json_integer_value(b) < 0))
				return srv_fail_set(f, 400, "invalid_parameter",
				                    "binary_data_size is not a non-negative integer");
			if (b) d->bin_size = json_integer_value(b);
		} else if (strcmp(key, "data") != 0)
			return srv_fail_set(f, 400, "invalid_request", "input member '%s' is not one the protocol has",
			                    k);
	}
	if (!json_object_get(in, "name") || !d->type || d->nd < 0)
		return srv_fail_set(f, 400, "invalid_request", "an input needs name, datatype and shape");
	return 0;
}

/* FP32 images from little-endian binary data: n images of C*H*W. */
static int fp32_binary(const uint8_t *p, size_t len, const input_desc *d, const srv_parse_ctx *x, int *n, float **out,
                       srv_fail *f)
{
	srv_tensor_in t = { .is_object = 1, .has_shape = 1, .has_data = 1, .ndim = d->nd };
	memcpy(t.dims, d->dims, sizeof t.dims);
	if (len % sizeof(float))
		return srv_fail_set(f, 400, "shape_mismatch", "%zu bytes of FP32 data is not a whole number of values",
		                    len);
	t.n = len / sizeof(float);
	/* Judged on the shape and count before the copy. */
	if (srv_tensor_check(&t, x, f)) return -1;
	float *v = malloc(len ? len : 1);
	if (!v) return srv_fail_set(f, 500, "internal", "out of memory");
	memcpy(v, p, len);
	for (size_t i = 0; i < t.n; i++)
		if (!(v[i] >= 0.0f && v[i] <= 1.0f)) {
			srv_fail_set(f, 422, "value_out_of_range", "input[%zu] = %g is outside [0, 1]", i,
			             (double)v[i]);
			free(v);
			return -1;
		}
	*n = (int)d->dims[0];
	*out = v;
	return 0;
}

/* BYTES [N] as binary data: each element a 4-byte little-endian length,
 * then that many bytes of a PNG file. */
static int png_elements(const uint8_t *p, size_t len, const input_desc *d, const srv_parse_ctx *x, int *n, float **out,
                        srv_fail *f)
{
	if (d->nd != 1)
		return srv_fail_set(f, 400, "invalid_shape", "a BYTES input has shape [N]: one PNG file per element");
	if (d->dims[0] > SRV_MAX_IMAGES)
		return srv_fail_set(f, 413, "too_many_images", "%ld images in one request; the limit is %d", d->dims[0],
		                    SRV_MAX_IMAGES);
	const size_t per = ae_plan_in_size(x->plan, x->engine);
	float *v = malloc((size_t)d->dims[0] * per * sizeof(float));
	if (!v) return srv_fail_set(f, 500, "internal", "out of memory");
	srv_png_budget b = { SRV_MAX_DECODED_BYTES };
	size_t at = 0;
	for (long i = 0; i < d->dims[0]; i++) {
		char which[32];
		snprintf(which, sizeof which, "element %ld", i);
		uint32_t el;
		if (len - at < 4 || (memcpy(&el, p + at, 4), len - at - 4 < el)) {
			srv_fail_set(f, 400, "shape_mismatch", "the BYTES data ends inside %s of %ld", which,
			             d->dims[0]);
			free(v);
			return -1;
		}
		if (srv_png_decode_one(p + at + 4, el, x, &b, v + (size_t)i * per, which, f)) {
			free(v);
			return -1;
		}
		at += 4 + (size_t)el;
	}
	if (at != len) {
		free(v);
		return srv_fail_set(f, 400, "shape_mismatch", "the BYTES data holds more than %ld elements",
		                    d->dims[0]);
	}
	*n = (int)d->dims[0];
	*out = v;
	return 0;
}

/* FP32 data written in the JSON (flat or nested). */
static int fp32_json(const uint8_t *body, srv_v2_span sp, const input_desc *d, const srv_parse_ctx *x, int *n,
                     float **out, srv_fail *f)
{
	srv_tensor_in t;
	if (srv_tensor_data(body + sp.off, sp.len, 1, &t, f)) {
		srv_tensor_free(&t);
		return -1;
	}
	t.ndim = d->nd;
	memcpy(t.dims, d->dims, sizeof t.dims);
	if (t.data_not_array || srv_tensor_check(&t, x, f)) {
		if (t.data_not_array) srv_fail_set(f, 400, "invalid_request", "an input's data is not an array");
		srv_tensor_free(&t);
		return -1;
	}
	*n = (int)d->dims[0];
	*out = t.v;
	return 0;
}

static void apply_invert(const srv_v2_req *q, float *v, size_t count)
{
	if (q->p.invert)
		for (size_t i = 0; i < count; i++)
			v[i] = 1.0f - v[i];
}

/* The whole body is one input (Inference-Header-Content-Length: 0): a PNG
 * file, or FP32 images. */
static int raw_body(const uint8_t *body, size_t len, const srv_parse_ctx *x, int *n, float **out, srv_fail *f)
{
	static const uint8_t png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	if (len >= 8 && memcmp(body, png_sig, 8) == 0) return srv_parse_png(body, len, x, n, out, f);
	const size_t per = ae_plan_in_size(x->plan, x->engine);
	if (len == 0 || len % (per * sizeof(float)))
		return srv_fail_set(f, 400, "shape_mismatch",
		                    "a raw body is a PNG file or FP32 images of %zu bytes each; this one is %zu bytes",
		                    per * sizeof(float), len);
	input_desc d = { .type = "FP32", .nd = 2, .dims = { (long)(len / (per * sizeof(float))), (long)per } };
	return fp32_binary(body, len, &d, x, n, out, f);
}

int srv_v2_parse(const uint8_t *body, size_t len, long long header_len, const srv_parse_ctx *x, srv_v2_req *q, int *n,
                 float **out, srv_fail *f)
{
	memset(q, 0, sizeof *q);
	srv_params_init(&q->p);
	/* what is read is the input of what the outputs asked make the plan run */
	srv_parse_ctx in = *x;
	if (header_len == 0) {
		request_outputs(NULL, q, 0, x, f);
		in.engine = q->engine;
		return raw_body(body, len, &in, n, out, f);
	}
	size_t jlen = header_len < 0 ? len : (size_t)header_len;
	if (header_len > 0 && (unsigned long long)header_len > len)
		return srv_fail_set(f, 400, "invalid_header_length",
		                    "Inference-Header-Content-Length is %lld; the body is only %zu bytes", header_len,
		                    len);
	srv_v2_split sp;
	if (srv_json_split_v2(body, jlen, &sp, f)) return -1;
	json_error_t je;
	json_t *doc = json_loadb(sp.skel, sp.skel_len, JSON_REJECT_DUPLICATES, &je);
	free(sp.skel);
	int rc = -1, bin_all = 0;
	json_t *inputs = json_object_get(doc, "inputs"), *id = json_object_get(doc, "id");
	input_desc d;
	const char *key;
	json_t *v;
	if (!doc) {
		srv_fail_set(f, 400, "invalid_json", "%s", je.text);
		goto out;
	}
	json_object_foreach(doc, key, v)
	{
		if (!strcmp(key, "id") || !strcmp(key, "parameters") || !strcmp(key, "inputs") ||
		    !strcmp(key, "outputs"))
			continue;
		/* Triton's clients repeat the model's name and version. */
		if (!strcmp(key, "model_name") && json_is_string(v) && !strcmp(json_string_value(v), x->m->name))
			continue;
		if (!strcmp(key, "model_name")) {
			srv_fail_set(f, 400, "invalid_request", "model_name is not '%s', the model of this route",
			             x->m->name);
			goto out;
		}
		if (!strcmp(key, "model_version") && json_is_string(v) &&
		    (!strcmp(json_string_value(v), "1") || !json_string_value(v)[0]))
			continue;
		char k[80];
		srv_text_clean(k, sizeof k, key);
		srv_fail_set(f, 400, "invalid_request", "request member '%s' is not one the protocol has", k);
		goto out;
	}
	if (id && !json_is_string(id)) {
		srv_fail_set(f, 400, "invalid_request", "'id' is not a string");
		goto out;
	}
	if (id && strlen(json_string_value(id)) > SRV_V2_MAX_ID) {
		srv_fail_set(f, 400, "invalid_request", "'id' is longer than %d bytes", SRV_V2_MAX_ID);
		goto out;
	}
	if (id && !(q->id = strdup(json_string_value(id)))) {
		srv_fail_set(f, 500, "internal", "out of memory");
		goto out;
	}
	if (!json_is_array(inputs) || json_array_size(inputs) != 1 || sp.too_many) {
		srv_fail_set(f, 400, "invalid_request", "'inputs' must be an array holding the model's one input");
		goto out;
	}
	if (request_params(json_object_get(doc, "parameters"), q, &bin_all, f) ||
	    request_outputs(json_object_get(doc, "outputs"), q, bin_all, x, f) ||
	    describe_input(json_array_get(inputs, 0), &d, f))
		goto out;
	in.engine = q->engine;
	const size_t per = ae_plan_in_size(x->plan, q->engine);
	const uint8_t *bin = body + jlen;
	size_t bin_len = len - jlen;
	int has_json_data = sp.data[0].len > 0;
	if (d.bin_size >= 0 && has_json_data) {
		srv_fail_set(f, 400, "invalid_request", "the input has both data and binary_data_size");
		goto out;
	}
	if (d.bin_size < 0 && !has_json_data) {
		srv_fail_set(f, 400, "invalid_request", "the input has neither data nor binary_data_size");
		goto out;
	}
	if (d.bin_size >= 0 && header_len < 0) {
		srv_fail_set(f, 400, "invalid_header_length",
		             "binary_data_size needs the Inference-Header-Content-Length header");
		goto out;
	}
	if (d.bin_size >= 0 && (unsigned long long)d.bin_size != bin_len) {
		srv_fail_set(f, 400, "invalid_header_length",
		             "binary_data_size is %lld; %zu bytes follow the JSON header", d.bin_size, bin_len);
		goto out;
	}
	if (d.bin_size < 0 && bin_len) {
		srv_fail_set(f, 400, "invalid_header_length", "%zu bytes follow the JSON header and no input is binary",
		             bin_len);
		goto out;
	}
	if (strcmp(d.type, "BYTES") == 0) {
		if (d.bin_size < 0) {
			srv_fail_set(f, 400, "invalid_datatype",
			             "send BYTES (PNG files) as binary data: binary_data_size and "
			             "Inference-Header-Content-Length");
			goto out;
		}
		rc = png_elements(bin, bin_len, &d, &in, n, out, f);
		if (rc == 0) apply_invert(q, *out, (size_t)*n * per);
		goto out;
	}
	rc = d.bin_size >= 0 ? fp32_binary(bin, bin_len, &d, &in, n, out, f)
	                     : fp32_json(body, sp.data[0], &d, &in, n, out, f);
	if (rc == 0) apply_invert(q, *out, (size_t)*n * per);
out:
	json_decref(doc);
	return rc;
}

/* ------------------------------------------------------------- response */

static int put_output_head(obuf *b, const v2_output *out, const srv_v2_out *o)
{
	char head[160];
	int at = snprintf(head, sizeof head, "[%d", o->n);
	ae_shape s = ae_plan_out_shape(o->plan, out->engine);
	for (int i = 0; !out->scalar && i < s.rank; i++)
		at += snprintf(head + at, sizeof head - (size_t)at, ",%d", s.d[i]);
	snprintf(head + at, sizeof head - (size_t)at, "]");
	return put_str(b, "{\"name\":\"") || put_str(b, out->name) || put_str(b, "\",\"datatype\":\"") ||
	       put_str(b, out->w->datatype(o)) || put_str(b, "\",\"shape\":") || put_str(b, head);
}

static int put_output(obuf *b, const v2_output *out, const srv_v2_out *o, int binary)
{
	const size_t count = (size_t)o->n * per_item(out, o->plan);
	const float *v = out->values(o);
	if (put_output_head(b, out, o)) return -1;
	const int own = out->w->has_params && out->w->has_params(o);
	if (binary || own) {
		char p[80];
		if (put_str(b, ",\"parameters\":{")) return -1;
		if (binary)
			snprintf(p, sizeof p, "\"binary_data_size\":%zu%s", count * out->w->bytes(o), own ? "," : "");
		if ((binary && put_str(b, p)) || (own && out->w->put_params(b, o)) || put_str(b, "}")) return -1;
		if (binary) return put_str(b, "}");
	}
	if (grow(b, 16 + count * 18)) return -1;
	b->len += (size_t)sprintf(b->p + b->len, ",\"data\":[");
	for (size_t i = 0; i < count; i++) {
		if (i) b->p[b->len++] = ',';
		b->len += (size_t)out->w->json(b->p + b->len, o, v, i);
	}
	return put_str(b, "]}");
}

static int put_binary(obuf *b, const v2_output *out, const srv_v2_out *o)
{
	const size_t count = (size_t)o->n * per_item(out, o->plan), bytes = count * out->w->bytes(o);
	if (grow(b, bytes)) return -1;
	out->w->binary((uint8_t *)b->p + b->len, o, out->values(o), count);
	b->len += bytes;
	return 0;
}

char *srv_v2_response(const srv_v2_out *o, size_t *len, size_t *json_len)
{
	const srv_v2_req *q = o->q;
	obuf b = { 0 };
	char head[200], t[24];
	int ok = put_str(&b, "{\"model_name\":\"") == 0 && put_str(&b, o->m->name) == 0 &&
	         put_str(&b, "\",\"model_version\":\"1\"") == 0;
	if (ok && q->id) {
		char *esc = malloc(strlen(q->id) * 6 + 1);
		ok = esc && put_str(&b, ",\"id\":\"") == 0;
		if (ok) srv_json_escape(esc, strlen(q->id) * 6 + 1, q->id);
		ok = ok && put_str(&b, esc) == 0 && put_str(&b, "\"") == 0;
		free(esc);
	}
	t[srv_fmt_float(t, (float)o->threshold)] = '\0';
	snprintf(head, sizeof head, ",\"parameters\":{\"threshold\":%s,\"score\":\"%s\"},\"outputs\":[", t,
	         ae_score_name((ae_score_kind)o->score));
	ok = ok && put_str(&b, head) == 0;
	for (int i = 0; ok && i < q->n_out; i++) {
		int k = q->order[i];
		ok = (i == 0 || put_str(&b, ",") == 0) && put_output(&b, &outputs[k], o, (q->binary >> k) & 1) == 0;
	}
	ok = ok && put_str(&b, "]}") == 0;
	*json_len = b.len;
	for (int i = 0; ok && i < q->n_out; i++)
		if ((q->binary >> q->order[i]) & 1) ok = put_binary(&b, &outputs[q->order[i]], o) == 0;
	if (!ok) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
