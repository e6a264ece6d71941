/* t_describe.c: describing a stream (describe.c, kds-describe(1)). */
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

static char top[] = "/tmp/t_describe.XXXXXX";

static int
rm(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* Once the last consumer is deleted, STREAM/consumers is empty: describe
 * sorted its NULL list of consumers, which qsort may not be given. */
static void
no_consumer_left(void)
{
	const struct kds_iter_opts th = { .type = KDS_TRIM_HORIZON };
	struct kds_create_opts o = { .shards = 1, .retention_s = 86400,
	    .segment_bytes = 1 << 20, .segment_age_s = 3600 };
	struct kds_description d;
	struct kds_consumer *c;
	struct kds_stream *st;
	struct kds_err e;
	char path[64];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/s", top);
	if (kds_stream_create(path, &o, &e) == -1 ||
	    (st = kds_stream_open(path, &e)) == NULL)
		bail_out(e.msg);
	if ((c = kds_consumer_open(st, "app", &th, &e)) == NULL)
		bail_out(e.msg);
	kds_consumer_close(c);
	if (kds_consumer_reset(st, "app", 1, &e) == -1)
		bail_out(e.msg);
	ok(fstatat(st->dirfd, "consumers", &sb, 0) == 0 &&
	    S_ISDIR(sb.st_mode), "deleting the last consumer leaves its "
	    "directory");
	if (kds_stream_describe(st, &d, &e) == -1) {
		ok(0, "a stream whose consumers are all gone describes");
		diag("%s", e.msg);
	} else {
		ok(d.nconsumers == 0 && d.nshards == 1,
		    "a stream whose consumers are all gone describes");
		kds_description_free(&d);
	}
	kds_stream_close(st);
}

int
main(void)
{
	setenv("KDS_NOW", "1795824000", 1);
	if (mkdtemp(top) == NULL)
		bail_out("mkdtemp");
	no_consumer_left();
	nftw(top, rm, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
