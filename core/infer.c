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

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BN_EPS 1e-5f
/* Images per pass through the network: small enough that each layer's
 * column matrix stays in L2, large enough for the GEMMs to run at speed
 * (measured: bench/results, docs/performance.md). */
#define CHUNK 8

typedef struct stage {
	int kind;
	const ae_layer *l;
	const float *w, *b;     /* weights (folded copy or the model's own) */
	ae_epilogue ep;
	ae_conv_geom g;           /* conv */
	int subpix;               /* transposed conv lowered by sub-pixel phases */
	ae_subpix sp;             /* then w holds its packed weights */
	size_t in_size, out_size; /* per image */
} stage;

struct ae_plan {
	const ae_model *m;
	int n_stages, n_enc;    /* stages[0, n_enc) are the encoder */
	stage st[AE_MAX_LAYERS];
	float *owned;           /* folded weights, biases, scales, shifts */
};

/* One thread's scratch, sized for a chunk of images. */
typedef struct lane {
	float *buf[2], *col, *t;
	float *code;            /* (chunk, latent) for reconstruct */
} lane;

/* What every lane runs: its share of images [0, n), by chunks. */
typedef struct job {
	int op;                 /* OP_ENCODE, OP_DECODE, OP_RECONSTRUCT */
	const float *in;
	float *out, *z;
	int n;
	int lanes;              /* how many lanes share it */
} job;

enum { OP_ENCODE, OP_DECODE, OP_RECONSTRUCT };

struct ae_infer {
	const ae_plan *p;
	int chunk, threads;
	lane *lanes;            /* threads of them; lane 0 is the caller's */
	pthread_t *helpers;     /* threads - 1 */
	int started;            /* helpers running */
	int n_helpers;          /* numbering handed to helpers as they start */
	pthread_mutex_t mu;
	pthread_cond_t go, done;
	job job;
	unsigned long gen;      /* bumped per call; helpers run each generation once */
	int pending, quit;
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

/* Space for folded copies: weights+bias of folded linears, 2*c per epilogue
 * BN, and the sub-pixel packing of every transposed conv's weights. */
static size_t owned_size(const ae_net *net)
{
	size_t n = 0;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (is_linear(l->kind) && i + 1 < net->n_layers && net->layers[i + 1].kind == AE_L_BN)
			n += l->wn + l->bn + 2 * (size_t)l->oc;
		else if (l->kind == AE_L_BN)
			n += 2 * (size_t)l->oc;
		if (l->kind == AE_L_CONVT)
			n += l->wn;
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
		if (l->kind == AE_L_CONV)
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
		if (l->kind == AE_L_CONVT)
			ae_layer_geom(l, &s->g);
		if (l->kind == AE_L_CONVT && ae_subpix_preferred(l->ic, l->oc)) {
			s->subpix = 1;
			if (ae_subpix_init(&s->sp, l->ic, l->oc, l->ih, l->iw, l->oh, l->ow, l->k, l->stride, l->pad))
				return ae_fail(err, AE_ERR_FORMAT, "%s: kernel %d or stride %d too large", l->name, l->k, l->stride);
			ae_subpix_pack(o, s->w, &s->sp);
			s->w = o;
			o += l->wn;
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

static void lane_free(lane *l)
{
	free(l->buf[0]);
	free(l->buf[1]);
	free(l->col);
	free(l->t);
	free(l->code);
}

static int lane_alloc(lane *l, const ae_plan *p, int b)
{
	size_t act = 1, col = 1, t = 1;
	for (int i = 0; i < p->n_stages; i++) {
		const stage *s = &p->st[i];
		size_t c = 0, tt = 0;
		if (s->in_size * b > act) act = s->in_size * b;
		if (s->out_size * b > act) act = s->out_size * b;
		if (s->kind == AE_L_CONV) {
			size_t np = (size_t)b * s->g.oh * s->g.ow;
			c = np * s->g.c * s->g.k * s->g.k;
			tt = np * s->l->oc;
		} else if (s->kind == AE_L_CONVT && s->subpix) {
			c = ae_subpix_col_size(&s->sp, b);
			tt = ae_subpix_t_size(&s->sp, b);
		} else if (s->kind == AE_L_CONVT) {
			size_t np = (size_t)b * s->g.oh * s->g.ow;
			c = np * s->g.c * s->g.k * s->g.k;
			tt = np * s->l->ic;
		}
		if (c > col) col = c;
		if (tt > t) t = tt;
	}
	l->buf[0] = malloc(act * sizeof(float));
	l->buf[1] = malloc(act * sizeof(float));
	l->col = malloc(col * sizeof(float));
	l->t = malloc(t * sizeof(float));
	l->code = malloc((size_t)b * p->st[p->n_enc - 1].out_size * sizeof(float));
	return l->buf[0] && l->buf[1] && l->col && l->t && l->code ? 0 : -1;
}

static void run_stage(lane *ln, const stage *s, const float *in, float *out, int n)
{
	switch (s->kind) {
	case AE_L_CONV:
		ae_conv2d_forward(out, ln->col, ln->t, in, s->w, &s->ep, n, s->l->oc, &s->g);
		break;
	case AE_L_CONVT:
		if (s->subpix)
			ae_subpix_forward(out, ln->col, ln->t, in, s->w, &s->ep, n, &s->sp);
		else
			ae_convt2d_forward(out, ln->col, ln->t, in, s->w, &s->ep, n, s->l->ic, &s->g);
		break;
	default:
		ae_dense_forward(out, in, s->w, &s->ep, n, s->l->ic, s->l->oc);
	}
}

/* Runs stages [from, to) on n <= chunk images; the last writes to out. */
static void run_range(lane *ln, const ae_plan *p, int from, int to, const float *in, float *out, int n)
{
	const float *cur = in;
	for (int i = from; i < to; i++) {
		float *dst = i == to - 1 ? out : ln->buf[(i - from) & 1];
		run_stage(ln, &p->st[i], cur, dst, n);
		cur = dst;
	}
}

/* Lane k's share of the job: a contiguous run of images, by chunks. */
static void run_share(ae_infer *w, int k)
{
	const ae_plan *p = w->p;
	const job *j = &w->job;
	lane *ln = &w->lanes[k];
	int lo = (int)((long)j->n * k / j->lanes), hi = (int)((long)j->n * (k + 1) / j->lanes);
	int from = j->op == OP_DECODE ? p->n_enc : 0;
	int to = j->op == OP_ENCODE ? p->n_enc : p->n_stages;
	size_t isz = p->st[from].in_size, osz = p->st[to - 1].out_size;
	size_t lat = p->st[p->n_enc - 1].out_size;
	for (int done = lo; done < hi; done += w->chunk) {
		int b = hi - done < w->chunk ? hi - done : w->chunk;
		const float *in = j->in + (size_t)done * isz;
		float *out = j->out + (size_t)done * osz;
		if (j->op != OP_RECONSTRUCT) {
			run_range(ln, p, from, to, in, out, b);
			continue;
		}
		float *code = j->z ? j->z + (size_t)done * lat : ln->code;
		run_range(ln, p, 0, p->n_enc, in, code, b);
		run_range(ln, p, p->n_enc, p->n_stages, code, out, b);
	}
}

static void *helper_main(void *arg)
{
	ae_infer *w = arg;
	pthread_mutex_lock(&w->mu);
	int k = ++w->n_helpers;
	unsigned long seen = 0;  /* gen is 0 until the first call */
	for (;;) {
		while (!w->quit && w->gen == seen)
			pthread_cond_wait(&w->go, &w->mu);
		if (w->quit)
			break;
		seen = w->gen;
		pthread_mutex_unlock(&w->mu);
		run_share(w, k);
		pthread_mutex_lock(&w->mu);
		if (--w->pending == 0)
			pthread_cond_signal(&w->done);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static void run_job(ae_infer *w, int op, const float *in, float *out, float *z, int n)
{
	/* Below two images per lane the split costs more than it saves. */
	int lanes = n < 2 * w->threads ? 1 : w->threads;
	w->job = (job){ .op = op, .in = in, .out = out, .z = z, .n = n, .lanes = lanes };
	if (lanes == 1) {
		run_share(w, 0);
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->gen++;
	w->pending = w->threads - 1;
	pthread_cond_broadcast(&w->go);
	pthread_mutex_unlock(&w->mu);
	run_share(w, 0);
	pthread_mutex_lock(&w->mu);
	while (w->pending)
		pthread_cond_wait(&w->done, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

ae_infer *ae_infer_new(const ae_plan *p, int max_batch, int threads, ae_error *err)
{
	if (max_batch < 1 || max_batch > 65536) {
		ae_fail(err, AE_ERR_INVAL, "batch size %d out of range (1..65536)", max_batch);
		return NULL;
	}
	if (threads < 1 || threads > 256) {
		ae_fail(err, AE_ERR_INVAL, "thread count %d out of range (1..256)", threads);
		return NULL;
	}
	ae_infer *w = calloc(1, sizeof *w);
	if (!w) {
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating an inference context");
		return NULL;
	}
	w->p = p;
	w->chunk = max_batch < CHUNK ? max_batch : CHUNK;
	w->threads = threads;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->go, NULL);
	pthread_cond_init(&w->done, NULL);
	w->lanes = calloc((size_t)threads, sizeof *w->lanes);
	w->helpers = calloc((size_t)threads, sizeof *w->helpers);
	int ok = w->lanes && w->helpers;
	for (int k = 0; ok && k < threads; k++)
		ok = lane_alloc(&w->lanes[k], p, w->chunk) == 0;
	if (!ok) {
		ae_infer_free(w);
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating inference scratch for %d threads", threads);
		return NULL;
	}
	for (int k = 1; k < threads; k++, w->started++)
		if (pthread_create(&w->helpers[k - 1], NULL, helper_main, w)) {
			ae_infer_free(w);
			ae_fail(err, AE_ERR_NOMEM, "cannot start inference thread %d of %d", k + 1, threads);
			return NULL;
		}
	return w;
}

void ae_infer_free(ae_infer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->quit = 1;
	pthread_cond_broadcast(&w->go);
	pthread_mutex_unlock(&w->mu);
	for (int k = 0; k < w->started; k++)
		pthread_join(w->helpers[k], NULL);
	for (int k = 0; k < w->threads && w->lanes; k++)
		lane_free(&w->lanes[k]);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->go);
	pthread_cond_destroy(&w->done);
	free(w->lanes);
	free(w->helpers);
	free(w);
}

void ae_infer_encode(ae_infer *w, const float *x, int n, float *z)
{
	run_job(w, OP_ENCODE, x, z, NULL, n);
}

void ae_infer_decode(ae_infer *w, const float *z, int n, float *y)
{
	run_job(w, OP_DECODE, z, y, NULL, n);
}

void ae_infer_reconstruct(ae_infer *w, const float *x, int n, float *y, float *z)
{
	run_job(w, OP_RECONSTRUCT, x, y, z, n);
}
