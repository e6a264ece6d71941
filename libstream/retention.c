/*
 * retention.c: removing what the retention period has passed
 * (kds-stream(5), RETENTION), a whole segment at a time: the cost is an
 * unlink per segment, and a frame or two read to decide, not a pass over
 * the records.
 *
 * One run holds STREAM/lock throughout.  It plans every shard first
 * (which segments have expired, without a lock: sealed segments never
 * change), then, shard by shard, archives and removes them.  The last
 * segment of an open shard is the writer's: it is removed only under the
 * shard's tail lock, behind a new empty segment that keeps the counters
 * going (kds_shard_writer_seal).  A closed shard whose records have all
 * expired leaves meta first and its directory after, so that meta never
 * names a shard without segments.
 *
 * Then it compresses (kds-stream(5), COMPRESSION) the sealed segments that
 * compress-after has passed, and finishes conversions a crash cut short.
 * It is the only converter, and holds STREAM/lock: two never race.
 */
#define _GNU_SOURCE
#include <sys/file.h>
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define WALK_CHUNK	(256 * 1024)
#define HOUR_MS		INT64_C(3600000)

struct seg {
	uint64_t	first;		/* first counter, the segment's name */
	uint64_t	last;		/* last counter */
	uint64_t	size;		/* bytes: header and whole frames */
	int64_t		oldest;		/* first record's arrival */
	unsigned char	hdr[SEG_HEADER_LEN];
	int		compressed;	/* only SEQ.zseg is there */
	int		both;		/* SEQ.seg and SEQ.zseg: cut short */
};

/* What to do with one shard. */
struct plan {
	uint64_t	 shard;
	int		 open;
	struct seg	*segs;		/* expired, oldest first */
	size_t		 n;
	int		 active;	/* segs[n-1] is the open shard's last */
	int		 drop;		/* closed, all expired: leaves meta */
	struct seg	*zsegs;		/* to compress, or finish compressing */
	size_t		 nz;
};

struct expire {
	struct kds_stream		*st;
	const struct kds_expire_opts	*o;
	struct kds_err			*e;
	int64_t				 now, floor;
	int64_t				 cfloor;	/* compress older;
							   INT64_MIN: never */
	char				 name[256];	/* for archives */
	uint64_t			 total, done;	/* bytes to archive */
	int				 dirfd;		/* shard directory */
};

/* A byte window over a segment file, read with pread. */
struct window {
	int		 fd;
	unsigned char	*buf;
	size_t		 cap, have;
	uint64_t	 base, size;
};

static void
say(struct expire *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
say(struct expire *x, const char *fmt, ...)
{
	char line[4096 + 512];
	va_list ap;

	if (x->o->report == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	x->o->report(x->o->arg, line);
}

/* "24h", "90s", "7d": the largest unit that is exact. */
static void
duration(int64_t s, char *out, size_t n)
{
	if (s == 0)
		snprintf(out, n, "0s");
	else if (s % 86400 == 0)
		snprintf(out, n, "%" PRId64 "d", s / 86400);
	else if (s % 3600 == 0)
		snprintf(out, n, "%" PRId64 "h", s / 3600);
	else if (s % 60 == 0)
		snprintf(out, n, "%" PRId64 "m", s / 60);
	else
		snprintf(out, n, "%" PRId64 "s", s);
}

static void
segpath(uint64_t shard, uint64_t first, const char *suffix, char *out,
    size_t n)
{
	char id[KDS_SHARD_ID_LEN + 1], seg[64];

	kds_shard_id(shard, id);
	kds_seg_name(shard, first, suffix, seg, sizeof(seg));
	snprintf(out, n, "%s/%s", id, seg);
}

/* Make [off, off + want) readable in w, or as much of it as the file has. */
static int
window_at(struct window *w, uint64_t off, size_t want, struct kds_err *e)
{
	if (off >= w->base && off + want <= w->base + w->have)
		return 0;
	if (off + want > w->size)
		want = (size_t)(w->size - off);
	/* Read ahead: a walk takes many small frames in few reads. */
	if (want > w->cap || w->cap < WALK_CHUNK) {
		size_t cap = want > WALK_CHUNK ? want : WALK_CHUNK;
		unsigned char *nb = realloc(w->buf, cap);

		if (nb == NULL)
			return kds_fail_errno(e, "walk");
		w->buf = nb;
		w->cap = cap;
	}
	w->base = off;
	w->have = 0;
	while (w->have < w->cap && w->base + w->have < w->size) {
		ssize_t n = pread(w->fd, w->buf + w->have, w->cap - w->have,
		    (off_t)(w->base + w->have));

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return kds_fail_errno(e, "read");
		if (n == 0)
			break;
		w->have += (size_t)n;
	}
	return 0;
}

/*
 * Decode the frame at off.  1 a frame, 0 the end (nothing there, a frame
 * cut short, or a torn tail), -1 corruption or an I/O error.
 */
static int
frame_at(struct window *w, uint64_t off, uint64_t salt, const char *where,
    struct kds_frame *f, struct kds_err *e)
{
	const char *why = "bad frame length";
	enum frame_status fs;
	size_t len = FRAME_HEADER_LEN;
	int torn;

	if (off + 12 > w->size)
		return 0;
	if (window_at(w, off, 12, e) == -1)
		return -1;
	len = get_le32(w->buf + (off - w->base) + 8);
	if (len > FRAME_MAX_LEN || len < 12)
		len = 12;
	if (window_at(w, off, len, e) == -1)
		return -1;
	fs = kds_frame_decode(w->buf + (off - w->base),
	    (size_t)(w->base + w->have - off), salt, f, &why);
	if (fs == FRAME_OK)
		return 1;
	if (fs == FRAME_INCOMPLETE && off + len > w->size)
		return 0;
	torn = kds_tail_is_torn(w->fd, off, w->size, salt, fs == FRAME_BAD, e);
	if (torn == -1)
		return -1;
	if (torn)
		return 0;
	return kds_fail(e, 0, "%s: offset %llu: %s", where,
	    (unsigned long long)off, why);
}

/* An open segment: its descriptor, header bytes and size.  A compressed
 * one (only SEQ.zseg there) is not opened: its header tells enough. */
struct segfile {
	int			fd;
	uint64_t		size;
	struct kds_seg_header	h;
	unsigned char		hdr[SEG_HEADER_LEN];
	char			where[KDS_SHARD_ID_LEN + 1 + 64];
	int			compressed, both;
	struct kds_zseg_header	zh;
};

static int
seg_open(struct expire *x, uint64_t shard, uint64_t first, struct segfile *sf)
{
	char name[64];
	struct stat sb;
	const char *why;
	ssize_t n;
	int rc;

	sf->compressed = sf->both = 0;
	segpath(shard, first, ".seg", sf->where, sizeof(sf->where));
	kds_seg_name(shard, first, ".seg", name, sizeof(name));
	sf->fd = openat(x->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (sf->fd == -1 && errno == ENOENT) {
		segpath(shard, first, ".zseg", sf->where, sizeof(sf->where));
		if ((rc = kds_zseg_header_read(x->dirfd, shard, first, &sf->zh,
		    x->e)) == 1)
			errno = ENOENT;
		if (rc != 0)
			return rc == 1 ? kds_fail_errno(x->e, "%s", sf->where) :
			    -1;
		sf->compressed = 1;
		sf->size = sf->zh.size;
		sf->h = sf->zh.seg;
		memcpy(sf->hdr, sf->zh.seghdr, SEG_HEADER_LEN);
		return 0;
	}
	if (sf->fd == -1)
		return kds_fail_errno(x->e, "%s", sf->where);
	kds_seg_name(shard, first, ".zseg", name, sizeof(name));
	sf->both = faccessat(x->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	if (fstat(sf->fd, &sb) == -1) {
		kds_fail_errno(x->e, "%s", sf->where);
		goto fail;
	}
	sf->size = (uint64_t)sb.st_size;
	n = pread(sf->fd, sf->hdr, SEG_HEADER_LEN, 0);
	if ((why = kds_seg_header_check(sf->hdr, n < 0 ? 0 : (size_t)n, shard,
	    first, &sf->h)) != NULL) {
		kds_fail(x->e, 0, "%s: offset 0: %s", sf->where, why);
		goto fail;
	}
	return 0;
fail:
	close(sf->fd);
	sf->fd = -1;
	return -1;
}

/* The arrival of a segment's first record; *found 0 when it has none. */
static int
first_arrival(struct expire *x, struct segfile *sf, int *found, int64_t *ms)
{
	struct window w = { sf->fd, NULL, 0, 0, 0, sf->size };
	struct kds_frame f;
	int rc;

	if (sf->compressed) {
		*found = 1;
		*ms = sf->zh.first_arrival;
		return 0;
	}
	rc = frame_at(&w, SEG_HEADER_LEN, sf->h.salt, sf->where, &f, x->e);
	free(w.buf);
	if (rc == -1)
		return -1;
	if (rc == 1 && f.counter != sf->h.first_counter)
		return kds_fail(x->e, 0, "%s: offset %d: sequence number out "
		    "of order", sf->where, SEG_HEADER_LEN);
	*found = rc;
	*ms = rc ? f.arrival_ms : 0;
	return 0;
}

/*
 * The last whole frame of a segment, found from the last index entry that
 * checks out: *found, its counter and arrival, and the end of the frames.
 */
static int
last_frame(struct expire *x, struct segfile *sf, int *found, uint64_t *counter,
    int64_t *arrival, uint64_t *end)
{
	struct window w = { sf->fd, NULL, 0, 0, 0, sf->size };
	struct kds_index_entry *ix;
	uint64_t off = SEG_HEADER_LEN, expect = sf->h.first_counter;
	size_t nix;
	int rc = 0;

	if (sf->compressed) {
		*found = 1;
		*counter = sf->zh.last_counter;
		*arrival = sf->zh.last_arrival;
		*end = sf->zh.size;
		return 0;
	}
	kds_index_load(x->dirfd, strchr(sf->where, '/') + 1, &ix, &nix);
	while (nix > 0) {
		unsigned char head[FRAME_HEADER_LEN];

		if (pread(sf->fd, head, sizeof(head), (off_t)ix[nix - 1].offset)
		    == (ssize_t)sizeof(head) &&
		    get_le64(head + 16) == ix[nix - 1].counter &&
		    ix[nix - 1].counter >= expect) {
			off = ix[nix - 1].offset;
			expect = ix[nix - 1].counter;
			break;
		}
		nix--;
	}
	free(ix);
	*found = 0;
	for (;;) {
		struct kds_frame f;

		if ((rc = frame_at(&w, off, sf->h.salt, sf->where, &f,
		    x->e)) != 1)
			break;
		if (f.counter != expect) {
			rc = kds_fail(x->e, 0, "%s: offset %llu: sequence "
			    "number out of order", sf->where,
			    (unsigned long long)off);
			break;
		}
		*found = 1;
		*counter = f.counter;
		*arrival = f.arrival_ms;
		off += f.len;
		expect++;
	}
	free(w.buf);
	*end = off;
	return rc == -1 ? -1 : 0;
}

static int
push_seg(struct seg **v, size_t *n, size_t *cap, const struct seg *s)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct seg *ns = reallocarray(*v, nc, sizeof(*ns));

		if (ns == NULL)
			return -1;
		*v = ns;
		*cap = nc;
	}
	(*v)[(*n)++] = *s;
	return 0;
}

static int
add_seg(struct plan *p, const struct seg *s, size_t *cap)
{
	return push_seg(&p->segs, &p->n, cap, s);
}

/*
 * Segment s, not expired, sealed, with cur open on it: to compress when
 * its newest record is older than the compress floor (bound, the next
 * segment's first arrival, may tell without a walk), and to finish when a
 * conversion was cut short.
 */
static int
plan_compress(struct expire *x, struct plan *p, struct segfile *cur,
    struct seg *s, int found, int64_t bound, size_t *cap)
{
	uint64_t lc, end;
	int64_t newest = bound;

	if (cur->compressed)
		return 0;
	if (!cur->both) {
		if (x->cfloor == INT64_MIN)
			return 0;
		if ((!found || bound >= x->cfloor) && last_frame(x, cur, &found,
		    &lc, &newest, &end) == -1)
			return -1;
		if (!found || newest >= x->cfloor)
			return 0;
	}
	s->both = cur->both;
	if (push_seg(&p->zsegs, &p->nz, cap, s) == -1)
		return kds_fail_errno(x->e, "plan");
	return 0;
}

/*
 * Which segments of shard sh have expired: a prefix of the shard's.  Then,
 * which of the others are sealed and past compress-after.
 */
static int
plan_shard(struct expire *x, const struct kds_shard *sh, struct plan *p)
{
	struct segfile cur = { .fd = -1 }, next = { .fd = -1 };
	uint64_t *c = NULL;
	size_t n, cap = 0, zcap = 0;
	int found, rc = -1, all = 0, expiring = 1;
	int64_t t;

	p->shard = sh->number;
	p->open = sh->open;
	if (kds_seg_list(x->dirfd, sh->number, &c, &n, x->e) == -1)
		return -1;
	/* A last segment shorter than a header is an interrupted roll's
	 * (readers pass it over too); the writer removes it, and appends to
	 * the one before, which is thus not sealed. */
	if (n > 1) {
		char name[64];
		struct stat sb;

		kds_seg_name(sh->number, c[n - 1], ".seg", name, sizeof(name));
		if (fstatat(x->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(sb.st_mode) && sb.st_size < SEG_HEADER_LEN)
			n--;	/* (a planted link is opened, and refused) */
	}
	if (n == 0) {
		char id[KDS_SHARD_ID_LEN + 1];

		kds_shard_id(sh->number, id);
		kds_fail(x->e, 0, "%s: no segment", id);
		goto out;
	}
	if (seg_open(x, sh->number, c[0], &cur) == -1)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct seg s = { .first = c[i], .size = cur.size,
		    .compressed = cur.compressed };
		int64_t newest;

		memcpy(s.hdr, cur.hdr, SEG_HEADER_LEN);
		if (first_arrival(x, &cur, &found, &s.oldest) == -1)
			goto out;
		if (i + 1 < n) {
			/* Sealed: the next segment's first record bounds it. */
			if (seg_open(x, sh->number, c[i + 1], &next) == -1 ||
			    first_arrival(x, &next, &found, &newest) == -1)
				goto out;
			s.last = c[i + 1] - 1;
			/* The bound is loose after a pause in writing: the
			 * last segment before it is looked at closely. */
			if (expiring && (!found || newest >= x->floor)) {
				uint64_t lc, end;
				int f2;
				int64_t exact;

				if (last_frame(x, &cur, &f2, &lc, &exact,
				    &end) == -1)
					goto out;
				if (f2 && exact < x->floor) {
					found = 1;
					newest = exact;
				}
			}
			if (expiring && found && newest < x->floor) {
				if (add_seg(p, &s, &cap) == -1)
					goto nomem;
			} else {
				expiring = 0;
				/* Without compress-after, no SEQ.zseg can be
				 * there (kds-stream(5), COMPATIBILITY): the
				 * rest is neither expired nor to compress. */
				if (!x->st->meta.compress)
					break;
				if (s.last >= s.first && plan_compress(x, p,
				    &cur, &s, found, newest, &zcap) == -1)
					goto out;
			}
			if (cur.fd != -1)
				close(cur.fd);
			cur = next;
			next.fd = -1;
			continue;
		}
		/* The shard's last segment. */
		if (last_frame(x, &cur, &found, &s.last, &newest, &s.size) == -1)
			goto out;
		if (expiring && found && newest < x->floor) {
			if (add_seg(p, &s, &cap) == -1)
				goto nomem;
			p->active = sh->open;
		} else if (!sh->open && found && plan_compress(x, p, &cur, &s,
		    found, newest, &zcap) == -1) {
			goto out;
		}
		t = found && newest > cur.h.created_ms ? newest :
		    cur.h.created_ms;
		all = !sh->open && t < x->floor;
	}
	p->drop = all;
	rc = 0;
	goto out;
nomem:
	kds_fail_errno(x->e, "plan");
out:
	if (cur.fd != -1)
		close(cur.fd);
	if (next.fd != -1)
		close(next.fd);
	free(c);
	return rc;
}

static void
progress(void *arg, uint64_t bytes)
{
	struct expire *x = arg;

	x->done += bytes;
	if (x->o->progress != NULL)
		x->o->progress(x->o->arg, x->done, x->total);
}

/* Remove stale NAME.tmp files of this shard from an hour directory, and
 * collect the archives of the shard there: ranges[2 * i], [2 * i + 1]. */
static int
scan_hour(struct expire *x, int hourfd, uint64_t shard, char ***names,
    uint64_t **ranges, size_t *n)
{
	char id[KDS_SHARD_ID_LEN + 1];
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int fd;

	*names = NULL;
	*ranges = NULL;
	*n = 0;
	kds_shard_id(shard, id);
	if ((fd = dup(hourfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return kds_fail_errno(x->e, "opendir");
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		uint64_t sh, a, b;
		size_t len = strlen(de->d_name);

		if (strncmp(de->d_name, id, KDS_SHARD_ID_LEN) != 0)
			continue;
		if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
			if (!x->o->dry_run)
				unlinkat(hourfd, de->d_name, 0);
			continue;
		}
		if (kds_archive_name_parse(de->d_name, &sh, &a, &b) == -1 ||
		    sh != shard)
			continue;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			char **nn = reallocarray(*names, nc, sizeof(*nn));
			uint64_t *nr;

			if (nn != NULL)
				*names = nn;
			nr = reallocarray(*ranges, nc, 2 * sizeof(*nr));
			if (nn == NULL || nr == NULL)
				goto nomem;
			*ranges = nr;
			cap = nc;
		}
		if (((*names)[*n] = strdup(de->d_name)) == NULL)
			goto nomem;
		(*ranges)[2 * *n] = a;
		(*ranges)[2 * *n + 1] = b;
		(*n)++;
	}
	closedir(d);
	return 0;
nomem:
	closedir(d);
	return kds_fail_errno(x->e, "archives");
}

/*
 * Archive g[0..n), the expired segments of one shard whose first records
 * arrived in one hour: those not yet in a complete archive of that hour go
 * into a new one.
 */
static int
archive_group(struct expire *x, struct plan *p, struct seg *g, size_t n)
{
	struct kds_archive_member *m = NULL;
	char dir[4096], name[128], what[4096 + 128], id[KDS_SHARD_ID_LEN + 1];
	char **names = NULL;
	uint64_t *ranges = NULL;
	size_t nnames = 0, k = 0;
	int hourfd, rc = -1;

	kds_shard_id(p->shard, id);
	hourfd = kds_archive_dir_open(x->o->archive_dir, x->name, g[0].oldest,
	    !x->o->dry_run, dir, sizeof(dir), x->e);
	if (hourfd == -1 && !(x->o->dry_run && errno == ENOENT))
		return -1;
	if (hourfd != -1 && scan_hour(x, hourfd, p->shard, &names, &ranges,
	    &nnames) == -1)
		goto out;
	if ((m = calloc(n, sizeof(*m))) == NULL) {
		kds_fail_errno(x->e, "archive");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char seg[64], member[512];
		size_t j;

		kds_seg_name(p->shard, g[i].first, ".seg", seg, sizeof(seg));
		snprintf(member, sizeof(member), "%s/%s/%s", x->name, id, seg);
		for (j = 0; j < nnames; j++) {
			if (ranges[2 * j] > g[i].first ||
			    ranges[2 * j + 1] < g[i].last)
				continue;
			if (kds_archive_holds(hourfd, names[j], member,
			    g[i].size, g[i].hdr) == 1)
				break;
		}
		if (j < nnames) {
			if (g[i].compressed)
				kds_seg_name(p->shard, g[i].first, ".zseg",
				    seg, sizeof(seg));
			say(x, "%s/%s: already in %s/%s", id, seg, dir, names[j]);
			progress(x, g[i].size);
			continue;
		}
		m[k].first = g[i].first;
		m[k].size = g[i].size;
		m[k].oldest_ms = g[i].oldest;
		m[k].compressed = g[i].compressed;
		k++;
	}
	if (k > 0) {
		uint64_t last = 0, records = 0;

		for (size_t i = 0; i < n; i++)
			if (g[i].first == m[k - 1].first)
				last = g[i].last;
		for (size_t i = 0, j = 0; i < n && j < k; i++)
			if (g[i].first == m[j].first) {
				records += g[i].last - g[i].first + 1;
				j++;
			}
		kds_archive_name(p->shard, m[0].first, last, name, sizeof(name));
		snprintf(what, sizeof(what), "%s/%s", dir, name);
		if (!x->o->dry_run && kds_archive_write(hourfd, name, what,
		    x->name, p->shard, x->dirfd, m, k, progress, x,
		    x->e) == -1)
			goto out;
		say(x, "%s %zu segment%s of %s (%" PRIu64 " record%s) to %s",
		    x->o->dry_run ? "would archive" : "archived", k,
		    k == 1 ? "" : "s", id, records, records == 1 ? "" : "s",
		    what);
	}
	rc = 0;
out:
	for (size_t j = 0; j < nnames; j++)
		free(names[j]);
	free(names);
	free(ranges);
	free(m);
	if (hourfd != -1)
		close(hourfd);
	return rc;
}

/* Unlink the files of segment first with these suffixes, in this order. */
static int
unlink_seg(struct expire *x, uint64_t shard, uint64_t first,
    const char *const *suffixes)
{
	char name[64], where[KDS_SHARD_ID_LEN + 1 + 64];

	for (; *suffixes != NULL; suffixes++) {
		kds_seg_name(shard, first, *suffixes, name, sizeof(name));
		if (unlinkat(x->dirfd, name, 0) == -1 && errno != ENOENT) {
			segpath(shard, first, *suffixes, where, sizeof(where));
			return kds_fail_errno(x->e, "%s: unlink", where);
		}
	}
	return 0;
}

/* Remove segments (indexes first), oldest first, then sync the
 * directory. */
static int
remove_segs(struct expire *x, const struct plan *p, const struct seg *g,
    size_t n)
{
	static const char *const all[] = { ".idx", ".zidx", ".seg", ".zseg",
	    NULL };
	char where[KDS_SHARD_ID_LEN + 1 + 64];

	for (size_t i = 0; i < n; i++) {
		uint64_t records = g[i].last - g[i].first + 1;

		segpath(p->shard, g[i].first, g[i].compressed ? ".zseg" :
		    ".seg", where, sizeof(where));
		if (!x->o->dry_run && unlink_seg(x, p->shard, g[i].first,
		    all) == -1)
			return -1;
		say(x, "%s %s (%" PRIu64 " record%s)", x->o->dry_run ?
		    "would remove" : "removed", where, records,
		    records == 1 ? "" : "s");
	}
	if (!x->o->dry_run && n > 0 && fsync(x->dirfd) == -1)
		return kds_fail_errno(x->e, "%.*s: fsync", KDS_SHARD_ID_LEN,
		    where);
	return 0;
}

/*
 * Leftovers of conversions that a crash cut short (kds-stream(5), CRASH
 * RECOVERY): SEQ.zseg.tmp, never read, and SEQ.zidx without its SEQ.zseg.
 * Only kds-expire makes them, and we hold STREAM/lock.
 */
static int
clean_leftovers(struct expire *x, const struct plan *p)
{
	char id[KDS_SHARD_ID_LEN + 1], zseg[256];
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if (x->o->dry_run || !x->st->meta.compress)
		return 0;
	kds_shard_id(p->shard, id);
	if ((fd = dup(x->dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return kds_fail_errno(x->e, "%s: opendir", id);
	}
	rewinddir(d);
	while (rc == 0 && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		int gone = 0;

		if (len > 9 && strcmp(de->d_name + len - 9, ".zseg.tmp") == 0)
			gone = 1;
		if (len > 5 && len < sizeof(zseg) &&
		    strcmp(de->d_name + len - 5, ".zidx") == 0) {
			snprintf(zseg, sizeof(zseg), "%.*s.zseg", (int)len - 5,
			    de->d_name);
			gone = faccessat(x->dirfd, zseg, F_OK,
			    AT_SYMLINK_NOFOLLOW) == -1 && errno == ENOENT;
		}
		if (gone && unlinkat(x->dirfd, de->d_name, 0) == -1 &&
		    errno != ENOENT)
			rc = kds_fail_errno(x->e, "%s/%s: unlink", id,
			    de->d_name);
	}
	closedir(d);
	return rc;
}

/*
 * SEQ.seg and SEQ.zseg both: a conversion cut short after the rename.
 * SEQ.zseg is whole (it was synced before it got its name); that it holds
 * this very segment, every block decompressed and compared says.  Then
 * SEQ.seg goes, index first.
 */
static int
finish_compress(struct expire *x, const struct plan *p, const struct seg *s)
{
	static const char *const plain[] = { ".idx", ".seg", NULL };
	struct kds_zseg_walk w;
	unsigned char *buf = NULL;
	char name[64], where[KDS_SHARD_ID_LEN + 1 + 64];
	int fd, rc, bad;

	if (kds_zseg_walk_open(x->dirfd, p->shard, s->first, &w, x->e) == -1)
		return -1;
	segpath(p->shard, s->first, ".seg", where, sizeof(where));
	kds_seg_name(p->shard, s->first, ".seg", name, sizeof(name));
	if ((fd = openat(x->dirfd, name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		kds_fail_errno(x->e, "%s", where);
		kds_zseg_walk_close(&w);
		return -1;
	}
	bad = memcmp(w.h.seghdr, s->hdr, SEG_HEADER_LEN) != 0 ||
	    w.h.size != s->size;
	if ((buf = malloc(ZBLOCK_MAX)) == NULL)
		rc = kds_fail_errno(x->e, "%s", where);
	else
		rc = 1;
	while (!bad && rc == 1 && (rc = kds_zseg_walk_next(&w, x->e)) == 1) {
		ssize_t n = pread(fd, buf, w.b.raw_len, (off_t)w.b.seg_off);

		if (n == -1)
			rc = kds_fail_errno(x->e, "%s: read", where);
		else if (n != (ssize_t)w.b.raw_len ||
		    memcmp(buf, w.buf, w.b.raw_len) != 0)
			bad = 1;
	}
	if (rc != -1 && bad)
		rc = kds_fail(x->e, 0, "%s: not the compressed form of %s",
		    w.where, where);
	free(buf);
	close(fd);
	kds_zseg_walk_close(&w);
	if (rc == -1)
		return -1;
	return unlink_seg(x, p->shard, s->first, plain);
}

/* Compress the planned segments, oldest first (kds-stream(5),
 * COMPRESSION), then sync the directory once. */
static int
compress_segs(struct expire *x, const struct plan *p)
{
	static const char *const plain[] = { ".idx", ".seg", NULL };
	char where[KDS_SHARD_ID_LEN + 1 + 64];

	for (size_t i = 0; i < p->nz; i++) {
		const struct seg *s = &p->zsegs[i];
		uint64_t records = s->last - s->first + 1;
		struct kds_zseg_stats zs;

		segpath(p->shard, s->first, ".seg", where, sizeof(where));
		if (s->both) {
			if (!x->o->dry_run && finish_compress(x, p, s) == -1)
				return -1;
			say(x, "%s %s (%" PRIu64 " record%s)", x->o->dry_run ?
			    "would finish compressing" : "finished compressing",
			    where, records, records == 1 ? "" : "s");
			continue;
		}
		if (x->o->dry_run) {
			say(x, "would compress %s (%" PRIu64 " record%s, %"
			    PRIu64 " bytes)", where, records, records == 1 ?
			    "" : "s", s->size);
			continue;
		}
		if (kds_zseg_compress(x->dirfd, p->shard, s->first, &zs,
		    x->e) == -1 ||
		    unlink_seg(x, p->shard, s->first, plain) == -1)
			return -1;
		say(x, "compressed %s (%" PRIu64 " record%s, %" PRIu64 " to %"
		    PRIu64 " bytes)", where, zs.records, zs.records == 1 ?
		    "" : "s", zs.raw_size, zs.size);
	}
	if (!x->o->dry_run && p->nz > 0 && fsync(x->dirfd) == -1)
		return kds_fail_errno(x->e, "%.*s: fsync", KDS_SHARD_ID_LEN,
		    where);
	return 0;
}

/*
 * Carry out a shard's plan.  An open shard whose last segment has expired
 * is locked for the whole of it: it is idle (its newest record is older
 * than the retention), so no writer waits long.
 */
static int
run_plan(struct expire *x, struct plan *p)
{
	struct kds_shard_writer *w = NULL;
	size_t i, j;
	int rc = -1;

	if ((x->dirfd = kds_shard_dir_open(x->st, p->shard, x->e)) == -1)
		return -1;
	if (p->active && !x->o->dry_run) {
		struct seg *s = &p->segs[p->n - 1];
		uint64_t seg_first, end, last;
		int64_t arrival;
		int b;

		if ((w = kds_shard_writer_new(x->st, p->shard, KDS_SYNC_ALWAYS,
		    x->e)) == NULL)
			goto out;
		if ((b = kds_shard_writer_begin(w, x->e)) == -1)
			goto out;
		if (b == 1) {		/* closed: cannot be, we hold the lock */
			kds_shard_writer_free(w);
			w = NULL;
			p->active = 0;
			p->n--;
		} else {
			kds_shard_writer_state(w, &seg_first, &end, &last,
			    &arrival);
			if (seg_first != s->first || last < seg_first ||
			    arrival >= x->floor) {
				/* Written to meanwhile: not expired after all. */
				p->active = 0;
				p->n--;
			} else {
				s->last = last;
				s->size = end;
			}
		}
	}
	for (i = 0; i < p->n; i = j) {
		int64_t hour = p->segs[i].oldest / HOUR_MS;

		for (j = i; j < p->n && p->segs[j].oldest / HOUR_MS == hour; j++)
			;
		if (x->o->archive_dir != NULL &&
		    archive_group(x, p, p->segs + i, j - i) == -1)
			goto out;
		if (p->drop)
			continue;	/* removed with the directory, later */
		if (j == p->n && p->active && !x->o->dry_run &&
		    kds_shard_writer_seal(w, x->e) == -1)
			goto out;
		if (remove_segs(x, p, p->segs + i, j - i) == -1)
			goto out;
	}
	/* The writer waits for nobody's compression. */
	if (w != NULL) {
		kds_shard_writer_end(w);
		kds_shard_writer_free(w);
		w = NULL;
	}
	if (!p->drop && (clean_leftovers(x, p) == -1 ||
	    compress_segs(x, p) == -1))
		goto out;
	rc = 0;
out:
	if (w != NULL) {
		kds_shard_writer_end(w);
		kds_shard_writer_free(w);
	}
	close(x->dirfd);
	x->dirfd = -1;
	return rc;
}

/* Remove a shard directory that meta no longer lists. */
static int
remove_shard_dir(struct expire *x, uint64_t shard)
{
	char id[KDS_SHARD_ID_LEN + 1];
	struct dirent *de;
	DIR *d;
	int fd;

	kds_shard_id(shard, id);
	fd = openat(x->st->dirfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return kds_fail_errno(x->e, "%s", id);
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (strcmp(de->d_name, "tail") == 0 || (len > 4 &&
		    (strcmp(de->d_name + len - 4, ".seg") == 0 ||
		    strcmp(de->d_name + len - 4, ".idx") == 0 ||
		    strcmp(de->d_name + len - 4, ".tmp") == 0)) ||
		    (len > 5 && (strcmp(de->d_name + len - 5, ".zseg") == 0 ||
		    strcmp(de->d_name + len - 5, ".zidx") == 0)))
			if (unlinkat(dirfd(d), de->d_name, 0) == -1 &&
			    errno != ENOENT) {
				kds_fail_errno(x->e, "%s/%s: unlink", id,
				    de->d_name);
				closedir(d);
				return -1;
			}
	}
	closedir(d);
	if (unlinkat(x->st->dirfd, id, AT_REMOVEDIR) == -1)
		return kds_fail_errno(x->e, "%s: rmdir", id);
	return 0;
}

static int
in_meta(const struct kds_meta *m, uint64_t shard)
{
	for (size_t i = 0; i < m->nshards; i++)
		if (m->shards[i].number == shard)
			return 1;
	return 0;
}

/* Shard directories below next-shard that meta does not list: a removal
 * that a crash cut short.  Their records were archived before meta
 * changed. */
static int
remove_leftovers(struct expire *x)
{
	const struct kds_meta *m = &x->st->meta;
	uint64_t *found = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if ((fd = dup(x->st->dirfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return kds_fail_errno(x->e, "opendir");
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		uint64_t shard;

		if (strncmp(de->d_name, "shardId-", 8) != 0 ||
		    strlen(de->d_name) != KDS_SHARD_ID_LEN ||
		    kds_shard_id_parse(de->d_name, &shard) == -1 ||
		    shard >= m->next_shard || in_meta(m, shard))
			continue;
		if (n == cap) {
			uint64_t *nf;

			cap = cap ? cap * 2 : 8;
			if ((nf = reallocarray(found, cap, sizeof(*nf))) == NULL) {
				rc = kds_fail_errno(x->e, "opendir");
				break;
			}
			found = nf;
		}
		found[n++] = shard;
	}
	closedir(d);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		char id[KDS_SHARD_ID_LEN + 1];

		kds_shard_id(found[i], id);
		if (!x->o->dry_run && remove_shard_dir(x, found[i]) == -1)
			rc = -1;
		else
			say(x, "%s the leftover directory %s", x->o->dry_run ?
			    "would remove" : "removed", id);
	}
	free(found);
	return rc;
}

/* Write meta with this retention and without the dropped shards. */
static int
write_meta(struct expire *x, int64_t retention_s, struct plan *plans,
    size_t nplans)
{
	struct kds_meta *m = &x->st->meta;
	size_t k = 0;

	for (size_t i = 0; i < m->nshards; i++) {
		size_t j;

		for (j = 0; j < nplans && !(plans[j].drop &&
		    plans[j].shard == m->shards[i].number); j++)
			;
		if (j == nplans)
			m->shards[k++] = m->shards[i];
	}
	m->nshards = k;
	m->retention_s = retention_s;
	return kds_meta_write(x->st->dirfd, m, x->e);
}

/* The name archives go under: the stream path's last component. */
static void
stream_name(const char *path, char *out, size_t n)
{
	char *real = NULL;
	const char *p = path, *end;
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		len--;
	end = path + len;
	for (const char *q = path; q < end; q++)
		if (*q == '/' && q + 1 < end)
			p = q + 1;
	if ((end - p == 1 && *p == '.') || (end - p == 2 && p[0] == '.' &&
	    p[1] == '.') || *p == '/') {
		if ((real = realpath(path, NULL)) != NULL &&
		    strrchr(real, '/')[1] != '\0') {
			snprintf(out, n, "%s", strrchr(real, '/') + 1);
			free(real);
			return;
		}
		free(real);
		snprintf(out, n, "stream");
		return;
	}
	snprintf(out, n, "%.*s", (int)(end - p), p);
}

static int
lock_stream(struct kds_stream *st, int nowait, int *fdp, struct kds_err *e)
{
	int fd = openat(st->dirfd, "lock", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1)
		return kds_fail_errno(e, "lock");
	while (flock(fd, LOCK_EX | (nowait ? LOCK_NB : 0)) == -1) {
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK && nowait) {
			close(fd);
			return 1;
		}
		kds_fail_errno(e, "lock");
		close(fd);
		return -1;
	}
	*fdp = fd;
	return 0;
}

static int
expire_locked(struct expire *x)
{
	struct kds_stream *st = x->st;
	const struct kds_expire_opts *o = x->o;
	struct kds_meta fresh;
	struct plan *plans = NULL;
	size_t nplans = 0;
	int64_t old, want;
	int rc = -1, drops = 0;
	char a[32], b[32];

	/* Read meta again: it may have changed before we held the lock. */
	if (kds_meta_read(st->dirfd, &fresh, x->e) == -1)
		return -1;
	kds_meta_free(&st->meta);
	st->meta = fresh;
	old = st->meta.retention_s;
	want = o->retention_s > 0 ? o->retention_s : old;
	duration(old, a, sizeof(a));
	duration(want, b, sizeof(b));
	/* Lower: readers see it at once, then the space goes.  Higher: what
	 * the old one expired goes first, so that it does not come back. */
	x->floor = x->now - (want < old ? want : old) * 1000;
	/* A new compress-after is in meta before any SEQ.zseg is made: it
	 * is what keeps older tools off such a stream. */
	if (o->compress_after_s >= 0 && (!st->meta.compress ||
	    st->meta.compress_after_s != o->compress_after_s)) {
		char was[32], now[32];

		if (st->meta.compress)
			duration(st->meta.compress_after_s, was, sizeof(was));
		else
			snprintf(was, sizeof(was), "never");
		duration(o->compress_after_s, now, sizeof(now));
		st->meta.compress = 1;
		st->meta.compress_after_s = o->compress_after_s;
		if (want >= old && !o->dry_run &&
		    write_meta(x, old, NULL, 0) == -1)
			return -1;
		say(x, "%s compress-after from %s to %s", o->dry_run ?
		    "would change" : "changed", was, now);
	}
	x->cfloor = st->meta.compress ? x->now - st->meta.compress_after_s *
	    1000 : INT64_MIN;
	if (want < old) {
		if (!o->dry_run && write_meta(x, want, NULL, 0) == -1)
			return -1;
		say(x, "%s the retention from %s to %s", o->dry_run ?
		    "would lower" : "lowered", a, b);
	}
	if (remove_leftovers(x) == -1)
		return -1;
	if ((plans = calloc(st->meta.nshards, sizeof(*plans))) == NULL)
		return kds_fail_errno(x->e, "plan");
	for (size_t i = 0; i < st->meta.nshards; i++) {
		struct plan *p = &plans[nplans++];

		if ((x->dirfd = kds_shard_dir_open(st, st->meta.shards[i].number,
		    x->e)) == -1)
			goto out;
		rc = plan_shard(x, &st->meta.shards[i], p);
		close(x->dirfd);
		x->dirfd = -1;
		if (rc == -1)
			goto out;
		rc = -1;
		if (o->archive_dir != NULL)
			for (size_t k = 0; k < p->n; k++)
				x->total += p->segs[k].size;
	}
	for (size_t i = 0; i < nplans; i++) {
		if (run_plan(x, &plans[i]) == -1)
			goto out;
		drops += plans[i].drop;
	}
	if (drops > 0 || want > old) {
		if (!o->dry_run && write_meta(x, want, plans, nplans) == -1)
			goto out;
		if (want > old)
			say(x, "%s the retention from %s to %s", o->dry_run ?
			    "would raise" : "raised", a, b);
	}
	for (size_t i = 0; i < nplans; i++) {
		struct plan *p = &plans[i];
		char id[KDS_SHARD_ID_LEN + 1];

		if (!p->drop)
			continue;
		kds_shard_id(p->shard, id);
		if (!o->dry_run && remove_shard_dir(x, p->shard) == -1)
			goto out;
		for (size_t k = 0; k < p->n; k++) {
			char where[KDS_SHARD_ID_LEN + 1 + 64];
			uint64_t records = p->segs[k].last - p->segs[k].first + 1;

			segpath(p->shard, p->segs[k].first,
			    p->segs[k].compressed ? ".zseg" : ".seg", where,
			    sizeof(where));
			say(x, "%s %s (%" PRIu64 " record%s)", o->dry_run ?
			    "would remove" : "removed", where, records,
			    records == 1 ? "" : "s");
		}
		say(x, "%s the closed shard %s", o->dry_run ? "would remove" :
		    "removed", id);
	}
	if (drops > 0 && !o->dry_run && fsync(st->dirfd) == -1) {
		kds_fail_errno(x->e, "fsync");
		goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < nplans; i++) {
		free(plans[i].segs);
		free(plans[i].zsegs);
	}
	free(plans);
	return rc;
}

int
kds_expire(struct kds_stream *st, const struct kds_expire_opts *o,
    struct kds_err *e)
{
	struct expire x = { .st = st, .o = o, .e = e, .dirfd = -1 };
	int lockfd = -1, rc;

	x.now = kds_now_ms();
	stream_name(st->path, x.name, sizeof(x.name));
	if ((rc = lock_stream(st, o->nowait, &lockfd, e)) != 0)
		return rc;
	rc = expire_locked(&x);
	close(lockfd);		/* and with it the lock */
	return rc;
}
