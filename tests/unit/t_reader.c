/* t_reader.c: a reader meeting damage in a shard's last segment
 * (reader.c, kds-stream(5), CRASH RECOVERY). */
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

int
main(void)
{
	setenv("KDS_NOW", "1795824000", 1);
	if (mkdtemp(top) == NULL)
		bail_out("mkdtemp");
	bad_frame_early_in_a_long_segment();
	nftw(top, rm, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
