/*
 * names.c: shard ids and sequence numbers as users see them.
 *
 * A sequence number is (shard + 1) * 10^20 + counter, in decimal: every
 * number of a shard has the same width, the shard can be read back from the
 * number alone, and a child shard (always a higher shard number) has greater
 * numbers than its parents.  kds-stream(5) says so too.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void
kds_shard_id(uint64_t number, char out[KDS_SHARD_ID_LEN + 1])
{
	snprintf(out, KDS_SHARD_ID_LEN + 1, "shardId-%012" PRIu64,
	    number % UINT64_C(1000000000000));
}

static int
digits(const char *s, size_t n, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	*v = x;
	return 0;
}

/* "shardId-000000000003" or a bare shard number such as "3". */
int
kds_shard_id_parse(const char *s, uint64_t *number)
{
	size_t n;

	if (strncmp(s, "shardId-", 8) == 0) {
		s += 8;
		if (strlen(s) != 12)
			return -1;
	}
	n = strlen(s);
	if (n == 0 || n > 12 || digits(s, n, number) == -1)
		return -1;
	return 0;
}

void
kds_seq_format(uint64_t shard, uint64_t counter, char out[KDS_SEQ_LEN])
{
	snprintf(out, KDS_SEQ_LEN, "%" PRIu64 "%020" PRIu64, shard + 1, counter);
}

int
kds_seq_parse(const char *s, uint64_t *shard, uint64_t *counter)
{
	size_t n = strlen(s);
	uint64_t prefix;

	/* 1 to 13 digits of shard number + 1, then a 20-digit counter. */
	if (n < 21 || n > 33 || s[0] == '0')
		return -1;
	if (digits(s, n - 20, &prefix) == -1 || prefix == 0 ||
	    prefix > 1000000000000ULL)
		return -1;
	if (digits(s + n - 20, 20, counter) == -1 ||
	    *counter >= COUNTER_LIMIT)
		return -1;
	*shard = prefix - 1;
	return 0;
}
