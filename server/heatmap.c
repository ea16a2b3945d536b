/*
 * Anomaly heatmaps: where an image differs from its reconstruction, as an
 * RGB PNG a person can look at. The input shows in gray under a colour map
 * of the per-pixel error (dark purple for none, through red, to pale yellow
 * for an error of 1); the square root spreads the small errors that
 * matter. No legend: the image is the input's size times the scale, pixel
 * for pixel.
 */
#include "server.h"

#include <math.h>
#include <stdlib.h>

#include "ae/image.h"

/* Stops of the colour map at 0, 1/4, 1/2, 3/4 and 1 (close to inferno). */
static const float stops[5][3] = {
	{ 0, 0, 4 }, { 87, 16, 110 }, { 188, 55, 84 }, { 249, 142, 9 }, { 252, 255, 164 },
};

static void colour(float e, float rgb[3])
{
	float v = sqrtf(e < 0.0f ? 0.0f : e > 1.0f ? 1.0f : e) * 4.0f;
	int k = v >= 4.0f ? 3 : (int)v;
	float t = v - (float)k;
	for (int c = 0; c < 3; c++)
		rgb[c] = stops[k][c] + t * (stops[k + 1][c] - stops[k][c]);
}

int srv_heatmap_png(ae_shape s, const float *x, const float *map, int scale, uint8_t **png, size_t *len, ae_error *err)
{
	const int ch = s.d[0], h = s.d[1], w = s.d[2], H = h * scale, W = w * scale;
	const size_t hw = (size_t)h * w;
	uint8_t *pix = malloc((size_t)3 * H * W);
	if (!pix) return ae_fail(err, AE_ERR_NOMEM, "out of memory for a heatmap");
	for (int y = 0; y < h; y++)
		for (int xx = 0; xx < w; xx++) {
			const size_t p = (size_t)y * w + xx;
			float g = 0.0f, rgb[3];
			for (int c = 0; c < ch; c++)
				g += x[(size_t)c * hw + p];
			g = 255.0f * g / (float)ch;
			colour(map[p], rgb);
			for (int c = 0; c < 3; c++) {
				/* the colour over the input, the input still legible */
				float v = 0.35f * g + 0.65f * rgb[c];
				uint8_t b = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v + 0.5f);
				for (int dy = 0; dy < scale; dy++)
					for (int dx = 0; dx < scale; dx++)
						pix[((size_t)c * H + (size_t)y * scale + dy) * W + (size_t)xx * scale +
						    dx] = b;
			}
		}
	int rc = ae_png_encode(pix, 3, H, W, png, len, err);
	free(pix);
	return rc;
}
