/*
 * Query parameters of the inference routes. Each operation accepts a few
 * (ops.c says which); anything else, a value that is not what the
 * parameter takes, or a parameter given twice is a 400 that names it, so a
 * typo such as ?quantle=0.5 or ?resize=maybe never silently means the
 * default.
 */
#include "server.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ae/parse.h"
#include "ae/codes.h"
#include "ae/scores.h"

static const struct {
	const char *name;
	unsigned bit;
} known[] = {
	{ "resize", SRV_P_RESIZE },     { "invert", SRV_P_INVERT }, { "threshold", SRV_P_THRESHOLD },
	{ "quantile", SRV_P_QUANTILE }, { "map", SRV_P_MAP },       { "scale", SRV_P_SCALE },
	{ "score", SRV_P_SCORE },       { "format", SRV_P_FORMAT },
};
#define N_KNOWN (sizeof known / sizeof *known)

void srv_params_init(srv_params *p)
{
	*p = (srv_params){ .quantile = 0.99, .threshold = NAN, .scale = 4, .score = -1 };
}

/* "true"/"1"/"yes"/"" (a bare ?resize) or "false"/"0"/"no". */
static int flag(const char *v, int *out)
{
	static const char *yes[] = { "", "1", "true", "yes" }, *no[] = { "0", "false", "no" };
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
		if (strcasecmp(v, yes[i]) == 0) return *out = 1, 0;
	for (size_t i = 0; i < sizeof no / sizeof *no; i++)
		if (strcasecmp(v, no[i]) == 0) return *out = 0, 0;
	return -1;
}

/* The names of the parameters in `accepted`, for messages. */
static void list_names(unsigned accepted, char *buf, size_t cap)
{
	size_t at = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < N_KNOWN; i++)
		if (accepted & known[i].bit)
			at += (size_t)snprintf(buf + at, cap - at, "%s%s", at ? ", " : "", known[i].name);
	if (!at) snprintf(buf, cap, "none");
}

int srv_params_set(srv_params *p, unsigned accepted, const char *key, const char *value, srv_fail *f)
{
	char k[64], v[64], names[96];
	srv_text_clean(k, sizeof k, key);
	srv_text_clean(v, sizeof v, value ? value : "");
	unsigned bit = 0;
	for (size_t i = 0; i < N_KNOWN; i++)
		if (strcmp(key, known[i].name) == 0) bit = known[i].bit;
	if (!(bit & accepted)) {
		list_names(accepted, names, sizeof names);
		return srv_fail_set(f, 400, "invalid_parameter", "unknown parameter '%s'; this route takes %s", k,
		                    names);
	}
	if (p->seen & bit) return srv_fail_set(f, 400, "invalid_parameter", "parameter '%s' is given twice", k);
	p->seen |= bit;
	value = value ? value : "";
	ae_error err;
	switch (bit) {
	case SRV_P_RESIZE:
		if (flag(value, &p->resize))
			return srv_fail_set(f, 400, "invalid_parameter", "resize '%s' is not true or false", v);
		return 0;
	case SRV_P_INVERT:
		if (flag(value, &p->invert))
			return srv_fail_set(f, 400, "invalid_parameter", "invert '%s' is not true or false", v);
		return 0;
	case SRV_P_SCORE:
		if ((p->score = ae_score_find(value)) < 0)
			return srv_fail_set(f, 400, "invalid_parameter",
			                    "score '%s' is not one of mse, ssim, max, latent, combined", v);
		return 0;
	case SRV_P_FORMAT:
		if ((p->format = ae_code_format_find(value)) < 0)
			return srv_fail_set(f, 400, "invalid_parameter", "format '%s' is not one of f32, f16, int8", v);
		return 0;
	case SRV_P_MAP:
		if (flag(value, &p->map))
			return srv_fail_set(f, 400, "invalid_parameter", "map '%s' is not true or false", v);
		return 0;
	case SRV_P_SCALE: {
		long sc;
		if (ae_parse_long(value, 1, SRV_HEATMAP_MAX_SCALE, &sc, &err))
			return srv_fail_set(f, 400, "invalid_parameter", "scale '%s' is not an integer from 1 to %d", v,
			                    SRV_HEATMAP_MAX_SCALE);
		p->scale = (int)sc;
		return 0;
	}
	case SRV_P_THRESHOLD:
		if (ae_parse_double(value, 0.0, HUGE_VAL, &p->threshold, &err) || !isfinite(p->threshold))
			return srv_fail_set(f, 400, "invalid_parameter", "threshold '%s' is not a non-negative number",
			                    v);
		p->quantile = NAN; /* the answer says no quantile chose it */
		return 0;
	default:
		if (ae_parse_double(value, 0.0, 1.0, &p->quantile, &err) || p->quantile == 0.0)
			return srv_fail_set(f, 400, "invalid_parameter", "quantile '%s' is not a number in (0, 1]", v);
		return 0;
	}
}

int srv_params_done(const srv_params *p, srv_fail *f)
{
	if ((p->seen & SRV_P_THRESHOLD) && (p->seen & SRV_P_QUANTILE))
		return srv_fail_set(f, 400, "invalid_parameter", "give threshold or quantile, not both");
	return 0;
}
