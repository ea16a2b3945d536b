/*
 * A small zlib-stream (RFC 1950/1951) compressor for the images the
 * service sends back: one block of deflate's fixed Huffman codes, greedy
 * LZ77 matches found through a hash of the next three bytes. Any inflater
 * reads it. It trades a few percent of size (no per-image code tables)
 * for a set-up that costs nothing: zlib spends 70-80 thousand
 * instructions on a 28x28 image, most of them in its per-stream state and
 * code tables, against about 10 thousand here.
 */
#ifndef AE_DEFLATE_H
#define AE_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes ae_deflate_zlib writes for n bytes of input. */
size_t ae_deflate_bound(size_t n);

/* Compresses src (n bytes) into dst (at least ae_deflate_bound(n) bytes)
 * as one zlib stream; returns its length. Allocates nothing. */
size_t ae_deflate_zlib(uint8_t *dst, const uint8_t *src, size_t n);

#endif
