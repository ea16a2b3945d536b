/*
 * Open Inference Protocol infer requests: the first 4 bytes of the input
 * are the Inference-Header-Content-Length (little-endian; 0xffffffff for
 * none), the rest is the body. Whatever is accepted holds whole images
 * within [0, 1] and asks for 1 to 4 outputs, each once; whatever is
 * refused says why with a 4xx or a 500 (out of memory).
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4) return 0;
	uint32_t h;
	memcpy(&h, data, 4);
	long long header_len = h == 0xffffffffu ? -1 : (long long)h;
	srv_params p;
	srv_params_init(&p);
	srv_parse_ctx x = srv_fixture_ctx(srv_op_find(SRV_V2, "infer"), &p);
	srv_v2_req q;
	int n = 0;
	float *out = NULL;
	srv_fail f = { 0 };
	if (srv_v2_parse(data + 4, size - 4, header_len, &x, &q, &n, &out, &f) == 0) {
		if (n < 1 || n > SRV_MAX_IMAGES || q.n_out < 1 || q.n_out > SRV_V2_N_OUT) abort();
		unsigned seen = 0;
		for (int i = 0; i < q.n_out; i++) {
			if (q.order[i] < 0 || q.order[i] >= SRV_V2_N_OUT || (seen >> q.order[i] & 1)) abort();
			seen |= 1u << q.order[i];
		}
		for (size_t i = 0; i < (size_t)n * ae_plan_in_size(x.plan, AE_OP_RECONSTRUCT); i++)
			if (!(out[i] >= 0.0f && out[i] <= 1.0f)) abort();
		free(out);
	} else if (!f.code || f.status < 400 || f.status > 599)
		abort();
	srv_v2_req_free(&q);
	return 0;
}
