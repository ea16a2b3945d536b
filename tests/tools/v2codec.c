/*
 * v2codec: the byte-level pieces of Open Inference Protocol requests and
 * answers that a shell test cannot write with jq alone, done the way a
 * client library (tritonclient, KServe's) does them: little-endian FP32,
 * BYTES elements with their 4-byte lengths, and the split of a binary
 * answer at its Inference-Header-Content-Length.
 *
 *   v2codec pixels FILE.png        the image's pixels /255 as a JSON array
 *   v2codec floats < ARRAY.json    a JSON array of numbers (nested or flat)
 *                                  as little-endian FP32 bytes
 *   v2codec bytes FILE...          the files as BYTES elements
 *   v2codec decode HDRLEN < BODY   a binary answer as JSON: each output
 *                                  that came as binary data gets its values
 *                                  as "data" (numbers, or booleans)
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ae/image.h"

static unsigned char *slurp(FILE *f, size_t *len)
{
	size_t cap = 1 << 16;
	unsigned char *b = malloc(cap);
	*len = 0;
	for (size_t n; b && (n = fread(b + *len, 1, cap - *len, f)) > 0;) {
		*len += n;
		if (*len == cap) {
			unsigned char *g = realloc(b, cap *= 2);
			if (!g) free(b);
			b = g;
		}
	}
	return b;
}

static int cmd_pixels(const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t len = 0;
	unsigned char *buf = f ? slurp(f, &len) : NULL;
	if (f) fclose(f);
	ae_image img;
	ae_error err;
	if (!buf || ae_png_decode(buf, len, 1, 1 << 24, &img, &err)) {
		fprintf(stderr, "v2codec pixels: %s: cannot decode\n", path);
		return 1;
	}
	size_t n = (size_t)img.c * img.h * img.w;
	putchar('[');
	for (size_t i = 0; i < n; i++)
		printf("%s%.9g", i ? "," : "", img.pix[i] * (1.0f / 255.0f)); /* as aeserve scales */
	puts("]");
	ae_image_free(&img);
	free(buf);
	return 0;
}

static void put_floats(const json_t *v)
{
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			put_floats(json_array_get(v, i));
		return;
	}
	float x = (float)json_number_value(v);
	fwrite(&x, sizeof x, 1, stdout);
}

static int cmd_floats(void)
{
	json_error_t je;
	json_t *a = json_loadf(stdin, 0, &je);
	if (!json_is_array(a)) {
		fprintf(stderr, "v2codec floats: not a JSON array: %s\n", je.text);
		return 1;
	}
	put_floats(a);
	json_decref(a);
	return 0;
}

static int cmd_bytes(int n, char **files)
{
	for (int i = 0; i < n; i++) {
		FILE *f = fopen(files[i], "rb");
		size_t len = 0;
		unsigned char *b = f ? slurp(f, &len) : NULL;
		if (f) fclose(f);
		if (!b) return 1;
		uint32_t l = (uint32_t)len;
		fwrite(&l, 4, 1, stdout);
		fwrite(b, 1, len, stdout);
		free(b);
	}
	return 0;
}

static int cmd_decode(long hdr)
{
	size_t len = 0;
	unsigned char *b = slurp(stdin, &len);
	json_error_t je;
	json_t *o = b && hdr >= 0 && (size_t)hdr <= len ? json_loadb((const char *)b, (size_t)hdr, 0, &je) : NULL;
	json_t *outs = json_object_get(o, "outputs");
	if (!json_is_array(outs)) {
		fprintf(stderr, "v2codec decode: no JSON header of %ld bytes with outputs\n", hdr);
		return 1;
	}
	size_t at = (size_t)hdr, i;
	json_t *out;
	json_array_foreach(outs, i, out)
	{
		json_t *p = json_object_get(out, "parameters");
		json_t *bs = json_object_get(p, "binary_data_size");
		if (!bs) continue;
		size_t n = (size_t)json_integer_value(bs);
		int is_bool = strcmp(json_string_value(json_object_get(out, "datatype")), "BOOL") == 0;
		if (at + n > len) {
			fprintf(stderr, "v2codec decode: binary data runs past the body\n");
			return 1;
		}
		json_t *data = json_array();
		for (size_t k = 0; k < n; k += is_bool ? 1 : 4) {
			float x;
			if (!is_bool) memcpy(&x, b + at + k, 4);
			json_array_append_new(data, is_bool ? json_boolean(b[at + k]) : json_real(x));
		}
		at += n;
		json_object_set_new(out, "data", data);
		json_object_del(p, "binary_data_size");
		if (json_object_size(p) == 0) json_object_del(out, "parameters");
	}
	if (at != len) {
		fprintf(stderr, "v2codec decode: %zu bytes left over after the outputs\n", len - at);
		return 1;
	}
	json_dumpf(o, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9));
	putchar('\n');
	json_decref(o);
	free(b);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "pixels") == 0) return cmd_pixels(argv[2]);
	if (argc == 2 && strcmp(argv[1], "floats") == 0) return cmd_floats();
	if (argc >= 3 && strcmp(argv[1], "bytes") == 0) return cmd_bytes(argc - 2, argv + 2);
	if (argc == 3 && strcmp(argv[1], "decode") == 0) return cmd_decode(atol(argv[2]));
	fprintf(stderr, "usage: v2codec pixels FILE.png | floats | bytes FILE... | decode HDRLEN\n");
	return 2;
}
