/*
 * bench_core: what the engine does per second on this machine, printed as
 * JSON: cblas_sgemm's peak GFLOP/s (1024^3), the conv preset's inference
 * images/s for encode and reconstruct at batch 1, 32 and 256, and training
 * images/s at batch 32, with the FLOPs each implies. bench/run.sh runs it
 * beside bench/torch_ref.py and writes the ratios. With "size", the same
 * preset built for C x H x W images: training and reconstruct images/s at
 * batch 32 and the process's peak RSS. With "turns", the same preset
 * measured on request, a turn at a time, so that bench/sizes.sh can
 * alternate short turns with PyTorch's (one process per size, so each peak
 * is that size's own).
 *
 *   bench_core THREADS SECONDS_PER_CASE
 *   bench_core size C H W THREADS SECONDS_PER_CASE
 *   bench_core turns C H W THREADS    (then lines on stdin, see turns_case)
 *   bench_core engine MODEL IDX THREADS PRECISION   (lines on stdin, see engine_case)
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ae/blas.h"
#include "ae/infer.h"
#include "ae/modelfile.h"
#include "ae/train.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double forward_flops(const ae_net *net, int from, int to)
{
	double f = 0;
	for (int i = from; i < to; i++) {
		const ae_layer *l = &net->layers[i];
		if (l->kind == AE_L_CONV)
			f += 2.0 * l->oc * l->ic * l->k * l->k * l->oh * l->ow;
		else if (l->kind == AE_L_CONVT)
			f += 2.0 * l->ic * l->oc * l->k * l->k * l->ih * l->iw;
		else if (l->kind == AE_L_DENSE)
			f += 2.0 * l->ic * l->oc;
	}
	return f;
}

static double sgemm_gflops(double secs)
{
	const int n = 1024;
	float *a = calloc((size_t)n * n, 4), *b = calloc((size_t)n * n, 4), *c = calloc((size_t)n * n, 4);
	for (int i = 0; i < n * n; i++)
		a[i] = b[i] = 0.001f * (float)(i % 97);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
	long reps = 0;
	double t0 = now(), t;
	do {
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
		reps++;
	} while ((t = now() - t0) < secs);
	free(a), free(b), free(c);
	return 2.0 * n * n * n * reps / t / 1e9;
}

/* What one timed call runs: an inference op, or a training step over
 * successive batches of the sample images. */
typedef struct job {
	ae_infer *w;
	ae_trainer *tr;
	int op; /* 0 encode, 1 reconstruct, 2 train */
	const float *x;
	float *y, *z;
	long cursor;
	size_t per;   /* floats per image */
	int n_images; /* in x; training walks batches over them */
} job;

static void run_once(job *j, int b)
{
	if (j->op == 0) {
		ae_infer_encode(j->w, j->x, b, j->z);
	} else if (j->op == 1) {
		ae_infer_reconstruct(j->w, j->x, b, j->y, NULL);
	} else {
		const float *xb = j->x + (size_t)(j->cursor % (j->n_images - b + 1)) * j->per;
		ae_trainer_step(j->tr, xb, xb, b, 1e-3f);
	}
	j->cursor += b;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

#define SLICES 9

/* Images/s at batch b over secs: the median of SLICES equal slices, as
 * bench/torch_ref.py measures PyTorch, so a burst of load on the shared
 * host moves either side less than a mean would. */
static double rate(job *j, int b, double secs)
{
	double r[SLICES];
	run_once(j, b);
	for (int s = 0; s < SLICES; s++) {
		long imgs = 0;
		double t0 = now(), t;
		do {
			run_once(j, b);
			imgs += b;
		} while ((t = now() - t0) < secs / SLICES);
		r[s] = imgs / t;
	}
	qsort(r, SLICES, sizeof r[0], cmp_double);
	return r[SLICES / 2];
}

/* The preset at c x h x w with its plan, workers and sample images. */
typedef struct size_bench {
	ae_model *m;
	ae_plan *p;
	float *x; /* the sample images j reads */
	job j;
} size_bench;

static int size_open(size_bench *sb, int c, int h, int w, int threads)
{
	ae_arch_spec s;
	ae_arch_defaults(&s, "conv", NULL);
	s.c = c, s.h = h, s.w = w;
	ae_error err = { 0 };
	const int n = 64;
	const size_t per = (size_t)c * h * w;
	memset(sb, 0, sizeof *sb);
	sb->m = ae_model_new(&s, 1, &err);
	sb->p = sb->m ? ae_plan_new(sb->m, &err) : NULL;
	job *j = &sb->j;
	j->w = sb->p ? ae_infer_new(sb->p, 32, threads, &err) : NULL;
	j->tr = j->w ? ae_trainer_new(sb->m, 32, threads, AE_LOSS_MSE, &err) : NULL;
	float *x = sb->x = malloc(n * per * sizeof(float));
	j->x = x, j->y = malloc(32 * per * sizeof(float));
	j->per = per, j->n_images = n;
	if (!j->tr || !x || !j->y) {
		fprintf(stderr, "bench_core: %s\n", err.msg[0] ? err.msg : "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n * per; i++)
		x[i] = (float)((i * 7919) % 256) / 255.0f;
	openblas_set_num_threads(1);
	return 0;
}

static void size_close(size_bench *sb)
{
	free(sb->x), free(sb->j.y);
	ae_trainer_free(sb->j.tr);
	ae_infer_free(sb->j.w);
	ae_plan_free(sb->p);
	ae_model_free(sb->m);
}

static long peak_rss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* The preset at c x h x w: training and reconstruct at batch 32, peak RSS. */
static int size_case(int c, int h, int w, int threads, double secs)
{
	size_bench sb;
	if (size_open(&sb, c, h, w, threads)) return 1;
	sb.j.op = 1;
	double rec = rate(&sb.j, 32, secs);
	sb.j.op = 2;
	double train = rate(&sb.j, 32, 2 * secs);
	printf("{\"c\": %d, \"h\": %d, \"w\": %d, \"threads\": %d, \"reconstruct_b32_img_s\": %.2f, "
	       "\"train_b32_img_s\": %.2f, \"peak_rss_kb\": %ld}\n",
	       c, h, w, threads, rec, train, peak_rss_kb());
	size_close(&sb);
	return 0;
}

#define TURN_MIN_BATCHES 3

/* One turn: batches of 32 for secs (at least TURN_MIN_BATCHES), and their
 * images/s: the throughput a user sees over the turn, slow batches
 * included (the median batch would flatter a side whose batches vary). */
static double turn_rate(job *j, double secs)
{
	int k = 0;
	double t, t0 = now();
	do {
		run_once(j, 32);
		k++;
	} while ((t = now() - t0) < secs || k < TURN_MIN_BATCHES);
	return 32.0 * k / t;
}

/* The preset at c x h x w, measured on request: each line on stdin,
 * "reconstruct SECS" or "train SECS", prints that turn's images/s; "rss"
 * prints the peak RSS in KB. bench/sizes.sh alternates these turns with
 * bench/torch_ref.py's, seconds apart, so both sides see the same host. */
static int turns_case(int c, int h, int w, int threads)
{
	size_bench sb;
	if (size_open(&sb, c, h, w, threads)) return 1;
	for (sb.j.op = 1; sb.j.op <= 2; sb.j.op++)
		run_once(&sb.j, 32); /* first touches of each op's buffers */
	char line[64], op[16];
	double secs;
	while (fgets(line, sizeof line, stdin)) {
		if (sscanf(line, "%15s %lf", op, &secs) == 2 && strcmp(op, "reconstruct") == 0) {
			sb.j.op = 1;
			printf("%.2f\n", turn_rate(&sb.j, secs));
		} else if (sscanf(line, "%15s %lf", op, &secs) == 2 && strcmp(op, "train") == 0) {
			sb.j.op = 2;
			printf("%.2f\n", turn_rate(&sb.j, secs));
		} else if (strcmp(line, "rss\n") == 0) {
			printf("%ld\n", peak_rss_kb());
		} else {
			fprintf(stderr, "bench_core turns: unknown request %s", line);
			size_close(&sb);
			return 2;
		}
		fflush(stdout);
	}
	size_close(&sb);
	return 0;
}

#define ENGINE_MAX_BATCH 256

/* A model file at one precision, measured on request as bench/engines.sh
 * asks, in turns alternated with ONNX Runtime's and PyTorch's on the same
 * model and images (the IDX file's first ones, repeated to the batch).
 * Lines on stdin: "ready" -> "ready PRECISION" (what runs), "OP B SECS" ->
 * images/s of one turn (batches of B for SECS, at least 3; OP encode or
 * reconstruct), "dump OP B PATH" -> OP's output for the first B images
 * (float32) written to PATH, "ok". */
static int engine_case(const char *path, const char *idx, int threads, const char *prec)
{
	ae_error err = { 0 };
	ae_model *m = ae_model_load(path, &err);
	const int want = m ? ae_precision_resolve(m, ae_precision_parse(prec)) : 0;
	ae_plan_opts o = { .precision = want };
	ae_plan *p = m && want >= 0 ? ae_plan_new_opts(m, &o, &err) : NULL;
	ae_infer *w = p ? ae_infer_new(p, ENGINE_MAX_BATCH, threads, &err) : NULL;
	const size_t per = m ? ae_net_input_size(&m->net) : 0;
	float *x = malloc(ENGINE_MAX_BATCH * per * sizeof(float)), *y = malloc(ENGINE_MAX_BATCH * per * sizeof(float));
	unsigned char *raw = malloc(per ? 100 * per : 1);
	FILE *f = fopen(idx, "rb");
	int n = f && raw && fseek(f, 16, SEEK_SET) == 0 ? (int)(fread(raw, per, 100, f)) : 0;
	if (f) fclose(f);
	if (!w || !x || !y || n < 1) {
		fprintf(stderr, "bench_core engine: %s\n",
		        err.msg[0] ? err.msg : "cannot read the images or out of memory");
		ae_infer_free(w);
		ae_plan_free(p);
		ae_model_free(m);
		free(x), free(y), free(raw);
		return 1;
	}
	for (size_t i = 0; i < ENGINE_MAX_BATCH * per; i++)
		x[i] = raw[(i / per) % (size_t)n * per + i % per] / 255.0f;
	job j = { .w = w, .x = x, .y = y, .z = y, .per = per, .n_images = ENGINE_MAX_BATCH };
	char line[512], op[32], out[400];
	int b;
	double secs;
	while (fgets(line, sizeof line, stdin)) {
		if (strcmp(line, "ready\n") == 0) {
			for (j.op = 0; j.op < 2; j.op++)
				run_once(&j, ENGINE_MAX_BATCH);
			printf("ready %s\n", ae_precision_name(ae_plan_precision(p)));
		} else if (sscanf(line, "%31s %d %lf", op, &b, &secs) == 3 && b >= 1 && b <= ENGINE_MAX_BATCH &&
		           (strcmp(op, "encode") == 0 || strcmp(op, "reconstruct") == 0)) {
			j.op = strcmp(op, "reconstruct") == 0;
			int k = 0;
			double t, t0 = now();
			do {
				run_once(&j, b);
				k++;
			} while ((t = now() - t0) < secs || k < TURN_MIN_BATCHES);
			printf("%.2f\n", (double)b * k / t);
		} else if (sscanf(line, "dump %31s %d %399s", op, &b, out) == 3 && b >= 1 && b <= ENGINE_MAX_BATCH) {
			ae_op o2 = strcmp(op, "reconstruct") == 0 ? AE_OP_RECONSTRUCT : AE_OP_ENCODE;
			ae_infer_run(w, o2, x, b, y);
			FILE *g = fopen(out, "wb");
			size_t len = (size_t)b * ae_plan_out_size(p, o2);
			int ok = g && fwrite(y, sizeof(float), len, g) == len;
			if (g && fclose(g)) ok = 0;
			printf("%s\n", ok ? "ok" : "error");
		} else {
			fprintf(stderr, "bench_core engine: unknown request %s", line);
			return 2;
		}
		fflush(stdout);
	}
	ae_infer_free(w);
	ae_plan_free(p);
	ae_model_free(m);
	free(x), free(y), free(raw);
	return 0;
}

int main(int argc, char **argv)
{
	ae_blas_tune(argv); /* measure what aetrain and aeserve run */
	if (argc == 6 && strcmp(argv[1], "engine") == 0) return engine_case(argv[2], argv[3], atoi(argv[4]), argv[5]);
	if (argc == 7 && strcmp(argv[1], "size") == 0)
		return size_case(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atof(argv[6]));
	if (argc == 6 && strcmp(argv[1], "turns") == 0)
		return turns_case(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	int threads = argc > 1 ? atoi(argv[1]) : 2;
	double secs = argc > 2 ? atof(argv[2]) : 2.0;
	ae_arch_spec s;
	ae_arch_defaults(&s, "conv", NULL);
	ae_model *m = ae_model_new(&s, 1, NULL);
	ae_plan *p = ae_plan_new(m, NULL);
	ae_infer *w = ae_infer_new(p, 256, threads, NULL);
	float *x = malloc(256 * 784 * sizeof(float)), *y = malloc(256 * 784 * sizeof(float)), z[256 * 16];
	for (int i = 0; i < 256 * 784; i++)
		x[i] = (float)((i * 7919) % 256) / 255.0f;
	const ae_net *net = &m->net;
	double f_enc = forward_flops(net, 0, net->n_enc), f_rec = forward_flops(net, 0, net->n_layers);
	/* OpenBLAS's own threads only for the peak: inference and training
	 * split their work over their own threads (as aeserve and aetrain do)
	 * and call sgemm from each. */
	openblas_set_num_threads(threads);
	double peak = sgemm_gflops(secs);
	openblas_set_num_threads(1);
	printf("{\"threads\": %d,\n \"sgemm_peak_gflops\": %.2f,\n \"flops_encode\": %.0f, \"flops_reconstruct\": %.0f,\n",
	       threads, peak, f_enc, f_rec);
	static const int batches[] = { 1, 32, 256 };
	const char *ops[] = { "encode", "reconstruct" };
	job j = { .w = w, .x = x, .y = y, .z = z, .per = 784, .n_images = 256 };
	for (j.op = 0; j.op < 2; j.op++)
		for (int k = 0; k < 3; k++)
			printf(" \"%s_b%d_img_s\": %.1f,\n", ops[j.op], batches[k], rate(&j, batches[k], secs));
	ae_trainer *tr = ae_trainer_new(m, 32, threads, AE_LOSS_MSE, NULL);
	j.tr = tr;
	j.op = 2;
	printf(" \"train_b32_img_s\": %.1f,\n \"flops_train_step_per_image\": %.0f}\n", rate(&j, 32, 2 * secs),
	       3.0 * f_rec);
	ae_trainer_free(tr);
	ae_infer_free(w);
	ae_plan_free(p);
	ae_model_free(m);
	free(x), free(y);
	return 0;
}
