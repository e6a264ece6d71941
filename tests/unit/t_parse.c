/* t_parse.c: what users type: durations, sizes, times, counts (parse.c). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "tap.h"

#define T_2026_11_28	INT64_C(1795824000000)	/* 2026-11-28T00:00:00Z, ms */
#define HOUR_MS		INT64_C(3600000)

static void
durations(void)
{
	static const struct { const char *s; int64_t v; } good[] = {
		{ "90s", 90 }, { "30m", 1800 }, { "24h", 86400 },
		{ "7d", 604800 }, { "0s", 0 }, { "1s", 1 }, { "1m", 60 },
		{ "1h", 3600 }, { "1d", 86400 }, { "168h", 604800 },
		{ "365d", 31536000 },
		{ "106751991167300d", INT64_C(106751991167300) * 86400 },
	};
	static const char *bad[] = {
		"48", "", "h", "s", "-1h", "+1h", "1.5h", "1w", "1H", "1D", "1S",
		"1 h", " 1h", "1h ", "1hh", "h1", "1y", "0x10s", "1e3s",
		"106751991167301d",			/* overflows int64 seconds */
		"9223372036854775808s",
		"99999999999999999999999999999999d",
		"1111111111111111111111111111111111111111111111h",
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = -7;
		ok(kds_parse_duration(good[i].s, &v) == 0 && v == good[i].v,
		    "duration %s is %" PRId64 " s", good[i].s, good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = -7;
		ok(kds_parse_duration(bad[i], &v) == -1 && v == -7,
		    "duration '%s' refused", bad[i]);
	}
}

static void
sizes(void)
{
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "4096", 4096 }, { "0", 0 }, { "1", 1 },
		{ "64K", 65536 }, { "64k", 65536 },
		{ "64M", UINT64_C(64) << 20 }, { "64m", UINT64_C(64) << 20 },
		{ "1G", UINT64_C(1) << 30 }, { "1g", UINT64_C(1) << 30 },
		{ "18446744073709551615", UINT64_MAX },
		{ "17179869183G", (UINT64_C(17179869183)) << 30 },
		{ "18014398509481983K", UINT64_C(18014398509481983) << 10 },
	};
	static const char *bad[] = {
		"", "K", "M", "G", "1T", "1t", "1KB", "1KiB", "-1", "+1", "1.5M",
		" 1", "1 ", "1 K", "K1", "0x10",
		"18446744073709551616",		/* 2^64 */
		"17179869184G",			/* 2^64 */
		"18014398509481984K",		/* 2^64 */
		"99999999999999999999999999999999999",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		v = 7;
		ok(kds_parse_size(good[i].s, &v) == 0 && v == good[i].v,
		    "size %s is %" PRIu64, good[i].s, good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 7;
		ok(kds_parse_size(bad[i], &v) == -1 && v == 7,
		    "size '%s' refused", bad[i]);
	}
}

static void
times(void)
{
	static const struct { const char *s; int64_t ms; } good[] = {
		{ "0", 0 },
		{ "1795824000", T_2026_11_28 },
		{ "1795824000.5", T_2026_11_28 + 500 },
		{ "1795824000.123", T_2026_11_28 + 123 },
		{ "1795824000.1239", T_2026_11_28 + 123 },	/* cut, not rounded */
		{ "1795824000.05", T_2026_11_28 + 50 },
		{ "9223372036854774", INT64_C(9223372036854774000) },
		{ "9223372036854774.999", INT64_C(9223372036854774999) },
		{ "2026-11-28", T_2026_11_28 },
		{ "2026-11-28T10:00", T_2026_11_28 + 10 * HOUR_MS },
		{ "2026-11-28t10:00", T_2026_11_28 + 10 * HOUR_MS },
		{ "2026-11-28 10:00", T_2026_11_28 + 10 * HOUR_MS },
		{ "2026-11-28T10:00Z", T_2026_11_28 + 10 * HOUR_MS },
		{ "2026-11-28T10:00:00Z", T_2026_11_28 + 10 * HOUR_MS },
		{ "2026-11-28T10:00:00z", T_2026_11_28 + 10 * HOUR_MS },
		{ "2026-11-28T10:00:00", T_2026_11_28 + 10 * HOUR_MS },
		{ "2026-11-28T10:00:07", T_2026_11_28 + 10 * HOUR_MS + 7000 },
		{ "2026-11-28T10:00:00.123Z", T_2026_11_28 + 10 * HOUR_MS + 123 },
		{ "2026-11-28T10:00:00.1Z", T_2026_11_28 + 10 * HOUR_MS + 100 },
		{ "2026-11-28T10:00:00.123456789Z",
		    T_2026_11_28 + 10 * HOUR_MS + 123 },
		{ "2026-11-28T10:00:00+01:00", T_2026_11_28 + 9 * HOUR_MS },
		{ "2026-11-28T10:00:00+0100", T_2026_11_28 + 9 * HOUR_MS },
		{ "2026-11-28T10:00:00+01", T_2026_11_28 + 9 * HOUR_MS },
		{ "2026-11-28T10:00:00-01:30",
		    T_2026_11_28 + 11 * HOUR_MS + 30 * 60000 },
		{ "2026-11-28 10:00:00.250+01:00",
		    T_2026_11_28 + 9 * HOUR_MS + 250 },
		{ "2026-11-28T00:30+01:00", T_2026_11_28 - 30 * 60000 },
		{ "2024-02-29", INT64_C(1709164800000) },
		{ "1970-01-01", 0 },
		{ "1970-01-01T00:00:00Z", 0 },
	};
	static const char *bad[] = {
		"", "garbage", "yesterday", "now", "-1", "+1", "1.", ".5", "1.x",
		"1795824000 ", " 1795824000", "1795824000.5.5", "0x10",
		"9223372036854775",		/* * 1000 overflows */
		"2026-02-31", "2026-02-29", "2025-02-29", "2026-04-31",
		"2026-13-01", "2026-00-10", "2026-11-00", "2026-11-32",
		"2026-1-28", "2026-11-2", "26-11-28", "2026/11/28",
		"2026-11-28T", "2026-11-28T10", "2026-11-28T10:", "2026-11-28T10:0",
		"2026-11-28T24:00", "2026-11-28T10:60", "2026-11-28T10:00:61",
		"2026-11-28T10:00:00.", "2026-11-28T10:00:00.Z",
		"2026-11-28T10:00.5", "2026-11-28T10:00:00ZZ",
		"2026-11-28T10:00:00Zjunk", "2026-11-28 junk",
		"2026-11-28T10:00:00+1", "2026-11-28T10:00:00+01:0",
		"2026-11-28T10:00:00+24:00", "2026-11-28T10:00:00+01:60",
		"2026-11-28T10:00:00+01:00:00", "2026-11-28T10:00:00 +01:00",
		"2026-11-28Z", "2026-11-28+01:00", "1969-12-31",
		"2026-11-28T10:00:00+01:",	/* a colon and no minutes */
	};
	int64_t ms;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = -7;
		if (!ok(kds_parse_time(good[i].s, &ms) == 0 && ms == good[i].ms,
		    "time %s is %" PRId64 " ms", good[i].s, good[i].ms))
			diag("got %" PRId64, ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ms = -7;
		if (!ok(kds_parse_time(bad[i], &ms) == -1 && ms == -7,
		    "time '%s' refused", bad[i]))
			diag("got %" PRId64, ms);
	}
	/* No time zone means UTC, whatever TZ says. */
	setenv("TZ", "America/New_York", 1);
	ms = -7;
	ok(kds_parse_time("2026-11-28T10:00", &ms) == 0 &&
	    ms == T_2026_11_28 + 10 * HOUR_MS, "a time without a zone is UTC "
	    "even with TZ set");
	unsetenv("TZ");
}

static void
uints(void)
{
	uint64_t v;

	v = 7;
	ok(kds_parse_uint("0", 10, &v) == 0 && v == 0, "uint 0");
	ok(kds_parse_uint("10000", 10000, &v) == 0 && v == 10000,
	    "uint 10000 with max 10000");
	v = 7;
	ok(kds_parse_uint("10001", 10000, &v) == -1 && v == 7,
	    "uint 10001 with max 10000 refused");
	ok(kds_parse_uint("10009", 10000, &v) == -1,
	    "uint 10009 with max 10000 refused");
	ok(kds_parse_uint("99999", 10000, &v) == -1,
	    "uint 99999 with max 10000 refused");
	ok(kds_parse_uint("18446744073709551615", UINT64_MAX, &v) == 0 &&
	    v == UINT64_MAX, "uint UINT64_MAX with max UINT64_MAX");
	ok(kds_parse_uint("18446744073709551616", UINT64_MAX, &v) == -1,
	    "uint 2^64 refused");
	ok(kds_parse_uint("184467440737095516150", UINT64_MAX, &v) == -1,
	    "uint 10 * UINT64_MAX refused");
	ok(kds_parse_uint("000000000000000000000000000042", 42, &v) == 0 &&
	    v == 42, "leading zeros are fine");
	ok(kds_parse_uint("9", 9, &v) == 0 && v == 9, "uint 9 with max 9");
	ok(kds_parse_uint("0", 0, &v) == 0 && v == 0, "uint 0 with max 0");
	ok(kds_parse_uint("", 10, &v) == -1, "uint '' refused");
	ok(kds_parse_uint("-1", 10, &v) == -1, "uint -1 refused");
	ok(kds_parse_uint("+1", 10, &v) == -1, "uint +1 refused");
	ok(kds_parse_uint(" 1", 10, &v) == -1, "uint ' 1' refused");
	ok(kds_parse_uint("1 ", 10, &v) == -1, "uint '1 ' refused");
	ok(kds_parse_uint("1x", 10, &v) == -1, "uint 1x refused");
	/* A max below a digit: max - digit must not wrap around. */
	v = 7;
	ok(kds_parse_uint("5", 3, &v) == -1 && v == 7,
	    "uint 5 with max 3 refused");
	ok(kds_parse_uint("1", 0, &v) == -1, "uint 1 with max 0 refused");
	ok(kds_parse_uint("16", 5, &v) == -1, "uint 16 with max 5 refused");
}

int
main(void)
{
	durations();
	sizes();
	times();
	uints();
	return done_testing();
}
