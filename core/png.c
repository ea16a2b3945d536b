/*
 * PNG via libpng, from and to memory. libpng reports errors by longjmp; the
 * error callback records the message first so the caller's ae_error names
 * what libpng found.
 */
#include "ae/image.h"
#include "ae/fileio.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
	const uint8_t *buf;
	size_t len, at;
	char msg[200];
} reader;

static void on_error(png_structp png, png_const_charp msg)
{
	reader *r = png_get_error_ptr(png);
	if (r)
		snprintf(r->msg, sizeof r->msg, "%s", msg);
	png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
	(void)png;
	(void)msg;
}

static void read_mem(png_structp png, png_bytep out, png_size_t n)
{
	reader *r = png_get_io_ptr(png);
	if (n > r->len - r->at)
		png_error(png, "truncated: data ends early");
	memcpy(out, r->buf + r->at, n);
	r->at += n;
}

void ae_image_free(ae_image *img)
{
	if (img) {
		free(img->pix);
		img->pix = NULL;
	}
}

int ae_png_size(const uint8_t *buf, size_t len, int *w, int *h, ae_error *err)
{
	/* signature (8) + IHDR length and type (8) + width, height (8) */
	static const uint8_t sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
	if (len < 24 || memcmp(buf, sig, 8) != 0)
		return ae_fail(err, AE_ERR_FORMAT, "not a PNG (bad signature)");
	if (memcmp(buf + 12, "IHDR", 4) != 0)
		return ae_fail(err, AE_ERR_FORMAT, "PNG does not start with an IHDR chunk");
	uint32_t W = (uint32_t)buf[16] << 24 | (uint32_t)buf[17] << 16 | (uint32_t)buf[18] << 8 | buf[19];
	uint32_t H = (uint32_t)buf[20] << 24 | (uint32_t)buf[21] << 16 | (uint32_t)buf[22] << 8 | buf[23];
	if (W == 0 || H == 0 || W > 0x7fffffff || H > 0x7fffffff)
		return ae_fail(err, AE_ERR_FORMAT, "PNG header declares an invalid size %ux%u", W, H);
	*w = (int)W;
	*h = (int)H;
	return AE_OK;
}

/* Interleaved 8-bit rows with k channels (gray, gray+alpha, RGB, RGBA) to
 * planar want_c channels. */
static void to_planar(uint8_t *dst, uint8_t *const *rows, int k, int h, int w, int want_c)
{
	const size_t plane = (size_t)h * w;
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			const uint8_t *p = rows[y] + (size_t)x * k;
			unsigned r, g, b, a = 255;
			if (k <= 2) {
				r = g = b = p[0];
				if (k == 2) a = p[1];
			} else {
				r = p[0], g = p[1], b = p[2];
				if (k == 4) a = p[3];
			}
			if (a != 255) {
				r = (r * a + 127) / 255;
				g = (g * a + 127) / 255;
				b = (b * a + 127) / 255;
			}
			size_t i = (size_t)y * w + x;
			if (want_c == 1)
				dst[i] = k <= 2 ? (uint8_t)r : (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000);
			else {
				dst[i] = (uint8_t)r;
				dst[plane + i] = (uint8_t)g;
				dst[2 * plane + i] = (uint8_t)b;
			}
		}
}

int ae_png_decode(const uint8_t *buf, size_t len, int want_c, size_t max_pixels,
                  ae_image *img, ae_error *err)
{
	memset(img, 0, sizeof *img);
	if (want_c != 1 && want_c != 3)
		return ae_fail(err, AE_ERR_INVAL, "channels must be 1 or 3");
	int w0, h0, rc = ae_png_size(buf, len, &w0, &h0, err);
	if (rc)
		return rc;
	if ((size_t)w0 * (size_t)h0 > max_pixels)
		return ae_fail(err, AE_ERR_RANGE, "PNG is %dx%d, over the limit of %zu pixels", w0, h0, max_pixels);
	reader r = { .buf = buf, .len = len };
	png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, on_error, on_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	uint8_t **volatile rows = NULL;
	uint8_t *volatile pixels = NULL;
	if (!png || !info) {
		png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
		return ae_fail(err, AE_ERR_NOMEM, "out of memory starting libpng");
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_read_struct(&png, &info, NULL);
		free(rows);
		free(pixels);
		return ae_fail(err, AE_ERR_FORMAT, "invalid PNG: %s", r.msg[0] ? r.msg : "libpng error");
	}
	png_set_read_fn(png, &r, read_mem);
	png_set_user_limits(png, (png_uint_32)w0, (png_uint_32)h0);
	png_set_chunk_malloc_max(png, 8u << 20);
	png_read_info(png, info);
	png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
	png_set_expand(png);
	png_set_scale_16(png);
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
	int k = png_get_channels(png, info);
	size_t rowbytes = png_get_rowbytes(png, info);
	if (k < 1 || k > 4 || rowbytes != (size_t)w * k)
		png_error(png, "unexpected pixel layout after expansion");
	rows = malloc(h * sizeof *rows);
	pixels = malloc(rowbytes * h);
	if (!rows || !pixels)
		png_error(png, "out of memory for pixels");
	for (png_uint_32 y = 0; y < h; y++)
		rows[y] = pixels + y * rowbytes;
	png_read_image(png, rows);
	png_read_end(png, NULL);
	img->pix = malloc((size_t)want_c * w * h);
	if (!img->pix)
		png_error(png, "out of memory for pixels");
	to_planar(img->pix, rows, k, (int)h, (int)w, want_c);
	img->c = want_c;
	img->h = (int)h;
	img->w = (int)w;
	png_destroy_read_struct(&png, &info, NULL);
	free(rows);
	free(pixels);
	return AE_OK;
}

typedef struct writer {
	uint8_t *buf;
	size_t len, cap;
	int oom;
} writer;

static void write_mem(png_structp png, png_bytep data, png_size_t n)
{
	writer *wr = png_get_io_ptr(png);
	if (wr->len + n > wr->cap) {
		size_t cap = wr->cap ? wr->cap : 1024;
		while (cap < wr->len + n)
			cap *= 2;
		uint8_t *b = realloc(wr->buf, cap);
		if (!b) {
			wr->oom = 1;
			png_error(png, "out of memory encoding PNG");
		}
		wr->buf = b;
		wr->cap = cap;
	}
	memcpy(wr->buf + wr->len, data, n);
	wr->len += n;
}

static void flush_mem(png_structp png)
{
	(void)png;
}

int ae_png_encode(const uint8_t *pix, int c, int h, int w, uint8_t **out, size_t *len, ae_error *err)
{
	*out = NULL;
	*len = 0;
	if ((c != 1 && c != 3) || h <= 0 || w <= 0)
		return ae_fail(err, AE_ERR_INVAL, "cannot encode a %dx%dx%d image", c, h, w);
	writer wr = { 0 };
	reader er = { 0 };
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &er, on_error, on_warning);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	uint8_t *volatile row = malloc((size_t)w * c);
	if (!png || !info || !row) {
		png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
		free(row);
		return ae_fail(err, AE_ERR_NOMEM, "out of memory encoding PNG");
	}
	if (setjmp(png_jmpbuf(png))) {
		png_destroy_write_struct(&png, &info);
		free(row);
		free(wr.buf);
		return ae_fail(err, AE_ERR_NOMEM, "PNG encoding failed: %s", er.msg);
	}
	png_set_write_fn(png, &wr, write_mem, flush_mem);
	/* Small images: speed matters more than a few bytes. */
	png_set_compression_level(png, 1);
	png_set_filter(png, 0, PNG_FILTER_NONE);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
	             PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	const size_t plane = (size_t)h * w;
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++)
			for (int ch = 0; ch < c; ch++)
				row[(size_t)x * c + ch] = pix[ch * plane + (size_t)y * w + x];
		png_write_row(png, row);
	}
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	free(row);
	*out = wr.buf;
	*len = wr.len;
	return AE_OK;
}

int ae_png_write_file(const char *path, const uint8_t *pix, int c, int h, int w, ae_error *err)
{
	uint8_t *buf;
	size_t len;
	int rc = ae_png_encode(pix, c, h, w, &buf, &len, err);
	if (rc)
		return rc;
	ae_atomic_file af;
	rc = ae_atomic_open(&af, path, err);
	if (rc == AE_OK) {
		fwrite(buf, 1, len, af.fp);
		rc = ae_atomic_commit(&af, err);
	}
	free(buf);
	return rc;
}

void ae_float_to_u8(uint8_t *dst, const float *src, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		float v = src[i] * 255.0f + 0.5f;
		dst[i] = (uint8_t)(v <= 0.0f ? 0.0f : v >= 255.0f ? 255.0f : v);
	}
}
