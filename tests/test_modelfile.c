/*
 * Model files: a save/load round trip keeps every tensor and fact, the
 * write is atomic, and each way a file can be truncated, corrupted or
 * inconsistent is refused with a message that names the problem.
 */
#define _GNU_SOURCE /* memmem */
#include "test.h"

#include "ae/rng.h"
#include "ae/codes.h"
#include "ae/scores.h"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include "ae/fileio.h"
#include "ae/modelfile.h"

#define PATH "build-test-model.safetensors"

static ae_model *small_model(void)
{
	ae_arch_spec s;
	ae_arch_defaults(&s, "conv", NULL);
	s.f1 = 4, s.f2 = 8, s.latent = 3;
	ae_model *m = ae_model_new(&s, 42, NULL);
	snprintf(m->task, sizeof m->task, "denoise");
	ae_noise_parse(&m->noise, "gaussian:0.5:0.5", NULL);
	snprintf(m->train.dataset, sizeof m->train.dataset, "data/mnist");
	m->train.epochs = 3;
	m->n_quant = 3;
	m->qp[0] = 0, m->qp[1] = 0.5, m->qp[2] = 1;
	m->qv[0] = 0.01, m->qv[1] = 0.02, m->qv[2] = 0.05;
	m->bn_batches = 17;
	return m;
}

static uint8_t *file_bytes(size_t *len)
{
	uint8_t *b;
	ae_read_file(PATH, 1 << 26, &b, len, NULL);
	return b;
}

static void put_bytes(const uint8_t *b, size_t len)
{
	FILE *f = fopen(PATH, "wb");
	fwrite(b, 1, len, f);
	fclose(f);
}

/* Loads PATH and checks the load fails with msg in the message. */
static void expect_refused(const char *what, const char *msg)
{
	ae_error err = { 0 };
	ae_model *m = ae_model_load(PATH, &err);
	CHECK_MSG(m == NULL && strstr(err.msg, msg) != NULL, "%s: got '%s', wanted '%s'", what,
	          m ? "(loaded)" : err.msg, msg);
	ae_model_free(m);
}

/* Rewrites the JSON header (keeping the data) with one substitution. */
static void patch_header(const uint8_t *orig, size_t len, const char *from, const char *to)
{
	uint64_t hl = 0;
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | orig[i];
	char *h = malloc(hl + 1);
	memcpy(h, orig + 8, hl);
	h[hl] = 0;
	char *at = strstr(h, from);
	CHECK_MSG(at != NULL, "header lacks '%s'", from);
	if (!at) {
		free(h);
		return;
	}
	size_t nl = hl - strlen(from) + strlen(to);
	uint8_t *out = malloc(8 + nl + (len - 8 - hl));
	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(nl >> (8 * i));
	size_t pre = (size_t)(at - h);
	/* A file's bytes, not a C string: no terminator is wanted. */
	// NOLINTBEGIN(bugprone-not-null-terminated-result)
	memcpy(out + 8, h, pre);
	memcpy(out + 8 + pre, to, strlen(to));
	memcpy(out + 8 + pre + strlen(to), at + strlen(from), hl - pre - strlen(from));
	// NOLINTEND(bugprone-not-null-terminated-result)
	memcpy(out + 8 + nl, orig + 8 + hl, len - 8 - hl);
	put_bytes(out, 8 + nl + (len - 8 - hl));
	free(out);
	free(h);
}

static void test_roundtrip(void)
{
	ae_model *m = small_model();
	ae_error err = { 0 };
	CHECK(ae_model_save(m, PATH, NULL, 0, NULL, NULL, &err) == 0);
	ae_model *l = ae_model_load(PATH, &err);
	CHECK_MSG(l != NULL, "%s", err.msg);
	if (l) {
		CHECK(l->net.n_params == m->net.n_params);
		CHECK(memcmp(l->params, m->params, m->net.n_params * 4) == 0);
		CHECK(memcmp(l->state, m->state, m->net.n_state * 4) == 0);
		CHECK(strcmp(l->task, "denoise") == 0);
		CHECK(l->noise.kind == AE_NOISE_GAUSSIAN && l->noise.a == 0.5f);
		CHECK(l->bn_batches == 17);
		CHECK(l->n_quant == 3 && l->qv[1] == 0.02);
		CHECK(strcmp(l->checksum, m->checksum) == 0);
		CHECK(strcmp(l->train.dataset, "data/mnist") == 0 && l->train.epochs == 3);
		CHECK_CLOSE(ae_model_percentile(l, 0.035), 75.0, 1e-9);
		CHECK_CLOSE(ae_model_quantile(l, 0.75), 0.035, 1e-9);
	}
	ae_model_free(l);
	/* atomic: no temporary left beside the file */
	DIR *d = opendir(".");
	struct dirent *e;
	int tmp = 0;
	while ((e = readdir(d)))
		tmp += strncmp(e->d_name, PATH ".tmp", strlen(PATH ".tmp")) == 0;
	closedir(d);
	CHECK(tmp == 0);
	/* an unwritable destination fails cleanly */
	int rc = ae_model_save(m, "/nonexistent-dir/x.safetensors", NULL, 0, NULL, NULL, &err);
	CHECK_ERR(rc, err, "/nonexistent-dir/x.safetensors");
	ae_model_free(m);
}

/* An image-to-image model's output shape survives the file; an
 * autoencoder's file names none; a bad one is refused by name. */
static void test_output_shape(void)
{
	ae_model *m = small_model();
	ae_error err = { 0 };
	size_t len;
	CHECK(ae_model_save(m, PATH, NULL, 0, NULL, NULL, &err) == 0);
	uint8_t *b = file_bytes(&len);
	CHECK(b && !memmem(b, len, "\\\"output\\\"", 10));
	free(b);
	ae_model_free(m);

	ae_arch_spec s;
	ae_arch_defaults(&s, "conv", NULL);
	s.h = 8, s.w = 12, s.out_c = 3, s.out_h = 16, s.out_w = 20, s.f1 = 4, s.f2 = 8, s.latent = 3;
	m = ae_model_new(&s, 5, &err);
	m->n_quant = 2, m->qp[1] = 1, m->qv[0] = 0.01, m->qv[1] = 0.1;
	CHECK(ae_model_save(m, PATH, NULL, 0, NULL, NULL, &err) == 0);
	ae_model *l = ae_model_load(PATH, &err);
	CHECK_MSG(l != NULL, "%s", err.msg);
	if (l) {
		const ae_arch_spec *ls = &l->net.spec;
		CHECK(ls->c == 1 && ls->h == 8 && ls->w == 12 && ls->out_c == 3 && ls->out_h == 16 && ls->out_w == 20);
		CHECK(memcmp(l->params, m->params, m->net.n_params * 4) == 0);
	}
	ae_model_free(l);
	b = file_bytes(&len);
	patch_header(b, len, "\\\"output\\\":[3,16,20]", "\\\"output\\\":[3,16]");
	expect_refused("output of two", "'output' is not [C,H,W]");
	patch_header(b, len, "\\\"output\\\":[3,16,20]", "\\\"output\\\":[3,16,22]");
	expect_refused("output not a multiple of 4", "output images are 16x22");
	free(b);
	ae_model_free(m);
}

static void test_refusals(void)
{
	ae_model *m = small_model();
	ae_model_save(m, PATH, NULL, 0, NULL, NULL, NULL);
	size_t len;
	uint8_t *orig = file_bytes(&len);

	put_bytes(orig, 5);
	expect_refused("5 bytes", "too short");
	put_bytes(orig, 200);
	expect_refused("cut inside the header", "runs past the end of the file");
	put_bytes(orig, len - 10);
	expect_refused("cut inside the data", "truncated");
	uint8_t *c = malloc(len);
	memcpy(c, orig, len);
	c[7] = 0x40;
	put_bytes(c, len);
	expect_refused("absurd header length", "over the");
	memcpy(c, orig, len);
	c[len - 3] ^= 0x55;
	put_bytes(c, len);
	expect_refused("flipped data byte", "checksum mismatch");
	memcpy(c, orig, len);
	c[8] = '[';
	put_bytes(c, len);
	expect_refused("broken JSON", "not valid JSON");

	patch_header(orig, len, "\"F32\"", "\"F16\"");
	expect_refused("unknown dtype", "unsupported dtype F16");
	patch_header(orig, len, "\"ae.format\":\"2\"", "\"ae.format\":\"9\"");
	expect_refused("future format", "format version '9'");
	patch_header(orig, len, "\"ae.task\":\"denoise\"", "\"ae.task\":\"dance\"");
	expect_refused("bad task", "ae.task 'dance'");
	/* the message names the bad value once, not formatted into itself */
	patch_header(orig, len, "\"ae.noise\":\"gaussian:0.5:0.5\"", "\"ae.noise\":\"gauss:1\"");
	expect_refused("bad noise",
	               "ae.noise: bad corruption 'gauss:1' (expected none, gaussian:MEAN:STD or saltpepper:P)");
	patch_header(orig, len, "\"ae.latent\":\"3\"", "\"ae.latent\":\"4\"");
	expect_refused("latent disagrees", "ae.latent 4 disagrees");
	patch_header(orig, len, "\"ae.checksum\"", "\"ae.chekcsum\"");
	expect_refused("missing metadata", "metadata 'ae.checksum' is missing");
	patch_header(orig, len, "encoder.0.weight", "encoder.0.wieght");
	expect_refused("renamed tensor", "tensor 'encoder.0.weight' is missing");
	patch_header(orig, len, "\"shape\":[4,1,3,3]", "\"shape\":[4,1,9,1]");
	expect_refused("wrong shape", "has shape [4,1,9,1], the architecture needs [4,1,3,3]");
	patch_header(orig, len, "\"shape\":[4,1,3,3]", "\"shape\":[4,1,3,4]");
	expect_refused("shape vs bytes", "bytes for a shape that needs");
	patch_header(orig, len, "\"data_offsets\":[144,160]", "\"data_offsets\":[136,152]");
	expect_refused("overlap", "overlaps");
	patch_header(orig, len, "\"data_offsets\":[144,160]", "\"data_offsets\":[148,164]");
	expect_refused("hole", "hole of 4 bytes");
	/* an architecture the file's bytes cannot fill is refused before it is
	 * allocated (1024 filters: 28.7 million parameters, 115 MB) */
	patch_header(orig, len, "\\\"filters\\\":[4,8]", "\\\"filters\\\":[1024,1024]");
	expect_refused("architecture larger than the file", "ae.arch needs 28693508 parameters");
	free(c);
	free(orig);

	/* a NaN in a weight, with a checksum that matches it */
	m->params[3] = NAN;
	ae_model_save(m, PATH, NULL, 0, NULL, NULL, NULL);
	expect_refused("NaN weight", "NaN or Inf");
	m->params[3] = 0;
	/* a tensor the architecture does not have */
	float extra[2] = { 1, 2 };
	ae_extra_tensor ex = {
		.name = "decoder.99.weight", .dtype = AE_DT_F32, .ndim = 1, .shape = { 2 }, .data = extra
	};
	ae_model_save(m, PATH, &ex, 1, NULL, NULL, NULL);
	expect_refused("extra tensor", "unexpected tensor 'decoder.99.weight'");
	unlink(PATH);
	expect_refused("missing file", "cannot open");
	ae_model_free(m);
}

/* Files written before the checksum covered the metadata still load. */
static void test_format_1(void)
{
	ae_error err = { 0 };
	ae_model *m = ae_model_load("models/mnist.safetensors", &err);
	CHECK_MSG(m != NULL, "%s", err.msg);
	ae_model_free(m);
}

/* Score calibrations and the latent Gaussian survive a save and a load. */
static void test_scores(void)
{
	ae_model *m = small_model();
	ae_error err = { 0 };
	const int L = m->net.spec.latent, n = 200;
	double v[200];
	float *z = malloc((size_t)n * L * sizeof *z);
	ae_rng r;
	ae_rng_seed(&r, 3);
	for (int i = 0; i < n; i++)
		v[i] = 0.01 + 0.001 * ae_rng_uniform(&r);
	for (int i = 0; i < n * L; i++)
		z[i] = ae_rng_normal(&r) * (1.0f + (float)(i % L));
	CHECK(ae_score_calibrate(&m->cal[AE_SCORE_MSE], v, n, &err) == 0);
	CHECK(ae_score_calibrate(&m->cal[AE_SCORE_SSIM], v, n, &err) == 0);
	m->latent_mean = malloc((size_t)L * sizeof(double));
	m->latent_prec = malloc((size_t)L * L * sizeof(double));
	CHECK(ae_latent_fit(z, n, L, m->latent_mean, m->latent_prec, &err) == 0);
	CHECK(ae_score_calibrate(&m->cal[AE_SCORE_LATENT], v, n, &err) == 0);
	m->code_scale = malloc((size_t)L * sizeof(float));
	ae_codes_int8_scale(z, n, L, m->code_scale);
	m->default_score = AE_SCORE_SSIM;
	CHECK(ae_model_save(m, PATH, NULL, 0, NULL, NULL, &err) == 0);
	ae_model *l = ae_model_load(PATH, &err);
	CHECK_MSG(l != NULL, "%s", err.msg);
	if (l) {
		CHECK(l->default_score == AE_SCORE_SSIM && l->cal[AE_SCORE_SSIM].present &&
		      !l->cal[AE_SCORE_MAX].present);
		CHECK(fabs(ae_score_quantile(&l->cal[AE_SCORE_SSIM], 0.99) -
		           ae_score_quantile(&m->cal[AE_SCORE_SSIM], 0.99)) <
		      1e-9 * ae_score_quantile(&m->cal[AE_SCORE_SSIM], 0.99));
		CHECK(fabs(l->cal[AE_SCORE_MSE].std - m->cal[AE_SCORE_MSE].std) < 1e-9 * m->cal[AE_SCORE_MSE].std);
		double d1, d2;
		ae_latent_distance(m->latent_mean, m->latent_prec, L, z, 1, &d1);
		ae_latent_distance(l->latent_mean, l->latent_prec, L, z, 1, &d2);
		CHECK_MSG(fabs(d1 - d2) < 1e-6 * d1, "%g vs %g", d1, d2);
		/* the int8 codes' scale, exactly (it is written with 10 digits) */
		int same = l->code_scale != NULL;
		for (int i = 0; same && i < L; i++)
			same = l->code_scale[i] == m->code_scale[i];
		CHECK(same);
	}
	ae_model_free(l);
	ae_model_free(m);
	free(z);
}

/* Activation ranges and each precision's calibration survive a save and
 * a load; ae_model_use_precision switches the thresholds; a model file
 * without them still loads; bad ones are refused. */
static void test_precision(void)
{
	ae_model *m = small_model();
	ae_error err = { 0 };
	double v[100], v8[100];
	for (int i = 0; i < 100; i++)
		v[i] = 0.01 + 0.0001 * i, v8[i] = 0.02 + 0.0001 * i;
	CHECK(ae_score_calibrate(&m->cal[AE_SCORE_MSE], v, 100, &err) == 0);
	CHECK(ae_score_calibrate(&m->prec_cal[AE_PREC_INT8][AE_SCORE_MSE], v8, 100, &err) == 0);
	for (int i = 0; i < AE_MAX_LAYERS; i++)
		m->act_range.lo[i] = INFINITY, m->act_range.hi[i] = -INFINITY;
	m->act_range.lo[0] = 0.0f, m->act_range.hi[0] = 1.0f;
	m->act_range.lo[3] = -1.25f, m->act_range.hi[3] = 7.5f;
	m->act_range.present = 1, m->act_range.images = 100;
	CHECK(ae_model_save(m, PATH, NULL, 0, NULL, NULL, &err) == 0);
	ae_model *l = ae_model_load(PATH, &err);
	CHECK_MSG(l != NULL, "%s", err.msg);
	if (l) {
		CHECK(l->act_range.present && l->act_range.images == 100);
		CHECK(l->act_range.lo[3] == -1.25f && l->act_range.hi[3] == 7.5f && l->act_range.hi[0] == 1.0f);
		CHECK(l->act_range.lo[1] > l->act_range.hi[1]); /* an activation: no range */
		CHECK(!l->prec_cal[AE_PREC_BF16][AE_SCORE_MSE].present);
		double q32 = ae_model_quantile(l, 0.99);
		CHECK(ae_model_use_precision(l, AE_PREC_BF16) == 0 && ae_model_quantile(l, 0.99) == q32);
		CHECK(ae_model_use_precision(l, AE_PREC_INT8) == 1);
		CHECK_CLOSE(ae_model_quantile(l, 0.99),
		            ae_score_quantile(&m->prec_cal[AE_PREC_INT8][AE_SCORE_MSE], 0.99), 1e-9);
		CHECK(ae_model_quantile(l, 0.99) != q32);
	}
	ae_model_free(l);
	size_t len;
	uint8_t *b = file_bytes(&len);
	patch_header(b, len, "[-1.25,7.5]", "[7.5,-1.25]");
	expect_refused("range lo > hi", "ae.precision range 'encoder.3'");
	patch_header(b, len, "encoder.3\\\":[-1.25", "encoder.9\\\":[-1.25");
	expect_refused("range of no layer", "ae.precision range 'encoder.9'");
	free(b);
	ae_model_free(m);
}

int main(void)
{
	test_precision();
	test_scores();
	test_format_1();
	test_roundtrip();
	test_output_shape();
	test_refusals();
	unlink(PATH);
	return TEST_DONE();
}
