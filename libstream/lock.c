/*
 * lock.c: flock(2), the only lock kds takes.  The order is in kds.h and
 * kds-stream(5): STREAM/lock first, then shard tails in ascending order.
 */
#include <sys/file.h>
#include <errno.h>

#include "internal.h"

int
kds_lock(int fd, const char *what, struct kds_err *e)
{
	while (flock(fd, LOCK_EX) == -1) {
		if (errno != EINTR)
			return kds_fail_errno(e, "%s: lock", what);
	}
	return 0;
}

void
kds_unlock(int fd)
{
	flock(fd, LOCK_UN);
}
