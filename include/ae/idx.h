/*
 * IDX, the MNIST container: a big-endian header giving 1 to 3 dimensions,
 * then unsigned bytes. Read raw or gzip-compressed.
 */
#ifndef AE_IDX_H
#define AE_IDX_H

#include <stdint.h>

#include "ae/error.h"

/* Reads an IDX file of unsigned bytes with 1 to 3 dimensions (gzip or raw).
 * *data is owned by the caller. The header bounds the data (2 GiB at
 * most); memory follows the bytes that arrive, not the header's promise. */
int ae_idx_read(const char *path, uint8_t **data, int *ndim, int dims[3], ae_error *err);
/* Writes an IDX file of unsigned bytes, atomically, uncompressed. */
int ae_idx_write(const char *path, const uint8_t *data, int ndim, const int dims[3], ae_error *err);

#endif
