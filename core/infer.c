/*
 * Inference plans. Each linear layer (conv, transposed conv, dense) becomes
 * one stage; the layers after it are absorbed:
 *   - a batch norm directly after it is folded into its weights and bias;
 *   - an activation becomes the stage's epilogue;
 *   - a batch norm after the activation (the Keras recipe's order, which
 *     cannot be folded into weights exactly) becomes the epilogue's
 *     per-channel scale and shift, applied in the same pass.
 * So the conv preset's 17 layers run as 7 passes over memory.
 */
#include "ae/infer.h"
#include "ae/ops.h"

#include <stdlib.h>
#include <string.h>

#define BN_EPS 1e-5f

typedef struct stage {
	int kind;
	const ae_layer *l;
	const float *w, *b;     /* weights (folded copy or the model's own) */
	ae_epilogue ep;
	ae_conv_geom g;
	size_t in_size, out_size; /* per image */
} stage;

struct ae_plan {
	const ae_model *m;
	int n_stages, n_enc;    /* stages[0, n_enc) are the encoder */
	stage st[AE_MAX_LAYERS];
	float *owned;           /* folded weights, biases, scales, shifts */
};

struct ae_infer {
	const ae_plan *p;
	int max_batch;
	float *buf[2], *col, *t;
	float *code;            /* (max_batch, latent) for reconstruct */
};

static int is_linear(int kind)
{
	return kind == AE_L_CONV || kind == AE_L_CONVT || kind == AE_L_DENSE;
}

/* Scales output channel o of a linear layer's weights by s[o]. */
static void scale_out_channels(float *w, const ae_layer *l, const float *s)
{
	if (l->kind == AE_L_CONVT) {
		size_t kk = (size_t)l->k * l->k;
		for (int i = 0; i < l->ic; i++)
			for (int o = 0; o < l->oc; o++)
				for (size_t j = 0; j < kk; j++)
					w[((size_t)i * l->oc + o) * kk + j] *= s[o];
	} else {
		size_t per = l->wn / (size_t)l->oc;
		for (int o = 0; o < l->oc; o++)
			for (size_t j = 0; j < per; j++)
				w[(size_t)o * per + j] *= s[o];
	}
}

/* Space for folded copies: weights+bias of folded linears, 2*c per epilogue BN. */
static size_t owned_size(const ae_net *net)
{
	size_t n = 0;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (is_linear(l->kind) && i + 1 < net->n_layers && net->layers[i + 1].kind == AE_L_BN)
			n += l->wn + l->bn + 2 * (size_t)l->oc;
		else if (l->kind == AE_L_BN)
			n += 2 * (size_t)l->oc;
	}
	return n ? n : 1;
}

static int compile(ae_plan *p, ae_error *err)
{
	const ae_model *m = p->m;
	const ae_net *net = &m->net;
	float *o = p->owned;
	for (int i = 0; i < net->n_layers;) {
		const ae_layer *l = &net->layers[i];
		if (!is_linear(l->kind)) {
			if (l->kind != AE_L_FLATTEN && l->kind != AE_L_UNFLATTEN)
				return ae_fail(err, AE_ERR_FORMAT, "%s: layer without a linear layer before it", l->name);
			i++;
			continue;
		}
		stage *s = &p->st[p->n_stages++];
		memset(s, 0, sizeof *s);
		s->kind = l->kind;
		s->l = l;
		s->w = m->params + l->w;
		s->b = m->params + l->b;
		s->in_size = (size_t)l->ic * l->ih * l->iw;
		s->out_size = ae_layer_out_size(l);
		if (l->kind != AE_L_DENSE)
			ae_layer_geom(l, &s->g);
		i++;
		if (i < net->n_layers && net->layers[i].kind == AE_L_BN) {
			const ae_layer *b = &net->layers[i++];
			float *w = o, *bias = o + l->wn, *sc = bias + l->bn, *sh = sc + l->oc;
			o = sh + l->oc;
			ae_bn_fold(sc, sh, m->params + b->w, m->params + b->b, m->state + b->rm,
			           m->state + b->rv, b->oc, BN_EPS);
			memcpy(w, s->w, l->wn * sizeof(float));
			scale_out_channels(w, l, sc);
			for (int c = 0; c < l->oc; c++)
				bias[c] = s->b[c] * sc[c] + sh[c];
			s->w = w;
			s->b = bias;
		}
		s->ep.bias = s->b;
		if (i < net->n_layers) {
			const ae_layer *a = &net->layers[i];
			if (a->kind == AE_L_RELU || a->kind == AE_L_LRELU || a->kind == AE_L_SIGMOID) {
				s->ep.act = a->kind == AE_L_RELU ? AE_ACT_RELU :
				            a->kind == AE_L_LRELU ? AE_ACT_LRELU : AE_ACT_SIGMOID;
				s->ep.slope = a->slope;
				i++;
				if (i < net->n_layers && net->layers[i].kind == AE_L_BN) {
					const ae_layer *b = &net->layers[i++];
					float *sc = o, *sh = o + b->oc;
					o += 2 * (size_t)b->oc;
					ae_bn_fold(sc, sh, m->params + b->w, m->params + b->b, m->state + b->rm,
					           m->state + b->rv, b->oc, BN_EPS);
					s->ep.scale = sc;
					s->ep.shift = sh;
				}
			}
		}
		if (i <= net->n_enc)
			p->n_enc = p->n_stages;
	}
	return AE_OK;
}

ae_plan *ae_plan_new(const ae_model *m, ae_error *err)
{
	ae_plan *p = calloc(1, sizeof *p);
	if (p)
		p->owned = malloc(owned_size(&m->net) * sizeof(float));
	if (!p || !p->owned) {
		ae_plan_free(p);
		ae_fail(err, AE_ERR_NOMEM, "out of memory compiling an inference plan");
		return NULL;
	}
	p->m = m;
	if (compile(p, err)) {
		ae_plan_free(p);
		return NULL;
	}
	return p;
}

void ae_plan_free(ae_plan *p)
{
	if (!p)
		return;
	free(p->owned);
	free(p);
}

const ae_model *ae_plan_model(const ae_plan *p)
{
	return p->m;
}

ae_infer *ae_infer_new(const ae_plan *p, int max_batch, ae_error *err)
{
	if (max_batch < 1 || max_batch > 65536) {
		ae_fail(err, AE_ERR_INVAL, "batch size %d out of range (1..65536)", max_batch);
		return NULL;
	}
	size_t act = 1, col = 1, t = 1, b = (size_t)max_batch;
	for (int i = 0; i < p->n_stages; i++) {
		const stage *s = &p->st[i];
		if (s->in_size * b > act) act = s->in_size * b;
		if (s->out_size * b > act) act = s->out_size * b;
		if (s->kind == AE_L_CONV) {
			size_t np = b * s->g.oh * s->g.ow;
			if (np * s->g.c * s->g.k * s->g.k > col) col = np * s->g.c * s->g.k * s->g.k;
			if (np * s->l->oc > t) t = np * s->l->oc;
		} else if (s->kind == AE_L_CONVT) {
			size_t np = b * s->g.oh * s->g.ow;
			if (np * s->g.c * s->g.k * s->g.k > col) col = np * s->g.c * s->g.k * s->g.k;
			if (np * s->l->ic > t) t = np * s->l->ic;
		}
	}
	ae_infer *w = calloc(1, sizeof *w);
	if (w) {
		w->buf[0] = malloc(act * sizeof(float));
		w->buf[1] = malloc(act * sizeof(float));
		w->col = malloc(col * sizeof(float));
		w->t = malloc(t * sizeof(float));
		w->code = malloc(b * p->st[p->n_enc - 1].out_size * sizeof(float));
	}
	if (!w || !w->buf[0] || !w->buf[1] || !w->col || !w->t || !w->code) {
		ae_infer_free(w);
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating inference scratch for batch %d", max_batch);
		return NULL;
	}
	w->p = p;
	w->max_batch = max_batch;
	return w;
}

void ae_infer_free(ae_infer *w)
{
	if (!w)
		return;
	free(w->buf[0]);
	free(w->buf[1]);
	free(w->col);
	free(w->t);
	free(w->code);
	free(w);
}

static void run_stage(ae_infer *w, const stage *s, const float *in, float *out, int n)
{
	switch (s->kind) {
	case AE_L_CONV:
		ae_conv2d_forward(out, w->col, w->t, in, s->w, &s->ep, n, s->l->oc, &s->g);
		break;
	case AE_L_CONVT:
		ae_convt2d_forward(out, w->col, w->t, in, s->w, &s->ep, n, s->l->ic, &s->g);
		break;
	default:
		ae_dense_forward(out, in, s->w, &s->ep, n, s->l->ic, s->l->oc);
	}
}

/* Runs stages [from, to) on n <= max_batch images; the last writes to out. */
static void run_range(ae_infer *w, int from, int to, const float *in, float *out, int n)
{
	const float *cur = in;
	for (int i = from; i < to; i++) {
		float *dst = i == to - 1 ? out : w->buf[(i - from) & 1];
		run_stage(w, &w->p->st[i], cur, dst, n);
		cur = dst;
	}
}

static void run_chunked(ae_infer *w, int from, int to, const float *in, float *out, int n)
{
	const ae_plan *p = w->p;
	size_t isz = p->st[from].in_size, osz = p->st[to - 1].out_size;
	for (int done = 0; done < n; done += w->max_batch) {
		int b = n - done < w->max_batch ? n - done : w->max_batch;
		run_range(w, from, to, in + (size_t)done * isz, out + (size_t)done * osz, b);
	}
}

void ae_infer_encode(ae_infer *w, const float *x, int n, float *z)
{
	run_chunked(w, 0, w->p->n_enc, x, z, n);
}

void ae_infer_decode(ae_infer *w, const float *z, int n, float *y)
{
	run_chunked(w, w->p->n_enc, w->p->n_stages, z, y, n);
}

void ae_infer_reconstruct(ae_infer *w, const float *x, int n, float *y, float *z)
{
	const ae_plan *p = w->p;
	size_t isz = p->st[0].in_size, lat = p->st[p->n_enc - 1].out_size;
	size_t osz = p->st[p->n_stages - 1].out_size;
	for (int done = 0; done < n; done += w->max_batch) {
		int b = n - done < w->max_batch ? n - done : w->max_batch;
		float *code = z ? z + (size_t)done * lat : w->code;
		run_range(w, 0, p->n_enc, x + (size_t)done * isz, code, b);
		run_range(w, p->n_enc, p->n_stages, code, y + (size_t)done * osz, b);
	}
}
