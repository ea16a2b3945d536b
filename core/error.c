/*
 * Error records and overflow-checked size arithmetic shared by the core.
 */
#include "ae/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ae_fail(ae_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

int ae_error_prefix(ae_error *err, const char *prefix)
{
	if (!err) return AE_ERR_INVAL;
	char tmp[sizeof err->msg];
	size_t n = strlen(prefix);
	if (n > sizeof tmp / 2) n = sizeof tmp / 2;
	memcpy(tmp, prefix, n);
	tmp[n] = '\0';
	strncat(tmp, ": ", sizeof tmp - strlen(tmp) - 1);
	strncat(tmp, err->msg, sizeof tmp - strlen(tmp) - 1);
	memcpy(err->msg, tmp, sizeof tmp);
	return err->code;
}

int ae_size_mul(size_t a, size_t b, size_t *out)
{
	return __builtin_mul_overflow(a, b, out) ? AE_ERR_NOMEM : AE_OK;
}

int ae_size_add(size_t a, size_t b, size_t *out)
{
	return __builtin_add_overflow(a, b, out) ? AE_ERR_NOMEM : AE_OK;
}
