/*
 * Client bytes made safe to show. A path, a parameter or a header can hold
 * any bytes; error messages (JSON, which must be valid UTF-8) and log lines
 * quote them. Invalid UTF-8 becomes U+FFFD, so a message is always
 * buildable and a log line always parses.
 */
#include "server.h"

#include <stdio.h>
#include <string.h>

int srv_utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0];
	if (c < 0x80) return 1;
	int n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (end - p < n) return 0;
	for (int i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80) return 0;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
	    (c == 0xf4 && p[1] > 0x8f))
		return 0;
	return n;
}

static const char replacement[] = "\xef\xbf\xbd";

char *srv_text_clean(char *dst, size_t cap, const char *src)
{
	size_t j = 0;
	const unsigned char *end = (const unsigned char *)src + strlen(src);
	for (const unsigned char *p = (const unsigned char *)src; *p;) {
		int n = srv_utf8_len(p, end);
		const char *piece = (const char *)p;
		size_t len = (size_t)n;
		if (n == 0)
			piece = replacement, len = 3;
		else if (n == 1 && (*p < 0x20 || *p == 0x7f))
			piece = "?", len = 1;
		if (j + len >= cap) break;
		memcpy(dst + j, piece, len);
		j += len;
		p += n ? n : 1;
	}
	dst[j] = '\0';
	return dst;
}

size_t srv_json_escape(char *dst, size_t cap, const char *s)
{
	size_t j = 0;
	const unsigned char *end = (const unsigned char *)s + strlen(s);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		char tmp[8];
		const char *piece = tmp;
		size_t len;
		int n = srv_utf8_len(p, end);
		if (n == 0)
			piece = replacement, len = 3, n = 1;
		else if (*p == '"' || *p == '\\')
			tmp[0] = '\\', tmp[1] = (char)*p, len = 2;
		else if (*p < 0x20 || *p == 0x7f)
			len = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", *p);
		else
			piece = (const char *)p, len = (size_t)n;
		if (j + len >= cap) break;
		memcpy(dst + j, piece, len);
		j += len;
		p += n;
	}
	dst[j] = '\0';
	return j;
}
