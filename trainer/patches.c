/*
 * `aetrain patches PHOTO.png... --size HxW --out DIR`: cuts photographs
 * into patches, the training data of models of photographs (a folder of
 * same-size PNGs, which `train --data DIR` reads). Patches are taken on a
 * grid with the stride asked, optionally after scaling each photograph
 * down, and written as DIR/STEM-ROW-COL.png; nothing is random, so the
 * same photographs give the same data.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "ae/fileio.h"
#include "ae/image.h"
#include "cli.h"

/* The largest photograph read: 8k x 8k. */
#define MAX_PHOTO_PIXELS (8192u * 8192u)

static void patches_usage(FILE *f)
{
	fprintf(f, "usage: aetrain patches PHOTO.png... --size HxW --out DIR [options]\n"
	           "\n"
	           "Cuts PNG photographs into patches of HxW pixels, written as DIR/STEM-ROW-COL.png.\n"
	           "\n"
	           "  --size HxW          patch size (required)\n"
	           "  --out DIR           folder to write (created if missing)\n"
	           "  --stride N          pixels between patches (default: the patch's height)\n"
	           "  --scale K           shrink each photograph K times first (default 1), so that a\n"
	           "                      patch holds more of the scene\n"
	           "  --channels C        3 (default) or 1\n");
}

typedef struct patch_opts {
	int size[2];
	long stride, scale, channels;
	const char *out;
} patch_opts;

/* One photograph: its patches written; the count, or -1. */
static int cut(const char *path, const patch_opts *o)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	ae_image img = { 0 };
	ae_error err = { 0 };
	int rc = ae_read_file(path, 256u << 20, &buf, &len, &err);
	if (rc == 0) {
		rc = ae_png_decode(buf, len, (int)o->channels, MAX_PHOTO_PIXELS, &img, &err);
		free(buf);
	}
	if (rc) {
		fprintf(stderr, "aetrain: %s: %s\n", path, err.msg);
		return -1;
	}
	const int c = img.c, h = img.h / (int)o->scale, w = img.w / (int)o->scale, ph = o->size[0], pw = o->size[1];
	float *f = malloc((size_t)c * h * w * sizeof *f);
	uint8_t *photo = malloc((size_t)c * h * w), *patch = malloc((size_t)c * ph * pw);
	int n = 0;
	if (!f || !photo || !patch) {
		fprintf(stderr, "aetrain: %s: out of memory\n", path);
		n = -1;
	} else {
		ae_resample_bilinear(img.pix, c, img.h, img.w, f, h, w);
		ae_float_to_u8(photo, f, (size_t)c * h * w);
	}
	const char *slash = strrchr(path, '/'), *stem = slash ? slash + 1 : path, *dot = strrchr(stem, '.');
	int stem_len = dot ? (int)(dot - stem) : (int)strlen(stem);
	for (int y = 0; n >= 0 && y + ph <= h; y += (int)o->stride)
		for (int x = 0; n >= 0 && x + pw <= w; x += (int)o->stride) {
			for (int ch = 0; ch < c; ch++)
				for (int r = 0; r < ph; r++)
					memcpy(patch + ((size_t)ch * ph + r) * pw,
					       photo + ((size_t)ch * h + y + r) * w + x, (size_t)pw);
			char out[4096];
			snprintf(out, sizeof out, "%s/%.*s-%04d-%04d.png", o->out, stem_len, stem, y, x);
			if (ae_png_write_file(out, patch, c, ph, pw, &err)) {
				fprintf(stderr, "aetrain: %s\n", err.msg);
				n = -1;
			} else
				n++;
		}
	if (n == 0) fprintf(stderr, "aetrain: %s: %dx%d after scaling, smaller than a patch\n", path, h, w);
	free(f), free(photo), free(patch);
	ae_image_free(&img);
	return n;
}

int cmd_patches(int argc, char **argv)
{
	enum { O_SIZE = 1000, O_OUT, O_STRIDE, O_SCALE, O_CHANNELS, O_HELP };
	static const struct option lo[] = {
		{ "size", 1, 0, O_SIZE },
		{ "out", 1, 0, O_OUT },
		{ "stride", 1, 0, O_STRIDE },
		{ "scale", 1, 0, O_SCALE },
		{ "channels", 1, 0, O_CHANNELS },
		{ "help", 0, 0, O_HELP },
		{ 0, 0, 0, 0 },
	};
	patch_opts o = { .stride = 0, .scale = 1, .channels = 3 };
	int opt;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case O_SIZE:
			if (cli_size("--size", optarg, o.size)) return 2;
			break;
		case O_OUT: o.out = optarg; break;
		case O_STRIDE:
			if (cli_int("--stride", optarg, 1, 8192, &o.stride)) return 2;
			break;
		case O_SCALE:
			if (cli_int("--scale", optarg, 1, 64, &o.scale)) return 2;
			break;
		case O_CHANNELS:
			if (cli_channels(optarg, &o.channels)) return 2;
			break;
		case O_HELP: patches_usage(stdout); return 0;
		default:
			fprintf(stderr, "aetrain: patches: unknown option or missing value: %s\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind >= argc || !o.out || !o.size[0]) {
		fprintf(stderr, "aetrain: patches: expected PHOTO.png..., --size HxW and --out DIR (see aetrain "
		                "patches --help)\n");
		return 2;
	}
	if (!o.stride) o.stride = o.size[0];
	mkdir(o.out, 0755);
	long total = 0;
	for (int i = optind; i < argc; i++) {
		int n = cut(argv[i], &o);
		if (n < 0) return 1;
		total += n;
	}
	printf("wrote %ld patches of %dx%d to %s\n", total, o.size[0], o.size[1], o.out);
	return 0;
}
