/*
 * Dense (PyTorch nn.Linear) forward and backward over a batch, with the
 * reference loops beside them.
 */
#include "ops.h"

#include <cblas.h>
#include <string.h>

void ae_dense_forward(float *y, const float *x, const float *w, const ae_epilogue *ep, int n, int in, int out)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
	for (int i = 0; i < n; i++)
		ae_epilogue_units(y + (size_t)i * out, out, ep);
}

void ae_dense_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n, int in,
                       int out)
{
	if (db)
		for (int i = 0; i < n; i++)
			for (int o = 0; o < out; o++)
				db[o] += dy[(size_t)i * out + o];
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
	if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in);
}

void ae_dense_forward_ref(float *y, const float *x, const float *w, const float *b, int n, int in, int out)
{
	for (int i = 0; i < n; i++)
		for (int o = 0; o < out; o++) {
			double s = b ? b[o] : 0.0;
			for (int j = 0; j < in; j++)
				s += (double)w[(size_t)o * in + j] * x[(size_t)i * in + j];
			y[(size_t)i * out + o] = (float)s;
		}
}

void ae_dense_backward_ref(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int n,
                           int in, int out)
{
	if (dx) memset(dx, 0, sizeof(float) * (size_t)n * in);
	for (int i = 0; i < n; i++)
		for (int o = 0; o < out; o++) {
			float d = dy[(size_t)i * out + o];
			if (db) db[o] += d;
			for (int j = 0; j < in; j++) {
				dw[(size_t)o * in + j] += d * x[(size_t)i * in + j];
				if (dx) dx[(size_t)i * in + j] += d * w[(size_t)o * in + j];
			}
		}
}
