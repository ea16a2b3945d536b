/*
 * onnxref: what the ONNX test (tests/it_onnx.sh) compares ONNX Runtime
 * with. It makes models of any architecture and writes our engine's
 * answers for a batch of inputs.
 *
 *   onnxref random OUT PRESET C H W LATENT F1 F2 HIDDEN SEED [TRANSFORM]
 *       a model with PyTorch's initialisation from SEED and batch norms
 *       made to matter (scales, shifts and running statistics drawn away
 *       from 1 and 0, as a trained model's are), saved as a model file;
 *       TRANSFORM (ae/transform.h) makes it an image-to-image model
 *   onnxref run MODEL OUTDIR N SEED
 *       N images uniform in [0, 1] drawn from SEED into OUTDIR/x.f32, and
 *       the engine's answers for them: codes z.f32 (encode), images
 *       y.f32 (decode of those codes) and r.f32 (reconstruct), all raw
 *       little-endian float32, row-major, batch first
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae/infer.h"
#include "ae/modelfile.h"
#include "ae/rng.h"

static float uniform(ae_rng *r, float lo, float hi)
{
	return lo + (hi - lo) * ae_rng_uniform(r);
}

static int cmd_random(int argc, char **argv)
{
	if (argc != 11 && argc != 12) {
		fprintf(stderr, "usage: onnxref random OUT PRESET C H W LATENT F1 F2 HIDDEN SEED [TRANSFORM]\n");
		return 2;
	}
	ae_arch_spec spec;
	ae_error err = { 0 };
	if (ae_arch_defaults(&spec, argv[2], &err)) return fprintf(stderr, "onnxref: %s\n", err.msg), 1;
	spec.c = atoi(argv[3]), spec.h = atoi(argv[4]), spec.w = atoi(argv[5]);
	spec.latent = atoi(argv[6]), spec.f1 = atoi(argv[7]), spec.f2 = atoi(argv[8]), spec.hidden = atoi(argv[9]);
	uint64_t seed = strtoull(argv[10], NULL, 10);
	ae_model *m = ae_model_new(&spec, seed, &err);
	if (!m) return fprintf(stderr, "onnxref: %s\n", err.msg), 1;
	if (argc == 12 && (ae_transform_parse(&m->transform, argv[11], &err) ||
	                   ae_transform_check(&m->transform, spec.c, spec.h, spec.w, &err))) {
		fprintf(stderr, "onnxref: %s\n", err.msg);
		ae_model_free(m);
		return 1;
	}
	if (m->transform.kind != AE_TF_NONE) snprintf(m->task, sizeof m->task, "transform");
	ae_rng r;
	ae_rng_seed_stream(&r, seed, 0x626e, 0);
	for (int i = 0; i < m->net.n_layers; i++) {
		const ae_layer *l = &m->net.layers[i];
		if (l->kind != AE_L_BN) continue;
		for (int c = 0; c < l->oc; c++) {
			m->params[l->w + c] = uniform(&r, 0.5f, 1.5f);
			m->params[l->b + c] = uniform(&r, -0.3f, 0.3f);
			m->state[l->rm + c] = uniform(&r, -0.3f, 0.3f);
			m->state[l->rv + c] = uniform(&r, 0.3f, 2.0f);
		}
	}
	snprintf(m->train.dataset, sizeof m->train.dataset, "random (tests/tools/onnxref.c)");
	snprintf(m->train.loss, sizeof m->train.loss, "mse");
	m->n_quant = 2, m->qp[0] = 0.0, m->qp[1] = 1.0, m->qv[0] = 0.01, m->qv[1] = 0.1;
	int rc = ae_model_save(m, argv[1], NULL, 0, NULL, NULL, &err);
	if (rc) fprintf(stderr, "onnxref: %s\n", err.msg);
	ae_model_free(m);
	return rc ? 1 : 0;
}

static int write_raw(const char *dir, const char *name, const float *v, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	int ok = f && fwrite(v, sizeof *v, n, f) == n;
	if (f && fclose(f)) ok = 0;
	if (!ok) fprintf(stderr, "onnxref: cannot write %s\n", path);
	return ok ? 0 : -1;
}

static int cmd_run(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: onnxref run MODEL OUTDIR N SEED\n");
		return 2;
	}
	ae_error err = { 0 };
	int n = atoi(argv[3]);
	ae_model *m = ae_model_load(argv[1], &err);
	ae_plan *p = m ? ae_plan_new(m, &err) : NULL;
	ae_infer *w = p ? ae_infer_new(p, n, 1, &err) : NULL;
	if (!w) {
		fprintf(stderr, "onnxref: %s\n", err.msg);
		ae_plan_free(p);
		ae_model_free(m);
		return 1;
	}
	size_t in = ae_plan_in_size(p, AE_OP_ENCODE), code = ae_plan_out_size(p, AE_OP_ENCODE);
	float *x = malloc((size_t)n * in * sizeof *x), *z = malloc((size_t)n * code * sizeof *z);
	float *y = malloc((size_t)n * in * sizeof *y), *rec = malloc((size_t)n * in * sizeof *rec);
	int rc = x && z && y && rec ? 0 : 1;
	if (rc == 0) {
		ae_rng r;
		ae_rng_seed(&r, strtoull(argv[4], NULL, 10));
		for (size_t i = 0; i < (size_t)n * in; i++)
			x[i] = ae_rng_uniform(&r);
		ae_infer_encode(w, x, n, z);
		ae_infer_decode(w, z, n, y);
		ae_infer_reconstruct(w, x, n, rec, NULL);
		rc = write_raw(argv[2], "x.f32", x, (size_t)n * in) ||
		     write_raw(argv[2], "z.f32", z, (size_t)n * code) ||
		     write_raw(argv[2], "y.f32", y, (size_t)n * in) || write_raw(argv[2], "r.f32", rec, (size_t)n * in);
	}
	free(x), free(z), free(y), free(rec);
	ae_infer_free(w);
	ae_plan_free(p);
	ae_model_free(m);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "random") == 0) return cmd_random(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_run(argc - 1, argv + 1);
	fprintf(stderr, "usage: onnxref random|run ...\n");
	return 2;
}
