/*
 * IDX files (the MNIST container) of unsigned bytes. zlib's gz reader reads
 * both gzip and raw files, so callers need not care which they have.
 */
#include "ae/idx.h"
#include "ae/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAX_BYTES ((size_t)1 << 31)

int ae_idx_read(const char *path, uint8_t **data, int *ndim, int dims[3], ae_error *err)
{
	*data = NULL;
	gzFile gz = gzopen(path, "rb");
	if (!gz) return ae_fail(err, AE_ERR_IO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
	uint8_t hdr[4];
	int rc = AE_OK;
	if (gzread(gz, hdr, 4) != 4)
		rc = ae_fail(err, AE_ERR_FORMAT, "%s: truncated IDX header", path);
	else if (hdr[0] != 0 || hdr[1] != 0 || hdr[2] != 0x08)
		rc = ae_fail(err, AE_ERR_FORMAT,
		             "%s: bad magic %02x%02x%02x%02x (expected an IDX file of unsigned bytes, 0x0000080N)",
		             path, hdr[0], hdr[1], hdr[2], hdr[3]);
	else if (hdr[3] < 1 || hdr[3] > 3)
		rc = ae_fail(err, AE_ERR_FORMAT, "%s: %d dimensions (expected 1 to 3)", path, hdr[3]);
	size_t total = 1;
	for (int d = 0; rc == AE_OK && d < hdr[3]; d++) {
		uint8_t b[4];
		if (gzread(gz, b, 4) != 4) {
			rc = ae_fail(err, AE_ERR_FORMAT, "%s: truncated IDX header", path);
			break;
		}
		uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
		if (v == 0 || v > 0x7fffffff || ae_size_mul(total, v, &total) || total > IDX_MAX_BYTES)
			rc = ae_fail(err, AE_ERR_FORMAT, "%s: dimension %d of size %u is empty or too large", path, d,
			             v);
		dims[d] = (int)v;
	}
	/* The buffer grows with the data that actually arrives: a 20-byte file
	 * whose header promises 2 GiB costs a read, not a 2 GiB allocation. */
	uint8_t *buf = NULL;
	size_t got = 0, cap = 0;
	while (rc == AE_OK && got < total) {
		if (got == cap) {
			size_t want = cap ? cap * 2 : (size_t)1 << 20;
			want = want > total ? total : want;
			uint8_t *g = realloc(buf, want);
			if (!g) {
				rc = ae_fail(err, AE_ERR_NOMEM, "%s: out of memory for %zu bytes", path, want);
				break;
			}
			buf = g;
			cap = want;
		}
		unsigned chunk = cap - got > (1u << 30) ? (1u << 30) : (unsigned)(cap - got);
		int r = gzread(gz, buf + got, chunk);
		if (r <= 0) break;
		got += (size_t)r;
	}
	if (rc == AE_OK && got != total) {
		int zerr = 0;
		const char *zmsg = gzerror(gz, &zerr);
		rc = ae_fail(err, AE_ERR_FORMAT,
		             "%s: truncated: header promises %zu bytes of data, file holds %zu%s%s%s", path, total, got,
		             zerr < 0 ? " (" : "", zerr < 0 ? zmsg : "", zerr < 0 ? ")" : "");
	} else if (rc == AE_OK) {
		uint8_t extra;
		if (gzread(gz, &extra, 1) == 1)
			rc = ae_fail(err, AE_ERR_FORMAT, "%s: data continues past the %zu bytes the header promises",
			             path, total);
	}
	gzclose(gz);
	if (rc) {
		free(buf);
		return rc;
	}
	*ndim = hdr[3];
	*data = buf;
	return AE_OK;
}

int ae_idx_write(const char *path, const uint8_t *data, int ndim, const int dims[3], ae_error *err)
{
	ae_atomic_file af;
	int rc = ae_atomic_open(&af, path, err);
	if (rc) return rc;
	uint8_t hdr[4] = { 0, 0, 0x08, (uint8_t)ndim };
	fwrite(hdr, 1, 4, af.fp);
	size_t total = 1;
	for (int d = 0; d < ndim; d++) {
		uint8_t b[4] = { (uint8_t)(dims[d] >> 24), (uint8_t)(dims[d] >> 16), (uint8_t)(dims[d] >> 8),
			         (uint8_t)dims[d] };
		fwrite(b, 1, 4, af.fp);
		total *= (size_t)dims[d];
	}
	fwrite(data, 1, total, af.fp);
	return ae_atomic_commit(&af, err);
}
