/*
 * fuzz_parse.c: arbitrary bytes (to the first NUL) as each value a user
 * types: kds_parse_duration, kds_parse_size, kds_parse_time,
 * kds_parse_uint, kds_hashkey_parse, kds_seq_parse, kds_shard_id_parse,
 * and kds-get --format (kds_format_new, then one record written).
 *
 * Invariants beside the sanitizers, against independent arithmetic: what
 * is accepted has the documented shape and the value it spells, never a
 * wrapped one; hash keys, sequence numbers and times read back from their
 * formatted form.
 */
#include "fuzz.h"

#include <inttypes.h>
#include <time.h>

static FILE *devnull;

/* s is digits then one character of units (or none, when units is ""):
 * the digits' value with __int128 arithmetic, or -1 when not that shape
 * or above 2^100. */
static __int128
spelled(const char *s, const char *units, char *unit)
{
	__int128 v = 0;
	size_t n = strlen(s), i;

	*unit = '\0';
	if (*units != '\0' && n > 0 && strchr(units, s[n - 1]) != NULL)
		*unit = s[--n];
	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > (__int128)1 << 100)
			return -1;
	}
	return v;
}

static void
durations(const char *s)
{
	int64_t v = -7;
	__int128 x;
	char u;

	if (kds_parse_duration(s, &v) == -1) {
		FUZZ_ASSERT(v == -7);
		return;
	}
	x = spelled(s, "smhd", &u);
	FUZZ_ASSERT(x >= 0 && u != '\0');
	x *= u == 's' ? 1 : u == 'm' ? 60 : u == 'h' ? 3600 : 86400;
	FUZZ_ASSERT(x == v);
}

static void
sizes(const char *s)
{
	uint64_t v;
	__int128 x;
	char u;

	if (kds_parse_size(s, &v) == -1)
		return;
	x = spelled(s, "KkMmGg", &u);
	FUZZ_ASSERT(x >= 0);
	if (u == 'K' || u == 'k')
		x <<= 10;
	else if (u == 'M' || u == 'm')
		x <<= 20;
	else if (u == 'G' || u == 'g')
		x <<= 30;
	FUZZ_ASSERT(x == (__int128)v);
}

static void
uints(const char *s, uint64_t max)
{
	uint64_t v;
	__int128 x;
	char u;

	if (kds_parse_uint(s, max, &v) == -1)
		return;
	x = spelled(s, "", &u);
	FUZZ_ASSERT(x >= 0 && x == (__int128)v && v <= max);
}

static void
hashkeys(const char *s)
{
	char out[KDS_HASHKEY_LEN];
	unsigned __int128 v;

	if (kds_hashkey_parse(s, &v) == -1)
		return;
	kds_hashkey_format(v, out);
	s += strspn(s, "0");
	FUZZ_ASSERT(strcmp(out, *s ? s : "0") == 0);
}

static void
names(const char *s)
{
	char out[KDS_SEQ_LEN];
	uint64_t shard, counter;

	if (kds_seq_parse(s, &shard, &counter) == 0) {
		FUZZ_ASSERT(counter < COUNTER_LIMIT);
		kds_seq_format(shard, counter, out);
		FUZZ_ASSERT(strcmp(out, s) == 0);
	}
	if (kds_shard_id_parse(s, &shard) == 0) {
		char id[KDS_SHARD_ID_LEN + 1];

		FUZZ_ASSERT(shard < UINT64_C(1000000000000));
		kds_shard_id(shard, id);
		FUZZ_ASSERT(kds_shard_id_parse(id, &counter) == 0 &&
		    counter == shard);
	}
}

/* An accepted time, written as ISO 8601 UTC with milliseconds, reads
 * back the same. */
static void
times(const char *s)
{
	char iso[64];
	int64_t ms, again;
	struct tm tm;
	time_t t;

	if (kds_parse_time(s, &ms) == -1 || ms < 0)
		return;
	t = (time_t)(ms / 1000);
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999)
		return;
	snprintf(iso, sizeof(iso), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	FUZZ_ASSERT(kds_parse_time(iso, &again) == 0 && again == ms);
}

static void
formats(const char *s)
{
	struct kds_record r = { "key", 3, "data", 4, 1, 2, -1234 };
	struct kds_format *f;
	struct kds_err e;

	if ((f = kds_format_new(s, &e)) == NULL)
		return;
	kds_format_write(devnull, f, "s", &r);
	kds_format_free(f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t maxes[] = {
		UINT64_MAX, INT64_MAX, 1000000000, 10000, 100, 10, 9, 1, 0,
	};
	char *s;

	if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
		abort();
	if ((s = malloc(size + 1)) == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	durations(s);
	sizes(s);
	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++)
		uints(s, maxes[i]);
	hashkeys(s);
	names(s);
	times(s);
	formats(s);
	free(s);
	return 0;
}
