/*
 * Forward with batch statistics, backward and Adam over the layer list.
 * Memory is carved from a handful of blocks sized once in ae_trainer_new.
 *
 * Transposed convolutions with 8 or more output channels run forward as
 * direct convolutions (dconv.h) in per-tap mode instead of GEMM + col2im,
 * without writing, zeroing and scattering a column matrix nine times the
 * input. Per-tap mode rounds each tap's sum on its own as that lowering
 * does (98% of outputs bit-identical, the rest 1 ulp apart). One chain
 * through all taps is not enough alike: batch norm magnifies rounding in
 * low-variance channels, and the PyTorch parity test then fails at step 1
 * (1.6e-3 against 1e-4).
 */
#include "ae/train.h"
#include "dconv.h"
#include "ops.h"
#include "team.h"

#include <stdlib.h>
#include <string.h>

#define BN_MOMENTUM 0.1f
#define BN_EPS      1e-5f

/* One lane's share of a step: its own lowering scratch and, past lane 0,
 * its own gradient block, added into the trainer's after backward. */
typedef struct tlane {
	float *col, *t;
	float *dbuf[2];       /* ping-pong gradients of its images: lanes run
	                               * apart between batch norms, so a shared buffer
	                               * would hold two layers' slices at once */
	float *grads;         /* lane 0: the trainer's */
	float *mean, *invstd; /* batch-norm statistics, widest layer */
} tlane;

struct ae_trainer {
	ae_model *m;
	int loss;
	float *grads, *adam_m, *adam_v;
	long step;
	float *acts;                     /* block holding every layer's output */
	float *out[AE_MAX_LAYERS];       /* (max_batch, out) each, written by its layer */
	const float *act[AE_MAX_LAYERS]; /* each layer's output as read: out[i], or for a
	                                  * flatten layer its input (the batch, at layer 0) */
	float *bn_stats;                 /* mean, invstd per BN layer */
	float *bn_mean[AE_MAX_LAYERS], *bn_invstd[AE_MAX_LAYERS];
	double *bn_part; /* per BN layer: 4 sums x lanes x channels */
	double *bn_sums[AE_MAX_LAYERS];
	ae_team *team;
	int threads;
	tlane *lanes;
	/* the call the lanes are running */
	const float *x, *target;
	int n, n_lanes;
	float lr;
	double lane_loss[AE_MAX_THREADS];
	ae_dconv dconv[AE_MAX_LAYERS]; /* the direct transposed convolutions */
	unsigned char direct[AE_MAX_LAYERS];
	unsigned char fused[AE_MAX_LAYERS]; /* see fuse_init */
};

/* A convolution's lowering (im2col, GEMM, col2im) goes through the lane's
 * images a few at a time: as many as keep the column matrix under
 * LOWER_BYTES, so that it is written and read back while still in cache
 * instead of from memory (at 128x128 the decoder's last strided layer has
 * 4.7 MB of columns per image: 75 MB for a lane's 16 at once). The direct
 * transposed convolutions' NHWC copies are bounded the same way. 1 MB
 * measured best of 1, 4 and 16 MB at 28x28, 64x64x3 and 128x128x3; two
 * lanes at 128x128x3 train 61 -> 77 img/s, at 64x64x3 225 -> 267. */
#define LOWER_BYTES (1u << 20)

/* Column-matrix and channel-major floats per image of a lowering, and
 * the direct path's NHWC output and input per image. */
static void lower_sizes(const ae_layer *l, size_t *col, size_t *t)
{
	*col = *t = 0;
	if (l->kind == AE_L_CONV) {
		size_t p = (size_t)l->oh * l->ow;
		*col = (size_t)l->ic * l->k * l->k * p;
		*t = (size_t)l->oc * p;
	} else if (l->kind == AE_L_CONVT) {
		size_t p = (size_t)l->ih * l->iw;
		*col = (size_t)l->oc * l->k * l->k * p;
		if (ae_layer_out_size(l) > *col) *col = ae_layer_out_size(l); /* the direct path's output */
		*t = (size_t)l->ic * p;
	}
}

/* Images per lowering pass of layer l, out of n. */
static int lower_images(const ae_layer *l, int n)
{
	size_t col, t;
	lower_sizes(l, &col, &t);
	return ae_images_within(LOWER_BYTES, col * sizeof(float), n);
}

static void scratch_sizes(const ae_net *net, int b, size_t *col, size_t *t, size_t *act)
{
	*col = *t = *act = 1;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		size_t in = (size_t)l->ic * l->ih * l->iw * b, out = ae_layer_out_size(l) * b;
		if (in > *act) *act = in;
		if (out > *act) *act = out;
		size_t c, tt, k = (size_t)lower_images(l, b);
		lower_sizes(l, &c, &tt);
		if (c * k > *col) *col = c * k;
		if (tt * k > *t) *t = tt * k;
	}
}

static int widest_bn(const ae_net *net)
{
	int c = 1;
	for (int i = 0; i < net->n_layers; i++)
		if (net->layers[i].kind == AE_L_BN && net->layers[i].oc > c) c = net->layers[i].oc;
	return c;
}

static int lane_alloc(tlane *ln, const ae_net *net, int b, int own_grads)
{
	size_t ncol, nt, nact;
	int c = widest_bn(net);
	scratch_sizes(net, b, &ncol, &nt, &nact);
	ln->col = ae_floats(ncol);
	ln->t = ae_floats(nt);
	ln->dbuf[0] = ae_floats(nact);
	ln->dbuf[1] = ae_floats(nact);
	ln->mean = malloc(2 * (size_t)c * sizeof(float));
	ln->invstd = ln->mean ? ln->mean + c : NULL;
	if (own_grads) ln->grads = malloc(net->n_params * sizeof(float));
	return ln->col && ln->t && ln->dbuf[0] && ln->dbuf[1] && ln->mean && (!own_grads || ln->grads) ? 0 : -1;
}

static void lane_free(tlane *ln, int own_grads)
{
	free(ln->col);
	free(ln->t);
	free(ln->dbuf[0]);
	free(ln->dbuf[1]);
	free(ln->mean);
	if (own_grads) free(ln->grads);
}

/* Compiles the transposed convolutions that run direct; their weights are
 * packed again before each forward. */
static int direct_init(ae_trainer *t)
{
	const ae_net *net = &t->m->net;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (l->kind != AE_L_CONVT || l->oc < 8) continue;
		ae_dconv_shape sh;
		ae_layer_dconv_shape(l, &sh);
		if (ae_dconv_init(&t->dconv[i], &sh, t->m->params + l->w, NULL) != 0) return -1;
		t->dconv[i].per_tap = 1;
		t->direct[i] = 1;
	}
	return 0;
}

/* A convolution (or transposed one) with a bias, then a LeakyReLU, then a
 * batch norm, runs as two passes fewer each way: forward, the LeakyReLU
 * in the convolution's epilogue (its output goes where the LeakyReLU's
 * would, the convolution's own is never written); backward, the
 * LeakyReLU's backward and the convolution's bias gradient in the batch
 * norm's dx pass (ae_bn_lrelu_backward_dx). Every value is computed by the
 * same operations as unfused, so the results are the same bits. */
static void fuse_init(ae_trainer *t)
{
	const ae_net *net = &t->m->net;
	for (int i = 0; i + 2 < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		t->fused[i] = (l->kind == AE_L_CONV || l->kind == AE_L_CONVT) && l->b != AE_NONE &&
		              net->layers[i + 1].kind == AE_L_LRELU && net->layers[i + 2].kind == AE_L_BN;
	}
}

/* The epilogue of layer i's forward pass: its bias, and the LeakyReLU
 * after it when fused. */
static ae_epilogue forward_epilogue(const ae_trainer *t, int i)
{
	const ae_layer *l = &t->m->net.layers[i];
	ae_epilogue ep = { .bias = l->b != AE_NONE ? t->m->params + l->b : NULL };
	if (t->fused[i]) {
		ep.act = AE_ACT_LRELU;
		ep.slope = t->m->net.layers[i + 1].slope;
	}
	return ep;
}

ae_trainer *ae_trainer_new(ae_model *m, int max_batch, int threads, int loss, ae_error *err)
{
	if (max_batch < 1 || max_batch > 65536) {
		ae_fail(err, AE_ERR_INVAL, "batch size %d out of range (1..65536)", max_batch);
		return NULL;
	}
	if (threads < 1 || threads > AE_MAX_THREADS) {
		ae_fail(err, AE_ERR_INVAL, "thread count %d out of range (1..%d)", threads, AE_MAX_THREADS);
		return NULL;
	}
	ae_trainer *t = calloc(1, sizeof *t);
	if (!t) {
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating a trainer");
		return NULL;
	}
	const ae_net *net = &m->net;
	t->m = m;
	t->loss = loss;
	t->threads = threads < max_batch ? threads : max_batch;
	size_t np = net->n_params;
	size_t acts = 0, stats = 0;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (l->kind != AE_L_FLATTEN && l->kind != AE_L_UNFLATTEN)
			acts += ae_layer_out_size(l) * (size_t)max_batch;
		if (l->kind == AE_L_BN) stats += 2 * (size_t)l->oc;
	}
	t->grads = calloc(np, sizeof(float));
	t->adam_m = calloc(np, sizeof(float));
	t->adam_v = calloc(np, sizeof(float));
	t->acts = ae_floats(acts);
	t->bn_stats = malloc((stats ? stats : 1) * sizeof(float));
	t->bn_part = malloc((stats ? stats : 1) * 2 * (size_t)t->threads * sizeof(double));
	t->lanes = calloc((size_t)t->threads, sizeof *t->lanes);
	t->team = ae_team_new(t->threads);
	int ok = t->grads && t->adam_m && t->adam_v && t->acts && t->bn_stats && t->bn_part && t->lanes && t->team;
	/* each lane's scratch for its largest share of a batch */
	int share = (max_batch + t->threads - 1) / t->threads;
	for (int k = 0; ok && k < t->threads; k++)
		ok = lane_alloc(&t->lanes[k], net, share, k > 0) == 0;
	if (!ok) {
		ae_trainer_free(t);
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating training buffers for batch %d on %d threads",
		        max_batch, threads);
		return NULL;
	}
	t->lanes[0].grads = t->grads;
	fuse_init(t);
	if (direct_init(t) != 0) {
		ae_trainer_free(t);
		ae_fail(err, AE_ERR_NOMEM, "out of memory compiling the transposed convolutions");
		return NULL;
	}
	float *a = t->acts, *s = t->bn_stats;
	double *d = t->bn_part;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (l->kind != AE_L_FLATTEN && l->kind != AE_L_UNFLATTEN) {
			t->act[i] = t->out[i] = a;
			a += ae_layer_out_size(l) * (size_t)max_batch;
		}
		if (l->kind == AE_L_BN) {
			t->bn_mean[i] = s;
			t->bn_invstd[i] = s + l->oc;
			s += 2 * (size_t)l->oc;
			t->bn_sums[i] = d;
			d += 4 * (size_t)t->threads * l->oc;
		}
	}
	return t;
}

void ae_trainer_free(ae_trainer *t)
{
	if (!t) return;
	ae_team_free(t->team);
	for (int i = 0; i < AE_MAX_LAYERS; i++)
		if (t->direct[i]) ae_dconv_deinit(&t->dconv[i]);
	for (int k = 0; t->lanes && k < t->threads; k++)
		lane_free(&t->lanes[k], k > 0);
	free(t->lanes);
	free(t->grads);
	free(t->adam_m);
	free(t->adam_v);
	free(t->acts);
	free(t->bn_stats);
	free(t->bn_part);
	free(t);
}

float *ae_trainer_grads(ae_trainer *t)
{
	return t->grads;
}
float *ae_trainer_adam_m(ae_trainer *t)
{
	return t->adam_m;
}
float *ae_trainer_adam_v(ae_trainer *t)
{
	return t->adam_v;
}
long *ae_trainer_adam_step(ae_trainer *t)
{
	return &t->step;
}

void ae_trainer_zero_grad(ae_trainer *t)
{
	memset(t->grads, 0, t->m->net.n_params * sizeof(float));
}

/* Lane k's images: [*lo, *lo + return). */
static int lane_range(const ae_trainer *t, int k, int *lo)
{
	*lo = (int)((long)t->n * k / t->n_lanes);
	return (int)((long)t->n * (k + 1) / t->n_lanes) - *lo;
}

/* Adds the lanes' partial sums part[k * c + ch] into out[ch]. */
static void add_lanes(double *out, const double *part, int lanes, int c)
{
	for (int ch = 0; ch < c; ch++) {
		double s = 0.0;
		for (int k = 0; k < lanes; k++)
			s += part[(size_t)k * c + ch];
		out[ch] = s;
	}
}

/* Batch statistics over every lane's images: each lane sums its own,
 * meets the others, and reads the totals. Lane 0 keeps the statistics
 * for backward and updates the running ones. */
static void bn_forward_lane(ae_trainer *t, int k, int i, float *y, const float *in, int n)
{
	ae_model *m = t->m;
	const ae_layer *l = &m->net.layers[i];
	tlane *ln = &t->lanes[k];
	const int c = l->oc, p = l->oh * l->ow, L = t->n_lanes;
	const size_t total = (size_t)t->n * p;
	double *sum = t->bn_sums[i], *sq = sum + (size_t)L * c;
	ae_bn_sum(sum + (size_t)k * c, in, n, c, p);
	ae_team_barrier(t->team);
	double mu[AE_MAX_FILTERS], ss[AE_MAX_FILTERS]; /* c <= AE_MAX_FILTERS: ae_net_build */
	add_lanes(mu, sum, L, c);
	for (int ch = 0; ch < c; ch++)
		mu[ch] /= (double)total;
	ae_bn_sqdev(sq + (size_t)k * c, in, mu, n, c, p);
	ae_team_barrier(t->team);
	add_lanes(ss, sq, L, c);
	float *mean = k ? ln->mean : t->bn_mean[i], *invstd = k ? ln->invstd : t->bn_invstd[i];
	ae_bn_stats(mean, invstd, k ? NULL : m->state + l->rm, k ? NULL : m->state + l->rv, mu, ss, total, c,
	            BN_MOMENTUM, BN_EPS);
	ae_bn_normalize(y, in, mean, invstd, m->params + l->w, m->params + l->b, n, c, p);
}

/* Layer i, a convolution or transposed convolution, on n images x -> y,
 * lower_images at a time. */
static void conv_forward(ae_trainer *t, tlane *ln, int i, float *y, const float *x, int n)
{
	const ae_layer *l = &t->m->net.layers[i];
	const float *P = t->m->params;
	const size_t isz = (size_t)l->ic * l->ih * l->iw, osz = ae_layer_out_size(l);
	const int sub = lower_images(l, n);
	ae_epilogue ep = forward_epilogue(t, i);
	ae_conv_geom g;
	ae_layer_geom(l, &g);
	for (int i0 = 0; i0 < n; i0 += sub) {
		int b = n - i0 < sub ? n - i0 : sub;
		const float *xs = x + (size_t)i0 * isz;
		float *ys = y + (size_t)i0 * osz;
		if (l->kind == AE_L_CONV) {
			ae_conv2d_forward(ys, ln->col, ln->t, xs, P + l->w, &ep, b, l->oc, &g);
		} else if (t->direct[i]) {
			ae_nchw_to_nhwc(ln->t, xs, b, l->ic, l->ih * l->iw);
			ae_dconv_forward(ln->col, ln->t, b, &t->dconv[i]);
			ae_nhwc_to_nchw(ys, ln->col, b, l->oc, l->oh * l->ow);
		} else {
			ae_convt2d_forward(ys, ln->col, ln->t, xs, P + l->w, &ep, b, l->ic, &g);
		}
	}
}

static void forward_lane(void *arg, int k)
{
	ae_trainer *t = arg;
	ae_model *m = t->m;
	const ae_net *net = &m->net;
	tlane *ln = &t->lanes[k];
	int lo, n = lane_range(t, k, &lo);
	const float *P = m->params;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (l->kind == AE_L_FLATTEN || l->kind == AE_L_UNFLATTEN) continue;
		const float *in = (i ? t->act[i - 1] : t->x) + (size_t)lo * l->ic * l->ih * l->iw;
		size_t osz = ae_layer_out_size(l), sz = osz * (size_t)n;
		float *y = t->out[i] + (size_t)lo * osz;
		ae_epilogue ep = { .bias = l->b != AE_NONE ? P + l->b : NULL };
		switch (l->kind) {
		case AE_L_CONV:
		case AE_L_CONVT:
			if (!t->fused[i]) {
				conv_forward(t, ln, i, y, in, n);
				break;
			}
			conv_forward(t, ln, i, t->out[i + 1] + (size_t)lo * osz, in, n);
			i++; /* the LeakyReLU ran in the epilogue */
			break;
		case AE_L_DENSE: ae_dense_forward(y, in, P + l->w, &ep, n, l->ic, l->oc); break;
		case AE_L_RELU: ae_relu_forward(y, in, sz); break;
		case AE_L_LRELU: ae_lrelu_forward(y, in, l->slope, sz); break;
		case AE_L_SIGMOID: ae_sigmoid_forward(y, in, sz); break;
		case AE_L_BN: bn_forward_lane(t, k, i, y, in, n); break;
		default: break;
		}
	}
}

/* Records the call the lanes are about to run and how many lanes a batch
 * of n splits into. */
static void begin_call(ae_trainer *t, const float *x, const float *target, int n)
{
	t->x = x;
	t->target = target;
	t->n = n;
	t->n_lanes = n < t->threads ? n : t->threads;
	if (t->n_lanes < 1) t->n_lanes = 1;
}

const float *ae_trainer_forward(ae_trainer *t, const float *x, int n)
{
	const ae_net *net = &t->m->net;
	/* flatten/unflatten alias their input: set before the lanes read them */
	for (int i = 0; i < net->n_layers; i++)
		if (net->layers[i].kind == AE_L_FLATTEN || net->layers[i].kind == AE_L_UNFLATTEN)
			t->act[i] = i ? t->act[i - 1] : x;
	for (int i = 0; i < net->n_layers; i++)
		if (t->direct[i]) {
			ae_epilogue ep = forward_epilogue(t, i);
			ae_dconv_pack(&t->dconv[i], t->m->params + net->layers[i].w, &ep);
		}
	begin_call(t, x, NULL, n);
	ae_team_run(t->team, t->n_lanes, forward_lane, t);
	t->m->bn_batches++;
	return t->act[net->n_layers - 1];
}

/* dgamma and dbeta sum over every lane's images before dx can be formed. */
static void bn_backward_lane(ae_trainer *t, int k, int i, float *dx, const float *d, const float *in, int n)
{
	const ae_model *m = t->m;
	const ae_layer *l = &m->net.layers[i];
	tlane *ln = &t->lanes[k];
	const int c = l->oc, p = l->oh * l->ow, L = t->n_lanes;
	double *a = t->bn_sums[i] + 2 * (size_t)L * c, *b = a + (size_t)L * c;
	ae_bn_backward_sums(a + (size_t)k * c, b + (size_t)k * c, d, in, t->bn_mean[i], t->bn_invstd[i], n, c, p);
	ae_team_barrier(t->team);
	double sdy[AE_MAX_FILTERS], sdyx[AE_MAX_FILTERS];
	add_lanes(sdy, a, L, c);
	add_lanes(sdyx, b, L, c);
	if (k == 0)
		for (int ch = 0; ch < c; ch++) {
			ln->grads[l->w + ch] += (float)sdyx[ch];
			ln->grads[l->b + ch] += (float)sdy[ch];
		}
	if (!dx) return;
	const size_t total = (size_t)t->n * p;
	const float *mean = t->bn_mean[i], *invstd = t->bn_invstd[i];
	const ae_layer *conv = i >= 2 && t->fused[i - 2] ? l - 2 : NULL; /* fuse_init */
	if (!conv) {
		ae_bn_backward_dx(dx, d, in, mean, invstd, m->params + l->w, sdy, sdyx, total, n, c, p);
		return;
	}
	double db[AE_MAX_FILTERS];
	ae_bn_lrelu_backward_dx(dx, db, d, in, mean, invstd, m->params + l->w, sdy, sdyx, total, n, c, p,
	                        (l - 1)->slope);
	for (int ch = 0; ch < c; ch++)
		ln->grads[conv->b + ch] += (float)db[ch];
}

/* The bias gradient of a layer with output gradient dy (n, c, p): each
 * channel summed in double over all n images, then added once. */
static void bias_grad(float *db, const float *dy, int n, int c, int p)
{
	for (int o = 0; o < c; o++) {
		double s = 0.0;
		for (int i = 0; i < n; i++)
			s += ae_sum_f32(dy + ((size_t)i * c + o) * p, (size_t)p);
		db[o] += (float)s;
	}
}

/* Layer i's backward, lower_images at a time: weight and bias gradients
 * added into the lane's, dx (if not NULL) written. */
static void conv_backward(ae_trainer *t, tlane *ln, int i, float *dx, const float *dy, const float *x, int n)
{
	const ae_layer *l = &t->m->net.layers[i];
	const float *P = t->m->params;
	float *G = ln->grads;
	const size_t isz = (size_t)l->ic * l->ih * l->iw, osz = ae_layer_out_size(l);
	const int sub = lower_images(l, n);
	ae_conv_geom g;
	ae_layer_geom(l, &g);
	if (l->b != AE_NONE && !t->fused[i]) bias_grad(G + l->b, dy, n, l->oc, l->oh * l->ow);
	for (int i0 = 0; i0 < n; i0 += sub) {
		int b = n - i0 < sub ? n - i0 : sub;
		float *dxs = dx ? dx + (size_t)i0 * isz : NULL;
		const float *dys = dy + (size_t)i0 * osz, *xs = x + (size_t)i0 * isz;
		if (l->kind == AE_L_CONV)
			ae_conv2d_backward(dxs, G + l->w, NULL, ln->col, ln->t, dys, xs, P + l->w, b, l->oc, &g);
		else
			ae_convt2d_backward(dxs, G + l->w, NULL, ln->col, ln->t, dys, xs, P + l->w, b, l->ic, &g);
	}
}

static void backward_lane(void *arg, int k)
{
	ae_trainer *t = arg;
	const ae_model *m = t->m;
	const ae_net *net = &m->net;
	tlane *ln = &t->lanes[k];
	int lo, n = lane_range(t, k, &lo);
	const int last = net->n_layers - 1;
	const size_t osz = ae_layer_out_size(&net->layers[last]);
	float *d = ln->dbuf[0], *other = ln->dbuf[1];
	const float *y = t->act[last] + (size_t)lo * osz, *tg = t->target + (size_t)lo * osz;
	size_t cnt = osz * (size_t)n, total = osz * (size_t)t->n;
	t->lane_loss[k] = t->loss == AE_LOSS_BCE ? ae_bce_loss_part(d, y, tg, cnt, total)
	                                         : ae_mse_loss_part(d, y, tg, cnt, total);
	if (k) memset(ln->grads, 0, net->n_params * sizeof(float));
	const float *P = m->params;
	float *G = ln->grads;
	for (int i = last; i >= 0; i--) {
		const ae_layer *l = &net->layers[i];
		size_t isz = (size_t)l->ic * l->ih * l->iw, out = ae_layer_out_size(l);
		const float *in = (i ? t->act[i - 1] : t->x) + (size_t)lo * isz;
		const float *yi = t->act[i] + (size_t)lo * out; /* this layer's output */
		float *dx = i ? other : NULL;
		size_t sz = out * (size_t)n;
		switch (l->kind) {
		case AE_L_CONV:
		case AE_L_CONVT: conv_backward(t, ln, i, dx, d, in, n); break;
		case AE_L_DENSE: ae_dense_backward(dx, G + l->w, G + l->b, d, in, P + l->w, n, l->ic, l->oc); break;
		case AE_L_BN: bn_backward_lane(t, k, i, dx, d, in, n); break;
		/* Elementwise layers work in place on d. */
		case AE_L_RELU: ae_relu_backward(d, d, yi, sz); continue;
		case AE_L_LRELU:
			if (i == 0 || !t->fused[i - 1])
				ae_lrelu_backward(d, d, yi, l->slope, sz); /* else done with the BN's dx */
			continue;
		case AE_L_SIGMOID: ae_sigmoid_backward(d, d, yi, sz); continue;
		default: continue;
		}
		if (dx) {
			other = d;
			d = dx;
		}
	}
}

/* Lane k's slice of the parameters, for the passes over all of them. */
static size_t param_slice(const ae_trainer *t, int k, size_t *lo)
{
	size_t np = t->m->net.n_params;
	*lo = np * (size_t)k / (size_t)t->threads;
	return np * (size_t)(k + 1) / (size_t)t->threads - *lo;
}

/* The other lanes' gradients added into the trainer's, a slice per lane. */
static void reduce_lane(void *arg, int k)
{
	ae_trainer *t = arg;
	size_t lo, len = param_slice(t, k, &lo);
	for (int l = 1; l < t->n_lanes; l++) {
		const float *g = t->lanes[l].grads + lo;
		float *out = t->grads + lo;
		for (size_t j = 0; j < len; j++)
			out[j] += g[j];
	}
}

double ae_trainer_backward(ae_trainer *t, const float *x, const float *target, int n)
{
	begin_call(t, x, target, n);
	ae_team_run(t->team, t->n_lanes, backward_lane, t);
	double loss = 0.0;
	for (int k = 0; k < t->n_lanes; k++)
		loss += t->lane_loss[k];
	if (t->n_lanes > 1) ae_team_run(t->team, t->threads, reduce_lane, t);
	return loss;
}

static void adam_lane(void *arg, int k)
{
	ae_trainer *t = arg;
	size_t lo, len = param_slice(t, k, &lo);
	ae_adam_update(t->m->params + lo, t->adam_m + lo, t->adam_v + lo, t->grads + lo, len, t->lr, 0.9f, 0.999f,
	               1e-8f, t->step);
}

void ae_trainer_adam(ae_trainer *t, float lr)
{
	t->step++;
	t->lr = lr;
	ae_team_run(t->team, t->threads, adam_lane, t);
}

double ae_trainer_step(ae_trainer *t, const float *x, const float *target, int n, float lr)
{
	ae_trainer_zero_grad(t);
	ae_trainer_forward(t, x, n);
	double loss = ae_trainer_backward(t, x, target, n);
	ae_trainer_adam(t, lr);
	return loss;
}
