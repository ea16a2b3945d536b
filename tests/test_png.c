/*
 * PNG decoding against PngSuite, the PNG conformance suite (copied into
 * tests/fixtures/pngsuite under its licence): every valid file decodes to
 * gray and to RGB with the size its header states, every corrupt one (x*)
 * is refused with a format error; a huge declared size is refused before
 * decoding; encode/decode round-trips.
 */
#include "test.h"

#include <dirent.h>
#include <stdlib.h>

#include "ae/fileio.h"
#include "ae/image.h"

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
		ae_image img;
		int rc = ae_png_decode(buf, len, c, 1 << 20, &img, &err);
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

int main(void)
{
	test_suite();
	test_conversions();
	test_limits();
	test_roundtrip();
	load("basn0g08.png", &(size_t){ 0 });
	return TEST_DONE();
}
