/*
 * safetensors reading (validated) and writing (atomic). The format's own
 * rules are enforced: a bounded header of JSON, known dtypes, byte ranges
 * that match shapes, and tensors that tile the data section with no overlap
 * and no hole.
 */
#include "ae/safetensors.h"
#include "ae/fileio.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

static const char *dtype_names[] = { "F32", "I64", "U8" };
static const size_t dtype_sizes[] = { 4, 8, 1 };

static int dtype_parse(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, dtype_names[i]) == 0) return i;
	return -1;
}

void ae_st_free(ae_st *st)
{
	if (!st) return;
	for (int i = 0; i < st->n; i++)
		free(st->t[i].name);
	for (int i = 0; i < st->n_meta; i++) {
		free(st->meta[i].key);
		free(st->meta[i].value);
	}
	free(st->t);
	free(st->meta);
	free(st->buf);
	memset(st, 0, sizeof *st);
}

static int parse_meta(ae_st *st, json_t *obj, ae_error *err)
{
	if (!json_is_object(obj)) return ae_fail(err, AE_ERR_FORMAT, "__metadata__ is not an object");
	st->meta = calloc(json_object_size(obj) + 1, sizeof *st->meta);
	if (!st->meta) return ae_fail(err, AE_ERR_NOMEM, "out of memory reading metadata");
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		if (!json_is_string(v))
			return ae_fail(err, AE_ERR_FORMAT, "__metadata__ value of '%s' is not a string", k);
		ae_st_meta *m = &st->meta[st->n_meta++];
		m->key = strdup(k);
		m->value = strdup(json_string_value(v));
		if (!m->key || !m->value) return ae_fail(err, AE_ERR_NOMEM, "out of memory reading metadata");
	}
	return AE_OK;
}

static int parse_tensor(ae_st_tensor *t, const char *name, json_t *obj, size_t data_size, ae_error *err)
{
	if (!json_is_object(obj)) return ae_fail(err, AE_ERR_FORMAT, "tensor '%s': entry is not an object", name);
	json_t *dt = json_object_get(obj, "dtype"), *sh = json_object_get(obj, "shape");
	json_t *off = json_object_get(obj, "data_offsets");
	if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(off) || json_array_size(off) != 2)
		return ae_fail(err, AE_ERR_FORMAT, "tensor '%s': needs dtype, shape and data_offsets [begin, end]",
		               name);
	t->dtype = dtype_parse(json_string_value(dt));
	if (t->dtype < 0)
		return ae_fail(err, AE_ERR_FORMAT, "tensor '%s': unsupported dtype %s", name, json_string_value(dt));
	if (json_array_size(sh) > AE_ST_MAX_DIMS)
		return ae_fail(err, AE_ERR_FORMAT, "tensor '%s': %zu dimensions (at most %d)", name,
		               json_array_size(sh), AE_ST_MAX_DIMS);
	t->ndim = (int)json_array_size(sh);
	size_t bytes = dtype_sizes[t->dtype];
	for (int d = 0; d < t->ndim; d++) {
		json_t *v = json_array_get(sh, (size_t)d);
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return ae_fail(err, AE_ERR_FORMAT, "tensor '%s': shape entry %d is not a non-negative integer",
			               name, d);
		t->shape[d] = json_integer_value(v);
		if (ae_size_mul(bytes, (size_t)t->shape[d], &bytes))
			return ae_fail(err, AE_ERR_FORMAT, "tensor '%s': shape overflows", name);
	}
	json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
	if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
	    json_integer_value(e) < json_integer_value(b))
		return ae_fail(err, AE_ERR_FORMAT, "tensor '%s': data_offsets must be integers 0 <= begin <= end",
		               name);
	t->begin = (size_t)json_integer_value(b);
	t->end = (size_t)json_integer_value(e);
	if (t->end > data_size)
		return ae_fail(err, AE_ERR_FORMAT,
		               "tensor '%s': bytes [%zu, %zu) run past the data section (%zu bytes): file truncated?",
		               name, t->begin, t->end, data_size);
	if (t->end - t->begin != bytes)
		return ae_fail(err, AE_ERR_FORMAT, "tensor '%s': %zu bytes for a shape that needs %zu", name,
		               t->end - t->begin, bytes);
	t->name = strdup(name);
	return t->name ? AE_OK : ae_fail(err, AE_ERR_NOMEM, "out of memory");
}

static int cmp_begin(const void *a, const void *b)
{
	const ae_st_tensor *x = a, *y = b;
	return (x->begin > y->begin) - (x->begin < y->begin);
}

static int check_tiling(ae_st *st, ae_error *err)
{
	ae_st_tensor *s = malloc((st->n ? (size_t)st->n : 1) * sizeof *s);
	if (!s) return ae_fail(err, AE_ERR_NOMEM, "out of memory");
	memcpy(s, st->t, (size_t)st->n * sizeof *s);
	qsort(s, (size_t)st->n, sizeof *s, cmp_begin);
	size_t at = 0;
	int rc = AE_OK;
	for (int i = 0; i < st->n && rc == AE_OK; i++) {
		if (s[i].begin < at)
			rc = ae_fail(err, AE_ERR_FORMAT, "tensor '%s' overlaps the tensor before it", s[i].name);
		else if (s[i].begin > at)
			rc = ae_fail(err, AE_ERR_FORMAT, "hole of %zu bytes before tensor '%s'", s[i].begin - at,
			             s[i].name);
		at = s[i].end;
	}
	if (rc == AE_OK && at != st->data_size)
		rc = ae_fail(err, AE_ERR_FORMAT, "%zu bytes after the last tensor", st->data_size - at);
	free(s);
	return rc;
}

int ae_st_parse(ae_st *st, uint8_t *buf, size_t size, ae_error *err)
{
	memset(st, 0, sizeof *st);
	st->buf = buf;
	st->size = size;
	if (size < 8) return ae_fail(err, AE_ERR_FORMAT, "%zu bytes is too short for a safetensors header", size);
	uint64_t hlen = 0;
	for (int i = 7; i >= 0; i--)
		hlen = (hlen << 8) | buf[i];
	if (hlen > AE_ST_MAX_HEADER)
		return ae_fail(err, AE_ERR_FORMAT, "header length %llu is over the %u-byte limit",
		               (unsigned long long)hlen, AE_ST_MAX_HEADER);
	if (hlen > size - 8)
		return ae_fail(err, AE_ERR_FORMAT,
		               "header length %llu runs past the end of the file (%zu bytes): truncated",
		               (unsigned long long)hlen, size);
	st->data = buf + 8 + hlen;
	st->data_size = size - 8 - (size_t)hlen;
	json_error_t jerr;
	json_t *root = json_loadb((const char *)buf + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return ae_fail(err, AE_ERR_FORMAT, "header is not valid JSON: %s (offset %d)", jerr.text,
		               jerr.position);
	int rc = AE_OK;
	if (!json_is_object(root)) rc = ae_fail(err, AE_ERR_FORMAT, "header is not a JSON object");
	if (rc == AE_OK) {
		st->t = calloc(json_object_size(root) + 1, sizeof *st->t);
		if (!st->t) rc = ae_fail(err, AE_ERR_NOMEM, "out of memory");
	}
	const char *k;
	json_t *v;
	if (rc == AE_OK) json_object_foreach(root, k, v)
		{
			if (strcmp(k, "__metadata__") == 0)
				rc = parse_meta(st, v, err);
			else
				rc = parse_tensor(&st->t[st->n], k, v, st->data_size, err);
			if (rc) break;
			if (strcmp(k, "__metadata__") != 0) st->n++;
		}
	json_decref(root);
	if (rc == AE_OK) rc = check_tiling(st, err);
	return rc;
}

int ae_st_read_file(ae_st *st, const char *path, ae_error *err)
{
	uint8_t *buf;
	size_t size;
	memset(st, 0, sizeof *st);
	int rc = ae_read_file(path, (size_t)4 << 30, &buf, &size, err);
	if (rc == AE_OK && (rc = ae_st_parse(st, buf, size, err)) != AE_OK) ae_error_prefix(err, path);
	return rc;
}

const ae_st_tensor *ae_st_find(const ae_st *st, const char *name)
{
	for (int i = 0; i < st->n; i++)
		if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
	return NULL;
}

const char *ae_st_meta_get(const ae_st *st, const char *key)
{
	for (int i = 0; i < st->n_meta; i++)
		if (strcmp(st->meta[i].key, key) == 0) return st->meta[i].value;
	return NULL;
}

uint32_t ae_st_crc(const ae_st *st)
{
	uLong c = crc32(0L, Z_NULL, 0);
	size_t done = 0;
	while (done < st->data_size) {
		size_t chunk = st->data_size - done > (1u << 30) ? (1u << 30) : st->data_size - done;
		c = crc32(c, st->data + done, (uInt)chunk);
		done += chunk;
	}
	return (uint32_t)c;
}

/* ---------------------------------------------------------------- writer */

typedef struct entry {
	char *name;
	int dtype, ndim;
	int64_t shape[AE_ST_MAX_DIMS];
	const void *data;
	size_t bytes;
} entry;

struct ae_st_writer {
	entry *e;
	int n, cap;
	json_t *meta;
};

ae_st_writer *ae_st_writer_new(void)
{
	ae_st_writer *w = calloc(1, sizeof *w);
	if (w && !(w->meta = json_object())) {
		free(w);
		return NULL;
	}
	return w;
}

void ae_st_writer_free(ae_st_writer *w)
{
	if (!w) return;
	for (int i = 0; i < w->n; i++)
		free(w->e[i].name);
	free(w->e);
	json_decref(w->meta);
	free(w);
}

int ae_st_writer_add(ae_st_writer *w, const char *name, int dtype, int ndim, const int64_t *shape, const void *data,
                     ae_error *err)
{
	if (ndim < 0 || ndim > AE_ST_MAX_DIMS || dtype < 0 || dtype > AE_DT_U8)
		return ae_fail(err, AE_ERR_INVAL, "tensor '%s': bad dtype or rank", name);
	if (w->n == w->cap) {
		int cap = w->cap ? 2 * w->cap : 32;
		entry *e = realloc(w->e, (size_t)cap * sizeof *e);
		if (!e) return ae_fail(err, AE_ERR_NOMEM, "out of memory");
		w->e = e;
		w->cap = cap;
	}
	entry *e = &w->e[w->n];
	size_t bytes = dtype_sizes[dtype];
	for (int d = 0; d < ndim; d++)
		if (shape[d] < 0 || ae_size_mul(bytes, (size_t)shape[d], &bytes))
			return ae_fail(err, AE_ERR_INVAL, "tensor '%s': bad shape", name);
	if (!(e->name = strdup(name))) return ae_fail(err, AE_ERR_NOMEM, "out of memory");
	e->dtype = dtype;
	e->ndim = ndim;
	memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
	e->data = data;
	e->bytes = bytes;
	w->n++;
	return AE_OK;
}

int ae_st_writer_meta(ae_st_writer *w, const char *key, const char *value, ae_error *err)
{
	if (json_object_set_new(w->meta, key, json_string(value)) != 0)
		return ae_fail(err, AE_ERR_INVAL, "metadata '%s' is not valid UTF-8 or out of memory", key);
	return AE_OK;
}

uint32_t ae_st_writer_crc(const ae_st_writer *w)
{
	uLong c = crc32(0L, Z_NULL, 0);
	for (int i = 0; i < w->n; i++)
		c = crc32(c, w->e[i].data, (uInt)w->e[i].bytes);
	return (uint32_t)c;
}

static char *header_json(const ae_st_writer *w, size_t *len)
{
	json_t *root = json_object();
	if (json_object_size(w->meta)) json_object_set(root, "__metadata__", w->meta);
	size_t at = 0;
	for (int i = 0; i < w->n; i++) {
		const entry *e = &w->e[i];
		json_t *sh = json_array();
		for (int d = 0; d < e->ndim; d++)
			json_array_append_new(sh, json_integer(e->shape[d]));
		json_object_set_new(root, e->name,
		                    json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype_names[e->dtype], "shape", sh,
		                              "data_offsets", (json_int_t)at, (json_int_t)at + (json_int_t)e->bytes));
		at += e->bytes;
	}
	char *s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	if (s) *len = strlen(s);
	return s;
}

int ae_st_writer_write(ae_st_writer *w, const char *path, ae_error *err)
{
	size_t hlen;
	char *h = header_json(w, &hlen);
	if (!h) return ae_fail(err, AE_ERR_NOMEM, "out of memory building the header");
	/* Pad with spaces so the data section starts 8-byte aligned. */
	size_t padded = (hlen + 7) & ~(size_t)7;
	uint8_t lenbuf[8];
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
	ae_atomic_file af;
	int rc = ae_atomic_open(&af, path, err);
	if (rc) {
		free(h);
		return rc;
	}
	fwrite(lenbuf, 1, 8, af.fp);
	fwrite(h, 1, hlen, af.fp);
	for (size_t i = hlen; i < padded; i++)
		fputc(' ', af.fp);
	for (int i = 0; i < w->n; i++)
		fwrite(w->e[i].data, 1, w->e[i].bytes, af.fp);
	free(h);
	return ae_atomic_commit(&af, err);
}
