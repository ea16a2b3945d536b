/*
 * Inference plans. Each linear layer (conv, transposed conv, dense) becomes
 * one stage; the layers after it are absorbed:
 *   - a batch norm directly after it is folded into its weights and bias;
 *   - an activation becomes the stage's epilogue;
 *   - a batch norm after the activation (the Keras recipe's order, which
 *     cannot be folded into weights exactly) becomes the epilogue's
 *     per-channel scale and shift, applied in the same pass.
 * So the conv preset's 17 layers run as 7 passes over memory.
 *
 * Convolutions run direct on channels-last (NHWC) activations (dconv.h);
 * dense layers next to them have their weights permuted once here so that
 * flatten/unflatten keep PyTorch's (C, H, W) meaning. A model's input and
 * output stay NCHW at the API; only multi-channel images are transposed.
 */
#include "ae/infer.h"
#include "dconv.h"
#include "ops.h"
#include "qconv.h"
#include "team.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Images per pass through the network, and the unit lanes share (a batch
 * smaller than CHUNK per lane is split evenly). The convolutions go
 * through a chunk in sub-chunks (AE_L2_BYTES), so what the chunk's size
 * decides is how often a dense layer's weights are read: at 128x128x3 the
 * two dense layers hold 4 MB each, and a reconstruct at batch 32 on two
 * lanes, alternated call by call in one process, was 2.2-2.8% faster with
 * chunks of 16 than of 8, 2% slower with 4 and 9% slower with 2; at 28x28x1
 * and 64x64x3, 8 and 16 were even. */
#define CHUNK 16
/* Within a chunk, a run of convolutions goes through as few images at a
 * time as keep each stage's input and output under AE_L2_BYTES (ops.h);
 * the dense layers between runs still take the whole chunk, so their
 * weights are read once per chunk. At 128x128x3 (3 MB per image in the
 * widest stage) one image at a time measured 15-20% faster than 8. */

typedef struct stage {
	int kind;
	const ae_layer *l;
	const float *w, *b; /* weights (folded copy or the model's own) */
	ae_epilogue ep;
	ae_dconv dc; /* what runs in fp32: every stage is a direct convolution */
	ae_qconv qc; /* or in reduced precision (quant) */
	int quant;
	size_t in_size, out_size; /* per image */
} stage;

struct ae_plan {
	const ae_model *m;
	int prec, reference; /* what runs (AE_PREC_*), and whether on the portable kernels */
	int n_stages, n_enc; /* stages[0, n_enc) are the encoder */
	stage st[AE_MAX_LAYERS];
	float *owned;                               /* folded weights, biases, scales, shifts */
	ae_shape in[AE_OP_COUNT], out[AE_OP_COUNT]; /* per item, what each op reads and writes */
};

/* One thread's scratch, sized for a chunk of images. */
typedef struct lane {
	float *buf[3]; /* activations; buf[2] for NCHW <-> NHWC at the ends */
	float *sub[2]; /* inside a run of convolutions, for a sub-chunk */
	float *code;   /* (chunk, latent) for reconstruct */
	void *qbuf;    /* a reduced-precision stage's converted input */
} lane;

/* What the lanes run: images [0, n) by chunks, each lane taking the next
 * chunk as it finishes one, so a core the shared host slows down does
 * less of the batch instead of making the others wait for it. */
typedef struct job {
	ae_op op;
	const float *in;
	float *out, *z;
	int n;
	int chunk;       /* images per chunk: small batches still split */
	atomic_int next; /* the next chunk to take */
} job;

struct ae_infer {
	const ae_plan *p;
	int chunk, threads;
	lane *lanes; /* threads of them; lane 0 is the caller's */
	ae_team *team;
	job job;
};

static int is_linear(int kind)
{
	return kind == AE_L_CONV || kind == AE_L_CONVT || kind == AE_L_DENSE;
}

static int is_spatial(const stage *s)
{
	return s->kind == AE_L_CONV || s->kind == AE_L_CONVT;
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
				return ae_fail(err, AE_ERR_FORMAT, "%s: layer without a linear layer before it",
				               l->name);
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
		i++;
		if (i < net->n_layers && net->layers[i].kind == AE_L_BN) {
			const ae_layer *b = &net->layers[i++];
			float *w = o, *bias = o + l->wn, *sc = bias + l->bn, *sh = sc + l->oc;
			o = sh + l->oc;
			ae_bn_fold(sc, sh, m->params + b->w, m->params + b->b, m->state + b->rm, m->state + b->rv,
			           b->oc, AE_BN_EPS);
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
				s->ep.act = a->kind == AE_L_RELU    ? AE_ACT_RELU
				            : a->kind == AE_L_LRELU ? AE_ACT_LRELU
				                                    : AE_ACT_SIGMOID;
				s->ep.slope = a->slope;
				i++;
				if (i < net->n_layers && net->layers[i].kind == AE_L_BN) {
					const ae_layer *b = &net->layers[i++];
					float *sc = o, *sh = o + b->oc;
					o += 2 * (size_t)b->oc;
					ae_bn_fold(sc, sh, m->params + b->w, m->params + b->b, m->state + b->rm,
					           m->state + b->rv, b->oc, AE_BN_EPS);
					s->ep.scale = sc;
					s->ep.shift = sh;
				}
			}
		}
		if (i <= net->n_enc) p->n_enc = p->n_stages;
	}
	return AE_OK;
}

/* Blocks of len floats from (C, HW) order to (HW, C) order. */
static void to_pixel_major(float *dst, const float *src, int c, int hw, size_t len)
{
	for (int ch = 0; ch < c; ch++)
		for (int q = 0; q < hw; q++)
			memcpy(dst + ((size_t)q * c + ch) * len, src + ((size_t)ch * hw + q) * len,
			       len * sizeof(float));
}

/* A dense layer fed by a multi-channel image reads it channels-last, so its
 * weight columns are reordered; one feeding a convolution writes channels-
 * last, so its rows, bias and epilogue are. The permuted copies go in
 * *mem (NULL when nothing moves), which the caller frees once the stage is
 * compiled. */
static int permute_dense(stage *s, const stage *prev, const stage *next, float **mem)
{
	const ae_layer *l = s->l;
	int pin = prev && is_spatial(prev) && prev->l->oc > 1;
	int pout = next && is_spatial(next) && next->l->ic > 1;
	*mem = NULL;
	if (!pin && !pout) return 0;
	size_t in = (size_t)l->ic, out = (size_t)l->oc;
	if (!(*mem = malloc((2 * l->wn + 3 * out) * sizeof(float)))) return -1;
	float *w = *mem, *tmp = w + l->wn, *v = tmp + l->wn;
	memcpy(w, s->w, l->wn * sizeof(float));
	if (pin) {
		int c = prev->l->oc, hw = prev->l->oh * prev->l->ow;
		for (size_t o = 0; o < out; o++)
			to_pixel_major(tmp + o * in, w + o * in, c, hw, 1);
		memcpy(w, tmp, l->wn * sizeof(float));
	}
	s->w = w;
	if (pout) {
		int c = next->l->ic, hw = next->l->ih * next->l->iw;
		to_pixel_major(tmp, w, c, hw, in);
		memcpy(w, tmp, l->wn * sizeof(float));
		const float **vec[3] = { &s->ep.bias, &s->ep.scale, &s->ep.shift };
		for (int k = 0; k < 3; k++, v += out)
			if (*vec[k]) {
				to_pixel_major(v, *vec[k], c, hw, 1);
				*vec[k] = v;
			}
	}
	return 0;
}

/* Values per 32-bit group of the precision's instructions. */
static int prec_group(int prec)
{
	return prec == AE_PREC_INT8 ? 4 : prec == AE_PREC_BF16 ? 2 : 1;
}

/* Inputs per output below which a layer stays fp32: a short vector (the
 * code, into the decoder) shares one int8 scale across values of very
 * different ranges; with the decoder's 16->3136 dense layer in int8 a
 * digit's reconstruction moved by up to 0.06 from fp32's, without it by
 * 0.01, and the layer is 1% of the products. */
#define MIN_FAN_IN 64

/* Whether stage s runs in the plan's reduced precision: a layer with at
 * least a block of 16 outputs (narrower ones would compute mostly
 * padding) and MIN_FAN_IN inputs per output, whose inputs padded to the
 * instruction's groups waste at most a quarter (one channel in groups of
 * 4 or 2 would be three quarters or half padding, no faster than fp32). */
static int runs_reduced(const ae_plan *p, const stage *s)
{
	const int k = prec_group(p->prec), ic = s->l->ic, icp = (ic + k - 1) / k * k;
	const int taps = s->l->k > 0 ? s->l->k * s->l->k : 1; /* dense: one */
	return p->prec != AE_PREC_FP32 && s->l->oc >= 16 && ic * taps >= MIN_FAN_IN && 3 * icp <= 4 * ic;
}

/* Second pass, once every stage's folding is known: each dense layer next
 * to a convolution permuted, then every stage compiled for the direct
 * kernels of its precision. */
static int lower(ae_plan *p, ae_error *err)
{
	const ae_model *m = p->m;
	for (int i = 0; i < p->n_stages; i++) {
		stage *s = &p->st[i];
		float *perm = NULL;
		if (!is_spatial(s) &&
		    permute_dense(s, i ? &p->st[i - 1] : NULL, i + 1 < p->n_stages ? &p->st[i + 1] : NULL, &perm))
			return ae_fail(err, AE_ERR_NOMEM, "out of memory compiling %s", s->l->name);
		ae_dconv_shape sh;
		ae_layer_dconv_shape(s->l, &sh);
		const int li = (int)(s->l - m->net.layers);
		s->quant = runs_reduced(p, s);
		int rc = s->quant ? ae_qconv_init(&s->qc, &sh, s->w, &s->ep, p->prec, m->act_range.lo[li],
		                                  m->act_range.hi[li], p->reference ? AE_QSIMD_NONE : AE_QSIMD_ZMM)
		                  : ae_dconv_init(&s->dc, &sh, s->w, &s->ep);
		free(perm); /* the packed copy is all the stage reads from now */
		s->w = NULL;
		s->ep = (ae_epilogue){ 0 };
		if (rc)
			return ae_fail(
			        err, AE_ERR_FORMAT,
			        "%s: cannot compile a %dx%d stride %d layer (kernel at most 11) or out of memory",
			        s->l->name, sh.k, sh.k, sh.stride);
	}
	return AE_OK;
}

int ae_precision_parse(const char *name)
{
	if (strcmp(name, "auto") == 0) return AE_PREC_AUTO;
	for (int k = 0; k < AE_PREC_COUNT; k++)
		if (strcmp(name, ae_precision_name(k)) == 0) return k;
	return -2;
}

int ae_precision_supported(int prec)
{
	return ae_qconv_supported(prec);
}

int ae_precision_auto(const ae_model *m)
{
	if (m->act_range.present && ae_qconv_supported(AE_PREC_INT8)) return AE_PREC_INT8;
	if (ae_qconv_supported(AE_PREC_BF16)) return AE_PREC_BF16;
	return AE_PREC_FP32;
}

int ae_precision_resolve(const ae_model *m, int prec)
{
	return prec == AE_PREC_AUTO ? ae_precision_auto(m) : prec;
}

int ae_plan_precision(const ae_plan *p)
{
	return p->prec;
}

/* The stages op runs: [first, last]. */
static void op_stages(const ae_plan *p, ae_op op, int *first, int *last)
{
	*first = op == AE_OP_DECODE ? p->n_enc : 0;
	*last = (op == AE_OP_ENCODE ? p->n_enc : p->n_stages) - 1;
}

/* The layers op runs: [first, end). */
static void op_layers(const ae_net *net, ae_op op, int *first, int *end)
{
	*first = op == AE_OP_DECODE ? net->n_enc : 0;
	*end = op == AE_OP_ENCODE ? net->n_enc : net->n_layers;
}

static int is_elementwise(int kind)
{
	return kind == AE_L_RELU || kind == AE_L_LRELU || kind == AE_L_SIGMOID || kind == AE_L_BN;
}

/* A layer's input or output as an item's shape: what a dense layer reads
 * or a dense or flatten layer writes (and the elementwise layers after
 * them pass on) is a vector; everything else is (C, H, W). */
static ae_shape layer_shape(const ae_net *net, int i, int output)
{
	const ae_layer *l = &net->layers[i];
	ae_shape sh = { 3, { l->ic, l->ih, l->iw } };
	if (!output) {
		if (l->kind == AE_L_DENSE) sh = (ae_shape){ 1, { l->ic, 1, 1 } };
		return sh;
	}
	sh = (ae_shape){ 3, { l->oc, l->oh, l->ow } };
	int k = i;
	while (k > 0 && is_elementwise(net->layers[k].kind))
		k--;
	if (net->layers[k].kind == AE_L_DENSE || net->layers[k].kind == AE_L_FLATTEN)
		sh = (ae_shape){ 1, { l->oc * l->oh * l->ow, 1, 1 } };
	return sh;
}

/* Each op's shapes, from the layers; checked against the sizes the stages
 * were compiled for, which are what the kernels read and write. */
static int shapes(ae_plan *p, ae_error *err)
{
	const ae_net *net = &p->m->net;
	for (int op = 0; op < AE_OP_COUNT; op++) {
		int first, end, sf, sl;
		op_layers(net, (ae_op)op, &first, &end);
		p->in[op] = layer_shape(net, first, 0);
		p->out[op] = layer_shape(net, end - 1, 1);
		op_stages(p, (ae_op)op, &sf, &sl);
		if (ae_shape_size(p->in[op]) != p->st[sf].in_size || ae_shape_size(p->out[op]) != p->st[sl].out_size)
			return ae_fail(err, AE_ERR_FORMAT, "the layers' shapes disagree with their stages");
	}
	return AE_OK;
}

ae_plan *ae_plan_new(const ae_model *m, ae_error *err)
{
	return ae_plan_new_opts(m, NULL, err);
}

ae_plan *ae_plan_new_opts(const ae_model *m, const ae_plan_opts *o, ae_error *err)
{
	const int prec = o ? o->precision : AE_PREC_FP32;
	if (prec < 0 || prec >= AE_PREC_COUNT) {
		ae_fail(err, AE_ERR_INVAL, "precision %d is not fp32, bf16 or int8", prec);
		return NULL;
	}
	if (prec == AE_PREC_INT8 && !m->act_range.present) {
		ae_fail(err, AE_ERR_INVAL,
		        "int8 needs the model's activation ranges, which this file lacks (aetrain calibrate adds them)");
		return NULL;
	}
	ae_plan *p = calloc(1, sizeof *p);
	if (p) p->owned = malloc(owned_size(&m->net) * sizeof(float));
	if (!p || !p->owned) {
		ae_plan_free(p);
		ae_fail(err, AE_ERR_NOMEM, "out of memory compiling an inference plan");
		return NULL;
	}
	p->m = m;
	p->reference = o && o->reference;
	p->prec = p->reference || ae_qconv_supported(prec) ? prec : AE_PREC_FP32;
	if (compile(p, err) || lower(p, err) || shapes(p, err)) {
		ae_plan_free(p);
		return NULL;
	}
	return p;
}

void ae_plan_free(ae_plan *p)
{
	if (!p) return;
	for (int i = 0; i < p->n_stages; i++) {
		if (p->st[i].quant)
			ae_qconv_deinit(&p->st[i].qc);
		else
			ae_dconv_deinit(&p->st[i].dc);
	}
	free(p->owned);
	free(p);
}

const ae_model *ae_plan_model(const ae_plan *p)
{
	return p->m;
}

static void lane_free(lane *l)
{
	for (int k = 0; k < 3; k++)
		free(l->buf[k]);
	free(l->sub[0]);
	free(l->sub[1]);
	free(l->code);
	free(l->qbuf);
}

/* Images of a sub-chunk for the run of convolutions [from, to), at most n. */
static int sub_images(const ae_plan *p, int from, int to, int n)
{
	size_t widest = 1;
	for (int i = from; i < to; i++) {
		size_t bytes = (p->st[i].in_size + p->st[i].out_size) * sizeof(float);
		if (bytes > widest) widest = bytes;
	}
	return ae_images_within(AE_L2_BYTES, widest, n);
}

static int lane_alloc(lane *l, const ae_plan *p, int b)
{
	size_t act = 1, sub = 1, qb = 64;
	for (int i = 0; i < p->n_stages; i++) {
		const stage *s = &p->st[i];
		size_t k = (size_t)sub_images(p, i, i + 1, b);
		if (s->in_size * b > act) act = s->in_size * b;
		if (s->out_size * b > act) act = s->out_size * b;
		if (s->out_size * k > sub) sub = s->out_size * k;
		/* a convolution in a run takes at most a sub-chunk, any other stage the chunk */
		if (s->quant) {
			size_t need = ae_qconv_scratch(&s->qc, is_spatial(s) ? (int)k : b);
			if (need > qb) qb = need;
		}
	}
	l->qbuf = aligned_alloc(64, (qb + 63) / 64 * 64);
	for (int k = 0; k < 3; k++)
		l->buf[k] = ae_floats(act);
	for (int k = 0; k < 2; k++)
		l->sub[k] = ae_floats(sub);
	l->code = ae_floats((size_t)b * p->st[p->n_enc - 1].out_size);
	return l->buf[0] && l->buf[1] && l->buf[2] && l->sub[0] && l->sub[1] && l->code && l->qbuf ? 0 : -1;
}

static void run_stage(lane *ln, const stage *s, const float *in, float *out, int n)
{
	if (s->quant && is_spatial(s))
		ae_qconv_forward(out, in, n, &s->qc, ln->qbuf);
	else if (s->quant)
		ae_qconv_forward_rows(out, in, n, &s->qc, ln->qbuf);
	else if (is_spatial(s))
		ae_dconv_forward(out, in, n, &s->dc);
	else
		ae_dconv_forward_rows(out, in, n, &s->dc);
}

/* The convolutions [from, to) on n images, in sub-chunks: each sub-chunk
 * through every stage of the run (between stages in ln->sub) before the
 * next starts. */
static void run_convs(lane *ln, const ae_plan *p, int from, int to, const float *in, float *out, int n)
{
	const int sub = sub_images(p, from, to, n);
	const size_t isz = p->st[from].in_size, osz = p->st[to - 1].out_size;
	for (int i0 = 0; i0 < n; i0 += sub) {
		int b = n - i0 < sub ? n - i0 : sub;
		const float *cur = in + (size_t)i0 * isz;
		for (int i = from; i < to; i++) {
			float *dst = i == to - 1 ? out + (size_t)i0 * osz : ln->sub[(i - from) & 1];
			run_stage(ln, &p->st[i], cur, dst, b);
			cur = dst;
		}
	}
}

/* The end of the run of convolutions that starts at from. */
static int convs_end(const ae_plan *p, int from, int to)
{
	int end = from + 1;
	while (end < to && is_spatial(&p->st[end]))
		end++;
	return end;
}

/* Runs stages [from, to) on n <= chunk images; the last writes to out.
 * Images enter and leave NCHW; in between, convolutions see NHWC. */
static void run_range(lane *ln, const ae_plan *p, int from, int to, const float *in, float *out, int n)
{
	const stage *first = &p->st[from], *last = &p->st[to - 1];
	const float *cur = in;
	if (is_spatial(first) && first->l->ic > 1) {
		ae_nchw_to_nhwc(ln->buf[2], in, n, first->l->ic, first->l->ih * first->l->iw);
		cur = ln->buf[2];
	}
	int out_nhwc = is_spatial(last) && last->l->oc > 1;
	for (int i = from, k = 0; i < to; k ^= 1) {
		int end = is_spatial(&p->st[i]) ? convs_end(p, i, to) : i + 1;
		float *dst = end == to && !out_nhwc ? out : ln->buf[k];
		if (end > i + 1)
			run_convs(ln, p, i, end, cur, dst, n);
		else
			run_stage(ln, &p->st[i], cur, dst, n);
		cur = dst;
		i = end;
	}
	if (out_nhwc) ae_nhwc_to_nchw(out, cur, n, last->l->oc, last->l->oh * last->l->ow);
}

/* Lane k's share of the job: chunks until none is left. */
static void run_share(void *arg, int k)
{
	ae_infer *w = arg;
	const ae_plan *p = w->p;
	job *j = &w->job;
	lane *ln = &w->lanes[k];
	int from, last;
	op_stages(p, j->op, &from, &last);
	const int to = last + 1;
	size_t isz = p->st[from].in_size, osz = p->st[last].out_size;
	size_t lat = p->st[p->n_enc - 1].out_size;
	for (;;) {
		long done = (long)atomic_fetch_add(&j->next, 1) * j->chunk;
		if (done >= j->n) break;
		int b = j->n - done < j->chunk ? (int)(j->n - done) : j->chunk;
		const float *in = j->in + (size_t)done * isz;
		float *out = j->out + (size_t)done * osz;
		if (j->op != AE_OP_RECONSTRUCT) {
			run_range(ln, p, from, to, in, out, b);
			continue;
		}
		float *code = j->z ? j->z + (size_t)done * lat : ln->code;
		run_range(ln, p, 0, p->n_enc, in, code, b);
		run_range(ln, p, p->n_enc, p->n_stages, code, out, b);
	}
}

static void run_job(ae_infer *w, ae_op op, const float *in, float *out, float *z, int n)
{
	/* Below two images per lane the split costs more than it saves. */
	int lanes = n < 2 * w->threads ? 1 : w->threads;
	w->job.op = op;
	w->job.in = in;
	w->job.out = out;
	w->job.z = z;
	w->job.n = n;
	w->job.chunk = (n + lanes - 1) / lanes < w->chunk ? (n + lanes - 1) / lanes : w->chunk;
	atomic_store(&w->job.next, 0);
	ae_team_run(w->team, lanes, run_share, w);
}

ae_infer *ae_infer_new(const ae_plan *p, int max_batch, int threads, ae_error *err)
{
	if (max_batch < 1 || max_batch > AE_MAX_BATCH) {
		ae_fail(err, AE_ERR_INVAL, "batch size %d out of range (1..%d)", max_batch, AE_MAX_BATCH);
		return NULL;
	}
	if (threads < 1 || threads > AE_MAX_THREADS) {
		ae_fail(err, AE_ERR_INVAL, "thread count %d out of range (1..%d)", threads, AE_MAX_THREADS);
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
	w->lanes = calloc((size_t)threads, sizeof *w->lanes);
	int ok = w->lanes != NULL;
	for (int k = 0; ok && k < threads; k++)
		ok = lane_alloc(&w->lanes[k], p, w->chunk) == 0;
	if (!ok) {
		ae_infer_free(w);
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating inference scratch for %d threads", threads);
		return NULL;
	}
	if (!(w->team = ae_team_new(threads))) {
		ae_infer_free(w);
		ae_fail(err, AE_ERR_NOMEM, "cannot start %d inference threads", threads);
		return NULL;
	}
	return w;
}

void ae_infer_free(ae_infer *w)
{
	if (!w) return;
	ae_team_free(w->team);
	for (int k = 0; k < w->threads && w->lanes; k++)
		lane_free(&w->lanes[k]);
	free(w->lanes);
	free(w);
}

const ae_plan *ae_infer_plan(const ae_infer *w)
{
	return w->p;
}

ae_shape ae_plan_in_shape(const ae_plan *p, ae_op op)
{
	return p->in[op];
}

ae_shape ae_plan_out_shape(const ae_plan *p, ae_op op)
{
	return p->out[op];
}

size_t ae_plan_in_size(const ae_plan *p, ae_op op)
{
	return ae_shape_size(p->in[op]);
}

size_t ae_plan_out_size(const ae_plan *p, ae_op op)
{
	return ae_shape_size(p->out[op]);
}

void ae_infer_run(ae_infer *w, ae_op op, const float *in, int n, float *out)
{
	run_job(w, op, in, out, NULL, n);
}

void ae_infer_encode(ae_infer *w, const float *x, int n, float *z)
{
	run_job(w, AE_OP_ENCODE, x, z, NULL, n);
}

void ae_infer_decode(ae_infer *w, const float *z, int n, float *y)
{
	run_job(w, AE_OP_DECODE, z, y, NULL, n);
}

void ae_infer_reconstruct(ae_infer *w, const float *x, int n, float *y, float *z)
{
	run_job(w, AE_OP_RECONSTRUCT, x, y, z, n);
}

/* ---- calibration ---- */

static void widen(const float *v, size_t n, float *lo, float *hi)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i] < *lo) *lo = v[i];
		if (v[i] > *hi) *hi = v[i];
	}
}

int ae_plan_observe(const ae_plan *p, const float *x, int n, float *lo, float *hi, ae_error *err)
{
	size_t widest = 1;
	for (int i = 0; i < p->n_stages; i++) {
		if (p->st[i].in_size > widest) widest = p->st[i].in_size;
		if (p->st[i].out_size > widest) widest = p->st[i].out_size;
	}
	lane ln = { 0 };
	float *a = ae_floats(widest * (size_t)(n ? n : 1)), *b = ae_floats(widest * (size_t)(n ? n : 1));
	int rc = a && b && lane_alloc(&ln, p, n ? n : 1) == 0
	                 ? AE_OK
	                 : ae_fail(err, AE_ERR_NOMEM, "out of memory observing %d images", n);
	const stage *first = &p->st[0];
	const float *cur = x;
	if (rc == AE_OK && is_spatial(first) && first->l->ic > 1) {
		ae_nchw_to_nhwc(a, x, n, first->l->ic, first->l->ih * first->l->iw);
		cur = a;
	}
	for (int i = 0; rc == AE_OK && i < p->n_stages; i++) {
		const stage *s = &p->st[i];
		const int li = (int)(s->l - p->m->net.layers);
		widen(cur, s->in_size * (size_t)n, &lo[li], &hi[li]);
		float *dst = cur == a ? b : a;
		run_stage(&ln, s, cur, dst, n);
		cur = dst;
	}
	lane_free(&ln);
	free(a), free(b);
	return rc;
}
