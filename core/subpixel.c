/*
 * Transposed convolution by sub-pixel decomposition. Output pixel
 * (s*m + a, s*n + b) of a stride-s transposed convolution only ever meets
 * the kernel taps ky with (a + pad - ky) divisible by s (and likewise kx),
 * each reading input (m + dy, n + dx) for a fixed offset. So the output
 * splits into s*s phase classes, and each class is an ordinary GEMM over
 * shifted copies of the input: no col2im, no accumulation pass over a column
 * matrix nine times the output, and exactly the FLOPs of the layer. With
 * stride 1 there is one class: a convolution with the flipped kernel.
 */
#include "ae/ops.h"

#include <cblas.h>
#include <string.h>

/* Taps of phase a along one axis: kernel index and input offset. */
static int phase_taps(int *kt, int *dt, int a, int k, int s, int pad)
{
	int n = 0;
	for (int kk = 0; kk < k; kk++) {
		int d = a + pad - kk;
		if (((d % s) + s) % s == 0) {
			kt[n] = kk;
			dt[n] = d / s;
			n++;
		}
	}
	return n;
}

/* Sub-pixel writes ic*k*k shifted input values per input pixel; col2im a
 * column of oc*k*k that it then reads back and sums. So sub-pixel wins
 * unless ic is much larger than oc. Measured on the conv preset
 * (docs/performance.md): sub-pixel for its 64->64 and 64->32 layers,
 * col2im for the 32->1 output layer. */
int ae_subpix_preferred(int ic, int oc)
{
	return ic <= 2 * oc;
}

int ae_subpix_init(ae_subpix *sp, int ic, int oc, int ih, int iw, int oh, int ow,
                   int k, int s, int pad)
{
	memset(sp, 0, sizeof *sp);
	if (k < 1 || k > AE_SUBPIX_MAX_K || s < 1 || s > AE_SUBPIX_MAX_S || ic < 1 || oc < 1)
		return -1;
	sp->ic = ic, sp->oc = oc, sp->ih = ih, sp->iw = iw, sp->oh = oh, sp->ow = ow;
	sp->k = k, sp->s = s;
	size_t woff = 0;
	for (int a = 0; a < s; a++)
		for (int b = 0; b < s; b++) {
			ae_subpix_class *c = &sp->cls[sp->n_cls++];
			c->a = a, c->b = b;
			c->mh = oh > a ? (oh - a + s - 1) / s : 0;
			c->mw = ow > b ? (ow - b + s - 1) / s : 0;
			c->nty = phase_taps(c->ky, c->dy, a, k, s, pad);
			c->ntx = phase_taps(c->kx, c->dx, b, k, s, pad);
			c->woff = woff;
			woff += (size_t)oc * ic * c->nty * c->ntx;
		}
	return 0;
}

size_t ae_subpix_col_size(const ae_subpix *sp, int n)
{
	size_t m = 0;
	for (int i = 0; i < sp->n_cls; i++) {
		const ae_subpix_class *c = &sp->cls[i];
		size_t v = (size_t)sp->ic * c->nty * c->ntx * n * c->mh * c->mw;
		if (v > m) m = v;
	}
	return m;
}

size_t ae_subpix_t_size(const ae_subpix *sp, int n)
{
	size_t m = 0;
	for (int i = 0; i < sp->n_cls; i++)
		if ((size_t)sp->cls[i].mh * sp->cls[i].mw > m)
			m = (size_t)sp->cls[i].mh * sp->cls[i].mw;
	/* One row of phases at a time: s classes side by side. */
	return m * sp->oc * (size_t)n * sp->s;
}

void ae_subpix_pack(float *wp, const float *w, const ae_subpix *sp)
{
	const int ic = sp->ic, oc = sp->oc, k = sp->k;
	for (int i = 0; i < sp->n_cls; i++) {
		const ae_subpix_class *c = &sp->cls[i];
		float *dst = wp + c->woff;
		const int kc = ic * c->nty * c->ntx;
		for (int o = 0; o < oc; o++)
			for (int ch = 0; ch < ic; ch++)
				for (int ty = 0; ty < c->nty; ty++)
					for (int tx = 0; tx < c->ntx; tx++)
						dst[(size_t)o * kc + (ch * c->nty + ty) * c->ntx + tx] =
							w[(((size_t)ch * oc + o) * k + c->ky[ty]) * k + c->kx[tx]];
	}
}

/* One image plane shifted by (dy, dx) into d (mh, mw), zeros outside x.
 * Phases as wide as the input with non-negative shifts (stride 2, output
 * padding 1) are one contiguous copy plus a zeroed tail per row; rows of
 * 7 to 28 floats make per-row work the cost, so that case matters. */
static void shift_plane(float *d, const float *xc, int ih, int iw, int mh, int mw, int dy, int dx)
{
	if (mw == iw && dy >= 0 && dx >= 0 && dx < iw) {
		int rows = ih - dy < mh ? ih - dy : mh;
		if (rows < 0)
			rows = 0;
		if (rows > 0)
			memcpy(d, xc + (size_t)dy * iw + dx, sizeof(float) * ((size_t)rows * iw - dx));
		for (int m = 0; m < rows; m++)
			for (int j = iw - dx; j < iw; j++)
				d[(size_t)m * mw + j] = 0.0f;
		memset(d + (size_t)rows * mw, 0, sizeof(float) * (size_t)(mh - rows) * mw);
		return;
	}
	/* Columns m with 0 <= m + dx < iw are a plain copy. */
	const int x0 = dx < 0 ? -dx : 0;
	const int x1 = mw < iw - dx ? mw : iw - dx;
	for (int m = 0; m < mh; m++) {
		float *r = d + (size_t)m * mw;
		const int iy = m + dy;
		if (iy < 0 || iy >= ih || x1 <= x0) {
			memset(r, 0, sizeof(float) * (size_t)mw);
			continue;
		}
		const float *src = xc + (size_t)iy * iw + dx;
		for (int j = 0; j < x0; j++)
			r[j] = 0.0f;
		for (int j = x0; j < x1; j++)
			r[j] = src[j];
		for (int j = x1; j < mw; j++)
			r[j] = 0.0f;
	}
}

/* col (ic*nty*ntx, n*mh*mw): the input shifted by each tap's offset. */
static void shifted_copies(float *col, const float *x, int n, const ae_subpix *sp,
                           const ae_subpix_class *c)
{
	const size_t p = (size_t)c->mh * c->mw, np = (size_t)n * p;
	const size_t plane = (size_t)sp->ih * sp->iw;
	for (int ch = 0; ch < sp->ic; ch++)
		for (int ty = 0; ty < c->nty; ty++)
			for (int tx = 0; tx < c->ntx; tx++) {
				float *row = col + ((size_t)(ch * c->nty + ty) * c->ntx + tx) * np;
				for (int img = 0; img < n; img++)
					shift_plane(row + (size_t)img * p, x + ((size_t)img * sp->ic + ch) * plane,
					            sp->ih, sp->iw, c->mh, c->mw, c->dy[ty], c->dx[tx]);
			}
}

/* Writes phase c of y (n, oc, oh, ow) from t (oc, n*mh*mw) through ep
 * (applied in place in t): every s-th pixel of every s-th row from (a, b). */
static void phase_scatter(float *y, float *t, int n, const ae_subpix_class *c,
                          const ae_subpix *sp, const ae_epilogue *ep)
{
	const int oc = sp->oc, s = sp->s, oh = sp->oh, ow = sp->ow, mw = c->mw;
	const size_t p = (size_t)c->mh * mw, np = (size_t)n * p;
	for (int o = 0; o < oc; o++) {
		ae_epilogue_row(t + (size_t)o * np, t + (size_t)o * np, np, o, ep);
		for (int img = 0; img < n; img++) {
			const float *src = t + (size_t)o * np + (size_t)img * p;
			float *dst = y + ((size_t)img * oc + o) * oh * ow + (size_t)c->a * ow + c->b;
			for (int m = 0; m < c->mh; m++) {
				const float *r = src + (size_t)m * mw;
				float *d = dst + (size_t)m * s * ow;
				for (int j = 0; j < mw; j++)
					d[(size_t)j * s] = r[j];
			}
		}
	}
}

/* Phase class c's GEMM into t (oc, n*mh*mw), before the epilogue. */
static void phase_gemm(float *t, float *col, const float *x, const float *wp, int n,
                       const ae_subpix *sp, const ae_subpix_class *c)
{
	const int kc = sp->ic * c->nty * c->ntx, np = n * c->mh * c->mw;
	if (kc == 0) {
		memset(t, 0, sizeof(float) * (size_t)sp->oc * np);
		return;
	}
	shifted_copies(col, x, n, sp, c);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, sp->oc, np, kc,
	            1.0f, wp + c->woff, kc, col, np, 0.0f, t, np);
}

/* Output rows s*m + a from the s phases (a, 0..s-1) held side by side in t,
 * epilogue applied: each output row is written once, contiguously. */
static void interleave_rows(float *y, float *t, int n, int a, const ae_subpix *sp,
                            const ae_epilogue *ep)
{
	const int oc = sp->oc, s = sp->s, oh = sp->oh, ow = sp->ow;
	const int mh = oh / s, mw = ow / s;
	const size_t p = (size_t)mh * mw, np = (size_t)n * p, blk = (size_t)oc * np;
	for (int b = 0; b < s; b++)
		for (int o = 0; o < oc; o++)
			ae_epilogue_row(t + b * blk + o * np, t + b * blk + o * np, np, o, ep);
	for (int o = 0; o < oc; o++)
		for (int img = 0; img < n; img++)
			for (int m = 0; m < mh; m++) {
				const float *src = t + o * np + (size_t)img * p + (size_t)m * mw;
				float *d = y + (((size_t)img * oc + o) * oh + (size_t)s * m + a) * ow;
				if (s == 2) {
					for (int j = 0; j < mw; j++) {
						d[2 * j] = src[j];
						d[2 * j + 1] = src[blk + j];
					}
					continue;
				}
				for (int j = 0; j < mw; j++)
					for (int b = 0; b < s; b++)
						d[j * s + b] = src[b * blk + j];
			}
}

void ae_subpix_forward(float *y, float *col, float *t, const float *x, const float *wp,
                       const ae_epilogue *ep, int n, const ae_subpix *sp)
{
	const int s = sp->s;
	if (s > 1 && sp->oh % s == 0 && sp->ow % s == 0) {
		const size_t blk = (size_t)sp->oc * n * (sp->oh / s) * (sp->ow / s);
		for (int a = 0; a < s; a++) {
			for (int b = 0; b < s; b++)
				phase_gemm(t + b * blk, col, x, wp, n, sp, &sp->cls[a * s + b]);
			interleave_rows(y, t, n, a, sp, ep);
		}
		return;
	}
	for (int i = 0; i < sp->n_cls; i++) {
		const ae_subpix_class *c = &sp->cls[i];
		if (c->mh * c->mw == 0)
			continue;
		phase_gemm(t, col, x, wp, n, sp, c);
		if (s == 1)
			ae_scatter_channels(y, t, n, sp->oc, c->mh * c->mw, ep);
		else
			phase_scatter(y, t, n, c, sp, ep);
	}
}
