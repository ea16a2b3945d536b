/*
 * Expands an architecture preset into its layer list with shapes and
 * parameter offsets, and creates models with PyTorch's default
 * initialisation (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases).
 */
#include "ae/net.h"
#include "ae/scores.h"
#include "dconv.h"
#include "ops.h"
#include "ae/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ae_arch_defaults(ae_arch_spec *spec, const char *preset, ae_error *err)
{
	memset(spec, 0, sizeof *spec);
	if (strcmp(preset, "conv") != 0 && strcmp(preset, "dense") != 0)
		return ae_fail(err, AE_ERR_INVAL, "unknown architecture '%s' (expected conv or dense)", preset);
	snprintf(spec->preset, sizeof spec->preset, "%s", preset);
	spec->c = 1;
	spec->h = spec->w = 28;
	spec->latent = 16;
	spec->f1 = 32;
	spec->f2 = 64;
	spec->hidden = 128;
	spec->slope = 0.2f;
	return AE_OK;
}

typedef struct builder {
	ae_net *net;
	int c, h, w;  /* current shape */
	int seq, idx; /* 0 encoder / 1 decoder, index within it */
	size_t np, ns;
	ae_error *err;
	int rc;
} builder;

static ae_layer *push(builder *b, int kind)
{
	ae_net *net = b->net;
	if (b->rc || net->n_layers >= AE_MAX_LAYERS) {
		if (!b->rc) b->rc = ae_fail(b->err, AE_ERR_RANGE, "architecture has too many layers");
		return NULL;
	}
	ae_layer *l = &net->layers[net->n_layers++];
	memset(l, 0, sizeof *l);
	l->kind = kind;
	snprintf(l->name, sizeof l->name, "%s.%d", b->seq ? "decoder" : "encoder", b->idx++);
	l->ic = l->oc = b->c;
	l->ih = l->oh = b->h;
	l->iw = l->ow = b->w;
	l->w = l->b = l->rm = l->rv = AE_NONE;
	return l;
}

static void add_params(builder *b, ae_layer *l, size_t wn, size_t bn)
{
	l->w = b->np;
	l->wn = wn;
	b->np += wn;
	l->b = b->np;
	l->bn = bn;
	b->np += bn;
}

static void set_out(builder *b, ae_layer *l, int c, int h, int w)
{
	l->oc = b->c = c;
	l->oh = b->h = h;
	l->ow = b->w = w;
}

static void conv(builder *b, int oc, int k, int s, int p)
{
	ae_layer *l = push(b, AE_L_CONV);
	if (!l) return;
	ae_conv_geom g;
	if (ae_conv_geom_init(&g, b->c, b->h, b->w, k, s, p)) {
		b->rc = ae_fail(b->err, AE_ERR_INVAL, "%s: input %dx%d too small for the convolution", l->name, b->h,
		                b->w);
		return;
	}
	l->k = k, l->stride = s, l->pad = p;
	add_params(b, l, (size_t)oc * b->c * k * k, (size_t)oc);
	set_out(b, l, oc, g.oh, g.ow);
}

static void convt(builder *b, int oc, int k, int s, int p, int op)
{
	ae_layer *l = push(b, AE_L_CONVT);
	if (!l) return;
	l->k = k, l->stride = s, l->pad = p, l->opad = op;
	add_params(b, l, (size_t)b->c * oc * k * k, (size_t)oc);
	set_out(b, l, oc, (b->h - 1) * s - 2 * p + k + op, (b->w - 1) * s - 2 * p + k + op);
}

static void dense(builder *b, int out)
{
	ae_layer *l = push(b, AE_L_DENSE);
	if (!l) return;
	int in = b->c * b->h * b->w;
	l->ic = in, l->ih = l->iw = 1;
	add_params(b, l, (size_t)out * in, (size_t)out);
	set_out(b, l, out, 1, 1);
}

static void act(builder *b, int kind, float slope)
{
	ae_layer *l = push(b, kind);
	if (l) l->slope = slope;
}

static void bn(builder *b)
{
	ae_layer *l = push(b, AE_L_BN);
	if (!l) return;
	add_params(b, l, (size_t)b->c, (size_t)b->c);
	l->rm = b->ns;
	l->rv = b->ns + (size_t)b->c;
	b->ns += 2 * (size_t)b->c;
}

static void flatten(builder *b)
{
	ae_layer *l = push(b, AE_L_FLATTEN);
	if (l) set_out(b, l, b->c * b->h * b->w, 1, 1);
}

static void unflatten(builder *b, int c, int h, int w)
{
	ae_layer *l = push(b, AE_L_UNFLATTEN);
	if (l) set_out(b, l, c, h, w);
}

/* The nearest multiples of 4 below and above n (at least 4). */
static int down4(int n)
{
	return n / 4 * 4 < 4 ? 4 : n / 4 * 4;
}
static int up4(int n)
{
	return (n + 3) / 4 * 4;
}

/* The rules an image of the architecture follows, its input or (out:
 * "output ") its output. */
static int check_image(const char *preset, int c, int h, int w, const char *out, ae_error *err)
{
	if (c != 1 && c != 3) return ae_fail(err, AE_ERR_INVAL, "%schannels must be 1 or 3, not %d", out, c);
	if (h < 4 || w < 4 || h > AE_MAX_SIDE || w > AE_MAX_SIDE)
		return ae_fail(err, AE_ERR_INVAL, "%simage size %dx%d out of range (4..%d)", out, h, w, AE_MAX_SIDE);
	if (strcmp(preset, "conv") == 0 && (h % 4 || w % 4))
		return ae_fail(
		        err, AE_ERR_INVAL,
		        "%simages are %dx%d (height x width); the conv preset halves each side twice, so both must "
		        "be multiples of 4: the nearest sizes that work are %dx%d and %dx%d",
		        out, h, w, down4(h), down4(w), up4(h), up4(w));
	return AE_OK;
}

/* The output image's shape: the spec's, each 0 the input's. */
static void output_shape(const ae_arch_spec *s, int *c, int *h, int *w)
{
	*c = s->out_c ? s->out_c : s->c;
	*h = s->out_h ? s->out_h : s->h;
	*w = s->out_w ? s->out_w : s->w;
}

int ae_arch_validate(const ae_arch_spec *s, ae_error *err)
{
	int oc, oh, ow;
	output_shape(s, &oc, &oh, &ow);
	int rc = check_image(s->preset, s->c, s->h, s->w, "", err);
	if (rc == AE_OK && (oc != s->c || oh != s->h || ow != s->w))
		rc = check_image(s->preset, oc, oh, ow, "output ", err);
	if (rc) return rc;
	if (s->latent < 1 || s->latent > AE_MAX_LATENT)
		return ae_fail(err, AE_ERR_INVAL, "latent size %d out of range (1..%d)", s->latent, AE_MAX_LATENT);
	if (s->f1 < 1 || s->f2 < 1 || s->f1 > AE_MAX_FILTERS || s->f2 > AE_MAX_FILTERS)
		return ae_fail(err, AE_ERR_INVAL, "filters %d,%d out of range (1..%d)", s->f1, s->f2, AE_MAX_FILTERS);
	if (s->hidden < 1 || s->hidden > AE_MAX_HIDDEN)
		return ae_fail(err, AE_ERR_INVAL, "hidden size %d out of range (1..%d)", s->hidden, AE_MAX_HIDDEN);
	if (!(s->slope >= 0.0f && s->slope < 1.0f))
		return ae_fail(err, AE_ERR_INVAL, "LeakyReLU slope %g out of range [0, 1)", s->slope);
	return AE_OK;
}

int ae_net_build(ae_net *net, const ae_arch_spec *spec, ae_error *err)
{
	memset(net, 0, sizeof *net);
	if (strcmp(spec->preset, "conv") != 0 && strcmp(spec->preset, "dense") != 0)
		return ae_fail(err, AE_ERR_INVAL, "unknown architecture '%s' (expected conv or dense)", spec->preset);
	int rc = ae_arch_validate(spec, err);
	if (rc) return rc;
	net->spec = *spec;
	ae_arch_spec *o = &net->spec;
	output_shape(spec, &o->out_c, &o->out_h, &o->out_w);
	builder b = { .net = net, .c = spec->c, .h = spec->h, .w = spec->w, .err = err };
	const float sl = spec->slope;
	if (strcmp(spec->preset, "conv") == 0) {
		conv(&b, spec->f1, 3, 2, 1);
		act(&b, AE_L_LRELU, sl);
		bn(&b);
		conv(&b, spec->f2, 3, 2, 1);
		act(&b, AE_L_LRELU, sl);
		bn(&b);
		flatten(&b);
		dense(&b, spec->latent);
		net->n_enc = net->n_layers;
		b.seq = 1, b.idx = 0;
		b.c = spec->latent, b.h = b.w = 1;
		dense(&b, spec->f2 * (o->out_h / 4) * (o->out_w / 4));
		unflatten(&b, spec->f2, o->out_h / 4, o->out_w / 4);
		convt(&b, spec->f2, 3, 2, 1, 1);
		act(&b, AE_L_LRELU, sl);
		bn(&b);
		convt(&b, spec->f1, 3, 2, 1, 1);
		act(&b, AE_L_LRELU, sl);
		bn(&b);
		convt(&b, o->out_c, 3, 1, 1, 0);
		act(&b, AE_L_SIGMOID, 0.0f);
	} else {
		flatten(&b);
		dense(&b, spec->hidden);
		act(&b, AE_L_RELU, 0.0f);
		dense(&b, spec->latent);
		net->n_enc = net->n_layers;
		b.seq = 1, b.idx = 0;
		dense(&b, spec->hidden);
		act(&b, AE_L_RELU, 0.0f);
		dense(&b, o->out_c * o->out_h * o->out_w);
		act(&b, AE_L_SIGMOID, 0.0f);
		unflatten(&b, o->out_c, o->out_h, o->out_w);
	}
	if (b.rc) return b.rc;
	const ae_layer *last = &net->layers[net->n_layers - 1];
	if (last->oc != o->out_c || last->oh != o->out_h || last->ow != o->out_w)
		return ae_fail(err, AE_ERR_INVAL, "decoder output %dx%dx%d is not the output image %dx%dx%d", last->oc,
		               last->oh, last->ow, o->out_c, o->out_h, o->out_w);
	net->n_params = b.np;
	net->n_state = b.ns;
	return AE_OK;
}

int ae_arch_check_autoencoder(const ae_arch_spec *s, ae_error *err)
{
	int oc, oh, ow;
	output_shape(s, &oc, &oh, &ow);
	if (oc == s->c && oh == s->h && ow == s->w) return AE_OK;
	return ae_fail(err, AE_ERR_INVAL,
	               "the model gives %dx%dx%d images for %dx%dx%d ones (channels x height x width); comparing "
	               "an image with its reconstruction needs the same shape",
	               oc, oh, ow, s->c, s->h, s->w);
}

void ae_layer_geom(const ae_layer *l, ae_conv_geom *g)
{
	if (l->kind == AE_L_CONV) {
		ae_conv_geom_init(g, l->ic, l->ih, l->iw, l->k, l->stride, l->pad);
	} else {
		ae_conv_geom_init(g, l->oc, l->oh, l->ow, l->k, l->stride, l->pad);
		g->oh = l->ih;
		g->ow = l->iw;
	}
}

void ae_layer_dconv_shape(const ae_layer *l, ae_dconv_shape *s)
{
	if (l->kind == AE_L_DENSE) {
		*s = (ae_dconv_shape){
			.ic = l->ic, .ih = 1, .iw = 1, .oc = l->oc, .oh = 1, .ow = 1, .k = 1, .stride = 1, .pad = 0
		};
		return;
	}
	*s = (ae_dconv_shape){ .transposed = l->kind == AE_L_CONVT,
		               .ic = l->ic,
		               .ih = l->ih,
		               .iw = l->iw,
		               .oc = l->oc,
		               .oh = l->oh,
		               .ow = l->ow,
		               .k = l->k,
		               .stride = l->stride,
		               .pad = l->pad };
}

static void init_uniform(float *p, size_t n, float bound, ae_rng *r)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (2.0f * ae_rng_uniform(r) - 1.0f) * bound;
}

static void init_params(ae_model *m, uint64_t seed)
{
	ae_rng r;
	ae_rng_seed(&r, seed);
	for (int i = 0; i < m->net.n_layers; i++) {
		const ae_layer *l = &m->net.layers[i];
		size_t fan_in;
		switch (l->kind) {
		case AE_L_CONV: fan_in = (size_t)l->ic * l->k * l->k; break;
		/* PyTorch takes fan_in from weight dim 1, which is out_channels here. */
		case AE_L_CONVT: fan_in = (size_t)l->oc * l->k * l->k; break;
		case AE_L_DENSE: fan_in = (size_t)l->ic; break;
		case AE_L_BN:
			for (size_t j = 0; j < l->wn; j++) {
				m->params[l->w + j] = 1.0f;
				m->params[l->b + j] = 0.0f;
				m->state[l->rm + j] = 0.0f;
				m->state[l->rv + j] = 1.0f;
			}
			continue;
		default: continue;
		}
		float bound = 1.0f / sqrtf((float)fan_in);
		init_uniform(m->params + l->w, l->wn, bound, &r);
		init_uniform(m->params + l->b, l->bn, bound, &r);
	}
}

ae_model *ae_model_new(const ae_arch_spec *spec, uint64_t seed, ae_error *err)
{
	ae_model *m = calloc(1, sizeof *m);
	if (!m) {
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating a model");
		return NULL;
	}
	if (ae_net_build(&m->net, spec, err)) {
		free(m);
		return NULL;
	}
	m->params = calloc(m->net.n_params ? m->net.n_params : 1, sizeof(float));
	m->state = calloc(m->net.n_state ? m->net.n_state : 1, sizeof(float));
	if (!m->params || !m->state) {
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating %zu parameters", m->net.n_params);
		ae_model_free(m);
		return NULL;
	}
	snprintf(m->task, sizeof m->task, "reconstruct");
	init_params(m, seed);
	return m;
}

void ae_model_free(ae_model *m)
{
	if (!m) return;
	free(m->params);
	free(m->state);
	free(m->latent_mean);
	free(m->latent_prec);
	free(m->code_scale);
	free(m);
}

double ae_model_percentile(const ae_model *m, double score)
{
	return ae_table_percentile(m->qp, m->qv, m->n_quant, score);
}

double ae_model_quantile(const ae_model *m, double q)
{
	return ae_table_quantile(m->qp, m->qv, m->n_quant, q);
}

const char *ae_precision_name(int prec)
{
	return prec == AE_PREC_BF16 ? "bf16" : prec == AE_PREC_INT8 ? "int8" : "fp32";
}

int ae_model_use_precision(ae_model *m, int prec)
{
	if (prec <= AE_PREC_FP32 || prec >= AE_PREC_COUNT || !m->prec_cal[prec][AE_SCORE_MSE].present) return 0;
	memcpy(m->cal, m->prec_cal[prec], sizeof m->cal);
	const ae_score_cal *c = &m->cal[AE_SCORE_MSE];
	m->n_quant = c->n_quant;
	memcpy(m->qp, c->qp, sizeof m->qp);
	memcpy(m->qv, c->qv, sizeof m->qv);
	return 1;
}
