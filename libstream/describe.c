/*
 * describe.c: what AWS DescribeStream, ListShards and the stream metrics
 * tell, gathered from metadata and indexes without reading every record:
 * a shard's last record comes from its tail file when that checks out
 * (else from the last index entry and a short walk), its oldest retained
 * record from a seek, and since counters are contiguous within a shard, a
 * count of records is a subtraction.  Records out, metadata out: the same
 * numbers serve kds-describe and any other front end.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* The shard's files: segments counted, every file's bytes summed, so
 * that compressed segments count as what they take on disk. */
static int
shard_files(int dirfd, struct kds_shard_desc *d, struct kds_err *e)
{
	struct dirent *de;
	struct stat sb;
	char seg[256], id[KDS_SHARD_ID_LEN + 1];
	DIR *dir;
	int fd;

	kds_shard_id(d->number, id);
	if ((fd = dup(dirfd)) == -1 || (dir = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return kds_fail_errno(e, "%s: opendir", id);
	}
	while ((errno = 0, de = readdir(dir)) != NULL) {
		size_t n = strlen(de->d_name);

		if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(sb.st_mode))
			continue;
		d->bytes += (uint64_t)sb.st_size;
		if (n > 4 && strcmp(de->d_name + n - 4, ".seg") == 0)
			d->segments++;
		/* A compressed one, unless its SEQ.seg is still there. */
		if (n > 5 && n < sizeof(seg) &&
		    strcmp(de->d_name + n - 5, ".zseg") == 0) {
			snprintf(seg, sizeof(seg), "%.*s.seg", (int)n - 5,
			    de->d_name);
			if (faccessat(dirfd, seg, F_OK, AT_SYMLINK_NOFOLLOW) == -1)
				d->segments++;
		}
	}
	/* A listing cut short would give numbers that look right. */
	if (errno != 0) {
		kds_fail_errno(e, "%s: readdir", id);
		closedir(dir);
		return -1;
	}
	closedir(dir);
	return 0;
}

/* The last record from tail, when it checks out: 1, else 0. */
static int
tail_hint(int dirfd, uint64_t shard, uint64_t *last, int64_t *arrival)
{
	unsigned char t[TAIL_LEN];
	char seg[64];
	struct stat sb;
	int fd, ok = 0;

	if ((fd = openat(dirfd, "tail", O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return 0;
	if (pread(fd, t, sizeof(t), 0) == (ssize_t)sizeof(t) &&
	    memcmp(t, TAIL_MAGIC, 8) == 0 &&
	    get_le64(t + 56) == kds_checksum(t, 56, 0)) {
		kds_seg_name(shard, get_le64(t + 8), ".seg", seg, sizeof(seg));
		ok = fstatat(dirfd, seg, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (uint64_t)sb.st_size == get_le64(t + 16);
		*last = get_le64(t + 24);
		*arrival = (int64_t)get_le64(t + 32);
	}
	close(fd);
	return ok;
}

static int
describe_shard(struct kds_stream *st, const struct kds_shard *sh,
    struct kds_shard_desc *d, struct kds_err *e)
{
	const struct kds_iter_opts th = { .type = KDS_TRIM_HORIZON };
	struct kds_iter_opts at = { .type = KDS_AT_SEQUENCE_NUMBER };
	char seq[KDS_SEQ_LEN];
	int64_t floor_ms = kds_now_ms() - st->meta.retention_s * 1000, ms;
	uint64_t c;
	int dirfd, rc;

	d->number = sh->number;
	d->open = sh->open;
	d->parent = sh->parent;
	d->adjacent = sh->adjacent;
	d->start_hash = sh->start_hash;
	d->end_hash = sh->end_hash;
	d->end_counter = sh->end_counter;
	if ((dirfd = kds_shard_dir_open(st, sh->number, e)) == -1)
		return -1;
	rc = shard_files(dirfd, d, e);
	if (rc == 0 && !tail_hint(dirfd, sh->number, &d->last_counter,
	    &d->newest_ms)) {
		/* No hint: where LATEST stands, then the record before it. */
		const struct kds_iter_opts la = { .type = KDS_LATEST };

		rc = kds_shard_position(st, sh->number, &la, &c, &ms, e);
		d->last_counter = c - 1;
		d->newest_ms = INT64_MIN;
		if (rc == 0 && d->last_counter > 0) {
			kds_seq_format(sh->number, d->last_counter, seq);
			at.sequence = seq;
			rc = kds_shard_position(st, sh->number, &at, &c,
			    &d->newest_ms, e);
			rc = rc == -1 ? -1 : 0;
		}
	}
	close(dirfd);
	if (rc == -1)
		return -1;
	if (d->last_counter == 0 || d->newest_ms < floor_ms) {
		d->first_counter = d->last_counter + 1;	/* nothing retained */
		return 0;
	}
	if ((rc = kds_shard_position(st, sh->number, &th, &d->first_counter,
	    &d->oldest_ms, e)) == -1)
		return -1;
	if (rc == 1)
		d->records = d->last_counter - d->first_counter + 1;
	return 0;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct kds_consumer_desc *)a)->name,
	    ((const struct kds_consumer_desc *)b)->name);
}

/* The consumer's lag in one shard: from its checkpoint, or its start. */
static int
lag(struct kds_stream *st, int cdirfd, const struct kds_iter_opts *start,
    const struct kds_shard_desc *sd, struct kds_consumer_shard *cs,
    struct kds_err *e)
{
	struct kds_checkpoint ck;
	uint64_t next;
	int64_t ms = 0;
	int rc;

	cs->shard = sd->number;
	if (kds_checkpoint_read(cdirfd, sd->number, &ck, e) == -1)
		return -1;
	cs->kind = ck.kind;
	cs->counter = ck.counter;
	if (ck.kind == KDS_CKPT_END || sd->records == 0)
		return 0;
	if (ck.kind == KDS_CKPT_AT) {
		next = ck.counter + 1;
		ms = ck.arrival_ms;
		if (next < sd->first_counter)
			next = sd->first_counter;	/* expired unread */
	} else {
		if ((rc = kds_shard_position(st, sd->number, start, &next, &ms,
		    e)) == -1)
			return -1;
	}
	if (next > sd->last_counter)
		return 0;
	cs->behind = sd->last_counter - next + 1;
	cs->ms_behind = sd->newest_ms > ms ? sd->newest_ms - ms : 0;
	return 0;
}

static int
describe_consumer(struct kds_stream *st, int topfd, const char *name,
    struct kds_description *d, struct kds_consumer_desc *cd,
    struct kds_err *e)
{
	struct kds_iter_opts start;
	int fd, rc = -1;

	snprintf(cd->name, sizeof(cd->name), "%s", name);
	fd = openat(topfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return kds_fail_errno(e, "consumers/%s", name);
	if (kds_consumer_start_read(fd, &start, e) == -1) {
		/* Made this instant, its start not yet fixed: from the top.
		 * Any other failure (unreadable, damaged) is said, as
		 * kds-get says it. */
		if (e->errnum != ENOENT)
			goto out;
		memset(&start, 0, sizeof(start));
		start.type = KDS_TRIM_HORIZON;
	}
	if (kds_worker_count(fd, 0, &cd->processes, e) == -1)
		goto out;
	if ((cd->shards = calloc(d->nshards + 1, sizeof(*cd->shards))) == NULL) {
		kds_fail_errno(e, "describe");
		goto out;
	}
	for (size_t i = 0; i < d->nshards; i++) {
		if (lag(st, fd, &start, &d->shards[i], &cd->shards[i], e) == -1)
			goto out;
		cd->nshards++;
	}
	rc = 0;
out:
	close(fd);
	if (rc == -1) {
		struct kds_err inner = *e;

		kds_fail(e, inner.errnum, "consumer %s: %s", name, inner.msg);
	}
	return rc;
}

static int
describe_consumers(struct kds_stream *st, struct kds_description *d,
    struct kds_err *e)
{
	struct dirent *de;
	DIR *dir;
	int top, fd;

	top = openat(st->dirfd, "consumers", O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (top == -1 && errno == ENOENT)
		return 0;
	if (top == -1)
		return kds_fail_errno(e, "consumers");
	if ((fd = dup(top)) == -1 || (dir = fdopendir(fd)) == NULL) {
		kds_fail_errno(e, "consumers");
		if (fd != -1)
			close(fd);
		close(top);
		return -1;
	}
	while ((errno = 0, de = readdir(dir)) != NULL) {
		struct kds_consumer_desc *nc;

		if (!kds_consumer_name_ok(de->d_name) ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		nc = reallocarray(d->consumers, d->nconsumers + 1, sizeof(*nc));
		if (nc == NULL) {
			kds_fail_errno(e, "describe");
			goto fail;
		}
		d->consumers = nc;
		memset(&nc[d->nconsumers], 0, sizeof(*nc));
		d->nconsumers++;
		if (describe_consumer(st, top, de->d_name, d,
		    &nc[d->nconsumers - 1], e) == -1)
			goto fail;
	}
	if (errno != 0) {
		kds_fail_errno(e, "consumers: readdir");
		goto fail;
	}
	closedir(dir);
	close(top);
	if (d->nconsumers > 0)	/* none: NULL, which qsort must not get */
		qsort(d->consumers, d->nconsumers, sizeof(*d->consumers),
		    cmp_name);
	return 0;
fail:
	closedir(dir);
	close(top);
	return -1;
}

int
kds_stream_describe(struct kds_stream *st, struct kds_description *d,
    struct kds_err *e)
{
	const struct kds_meta *m;
	int changed;

	memset(d, 0, sizeof(*d));
	if (kds_stream_reload(st, &changed, e) == -1)
		return -1;
	m = &st->meta;
	d->created_ms = m->created_ms;
	d->retention_s = m->retention_s;
	d->segment_bytes = m->segment_bytes;
	d->segment_age_s = m->segment_age_s;
	d->compress = m->compress;
	d->compress_after_s = m->compress_after_s;
	d->oldest_ms = INT64_MAX;
	d->newest_ms = INT64_MIN;
	if ((d->shards = calloc(m->nshards + 1, sizeof(*d->shards))) == NULL)
		return kds_fail_errno(e, "describe");
	for (size_t i = 0; i < m->nshards; i++) {
		struct kds_shard_desc *sd = &d->shards[i];

		if (describe_shard(st, &m->shards[i], sd, e) == -1)
			goto fail;
		d->nshards++;
		if (sd->open)
			d->open++;
		else
			d->closed++;
		d->records += sd->records;
		d->bytes += sd->bytes;
		if (sd->records > 0 && sd->oldest_ms < d->oldest_ms)
			d->oldest_ms = sd->oldest_ms;
		if (sd->records > 0 && sd->newest_ms > d->newest_ms)
			d->newest_ms = sd->newest_ms;
	}
	if (d->records == 0)
		d->oldest_ms = d->newest_ms = 0;
	if (describe_consumers(st, d, e) == -1)
		goto fail;
	return 0;
fail:
	kds_description_free(d);
	return -1;
}

void
kds_description_free(struct kds_description *d)
{
	for (size_t i = 0; i < d->nconsumers; i++)
		free(d->consumers[i].shards);
	free(d->consumers);
	free(d->shards);
	memset(d, 0, sizeof(*d));
}
