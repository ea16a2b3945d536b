/*
 * The zlib-stream compressor of deflate.h: RFC 1950's two-byte header,
 * one final RFC 1951 block of fixed Huffman codes (BTYPE 01), greedy
 * LZ77 matches of 3 to 258 bytes up to 32768 back, found through a table
 * of the last position of each hash of three bytes (one candidate, no
 * chains), and the Adler-32 of the input.
 */
#include "deflate.h"

#include <string.h>
#include <zlib.h>

#define HASH_BITS 12
#define MIN_MATCH 3
#define MAX_MATCH 258
#define WINDOW    32768
/* The positions inside a match are hashed only for matches this short
 * (zlib's level 1 does the same): a long run (a digit's background)
 * finds itself again from its start. */
#define MAX_INSERT 8

typedef struct bits {
	uint8_t *out;
	uint64_t acc;
	int n;
} bits;

/* Appends the n low bits of v, first bit first (deflate's order for
 * everything but Huffman codes, which are reversed before). */
static inline void put(bits *b, uint32_t v, int n)
{
	b->acc |= (uint64_t)v << b->n;
	b->n += n;
	while (b->n >= 8) {
		*b->out++ = (uint8_t)b->acc;
		b->acc >>= 8;
		b->n -= 8;
	}
}

#define R2(n) (n), (n) + 2 * 64, (n) + 1 * 64, (n) + 3 * 64
#define R4(n) R2(n), R2((n) + 2 * 16), R2((n) + 1 * 16), R2((n) + 3 * 16)
#define R6(n) R4(n), R4((n) + 2 * 4), R4((n) + 1 * 4), R4((n) + 3 * 4)
/* Each byte with its bits in reverse order. */
static const uint8_t rev8[256] = { R6(0), R6(2), R6(1), R6(3) };

/* A Huffman code of len bits (at most 16), as put() must write it. */
static inline uint32_t huff(uint32_t code, int len)
{
	return ((uint32_t)rev8[code & 0xFF] << 8 | rev8[code >> 8 & 0xFF]) >> (16 - len);
}

/* Literal/length symbol v (0..287) in the fixed code. */
static inline void put_sym(bits *b, int v)
{
	if (v < 144)
		put(b, huff(0x30u + (uint32_t)v, 8), 8);
	else if (v < 256)
		put(b, huff(0x190u + (uint32_t)(v - 144), 9), 9);
	else if (v < 280)
		put(b, huff((uint32_t)(v - 256), 7), 7);
	else
		put(b, huff(0xC0u + (uint32_t)(v - 280), 8), 8);
}

static const uint16_t len_base[29] = { 3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
	                               31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
static const uint8_t len_extra[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
	                               2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
static const uint16_t dist_base[30] = { 1,    2,    3,    4,    5,    7,    9,    13,    17,    25,
	                                33,   49,   65,   97,   129,  193,  257,  385,   513,   769,
	                                1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 };
static const uint8_t dist_extra[30] = { 0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
	                                6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };

static void put_match(bits *b, int len, int dist)
{
	int l = 28;
	while (len_base[l] > len)
		l--;
	put_sym(b, 257 + l);
	put(b, (uint32_t)(len - len_base[l]), len_extra[l]);
	int d = 29;
	while (dist_base[d] > dist)
		d--;
	put(b, huff((uint32_t)d, 5), 5);
	put(b, (uint32_t)(dist - dist_base[d]), dist_extra[d]);
}

static inline uint32_t hash3(const uint8_t *p, int hb)
{
	uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
	return (v * 2654435761u) >> (32 - hb);
}

/* How many of the first max bytes of a and b agree (a before b; they may
 * overlap), 8 at a time. */
static size_t match_length(const uint8_t *a, const uint8_t *b, size_t max)
{
	size_t len = 0;
	while (len + 8 <= max) {
		uint64_t x, y;
		memcpy(&x, a + len, 8);
		memcpy(&y, b + len, 8);
		if (x != y) return len + (size_t)(__builtin_ctzll(x ^ y) >> 3);
		len += 8;
	}
	while (len < max && a[len] == b[len])
		len++;
	return len;
}

size_t ae_deflate_bound(size_t n)
{
	/* every byte a 9-bit literal, the block's 3 + 7 bits, header, Adler-32 */
	return n + n / 8 + 2 + 2 + 4 + 8;
}

size_t ae_deflate_zlib(uint8_t *dst, const uint8_t *src, size_t n)
{
	int32_t head[1 << HASH_BITS]; /* the last position + 1 of each hash, 0: none */
	int hb = 8;                   /* a table about the input's size: clearing it is most of a small image's cost */
	while (hb < HASH_BITS && ((size_t)1 << hb) < n)
		hb++;
	memset(head, 0, sizeof head[0] << hb);
	bits b = { .out = dst };
	put(&b, 0x78, 8); /* deflate, 32 KB window */
	put(&b, 0x01, 8); /* fastest; (0x78 * 256 + 0x01) % 31 == 0 */
	put(&b, 3, 3);    /* final block, fixed codes */
	size_t i = 0;
	while (i + MIN_MATCH <= n) {
		const uint32_t h = hash3(src + i, hb);
		const long cand = (long)head[h] - 1;
		head[h] = (int32_t)(i + 1);
		if (cand >= 0 && i - (size_t)cand <= WINDOW && memcmp(src + cand, src + i, MIN_MATCH) == 0) {
			const size_t max = n - i < MAX_MATCH ? n - i : MAX_MATCH;
			size_t len = match_length(src + cand, src + i, max);
			put_match(&b, (int)len, (int)(i - (size_t)cand));
			for (size_t k = i + 1; len <= MAX_INSERT && k < i + len && k + MIN_MATCH <= n; k++)
				head[hash3(src + k, hb)] = (int32_t)(k + 1);
			i += len;
		} else {
			put_sym(&b, src[i]);
			i++;
		}
	}
	for (; i < n; i++)
		put_sym(&b, src[i]);
	put_sym(&b, 256);
	if (b.n) put(&b, 0, 8 - b.n); /* to a byte boundary */
	const uint32_t a = (uint32_t)adler32(adler32(0L, Z_NULL, 0), src, (uInt)n);
	for (int s = 24; s >= 0; s -= 8)
		*b.out++ = (uint8_t)(a >> s);
	return (size_t)(b.out - dst);
}
