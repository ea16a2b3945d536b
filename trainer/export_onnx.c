/*
 * `aetrain export-onnx MODEL --out DIR`: the model's encoder, decoder and
 * whole autoencoder as ONNX files (core/onnx.c writes them), or, with
 * --triton, as a Triton model repository: one model folder per graph with
 * its config.pbtxt and the file as version 1.
 *
 * A command of its own rather than a flag of `export`, which writes images
 * of a data set: this one reads a model and writes model files.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "cli.h"
#include "ae/fileio.h"
#include "ae/modelfile.h"
#include "ae/onnx.h"

/* Triton's max_batch_size unless --max-batch: aeserve's own default. */
enum { DEFAULT_MAX_BATCH = 32, MAX_NAME = 64 };

static void export_onnx_usage(FILE *f)
{
	fprintf(f,
	        "usage: aetrain export-onnx MODEL --out DIR [options]\n"
	        "\n"
	        "Writes DIR/encoder.onnx, DIR/decoder.onnx and DIR/autoencoder.onnx (ONNX opset %d, any batch\n"
	        "size; the model file's metadata as metadata_props). docs/onnx.md describes them.\n"
	        "\n"
	        "  --out DIR           folder to write (created if missing)\n"
	        "  --triton            write DIR as a Triton model repository instead: DIR/NAME (the\n"
	        "                      autoencoder), DIR/NAME-encoder and DIR/NAME-decoder, each holding\n"
	        "                      config.pbtxt and 1/model.onnx\n"
	        "  --name NAME         the Triton model name (default: MODEL's file name without\n"
	        "                      .safetensors); letters, digits, '-', '_' and '.'\n"
	        "  --max-batch N       Triton's max_batch_size (1..1024, default %d)\n",
	        AE_ONNX_OPSET, DEFAULT_MAX_BATCH);
}

/* mkdir that accepts a folder already there; 0 or -1 (said why). */
static int make_dir(const char *path)
{
	if (mkdir(path, 0755) == 0 || errno == EEXIST) return 0;
	fprintf(stderr, "aetrain: cannot create %s: %s\n", path, strerror(errno));
	return -1;
}

/* A Triton model name: a folder name in the repository and a URL path
 * segment of its HTTP API, so nothing that would need escaping there. */
static int check_name(const char *s)
{
	size_t n = strlen(s);
	int ok = n > 0 && n <= MAX_NAME && s[0] != '.';
	for (size_t i = 0; ok && i < n; i++)
		ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		     s[i] == '-' || s[i] == '_' || s[i] == '.';
	if (!ok)
		fprintf(stderr,
		        "aetrain: --name: '%s' is not a model name (1 to %d letters, digits, '-', '_' or '.', "
		        "not starting with '.')\n",
		        s, MAX_NAME);
	return ok ? 0 : -1;
}

/* MODEL's file name without its folder and .safetensors into name. */
static void default_name(char *name, size_t cap, const char *path)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	snprintf(name, cap, "%s", base);
	char *dot = strstr(name, ".safetensors");
	if (dot && dot[12] == '\0') *dot = '\0';
}

static void put_tensors(FILE *f, const char *what, const ae_onnx_value *v, int n)
{
	fprintf(f, "%s [\n", what);
	for (int i = 0; i < n; i++) {
		fprintf(f, "  {\n    name: \"%s\"\n    data_type: TYPE_FP32\n    dims: [ ", v[i].name);
		/* without the batch: Triton adds it, up to max_batch_size */
		for (int d = 1; d < v[i].rank; d++)
			fprintf(f, "%s%lld", d > 1 ? ", " : "", (long long)v[i].d[d]);
		fprintf(f, " ]\n  }%s\n", i + 1 < n ? "," : "");
	}
	fprintf(f, "]\n");
}

/* DIR/NAME/config.pbtxt for part (Triton's ModelConfig, text format). */
static int write_config(const char *path, const char *name, const ae_model *m, ae_onnx_part part, int max_batch)
{
	ae_onnx_sig sig;
	ae_error err = { 0 };
	ae_atomic_file af;
	if (ae_onnx_signature(&m->net, part, &sig, &err) || ae_atomic_open(&af, path, &err)) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		return -1;
	}
	FILE *f = af.fp;
	fprintf(f, "# The %s of a libae autoencoder (task %s, weights %s), written by aetrain export-onnx.\n",
	        ae_onnx_part_name(part), m->task, m->checksum);
	fprintf(f, "name: \"%s\"\nplatform: \"onnxruntime_onnx\"\nbackend: \"onnxruntime\"\n", name);
	fprintf(f, "max_batch_size: %d\n", max_batch);
	put_tensors(f, "input", sig.in, sig.n_in);
	put_tensors(f, "output", sig.out, sig.n_out);
	fprintf(f, "dynamic_batching { }\n");
	fprintf(f,
	        "parameters [\n  { key: \"ae.checksum\" value: { string_value: \"%s\" } },\n"
	        "  { key: \"ae.task\" value: { string_value: \"%s\" } }\n]\n",
	        m->checksum, m->task);
	if (ae_atomic_commit(&af, &err)) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		return -1;
	}
	return 0;
}

/* path = a/b; 0, or -1 (said why) when it does not fit. */
static int join(char *path, size_t cap, const char *a, const char *b)
{
	if ((size_t)snprintf(path, cap, "%s/%s", a, b) < cap) return 0;
	fprintf(stderr, "aetrain: %s/%s: path too long\n", a, b);
	return -1;
}

/* One graph: DIR/PART.onnx, or with a Triton name DIR/MODEL/{config.pbtxt,1/model.onnx}. */
static int export_part(const ae_model *m, ae_onnx_part part, const char *out, const char *triton, int max_batch)
{
	char path[4096], dir[4096], ver[4096], name[MAX_NAME + 16], file[32];
	ae_error err = { 0 };
	if (triton) {
		/* check_name kept triton to MAX_NAME characters */
		if ((size_t)snprintf(name, sizeof name, "%s%s%s", triton, part == AE_ONNX_AUTOENCODER ? "" : "-",
		                     part == AE_ONNX_AUTOENCODER ? "" : ae_onnx_part_name(part)) >= sizeof name ||
		    join(dir, sizeof dir, out, name) || make_dir(dir) || join(path, sizeof path, dir, "config.pbtxt") ||
		    write_config(path, name, m, part, max_batch) || join(ver, sizeof ver, dir, "1") || make_dir(ver) ||
		    join(path, sizeof path, ver, "model.onnx"))
			return -1;
	} else {
		snprintf(file, sizeof file, "%s.onnx", ae_onnx_part_name(part));
		if (join(path, sizeof path, out, file)) return -1;
	}
	if (ae_onnx_write(m, part, path, &err)) {
		fprintf(stderr, "aetrain: %s: %s\n", path, err.msg);
		return -1;
	}
	printf("wrote %s\n", path);
	return 0;
}

int cmd_export_onnx(int argc, char **argv)
{
	enum { O_OUT = 1000, O_TRITON, O_NAME, O_MAX_BATCH, O_HELP };
	static const struct option lo[] = {
		{ "out", 1, 0, O_OUT },   { "triton", 0, 0, O_TRITON },
		{ "name", 1, 0, O_NAME }, { "max-batch", 1, 0, O_MAX_BATCH },
		{ "help", 0, 0, O_HELP }, { 0, 0, 0, 0 },
	};
	const char *out = NULL, *name = NULL;
	int triton = 0;
	long max_batch = DEFAULT_MAX_BATCH;
	int o;
	optind = 1;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case O_OUT: out = optarg; break;
		case O_TRITON: triton = 1; break;
		case O_NAME:
			if (check_name(optarg)) return 2;
			name = optarg;
			break;
		case O_MAX_BATCH:
			if (cli_int("--max-batch", optarg, 1, 1024, &max_batch)) return 2;
			break;
		case O_HELP: export_onnx_usage(stdout); return 0;
		default:
			fprintf(stderr, "aetrain: export-onnx: unknown option or missing value: %s\n",
			        argv[optind - 1]);
			return 2;
		}
	}
	if (argc - optind != 1 || !out) {
		fprintf(stderr,
		        "aetrain: export-onnx: expected MODEL and --out DIR (see aetrain export-onnx --help)\n");
		return 2;
	}
	const char *model = argv[optind];
	char guess[4096];
	if (triton && !name) {
		default_name(guess, sizeof guess, model);
		if (check_name(guess)) {
			fprintf(stderr, "aetrain: export-onnx: name the Triton models with --name\n");
			return 2;
		}
		name = guess;
	}
	ae_error err = { 0 };
	ae_model *m = ae_model_load(model, &err);
	if (!m) {
		fprintf(stderr, "aetrain: %s\n", err.msg);
		return 1;
	}
	int rc = make_dir(out) ? 1 : 0;
	for (int p = 0; rc == 0 && p < AE_ONNX_PARTS; p++)
		rc = export_part(m, (ae_onnx_part)p, out, triton ? name : NULL, (int)max_batch) ? 1 : 0;
	ae_model_free(m);
	return rc;
}
