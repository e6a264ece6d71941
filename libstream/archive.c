/*
 * archive.c: expired segments into archives (kds-stream(5), Archives).
 *
 * An archive is a pax tar of whole segment files, compressed with zstd by
 * libarchive, so that bsdtar and GNU tar open it and kds-get reads it
 * back.  It is written as NAME.tmp, synced and renamed: a NAME without
 * .tmp is complete, which is what lets kds-expire remove the segments in
 * it, and lets a rerun after a crash find them already archived.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define COPY_CHUNK	(1024 * 1024)

/* libarchive's error as ours: the errno when it has one, else its text. */
static int
archive_fail(struct kds_err *e, struct archive *a, const char *what,
    const char *call)
{
	int errnum = archive_errno(a);

	if (errnum > 0) {
		errno = errnum;
		return kds_fail_errno(e, "%s: %s", what, call);
	}
	return kds_fail(e, EIO, "%s: %s: %s", what, call,
	    archive_error_string(a) ? archive_error_string(a) : "failed");
}

/*
 * Open ARCHIVE/STREAM/YYYY/MM/DD/HH, the hour of hour_ms in UTC, creating
 * what is missing when create is set (each new directory's parent synced,
 * so that the archive's name survives a crash).  path receives it, for
 * messages.  Returns a descriptor, or -1 (errno ENOENT without create).
 */
int
kds_archive_dir_open(const char *dir, const char *stream, int64_t hour_ms,
    int create, char *path, size_t pathlen, struct kds_err *e)
{
	char parts[5][16];
	time_t t = (time_t)(hour_ms / 1000);
	struct tm tm;
	int fd, next;

	if (gmtime_r(&t, &tm) == NULL)
		return kds_fail(e, EINVAL, "%s: bad time", dir);
	snprintf(parts[0], sizeof(parts[0]), "%04d", tm.tm_year + 1900);
	snprintf(parts[1], sizeof(parts[1]), "%02d", tm.tm_mon + 1);
	snprintf(parts[2], sizeof(parts[2]), "%02d", tm.tm_mday);
	snprintf(parts[3], sizeof(parts[3]), "%02d", tm.tm_hour);
	snprintf(path, pathlen, "%s", dir);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return kds_fail_errno(e, "%s", path);
	for (int i = -1; i < 4; i++) {
		const char *name = i < 0 ? stream : parts[i];
		size_t n = strlen(path);

		snprintf(path + n, pathlen - n, "/%s", name);
		next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (next == -1 && errno == ENOENT && create) {
			int made = mkdirat(fd, name, KDS_DIR_MODE) == 0;

			if (!made && errno != EEXIST) {
				kds_fail_errno(e, "%s: mkdir", path);
				close(fd);
				return -1;
			}
			if (fsync(fd) == -1) {
				path[n] = '\0';
				kds_fail_errno(e, "%s: fsync", path);
				close(fd);
				return -1;
			}
			next = openat(fd, name, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC);
			if (next != -1 && made &&
			    kds_perm_fix(fd, next, path, e) == -1) {
				close(next);
				close(fd);
				return -1;
			}
		}
		if (next == -1) {
			kds_fail_errno(e, "%s", path);
			close(fd);
			return -1;
		}
		close(fd);
		fd = next;
	}
	return fd;
}

void
kds_archive_name(uint64_t shard, uint64_t first, uint64_t last, char *out,
    size_t n)
{
	char id[KDS_SHARD_ID_LEN + 1], a[KDS_SEQ_LEN], b[KDS_SEQ_LEN];

	kds_shard_id(shard, id);
	kds_seq_format(shard, first, a);
	kds_seq_format(shard, last, b);
	snprintf(out, n, "%s-%s-%s.tar.zst", id, a, b);
}

/* "shardId-N-FIRST-LAST.tar.zst": 0 and its parts, or -1. */
int
kds_archive_name_parse(const char *name, uint64_t *shard, uint64_t *first,
    uint64_t *last)
{
	char buf[128], *a, *b, *end;
	uint64_t s1, s2;
	size_t n = strlen(name);

	if (n >= sizeof(buf) || n < 8 || strcmp(name + n - 8, ".tar.zst") != 0)
		return -1;
	memcpy(buf, name, n - 8);
	buf[n - 8] = '\0';
	if ((a = strchr(buf + 8, '-')) == NULL ||
	    (b = strchr(a + 1, '-')) == NULL || strchr(b + 1, '-') != NULL)
		return -1;
	*a++ = '\0';
	*b++ = '\0';
	end = buf;
	if (strncmp(end, "shardId-", 8) != 0 ||
	    kds_shard_id_parse(end, shard) == -1 ||
	    kds_seq_parse(a, &s1, first) == -1 ||
	    kds_seq_parse(b, &s2, last) == -1 ||
	    s1 != *shard || s2 != *shard || *first > *last)
		return -1;
	return 0;
}

/*
 * Does the complete archive dirfd/name hold the member of that name with
 * this size and this segment header?  The header's random salt makes it
 * this very segment, not one of another stream of the same name.
 * 1 yes, 0 no (or not a readable archive), -1 on an I/O error.
 */
int
kds_archive_holds(int dirfd, const char *name, const char *member,
    uint64_t size, const unsigned char hdr[SEG_HEADER_LEN])
{
	struct archive *a;
	struct archive_entry *ent;
	unsigned char got[SEG_HEADER_LEN];
	int fd, rc = 0;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return errno == ENOENT ? 0 : -1;
	if ((a = archive_read_new()) == NULL) {
		close(fd);
		return -1;
	}
	archive_read_support_filter_zstd(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_fd(a, fd, 64 * 1024) != ARCHIVE_OK)
		goto out;
	while (archive_read_next_header(a, &ent) == ARCHIVE_OK) {
		if (strcmp(archive_entry_pathname(ent), member) != 0)
			continue;
		if (archive_entry_size_is_set(ent) &&
		    (uint64_t)archive_entry_size(ent) == size &&
		    archive_read_data(a, got, sizeof(got)) == SEG_HEADER_LEN &&
		    memcmp(got, hdr, SEG_HEADER_LEN) == 0)
			rc = 1;
		break;
	}
out:
	archive_read_free(a);
	close(fd);
	return rc;
}

/*
 * Write a compressed segment into the archive as the SEQ.seg it was:
 * its header, then each block decompressed (kds-stream(5), Archives).
 * Every block is checked on the way; a damaged one fails the archive.
 */
static int
copy_zseg(struct archive *a, const char *what, int shard_dirfd,
    uint64_t shard, const struct kds_archive_member *m,
    kds_archive_progress_fn *progress, void *arg, struct kds_err *e)
{
	struct kds_zseg_walk w;
	int rc;

	if (kds_zseg_walk_open(shard_dirfd, shard, m->first, &w, e) == -1)
		return -1;
	if (w.h.size != m->size) {
		kds_fail(e, 0, "%s: offset 0: segment size changed", w.where);
		goto fail;
	}
	if (archive_write_data(a, w.h.seghdr, SEG_HEADER_LEN) !=
	    SEG_HEADER_LEN) {
		archive_fail(e, a, what, "write");
		goto fail;
	}
	while ((rc = kds_zseg_walk_next(&w, e)) == 1) {
		if (archive_write_data(a, w.buf, w.b.raw_len) !=
		    (la_ssize_t)w.b.raw_len) {
			archive_fail(e, a, what, "write");
			goto fail;
		}
		if (progress != NULL)
			progress(arg, w.b.raw_len);
	}
	if (rc == -1)
		goto fail;
	if (progress != NULL)
		progress(arg, SEG_HEADER_LEN);
	kds_zseg_walk_close(&w);
	return 0;
fail:
	kds_zseg_walk_close(&w);
	return -1;
}

/* Copy one segment, [0, m->size), into the archive. */
static int
add_member(struct archive *a, const char *what, int shard_dirfd,
    const char *stream, uint64_t shard, const struct kds_archive_member *m,
    unsigned char *buf, kds_archive_progress_fn *progress, void *arg,
    struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1], seg[64], path[256];
	struct archive_entry *ent;
	uint64_t off = 0;
	int fd, rc = -1;

	kds_shard_id(shard, id);
	kds_seg_name(shard, m->first, ".seg", seg, sizeof(seg));
	snprintf(path, sizeof(path), "%s/%s/%s", stream, id, seg);
	if (m->compressed)
		fd = -1;
	else if ((fd = openat(shard_dirfd, seg, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return kds_fail_errno(e, "%s/%s", id, seg);
	if ((ent = archive_entry_new()) == NULL) {
		kds_fail_errno(e, "%s", what);
		goto out;
	}
	archive_entry_set_pathname(ent, path);
	archive_entry_set_filetype(ent, AE_IFREG);
	archive_entry_set_perm(ent, 0644);
	archive_entry_set_size(ent, (la_int64_t)m->size);
	archive_entry_set_mtime(ent, (time_t)(m->oldest_ms / 1000),
	    (long)(m->oldest_ms % 1000) * 1000000);
	if (archive_write_header(a, ent) != ARCHIVE_OK) {
		archive_fail(e, a, what, "write");
		goto out;
	}
	if (m->compressed) {
		rc = copy_zseg(a, what, shard_dirfd, shard, m, progress, arg, e);
		goto out;
	}
	while (off < m->size) {
		size_t want = m->size - off < COPY_CHUNK ?
		    (size_t)(m->size - off) : COPY_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			kds_fail_errno(e, "%s/%s: read", id, seg);
			goto out;
		}
		if (n == 0) {
			kds_fail(e, 0, "%s/%s: shorter than %llu bytes", id,
			    seg, (unsigned long long)m->size);
			goto out;
		}
		if (archive_write_data(a, buf, (size_t)n) != n) {
			archive_fail(e, a, what, "write");
			goto out;
		}
		off += (uint64_t)n;
		if (progress != NULL)
			progress(arg, (uint64_t)n);
	}
	rc = 0;
out:
	archive_entry_free(ent);
	if (fd != -1)
		close(fd);
	return rc;
}

/*
 * Write the segments m[0..n) of shard, read from shard_dirfd, into
 * dirfd/name: NAME.tmp, fsync, rename, fsync the directory.  what names
 * the archive in messages.  On failure nothing but a removed NAME.tmp is
 * left.
 */
int
kds_archive_write(int dirfd, const char *name, const char *what,
    const char *stream, uint64_t shard, int shard_dirfd,
    const struct kds_archive_member *m, size_t n,
    kds_archive_progress_fn *progress, void *arg, struct kds_err *e)
{
	char tmp[256], tmpwhat[4096 + 8];
	struct archive *a = NULL;
	unsigned char *buf = NULL;
	int fd, rc = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	snprintf(tmpwhat, sizeof(tmpwhat), "%s.tmp", what);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, KDS_FILE_MODE);
	if (fd == -1)
		return kds_fail_errno(e, "%s", tmpwhat);
	if (kds_perm_fix(dirfd, fd, tmpwhat, e) == -1)
		goto fail;
	if ((buf = malloc(COPY_CHUNK)) == NULL ||
	    (a = archive_write_new()) == NULL) {
		kds_fail_errno(e, "%s", tmpwhat);
		goto fail;
	}
	/* No padding to 10 KiB blocks: the compressor's output is the file. */
	if (archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(a, fd) != ARCHIVE_OK) {
		archive_fail(e, a, tmpwhat, "open");
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
		if (add_member(a, tmpwhat, shard_dirfd, stream, shard, &m[i],
		    buf, progress, arg, e) == -1)
			goto fail;
	if (archive_write_close(a) != ARCHIVE_OK) {
		archive_fail(e, a, tmpwhat, "write");
		goto fail;
	}
	archive_write_free(a);
	a = NULL;
	if (fsync(fd) == -1) {
		kds_fail_errno(e, "%s: fsync", tmpwhat);
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		kds_fail_errno(e, "%s: close", tmpwhat);
		goto fail;
	}
	fd = -1;
	/* Never over another archive: one of another stream of this name
	 * would be lost, and ours would not hold what it is named for. */
	if (kds_rename_new(dirfd, tmp, name, what, e) == -1)
		goto fail;
	if (fsync(dirfd) == -1) {
		kds_fail_errno(e, "%s: fsync", what);
		goto out;	/* renamed: complete, if perhaps not durable */
	}
	rc = 0;
	goto out;
fail:
	if (a != NULL)
		archive_write_free(a);	/* closes what it opened */
	a = NULL;
	if (fd != -1)
		close(fd);
	unlinkat(dirfd, tmp, 0);
out:
	if (a != NULL)
		archive_write_free(a);
	free(buf);
	return rc;
}
