/*
 * `aetrain train`: options, the training loop, checkpoints on Ctrl-C or
 * SIGTERM (and --resume), anomaly calibration on held-out images, and the
 * model file with its grid and loss CSV.
 *
 * Every random draw comes from a stream keyed by (seed, epoch, image), so a
 * resumed run continues exactly as the uninterrupted one would have, and
 * an image is corrupted alike whichever process of a distributed run
 * (dist.h) holds it. There each process takes its share of every batch of
 * the epoch's order, all of them validate their share of the held-out
 * images, and rank 0 alone prints progress and writes files.
 */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "ae/dataset.h"
#include "ae/stats.h"
#include "ae/noise.h"
#include "ae/infer.h"
#include "ae/modelfile.h"
#include "ae/train.h"
#include "checkpoint.h"
#include "calibrate.h"
#include "cli.h"
#include "dist.h"
#include "report.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void train_usage(FILE *f)
{
	fprintf(f, "usage: aetrain train --data PATH --out MODEL.safetensors [options]\n"
	           "       aetrain train --resume MODEL.ckpt\n"
	           "\n"
	           "Trains an autoencoder and writes MODEL.safetensors, MODEL.grid.png (held-out inputs,\n"
	           "corrupted inputs, reconstructions) and MODEL.losses.csv.\n"
	           "\n"
	           "  --data PATH        IDX images file, folder with train-/t10k- IDX files, or PNG folder\n"
	           "                     (gray, gray+alpha, RGB or RGBA, of any size: the model takes the\n"
	           "                     data's size; the conv preset needs sides that are multiples of 4)\n"
	           "  --resize HxW       resample every image to H rows by W columns (bilinear) as it is\n"
	           "                     read; then the images may have different sizes\n"
	           "  --split NAME       train (default) or test, for a folder of IDX files\n"
	           "  --out PATH         model file to write (required)\n"
	           "  --arch NAME        conv (default) or dense\n"
	           "  --latent N         code size (default 16; larger than the input is allowed)\n"
	           "  --filters F1,F2    conv filters (default 32,64)\n"
	           "  --hidden N         dense hidden units (default 128)\n"
	           "  --channels C       1 (default) or 3: images are converted to C channels\n"
	           "  --epochs N         passes over the data (default 20)\n"
	           "  --batch N          mini-batch size (default 32)\n"
	           "  --lr X             Adam learning rate (default 0.001)\n"
	           "  --loss NAME        mse (default) or bce\n"
	           "  --noise SPEC       none (default), gaussian:MEAN:STD or saltpepper:P; inputs are\n"
	           "                     corrupted, targets stay clean (a denoising autoencoder)\n"
	           "  --input WHAT       image-to-image: the model is given a transform of each image and\n"
	           "                     learns to give back the image: gray (colorization, needs\n"
	           "                     --channels 3), downscale:K (super-resolution), mask:S (inpainting\n"
	           "                     of an SxS square); with --noise, noise is added after it\n"
	           "  --targets DIR      image-to-image from pairs: the model is given each PNG of --data and\n"
	           "                     learns to give back the PNG of the same name in DIR\n"
	           "  --val X            fraction held out for validation and calibration (default 0.1)\n"
	           "  --seed N           random seed (default 1); same seed and threads, same model\n"
	           "  --threads N        threads (default: every core; under aetrain-mpi, per process: the\n"
	           "                     cores it may use, shared among the processes on its machine)\n"
	           "  --limit N          use only the first N images\n"
	           "  --classes LIST     train on these classes only (\"1\", \"0,2\"; labels from the IDX\n"
	           "                     labels file or the PNG subfolders)\n"
	           "  --contaminate C:S  mix images of class C into the training set as share S of it\n"
	           "                     (0.01: one in a hundred), as the anomaly tutorial does\n"
	           "  --resume CKPT      continue an interrupted run from its checkpoint\n"
	           "  --checkpoint-every N  also write MODEL.ckpt every N training steps, atomically, so\n"
	           "                     a run killed outright (kill -9, power loss) can --resume too\n"
	           "  --quiet            no progress output\n"
	           "  --dist-timeout S   aetrain-mpi: end the run when one sum across processes has waited\n"
	           "                     S seconds for the others (one died or hangs; default 60)\n"
	           "\n"
	           "Ctrl-C or SIGTERM writes MODEL.ckpt and exits with status 130; --resume MODEL.ckpt\n"
	           "continues from there.\n"
	           "\n"
	           "Across machines: mpirun -np N aetrain-mpi train ... (or srun); --batch is the batch of\n"
	           "all N processes together, each taking its share (docs/distributed.md).\n");
}

/* ------------------------------------------------------------- options */

static int parse_opts(train_opts *o, int argc, char **argv)
{
	enum {
		O_DATA = 1000,
		O_SPLIT,
		O_OUT,
		O_ARCH,
		O_LATENT,
		O_FILTERS,
		O_HIDDEN,
		O_CHANNELS,
		O_EPOCHS,
		O_BATCH,
		O_LR,
		O_LOSS,
		O_NOISE,
		O_VAL,
		O_SEED,
		O_THREADS,
		O_LIMIT,
		O_CLASSES,
		O_RESIZE,
		O_INPUT,
		O_TARGETS,
		O_CONTAMINATE,
		O_RESUME,
		O_CKPT_EVERY,
		O_QUIET,
		O_DIST_TIMEOUT,
		O_HELP
	};
	static const struct option lo[] = {
		{ "data", 1, 0, O_DATA },       { "split", 1, 0, O_SPLIT },
		{ "out", 1, 0, O_OUT },         { "arch", 1, 0, O_ARCH },
		{ "latent", 1, 0, O_LATENT },   { "filters", 1, 0, O_FILTERS },
		{ "hidden", 1, 0, O_HIDDEN },   { "channels", 1, 0, O_CHANNELS },
		{ "epochs", 1, 0, O_EPOCHS },   { "batch", 1, 0, O_BATCH },
		{ "lr", 1, 0, O_LR },           { "loss", 1, 0, O_LOSS },
		{ "noise", 1, 0, O_NOISE },     { "val", 1, 0, O_VAL },
		{ "seed", 1, 0, O_SEED },       { "threads", 1, 0, O_THREADS },
		{ "limit", 1, 0, O_LIMIT },     { "classes", 1, 0, O_CLASSES },
		{ "resize", 1, 0, O_RESIZE },   { "input", 1, 0, O_INPUT },
		{ "targets", 1, 0, O_TARGETS }, { "contaminate", 1, 0, O_CONTAMINATE },
		{ "resume", 1, 0, O_RESUME },   { "checkpoint-every", 1, 0, O_CKPT_EVERY },
		{ "quiet", 0, 0, O_QUIET },     { "dist-timeout", 1, 0, O_DIST_TIMEOUT },
		{ "help", 0, 0, O_HELP },       { 0, 0, 0, 0 },
	};
	memset(o, 0, sizeof *o);
	ae_arch_defaults(&o->spec, "conv", NULL);
	snprintf(o->split, sizeof o->split, "train");
	o->epochs = 20, o->batch = 32, o->lr = 1e-3, o->val = 0.1, o->seed = 1;
	o->dist_timeout = DIST_TIMEOUT_DEFAULT;
	long v;
	double d;
	ae_error err = { 0 };
	int c, channels = 1, latent = -1, hidden = -1, f1 = -1, f2 = -1;
	char arch[16] = "conv";
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_DATA:
			if (cli_text("--data", optarg, o->data, sizeof o->data)) return -1;
			break;
		case O_SPLIT:
			if (cli_split(optarg, o->split, sizeof o->split)) return -1;
			break;
		case O_OUT:
			if (cli_text("--out", optarg, o->out, sizeof o->out)) return -1;
			break;
		case O_ARCH:
			if (strcmp(optarg, "conv") != 0 && strcmp(optarg, "dense") != 0) {
				fprintf(stderr, "aetrain: --arch: '%s' is neither conv nor dense\n", optarg);
				return -1;
			}
			snprintf(arch, sizeof arch, "%s", optarg);
			break;
		case O_LATENT:
			if (cli_int("--latent", optarg, 1, 65536, &v)) return -1;
			latent = (int)v;
			break;
		case O_HIDDEN:
			if (cli_int("--hidden", optarg, 1, 65536, &v)) return -1;
			hidden = (int)v;
			break;
		case O_FILTERS:
			if (sscanf(optarg, "%d,%d%c", &f1, &f2, (char[1]){ 0 }) != 2 || f1 < 1 || f2 < 1 || f1 > 1024 ||
			    f2 > 1024) {
				fprintf(stderr, "aetrain: --filters: '%s' is not F1,F2 with each in [1, 1024]\n",
				        optarg);
				return -1;
			}
			break;
		case O_CHANNELS:
			if (cli_channels(optarg, &v)) return -1;
			channels = (int)v;
			break;
		case O_EPOCHS:
			if (cli_int("--epochs", optarg, 1, MAX_EPOCHS, &o->epochs)) return -1;
			break;
		case O_BATCH:
			if (cli_int("--batch", optarg, 1, MAX_BATCH, &o->batch)) return -1;
			break;
		case O_LR:
			if (cli_float("--lr", optarg, 1e-8, 1.0, &o->lr)) return -1;
			break;
		case O_LOSS:
			if (strcmp(optarg, "mse") != 0 && strcmp(optarg, "bce") != 0) {
				fprintf(stderr, "aetrain: --loss: '%s' is neither mse nor bce\n", optarg);
				return -1;
			}
			o->loss = strcmp(optarg, "bce") == 0 ? AE_LOSS_BCE : AE_LOSS_MSE;
			break;
		case O_NOISE:
			if (ae_noise_parse(&o->noise, optarg, &err)) {
				fprintf(stderr, "aetrain: --noise: %s\n", err.msg);
				return -1;
			}
			break;
		case O_VAL:
			if (cli_float("--val", optarg, 0.0, 0.9, &d)) return -1;
			o->val = d;
			break;
		case O_SEED:
			if (cli_u64("--seed", optarg, &o->seed)) return -1;
			break;
		case O_THREADS:
			if (cli_int("--threads", optarg, 1, AE_MAX_THREADS, &o->threads)) return -1;
			break;
		case O_LIMIT:
			if (cli_int("--limit", optarg, 1, 100000000, &o->limit)) return -1;
			break;
		case O_RESIZE:
			if (cli_size("--resize", optarg, o->resize)) return -1;
			break;
		case O_TARGETS:
			if (cli_text("--targets", optarg, o->targets, sizeof o->targets)) return -1;
			break;
		case O_INPUT:
			if (ae_transform_parse(&o->transform, optarg, &err)) {
				fprintf(stderr, "aetrain: --input: %s\n", err.msg);
				return -1;
			}
			break;
		case O_CLASSES:
			if (cli_text("--classes", optarg, o->classes, sizeof o->classes)) return -1;
			break;
		case O_CONTAMINATE:
			if (cli_text("--contaminate", optarg, o->contaminate, sizeof o->contaminate)) return -1;
			break;
		case O_RESUME:
			if (cli_text("--resume", optarg, o->resume, sizeof o->resume)) return -1;
			break;
		case O_CKPT_EVERY:
			if (cli_int("--checkpoint-every", optarg, 1, 100000000, &o->checkpoint_every)) return -1;
			break;
		case O_QUIET: o->quiet = 1; break;
		case O_DIST_TIMEOUT:
			if (cli_int("--dist-timeout", optarg, 1, DIST_TIMEOUT_MAX, &o->dist_timeout)) return -1;
			break;
		case O_HELP: train_usage(stdout); exit(0);
		default:
			fprintf(stderr, "aetrain: train: unknown option or missing value: %s\n", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "aetrain: train: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (o->resume[0]) return 0;
	if (!o->data[0] || !o->out[0]) {
		fprintf(stderr, "aetrain: train: --data and --out are required (see aetrain train --help)\n");
		return -1;
	}
	if (cli_check_selection(o->classes, o->contaminate)) return -1;
	if (o->targets[0] && o->transform.kind != AE_TF_NONE) {
		fprintf(stderr, "aetrain: --targets and --input: the inputs are either given or made, not both\n");
		return -1;
	}
	if (o->targets[0]) o->transform.kind = AE_TF_PAIRS;
	ae_arch_defaults(&o->spec, arch, NULL);
	o->spec.c = channels;
	if (latent > 0) o->spec.latent = latent;
	if (hidden > 0) o->spec.hidden = hidden;
	if (f1 > 0) o->spec.f1 = f1, o->spec.f2 = f2;
	return 0;
}

/* ------------------------------------------------------------ training */

/* The sum of per-image MSEs of reconstructions of (corrupted) held-out
 * images idx[0..n) against the clean ones, the first of which is image
 * `first` of the held-out set (its noise stream); NaN if out of memory. */
static double validate(ae_infer *w, const ae_dataset *ds, const int *idx, int n, int first, const ae_noise *nz,
                       const ae_transform *tf, uint64_t seed)
{
	const size_t per = (size_t)ds->c * ds->h * ds->w;
	enum { CHUNK = 256 };
	float *x = malloc(CHUNK * per * sizeof(float)), *in = malloc(CHUNK * per * sizeof(float));
	float *y = malloc(CHUNK * per * sizeof(float));
	double *mse = malloc(CHUNK * sizeof(double)), sum = 0.0;
	if (!x || !in || !y || !mse) {
		free(x), free(in), free(y), free(mse);
		return NAN;
	}
	for (int at = 0; at < n; at += CHUNK) {
		int b = n - at < CHUNK ? n - at : CHUNK;
		cli_batch(ds, idx + at, b, x, in, nz, tf, seed, 0x76616c, (uint64_t)first + (uint64_t)at);
		ae_infer_reconstruct(w, in, b, y, NULL);
		ae_mse_per_image(mse, y, x, b, per);
		for (int i = 0; i < b; i++)
			sum += mse[i];
	}
	free(x), free(in), free(y), free(mse);
	return sum;
}

/* The held-out loss after an epoch: every process validates its share of
 * the n held-out images, and the sums are added. NaN if there are none or
 * a process could not. */
static double validate_shared(const ae_model *m, const train_opts *o, const ae_dataset *ds, const int *idx, int n)
{
	const int R = dist_rank(), N = dist_size(), lo = (int)((long)n * R / N), hi = (int)((long)n * (R + 1) / N);
	ae_error err = { 0 };
	ae_plan *plan = ae_plan_new(m, &err);
	ae_infer *w = plan ? ae_infer_new(plan, 256, (int)o->threads_run, &err) : NULL;
	double part[2] = { w ? validate(w, ds, idx + lo, hi - lo, lo, &o->noise, &o->transform, o->seed) : NAN, 0 };
	ae_infer_free(w);
	ae_plan_free(plan);
	/* a process that failed makes the sum NaN everywhere */
	if (dist_sum(part, 1)) return NAN;
	return n ? part[0] / n : NAN;
}

static void fill_info(ae_model *m, const train_opts *o, long n_train, long n_val, const progress *p)
{
	ae_train_info *t = &m->train;
	snprintf(t->dataset, sizeof t->dataset, "%s", o->data);
	snprintf(t->classes, sizeof t->classes, "%s", o->classes);
	snprintf(t->contaminate, sizeof t->contaminate, "%s", o->contaminate);
	if (o->resize[0]) snprintf(t->resize, sizeof t->resize, "%dx%d", o->resize[0], o->resize[1]);
	snprintf(t->loss, sizeof t->loss, "%s", o->loss == AE_LOSS_BCE ? "bce" : "mse");
	t->samples = n_train, t->val_samples = n_val;
	t->epochs = (int)o->epochs, t->batch = (int)o->batch, t->threads = (int)o->threads_run;
	t->lr = o->lr, t->seed = o->seed;
	t->train_loss = p->n_rows ? p->rows[p->n_rows - 1].train_loss : NAN;
	t->val_loss = p->n_rows ? p->rows[p->n_rows - 1].val_loss : NAN;
	t->seconds = p->elapsed;
	time_t now = time(NULL);
	strftime(t->date, sizeof t->date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	m->noise = o->noise;
	m->transform = o->transform;
	snprintf(m->task, sizeof m->task, "%s",
	         o->transform.kind != AE_TF_NONE  ? "transform"
	         : o->noise.kind == AE_NOISE_NONE ? "reconstruct"
	                                          : "denoise");
}

static int write_outputs(ae_model *m, const train_opts *o, const ae_dataset *ds, const ae_dataset *others,
                         const int *train_idx, int n_train, const int *val_idx, int n_val, const progress *p)
{
	ae_error err = { 0 };
	ae_plan *plan = ae_plan_new(m, &err);
	ae_infer *w = plan ? ae_infer_new(plan, 256, (int)o->threads_run, &err) : NULL;
	int rc = w ? 0 : -1;
	if (rc == 0) rc = calibrate_scores(m, w, ds, train_idx, n_train, val_idx, n_val, others);
	if (rc == 0 && (rc = ae_model_save(m, o->out, NULL, 0, NULL, NULL, &err)))
		fprintf(stderr, "aetrain: %s\n", err.msg);
	char path[4096];
	if (rc == 0) {
		cli_sibling(path, sizeof path, o->out, ".grid.png");
		rc = report_grid(path, w, ds, val_idx, n_val < 16 ? n_val : 16, &o->noise, &o->transform, o->seed);
	}
	if (rc == 0) {
		cli_sibling(path, sizeof path, o->out, ".losses.csv");
		rc = report_csv(path, p->rows, p->n_rows);
	}
	if (rc == 0)
		printf("wrote %s (%s, p50 %.5f, p99 %.5f)\n", o->out, m->checksum, ae_model_quantile(m, 0.5),
		       ae_model_quantile(m, 0.99));
	ae_infer_free(w);
	ae_plan_free(plan);
	return rc;
}

/* Writes MODEL.ckpt (rank 0; every process has the same state). */
static int save_checkpoint(const train_opts *o, ae_model *m, ae_trainer *tr, const progress *p)
{
	if (dist_rank() != 0) return 0;
	char ck[4096];
	cli_sibling(ck, sizeof ck, o->out, ".ckpt");
	return ckpt_save(ck, o, m, tr, p);
}

/* This process's share of a batch of n images: [*lo, *lo + return). */
static int share_of(int n, int *lo)
{
	const int R = dist_rank(), N = dist_size();
	*lo = (int)((long)n * R / N);
	return (int)((long)n * (R + 1) / N) - *lo;
}

static int run(train_opts *o, ae_model *m, ae_trainer *tr, const ae_dataset *ds, const ae_dataset *others, progress *p)
{
	int n_val = 0, *idx = cli_split_indices(ds->n, o->val, o->seed, &n_val);
	const int n_train = ds->n - n_val;
	if (!idx || n_train < 1) {
		fprintf(stderr, "aetrain: %d images leave none to train on after holding out %d\n", ds->n, n_val);
		free(idx);
		return -1;
	}
	const int *val_idx = idx, *train_src = idx + n_val;
	const size_t per = ae_net_input_size(&m->net);
	const int B = (int)o->batch, batches = (n_train + B - 1) / B, N = dist_size();
	const int mine = (B + N - 1) / N; /* the most images of a batch a process holds */
	int *order = malloc((size_t)n_train * sizeof *order);
	float *x = malloc((size_t)mine * per * sizeof(float)), *in = malloc((size_t)mine * per * sizeof(float));
	int rc = order && x && in ? 0 : -1;
	if (!o->quiet && p->epoch < o->epochs) {
		fprintf(stderr,
		        "training %s (latent %d, %zu parameters) on %d images (%d held out), %ld epochs, batch %d\n",
		        m->net.spec.preset, m->net.spec.latent, m->net.n_params, n_train, n_val, o->epochs, B);
		if (N > 1)
			fprintf(stderr,
			        "  on %d processes, %ld thread(s) each, each taking %d to %d images of a batch\n", N,
			        o->threads_run, B / N, mine);
	}
	for (int e = p->epoch; rc == 0 && e < o->epochs; e++) {
		memcpy(order, train_src, (size_t)n_train * sizeof *order);
		ae_rng r;
		ae_rng_seed_stream(&r, o->seed, 1 + (uint64_t)e, 0);
		ae_rng_shuffle(&r, order, n_train);
		double t0 = now_s(), el0 = p->elapsed;
		const int start = p->batch;
		int stop = 0;
		for (int b = p->batch; b < batches; b++) {
			const int n = n_train - b * B < B ? n_train - b * B : B;
			int lo, k = share_of(n, &lo);
			const int *im = order + b * B + lo;
			/* the model is given the images themselves, or (an image-to-image
			 * model, a denoiser) something made from them */
			const int same = !ds->input && o->noise.kind == AE_NOISE_NONE &&
			                 o->transform.kind == AE_TF_NONE;
			if (same)
				ae_dataset_batch(ds, im, k, x);
			else
				cli_batch(ds, im, k, x, in, &o->noise, &o->transform, o->seed, 1 + (uint64_t)e,
				          (uint64_t)b * B + lo);
			const float *input = same ? x : in;
			/* the parts of the loss and whether any process was asked to stop */
			double sums[2] = { ae_trainer_step_part(tr, input, x, k, n, (float)o->lr), stop_requested };
			if (dist_sum(sums, 2)) {
				rc = -1;
				break;
			}
			const double loss = sums[0];
			stop = sums[1] > 0;
			if (!isfinite(loss)) {
				if (dist_rank() == 0)
					fprintf(stderr,
					        "\naetrain: loss became %g at epoch %d batch %d; try a lower --lr\n",
					        loss, e + 1, b + 1);
				rc = -1;
				break;
			}
			p->loss_sum += loss * n;
			p->loss_n += n;
			p->batch = b + 1;
			p->elapsed = el0 + (now_s() - t0);
			if (!o->quiet) {
				double done = (double)(b + 1 - start) * B, rate = done / (now_s() - t0 + 1e-9);
				double left = ((double)(o->epochs - e) * batches - (b + 1)) * B / (rate > 0 ? rate : 1);
				report_progress(e + 1, (int)o->epochs, b + 1, batches, p->loss_sum / p->loss_n, rate,
				                left);
			}
			const long step = *ae_trainer_adam_step(tr);
			if (N > 1 && step % DIST_CHECK_EVERY == 0 && dist_check_same(m, step)) {
				rc = -1;
				break;
			}
			if (stop) break;
			/* A failed write leaves the previous checkpoint as it was and
			 * says so; training goes on. */
			if (o->checkpoint_every > 0 && step % o->checkpoint_every == 0) save_checkpoint(o, m, tr, p);
		}
		if (rc) break;
		if (stop) {
			report_progress_end();
			p->epoch = e;
			if (save_checkpoint(o, m, tr, p) == 0 && dist_rank() == 0) {
				char ck[4096];
				cli_sibling(ck, sizeof ck, o->out, ".ckpt");
				fprintf(stderr,
				        "interrupted: checkpoint written to %s; continue with: %s train --resume %s\n",
				        ck, N > 1 ? "mpirun aetrain-mpi" : "aetrain", ck);
			}
			rc = 130;
			break;
		}
		double vl = validate_shared(m, o, ds, val_idx, n_val);
		epoch_row *row = &p->rows[p->n_rows++];
		*row = (epoch_row){ e + 1, p->loss_sum / (p->loss_n ? p->loss_n : 1), vl, p->elapsed };
		report_progress_end();
		if (!o->quiet)
			fprintf(stderr, "epoch %d/%ld  train %.6f  val %.6f  %.0f img/s\n", e + 1, o->epochs,
			        row->train_loss, vl, (double)p->loss_n / (now_s() - t0 + 1e-9));
		p->epoch = e + 1, p->batch = 0, p->loss_sum = 0, p->loss_n = 0;
	}
	fill_info(m, o, n_train, n_val, p);
	if (rc == 0 && N > 1 && dist_check_same(m, *ae_trainer_adam_step(tr))) rc = -1;
	/* calibration and the files, once */
	if (rc == 0 && dist_rank() == 0) rc = write_outputs(m, o, ds, others, train_src, n_train, val_idx, n_val, p);
	if (rc == 0 && dist_rank() == 0) {
		char ck[4096];
		cli_sibling(ck, sizeof ck, o->out, ".ckpt");
		remove(ck);
	}
	free(order), free(x), free(in), free(idx);
	return rc;
}

int cmd_train(int argc, char **argv)
{
	/* Installed first, so a signal during loading stops cleanly too: the loop
	 * checks the flag after each batch. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	train_opts o;
	if (parse_opts(&o, argc, argv)) return 2;
	if (dist_init((int)o.dist_timeout)) return 2;
	/* one process speaks for all */
	if (dist_rank() != 0) o.quiet = 1;
	const int N = dist_size();
	progress *p = calloc(1, sizeof *p);
	ae_model *m = NULL;
	ae_trainer *tr = NULL;
	ae_error err = { 0 };
	ae_dataset ds = { 0 };
	int rc = p ? 0 : 1;
	if (rc == 0 && o.resume[0]) {
		ckpt_state cs = { .p = p };
		m = ckpt_load(o.resume, &cs);
		if (m) {
			cs.opts.quiet = o.quiet;
			cs.opts.dist_timeout = o.dist_timeout;
			snprintf(cs.opts.resume, sizeof cs.opts.resume, "%s", o.resume);
			o = cs.opts;
			o.threads_run = dist_threads(o.threads);
			tr = ae_trainer_new(m, (int)(o.batch + N - 1) / N, (int)o.threads_run, o.loss, &err);
			if (!tr) fprintf(stderr, "aetrain: cannot resume %s: %s\n", o.resume, err.msg);
		}
		if (tr) {
			memcpy(ae_trainer_adam_m(tr), cs.adam_m, m->net.n_params * sizeof(float));
			memcpy(ae_trainer_adam_v(tr), cs.adam_v, m->net.n_params * sizeof(float));
			*ae_trainer_adam_step(tr) = cs.adam_step;
			if (!o.quiet) fprintf(stderr, "resuming at epoch %d, batch %d\n", p->epoch + 1, p->batch + 1);
		}
		free(cs.adam_m), free(cs.adam_v);
		rc = tr ? 0 : 1;
	}
	if (!m) o.threads_run = dist_threads(o.threads);
	const int *resize = o.resize[0] ? o.resize : NULL;
	if (rc == 0 && (m ? cli_load_data(&ds, o.data, o.split, &m->net.spec, resize, o.limit)
	                  : cli_load_train_data(&ds, o.data, o.split, &o.spec, resize, o.limit)))
		rc = 1;
	if (rc == 0 && o.targets[0] && cli_pair(&ds, o.targets, o.split, m ? &m->net.spec : &o.spec, resize, o.limit))
		rc = 1;
	if (rc == 0 && ae_transform_check(&o.transform, ds.c, ds.h, ds.w, &err)) {
		fprintf(stderr, "aetrain: --input: %s\n", err.msg);
		rc = 1;
	}
	ae_dataset others = { 0 };
	if (rc == 0 && cli_others(&ds, o.classes, &others)) rc = 1;
	if (rc == 0 && cli_select(&ds, o.classes, o.contaminate, o.seed)) rc = 1;
	if (rc == 0 && !m) {
		m = ae_model_new(&o.spec, o.seed, &err);
		tr = m ? ae_trainer_new(m, (int)(o.batch + N - 1) / N, (int)o.threads_run, o.loss, &err) : NULL;
		if (!tr) {
			fprintf(stderr, "aetrain: %s\n", err.msg);
			rc = 1;
		}
	}
	if (rc == 0) {
		ae_trainer_set_reducer(tr, dist_reducer());
		rc = run(&o, m, tr, &ds, &others, p);
		if (rc < 0) rc = 1;
	}
	ae_dataset_free(&ds);
	ae_dataset_free(&others);
	ae_trainer_free(tr);
	ae_model_free(m);
	free(p);
	dist_end(rc);
	return rc;
}
