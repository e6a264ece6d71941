/*
 * parse.c: the values users type: counts, durations, sizes and times.
 * Each parser takes the whole string or refuses it: no trailing junk, no
 * sign, no silent wrap-around.
 */
#define _DEFAULT_SOURCE
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "internal.h"

int
kds_parse_uint(const char *s, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		uint64_t d = (uint64_t)(*s - '0');

		/* x * 10 + d <= max, asked so that nothing wraps. */
		if (d > max || x > (max - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

/* A number and a unit, s, m, h or d: "90s", "30m", "24h", "7d".  The unit
 * is required: a bare "48" could mean hours (AWS) or seconds (sleep). */
int
kds_parse_duration(const char *s, int64_t *seconds)
{
	static const struct { char unit; int64_t mul; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	size_t n = strlen(s);
	char num[32];
	uint64_t v;

	if (n < 2 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n - 1);
	num[n - 1] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (s[n - 1] != units[i].unit)
			continue;
		if (kds_parse_uint(num, (uint64_t)INT64_MAX / 86400, &v) == -1)
			return -1;
		*seconds = (int64_t)v * units[i].mul;
		return 0;
	}
	return -1;
}

/* Bytes, with an optional K, M or G (powers of 1024). */
int
kds_parse_size(const char *s, uint64_t *bytes)
{
	size_t n = strlen(s);
	uint64_t mul = 1, v;
	char num[32];

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	switch (s[n - 1]) {
	case 'K': case 'k': mul = UINT64_C(1) << 10; break;
	case 'M': case 'm': mul = UINT64_C(1) << 20; break;
	case 'G': case 'g': mul = UINT64_C(1) << 30; break;
	default: break;
	}
	if (mul != 1)
		num[n - 1] = '\0';
	if (kds_parse_uint(num, UINT64_MAX / mul, &v) == -1)
		return -1;
	*bytes = v * mul;
	return 0;
}

static int
fixed(const char **sp, int ndigits, int *v)
{
	int x = 0;

	for (int i = 0; i < ndigits; i++) {
		if (!isdigit((unsigned char)(*sp)[i]))
			return -1;
		x = x * 10 + ((*sp)[i] - '0');
	}
	*sp += ndigits;
	*v = x;
	return 0;
}

/* Milliseconds from ".123" (more digits are cut, not rounded). */
static int
fraction(const char **sp, int64_t *ms)
{
	const char *s = *sp;
	int64_t v = 0;
	int n = 0;

	if (*s != '.')
		return 0;
	s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++, n++) {
		if (n < 3)
			v = v * 10 + (*s - '0');
	}
	for (; n < 3; n++)
		v *= 10;
	*ms = v;
	*sp = s;
	return 0;
}

/*
 * Epoch seconds ("1764324000", "1764324000.5") or ISO 8601
 * ("2026-11-28", "2026-11-28T10:00", "2026-11-28T10:00:00.123Z",
 * "2026-11-28 10:00:00+01:00").  A time without a zone is UTC.
 */
int
kds_parse_time(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	int64_t ms = 0, secs, off = 0;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	const char *p = s;

	if (strlen(s) < 10 || s[4] != '-') {
		uint64_t v;
		char num[32];
		size_t n = strcspn(s, ".");

		if (n == 0 || n >= sizeof(num))
			return -1;
		memcpy(num, s, n);
		num[n] = '\0';
		if (kds_parse_uint(num, (uint64_t)INT64_MAX / 1000 - 1, &v) == -1)
			return -1;
		p = s + n;
		if (fraction(&p, &ms) == -1 || *p != '\0')
			return -1;
		*out = (int64_t)v * 1000 + ms;
		return 0;
	}
	if (fixed(&p, 4, &y) || *p++ != '-' || fixed(&p, 2, &mo) ||
	    *p++ != '-' || fixed(&p, 2, &d))
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (fixed(&p, 2, &h) || *p++ != ':' || fixed(&p, 2, &mi))
			return -1;
		if (*p == ':') {
			p++;
			if (fixed(&p, 2, &sec) || fraction(&p, &ms) == -1)
				return -1;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh, om = 0;

			if (fixed(&p, 2, &oh))
				return -1;
			/* +hh, +hhmm or +hh:mm; a colon promises minutes. */
			if (*p == ':') {
				p++;
				if (fixed(&p, 2, &om))
					return -1;
			} else if (*p != '\0' && fixed(&p, 2, &om))
				return -1;
			if (oh > 23 || om > 59)
				return -1;
			off = sign * (oh * 3600 + om * 60);
		}
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60 || y < 1970)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	secs = (int64_t)timegm(&tm);
	if (tm.tm_mday != d)		/* 2026-02-31 rolled over: refuse */
		return -1;
	*out = (secs - off) * 1000 + ms;
	return 0;
}
