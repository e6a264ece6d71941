/*
 * t_stream.c: end to end through the public API (kds.h) in a temporary
 * directory: create, produce 10,000 records with their acks, and read them
 * back with every iterator type, once with large segments and once with
 * 4 KiB segments so that seeks cross many segment boundaries.  KDS_NOW
 * gives each batch of 100 records its own arrival time, one second apart.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kds.h"
#include "tap.h"

#define NSHARDS		3
#define NBATCH		100
#define PER_BATCH	100
#define NREC		(NBATCH * PER_BATCH)
#define T0_MS		INT64_C(1795824000000)	/* 2026-11-28T00:00:00Z */
#define MORE		25			/* records of a second producer */

static char top[] = "/tmp/t_stream.XXXXXX";

/* Batch b arrives at T(b); the odd 7 ms checks that milliseconds count. */
static int64_t
batch_time(int b)
{
	return T0_MS + 1000 + (int64_t)b * 1000 + 7;
}

static void
set_now(int64_t ms)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%" PRId64 ".%03" PRId64, ms / 1000,
	    ms % 1000);
	setenv("KDS_NOW", buf, 1);
}

/* Record i: three records in a row share a key, so that the producer's
 * last-key cache is used; the data varies in length. */
static size_t
key_of(size_t i, char *buf)
{
	return (size_t)sprintf(buf, "user-%zu", (i / 3) % 1000);
}

static size_t
data_of(size_t i, char *buf)
{
	size_t n = (size_t)sprintf(buf, "record %zu ", i);

	memset(buf + n, 'a' + (int)(i % 26), i % 61);
	return n + i % 61;
}

/* The shard of a hash key, by the AWS ranges, computed apart from the
 * library: floor(2^128 / 3) wide, the last one to 2^128 - 1. */
static uint64_t
shard_of_hash(unsigned __int128 h)
{
	unsigned __int128 w = (~(unsigned __int128)0 - 2) / 3 + 1;
	unsigned __int128 s = h / w;

	return s >= NSHARDS ? NSHARDS - 1 : (uint64_t)s;
}

static uint64_t
shard_of(size_t i)
{
	char key[64];
	size_t n = key_of(i, key);

	return shard_of_hash(kds_hashkey_of(key, n));
}

/* What the acks said, record by record. */
struct acks {
	size_t		 n;
	size_t		 base;		/* record number of the first ack */
	uint64_t	 shard[NREC + MORE];
	uint64_t	 counter[NREC + MORE];
	uint64_t	 last[NSHARDS];	/* last counter acked per shard */
	int		 wrong_shard, not_increasing, bad_format, too_many;
};

static void
on_ack(void *arg, const struct kds_ack *a)
{
	struct acks *k = arg;
	size_t i = k->base + k->n;
	uint64_t shard, counter;
	char id[KDS_SHARD_ID_LEN + 1];

	if (i >= NREC + MORE) {
		k->too_many++;
		return;
	}
	if (kds_seq_parse(a->sequence, &shard, &counter) == -1 ||
	    shard >= NSHARDS) {
		k->bad_format++;
		k->n++;
		return;
	}
	kds_shard_id(shard, id);
	if (strcmp(id, a->shard_id) != 0)
		k->bad_format++;
	if (shard != shard_of(i))
		k->wrong_shard++;
	if (counter != k->last[shard] + 1)
		k->not_increasing++;
	k->last[shard] = counter;
	k->shard[i] = shard;
	k->counter[i] = counter;
	k->n++;
}

/* (shard, counter) -> record number, from the acks. */
static size_t *by_seq[NSHARDS];
static uint64_t per_shard[NSHARDS];	/* records in each shard */
static size_t nrec;			/* records in the stream */

static void
index_acks(const struct acks *k)
{
	memset(per_shard, 0, sizeof(per_shard));
	for (size_t s = 0; s < NSHARDS; s++) {
		free(by_seq[s]);
		by_seq[s] = calloc(NREC + MORE + 2, sizeof(size_t));
		if (by_seq[s] == NULL)
			bail_out("out of memory");
	}
	for (size_t i = 0; i < k->base + k->n; i++) {
		by_seq[k->shard[i]][k->counter[i]] = i + 1;	/* 0: none */
		per_shard[k->shard[i]]++;
	}
	nrec = k->base + k->n;
}

static int64_t
arrival_of(size_t i)
{
	return i < NREC ? batch_time((int)(i / PER_BATCH)) :
	    batch_time(NBATCH + 5);
}

/* What one reader returned. */
struct got {
	size_t		 n;
	uint64_t	 first_shard, first_counter;
	int64_t		 first_arrival, min_arrival;
	size_t		 bad_content, out_of_order, gaps, dups, unknown;
	size_t		 shard_n[NSHARDS];
	int		 failed;
	char		 err[1024];
};

/*
 * Read with o, at most limit records (0: all), checking each record's key,
 * data and arrival against what was put, the merge order (arrival time,
 * then shard) and that each shard's counters follow one another.
 */
static void
read_with(struct kds_stream *st, const struct kds_iter_opts *o, size_t limit,
    struct got *g)
{
	struct kds_err e = { 0, "" };
	struct kds_reader *rd;
	struct kds_record r;
	uint64_t prev_counter[NSHARDS] = { 0 };
	int64_t prev_arrival = INT64_MIN;
	uint64_t prev_shard = 0;
	unsigned char *seen = calloc(NREC + MORE + 1, 1);
	int rc;

	memset(g, 0, sizeof(*g));
	g->min_arrival = INT64_MAX;
	if (seen == NULL)
		bail_out("out of memory");
	if ((rd = kds_reader_open(st, o, &e)) == NULL) {
		g->failed = 1;
		snprintf(g->err, sizeof(g->err), "%s", e.msg);
		free(seen);
		return;
	}
	while ((limit == 0 || g->n < limit) && (rc = kds_reader_next(rd, &r,
	    &e)) == 1) {
		char key[64], data[128];
		size_t i, kn, dn;

		if (r.shard >= NSHARDS || r.counter > NREC + MORE ||
		    (i = by_seq[r.shard][r.counter]) == 0) {
			g->unknown++;
			continue;
		}
		i--;
		if (seen[i]++)
			g->dups++;
		kn = key_of(i, key);
		dn = data_of(i, data);
		if (r.keylen != kn || memcmp(r.key, key, kn) != 0 ||
		    r.datalen != dn || memcmp(r.data, data, dn) != 0 ||
		    r.arrival_ms != arrival_of(i))
			g->bad_content++;
		if (g->n == 0) {
			g->first_shard = r.shard;
			g->first_counter = r.counter;
			g->first_arrival = r.arrival_ms;
		}
		if (r.arrival_ms < prev_arrival || (r.arrival_ms ==
		    prev_arrival && r.shard < prev_shard))
			g->out_of_order++;
		if (prev_counter[r.shard] != 0 &&
		    r.counter != prev_counter[r.shard] + 1)
			g->gaps++;
		prev_counter[r.shard] = r.counter;
		prev_arrival = r.arrival_ms;
		prev_shard = r.shard;
		if (r.arrival_ms < g->min_arrival)
			g->min_arrival = r.arrival_ms;
		g->shard_n[r.shard]++;
		g->n++;
	}
	if (limit == 0 || g->n < limit) {
		if (rc == -1) {
			g->failed = 1;
			snprintf(g->err, sizeof(g->err), "%s", e.msg);
		}
	}
	kds_reader_close(rd);
	free(seen);
}

static int
clean(const struct got *g)
{
	return !g->failed && g->bad_content == 0 && g->out_of_order == 0 &&
	    g->gaps == 0 && g->dups == 0 && g->unknown == 0;
}

static void
explain(const struct got *g)
{
	diag("n %zu, failed %d '%s', bad content %zu, out of order %zu, "
	    "gaps %zu, dups %zu, unknown %zu, first %" PRIu64 "/%" PRIu64,
	    g->n, g->failed, g->err, g->bad_content, g->out_of_order, g->gaps,
	    g->dups, g->unknown, g->first_shard, g->first_counter);
}

/* The first counters of shard s's segments, ascending. */
static size_t
segments(const char *path, uint64_t s, uint64_t *out, size_t max)
{
	char dir[4096], id[KDS_SHARD_ID_LEN + 1];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	kds_shard_id(s, id);
	snprintf(dir, sizeof(dir), "%s/%s", path, id);
	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char seq[KDS_SEQ_LEN];
		uint64_t sh, c;

		if (len < 5 || len - 4 >= sizeof(seq) ||
		    strcmp(de->d_name + len - 4, ".seg") != 0)
			continue;
		memcpy(seq, de->d_name, len - 4);
		seq[len - 4] = '\0';
		if (kds_seq_parse(seq, &sh, &c) == 0 && sh == s && n < max)
			out[n++] = c;
	}
	closedir(d);
	for (size_t i = 1; i < n; i++)		/* insertion sort */
		for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
			uint64_t t = out[j];

			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

static void
produce(const char *path, enum kds_sync sync, struct acks *k)
{
	struct kds_err e = { 0, "" };
	struct kds_stream *st;
	struct kds_producer *p;
	int bad = 0, acked_early = 0;

	memset(k, 0, sizeof(*k));
	set_now(batch_time(0));
	if ((st = kds_stream_open(path, &e)) == NULL)
		bail_out(e.msg);
	if ((p = kds_producer_new(st, sync, on_ack, k, &e)) == NULL)
		bail_out(e.msg);
	for (int b = 0; b < NBATCH; b++) {
		set_now(batch_time(b));
		for (int j = 0; j < PER_BATCH; j++) {
			size_t i = (size_t)b * PER_BATCH + (size_t)j;
			char key[64], data[128];
			struct kds_put_record r = { key, key_of(i, key), data,
			    data_of(i, data), NULL, 0 };

			if (kds_producer_add(p, &r, &e) != 0)
				bad++;
		}
		if (k->n != (size_t)b * PER_BATCH)
			acked_early++;
		if (kds_producer_flush(p, &e) != 0)
			bad++;
	}
	is_int(bad, 0, "10,000 records added and flushed in 100 batches");
	is_int(acked_early, 0, "no ack before its batch is flushed");
	ok(kds_producer_pending(p) == 0, "nothing pending after the flushes");
	if (!ok(kds_producer_close(p, &e) == 0, "kds_producer_close"))
		diag("%s", e.msg);
	kds_stream_close(st);
	is_int((long long)k->n, NREC, "one ack per record");
	is_int(k->too_many + k->bad_format, 0, "every ack is well-formed: "
	    "shard id and sequence number agree");
	is_int(k->wrong_shard, 0, "every record went to the shard whose AWS "
	    "range holds MD5(key)");
	is_int(k->not_increasing, 0, "acks in input order: each shard's "
	    "counters 1, 2, 3...");
	ok(k->last[0] + k->last[1] + k->last[2] == NREC && k->last[0] > 2000 &&
	    k->last[1] > 2000 && k->last[2] > 2000, "the shards hold %" PRIu64
	    ", %" PRIu64 ", %" PRIu64 " records", k->last[0], k->last[1],
	    k->last[2]);
	index_acks(k);
}

static void
iterators(const char *path, const char *what)
{
	struct kds_err e = { 0, "" };
	struct kds_iter_opts o;
	struct kds_stream *st;
	struct got g;
	char seq[KDS_SEQ_LEN];

	set_now(batch_time(NBATCH) + 5000);
	if ((st = kds_stream_open(path, &e)) == NULL)
		bail_out(e.msg);
	is_int((long long)kds_stream_shard_count(st), NSHARDS,
	    "%s: three shards", what);

	memset(&o, 0, sizeof(o));
	o.type = KDS_TRIM_HORIZON;
	read_with(st, &o, 0, &g);
	if (!ok(clean(&g) && g.n == NREC, "%s: TRIM_HORIZON reads all 10,000 "
	    "records, right content, merged by arrival time", what))
		explain(&g);
	ok(g.shard_n[0] == per_shard[0] && g.shard_n[1] == per_shard[1] &&
	    g.shard_n[2] == per_shard[2], "%s: every shard's records", what);

	o.type = KDS_LATEST;
	read_with(st, &o, 0, &g);
	if (!ok(!g.failed && g.n == 0, "%s: LATEST reads none", what))
		explain(&g);

	/* Exact positions: the first, a middle and the last of each shard. */
	{
		int wrong = 0, n = 0;

		for (uint64_t s = 0; s < NSHARDS; s++) {
			uint64_t cs[] = { 1, 2, per_shard[s] / 2, per_shard[s] - 1,
			    per_shard[s] };

			for (size_t j = 0; j < sizeof(cs) / sizeof(cs[0]); j++) {
				uint64_t c = cs[j];

				kds_seq_format(s, c, seq);
				o.type = KDS_AT_SEQUENCE_NUMBER;
				o.sequence = seq;
				read_with(st, &o, 0, &g);
				n++;
				if (!clean(&g) || g.n != per_shard[s] - c + 1 ||
				    g.first_shard != s || g.first_counter != c ||
				    g.shard_n[s] != g.n) {
					if (wrong++ == 0)
						explain(&g);
				}
				o.type = KDS_AFTER_SEQUENCE_NUMBER;
				read_with(st, &o, 0, &g);
				n++;
				if (!clean(&g) || g.n != per_shard[s] - c ||
				    (g.n > 0 && (g.first_shard != s ||
				    g.first_counter != c + 1))) {
					if (wrong++ == 0)
						explain(&g);
				}
			}
		}
		is_int(wrong, 0, "%s: AT_ and AFTER_SEQUENCE_NUMBER at %d "
		    "positions start exactly there and read to the shard's end",
		    what, n / 2);
	}

	/* Past the end, and before the first. */
	kds_seq_format(1, per_shard[1] + 1, seq);
	o.type = KDS_AT_SEQUENCE_NUMBER;
	o.sequence = seq;
	read_with(st, &o, 0, &g);
	ok(!g.failed && g.n == 0, "%s: AT_SEQUENCE_NUMBER one past the end "
	    "reads none", what);
	kds_seq_format(1, 0, seq);
	o.type = KDS_AFTER_SEQUENCE_NUMBER;
	read_with(st, &o, 0, &g);
	ok(clean(&g) && g.n == per_shard[1] && g.first_counter == 1,
	    "%s: AFTER_SEQUENCE_NUMBER counter 0 reads the whole shard", what);
	o.sequence = NULL;

	/* Every segment boundary: the first record of each segment, and the
	 * last of the one before it. */
	{
		uint64_t segs[4096];
		int wrong = 0, nsegs = 0;

		for (uint64_t s = 0; s < NSHARDS; s++) {
			size_t n = segments(path, s, segs, 4096);

			nsegs += (int)n;
			for (size_t j = 1; j < n; j++) {
				uint64_t c = segs[j];

				kds_seq_format(s, c, seq);
				o.sequence = seq;
				o.type = KDS_AT_SEQUENCE_NUMBER;
				read_with(st, &o, 3, &g);
				if (!clean(&g) || g.first_counter != c || g.n != 3)
					wrong++;
				o.type = KDS_AFTER_SEQUENCE_NUMBER;
				read_with(st, &o, 3, &g);
				if (!clean(&g) || g.first_counter != c + 1)
					wrong++;
				kds_seq_format(s, c - 1, seq);
				read_with(st, &o, 3, &g);
				if (!clean(&g) || g.first_counter != c)
					wrong++;
				o.type = KDS_AT_SEQUENCE_NUMBER;
				read_with(st, &o, 3, &g);
				if (!clean(&g) || g.first_counter != c - 1 ||
				    g.n != 3)
					wrong++;
			}
		}
		is_int(wrong, 0, "%s: seeks to both sides of each of %d segment "
		    "boundaries", what, nsegs - NSHARDS);
		o.sequence = NULL;
	}

	/* AT_TIMESTAMP at each batch's time, and just before and after. */
	{
		int wrong = 0;

		o.type = KDS_AT_TIMESTAMP;
		for (int b = 0; b < NBATCH; b++) {
			size_t want = NREC - (size_t)b * PER_BATCH;

			o.timestamp_ms = batch_time(b);
			read_with(st, &o, 0, &g);
			if (!clean(&g) || g.n != want ||
			    g.first_arrival != batch_time(b) ||
			    g.min_arrival != batch_time(b)) {
				if (wrong++ == 0) {
					diag("at batch %d:", b);
					explain(&g);
				}
			}
			o.timestamp_ms = batch_time(b) - 1;
			read_with(st, &o, 1, &g);
			if (g.failed || g.first_arrival != batch_time(b))
				wrong++;
			o.timestamp_ms = batch_time(b) + 1;
			read_with(st, &o, 1, &g);
			if (g.failed || (b + 1 < NBATCH ? g.first_arrival !=
			    batch_time(b + 1) : g.n != 0))
				wrong++;
		}
		is_int(wrong, 0, "%s: AT_TIMESTAMP at, before and after each of "
		    "100 batch times reads from that batch on", what);
		o.timestamp_ms = 0;
		read_with(st, &o, 0, &g);
		ok(clean(&g) && g.n == NREC, "%s: AT_TIMESTAMP 0 reads all", what);
		o.timestamp_ms = batch_time(NBATCH);
		read_with(st, &o, 0, &g);
		ok(!g.failed && g.n == 0, "%s: AT_TIMESTAMP after the last batch "
		    "reads none", what);
	}

	/* Only some shards. */
	{
		uint64_t one[] = { 1 }, two[] = { 2, 0 };

		o.type = KDS_TRIM_HORIZON;
		o.shards = one;
		o.nshards = 1;
		read_with(st, &o, 0, &g);
		ok(clean(&g) && g.n == per_shard[1] && g.shard_n[1] == g.n,
		    "%s: TRIM_HORIZON of shard 1 alone", what);
		o.shards = two;
		o.nshards = 2;
		read_with(st, &o, 0, &g);
		ok(clean(&g) && g.n == per_shard[0] + per_shard[2] &&
		    g.shard_n[1] == 0, "%s: shards 2 and 0, merged", what);
		o.type = KDS_AT_TIMESTAMP;
		o.timestamp_ms = batch_time(50);
		o.shards = one;
		o.nshards = 1;
		read_with(st, &o, 0, &g);
		ok(clean(&g) && g.shard_n[1] == g.n && g.n > 0 &&
		    g.min_arrival == batch_time(50), "%s: AT_TIMESTAMP of "
		    "shard 1 alone", what);
		kds_seq_format(1, 10, seq);
		o.type = KDS_AT_SEQUENCE_NUMBER;
		o.sequence = seq;
		read_with(st, &o, 0, &g);
		ok(clean(&g) && g.first_counter == 10 && g.n == per_shard[1] - 9,
		    "%s: AT_SEQUENCE_NUMBER with its own shard asked for", what);
		kds_seq_format(2, 10, seq);
		read_with(st, &o, 0, &g);
		ok(g.failed && strcmp(g.err, "sequence number "
		    "300000000000000000010 is not of the shards asked for") == 0,
		    "%s: a sequence number of another shard: %s", what, g.err);
		o.shards = NULL;
		o.nshards = 0;
	}

	/* Retention: a record older than now minus retention is gone. */
	set_now(batch_time(50) + 7 * 86400 * INT64_C(1000));
	o.type = KDS_TRIM_HORIZON;
	read_with(st, &o, 0, &g);
	if (!ok(clean(&g) && g.n == NREC / 2 && g.min_arrival == batch_time(50),
	    "%s: 7 days after batch 50, TRIM_HORIZON starts at batch 50", what))
		explain(&g);
	o.type = KDS_AT_TIMESTAMP;
	o.timestamp_ms = batch_time(10);
	read_with(st, &o, 0, &g);
	ok(clean(&g) && g.n == NREC / 2, "%s: and so does AT_TIMESTAMP before "
	    "it", what);
	set_now(batch_time(NBATCH) + 5000);
	kds_stream_close(st);
}

/* A second producer continues every shard's counters; readers see both. */
static void
second_producer(const char *path, struct acks *k, const char *what)
{
	struct kds_err e = { 0, "" };
	struct kds_iter_opts o = { KDS_AFTER_SEQUENCE_NUMBER, NULL, 0, NULL, 0, 0 };
	struct kds_stream *st;
	struct kds_producer *p;
	uint64_t last[NSHARDS];
	char seq[KDS_SEQ_LEN];
	struct got g;
	int bad = 0;

	memcpy(last, k->last, sizeof(last));
	k->base = NREC;
	k->n = 0;
	set_now(batch_time(NBATCH + 5));
	if ((st = kds_stream_open(path, &e)) == NULL ||
	    (p = kds_producer_new(st, KDS_SYNC_ALWAYS, on_ack, k, &e)) == NULL)
		bail_out(e.msg);
	for (size_t i = NREC; i < NREC + MORE; i++) {
		char key[64], data[128];
		struct kds_put_record r = { key, key_of(i, key), data,
		    data_of(i, data), NULL, 0 };

		if (kds_producer_add(p, &r, &e) != 0)
			bad++;
	}
	if (kds_producer_close(p, &e) != 0)
		bad++;
	ok(bad == 0 && k->n == MORE && k->not_increasing == 0 &&
	    k->wrong_shard == 0, "%s: a second producer's %d records follow "
	    "on every shard's counters", what, MORE);
	index_acks(k);
	o.type = KDS_TRIM_HORIZON;
	read_with(st, &o, 0, &g);
	if (!ok(clean(&g) && g.n == NREC + MORE, "%s: TRIM_HORIZON reads %d",
	    what, NREC + MORE))
		explain(&g);
	{
		int wrong = 0;

		for (uint64_t s = 0; s < NSHARDS; s++) {
			kds_seq_format(s, last[s], seq);
			o.type = KDS_AFTER_SEQUENCE_NUMBER;
			o.sequence = seq;
			read_with(st, &o, 0, &g);
			if (!clean(&g) || g.n != per_shard[s] - last[s] ||
			    (g.n > 0 && g.first_counter != last[s] + 1))
				wrong++;
		}
		is_int(wrong, 0, "%s: AFTER_SEQUENCE_NUMBER of the first "
		    "producer's last record reads the second's", what);
	}
	o.type = KDS_AT_TIMESTAMP;
	o.sequence = NULL;
	o.timestamp_ms = batch_time(NBATCH);
	read_with(st, &o, 0, &g);
	ok(clean(&g) && g.n == MORE, "%s: AT_TIMESTAMP between the producers "
	    "reads the second's", what);
	o.type = KDS_LATEST;
	read_with(st, &o, 0, &g);
	ok(!g.failed && g.n == 0, "%s: LATEST still reads none", what);
	kds_stream_close(st);
}

static void
full_run(const char *name, uint64_t segment_bytes, int64_t segment_age,
    enum kds_sync sync)
{
	struct kds_create_opts co = { NSHARDS, 7 * 86400, segment_bytes,
	    segment_age, 0, 0 };
	struct kds_err e = { 0, "" };
	static struct acks k;
	char path[4096], what[64];
	uint64_t segs[4096];
	size_t nsegs = 0;

	snprintf(path, sizeof(path), "%s/%s", top, name);
	snprintf(what, sizeof(what), "%s (segments of %" PRIu64 " bytes)", name,
	    segment_bytes);
	set_now(T0_MS);
	if (!ok(kds_stream_create(path, &co, &e) == 0, "%s: create with 3 "
	    "shards", what))
		bail_out(e.msg);
	produce(path, sync, &k);
	for (uint64_t s = 0; s < NSHARDS; s++)
		nsegs += segments(path, s, segs, 4096);
	if (segment_bytes < 65536)
		ok(nsegs > 30 * NSHARDS, "%s: %zu segments", what, nsegs);
	else
		is_int((long long)nsegs, NSHARDS, "%s: one segment a shard",
		    what);
	iterators(path, what);
	second_producer(path, &k, what);
}

/* Records the producer refuses, and those it routes by other means. */
static struct bad_acks {
	size_t	n;
	char	seq[64][KDS_SEQ_LEN];
} backs;

static void
on_ack2(void *arg, const struct kds_ack *a)
{
	struct bad_acks *b = arg;

	if (b->n < 64)
		memcpy(b->seq[b->n], a->sequence, KDS_SEQ_LEN);
	b->n++;
}

static void
producer_limits(void)
{
	struct kds_create_opts co = { NSHARDS, 86400, 4096, 3600, 0, 0 };
	struct kds_err e = { 0, "" };
	struct kds_stream *st;
	struct kds_producer *p;
	char path[4096], key[2048];
	char *big = malloc(KDS_MAX_RECORD + 1);
	struct kds_put_record r;
	uint64_t s, c;
	int rc;

	if (big == NULL)
		bail_out("out of memory");
	memset(big, 'B', KDS_MAX_RECORD + 1);
	snprintf(path, sizeof(path), "%s/limits", top);
	set_now(T0_MS);
	if (kds_stream_create(path, &co, &e) == -1 ||
	    (st = kds_stream_open(path, &e)) == NULL ||
	    (p = kds_producer_new(st, KDS_SYNC_ALWAYS, on_ack2, &backs,
	    &e)) == NULL)
		bail_out(e.msg);

#define ADD(k, kl, d, dl, ehk, spr) \
	(r = (struct kds_put_record){ k, kl, d, dl, ehk, spr }, \
	e.msg[0] = '\0', kds_producer_add(p, &r, &e))

	rc = ADD("", 0, "x", 1, NULL, 0);
	ok(rc == KDS_BAD_RECORD && strcmp(e.msg, "empty partition key") == 0,
	    "an empty key is refused: %s", e.msg);
	memset(key, 'k', 257);
	rc = ADD(key, 257, "x", 1, NULL, 0);
	ok(rc == KDS_BAD_RECORD && strcmp(e.msg,
	    "partition key longer than 256 characters") == 0,
	    "a 257-character key is refused: %s", e.msg);
	rc = ADD(key, 256, "x", 1, NULL, 0);
	is_int(rc, 0, "a 256-character key is taken");
	for (int i = 0; i < 256; i++)
		memcpy(key + 4 * i, "\xf0\x9f\x98\x80", 4);
	rc = ADD(key, 1024, "x", 1, NULL, 0);
	is_int(rc, 0, "256 four-byte characters (1024 bytes) are taken");
	memcpy(key + 1024, "a", 1);
	rc = ADD(key, 1025, "x", 1, NULL, 0);
	ok(rc == KDS_BAD_RECORD, "257 characters, 1025 bytes, refused");
	rc = ADD("a\xff", 2, "x", 1, NULL, 0);
	ok(rc == KDS_BAD_RECORD && strcmp(e.msg,
	    "partition key is not valid UTF-8") == 0,
	    "a key that is not UTF-8 is refused: %s", e.msg);
	rc = ADD("k", 1, big, KDS_MAX_RECORD - 1, NULL, 0);
	is_int(rc, 0, "a record of exactly 1 MiB (key and data) is taken");
	rc = ADD("k", 1, big, KDS_MAX_RECORD, NULL, 0);
	ok(rc == KDS_BAD_RECORD && strcmp(e.msg, "record larger than 1048576 "
	    "bytes (partition key and data)") == 0,
	    "1 MiB + 1 is refused: %s", e.msg);
	rc = ADD("k", 1, "", 0, NULL, 0);
	is_int(rc, 0, "empty data is taken");
	rc = ADD("k", 1, "x", 1, "0", 0);
	is_int(rc, 0, "explicit hash key 0");
	rc = ADD("k", 1, "x", 1, "340282366920938463463374607431768211455", 0);
	is_int(rc, 0, "explicit hash key 2^128 - 1");
	rc = ADD("k", 1, "x", 1, "340282366920938463463374607431768211456", 0);
	ok(rc == KDS_BAD_RECORD, "explicit hash key 2^128 refused: %s", e.msg);
	rc = ADD("k", 1, "x", 1, "-1", 0);
	ok(rc == KDS_BAD_RECORD, "explicit hash key -1 refused");
	rc = ADD("k", 1, "x", 1, "113427455640312821154458202477256070485", 0);
	is_int(rc, 0, "explicit hash key at shard 1's start");
	for (int i = 0; i < 6; i++)
		rc |= ADD("ignored", 7, "spread", 6, NULL, 1);
	is_int(rc, 0, "six spread records");
	is_int((long long)backs.n, 3, "the 1 MiB record filled a batch, "
	    "written and acked at once with the two before it");
	if (!ok(kds_producer_close(p, &e) == 0, "close"))
		diag("%s", e.msg);
#undef ADD

	/* Acks of the taken records only, in input order. */
	is_int((long long)backs.n, 13, "13 acks for 13 taken records");
	{
		/* where each taken record must go, by its hash key */
		uint64_t want[13];
		int wrong = 0;

		memset(key, 'k', 256);
		want[0] = shard_of_hash(kds_hashkey_of(key, 256));
		for (int i = 0; i < 256; i++)
			memcpy(key + 4 * i, "\xf0\x9f\x98\x80", 4);
		want[1] = shard_of_hash(kds_hashkey_of(key, 1024));
		want[2] = want[3] = shard_of_hash(kds_hashkey_of("k", 1));
		want[4] = 0;
		want[5] = 2;
		want[6] = 1;
		for (int i = 0; i < 6; i++)
			want[7 + i] = (uint64_t)i % NSHARDS;	/* round robin */
		for (size_t i = 0; i < 13 && i < backs.n; i++) {
			if (kds_seq_parse(backs.seq[i], &s, &c) == -1 ||
			    s != want[i]) {
				if (wrong++ == 0)
					diag("ack %zu: %s, want shard %" PRIu64,
					    i, backs.seq[i], want[i]);
			}
		}
		is_int(wrong, 0, "explicit hash keys pick their shard; spread "
		    "records go round the shards");
	}

	/* The 1 MiB record, alone in its segment, reads back whole. */
	{
		struct kds_iter_opts o = { KDS_AT_SEQUENCE_NUMBER, backs.seq[2],
		    0, NULL, 0, 0 };
		struct kds_reader *rd = kds_reader_open(st, &o, &e);
		struct kds_record rec;

		ok(rd != NULL && kds_reader_next(rd, &rec, &e) == 1 &&
		    rec.keylen == 1 && rec.datalen == KDS_MAX_RECORD - 1 &&
		    memcmp(rec.data, big, rec.datalen) == 0,
		    "the 1 MiB record reads back whole");
		ok(rd != NULL && kds_reader_next(rd, &rec, &e) == 1 &&
		    rec.datalen == 0 && rec.keylen == 1,
		    "then the empty one");
		kds_reader_close(rd);
	}
	kds_stream_close(st);
	free(big);
}

static void
errors(void)
{
	struct kds_create_opts co = { NSHARDS, 86400, 4096, 3600, 0, 0 };
	struct kds_iter_opts o = { KDS_AT_SEQUENCE_NUMBER, "x", 0, NULL, 0, 0 };
	struct kds_err e = { 0, "" };
	struct kds_stream *st;
	char path[4096];
	uint64_t n;

	snprintf(path, sizeof(path), "%s/limits", top);
	ok(kds_stream_create(path, &co, &e) == -1 && e.errnum == EEXIST,
	    "create over an existing stream: %s", e.msg);
	snprintf(path, sizeof(path), "%s/zero", top);
	co.shards = 0;
	ok(kds_stream_create(path, &co, &e) == -1 &&
	    strcmp(e.msg, "bad shard count") == 0, "0 shards: %s", e.msg);
	co.shards = KDS_MAX_SHARDS + 1;
	ok(kds_stream_create(path, &co, &e) == -1 &&
	    strcmp(e.msg, "bad shard count") == 0, "%d shards refused",
	    KDS_MAX_SHARDS + 1);
	ok(access(path, F_OK) == -1, "nothing left behind");
	snprintf(path, sizeof(path), "%s/no/such/dir/s", top);
	co.shards = 1;
	ok(kds_stream_create(path, &co, &e) == -1 && e.errnum == ENOENT,
	    "create under a missing directory: %s", e.msg);
	ok(kds_stream_open(path, &e) == NULL && e.errnum == ENOENT,
	    "open a missing stream: %s", e.msg);
	ok(kds_stream_open(top, &e) == NULL && strcmp(e.msg,
	    "not a stream (no meta file)") == 0, "open a directory that is "
	    "not a stream: %s", e.msg);

	snprintf(path, sizeof(path), "%s/limits", top);
	if ((st = kds_stream_open(path, &e)) == NULL)
		bail_out(e.msg);
	ok(kds_stream_shard_lookup(st, "shardId-000000000002", &n, &e) == 0 &&
	    n == 2, "shard lookup by id");
	ok(kds_stream_shard_lookup(st, "0", &n, &e) == 0 && n == 0,
	    "shard lookup by number");
	ok(kds_stream_shard_lookup(st, "3", &n, &e) == -1 && strcmp(e.msg,
	    "shardId-000000000003: no such shard") == 0, "%s", e.msg);
	ok(kds_stream_shard_lookup(st, "x", &n, &e) == -1 && strcmp(e.msg,
	    "bad shard id 'x'") == 0, "%s", e.msg);

	ok(kds_reader_open(st, &o, &e) == NULL && strcmp(e.msg,
	    "bad sequence number 'x'") == 0, "%s", e.msg);
	o.sequence = NULL;
	ok(kds_reader_open(st, &o, &e) == NULL && strcmp(e.msg,
	    "bad sequence number ''") == 0, "no sequence number: %s", e.msg);
	o.type = KDS_AFTER_SEQUENCE_NUMBER;
	o.sequence = "600000000000000000001";
	ok(kds_reader_open(st, &o, &e) == NULL && strcmp(e.msg,
	    "sequence number 600000000000000000001: no shard "
	    "shardId-000000000005") == 0, "%s", e.msg);
	kds_stream_close(st);
	kds_stream_close(NULL);
}

static int
rm(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(path);
}

int
main(void)
{
	if (mkdtemp(top) == NULL)
		bail_out("mkdtemp");
	full_run("big", 64 << 20, 3600, KDS_SYNC_EXIT);
	full_run("small", 4096, 30, KDS_SYNC_NEVER);
	producer_limits();
	errors();
	for (size_t s = 0; s < NSHARDS; s++)
		free(by_seq[s]);
	if (getenv("T_STREAM_KEEP") == NULL)
		nftw(top, rm, 16, FTW_DEPTH | FTW_PHYS);
	else
		diag("kept %s", top);
	return done_testing();
}
