/*
 * Adam with PyTorch's update rule (torch.optim.Adam, no amsgrad, no weight
 * decay): one flat loop over the whole parameter block.
 */
#include "ops.h"

#include <math.h>

void ae_adam_update(float *p, float *m, float *v, const float *g, size_t n, float lr, float beta1, float beta2,
                    float eps, long step)
{
	const double bc1 = 1.0 - pow(beta1, (double)step);
	const double bc2 = 1.0 - pow(beta2, (double)step);
	const float step_size = (float)(lr / bc1);
	const float bc2_sqrt = (float)sqrt(bc2);
	for (size_t i = 0; i < n; i++) {
		m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
		v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
		float denom = sqrtf(v[i]) / bc2_sqrt + eps;
		p[i] -= step_size * m[i] / denom;
	}
}
