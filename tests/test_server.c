/*
 * The server's own parsers and formatters, without HTTP: query parameters,
 * media types, client text made valid UTF-8, the JSON tensor reader, the
 * multipart reader, PNG decoding budgets and float formatting. Each case is
 * what a client sends and what it must get back (status, code, message).
 */
#include "test.h"

#include <jansson.h>
#include <zlib.h>

#include "srv_fixture.h"
#include "ae/image.h"
#include "ae/scores.h"

/* ------------------------------------------------------------------ text */

static int valid_json_string(const char *escaped)
{
	size_t n = strlen(escaped);
	char *doc = malloc(n + 3);
	doc[0] = '"';
	memcpy(doc + 1, escaped, n);
	doc[n + 1] = '"';
	doc[n + 2] = '\0';
	json_t *j = json_loads(doc, JSON_DECODE_ANY, NULL);
	free(doc);
	int ok = json_is_string(j);
	json_decref(j);
	return ok;
}

static void test_text(void)
{
	char out[64];
	CHECK(strcmp(srv_text_clean(out, sizeof out, "/v1/models/\xff\xfe/encode"),
	             "/v1/models/\xef\xbf\xbd\xef\xbf\xbd/encode") == 0);
	CHECK(strcmp(srv_text_clean(out, sizeof out, "a\nb\tc\x7f"), "a?b?c?") == 0);
	CHECK(strcmp(srv_text_clean(out, sizeof out, "caf\xc3\xa9"), "caf\xc3\xa9") == 0);
	/* overlong '/', a surrogate, past U+10FFFF, a cut sequence */
	CHECK(strcmp(srv_text_clean(out, sizeof out, "\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd") == 0);
	CHECK(strcmp(srv_text_clean(out, sizeof out, "\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") == 0);
	CHECK(strcmp(srv_text_clean(out, sizeof out, "\xf4\x90\x80\x80"),
	             "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd") == 0);
	CHECK(strcmp(srv_text_clean(out, sizeof out, "x\xe2\x82"), "x\xef\xbf\xbd\xef\xbf\xbd") == 0);
	/* truncation never splits a character */
	char small[5];
	CHECK(strcmp(srv_text_clean(small, sizeof small, "ab\xc3\xa9\xc3\xa9"), "ab\xc3\xa9") == 0);
	CHECK(strcmp(srv_text_clean(small, sizeof small, "abc\xc3\xa9"), "abc") == 0);

	srv_json_escape(out, sizeof out, "a\"b\\c\n\x01\xff");
	CHECK_MSG(strcmp(out, "a\\\"b\\\\c\\u000a\\u0001\xef\xbf\xbd") == 0, "%s", out);
	CHECK(valid_json_string(out));
	/* every byte value, alone, escapes to a valid JSON string */
	int all_ok = 1;
	for (int b = 1; b < 256; b++) {
		char in[2] = { (char)b, 0 };
		srv_json_escape(out, sizeof out, in);
		all_ok &= valid_json_string(out);
	}
	CHECK(all_ok);
}

/* ----------------------------------------------------------- media types */

static void test_media_types(void)
{
	CHECK(srv_media_type("image/png") == SRV_IN_PNG);
	CHECK(srv_media_type("IMAGE/PNG; charset=binary") == SRV_IN_PNG);
	CHECK(srv_media_type("image/png ") == SRV_IN_PNG);
	CHECK(srv_media_type("image/pngfoo") == 0);
	CHECK(srv_media_type("image/pn") == 0);
	CHECK(srv_media_type("application/json;charset=utf-8") == SRV_IN_JSON);
	CHECK(srv_media_type("application/jsonp") == 0);
	CHECK(srv_media_type("multipart/form-data; boundary=x") == SRV_IN_MULTIPART);
	CHECK(srv_media_type("multipart/mixed; boundary=x") == 0);
	CHECK(srv_media_type("") == 0);
	CHECK(srv_media_type(NULL) == 0);
}

/* ------------------------------------------------------------ parameters */

static int set(srv_params *p, unsigned accepted, const char *k, const char *v, srv_fail *f)
{
	return srv_params_set(p, accepted, k, v, f);
}

static void test_params(void)
{
	const unsigned pix = srv_op_find(SRV_V1, "encode")->params, an = srv_op_find(SRV_V1, "anomaly")->params;
	srv_params p;
	srv_fail f = { 0 };
	srv_params_init(&p);
	CHECK(set(&p, pix, "resize", "TRUE", &f) == 0 && p.resize == 1);
	CHECK(set(&p, pix, "invert", "", &f) == 0 && p.invert == 1);
	CHECK(set(&p, pix, "resize", "0", &f) == -1 && strstr(f.msg, "twice"));
	srv_params_init(&p);
	CHECK(set(&p, pix, "invert", "no", &f) == 0 && p.invert == 0);
	CHECK(set(&p, pix, "resize", "maybe", &f) == -1 && f.status == 400 &&
	      strcmp(f.code, "invalid_parameter") == 0 && strstr(f.msg, "resize 'maybe'"));
	CHECK(set(&p, pix, "quantile", "0.5", &f) == -1 && strstr(f.msg, "unknown parameter 'quantile'") &&
	      strstr(f.msg, "resize, invert"));
	CHECK(set(&p, srv_op_find(SRV_V1, "decode")->params, "resize", "1", &f) == -1 &&
	      strstr(f.msg, "this route takes format"));
	srv_params_init(&p);
	CHECK(set(&p, srv_op_find(SRV_V1, "encode")->params, "format", "int8", &f) == 0 && p.format == 2);
	srv_params_init(&p);
	CHECK(set(&p, srv_op_find(SRV_V1, "decode")->params, "format", "fp16", &f) == -1 &&
	      strstr(f.msg, "format 'fp16' is not one of f32, f16, int8"));
	srv_params_init(&p);
	CHECK(set(&p, pix, "\xff", "1", &f) == -1 && strstr(f.msg, "'\xef\xbf\xbd'"));

	srv_params_init(&p);
	CHECK(p.quantile == 0.99 && isnan(p.threshold));
	CHECK(set(&p, an, "quantile", "0.999", &f) == 0 && p.quantile == 0.999);
	CHECK(srv_params_done(&p, &f) == 0);
	CHECK(set(&p, an, "threshold", "0.02", &f) == 0 && p.threshold == 0.02 && isnan(p.quantile));
	CHECK(srv_params_done(&p, &f) == -1 && strstr(f.msg, "not both"));
	const char *bad_q[] = { "0", "1.5", "-0.1", "nan", "abc", "", "0.5x" };
	for (size_t i = 0; i < sizeof bad_q / sizeof *bad_q; i++) {
		srv_params_init(&p);
		CHECK_MSG(set(&p, an, "quantile", bad_q[i], &f) == -1, "quantile '%s' accepted", bad_q[i]);
	}
	const char *bad_t[] = { "-1", "inf", "1e999", "x" };
	for (size_t i = 0; i < sizeof bad_t / sizeof *bad_t; i++) {
		srv_params_init(&p);
		CHECK_MSG(set(&p, an, "threshold", bad_t[i], &f) == -1, "threshold '%s' accepted", bad_t[i]);
	}
}

/* ------------------------------------------------------------- JSON tensors */

static int parse_json(const char *op, const char *doc, int *n, float **out, srv_fail *f)
{
	srv_params p;
	srv_params_init(&p);
	srv_parse_ctx x = srv_fixture_ctx(srv_op_find(SRV_V1, op), &p);
	*out = NULL;
	return srv_parse_json((const uint8_t *)doc, strlen(doc), &x, n, out, f);
}

/* A document of n images of 784 values v, shaped as shape. */
static char *images_doc(const char *head, int n, const char *v, const char *tail)
{
	size_t cap = strlen(head) + strlen(tail) + (size_t)n * 784 * (strlen(v) + 1) + 16;
	char *d = malloc(cap), *p = d;
	p += sprintf(p, "%s", head);
	for (int i = 0; i < n * 784; i++)
		p += sprintf(p, "%s%s", i ? "," : "", v);
	sprintf(p, "%s", tail);
	return d;
}

static void expect_json(const char *op, const char *doc, unsigned status, const char *code, const char *msg)
{
	int n;
	float *v;
	srv_fail f = { 0 };
	int rc = parse_json(op, doc, &n, &v, &f);
	CHECK_MSG(rc == -1 && f.status == status && strcmp(f.code, code) == 0 && (!msg || strstr(f.msg, msg)),
	          "%.60s: rc %d, %u %s '%s' (wanted %u %s '%s')", doc, rc, f.status, f.code ? f.code : "-", f.msg,
	          status, code, msg ? msg : "");
	free(v);
}

static void test_json(void)
{
	int n;
	float *v;
	srv_fail f = { 0 };
	char *d = images_doc("{\"shape\":[2,784],\"data\":[", 2, "0.25", "]}");
	CHECK(parse_json("encode", d, &n, &v, &f) == 0 && n == 2 && v[0] == 0.25f && v[1567] == 0.25f);
	free(v), free(d);
	/* members in any order, other members ignored, keys with escapes */
	d = images_doc(
	        "{\"data\" : [", 1, "1",
	        "], \"extra\": {\"a\": [1, {\"b\": null}], \"c\": \"\\u00e9\"}, \"sh\\u0061pe\": [1, 1, 28, 28]}");
	CHECK_MSG(parse_json("encode", d, &n, &v, &f) == 0 && n == 1 && v[783] == 1.0f, "%s", f.msg);
	free(v), free(d);
	/* nested rows */
	char *p = d = malloc(64 + 28 * 28 * 4 + 28 * 3);
	p += sprintf(p, "{\"shape\":[1,28,28],\"data\":[");
	for (int r = 0; r < 28; r++) {
		p += sprintf(p, "%s[", r ? "," : "");
		for (int c = 0; c < 28; c++)
			p += sprintf(p, "%s0", c ? "," : "");
		p += sprintf(p, "]");
	}
	sprintf(p, "]}");
	CHECK(parse_json("encode", d, &n, &v, &f) == 0 && n == 1);
	free(v), free(d);
	CHECK(parse_json("decode", "{\"shape\":[1,5],\"data\":[-3.5e2,1e-999,0,2,7]}", &n, &v, &f) == 0 && n == 1 &&
	      v[0] == -350.0f && v[1] == 0.0f);
	free(v);

	expect_json("encode", "{\"shape\": [1,784], \"data\": [0.1,", 400, "invalid_json", "line 1, column 33");
	expect_json("encode", "{\n\"shape\": [1,1],\n  \"data\": [NaN]}", 400, "invalid_json", "line 3, column 12");
	expect_json("encode", "{\"shape\": [1,1], \"data\": [1e999]}", 400, "invalid_json", "too large");
	expect_json("encode", "{\"shape\": [1,1], \"data\": [01]}", 400, "invalid_json", NULL);
	expect_json("encode", "{\"shape\": [1,1], \"data\": [1.]}", 400, "invalid_json", NULL);
	expect_json("encode", "{\"shape\": [1,1], \"data\": [-]}", 400, "invalid_json", NULL);
	expect_json("encode", "{\"shape\": [1,1], \"data\": [0x1]}", 400, "invalid_json", NULL);
	expect_json("encode", "{\"shape\": [1,1], \"data\": [1]} x", 400, "invalid_json", "after its end");
	expect_json("encode", "{\"shape\": [1,1], \"data\": [1], \"data\": [1]}", 400, "invalid_json",
	            "duplicate key 'data'");
	expect_json("encode", "{\"shape\": [1,1], \"k\": \"\xff\"}", 400, "invalid_json", "UTF-8");
	expect_json("encode", "{\"shape\": [1,1], \"k\": \"\\ud800\"}", 400, "invalid_json", "surrogate");
	expect_json("encode", "{\"shape\": [1,1], \"k\": \"a\nb\"}", 400, "invalid_json", "control character");
	expect_json("encode", "{\"shape\": [1,1], \"k\": \"\\x\"}", 400, "invalid_json", "escape");
	expect_json("encode", "{\"shape\": [1,1], \"k\": \"abc", 400, "invalid_json", "not terminated");
	expect_json("encode", "", 400, "invalid_json", NULL);
	expect_json("encode", "[1,2,3]", 400, "invalid_json", "expected an object");
	expect_json("encode", "{\"shape\": 5, \"data\": []}", 400, "invalid_json", "expected an object");
	expect_json("encode", "{\"data\": []}", 400, "invalid_json", "expected an object");
	expect_json("encode", "{\"shape\": [784], \"data\": []}", 400, "invalid_shape", "2 to 4");
	expect_json("encode", "{\"shape\": [1,-784], \"data\": []}", 400, "invalid_shape", "entry 1");
	expect_json("encode", "{\"shape\": [1,784.0], \"data\": []}", 400, "invalid_shape", "entry 1");
	expect_json("encode", "{\"shape\": [\"1\",784], \"data\": []}", 400, "invalid_shape", "entry 0");
	expect_json("encode", "{\"shape\": [1,2,3,4,5,6,7,8,9,10], \"data\": []}", 400, "invalid_shape", "2 to 4");
	expect_json("encode", "{\"shape\": [4097,784], \"data\": []}", 413, "too_many_images", "4097");
	expect_json("encode", "{\"shape\": [1,2,2], \"data\": [0,0,0,0]}", 422, "wrong_shape",
	            "[N,1,28,28], [N,28,28] or [N,784]");
	expect_json("decode", "{\"shape\": [1,3], \"data\": [0,0,0]}", 422, "wrong_shape", "codes [N,5]");
	expect_json("encode", "{\"shape\": [1,784], \"data\": [[[[[[[[0]]]]]]]]}", 400, "invalid_json",
	            "nested too deeply");
	expect_json("encode", "{\"shape\": [1,784], \"data\": [\"x\"]}", 400, "invalid_json", "not a number");
	expect_json("encode", "{\"shape\": [1,784], \"data\": [0,0]}", 400, "shape_mismatch", "holds 2 values");
	d = images_doc("{\"shape\":[1,784],\"data\":[", 1, "0.5", ",1.5]}");
	expect_json("encode", d, 400, "shape_mismatch", "holds 785");
	free(d);
	d = images_doc("{\"shape\":[1,784],\"data\":[", 1, "0", "]}");
	d[strlen("{\"shape\":[1,784],\"data\":[") + 10] = '7'; /* data[5] = 7 */
	expect_json("encode", d, 422, "value_out_of_range", "data[5] = 7");
	free(d);
	/* nesting past any limit in an ignored member: refused, not a stack overflow */
	char deep[4096];
	size_t k = (size_t)sprintf(deep, "{\"x\":");
	for (int i = 0; i < 1000; i++)
		deep[k++] = '[';
	strcpy(deep + k, "]}");
	expect_json("encode", deep, 400, "invalid_json", "nested too deeply");
}

/* ------------------------------------------------------------- multipart */

/* A 28x28 gray PNG of value v, in a new buffer. */
static uint8_t *png_of(int w, int h, uint8_t v, size_t *len)
{
	uint8_t *pix = malloc((size_t)w * h), *png;
	memset(pix, v, (size_t)w * h);
	ae_png_encode(pix, 1, h, w, &png, len, NULL);
	free(pix);
	return png;
}

static int parse_form(const uint8_t *body, size_t len, const char *ctype, int *n, float **out, srv_fail *f)
{
	srv_params p;
	srv_params_init(&p);
	srv_parse_ctx x = srv_fixture_ctx(srv_op_find(SRV_V1, "encode"), &p);
	*out = NULL;
	return srv_parse_multipart(body, len, ctype, &x, n, out, f);
}

/* Parts of the PNG, count times, then the closing delimiter. */
static uint8_t *form_of(const uint8_t *png, size_t plen, int count, size_t *len)
{
	static const char head[] = "--XB\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
	                           "Content-Type: image/png\r\n\r\n";
	size_t per = sizeof head - 1 + plen + 2;
	uint8_t *b = malloc(per * (size_t)count + 16), *p = b;
	for (int i = 0; i < count; i++) {
		memcpy(p, head, sizeof head - 1), p += sizeof head - 1;
		memcpy(p, png, plen), p += plen;
		memcpy(p, "\r\n", 2), p += 2;
	}
	memcpy(p, "--XB--\r\n", 8), p += 8;
	*len = (size_t)(p - b);
	return b;
}

static void test_multipart(void)
{
	size_t plen, len;
	uint8_t *png = png_of(28, 28, 255, &plen);
	uint8_t *form = form_of(png, plen, 3, &len);
	int n;
	float *v;
	srv_fail f = { 0 };
	CHECK(parse_form(form, len, "multipart/form-data; boundary=XB", &n, &v, &f) == 0 && n == 3 && v[0] == 1.0f &&
	      v[3 * 784 - 1] == 1.0f);
	free(v);
	CHECK(parse_form(form, len, "multipart/form-data; boundary=\"XB\"", &n, &v, &f) == 0 && n == 3);
	free(v);
	CHECK(parse_form(form, len, "multipart/form-data", &n, &v, &f) == -1 && strstr(f.msg, "boundary"));
	CHECK(parse_form(form, len, "multipart/form-data; boundary=YY", &n, &v, &f) == -1 &&
	      strstr(f.msg, "does not contain its boundary"));
	CHECK(parse_form(form, len / 2, "multipart/form-data; boundary=XB", &n, &v, &f) == -1 &&
	      strcmp(f.code, "invalid_multipart") == 0);
	free(form);
	/* more parts than a request may hold: refused before they are decoded */
	form = form_of(png, plen, SRV_MAX_IMAGES + 1, &len);
	CHECK(parse_form(form, len, "multipart/form-data; boundary=XB", &n, &v, &f) == -1 && f.status == 413);
	free(form);
	free(png);
}

/* ------------------------------------------------------- PNG budgets */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A PNG that is only structure: IHDR for w x h RGBA 16-bit, an empty
 * IDAT, IEND. It decodes to nothing, but its header is what the budget
 * reads. */
static size_t png_header_only(uint8_t *b, uint32_t w, uint32_t h)
{
	static const uint8_t sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
	size_t at = 0;
	memcpy(b, sig, 8), at = 8;
	put32(b + at, 13), memcpy(b + at + 4, "IHDR", 4);
	put32(b + at + 8, w), put32(b + at + 12, h);
	b[at + 16] = 16, b[at + 17] = 6, b[at + 18] = b[at + 19] = b[at + 20] = 0;
	put32(b + at + 21, (uint32_t)crc32(0, b + at + 4, 17)), at += 25;
	put32(b + at, 0), memcpy(b + at + 4, "IDAT", 4), put32(b + at + 8, (uint32_t)crc32(0, b + at + 4, 4)), at += 12;
	put32(b + at, 0), memcpy(b + at + 4, "IEND", 4), put32(b + at + 8, (uint32_t)crc32(0, b + at + 4, 4)), at += 12;
	return at;
}

static void test_png_budget(void)
{
	uint8_t b[64];
	srv_params p;
	srv_params_init(&p);
	p.resize = 1;
	srv_parse_ctx x = srv_fixture_ctx(srv_op_find(SRV_V1, "encode"), &p);
	int n;
	float *v = NULL;
	srv_fail f = { 0 };
	/* 4096 x 4096 RGBA16: within the pixel limit, but 128 MiB to inflate */
	size_t len = png_header_only(b, 4096, 4096);
	CHECK(srv_parse_png(b, len, &x, &n, &v, &f) == -1 && f.status == 422 && strstr(f.msg, "would decompress"));
	len = png_header_only(b, 4097, 4096);
	CHECK(srv_parse_png(b, len, &x, &n, &v, &f) == -1 && f.status == 422 && strstr(f.msg, "over the limit"));
	/* Real 2048 x 2048 RGB images, 12.6 MB each to inflate: five fit in a
	 * request's budget, the sixth does not, whatever each alone costs. */
	uint8_t *pix = calloc(3, 2048 * 2048), *png;
	size_t plen, flen;
	ae_png_encode(pix, 3, 2048, 2048, &png, &plen, NULL);
	free(pix);
	uint8_t *form = form_of(png, plen, 6, &flen);
	srv_parse_ctx xr = srv_fixture_ctx(srv_op_find(SRV_V1, "encode"), &p);
	CHECK(srv_parse_multipart(form, flen, "multipart/form-data; boundary=XB", &xr, &n, &v, &f) == -1);
	CHECK_MSG(f.status == 422 && strstr(f.msg, "part 6 would decompress"), "%u %s", f.status, f.msg);
	free(form);
	form = form_of(png, plen, 5, &flen);
	CHECK(srv_parse_multipart(form, flen, "multipart/form-data; boundary=XB", &xr, &n, &v, &f) == 0 && n == 5);
	free(v), free(form), free(png);
	len = png_header_only(b, 2048, 2048);
	ae_png_info info;
	CHECK(ae_png_inspect(b, len, &info, NULL) == 0 && info.raw_bytes == 2048ull * (1 + 2048 * 8));
}

/* ------------------------------------------------------------ formatting */

static void test_fmt_float(void)
{
	char buf[32];
	struct {
		float v;
		const char *s;
	} cases[] = {
		{ 0.0f, "0" },           { 0.5f, "0.5" },           { -1.25f, "-1.25" }, { 1e-5f, "1e-05" },
		{ 123456.0f, "123456" }, { 1234567.0f, "1234567" }, { 0.1f, "0.1" },     { 10.0118f, "10.0118" }
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		buf[srv_fmt_float(buf, cases[i].v)] = '\0';
		CHECK_MSG(strcmp(buf, cases[i].s) == 0, "%g -> %s, wanted %s", (double)cases[i].v, buf, cases[i].s);
	}
	/* any float: the text reads back as exactly that float */
	ae_rng r;
	ae_rng_seed(&r, 5);
	int bad = 0;
	for (int i = 0; i < 100000; i++) {
		float v = (float)((ae_rng_uniform(&r) - 0.5) * pow(10.0, (double)(int)(ae_rng_uniform(&r) * 16) - 8));
		buf[srv_fmt_float(buf, v)] = '\0';
		bad += strtof(buf, NULL) != v || strlen(buf) > 16;
	}
	CHECK_MSG(bad == 0, "%d of 100000 floats did not read back", bad);
}

/* ------------------------------------------------ Open Inference Protocol */

static void test_v2_split(void)
{
	srv_fail f = { 0 };
	srv_v2_split sp;
	const char *doc = "{\"id\":\"x\", \"inputs\": [ {\"name\":\"input\",\"data\" : [[1, 2], [3]] ,"
	                  "\"shape\":[1,3]} ], \"outputs\":[{\"name\":\"data\"}]}";
	CHECK(srv_json_split_v2((const uint8_t *)doc, strlen(doc), &sp, &f) == 0);
	CHECK_MSG(sp.skel && strcmp(sp.skel, "{\"id\":\"x\", \"inputs\": [ {\"name\":\"input\",\"data\" : [] ,"
	                                     "\"shape\":[1,3]} ], \"outputs\":[{\"name\":\"data\"}]}") == 0,
	          "%s", sp.skel);
	CHECK(sp.data[0].len == strlen("[[1, 2], [3]]") &&
	      memcmp(doc + sp.data[0].off, "[[1, 2], [3]]", sp.data[0].len) == 0);
	free(sp.skel);
	/* the whole document is still judged as JSON */
	const char *bad[] = { "{\"inputs\":[{\"data\":[1,,2]}]}", "{\"inputs\":[{\"data\":[1],\"data\":[2]}]}", "[1]",
		              "{\"inputs\":[]} x", "{\"inputs\":[{\"name\":\"\xff\"}]}" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		memset(&f, 0, sizeof f);
		CHECK_MSG(srv_json_split_v2((const uint8_t *)bad[i], strlen(bad[i]), &sp, &f) == -1 && f.status == 400,
		          "%s", bad[i]);
	}
	/* what is left for jansson is bounded: a 100 kB id is refused */
	size_t n = 100000;
	char *big = malloc(n + 64);
	int at = sprintf(big, "{\"id\":\"");
	memset(big + at, 'a', n);
	strcpy(big + at + n, "\",\"inputs\":[]}");
	CHECK(srv_json_split_v2((const uint8_t *)big, strlen(big), &sp, &f) == -1 && f.status == 400 &&
	      strstr(f.msg, "outside the tensor data"));
	free(big);
}

static void test_v2_parse(void)
{
	srv_params p;
	srv_params_init(&p);
	srv_parse_ctx x = srv_fixture_ctx(srv_op_find(SRV_V2, "infer"), &p);
	const size_t per = ae_plan_in_size(x.plan, AE_OP_RECONSTRUCT);
	srv_v2_req q;
	srv_fail f = { 0 };
	int n;
	float *out = NULL;
	/* raw FP32: two images */
	float *raw = calloc(2 * per, sizeof *raw);
	raw[per] = 0.5f;
	CHECK(srv_v2_parse((const uint8_t *)raw, 2 * per * sizeof *raw, 0, &x, &q, &n, &out, &f) == 0 && n == 2 &&
	      out[per] == 0.5f && q.n_out == SRV_V2_N_OUT && q.binary == 0);
	free(out);
	srv_v2_req_free(&q);
	/* raw, not a whole image */
	CHECK(srv_v2_parse((const uint8_t *)raw, per * sizeof *raw - 4, 0, &x, &q, &n, &out, &f) == -1 &&
	      f.status == 400);
	srv_v2_req_free(&q);
	/* raw NaN: refused, named */
	raw[3] = NAN;
	CHECK(srv_v2_parse((const uint8_t *)raw, per * sizeof *raw, 0, &x, &q, &n, &out, &f) == -1 &&
	      strstr(f.msg, "input[3]"));
	srv_v2_req_free(&q);
	free(raw);
	/* outputs asked: order kept, binary per output and for all */
	char doc[512];
	snprintf(doc, sizeof doc,
	         "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,%zu],\"datatype\":\"FP32\",\"data\":[%s]}],"
	         "\"outputs\":[{\"name\":\"anomaly\"},{\"name\":\"latent\",\"parameters\":{\"binary_data\":true}}],"
	         "\"parameters\":{\"quantile\":0.9}}",
	         per, "0");
	/* one value for an image of many */
	CHECK(srv_v2_parse((const uint8_t *)doc, strlen(doc), -1, &x, &q, &n, &out, &f) == -1 &&
	      strstr(f.msg, "data holds 1 values"));
	srv_v2_req_free(&q);
	char *vals = malloc(per * 2 + 1), *v = vals;
	for (size_t i = 0; i < per; i++)
		v += sprintf(v, "%s0", i ? "," : "");
	char *full = malloc(per * 2 + 512);
	sprintf(full,
	        "{\"id\":\"q\\u00e9\",\"inputs\":[{\"name\":\"input\",\"shape\":[1,%zu],\"datatype\":\"FP32\",\"data\":[%s]}],"
	        "\"outputs\":[{\"name\":\"anomaly\"},{\"name\":\"latent\",\"parameters\":{\"binary_data\":true}}],"
	        "\"parameters\":{\"quantile\":0.9}}",
	        per, vals);
	CHECK(srv_v2_parse((const uint8_t *)full, strlen(full), -1, &x, &q, &n, &out, &f) == 0 && n == 1 &&
	      q.n_out == 2 && q.order[0] == SRV_V2_ANOMALY && q.order[1] == SRV_V2_LATENT &&
	      q.binary == 1u << SRV_V2_LATENT && q.p.quantile == 0.9 && q.id && strcmp(q.id, "q\xc3\xa9") == 0);
	free(out);
	srv_v2_req_free(&q);
	free(vals);
	free(full);
}

static void test_keys(void)
{
	char path[] = "/tmp/ae-keys-XXXXXX", err[300];
	int fd = mkstemp(path);
	const char *k1 = "0123456789abcdef-one", *k2 = "0123456789abcdef-two";
	dprintf(fd, "# comment\n\n%s\r\n  \n%s\n", k1, k2);
	close(fd);
	srv_keys *k = srv_keys_open(path, err, sizeof err);
	CHECK_MSG(k && srv_keys_count(k) == 2, "%s", err);
	char h[300];
	snprintf(h, sizeof h, "Bearer %s", k1);
	CHECK(srv_keys_check(k, h) == SRV_KEY_OK);
	snprintf(h, sizeof h, "bearer   %s ", k2);
	CHECK(srv_keys_check(k, h) == SRV_KEY_OK);
	CHECK(srv_keys_check(k, NULL) == SRV_KEY_MISSING);
	CHECK(srv_keys_check(k, "Bearer 0123456789abcdef") == SRV_KEY_INVALID); /* a prefix */
	CHECK(srv_keys_check(k, "Bearer 0123456789abcdef-one-and-more") == SRV_KEY_INVALID);
	CHECK(srv_keys_check(k, "Basic 0123456789abcdef-one") == SRV_KEY_INVALID);
	CHECK(srv_keys_check(k, "Bearer ") == SRV_KEY_INVALID);
	/* a bad file on reload keeps the keys, and the message names the line, not the key */
	FILE *w = fopen(path, "w");
	fprintf(w, "%s\nshort-secret\n", k1);
	fclose(w);
	CHECK(srv_keys_reload(k, err, sizeof err) == -1 && strstr(err, "line 2") && !strstr(err, "short-secret"));
	snprintf(h, sizeof h, "Bearer %s", k2);
	CHECK(srv_keys_check(k, h) == SRV_KEY_OK);
	w = fopen(path, "w");
	fprintf(w, "%s\n", k2);
	fclose(w);
	CHECK(srv_keys_reload(k, err, sizeof err) == 0 && srv_keys_count(k) == 1);
	snprintf(h, sizeof h, "Bearer %s", k1);
	CHECK(srv_keys_check(k, h) == SRV_KEY_INVALID);
	srv_keys_free(k);
	w = fopen(path, "w");
	fclose(w);
	CHECK(srv_keys_open(path, err, sizeof err) == NULL && strstr(err, "no keys"));
	unlink(path);
}

static void test_scores_offered(void)
{
	srv_fail f = { 0 };
	const srv_model *m = srv_fixture_model(); /* as a model file from before the other scores */
	CHECK(srv_score_kind(m, -1, &f) == AE_SCORE_MSE && srv_score_kind(m, AE_SCORE_MSE, &f) == AE_SCORE_MSE);
	CHECK(srv_score_kind(m, AE_SCORE_SSIM, &f) == -1 && f.status == 422 && strstr(f.msg, "no ssim score") &&
	      strstr(f.msg, "it has mse"));
	srv_params p;
	srv_params_init(&p);
	CHECK(srv_params_set(&p, SRV_P_SCORE, "score", "combined", &f) == 0 && p.score == AE_SCORE_COMBINED);
	srv_params_init(&p);
	CHECK(srv_params_set(&p, SRV_P_SCORE, "score", "x", &f) == -1 && strstr(f.msg, "is not one of"));
}

static void test_model_names(void)
{
	CHECK(srv_model_name_ok("mnist") && srv_model_name_ok("mnist-denoise_v2.1"));
	CHECK(!srv_model_name_ok("") && !srv_model_name_ok(".") && !srv_model_name_ok("..") &&
	      !srv_model_name_ok(".hidden") && !srv_model_name_ok("a/b") && !srv_model_name_ok("a b") &&
	      !srv_model_name_ok("0123456789012345678901234567890123456789012345678901234567890123"));
}

int main(void)
{
	test_v2_split();
	test_v2_parse();
	test_keys();
	test_model_names();
	test_scores_offered();
	test_text();
	test_media_types();
	test_params();
	test_json();
	test_multipart();
	test_png_budget();
	test_fmt_float();
	return TEST_DONE();
}
