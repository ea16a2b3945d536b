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
 *
 * What the service sees most (8-bit gray, gray+alpha, RGB or RGBA, not
 * interlaced, no transparency key) is decoded and encoded here without
 * libpng: one inflate into a buffer of exactly the size the header
 * implies (so a bomb stops at it), the five row filters undone, and for
 * encoding the rows deflated whole with a window no larger than the
 * image. For a 28x28 digit libpng took 30 us to decode and 85-125 us to
 * encode, most of the encode in zlib's default state (about 256 KB,
 * mapped and zeroed on every call), as long as the model's forward pass.
 * Everything else still goes through libpng.
 */
#include "ae/image.h"
#include "ae/fileio.h"
#include "deflate.h"

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
	if (k == want_c) { /* gray to gray, RGB to RGB: nothing to mix */
		for (int y = 0; y < h; y++)
			for (int ch = 0; ch < k; ch++) {
				uint8_t *d = dst + ch * plane + (size_t)y * w;
				const uint8_t *p = rows[y] + ch;
				for (int x = 0; x < w; x++)
					d[x] = p[(size_t)x * k];
			}
		return;
	}
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

/* ---- without libpng: 8-bit, not interlaced, no transparency key ---- */

/* Whether the fast path takes the file: 8-bit gray, gray+alpha, RGB or
 * RGBA, not interlaced, and no chunk it does not handle that could change
 * the pixels or must fail (tRNS; an unknown critical chunk). */
static int fast_decodable(const uint8_t *buf, size_t len, const ae_png_info *pi)
{
	if (pi->bit_depth != 8 || pi->interlaced || pi->color_type == 3) return 0;
	for (size_t at = 8; len - at >= 12;) {
		uint32_t n = be32(buf + at);
		const uint8_t *t = buf + at + 4;
		if (memcmp(t, "tRNS", 4) == 0) return 0;
		if (t[0] >= 'A' && t[0] <= 'Z' && memcmp(t, "IHDR", 4) != 0 && memcmp(t, "PLTE", 4) != 0 &&
		    memcmp(t, "IDAT", 4) != 0 && memcmp(t, "IEND", 4) != 0)
			return 0;
		at += 12 + (size_t)n;
		if (memcmp(t, "IEND", 4) == 0) break;
	}
	return 1;
}

static int paeth(int a, int b, int c)
{
	int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
	return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Undoes row y's filter in place (rowbytes bytes after its filter byte;
 * prev the row above, unfiltered, or NULL); bpp bytes per pixel. */
static int unfilter(uint8_t *row, const uint8_t *prev, size_t rowbytes, int bpp, int filter)
{
	switch (filter) {
	case 0: break;
	case 1:
		for (size_t i = (size_t)bpp; i < rowbytes; i++)
			row[i] = (uint8_t)(row[i] + row[i - bpp]);
		break;
	case 2:
		for (size_t i = 0; prev && i < rowbytes; i++)
			row[i] = (uint8_t)(row[i] + prev[i]);
		break;
	case 3:
		for (size_t i = 0; i < rowbytes; i++) {
			int a = i >= (size_t)bpp ? row[i - bpp] : 0, b = prev ? prev[i] : 0;
			row[i] = (uint8_t)(row[i] + ((a + b) >> 1));
		}
		break;
	case 4:
		for (size_t i = 0; i < rowbytes; i++) {
			int a = i >= (size_t)bpp ? row[i - bpp] : 0, b = prev ? prev[i] : 0;
			int c = prev && i >= (size_t)bpp ? prev[i - bpp] : 0;
			row[i] = (uint8_t)(row[i] + paeth(a, b, c));
		}
		break;
	default: return -1;
	}
	return 0;
}

/* Every critical chunk's CRC (the ancillary ones are skipped unread, as
 * libpng skips them), and the image data gathered: *data points into buf
 * when it is one IDAT, else at *owned (caller frees). */
static int gather_idat(const uint8_t *buf, size_t len, const uint8_t **data, size_t *n_data, uint8_t **owned,
                       ae_error *err)
{
	size_t total = 0, n_idat = 0;
	*owned = NULL;
	for (size_t at = 8; len - at >= 12;) {
		uint32_t n = be32(buf + at);
		const uint8_t *t = buf + at + 4;
		if (t[0] >= 'A' && t[0] <= 'Z' && (uint32_t)crc32(0L, t, (uInt)n + 4) != be32(buf + at + 8 + n))
			return ae_fail(err, AE_ERR_FORMAT, "invalid PNG: %.4s: CRC error", (const char *)t);
		if (memcmp(t, "IDAT", 4) == 0) {
			if (!n_idat++) *data = t + 4;
			total += n;
		}
		at += 12 + (size_t)n;
		if (memcmp(t, "IEND", 4) == 0) break;
	}
	*n_data = total;
	if (n_idat <= 1) return AE_OK;
	uint8_t *cat = malloc(total ? total : 1);
	if (!cat) return ae_fail(err, AE_ERR_NOMEM, "out of memory for PNG image data");
	size_t k = 0;
	for (size_t at = 8; len - at >= 12;) {
		uint32_t n = be32(buf + at);
		if (memcmp(buf + at + 4, "IDAT", 4) == 0) memcpy(cat + k, buf + at + 8, n), k += n;
		at += 12 + (size_t)n;
		if (memcmp(buf + at - 8 - n, "IEND", 4) == 0) break;
	}
	*owned = cat;
	*data = cat;
	return AE_OK;
}

/* Inflates data into raw, exactly raw_len bytes: a stream that would give
 * more is refused at that size, one that gives less is truncated. */
static int inflate_exact(uint8_t *raw, uint64_t raw_len, const uint8_t *data, size_t n, const ae_png_info *pi,
                         ae_error *err)
{
	z_stream z = { 0 };
	if (inflateInit(&z) != Z_OK) return ae_fail(err, AE_ERR_NOMEM, "out of memory starting zlib");
	z.next_in = data;
	z.avail_in = (uInt)n;
	z.next_out = raw;
	z.avail_out = (uInt)raw_len;
	int zr = inflate(&z, Z_FINISH);
	const int more = zr == Z_BUF_ERROR && z.avail_out == 0 && z.avail_in > 0;
	int rc = AE_OK;
	if (zr == Z_STREAM_END && z.avail_out == 0)
		rc = AE_OK;
	else if (more || (zr == Z_OK && z.avail_out == 0))
		rc = ae_fail(err, AE_ERR_FORMAT,
		             "PNG image data inflates past the %llu bytes its %dx%d header implies (a decompression "
		             "bomb?)",
		             (unsigned long long)pi->raw_bytes, pi->w, pi->h);
	else if (zr == Z_STREAM_END || zr == Z_BUF_ERROR)
		rc = ae_fail(err, AE_ERR_FORMAT, "invalid PNG: truncated: its image data ends after %llu of %llu bytes",
		             (unsigned long long)(raw_len - z.avail_out), (unsigned long long)raw_len);
	else
		rc = ae_fail(err, AE_ERR_FORMAT, "invalid PNG: image data is not a valid zlib stream (%s)",
		             z.msg ? z.msg : "corrupt");
	inflateEnd(&z);
	return rc;
}

static int decode_fast(const uint8_t *buf, size_t len, const ae_png_info *pi, int want_c, ae_image *img, ae_error *err)
{
	const int k = type_channels(pi->color_type), w = pi->w, h = pi->h;
	const size_t rowbytes = (size_t)w * k;
	const uint8_t *data = NULL;
	uint8_t *owned = NULL, *raw = NULL, **rows = NULL;
	size_t n_data = 0;
	int rc = gather_idat(buf, len, &data, &n_data, &owned, err);
	if (rc == AE_OK && pi->raw_bytes > UINT32_MAX)
		rc = ae_fail(err, AE_ERR_RANGE, "PNG is %dx%d: too large to decode", w, h);
	if (rc == AE_OK) {
		raw = malloc((size_t)pi->raw_bytes);
		rows = malloc((size_t)h * sizeof *rows);
		img->pix = malloc((size_t)want_c * w * h);
		if (!raw || !rows || !img->pix) rc = ae_fail(err, AE_ERR_NOMEM, "out of memory for PNG pixels");
	}
	if (rc == AE_OK) rc = inflate_exact(raw, pi->raw_bytes, data, n_data, pi, err);
	for (int y = 0; rc == AE_OK && y < h; y++) {
		uint8_t *row = raw + (size_t)y * (rowbytes + 1);
		rows[y] = row + 1;
		if (unfilter(row + 1, y ? rows[y - 1] : NULL, rowbytes, k, row[0]))
			rc = ae_fail(err, AE_ERR_FORMAT, "invalid PNG: row %d has filter type %d (0-4 exist)", y,
			             row[0]);
	}
	if (rc == AE_OK) {
		to_planar(img->pix, rows, k, h, w, want_c);
		img->c = want_c, img->h = h, img->w = w;
	} else {
		free(img->pix);
		img->pix = NULL;
	}
	free(owned), free(raw), free(rows);
	return rc;
}

int ae_png_decode(const uint8_t *buf, size_t len, int want_c, size_t max_pixels, ae_image *img, ae_error *err)
{
	memset(img, 0, sizeof *img);
	if (want_c != 1 && want_c != 3) return ae_fail(err, AE_ERR_INVAL, "channels must be 1 or 3");
	ae_png_info pi;
	int rc = ae_png_inspect(buf, len, &pi, err);
	if (rc) return rc;
	if ((size_t)pi.w * (size_t)pi.h > max_pixels)
		return ae_fail(err, AE_ERR_RANGE, "PNG is %dx%d, over the limit of %zu pixels", pi.w, pi.h, max_pixels);
	if (fast_decodable(buf, len, &pi)) return decode_fast(buf, len, &pi, want_c, img, err);
	return ae_png_decode_libpng(buf, len, want_c, max_pixels, img, err);
}

int ae_png_decode_libpng(const uint8_t *buf, size_t len, int want_c, size_t max_pixels, ae_image *img, ae_error *err)
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

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A chunk of n data bytes already at p + 8: its length, type and CRC. */
static size_t put_chunk(uint8_t *p, const char *type, size_t n)
{
	put_be32(p, (uint32_t)n);
	memcpy(p + 4, type, 4);
	put_be32(p + 8 + n, (uint32_t)crc32(0L, p + 4, (uInt)n + 4));
	return 12 + n;
}

int ae_png_encode(const uint8_t *pix, int c, int h, int w, uint8_t **out, size_t *len, ae_error *err)
{
	*out = NULL;
	*len = 0;
	if ((c != 1 && c != 3) || h <= 0 || w <= 0 || (size_t)h * w > ((size_t)1 << 28))
		return ae_fail(err, AE_ERR_INVAL, "cannot encode a %dx%dx%d image", c, h, w);
	const size_t rowbytes = (size_t)w * c, raw_len = (size_t)h * (rowbytes + 1), plane = (size_t)h * w;
	uint8_t *raw = malloc(raw_len), *png = malloc(8 + 25 + 12 + ae_deflate_bound(raw_len) + 12);
	if (!raw || !png) {
		free(raw), free(png);
		return ae_fail(err, AE_ERR_NOMEM, "out of memory encoding PNG");
	}
	/* rows filtered "none": for small images speed matters more than bytes */
	for (int y = 0; y < h; y++) {
		uint8_t *row = raw + (size_t)y * (rowbytes + 1);
		row[0] = 0;
		if (c == 1)
			memcpy(row + 1, pix + (size_t)y * w, (size_t)w);
		else
			for (int x = 0; x < w; x++)
				for (int ch = 0; ch < c; ch++)
					row[1 + (size_t)x * c + ch] = pix[ch * plane + (size_t)y * w + x];
	}
	static const uint8_t sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
	memcpy(png, sig, 8);
	uint8_t *ih = png + 8 + 8;
	put_be32(ih, (uint32_t)w), put_be32(ih + 4, (uint32_t)h);
	ih[8] = 8, ih[9] = c == 1 ? 0 : 2, ih[10] = ih[11] = ih[12] = 0;
	size_t n = 8 + put_chunk(png + 8, "IHDR", 13);
	n += put_chunk(png + n, "IDAT", ae_deflate_zlib(png + n + 8, raw, raw_len));
	n += put_chunk(png + n, "IEND", 0);
	free(raw);
	*out = png;
	*len = n;
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
