/*
 * t_zseg.c: compressed segments through the library (zseg.c, and what
 * verify.c and reader.c make of them): convert every sealed segment of a
 * stream, read it back, verify it, then damage a block and an index and
 * see verify and the reader say where.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define NREC	3000

static char top[] = "/tmp/t_zseg.XXXXXX";
static char problems[8][1024];
static size_t nproblems;

static void
fail(const char *why)
{
	printf("Bail out! %s\n", why);
	exit(255);
}

static void
on_problem(void *arg, const char *line)
{
	(void)arg;
	if (nproblems < 8)
		snprintf(problems[nproblems], sizeof(problems[0]), "%s", line);
	nproblems++;
}

static size_t
data_of(size_t i, char *buf)
{
	return (size_t)sprintf(buf, "{\"n\":%zu,\"page\":\"/item/%zu\","
	    "\"ua\":\"Mozilla/5.0 (X11; Linux x86_64)\"}", i, i % 97);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
flip(const char *path, off_t off)
{
	unsigned char c;
	int fd = open(path, O_RDWR);

	if (fd == -1 || pread(fd, &c, 1, off) != 1)
		bail_out("flip");
	c ^= 0xff;
	if (pwrite(fd, &c, 1, off) != 1)
		bail_out("flip");
	close(fd);
}

/* Every record, in order: 0 when each is record i with its data. */
static int
read_all(struct kds_stream *st, size_t *n, struct kds_err *e)
{
	struct kds_iter_opts o = { .type = KDS_TRIM_HORIZON };
	struct kds_reader *rd = kds_reader_open(st, &o, e);
	struct kds_record r;
	char want[256];
	int rc;

	*n = 0;
	if (rd == NULL)
		return -1;
	while ((rc = kds_reader_next(rd, &r, e)) == 1) {
		size_t len = data_of(*n, want);

		if (r.counter != *n + 1 || r.datalen != len ||
		    memcmp(r.data, want, len) != 0) {
			rc = -2;
			break;
		}
		(*n)++;
	}
	kds_reader_close(rd);
	return rc;
}

int
main(void)
{
	struct kds_create_opts co = { 1, 86400, 16384, 3600, 1, 0 };
	struct kds_err e = { 0, "" };
	struct kds_verify_stats vs;
	struct kds_stream *st;
	struct kds_producer *p;
	struct kds_zseg_header zh;
	uint64_t *segs, total = 0, raw = 0;
	size_t nsegs, n;
	char path[256], seg[64], buf[256];
	unsigned char ent[ZIDX_ENTRY_LEN];
	int dfd, fd, rc;

	if (mkdtemp(top) == NULL)
		bail_out("mkdtemp");
	setenv("KDS_NOW", "1795824000", 1);
	snprintf(path, sizeof(path), "%s/s", top);
	if (kds_stream_create(path, &co, &e) == -1 ||
	    (st = kds_stream_open(path, &e)) == NULL)
		fail(e.msg);
	ok(st->meta.compress && st->meta.compress_after_s == 0,
	    "compress-after 0 in meta");
	if ((p = kds_producer_new(st, KDS_SYNC_NEVER, NULL, NULL, &e)) == NULL)
		fail(e.msg);
	for (size_t i = 0; i < NREC; i++) {
		struct kds_put_record r = { "k", 1, buf, data_of(i, buf), NULL, 0 };

		if (kds_producer_add(p, &r, &e) == -1)
			fail(e.msg);
	}
	if (kds_producer_close(p, &e) == -1)
		fail(e.msg);
	if ((dfd = kds_shard_dir_open(st, 0, &e)) == -1 ||
	    kds_seg_list(dfd, 0, &segs, &nsegs, &e) == -1)
		fail(e.msg);
	ok(nsegs >= 4, "%zu segments", nsegs);

	/* Every sealed one, as kds-expire does, then SEQ.seg goes. */
	for (size_t i = 0; i + 1 < nsegs; i++) {
		struct kds_zseg_stats zs;
		struct stat sb;

		kds_seg_name(0, segs[i], ".seg", seg, sizeof(seg));
		if (fstatat(dfd, seg, &sb, 0) == -1)
			fail(seg);
		if (!ok(kds_zseg_compress(dfd, 0, segs[i], &zs, &e) == 0,
		    "compress %s", seg))
			diag("%s", e.msg);
		ok(zs.raw_size == (uint64_t)sb.st_size && zs.size < zs.raw_size &&
		    zs.records == segs[i + 1] - segs[i], "%s: sizes and records",
		    seg);
		total += zs.records;
		raw += zs.raw_size;
		unlinkat(dfd, seg, 0);
		ok(kds_zseg_header_read(dfd, 0, segs[i], &zh, &e) == 0 &&
		    zh.last_counter == segs[i + 1] - 1 && zh.size == zs.raw_size,
		    "%s: its header", seg);
	}
	ok(total == segs[nsegs - 1] - 1, "every sealed record");
	kds_seg_name(0, segs[nsegs - 1], ".seg", seg, sizeof(seg));
	ok(kds_zseg_header_read(dfd, 0, segs[nsegs - 1], &zh, &e) == 1,
	    "no SEQ.zseg for the active segment");
	free(segs);
	if (kds_seg_list(dfd, 0, &segs, &n, &e) == -1)
		fail(e.msg);
	ok(n == nsegs, "listed once each, compressed or not");
	free(segs);

	rc = read_all(st, &n, &e);
	ok(rc == 0 && n == NREC, "read back: %zu records", n);
	memset(&vs, 0, sizeof(vs));
	nproblems = 0;
	ok(kds_stream_verify(st, 0, on_problem, NULL, &vs, &e) == 0 &&
	    nproblems == 0 && vs.problems == 0, "verify: no problem");
	ok(vs.records == NREC && vs.segments == nsegs && vs.stale_index == 0,
	    "verify: %llu records, %llu segments", (unsigned long long)vs.records,
	    (unsigned long long)vs.segments);

	/* A stale index: verify counts it, repair writes it anew. */
	snprintf(path, sizeof(path), "%s/s/shardId-000000000000/"
	    "100000000000000000001.zidx", top);
	if ((fd = open(path, O_RDWR)) == -1 ||
	    pread(fd, ent, sizeof(ent), 0) != sizeof(ent))
		fail(path);
	put_le32(ent + 24, get_le32(ent + 24) + 1);	/* a frame further */
	put_le64(ent + 32, kds_checksum(ent, 32, 0));
	if (pwrite(fd, ent, sizeof(ent), 0) != sizeof(ent))
		fail(path);
	close(fd);
	nproblems = 0;
	ok(kds_stream_verify(st, 0, on_problem, NULL, &vs, &e) == 0 &&
	    vs.stale_index == 1 && vs.problems == 1, "a damaged .zidx is stale");
	is_str(problems[0], "shardId-000000000000/100000000000000000001.zidx: "
	    "1 of 1 entries do not name their frame", "and named");
	ok(kds_stream_verify(st, 1, on_problem, NULL, &vs, &e) == 0 &&
	    vs.repaired == 1, "repaired");
	ok(kds_stream_verify(st, 0, on_problem, NULL, &vs, &e) == 0 &&
	    vs.stale_index == 0, "and fresh again");

	/* A damaged block: named with file and offset, the rest checked. */
	snprintf(path, sizeof(path), "%s/s/shardId-000000000000/"
	    "100000000000000000001.zseg", top);
	flip(path, 96 + 48 + 10);
	nproblems = 0;
	ok(kds_stream_verify(st, 0, on_problem, NULL, &vs, &e) == 0 &&
	    vs.problems == 1 && nproblems == 1, "verify: one problem");
	for (size_t i = 1; i < nproblems && i < 8; i++)
		diag("%s", problems[i]);
	is_str(problems[0], "shardId-000000000000/100000000000000000001.zseg: "
	    "offset 96: bad block checksum (sequence numbers "
	    "100000000000000000001 to 100000000000000000166 unreadable)",
	    "verify names block, file and the records lost");
	ok(vs.records < NREC && vs.records > NREC / 2,
	    "verify goes on after it: %llu records",
	    (unsigned long long)vs.records);
	ok(read_all(st, &n, &e) == -1 && n == 0, "the reader stops before it");
	is_str(e.msg, "shardId-000000000000/100000000000000000001.zseg: "
	    "offset 96: bad block checksum", "and says where");

	close(dfd);
	kds_stream_close(st);
	nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
