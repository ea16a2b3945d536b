/*
 * Checkpoints: a model file with two more tensors (optim.adam_m,
 * optim.adam_v) and an "ae.checkpoint" metadata value holding the run's
 * options and progress as JSON. The reader trusts nothing: every field is
 * typed and bounded before it reaches the trainer.
 */
#include "checkpoint.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *opts_json(const train_opts *o)
{
	char noise[64], tf[32];
	ae_noise_format(&o->noise, noise, sizeof noise);
	ae_transform_format(&o->transform, tf, sizeof tf);
	return json_pack(
	        "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:s, s:s, s:I, s:s, s:s, s:[i,i], s:s, s:s}",
	        "data", o->data, "split", o->split, "out", o->out, "epochs", (json_int_t)o->epochs, "batch",
	        (json_int_t)o->batch, "threads", (json_int_t)o->threads, "limit", (json_int_t)o->limit,
	        "checkpoint_every", (json_int_t)o->checkpoint_every, "lr", o->lr, "val", o->val, "loss",
	        o->loss == AE_LOSS_BCE ? "bce" : "mse", "noise", noise, "seed", (json_int_t)o->seed, "classes",
	        o->classes, "contaminate", o->contaminate, "resize", o->resize[0], o->resize[1], "input", tf, "targets",
	        o->targets);
}

int ckpt_save(const char *path, const train_opts *o, ae_model *m, ae_trainer *tr, const progress *p)
{
	json_t *rows = json_array();
	for (int i = 0; i < p->n_rows; i++)
		json_array_append_new(rows, json_pack("[i,f,f,f]", p->rows[i].epoch, p->rows[i].train_loss,
		                                      p->rows[i].val_loss, p->rows[i].seconds));
	json_t *j = json_pack("{s:o, s:i, s:i, s:I, s:f, s:I, s:f, s:o}", "options", opts_json(o), "epoch", p->epoch,
	                      "batch", p->batch, "adam_step", (json_int_t)*ae_trainer_adam_step(tr), "loss_sum",
	                      p->loss_sum, "loss_n", (json_int_t)p->loss_n, "elapsed", p->elapsed, "history", rows);
	char *meta = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	json_decref(j);
	ae_extra_tensor ex[2] = {
		{ .name = "optim.adam_m",
		  .dtype = AE_DT_F32,
		  .ndim = 1,
		  .shape = { (int64_t)m->net.n_params },
		  .data = ae_trainer_adam_m(tr) },
		{ .name = "optim.adam_v",
		  .dtype = AE_DT_F32,
		  .ndim = 1,
		  .shape = { (int64_t)m->net.n_params },
		  .data = ae_trainer_adam_v(tr) },
	};
	ae_error err = { 0 };
	int rc = meta ? ae_model_save(m, path, ex, 2, "ae.checkpoint", meta, &err) : AE_ERR_NOMEM;
	free(meta);
	if (rc) fprintf(stderr, "aetrain: cannot write checkpoint: %s\n", err.msg[0] ? err.msg : "out of memory");
	return rc;
}

/* Options as a JSON object (or, as written before, a string holding one). */
static int opts_from_json(train_opts *o, json_t *v)
{
	json_t *own = json_is_string(v) ? json_loads(json_string_value(v), 0, NULL) : json_incref(v);
	const char *data = NULL, *split = NULL, *out = NULL, *loss = NULL, *noise = NULL, *classes = "",
	           *contaminate = "", *input = "none", *targets = "";
	json_int_t epochs, batch, threads, limit, seed, every = 0, rh = 0, rw = 0;
	int bad =
	        !json_is_object(own) ||
	        json_unpack(
	                own,
	                "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s?I, s:F, s:F, s:s, s:s, s:I, s?s, s?s, s?[I,I], s?s, s?s}",
	                "data", &data, "split", &split, "out", &out, "epochs", &epochs, "batch", &batch, "threads",
	                &threads, "limit", &limit, "checkpoint_every", &every, "lr", &o->lr, "val", &o->val, "loss",
	                &loss, "noise", &noise, "seed", &seed, "classes", &classes, "contaminate", &contaminate,
	                "resize", &rh, &rw, "input", &input, "targets", &targets) != 0;
	/* The same bounds as the command line's. */
	bad = bad || epochs < 1 || epochs > MAX_EPOCHS || batch < 1 || batch > MAX_BATCH || threads < 0 ||
	      threads > AE_MAX_THREADS || limit < 0 || every < 0 || !(o->lr >= 1e-8 && o->lr <= 1.0) ||
	      !(o->val >= 0.0 && o->val <= 0.9) || (strcmp(split, "train") != 0 && strcmp(split, "test") != 0) ||
	      (strcmp(loss, "mse") != 0 && strcmp(loss, "bce") != 0) || strlen(data) >= sizeof o->data ||
	      strlen(out) >= sizeof o->out || strlen(classes) >= sizeof o->classes ||
	      strlen(contaminate) >= sizeof o->contaminate || strlen(targets) >= sizeof o->targets || rh < 0 ||
	      rw < 0 || rh > AE_MAX_SIDE || rw > AE_MAX_SIDE || (rh > 0) != (rw > 0);
	if (!bad) {
		snprintf(o->data, sizeof o->data, "%s", data);
		snprintf(o->split, sizeof o->split, "%s", split);
		snprintf(o->out, sizeof o->out, "%s", out);
		snprintf(o->classes, sizeof o->classes, "%s", classes);
		snprintf(o->contaminate, sizeof o->contaminate, "%s", contaminate);
		snprintf(o->targets, sizeof o->targets, "%s", targets);
		o->epochs = epochs, o->batch = batch, o->threads = threads, o->limit = limit;
		o->checkpoint_every = every;
		o->resize[0] = (int)rh, o->resize[1] = (int)rw;
		o->seed = (uint64_t)seed;
		o->loss = strcmp(loss, "bce") == 0 ? AE_LOSS_BCE : AE_LOSS_MSE;
		bad = ae_noise_parse(&o->noise, noise, NULL) != AE_OK ||
		      ae_transform_parse(&o->transform, input, NULL) != AE_OK;
	}
	json_decref(own);
	return bad ? -1 : 0;
}

static int progress_from_json(progress *p, json_t *j, long *step, int epochs)
{
	json_t *rows = NULL;
	json_int_t astep = 0, loss_n = 0;
	if (json_unpack(j, "{s:i, s:i, s:I, s:F, s:I, s:F, s:o}", "epoch", &p->epoch, "batch", &p->batch, "adam_step",
	                &astep, "loss_sum", &p->loss_sum, "loss_n", &loss_n, "elapsed", &p->elapsed, "history",
	                &rows) != 0 ||
	    !json_is_array(rows) || p->epoch < 0 || p->epoch > epochs || p->batch < 0 || astep < 0 || loss_n < 0)
		return -1;
	p->loss_n = (long)loss_n;
	*step = (long)astep;
	size_t i;
	json_t *r;
	p->n_rows = 0;
	json_array_foreach(rows, i, r)
	{
		if (p->n_rows >= MAX_EPOCHS) break;
		epoch_row *e = &p->rows[p->n_rows];
		if (json_unpack(r, "[i,F,F,F]", &e->epoch, &e->train_loss, &e->val_loss, &e->seconds) == 0) p->n_rows++;
	}
	return 0;
}

ae_model *ckpt_parse(const ae_st *st, ckpt_state *cs, ae_error *err)
{
	ae_model *m = ae_model_from_st(st, "optim.", err);
	if (!m) return NULL;
	const char *meta = ae_st_meta_get(st, "ae.checkpoint");
	const ae_st_tensor *tm = ae_st_find(st, "optim.adam_m"), *tv = ae_st_find(st, "optim.adam_v");
	const size_t bytes = m->net.n_params * sizeof(float);
	json_t *j = NULL;
	int rc = 0;
	if (!meta || !tm || !tv || tm->dtype != AE_DT_F32 || tv->dtype != AE_DT_F32 || tm->end - tm->begin != bytes ||
	    tv->end - tv->begin != bytes)
		rc = ae_fail(err, AE_ERR_FORMAT, "not a training checkpoint (no optimiser state)");
	else if (!(j = json_loads(meta, 0, NULL)) || opts_from_json(&cs->opts, json_object_get(j, "options")) ||
	         progress_from_json(cs->p, j, &cs->adam_step, (int)cs->opts.epochs))
		rc = ae_fail(err, AE_ERR_FORMAT, "checkpoint metadata is malformed");
	else if (!(cs->adam_m = malloc(bytes)) || !(cs->adam_v = malloc(bytes)))
		rc = ae_fail(err, AE_ERR_NOMEM, "out of memory");
	json_decref(j);
	if (rc) {
		free(cs->adam_m), free(cs->adam_v);
		cs->adam_m = cs->adam_v = NULL;
		ae_model_free(m);
		return NULL;
	}
	memcpy(cs->adam_m, ae_st_bytes(st, tm), bytes);
	memcpy(cs->adam_v, ae_st_bytes(st, tv), bytes);
	cs->opts.spec = m->net.spec;
	return m;
}

ae_model *ckpt_load(const char *path, ckpt_state *cs)
{
	ae_st st;
	ae_error err = { 0 };
	ae_model *m = NULL;
	if (ae_st_read_file(&st, path, &err) == AE_OK) m = ckpt_parse(&st, cs, &err);
	ae_st_free(&st);
	if (!m) {
		/* read errors already name the file; the others do not */
		if (strncmp(err.msg, path, strlen(path)) != 0) ae_error_prefix(&err, path);
		fprintf(stderr, "aetrain: cannot resume: %s\n", err.msg);
	}
	return m;
}
