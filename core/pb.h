/*
 * Protocol Buffers' wire format, the writing half, as much of it as ONNX
 * files need: varints, 32-bit floats, length-delimited fields (strings,
 * bytes, packed ints, nested messages). A message is built in an ae_pb
 * buffer; a nested one is built in a buffer of its own and appended with
 * its length before it (protobuf's encoding needs the length first).
 *
 * Errors are sticky: the first failed allocation (or a buffer past
 * AE_PB_MAX) marks the buffer failed, later calls do nothing, and the
 * caller checks `failed` once at the end.
 */
#ifndef AE_PB_H
#define AE_PB_H

#include <stddef.h>
#include <stdint.h>

/* Protobuf's own limit on a message: its parsers read sizes as signed
 * 32-bit ints, so nothing larger is readable by anyone. */
#define AE_PB_MAX ((size_t)INT32_MAX)

/* Wire types (the low three bits of a key). */
enum { AE_PB_VARINT = 0, AE_PB_I64 = 1, AE_PB_LEN = 2, AE_PB_I32 = 5 };

typedef struct ae_pb {
	uint8_t *p; /* owned */
	size_t len, cap;
	int failed;
} ae_pb;

void ae_pb_init(ae_pb *b);
void ae_pb_deinit(ae_pb *b);
/* Room for n more bytes (a hint: appends grow the buffer anyway). */
void ae_pb_reserve(ae_pb *b, size_t n);

void ae_pb_varint(ae_pb *b, uint64_t v);
/* field's key: (field << 3) | wire type */
void ae_pb_key(ae_pb *b, int field, int wire);
/* int32/int64/enum fields: a negative value is its 64-bit two's complement. */
void ae_pb_int(ae_pb *b, int field, int64_t v);
void ae_pb_float(ae_pb *b, int field, float v);
void ae_pb_bytes(ae_pb *b, int field, const void *data, size_t n);
void ae_pb_str(ae_pb *b, int field, const char *s);
/* A repeated int64 field, unpacked (a key before each value): proto2's
 * encoding for a repeated scalar not marked [packed = true]. */
void ae_pb_ints(ae_pb *b, int field, const int64_t *v, int n);
/* A nested message: sub's bytes, length-delimited. sub is unchanged; its
 * failure becomes b's. */
void ae_pb_msg(ae_pb *b, int field, const ae_pb *sub);

/* Raw bytes, and a field's key and length alone: for a message whose
 * bytes the caller appends next, in pieces (ae_pb_msg without a copy). */
void ae_pb_put(ae_pb *b, const void *data, size_t n);
void ae_pb_head(ae_pb *b, int field, size_t len);

/* Bytes the varint encoding of v takes. */
size_t ae_pb_varint_size(uint64_t v);

#endif
