/*
 * Query parameters and the other client text the server quotes: the input
 * is split at '&' and '=' into parameters for the operation its first byte
 * picks; the whole input is also taken as a media type, and made valid
 * UTF-8 and JSON-escaped, which must then parse as a JSON string.
 */
#include "fuzz.h"

#include <jansson.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1) return 0;
	char *s = fuzz_str(data + 1, size - 1);
	const srv_opdef *op = &srv_ops[data[0] % srv_n_ops];
	srv_params p;
	srv_params_init(&p);
	srv_fail f = { 0 };
	char *save = NULL;
	char *copy = strdup(s);
	for (char *kv = strtok_r(copy, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		if (eq) *eq = '\0';
		if (srv_params_set(&p, op->params, kv, eq ? eq + 1 : NULL, &f)) {
			if (f.status != 400 || !f.msg[0]) abort();
			break;
		}
	}
	srv_params_done(&p, &f);
	free(copy);
	srv_media_type(s);
	char clean[256], esc[1024 + 3];
	srv_text_clean(clean, sizeof clean, s);
	esc[0] = '"';
	size_t n = srv_json_escape(esc + 1, sizeof esc - 3, s);
	esc[n + 1] = '"';
	esc[n + 2] = '\0';
	json_t *j = json_loads(esc, JSON_DECODE_ANY, NULL);
	if (!json_is_string(j)) abort(); /* an escaped string must always be valid JSON */
	json_decref(j);
	free(s);
	return 0;
}
