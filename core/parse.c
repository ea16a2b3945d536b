/*
 * Numbers from text, whole or refused with a message (see ae/parse.h).
 */
#include "ae/parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

int ae_parse_long(const char *s, long lo, long hi, long *out, ae_error *err)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end) return ae_fail(err, AE_ERR_INVAL, "'%s' is not an integer", s);
	if (v < lo || v > hi) return ae_fail(err, AE_ERR_INVAL, "%ld is out of range [%ld, %ld]", v, lo, hi);
	*out = v;
	return AE_OK;
}

int ae_parse_double(const char *s, double lo, double hi, double *out, ae_error *err)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v)) return ae_fail(err, AE_ERR_INVAL, "'%s' is not a number", s);
	if (v < lo || v > hi) return ae_fail(err, AE_ERR_INVAL, "%g is out of range [%g, %g]", v, lo, hi);
	*out = v;
	return AE_OK;
}
