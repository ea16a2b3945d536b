/*
 * The operations aeserve offers, one row each: the route segment and metric
 * label, what the engine's plan runs (and so the sizes in and out, which
 * only the plan knows), the body forms and query parameters accepted, and
 * the form of the answer. Routing, validation, batching and metrics read
 * this table; adding an operation is adding a row.
 */
#include "server.h"

#include <string.h>

#define IMAGES (SRV_IN_PNG | SRV_IN_MULTIPART | SRV_IN_JSON)
#define PIXELS (SRV_P_RESIZE | SRV_P_INVERT)

const srv_opdef srv_ops[SRV_N_OPS] = {
	{ "encode", SRV_V1, AE_OP_ENCODE, SRV_ITEMS_IMAGES, IMAGES, PIXELS | SRV_P_FORMAT, SRV_OUT_CODES },
	{ "decode", SRV_V1, AE_OP_DECODE, SRV_ITEMS_CODES, SRV_IN_JSON, SRV_P_FORMAT, SRV_OUT_IMAGES },
	{ "reconstruct", SRV_V1, AE_OP_RECONSTRUCT, SRV_ITEMS_IMAGES, IMAGES, PIXELS, SRV_OUT_IMAGES },
	{ "denoise", SRV_V1, AE_OP_RECONSTRUCT, SRV_ITEMS_IMAGES, IMAGES, PIXELS, SRV_OUT_IMAGES },
	/* An image-to-image model applied to what the client sends (a gray
	 * image to colour, a small one to sharp, a masked one filled in):
	 * the same pass, named for what such a model is for. */
	{ "transform", SRV_V1, AE_OP_RECONSTRUCT, SRV_ITEMS_IMAGES, IMAGES, PIXELS, SRV_OUT_IMAGES },
	{ "anomaly", SRV_V1, AE_OP_RECONSTRUCT, SRV_ITEMS_IMAGES, IMAGES,
	  PIXELS | SRV_P_THRESHOLD | SRV_P_QUANTILE | SRV_P_MAP | SRV_P_SCALE | SRV_P_SCORE, SRV_OUT_SCORES },
	/* The Open Inference Protocol's infer: the request's "outputs" pick
	 * encode (latent alone) or reconstruct (with the codes); its
	 * parameters are in the JSON, not the query. */
	{ "infer", SRV_V2, AE_OP_RECONSTRUCT, SRV_ITEMS_IMAGES, SRV_IN_ANY, 0, SRV_OUT_V2 },
};

const srv_opdef *srv_op_find(int front, const char *name)
{
	for (int i = 0; i < SRV_N_OPS; i++)
		if (srv_ops[i].front == front && strcmp(name, srv_ops[i].name) == 0) return &srv_ops[i];
	return NULL;
}

const char *srv_route_name(int route)
{
	static const char *other[R_N - SRV_N_OPS] = { "models",
		                                      "model",
		                                      "livez",
		                                      "readyz",
		                                      "metrics",
		                                      "v2_server",
		                                      "v2_live",
		                                      "v2_ready",
		                                      "v2_model",
		                                      "v2_model_ready",
		                                      "repository_index",
		                                      "repository_load",
		                                      "repository_unload",
		                                      "page",
		                                      "other" };
	if (route >= 0 && route < SRV_N_OPS) return srv_ops[route].name;
	return route >= SRV_N_OPS && route < R_N ? other[route - SRV_N_OPS] : "other";
}
