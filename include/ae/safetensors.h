/*
 * The safetensors container: an 8-byte little-endian header length N, N bytes
 * of JSON mapping tensor names to {dtype, shape, data_offsets}, an optional
 * "__metadata__" object of string values, then the raw little-endian tensor
 * bytes. The reader validates everything before handing out a pointer.
 */
#ifndef AE_SAFETENSORS_H
#define AE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ae/error.h"

#define AE_ST_MAX_DIMS   8
#define AE_ST_MAX_HEADER (16u << 20)

enum { AE_DT_F32, AE_DT_I64, AE_DT_U8 };

typedef struct ae_st_tensor {
	char *name;
	int dtype;
	int ndim;
	int64_t shape[AE_ST_MAX_DIMS];
	size_t begin, end; /* within the data section */
} ae_st_tensor;

typedef struct ae_st_meta {
	char *key, *value;
} ae_st_meta;

typedef struct ae_st {
	uint8_t *buf; /* whole file, owned */
	size_t size;
	const uint8_t *data; /* data section inside buf */
	size_t data_size;
	int n;
	ae_st_tensor *t;
	int n_meta;
	ae_st_meta *meta;
} ae_st;

/* Parses buf[0, size), taking ownership of buf (freed by ae_st_free even on
 * failure). Checks the header length, JSON, dtypes, shapes against byte
 * counts, bounds, overlaps and holes. */
int ae_st_parse(ae_st *st, uint8_t *buf, size_t size, ae_error *err);
int ae_st_read_file(ae_st *st, const char *path, ae_error *err);
void ae_st_free(ae_st *st);

const ae_st_tensor *ae_st_find(const ae_st *st, const char *name);
/* NULL when the key is absent. */
const char *ae_st_meta_get(const ae_st *st, const char *key);
static inline const void *ae_st_bytes(const ae_st *st, const ae_st_tensor *t)
{
	return st->data + t->begin;
}

/* ---- Writer: collects borrowed tensor pointers, writes atomically. ---- */
typedef struct ae_st_writer ae_st_writer;

ae_st_writer *ae_st_writer_new(void);
void ae_st_writer_free(ae_st_writer *w);
/* data is borrowed until write; shape has ndim entries (0 for a scalar). */
int ae_st_writer_add(ae_st_writer *w, const char *name, int dtype, int ndim, const int64_t *shape, const void *data,
                     ae_error *err);
int ae_st_writer_meta(ae_st_writer *w, const char *key, const char *value, ae_error *err);
/* Fills crc with the CRC-32 of the data section the writer will produce. */
uint32_t ae_st_writer_crc(const ae_st_writer *w);
/* Writes to path through a temporary file, fsync and rename. */
int ae_st_writer_write(ae_st_writer *w, const char *path, ae_error *err);

/* CRC-32 of a parsed file's data section. */
uint32_t ae_st_crc(const ae_st *st);

#endif
