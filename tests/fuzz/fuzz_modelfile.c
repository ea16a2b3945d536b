/*
 * Model files and checkpoints: the safetensors container (header length,
 * JSON header, dtypes, shapes, offsets), our metadata (architecture, input,
 * quantiles, both checksums) and a checkpoint's optimiser state and
 * progress. A file that loads is also compiled into an inference plan and
 * run on one image.
 */
#include "fuzz.h"

#include "ae/modelfile.h"
#include "../../trainer/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	memcpy(buf, data, size);
	ae_st st;
	ae_error err;
	if (ae_st_parse(&st, buf, size, &err) == AE_OK) {
		ae_model *m = ae_model_from_st(&st, NULL, &err);
		if (m) {
			ae_plan *plan = ae_plan_new(m, &err);
			ae_infer *w = plan ? ae_infer_new(plan, 1, 1, &err) : NULL;
			if (w) {
				size_t in = ae_plan_in_size(plan, AE_OP_RECONSTRUCT);
				float *x = calloc(in, sizeof *x),
				      *y = calloc(ae_plan_out_size(plan, AE_OP_RECONSTRUCT), sizeof *y);
				ae_infer_run(w, AE_OP_RECONSTRUCT, x, 1, y);
				free(x), free(y);
			}
			ae_infer_free(w);
			ae_plan_free(plan);
			ae_model_free(m);
		}
		static progress p;
		ckpt_state cs = { .p = &p };
		m = ckpt_parse(&st, &cs, &err);
		free(cs.adam_m), free(cs.adam_v);
		ae_model_free(m);
	}
	ae_st_free(&st);
	return 0;
}
