/*
 * PNG to tensor, as aeserve decodes an image/png body. The input is the
 * whole file (so PngSuite and real images seed it as they are); its length
 * modulo 8 chooses the options: ?resize, ?invert, and RGB decoding in the
 * core as well.
 */
#include "fuzz.h"

#include "ae/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned opt = (unsigned)(size % 8);
	srv_params p;
	srv_params_init(&p);
	p.resize = opt & 1;
	p.invert = (opt >> 1) & 1;
	srv_parse_ctx x = srv_fixture_ctx(srv_op_find(SRV_V1, "encode"), &p);
	int n;
	float *out = NULL;
	srv_fail f = { 0 };
	if (srv_parse_png(data, size, &x, &n, &out, &f) == 0) free(out);
	/* The core's decoder directly, in RGB, at the server's pixel limit. */
	ae_image img;
	if ((opt & 4) && ae_png_decode(data, size, 3, AE_PNG_MAX_PIXELS, &img, NULL) == 0) ae_image_free(&img);
	return 0;
}
