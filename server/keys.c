/*
 * API keys: --api-keys FILE, one key per line (blank lines and lines
 * starting with '#' are skipped), reread on SIGHUP. A request shows one as
 * "Authorization: Bearer KEY". Keys are compared in constant time: every
 * stored key is compared over its full padded length whatever the
 * request's key is, so the time taken says nothing about how much of a
 * key was right. Keys are never logged; messages about the file name the
 * line, not its content.
 */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct srv_keys {
	pthread_rwlock_t lock;
	char path[1024];
	unsigned char (*keys)[SRV_KEY_MAX]; /* zero-padded */
	size_t *lens;
	int n;
};

/* Reads the file into freshly allocated arrays. 0, or -1 with err set. */
static int read_keys(const char *path, unsigned char (**keys)[SRV_KEY_MAX], size_t **lens, int *n, char *err,
                     size_t cap)
{
	FILE *f = fopen(path, "r");
	if (!f) return snprintf(err, cap, "%s: cannot open", path), -1;
	*keys = calloc(SRV_KEYS_MAX, SRV_KEY_MAX);
	*lens = calloc(SRV_KEYS_MAX, sizeof **lens);
	*n = 0;
	char line[SRV_KEY_MAX + 64];
	int lineno = 0, rc = *keys && *lens ? 0 : (snprintf(err, cap, "out of memory"), -1);
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof line - 1 && line[len - 1] != '\n') {
			rc = -1;
			snprintf(err, cap, "%s line %d: a key is longer than %d characters", path, lineno, SRV_KEY_MAX);
			break;
		}
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
		               line[len - 1] == '\t'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#') continue;
		int printable = 1;
		for (size_t i = 0; i < len; i++)
			printable &= line[i] > ' ' && line[i] < 0x7f;
		if (!printable || len < SRV_KEY_MIN || len > SRV_KEY_MAX || *n >= SRV_KEYS_MAX) {
			rc = -1;
			if (*n >= SRV_KEYS_MAX)
				snprintf(err, cap, "%s line %d: more than the %d keys a file may hold", path, lineno,
				         SRV_KEYS_MAX);
			else
				snprintf(err, cap,
				         "%s line %d: a key is %d to %d printable ASCII characters, no spaces", path,
				         lineno, SRV_KEY_MIN, SRV_KEY_MAX);
			break;
		}
		memcpy((*keys)[*n], line, len);
		(*lens)[(*n)++] = len;
	}
	fclose(f);
	if (rc == 0 && *n == 0) rc = -1, snprintf(err, cap, "%s holds no keys", path);
	if (rc) {
		free(*keys), free(*lens);
		*keys = NULL, *lens = NULL;
	}
	return rc;
}

srv_keys *srv_keys_open(const char *path, char *err, size_t cap)
{
	srv_keys *k = calloc(1, sizeof *k);
	if (!k) return snprintf(err, cap, "out of memory"), NULL;
	snprintf(k->path, sizeof k->path, "%s", path);
	if (read_keys(path, &k->keys, &k->lens, &k->n, err, cap)) {
		free(k);
		return NULL;
	}
	pthread_rwlock_init(&k->lock, NULL);
	return k;
}

int srv_keys_reload(srv_keys *k, char *err, size_t cap)
{
	unsigned char(*keys)[SRV_KEY_MAX];
	size_t *lens;
	int n;
	if (read_keys(k->path, &keys, &lens, &n, err, cap)) return -1;
	pthread_rwlock_wrlock(&k->lock);
	unsigned char(*old)[SRV_KEY_MAX] = k->keys;
	size_t *old_lens = k->lens;
	k->keys = keys, k->lens = lens, k->n = n;
	pthread_rwlock_unlock(&k->lock);
	memset(old, 0, SRV_KEYS_MAX * (size_t)SRV_KEY_MAX);
	free(old), free(old_lens);
	return 0;
}

int srv_keys_count(srv_keys *k)
{
	pthread_rwlock_rdlock(&k->lock);
	int n = k->n;
	pthread_rwlock_unlock(&k->lock);
	return n;
}

int srv_keys_check(srv_keys *k, const char *authorization)
{
	if (!authorization) return SRV_KEY_MISSING;
	if (strncasecmp(authorization, "Bearer ", 7) != 0) return SRV_KEY_INVALID;
	const char *tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	size_t len = strlen(tok);
	while (len && tok[len - 1] == ' ')
		len--;
	if (len == 0 || len > SRV_KEY_MAX) return SRV_KEY_INVALID;
	unsigned char given[SRV_KEY_MAX] = { 0 }; /* bytes, zero-padded: not a string */
	for (size_t i = 0; i < len; i++)
		given[i] = (unsigned char)tok[i];
	unsigned match = 0;
	pthread_rwlock_rdlock(&k->lock);
	for (int i = 0; i < k->n; i++) {
		unsigned diff = (unsigned)(k->lens[i] ^ len);
		for (size_t b = 0; b < SRV_KEY_MAX; b++)
			diff |= (unsigned)(k->keys[i][b] ^ given[b]);
		match |= diff == 0;
	}
	pthread_rwlock_unlock(&k->lock);
	return match ? SRV_KEY_OK : SRV_KEY_INVALID;
}

void srv_keys_free(srv_keys *k)
{
	if (!k) return;
	if (k->keys) memset(k->keys, 0, SRV_KEYS_MAX * (size_t)SRV_KEY_MAX);
	free(k->keys);
	free(k->lens);
	pthread_rwlock_destroy(&k->lock);
	free(k);
}
