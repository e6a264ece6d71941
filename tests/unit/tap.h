/*
 * tap.h: the Test Anything Protocol, as much of it as the unit tests need.
 *
 *	plan(3);			or no plan, and done_testing() prints it
 *	ok(x == 1, "x is %d", 1);
 *	is_int(got, want, "name");	on failure prints got and want as
 *	is_str(got, want, "name");	diagnostics ("# ..." on stderr)
 *	return done_testing();		0 when every test passed, else 1
 *
 * Header only, static inline: each t_*.c is one program.
 */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_run, tap_failed, tap_planned = -1;

static inline void
plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline int
tap_vok(int cond, const char *fmt, va_list ap)
{
	tap_run++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_run);
	/* A name holding a newline would end the TAP line: escape controls. */
	{
		char name[512];

		vsnprintf(name, sizeof(name), fmt, ap);
		for (const char *p = name; *p != '\0'; p++) {
			if (*p == '\n')
				fputs("\\n", stdout);
			else if (*p == '\t')
				fputs("\\t", stdout);
			else if ((unsigned char)*p < 0x20)
				printf("\\x%02x", (unsigned char)*p);
			else
				putchar(*p);
		}
	}
	putchar('\n');
	fflush(stdout);
	return cond;
}

static inline int ok(int cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int
ok(int cond, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(cond, fmt, ap);
	va_end(ap);
	return r;
}

/* A diagnostic: a comment line that prove shows with -v or on failure. */
static inline void diag(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void
diag(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("# ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static inline int is_int(long long got, long long want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int
is_int(long long got, long long want, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(got == want, fmt, ap);
	va_end(ap);
	if (!r)
		diag("     got: %lld\n#   wanted: %lld", got, want);
	return r;
}

static inline int is_str(const char *got, const char *want,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline int
is_str(const char *got, const char *want, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(got != NULL && want != NULL ? strcmp(got, want) == 0 :
	    got == want, fmt, ap);
	va_end(ap);
	if (!r)
		diag("     got: %s%s%s\n#   wanted: %s%s%s",
		    got ? "'" : "", got ? got : "NULL", got ? "'" : "",
		    want ? "'" : "", want ? want : "NULL", want ? "'" : "");
	return r;
}

/* Bytes, such as output holding NULs; shows both as C-escaped text. */
static inline void
tap_show(const char *label, const void *p, size_t n)
{
	const unsigned char *s = p;

	fprintf(stderr, "# %8s: '", label);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' || s[i] == '\'')
			fprintf(stderr, "\\%c", s[i]);
		else if (s[i] >= 0x20 && s[i] < 0x7f)
			fputc(s[i], stderr);
		else
			fprintf(stderr, "\\x%02x", s[i]);
	}
	fputs("'\n", stderr);
}

static inline int is_mem(const void *got, size_t gotlen, const void *want,
    size_t wantlen, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static inline int
is_mem(const void *got, size_t gotlen, const void *want, size_t wantlen,
    const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(gotlen == wantlen && (gotlen == 0 ||
	    memcmp(got, want, gotlen) == 0), fmt, ap);
	va_end(ap);
	if (!r) {
		fflush(stdout);
		tap_show("got", got, gotlen);
		tap_show("wanted", want, wantlen);
	}
	return r;
}

/* Print the plan if there was none; the exit status for main(). */
static inline int
done_testing(void)
{
	if (tap_planned < 0)
		printf("1..%d\n", tap_run);
	else if (tap_run != tap_planned) {
		diag("planned %d tests but ran %d", tap_planned, tap_run);
		tap_failed++;
	}
	if (tap_failed)
		diag("failed %d of %d tests", tap_failed, tap_run);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

/* Stop here: something the rest depends on failed. */
static inline void
bail_out(const char *why)
{
	printf("Bail out! %s\n", why);
	fflush(stdout);
	exit(255);
}

#endif
