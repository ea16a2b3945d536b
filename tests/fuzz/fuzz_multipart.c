/*
 * multipart/form-data bodies of PNG parts: the input's first line is the
 * Content-Type header (its boundary parameter), the rest the body.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size < 200 ? size : 200);
	if (!nl) return 0;
	char *ctype = fuzz_str(data, (size_t)(nl - data));
	srv_params p;
	srv_params_init(&p);
	p.resize = 1;
	srv_parse_ctx x = srv_fixture_ctx(srv_op_find(SRV_V1, "encode"), &p);
	int n;
	float *out = NULL;
	srv_fail f = { 0 };
	const uint8_t *body = nl + 1;
	if (srv_parse_multipart(body, size - (size_t)(body - data), ctype, &x, &n, &out, &f) == 0) free(out);
	free(ctype);
	return 0;
}
