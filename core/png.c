/*
 * PNG via libpng, from and to memory. libpng reports errors by longjmp; the
 * error callback records the message first so the caller's ae_error names
 * what libpng found.
 *
 * Decoding trusts nothing it has not bounded first: the chunk list is
 * walked and every declared length checked against the bytes present, the
 * pixel count against the caller's limit, and the compressed image data
 * inflated against the exact size the header implies, all before libpng
 * allocates or inflates anything.
 */
#include "ae/image.h"
#include "ae/fileio.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
/* zlib's next_in is a pointer to const only when asked for. */
#define ZLIB_CONST
#include <zlib.h>

typedef struct reader {
	const uint8_t *buf;
	size_t len, at;
	char msg[200];
} reader;

static void on_error(png_structp png, png_const_charp msg)
{
	reader *r = png_get_error_ptr(png);
	if (r) snprintf(r->msg, sizeof r->msg, "%s", msg);
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
	if (n > r->len - r->at) png_error(png, "truncated: data ends early");
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

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Channels of a PNG colour type, 0 if it is not one. */
static int type_channels(int color_type)
{
	switch (color_type) {
	case 0: return 1; /* gray */
	case 2: return 3; /* RGB */
	case 3: return 1; /* palette index */
	case 4: return 2; /* gray + alpha */
	case 6: return 4; /* RGBA */
	default: return 0;
	}
}

static int depth_ok(int color_type, int d)
{
	switch (color_type) {
	case 0: return d == 1 || d == 2 || d == 4 || d == 8 || d == 16;
	case 3: return d == 1 || d == 2 || d == 4 || d == 8;
	default: return d == 8 || d == 16;
	}
}

/* Bytes of filtered scanlines (one filter byte each) for a w x h image,
 * the whole of what its compressed data must inflate to. Adam7 stores
 * seven sub-images. */
static uint64_t raw_bytes(uint64_t w, uint64_t h, int bits_per_pixel, int interlaced)
{
	static const int x0[7] = { 0, 4, 0, 2, 0, 1, 0 }, dx[7] = { 8, 8, 4, 4, 2, 2, 1 };
	static const int y0[7] = { 0, 0, 4, 0, 2, 0, 1 }, dy[7] = { 8, 8, 8, 4, 4, 2, 2 };
	if (!interlaced) return h * (1 + (w * (uint64_t)bits_per_pixel + 7) / 8);
	uint64_t total = 0;
	for (int p = 0; p < 7; p++) {
		uint64_t pw = w > (uint64_t)x0[p] ? (w - x0[p] + dx[p] - 1) / dx[p] : 0;
		uint64_t ph = h > (uint64_t)y0[p] ? (h - y0[p] + dy[p] - 1) / dy[p] : 0;
		if (pw && ph) total += ph * (1 + (pw * (uint64_t)bits_per_pixel + 7) / 8);
	}
	return total;
}

int ae_png_inspect(const uint8_t *buf, size_t len, ae_png_info *info, ae_error *err)
{
	static const uint8_t sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
	memset(info, 0, sizeof *info);
	if (len < 8 || memcmp(buf, sig, 8) != 0) return ae_fail(err, AE_ERR_FORMAT, "not a PNG (bad signature)");
	if (len < 33 || be32(buf + 8) != 13 || memcmp(buf + 12, "IHDR", 4) != 0)
		return ae_fail(err, AE_ERR_FORMAT, "PNG does not start with a complete IHDR chunk");
	const uint8_t *ih = buf + 16;
	uint32_t W = be32(ih), H = be32(ih + 4);
	int depth = ih[8], type = ih[9], k = type_channels(type);
	if (W == 0 || H == 0 || W > 0x7fffffff || H > 0x7fffffff)
		return ae_fail(err, AE_ERR_FORMAT, "PNG header declares an invalid size %ux%u", W, H);
	if (!k || !depth_ok(type, depth) || ih[10] != 0 || ih[11] != 0 || ih[12] > 1)
		return ae_fail(err, AE_ERR_FORMAT, "PNG header is invalid (colour type %d, bit depth %d)", type, depth);
	info->w = (int)W;
	info->h = (int)H;
	info->bit_depth = depth;
	info->color_type = type;
	info->interlaced = ih[12];
	info->raw_bytes = raw_bytes(W, H, depth * k, ih[12]);
	/* Every chunk's declared length must fit in what was sent: no length
	 * field can make a decoder reserve more than the file holds. */
	size_t at = 8;
	int n_idat = 0, idat_run_over = 0;
	for (;;) {
		if (len - at < 12)
			return ae_fail(err, AE_ERR_FORMAT, "PNG is truncated: it ends before its IEND chunk");
		uint32_t n = be32(buf + at);
		const uint8_t *type4 = buf + at + 4;
		if (n > 0x7fffffff || n > len - at - 12)
			return ae_fail(err, AE_ERR_FORMAT,
			               "PNG is truncated or corrupt: a chunk declares %u bytes, %zu remain", n,
			               len - at - 12);
		for (int i = 0; i < 4; i++)
			if (!((type4[i] >= 'A' && type4[i] <= 'Z') || (type4[i] >= 'a' && type4[i] <= 'z')))
				return ae_fail(err, AE_ERR_FORMAT, "PNG is corrupt: a chunk type is not four letters");
		if (memcmp(type4, "IDAT", 4) == 0) {
			if (idat_run_over)
				return ae_fail(err, AE_ERR_FORMAT,
				               "PNG is corrupt: its IDAT chunks are not consecutive");
			n_idat++;
		} else if (n_idat)
			idat_run_over = 1;
		at += 12 + (size_t)n;
		if (memcmp(type4, "IEND", 4) == 0) break;
	}
	if (!n_idat) return ae_fail(err, AE_ERR_FORMAT, "PNG has no image data (no IDAT chunk)");
	return AE_OK;
}

/* Inflates the IDAT chunks' zlib stream into a small scratch buffer and
 * refuses it once it passes the size the header implies: a stream that
 * inflates to gigabytes is stopped at its first excess kilobytes, before
 * libpng (which would inflate all of it on one thread) sees it. */
static int check_inflate(const uint8_t *buf, size_t len, const ae_png_info *info, ae_error *err)
{
	uint8_t scratch[16384];
	z_stream z = { 0 };
	if (inflateInit(&z) != Z_OK) return ae_fail(err, AE_ERR_NOMEM, "out of memory starting zlib");
	uint64_t out = 0;
	int zr = Z_OK;
	for (size_t at = 8; zr == Z_OK && len - at >= 12;) {
		uint32_t n = be32(buf + at);
		if (memcmp(buf + at + 4, "IEND", 4) == 0) break;
		if (memcmp(buf + at + 4, "IDAT", 4) == 0) {
			z.next_in = buf + at + 8;
			z.avail_in = n;
			while (zr == Z_OK && z.avail_in) {
				z.next_out = scratch;
				z.avail_out = sizeof scratch;
				zr = inflate(&z, Z_NO_FLUSH);
				out += sizeof scratch - z.avail_out;
				if (out > info->raw_bytes) break;
				if (zr == Z_BUF_ERROR && z.avail_out) zr = Z_OK; /* wants the next chunk */
			}
			if (out > info->raw_bytes) break;
		}
		at += 12 + (size_t)n;
	}
	inflateEnd(&z);
	if (out > info->raw_bytes)
		return ae_fail(
		        err, AE_ERR_FORMAT,
		        "PNG image data inflates past the %llu bytes its %dx%d header implies (a decompression bomb?)",
		        (unsigned long long)info->raw_bytes, info->w, info->h);
	if (zr != Z_OK && zr != Z_STREAM_END)
		return ae_fail(err, AE_ERR_FORMAT, "invalid PNG: image data is not a valid zlib stream (%s)",
		               z.msg ? z.msg : "corrupt");
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

int ae_png_decode(const uint8_t *buf, size_t len, int want_c, size_t max_pixels, ae_image *img, ae_error *err)
{
	memset(img, 0, sizeof *img);
	if (want_c != 1 && want_c != 3) return ae_fail(err, AE_ERR_INVAL, "channels must be 1 or 3");
	ae_png_info pi;
	int rc = ae_png_inspect(buf, len, &pi, err);
	if (rc) return rc;
	const int w0 = pi.w, h0 = pi.h;
	if ((size_t)w0 * (size_t)h0 > max_pixels)
		return ae_fail(err, AE_ERR_RANGE, "PNG is %dx%d, over the limit of %zu pixels", w0, h0, max_pixels);
	if ((rc = check_inflate(buf, len, &pi, err))) return rc;
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
	/* Text, profiles, palettes of suggestions, EXIF: nothing we use, and
	 * each a decoder that allocates or inflates. Skipped unread; only the
	 * chunks that shape pixels (PLTE, tRNS, IDAT) are decoded. */
	png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
	png_read_info(png, info);
	png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
	png_set_expand(png);
	png_set_scale_16(png);
	png_set_interlace_handling(png);
	png_read_update_info(png, info);
	int k = png_get_channels(png, info);
	size_t rowbytes = png_get_rowbytes(png, info);
	if (k < 1 || k > 4 || rowbytes != (size_t)w * k) png_error(png, "unexpected pixel layout after expansion");
	rows = malloc(h * sizeof *rows);
	pixels = malloc(rowbytes * h);
	if (!rows || !pixels) png_error(png, "out of memory for pixels");
	for (png_uint_32 y = 0; y < h; y++)
		rows[y] = pixels + y * rowbytes;
	png_read_image(png, rows);
	png_read_end(png, NULL);
	img->pix = malloc((size_t)want_c * w * h);
	if (!img->pix) png_error(png, "out of memory for pixels");
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
	if (rc) return rc;
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
