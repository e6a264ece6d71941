/*
 * t_reshard.c: kds_reshard_split, _merge and _scale through the public API
 * (kds.h) in a temporary directory: the shards made and their lineage, the
 * rules and their errors, and a producer of another kds_stream that follows
 * a reshard it did not see coming.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kds.h"
#include "tap.h"

#define HMAX	"340282366920938463463374607431768211455"
#define HALF	"170141183460469231731687303715884105728"	/* 2^127 */

static char top[] = "/tmp/t_reshard.XXXXXX";

/* The shards made, as the callback hears of them. */
struct made {
	uint64_t	shard[64];
	size_t		n;
};

static void
on_made(void *arg, uint64_t shard)
{
	struct made *m = arg;

	if (m->n < 64)
		m->shard[m->n++] = shard;
}

static struct kds_ack last_ack;

static void
on_ack(void *arg, const struct kds_ack *a)
{
	(void)arg;
	last_ack = *a;
}

static struct kds_stream *
new_stream(const char *name, unsigned shards)
{
	struct kds_create_opts o = { shards, 3600, 64 << 20, 3600, 0, 0 };
	char path[128];
	struct kds_err e;
	struct kds_stream *st;

	snprintf(path, sizeof(path), "%s/%s", top, name);
	if (kds_stream_create(path, &o, &e) == -1 ||
	    (st = kds_stream_open(path, &e)) == NULL) {
		printf("Bail out! %s: %s\n", path, e.msg);
		exit(1);
	}
	return st;
}

static struct kds_shard_text
desc(struct kds_stream *st, uint64_t n)
{
	struct kds_shard_text d;
	struct kds_err e;

	if (kds_stream_shard_text(st, n, &d, &e) == -1)
		memset(&d, 0, sizeof(d));
	return d;
}

static int
rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

static void
test_split_merge(void)
{
	struct kds_stream *st = new_stream("sm", 1);
	struct made m = { .n = 0 };
	struct kds_shard_text d;
	struct kds_err e;
	unsigned __int128 key;

	ok(kds_reshard_split(st, 0, NULL, on_made, &m, &e) == 0,
	    "split shard 0 at the middle");
	ok(m.n == 2 && m.shard[0] == 1 && m.shard[1] == 2,
	    "the callback hears of shards 1 and 2, in order");
	d = desc(st, 0);
	is_str(d.end_seq, "100000000000000000000",
	    "a parent without records ends at counter 0");
	d = desc(st, 1);
	is_str(d.parent, "shardId-000000000000", "child 1's parent");
	is_str(d.adjacent, "", "child 1 has no adjacent parent");
	is_str(d.start_hash, "0", "child 1 starts at 0");
	kds_hashkey_parse(HALF, &key);
	{
		char want[KDS_HASHKEY_LEN];

		kds_hashkey_format(key - 1, want);
		is_str(d.end_hash, want, "child 1 ends below 2^127");
	}
	is_str(d.start_seq, "200000000000000000001", "child 1's first number");
	is_str(d.end_seq, "", "child 1 is open");
	d = desc(st, 2);
	is_str(d.start_hash, HALF, "child 2 starts at 2^127");
	is_str(d.end_hash, HMAX, "child 2 ends at 2^128-1");

	m.n = 0;
	key = 1;
	ok(kds_reshard_split(st, 1, &key, on_made, &m, &e) == -1 &&
	    e.errnum == EINVAL && m.n == 0, "a split key of start + 1 is refused");
	is_str(e.msg, "shardId-000000000001: new starting hash key 1 is not "
	    "both greater than the shard's starting hash key 0 plus one and "
	    "less than its ending hash key "
	    "170141183460469231731687303715884105727", "and says why");
	ok(kds_reshard_split(st, 0, NULL, on_made, &m, &e) == -1 &&
	    strstr(e.msg, "shard is closed: only open shards can be split"),
	    "a closed shard is not split: %s", e.msg);
	ok(kds_reshard_merge(st, 2, 1, on_made, &m, &e) == -1 &&
	    strstr(e.msg, "are not adjacent"), "merge in reverse order: %s",
	    e.msg);
	ok(kds_reshard_merge(st, 1, 9, on_made, &m, &e) == -1 &&
	    e.errnum == ENOENT, "merge with no such shard: %s", e.msg);
	ok(kds_stream_shard_count(st) == 3 && m.n == 0,
	    "the refused reshards made nothing");

	ok(kds_reshard_merge(st, 1, 2, on_made, &m, &e) == 0 && m.n == 1 &&
	    m.shard[0] == 3, "merge 1 and 2 into 3");
	d = desc(st, 3);
	is_str(d.parent, "shardId-000000000001", "3's parent");
	is_str(d.adjacent, "shardId-000000000002", "3's adjacent parent");
	is_str(d.start_hash, "0", "3 starts at 0");
	is_str(d.end_hash, HMAX, "3 ends at 2^128-1");
	kds_stream_close(st);
}

static void
test_scale(void)
{
	struct kds_stream *st = new_stream("sc", 2);
	struct made m = { .n = 0 };
	unsigned __int128 w = (~(unsigned __int128)0 - 4) / 5 + 1;
	struct kds_err e;
	size_t open = 0, k = 0;

	ok(kds_reshard_scale(st, 5, on_made, &m, &e) == 0, "scale 2 to 5");
	ok(m.n > 0 && m.shard[0] == 2 && m.shard[m.n - 1] ==
	    kds_stream_shard_count(st) - 1, "every shard made is heard of");
	/* The open shards, by start key, are the five even ranges. */
	for (uint64_t n = 0; n < kds_stream_shard_count(st); n++)
		open += desc(st, n).end_seq[0] == '\0';
	is_int((long long)open, 5, "five open shards");
	for (unsigned i = 0; i < 5; i++) {
		char s[KDS_HASHKEY_LEN], t[KDS_HASHKEY_LEN];

		kds_hashkey_format(w * i, s);
		kds_hashkey_format(i == 4 ? ~(unsigned __int128)0 :
		    w * (i + 1) - 1, t);
		for (uint64_t n = 0; n < kds_stream_shard_count(st); n++) {
			struct kds_shard_text d = desc(st, n);

			if (d.end_seq[0] == '\0' && strcmp(d.start_hash, s) == 0 &&
			    strcmp(d.end_hash, t) == 0)
				k++;
		}
	}
	is_int((long long)k, 5, "each of the five ranges is an open shard");
	m.n = 0;
	ok(kds_reshard_scale(st, 5, on_made, &m, &e) == 0 && m.n == 0,
	    "scaling again to 5 makes nothing");
	ok(kds_reshard_scale(st, 0, on_made, &m, &e) == -1 &&
	    kds_reshard_scale(st, 10001, on_made, &m, &e) == -1,
	    "0 and 10001 shards are refused");
	kds_stream_close(st);
}

/* A producer of its own kds_stream, as another process, follows a split. */
static void
test_producer_follows(void)
{
	struct kds_stream *ps = new_stream("pf", 1), *rs;
	struct kds_put_record r = { "k", 1, "data", 4, NULL, 0 };
	struct kds_producer *p;
	struct made m = { .n = 0 };
	struct kds_err e;
	char path[128];

	snprintf(path, sizeof(path), "%s/pf", top);
	rs = kds_stream_open(path, &e);
	p = kds_producer_new(ps, KDS_SYNC_NEVER, on_ack, NULL, &e);
	ok(p != NULL && rs != NULL, "a producer and a second handle");
	ok(kds_producer_add(p, &r, &e) == 0 && kds_producer_flush(p, &e) == 0,
	    "one record before the split");
	is_str(last_ack.shard_id, "shardId-000000000000", "to shard 0");
	ok(kds_reshard_split(rs, 0, NULL, on_made, &m, &e) == 0,
	    "split it from the other handle");
	is_str(desc(rs, 0).end_seq, "100000000000000000001",
	    "shard 0 ends at that record");
	ok(kds_producer_add(p, &r, &e) == 0 && kds_producer_flush(p, &e) == 0,
	    "one record after");
	/* MD5("k") is above 2^127: the upper child. */
	is_str(last_ack.shard_id, "shardId-000000000002", "to its child");
	is_str(last_ack.sequence, "300000000000000000001", "numbered there");
	kds_producer_close(p, &e);
	kds_stream_close(ps);
	kds_stream_close(rs);
}

int
main(void)
{
	if (mkdtemp(top) == NULL) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	unsetenv("KDS_ROOT");
	unsetenv("KDS_NOW");
	test_split_merge();
	test_scale();
	test_producer_follows();
	nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
