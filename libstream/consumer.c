/*
 * consumer.c: a named consumer, the KCL's model over files (kds-stream(5),
 * CONSUMERS).  It reads the shards it leases from its checkpoint in each,
 * and moves a checkpoint only when the caller says the records returned so
 * far were delivered (kds_consumer_commit): a crash at any moment delivers
 * again at most the records after the last checkpoint, and skips none.
 *
 * Its processes share the shards: each leases at most its share, gives up
 * what is over it, and looks again every LEASE_POLL_MS for shards that are
 * free (a process died) or that may now be read (their parents are done).
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define LEASE_POLL_MS	500	/* how soon a dead worker's shards move */
#define NAME_MAX_CHARS	128

struct held {
	uint64_t	shard;
	int		fd;		/* the lease */
	uint64_t	committed;	/* counter in the checkpoint, 0: none */
	uint64_t	delivered;	/* counter last returned */
	int64_t		delivered_ms;
};

struct kds_consumer {
	struct kds_stream	*st;
	char			*name;
	int			 cdirfd;
	struct kds_iter_opts	 start;
	struct kds_reader	*rd;
	struct held		*h;
	size_t			 nh, caph;
	char			 worker[64];
	int			 workerfd;
	int64_t			 maintained;	/* monotonic ms */
	int			 due;		/* look at leases at once */
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
kds_consumer_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX_CHARS || s[0] == '.')
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_.-") == n;
}

static void
ckpt_name(uint64_t shard, char out[KDS_SHARD_ID_LEN + 12])
{
	kds_shard_id(shard, out);
	strcat(out, ".checkpoint");
}

/* Read a small file whole; ENOENT gives len 0 and errno ENOENT. */
static int
read_small(int dirfd, const char *name, char *buf, size_t cap, size_t *len,
    struct kds_err *e)
{
	ssize_t n;
	int fd;

	*len = 0;
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		return 0;
	if (fd == -1)
		return kds_fail_errno(e, "%s", name);
	while ((n = read(fd, buf, cap - 1)) == -1 && errno == EINTR)
		;
	close(fd);
	if (n == -1)
		return kds_fail_errno(e, "%s: read", name);
	buf[n] = '\0';
	*len = (size_t)n;
	return 0;
}

int
kds_checkpoint_read(int cdirfd, uint64_t shard, struct kds_checkpoint *c,
    struct kds_err *e)
{
	char name[KDS_SHARD_ID_LEN + 12], buf[128], seq[KDS_SEQ_LEN];
	uint64_t sh;
	long long ms;
	size_t len;

	memset(c, 0, sizeof(*c));
	ckpt_name(shard, name);
	if (read_small(cdirfd, name, buf, sizeof(buf), &len, e) == -1)
		return -1;
	if (len == 0)
		return 0;
	if (strcmp(buf, "SHARD_END\n") == 0) {
		c->kind = KDS_CKPT_END;
		return 0;
	}
	if (sscanf(buf, "%39[0-9] %lld\n", seq, &ms) != 2 ||
	    kds_seq_parse(seq, &sh, &c->counter) == -1 || sh != shard ||
	    c->counter == 0 || buf[len - 1] != '\n')
		return kds_fail(e, EINVAL, "%s: bad checkpoint", name);
	c->kind = KDS_CKPT_AT;
	c->arrival_ms = ms;
	return 0;
}

static int
checkpoint_write(int cdirfd, uint64_t shard, const struct kds_checkpoint *c,
    struct kds_err *e)
{
	char name[KDS_SHARD_ID_LEN + 12], buf[128], seq[KDS_SEQ_LEN];
	int n;

	ckpt_name(shard, name);
	if (c->kind == KDS_CKPT_END) {
		n = snprintf(buf, sizeof(buf), "SHARD_END\n");
	} else {
		kds_seq_format(shard, c->counter, seq);
		n = snprintf(buf, sizeof(buf), "%s %" PRId64 "\n", seq,
		    c->arrival_ms);
	}
	return kds_atomic_write(cdirfd, name, buf, (size_t)n, e);
}

int
kds_consumer_start_read(int cdirfd, struct kds_iter_opts *o,
    struct kds_err *e)
{
	char buf[128];
	long long ms;
	size_t len;

	memset(o, 0, sizeof(*o));
	if (read_small(cdirfd, "start", buf, sizeof(buf), &len, e) == -1)
		return -1;
	if (len == 0)
		return kds_fail(e, ENOENT, "start: %s", strerror(ENOENT));
	if (strcmp(buf, "TRIM_HORIZON\n") == 0) {
		o->type = KDS_TRIM_HORIZON;
		return 0;
	}
	if (sscanf(buf, "AT_TIMESTAMP %lld\n", &ms) == 1 &&
	    buf[len - 1] == '\n') {
		o->type = KDS_AT_TIMESTAMP;
		o->timestamp_ms = ms;
		return 0;
	}
	return kds_fail(e, EINVAL, "start: bad start");
}

/* Fix where the consumer starts, once: the first process to get here
 * decides, for every shard and every later process. */
static int
start_fix(int cdirfd, const struct kds_iter_opts *o, struct kds_err *e)
{
	char buf[128], tmp[64];
	int n, rc;

	if (o->type == KDS_TRIM_HORIZON)
		n = snprintf(buf, sizeof(buf), "TRIM_HORIZON\n");
	else if (o->type == KDS_AT_TIMESTAMP)
		n = snprintf(buf, sizeof(buf), "AT_TIMESTAMP %" PRId64 "\n",
		    o->timestamp_ms);
	else if (o->type == KDS_LATEST)
		n = snprintf(buf, sizeof(buf), "AT_TIMESTAMP %" PRId64 "\n",
		    kds_now_ms());
	else
		return kds_fail(e, EINVAL, "a consumer starts at TRIM_HORIZON, "
		    "LATEST or AT_TIMESTAMP");
	snprintf(tmp, sizeof(tmp), ".start.%ld", (long)getpid());
	if (kds_atomic_write(cdirfd, tmp, buf, (size_t)n, e) == -1)
		return -1;
	rc = linkat(cdirfd, tmp, cdirfd, "start", 0);
	if (rc == -1 && errno != EEXIST) {
		kds_fail_errno(e, "start: link");
		unlinkat(cdirfd, tmp, 0);
		return -1;
	}
	unlinkat(cdirfd, tmp, 0);
	return kds_fsync_dir(cdirfd, "start", e);
}

/* Open STREAM/consumers/NAME, made when create is set. */
static int
cdir_open(struct kds_stream *st, const char *name, int create,
    struct kds_err *e)
{
	char what[160];		/* "consumers/" and a name of 128 at most */
	int top, fd, made;

	if (!kds_consumer_name_ok(name))
		return kds_fail(e, EINVAL, "bad consumer name '%.128s'", name);
	/* EEXIST is the usual case; any other failure is the one to name. */
	if (create) {
		made = mkdirat(st->dirfd, "consumers", KDS_DIR_MODE) == 0;
		if (!made && errno != EEXIST)
			return kds_fail_errno(e, "consumers: mkdir");
		if (made && kds_fsync_dir(st->dirfd, "consumers", e) == -1)
			return -1;
	}
	top = kds_opendirat(st->dirfd, "consumers");
	if (top != -1 && create && made &&
	    kds_perm_fix(st->dirfd, top, "consumers", e) == -1) {
		close(top);
		return -1;
	}
	if (top == -1 && errno == ENOENT && !create)
		return kds_fail(e, ENOENT, "consumer %s: no such consumer", name);
	if (top == -1)
		return kds_fail_errno(e, "consumers");
	if (create) {
		made = mkdirat(top, name, KDS_DIR_MODE) == 0;
		if (!made && errno != EEXIST) {
			kds_fail_errno(e, "consumers/%s: mkdir", name);
			close(top);
			return -1;
		}
		if (made && kds_fsync_dir(top, "consumers", e) == -1) {
			close(top);
			return -1;
		}
	}
	fd = kds_opendirat(top, name);
	snprintf(what, sizeof(what), "consumers/%s", name);
	if (fd != -1 && create && made &&
	    kds_perm_fix(top, fd, what, e) == -1) {
		close(fd);
		close(top);
		return -1;
	}
	close(top);
	if (fd == -1 && errno == ENOENT)
		return kds_fail(e, ENOENT, "consumer %s: no such consumer", name);
	if (fd == -1)
		return kds_fail_errno(e, "consumers/%s", name);
	return fd;
}

struct kds_consumer *
kds_consumer_open(struct kds_stream *st, const char *name,
    const struct kds_iter_opts *o, struct kds_err *e)
{
	static const uint64_t none;
	struct kds_iter_opts ro = { .type = KDS_TRIM_HORIZON, .shards = &none,
	    .nshards = 0, .flags = o->flags & KDS_READ_FOLLOW };
	struct kds_consumer *c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->name = strdup(name)) == NULL) {
		free(c);
		kds_fail_errno(e, "consumer");
		return NULL;
	}
	c->st = st;
	c->cdirfd = c->workerfd = -1;
	c->due = 1;
	if ((c->cdirfd = cdir_open(st, name, 1, e)) == -1)
		goto fail;
	if (start_fix(c->cdirfd, o, e) == -1 ||
	    kds_consumer_start_read(c->cdirfd, &c->start, e) == -1 ||
	    (c->workerfd = kds_worker_register(c->cdirfd, c->worker, e)) == -1) {
		struct kds_err inner = *e;

		kds_fail(e, inner.errnum, "consumer %s: %s", name, inner.msg);
		goto fail;
	}
	if ((c->rd = kds_reader_open(st, &ro, e)) == NULL)
		goto fail;
	return c;
fail:
	kds_consumer_close(c);
	return NULL;
}

static struct held *
find_held(struct kds_consumer *c, uint64_t shard)
{
	for (size_t i = 0; i < c->nh; i++)
		if (c->h[i].shard == shard)
			return &c->h[i];
	return NULL;
}

/* Give a lease up; the caller made sure nothing is left uncommitted. */
static int
give_up(struct kds_consumer *c, struct held *h, struct kds_err *e)
{
	if (kds_reader_drop(c->rd, h->shard, e) == -1)
		return -1;
	kds_lease_release(h->fd);
	*h = c->h[--c->nh];
	return 0;
}

static int
take(struct kds_consumer *c, uint64_t shard, int *got, struct kds_err *e)
{
	struct kds_checkpoint ck;
	struct kds_iter_opts o = c->start;
	char seq[KDS_SEQ_LEN];
	struct held *h;
	int fd, rc;

	*got = 0;
	if ((rc = kds_lease_try(c->cdirfd, shard, &fd, e)) != 1)
		return rc;
	/* Under the lease the checkpoint is ours, and current. */
	if (kds_checkpoint_read(c->cdirfd, shard, &ck, e) == -1)
		goto fail;
	if (ck.kind == KDS_CKPT_END) {
		kds_lease_release(fd);
		return 0;
	}
	if (ck.kind == KDS_CKPT_AT) {
		kds_seq_format(shard, ck.counter, seq);
		o.type = KDS_AFTER_SEQUENCE_NUMBER;
		o.sequence = seq;
	}
	if (c->nh == c->caph) {
		size_t nc = c->caph ? c->caph * 2 : 8;
		struct held *nh = reallocarray(c->h, nc, sizeof(*nh));

		if (nh == NULL) {
			kds_fail_errno(e, "consumer");
			goto fail;
		}
		c->h = nh;
		c->caph = nc;
	}
	if (kds_reader_add(c->rd, shard, &o, e) == -1)
		goto fail;
	h = &c->h[c->nh++];
	h->shard = shard;
	h->fd = fd;
	h->committed = h->delivered = ck.kind == KDS_CKPT_AT ? ck.counter : 0;
	h->delivered_ms = ck.arrival_ms;
	*got = 1;
	return 0;
fail:
	kds_lease_release(fd);
	return -1;
}

/* May this consumer read the shard: not done, parents done. */
static int
eligible(struct kds_consumer *c, const struct kds_shard *sh, int *yes,
    struct kds_err *e)
{
	struct kds_checkpoint ck;
	int64_t p[2] = { sh->parent, sh->adjacent };

	*yes = 0;
	if (kds_checkpoint_read(c->cdirfd, sh->number, &ck, e) == -1)
		return -1;
	if (ck.kind == KDS_CKPT_END)
		return 0;
	for (int i = 0; i < 2; i++) {
		if (p[i] < 0 || kds_stream_shard(c->st, (uint64_t)p[i]) == NULL)
			continue;	/* no parent, or expired and gone */
		if (find_held(c, (uint64_t)p[i]) != NULL)
			return 0;
		if (kds_checkpoint_read(c->cdirfd, (uint64_t)p[i], &ck, e) == -1)
			return -1;
		if (ck.kind != KDS_CKPT_END)
			return 0;
	}
	*yes = 1;
	return 0;
}

/*
 * Finish the shards read to their end, give up what is over this process's
 * share and lease what is free, up to it.  *changed: a shard was finished
 * or leased, so there may be more to read at once.
 */
static int
maintain(struct kds_consumer *c, int *changed, struct kds_err *e)
{
	const struct kds_meta *m;
	uint64_t *cand = NULL;
	size_t workers, ncand = 0, nel = 0, target;
	int reloaded, yes, got, rc = -1;

	*changed = 0;
	c->maintained = mono_ms();
	c->due = 0;
	if (kds_stream_reload(c->st, &reloaded, e) == -1)
		return -1;
	m = &c->st->meta;
	for (size_t i = 0; i < c->nh;) {
		struct held *h = &c->h[i];
		struct kds_checkpoint end = { .kind = KDS_CKPT_END };

		if (h->delivered != h->committed ||
		    !kds_reader_done(c->rd, h->shard)) {
			i++;
			continue;
		}
		if (kds_stream_shard(c->st, h->shard) != NULL &&
		    checkpoint_write(c->cdirfd, h->shard, &end, e) == -1)
			return -1;
		if (give_up(c, h, e) == -1)
			return -1;
		*changed = 1;
	}
	if (kds_worker_count(c->cdirfd, 1, &workers, e) == -1)
		return -1;
	if (workers == 0)
		workers = 1;
	if ((cand = calloc(m->nshards + 1, sizeof(*cand))) == NULL)
		return kds_fail_errno(e, "consumer");
	for (size_t i = 0; i < m->nshards; i++) {
		if (find_held(c, m->shards[i].number) != NULL) {
			nel++;
			continue;
		}
		if (eligible(c, &m->shards[i], &yes, e) == -1)
			goto out;
		if (yes) {
			nel++;
			cand[ncand++] = m->shards[i].number;
		}
	}
	target = (nel + workers - 1) / workers;
	/* Over our share (more processes now): give up clean leases. */
	for (size_t i = c->nh; i-- > 0 && c->nh > target;) {
		if (c->h[i].delivered == c->h[i].committed &&
		    give_up(c, &c->h[i], e) == -1)
			goto out;
	}
	for (size_t i = 0; i < ncand && c->nh < target; i++) {
		if (take(c, cand[i], &got, e) == -1)
			goto out;
		*changed |= got;
	}
	rc = 0;
out:
	free(cand);
	return rc;
}

int
kds_consumer_next(struct kds_consumer *c, struct kds_record *rec,
    struct kds_err *e)
{
	for (;;) {
		int rc = kds_reader_next(c->rd, rec, e), changed;
		struct held *h;

		if (rc == 1) {
			if ((h = find_held(c, rec->shard)) != NULL) {
				h->delivered = rec->counter;
				h->delivered_ms = rec->arrival_ms;
			}
			return 1;
		}
		if (rc == -1)
			return -1;
		for (size_t i = 0; i < c->nh; i++)
			if (c->h[i].delivered == c->h[i].committed &&
			    kds_reader_done(c->rd, c->h[i].shard))
				c->due = 1;
		if (!c->due && mono_ms() - c->maintained < LEASE_POLL_MS)
			return 0;
		if (maintain(c, &changed, e) == -1)
			return -1;
		if (!changed)
			return 0;
	}
}

int
kds_consumer_commit(struct kds_consumer *c, struct kds_err *e)
{
	int changed;

	for (size_t i = 0; i < c->nh; i++) {
		struct held *h = &c->h[i];
		struct kds_checkpoint ck = { KDS_CKPT_AT, h->delivered,
		    h->delivered_ms };

		if (h->delivered == h->committed)
			continue;
		if (checkpoint_write(c->cdirfd, h->shard, &ck, e) == -1) {
			struct kds_err inner = *e;

			return kds_fail(e, inner.errnum, "consumer %s: %s",
			    c->name, inner.msg);
		}
		h->committed = h->delivered;
	}
	/* A busy process never idles: share out from here too. */
	if (mono_ms() - c->maintained >= LEASE_POLL_MS)
		return maintain(c, &changed, e);
	return 0;
}

int
kds_consumer_wait(struct kds_consumer *c, int timeout_ms,
    const sigset_t *mask, struct kds_err *e)
{
	int64_t left = LEASE_POLL_MS - (mono_ms() - c->maintained);

	if (left < 0)
		left = 0;
	if (timeout_ms < 0 || timeout_ms > left)
		timeout_ms = (int)left;
	return kds_reader_wait(c->rd, timeout_ms, mask, e);
}

int
kds_consumer_polling(const struct kds_consumer *c)
{
	return kds_reader_polling(c->rd);
}

void
kds_consumer_close(struct kds_consumer *c)
{
	if (c == NULL)
		return;
	kds_reader_close(c->rd);
	for (size_t i = 0; i < c->nh; i++)
		kds_lease_release(c->h[i].fd);
	if (c->cdirfd != -1) {
		kds_worker_unregister(c->cdirfd, c->worker, c->workerfd);
		close(c->cdirfd);
	}
	free(c->h);
	free(c->name);
	free(c);
}

/* Reset (drop the checkpoints and the start) or drop a whole consumer;
 * refused while a process of it runs. */
int
kds_consumer_reset(struct kds_stream *st, const char *name, int drop,
    struct kds_err *e)
{
	struct dirent *de;
	size_t workers;
	DIR *d;
	int fd, dfd, rc = -1;

	if ((fd = cdir_open(st, name, 0, e)) == -1)
		return -1;
	if (kds_worker_count(fd, 1, &workers, e) == -1)
		goto out;
	if (workers > 0) {
		kds_fail(e, EBUSY, "consumer %s: in use by %zu process%s", name,
		    workers, workers == 1 ? "" : "es");
		goto out;
	}
	if ((dfd = dup(fd)) == -1 || (d = fdopendir(dfd)) == NULL) {
		kds_fail_errno(e, "consumers/%s", name);
		goto out;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (!drop && strcmp(de->d_name, "start") != 0 && (n < 11 ||
		    strcmp(de->d_name + n - 11, ".checkpoint") != 0))
			continue;
		if (unlinkat(fd, de->d_name, 0) == -1 && errno != ENOENT) {
			kds_fail_errno(e, "consumers/%s/%s", name, de->d_name);
			closedir(d);
			goto out;
		}
	}
	closedir(d);
	if (drop) {
		int top = openat(st->dirfd, "consumers", O_RDONLY |
		    O_DIRECTORY | O_CLOEXEC);

		if (top == -1 || unlinkat(top, name, AT_REMOVEDIR) == -1) {
			kds_fail_errno(e, "consumers/%s", name);
			if (top != -1)
				close(top);
			goto out;
		}
		rc = kds_fsync_dir(top, "consumers", e);
		close(top);
		goto out;
	}
	rc = kds_fsync_dir(fd, name, e);
out:
	close(fd);
	return rc;
}
