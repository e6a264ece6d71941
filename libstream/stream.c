/*
 * stream.c: creating and opening a stream directory.
 *
 * kds_stream_create() builds the whole directory under a temporary name
 * beside the target and renames it into place with RENAME_NOREPLACE: a
 * stream exists complete or not at all, and an existing path is never
 * touched.
 */
#define _GNU_SOURCE
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static int create(const char *, const struct kds_create_opts *, int shared,
    uint32_t gid, struct kds_err *);

static void
remove_tree(int dirfd, const char *name, unsigned nshards)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

	if (fd != -1) {
		for (unsigned i = 0; i < nshards; i++) {
			char id[KDS_SHARD_ID_LEN + 1], seg[64];
			int sfd;

			kds_shard_id(i, id);
			if ((sfd = openat(fd, id, O_RDONLY | O_DIRECTORY)) != -1) {
				kds_seg_name(i, 1, ".seg", seg, sizeof(seg));
				unlinkat(sfd, seg, 0);
				kds_seg_name(i, 1, ".idx", seg, sizeof(seg));
				unlinkat(sfd, seg, 0);
				unlinkat(sfd, "tail", 0);
				close(sfd);
			}
			unlinkat(fd, id, AT_REMOVEDIR);
		}
		unlinkat(fd, "meta", 0);
		unlinkat(fd, "meta.tmp", 0);
		unlinkat(fd, "lock", 0);
		close(fd);
	}
	unlinkat(dirfd, name, AT_REMOVEDIR);
}

/*
 * A bare stream name (no slash) lives under $KDS_ROOT when that is set, as
 * a bare command name is looked up in $PATH; anything with a slash, such as
 * ./clicks, is a path as given.  The caller frees the result.
 */
static char *
resolve(const char *name)
{
	const char *root = getenv("KDS_ROOT");
	char *p;

	if (root == NULL || *root == '\0' || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return strdup(name);
	if (asprintf(&p, "%s/%s", root, name) == -1)
		return NULL;
	return p;
}

static int
create_as(const char *name, const struct kds_create_opts *o, int shared,
    uint32_t gid, struct kds_err *e)
{
	char *path = resolve(name);
	int rc;

	if (path == NULL)
		return kds_fail_errno(e, "%s", name);
	rc = create(path, o, shared, gid, e);
	free(path);
	return rc;
}

int
kds_stream_create(const char *name, const struct kds_create_opts *o,
    struct kds_err *e)
{
	return create_as(name, o, 0, 0, e);
}

int
kds_stream_create_shared(const char *name, const struct kds_create_opts *o,
    uint32_t gid, struct kds_err *e)
{
	return create_as(name, o, 1, gid, e);
}

static int
create(const char *path, const struct kds_create_opts *o, int shared,
    uint32_t gid, struct kds_err *e)
{
	char *dcopy = NULL, *bcopy = NULL, tmp[4096];
	const char *dir, *base;
	struct kds_meta m = { 0 };
	int parent = -1, fd = -1, lockfd, rc = -1;
	uint64_t rnd;

	if (o->shards < 1 || o->shards > KDS_MAX_SHARDS)
		return kds_fail(e, EINVAL, "bad shard count");
	if ((dcopy = strdup(path)) == NULL || (bcopy = strdup(path)) == NULL) {
		kds_fail_errno(e, "%s", path);
		goto out;
	}
	dir = dirname(dcopy);
	base = basename(bcopy);
	if ((parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		kds_fail_errno(e, "%s", dir);
		goto out;
	}
	if (faccessat(parent, base, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		kds_fail(e, EEXIST, "%s", strerror(EEXIST));
		goto out;
	}
	if (errno != ENOENT) {		/* such as a name too long */
		kds_fail_errno(e, "%s", "");
		goto out;
	}
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		kds_fail_errno(e, "getrandom");
		goto out;
	}
	/* Cut so that the longest name a stream can have still leaves room. */
	snprintf(tmp, sizeof(tmp), ".%.200s.kds-create.%016" PRIx64, base, rnd);
	if (mkdirat(parent, tmp, KDS_DIR_MODE) == -1) {
		kds_fail_errno(e, "%s", dir);
		goto out;
	}
	if ((fd = openat(parent, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		kds_fail_errno(e, "%s", tmp);
		goto undo;
	}
	/* Before anything is made inside, which takes the group from it. */
	if (kds_perm_stream(fd, shared, gid, e) == -1)
		goto undo;
	m.created_ms = kds_now_ms();
	m.retention_s = o->retention_s;
	m.segment_bytes = o->segment_bytes;
	m.segment_age_s = o->segment_age_s;
	m.compress = o->compress;
	m.compress_after_s = o->compress_after_s;
	m.next_shard = o->shards;
	m.nshards = o->shards;
	if ((m.shards = calloc(o->shards, sizeof(*m.shards))) == NULL) {
		kds_fail_errno(e, "meta");
		goto undo;
	}
	for (unsigned i = 0; i < o->shards; i++) {
		struct kds_shard *sh = &m.shards[i];

		sh->number = i;
		sh->open = 1;
		sh->parent = sh->adjacent = -1;
		kds_aws_ranges(o->shards, i, &sh->start_hash, &sh->end_hash);
		if (kds_shard_init(fd, i, m.created_ms, 0, e) == -1)
			goto undo;
	}
	lockfd = openat(fd, "lock", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    KDS_FILE_MODE);
	if (lockfd == -1) {
		kds_fail_errno(e, "lock");
		goto undo;
	}
	if (kds_perm_fix(fd, lockfd, "lock", e) == -1) {
		close(lockfd);
		goto undo;
	}
	close(lockfd);
	if (kds_meta_write(fd, &m, e) == -1)
		goto undo;
	if (kds_rename_new(parent, tmp, base, "", e) == -1)
		goto undo;
	if (kds_fsync_dir(parent, dir, e) == -1)
		goto out;
	rc = 0;
	goto out;
undo:
	remove_tree(parent, tmp, o->shards);
out:
	if (fd != -1)
		close(fd);
	if (parent != -1)
		close(parent);
	kds_meta_free(&m);
	free(dcopy);
	free(bcopy);
	return rc;
}

static void
remember(struct kds_stream *st, const struct stat *sb)
{
	st->meta_dev = sb->st_dev;
	st->meta_ino = sb->st_ino;
	st->meta_size = sb->st_size;
	st->meta_ctime = sb->st_ctim;
}

/* Read meta, stat'ed as sb just before, in place of the copy held. */
static int
install(struct kds_stream *st, const struct stat *sb, struct kds_err *e)
{
	struct kds_meta m;

	if (kds_meta_read(st->dirfd, &m, e) == -1)
		return -1;
	kds_meta_free(&st->meta);
	st->meta = m;
	remember(st, sb);
	return 0;
}

/*
 * A reader merging every shard holds a few descriptors for each; the soft
 * limit (often 1024) is too low for thousands of shards while the hard
 * one rarely is.  Raise the soft limit to the hard one then, as a server
 * would; nothing here uses select(2), so large descriptors are fine.
 */
static void
raise_nofile(size_t nshards)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < nshards * 6 + 64 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

struct kds_stream *
kds_stream_open(const char *name, struct kds_err *e)
{
	struct kds_stream *st;
	struct stat sb;

	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = resolve(name)) == NULL) {
		kds_fail_errno(e, "%s", name);
		free(st);
		return NULL;
	}
	st->dirfd = open(st->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd == -1) {
		kds_fail_errno(e, "%s", "");
		goto fail;
	}
	if (fstatat(st->dirfd, "meta", &sb, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno == ENOENT)
			kds_fail(e, ENOENT, "not a stream (no meta file)");
		else
			kds_fail_errno(e, "meta");
		goto fail;
	}
	if (kds_meta_read(st->dirfd, &st->meta, e) == -1)
		goto fail;
	remember(st, &sb);
	raise_nofile(st->meta.nshards);
	return st;
fail:
	kds_stream_close(st);
	return NULL;
}

/*
 * Re-read meta when it was replaced.  A rename gives it a new inode, but
 * the file system may hand the inode of an older meta to a later one
 * (ext4 alternates two), so size and change time count too; a writer that
 * must not miss a reshard also has its tail's flag (kds_stream_reread).
 */
int
kds_stream_reload(struct kds_stream *st, int *changed, struct kds_err *e)
{
	struct stat sb;

	*changed = 0;
	if (fstatat(st->dirfd, "meta", &sb, AT_SYMLINK_NOFOLLOW) == -1)
		return kds_fail_errno(e, "meta");
	if (sb.st_ino == st->meta_ino && sb.st_dev == st->meta_dev &&
	    sb.st_size == st->meta_size &&
	    sb.st_ctim.tv_sec == st->meta_ctime.tv_sec &&
	    sb.st_ctim.tv_nsec == st->meta_ctime.tv_nsec)
		return 0;
	*changed = 1;
	return install(st, &sb, e);
}

int
kds_stream_reread(struct kds_stream *st, struct kds_err *e)
{
	struct stat sb;

	if (fstatat(st->dirfd, "meta", &sb, AT_SYMLINK_NOFOLLOW) == -1)
		return kds_fail_errno(e, "meta");
	return install(st, &sb, e);
}

void
kds_stream_close(struct kds_stream *st)
{
	if (st == NULL)
		return;
	if (st->dirfd > 0)
		close(st->dirfd);
	kds_meta_free(&st->meta);
	free(st->path);
	free(st);
}

size_t
kds_stream_shard_count(const struct kds_stream *st)
{
	return st->meta.nshards;
}

const struct kds_shard *
kds_stream_shard(const struct kds_stream *st, uint64_t number)
{
	size_t lo = 0, hi = st->meta.nshards;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (st->meta.shards[mid].number == number)
			return &st->meta.shards[mid];
		if (st->meta.shards[mid].number < number)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* "shardId-000000000003" or "3", which must name a shard of the stream. */
int
kds_stream_shard_lookup(const struct kds_stream *st, const char *name,
    uint64_t *number, struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1];

	if (kds_shard_id_parse(name, number) == -1)
		return kds_fail(e, EINVAL, "bad shard id '%.64s'", name);
	kds_shard_id(*number, id);
	if (kds_stream_shard(st, *number) == NULL)
		return kds_fail(e, ENOENT, "%s: no such shard", id);
	return 0;
}

int
kds_stream_shard_text(const struct kds_stream *st, uint64_t number,
    struct kds_shard_text *d, struct kds_err *e)
{
	const struct kds_shard *sh = kds_stream_shard(st, number);

	memset(d, 0, sizeof(*d));
	kds_shard_id(number, d->id);
	if (sh == NULL)
		return kds_fail(e, ENOENT, "%s: no such shard", d->id);
	if (sh->parent >= 0)
		kds_shard_id((uint64_t)sh->parent, d->parent);
	if (sh->adjacent >= 0)
		kds_shard_id((uint64_t)sh->adjacent, d->adjacent);
	kds_hashkey_format(sh->start_hash, d->start_hash);
	kds_hashkey_format(sh->end_hash, d->end_hash);
	kds_seq_format(number, 1, d->start_seq);
	if (!sh->open)
		kds_seq_format(number, sh->end_counter, d->end_seq);
	return 0;
}

/*
 * A directory of the stream, never through a symbolic link.  O_NOFOLLOW
 * with O_DIRECTORY says "Not a directory" of a link, which misleads: a
 * link gives ELOOP here, as it does for the files.
 */
int
kds_opendirat(int dirfd, const char *name)
{
	struct stat sb;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 && errno == ENOTDIR &&
	    fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(sb.st_mode))
		errno = ELOOP;
	return fd;
}

int
kds_shard_dir_open(struct kds_stream *st, uint64_t shard, struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1];
	int fd;

	kds_shard_id(shard, id);
	fd = kds_opendirat(st->dirfd, id);
	if (fd == -1)
		return kds_fail_errno(e, "%s", id);
	return fd;
}
