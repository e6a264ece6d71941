/* err.c: filling a struct kds_err; the caller decides how to print it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int
vfail(struct kds_err *e, int errnum, const char *fmt, va_list ap)
{
	if (e == NULL)
		return -1;
	e->errnum = errnum;
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
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
