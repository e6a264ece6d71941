/* t_meta.c: STREAM/meta, written and read back (meta.c, kds-stream(5)). */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define U128_MAX (~(unsigned __int128)0)

static char dir[] = "/tmp/t_meta.XXXXXX";
static int dfd = -1;

static char *
slurp(size_t *len)
{
	char *buf = malloc(65536);
	ssize_t n;
	int fd = openat(dfd, "meta", O_RDONLY);

	if (buf == NULL || fd == -1)
		bail_out("open meta");
	n = read(fd, buf, 65535);
	close(fd);
	if (n < 0)
		bail_out("read meta");
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* Write meta as given, straight, not through kds_meta_write. */
static void
put(const char *text, size_t len)
{
	int fd = openat(dfd, "meta", O_WRONLY | O_CREAT | O_TRUNC, 0666);

	if (fd == -1 || write(fd, text, len) != (ssize_t)len)
		bail_out("write meta");
	close(fd);
}

/* body, then its checksum line, as kds-stream(5) says. */
static void
put_sealed(const char *body)
{
	char buf[8192];
	int n = snprintf(buf, sizeof(buf), "%schecksum %016" PRIx64 "\n", body,
	    kds_checksum(body, strlen(body), 0));

	put(buf, (size_t)n);
}

static int
same_shard(const struct kds_shard *a, const struct kds_shard *b)
{
	return a->number == b->number && a->open == b->open &&
	    a->parent == b->parent && a->adjacent == b->adjacent &&
	    a->start_hash == b->start_hash && a->end_hash == b->end_hash &&
	    a->end_counter == b->end_counter;
}

static void
round_trip(void)
{
	struct kds_shard sh[4];
	struct kds_meta m = { 0 }, r;
	struct kds_err e = { 0, "" };
	char *text;
	size_t len;
	struct stat sb;

	memset(sh, 0, sizeof(sh));
	/* Shard 0 was split into 1 and 2; 1 and 2 merged into 3... in part. */
	sh[0] = (struct kds_shard){ 0, 0, -1, -1, 0, U128_MAX, 1234 };
	sh[1] = (struct kds_shard){ 1, 0, 0, -1, 0, (U128_MAX >> 1), 0 };
	sh[2] = (struct kds_shard){ 2, 1, 0, -1, (U128_MAX >> 1) + 1, U128_MAX, 0 };
	sh[3] = (struct kds_shard){ 12, 1, 1, 2, 0, (U128_MAX >> 1), 0 };
	m.created_ms = 1795824000123;
	m.retention_s = 86400;
	m.segment_bytes = 67108864;
	m.segment_age_s = 3600;
	m.next_shard = 13;
	m.nshards = 4;
	m.shards = sh;

	ok(kds_meta_write(dfd, &m, &e) == 0, "kds_meta_write");
	ok(fstatat(dfd, "meta.tmp", &sb, 0) == -1 && errno == ENOENT,
	    "no meta.tmp left behind");
	memset(&r, 0xa5, sizeof(r));
	if (!ok(kds_meta_read(dfd, &r, &e) == 0, "kds_meta_read"))
		diag("%s", e.msg);
	is_int(r.created_ms, m.created_ms, "created");
	is_int(r.retention_s, m.retention_s, "retention");
	is_int((long long)r.segment_bytes, (long long)m.segment_bytes,
	    "segment-bytes");
	is_int(r.segment_age_s, m.segment_age_s, "segment-age");
	is_int((long long)r.next_shard, 13, "next-shard");
	is_int((long long)r.nshards, 4, "four shards");
	for (size_t i = 0; i < 4 && i < r.nshards; i++)
		ok(same_shard(&r.shards[i], &sh[i]), "shard %zu the same", i);
	kds_meta_free(&r);
	ok(r.shards == NULL && r.nshards == 0, "kds_meta_free clears");

	/* The text itself, as the man page's example shows it. */
	text = slurp(&len);
	ok(strncmp(text, "kds-stream 1\ncreated 1795824000123\nretention 86400\n"
	    "segment-bytes 67108864\nsegment-age 3600\nnext-shard 13\n", 97) == 0,
	    "meta begins with the settings, in order");
	ok(strstr(text, "\nshard shardId-000000000000 closed - - 0 "
	    "340282366920938463463374607431768211455 100000000000000000001 "
	    "100000000000000001234\n") != NULL, "a closed shard's line");
	ok(strstr(text, "\nshard shardId-000000000012 open shardId-000000000001 "
	    "shardId-000000000002 0 170141183460469231731687303715884105727 "
	    "1300000000000000000001 -\n") != NULL, "an open child's line");
	{
		char *sum = strstr(text, "\nchecksum "), want[32];

		if (sum != NULL)
			snprintf(want, sizeof(want), "%016" PRIx64,
			    kds_checksum(text, (size_t)(sum + 1 - text), 0));
		ok(sum != NULL && strncmp(sum + 10, want, 16) == 0 &&
		    sum + 27 == text + len && text[len - 1] == '\n',
		    "the last line is the checksum of every byte before it");
	}

	/* Every single byte changed is caught. */
	{
		int missed = 0, wrong_msg = 0;

		for (size_t i = 0; i < len; i++) {
			char save = text[i];

			text[i] ^= 0x01;
			put(text, len);
			text[i] = save;
			if (kds_meta_read(dfd, &r, &e) == 0) {
				missed++;
				kds_meta_free(&r);
			} else if (strcmp(e.msg, "meta: bad checksum") != 0)
				wrong_msg++;
		}
		is_int(missed, 0, "each of %zu flipped bytes is refused", len);
		is_int(wrong_msg, 0, "each with \"meta: bad checksum\"");
	}
	text[40] ^= 0x20;
	put(text, len);
	ok(kds_meta_read(dfd, &r, &e) == -1, "one flipped byte is refused");
	is_str(e.msg, "meta: bad checksum", "meta: bad checksum");
	text[40] ^= 0x20;
	put(text, len - 1);
	ok(kds_meta_read(dfd, &r, &e) == -1 &&
	    strcmp(e.msg, "meta: bad checksum") == 0,
	    "no final newline: bad checksum");
	put(text, len - 10);
	ok(kds_meta_read(dfd, &r, &e) == -1 &&
	    strcmp(e.msg, "meta: bad checksum") == 0,
	    "cut short: bad checksum");
	put("", 0);
	ok(kds_meta_read(dfd, &r, &e) == -1 &&
	    strcmp(e.msg, "meta: bad checksum") == 0, "empty: bad checksum");
	put(text, len);
	ok(kds_meta_read(dfd, &r, &e) == 0, "put back whole, it reads");
	kds_meta_free(&r);
	free(text);
}

#define HEAD(v) "kds-stream " v "\ncreated 1795824000000\nretention 86400\n" \
	"segment-bytes 67108864\nsegment-age 3600\nnext-shard 2\n"
#define SHARD0 "shard shardId-000000000000 open - - 0 " \
	"170141183460469231731687303715884105727 100000000000000000001 -\n"
#define SHARD1 "shard shardId-000000000001 open - - " \
	"170141183460469231731687303715884105728 " \
	"340282366920938463463374607431768211455 200000000000000000001 -\n"

static void
sealed_files(void)
{
	struct kds_meta r;
	struct kds_err e = { 0, "" };
	static const struct { const char *body, *msg, *name; } bad[] = {
		{ HEAD("2") SHARD0 SHARD1, "meta: line 1: unknown format version",
		    "version 2" },
		{ HEAD("0") SHARD0 SHARD1, "meta: line 1: unknown format version",
		    "version 0" },
		{ HEAD("10") SHARD0 SHARD1, "meta: line 1: unknown format version",
		    "version 10" },
		{ "kds-stream\n", "meta: line 1: malformed", "no version" },
		{ "kds-log 1\n", "meta: line 1: malformed", "another magic" },
		{ HEAD("1") SHARD0 SHARD1 "color blue\n",
		    "meta: line 9: unknown key 'color'",
		    "an unknown key" },
		{ HEAD("1") "retention 0\n" SHARD0 SHARD1,
		    "meta: line 7: malformed", "retention 0" },
		/* tests/fuzz/fuzz_meta: readers multiplied these by
		 * 1000 past INT64_MAX. */
		{ HEAD("1") "retention 9223372036854776\n" SHARD0 SHARD1,
		    "meta: line 7: malformed", "retention past INT64_MAX ms" },
		{ HEAD("1") "segment-age 9223372036854775807\n" SHARD0 SHARD1,
		    "meta: line 7: malformed", "segment-age past INT64_MAX ms" },
		{ HEAD("1") SHARD1 SHARD0, "meta: line 8: malformed",
		    "shards out of order" },
		{ HEAD("1") SHARD0 SHARD0, "meta: line 8: malformed",
		    "a shard twice" },
		{ HEAD("1"), "meta: incomplete", "no shard" },
		{ "kds-stream 1\ncreated 1\nretention 86400\n"
		    "segment-bytes 67108864\nsegment-age 3600\nnext-shard 1\n"
		    SHARD0 SHARD1, "meta: incomplete", "next-shard not past "
		    "the last shard" },
		{ "kds-stream 1\ncreated 1\nsegment-bytes 67108864\n"
		    "segment-age 3600\nnext-shard 2\n" SHARD0,
		    "meta: incomplete", "no retention" },
		{ HEAD("1") "shard shardId-000000000000 open - - 5 4 "
		    "100000000000000000001 -\n", "meta: line 7: malformed",
		    "start hash after end hash" },
		{ HEAD("1") "shard shardId-000000000000 open - - 0 "
		    "340282366920938463463374607431768211456 "
		    "100000000000000000001 -\n", "meta: line 7: malformed",
		    "end hash 2^128" },
		{ HEAD("1") "shard shardId-000000000000 open - - 0 1 "
		    "200000000000000000001 -\n", "meta: line 7: malformed",
		    "start-seq of another shard" },
		{ HEAD("1") "shard shardId-000000000000 open - - 0 1 "
		    "100000000000000000002 -\n", "meta: line 7: malformed",
		    "start-seq not counter 1" },
		{ HEAD("1") "shard shardId-000000000000 closed - - 0 1 "
		    "100000000000000000001 -\n", "meta: line 7: malformed",
		    "closed without end-seq" },
		{ HEAD("1") "shard shardId-000000000000 open - - 0 1 "
		    "100000000000000000001 100000000000000000009\n",
		    "meta: line 7: malformed", "open with end-seq" },
		{ HEAD("1") "shard shardId-000000000000 ajar - - 0 1 "
		    "100000000000000000001 -\n", "meta: line 7: malformed",
		    "state ajar" },
		{ HEAD("1") "shard 0 open - - 0 1 100000000000000000001 -\n",
		    "meta: line 7: malformed", "a bare shard number" },
		{ HEAD("1") "shard shardId-000000000000 open 7 - 0 1 "
		    "100000000000000000001 -\n", "meta: line 7: malformed",
		    "a bare parent number" },
		{ HEAD("1") "shard shardId-000000000000 open - - 0 1 "
		    "100000000000000000001 - extra\n", "meta: line 7: malformed",
		    "nine fields" },
		{ HEAD("1") "shard shardId-000000000000 open - - 0 1 "
		    "100000000000000000001\n", "meta: line 7: malformed",
		    "seven fields" },
	};

	put_sealed(HEAD("1") SHARD0 SHARD1);
	if (!ok(kds_meta_read(dfd, &r, &e) == 0 && r.nshards == 2 &&
	    r.shards[1].start_hash == (U128_MAX >> 1) + 1,
	    "the man page's two-shard example reads"))
		diag("%s", e.msg);
	kds_meta_free(&r);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc;

		put_sealed(bad[i].body);
		e.msg[0] = '\0';
		rc = kds_meta_read(dfd, &r, &e);
		if (!ok(rc == -1 && strcmp(e.msg, bad[i].msg) == 0,
		    "%s: %s", bad[i].name, bad[i].msg))
			diag("rc %d, message '%s'", rc, e.msg);
		if (rc == 0)
			kds_meta_free(&r);
	}

	put_sealed(HEAD("1") "retention 9223372036854775\n"
	    "segment-age 9223372036854775\n" SHARD0 SHARD1);
	if (!ok(kds_meta_read(dfd, &r, &e) == 0 &&
	    r.retention_s == INT64_MAX / 1000 &&
	    r.segment_age_s == INT64_MAX / 1000,
	    "retention and segment-age of INT64_MAX / 1000 s read"))
		diag("%s", e.msg);
	else
		kds_meta_free(&r);

	/* kds-stream(5): "A missing ... key ... is an error." */
	put_sealed("kds-stream 1\nretention 86400\nsegment-bytes 67108864\n"
	    "segment-age 3600\nnext-shard 2\n" SHARD0 SHARD1);
	if (!ok(kds_meta_read(dfd, &r, &e) == -1, "no created line is refused"))
		kds_meta_free(&r);

	/* The example's checksum line in kds-stream(5) is the real one. */
	{
		static const char ex[] = "kds-stream 1\ncreated 1764324000000\n"
		    "retention 86400\nsegment-bytes 67108864\n"
		    "segment-age 3600\nnext-shard 2\n" SHARD0 SHARD1
		    "checksum ffa865c2dad98986\n";

		put(ex, sizeof(ex) - 1);
	}
	if (!ok(kds_meta_read(dfd, &r, &e) == 0,
	    "kds-stream(5)'s example, with its checksum, reads"))
		diag("%s", e.msg);
	else
		kds_meta_free(&r);

	unlinkat(dfd, "meta", 0);
	ok(kds_meta_read(dfd, &r, &e) == -1 && e.errnum == ENOENT &&
	    strncmp(e.msg, "meta: ", 6) == 0, "no meta: '%s'", e.msg);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL || (dfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1)
		bail_out("mkdtemp");
	round_trip();
	sealed_files();
	unlinkat(dfd, "meta", 0);
	unlinkat(dfd, "meta.tmp", 0);
	close(dfd);
	if (rmdir(dir) == -1)
		diag("rmdir %s: %s", dir, strerror(errno));
	return done_testing();
}
