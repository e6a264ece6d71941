/*
 * lease.c: who reads which shard for a named consumer (kds-stream(5),
 * CONSUMERS).  A lease is flock(LOCK_EX | LOCK_NB) on an empty file per
 * shard, held for as long as the process reads the shard; it dies with
 * the process, which is how a dead worker's shards become free.  Each
 * process also holds a lock on a worker file of its own, so that the
 * processes of one consumer can count each other and share the shards.
 */
#define _GNU_SOURCE
#include <sys/file.h>
#include <sys/random.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* 1: the lease is ours (*fd holds it), 0: another process has it, -1. */
int
kds_lease_try(int cdirfd, uint64_t shard, int *fd, struct kds_err *e)
{
	char name[KDS_SHARD_ID_LEN + 8];
	int lfd;

	kds_shard_id(shard, name);
	strcat(name, ".lease");
	lfd = openat(cdirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    KDS_FILE_MODE);
	if (lfd == -1)
		return kds_fail_errno(e, "%s", name);
	if (kds_perm_fix(cdirfd, lfd, name, e) == -1) {
		close(lfd);
		return -1;
	}
	while (flock(lfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EINTR)
			continue;
		close(lfd);
		if (errno == EWOULDBLOCK)
			return 0;
		return kds_fail_errno(e, "%s: lock", name);
	}
	*fd = lfd;
	return 1;
}

void
kds_lease_release(int fd)
{
	if (fd != -1)
		close(fd);	/* and with it the lock */
}

/*
 * Register this process: worker.PID-HEX, locked before it is renamed into
 * place, so that nobody counting workers finds it unlocked and takes it
 * for a dead one's.  Returns the descriptor that holds the lock.
 */
int
kds_worker_register(int cdirfd, char name[64], struct kds_err *e)
{
	char tmp[80];
	uint64_t rnd;
	int fd;

	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		return kds_fail_errno(e, "getrandom");
	snprintf(name, 64, "worker.%ld-%016" PRIx64, (long)getpid(), rnd);
	snprintf(tmp, sizeof(tmp), ".%s", name);
	fd = openat(cdirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, KDS_FILE_MODE);
	if (fd == -1)
		return kds_fail_errno(e, "%s", tmp);
	if (kds_perm_fix(cdirfd, fd, tmp, e) == -1)
		goto fail;
	if (flock(fd, LOCK_EX) == -1) {
		kds_fail_errno(e, "%s: lock", tmp);
		goto fail;
	}
	if (renameat(cdirfd, tmp, cdirfd, name) == -1) {
		kds_fail_errno(e, "%s: rename", tmp);
		goto fail;
	}
	return fd;
fail:
	unlinkat(cdirfd, tmp, 0);
	close(fd);
	return -1;
}

void
kds_worker_unregister(int cdirfd, const char *name, int fd)
{
	if (fd == -1)
		return;
	unlinkat(cdirfd, name, 0);
	close(fd);
}

/* The processes of the consumer alive now; reap: files of dead ones go.
 * A live one's lock is only tested, with LOCK_SH so as not to block it. */
int
kds_worker_count(int cdirfd, int reap, size_t *n, struct kds_err *e)
{
	struct dirent *de;
	DIR *d;
	int fd;

	*n = 0;
	if ((fd = openat(cdirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return kds_fail_errno(e, "opendir");
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return kds_fail_errno(e, "opendir");
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		int wfd;

		if (strncmp(de->d_name, "worker.", 7) != 0)
			continue;
		wfd = openat(cdirfd, de->d_name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (wfd == -1)
			continue;	/* gone meanwhile */
		if (flock(wfd, LOCK_SH | LOCK_NB) == -1)
			(*n)++;
		else if (reap)
			unlinkat(cdirfd, de->d_name, 0);	/* its owner died */
		close(wfd);
	}
	/* Workers missed would hand their shards to others as well. */
	if (errno != 0) {
		kds_fail_errno(e, "readdir");
		closedir(d);
		return -1;
	}
	closedir(d);
	return 0;
}
