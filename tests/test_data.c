/*
 * Data sets: IDX files raw and gzip, with labels; PNG folders of any colour
 * type normalised to the model's channels, with subfolders as classes; and
 * each kind of bad data refused with a message naming the file and the
 * problem. Also the corruption and statistics helpers.
 */
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ae/dataset.h"
#include "ae/idx.h"
#include "ae/stats.h"
#include "ae/noise.h"
#include "ae/fileio.h"

#define TMP "build-test-data"

static void write_bytes(const char *path, const void *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	fwrite(b, 1, n, f);
	fclose(f);
}

static void write_gz(const char *path, const void *b, size_t n)
{
	gzFile g = gzopen(path, "wb");
	gzwrite(g, b, (unsigned)n);
	gzclose(g);
}

static void copy_file(const char *from, const char *to)
{
	uint8_t *b;
	size_t n;
	if (ae_read_file(from, 1 << 20, &b, &n, NULL) == 0) {
		write_bytes(to, b, n);
		free(b);
	}
}

static void expect_load_error(const char *path, const char *split, const char *msg)
{
	ae_dataset ds;
	ae_error err = { 0 };
	int rc = ae_dataset_load(&ds, path, split, 1, &err);
	CHECK_MSG(rc < 0 && strstr(err.msg, msg) && strstr(err.msg, path), "%s: '%s' lacks '%s' or the file name", path,
	          err.msg, msg);
	if (rc == 0) ae_dataset_free(&ds);
}

static void test_idx(void)
{
	enum { N = 5, H = 4, W = 6 };
	uint8_t img[N * H * W], lab[N] = { 3, 1, 4, 1, 5 };
	for (int i = 0; i < N * H * W; i++)
		img[i] = (uint8_t)(i * 7);
	int dims[3] = { N, H, W };
	ae_error err = { 0 };
	CHECK(ae_idx_write(TMP "/train-images-idx3-ubyte", img, 3, dims, &err) == 0);
	CHECK(ae_idx_write(TMP "/train-labels-idx1-ubyte", lab, 1, dims, &err) == 0);
	ae_dataset ds;
	CHECK(ae_dataset_load(&ds, TMP, "train", 1, &err) == 0);
	CHECK(ds.n == N && ds.h == H && ds.w == W && ds.c == 1);
	CHECK(memcmp(ds.pix, img, sizeof img) == 0);
	CHECK(ds.labels && ds.labels[2] == 4 && ds.n_classes == 6);
	float b[2 * H * W];
	ae_dataset_batch(&ds, (int[]){ 1, 0 }, 2, b);
	CHECK_CLOSE(b[0], img[H * W] / 255.0, 1e-7);
	ae_dataset_free(&ds);
	/* three channels: replicated gray */
	CHECK(ae_dataset_load(&ds, TMP "/train-images-idx3-ubyte", NULL, 3, &err) == 0);
	CHECK(ds.c == 3 && ds.pix[H * W + 5] == img[5] && ds.pix[2 * H * W + 5] == img[5]);
	ae_dataset_free(&ds);

	/* gzip, with the test split's name */
	uint8_t raw[16 + N * H * W];
	memcpy(raw, (uint8_t[]){ 0, 0, 8, 3, 0, 0, 0, N, 0, 0, 0, H, 0, 0, 0, W }, 16);
	memcpy(raw + 16, img, sizeof img);
	write_gz(TMP "/t10k-images-idx3-ubyte.gz", raw, sizeof raw);
	CHECK(ae_dataset_load(&ds, TMP, "test", 1, &err) == 0 && ds.n == N && memcmp(ds.pix, img, sizeof img) == 0);
	ae_dataset_free(&ds);

	/* bad files */
	write_bytes(TMP "/bad-images-idx3-ubyte", raw, sizeof raw - 7);
	expect_load_error(TMP "/bad-images-idx3-ubyte", NULL, "truncated");
	write_gz(TMP "/badgz-images-idx3-ubyte.gz", raw, sizeof raw - 1);
	expect_load_error(TMP "/badgz-images-idx3-ubyte.gz", NULL, "truncated");
	uint8_t wrong[sizeof raw];
	memcpy(wrong, raw, sizeof raw);
	wrong[2] = 0x0d; /* float data */
	write_bytes(TMP "/magic-images-idx3-ubyte", wrong, sizeof wrong);
	expect_load_error(TMP "/magic-images-idx3-ubyte", NULL, "bad magic");
	write_bytes(TMP "/long-images-idx3-ubyte", raw, sizeof raw);
	FILE *f = fopen(TMP "/long-images-idx3-ubyte", "ab");
	fputs("junk", f);
	fclose(f);
	expect_load_error(TMP "/long-images-idx3-ubyte", NULL, "data continues past");
	write_bytes(TMP "/two-images-idx3-ubyte", raw, sizeof raw);
	dims[0] = N - 1;
	ae_idx_write(TMP "/two-labels-idx1-ubyte", lab, 1, dims, &err);
	ae_dataset_load(&ds, TMP "/two-images-idx3-ubyte", NULL, 1, &err);
	CHECK_MSG(strstr(err.msg, "4 labels disagree with 5 images") != NULL, "%s", err.msg);
	expect_load_error(TMP "/missing-images-idx3-ubyte", NULL, "No such file");
}

static void test_png_dir(void)
{
	mkdir(TMP "/png", 0755);
	mkdir(TMP "/png/a", 0755);
	mkdir(TMP "/png/b", 0755);
	/* 32x32 files of four colour types and depths */
	copy_file("tests/fixtures/pngsuite/basn0g16.png", TMP "/png/a/1.png");
	copy_file("tests/fixtures/pngsuite/basn3p08.png", TMP "/png/a/2.png");
	copy_file("tests/fixtures/pngsuite/basn6a08.png", TMP "/png/b/1.png");
	copy_file("tests/fixtures/pngsuite/basn2c16.png", TMP "/png/b/2.png");
	ae_dataset ds;
	ae_error err = { 0 };
	int rc = ae_dataset_load(&ds, TMP "/png", NULL, 3, &err);
	CHECK_MSG(rc == 0, "%s", err.msg);
	if (rc == 0) {
		CHECK(ds.n == 4 && ds.c == 3 && ds.h == 32 && ds.w == 32);
		CHECK(ds.labels && ds.labels[0] == 0 && ds.labels[3] == 1 && ds.n_classes == 2);
		ae_dataset_free(&ds);
	}
	copy_file("tests/fixtures/pngsuite/s09n3p02.png", TMP "/png/b/3.png");
	rc = ae_dataset_load(&ds, TMP "/png", NULL, 1, &err);
	CHECK_ERR(rc, err, "image is 9x9, the first image");
	CHECK_ERR(rc, err, "b/3.png");
	unlink(TMP "/png/b/3.png");
	copy_file("tests/fixtures/pngsuite/xcsn0g01.png", TMP "/png/b/3.png");
	rc = ae_dataset_load(&ds, TMP "/png", NULL, 1, &err);
	CHECK_ERR(rc, err, "b/3.png: invalid PNG");
	unlink(TMP "/png/b/3.png");
	mkdir(TMP "/empty", 0755);
	expect_load_error(TMP "/empty", NULL, "no PNG files");
}

static void test_stats(void)
{
	double v[5] = { 5, 1, 4, 2, 3 }, q[3] = { 0, 0.5, 0.9 }, out[3];
	CHECK(ae_quantiles(v, 5, q, 3, out, NULL) == 0);
	CHECK_CLOSE(out[0], 1, 1e-12);
	CHECK_CLOSE(out[1], 3, 1e-12);
	CHECK_CLOSE(out[2], 4.6, 1e-12);
	double s[4] = { 0.1, 0.4, 0.35, 0.8 };
	int pos[4] = { 0, 0, 1, 1 };
	CHECK_CLOSE(ae_auroc(s, pos, 4), 0.75, 1e-12);
	int pos2[4] = { 0, 1, 0, 1 };
	CHECK_CLOSE(ae_auroc(s, pos2, 4), 1.0, 1e-12);

	/* gaussian:0.5:0.5 on black images: clipped values, mean near E[clip(N(.5,.5))] */
	enum { M = 100000 };
	float *x = calloc(M, sizeof(float));
	ae_noise nz;
	ae_noise_parse(&nz, "gaussian:0.5:0.5", NULL);
	ae_rng r;
	ae_rng_seed(&r, 9);
	ae_noise_apply(&nz, x, M, &r);
	double mean = 0;
	int in_range = 1;
	for (int i = 0; i < M; i++) {
		mean += x[i];
		in_range &= x[i] >= 0.0f && x[i] <= 1.0f;
	}
	CHECK(in_range);
	CHECK_CLOSE(mean / M, 0.5, 0.01);
	memset(x, 0, M * sizeof(float));
	ae_noise_parse(&nz, "saltpepper:0.2", NULL);
	ae_noise_apply(&nz, x, M, &r);
	int ones = 0;
	for (int i = 0; i < M; i++)
		ones += x[i] == 1.0f;
	CHECK_CLOSE(ones / (double)M, 0.1, 0.01);
	free(x);
	ae_error err = { 0 };
	CHECK_ERR(ae_noise_parse(&nz, "gaussian:0.5", &err), err, "bad corruption 'gaussian:0.5'");
	CHECK_ERR(ae_noise_parse(&nz, "saltpepper:1.5", &err), err, "probability must be in [0, 1]");
	CHECK_ERR(ae_noise_parse(&nz, "gaussian:0:-1", &err), err, "0 <= STD");
}

/* A labelled set of n 1x1 images whose pixel is their index. */
static void labelled(ae_dataset *ds, int n, const int16_t *labels)
{
	memset(ds, 0, sizeof *ds);
	ds->n = n, ds->c = ds->h = ds->w = 1;
	ds->pix = malloc((size_t)n);
	ds->labels = malloc((size_t)n * sizeof *ds->labels);
	for (int i = 0; i < n; i++)
		ds->pix[i] = (uint8_t)i, ds->labels[i] = labels[i % 10];
	ds->n_classes = 10;
	snprintf(ds->source, sizeof ds->source, "test");
}

static void test_select(void)
{
	static const int16_t ten[10] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	ae_dataset ds;
	ae_error err;
	/* 200 images, 20 per class: keep the 1s, mix in 3s as 10% of the result */
	labelled(&ds, 200, ten);
	CHECK(ae_dataset_select(&ds, 1u << 1, 3, 0.1, 7, &err) == 0);
	int ones = 0, threes = 0, ordered = 1;
	for (int i = 0; i < ds.n; i++) {
		ones += ds.labels[i] == 1, threes += ds.labels[i] == 3;
		ordered &= ds.labels[i] == ds.pix[i] % 10 && (i == 0 || ds.pix[i] > ds.pix[i - 1]);
	}
	CHECK_MSG(ds.n == 22 && ones == 20 && threes == 2 && ordered, "n %d ones %d threes %d", ds.n, ones, threes);
	/* the same seed picks the same 3s; another seed, others */
	uint8_t first[22];
	memcpy(first, ds.pix, 22);
	ae_dataset_free(&ds);
	labelled(&ds, 200, ten);
	ae_dataset_select(&ds, 1u << 1, 3, 0.1, 7, &err);
	CHECK(memcmp(first, ds.pix, 22) == 0);
	ae_dataset_free(&ds);
	int differs = 0;
	for (uint64_t seed = 8; seed < 12; seed++) {
		labelled(&ds, 200, ten);
		ae_dataset_select(&ds, 1u << 1, 3, 0.1, seed, &err);
		differs |= memcmp(first, ds.pix, 22) != 0;
		ae_dataset_free(&ds);
	}
	CHECK(differs);
	/* two classes kept, nothing mixed in */
	labelled(&ds, 200, ten);
	CHECK(ae_dataset_select(&ds, 1u << 0 | 1u << 9, -1, 0, 1, &err) == 0 && ds.n == 40);
	ae_dataset_free(&ds);
	/* refusals, each saying why */
	labelled(&ds, 200, ten);
	CHECK(ae_dataset_select(&ds, 1u << 1, 3, 0.6, 1, &err) != 0);
	CHECK(ae_dataset_select(&ds, 1u << 1, 1, 0.1, 1, &err) != 0);
	CHECK(ae_dataset_select(&ds, 1ull << 40, -1, 0, 1, &err) != 0 && strstr(err.msg, "no image"));
	CHECK(ae_dataset_select(&ds, 1u << 1 | 1u << 2, 3, 0.4, 1, &err) != 0 && strstr(err.msg, "are needed"));
	free(ds.labels);
	ds.labels = NULL;
	CHECK(ae_dataset_select(&ds, 1u << 1, -1, 0, 1, &err) != 0 && strstr(err.msg, "no labels"));
	ae_dataset_free(&ds);
}

int main(void)
{
	test_select();
	if (system("rm -rf " TMP) != 0) return 1;
	mkdir(TMP, 0755);
	test_idx();
	test_png_dir();
	test_stats();
	if (system("rm -rf " TMP) != 0) return 1;
	return TEST_DONE();
}
