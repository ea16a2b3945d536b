/*
 * Response bodies. Tensors are written by hand rather than through jansson:
 * a reconstruction is 784 numbers per image, and building a jansson tree
 * for them costs more than the inference.
 */
#include "server.h"

#include "ae/codes.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae/scores.h"

/* v >= 0 in decimal, zero-padded to at least width digits; returns the
 * length. (snprintf's format parsing was 3% of an encode request.) */
static int put_digits(char *p, long long v, int width)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n < width)
		tmp[n++] = '0';
	for (int i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* Writes v in the fewest significant digits (6 to 9) that read back as
 * exactly v, like a shortest round-trip "%g" but without the locale and
 * format parsing; returns the length written (<= 16). */
int srv_fmt_float(char *p, float v)
{
	static const double pow10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13 };
	if (v == 0.0f || !isfinite(v)) {
		p[0] = '0';
		return 1;
	}
	float a = fabsf(v);
	if (a < 1e-4f || a >= 1e6f) {
		int n = 0;
		for (int d = 6; d <= 9; d++) {
			n = snprintf(p, 17, "%.*g", d, (double)v);
			if (strtof(p, NULL) == v) break;
		}
		return n;
	}
	int len = 0;
	if (v < 0) p[len++] = '-';
	/* scale to an integer of `digits` significant digits; take the first
	 * that converts back to a */
	int exp10 = (int)floorf(log10f(a));
	long long q = 0;
	int decimals = 0;
	for (int digits = 6; digits <= 9; digits++) {
		decimals = digits - 1 - exp10;
		if (decimals < 0) decimals = 0;
		q = llround((double)a * pow10[decimals]);
		if ((float)((double)q / pow10[decimals]) == a) break;
	}
	long long div = (long long)pow10[decimals];
	long long ip = q / div, fp = q % div;
	len += put_digits(p + len, ip, 1);
	if (fp) {
		char frac[24];
		int fl = put_digits(frac, fp, decimals);
		while (fl > 0 && frac[fl - 1] == '0')
			fl--;
		p[len++] = '.';
		memcpy(p + len, frac, (size_t)fl);
		len += fl;
	}
	return len;
}

/* A half in the fewest significant digits (1 to 5) that read back as it. */
int srv_fmt_half(char *p, uint16_t h)
{
	float v = ae_f16_to_f32(h);
	int n = 1;
	for (int d = 1; d <= 5; d++) {
		n = snprintf(p, 16, "%.*g", d, (double)v);
		if (ae_f32_to_f16(strtof(p, NULL)) == h) break;
	}
	return n;
}

/* ",d0,d1,..." of shape s into p; returns the length. */
static int put_dims(char *p, ae_shape s)
{
	int len = 0;
	for (int i = 0; i < s.rank; i++)
		len += sprintf(p + len, ",%d", s.d[i]);
	return len;
}

char *srv_json_codes(const srv_model *m, const float *v, int n, ae_shape s, int format, size_t *len)
{
	if (format == AE_CODE_F32) return srv_json_tensor(m, "encode", v, n, s, len);
	const int dim = (int)ae_shape_size(s);
	const size_t count = (size_t)n * dim;
	const float *scale = m->m->code_scale;
	char *buf = malloc(256 + count * 18 + (size_t)dim * 18), *p = buf;
	if (!buf) return NULL;
	p += sprintf(p, "{\"model\":\"%s\",\"op\":\"encode\",\"format\":\"%s\",", m->name,
	             ae_code_format_name((ae_code_format)format));
	if (format == AE_CODE_INT8) {
		p += sprintf(p, "\"scale\":[");
		for (int d = 0; d < dim; d++) {
			if (d) *p++ = ',';
			p += srv_fmt_float(p, scale[d]);
		}
		p += sprintf(p, "],");
	}
	p += sprintf(p, "\"shape\":[%d", n);
	p += put_dims(p, s);
	p += sprintf(p, "],\"data\":[");
	for (size_t i = 0; i < count; i++) {
		if (i) *p++ = ',';
		if (format == AE_CODE_INT8) {
			int8_t q;
			ae_codes_to_int8(v + i, 1, 1, scale + i % (size_t)dim, &q);
			p += sprintf(p, "%d", q);
		} else
			p += srv_fmt_half(p, ae_f32_to_f16(v[i]));
	}
	p += sprintf(p, "]}");
	*len = (size_t)(p - buf);
	return buf;
}

char *srv_json_tensor(const srv_model *m, const char *op, const float *v, int n, ae_shape s, size_t *len)
{
	const size_t count = (size_t)n * ae_shape_size(s);
	size_t cap = 256 + count * 18;
	char *buf = malloc(cap), *p = buf;
	if (!buf) return NULL;
	p += sprintf(p, "{\"model\":\"%s\",\"op\":\"%s\",\"shape\":[%d", m->name, op, n);
	p += put_dims(p, s);
	p += sprintf(p, "],\"data\":[");
	for (size_t i = 0; i < count; i++) {
		if (i) *p++ = ',';
		p += srv_fmt_float(p, v[i]);
	}
	p += sprintf(p, "]}");
	*len = (size_t)(p - buf);
	return buf;
}

char *srv_json_anomaly_maps(const srv_model *m, int kind, const float *scores, const float *maps, int n, int h, int w,
                            double threshold, double quantile, size_t *len)
{
	size_t jl, tl;
	char *j = srv_json_anomaly(m, kind, scores, n, threshold, quantile, &jl);
	char *t = j ? srv_json_tensor(m, "anomaly", maps, n, (ae_shape){ 2, { h, w, 1 } }, &tl) : NULL;
	/* {...,"results":[...]} + ,"maps":{tensor} */
	char *out = t ? malloc(jl + tl + 16) : NULL;
	if (out) {
		memcpy(out, j, jl - 1);
		size_t at = jl - 1;
		memcpy(out + at, ",\"maps\":", 8);
		at += 8;
		memcpy(out + at, t, tl);
		at += tl;
		out[at++] = '}';
		out[at] = '\0';
		*len = at;
	}
	free(j);
	free(t);
	return out;
}

char *srv_json_anomaly(const srv_model *m, int kind, const float *scores, int n, double threshold, double quantile,
                       size_t *len)
{
	json_t *res = json_array();
	for (int i = 0; res && i < n; i++) {
		double score = scores[i];
		json_array_append_new(res,
		                      json_pack("{s:f, s:f, s:b}", "score", score, "percentile",
		                                srv_score_percentile(m, kind, score), "anomaly", score > threshold));
	}
	json_t *o = json_pack("{s:s, s:s, s:f, s:o, s:o}", "model", m->name, "metric",
	                      ae_score_name((ae_score_kind)kind), "threshold", threshold, "threshold_quantile",
	                      isnan(quantile) ? json_null() : json_real(quantile), "results", res);
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(7)) : NULL;
	json_decref(o);
	if (s) *len = strlen(s);
	return s;
}

static json_t *shape_json(ae_shape s)
{
	json_t *a = json_array();
	for (int i = 0; i < s.rank; i++)
		json_array_append_new(a, json_integer(s.d[i]));
	return a;
}

char *srv_json_model(const srv_model *m, int is_default, size_t *len)
{
	const ae_model *a = m->m;
	const ae_train_info *t = &a->train;
	char noise[64];
	ae_noise_format(&a->noise, noise, sizeof noise);
	json_t *q = json_object();
	static const double named[] = { 0.5, 0.9, 0.95, 0.99, 0.999 };
	static const char *keys[] = { "p50", "p90", "p95", "p99", "p99.9" };
	for (int i = 0; i < 5; i++)
		json_object_set_new(q, keys[i], json_real(ae_model_quantile(a, named[i])));
	json_t *p = json_array(), *v = json_array();
	for (int i = 0; i < a->n_quant; i++) {
		json_array_append_new(p, json_real(a->qp[i]));
		json_array_append_new(v, json_real(a->qv[i]));
	}
	json_object_set_new(q, "p", p);
	json_object_set_new(q, "v", v);
	/* What it takes and gives, from the plan: an image-to-image model's
	 * output need not be its input's shape. */
	const ae_shape in = ae_plan_in_shape(m->plan, AE_OP_RECONSTRUCT),
	               out = ae_plan_out_shape(m->plan, AE_OP_RECONSTRUCT);
	json_t *o = json_pack("{s:s, s:b, s:s, s:o, s:o, s:I, s:s, s:s, s:s, s:I, s:s, s:s,"
	                      " s:{s:s, s:s, s:I, s:I, s:i, s:i, s:f, s:I, s:f, s:f, s:f, s:s},"
	                      " s:o}",
	                      "name", m->name, "default", is_default, "architecture", a->net.spec.preset, "input_shape",
	                      shape_json(in), "output_shape", shape_json(out), "latent",
	                      (json_int_t)ae_plan_out_size(m->plan, AE_OP_ENCODE), "task", a->task, "noise", noise,
	                      "checksum", a->checksum, "parameters", (json_int_t)a->net.n_params, "format",
	                      "safetensors", "precision", ae_precision_name(ae_plan_precision(m->plan)), "training",
	                      "dataset", t->dataset, "loss", t->loss, "samples", (json_int_t)t->samples, "val_samples",
	                      (json_int_t)t->val_samples, "epochs", t->epochs, "batch", t->batch, "lr", t->lr, "seed",
	                      (json_int_t)t->seed, "train_loss", isfinite(t->train_loss) ? t->train_loss : -1.0,
	                      "val_loss", isfinite(t->val_loss) ? t->val_loss : -1.0, "seconds", t->seconds, "date",
	                      t->date, "error_quantiles", q);
	/* The anomaly scores it offers, where each falls on held-out normal
	 * images, and the one answered by default. */
	json_t *sc = json_array(), *sq = json_object();
	for (int k = 0; k < AE_SCORE_COUNT; k++) {
		if (k != AE_SCORE_MSE && !(a->cal[k].present && (k != AE_SCORE_LATENT || a->latent_mean))) continue;
		json_array_append_new(sc, json_string(ae_score_name((ae_score_kind)k)));
		json_t *one = json_object();
		for (int i = 0; i < 5; i++)
			json_object_set_new(one, keys[i],
			                    json_real(a->cal[k].present ? ae_score_quantile(&a->cal[k], named[i])
			                                                : ae_model_quantile(a, named[i])));
		json_object_set_new(sq, ae_score_name((ae_score_kind)k), one);
	}
	srv_fail f = { 0 };
	if (o) {
		json_object_set_new(o, "scores", sc);
		json_object_set_new(o, "score_quantiles", sq);
		json_object_set_new(o, "default_score",
		                    json_string(ae_score_name((ae_score_kind)srv_score_kind(m, -1, &f))));
	} else {
		json_decref(sc);
		json_decref(sq);
	}
	json_t *tr = o ? json_object_get(o, "training") : NULL;
	if (tr && t->classes[0]) json_object_set_new(tr, "classes", json_string(t->classes));
	if (tr && t->contaminate[0]) json_object_set_new(tr, "contaminate", json_string(t->contaminate));
	if (tr && t->resize[0]) json_object_set_new(tr, "resize", json_string(t->resize));
	/* What it must be sent: an image-to-image model's transform, in words too. */
	char tf[32];
	ae_transform_format(&a->transform, tf, sizeof tf);
	if (o) json_object_set_new(o, "input", json_string(tf));
	if (o) json_object_set_new(o, "expects", json_string(ae_transform_expects(&a->transform)));
	/* What the model can be asked, from the operations table. */
	json_t *ops = json_array();
	for (int k = 0; k < srv_n_ops; k++)
		if (srv_ops[k].front == SRV_V1 && srv_op_offered(&srv_ops[k], m->name, m->plan, &f) == 0)
			json_array_append_new(ops, json_string(srv_ops[k].name));
	if (o)
		json_object_set_new(o, "operations", ops);
	else
		json_decref(ops);
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
	json_decref(o);
	if (s) *len = strlen(s);
	return s;
}
