/*
 * Reduced-precision inference (qconv.h, ae_plan_opts.precision) against
 * fp32: each int8 and bf16 layer kind (convolution, transposed
 * convolution, dense; channel counts that are not whole groups or
 * blocks; every epilogue) against the NCHW reference loop within the
 * precision's tolerance, each vector kernel set this CPU runs against
 * the portable kernels (int8 bit for bit, its 256-bit set too, through
 * AVX512-VNNI's encoding where the CPU lacks AVX-VNNI's; bf16 within
 * 1e-6), and whole plans of random models
 * of each preset: every precision against fp32, the CPU's plan against
 * the reference plan, an image's result independent of its batch, and
 * what a plan does when the CPU or the model lacks what a precision
 * needs.
 */
#include "test.h"

#include <math.h>
#include <stdlib.h>

#include "ae/infer.h"
#include "ae/rng.h"
#include "qconv.h"

static ae_rng rng;

/* Per precision: the largest normalised error a layer may have against
 * fp32 (int8: 8-bit inputs and weights; bf16: 8-bit mantissas). */
static double layer_tol(int prec)
{
	return prec == AE_PREC_INT8 ? 0.03 : 0.02;
}

/* The fp32 reference of one layer, NHWC out of NCHW in. */
static void reference(float *y, const float *x_nchw, const float *w, const ae_epilogue *ep, int n,
                      const ae_dconv_shape *s)
{
	size_t ys = (size_t)n * s->oc * s->oh * s->ow;
	float *t = malloc(ys * sizeof(float));
	ae_conv_geom g;
	if (s->transposed) {
		ae_conv_geom_init(&g, s->oc, s->oh, s->ow, s->k, s->stride, s->pad);
		g.oh = s->ih, g.ow = s->iw;
		ae_convt2d_forward_ref(t, x_nchw, w, NULL, n, s->ic, &g);
	} else {
		ae_conv_geom_init(&g, s->ic, s->ih, s->iw, s->k, s->stride, s->pad);
		ae_conv2d_forward_ref(t, x_nchw, w, NULL, n, s->oc, &g);
	}
	ae_epilogue_apply(t, n, s->oc, s->oh * s->ow, ep);
	ae_nchw_to_nhwc(y, t, n, s->oc, s->oh * s->ow);
	free(t);
}

static void check_layer(int n, ae_dconv_shape s, int act, int prec)
{
	if (s.transposed) {
		s.oh = (s.ih - 1) * s.stride - 2 * s.pad + s.k + (s.stride - 1);
		s.ow = (s.iw - 1) * s.stride - 2 * s.pad + s.k + (s.stride - 1);
	} else {
		s.oh = (s.ih + 2 * s.pad - s.k) / s.stride + 1;
		s.ow = (s.iw + 2 * s.pad - s.k) / s.stride + 1;
	}
	const size_t xs = (size_t)n * s.ic * s.ih * s.iw, ys = (size_t)n * s.oc * s.oh * s.ow;
	const size_t ws = (size_t)s.ic * s.oc * s.k * s.k;
	float *x = test_rand_buf(&rng, xs, 1), *w = test_rand_buf(&rng, ws, 0.5f), *xh = malloc(xs * sizeof(float));
	float *b = test_rand_buf(&rng, (size_t)s.oc, 0.5f), *sc = test_rand_buf(&rng, (size_t)s.oc, 1.5f);
	float *sh = test_rand_buf(&rng, (size_t)s.oc, 0.5f);
	/* activations skewed as a LeakyReLU's: most above 0 */
	for (size_t i = 0; i < xs; i++)
		x[i] = x[i] > 0 ? x[i] * 3.0f : x[i] * 0.3f;
	ae_epilogue ep = { .bias = b,
		           .act = act,
		           .slope = 0.2f,
		           .scale = act == AE_ACT_SIGMOID ? NULL : sc,
		           .shift = act == AE_ACT_SIGMOID ? NULL : sh };
	float *want = malloc(ys * sizeof(float)), *y = malloc(ys * sizeof(float)), *ysimd = malloc(ys * sizeof(float));
	const int top = ae_qconv_supported(prec);
	reference(want, x, w, &ep, n, &s);
	ae_nchw_to_nhwc(xh, x, n, s.ic, s.ih * s.iw);
	float lo = INFINITY, hi = -INFINITY;
	for (size_t i = 0; i < xs; i++)
		lo = fminf(lo, x[i]), hi = fmaxf(hi, x[i]);
	const int dense = s.k == 1 && s.ih == 1 && s.iw == 1;
	/* the portable kernels, then each vector set this CPU runs */
	for (int simd = AE_QSIMD_NONE; simd <= top; simd++) {
		ae_qconv q;
		int rc = ae_qconv_init(&q, &s, w, &ep, prec, lo, hi, simd);
		CHECK(rc == 0);
		if (rc) break;
		if (q.simd != simd) { /* bf16 has no 256-bit set */
			ae_qconv_deinit(&q);
			continue;
		}
		void *scratch = malloc(ae_qconv_scratch(&q, n));
		float *out = simd ? ysimd : y;
		if (dense)
			ae_qconv_forward_rows(out, xh, n, &q, scratch);
		else
			ae_qconv_forward(out, xh, n, &q, scratch);
		double e = test_rel_err(out, want, ys);
		CHECK_MSG(e < layer_tol(prec), "%s %s ic%d oc%d %dx%d k%d s%d act%d simd%d: error %g against fp32",
		          ae_precision_name(prec), s.transposed ? "convt" : "conv", s.ic, s.oc, s.ih, s.iw, s.k,
		          s.stride, act, simd, e);
		if (simd && prec == AE_PREC_INT8)
			CHECK_MSG(test_same_bits(ysimd, y, ys),
			          "int8 ic%d oc%d: the CPU's kernels differ from the portable", s.ic, s.oc);
		if (simd && prec == AE_PREC_BF16)
			CHECK_MSG(test_rel_err(ysimd, y, ys) < 1e-6, "bf16 ic%d oc%d: CPU %g from the portable", s.ic,
			          s.oc, test_rel_err(ysimd, y, ys));
		free(scratch);
		ae_qconv_deinit(&q);
	}
	free(x), free(w), free(xh), free(b), free(sc), free(sh), free(want), free(y), free(ysimd);
}

static void test_layers(void)
{
	const ae_dconv_shape shapes[] = {
		{ .ic = 32, .ih = 8, .iw = 8, .oc = 64, .k = 3, .stride = 2, .pad = 1 },
		{ .transposed = 1, .ic = 64, .ih = 5, .iw = 6, .oc = 32, .k = 3, .stride = 2, .pad = 1 },
		{ .ic = 6, .ih = 5, .iw = 7, .oc = 24, .k = 3, .stride = 1, .pad = 1 }, /* part groups and blocks */
		{ .ic = 3, .ih = 9, .iw = 9, .oc = 16, .k = 5, .stride = 2, .pad = 2 },
		{ .transposed = 1, .ic = 17, .ih = 4, .iw = 4, .oc = 48, .k = 3, .stride = 1, .pad = 1 },
		{ .ic = 100, .ih = 1, .iw = 1, .oc = 40, .k = 1, .stride = 1, .pad = 0 }, /* dense */
	};
	for (int prec = AE_PREC_BF16; prec <= AE_PREC_INT8; prec++)
		for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
			for (int act = AE_ACT_NONE; act <= AE_ACT_SIGMOID; act++)
				check_layer(i == 5 ? 19 : 3, shapes[i], act, prec);
}

/* ---- whole plans ---- */

/* n images in [0, 1]: smooth blobs, as digits and photos are, not noise. */
static float *images(int n, int c, int h, int w)
{
	float *x = malloc((size_t)n * c * h * w * sizeof(float));
	for (int i = 0; i < n; i++) {
		float cy = h * ae_rng_uniform(&rng), cx = w * ae_rng_uniform(&rng),
		      r = 2 + h * ae_rng_uniform(&rng) / 3;
		for (int ch = 0; ch < c; ch++)
			for (int y = 0; y < h; y++)
				for (int xx = 0; xx < w; xx++) {
					float d = ((y - cy) * (y - cy) + (xx - cx) * (xx - cx)) / (r * r);
					x[(((size_t)i * c + ch) * h + y) * w + xx] = expf(-d) * (0.6f + 0.4f * ch / c);
				}
	}
	return x;
}

/* Mean cosine of n code pairs. */
static double mean_cosine(const float *a, const float *b, int n, int L)
{
	double s = 0;
	for (int i = 0; i < n; i++) {
		double ab = 0, aa = 0, bb = 0;
		for (int j = 0; j < L; j++) {
			double u = a[(size_t)i * L + j], v = b[(size_t)i * L + j];
			ab += u * v, aa += u * u, bb += v * v;
		}
		s += aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
	}
	return s / n;
}

typedef struct run {
	float *y, *z;
	int prec;
} run;

static run reconstruct(ae_model *m, const float *x, int n, int prec, int reference, int threads)
{
	ae_error err = { 0 };
	ae_plan_opts o = { .precision = prec, .reference = reference };
	ae_plan *p = ae_plan_new_opts(m, &o, &err);
	ae_infer *w = p ? ae_infer_new(p, 16, threads, &err) : NULL;
	CHECK_MSG(w != NULL, "%s", err.msg);
	const size_t per = ae_net_input_size(&m->net);
	run r = { malloc(n * per * sizeof(float)), malloc((size_t)n * m->net.spec.latent * sizeof(float)),
		  p ? ae_plan_precision(p) : -1 };
	if (w) ae_infer_reconstruct(w, x, n, r.y, r.z);
	ae_infer_free(w);
	ae_plan_free(p);
	return r;
}

static void check_model(const char *preset, int c, int h, int w)
{
	ae_arch_spec s;
	ae_arch_defaults(&s, preset, NULL);
	s.c = c, s.h = h, s.w = w;
	ae_error err = { 0 };
	ae_model *m = ae_model_new(&s, 11, &err);
	CHECK(m != NULL);
	if (!m) return;
	const int n = 20, L = s.latent;
	const size_t per = ae_net_input_size(&m->net);
	float *x = images(n, c, h, w);
	/* int8 without activation ranges: a clear refusal */
	ae_plan_opts o8 = { .precision = AE_PREC_INT8 };
	CHECK(ae_plan_new_opts(m, &o8, &err) == NULL);
	CHECK_ERR(-1, err, "aetrain calibrate");
	/* the ranges, observed on the images as aetrain calibrate does */
	ae_plan *p = ae_plan_new(m, &err);
	for (int i = 0; i < AE_MAX_LAYERS; i++)
		m->act_range.lo[i] = INFINITY, m->act_range.hi[i] = -INFINITY;
	CHECK(ae_plan_observe(p, x, n, m->act_range.lo, m->act_range.hi, &err) == 0);
	CHECK(m->act_range.lo[0] >= 0.0f && m->act_range.hi[0] <= 1.0f);
	m->act_range.present = 1;
	ae_plan_free(p);
	run f = reconstruct(m, x, n, AE_PREC_FP32, 0, 2);
	for (int prec = AE_PREC_BF16; prec <= AE_PREC_INT8; prec++) {
		run ref = reconstruct(m, x, n, prec, 1, 1);
		CHECK(ref.prec == prec);
		double ey = test_rel_err(ref.y, f.y, n * per), cz = mean_cosine(ref.z, f.z, n, L);
		CHECK_MSG(ey < 0.02 && cz > 0.995, "%s %dx%dx%d %s: reconstruction error %g, code cosine %g", preset, c,
		          h, w, ae_precision_name(prec), ey, cz);
		run cpu = reconstruct(m, x, n, prec, 0, 2);
		CHECK(cpu.prec == (ae_precision_supported(prec) ? prec : AE_PREC_FP32));
		if (cpu.prec == prec) {
			double d = test_rel_err(cpu.y, ref.y, n * per);
			CHECK_MSG(prec == AE_PREC_INT8 ? test_same_bits(cpu.y, ref.y, n * per) : d < 1e-5,
			          "%s %s: the CPU's plan differs from the reference plan by %g", preset,
			          ae_precision_name(prec), d);
			/* one image alone gives what it gave in a batch of 20 on two lanes */
			run one = reconstruct(m, x + 7 * per, 1, prec, 0, 1);
			CHECK(test_same_bits(one.y, cpu.y + 7 * per, per) && test_same_bits(one.z, cpu.z + 7 * L, L));
			free(one.y), free(one.z);
		} else {
			CHECK(test_same_bits(cpu.y, f.y, n * per)); /* the fp32 plan, exactly */
		}
		free(ref.y), free(ref.z), free(cpu.y), free(cpu.z);
	}
	free(f.y), free(f.z), free(x);
	ae_model_free(m);
}

static void test_names(void)
{
	CHECK(ae_precision_parse("fp32") == AE_PREC_FP32);
	CHECK(ae_precision_parse("bf16") == AE_PREC_BF16);
	CHECK(ae_precision_parse("int8") == AE_PREC_INT8);
	CHECK(ae_precision_parse("auto") == AE_PREC_AUTO);
	CHECK(ae_precision_parse("fp16") == -2);
	CHECK(ae_precision_supported(AE_PREC_FP32));
	ae_plan_opts bad = { .precision = 7 };
	ae_error err = { 0 };
	ae_arch_spec s;
	ae_arch_defaults(&s, "dense", NULL);
	ae_model *m = ae_model_new(&s, 1, &err);
	CHECK(ae_plan_new_opts(m, &bad, &err) == NULL);
	CHECK_ERR(-1, err, "precision");
	/* auto without activation ranges is never int8 */
	CHECK(ae_precision_resolve(m, AE_PREC_AUTO) != AE_PREC_INT8);
	ae_model_free(m);
}

int main(void)
{
	ae_rng_seed(&rng, 42);
	test_names();
	test_layers();
	check_model("conv", 1, 28, 28);
	check_model("conv", 3, 16, 20);
	check_model("dense", 1, 12, 12);
	return TEST_DONE();
}
