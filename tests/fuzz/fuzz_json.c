/*
 * JSON tensors, {"shape": [...], "data": [...]}: the input is the body; its
 * length modulo 4 chooses the operation (images for encode, codes for
 * decode) and ?invert. Whatever is accepted must hold as many items as its
 * shape says, and an image's values must be within [0, 1].
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned opt = (unsigned)(size % 4);
	srv_params p;
	srv_params_init(&p);
	p.invert = opt & 1;
	const srv_opdef *op = srv_op_find(SRV_V1, opt & 2 ? "decode" : "encode");
	srv_parse_ctx x = srv_fixture_ctx(op, &p);
	int n;
	float *out = NULL;
	srv_fail f = { 0 };
	if (srv_parse_json(data, size, &x, &n, &out, &f) == 0) {
		size_t per = ae_plan_in_size(x.plan, x.engine);
		if (n < 1 || n > SRV_MAX_IMAGES) abort();
		for (size_t i = 0; i < (size_t)n * per; i++) /* every value is readable... */
			if (op->items == SRV_ITEMS_IMAGES && !(out[i] >= 0.0f && out[i] <= 1.0f))
				abort(); /* ...and an image's is in range */
		free(out);
	} else if (!f.code || f.status < 400 || f.status > 599)
		abort();
	return 0;
}
