/*
 * Model <-> safetensors. Saving lays out PyTorch's state_dict (weight, bias,
 * running_mean, running_var, num_batches_tracked) and our metadata. Loading
 * trusts nothing: every metadata field is parsed and range-checked, the
 * architecture is rebuilt and every tensor must be present with the shape it
 * implies, every value finite, and the checksum right.
 */
#include "ae/modelfile.h"
#include "ae/scores.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *layer_type(int kind)
{
	static const char *names[] = { "Conv2d",  "ConvTranspose2d", "Linear",  "ReLU",     "LeakyReLU",
		                       "Sigmoid", "BatchNorm",       "Flatten", "Unflatten" };
	return names[kind];
}

char *ae_arch_to_json(const ae_net *net)
{
	const ae_arch_spec *s = &net->spec;
	json_t *layers = json_array();
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		json_t *o = json_pack("{s:s, s:s, s:[i,i,i], s:[i,i,i]}", "name", l->name, "type", layer_type(l->kind),
		                      "in", l->ic, l->ih, l->iw, "out", l->oc, l->oh, l->ow);
		if (l->kind == AE_L_CONV || l->kind == AE_L_CONVT) {
			json_object_set_new(o, "kernel", json_integer(l->k));
			json_object_set_new(o, "stride", json_integer(l->stride));
			json_object_set_new(o, "padding", json_integer(l->pad));
			if (l->kind == AE_L_CONVT) json_object_set_new(o, "output_padding", json_integer(l->opad));
		}
		if (l->kind == AE_L_LRELU) json_object_set_new(o, "negative_slope", json_real(l->slope));
		if (l->kind == AE_L_BN) json_object_set_new(o, "eps", json_real(1e-5));
		json_array_append_new(layers, o);
	}
	json_t *root = json_pack("{s:s, s:[i,i,i], s:i, s:[i,i], s:i, s:f, s:o}", "preset", s->preset, "input", s->c,
	                         s->h, s->w, "latent", s->latent, "filters", s->f1, s->f2, "hidden", s->hidden, "slope",
	                         (double)s->slope, "layers", layers);
	/* An autoencoder's output is its input, and its file says nothing more. */
	if (root && (s->out_c != s->c || s->out_h != s->h || s->out_w != s->w))
		json_object_set_new(root, "output", json_pack("[i,i,i]", s->out_c, s->out_h, s->out_w));
	char *txt = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return txt;
}

/* ---------------------------------------------------------------- saving */

typedef struct tensor_list {
	ae_extra_tensor t[4 * AE_MAX_LAYERS + 64];
	void *home[4 * AE_MAX_LAYERS + 64]; /* t[i].data, writable: where loading puts it */
	char names[4 * AE_MAX_LAYERS][48];
	int n;
} tensor_list;

static void push(tensor_list *tl, const char *mod, const char *what, int dtype, int ndim, const int64_t *shape,
                 void *data)
{
	tl->home[tl->n] = data;
	ae_extra_tensor *t = &tl->t[tl->n];
	snprintf(tl->names[tl->n], sizeof tl->names[0], "%s.%s", mod, what);
	t->name = tl->names[tl->n];
	t->dtype = dtype;
	t->ndim = ndim;
	memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
	t->data = data;
	tl->n++;
}

/* The tensors a model's state_dict holds, in PyTorch's order. */
static void model_tensors(ae_model *m, tensor_list *tl)
{
	tl->n = 0;
	for (int i = 0; i < m->net.n_layers; i++) {
		const ae_layer *l = &m->net.layers[i];
		float *P = m->params;
		int64_t k = l->k;
		switch (l->kind) {
		case AE_L_CONV: {
			int64_t ws[4] = { l->oc, l->ic, k, k }, bs[1] = { l->oc };
			push(tl, l->name, "weight", AE_DT_F32, 4, ws, P + l->w);
			push(tl, l->name, "bias", AE_DT_F32, 1, bs, P + l->b);
			break;
		}
		case AE_L_CONVT: {
			int64_t ws[4] = { l->ic, l->oc, k, k }, bs[1] = { l->oc };
			push(tl, l->name, "weight", AE_DT_F32, 4, ws, P + l->w);
			push(tl, l->name, "bias", AE_DT_F32, 1, bs, P + l->b);
			break;
		}
		case AE_L_DENSE: {
			int64_t ws[2] = { l->oc, l->ic }, bs[1] = { l->oc };
			push(tl, l->name, "weight", AE_DT_F32, 2, ws, P + l->w);
			push(tl, l->name, "bias", AE_DT_F32, 1, bs, P + l->b);
			break;
		}
		case AE_L_BN: {
			int64_t cs[1] = { l->oc };
			push(tl, l->name, "weight", AE_DT_F32, 1, cs, P + l->w);
			push(tl, l->name, "bias", AE_DT_F32, 1, cs, P + l->b);
			push(tl, l->name, "running_mean", AE_DT_F32, 1, cs, m->state + l->rm);
			push(tl, l->name, "running_var", AE_DT_F32, 1, cs, m->state + l->rv);
			push(tl, l->name, "num_batches_tracked", AE_DT_I64, 0, cs, &m->bn_batches);
			break;
		}
		default: break;
		}
	}
}

static char *train_json(const ae_model *m)
{
	const ae_train_info *t = &m->train;
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:i, s:i, s:i, s:f, s:I, s:f, s:f, s:f, s:s}", "dataset",
	                      t->dataset, "loss", t->loss, "samples", (json_int_t)t->samples, "val_samples",
	                      (json_int_t)t->val_samples, "epochs", t->epochs, "batch", t->batch, "threads", t->threads,
	                      "lr", t->lr, "seed", (json_int_t)t->seed, "train_loss", t->train_loss, "val_loss",
	                      t->val_loss, "seconds", t->seconds, "date", t->date);
	/* Written only when set, so files trained on everything stay as they were. */
	if (o && t->classes[0]) json_object_set_new(o, "classes", json_string(t->classes));
	if (o && t->contaminate[0]) json_object_set_new(o, "contaminate", json_string(t->contaminate));
	if (o && t->resize[0]) json_object_set_new(o, "resize", json_string(t->resize));
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

static json_t *table_json(const double *qp, const double *qv, int n)
{
	json_t *p = json_array(), *v = json_array();
	for (int i = 0; i < n; i++) {
		json_array_append_new(p, json_real(qp[i]));
		json_array_append_new(v, json_real(qv[i]));
	}
	return json_pack("{s:o, s:o}", "p", p, "v", v);
}

/* The calibrated scores of cal (AE_SCORE_COUNT) as {NAME: {p, v, mean, std}}. */
static json_t *cals_json(const ae_score_cal *cal)
{
	json_t *sc = json_object();
	for (int k = 0; k < AE_SCORE_COUNT; k++) {
		const ae_score_cal *c = &cal[k];
		if (!c->present) continue;
		json_t *t = table_json(c->qp, c->qv, c->n_quant);
		json_object_set_new(t, "mean", json_real(c->mean));
		json_object_set_new(t, "std", json_real(c->std));
		json_object_set_new(sc, ae_score_name((ae_score_kind)k), t);
	}
	return sc;
}

static int any_cal(const ae_score_cal *cal)
{
	int any = 0;
	for (int k = 0; k < AE_SCORE_COUNT; k++)
		any |= cal[k].present;
	return any;
}

/* NULL when the model has no score calibrations (nothing to write). */
static char *scores_json(const ae_model *m)
{
	if (!any_cal(m->cal)) return NULL;
	json_t *o = json_pack("{s:s, s:o}", "default", ae_score_name((ae_score_kind)m->default_score), "scores",
	                      cals_json(m->cal));
	if (o && m->latent_mean) {
		const size_t d = (size_t)m->net.spec.latent;
		json_t *mean = json_array(), *prec = json_array();
		for (size_t i = 0; i < d; i++)
			json_array_append_new(mean, json_real(m->latent_mean[i]));
		for (size_t i = 0; i < d * d; i++)
			json_array_append_new(prec, json_real(m->latent_prec[i]));
		json_t *lat = json_pack("{s:o, s:o}", "mean", mean, "precision", prec);
		if (lat && m->code_scale) {
			json_t *sc8 = json_array();
			for (size_t i = 0; i < d; i++)
				json_array_append_new(sc8, json_real(m->code_scale[i]));
			json_object_set_new(lat, "int8_scale", sc8);
		}
		json_object_set_new(o, "latent", lat);
	}
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
	json_decref(o);
	return s;
}

/* ae.precision: the activation ranges (by layer name) and each reduced
 * precision's score calibrations; NULL when the model has neither. */
static char *precision_json(const ae_model *m)
{
	int any = m->act_range.present;
	for (int p = AE_PREC_FP32 + 1; p < AE_PREC_COUNT; p++)
		any |= any_cal(m->prec_cal[p]);
	if (!any) return NULL;
	json_t *o = json_object();
	if (m->act_range.present) {
		json_t *in = json_object();
		for (int i = 0; i < m->net.n_layers; i++) {
			const ae_layer *l = &m->net.layers[i];
			if (m->act_range.lo[i] <= m->act_range.hi[i])
				json_object_set_new(
				        in, l->name,
				        json_pack("[f, f]", (double)m->act_range.lo[i], (double)m->act_range.hi[i]));
		}
		json_object_set_new(o, "ranges",
		                    json_pack("{s:I, s:o}", "images", (json_int_t)m->act_range.images, "inputs", in));
	}
	json_t *sc = json_object();
	for (int p = AE_PREC_FP32 + 1; p < AE_PREC_COUNT; p++)
		if (any_cal(m->prec_cal[p])) json_object_set_new(sc, ae_precision_name(p), cals_json(m->prec_cal[p]));
	json_object_set_new(o, "scores", sc);
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(o);
	return s;
}

static char *errors_json(const ae_model *m)
{
	json_t *p = json_array(), *v = json_array();
	for (int i = 0; i < m->n_quant; i++) {
		json_array_append_new(p, json_real(m->qp[i]));
		json_array_append_new(v, json_real(m->qv[i]));
	}
	json_t *o = json_pack("{s:s, s:I, s:o, s:o}", "metric", "mse", "samples", (json_int_t)m->train.val_samples, "p",
	                      p, "v", v);
	static const double named[] = { 0.5, 0.9, 0.95, 0.99, 0.999 };
	static const char *keys[] = { "p50", "p90", "p95", "p99", "p99.9" };
	for (int i = 0; i < 5 && m->n_quant >= 2; i++)
		json_object_set_new(o, keys[i], json_real(ae_model_quantile(m, named[i])));
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(o);
	return s;
}

/* Format 2's ae.meta_crc: CRC-32 of every other metadata key and value, in
 * byte order of the keys, each ended by a NUL. ae.checksum identifies the
 * weights (and stays equal for a resumed run, whose ae.train differs in
 * its seconds and date); this one catches a flipped bit in the facts a
 * model carries, however a writer laid out its JSON. */
static uint32_t meta_crc(const char *const *keys, const char *const *values, int n)
{
	uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
	const char *last = NULL;
	for (int done = 0; done < n; done++) {
		int next = -1;
		for (int i = 0; i < n; i++)
			if ((!last || strcmp(keys[i], last) > 0) && (next < 0 || strcmp(keys[i], keys[next]) < 0))
				next = i;
		if (next < 0) break;
		last = keys[next];
		if (strcmp(last, "ae.meta_crc") == 0) continue;
		crc = (uint32_t)crc32(crc, (const Bytef *)keys[next], (uInt)strlen(keys[next]) + 1);
		crc = (uint32_t)crc32(crc, (const Bytef *)values[next], (uInt)strlen(values[next]) + 1);
	}
	return crc;
}

/* mm: every key a file of m holds, in the order written, with extra_key
 * (a checkpoint's) if not NULL, and ae.meta_crc over them last. The
 * weights' checksum is m->checksum, which the caller has set. */
static int meta_build(ae_model_meta *mm, const ae_model *m, const char *extra_key, const char *extra_value,
                      ae_error *err)
{
	memset(mm, 0, sizeof *mm);
	mm->owned[0] = ae_arch_to_json(&m->net);
	mm->owned[1] = train_json(m);
	mm->owned[2] = errors_json(m);
	mm->owned[3] = scores_json(m);
	mm->owned[4] = precision_json(m);
	if (!mm->owned[0] || !mm->owned[1] || !mm->owned[2]) {
		ae_model_meta_deinit(mm);
		return ae_fail(err, AE_ERR_NOMEM, "out of memory describing a model");
	}
	const ae_arch_spec *s = &m->net.spec;
	ae_noise_format(&m->noise, mm->noise, sizeof mm->noise);
	ae_transform_format(&m->transform, mm->transform, sizeof mm->transform);
	snprintf(mm->input, sizeof mm->input, "[%d,%d,%d]", s->c, s->h, s->w);
	snprintf(mm->latent, sizeof mm->latent, "%d", s->latent);
	const char *keys[] = { "ae.format", "ae.arch",  "ae.input",  "ae.latent",  "ae.task",
		               "ae.noise",  "ae.train", "ae.errors", "ae.checksum" };
	const char *values[] = { AE_FORMAT_VERSION, mm->owned[0], mm->input,    mm->latent, m->task,
		                 mm->noise,         mm->owned[1], mm->owned[2], m->checksum };
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		mm->key[mm->n] = keys[i], mm->value[mm->n++] = values[i];
	if (mm->owned[3]) mm->key[mm->n] = "ae.scores", mm->value[mm->n++] = mm->owned[3];
	if (mm->owned[4]) mm->key[mm->n] = "ae.precision", mm->value[mm->n++] = mm->owned[4];
	/* Written only for an image-to-image model, so others stay as they were. */
	if (m->transform.kind != AE_TF_NONE) mm->key[mm->n] = "ae.transform", mm->value[mm->n++] = mm->transform;
	if (extra_key) mm->key[mm->n] = extra_key, mm->value[mm->n++] = extra_value;
	snprintf(mm->meta_crc, sizeof mm->meta_crc, "crc32:%08x", meta_crc(mm->key, mm->value, mm->n));
	mm->key[mm->n] = "ae.meta_crc", mm->value[mm->n++] = mm->meta_crc;
	return AE_OK;
}

int ae_model_meta_init(ae_model_meta *mm, const ae_model *m, ae_error *err)
{
	return meta_build(mm, m, NULL, NULL, err);
}

void ae_model_meta_deinit(ae_model_meta *mm)
{
	for (size_t i = 0; i < sizeof mm->owned / sizeof *mm->owned; i++)
		free(mm->owned[i]);
	memset(mm, 0, sizeof *mm);
}

int ae_model_save(ae_model *m, const char *path, const ae_extra_tensor *extra, int n_extra, const char *extra_key,
                  const char *extra_value, ae_error *err)
{
	tensor_list *tl = calloc(1, sizeof *tl);
	ae_st_writer *w = ae_st_writer_new();
	ae_model_meta mm = { 0 };
	int rc = (tl && w) ? AE_OK : ae_fail(err, AE_ERR_NOMEM, "out of memory saving a model");
	if (rc == AE_OK) model_tensors(m, tl);
	for (int i = 0; rc == AE_OK && i < tl->n; i++)
		rc = ae_st_writer_add(w, tl->t[i].name, tl->t[i].dtype, tl->t[i].ndim, tl->t[i].shape, tl->t[i].data,
		                      err);
	for (int i = 0; rc == AE_OK && i < n_extra; i++)
		rc = ae_st_writer_add(w, extra[i].name, extra[i].dtype, extra[i].ndim, extra[i].shape, extra[i].data,
		                      err);
	if (rc == AE_OK) {
		snprintf(m->checksum, sizeof m->checksum, "crc32:%08x", ae_st_writer_crc(w));
		rc = meta_build(&mm, m, extra_key, extra_value, err);
	}
	for (int i = 0; rc == AE_OK && i < mm.n; i++)
		rc = ae_st_writer_meta(w, mm.key[i], mm.value[i], err);
	if (rc == AE_OK) rc = ae_st_writer_write(w, path, err);
	ae_model_meta_deinit(&mm);
	ae_st_writer_free(w);
	free(tl);
	return rc;
}

/* --------------------------------------------------------------- loading */

static const char *need_meta(const ae_st *st, const char *key, ae_error *err)
{
	const char *v = ae_st_meta_get(st, key);
	if (!v) ae_fail(err, AE_ERR_FORMAT, "metadata '%s' is missing: not a model file of ours?", key);
	return v;
}

static int check_meta_crc(const ae_st *st, ae_error *err)
{
	const char *keys[AE_MAX_META], *values[AE_MAX_META];
	for (int i = 0; i < st->n_meta; i++)
		keys[i] = st->meta[i].key, values[i] = st->meta[i].value;
	char want[32];
	snprintf(want, sizeof want, "crc32:%08x", meta_crc(keys, values, st->n_meta));
	const char *says = need_meta(st, "ae.meta_crc", err);
	if (!says) return AE_ERR_FORMAT;
	if (strcmp(says, want) != 0)
		return ae_fail(err, AE_ERR_FORMAT,
		               "metadata checksum mismatch: file says %s, its metadata gives %s (corrupted)", says,
		               want);
	return AE_OK;
}

static int int_in(json_t *o, const char *key, int lo, int hi, int *out, ae_error *err)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return ae_fail(err, AE_ERR_FORMAT, "ae.arch: '%s' must be an integer in [%d, %d]", key, lo, hi);
	*out = (int)json_integer_value(v);
	return AE_OK;
}

static int parse_arch(ae_arch_spec *s, const char *txt, ae_error *err)
{
	json_error_t je;
	json_t *o = json_loads(txt, 0, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		return ae_fail(err, AE_ERR_FORMAT, "ae.arch is not a JSON object");
	}
	memset(s, 0, sizeof *s);
	int rc = AE_OK;
	json_t *preset = json_object_get(o, "preset"), *in = json_object_get(o, "input");
	json_t *f = json_object_get(o, "filters"), *sl = json_object_get(o, "slope");
	if (!json_is_string(preset) || strlen(json_string_value(preset)) >= sizeof s->preset)
		rc = ae_fail(err, AE_ERR_FORMAT, "ae.arch: 'preset' missing");
	else
		snprintf(s->preset, sizeof s->preset, "%s", json_string_value(preset));
	if (rc == AE_OK && (!json_is_array(in) || json_array_size(in) != 3 || !json_is_array(f) ||
	                    json_array_size(f) != 2 || !json_is_number(sl)))
		rc = ae_fail(err, AE_ERR_FORMAT, "ae.arch: needs 'input' [C,H,W], 'filters' [f1,f2] and 'slope'");
	if (rc == AE_OK) {
		json_t *t = json_pack("{s:O, s:O, s:O, s:O, s:O}", "c", json_array_get(in, 0), "h",
		                      json_array_get(in, 1), "w", json_array_get(in, 2), "f1", json_array_get(f, 0),
		                      "f2", json_array_get(f, 1));
		/* Integers here; their ranges are ae_net_build's to judge. */
		rc = int_in(t, "c", 1, INT_MAX, &s->c, err);
		if (rc == AE_OK) rc = int_in(t, "h", 1, INT_MAX, &s->h, err);
		if (rc == AE_OK) rc = int_in(t, "w", 1, INT_MAX, &s->w, err);
		if (rc == AE_OK) rc = int_in(t, "f1", 1, INT_MAX, &s->f1, err);
		if (rc == AE_OK) rc = int_in(t, "f2", 1, INT_MAX, &s->f2, err);
		json_decref(t);
	}
	json_t *out = json_object_get(o, "output");
	if (rc == AE_OK && out && (!json_is_array(out) || json_array_size(out) != 3))
		rc = ae_fail(err, AE_ERR_FORMAT, "ae.arch: 'output' is not [C,H,W]");
	if (rc == AE_OK && out) {
		json_t *t = json_pack("{s:O, s:O, s:O}", "output c", json_array_get(out, 0), "output h",
		                      json_array_get(out, 1), "output w", json_array_get(out, 2));
		rc = int_in(t, "output c", 1, INT_MAX, &s->out_c, err);
		if (rc == AE_OK) rc = int_in(t, "output h", 1, INT_MAX, &s->out_h, err);
		if (rc == AE_OK) rc = int_in(t, "output w", 1, INT_MAX, &s->out_w, err);
		json_decref(t);
	}
	if (rc == AE_OK) rc = int_in(o, "latent", 1, INT_MAX, &s->latent, err);
	if (rc == AE_OK) rc = int_in(o, "hidden", 1, INT_MAX, &s->hidden, err);
	if (rc == AE_OK) s->slope = (float)json_number_value(sl);
	json_decref(o);
	return rc;
}

static int check_tensor(const ae_st *st, const ae_extra_tensor *want, ae_error *err)
{
	const ae_st_tensor *t = ae_st_find(st, want->name);
	if (!t) return ae_fail(err, AE_ERR_FORMAT, "tensor '%s' is missing", want->name);
	int same = t->dtype == want->dtype && t->ndim == want->ndim;
	for (int d = 0; same && d < t->ndim; d++)
		same = t->shape[d] == want->shape[d];
	if (!same) {
		char a[96] = "", b[96] = "";
		for (int d = 0; d < t->ndim && d < 8; d++)
			snprintf(a + strlen(a), sizeof a - strlen(a), "%s%lld", d ? "," : "", (long long)t->shape[d]);
		for (int d = 0; d < want->ndim; d++)
			snprintf(b + strlen(b), sizeof b - strlen(b), "%s%lld", d ? "," : "",
			         (long long)want->shape[d]);
		return ae_fail(err, AE_ERR_FORMAT, "tensor '%s' has shape [%s], the architecture needs [%s]%s",
		               want->name, a, b, t->dtype != want->dtype ? " (and another dtype)" : "");
	}
	if (t->dtype == AE_DT_F32) {
		size_t n = (t->end - t->begin) / 4;
		const uint8_t *p = ae_st_bytes(st, t);
		for (size_t i = 0; i < n; i++) {
			float v;
			memcpy(&v, p + 4 * i, 4);
			if (!isfinite(v))
				return ae_fail(err, AE_ERR_FORMAT, "tensor '%s' holds a NaN or Inf at index %zu",
				               want->name, i);
		}
	}
	return AE_OK;
}

/* A quantile table {"p": [...], "v": [...]}: p in [0, 1], both non-decreasing. */
static int parse_table(json_t *o, const char *what, double *qp, double *qv, int *n, ae_error *err)
{
	json_t *p = json_object_get(o, "p"), *v = json_object_get(o, "v");
	if (!json_is_array(p) || !json_is_array(v) || json_array_size(p) != json_array_size(v) ||
	    json_array_size(p) > AE_MAX_QUANTILES)
		return ae_fail(err, AE_ERR_FORMAT, "%s needs arrays 'p' and 'v' of equal length (at most %d)", what,
		               AE_MAX_QUANTILES);
	for (size_t i = 0; i < json_array_size(p); i++) {
		json_t *pi = json_array_get(p, i), *vi = json_array_get(v, i);
		double a = json_number_value(pi), b = json_number_value(vi);
		if (!json_is_number(pi) || !json_is_number(vi) || !(a >= 0 && a <= 1) || !isfinite(b) ||
		    (i && (a < qp[i - 1] || b < qv[i - 1])))
			return ae_fail(err, AE_ERR_FORMAT, "%s entry %zu is not a non-decreasing quantile", what, i);
		qp[i] = a;
		qv[i] = b;
	}
	*n = (int)json_array_size(p);
	return AE_OK;
}

static int parse_errors(ae_model *m, const char *txt, ae_error *err)
{
	json_error_t je;
	json_t *o = json_loads(txt, 0, &je);
	int rc = parse_table(o, "ae.errors", m->qp, m->qv, &m->n_quant, err);
	for (int i = 0; rc == AE_OK && i < m->n_quant; i++)
		if (m->qv[i] < 0) rc = ae_fail(err, AE_ERR_FORMAT, "ae.errors entry %d is negative", i);
	json_decref(o);
	return rc;
}

/* n finite numbers of a JSON array into v. */
static int parse_vector(json_t *a, double *v, size_t n)
{
	if (!json_is_array(a) || json_array_size(a) != n) return -1;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(a, i);
		v[i] = json_number_value(e);
		if (!json_is_number(e) || !isfinite(v[i])) return -1;
	}
	return 0;
}

/* The calibrations of an object {NAME: {p, v, mean, std}} into cal;
 * what names the errors. */
static int parse_cals(json_t *sc, ae_score_cal *cal, const char *what, ae_error *err)
{
	int rc = AE_OK;
	for (int k = 0; rc == AE_OK && k < AE_SCORE_COUNT; k++) {
		json_t *c = json_object_get(sc, ae_score_name((ae_score_kind)k));
		ae_score_cal *ck = &cal[k];
		if (!c) continue;
		char name[64];
		snprintf(name, sizeof name, "%s %s", what, ae_score_name((ae_score_kind)k));
		rc = parse_table(c, name, ck->qp, ck->qv, &ck->n_quant, err);
		ck->mean = json_number_value(json_object_get(c, "mean"));
		ck->std = json_number_value(json_object_get(c, "std"));
		if (rc == AE_OK && (!isfinite(ck->mean) || !(ck->std >= 0)))
			rc = ae_fail(err, AE_ERR_FORMAT, "%s needs a mean and a non-negative std", name);
		ck->present = rc == AE_OK;
	}
	return rc;
}

/* ae.precision (absent in files from before it): activation ranges by
 * layer name, and reduced precisions' score calibrations. */
static int parse_precision(ae_model *m, const char *txt, ae_error *err)
{
	if (!txt) return AE_OK;
	json_error_t je;
	json_t *o = json_loads(txt, 0, &je), *r = json_object_get(o, "ranges"), *sc = json_object_get(o, "scores");
	int rc = json_is_object(o) ? AE_OK : ae_fail(err, AE_ERR_FORMAT, "ae.precision is not a JSON object");
	if (rc == AE_OK && r) {
		json_t *in = json_object_get(r, "inputs"), *imgs = json_object_get(r, "images");
		if (!json_is_object(in) || !json_is_integer(imgs) || json_integer_value(imgs) < 1)
			rc = ae_fail(err, AE_ERR_FORMAT, "ae.precision ranges need 'images' (at least 1) and 'inputs'");
		for (int i = 0; i < AE_MAX_LAYERS; i++)
			m->act_range.lo[i] = INFINITY, m->act_range.hi[i] = -INFINITY;
		const char *name;
		json_t *v;
		json_object_foreach(in, name, v)
		{
			int li = -1;
			for (int i = 0; i < m->net.n_layers && li < 0; i++)
				if (strcmp(m->net.layers[i].name, name) == 0) li = i;
			double lo = json_number_value(json_array_get(v, 0)),
			       hi = json_number_value(json_array_get(v, 1));
			if (rc == AE_OK &&
			    (li < 0 || json_array_size(v) != 2 || !isfinite(lo) || !isfinite(hi) || lo > hi))
				rc = ae_fail(
				        err, AE_ERR_FORMAT,
				        "ae.precision range '%s': not [lo, hi] (lo <= hi) of a layer of this model",
				        name);
			else if (rc == AE_OK)
				m->act_range.lo[li] = (float)lo, m->act_range.hi[li] = (float)hi;
		}
		m->act_range.images = (long)json_integer_value(imgs);
		m->act_range.present = rc == AE_OK;
	}
	for (int p = AE_PREC_FP32 + 1; rc == AE_OK && p < AE_PREC_COUNT; p++) {
		json_t *c = json_object_get(sc, ae_precision_name(p));
		char what[32];
		snprintf(what, sizeof what, "ae.precision %s", ae_precision_name(p));
		if (c) rc = parse_cals(c, m->prec_cal[p], what, err);
	}
	json_decref(o);
	return rc;
}

/* ae.scores (absent in files from before it): every score's calibration,
 * the default, and the Gaussian of the training codes. */
static int parse_scores(ae_model *m, const char *txt, ae_error *err)
{
	if (!txt) return AE_OK;
	json_error_t je;
	json_t *o = json_loads(txt, 0, &je), *sc = json_object_get(o, "scores"), *lat = json_object_get(o, "latent");
	const char *def = json_string_value(json_object_get(o, "default"));
	int rc = json_is_object(sc) && def && ae_score_find(def) >= 0
	                 ? AE_OK
	                 : ae_fail(err, AE_ERR_FORMAT, "ae.scores needs 'scores' and a 'default' score");
	if (rc == AE_OK) m->default_score = ae_score_find(def);
	if (rc == AE_OK) rc = parse_cals(sc, m->cal, "ae.scores", err);
	if (rc == AE_OK && !m->cal[m->default_score].present)
		rc = ae_fail(err, AE_ERR_FORMAT, "ae.scores: the default score '%s' is not calibrated", def);
	const size_t d = (size_t)m->net.spec.latent;
	if (rc == AE_OK && lat) {
		if (d > AE_LATENT_STATS_MAX)
			rc = ae_fail(err, AE_ERR_FORMAT, "ae.scores: a latent of %zu has no stats", d);
		m->latent_mean = rc ? NULL : malloc(d * sizeof *m->latent_mean);
		m->latent_prec = rc ? NULL : malloc(d * d * sizeof *m->latent_prec);
		if (rc == AE_OK && (!m->latent_mean || !m->latent_prec))
			rc = ae_fail(err, AE_ERR_NOMEM, "out of memory");
		if (rc == AE_OK && (parse_vector(json_object_get(lat, "mean"), m->latent_mean, d) ||
		                    parse_vector(json_object_get(lat, "precision"), m->latent_prec, d * d)))
			rc = ae_fail(err, AE_ERR_FORMAT,
			             "ae.scores: latent needs 'mean' (%zu) and 'precision' (%zu x %zu)", d, d, d);
		json_t *sc8 = json_object_get(lat, "int8_scale");
		double *tmp = rc == AE_OK && sc8 ? malloc(d * sizeof *tmp) : NULL;
		m->code_scale = tmp ? malloc(d * sizeof *m->code_scale) : NULL;
		if (sc8 && rc == AE_OK && (!tmp || !m->code_scale))
			rc = ae_fail(err, AE_ERR_NOMEM, "out of memory");
		else if (sc8 && rc == AE_OK && parse_vector(sc8, tmp, d))
			rc = ae_fail(err, AE_ERR_FORMAT, "ae.scores: latent int8_scale needs %zu numbers", d);
		for (size_t i = 0; rc == AE_OK && m->code_scale && i < d; i++) {
			if (!(tmp[i] > 0.0 && tmp[i] < 1e30))
				rc = ae_fail(err, AE_ERR_FORMAT, "ae.scores: latent int8_scale %zu is %g, not positive",
				             i, tmp[i]);
			m->code_scale[i] = (float)tmp[i];
		}
		free(tmp);
		if (rc) {
			free(m->code_scale);
			m->code_scale = NULL;
		}
	}
	if (rc == AE_OK && m->cal[AE_SCORE_LATENT].present && !m->latent_mean)
		rc = ae_fail(err, AE_ERR_FORMAT, "ae.scores: a latent calibration without the latent Gaussian");
	json_decref(o);
	return rc;
}

static void parse_train(ae_train_info *t, const char *txt)
{
	json_error_t je;
	json_t *o = json_loads(txt, 0, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		return;
	}
	const char *ds = json_string_value(json_object_get(o, "dataset"));
	const char *loss = json_string_value(json_object_get(o, "loss"));
	const char *date = json_string_value(json_object_get(o, "date"));
	snprintf(t->dataset, sizeof t->dataset, "%s", ds ? ds : "");
	const char *cl = json_string_value(json_object_get(o, "classes"));
	const char *ct = json_string_value(json_object_get(o, "contaminate"));
	snprintf(t->classes, sizeof t->classes, "%s", cl ? cl : "");
	snprintf(t->contaminate, sizeof t->contaminate, "%s", ct ? ct : "");
	const char *rs = json_string_value(json_object_get(o, "resize"));
	snprintf(t->resize, sizeof t->resize, "%s", rs ? rs : "");
	snprintf(t->loss, sizeof t->loss, "%s", loss ? loss : "");
	snprintf(t->date, sizeof t->date, "%s", date ? date : "");
	t->samples = (long)json_integer_value(json_object_get(o, "samples"));
	t->val_samples = (long)json_integer_value(json_object_get(o, "val_samples"));
	t->epochs = (int)json_integer_value(json_object_get(o, "epochs"));
	t->batch = (int)json_integer_value(json_object_get(o, "batch"));
	t->threads = (int)json_integer_value(json_object_get(o, "threads"));
	t->seed = (uint64_t)json_integer_value(json_object_get(o, "seed"));
	t->lr = json_number_value(json_object_get(o, "lr"));
	t->train_loss = json_number_value(json_object_get(o, "train_loss"));
	t->val_loss = json_number_value(json_object_get(o, "val_loss"));
	t->seconds = json_number_value(json_object_get(o, "seconds"));
	json_decref(o);
}

static int check_meta(ae_model *m, const ae_st *st, ae_error *err)
{
	const char *fmt = need_meta(st, "ae.format", err);
	if (!fmt) return AE_ERR_FORMAT;
	if (strcmp(fmt, "1") != 0 && strcmp(fmt, "2") != 0)
		return ae_fail(err, AE_ERR_FORMAT, "format version '%s' is not supported (this build reads 1 and 2)",
		               fmt);
	if (st->n_meta > AE_MAX_META)
		return ae_fail(err, AE_ERR_FORMAT, "%d metadata entries; a model file has at most %d", st->n_meta,
		               AE_MAX_META);
	const char *keys[] = { "ae.input", "ae.latent", "ae.task", "ae.noise", "ae.train", "ae.errors", "ae.checksum" };
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (!need_meta(st, keys[i], err)) return AE_ERR_FORMAT;
	const ae_arch_spec *s = &m->net.spec;
	char buf[64];
	snprintf(buf, sizeof buf, "[%d,%d,%d]", s->c, s->h, s->w);
	if (strcmp(buf, ae_st_meta_get(st, "ae.input")) != 0)
		return ae_fail(err, AE_ERR_FORMAT, "ae.input %s disagrees with the architecture's %s",
		               ae_st_meta_get(st, "ae.input"), buf);
	snprintf(buf, sizeof buf, "%d", s->latent);
	if (strcmp(buf, ae_st_meta_get(st, "ae.latent")) != 0)
		return ae_fail(err, AE_ERR_FORMAT, "ae.latent %s disagrees with the architecture's %s",
		               ae_st_meta_get(st, "ae.latent"), buf);
	const char *task = ae_st_meta_get(st, "ae.task");
	if (strcmp(task, "reconstruct") != 0 && strcmp(task, "denoise") != 0 && strcmp(task, "transform") != 0)
		return ae_fail(err, AE_ERR_FORMAT, "ae.task '%s' is not reconstruct, denoise or transform", task);
	snprintf(m->task, sizeof m->task, "%s", task);
	int rc = ae_noise_parse(&m->noise, ae_st_meta_get(st, "ae.noise"), err);
	if (rc) {
		ae_error_prefix(err, "ae.noise");
		return AE_ERR_FORMAT;
	}
	/* ae.transform: absent in files from before it (and in every model
	 * that is not image-to-image) */
	const char *tf = ae_st_meta_get(st, "ae.transform");
	if (ae_transform_parse(&m->transform, tf, err) || ae_transform_check(&m->transform, s->c, s->h, s->w, err)) {
		ae_error_prefix(err, "ae.transform");
		return AE_ERR_FORMAT;
	}
	if ((m->transform.kind != AE_TF_NONE) != (strcmp(task, "transform") == 0))
		return ae_fail(err, AE_ERR_FORMAT, "ae.task '%s' disagrees with ae.transform '%s'", task,
		               tf ? tf : "none");
	parse_train(&m->train, ae_st_meta_get(st, "ae.train"));
	rc = parse_errors(m, ae_st_meta_get(st, "ae.errors"), err);
	if (rc == AE_OK) rc = parse_scores(m, ae_st_meta_get(st, "ae.scores"), err);
	return rc ? rc : parse_precision(m, ae_st_meta_get(st, "ae.precision"), err);
}

ae_model *ae_model_from_st(const ae_st *st, const char *extra_prefix, ae_error *err)
{
	const char *arch = need_meta(st, "ae.arch", err);
	ae_arch_spec spec;
	if (!arch || parse_arch(&spec, arch, err)) return NULL;
	/* The architecture decides an allocation: it must be one the file's
	 * bytes can fill, before anything is allocated for it. */
	ae_net net;
	if (ae_net_build(&net, &spec, err)) return NULL;
	if (net.n_params > st->data_size / sizeof(float)) {
		ae_fail(err, AE_ERR_FORMAT,
		        "ae.arch needs %zu parameters (%zu bytes); the file holds %zu bytes of tensors", net.n_params,
		        net.n_params * sizeof(float), st->data_size);
		return NULL;
	}
	ae_model *m = ae_model_new(&spec, 0, err);
	tensor_list *tl = calloc(1, sizeof *tl);
	int rc = m && tl ? AE_OK : (m ? ae_fail(err, AE_ERR_NOMEM, "out of memory") : AE_ERR_INVAL);
	if (rc == AE_OK) rc = check_meta(m, st, err);
	if (rc == AE_OK) model_tensors(m, tl);
	for (int i = 0; rc == AE_OK && i < tl->n; i++)
		rc = check_tensor(st, &tl->t[i], err);
	for (int i = 0; rc == AE_OK && i < st->n; i++) {
		const char *name = st->t[i].name;
		int known = extra_prefix && strncmp(name, extra_prefix, strlen(extra_prefix)) == 0;
		for (int j = 0; !known && j < tl->n; j++)
			known = strcmp(name, tl->t[j].name) == 0;
		if (!known) rc = ae_fail(err, AE_ERR_FORMAT, "unexpected tensor '%s' for this architecture", name);
	}
	if (rc == AE_OK) {
		snprintf(m->checksum, sizeof m->checksum, "crc32:%08x", ae_st_crc(st));
		if (strcmp(m->checksum, ae_st_meta_get(st, "ae.checksum")) != 0)
			rc = ae_fail(err, AE_ERR_FORMAT,
			             "checksum mismatch: file says %s, tensor bytes give %s (corrupted)",
			             ae_st_meta_get(st, "ae.checksum"), m->checksum);
	}
	if (rc == AE_OK && strcmp(ae_st_meta_get(st, "ae.format"), "1") != 0) rc = check_meta_crc(st, err);
	for (int i = 0; rc == AE_OK && i < tl->n; i++) {
		const ae_st_tensor *t = ae_st_find(st, tl->t[i].name);
		/* model_tensors pointed each entry at its home in m. */
		memcpy(tl->home[i], ae_st_bytes(st, t), t->end - t->begin);
	}
	free(tl);
	if (rc) {
		ae_model_free(m);
		return NULL;
	}
	return m;
}

ae_model *ae_model_load(const char *path, ae_error *err)
{
	ae_st st;
	if (ae_st_read_file(&st, path, err)) {
		ae_st_free(&st);
		return NULL;
	}
	ae_model *m = ae_model_from_st(&st, NULL, err);
	if (!m) ae_error_prefix(err, path);
	ae_st_free(&st);
	return m;
}
