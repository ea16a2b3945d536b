/*
 * Inference plans' shapes: what each operation reads and writes per item,
 * for autoencoders and for image-to-image models whose output is another
 * image than their input (other channels, another size). Each pass runs on
 * buffers of exactly the plan's sizes, so under ASan a kernel that reads
 * or writes by its own idea of the model fails here.
 */
#include "test.h"

#include "ae/infer.h"

static int shape_is(ae_shape s, int rank, int d0, int d1, int d2)
{
	return s.rank == rank && s.d[0] == d0 && s.d[1] == d1 && s.d[2] == d2;
}

#define CHECK_SHAPE(s, r_, a_, b_, c_)                                                                                \
	CHECK_MSG(shape_is((s), r_, a_, b_, c_), "%s is rank %d [%d,%d,%d], wanted rank %d [%d,%d,%d]", #s, (s).rank, \
	          (s).d[0], (s).d[1], (s).d[2], r_, a_, b_, c_)

static ae_model *model(const char *preset, int c, int h, int w, int oc, int oh, int ow, int latent)
{
	ae_arch_spec s;
	ae_arch_defaults(&s, preset, NULL);
	s.c = c, s.h = h, s.w = w, s.out_c = oc, s.out_h = oh, s.out_w = ow;
	s.latent = latent, s.f1 = 4, s.f2 = 8, s.hidden = 16;
	ae_error err = { 0 };
	ae_model *m = ae_model_new(&s, 7, &err);
	CHECK_MSG(m != NULL, "%s %dx%dx%d -> %dx%dx%d: %s", preset, c, h, w, oc, oh, ow, err.msg);
	return m;
}

/* Runs every op on n items with buffers of exactly the plan's sizes; a
 * reconstruction must be the decode of the encode, bit for bit. */
static void run_ops(const ae_plan *p, int n)
{
	ae_infer *w = ae_infer_new(p, 4, 2, NULL);
	const size_t in = ae_plan_in_size(p, AE_OP_RECONSTRUCT), out = ae_plan_out_size(p, AE_OP_RECONSTRUCT);
	const size_t code = ae_plan_out_size(p, AE_OP_ENCODE);
	CHECK(ae_plan_in_size(p, AE_OP_ENCODE) == in && ae_plan_in_size(p, AE_OP_DECODE) == code &&
	      ae_plan_out_size(p, AE_OP_DECODE) == out);
	ae_rng r;
	ae_rng_seed(&r, 3);
	float *x = malloc((size_t)n * in * sizeof(float)), *y = malloc((size_t)n * out * sizeof(float));
	float *z = malloc((size_t)n * code * sizeof(float)), *z2 = malloc((size_t)n * code * sizeof(float));
	float *y2 = malloc((size_t)n * out * sizeof(float));
	for (size_t i = 0; i < (size_t)n * in; i++)
		x[i] = ae_rng_uniform(&r);
	ae_infer_reconstruct(w, x, n, y, z);
	ae_infer_encode(w, x, n, z2);
	ae_infer_decode(w, z2, n, y2);
	CHECK(test_same_bits(z, z2, (size_t)n * code));
	CHECK(test_same_bits(y, y2, (size_t)n * out));
	free(x), free(y), free(z), free(z2), free(y2);
	ae_infer_free(w);
}

static void test_autoencoder(void)
{
	ae_model *m = model("conv", 1, 28, 28, 0, 0, 0, 5);
	ae_plan *p = ae_plan_new(m, NULL);
	CHECK_SHAPE(ae_plan_in_shape(p, AE_OP_ENCODE), 3, 1, 28, 28);
	CHECK_SHAPE(ae_plan_out_shape(p, AE_OP_ENCODE), 1, 5, 1, 1);
	CHECK_SHAPE(ae_plan_in_shape(p, AE_OP_DECODE), 1, 5, 1, 1);
	CHECK_SHAPE(ae_plan_out_shape(p, AE_OP_DECODE), 3, 1, 28, 28);
	CHECK_SHAPE(ae_plan_in_shape(p, AE_OP_RECONSTRUCT), 3, 1, 28, 28);
	CHECK_SHAPE(ae_plan_out_shape(p, AE_OP_RECONSTRUCT), 3, 1, 28, 28);
	CHECK(ae_plan_in_size(p, AE_OP_RECONSTRUCT) == 784 && ae_plan_out_size(p, AE_OP_ENCODE) == 5);
	ae_error err = { 0 };
	CHECK(ae_arch_check_autoencoder(&m->net.spec, &err) == AE_OK);
	run_ops(p, 3);
	ae_plan_free(p);
	ae_model_free(m);
}

/* Gray 8x12 in, colour 16x20 out: the conv preset's decoder grows to the
 * output's size and channels; the dense preset's last layer likewise. */
static void test_image_to_image(void)
{
	ae_model *m = model("conv", 1, 8, 12, 3, 16, 20, 7);
	ae_plan *p = ae_plan_new(m, NULL);
	CHECK_SHAPE(ae_plan_in_shape(p, AE_OP_RECONSTRUCT), 3, 1, 8, 12);
	CHECK_SHAPE(ae_plan_out_shape(p, AE_OP_RECONSTRUCT), 3, 3, 16, 20);
	CHECK_SHAPE(ae_plan_out_shape(p, AE_OP_ENCODE), 1, 7, 1, 1);
	CHECK_SHAPE(ae_plan_out_shape(p, AE_OP_DECODE), 3, 3, 16, 20);
	ae_error err = { 0 };
	CHECK_ERR(ae_arch_check_autoencoder(&m->net.spec, &err), err, "gives 3x16x20 images for 1x8x12 ones");
	run_ops(p, 5);
	ae_plan_free(p);
	ae_model_free(m);

	m = model("dense", 3, 4, 6, 1, 10, 8, 9);
	p = ae_plan_new(m, NULL);
	CHECK_SHAPE(ae_plan_in_shape(p, AE_OP_ENCODE), 3, 3, 4, 6);
	CHECK_SHAPE(ae_plan_out_shape(p, AE_OP_RECONSTRUCT), 3, 1, 10, 8);
	CHECK_SHAPE(ae_plan_in_shape(p, AE_OP_DECODE), 1, 9, 1, 1);
	run_ops(p, 2);
	ae_plan_free(p);
	ae_model_free(m);
}

static void test_output_errors(void)
{
	ae_arch_spec s;
	ae_net net;
	ae_error err = { 0 };
	ae_arch_defaults(&s, "conv", NULL);
	s.out_h = 30;
	CHECK_ERR(ae_net_build(&net, &s, &err), err, "output images are 30x28");
	s.out_h = 0, s.out_c = 2;
	CHECK_ERR(ae_net_build(&net, &s, &err), err, "output channels must be 1 or 3, not 2");
	s.out_c = 3;
	CHECK(ae_net_build(&net, &s, &err) == AE_OK && net.spec.out_c == 3 && net.spec.out_h == 28);
	ae_arch_defaults(&s, "dense", NULL);
	s.out_w = 2000;
	CHECK_ERR(ae_net_build(&net, &s, &err), err, "output image size 28x2000 out of range");
}

int main(void)
{
	test_autoencoder();
	test_image_to_image();
	test_output_errors();
	return TEST_DONE();
}
