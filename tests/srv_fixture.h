/*
 * A small model served the way aeserve serves one (28x28 gray, latent 5),
 * built once, for tests and fuzz targets of the server's parsers. It lives
 * until the process ends.
 */
#ifndef AE_SRV_FIXTURE_H
#define AE_SRV_FIXTURE_H

#include <stdio.h>

#include "../server/server.h"

static inline srv_model *srv_fixture_model(void)
{
	static srv_model sm;
	if (!sm.plan) {
		ae_arch_spec s;
		ae_arch_defaults(&s, "conv", NULL);
		s.f1 = 4, s.f2 = 8, s.latent = 5;
		sm.m = ae_model_new(&s, 1, NULL);
		sm.plan = ae_plan_new(sm.m, NULL);
		snprintf(sm.name, sizeof sm.name, "tiny");
	}
	return &sm;
}

/* What a body for op is parsed with, against the fixture model's plan. */
static inline srv_parse_ctx srv_fixture_ctx(const srv_opdef *op, const srv_params *p)
{
	srv_model *m = srv_fixture_model();
	srv_parse_ctx x = { .m = m, .plan = m->plan, .op = op, .p = p };
	x.engine = op->engine == SRV_ENGINE_BY_OUTPUTS ? AE_OP_RECONSTRUCT : (ae_op)op->engine;
	return x;
}

#endif
