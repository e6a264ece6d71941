/* t_segment.c: listing a shard's segments (segment.c, kds-stream(5)). */
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

static char dir[] = "/tmp/t_segment.XXXXXX";
static int dfd = -1;

static void
touch(const char *name)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0666);

	if (fd == -1)
		bail_out("create a file");
	close(fd);
}

static void
rm(const char *name)
{
	unlinkat(dfd, name, 0);
}

int
main(void)
{
	uint64_t *v = (uint64_t *)&dfd;
	struct kds_err e;
	size_t n = 7;
	char name[64];

	if (mkdtemp(dir) == NULL ||
	    (dfd = open(dir, O_RDONLY | O_DIRECTORY)) == -1)
		bail_out("mkdtemp");

	/* Found by tests/fuzz/fuzz_segment: qsort was given a NULL array. */
	ok(kds_seg_list(dfd, 0, &v, &n, &e) == 0 && n == 0 && v == NULL,
	    "an empty directory lists no segment");
	touch("tail");
	touch("100000000000000000001.idx");
	ok(kds_seg_list(dfd, 0, &v, &n, &e) == 0 && n == 0 && v == NULL,
	    "a tail and an index without their segment list none");
	free(v);

	kds_seg_name(0, 35, ".seg", name, sizeof(name));
	touch(name);
	kds_seg_name(0, 1, ".seg", name, sizeof(name));
	touch(name);
	kds_seg_name(0, 12, ".seg", name, sizeof(name));
	touch(name);
	touch("100000000000000000012.seg.tmp");
	ok(kds_seg_list(dfd, 0, &v, &n, &e) == 0 && n == 3 && v[0] == 1 &&
	    v[1] == 12 && v[2] == 35, "segments come in ascending order, "
	    "other files passed over");
	free(v);

	kds_seg_name(1, 40, ".seg", name, sizeof(name));
	touch(name);
	ok(kds_seg_list(dfd, 0, &v, &n, &e) == -1 &&
	    strstr(e.msg, "not a segment of this shard") != NULL,
	    "a segment of another shard is an error: %s", e.msg);
	rm(name);

	rm("tail");
	rm("100000000000000000001.idx");
	rm("100000000000000000012.seg.tmp");
	rm("100000000000000000001.seg");
	rm("100000000000000000012.seg");
	rm("100000000000000000035.seg");
	close(dfd);
	rmdir(dir);
	return done_testing();
}
