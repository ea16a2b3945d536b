/*
 * Parity with PyTorch: the conv preset's forward pass, MSE loss, every
 * parameter gradient, three Adam steps with batch-norm running statistics,
 * and the eval-mode (folded) inference plan, against the fixture written by
 * tests/parity/make_fixture.py. Tolerance: 1e-4 relative to each tensor's
 * largest magnitude.
 *
 * Steps are teacher-forced: after comparing a step, our parameters are reset
 * to PyTorch's so that each step is judged on its own. In the update
 * comparison, elements whose PyTorch gradient is at float-noise level
 * (< 1e-5 of the tensor's largest) are skipped: Adam divides the gradient by
 * its own magnitude, so a 1e-9 rounding difference there becomes a full
 * +-lr step in either implementation. Those gradients themselves are still
 * compared, unmasked.
 */
#include "test.h"

#include <stdlib.h>

#include "ae/infer.h"
#include "ae/safetensors.h"
#include "ae/train.h"

#define TOL 1e-4

static const ae_st_tensor *get(const ae_st *st, const char *name)
{
	const ae_st_tensor *t = ae_st_find(st, name);
	CHECK_MSG(t != NULL, "fixture lacks %s", name);
	return t;
}

static const float *fget(const ae_st *st, const char *name, size_t *n)
{
	const ae_st_tensor *t = get(st, name);
	if (!t) return NULL;
	if (n) *n = (t->end - t->begin) / 4;
	return ae_st_bytes(st, t);
}

/* Visits every (tensor name suffix, pointer into model) pair of a layer. */
typedef void (*visit_fn)(const char *name, float *p, size_t n, void *ctx);

static void visit_params(ae_model *m, int with_state, visit_fn fn, void *ctx)
{
	char name[64];
	for (int i = 0; i < m->net.n_layers; i++) {
		const ae_layer *l = &m->net.layers[i];
		if (l->w == AE_NONE) continue;
		snprintf(name, sizeof name, "%s.weight", l->name);
		fn(name, m->params + l->w, l->wn, ctx);
		snprintf(name, sizeof name, "%s.bias", l->name);
		fn(name, m->params + l->b, l->bn, ctx);
		if (with_state && l->kind == AE_L_BN) {
			snprintf(name, sizeof name, "%s.running_mean", l->name);
			fn(name, m->state + l->rm, (size_t)l->oc, ctx);
			snprintf(name, sizeof name, "%s.running_var", l->name);
			fn(name, m->state + l->rv, (size_t)l->oc, ctx);
		}
	}
}

typedef struct ctx {
	const ae_st *st;
	const char *prefix;
	const char *mask_prefix; /* gradients that mask noise-level elements */
	ae_model *m;
	float *grads; /* when comparing gradients */
	int copy;
	long masked;
} ctx;

/* test_rel_err over the elements whose |g| is above noise level. */
static double masked_err(const float *a, const float *b, const float *g, size_t n, long *skipped)
{
	double gmax = 0.0, maxd = 0.0, maxb = 1e-3;
	for (size_t i = 0; i < n; i++)
		if (fabs(g[i]) > gmax) gmax = fabs(g[i]);
	for (size_t i = 0; i < n; i++) {
		if (fabs(b[i]) > maxb) maxb = fabs(b[i]);
		if (fabs(g[i]) < 1e-5 * gmax) {
			(*skipped)++;
			continue;
		}
		double d = fabs((double)a[i] - b[i]);
		if (!isfinite(a[i])) return INFINITY;
		if (d > maxd) maxd = d;
	}
	return maxd / maxb;
}

static void visit(const char *name, float *p, size_t n, void *vc)
{
	ctx *c = vc;
	char full[96];
	snprintf(full, sizeof full, "%s%s", c->prefix, name);
	size_t fn;
	const float *ref = fget(c->st, full, &fn);
	if (!ref) return;
	CHECK_MSG(fn == n, "%s: %zu values in fixture, %zu in model", full, fn, n);
	if (fn != n) return;
	if (c->copy) {
		memcpy(p, ref, n * sizeof(float));
		return;
	}
	const float *mine = c->grads ? c->grads + (p - c->m->params) : p;
	double e;
	snprintf(full, sizeof full, "%s%s", c->mask_prefix ? c->mask_prefix : "", name);
	if (c->mask_prefix && ae_st_find(c->st, full))
		e = masked_err(mine, ref, fget(c->st, full, NULL), n, &c->masked);
	else
		e = test_rel_err(mine, ref, n);
	snprintf(full, sizeof full, "%s%s", c->prefix, name);
	CHECK_MSG(e <= TOL, "%s differs from PyTorch: normalised error %.3g", full, e);
}

int main(void)
{
	ae_st st;
	ae_error err = { 0 };
	int rc = ae_st_read_file(&st, "tests/fixtures/parity_conv.safetensors", &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc) return TEST_DONE();
	ae_arch_spec spec;
	ae_arch_defaults(&spec, "conv", NULL);
	ae_model *m = ae_model_new(&spec, 1, &err);
	ae_trainer *tr = ae_trainer_new(m, 8, 1, AE_LOSS_MSE, &err);
	CHECK(m && tr);

	ctx c = { .st = &st, .prefix = "init.", .m = m, .copy = 1 };
	visit_params(m, 1, visit, &c);

	size_t nx;
	const float *x = fget(&st, "x", &nx);
	int n = (int)(nx / 784);
	CHECK(n == 8);

	char pre[32], mpre[32];
	for (int step = 0; step < 3; step++) {
		ae_trainer_zero_grad(tr);
		const float *y = ae_trainer_forward(tr, x, n);
		if (step == 0) {
			double ey = test_rel_err(y, fget(&st, "y", NULL), nx);
			CHECK_MSG(ey <= TOL, "train-mode output differs: %.3g", ey);
			printf("forward max normalised error %.2e\n", ey);
		}
		double loss = ae_trainer_backward(tr, x, x, n);
		snprintf(pre, sizeof pre, "s%d.loss", step);
		CHECK_CLOSE(loss, fget(&st, pre, NULL)[0], TOL);
		snprintf(pre, sizeof pre, "s%d.grad.", step);
		c = (ctx){ .st = &st, .prefix = pre, .m = m, .grads = ae_trainer_grads(tr) };
		visit_params(m, 0, visit, &c);
		ae_trainer_adam(tr, 1e-3f);
		snprintf(pre, sizeof pre, "s%d.after.", step);
		snprintf(mpre, sizeof mpre, "s%d.grad.", step);
		c = (ctx){ .st = &st, .prefix = pre, .mask_prefix = mpre, .m = m };
		visit_params(m, 1, visit, &c);
		printf("step %d: loss %.7f, %ld noise-level gradient elements skipped in the update check\n", step + 1,
		       loss, c.masked);
		c = (ctx){ .st = &st, .prefix = pre, .m = m, .copy = 1 };
		visit_params(m, 1, visit, &c);
	}
	CHECK(m->bn_batches == 3);

	/* Eval mode through the inference plan: BN folded into the epilogues. */
	ae_plan *plan = ae_plan_new(m, &err);
	ae_infer *w = plan ? ae_infer_new(plan, 3, 2, &err) : NULL; /* chunks of 3 on 2 threads */
	CHECK(plan && w);
	if (!w) {
		ae_plan_free(plan);
		return TEST_DONE(); /* nothing below can run without it */
	}
	float *z = calloc((size_t)n * 16, sizeof(float)), *yr = calloc(nx, sizeof(float));
	float *z2 = calloc((size_t)n * 16, sizeof(float));
	ae_infer_reconstruct(w, x, n, yr, z);
	ae_infer_encode(w, x, n, z2);
	double ez = test_rel_err(z, fget(&st, "eval_z", NULL), (size_t)n * 16);
	double eyr = test_rel_err(yr, fget(&st, "eval_y", NULL), nx);
	CHECK_MSG(ez <= TOL, "eval latent differs: %.3g", ez);
	CHECK_MSG(eyr <= TOL, "eval reconstruction differs: %.3g", eyr);
	CHECK(test_rel_err(z2, z, (size_t)n * 16) == 0.0);
	ae_infer_decode(w, z, n, yr);
	CHECK(test_rel_err(yr, fget(&st, "eval_y", NULL), nx) <= TOL);
	printf("eval latent error %.2e, reconstruction error %.2e\n", ez, eyr);

	free(z);
	free(z2);
	free(yr);
	ae_infer_free(w);
	ae_plan_free(plan);
	ae_trainer_free(tr);
	ae_model_free(m);
	ae_st_free(&st);
	return TEST_DONE();
}
