/*
 * Bilinear resampling, the one definition: the server's ?resize and the
 * trainer's --resize both go through it, so a model sees the same pixels
 * from either.
 */
#include "ae/image.h"

void ae_resample_bilinear(const uint8_t *src, int c, int h, int w, float *dst, int oh, int ow)
{
	for (int ch = 0; ch < c; ch++)
		for (int y = 0; y < oh; y++) {
			/* Pixel centres map to pixel centres (align_corners=False). */
			float fy = ((float)y + 0.5f) * (float)h / (float)oh - 0.5f;
			int y0 = fy < 0 ? 0 : (int)fy, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
			float ty = fy - (float)y0;
			if (ty < 0) ty = 0;
			for (int x = 0; x < ow; x++) {
				float fx = ((float)x + 0.5f) * (float)w / (float)ow - 0.5f;
				int x0 = fx < 0 ? 0 : (int)fx, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
				float tx = fx - (float)x0;
				if (tx < 0) tx = 0;
				const uint8_t *p = src + (size_t)ch * h * w;
				float a = p[y0 * w + x0] + tx * (p[y0 * w + x1] - p[y0 * w + x0]);
				float b = p[y1 * w + x0] + tx * (p[y1 * w + x1] - p[y1 * w + x0]);
				dst[((size_t)ch * oh + y) * ow + x] = (a + ty * (b - a)) / 255.0f;
			}
		}
}
