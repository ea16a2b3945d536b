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
		sm.c = s.c, sm.h = s.h, sm.w = s.w, sm.latent = s.latent;
		sm.image_size = (size_t)s.c * s.h * s.w;
	}
	return &sm;
}

#endif
