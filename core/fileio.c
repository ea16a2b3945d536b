/*
 * Bounded whole-file reads and crash-safe atomic writes.
 */
#include "ae/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ae_read_file(const char *path, size_t max, uint8_t **out, size_t *size, ae_error *err)
{
	*out = NULL;
	*size = 0;
	FILE *fp = fopen(path, "rb");
	if (!fp) return ae_fail(err, AE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
	struct stat sb;
	if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
		fclose(fp);
		return ae_fail(err, AE_ERR_IO, "%s: not a regular file", path);
	}
	if ((uint64_t)sb.st_size > max) {
		fclose(fp);
		return ae_fail(err, AE_ERR_RANGE, "%s: file is %lld bytes, over the limit of %zu", path,
		               (long long)sb.st_size, max);
	}
	size_t n = (size_t)sb.st_size;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf) {
		fclose(fp);
		return ae_fail(err, AE_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
	}
	if (fread(buf, 1, n, fp) != n) {
		int e = ferror(fp) ? errno : 0;
		fclose(fp);
		free(buf);
		return ae_fail(err, AE_ERR_IO, "%s: read failed: %s", path, e ? strerror(e) : "short read");
	}
	fclose(fp);
	*out = buf;
	*size = n;
	return AE_OK;
}

int ae_atomic_open(ae_atomic_file *af, const char *path, ae_error *err)
{
	memset(af, 0, sizeof *af);
	if (strlen(path) + 16 >= sizeof af->tmp) return ae_fail(err, AE_ERR_INVAL, "path too long: %s", path);
	snprintf(af->path, sizeof af->path, "%s", path);
	snprintf(af->tmp, sizeof af->tmp, "%s.tmpXXXXXX", path);
	int fd = mkstemp(af->tmp);
	if (fd < 0) return ae_fail(err, AE_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
	fchmod(fd, 0644);
	af->fp = fdopen(fd, "wb");
	if (!af->fp) {
		close(fd);
		unlink(af->tmp);
		return ae_fail(err, AE_ERR_IO, "%s: fdopen failed: %s", path, strerror(errno));
	}
	return AE_OK;
}

static void fsync_dir(const char *path)
{
	char copy[4096];
	snprintf(copy, sizeof copy, "%s", path);
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
}

int ae_atomic_commit(ae_atomic_file *af, ae_error *err)
{
	int bad = ferror(af->fp) || fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0;
	int e = errno;
	bad |= fclose(af->fp) != 0;
	af->fp = NULL;
	if (bad) {
		unlink(af->tmp);
		return ae_fail(err, AE_ERR_IO, "%s: write failed: %s", af->path, strerror(e));
	}
	if (rename(af->tmp, af->path) != 0) {
		e = errno;
		unlink(af->tmp);
		return ae_fail(err, AE_ERR_IO, "%s: rename failed: %s", af->path, strerror(e));
	}
	fsync_dir(af->path);
	return AE_OK;
}

void ae_atomic_abort(ae_atomic_file *af)
{
	if (af->fp) fclose(af->fp);
	af->fp = NULL;
	unlink(af->tmp);
}
