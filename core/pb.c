/*
 * Protocol Buffers' wire format, writing (pb.h). The encoding, from
 * protobuf's documentation ("Encoding"): a field is a key, the varint
 * (field_number << 3 | wire_type), then its value: a varint (7 bits a
 * byte, low first, the high bit set on every byte but the last), four
 * little-endian bytes (fixed32/float), or a varint length and that many
 * bytes (strings, bytes, messages, packed repeated scalars).
 */
#include "pb.h"

#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "protobuf's fixed-width values are little-endian; this file assumes the host is too"
#endif

void ae_pb_init(ae_pb *b)
{
	memset(b, 0, sizeof *b);
}

void ae_pb_deinit(ae_pb *b)
{
	free(b->p);
	ae_pb_init(b);
}

/* Makes room for n more bytes; 0, or -1 with b failed. */
static int grow(ae_pb *b, size_t n)
{
	if (b->failed) return -1;
	if (n > AE_PB_MAX || b->len > AE_PB_MAX - n) {
		b->failed = 1;
		return -1;
	}
	if (b->len + n <= b->cap) return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap = cap > AE_PB_MAX / 2 ? b->len + n : cap * 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void ae_pb_reserve(ae_pb *b, size_t n)
{
	grow(b, n);
}

void ae_pb_put(ae_pb *b, const void *data, size_t n)
{
	if (n == 0 || grow(b, n)) return;
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

size_t ae_pb_varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

void ae_pb_varint(ae_pb *b, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;
	while (v >= 0x80) {
		tmp[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (uint8_t)v;
	ae_pb_put(b, tmp, n);
}

void ae_pb_key(ae_pb *b, int field, int wire)
{
	ae_pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

void ae_pb_int(ae_pb *b, int field, int64_t v)
{
	ae_pb_key(b, field, AE_PB_VARINT);
	ae_pb_varint(b, (uint64_t)v);
}

void ae_pb_float(ae_pb *b, int field, float v)
{
	ae_pb_key(b, field, AE_PB_I32);
	ae_pb_put(b, &v, 4);
}

void ae_pb_head(ae_pb *b, int field, size_t len)
{
	ae_pb_key(b, field, AE_PB_LEN);
	ae_pb_varint(b, len);
}

void ae_pb_bytes(ae_pb *b, int field, const void *data, size_t n)
{
	ae_pb_head(b, field, n);
	ae_pb_put(b, data, n);
}

void ae_pb_str(ae_pb *b, int field, const char *s)
{
	ae_pb_bytes(b, field, s, strlen(s));
}

void ae_pb_ints(ae_pb *b, int field, const int64_t *v, int n)
{
	for (int i = 0; i < n; i++)
		ae_pb_int(b, field, v[i]);
}

void ae_pb_msg(ae_pb *b, int field, const ae_pb *sub)
{
	if (sub->failed) {
		b->failed = 1;
		return;
	}
	ae_pb_bytes(b, field, sub->p, sub->len);
}
