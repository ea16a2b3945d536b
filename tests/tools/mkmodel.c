/*
 * mkmodel: model files and images of whatever shape a test needs, without
 * training (aetrain makes autoencoders of its data's shape only).
 *
 *   mkmodel model OUT PRESET CxHxW OCxOHxOW LATENT
 *       an untrained model (PyTorch's initialisation, seed 1; filters 4, 8;
 *       hidden 32) that takes CxHxW images and gives OCxOHxOW ones, with a
 *       held-out error table so that anomaly thresholds exist
 *   mkmodel png OUT CxHxW
 *       a PNG of C channels (1 or 3), H rows, W columns: a gradient
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae/image.h"
#include "ae/modelfile.h"

static int shape(const char *s, int *c, int *h, int *w)
{
	return sscanf(s, "%dx%dx%d", c, h, w) == 3 ? 0 : -1;
}

static int cmd_model(char **argv)
{
	ae_arch_spec s;
	ae_error err = { 0 };
	if (ae_arch_defaults(&s, argv[1], &err) || shape(argv[2], &s.c, &s.h, &s.w) ||
	    shape(argv[3], &s.out_c, &s.out_h, &s.out_w)) {
		fprintf(stderr, "mkmodel: bad preset or shape: %s\n", err.msg);
		return 2;
	}
	s.latent = atoi(argv[4]);
	s.f1 = 4, s.f2 = 8, s.hidden = 32;
	ae_model *m = ae_model_new(&s, 1, &err);
	if (!m) {
		fprintf(stderr, "mkmodel: %s\n", err.msg);
		return 1;
	}
	snprintf(m->task, sizeof m->task, "reconstruct");
	snprintf(m->train.dataset, sizeof m->train.dataset, "none (mkmodel)");
	m->n_quant = 3;
	m->qp[0] = 0.0, m->qp[1] = 0.5, m->qp[2] = 1.0;
	m->qv[0] = 0.0, m->qv[1] = 0.05, m->qv[2] = 0.5;
	int rc = ae_model_save(m, argv[0], NULL, 0, NULL, NULL, &err);
	if (rc) fprintf(stderr, "mkmodel: %s\n", err.msg);
	ae_model_free(m);
	return rc ? 1 : 0;
}

static int cmd_png(char **argv)
{
	int c, h, w;
	if (shape(argv[1], &c, &h, &w) || (c != 1 && c != 3) || h < 1 || w < 1 || h > 4096 || w > 4096) {
		fprintf(stderr, "mkmodel png: CxHxW with C 1 or 3\n");
		return 2;
	}
	uint8_t *pix = malloc((size_t)c * h * w);
	for (int k = 0; k < c; k++)
		for (int y = 0; y < h; y++)
			for (int x = 0; x < w; x++)
				pix[((size_t)k * h + y) * w + x] = (uint8_t)((x * 255 / w + y * 97 / h + k * 60) % 256);
	ae_error err = { 0 };
	int rc = pix ? ae_png_write_file(argv[0], pix, c, h, w, &err) : -1;
	if (rc) fprintf(stderr, "mkmodel png: %s\n", err.msg);
	free(pix);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 7 && strcmp(argv[1], "model") == 0) return cmd_model(argv + 2);
	if (argc == 4 && strcmp(argv[1], "png") == 0) return cmd_png(argv + 2);
	fprintf(stderr, "usage: mkmodel model OUT PRESET CxHxW OCxOHxOW LATENT | png OUT CxHxW\n");
	return 2;
}
