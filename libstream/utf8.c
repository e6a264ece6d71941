/* utf8.c: counting characters of a partition key, refusing bad UTF-8. */
#include "internal.h"

/* Bytes of the well-formed UTF-8 character at s, of the len there, or 0
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t
kds_utf8_len(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned c;
	size_t need;
	uint32_t cp;

	if (len == 0)
		return 0;
	if ((c = *p) < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		need = 2, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 3, cp = c & 0x07;
	else
		return 0;
	if (len <= need)
		return 0;
	for (size_t i = 1; i <= need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return need + 1;
}

/* Characters in s, or -1 when s is not well-formed UTF-8. */
long
kds_utf8_chars(const char *s, size_t len)
{
	long n = 0;

	for (size_t i = 0, k; i < len; i += k, n++) {
		if ((unsigned char)s[i] < 0x80) {	/* the common case */
			k = 1;
			continue;
		}
		if ((k = kds_utf8_len(s + i, len - i)) == 0)
			return -1;
	}
	return n;
}
