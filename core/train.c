/*
 * Forward with batch statistics, backward and Adam over the layer list.
 * Memory is carved from a handful of blocks sized once in ae_trainer_new.
 */
#include "ae/train.h"
#include "ae/ops.h"

#include <stdlib.h>
#include <string.h>

#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

struct ae_trainer {
	ae_model *m;
	int max_batch, loss;
	float *grads, *adam_m, *adam_v;
	long step;
	float *acts;                  /* block holding every layer's output */
	float *act[AE_MAX_LAYERS];    /* (max_batch, out) each; flatten layers alias */
	float *bn_stats;              /* mean, invstd per BN layer */
	float *bn_mean[AE_MAX_LAYERS], *bn_invstd[AE_MAX_LAYERS];
	float *dbuf[2];               /* ping-pong gradients, largest activation */
	float *col, *t;               /* lowering scratch */
};

static void scratch_sizes(const ae_net *net, int b, size_t *col, size_t *t, size_t *act)
{
	*col = *t = *act = 1;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		size_t in = (size_t)l->ic * l->ih * l->iw * b, out = ae_layer_out_size(l) * b;
		if (in > *act) *act = in;
		if (out > *act) *act = out;
		if (l->kind == AE_L_CONV) {
			size_t np = (size_t)b * l->oh * l->ow;
			size_t c = (size_t)l->ic * l->k * l->k * np, tt = (size_t)l->oc * np;
			if (c > *col) *col = c;
			if (tt > *t) *t = tt;
		} else if (l->kind == AE_L_CONVT) {
			size_t np = (size_t)b * l->ih * l->iw;
			size_t c = (size_t)l->oc * l->k * l->k * np, tt = (size_t)l->ic * np;
			if (c > *col) *col = c;
			if (tt > *t) *t = tt;
		}
	}
}

ae_trainer *ae_trainer_new(ae_model *m, int max_batch, int loss, ae_error *err)
{
	if (max_batch < 1 || max_batch > 65536) {
		ae_fail(err, AE_ERR_INVAL, "batch size %d out of range (1..65536)", max_batch);
		return NULL;
	}
	ae_trainer *t = calloc(1, sizeof *t);
	if (!t) {
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating a trainer");
		return NULL;
	}
	const ae_net *net = &m->net;
	t->m = m;
	t->max_batch = max_batch;
	t->loss = loss;
	size_t np = net->n_params;
	size_t ncol, nt, nact, acts = 0, stats = 0;
	scratch_sizes(net, max_batch, &ncol, &nt, &nact);
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (l->kind != AE_L_FLATTEN && l->kind != AE_L_UNFLATTEN)
			acts += ae_layer_out_size(l) * (size_t)max_batch;
		if (l->kind == AE_L_BN)
			stats += 2 * (size_t)l->oc;
	}
	t->grads = calloc(np, sizeof(float));
	t->adam_m = calloc(np, sizeof(float));
	t->adam_v = calloc(np, sizeof(float));
	t->acts = malloc(acts * sizeof(float));
	t->bn_stats = malloc((stats ? stats : 1) * sizeof(float));
	t->dbuf[0] = malloc(nact * sizeof(float));
	t->dbuf[1] = malloc(nact * sizeof(float));
	t->col = malloc(ncol * sizeof(float));
	t->t = malloc(nt * sizeof(float));
	if (!t->grads || !t->adam_m || !t->adam_v || !t->acts || !t->bn_stats ||
	    !t->dbuf[0] || !t->dbuf[1] || !t->col || !t->t) {
		ae_trainer_free(t);
		ae_fail(err, AE_ERR_NOMEM, "out of memory allocating training buffers for batch %d", max_batch);
		return NULL;
	}
	float *a = t->acts, *s = t->bn_stats;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		if (l->kind != AE_L_FLATTEN && l->kind != AE_L_UNFLATTEN) {
			t->act[i] = a;
			a += ae_layer_out_size(l) * (size_t)max_batch;
		}
		if (l->kind == AE_L_BN) {
			t->bn_mean[i] = s;
			t->bn_invstd[i] = s + l->oc;
			s += 2 * (size_t)l->oc;
		}
	}
	return t;
}

void ae_trainer_free(ae_trainer *t)
{
	if (!t)
		return;
	free(t->grads);
	free(t->adam_m);
	free(t->adam_v);
	free(t->acts);
	free(t->bn_stats);
	free(t->dbuf[0]);
	free(t->dbuf[1]);
	free(t->col);
	free(t->t);
	free(t);
}

float *ae_trainer_grads(ae_trainer *t) { return t->grads; }
float *ae_trainer_adam_m(ae_trainer *t) { return t->adam_m; }
float *ae_trainer_adam_v(ae_trainer *t) { return t->adam_v; }
long *ae_trainer_adam_step(ae_trainer *t) { return &t->step; }

void ae_trainer_zero_grad(ae_trainer *t)
{
	memset(t->grads, 0, t->m->net.n_params * sizeof(float));
}

const float *ae_trainer_forward(ae_trainer *t, const float *x, int n)
{
	ae_model *m = t->m;
	const ae_net *net = &m->net;
	const float *in = x;
	for (int i = 0; i < net->n_layers; i++) {
		const ae_layer *l = &net->layers[i];
		const float *P = m->params;
		float *y = t->act[i];
		size_t sz = ae_layer_out_size(l) * (size_t)n;
		ae_conv_geom g;
		ae_epilogue ep = { .bias = l->b != AE_NONE ? P + l->b : NULL };
		switch (l->kind) {
		case AE_L_CONV:
			ae_layer_geom(l, &g);
			ae_conv2d_forward(y, t->col, t->t, in, P + l->w, &ep, n, l->oc, &g);
			break;
		case AE_L_CONVT:
			ae_layer_geom(l, &g);
			ae_convt2d_forward(y, t->col, t->t, in, P + l->w, &ep, n, l->ic, &g);
			break;
		case AE_L_DENSE:
			ae_dense_forward(y, in, P + l->w, &ep, n, l->ic, l->oc);
			break;
		case AE_L_RELU: ae_relu_forward(y, in, sz); break;
		case AE_L_LRELU: ae_lrelu_forward(y, in, l->slope, sz); break;
		case AE_L_SIGMOID: ae_sigmoid_forward(y, in, sz); break;
		case AE_L_BN:
			ae_bn_forward_train(y, t->bn_mean[i], t->bn_invstd[i], m->state + l->rm,
			                    m->state + l->rv, in, P + l->w, P + l->b, n, l->oc,
			                    l->oh * l->ow, BN_MOMENTUM, BN_EPS);
			break;
		default:
			t->act[i] = (float *)in;  /* flatten/unflatten: same memory */
			y = t->act[i];
		}
		in = y;
	}
	m->bn_batches++;
	return in;
}

double ae_trainer_backward(ae_trainer *t, const float *x, const float *target, int n)
{
	const ae_model *m = t->m;
	const ae_net *net = &m->net;
	const int last = net->n_layers - 1;
	const size_t out_n = ae_layer_out_size(&net->layers[last]) * (size_t)n;
	float *d = t->dbuf[0], *other = t->dbuf[1];
	double loss = t->loss == AE_LOSS_BCE ? ae_bce_loss(d, t->act[last], target, out_n)
	                                     : ae_mse_loss(d, t->act[last], target, out_n);
	for (int i = last; i >= 0; i--) {
		const ae_layer *l = &net->layers[i];
		const float *in = i ? t->act[i - 1] : x;
		const float *y = t->act[i];
		const float *P = m->params;
		float *G = t->grads;
		float *dx = i ? other : NULL;
		size_t sz = ae_layer_out_size(l) * (size_t)n;
		ae_conv_geom g;
		switch (l->kind) {
		case AE_L_CONV:
			ae_layer_geom(l, &g);
			ae_conv2d_backward(dx, G + l->w, G + l->b, t->col, t->t, d, in, P + l->w, n, l->oc, &g);
			break;
		case AE_L_CONVT:
			ae_layer_geom(l, &g);
			ae_convt2d_backward(dx, G + l->w, G + l->b, t->col, t->t, d, in, P + l->w, n, l->ic, &g);
			break;
		case AE_L_DENSE:
			ae_dense_backward(dx, G + l->w, G + l->b, d, in, P + l->w, n, l->ic, l->oc);
			break;
		case AE_L_BN:
			ae_bn_backward(dx, G + l->w, G + l->b, d, in, t->bn_mean[i], t->bn_invstd[i],
			               P + l->w, n, l->oc, l->oh * l->ow);
			break;
		/* Elementwise layers work in place on d. */
		case AE_L_RELU: ae_relu_backward(d, d, y, sz); continue;
		case AE_L_LRELU: ae_lrelu_backward(d, d, y, l->slope, sz); continue;
		case AE_L_SIGMOID: ae_sigmoid_backward(d, d, y, sz); continue;
		default: continue;
		}
		if (dx) {
			other = d;
			d = dx;
		}
	}
	return loss;
}

void ae_trainer_adam(ae_trainer *t, float lr)
{
	t->step++;
	ae_adam_update(t->m->params, t->adam_m, t->adam_v, t->grads, t->m->net.n_params,
	               lr, 0.9f, 0.999f, 1e-8f, t->step);
}

double ae_trainer_step(ae_trainer *t, const float *x, const float *target, int n, float lr)
{
	ae_trainer_zero_grad(t);
	ae_trainer_forward(t, x, n);
	double loss = ae_trainer_backward(t, x, target, n);
	ae_trainer_adam(t, lr);
	return loss;
}
