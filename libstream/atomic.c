/*
 * atomic.c: replacing a small file whole, so that a reader sees the old
 * contents or the new, never a mix: write NAME.tmp, fsync it, rename it over
 * NAME, fsync the directory (nq's create, then rename into place).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "internal.h"

int
kds_fsync_dir(int dirfd, const char *what, struct kds_err *e)
{
	if (fsync(dirfd) == -1)
		return kds_fail_errno(e, "%s: fsync", what);
	return 0;
}

/* All of buf to fd, through short writes, and through EINTR when
 * restart; a write of nothing is a full disk.  0, or -1 with errno. */
static int
write_whole(int fd, const void *buf, size_t n, int restart)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k == -1 && errno == EINTR && restart)
			continue;
		if (k == -1)
			return -1;
		if (k == 0) {
			errno = ENOSPC;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int
kds_write_all(int fd, const void *buf, size_t n)
{
	return write_whole(fd, buf, n, 1);
}

/* The same, but a signal handler ends a write blocked on a full pipe
 * (EINTR fails it, as it fails stdio's): for output a user may cut. */
int
kds_write_all_intr(int fd, const void *buf, size_t n)
{
	return write_whole(fd, buf, n, 0);
}

int
kds_atomic_write(int dirfd, const char *name, const void *buf, size_t len,
    struct kds_err *e)
{
	char tmp[256];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, KDS_FILE_MODE);
	if (fd == -1)
		return kds_fail_errno(e, "%s", tmp);
	if (kds_perm_fix(dirfd, fd, tmp, e) == -1)
		goto fail;
	if (kds_write_all(fd, buf, len) == -1) {
		kds_fail_errno(e, "%s: write", tmp);
		goto fail;
	}
	if (fsync(fd) == -1) {
		kds_fail_errno(e, "%s: fsync", tmp);
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		kds_fail_errno(e, "%s: close", tmp);
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) == -1) {
		kds_fail_errno(e, "%s: rename", tmp);
		goto fail;
	}
	return kds_fsync_dir(dirfd, name, e);
fail:
	if (fd != -1)
		close(fd);
	unlinkat(dirfd, tmp, 0);
	return -1;
}

/*
 * Rename tmp to name in dirfd without replacing anything
 * (RENAME_NOREPLACE): what is made whole under a temporary name, then
 * published.  A name taken says "WHAT: File exists", which is clear
 * alone; any other failure "WHAT: rename: ERROR".  WHAT may be empty.
 */
int
kds_rename_new(int dirfd, const char *tmp, const char *name,
    const char *what, struct kds_err *e)
{
	if (renameat2(dirfd, tmp, dirfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST)
		return kds_fail_errno(e, "%s", what);
	return kds_fail_errno(e, "%s%srename", what, *what ? ": " : "");
}
