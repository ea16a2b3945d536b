/*
 * PNG decoding and encoding (libpng) to and from 8-bit planar images.
 *
 * Decoding accepts every PNG colour type and bit depth: palettes and
 * low-bit gray are expanded, 16-bit samples scaled to 8 bits, alpha
 * composited over black (a transparent background reads as "no ink"), and
 * the result converted to the channels asked for (RGB to gray by ITU-R
 * BT.601 luma; gray to RGB by replication). Dimensions are checked against
 * the caller's pixel limit BEFORE any pixel memory is allocated.
 */
#ifndef AE_IMAGE_H
#define AE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "ae/error.h"

/* The largest image read or written here, in pixels: training images
 * (dataset.c), a client's images and the heatmaps answered (aeserve). A
 * decode holds about 7 bytes per pixel, so at most 112 MiB. */
#define AE_PNG_MAX_PIXELS (4096u * 4096u)

typedef struct ae_image {
	int c, h, w;
	uint8_t *pix; /* (c, h, w) planar, owned; free with ae_image_free */
} ae_image;

void ae_image_free(ae_image *img);

/* What a PNG's structure says, read without decoding anything. */
typedef struct ae_png_info {
	int w, h, bit_depth, color_type, interlaced;
	uint64_t raw_bytes; /* what its image data must inflate to, exactly */
} ae_png_info;

/* Checks the signature and the IHDR fields, and walks the chunk list: every
 * chunk's declared length must fit in len, image data must be present and
 * in one run, the file must reach IEND. AE_ERR_FORMAT, naming the fault,
 * otherwise. Costs one pass over the chunk headers. */
int ae_png_inspect(const uint8_t *buf, size_t len, ae_png_info *info, ae_error *err);

/* Decodes buf into img with want_c channels (1 or 3). Images of more than
 * max_pixels pixels are refused with AE_ERR_RANGE before decoding; image
 * data that inflates past what the header implies is refused with
 * AE_ERR_FORMAT after at most that many bytes; ancillary chunks (text,
 * ICC profiles, EXIF, ...) are skipped unread. Memory is bounded by
 * about 7 bytes per pixel. */
int ae_png_decode(const uint8_t *buf, size_t len, int want_c, size_t max_pixels, ae_image *img, ae_error *err);
/* The same through libpng whatever the file: ae_png_decode takes a path of
 * its own, the same pixels, for 8-bit non-interlaced files without a
 * transparency key; this one is its reference in the tests. */
int ae_png_decode_libpng(const uint8_t *buf, size_t len, int want_c, size_t max_pixels, ae_image *img, ae_error *err);

/* Encodes planar (c, h, w) 8-bit pixels (c = 1 gray, 3 RGB) into a new
 * buffer *out (caller frees): a standard PNG, one IDAT, rows unfiltered,
 * deflated with fixed codes (core/deflate.h). */
int ae_png_encode(const uint8_t *pix, int c, int h, int w, uint8_t **out, size_t *len, ae_error *err);

/* Encodes and writes atomically. */
int ae_png_write_file(const char *path, const uint8_t *pix, int c, int h, int w, ae_error *err);

/* Bilinear resampling of planar 8-bit (c, h, w) to (c, oh, ow) floats in
 * [0, 1], pixel centres to pixel centres. */
void ae_resample_bilinear(const uint8_t *src, int c, int h, int w, float *dst, int oh, int ow);

/* [0,1] floats to 8-bit with rounding and clamping. */
void ae_float_to_u8(uint8_t *dst, const float *src, size_t n);

#endif
