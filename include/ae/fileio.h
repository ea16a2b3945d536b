/*
 * Whole-file reads with a size cap and atomic writes (temporary file in the
 * same folder, fsync, rename, fsync of the folder): a crash leaves either the
 * old file or the new one, never half of one.
 */
#ifndef AE_FILEIO_H
#define AE_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ae/error.h"

/* Reads all of path into a new buffer (*out, caller frees); refuses files
 * larger than max bytes. */
int ae_read_file(const char *path, size_t max, uint8_t **out, size_t *size, ae_error *err);

/* An open atomic write: fp writes to a temporary file beside path. */
typedef struct ae_atomic_file {
	FILE *fp;
	char tmp[4096];
	char path[4096];
} ae_atomic_file;

int ae_atomic_open(ae_atomic_file *af, const char *path, ae_error *err);
/* Flushes, fsyncs and renames into place; on any error removes the temporary. */
int ae_atomic_commit(ae_atomic_file *af, ae_error *err);
/* Abandons the write, removing the temporary. */
void ae_atomic_abort(ae_atomic_file *af);

#endif
