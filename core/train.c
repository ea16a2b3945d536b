/*
 * Forward with batch statistics, backward and Adam over the layer list.
 * Memory is carved from a handful of blocks sized once in ae_trainer_new.
 *
 * Images between a convolution and a flatten are channels-last (NHWC), as
 * in inference: every convolution and transposed convolution runs forward
 * as a direct convolution (dconv.h), and so does its input gradient, which
 * is the adjoint convolution with the same weights (a transposed one for a
 * convolution, a plain one for a transposed one); weight gradients are one
 * GEMM over NHWC patches (convgrad.c), batch norm works on NHWC rows. No
 * column matrix is written for a forward pass or an input gradient, and no
 * layer is transposed between layouts: only the input, the output (when
 * it has more than one channel) and the dense layers' ends are.
 *
 * Transposed convolutions run forward in per-tap mode: each tap's sum is
 * rounded on its own, as a GEMM + col2im lowering (and PyTorch) does. One
 * chain through all taps is not enough alike there: batch norm magnifies
 * rounding in low-variance channels, and the PyTorch parity test then
 * fails at step 1 (1.6e-3 against 1e-4). Input gradients take one chain:
 * the parity test's gradients and updates hold with it.
 *
 * Across processes (a reducer, train.h), a step's batch is n_all images of
 * which this process holds n: batch norm's sums and the loss's scale are
 * the whole batch's, and the gradients are summed as the backward pass
 * finishes each bucket of layers (bucket_end), while it goes on below.
 */
#include "ae/train.h"
#include "dconv.h"
#include "ops.h"
#include "team.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define BN_MOMENTUM 0.1f

/* One lane's share of a step: its own scratch and, past lane 0, its own
 * gradient block for what it sums outside the chunks' slots (the dense
 * layers, over the lane's own chunks), added into the trainer's after
 * backward. */
typedef struct tlane {
	float *col, *wt;      /* patches and one weight gradient (convgrad.c) */
	float *grads;         /* lane 0: the trainer's */
	float *mean, *invstd; /* batch-norm statistics, widest layer */
	double *sdy, *sdyx;   /* a batch norm's gradient sums over the batch */
	float *scratch[2];    /* gradients inside a backward run, one pass's images */
} tlane;

struct ae_trainer {
	ae_model *m;
	int loss;
	float *grads, *adam_m, *adam_v;
	long step;
	float *acts;                     /* block holding every layer's output */
	float *out[AE_MAX_LAYERS];       /* (max_batch, out) each, written by its layer */
	const float *act[AE_MAX_LAYERS]; /* each layer's output as read: out[i], or for a
	                                  * flatten layer that keeps the layout its input */
	float *bn_stats;                 /* mean, invstd per BN layer */
	float *bn_mean[AE_MAX_LAYERS], *bn_invstd[AE_MAX_LAYERS];
	double *bn_part; /* per BN layer: 4 sums x chunks x channels */
	double *bn_sums[AE_MAX_LAYERS];
	ae_team *team;
	int threads;
	tlane *lanes;
	/* chunks (see chunk_range) */
	int max_chunks;
	float *dbuf[2];  /* ping-pong gradients, the batch's images */
	float *cgrads;   /* each chunk's convolution gradients, n_cgrads floats */
	size_t n_cgrads; /* (their parameters in layer order: cg_w, cg_b) */
	size_t cg_w[AE_MAX_LAYERS], cg_b[AE_MAX_LAYERS];
	struct {
		size_t at, param, len; /* cgrads [at, at + len) are parameters [param, param + len) */
	} cg_seg[2 * AE_MAX_LAYERS];
	int n_cg_seg;
	double *chunk_loss;
	atomic_int claim_fwd[AE_MAX_LAYERS], claim_bwd[AE_MAX_LAYERS]; /* per run: its next chunk */
	/* the call the lanes are running */
	const float *x, *target;
	int n, n_lanes, n_chunks;
	int n_all; /* the batch's images across processes (n without a reducer) */
	float lr;
	/* across processes (see ae_reducer) */
	const ae_reducer *red;
	int red_rc;                           /* the step's first failed sum */
	double *red_buf;                      /* batch-norm sums on their way, 2 x widest */
	size_t param_from[AE_MAX_LAYERS + 1]; /* first parameter of the layers from i on */
	/* layouts (see layout_init) */
	unsigned char nhwc[AE_MAX_LAYERS];     /* layer i's output is channels-last */
	unsigned char relayout[AE_MAX_LAYERS]; /* a flatten/unflatten that transposes */
	float *in;                             /* the input channels-last, or NULL: x as given */
	const float *in0;                      /* what layer 0 reads */
	float *y;                              /* the output back in NCHW, or NULL */
	ae_dconv fwd[AE_MAX_LAYERS];           /* convolutions forward */
	ae_dconv dx[AE_MAX_LAYERS];            /* and their input gradients */
	unsigned char has_fwd[AE_MAX_LAYERS], has_dx[AE_MAX_LAYERS];
	unsigned char act_fused[AE_MAX_LAYERS], bn_fused[AE_MAX_LAYERS]; /* see fuse_init */
};

static int is_conv(const ae_layer *l)
{
	return l->kind == AE_L_CONV || l->kind == AE_L_CONVT;
}

/* Which outputs are channels-last: a convolution's, and what follows it
 * elementwise or through a batch norm, up to a flatten, which hands the
 * dense layer PyTorch's (C, H, W) order; an unflatten's when a
 * convolution reads it. A flatten or unflatten whose two sides differ
 * transposes (relayout); the input is transposed when layer 0 is a
 * convolution. One channel is the same in both layouts. */
static void layout_init(ae_trainer *t)
{
	const ae_net *net = &t->m->net;
	int prev = net->n_layers > 0 && is_conv(&net->layers[0]);
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		int v = prev;
		if (is_conv(l))
			v = 1;
		else if (l->kind == AE_L_FLATTEN || l->kind == AE_L_DENSE)
			v = 0;
		else if (l->kind == AE_L_UNFLATTEN)
			v = i + 1 < net->n_layers && is_conv(&net->layers[i + 1]);
		t->nhwc[i] = (unsigned char)v;
		if (l->kind == AE_L_FLATTEN) t->relayout[i] = prev && l->ic > 1;
		if (l->kind == AE_L_UNFLATTEN) t->relayout[i] = v && l->oc > 1;
		prev = v;
	}
}

/* A step goes through the layers in runs: between two batch norms, whose
 * statistics need every lane's images, each lane takes its images a few
 * at a time through all the layers of a run, so that what one layer
 * writes is still in the core's L2 when the next reads it, instead of
 * each layer streaming the lane's whole share through memory. A dense
 * layer runs alone on all of them, reading its weights once. AE_L2_BYTES
 * (ops.h) bounds a layer's input plus output for the images of one pass. */

/* The forward run from layer i: up to (not including) the next dense
 * layer or batch norm; a batch norm that starts a run has its statistics. */
static int run_end(const ae_net *net, int i)
{
	if (net->layers[i].kind == AE_L_DENSE) return i + 1;
	int j = i + 1;
	while (j < net->n_layers && net->layers[j].kind != AE_L_DENSE && net->layers[j].kind != AE_L_BN)
		j++;
	return j;
}

/* The backward run from layer i down to (not including) the returned
 * layer, the next dense layer or batch norm below it, or -1. */
static int run_stop(const ae_net *net, int i)
{
	if (net->layers[i].kind == AE_L_DENSE) return i - 1;
	int j = i - 1;
	while (j >= 0 && net->layers[j].kind != AE_L_DENSE && net->layers[j].kind != AE_L_BN)
		j--;
	return j;
}

/* Images per pass through layers [lo, hi] (a dense layer: all n). */
static int run_images(const ae_net *net, int lo, int hi, int n)
{
	size_t per = 0;
	for (int j = lo; j <= hi; j++) {
		const ae_layer *l = &net->layers[j];
		if (l->kind == AE_L_DENSE) return n;
		size_t bytes = ((size_t)l->ic * l->ih * l->iw + ae_layer_out_size(l)) * sizeof(float);
		if (bytes > per) per = bytes;
	}
	return ae_images_within(AE_L2_BYTES, per, n);
}

/* The runs with a convolution are most of a step, and on a shared host one
 * core runs 20-30% slower than the other for seconds at a time: with each
 * lane held to half of the images, one lane waited 10-20% of a step at the
 * batch norms at 128x128x3 (measured). So a call's images are cut into
 * chunks, and through such a run (shared) a lane takes the next chunk no
 * lane has taken yet. Other runs keep each lane to its own chunks: a dense
 * layer's run takes them in one unit, reading the weights once. Whichever
 * lane takes a chunk, what it sums goes to the chunk's own slot (batch-norm
 * sums, loss, a convolution's gradients: cgrads), and slots are added in
 * chunk order, so a step's result does not depend on which lane took what.
 *
 * A chunk costs its block of convolution gradients, added up and zeroed
 * once a step (300 KB for the conv preset): worth it where a chunk's work
 * is well above that. So a chunk holds at least CHUNK_PIXELS input pixels
 * (one 128x128 image, four 64x64 ones, so that at 28x28 each lane keeps to
 * one chunk of its own as before), and there are at most MAX_CHUNKS. */
#define CHUNK_PIXELS (128 * 128)
#define MAX_CHUNKS   64

/* Chunks for n images on the given lanes: at least one a lane. */
static int chunk_count(const ae_net *net, int n, int lanes)
{
	const ae_layer *first = &net->layers[0];
	long by_size = (long)n * first->ih * first->iw / CHUNK_PIXELS, most = n < MAX_CHUNKS ? n : MAX_CHUNKS;
	if (by_size > most) by_size = most;
	return by_size > lanes ? (int)by_size : lanes;
}

static int run_shared(const ae_net *net, int lo, int hi)
{
	for (int j = lo; j <= hi; j++)
		if (is_conv(&net->layers[j])) return 1;
	return 0;
}

/* Where a weight gradient goes through a patch matrix and a GEMM (CPUs
 * without AVX-512: ae_conv_weight_grad), it takes a pass's images a few
 * at a time: as many as keep the matrix under LOWER_BYTES, so that it is
 * written and read back while still in cache instead of from memory (at
 * 128x128 the decoder's last strided layer has 4.7 MB of patches per
 * image). 1 MB measured best of 1, 4 and 16 MB at 28x28, 64x64x3 and
 * 128x128x3. */
#define LOWER_BYTES (1u << 20)

/* Patch-matrix floats per image of layer l's weight gradient: none where
 * the direct kernel reads the patches in place (AVX-512). */
static size_t patch_floats(const ae_layer *l)
{
	if (!is_conv(l) || !ae_conv_weight_grad_col(ae_cpu_simd())) return 0;
	ae_conv_geom g;
	ae_layer_geom(l, &g);
	return (size_t)g.c * g.k * g.k * g.oh * g.ow;
}

/* Images per weight-gradient pass of layer l, out of n (all of them
 * where there is no patch matrix). */
static int lower_images(const ae_layer *l, int n)
{
	const size_t per = patch_floats(l);
	return per ? ae_images_within(LOWER_BYTES, per * sizeof(float), n) : n;
}

/* Floats of a lane's weight-gradient scratch for passes of b images. */
static void scratch_sizes(const ae_net *net, int b, size_t *col, size_t *wt)
{
	*col = *wt = 1;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		size_t c = patch_floats(l) * (size_t)lower_images(l, b);
		if (c > *col) *col = c;
		if (is_conv(l) && (size_t)l->ic * l->oc * l->k * l->k > *wt) *wt = (size_t)l->ic * l->oc * l->k * l->k;
	}
}

/* Floats of the widest layer input or output for b images. */
static size_t act_floats(const ae_net *net, int b)
{
	size_t most = 1;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		size_t in = (size_t)l->ic * l->ih * l->iw * b, out = ae_layer_out_size(l) * b;
		if (in > most) most = in;
		if (out > most) most = out;
	}
	return most;
}

static int widest_bn(const ae_net *net)
{
	int c = 1;
	for (int i = 0; i < net->n_layers; i++)
		if (net->layers[i].kind == AE_L_BN && net->layers[i].oc > c) c = net->layers[i].oc;
	return c;
}

/* Floats per scratch buffer for the gradients inside a backward run: a
 * pass's images times the largest input gradient a layer of the run
 * writes (backward_lane), b images per lane. */
static size_t run_scratch(const ae_net *net, int b)
{
	size_t most = 1;
	for (int i = net->n_layers - 1; i >= 0;) {
		const int stop = run_stop(net, i), sub = run_images(net, stop + 1, i, b);
		for (int j = i; j > stop; j--) {
			const ae_layer *l = &net->layers[j];
			size_t in = (size_t)l->ic * l->ih * l->iw * sub;
			if (in > most) most = in;
		}
		/* the loss gradient in NCHW (top_grad) */
		if (i == net->n_layers - 1 && ae_layer_out_size(&net->layers[i]) * sub > most)
			most = ae_layer_out_size(&net->layers[i]) * sub;
		i = stop;
	}
	return most;
}

static int lane_alloc(tlane *ln, const ae_net *net, int b, int own_grads)
{
	size_t ncol, nwt, nscr = run_scratch(net, b);
	int c = widest_bn(net);
	scratch_sizes(net, b, &ncol, &nwt);
	ln->scratch[0] = ae_floats(nscr);
	ln->scratch[1] = ae_floats(nscr);
	ln->col = ae_floats(ncol);
	ln->wt = ae_floats(nwt);
	ln->mean = malloc(2 * (size_t)c * sizeof(float));
	ln->invstd = ln->mean ? ln->mean + c : NULL;
	ln->sdy = malloc(2 * (size_t)c * sizeof(double));
	ln->sdyx = ln->sdy ? ln->sdy + c : NULL;
	if (own_grads) ln->grads = malloc(net->n_params * sizeof(float));
	int ok = ln->col && ln->wt && ln->scratch[0] && ln->scratch[1] && ln->mean && ln->sdy;
	return ok && (!own_grads || ln->grads) ? 0 : -1;
}

static void lane_free(tlane *ln, int own_grads)
{
	free(ln->col);
	free(ln->wt);
	free(ln->scratch[0]);
	free(ln->scratch[1]);
	free(ln->mean);
	free(ln->sdy);
	if (own_grads) free(ln->grads);
}

/* Compiles each convolution's forward pass and, past layer 0, its input
 * gradient (ae_dconv_adjoint). Weights are packed again each step. */
static int dconv_init(ae_trainer *t)
{
	const ae_net *net = &t->m->net;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (!is_conv(l)) continue;
		const float *w = t->m->params + l->w;
		ae_dconv_shape sh;
		ae_layer_dconv_shape(l, &sh);
		if (ae_dconv_init(&t->fwd[i], &sh, w, NULL) != 0) return -1;
		t->has_fwd[i] = 1;
		t->fwd[i].per_tap = sh.transposed;
		if (i == 0) continue;
		ae_dconv_shape adj;
		ae_dconv_adjoint(&adj, &sh);
		if (ae_dconv_init(&t->dx[i], &adj, w, NULL) != 0) return -1;
		t->has_dx[i] = 1;
		t->dx[i].per_tap = 0; /* see the top of this file */
	}
	return 0;
}

/* A convolution (or transposed one) followed by an activation runs the
 * activation in its epilogue: its output goes where the activation's
 * would, its own is never written (act_fused). When that activation is a
 * LeakyReLU followed by a batch norm and the convolution has a bias, the
 * backward pass is one pass shorter too: the LeakyReLU's backward and the
 * convolution's bias gradient run in the batch norm's dx pass
 * (ae_bn_lrelu_backward_dx; bn_fused). The LeakyReLU and the backward
 * passes are the same operations as unfused, so the same bits; the
 * sigmoid in the epilogue is dconv's vector one (as inference runs it). */
static void fuse_init(ae_trainer *t)
{
	const ae_net *net = &t->m->net;
	for (int i = 0; i + 1 < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		int next = net->layers[i + 1].kind;
		t->act_fused[i] = is_conv(l) && (next == AE_L_RELU || next == AE_L_LRELU || next == AE_L_SIGMOID);
		t->bn_fused[i] = t->act_fused[i] && l->b != AE_NONE && next == AE_L_LRELU && i + 2 < net->n_layers &&
		                 net->layers[i + 2].kind == AE_L_BN;
	}
}

/* The epilogue of layer i's forward pass: its bias, and the activation
 * after it when fused. */
static ae_epilogue forward_epilogue(const ae_trainer *t, int i)
{
	const ae_layer *l = &t->m->net.layers[i], *next = l + 1;
	ae_epilogue ep = { .bias = l->b != AE_NONE ? t->m->params + l->b : NULL };
	if (t->act_fused[i]) {
		ep.act = next->kind == AE_L_RELU    ? AE_ACT_RELU
		         : next->kind == AE_L_LRELU ? AE_ACT_LRELU
		                                    : AE_ACT_SIGMOID;
		ep.slope = next->slope;
	}
	return ep;
}

/* A layer whose output is stored: not a flatten or unflatten that only
 * renames its input, nor a convolution fused with its activation. */
static int has_output(const ae_trainer *t, int i)
{
	int k = t->m->net.layers[i].kind;
	if (t->act_fused[i]) return 0; /* its activation's output is written instead */
	return (k != AE_L_FLATTEN && k != AE_L_UNFLATTEN) || t->relayout[i];
}

/* Adds a segment of cgrads: len floats for the parameters from param;
 * returns where it starts. */
static size_t cgrad_segment(ae_trainer *t, size_t param, size_t len)
{
	const size_t at = t->n_cgrads;
	t->cg_seg[t->n_cg_seg].at = at;
	t->cg_seg[t->n_cg_seg].param = param;
	t->cg_seg[t->n_cg_seg].len = len;
	t->n_cg_seg++;
	t->n_cgrads += len;
	return at;
}

/* Where each convolution's weight and bias gradients sit in a chunk's
 * block of cgrads. */
static void cgrad_layout(ae_trainer *t)
{
	const ae_net *net = &t->m->net;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (!is_conv(l)) continue;
		t->cg_w[i] = cgrad_segment(t, l->w, (size_t)l->ic * l->oc * l->k * l->k);
		if (l->b != AE_NONE) t->cg_b[i] = cgrad_segment(t, l->b, (size_t)l->oc);
	}
}

ae_trainer *ae_trainer_new(ae_model *m, int max_batch, int threads, int loss, ae_error *err)
{
	if (max_batch < 1 || max_batch > AE_MAX_BATCH) {
		ae_fail(err, AE_ERR_INVAL, "batch size %d out of range (1..%d)", max_batch, AE_MAX_BATCH);
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
	layout_init(t);
	fuse_init(t);
	size_t np = net->n_params;
	size_t acts = 0, stats = 0;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (has_output(t, i)) acts += ae_layer_out_size(l) * (size_t)max_batch;
		if (l->kind == AE_L_BN) stats += 2 * (size_t)l->oc;
	}
	const ae_layer *first = &net->layers[0], *last = &net->layers[net->n_layers - 1];
	size_t in_size = (size_t)first->ic * first->ih * first->iw * max_batch;
	t->grads = calloc(np, sizeof(float));
	t->adam_m = calloc(np, sizeof(float));
	t->adam_v = calloc(np, sizeof(float));
	t->acts = ae_floats(acts);
	t->max_chunks = chunk_count(net, max_batch, t->threads);
	cgrad_layout(t);
	const size_t nact = act_floats(net, max_batch);
	t->bn_stats = malloc((stats ? stats : 1) * sizeof(float));
	t->bn_part = malloc((stats ? stats : 1) * 2 * (size_t)t->max_chunks * sizeof(double));
	t->dbuf[0] = ae_floats(nact);
	t->dbuf[1] = ae_floats(nact);
	t->cgrads = calloc((size_t)t->max_chunks * (t->n_cgrads ? t->n_cgrads : 1), sizeof(float));
	t->chunk_loss = calloc((size_t)t->max_chunks, sizeof(double));
	t->lanes = calloc((size_t)t->threads, sizeof *t->lanes);
	t->team = ae_team_new(t->threads);
	t->red_buf = malloc(2 * (size_t)widest_bn(net) * sizeof(double));
	int ok = t->grads && t->adam_m && t->adam_v && t->acts && t->bn_stats && t->bn_part && t->dbuf[0] &&
	         t->dbuf[1] && t->cgrads && t->chunk_loss && t->lanes && t->team && t->red_buf;
	if (ok && t->nhwc[0] && first->ic > 1) ok = (t->in = ae_floats(in_size)) != NULL;
	if (ok && t->nhwc[net->n_layers - 1] && last->oc > 1)
		ok = (t->y = ae_floats(ae_layer_out_size(last) * (size_t)max_batch)) != NULL;
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
	if (dconv_init(t) != 0) {
		ae_trainer_free(t);
		ae_fail(err, AE_ERR_NOMEM, "out of memory compiling the convolutions");
		return NULL;
	}
	/* parameters are laid out in layer order (ae_net_build) */
	t->param_from[net->n_layers] = np;
	for (int i = net->n_layers - 1; i >= 0; i--)
		t->param_from[i] = net->layers[i].w != AE_NONE ? net->layers[i].w : t->param_from[i + 1];
	float *a = t->acts, *s = t->bn_stats;
	double *d = t->bn_part;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (has_output(t, i)) {
			t->act[i] = t->out[i] = a;
			a += ae_layer_out_size(l) * (size_t)max_batch;
		}
		if (l->kind == AE_L_BN) {
			t->bn_mean[i] = s;
			t->bn_invstd[i] = s + l->oc;
			s += 2 * (size_t)l->oc;
			t->bn_sums[i] = d;
			d += 4 * (size_t)t->max_chunks * l->oc;
		}
	}
	return t;
}

void ae_trainer_free(ae_trainer *t)
{
	if (!t) return;
	ae_team_free(t->team);
	for (int i = 0; i < AE_MAX_LAYERS; i++) {
		if (t->has_fwd[i]) ae_dconv_deinit(&t->fwd[i]);
		if (t->has_dx[i]) ae_dconv_deinit(&t->dx[i]);
	}
	for (int k = 0; t->lanes && k < t->threads; k++)
		lane_free(&t->lanes[k], k > 0);
	free(t->lanes);
	free(t->grads);
	free(t->adam_m);
	free(t->adam_v);
	free(t->acts);
	free(t->in);
	free(t->y);
	free(t->bn_stats);
	free(t->bn_part);
	free(t->dbuf[0]);
	free(t->dbuf[1]);
	free(t->cgrads);
	free(t->chunk_loss);
	free(t->red_buf);
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

/* Chunk c of the call's images (see CHUNK_PIXELS): [*lo, *lo + return). */
static int chunk_range(const ae_trainer *t, int c, int *lo)
{
	*lo = (int)((long)t->n * c / t->n_chunks);
	return (int)((long)t->n * (c + 1) / t->n_chunks) - *lo;
}

/* What a lane takes through a run at a time: images [lo, lo + n), whose
 * sums go to slot (slots [slot, slot_end) are the unit's chunks). */
typedef struct unit {
	int lo, n, slot, slot_end;
} unit;

typedef struct units {
	const ae_trainer *t;
	atomic_int *claim; /* a shared run's next chunk, else NULL */
	int next, end;     /* the lane's own chunks not taken yet */
	int whole;         /* take them in one unit */
} units;

/* Lane k's units through a run: shared, chunks from claim; else its own
 * chunks, all at once when whole. */
static void units_begin(units *u, const ae_trainer *t, int k, atomic_int *claim, int shared, int whole)
{
	u->t = t;
	u->claim = shared ? claim : NULL;
	u->next = (int)((long)t->n_chunks * k / t->n_lanes);
	u->end = (int)((long)t->n_chunks * (k + 1) / t->n_lanes);
	u->whole = whole;
}

static int units_next(units *u, unit *un)
{
	int c;
	if (u->claim) {
		c = atomic_fetch_add_explicit(u->claim, 1, memory_order_relaxed);
		if (c >= u->t->n_chunks) return 0;
	} else {
		if (u->next >= u->end) return 0;
		c = u->next++;
	}
	un->slot = c;
	un->slot_end = c + 1;
	un->n = chunk_range(u->t, c, &un->lo);
	if (u->whole && u->next < u->end) {
		int lo, n = chunk_range(u->t, u->end - 1, &lo);
		un->n = lo + n - un->lo;
		un->slot_end = u->next = u->end;
	}
	return 1;
}

/* One blocking sum across processes; the step's first failure is kept
 * and later sums skipped. */
static void red_sum(ae_trainer *t, void *buf, size_t n, int type)
{
	if (t->red_rc == 0 && t->red->sum(t->red->ctx, buf, n, type) != 0) t->red_rc = -1;
}

/* Adds the chunks' partial sums part[c * n + ch] into out[ch], in order. */
static void add_slots(double *out, const double *part, int chunks, int n)
{
	for (int ch = 0; ch < n; ch++) {
		double s = 0.0;
		for (int c = 0; c < chunks; c++)
			s += part[(size_t)c * n + ch];
		out[ch] = s;
	}
}

/* The sums of batch norm i that chunks take apart and add (bn_part): sum
 * BN_X and BN_XX of its input (shifted) forward, BN_DY and BN_DYXH of its
 * gradient backward; each chunk's c values at its slot, one after
 * another. */
enum { BN_X, BN_XX, BN_DY, BN_DYXH };
static double *bn_part_of(const ae_trainer *t, int i, int sum, int slot)
{
	const size_t c = (size_t)t->m->net.layers[i].oc;
	return t->bn_sums[i] + ((size_t)sum * t->max_chunks + slot) * c;
}

/* Zeroes a unit's slots of batch norm i's sums a and b. */
static void bn_slots_zero(const ae_trainer *t, int i, int a, int b, const unit *un)
{
	const size_t bytes = (size_t)t->m->net.layers[i].oc * (size_t)(un->slot_end - un->slot) * sizeof(double);
	memset(bn_part_of(t, i, a, un->slot), 0, bytes);
	memset(bn_part_of(t, i, b, un->slot), 0, bytes);
}

/* Lane k's batch-norm statistics of layer i: lane 0 keeps the trainer's,
 * for backward; the others their own copy. */
static float *lane_mean(ae_trainer *t, int k, int i)
{
	return k ? t->lanes[k].mean : t->bn_mean[i];
}
static float *lane_invstd(ae_trainer *t, int k, int i)
{
	return k ? t->lanes[k].invstd : t->bn_invstd[i];
}

/* Layer i forward on batch images [g, g + b); returns the last layer it
 * ran (a convolution fused with its activation runs both). */
static int forward_layer(ae_trainer *t, int k, int i, int g, int b)
{
	const ae_net *net = &t->m->net;
	const ae_layer *l = &net->layers[i];
	const float *P = t->m->params;
	if (!has_output(t, i) && !t->act_fused[i]) return i;
	const float *in = (i ? t->act[i - 1] : t->in0) + (size_t)g * l->ic * l->ih * l->iw;
	size_t osz = ae_layer_out_size(l), sz = osz * (size_t)b;
	float *y = t->out[t->act_fused[i] ? i + 1 : i] + (size_t)g * osz;
	ae_epilogue ep = { .bias = l->b != AE_NONE ? P + l->b : NULL };
	switch (l->kind) {
	case AE_L_FLATTEN: ae_nhwc_to_nchw(y, in, b, l->ic, l->ih * l->iw); break;
	case AE_L_UNFLATTEN: ae_nchw_to_nhwc(y, in, b, l->oc, l->oh * l->ow); break;
	case AE_L_CONV:
	case AE_L_CONVT: ae_dconv_forward(y, in, b, &t->fwd[i]); return i + t->act_fused[i];
	case AE_L_DENSE: ae_dense_forward(y, in, P + l->w, &ep, b, l->ic, l->oc); break;
	case AE_L_RELU: ae_relu_forward(y, in, sz); break;
	case AE_L_LRELU: ae_lrelu_forward(y, in, l->slope, sz); break;
	case AE_L_SIGMOID: ae_sigmoid_forward(y, in, sz); break;
	case AE_L_BN:
		ae_bn_normalize(y, in, lane_mean(t, k, i), lane_invstd(t, k, i), P + l->w, P + l->b, b, l->oc,
		                l->oh * l->ow);
		break;
	default: break;
	}
	return i;
}

/* The sums for batch norm i's statistics, of batch images [g, g + b) of
 * its input, added into slot's, shifted by the running means (which lane
 * 0 changes only after every chunk's sums are in: bn_stats). */
static void bn_sums_add(ae_trainer *t, int slot, int i, int g, int b)
{
	const ae_layer *l = &t->m->net.layers[i];
	const float *in = t->act[i - 1] + (size_t)g * l->oc * l->oh * l->ow;
	ae_bn_shifted_sums(bn_part_of(t, i, BN_X, slot), bn_part_of(t, i, BN_XX, slot), in, t->m->state + l->rm, b,
	                   l->oc, l->oh * l->ow);
}

/* Batch norm i's statistics from every chunk's sums; lane 0 also updates
 * the running ones. */
static void bn_stats(ae_trainer *t, int k, int i)
{
	ae_model *m = t->m;
	const ae_layer *l = &m->net.layers[i];
	const int c = l->oc, L = t->n_chunks;
	const size_t total = (size_t)t->n_all * l->oh * l->ow;
	float shift[AE_MAX_FILTERS]; /* c <= AE_MAX_FILTERS: ae_net_build */
	memcpy(shift, m->state + l->rm, (size_t)c * sizeof *shift);
	ae_team_barrier(t->team);
	double s1[AE_MAX_FILTERS], s2[AE_MAX_FILTERS], mu[AE_MAX_FILTERS], ss[AE_MAX_FILTERS];
	if (t->red) {
		/* Every process shifts by the same running means, so their sums
		 * add up to the whole batch's. */
		if (k == 0) {
			add_slots(t->red_buf, bn_part_of(t, i, BN_X, 0), L, c);
			add_slots(t->red_buf + c, bn_part_of(t, i, BN_XX, 0), L, c);
			red_sum(t, t->red_buf, 2 * (size_t)c, AE_RED_F64);
		}
		ae_team_barrier(t->team);
		memcpy(s1, t->red_buf, (size_t)c * sizeof *s1);
		memcpy(s2, t->red_buf + c, (size_t)c * sizeof *s2);
	} else {
		add_slots(s1, bn_part_of(t, i, BN_X, 0), L, c);
		add_slots(s2, bn_part_of(t, i, BN_XX, 0), L, c);
	}
	ae_bn_moments(mu, ss, s1, s2, shift, total, c);
	ae_bn_stats(lane_mean(t, k, i), lane_invstd(t, k, i), k ? NULL : m->state + l->rm, k ? NULL : m->state + l->rv,
	            mu, ss, total, c, BN_MOMENTUM, AE_BN_EPS);
}

/* Does the run after the one ending before layer i need a barrier first:
 * is it not a batch norm's (bn_stats has one), and does either run hand
 * out chunks, so that its images are not all the ones this lane wrote? */
static int fwd_barrier(const ae_net *net, int i, int shared)
{
	if (i >= net->n_layers || net->layers[i].kind == AE_L_BN) return 0;
	return shared || run_shared(net, i, run_end(net, i) - 1);
}

static void forward_lane(void *arg, int k)
{
	ae_trainer *t = arg;
	const ae_net *net = &t->m->net;
	const ae_layer *first = &net->layers[0], *last = &net->layers[net->n_layers - 1];
	const size_t isz = (size_t)first->ic * first->ih * first->iw, osz = ae_layer_out_size(last);
	for (int i = 0; i < net->n_layers;) {
		const int end = run_end(net, i), shared = run_shared(net, i, end - 1);
		const int bn = end < net->n_layers && net->layers[end].kind == AE_L_BN ? end : -1;
		units u;
		unit un;
		units_begin(&u, t, k, &t->claim_fwd[i], shared, net->layers[i].kind == AE_L_DENSE);
		while (units_next(&u, &un)) {
			const int sub = run_images(net, i, end - 1, un.n);
			if (i == 0 && t->in)
				ae_nchw_to_nhwc(t->in + un.lo * isz, t->x + un.lo * isz, un.n, first->ic,
				                first->ih * first->iw);
			if (bn >= 0) bn_slots_zero(t, bn, BN_X, BN_XX, &un);
			for (int i0 = 0; i0 < un.n; i0 += sub) {
				int b = un.n - i0 < sub ? un.n - i0 : sub;
				for (int j = i; j < end; j++)
					j = forward_layer(t, k, j, un.lo + i0, b);
				if (bn >= 0) bn_sums_add(t, un.slot, bn, un.lo + i0, b);
			}
			if (end == net->n_layers && t->y)
				ae_nhwc_to_nchw(t->y + un.lo * osz, t->act[end - 1] + un.lo * osz, un.n, last->oc,
				                last->oh * last->ow);
		}
		if (bn >= 0)
			bn_stats(t, k, bn);
		else if (fwd_barrier(net, end, shared))
			ae_team_barrier(t->team);
		i = end;
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
	t->n_chunks = chunk_count(&t->m->net, n, t->n_lanes);
}

const float *ae_trainer_forward(ae_trainer *t, const float *x, int n)
{
	return ae_trainer_forward_part(t, x, n, n);
}

const float *ae_trainer_forward_part(ae_trainer *t, const float *x, int n, int n_all)
{
	const ae_net *net = &t->m->net;
	t->n_all = n_all;
	t->red_rc = 0;
	t->in0 = t->in ? t->in : x;
	/* a flatten or unflatten that keeps the layout aliases its input: set
	 * before the lanes read them */
	for (int i = 0; i < net->n_layers; i++)
		if (!has_output(t, i) && !t->act_fused[i]) t->act[i] = i ? t->act[i - 1] : t->in0;
	for (int i = 0; i < net->n_layers; i++)
		if (t->has_fwd[i]) {
			ae_epilogue ep = forward_epilogue(t, i);
			ae_dconv_pack(&t->fwd[i], t->m->params + net->layers[i].w, &ep);
		}
	begin_call(t, x, NULL, n);
	for (int i = 0; i < net->n_layers; i++)
		atomic_store_explicit(&t->claim_fwd[i], 0, memory_order_relaxed);
	ae_team_run(t->team, t->n_lanes, forward_lane, t);
	t->m->bn_batches++;
	return t->y ? t->y : t->act[net->n_layers - 1];
}

/* Batch norm i's gradient sums (dbeta, dgamma) from every chunk's, into
 * lane k's totals for its dx; lane 0 adds them to the gradients. */
static void bn_grad_sums(ae_trainer *t, int k, int i)
{
	const ae_layer *l = &t->m->net.layers[i];
	tlane *ln = &t->lanes[k];
	const int c = l->oc, L = t->n_chunks;
	ae_team_barrier(t->team);
	add_slots(ln->sdy, bn_part_of(t, i, BN_DY, 0), L, c);
	add_slots(ln->sdyx, bn_part_of(t, i, BN_DYXH, 0), L, c);
	if (k == 0)
		for (int ch = 0; ch < c; ch++) {
			ln->grads[l->w + ch] += (float)ln->sdyx[ch];
			ln->grads[l->b + ch] += (float)ln->sdy[ch];
		}
	if (!t->red) return;
	/* dx needs the whole batch's sums; the gradients above stay this
	 * process's part, which the reducer adds up with the rest. */
	if (k == 0) {
		memcpy(t->red_buf, ln->sdy, (size_t)c * sizeof *ln->sdy);
		memcpy(t->red_buf + c, ln->sdyx, (size_t)c * sizeof *ln->sdyx);
		red_sum(t, t->red_buf, 2 * (size_t)c, AE_RED_F64);
	}
	ae_team_barrier(t->team);
	memcpy(ln->sdy, t->red_buf, (size_t)c * sizeof *ln->sdy);
	memcpy(ln->sdyx, t->red_buf + c, (size_t)c * sizeof *ln->sdyx);
}

/* Batch norm i's dx for b images, from the totals bn_grad_sums left; with
 * the LeakyReLU and the bias gradient of a fused convolution below it
 * (into cg, the chunk's convolution gradients). */
static void bn_backward_dx_lane(ae_trainer *t, int k, float *cg, int i, float *dx, const float *d, const float *in,
                                int b)
{
	const ae_model *m = t->m;
	const ae_layer *l = &m->net.layers[i];
	tlane *ln = &t->lanes[k];
	const int c = l->oc, p = l->oh * l->ow;
	const size_t total = (size_t)t->n_all * p;
	const float *mean = t->bn_mean[i], *invstd = t->bn_invstd[i];
	const ae_layer *conv = i >= 2 && t->bn_fused[i - 2] ? l - 2 : NULL; /* fuse_init */
	if (!conv) {
		ae_bn_backward_dx(dx, d, in, mean, invstd, m->params + l->w, ln->sdy, ln->sdyx, total, b, c, p);
		return;
	}
	double db[AE_MAX_FILTERS];
	ae_bn_lrelu_backward_dx(dx, db, d, in, mean, invstd, m->params + l->w, ln->sdy, ln->sdyx, total, b, c, p,
	                        (l - 1)->slope);
	for (int ch = 0; ch < c; ch++)
		cg[t->cg_b[i - 2] + ch] += (float)db[ch];
}

/* Layer i's backward: weight and bias gradients added into the chunk's,
 * cg (the weights' lower_images at a time), dx (if not NULL) written by
 * the adjoint convolution. */
static void conv_backward(ae_trainer *t, tlane *ln, float *cg, int i, float *dx, const float *dy, const float *x, int n)
{
	const ae_layer *l = &t->m->net.layers[i];
	const size_t isz = (size_t)l->ic * l->ih * l->iw, osz = ae_layer_out_size(l);
	const int sub = lower_images(l, n);
	ae_conv_geom g;
	ae_layer_geom(l, &g);
	if (l->b != AE_NONE && !t->bn_fused[i]) {
		double acc[AE_MAX_FILTERS];
		ae_bias_grad_nhwc(cg + t->cg_b[i], dy, (size_t)n * l->oh * l->ow, l->oc, acc);
	}
	for (int i0 = 0; i0 < n; i0 += sub) {
		int b = n - i0 < sub ? n - i0 : sub;
		const float *dys = dy + (size_t)i0 * osz, *xs = x + (size_t)i0 * isz;
		if (l->kind == AE_L_CONV)
			ae_conv_weight_grad(cg + t->cg_w[i], ln->wt, ln->col, xs, dys, b, l->oc, &g);
		else
			ae_conv_weight_grad(cg + t->cg_w[i], ln->wt, ln->col, dys, xs, b, l->ic, &g);
	}
	if (dx) ae_dconv_forward(dx, dy, n, &t->dx[i]);
}

/* Does layer i's backward write an input gradient of its own (else it
 * works in place, or passes it through)? */
static int writes_dx(const ae_trainer *t, int i)
{
	int kind = t->m->net.layers[i].kind;
	if (i == 0) return 0;
	if (kind == AE_L_FLATTEN || kind == AE_L_UNFLATTEN) return t->relayout[i];
	return kind == AE_L_CONV || kind == AE_L_CONVT || kind == AE_L_DENSE || kind == AE_L_BN;
}

/* Layer i backward on batch images [g, g + b): dy holds their gradient at
 * the layer's output, dx (when writes_dx) gets it at its input; a
 * convolution's gradients go to cg, its chunk's (a dense layer's to the
 * lane's). */
static void backward_layer(ae_trainer *t, int k, float *cg, int i, int g, int b, float *dy, float *dx)
{
	const ae_net *net = &t->m->net;
	const ae_layer *l = &net->layers[i];
	tlane *ln = &t->lanes[k];
	const float *P = t->m->params;
	float *G = ln->grads;
	const size_t isz = (size_t)l->ic * l->ih * l->iw, out = ae_layer_out_size(l), sz = out * (size_t)b;
	const float *in = (i ? t->act[i - 1] : t->in0) + (size_t)g * isz;
	if (!i) dx = NULL;
	switch (l->kind) {
	case AE_L_CONV:
	case AE_L_CONVT: conv_backward(t, ln, cg, i, dx, dy, in, b); break;
	case AE_L_DENSE: ae_dense_backward(dx, G + l->w, G + l->b, dy, in, P + l->w, b, l->ic, l->oc); break;
	case AE_L_BN:
		if (dx) bn_backward_dx_lane(t, k, cg, i, dx, dy, in, b);
		break;
	case AE_L_FLATTEN:
		if (t->relayout[i] && dx) ae_nchw_to_nhwc(dx, dy, b, l->ic, l->ih * l->iw);
		break;
	case AE_L_UNFLATTEN:
		if (t->relayout[i] && dx) ae_nhwc_to_nchw(dx, dy, b, l->oc, l->oh * l->ow);
		break;
	/* Elementwise layers work in place on dy, from their output. */
	case AE_L_RELU: ae_relu_backward(dy, dy, t->act[i] + (size_t)g * out, sz); break;
	case AE_L_LRELU:
		if (i == 0 || !t->bn_fused[i - 1]) /* else done with the BN's dx */
			ae_lrelu_backward(dy, dy, t->act[i] + (size_t)g * out, l->slope, sz);
		break;
	case AE_L_SIGMOID: ae_sigmoid_backward(dy, dy, t->act[i] + (size_t)g * out, sz); break;
	default: break;
	}
}

/* The loss of batch images [g, g + b) added into slot's, and its gradient
 * at the last layer's output into d at their place, channels-last (through
 * the lane's scratch when the output is kept NCHW for the loss: d's
 * neighbours may be another pass's gradients by then). */
static void top_grad(ae_trainer *t, tlane *ln, int slot, int g, int b, float *d)
{
	const ae_net *net = &t->m->net;
	const ae_layer *ll = &net->layers[net->n_layers - 1];
	const size_t osz = ae_layer_out_size(ll), at = (size_t)g * osz;
	const float *y = (t->y ? t->y : t->act[net->n_layers - 1]) + at, *tg = t->target + at;
	const size_t cnt = osz * (size_t)b, total = osz * (size_t)t->n_all;
	float *gr = t->y ? ln->scratch[0] : d + at;
	t->chunk_loss[slot] += t->loss == AE_LOSS_BCE ? ae_bce_loss_part(gr, y, tg, cnt, total)
	                                              : ae_mse_loss_part(gr, y, tg, cnt, total);
	if (t->y) ae_nchw_to_nhwc(d + at, gr, b, ll->oc, ll->oh * ll->ow);
}

/* Lane k's slice of [lo, lo + len) out of `lanes`: returns its length,
 * its start in *at. */
static size_t slice_of(size_t lo, size_t len, int k, int lanes, size_t *at)
{
	*at = lo + len * (size_t)k / (size_t)lanes;
	return lo + len * (size_t)(k + 1) / (size_t)lanes - *at;
}

/* Adds [a, b) of every chunk's convolution gradients, in chunk order,
 * into out (the parameters from cgrads offset a on) and zeroes them for
 * the next call. */
static void add_chunks(ae_trainer *t, float *out, size_t a, size_t b)
{
	for (size_t j = a; j < b; j++) {
		float s = 0.0f;
		for (int c = 0; c < t->n_chunks; c++) {
			float *g = t->cgrads + (size_t)c * t->n_cgrads + j;
			s += *g;
			*g = 0.0f;
		}
		out[j - a] += s;
	}
}

/* Lane k's slice (of `lanes`) of parameters [p_lo, p_hi): the other
 * lanes' gradients and the chunks' added into the trainer's, in the same
 * order whichever slice or bucket a parameter falls in. */
static void reduce_range(ae_trainer *t, int k, int lanes, size_t p_lo, size_t p_hi)
{
	size_t lo, len = slice_of(p_lo, p_hi - p_lo, k, lanes, &lo);
	for (int l = 1; l < t->n_lanes; l++) {
		const float *g = t->lanes[l].grads + lo;
		float *out = t->grads + lo;
		for (size_t j = 0; j < len; j++)
			out[j] += g[j];
	}
	/* The chunks' sums for the parameters of the same slice: a lane that
	 * added another slice's would race the lane adding zeros there above
	 * (a lost update, seen as a wrong weight gradient in 1 step of 30). */
	for (int q = 0; q < t->n_cg_seg; q++) {
		const size_t p0 = t->cg_seg[q].param, p1 = p0 + t->cg_seg[q].len;
		const size_t a = p0 > lo ? p0 : lo, b = p1 < lo + len ? p1 : lo + len;
		if (a < b) add_chunks(t, t->grads + a, t->cg_seg[q].at + (a - p0), t->cg_seg[q].at + (b - p0));
	}
}

/* The other lanes' gradients and the chunks' added into the trainer's, a
 * slice per lane. */
static void reduce_lane(void *arg, int k)
{
	ae_trainer *t = arg;
	reduce_range(t, k, t->threads, 0, t->m->net.n_params);
}

/* Gradients travel between processes in buckets of at least this many
 * floats (the last one excepted) unless the reducer says: the conv
 * preset's runs end every 1-200 KB. */
#define BUCKET_FLOATS (64 * 1024)

/* After the backward run down to (not including) layer stop and its
 * closing barrier, the gradients of the layers above stop are final: when
 * those not yet sent, [param_from[stop + 1], *sent), make a bucket, the
 * lanes add up their parts and lane 0 starts its sum across processes. */
static void bucket_end(ae_trainer *t, int k, int stop, size_t *sent, int *started)
{
	const size_t lo = t->param_from[stop + 1], least = t->red->bucket ? t->red->bucket : BUCKET_FLOATS;
	if (lo == *sent || (stop >= 0 && *sent - lo < least)) return;
	if (stop < 0) ae_team_barrier(t->team); /* no run below gives one */
	reduce_range(t, k, t->n_lanes, lo, *sent);
	ae_team_barrier(t->team);
	if (k == 0 && t->red_rc == 0) {
		if (t->red->start(t->red->ctx, t->grads + lo, *sent - lo) != 0)
			t->red_rc = -1;
		else
			*started = 1;
	}
	*sent = lo;
}

/* Does the backward run from layer i down (i < 0: none) need a barrier
 * first? Every one does that bn_grad_sums does not give one: the runs
 * pass gradients through two buffers of the batch's images in turn
 * (dbuf), and one layer's images sit at another's offsets, so even lanes
 * that keep to their own images would read and write each other's bytes
 * across runs (a lane's flatten gradients over the next lane's dense
 * ones, seen as a race in the encoder's gradients). */
static int bwd_barrier(const ae_net *net, int i)
{
	return i >= 0 && net->layers[i].kind != AE_L_BN;
}

static void backward_lane(void *arg, int k)
{
	ae_trainer *t = arg;
	const ae_model *m = t->m;
	const ae_net *net = &m->net;
	tlane *ln = &t->lanes[k];
	const int last = net->n_layers - 1;
	float *d = t->dbuf[0], *other = t->dbuf[1];
	const int buckets = t->red && t->red->start;
	size_t sent = net->n_params; /* parameters from here on are in buckets */
	int started = 0;             /* lane 0: a bucket is on its way */
	if (k) memset(ln->grads, 0, net->n_params * sizeof(float));
	for (int i = last; i >= 0;) {
		const int stop = run_stop(net, i), shared = run_shared(net, stop + 1, i);
		const int bn = stop >= 0 && net->layers[stop].kind == AE_L_BN ? stop : -1;
		const ae_layer *bl = bn >= 0 ? &net->layers[bn] : NULL;
		/* The run's last gradient goes to other, at its images' place,
		 * for the next run; the ones between its layers only serve the
		 * images of one pass, and go to the lane's two scratch buffers,
		 * which stay in cache from one pass to the next. */
		int nw = 0;
		for (int j = i; j > stop; j--)
			nw += writes_dx(t, j);
		units u;
		unit un;
		units_begin(&u, t, k, &t->claim_bwd[i], shared, net->layers[i].kind == AE_L_DENSE);
		while (units_next(&u, &un)) {
			float *cg = t->cgrads + (size_t)un.slot * t->n_cgrads;
			const int sub = run_images(net, stop + 1, i, un.n);
			if (i == last)
				for (int c = un.slot; c < un.slot_end; c++)
					t->chunk_loss[c] = 0.0;
			if (bl) bn_slots_zero(t, bn, BN_DY, BN_DYXH, &un);
			for (int i0 = 0; i0 < un.n; i0 += sub) {
				const int b = un.n - i0 < sub ? un.n - i0 : sub, g = un.lo + i0;
				float *cur = d;
				int whole = 1, w = 0; /* cur holds the batch's images, or only this pass's */
				if (i == last) top_grad(t, ln, un.slot, g, b, d);
				for (int j = i; j > stop; j--) {
					const ae_layer *l = &net->layers[j];
					float *dy = cur + (whole ? (size_t)g * ae_layer_out_size(l) : 0);
					if (started && t->red->progress) t->red->progress(t->red->ctx);
					if (!writes_dx(t, j)) {
						backward_layer(t, k, cg, j, g, b, dy, NULL);
						continue;
					}
					const int last_write = ++w == nw;
					float *dst = last_write ? other : ln->scratch[w & 1];
					backward_layer(t, k, cg, j, g, b, dy,
					               dst + (last_write ? (size_t)g * l->ic * l->ih * l->iw : 0));
					cur = dst;
					whole = last_write;
				}
				if (bl) {
					const size_t bsz = ae_layer_out_size(bl);
					const float *dd = cur + (whole ? (size_t)g * bsz : 0);
					ae_bn_backward_sums(bn_part_of(t, bn, BN_DY, un.slot),
					                    bn_part_of(t, bn, BN_DYXH, un.slot), dd,
					                    t->act[bn - 1] + (size_t)g * bsz, t->bn_mean[bn],
					                    t->bn_invstd[bn], b, bl->oc, bl->oh * bl->ow);
				}
			}
		}
		if (nw) {
			float *s = d;
			d = other;
			other = s;
		}
		if (bl)
			bn_grad_sums(t, k, bn);
		else if (bwd_barrier(net, stop))
			ae_team_barrier(t->team);
		if (buckets) bucket_end(t, k, stop, &sent, &started);
		i = stop;
	}
}

double ae_trainer_backward(ae_trainer *t, const float *x, const float *target, int n)
{
	const ae_net *net = &t->m->net;
	if (!t->in) t->in0 = x; /* else the copy the forward pass made of x */
	for (int i = 0; i < net->n_layers; i++)
		if (t->has_dx[i]) ae_dconv_pack(&t->dx[i], t->m->params + net->layers[i].w, NULL);
	begin_call(t, x, target, n);
	for (int i = 0; i < net->n_layers; i++)
		atomic_store_explicit(&t->claim_bwd[i], 0, memory_order_relaxed);
	ae_team_run(t->team, t->n_lanes, backward_lane, t);
	double loss = 0.0;
	for (int c = 0; c < t->n_chunks; c++)
		loss += t->chunk_loss[c];
	if (t->red && t->red->start) {
		if (t->red->finish(t->red->ctx) != 0) t->red_rc = -1;
	} else {
		ae_team_run(t->team, t->threads, reduce_lane, t);
		if (t->red) red_sum(t, t->grads, t->m->net.n_params, AE_RED_F32);
	}
	return t->red_rc ? NAN : loss;
}

static void adam_lane(void *arg, int k)
{
	ae_trainer *t = arg;
	size_t lo, len = slice_of(0, t->m->net.n_params, k, t->threads, &lo);
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
	return ae_trainer_step_part(t, x, target, n, n, lr);
}

double ae_trainer_step_part(ae_trainer *t, const float *x, const float *target, int n, int n_all, float lr)
{
	ae_trainer_zero_grad(t);
	ae_trainer_forward_part(t, x, n, n_all);
	double loss = ae_trainer_backward(t, x, target, n);
	/* a failed sum leaves the gradients this process's alone: no step */
	if (!t->red_rc) ae_trainer_adam(t, lr);
	return loss;
}

void ae_trainer_set_reducer(ae_trainer *t, const ae_reducer *r)
{
	t->red = r;
}
