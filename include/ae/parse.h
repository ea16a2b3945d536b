/*
 * Numbers from text (option values, query arguments), all of it or an
 * error naming what was wrong: "'12x' is not an integer", "300 is out of
 * range [1, 256]". Both programs' option parsers put their name and the
 * option in front.
 */
#ifndef AE_PARSE_H
#define AE_PARSE_H

#include "ae/error.h"

/* A base-10 integer in [lo, hi]. 0, or AE_ERR_INVAL with err filled. */
int ae_parse_long(const char *s, long lo, long hi, long *out, ae_error *err);
/* A finite number in [lo, hi]. 0, or AE_ERR_INVAL with err filled. */
int ae_parse_double(const char *s, double lo, double hi, double *out, ae_error *err);

#endif
