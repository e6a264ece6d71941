/* err.c: filling a struct kds_err; the caller decides how to print it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/*
 * A message is one line however hostile the names in it: control
 * characters come out as \t, \n, \r or \xHH, so that a newline in a
 * shard id or a path cannot forge a second line, nor an escape sequence
 * reach the terminal.  Longer than n - 1 bytes, it is cut with "...".
 */
static size_t
escape(unsigned char c, char esc[5])
{
	if (c == '\t' || c == '\n' || c == '\r')
		return (size_t)snprintf(esc, 5, "\\%c",
		    c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
	if (c < 0x20 || c == 0x7f)
		return (size_t)snprintf(esc, 5, "\\x%02x", c);
	esc[0] = (char)c;
	return 1;
}

const char *
kds_printable(const char *s, char *out, size_t n)
{
	size_t total = 0, limit, o = 0;
	char esc[5];

	if (n == 0)
		return out;
	for (const char *p = s; *p != '\0'; p++)
		total += escape((unsigned char)*p, esc);
	limit = total <= n - 1 || n < 4 ? n - 1 : n - 4;
	for (; *s != '\0'; s++) {
		size_t k = escape((unsigned char)*s, esc);

		if (o + k > limit)
			break;
		memcpy(out + o, esc, k);
		o += k;
	}
	if (total > n - 1 && n >= 4) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static int
vfail(struct kds_err *e, int errnum, const char *fmt, va_list ap)
{
	char raw[4 * sizeof(e->msg)];

	if (e == NULL)
		return -1;
	e->errnum = errnum;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	kds_printable(raw, e->msg, sizeof(e->msg));
	return -1;
}

/* Always returns -1, so that "return kds_fail(...)" reads as it should. */
int
kds_fail(struct kds_err *e, int errnum, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(e, errnum, fmt, ap);
	va_end(ap);
	return -1;
}

/* As kds_fail, with ": strerror(errno)" appended. */
int
kds_fail_errno(struct kds_err *e, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	size_t n;

	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	vfail(e, saved, fmt, ap);
	va_end(ap);
	n = strlen(e->msg);
	snprintf(e->msg + n, sizeof(e->msg) - n, "%s%s", n ? ": " : "",
	    strerror(saved));
	errno = saved;
	return -1;
}
