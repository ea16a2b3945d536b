/*
 * Progress display, loss CSV and reconstruction grid.
 */
#include "report.h"
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ae/fileio.h"
#include "ae/image.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int shown;

void report_progress(int epoch, int epochs, int batch, int batches, double loss, double img_per_s, double eta_s)
{
	static double last;
	double t = now_s();
	if (!isatty(STDERR_FILENO) || (t - last < 0.1 && batch != batches)) return;
	last = t;
	char bar[31];
	int fill = batches ? (int)(30L * batch / batches) : 30;
	for (int i = 0; i < 30; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[30] = '\0';
	long eta = (long)(eta_s + 0.5);
	fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %d/%d loss %.5f %.0f img/s ETA %ld:%02ld", epoch, epochs, bar, batch,
	        batches, loss, img_per_s, eta / 60, eta % 60);
	shown = 1;
}

void report_progress_end(void)
{
	if (shown) fputs("\r\033[K", stderr);
	shown = 0;
}

int report_csv(const char *path, const epoch_row *rows, int n)
{
	ae_atomic_file af;
	ae_error err = { 0 };
	if (ae_atomic_open(&af, path, &err) == AE_OK) {
		fprintf(af.fp, "epoch,train_loss,val_loss,seconds\n");
		for (int i = 0; i < n; i++)
			fprintf(af.fp, "%d,%.7f,%.7f,%.3f\n", rows[i].epoch, rows[i].train_loss, rows[i].val_loss,
			        rows[i].seconds);
		if (ae_atomic_commit(&af, &err) == AE_OK) return 0;
	}
	fprintf(stderr, "aetrain: %s\n", err.msg);
	return -1;
}

int report_grid(const char *path, ae_infer *w, const ae_dataset *ds, const int *idx, int n, const ae_noise *noise,
                const ae_transform *tf, uint64_t seed)
{
	const int c = ds->c, h = ds->h, wd = ds->w, gap = 2;
	const size_t per = (size_t)c * h * wd;
	const int rows = noise->kind != AE_NOISE_NONE || tf->kind != AE_TF_NONE ? 3 : 2;
	const int H = rows * h + (rows - 1) * gap, W = n * wd + (n - 1) * gap;
	float *clean = malloc((size_t)n * per * sizeof(float));
	float *in = malloc((size_t)n * per * sizeof(float));
	float *out = malloc((size_t)n * per * sizeof(float));
	uint8_t *img = malloc((size_t)c * H * W), *u8 = malloc(per);
	int rc = -1;
	if (clean && in && out && img && u8) {
		cli_batch(ds, idx, n, clean, in, noise, tf, seed, 0x67726964, 0);
		ae_infer_reconstruct(w, in, n, out, NULL);
		memset(img, 128, (size_t)c * H * W);
		const float *src[3] = { clean, in, out };
		if (rows == 2) src[1] = out;
		for (int row = 0; row < rows; row++)
			for (int i = 0; i < n; i++) {
				ae_float_to_u8(u8, src[row] + (size_t)i * per, per);
				for (int ch = 0; ch < c; ch++)
					for (int y = 0; y < h; y++)
						memcpy(img + ((size_t)ch * H + row * (h + gap) + y) * W +
						               i * (wd + gap),
						       u8 + ((size_t)ch * h + y) * wd, (size_t)wd);
			}
		ae_error err = { 0 };
		rc = ae_png_write_file(path, img, c, H, W, &err);
		if (rc) fprintf(stderr, "aetrain: %s\n", err.msg);
	}
	free(clean);
	free(in);
	free(out);
	free(img);
	free(u8);
	return rc;
}
