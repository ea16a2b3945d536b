/*
 * The operations aeserve offers, one row each: the route segment and metric
 * label, what the engine's plan runs (and so the shapes in and out, which
 * only the plan knows), the body forms and query parameters accepted, the
 * form of the answer, and whether it compares an input with its
 * reconstruction. Routing (routes.c's {op}), validation, batching,
 * metrics and the model's metadata read this table; an operation that
 * answers in a form there already is (codes, images, scores) is one row.
 */
#include "server.h"

#include <stdio.h>
#include <string.h>

#define IMAGES (SRV_IN_PNG | SRV_IN_MULTIPART | SRV_IN_JSON)
#define PIXELS (SRV_P_RESIZE | SRV_P_INVERT)

const srv_opdef srv_ops[] = {
	{ "encode", SRV_V1, AE_OP_ENCODE, SRV_ITEMS_IMAGES, IMAGES, PIXELS | SRV_P_FORMAT, SRV_OUT_CODES, 0 },
	{ "decode", SRV_V1, AE_OP_DECODE, SRV_ITEMS_CODES, SRV_IN_JSON, SRV_P_FORMAT, SRV_OUT_IMAGES, 0 },
	{ "reconstruct", SRV_V1, AE_OP_RECONSTRUCT, SRV_ITEMS_IMAGES, IMAGES, PIXELS, SRV_OUT_IMAGES, 0 },
	{ "denoise", SRV_V1, AE_OP_RECONSTRUCT, SRV_ITEMS_IMAGES, IMAGES, PIXELS, SRV_OUT_IMAGES, 0 },
	/* An image-to-image model applied to what the client sends (a gray
	 * image to colour, a small one to sharp, a masked one filled in):
	 * the same pass, named for what such a model is for. */
	{ "transform", SRV_V1, AE_OP_RECONSTRUCT, SRV_ITEMS_IMAGES, IMAGES, PIXELS, SRV_OUT_IMAGES, 0 },
	{ "anomaly", SRV_V1, AE_OP_RECONSTRUCT, SRV_ITEMS_IMAGES, IMAGES,
	  PIXELS | SRV_P_THRESHOLD | SRV_P_QUANTILE | SRV_P_MAP | SRV_P_SCALE | SRV_P_SCORE, SRV_OUT_SCORES, 1 },
	/* The Open Inference Protocol's infer: the request's "outputs" (v2.c's
	 * output table) say what the plan runs, an encode for the latent
	 * alone, else a reconstruction, and which outputs need the scores;
	 * its parameters are in the JSON, not the query. */
	{ "infer", SRV_V2, SRV_ENGINE_BY_OUTPUTS, SRV_ITEMS_IMAGES, SRV_IN_ANY, 0, SRV_OUT_V2, 0 },
};
const int srv_n_ops = sizeof srv_ops / sizeof *srv_ops;
_Static_assert(sizeof srv_ops / sizeof *srv_ops <= SRV_MAX_OPS, "more operations than metric labels for them");

const srv_opdef *srv_op_find(int front, const char *name)
{
	for (int i = 0; i < srv_n_ops; i++)
		if (srv_ops[i].front == front && strcmp(name, srv_ops[i].name) == 0) return &srv_ops[i];
	return NULL;
}

int srv_op_offered(const srv_opdef *op, const char *model, const ae_plan *p, srv_fail *f)
{
	if (!op->scored || srv_plan_scored(p)) return 0;
	ae_shape in = ae_plan_in_shape(p, AE_OP_RECONSTRUCT), out = ae_plan_out_shape(p, AE_OP_RECONSTRUCT);
	return srv_fail_set(f, 422, "operation_unavailable",
	                    "model '%s' gives [%d,%d,%d] images for [%d,%d,%d] ones; %s compares an image with its "
	                    "reconstruction, which needs the same shape",
	                    model, out.d[0], out.d[1], out.d[2], in.d[0], in.d[1], in.d[2], op->name);
}
