/*
 * index.c: the sparse index beside each segment (kds-stream(5), INDEX):
 * an entry for the first frame at or after every 32 KiB of the segment, so
 * that a seek is two binary searches and a walk of at most 32 KiB.  It is a
 * cache: entries that fail their checksum are dropped, and a reader checks
 * the frame an entry points to before it trusts it.
 */
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

void
kds_index_entry_encode(unsigned char p[INDEX_ENTRY_LEN],
    const struct kds_index_entry *ie)
{
	put_le64(p, ie->counter);
	put_le64(p + 8, (uint64_t)ie->arrival_ms);
	put_le64(p + 16, ie->offset);
	put_le64(p + 24, kds_checksum(p, 24, 0));
}

/*
 * Load SEG.idx, keeping entries that check out and increase.  A missing or
 * unreadable index is an empty one: the segment itself is the truth.
 */
int
kds_index_load(int dirfd, const char *segname, struct kds_index_entry **out,
    size_t *nout)
{
	char name[80];
	struct stat st;
	unsigned char *raw = NULL;
	struct kds_index_entry *v = NULL;
	size_t n = 0, len;
	int fd;

	*out = NULL;
	*nout = 0;
	snprintf(name, sizeof(name), "%.*s.idx", (int)(strlen(segname) - 4),
	    segname);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return 0;
	if (fstat(fd, &st) == -1 || st.st_size < INDEX_ENTRY_LEN)
		goto out;
	len = (size_t)st.st_size / INDEX_ENTRY_LEN * INDEX_ENTRY_LEN;
	if ((raw = malloc(len)) == NULL ||
	    (v = malloc(len / INDEX_ENTRY_LEN * sizeof(*v))) == NULL)
		goto out;
	if (pread(fd, raw, len, 0) != (ssize_t)len)
		goto out;
	for (size_t i = 0; i < len; i += INDEX_ENTRY_LEN) {
		const unsigned char *p = raw + i;
		struct kds_index_entry ie;

		if (get_le64(p + 24) != kds_checksum(p, 24, 0))
			continue;
		ie.counter = get_le64(p);
		ie.arrival_ms = (int64_t)get_le64(p + 8);
		ie.offset = get_le64(p + 16);
		if (ie.offset < SEG_HEADER_LEN)
			continue;
		if (n > 0 && (ie.counter <= v[n - 1].counter ||
		    ie.offset <= v[n - 1].offset ||
		    ie.arrival_ms < v[n - 1].arrival_ms))
			continue;
		v[n++] = ie;
	}
out:
	free(raw);
	close(fd);
	if (n == 0) {
		free(v);
		v = NULL;
	}
	*out = v;
	*nout = n;
	return 0;
}

/* The last entry whose counter is <= counter, or n when there is none. */
size_t
kds_index_find_counter(const struct kds_index_entry *v, size_t n,
    uint64_t counter)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].counter <= counter)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? n : lo - 1;
}

/* The last entry whose arrival is < ms (the answer is after it), or n. */
size_t
kds_index_find_time(const struct kds_index_entry *v, size_t n, int64_t ms)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].arrival_ms < ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? n : lo - 1;
}
