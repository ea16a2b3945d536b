/*
 * JSON tensors, {"shape": [...], "data": [...]}, read in one pass straight
 * into floats. A general JSON library builds a node per number (about 40
 * bytes for each 2-byte "0,"): a 6.4 MB body cost the server 260 MB and
 * 0.7 s. Here the memory is the floats themselves, at most one per two
 * body bytes, and the whole document is still validated as JSON (RFC
 * 8259): strings and their escapes, UTF-8, numbers, literals, nesting.
 * Members other than "shape" and "data" are checked and ignored; "shape"
 * or "data" given twice is an error.
 */
#include "server.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting allowed in ignored members (the data has its own limit). */
#define MAX_DEPTH 64
/* Characters in one number: far more than any float needs. */
#define MAX_NUMBER 256
#define TEXT(x)    #x
#define NUMBER(x)  TEXT(x) /* the limit's digits, for messages */

typedef struct cursor {
	const char *base, *p, *end;
	const char *err; /* the first syntax error, or NULL */
	const char *err_at;
} cursor;

static int fail(cursor *c, const char *what)
{
	if (!c->err) {
		c->err = what;
		c->err_at = c->p;
	}
	return -1;
}

static void ws(cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int peek(cursor *c)
{
	ws(c);
	return c->p < c->end ? (unsigned char)*c->p : -1;
}

static int eat(cursor *c, char ch)
{
	if (peek(c) != (unsigned char)ch) return 0;
	c->p++;
	return 1;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char h = p[i];
		int d = h >= '0' && h <= '9'   ? h - '0'
		        : h >= 'a' && h <= 'f' ? h - 'a' + 10
		        : h >= 'A' && h <= 'F' ? h - 'A' + 10
		                               : -1;
		if (d < 0) return -1;
		*v = *v << 4 | (unsigned)d;
	}
	return 0;
}

/* A string; its ASCII content goes to out (cap bytes, for matching keys),
 * or out[0] is set to 1 when it holds anything else or does not fit. */
static int string(cursor *c, char *out, size_t cap)
{
	size_t k = 0;
	int plain = out != NULL;
	if (!eat(c, '"')) return fail(c, "a string was expected");
	while (c->p < c->end && *c->p != '"') {
		unsigned char ch = (unsigned char)*c->p;
		if (ch < 0x20) return fail(c, "a control character in a string");
		if (ch == '\\') {
			if (c->end - c->p < 2) break;
			char e = c->p[1];
			unsigned u;
			if (e == 'u') {
				if (c->end - c->p < 6 || hex4(c->p + 2, &u)) return fail(c, "a bad \\u escape");
				c->p += 6;
				if (u >= 0xd800 && u <= 0xdbff) {
					unsigned lo;
					if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' ||
					    hex4(c->p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
						return fail(c, "a lone UTF-16 surrogate");
					c->p += 6;
				} else if (u >= 0xdc00 && u <= 0xdfff)
					return fail(c, "a lone UTF-16 surrogate");
				plain &= u > 0 && u < 0x80;
				if (plain && k + 1 < cap) out[k++] = (char)u;
				continue;
			}
			static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
			const char *hit = e ? strchr(esc, e) : NULL;
			if (!hit) return fail(c, "a bad escape in a string");
			if (plain && k + 1 < cap) out[k++] = val[hit - esc];
			c->p += 2;
			continue;
		}
		int n = srv_utf8_len((const unsigned char *)c->p, (const unsigned char *)c->end);
		if (!n) return fail(c, "invalid UTF-8 in a string");
		plain &= n == 1;
		if (plain && k + 1 < cap) out[k++] = (char)ch;
		c->p += n;
	}
	if (c->p >= c->end) return fail(c, "a string is not terminated");
	c->p++;
	if (out) {
		if (!plain || k + 1 >= cap) out[0] = 1, k = 1;
		out[k] = '\0';
	}
	return 0;
}

/* A number by the JSON grammar. *integer says it had no fraction or
 * exponent. */
static int number(cursor *c, double *v, int *integer)
{
	const char *s = c->p, *p = s, *e = c->end;
	if (p < e && *p == '-') p++;
	if (p < e && *p == '0')
		p++;
	else if (p < e && *p >= '1' && *p <= '9')
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	else
		return fail(c, "a value was expected");
	*integer = 1;
	if (p < e && *p == '.') {
		*integer = 0;
		if (++p >= e || *p < '0' || *p > '9') return fail(c, "a digit was expected after '.'");
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		*integer = 0;
		if (++p < e && (*p == '+' || *p == '-')) p++;
		if (p >= e || *p < '0' || *p > '9') return fail(c, "a digit was expected in an exponent");
		while (p < e && *p >= '0' && *p <= '9')
			p++;
	}
	char buf[MAX_NUMBER + 1];
	if (p - s > MAX_NUMBER) return fail(c, "a number of more than " NUMBER(MAX_NUMBER) " characters");
	memcpy(buf, s, (size_t)(p - s));
	buf[p - s] = '\0';
	errno = 0;
	*v = strtod(buf, NULL);
	if (errno == ERANGE && !(*v > -1.0 && *v < 1.0)) return fail(c, "a number too large for a double");
	c->p = p;
	return 0;
}

static int literal(cursor *c)
{
	static const char *words[] = { "true", "false", "null" };
	for (int i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);
		if ((size_t)(c->end - c->p) >= n && memcmp(c->p, words[i], n) == 0) {
			c->p += n;
			return 0;
		}
	}
	return fail(c, "a value was expected");
}

static int value(cursor *c, int depth);

/* [ ... ] or { ... }, each element read by one(c, depth, k, arg). */
static int seq(cursor *c, char open, int depth, int (*one)(cursor *, int, size_t, void *), void *arg)
{
	const char close = open == '[' ? ']' : '}';
	if (depth > MAX_DEPTH) return fail(c, "nested too deeply");
	if (!eat(c, open)) return fail(c, open == '[' ? "an array was expected" : "an object was expected");
	if (eat(c, close)) return 0;
	for (size_t k = 0;; k++) {
		if (one(c, depth + 1, k, arg)) return -1;
		if (eat(c, close)) return 0;
		if (!eat(c, ',')) return fail(c, open == '[' ? "',' or ']' was expected" : "',' or '}' was expected");
	}
}

static int element(cursor *c, int depth, size_t k, void *arg)
{
	(void)k, (void)arg;
	return value(c, depth);
}

static int member(cursor *c, int depth, size_t k, void *arg)
{
	(void)k, (void)arg;
	if (string(c, NULL, 0) || !eat(c, ':')) return fail(c, "':' was expected after a key");
	return value(c, depth);
}

static int value(cursor *c, int depth)
{
	int ch = peek(c), integer;
	double v;
	if (ch == '[') return seq(c, '[', depth, element, NULL);
	if (ch == '{') return seq(c, '{', depth, member, NULL);
	if (ch == '"') return string(c, NULL, 0);
	if (ch == 't' || ch == 'f' || ch == 'n') return literal(c);
	return number(c, &v, &integer);
}

/* ---------------------------------------------------------------- shape */

static int shape_entry(cursor *c, int depth, size_t k, void *arg)
{
	srv_tensor_in *t = arg;
	int integer;
	double v;
	if (peek(c) != '-' && (peek(c) < '0' || peek(c) > '9')) {
		if (!t->shape_bad) t->shape_bad = 1, t->shape_bad_at = k;
		return value(c, depth);
	}
	if (number(c, &v, &integer)) return -1;
	if (k >= SRV_TENSOR_MAX_DIMS) {
		t->ndim = SRV_TENSOR_MAX_DIMS + 1; /* too many: the count is all that matters */
		return 0;
	}
	if ((!integer || v < 1 || v > SRV_TENSOR_MAX_DIM) && !t->shape_bad) t->shape_bad = 1, t->shape_bad_at = k;
	t->dims[k] = integer && v >= 1 && v <= SRV_TENSOR_MAX_DIM ? (long)v : 0;
	t->ndim = (int)k + 1;
	return 0;
}

/* ----------------------------------------------------------------- data */

typedef struct data_walk {
	srv_tensor_in *t;
	size_t limit; /* values stored at most (more are counted only) */
	int check_range;
	int depth0; /* the depth of the data array itself */
} data_walk;

static int store(srv_tensor_in *t, size_t limit, double v)
{
	if (t->n < limit) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 1024;
			cap = cap > limit ? limit : cap;
			float *g = realloc(t->v, cap * sizeof *g);
			if (!g) return -1;
			t->v = g;
			t->cap = cap;
		}
		t->v[t->n] = (float)v;
	}
	t->n++;
	return 0;
}

static int data_entry(cursor *c, int depth, size_t k, void *arg);

static int data_value(cursor *c, int depth, data_walk *w)
{
	srv_tensor_in *t = w->t;
	int ch = peek(c), integer;
	double v;
	if (ch == '[') {
		if (depth - w->depth0 > SRV_TENSOR_MAX_NESTING) t->data_too_deep = 1;
		return seq(c, '[', depth, data_entry, w);
	}
	if (ch != '-' && (ch < '0' || ch > '9')) {
		t->data_not_number = 1;
		return value(c, depth);
	}
	if (number(c, &v, &integer)) return -1;
	if (!t->bad_set && w->check_range && (v < 0.0 || v > 1.0)) {
		t->bad_set = 1;
		t->bad_index = t->n;
		t->bad_value = v;
	}
	if (store(t, w->limit, v)) {
		t->oom = 1;
		return fail(c, "out of memory");
	}
	return 0;
}

static int data_entry(cursor *c, int depth, size_t k, void *arg)
{
	(void)k;
	return data_value(c, depth, arg);
}

/* --------------------------------------------------------------- object */

typedef struct top_walk {
	srv_tensor_in *t;
	int shape_seen, data_seen;
	data_walk dw;
} top_walk;

static int top_member(cursor *c, int depth, size_t k, void *arg)
{
	(void)k;
	top_walk *tw = arg;
	srv_tensor_in *t = tw->t;
	char key[16];
	if (string(c, key, sizeof key) || !eat(c, ':')) return fail(c, "':' was expected after a key");
	if (strcmp(key, "shape") == 0) {
		if (tw->shape_seen++) return fail(c, "duplicate key 'shape'");
		if (peek(c) != '[') {
			t->shape_not_array = 1;
			return value(c, depth);
		}
		t->ndim = 0;
		return seq(c, '[', depth, shape_entry, t);
	}
	if (strcmp(key, "data") == 0) {
		if (tw->data_seen++) return fail(c, "duplicate key 'data'");
		if (peek(c) != '[') {
			t->data_not_array = 1;
			return value(c, depth);
		}
		tw->dw.depth0 = depth;
		return data_value(c, depth, &tw->dw);
	}
	return value(c, depth);
}

static void where(const cursor *c, int *line, int *col)
{
	*line = 1, *col = 1;
	for (const char *p = c->base; p < c->err_at; p++)
		if (*p == '\n')
			(*line)++, *col = 1;
		else
			(*col)++;
}

int srv_tensor_parse(const uint8_t *body, size_t len, int check_range, srv_tensor_in *t, srv_fail *f)
{
	memset(t, 0, sizeof *t);
	t->ndim = -1;
	cursor c = { .base = (const char *)body, .p = (const char *)body, .end = (const char *)body + len };
	/* A number takes at least two bytes with its comma: the body bounds
	 * what can be stored before the shape is known. */
	top_walk tw = { .t = t, .dw = { .t = t, .limit = len / 2 + 1, .check_range = check_range } };
	t->is_object = peek(&c) == '{';
	int rc = t->is_object ? seq(&c, '{', 0, top_member, &tw) : value(&c, 0);
	if (rc == 0 && peek(&c) != -1) rc = fail(&c, "the document goes on after its end");
	if (t->oom) return srv_fail_set(f, 500, "internal", "out of memory");
	if (rc) {
		int line, col;
		where(&c, &line, &col);
		return srv_fail_set(f, 400, "invalid_json", "malformed JSON at line %d, column %d: %s", line, col,
		                    c.err);
	}
	t->has_shape = tw.shape_seen;
	t->has_data = tw.data_seen;
	return 0;
}

void srv_tensor_free(srv_tensor_in *t)
{
	free(t->v);
	t->v = NULL;
}

/* ------------------------------------------- Open Inference Protocol */

/* The path walked to an input's data: {"inputs": [{"data": HERE}]}. */
typedef struct split_walk {
	srv_v2_split *sp;
	int in_inputs; /* inside the "inputs" array's element k */
	size_t k;
	int inputs_seen;
} split_walk;

static int input_member(cursor *c, int depth, size_t k, void *arg)
{
	(void)k;
	split_walk *w = arg;
	char key[16];
	if (string(c, key, sizeof key) || !eat(c, ':')) return fail(c, "':' was expected after a key");
	if (strcmp(key, "data") != 0 || w->k >= SRV_V2_MAX_INPUTS) return value(c, depth);
	srv_v2_span *d = &w->sp->data[w->k];
	if (d->len) return fail(c, "duplicate key 'data'");
	peek(c);
	const char *at = c->p;
	if (value(c, depth)) return -1;
	d->off = (size_t)(at - c->base);
	d->len = (size_t)(c->p - at);
	return 0;
}

static int input_element(cursor *c, int depth, size_t k, void *arg)
{
	split_walk *w = arg;
	w->k = k;
	if (k >= SRV_V2_MAX_INPUTS) w->sp->too_many = 1;
	if (peek(c) != '{') return value(c, depth);
	return seq(c, '{', depth, input_member, w);
}

static int request_member(cursor *c, int depth, size_t k, void *arg)
{
	(void)k;
	split_walk *w = arg;
	char key[16];
	if (string(c, key, sizeof key) || !eat(c, ':')) return fail(c, "':' was expected after a key");
	if (strcmp(key, "inputs") != 0 || peek(c) != '[') return value(c, depth);
	if (w->inputs_seen++) return fail(c, "duplicate key 'inputs'");
	return seq(c, '[', depth, input_element, w);
}

int srv_json_split_v2(const uint8_t *body, size_t len, srv_v2_split *sp, srv_fail *f)
{
	memset(sp, 0, sizeof *sp);
	cursor c = { .base = (const char *)body, .p = (const char *)body, .end = (const char *)body + len };
	split_walk w = { .sp = sp };
	int rc = peek(&c) == '{' ? seq(&c, '{', 0, request_member, &w) : fail(&c, "an object was expected");
	if (rc == 0 && peek(&c) != -1) rc = fail(&c, "the document goes on after its end");
	if (rc) {
		int line, col;
		where(&c, &line, &col);
		return srv_fail_set(f, 400, "invalid_json", "malformed JSON at line %d, column %d: %s", line, col,
		                    c.err);
	}
	/* The skeleton: the document with each data value cut to []. */
	size_t cut = 0;
	for (int i = 0; i < SRV_V2_MAX_INPUTS; i++)
		cut += sp->data[i].len;
	if (len - cut > SRV_V2_MAX_SKELETON)
		return srv_fail_set(f, 400, "request_too_complex",
		                    "the request's JSON outside the tensor data is %zu bytes; the limit is %d",
		                    len - cut, SRV_V2_MAX_SKELETON);
	char *s = malloc(len - cut + 2 * SRV_V2_MAX_INPUTS + 1);
	if (!s) return srv_fail_set(f, 500, "internal", "out of memory");
	size_t at = 0, from = 0;
	for (;;) {
		const srv_v2_span *next = NULL;
		for (int i = 0; i < SRV_V2_MAX_INPUTS; i++)
			if (sp->data[i].len && sp->data[i].off >= from && (!next || sp->data[i].off < next->off))
				next = &sp->data[i];
		size_t upto = next ? next->off : len;
		memcpy(s + at, body + from, upto - from);
		at += upto - from;
		if (!next) break;
		memcpy(s + at, "[]", 2);
		at += 2;
		from = next->off + next->len;
	}
	s[at] = '\0';
	sp->skel = s;
	sp->skel_len = at;
	return 0;
}

int srv_tensor_data(const uint8_t *p, size_t len, int check_range, srv_tensor_in *t, srv_fail *f)
{
	memset(t, 0, sizeof *t);
	cursor c = { .base = (const char *)p, .p = (const char *)p, .end = (const char *)p + len };
	data_walk dw = { .t = t, .limit = len / 2 + 1, .check_range = check_range };
	int rc = peek(&c) == '[' ? data_value(&c, 0, &dw) : (t->data_not_array = 1, 0);
	if (t->oom) return srv_fail_set(f, 500, "internal", "out of memory");
	if (rc) return srv_fail_set(f, 400, "invalid_json", "malformed tensor data: %s", c.err);
	t->is_object = t->has_data = t->has_shape = 1;
	return 0;
}
