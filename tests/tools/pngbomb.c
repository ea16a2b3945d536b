/*
 * pngbomb: writes the hostile PNGs of the reliability tests. Each is a
 * 28x28 8-bit gray image header followed by a trap:
 *
 *   pngbomb chunk TYPE OUT      an ancillary chunk (tEXt, zTXt, iTXt, sPLT,
 *                               iCCP, or any 4 letters) whose header declares
 *                               0x7ffffff0 data bytes, then a few bytes and
 *                               the end of the file: a PNG of ~140 bytes
 *                               that asks a careless decoder for 2 GiB
 *   pngbomb idat MIB OUT        one IDAT holding a zlib stream that inflates
 *                               to MIB mebibytes of zeros (the image needs
 *                               812), then IEND
 *
 * The zlib stream is built by repeating one byte-aligned deflate block of
 * 1 MiB of zeros, so an 8 GiB bomb takes a second to write, not a minute.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Writes a chunk whose length field says declared (normally len). */
static void chunk(FILE *f, const char *type, const uint8_t *data, uint32_t len, uint32_t declared)
{
	uint8_t h[8];
	put32(h, declared);
	memcpy(h + 4, type, 4);
	fwrite(h, 1, 8, f);
	if (len) fwrite(data, 1, len, f);
	uLong crc = crc32(crc32(0, (const Bytef *)type, 4), data, len);
	put32(h, (uint32_t)crc);
	fwrite(h, 1, 4, f);
}

static void head(FILE *f)
{
	static const uint8_t sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
	uint8_t ihdr[13] = { 0 };
	put32(ihdr, 28);
	put32(ihdr + 4, 28);
	ihdr[8] = 8; /* bit depth; colour type 0 (gray), no interlace */
	fwrite(sig, 1, 8, f);
	chunk(f, "IHDR", ihdr, 13, 13);
}

/* A zlib stream inflating to mib MiB of zeros, in a new buffer. */
static uint8_t *zero_stream(long mib, size_t *len)
{
	const size_t block = 1u << 20;
	uint8_t *zeros = calloc(1, block), *blk = malloc(block);
	z_stream z = { 0 };
	if (!zeros || !blk || deflateInit2(&z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
	z.next_in = zeros, z.avail_in = (uInt)block;
	z.next_out = blk, z.avail_out = (uInt)block;
	/* A full flush ends byte-aligned and forgets history: the bytes can be
	 * repeated as they are. */
	deflate(&z, Z_FULL_FLUSH);
	size_t bl = block - z.avail_out;
	deflateEnd(&z);
	uint8_t *out = malloc(2 + bl * (size_t)mib + 2 + 4);
	if (!out) return NULL;
	size_t at = 0;
	out[at++] = 0x78, out[at++] = 0xda;
	for (long i = 0; i < mib; i++, at += bl)
		memcpy(out + at, blk, bl);
	out[at++] = 0x03, out[at++] = 0x00; /* a final, empty fixed-Huffman block */
	/* Adler-32 of n zeros: a stays 1, b grows by 1 per byte. */
	uint32_t b = (uint32_t)(((uint64_t)mib << 20) % 65521u);
	put32(out + at, b << 16 | 1u);
	at += 4;
	free(zeros), free(blk);
	*len = at;
	return out;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "chunk") != 0 && strcmp(argv[1], "idat") != 0)) {
		fprintf(stderr, "usage: pngbomb chunk TYPE OUT | pngbomb idat MIB OUT\n");
		return 2;
	}
	FILE *f = fopen(argv[3], "wb");
	if (!f) {
		perror(argv[3]);
		return 1;
	}
	head(f);
	if (strcmp(argv[1], "chunk") == 0) {
		if (strlen(argv[2]) != 4) {
			fprintf(stderr, "pngbomb: a chunk type has 4 letters\n");
			return 2;
		}
		static const uint8_t some[64] = "keyword\0and the first bytes of a value that never ends";
		chunk(f, argv[2], some, sizeof some, 0x7ffffff0u);
	} else {
		size_t len;
		uint8_t *z = zero_stream(atol(argv[2]), &len);
		if (!z) {
			fprintf(stderr, "pngbomb: out of memory\n");
			return 1;
		}
		chunk(f, "IDAT", z, (uint32_t)len, (uint32_t)len);
		chunk(f, "IEND", NULL, 0, 0);
		free(z);
	}
	return fclose(f) == 0 ? 0 : 1;
}
