/* t_reader.c: a reader meeting damage it must report, not spin on
 * (reader.c, kds-stream(5), CRASH RECOVERY, COMPRESSED SEGMENTS). */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define NREC	40
#define DATALEN	(40 * 1024)	/* NREC of them pass the 1 MiB read-ahead */

static char top[] = "/tmp/t_reader.XXXXXX";

static int
rm(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

/*
 * Found by tests/fuzz/fuzz_segment: a frame that fails its checksum in the
 * last segment, with more of the file than the read-ahead holds after it.
 * The reader took "the file is longer than what I read" for "it grew",
 * read the same frame again, and again: kds-get and kds-describe spun
 * forever instead of reporting the damage.
 */
static void
bad_frame_early_in_a_long_segment(void)
{
	const struct kds_iter_opts th = { .type = KDS_TRIM_HORIZON };
	struct kds_create_opts o = { .shards = 1, .retention_s = 86400,
	    .segment_bytes = 64 << 20, .segment_age_s = 3600 };
	struct kds_put_record pr = { "k", 1, NULL, DATALEN, NULL, 0 };
	struct kds_producer *p;
	struct kds_reader *rd;
	struct kds_stream *st;
	struct kds_record r;
	struct kds_err e;
	char path[64], seg[64];
	unsigned char b;
	int dfd, fd, rc, n = 0;
	char *data;

	snprintf(path, sizeof(path), "%s/s", top);
	if ((data = malloc(DATALEN)) == NULL)
		bail_out("malloc");
	memset(data, 'x', DATALEN);
	pr.data = data;
	if (kds_stream_create(path, &o, &e) == -1 ||
	    (st = kds_stream_open(path, &e)) == NULL ||
	    (p = kds_producer_new(st, KDS_SYNC_NEVER, NULL, NULL, &e)) == NULL)
		bail_out(e.msg);
	for (int i = 0; i < NREC; i++)
		if (kds_producer_add(p, &pr, &e) != 0)
			bail_out(e.msg);
	if (kds_producer_close(p, &e) != 0)
		bail_out(e.msg);

	/* One bit of the first record's data. */
	kds_seg_name(0, 1, ".seg", seg, sizeof(seg));
	if ((dfd = kds_shard_dir_open(st, 0, &e)) == -1 ||
	    (fd = openat(dfd, seg, O_RDWR)) == -1 ||
	    pread(fd, &b, 1, 100) != 1)
		bail_out(seg);
	b ^= 1;
	if (pwrite(fd, &b, 1, 100) != 1)
		bail_out(seg);
	close(fd);
	close(dfd);

	alarm(30);		/* the bug spins: a hang is a failure */
	if ((rd = kds_reader_open(st, &th, &e)) == NULL) {
		rc = -1;
	} else {
		while ((rc = kds_reader_next(rd, &r, &e)) == 1)
			n++;
		kds_reader_close(rd);
	}
	alarm(0);
	is_int(n, 0, "no record before the damaged one");
	ok(rc == -1 && strstr(e.msg, "offset 48: bad checksum") != NULL,
	    "the damage is reported: %s", rc == -1 ? e.msg : "");
	kds_stream_close(st);
	free(data);
}

/*
 * Found by tests/fuzz/fuzz_segment: a compressed segment whose first block
 * says it starts later in the segment than the frame sought.  The reader
 * loaded it, found the frame outside it, dropped it and loaded it again,
 * forever.  Its header checks out (resealed here), as a hostile file's
 * would.
 */
static void
block_out_of_place(void)
{
	const struct kds_iter_opts th = { .type = KDS_TRIM_HORIZON };
	struct kds_create_opts o = { .shards = 1, .retention_s = 86400,
	    .segment_bytes = 4096, .segment_age_s = 3600 };
	struct kds_put_record pr = { "k", 1, "some data", 9, NULL, 0 };
	unsigned char p[ZBLOCK_HEADER_LEN];
	struct kds_zseg_header zh;
	struct kds_zseg_stats zs;
	struct kds_producer *pd;
	struct kds_reader *rd;
	struct kds_stream *st;
	struct kds_record r;
	struct kds_err e;
	char path[64], name[64];
	int dfd, fd, rc;

	snprintf(path, sizeof(path), "%s/z", top);
	if (kds_stream_create(path, &o, &e) == -1 ||
	    (st = kds_stream_open(path, &e)) == NULL ||
	    (pd = kds_producer_new(st, KDS_SYNC_NEVER, NULL, NULL, &e)) == NULL)
		bail_out(e.msg);
	for (int i = 0; i < 200; i++)		/* a few 4 KiB segments */
		if (kds_producer_add(pd, &pr, &e) != 0)
			bail_out(e.msg);
	if (kds_producer_close(pd, &e) != 0 ||
	    (dfd = kds_shard_dir_open(st, 0, &e)) == -1 ||
	    kds_zseg_compress(dfd, 0, 1, &zs, &e) == -1 ||
	    kds_zseg_header_read(dfd, 0, 1, &zh, &e) != 0)
		bail_out(e.msg);
	kds_seg_name(0, 1, ".seg", name, sizeof(name));
	unlinkat(dfd, name, 0);
	kds_seg_name(0, 1, ".idx", name, sizeof(name));
	unlinkat(dfd, name, 0);

	/* The first block, resealed 10 bytes further on. */
	kds_seg_name(0, 1, ".zseg", name, sizeof(name));
	if ((fd = openat(dfd, name, O_RDWR)) == -1 ||
	    pread(fd, p, sizeof(p), ZSEG_HEADER_LEN) != (ssize_t)sizeof(p))
		bail_out(name);
	put_le64(p, get_le64(p) + 10);
	put_le64(p + 40, kds_checksum(p, 40, zh.seg.salt));
	if (pwrite(fd, p, sizeof(p), ZSEG_HEADER_LEN) != (ssize_t)sizeof(p))
		bail_out(name);
	close(fd);
	close(dfd);

	alarm(30);		/* the bug spins: a hang is a failure */
	if ((rd = kds_reader_open(st, &th, &e)) == NULL) {
		rc = -1;
	} else {
		while ((rc = kds_reader_next(rd, &r, &e)) == 1)
			;
		kds_reader_close(rd);
	}
	alarm(0);
	ok(rc == -1 && strstr(e.msg, "offset 96: block out of place") != NULL,
	    "the block is reported: %s", rc == -1 ? e.msg : "");
	kds_stream_close(st);
}

int
main(void)
{
	setenv("KDS_NOW", "1795824000", 1);
	if (mkdtemp(top) == NULL)
		bail_out("mkdtemp");
	bad_frame_early_in_a_long_segment();
	block_out_of_place();
	nftw(top, rm, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
