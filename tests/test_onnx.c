/*
 * ONNX export without ONNX Runtime: protobuf's wire format against the
 * encodings its documentation spells out, the graphs' signatures for each
 * preset, and the ModelProto read back field by field with a reader of
 * our own (opset, batch dimension, every weight byte for byte, the
 * metadata). tests/it_onnx.sh runs the files in ONNX Runtime.
 */
#include "test.h"

#include "ae/modelfile.h"
#include "ae/onnx.h"
#include "pb.h"

/* ---- a protobuf reader, enough to walk what the writer wrote */

typedef struct field {
	int num, wire;
	uint64_t v;       /* varint or fixed32 */
	const uint8_t *p; /* length-delimited */
	size_t n;
} field;

/* The next field of [*p, end) into f; 0 at the end, -1 if malformed. */
static int next(const uint8_t **p, const uint8_t *end, field *f)
{
	if (*p >= end) return 0;
	uint64_t key = 0, v = 0;
	for (int s = 0;; s += 7) {
		if (*p >= end || s > 63) return -1;
		uint8_t b = *(*p)++;
		key |= (uint64_t)(b & 0x7f) << s;
		if (!(b & 0x80)) break;
	}
	f->num = (int)(key >> 3), f->wire = (int)(key & 7);
	if (f->wire == AE_PB_I32) {
		if (end - *p < 4) return -1;
		uint32_t u;
		memcpy(&u, *p, 4);
		*p += 4;
		f->v = u;
		return 1;
	}
	for (int s = 0;; s += 7) {
		if (*p >= end || s > 63) return -1;
		uint8_t b = *(*p)++;
		v |= (uint64_t)(b & 0x7f) << s;
		if (!(b & 0x80)) break;
	}
	f->v = v;
	if (f->wire == AE_PB_LEN) {
		if (v > (uint64_t)(end - *p)) return -1;
		f->p = *p, f->n = (size_t)v;
		*p += v;
	}
	return f->wire == AE_PB_VARINT || f->wire == AE_PB_LEN ? 1 : -1;
}

/* The n-th (0-based) field numbered num of a message, or 0. */
static int get(const uint8_t *p, size_t len, int num, int nth, field *out)
{
	const uint8_t *end = p + len;
	field f;
	int r;
	while ((r = next(&p, end, &f)) > 0)
		if (f.num == num && nth-- == 0) return *out = f, 1;
	return 0;
}

static int count(const uint8_t *p, size_t len, int num)
{
	field f;
	int n = 0;
	while (get(p, len, num, n, &f))
		n++;
	return n;
}

static int str_is(const field *f, const char *s)
{
	return f->n == strlen(s) && memcmp(f->p, s, f->n) == 0;
}

/* ---- the tests */

static void test_wire(void)
{
	ae_pb b;
	ae_pb_init(&b);
	ae_pb_int(&b, 1, 150); /* protobuf's documented example: 08 96 01 */
	ae_pb_str(&b, 2, "testing");
	ae_pb_int(&b, 3, -1); /* a negative int64: ten bytes */
	ae_pb_float(&b, 4, 1.0f);
	static const uint8_t want[] = { 0x08, 0x96, 0x01, 0x12, 0x07, 't',  'e',  's',  't',  'i',
		                        'n',  'g',  0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		                        0xff, 0xff, 0x01, 0x25, 0x00, 0x00, 0x80, 0x3f };
	CHECK(!b.failed && b.len == sizeof want && memcmp(b.p, want, sizeof want) == 0);
	CHECK(ae_pb_varint_size(127) == 1 && ae_pb_varint_size(128) == 2 && ae_pb_varint_size(UINT64_MAX) == 10);
	ae_pb outer;
	ae_pb_init(&outer);
	ae_pb_msg(&outer, 5, &b);
	CHECK(outer.len == 2 + b.len && outer.p[0] == 0x2a && outer.p[1] == b.len);
	b.failed = 1; /* a failed part fails the whole */
	ae_pb_msg(&outer, 6, &b);
	CHECK(outer.failed);
	ae_pb_deinit(&b);
	ae_pb_deinit(&outer);
}

static ae_model *make(const char *preset, int c, int h, int w, int latent)
{
	ae_arch_spec s;
	ae_arch_defaults(&s, preset, NULL);
	s.c = c, s.h = h, s.w = w, s.latent = latent, s.f1 = 4, s.f2 = 8, s.hidden = 16;
	ae_error err = { 0 };
	ae_model *m = ae_model_new(&s, 3, &err);
	CHECK_MSG(m != NULL, "%s", err.msg);
	return m;
}

static void test_signature(void)
{
	ae_model *m = make("conv", 3, 16, 24, 10);
	ae_onnx_sig s;
	CHECK(ae_onnx_signature(&m->net, AE_ONNX_AUTOENCODER, &s, NULL) == 0);
	CHECK(s.n_in == 1 && strcmp(s.in[0].name, "input") == 0 && s.in[0].rank == 4 && s.in[0].d[0] == -1 &&
	      s.in[0].d[1] == 3 && s.in[0].d[2] == 16 && s.in[0].d[3] == 24);
	CHECK(s.n_out == 2 && strcmp(s.out[0].name, "latent") == 0 && s.out[0].rank == 2 && s.out[0].d[1] == 10);
	CHECK(strcmp(s.out[1].name, "reconstruction") == 0 && s.out[1].rank == 4 && s.out[1].d[3] == 24);
	CHECK(ae_onnx_signature(&m->net, AE_ONNX_DECODER, &s, NULL) == 0);
	CHECK(s.n_out == 1 && strcmp(s.in[0].name, "latent") == 0 && strcmp(s.out[0].name, "reconstruction") == 0);
	/* a layer list no operator takes is refused, naming the layer */
	ae_net bad = m->net;
	bad.layers[6].kind = AE_L_RELU; /* the Flatten: the Linear then gets an image */
	ae_error err = { 0 };
	CHECK_ERR(ae_onnx_signature(&bad, AE_ONNX_ENCODER, &s, &err), err, "encoder.7: takes a tensor of rank 2");
	ae_model_free(m);
}

/* Every initializer of the graph is the model's tensor of that name. */
static void check_initializers(const field *graph, const ae_model *m, int *n_found)
{
	field t, f;
	for (int i = 0; get(graph->p, graph->n, 5 /* GraphProto.initializer */, i, &t); i++) {
		CHECK(get(t.p, t.n, 8 /* TensorProto.name */, 0, &f));
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)f.n, (const char *)f.p);
		CHECK(get(t.p, t.n, 9 /* raw_data */, 0, &f));
		const float *want = NULL;
		size_t n = 0;
		for (int l = 0; l < m->net.n_layers && !want; l++) {
			const ae_layer *L = &m->net.layers[l];
			char w[64], b[64], rm[64], rv[64];
			snprintf(w, sizeof w, "%s.weight", L->name), snprintf(b, sizeof b, "%s.bias", L->name);
			snprintf(rm, sizeof rm, "%s.running_mean", L->name);
			snprintf(rv, sizeof rv, "%s.running_var", L->name);
			if (!strcmp(name, w)) want = m->params + L->w, n = L->wn;
			if (!strcmp(name, b)) want = m->params + L->b, n = L->bn;
			if (!strcmp(name, rm)) want = m->state + L->rm, n = (size_t)L->oc;
			if (!strcmp(name, rv)) want = m->state + L->rv, n = (size_t)L->oc;
		}
		if (!want) continue; /* the Reshape's shape */
		CHECK_MSG(f.n == n * sizeof(float) && memcmp(f.p, want, f.n) == 0, "%s is not the model's", name);
		(*n_found)++;
	}
}

static void test_model_proto(void)
{
	ae_model *m = make("conv", 1, 12, 12, 6);
	snprintf(m->checksum, sizeof m->checksum, "crc32:01234567");
	uint8_t *buf;
	size_t len;
	ae_error err = { 0 };
	CHECK_MSG(ae_onnx_encode(m, AE_ONNX_AUTOENCODER, &buf, &len, &err) == 0, "%s", err.msg);
	field f, g, v;
	CHECK(get(buf, len, 1, 0, &f) && f.v == AE_ONNX_IR_VERSION);                       /* ir_version */
	CHECK(get(buf, len, 8, 0, &f) && get(f.p, f.n, 2, 0, &v) && v.v == AE_ONNX_OPSET); /* opset_import */
	CHECK(get(buf, len, 7, 0, &g));                                                    /* graph */
	CHECK(count(g.p, g.n, 1) == m->net.n_layers);                                      /* a node a layer */
	int n_params = 0;
	check_initializers(&g, m, &n_params);
	CHECK(n_params == 5 * 2 + 2 * 2 + 4 * 4); /* convs and dense layers: 2 each; batch norms: 4 */
	/* the input: "input", its first dim the symbolic "batch" */
	CHECK(get(g.p, g.n, 11, 0, &f) && get(f.p, f.n, 1, 0, &v) && str_is(&v, "input"));
	CHECK(get(f.p, f.n, 2, 0, &v) && get(v.p, v.n, 1, 0, &v) && get(v.p, v.n, 2, 0, &v)); /* type.tensor.shape */
	field d0, dp;
	CHECK(get(v.p, v.n, 1, 0, &d0) && get(d0.p, d0.n, 2, 0, &dp) && str_is(&dp, "batch"));
	CHECK(count(g.p, g.n, 12) == 2); /* outputs */
	/* metadata_props: the model file's, key for key */
	ae_model_meta mm;
	CHECK(ae_model_meta_init(&mm, m, &err) == 0);
	CHECK(count(buf, len, 14) == mm.n);
	for (int i = 0; i < mm.n && get(buf, len, 14, i, &f); i++) {
		field k, val;
		CHECK(get(f.p, f.n, 1, 0, &k) && str_is(&k, mm.key[i]));
		CHECK(get(f.p, f.n, 2, 0, &val) && str_is(&val, mm.value[i]));
	}
	ae_model_meta_deinit(&mm);
	free(buf);
	ae_model_free(m);
}

static void test_limit(void)
{
	/* a network whose weights would pass protobuf's 2 GiB is refused
	 * before anything is built (its params are never read) */
	ae_model *m = make("dense", 1, 8, 8, 4);
	ae_layer *l = &m->net.layers[1];
	size_t wn = l->wn;
	l->wn = (size_t)600 << 20;
	ae_error err = { 0 };
	uint8_t *buf = NULL;
	size_t len;
	CHECK_ERR(ae_onnx_encode(m, AE_ONNX_ENCODER, &buf, &len, &err), err, "at most 2047 MiB");
	CHECK(buf == NULL);
	l->wn = wn;
	ae_model_free(m);
}

int main(void)
{
	test_wire();
	test_signature();
	test_model_proto();
	test_limit();
	return TEST_DONE();
}
