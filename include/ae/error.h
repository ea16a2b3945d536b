/*
 * Status codes and the caller-owned error record every core function fills.
 *
 * The core never exits or aborts: a server links it. A failing function
 * returns a negative AE_ERR_* and writes a message naming the cause into the
 * ae_error the caller passed (which may be NULL when the caller does not care).
 */
#ifndef AE_ERROR_H
#define AE_ERROR_H

#include <stddef.h>

enum {
	AE_OK = 0,
	AE_ERR_INVAL = -1,  /* bad argument or option */
	AE_ERR_NOMEM = -2,  /* allocation failed or size overflowed */
	AE_ERR_IO = -3,     /* open/read/write failed */
	AE_ERR_FORMAT = -4, /* a file or buffer is malformed */
	AE_ERR_RANGE = -5,  /* a value or size is out of the allowed range */
};

typedef struct ae_error {
	int code;
	char msg[512];
} ae_error;

/* Records code and a printf-style message in err (if not NULL); returns code. */
int ae_fail(ae_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with "prefix: " (a file name, say); returns err->code. */
int ae_error_prefix(ae_error *err, const char *prefix);

/* Overflow-checked a*b and a+b: 0 on success, AE_ERR_NOMEM on overflow. */
int ae_size_mul(size_t a, size_t b, size_t *out);
int ae_size_add(size_t a, size_t b, size_t *out);

#endif
