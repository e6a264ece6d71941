/*
 * t_shard_writer.c: the writer's crash recovery (shard_writer.c,
 * kds-stream(5), CRASH RECOVERY) against an index that lies.  The index is
 * a cache: whatever it says, recovery cuts nothing but a torn tail.
 */
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

#define T0_MS	INT64_C(1795824000000)	/* 2026-11-28T00:00:00Z */

static char top[] = "/tmp/t_shard_writer.XXXXXX";

static int
rm(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

static long
count(struct kds_stream *st)
{
	const struct kds_iter_opts th = { .type = KDS_TRIM_HORIZON };
	struct kds_reader *rd;
	struct kds_record r;
	struct kds_err e;
	long n = 0;
	int rc;

	if ((rd = kds_reader_open(st, &th, &e)) == NULL)
		return -1;
	while ((rc = kds_reader_next(rd, &r, &e)) == 1)
		n++;
	kds_reader_close(rd);
	return rc == -1 ? -1 : n;
}

static void
put(struct kds_stream *st, const char *data, size_t len)
{
	struct kds_put_record r = { "k", 1, data, len, NULL, 0 };
	struct kds_producer *p;
	struct kds_err e;

	if ((p = kds_producer_new(st, KDS_SYNC_NEVER, NULL, NULL, &e)) == NULL ||
	    kds_producer_add(p, &r, &e) != 0 || kds_producer_close(p, &e) != 0)
		bail_out(e.msg);
}

static void
write_file(int dirfd, const char *name, const void *p, size_t n, int append)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT |
	    (append ? O_APPEND : O_TRUNC), 0666);

	if (fd == -1 || write(fd, p, n) != (ssize_t)n)
		bail_out(name);
	close(fd);
}

/*
 * Found by tests/fuzz/fuzz_segment: an index entry pointing into the data
 * of the last record, where the bytes read as a frame longer than the rest
 * of the file whose counter field holds the entry's counter.  Recovery
 * walked from it, found an incomplete frame with nothing after it, and cut
 * the record there as a torn tail.
 */
static void
index_into_data(void)
{
	static const unsigned char zeros[TAIL_LEN];
	struct kds_create_opts o = { 1, 86400, 1 << 20, 3600, 0, 0 };
	struct kds_index_entry ie = { 3, T0_MS, 0 };
	unsigned char data[64] = { 0 }, ent[INDEX_ENTRY_LEN];
	char path[64], idx[64], seg[64];
	struct kds_stream *st;
	struct kds_err e;
	struct stat sb;
	uint64_t last = 0;
	int dfd;

	snprintf(path, sizeof(path), "%s/s", top);
	if (kds_stream_create(path, &o, &e) == -1 ||
	    (st = kds_stream_open(path, &e)) == NULL ||
	    (dfd = kds_shard_dir_open(st, 0, &e)) == -1)
		bail_out(e.msg);
	kds_seg_name(0, 1, ".seg", seg, sizeof(seg));
	kds_seg_name(0, 1, ".idx", idx, sizeof(idx));

	/* Frames 1 and 2 take 34 bytes each from offset 48; frame 3 starts
	 * at 116, its data at 149: a would-be frame at 152 says length 4096
	 * and counter 3. */
	put(st, "a", 1);
	put(st, "b", 1);
	put_le32(data + 3 + 8, 4096);
	put_le64(data + 3 + 16, 3);
	put(st, (const char *)data, sizeof(data));
	if (fstatat(dfd, seg, &sb, 0) == -1 ||
	    sb.st_size != 48 + 34 + 34 + 32 + 1 + 64)
		bail_out("not the frame layout this test expects");
	ie.offset = 152;
	kds_index_entry_encode(ent, &ie);
	write_file(dfd, idx, ent, sizeof(ent), 1);
	write_file(dfd, "tail", zeros, sizeof(zeros), 0);	/* distrusted */

	is_int(count(st), 3, "three records before recovery");
	if (kds_shard_recover(st, 0, &last, &e) == -1)
		diag("%s", e.msg);
	is_int((long long)last, 3, "recovery ends at record 3");
	if (fstatat(dfd, seg, &sb, 0) == -1)
		bail_out(seg);
	is_int(sb.st_size, 48 + 34 + 34 + 97, "the segment is whole");
	is_int(count(st), 3, "three records after recovery");
	close(dfd);
	kds_stream_close(st);
}

int
main(void)
{
	setenv("KDS_NOW", "1795824000", 1);	/* T0_MS */
	if (mkdtemp(top) == NULL)
		bail_out("mkdtemp");
	index_into_data();
	nftw(top, rm, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
