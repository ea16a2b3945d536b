/*
 * Anomaly scores (ae/scores.h): SSIM against scikit-image's
 * structural_similarity on fixed images (values from
 * tests/parity/ssim_reference.py), the window maximum against a direct
 * loop, the latent distance against a Gaussian whose precision is known,
 * and calibration tables.
 */
#include "test.h"

#include "ae/rng.h"
#include "ae/scores.h"

/* Two 12x10 images: a ramp, and the ramp with a bright square and a
 * ripple (written the same way in tests/parity/ssim_reference.py). */
static void images(float *a, float *b, int h, int w)
{
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++) {
			float v = (float)(x + y) / (float)(h + w);
			a[y * w + x] = v;
			float n = v + 0.05f * ((float)((x * 7 + y * 13) % 11) / 10.0f - 0.5f);
			if (y >= 3 && y < 6 && x >= 4 && x < 8) n = 0.95f;
			b[y * w + x] = n < 0 ? 0 : n > 1 ? 1 : n;
		}
}

/* tests/parity/ssim_reference.py */
#define SSIM_REF 0.420319168

static void test_images(void)
{
	enum { H = 12, W = 10 };
	float a[H * W], b[H * W];
	images(a, b, H, W);
	double s;
	ae_score_images(AE_SCORE_SSIM, a, a, 1, 1, H, W, &s);
	CHECK_MSG(fabs(s) < 1e-12, "ssim of an image with itself: %g", s);
	ae_score_images(AE_SCORE_MAX, a, a, 1, 1, H, W, &s);
	CHECK(s == 0);
	/* SSIM_REF: skimage.metrics.structural_similarity(a, b, data_range=1) */
	ae_score_images(AE_SCORE_SSIM, a, b, 1, 1, H, W, &s);
	CHECK_MSG(fabs((1.0 - s) - SSIM_REF) < 1e-6, "ssim %.9f, scikit-image %.9f", 1.0 - s, SSIM_REF);
	double s2;
	ae_score_images(AE_SCORE_SSIM, b, a, 1, 1, H, W, &s2);
	CHECK(fabs(s - s2) < 1e-12);
	/* max: the largest 4x4 mean of squared differences, by a direct loop */
	double best = 0;
	for (int y = 0; y + 4 <= H; y++)
		for (int x = 0; x + 4 <= W; x++) {
			double e = 0;
			for (int dy = 0; dy < 4; dy++)
				for (int dx = 0; dx < 4; dx++) {
					double d = (double)a[(y + dy) * W + x + dx] - b[(y + dy) * W + x + dx];
					e += d * d;
				}
			best = e / 16 > best ? e / 16 : best;
		}
	ae_score_images(AE_SCORE_MAX, a, b, 1, 1, H, W, &s);
	CHECK_MSG(fabs(s - best) < 1e-9, "max %.12g, direct %.12g", s, best);
	/* mse, and an image smaller than the windows still scores */
	ae_score_images(AE_SCORE_MSE, a, b, 1, 1, H, W, &s);
	CHECK(s > 0 && s < best);
	ae_score_images(AE_SCORE_SSIM, a, b, 1, 1, 3, 3, &s);
	CHECK(!isnan(s));
	CHECK(ae_score_find("ssim") == AE_SCORE_SSIM && ae_score_find("nope") == -1);
}

static void test_latent(void)
{
	/* codes ~ N(mu, diag(sd^2)): the distance of mu + sd*e_j is about 1 */
	enum { N = 20000, D = 4 };
	static float z[N * D];
	const double mu[D] = { 1, -2, 0.5, 3 }, sd[D] = { 0.5, 2, 1, 4 };
	ae_rng r;
	ae_rng_seed(&r, 5);
	for (int i = 0; i < N; i++)
		for (int j = 0; j < D; j++)
			z[i * D + j] = (float)(mu[j] + sd[j] * ae_rng_normal(&r));
	double mean[D], prec[D * D];
	ae_error err;
	CHECK(ae_latent_fit(z, N, D, mean, prec, &err) == 0);
	float probe[D];
	for (int j = 0; j < D; j++)
		probe[j] = (float)mu[j];
	probe[2] += (float)(2 * sd[2]);
	double d;
	ae_latent_distance(mean, prec, D, probe, 1, &d);
	CHECK_MSG(fabs(d - 2.0) < 0.05, "two deviations away: %g", d);
	CHECK(ae_latent_fit(z, 1, D, mean, prec, &err) != 0);
}

static void test_calibration(void)
{
	double v[1001];
	for (int i = 0; i <= 1000; i++)
		v[i] = i / 1000.0;
	ae_score_cal c = { 0 };
	ae_error err;
	CHECK(ae_score_calibrate(&c, v, 1001, &err) == 0 && c.present);
	CHECK(fabs(ae_score_quantile(&c, 0.99) - 0.99) < 1e-9);
	CHECK(fabs(ae_score_percentile(&c, 0.5) - 50.0) < 1e-6);
	CHECK_MSG(fabs(c.mean - 0.5) < 1e-12 && fabs(c.std - 0.28910) < 1e-4, "mean %g std %g", c.mean, c.std);
}

int main(void)
{
	test_images();
	test_latent();
	test_calibration();
	return TEST_DONE();
}
