/* t_names.c: shard ids and sequence numbers (names.c, kds-stream(5)). */
#include <inttypes.h>
#include <stdio.h>

#include "internal.h"
#include "tap.h"

static void
shard_ids(void)
{
	char id[KDS_SHARD_ID_LEN + 1];
	uint64_t n;
	static const char *bad[] = {
		"", "shardId-", "shardId-00000000000", "shardId-0000000000001",
		"shardId-00000000000a", "shardId--00000000001", "shardid-000000000001",
		"1234567890123", "-1", "+1", " 1", "1 ", "0x1", "shardId-00000000000 ",
		"3a", "shardId-000000000001x",
	};

	kds_shard_id(0, id);
	is_str(id, "shardId-000000000000", "kds_shard_id 0");
	kds_shard_id(3, id);
	is_str(id, "shardId-000000000003", "kds_shard_id 3");
	kds_shard_id(UINT64_C(999999999999), id);
	is_str(id, "shardId-999999999999", "kds_shard_id 999999999999");
	is_int((long long)strlen(id), KDS_SHARD_ID_LEN, "shard id is %d bytes",
	    KDS_SHARD_ID_LEN);

	n = 99;
	ok(kds_shard_id_parse("shardId-000000000003", &n) == 0 && n == 3,
	    "parse shardId-000000000003");
	n = 99;
	ok(kds_shard_id_parse("3", &n) == 0 && n == 3, "parse bare 3");
	n = 99;
	ok(kds_shard_id_parse("0", &n) == 0 && n == 0, "parse bare 0");
	n = 99;
	ok(kds_shard_id_parse("000000000007", &n) == 0 && n == 7,
	    "parse bare zero-padded 000000000007");
	ok(kds_shard_id_parse("shardId-999999999999", &n) == 0 &&
	    n == UINT64_C(999999999999), "parse shardId-999999999999");
	ok(kds_shard_id_parse("999999999999", &n) == 0 &&
	    n == UINT64_C(999999999999), "parse bare 999999999999");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = 12345;
		ok(kds_shard_id_parse(bad[i], &n) == -1 && n == 12345,
		    "shard id '%s' refused, output untouched", bad[i]);
	}
	{
		uint64_t s, wrong = 0;

		for (s = 0; s < 200000; s += 7) {
			kds_shard_id(s, id);
			if (kds_shard_id_parse(id, &n) != 0 || n != s)
				wrong++;
		}
		is_int((long long)wrong, 0, "kds_shard_id, kds_shard_id_parse "
		    "round trip, shards 0 to 200000");
	}
}

static void
seq_round(uint64_t shard, uint64_t counter, const char *want)
{
	char seq[KDS_SEQ_LEN];
	uint64_t s = 0, c = 0;

	kds_seq_format(shard, counter, seq);
	if (want != NULL)
		is_str(seq, want, "kds_seq_format(%" PRIu64 ", %" PRIu64 ")",
		    shard, counter);
	ok(kds_seq_parse(seq, &s, &c) == 0 && s == shard && c == counter,
	    "kds_seq_parse round trip (%" PRIu64 ", %" PRIu64 ") via %s",
	    shard, counter, seq);
}

static void
sequences(void)
{
	uint64_t s, c;
	static const char *bad[] = {
		"",
		"0",
		"10000000000000000000",		/* 20 digits: too short */
		"00000000000000000000001",	/* leading zero */
		"0100000000000000000001",	/* leading zero */
		"000000000000000000000",	/* zero prefix */
		"10000000000000000000a",	/* non-digit */
		"1000000000000000000 1",
		"-100000000000000000001",
		"+100000000000000000001",
		" 100000000000000000001",
		"100000000000000000001 ",
		"1x0000000000000000001",
		"110000000000000000000",	/* counter 10^19 */
		"199999999999999999999",	/* counter 10^20 - 1 */
		"210000000000000000001",	/* counter 10^19 + 1 */
		"123456789012345678901234567890123",	/* 33 digits */
		"99999999999999999999999999999999999999",
	};

	seq_round(0, 1, "100000000000000000001");
	seq_round(3, 42, "400000000000000000042");
	seq_round(8, 7, "900000000000000000007");
	seq_round(9, 7, "1000000000000000000007");
	seq_round(98, 1, "9900000000000000000001");
	seq_round(0, 0, "100000000000000000000");
	seq_round(0, COUNTER_LIMIT - 1, "109999999999999999999");
	seq_round(12345, 67890, "1234600000000000000067890");
	seq_round(UINT64_C(999999999998), 5, NULL);
	/* The largest shard number kds_shard_id_parse accepts. */
	seq_round(UINT64_C(999999999999), 1, "1000000000000" "00000000000000000001");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = c = 777;
		ok(kds_seq_parse(bad[i], &s, &c) == -1 && s == 777,
		    "sequence '%s' refused", bad[i]);
	}

	/* Numbers of a child shard sort after every number of its parent. */
	{
		char a[KDS_SEQ_LEN], b[KDS_SEQ_LEN];

		kds_seq_format(7, COUNTER_LIMIT - 1, a);
		kds_seq_format(8, 1, b);
		ok(strlen(a) == strlen(b) && strcmp(a, b) < 0,
		    "shard 8 counter 1 sorts after shard 7's last counter");
		kds_seq_format(8, 1, a);
		kds_seq_format(9, 1, b);
		ok(strlen(a) < strlen(b), "shard 9's numbers are one digit longer");
	}
}

int
main(void)
{
	shard_ids();
	sequences();
	return done_testing();
}
