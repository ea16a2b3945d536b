/*
 * PNG decoding against PngSuite, the PNG conformance suite (copied into
 * tests/fixtures/pngsuite under its licence): every valid file decodes to
 * gray and to RGB with the size its header states, every corrupt one (x*)
 * is refused with a format error; a huge declared size is refused before
 * decoding; encode/decode round-trips. The decoder's own path (8-bit,
 * not interlaced) gives libpng's pixels on every file it takes and
 * refuses what libpng refuses; the encoder's deflate streams inflate
 * back through zlib for inputs of every kind, and its PNGs through
 * libpng.
 */
#include "test.h"

#include <dirent.h>
#include <stdlib.h>

#include "ae/fileio.h"
#include "ae/image.h"
#include "deflate.h"

#include <zlib.h>

#define DIR_SUITE "tests/fixtures/pngsuite"

static void check_file(const char *name, int *valid, int *corrupt)
{
	char path[512];
	snprintf(path, sizeof path, DIR_SUITE "/%s", name);
	uint8_t *buf;
	size_t len;
	ae_error err = { 0 };
	if (ae_read_file(path, 1 << 20, &buf, &len, &err)) {
		CHECK_MSG(0, "%s", err.msg);
		return;
	}
	for (int c = 1; c <= 3; c += 2) {
		ae_image img, ref;
		int rc = ae_png_decode(buf, len, c, 1 << 20, &img, &err);
		ae_error e2 = { 0 };
		int rc2 = ae_png_decode_libpng(buf, len, c, 1 << 20, &ref, &e2);
		CHECK_MSG(rc2 == rc && (rc || memcmp(img.pix, ref.pix, (size_t)c * img.w * img.h) == 0),
		          "%s: own path %d (%s), libpng %d (%s), or pixels differ", name, rc, err.msg, rc2, e2.msg);
		ae_image_free(&ref);
		if (name[0] == 'x') {
			CHECK_MSG(rc == AE_ERR_FORMAT, "%s (corrupt) gave rc %d", name, rc);
		} else {
			ae_png_info info;
			ae_png_inspect(buf, len, &info, NULL);
			CHECK_MSG(rc == 0 && img.c == c && img.w == info.w && img.h == info.h, "%s: rc %d %s", name, rc,
			          err.msg);
		}
		ae_image_free(&img);
	}
	(*(name[0] == 'x' ? corrupt : valid))++;
	free(buf);
}

static void test_suite(void)
{
	DIR *d = opendir(DIR_SUITE);
	CHECK(d != NULL);
	if (!d) return;
	struct dirent *e;
	int valid = 0, corrupt = 0;
	while ((e = readdir(d)))
		if (strlen(e->d_name) > 4 && strcmp(e->d_name + strlen(e->d_name) - 4, ".png") == 0 &&
		    strcmp(e->d_name, "PngSuite.png") != 0)
			check_file(e->d_name, &valid, &corrupt);
	closedir(d);
	printf("PngSuite: %d valid files decoded, %d corrupt files refused\n", valid, corrupt);
	CHECK(corrupt == 14);
	CHECK(valid >= 160);
}

static const uint8_t *load(const char *name, size_t *len)
{
	static uint8_t *buf;
	char path[512];
	free(buf);
	snprintf(path, sizeof path, DIR_SUITE "/%s", name);
	ae_read_file(path, 1 << 20, &buf, len, NULL);
	return buf;
}

static void test_conversions(void)
{
	size_t len;
	ae_image img;
	/* basn0g16: 16-bit gray gradient; basn2c08: RGB; basn3p08: palette;
	 * basn4a08: gray+alpha (composited over black). */
	const uint8_t *b = load("basn0g16.png", &len);
	CHECK(ae_png_decode(b, len, 1, 1 << 20, &img, NULL) == 0 && img.w == 32);
	ae_image_free(&img);
	b = load("basn2c08.png", &len);
	CHECK(ae_png_decode(b, len, 3, 1 << 20, &img, NULL) == 0);
	ae_image rgb = img;
	CHECK(ae_png_decode(b, len, 1, 1 << 20, &img, NULL) == 0);
	/* gray = BT.601 luma of the RGB decode */
	size_t i = 5 * 32 + 7, pl = 32 * 32;
	unsigned want = (299u * rgb.pix[i] + 587u * rgb.pix[pl + i] + 114u * rgb.pix[2 * pl + i] + 500) / 1000;
	CHECK(img.pix[i] == want);
	ae_image_free(&img);
	ae_image_free(&rgb);
	b = load("basn4a08.png", &len);
	CHECK(ae_png_decode(b, len, 1, 1 << 20, &img, NULL) == 0);
	ae_image_free(&img);
}

static void test_limits(void)
{
	/* A valid PNG header declaring 100000x100000 pixels, nothing else. */
	size_t len;
	const uint8_t *b = load("basn0g08.png", &len);
	uint8_t *big = malloc(len);
	memcpy(big, b, len);
	big[16] = 0, big[17] = 0x01, big[18] = 0x86, big[19] = 0xa0; /* width 100000 */
	big[20] = 0, big[21] = 0x01, big[22] = 0x86, big[23] = 0xa0; /* height 100000 */
	ae_image img;
	ae_error err = { 0 };
	int rc = ae_png_decode(big, len, 1, 4096 * 4096, &img, &err);
	CHECK(rc == AE_ERR_RANGE);
	CHECK_ERR(rc, err, "100000x100000");
	/* truncated in the middle of the image data */
	rc = ae_png_decode(b, len / 2, 1, 1 << 20, &img, &err);
	CHECK(rc == AE_ERR_FORMAT);
	CHECK_ERR(rc, err, "truncated");
	rc = ae_png_decode((const uint8_t *)"hello world, not a png", 22, 1, 100, &img, &err);
	CHECK_ERR(rc, err, "not a PNG");
	free(big);
}

static void test_roundtrip(void)
{
	uint8_t pix[3 * 5 * 7];
	for (size_t i = 0; i < sizeof pix; i++)
		pix[i] = (uint8_t)(i * 37);
	for (int c = 1; c <= 3; c += 2) {
		uint8_t *out;
		size_t len;
		ae_image img;
		CHECK(ae_png_encode(pix, c, 5, 7, &out, &len, NULL) == 0);
		CHECK(ae_png_decode(out, len, c, 100, &img, NULL) == 0);
		CHECK(img.h == 5 && img.w == 7 && memcmp(img.pix, pix, (size_t)c * 35) == 0);
		ae_image_free(&img);
		free(out);
	}
}

/* ae_deflate_zlib's streams inflate back through zlib. */
static void test_deflate(void)
{
	static const size_t sizes[] = { 0, 1, 2, 3, 4, 9, 100, 812, 4097, 70001 };
	ae_rng r;
	ae_rng_seed(&r, 5);
	for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
		for (int kind = 0; kind < 4; kind++) {
			size_t n = sizes[si];
			uint8_t *src = malloc(n + 1), *dst = malloc(ae_deflate_bound(n)), *back = malloc(n + 1);
			for (size_t i = 0; i < n; i++)
				src[i] = kind == 0   ? 0
				         : kind == 1 ? (uint8_t)(ae_rng_uniform(&r) * 256)
				         : kind == 2
				                 ? (uint8_t)(i % 7 * 31)
				                 : (uint8_t)(i % 300 < 150 ? 0 : (i * 13) % 251); /* runs and noise */
			size_t len = ae_deflate_zlib(dst, src, n);
			uLongf got = (uLongf)n + 1;
			int zr = uncompress(back, &got, dst, (uLong)len);
			CHECK_MSG(len <= ae_deflate_bound(n) && zr == Z_OK && got == n && memcmp(back, src, n) == 0,
			          "deflate of %zu bytes (kind %d): zlib %d, %lu bytes back", n, kind, zr,
			          (unsigned long)got);
			if (kind == 0 && n > 1000) CHECK(len < n / 50); /* a run compresses */
			free(src), free(dst), free(back);
		}
}

/* Encoded PNGs decode through libpng, large and small, gray and RGB. */
static void test_encode_libpng(void)
{
	const int h = 97, w = 130;
	uint8_t *pix = malloc(3 * (size_t)h * w);
	for (size_t i = 0; i < 3 * (size_t)h * w; i++)
		pix[i] = (uint8_t)(i % 3 ? (i / 7) % 256 : (i * 2654435761u) >> 24);
	for (int c = 1; c <= 3; c += 2) {
		uint8_t *out;
		size_t len;
		ae_image img;
		CHECK(ae_png_encode(pix, c, h, w, &out, &len, NULL) == 0);
		CHECK(ae_png_decode_libpng(out, len, c, 1 << 20, &img, NULL) == 0);
		CHECK(img.h == h && img.w == w && memcmp(img.pix, pix, (size_t)c * h * w) == 0);
		ae_image_free(&img);
		free(out);
	}
	free(pix);
}

/* The own path refuses what a decoder must: a flipped byte of image data
 * (CRC), a stream that inflates past the header's size, one that ends
 * early, a row with an unknown filter. */
static void test_fast_refusals(void)
{
	uint8_t pix[8 * 6] = { 0 };
	uint8_t raw[200], *png;
	size_t len;
	ae_image img;
	ae_error err = { 0 };
	CHECK(ae_png_encode(pix, 1, 6, 8, &png, &len, NULL) == 0);
	uint8_t *bad = malloc(len + 400);
	memcpy(bad, png, len);
	bad[33 + 8 + 3] ^= 0x40; /* inside IDAT's data */
	CHECK_ERR(ae_png_decode(bad, len, 1, 100, &img, &err), err, "CRC");
	/* IDAT holding a stream of more rows (or fewer, or a bad filter) than IHDR says */
	for (int k = 0; k < 3; k++) {
		const int rows = k == 0 ? 12 : k == 1 ? 3 : 6;
		memset(raw, 0, sizeof raw);
		if (k == 2) raw[9] = 7; /* row 1's filter byte */
		size_t n = 33;
		memcpy(bad, png, 33);
		size_t zl = ae_deflate_zlib(bad + n + 8, raw, (size_t)rows * 9);
		bad[n] = 0, bad[n + 1] = 0, bad[n + 2] = (uint8_t)(zl >> 8), bad[n + 3] = (uint8_t)zl;
		memcpy(bad + n + 4, "IDAT", 4);
		uint32_t crc = (uint32_t)crc32(0L, bad + n + 4, (uInt)zl + 4);
		for (int i = 0; i < 4; i++)
			bad[n + 8 + zl + i] = (uint8_t)(crc >> (24 - 8 * i));
		n += 12 + zl;
		memcpy(bad + n, png + len - 12, 12); /* IEND */
		n += 12;
		static const char *want[3] = { "inflates past", "truncated", "filter type 7" };
		CHECK_ERR(ae_png_decode(bad, n, 1, 100, &img, &err), err, want[k]);
		CHECK(ae_png_decode_libpng(bad, n, 1, 100, &img, &err) != 0); /* libpng refuses them too */
	}
	free(bad);
	free(png);
}

int main(void)
{
	test_deflate();
	test_encode_libpng();
	test_fast_refusals();
	test_suite();
	test_conversions();
	test_limits();
	test_roundtrip();
	load("basn0g08.png", &(size_t){ 0 });
	return TEST_DONE();
}
