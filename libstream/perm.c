/*
 * perm.c: the modes of what the tools create (kds-stream(5), PERMISSIONS).
 *
 * Files are created with mode 0664 and directories with 0775, less the
 * umask: never writable by others, even under umask 000.  A stream made
 * with kds-create --group is shared by the members of a group: its
 * directory has the set-group-ID bit, so that everything under it takes
 * the group, and what a tool creates under a directory that has the bit
 * is made group-readable and group-writable whatever the umask (and a
 * directory set-group-ID as well), before it gets its final name.
 */
#include <sys/stat.h>
#include <errno.h>
#include <inttypes.h>
#include <unistd.h>

#include "internal.h"

/* fd, just created in the directory parentfd: shared when the directory
 * is.  what names fd in a message. */
int
kds_perm_fix(int parentfd, int fd, const char *what, struct kds_err *e)
{
	struct stat dir, sb;
	mode_t want;

	if (fstat(parentfd, &dir) == -1)
		return kds_fail_errno(e, "%s: stat", what);
	if (!(dir.st_mode & S_ISGID))
		return 0;
	if (fstat(fd, &sb) == -1)
		return kds_fail_errno(e, "%s: stat", what);
	want = (sb.st_mode & 07777) | (S_ISDIR(sb.st_mode) ? KDS_GROUP_DIR :
	    KDS_GROUP_FILE);
	want &= (mode_t)~S_IWOTH;
	if (want != (sb.st_mode & 07777) && fchmod(fd, want) == -1)
		return kds_fail_errno(e, "%s: chmod", what);
	return 0;
}

/*
 * The new stream directory fd: shared with the group gid when shared is
 * set.  A directory made under a set-group-ID parent inherits the bit,
 * which a stream that is not shared drops: sharing is always asked for.
 */
int
kds_perm_stream(int fd, int shared, uint32_t gid, struct kds_err *e)
{
	struct stat sb;
	mode_t want;

	if (fstat(fd, &sb) == -1)
		return kds_fail_errno(e, "stat");
	want = sb.st_mode & 07777 & (mode_t)~(S_ISGID | S_IWOTH);
	if (shared) {
		if (fchown(fd, (uid_t)-1, (gid_t)gid) == -1)
			return kds_fail_errno(e, "group %" PRIu32, gid);
		want |= KDS_GROUP_DIR;
	}
	if (want != (sb.st_mode & 07777) && fchmod(fd, want) == -1)
		return kds_fail_errno(e, "chmod");
	return 0;
}
