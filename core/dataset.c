/*
 * Data sets from IDX files or folders of PNGs, and float batches from them.
 */
#include "ae/dataset.h"
#include "ae/idx.h"
#include "ae/fileio.h"
#include "ae/image.h"
#include "ae/rng.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void ae_dataset_free(ae_dataset *ds)
{
	if (!ds) return;
	free(ds->pix);
	free(ds->labels);
	free(ds->input);
	for (int i = 0; ds->names && i < ds->n_names; i++)
		free(ds->names[i]);
	free(ds->names);
	ds->pix = NULL;
	ds->labels = NULL;
	ds->input = NULL;
	ds->names = NULL;
}

static int exists(const char *p)
{
	struct stat sb;
	return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* ".../x-images-idx3-ubyte[.gz]" -> ".../x-labels-idx1-ubyte[.gz]" if present. */
static int labels_path(const char *images, char *out, size_t cap)
{
	const char *at = strstr(images, "images-idx3-ubyte");
	if (!at) return 0;
	snprintf(out, cap, "%.*slabels-idx1-ubyte%s", (int)(at - images), images, at + strlen("images-idx3-ubyte"));
	return exists(out);
}

static void gray_to_channels(ae_dataset *ds, uint8_t *gray, int want_c)
{
	if (want_c == 1) {
		ds->pix = gray;
		return;
	}
	size_t plane = (size_t)ds->h * ds->w;
	for (int i = 0; i < ds->n; i++)
		for (int c = 0; c < 3; c++)
			memcpy(ds->pix + ((size_t)i * 3 + c) * plane, gray + (size_t)i * plane, plane);
	free(gray);
}

static int load_idx(ae_dataset *ds, const char *path, int want_c, ae_error *err)
{
	uint8_t *img = NULL, *lab = NULL;
	int nd, dims[3];
	char lp[1024];
	int rc = ae_idx_read(path, &img, &nd, dims, err);
	if (rc) return rc;
	if (nd != 3) {
		rc = ae_fail(err, AE_ERR_FORMAT, "%s: %d dimensions; an images file has 3 (count, rows, columns)", path,
		             nd);
		goto out;
	}
	ds->n = dims[0], ds->h = dims[1], ds->w = dims[2], ds->c = want_c;
	if (want_c == 3 && !(ds->pix = malloc((size_t)ds->n * 3 * ds->h * ds->w))) {
		rc = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory", path);
		goto out;
	}
	gray_to_channels(ds, img, want_c);
	img = NULL; /* the data set's now */
	if (!labels_path(path, lp, sizeof lp)) goto out;
	if ((rc = ae_idx_read(lp, &lab, &nd, dims, err))) goto out;
	if (nd != 1 || dims[0] != ds->n) {
		rc = ae_fail(err, AE_ERR_FORMAT, "%s: %d labels disagree with %d images in %s", lp,
		             nd == 1 ? dims[0] : -1, ds->n, path);
		goto out;
	}
	if (!(ds->labels = malloc((size_t)ds->n * sizeof *ds->labels))) {
		rc = ae_fail(err, AE_ERR_NOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < ds->n; i++) {
		ds->labels[i] = lab[i];
		if (lab[i] + 1 > ds->n_classes) ds->n_classes = lab[i] + 1;
	}
out:
	free(img);
	free(lab);
	return rc;
}

/* ---- PNG folders ---- */

typedef struct file_list {
	char **path;
	int16_t *label;
	int n, cap;
	int n_classes;
} file_list;

static int list_add(file_list *fl, const char *path, int label)
{
	if (fl->n == fl->cap) {
		int cap = fl->cap ? fl->cap * 2 : 256;
		char **p = realloc(fl->path, (size_t)cap * sizeof *p);
		if (p) fl->path = p;
		int16_t *l = realloc(fl->label, (size_t)cap * sizeof *l);
		if (l) fl->label = l;
		if (!p || !l) return -1;
		fl->cap = cap;
	}
	if (!(fl->path[fl->n] = strdup(path))) return -1;
	fl->label[fl->n++] = (int16_t)label;
	return 0;
}

static void list_free(file_list *fl)
{
	for (int i = 0; i < fl->n; i++)
		free(fl->path[i]);
	free(fl->path);
	free(fl->label);
}

static int is_png_name(const char *n)
{
	size_t l = strlen(n);
	return l > 4 && strcasecmp(n + l - 4, ".png") == 0;
}

static int skip_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Adds the PNGs of dir (label) and, at depth 0, its subfolders as classes. */
static int scan(file_list *fl, const char *dir, int depth, int label, ae_error *err)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, skip_dot, alphasort);
	if (n < 0) return ae_fail(err, AE_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
	int rc = AE_OK;
	char p[4096];
	for (int i = 0; i < n; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, ents[i]->d_name);
		struct stat sb;
		if (rc == AE_OK && stat(p, &sb) == 0) {
			if (S_ISDIR(sb.st_mode) && depth == 0) {
				rc = scan(fl, p, 1, fl->n_classes, err);
				fl->n_classes++;
			} else if (S_ISREG(sb.st_mode) && is_png_name(ents[i]->d_name)) {
				if (list_add(fl, p, label))
					rc = ae_fail(err, AE_ERR_NOMEM, "out of memory listing %s", dir);
			}
		}
		free(ents[i]);
	}
	free(ents);
	return rc;
}

/* One planar 8-bit image (c, h, w) resampled into dst (c, oh, ow); f is
 * scratch of c*oh*ow floats. */
static void resample_u8(const uint8_t *src, int c, int h, int w, uint8_t *dst, int oh, int ow, float *f)
{
	ae_resample_bilinear(src, c, h, w, f, oh, ow);
	ae_float_to_u8(dst, f, (size_t)c * oh * ow);
}

/* Every image of the set resampled to oh x ow, in place of the old. */
static int resample_set(ae_dataset *ds, int oh, int ow, ae_error *err)
{
	const size_t in = (size_t)ds->c * ds->h * ds->w, out = (size_t)ds->c * oh * ow;
	uint8_t *pix = malloc((size_t)ds->n * out);
	float *f = malloc(out * sizeof *f);
	if (!pix || !f) {
		free(pix), free(f);
		return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory resampling %d images to %dx%d", ds->source, ds->n,
		               ow, oh);
	}
	for (int i = 0; i < ds->n; i++)
		resample_u8(ds->pix + (size_t)i * in, ds->c, ds->h, ds->w, pix + (size_t)i * out, oh, ow, f);
	free(f);
	free(ds->pix);
	ds->pix = pix, ds->h = oh, ds->w = ow;
	return AE_OK;
}

/* A folder of PNGs: every one the size of the first, or, with oh > 0,
 * each resampled to oh x ow as it is read (so photographs of any sizes
 * make one set, and memory is the resampled set's). */
static int load_png_dir(ae_dataset *ds, const char *dir, int want_c, int oh, int ow, ae_error *err)
{
	file_list fl = { 0 };
	float *scratch = NULL;
	int rc = scan(&fl, dir, 0, -1, err);
	if (rc == AE_OK && fl.n == 0) rc = ae_fail(err, AE_ERR_FORMAT, "%s: no PNG files and no IDX files found", dir);
	int labelled = 1;
	for (int i = 0; i < fl.n; i++)
		labelled &= fl.label[i] >= 0;
	for (int i = 0; rc == AE_OK && i < fl.n; i++) {
		uint8_t *buf;
		size_t len;
		ae_image img;
		if ((rc = ae_read_file(fl.path[i], 64u << 20, &buf, &len, err))) break;
		rc = ae_png_decode(buf, len, want_c, AE_PNG_MAX_PIXELS, &img, err);
		free(buf);
		if (rc) {
			ae_error_prefix(err, fl.path[i]);
			break;
		}
		if (i == 0) {
			ds->n = fl.n, ds->c = want_c, ds->h = oh > 0 ? oh : img.h, ds->w = oh > 0 ? ow : img.w;
			ds->pix = malloc((size_t)fl.n * want_c * ds->h * ds->w);
			scratch = oh > 0 ? malloc((size_t)want_c * oh * ow * sizeof *scratch) : NULL;
			if (!ds->pix || (oh > 0 && !scratch))
				rc = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory for %d images", dir, fl.n);
		} else if (oh <= 0 && (img.h != ds->h || img.w != ds->w)) {
			rc = ae_fail(
			        err, AE_ERR_FORMAT,
			        "%s: image is %dx%d, the first image (%s) is %dx%d (--resize HxW resamples them all)",
			        fl.path[i], img.w, img.h, fl.path[0], ds->w, ds->h);
		}
		if (rc == AE_OK) {
			uint8_t *dst = ds->pix + (size_t)i * want_c * ds->h * ds->w;
			if (oh > 0)
				resample_u8(img.pix, want_c, img.h, img.w, dst, oh, ow, scratch);
			else
				memcpy(dst, img.pix, (size_t)want_c * img.h * img.w);
		}
		ae_image_free(&img);
	}
	free(scratch);
	if (rc == AE_OK && labelled && fl.n_classes > 0) {
		ds->labels = fl.label;
		ds->n_classes = fl.n_classes;
		fl.label = NULL;
	}
	/* The names, relative to the folder: what pairs one folder's files with another's. */
	if (rc == AE_OK) {
		const size_t skip = strlen(dir) + 1;
		ds->names = fl.path;
		ds->n_names = fl.n;
		for (int i = 0; i < fl.n; i++)
			memmove(fl.path[i], fl.path[i] + skip, strlen(fl.path[i] + skip) + 1);
		fl.path = NULL;
		fl.n = 0;
	}
	list_free(&fl);
	return rc;
}

int ae_dataset_load(ae_dataset *ds, const char *path, const char *split, int want_c, ae_error *err)
{
	return ae_dataset_load_sized(ds, path, split, want_c, 0, 0, err);
}

int ae_dataset_load_sized(ae_dataset *ds, const char *path, const char *split, int want_c, int h, int w, ae_error *err)
{
	memset(ds, 0, sizeof *ds);
	snprintf(ds->source, sizeof ds->source, "%s", path);
	if (want_c != 1 && want_c != 3) return ae_fail(err, AE_ERR_INVAL, "channels must be 1 or 3");
	if (h < 0 || w < 0 || (h > 0) != (w > 0) || h > 4096 || w > 4096)
		return ae_fail(err, AE_ERR_INVAL, "size %dx%d out of range (1..4096)", w, h);
	struct stat sb;
	if (stat(path, &sb) != 0) return ae_fail(err, AE_ERR_IO, "%s: %s", path, strerror(errno));
	int rc;
	if (S_ISDIR(sb.st_mode)) {
		const char *pre = split && strcmp(split, "test") == 0 ? "t10k" : "train";
		char p[4096];
		snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", path, pre);
		if (!exists(p)) snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", path, pre);
		if (exists(p)) {
			snprintf(ds->source, sizeof ds->source, "%s", p);
			rc = load_idx(ds, p, want_c, err);
		} else
			rc = load_png_dir(ds, path, want_c, h, w, err);
	} else
		rc = load_idx(ds, path, want_c, err);
	if (rc == AE_OK && h > 0 && (ds->h != h || ds->w != w)) rc = resample_set(ds, h, w, err);
	if (rc) ae_dataset_free(ds);
	return rc;
}

int ae_dataset_pair(ae_dataset *targets, ae_dataset *inputs, ae_error *err)
{
	if (!targets->names || !inputs->names)
		return ae_fail(err, AE_ERR_INVAL, "pairs are two folders of PNG files paired by name; %s is not one",
		               targets->names ? inputs->source : targets->source);
	if (targets->c != inputs->c || targets->h != inputs->h || targets->w != inputs->w)
		return ae_fail(err, AE_ERR_INVAL,
		               "%s holds %dx%d images, %s %dx%d (height x width): pairs are one size", inputs->source,
		               inputs->h, inputs->w, targets->source, targets->h, targets->w);
	for (int i = 0; i < targets->n || i < inputs->n; i++) {
		const char *a = i < inputs->n ? inputs->names[i] : NULL, *b = i < targets->n ? targets->names[i] : NULL;
		if (!a || !b || strcmp(a, b) != 0) {
			/* both lists are sorted: the smaller name is the one alone */
			int in_only = a && (!b || strcmp(a, b) < 0);
			return ae_fail(err, AE_ERR_INVAL, "%s/%s has no partner in %s",
			               in_only ? inputs->source : targets->source, in_only ? a : b,
			               in_only ? targets->source : inputs->source);
		}
	}
	free(targets->input);
	targets->input = inputs->pix;
	inputs->pix = NULL;
	ae_dataset_free(inputs);
	return AE_OK;
}

void ae_dataset_batch_inputs(const ae_dataset *ds, const int *idx, int n, float *out)
{
	const size_t per = (size_t)ds->c * ds->h * ds->w;
	const uint8_t *pix = ds->input ? ds->input : ds->pix;
	for (int i = 0; i < n; i++) {
		const uint8_t *src = pix + (size_t)idx[i] * per;
		float *dst = out + (size_t)i * per;
		for (size_t j = 0; j < per; j++)
			dst[j] = src[j] * (1.0f / 255.0f);
	}
}

void ae_dataset_batch(const ae_dataset *ds, const int *idx, int n, float *out)
{
	const size_t per = (size_t)ds->c * ds->h * ds->w;
	for (int i = 0; i < n; i++) {
		const uint8_t *src = ds->pix + (size_t)idx[i] * per;
		float *dst = out + (size_t)i * per;
		for (size_t j = 0; j < per; j++)
			dst[j] = src[j] * (1.0f / 255.0f);
	}
}

/* The stream that picks contaminating images: its own tag, so that the
 * choice never shares a stream with shuffling or noise. */
#define SELECT_STREAM 0x5e1ec7

int ae_dataset_select(ae_dataset *ds, uint64_t keep, int extra, double fraction, uint64_t seed, ae_error *err)
{
	if (!ds->labels) return ae_fail(err, AE_ERR_INVAL, "%s has no labels to select classes by", ds->source);
	if (extra >= AE_DATASET_MAX_CLASSES || fraction < 0.0 || fraction >= 1.0 || (extra >= 0 && (keep >> extra & 1)))
		return ae_fail(err, AE_ERR_INVAL, "a contaminating class must be another class, its share in [0, 1)");
	int n_keep = 0, n_pool = 0;
	for (int i = 0; i < ds->n; i++) {
		int c = ds->labels[i];
		n_keep += c >= 0 && c < AE_DATASET_MAX_CLASSES && (keep >> c & 1);
		n_pool += c == extra;
	}
	if (n_keep == 0) return ae_fail(err, AE_ERR_INVAL, "%s holds no image of the classes asked", ds->source);
	/* The contaminating images make up `fraction` of the result. */
	int n_extra = extra < 0 ? 0 : (int)((double)n_keep * fraction / (1.0 - fraction) + 0.5);
	if (n_extra > n_pool)
		return ae_fail(err, AE_ERR_INVAL, "%s holds %d images of class %d; %d are needed", ds->source, n_pool,
		               extra, n_extra);
	/* Which of the pool: a seeded shuffle of its positions, first n_extra. */
	int *pool = malloc((size_t)(n_pool ? n_pool : 1) * sizeof *pool);
	uint8_t *take = calloc((size_t)ds->n, 1);
	if (!pool || !take) {
		free(pool), free(take);
		return ae_fail(err, AE_ERR_NOMEM, "out of memory selecting classes");
	}
	for (int i = 0, k = 0; i < ds->n; i++)
		if (ds->labels[i] == extra) pool[k++] = i;
	ae_rng r;
	ae_rng_seed_stream(&r, seed, SELECT_STREAM, 0);
	ae_rng_shuffle(&r, pool, n_pool);
	for (int k = 0; k < n_extra; k++)
		take[pool[k]] = 1;
	/* Compact in place, keeping the images' order. */
	const size_t per = (size_t)ds->c * ds->h * ds->w;
	int out = 0;
	for (int i = 0; i < ds->n; i++) {
		int c = ds->labels[i];
		if (!(take[i] || (c >= 0 && c < AE_DATASET_MAX_CLASSES && (keep >> c & 1)))) continue;
		if (out != i) {
			memmove(ds->pix + (size_t)out * per, ds->pix + (size_t)i * per, per);
			if (ds->input) memmove(ds->input + (size_t)out * per, ds->input + (size_t)i * per, per);
			ds->labels[out] = ds->labels[i];
		}
		out++;
	}
	ds->n = out;
	free(pool);
	free(take);
	return AE_OK;
}
