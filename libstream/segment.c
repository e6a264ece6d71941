/*
 * segment.c: segment files, named by the sequence number of their first
 * record so that ls sorts them, each opening with a checksummed header
 * (kds-stream(5), SEGMENTS).
 */
#define _GNU_SOURCE
#include <sys/random.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

void
kds_seg_name(uint64_t shard, uint64_t counter, const char *suffix, char *out,
    size_t n)
{
	char seq[KDS_SEQ_LEN];

	kds_seq_format(shard, counter, seq);
	snprintf(out, n, "%s%s", seq, suffix);
}

int
kds_seg_header_encode(unsigned char p[SEG_HEADER_LEN],
    const struct kds_seg_header *h)
{
	memcpy(p, SEG_MAGIC, 6);
	put_le16(p + 6, KDS_FORMAT_VERSION);
	put_le64(p + 8, h->shard);
	put_le64(p + 16, h->first_counter);
	put_le64(p + 24, (uint64_t)h->created_ms);
	put_le64(p + 32, h->salt);
	put_le64(p + 40, kds_checksum(p, 40, 0));
	return 0;
}

/* 0, or -1 when the bytes are not a header of this format version. */
int
kds_seg_header_decode(const unsigned char p[SEG_HEADER_LEN],
    struct kds_seg_header *h)
{
	if (memcmp(p, SEG_MAGIC, 6) != 0 ||
	    get_le16(p + 6) != KDS_FORMAT_VERSION ||
	    get_le64(p + 40) != kds_checksum(p, 40, 0))
		return -1;
	h->shard = get_le64(p + 8);
	h->first_counter = get_le64(p + 16);
	h->created_ms = (int64_t)get_le64(p + 24);
	h->salt = get_le64(p + 32);
	return 0;
}

/*
 * Why the N bytes at P are not the header of segment FIRST of SHARD, or
 * NULL when they are.  A header that checks out under another format
 * version is named as such: it is a newer kds's file, not damage.
 */
const char *
kds_seg_header_check(const unsigned char *p, size_t n, uint64_t shard,
    uint64_t first, struct kds_seg_header *h)
{
	if (n < SEG_HEADER_LEN)
		return "bad segment header";
	if (memcmp(p, SEG_MAGIC, 6) == 0 &&
	    get_le64(p + 40) == kds_checksum(p, 40, 0) &&
	    get_le16(p + 6) != KDS_FORMAT_VERSION)
		return "unknown segment format version";
	if (kds_seg_header_decode(p, h) == -1 || h->shard != shard ||
	    h->first_counter != first)
		return "bad segment header";
	return NULL;
}

/*
 * Create SEQ.seg holding only its header; returns its descriptor, open for
 * appending.  The caller holds the shard lock.  The header is written to
 * SEQ.seg.tmp, which is then renamed into place without replacing
 * anything: a reader never sees a segment without its whole header.
 */
int
kds_seg_create(int dirfd, uint64_t shard, uint64_t counter,
    int64_t created_ms, struct kds_seg_header *h, struct kds_err *e)
{
	unsigned char buf[SEG_HEADER_LEN];
	char name[64], tmp[72], id[KDS_SHARD_ID_LEN + 1], what[96];
	int fd;

	kds_seg_name(shard, counter, ".seg", name, sizeof(name));
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	kds_shard_id(shard, id);	/* messages name shardId-N/FILE */
	h->shard = shard;
	h->first_counter = counter;
	h->created_ms = created_ms;
	if (getrandom(&h->salt, sizeof(h->salt), 0) != sizeof(h->salt))
		return kds_fail_errno(e, "%s/%s: getrandom", id, name);
	kds_seg_header_encode(buf, h);
	/* A leftover .tmp is an interrupted roll's: ours to overwrite. */
	fd = openat(dirfd, tmp, O_RDWR | O_APPEND | O_CREAT | O_TRUNC |
	    O_NOFOLLOW | O_CLOEXEC, KDS_FILE_MODE);
	if (fd == -1)
		return kds_fail_errno(e, "%s/%s", id, tmp);
	snprintf(what, sizeof(what), "%s/%s", id, tmp);
	if (kds_perm_fix(dirfd, fd, what, e) == -1)
		goto fail;
	errno = 0;
	if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
		if (errno == 0)
			errno = ENOSPC;
		kds_fail_errno(e, "%s/%s: write", id, tmp);
		goto fail;
	}
	snprintf(what, sizeof(what), "%s/%s", id, name);
	if (kds_rename_new(dirfd, tmp, name, what, e) == -1)
		goto fail;
	return fd;
fail:
	close(fd);
	unlinkat(dirfd, tmp, 0);
	return -1;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The first counters of the shard's segments, ascending.  Other files are
 * passed over; a segment of another shard in this directory is an error. */
int
kds_seg_list(int dirfd, uint64_t shard, uint64_t **out, size_t *nout,
    struct kds_err *e)
{
	uint64_t *v = NULL, sh, counter;
	size_t n = 0, cap = 0;
	struct dirent *de;
	char id[KDS_SHARD_ID_LEN + 1];
	DIR *d;
	int fd;

	kds_shard_id(shard, id);
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return kds_fail_errno(e, "%s: opendir", id);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return kds_fail_errno(e, "%s: opendir", id);
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		char seq[KDS_SEQ_LEN];
		size_t len = strlen(de->d_name), sfx;

		if (len > 5 && strcmp(de->d_name + len - 5, ".zseg") == 0)
			sfx = 5;
		else if (len > 4 && strcmp(de->d_name + len - 4, ".seg") == 0)
			sfx = 4;
		else
			continue;
		if (len - sfx >= sizeof(seq))
			continue;
		memcpy(seq, de->d_name, len - sfx);
		seq[len - sfx] = '\0';
		if (kds_seq_parse(seq, &sh, &counter) == -1 || sh != shard) {
			kds_fail(e, 0, "%s: not a segment of this shard",
			    de->d_name);
			goto fail;
		}
		if (n == cap) {
			uint64_t *nv;

			cap = cap ? cap * 2 : 16;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL)
				goto fail_errno;
			v = nv;
		}
		v[n++] = counter;
	}
	if (errno != 0)
		goto fail_errno;
	closedir(d);
	if (n > 0)		/* none: v is NULL, which qsort must not get */
		qsort(v, n, sizeof(*v), cmp_u64);
	/* SEQ.seg and SEQ.zseg both, during a conversion: one segment. */
	if (n > 1) {
		size_t k = 1;

		for (size_t i = 1; i < n; i++)
			if (v[i] != v[k - 1])
				v[k++] = v[i];
		n = k;
	}
	*out = v;
	*nout = n;
	return 0;
fail_errno:
	kds_fail_errno(e, "%s: readdir", id);
fail:
	closedir(d);
	free(v);
	return -1;
}
