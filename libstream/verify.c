/*
 * verify.c: kds_stream_verify(), an fsck of a stream (kds-stream(5)): meta,
 * every segment header and frame (checksum, length, flags, sequence numbers
 * within and across segments, arrival order), every index entry, the tail
 * of each open shard, the end of each closed shard against meta, and the
 * checkpoints of named consumers.  Unlike a reader it does not stop at the
 * first damage: each problem is one line naming file and offset, the walk
 * resynchronises on the next frame that checks out, and goes on.
 *
 * Locks.  An open shard is walked without a lock first, as a reader would;
 * only when that walk finds something is it walked again under the
 * shard's tail lock, so that an append in flight is never reported as a
 * torn tail.  Repair takes STREAM/lock for the whole run, so that no
 * expiry or reshard moves files meanwhile, and each open shard's tail lock
 * while it works on the shard: the order of kds.h.
 *
 * Repair fixes what is safe and nothing else.  Indexes are caches: a wrong
 * one is written anew from its segment, one without a segment is removed.
 * In a shard with no other damage, and only there, it does what the
 * writer's recovery (kds-stream(5), CRASH RECOVERY) would: cut a torn tail
 * of an open shard's last segment (the writer's own rule,
 * kds_tail_is_torn), remove an interrupted roll's segment that holds no
 * record, and then let kds_shard_recover() rewrite the tail.  Damaged
 * frames and headers, gaps, a closed shard that ends early, meta and
 * checkpoints are only reported: no byte of a record is ever cut away
 * because something near it is bad.  A walk after the repair decides
 * what was repaired.
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

enum kind {
	K_DAMAGE,		/* reported, never repaired */
	K_TORN,			/* torn tail of an open shard: cut */
	K_INDEX,		/* a wrong index: written anew */
	K_ORPHAN,		/* an index without its segment: removed */
	K_TAIL,			/* a stale or damaged tail: writer's recovery */
	K_LEFTOVER		/* an interrupted roll's empty segment: removed */
};

struct finding {
	enum kind	 kind;
	char		 file[320];	/* from the stream's top */
	char		 what[400];
	const char	*done;		/* what repair did */
	char		 not_done[300];	/* why repair did not */
};

/* What one walk of a shard found. */
struct pass {
	struct finding	*f;
	size_t		 n, cap;
	int		 repair;	/* cut and rewrite while walking */
	int		 repaired;	/* something was cut or rewritten */
	int		 damaged;	/* a K_DAMAGE finding */
	int		 cut;		/* a torn tail was cut */
	uint64_t	 segments, records, bytes;
	int		 end_known;	/* last_counter is the shard's end */
	uint64_t	 last_counter;
};

/* The last segment of a shard, as the walk left it. */
struct seg_end {
	uint64_t	first;
	uint64_t	valid_end;	/* end of the last good frame */
	uint64_t	last_counter;	/* first - 1 when it holds none */
	uint64_t	last_off;	/* the last good frame, 0: none */
	int64_t		last_arrival;
	int		damaged;	/* a K_DAMAGE finding in it */
	int		torn;
	int		leftover;
	int		bad_end;	/* does not end at the end of a frame */
};

struct tailinfo {
	int		state;		/* 0 missing, 1 damaged, 2 decoded */
	uint64_t	bad_off;
	char		bad[64];
	uint64_t	seg_first, end, last_counter, last_off;
	int64_t		last_arrival;
};

/* A consumer's checkpoint, read before the shards are walked. */
struct ckpt {
	char		file[KDS_SHARD_ID_LEN + 300];
	uint64_t	shard;
	int		kind;
	uint64_t	counter;
};

struct verify {
	struct kds_stream	*st;
	int			 repair;
	kds_verify_fn		*report;
	void			*arg;
	struct kds_verify_stats	*stats;
	struct kds_shard	*shards;	/* a copy: recovery rereads meta */
	size_t			 nshards;
};

static struct finding *
add(struct pass *p, enum kind kind, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Record a finding; NULL when out of memory (the caller fails). */
static struct finding *
add(struct pass *p, enum kind kind, const char *file, const char *fmt, ...)
{
	struct finding *f;
	va_list ap;

	if (p->n == p->cap) {
		size_t nc = p->cap ? p->cap * 2 : 8;

		if ((f = reallocarray(p->f, nc, sizeof(*f))) == NULL)
			return NULL;
		p->f = f;
		p->cap = nc;
	}
	f = &p->f[p->n++];
	memset(f, 0, sizeof(*f));
	f->kind = kind;
	snprintf(f->file, sizeof(f->file), "%s", file);
	va_start(ap, fmt);
	vsnprintf(f->what, sizeof(f->what), fmt, ap);
	va_end(ap);
	if (kind == K_DAMAGE)
		p->damaged = 1;
	return f;
}

static void
emit(struct verify *v, const struct finding *f)
{
	char line[2048];

	if (f->done != NULL)
		snprintf(line, sizeof(line), "%s: %s; repaired: %s", f->file,
		    f->what, f->done);
	else if (v->repair && f->not_done[0] != '\0')
		snprintf(line, sizeof(line), "%s: %s; not repaired: %s",
		    f->file, f->what, f->not_done);
	else
		snprintf(line, sizeof(line), "%s: %s", f->file, f->what);
	v->stats->problems++;
	if (f->kind == K_TORN)
		v->stats->torn++;
	if (f->kind == K_INDEX || f->kind == K_ORPHAN)
		v->stats->stale_index++;
	if (f->done != NULL)
		v->stats->repaired++;
	if (v->report != NULL)
		v->report(v->arg, line);
}

static void
seqs(char *out, size_t n, uint64_t shard, uint64_t from, uint64_t to)
{
	char a[KDS_SEQ_LEN], b[KDS_SEQ_LEN];

	kds_seq_format(shard, from, a);
	kds_seq_format(shard, to, b);
	if (from == to)
		snprintf(out, n, "sequence number %s", a);
	else
		snprintf(out, n, "sequence numbers %s to %s", a, b);
}

static int
read_all(int fd, unsigned char **out, size_t *len, struct kds_err *e)
{
	struct stat sb;
	unsigned char *buf;
	size_t have = 0;

	if (fstat(fd, &sb) == -1)
		return kds_fail_errno(e, "fstat");
	if ((buf = malloc((size_t)sb.st_size + 1)) == NULL)
		return kds_fail_errno(e, "verify");
	while (have < (size_t)sb.st_size) {
		ssize_t n = pread(fd, buf + have, (size_t)sb.st_size - have,
		    (off_t)have);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			free(buf);
			return kds_fail_errno(e, "read");
		}
		if (n == 0)
			break;
		have += (size_t)n;
	}
	*out = buf;
	*len = have;
	return 0;
}

/*
 * A frame that checks out at p, of counter at least expect: the cheap
 * fields first, so that a scan over damaged bytes rarely hashes.
 */
static int
frame_at(const unsigned char *p, size_t avail, uint64_t salt,
    uint64_t expect, struct kds_frame *f)
{
	const char *why;
	uint32_t len;
	uint16_t keylen;

	if (avail <= FRAME_HEADER_LEN)
		return 0;
	len = get_le32(p + 8);
	keylen = get_le16(p + 12);
	if (len <= FRAME_HEADER_LEN || len > avail || len > FRAME_MAX_LEN ||
	    get_le16(p + 14) != 0 || keylen == 0 || keylen > KEY_MAX_BYTES ||
	    FRAME_HEADER_LEN + (size_t)keylen > len)
		return 0;
	return kds_frame_decode(p, avail, salt, f, &why) == FRAME_OK &&
	    f->counter >= expect;
}

/* The frames a walk found in one segment, and where it found damage. */
struct frames {
	uint64_t	*off, *counter;
	int64_t		*arrival;
	size_t		 n, cap;
	uint64_t	*bad;		/* [start, end) pairs; end 0: to EOF */
	size_t		 nbad, capbad;
};

static void
frames_free(struct frames *fr)
{
	free(fr->off);
	free(fr->counter);
	free(fr->arrival);
	free(fr->bad);
}

static int
frames_add(struct frames *fr, uint64_t off, uint64_t counter, int64_t ms)
{
	if (fr->n == fr->cap) {
		size_t nc = fr->cap ? fr->cap * 2 : 1024;
		void *a;

		if ((a = reallocarray(fr->off, nc, sizeof(*fr->off))) == NULL)
			return -1;
		fr->off = a;
		if ((a = reallocarray(fr->counter, nc, sizeof(*fr->counter))) ==
		    NULL)
			return -1;
		fr->counter = a;
		if ((a = reallocarray(fr->arrival, nc, sizeof(*fr->arrival))) ==
		    NULL)
			return -1;
		fr->arrival = a;
		fr->cap = nc;
	}
	fr->off[fr->n] = off;
	fr->counter[fr->n] = counter;
	fr->arrival[fr->n++] = ms;
	return 0;
}

static int
frames_bad(struct frames *fr, uint64_t start, uint64_t end)
{
	if (fr->nbad == fr->capbad) {
		size_t nc = fr->capbad ? fr->capbad * 2 : 8;
		uint64_t *a = reallocarray(fr->bad, nc * 2, sizeof(*a));

		if (a == NULL)
			return -1;
		fr->bad = a;
		fr->capbad = nc;
	}
	fr->bad[2 * fr->nbad] = start;
	fr->bad[2 * fr->nbad++ + 1] = end;
	return 0;
}

/* Is off inside bytes that the walk found damaged (or cut)? */
static int
in_bad(const struct frames *fr, uint64_t off)
{
	for (size_t i = 0; i < fr->nbad; i++)
		if (off >= fr->bad[2 * i] &&
		    (fr->bad[2 * i + 1] == 0 || off < fr->bad[2 * i + 1]))
			return 1;
	return 0;
}

/* The frame starting at off, or fr->n. */
static size_t
frame_index(const struct frames *fr, uint64_t off)
{
	size_t lo = 0, hi = fr->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (fr->off[mid] < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < fr->n && fr->off[lo] == off ? lo : fr->n;
}

/*
 * Write SEQ.idx anew, in place: a writer holding it open O_APPEND (we hold
 * its lock, so it waits) then appends behind the new entries rather than
 * to an unlinked file.  A reader meanwhile sees a short index, which it
 * takes as it takes any: a cache.  One entry for the first frame at or
 * after each INDEX_INTERVAL boundary, as the writer makes them.
 */
static int
index_rewrite(int dirfd, const char *idxname, const struct frames *fr,
    struct kds_err *e)
{
	unsigned char *buf = malloc(fr->n * INDEX_ENTRY_LEN + 1);
	size_t len = 0, done = 0;
	int fd, rc = -1;

	if (buf == NULL)
		return kds_fail_errno(e, "%s", idxname);
	for (size_t i = 0; i < fr->n; i++) {
		struct kds_index_entry ie = { fr->counter[i], fr->arrival[i],
		    fr->off[i] };

		if (i == 0 || fr->off[i] / INDEX_INTERVAL !=
		    fr->off[i - 1] / INDEX_INTERVAL) {
			kds_index_entry_encode(buf + len, &ie);
			len += INDEX_ENTRY_LEN;
		}
	}
	fd = openat(dirfd, idxname, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    KDS_FILE_MODE);
	if (fd == -1) {
		kds_fail_errno(e, "%s", idxname);
		goto out;
	}
	if (kds_perm_fix(dirfd, fd, idxname, e) == -1)
		goto out;
	if (ftruncate(fd, 0) == -1) {
		kds_fail_errno(e, "%s: truncate", idxname);
		goto out;
	}
	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, (off_t)done);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			kds_fail_errno(e, "%s: write", idxname);
			goto out;
		}
		done += (size_t)n;
	}
	if (fdatasync(fd) == -1) {
		kds_fail_errno(e, "%s: fsync", idxname);
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(buf);
	return rc;
}

/*
 * Check SEQ.idx against the frames found: every entry must check out and
 * name a frame with its counter and arrival, in increasing order.  Entries
 * that point into damaged bytes are not blamed: the segment is.  A missing
 * index, or one that lacks entries, is allowed (kds-stream(5), Index).
 * One finding per index: its first bad entry and how many there are.
 */
static int
index_check(struct pass *p, int dirfd, const char *file, const char *idxname,
    const struct frames *fr, uint64_t seglen, struct finding **bad,
    struct kds_err *e)
{
	unsigned char *raw = NULL;
	size_t len = 0, nbad = 0;
	uint64_t first_off = 0, prev_off = 0;
	char first_why[160] = "";
	int fd, have_prev = 0;

	*bad = NULL;
	fd = openat(dirfd, idxname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		return 0;
	if (fd == -1)
		return kds_fail_errno(e, "%s", file);
	if (read_all(fd, &raw, &len, e) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	for (size_t i = 0; i + INDEX_ENTRY_LEN <= len; i += INDEX_ENTRY_LEN) {
		const unsigned char *q = raw + i;
		uint64_t counter = get_le64(q), off = get_le64(q + 16);
		int64_t ms = (int64_t)get_le64(q + 8);
		char why[160] = "";
		size_t k;

		if (get_le64(q + 24) != kds_checksum(q, 24, 0)) {
			snprintf(why, sizeof(why), "bad checksum");
		} else if (in_bad(fr, off)) {
			continue;
		} else if (off >= seglen) {
			snprintf(why, sizeof(why), "entry points past the end "
			    "of the segment, at %" PRIu64, off);
		} else if ((k = frame_index(fr, off)) == fr->n) {
			snprintf(why, sizeof(why), "entry points at %" PRIu64
			    ", not at a frame", off);
		} else if (fr->counter[k] != counter ||
		    fr->arrival[k] != ms) {
			snprintf(why, sizeof(why), "entry does not match the "
			    "frame at %" PRIu64, off);
		} else if (have_prev && off <= prev_off) {
			snprintf(why, sizeof(why), "entries out of order");
		} else {
			prev_off = off;
			have_prev = 1;
			continue;
		}
		if (nbad++ == 0) {
			first_off = i;
			snprintf(first_why, sizeof(first_why), "%s", why);
		}
	}
	if (len % INDEX_ENTRY_LEN != 0 && nbad++ == 0) {
		first_off = len - len % INDEX_ENTRY_LEN;
		snprintf(first_why, sizeof(first_why), "partial entry of %zu "
		    "bytes", len % INDEX_ENTRY_LEN);
	}
	free(raw);
	if (nbad == 0)
		return 0;
	if (nbad > 1)
		snprintf(first_why + strlen(first_why), sizeof(first_why) -
		    strlen(first_why), " (%zu bad entries)", nbad);
	if ((*bad = add(p, K_INDEX, file, "offset %" PRIu64 ": %s", first_off,
	    first_why)) == NULL)
		return kds_fail_errno(e, "verify");
	return 0;
}

/*
 * Compressed segments (kds-stream(5), COMPRESSED SEGMENTS), walked as
 * walk_segment walks a plain one, block by block: every block checksum,
 * every frame after decompression, continuity, the header's totals and
 * SEQ.zidx.  Kept apart from walk_segment, which reaches it through one
 * hook when SEQ.seg is not there.  A compressed segment is sealed: nothing
 * in it is a torn tail, and repair only writes SEQ.zidx anew.
 */

/* A frame found in a compressed segment, for checking SEQ.zidx. */
struct zframe {
	uint64_t	counter, zoff, seg_off;
	int64_t		arrival;
	uint32_t	inner;
};

/* The counter of the first frame of the block at off, from its header
 * when that checks out; else the segment's end. */
static uint64_t
zblock_first(int fd, uint64_t off, uint64_t fsize, uint64_t salt,
    const struct kds_zseg_header *zh)
{
	unsigned char h[ZBLOCK_HEADER_LEN];

	if (off < fsize && pread(fd, h, sizeof(h), (off_t)off) ==
	    (ssize_t)sizeof(h) && get_le64(h + 40) == kds_checksum(h, 40, salt) &&
	    get_le64(h + 8) <= zh->last_counter + 1)
		return get_le64(h + 8);
	return zh->last_counter + 1;
}

/* One finding for records a damaged block or frame makes unreadable. */
static int
zlost(struct pass *p, const struct kds_shard *sh, const char *file,
    uint64_t off, const char *what, uint64_t from, uint64_t next)
{
	char lost[2 * KDS_SEQ_LEN + 80];

	if (next > from) {
		seqs(lost, sizeof(lost), sh->number, from, next - 1);
		strcat(lost, " unreadable");
	} else {
		snprintf(lost, sizeof(lost), "no record lost");
	}
	return add(p, K_DAMAGE, file, "offset %" PRIu64 ": %s (%s)", off, what,
	    lost) ? 0 : -1;
}

/* Blocks a walk found damaged, whose index entries are not blamed: the
 * segment is.  from: every block from there on (UINT64_MAX: none). */
struct zbad {
	uint64_t	*off;
	size_t		 n, cap;
	uint64_t	 from;
};

static int
zbad_add(struct zbad *b, uint64_t off)
{
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 8;
		uint64_t *a = reallocarray(b->off, nc, sizeof(*a));

		if (a == NULL)
			return -1;
		b->off = a;
		b->cap = nc;
	}
	b->off[b->n++] = off;
	return 0;
}

static int
zbad_has(const struct zbad *b, uint64_t off)
{
	if (off >= b->from)
		return 1;
	for (size_t i = 0; i < b->n; i++)
		if (b->off[i] == off)
			return 1;
	return 0;
}

/* Check SEQ.zidx against the frames found; with repair, write it anew. */
static int
zindex_check(struct pass *p, int dirfd, const char *id, const char *zidx,
    const struct zframe *fr, size_t n, const struct zbad *zb,
    struct kds_err *e)
{
	struct kds_index_entry *ix;
	struct finding *f;
	uint32_t *inner;
	unsigned char *buf;
	char zseg[64], file[KDS_SHARD_ID_LEN + 80];
	size_t nix, j = 0, len = 0, bad = 0;
	struct stat sb;
	int rc;

	snprintf(zseg, sizeof(zseg), "%.*s.zseg", (int)strlen(zidx) - 5, zidx);
	snprintf(file, sizeof(file), "%s/%s", id, zidx);
	if (fstatat(dirfd, zidx, &sb, AT_SYMLINK_NOFOLLOW) == -1)
		return 0;		/* none: a cache, allowed */
	kds_zidx_load(dirfd, zseg, &ix, &inner, &nix);
	for (size_t i = 0; i < nix; i++) {
		if (zbad_has(zb, ix[i].offset))
			continue;
		while (j < n && (fr[j].zoff < ix[i].offset || (fr[j].zoff ==
		    ix[i].offset && fr[j].inner < inner[i])))
			j++;
		if (j == n || fr[j].zoff != ix[i].offset ||
		    fr[j].inner != inner[i] || fr[j].counter != ix[i].counter ||
		    fr[j].arrival != ix[i].arrival_ms)
			bad++;
	}
	if ((uint64_t)sb.st_size != nix * ZIDX_ENTRY_LEN)
		bad++;			/* entries dropped by the loader */
	free(ix);
	free(inner);
	if (bad == 0)
		return 0;
	if ((f = add(p, K_INDEX, file, "%zu of %zu entries do not name their "
	    "frame", bad, nix + ((uint64_t)sb.st_size != nix *
	    ZIDX_ENTRY_LEN))) == NULL)
		return kds_fail_errno(e, "verify");
	if (!p->repair)
		return 0;
	if ((buf = malloc(n * ZIDX_ENTRY_LEN + 1)) == NULL)
		return kds_fail_errno(e, "%s", file);
	for (size_t i = 0; i < n; i++) {
		unsigned char *q = buf + len;

		if (i > 0 && fr[i].inner != 0 && fr[i].seg_off /
		    INDEX_INTERVAL == fr[i - 1].seg_off / INDEX_INTERVAL)
			continue;
		put_le64(q, fr[i].counter);
		put_le64(q + 8, (uint64_t)fr[i].arrival);
		put_le64(q + 16, fr[i].zoff);
		put_le32(q + 24, fr[i].inner);
		put_le32(q + 28, 0);
		put_le64(q + 32, kds_checksum(q, 32, 0));
		len += ZIDX_ENTRY_LEN;
	}
	rc = kds_atomic_write(dirfd, zidx, buf, len, e);
	free(buf);
	if (rc == 0) {
		f->done = "written anew";
		p->repaired = 1;
	}
	return rc;
}

/*
 * A segment's first counter against the one the segment before it ended
 * at (expect, 0 for none): a gap or an overlap is damage.  -1: no memory.
 */
static int
follows(struct pass *p, const struct kds_shard *sh, const char *file,
    uint64_t first, uint64_t expect, struct seg_end *se)
{
	char lost[2 * KDS_SEQ_LEN + 80];

	if (expect == 0 || first == expect)
		return 0;
	if (first > expect)
		seqs(lost, sizeof(lost), sh->number, expect, first - 1);
	else
		snprintf(lost, sizeof(lost), "overlaps it");
	se->damaged = 1;
	return add(p, K_DAMAGE, file, "offset 0: first sequence number does "
	    "not follow the previous segment (%s%s)", lost,
	    first > expect ? " missing" : "") == NULL ? -1 : 0;
}

/* walk_segment's, for SEQ.zseg: 0, 1 when it is not there either, -1. */
static int
walk_zsegment(struct pass *p, int dirfd, const struct kds_shard *sh,
    uint64_t first, uint64_t *expect, int64_t *prev, struct seg_end *se,
    struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1], name[64], zidx[64], file[96];
	unsigned char h[ZSEG_HEADER_LEN], *buf = NULL;
	struct kds_zseg_header zh;
	struct kds_zbuf z = { 0 };
	struct zframe *fr = NULL;
	struct zbad zb = { NULL, 0, 0, UINT64_MAX };
	uint64_t at = ZSEG_HEADER_LEN, seg_off = SEG_HEADER_LEN, fsize;
	size_t cap = 0, n = 0, frcap = 0;
	const char *why;
	struct stat sb;
	ssize_t got;
	int fd, rc = -1, resync = 0;

	kds_shard_id(sh->number, id);
	kds_seg_name(sh->number, first, ".zseg", name, sizeof(name));
	kds_seg_name(sh->number, first, ".zidx", zidx, sizeof(zidx));
	snprintf(file, sizeof(file), "%s/%s", id, name);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		return 1;
	if (fd == -1)
		return kds_fail_errno(e, "%s", file);
	if (fstat(fd, &sb) == -1 || (got = pread(fd, h, sizeof(h), 0)) == -1) {
		kds_fail_errno(e, "%s", file);
		goto out;
	}
	fsize = (uint64_t)sb.st_size;
	p->segments++;
	p->bytes += fsize;
	if ((why = kds_zseg_header_check(h, (size_t)got, sh->number, first,
	    &zh)) != NULL) {
		se->damaged = se->bad_end = 1;
		*expect = 0;
		rc = add(p, K_DAMAGE, file, "offset 0: %s", why) ? 0 :
		    kds_fail_errno(e, "verify");
		goto out;
	}
	if (follows(p, sh, file, first, *expect, se) == -1)
		goto nomem;
	*expect = first;
	while (at < fsize) {
		struct kds_zblock b;
		size_t pos = 0;
		int lr;

		lr = kds_zblock_load(fd, at, fsize, zh.seg.salt, &z, &b, &buf,
		    &cap, &why, e);
		if (lr == -1)
			goto out;
		if (lr == 1 && b.off == 0) {	/* no length: the rest goes */
			se->damaged = 1;
			zb.from = at;
			if (zlost(p, sh, file, at, why, *expect,
			    zh.last_counter + 1) == -1)
				goto nomem;
			resync = 1;
			break;
		}
		if (!resync && (b.seg_off != seg_off ||
		    b.first_counter != *expect)) {
			se->damaged = 1;
			if (add(p, K_DAMAGE, file, "offset %" PRIu64 ": block "
			    "out of place", at) == NULL)
				goto nomem;
		}
		seg_off = b.seg_off + b.raw_len;
		*expect = b.first_counter;
		resync = 0;
		if (lr == 1) {			/* its header holds: skip it */
			se->damaged = resync = 1;
			if (zbad_add(&zb, at) == -1)
				goto nomem;
			at += ZBLOCK_HEADER_LEN + b.comp_len;
			if (zlost(p, sh, file, b.off, why, b.first_counter,
			    zblock_first(fd, at, fsize, zh.seg.salt, &zh)) == -1)
				goto nomem;
			continue;
		}
		while (pos < b.raw_len) {
			const char *fwhy = "frame runs past its block";
			char what[160];
			struct kds_frame f;
			enum frame_status fs;

			fs = kds_frame_decode(buf + pos, b.raw_len - pos,
			    zh.seg.salt, &f, &fwhy);
			if (fs == FRAME_OK && f.counter != *expect) {
				fs = FRAME_BAD;
				fwhy = "sequence number out of order";
			} else if (fs == FRAME_OK && f.arrival_ms < *prev) {
				fs = FRAME_BAD;
				fwhy = "arrival time goes back";
			}
			if (fs != FRAME_OK) {
				snprintf(what, sizeof(what), "segment offset %"
				    PRIu64 ": %s", b.seg_off + pos, fwhy);
				se->damaged = resync = 1;
				if (zbad_add(&zb, at) == -1)
					goto nomem;
				if (zlost(p, sh, file, at, what, *expect,
				    zblock_first(fd, at + ZBLOCK_HEADER_LEN +
				    b.comp_len, fsize, zh.seg.salt, &zh)) == -1)
					goto nomem;
				break;
			}
			if (n == frcap) {
				size_t nc = frcap ? frcap * 2 : 1024;
				struct zframe *nf = reallocarray(fr, nc,
				    sizeof(*nf));

				if (nf == NULL)
					goto nomem;
				fr = nf;
				frcap = nc;
			}
			fr[n++] = (struct zframe){ f.counter, at,
			    b.seg_off + pos, f.arrival_ms, (uint32_t)pos };
			p->records++;
			*expect = f.counter + 1;
			*prev = f.arrival_ms;
			pos += f.len;
		}
		at += ZBLOCK_HEADER_LEN + b.comp_len;
	}
	if (at == fsize && !resync && (seg_off != zh.size ||
	    zh.last_counter + 1 != *expect)) {
		se->damaged = 1;
		if (add(p, K_DAMAGE, file, "offset 56: the header says %" PRIu64
		    " bytes to counter %" PRIu64 ", the blocks hold %" PRIu64
		    " to counter %" PRIu64, zh.size, zh.last_counter, seg_off,
		    *expect - 1) == NULL)
			goto nomem;
	}
	/* What follows goes on from the header's totals. */
	*expect = zh.last_counter + 1;
	*prev = zh.last_arrival;
	se->valid_end = zh.size;
	se->last_counter = zh.last_counter;
	se->last_arrival = zh.last_arrival;
	se->last_off = n ? fr[n - 1].seg_off : 0;
	rc = zindex_check(p, dirfd, id, zidx, fr, n, &zb, e);
	goto out;
nomem:
	kds_fail_errno(e, "verify");
out:
	free(zb.off);
	free(fr);
	free(buf);
	kds_zbuf_free(&z);
	close(fd);
	return rc;
}

/*
 * Walk one segment.  *expect and *prev carry the shard's sequence and
 * arrival from the segment before (expect 0: unknown).  last: the shard's
 * last segment; only == 1 with the shard open may it end in a torn tail.
 * Returns 0, 1 when the segment has gone (expired meanwhile), or -1.
 */
static int
walk_segment(struct pass *p, int dirfd, const struct kds_shard *sh,
    uint64_t first, int last, int only, const struct tailinfo *ti,
    uint64_t *expect, int64_t *prev, struct seg_end *se, struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1], name[64], idxname[64], file[96];
	char idxfile[96], lost[2 * KDS_SEQ_LEN + 80];
	unsigned char *buf = NULL;
	struct frames fr = { 0 };
	struct kds_seg_header h;
	struct finding *torn = NULL, *ibad = NULL;
	size_t len = 0, off = SEG_HEADER_LEN;
	const char *why;
	int active = last && sh->open, fd, rc = -1;

	memset(se, 0, sizeof(*se));
	se->first = first;
	kds_shard_id(sh->number, id);
	kds_seg_name(sh->number, first, ".seg", name, sizeof(name));
	kds_seg_name(sh->number, first, ".idx", idxname, sizeof(idxname));
	snprintf(file, sizeof(file), "%s/%s", id, name);
	snprintf(idxfile, sizeof(idxfile), "%s/%s", id, idxname);
	fd = openat(dirfd, name, (p->repair && active ? O_RDWR : O_RDONLY) |
	    O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)	/* compressed, or gone */
		return walk_zsegment(p, dirfd, sh, first, expect, prev, se, e);
	if (fd == -1)
		return kds_fail_errno(e, "%s", file);
	if (read_all(fd, &buf, &len, e) == -1)
		goto out;
	p->segments++;
	p->bytes += len;
	if ((why = kds_seg_header_check(buf, len, sh->number, first, &h)) !=
	    NULL) {
		/*
		 * A last segment no longer than a header, after others, is a
		 * roll cut short, which the writer's recovery removes; unless
		 * the tail counts records in it: then they were cut away.
		 */
		if (active && !only && len <= SEG_HEADER_LEN &&
		    first == *expect && !(ti->state == 2 &&
		    ti->seg_first == first && ti->last_counter >= first)) {
			struct finding *f;

			se->leftover = 1;
			se->last_counter = first - 1;
			if ((f = add(p, K_LEFTOVER, file, "offset 0: %s (%zu "
			    "bytes): an interrupted roll", why, len)) == NULL)
				goto nomem;
			/* As the writer's recovery does: index, then segment. */
			if (p->repair && !p->damaged) {
				if ((unlinkat(dirfd, idxname, 0) == -1 &&
				    errno != ENOENT) ||
				    unlinkat(dirfd, name, 0) == -1 ||
				    fsync(dirfd) == -1) {
					kds_fail_errno(e, "%s: unlink", file);
					goto out;
				}
				f->done = "removed";
				p->repaired = 1;
			}
		} else {
			se->damaged = se->bad_end = 1;
			if (add(p, K_DAMAGE, file, "offset 0: %s", why) == NULL)
				goto nomem;
		}
		*expect = 0;
		rc = 0;
		goto out;
	}
	if (follows(p, sh, file, first, *expect, se) == -1)
		goto nomem;
	*expect = first;
	while (off < len) {
		struct kds_frame f;
		const char *bad = "bad frame length";
		enum frame_status fs;
		size_t next;
		int t;

		fs = kds_frame_decode(buf + off, len - off, h.salt, &f, &bad);
		if (fs == FRAME_OK && f.counter != *expect) {
			fs = FRAME_BAD;
			bad = "sequence number out of order";
		} else if (fs == FRAME_OK && f.arrival_ms < *prev) {
			fs = FRAME_BAD;
			bad = "arrival time goes back";
		}
		if (fs == FRAME_OK) {
			if (frames_add(&fr, off, f.counter, f.arrival_ms) == -1)
				goto nomem;
			p->records++;
			*expect = f.counter + 1;
			*prev = f.arrival_ms;
			off += f.len;
			continue;
		}
		/* The writer's rule: only an open shard's last frame, with
		 * nothing valid after it, is torn. */
		t = active ? kds_tail_is_torn(fd, off, len, h.salt,
		    fs == FRAME_BAD, e) : 0;
		if (t == -1)
			goto out;
		if (t) {
			se->torn = 1;
			if ((torn = add(p, K_TORN, file, "offset %zu: torn tail "
			    "(%zu bytes)", off, len - off)) == NULL)
				goto nomem;
			if (frames_bad(&fr, off, 0) == -1)
				goto nomem;
			break;
		}
		for (next = off + 1; next < len; next++)
			if (frame_at(buf + next, len - next, h.salt, *expect, &f))
				break;
		if (frames_bad(&fr, off, next < len ? next : 0) == -1)
			goto nomem;
		se->damaged = 1;
		if (next >= len) {
			se->bad_end = 1;
			if (fs == FRAME_INCOMPLETE ?
			    add(p, K_DAMAGE, file, "offset %zu: truncated frame "
			    "(%zu bytes)", off, len - off) == NULL :
			    add(p, K_DAMAGE, file, "offset %zu: %s (nothing valid "
			    "after it: %zu bytes)", off, bad, len - off) == NULL)
				goto nomem;
			*expect = 0;
			break;
		}
		if (f.counter > *expect) {
			seqs(lost, sizeof(lost), sh->number, *expect,
			    f.counter - 1);
			strcat(lost, " unreadable");
		} else {
			snprintf(lost, sizeof(lost), "no record lost");
		}
		if (add(p, K_DAMAGE, file, "offset %zu: %s (%zu bytes to the "
		    "next valid frame; %s)", off, fs == FRAME_BAD ? bad :
		    "bad frame length", next - off, lost) == NULL)
			goto nomem;
		off = next;
		*expect = f.counter;
		*prev = f.arrival_ms;
	}
	se->valid_end = fr.n ? fr.off[fr.n - 1] : SEG_HEADER_LEN;
	if (fr.n) {
		size_t k = fr.n - 1;

		se->valid_end += (uint64_t)get_le32(buf + fr.off[k] + 8);
		se->last_off = fr.off[k];
		se->last_counter = fr.counter[k];
		se->last_arrival = fr.arrival[k];
	} else {
		se->last_counter = first - 1;
	}
	if (index_check(p, dirfd, idxfile, idxname, &fr, len, &ibad, e) == -1)
		goto out;
	if (!p->repair) {
		rc = 0;
		goto out;
	}
	/* Cut only a tear in a shard that is otherwise whole, as a writer
	 * recovering it would; then the index follows the segment. */
	if (torn != NULL && p->damaged) {
		snprintf(torn->not_done, sizeof(torn->not_done),
		    "the shard has other damage");
	} else if (torn != NULL) {
		if (ftruncate(fd, (off_t)se->valid_end) == -1 ||
		    fdatasync(fd) == -1) {
			kds_fail_errno(e, "%s: truncate", file);
			goto out;
		}
		torn->done = "cut";
		p->cut = p->repaired = 1;
	}
	if (ibad != NULL || (torn != NULL && torn->done != NULL)) {
		if (index_rewrite(dirfd, idxname, &fr, e) == -1)
			goto out;
		if (ibad != NULL)
			ibad->done = "written anew";
		p->repaired = 1;
	}
	rc = 0;
	goto out;
nomem:
	kds_fail_errno(e, "verify");
out:
	frames_free(&fr);
	free(buf);
	close(fd);
	return rc;
}

static void
tail_read(int dirfd, struct tailinfo *ti)
{
	unsigned char b[TAIL_LEN + 1];
	ssize_t n;
	int fd;

	memset(ti, 0, sizeof(*ti));
	fd = openat(dirfd, "tail", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return;
	n = pread(fd, b, sizeof(b), 0);
	close(fd);
	ti->state = 1;
	if (n != TAIL_LEN) {
		ti->bad_off = 0;
		snprintf(ti->bad, sizeof(ti->bad), "%zd bytes, not %d", n < 0 ?
		    0 : n, TAIL_LEN);
		return;
	}
	if (memcmp(b, TAIL_MAGIC, 8) != 0) {
		snprintf(ti->bad, sizeof(ti->bad), "bad magic");
		return;
	}
	if (get_le64(b + 56) != kds_checksum(b, 56, 0)) {
		ti->bad_off = 56;
		snprintf(ti->bad, sizeof(ti->bad), "bad checksum");
		return;
	}
	ti->seg_first = get_le64(b + 8);
	ti->end = get_le64(b + 16);
	ti->last_counter = get_le64(b + 24);
	ti->last_arrival = (int64_t)get_le64(b + 32);
	ti->last_off = get_le64(b + 40);
	if (ti->end < SEG_HEADER_LEN || ti->seg_first == 0 ||
	    ti->last_counter + 1 < ti->seg_first) {
		ti->bad_off = 8;
		snprintf(ti->bad, sizeof(ti->bad), "malformed");
		return;
	}
	ti->state = 2;
}

/* The tail against the last segment, as kds-stream(5), Tail, has it. */
static int
tail_check(struct pass *p, const char *id, const struct tailinfo *ti,
    const struct seg_end *se)
{
	char file[KDS_SHARD_ID_LEN + 8];

	snprintf(file, sizeof(file), "%s/tail", id);
	if (ti->state == 0)
		return add(p, K_DAMAGE, file, "missing: no writer can lock the "
		    "shard") ? 0 : -1;
	if (ti->state == 1)
		return add(p, K_TAIL, file, "offset %" PRIu64 ": %s",
		    ti->bad_off, ti->bad) ? 0 : -1;
	if (ti->seg_first != se->first)
		return add(p, K_TAIL, file, "offset 8: names the segment of "
		    "counter %" PRIu64 " as active, the last one starts at %"
		    PRIu64, ti->seg_first, se->first) ? 0 : -1;
	if (ti->end != se->valid_end || ti->last_counter != se->last_counter)
		return add(p, K_TAIL, file, "offset 16: says the segment ends "
		    "at %" PRIu64 " after counter %" PRIu64 ", it ends at %"
		    PRIu64 " after counter %" PRIu64, ti->end,
		    ti->last_counter, se->valid_end, se->last_counter) ? 0 : -1;
	if (ti->last_off != se->last_off)
		return add(p, K_TAIL, file, "offset 40: says the last frame is "
		    "at %" PRIu64 ", it is at %" PRIu64, ti->last_off,
		    se->last_off) ? 0 : -1;
	if (se->last_off != 0 && ti->last_arrival != se->last_arrival)
		return add(p, K_TAIL, file, "offset 32: last arrival %" PRId64
		    ", the last frame's is %" PRId64, ti->last_arrival,
		    se->last_arrival) ? 0 : -1;
	return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/*
 * The segments and indexes of a shard directory, ascending.  A .seg name
 * that is not of this shard is damage (a reader refuses the shard); other
 * names (temporary files, the tail) are passed over.
 */
static int
list_shard(struct pass *p, int dirfd, const char *id, uint64_t shard,
    uint64_t **segs, size_t *nsegs, uint64_t **idxs, size_t *nidxs,
    struct kds_err *e)
{
	uint64_t *v[2] = { NULL, NULL };
	size_t n[2] = { 0, 0 }, cap[2] = { 0, 0 };
	struct dirent *de;
	DIR *d;
	int fd;

	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return kds_fail_errno(e, "%s", id);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return kds_fail_errno(e, "%s", id);
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		char seq[KDS_SEQ_LEN], file[KDS_SHARD_ID_LEN + 300];
		size_t len = strlen(de->d_name);
		uint64_t sh, counter;
		int k;

		size_t sfx = 4;

		if (len > 4 && strcmp(de->d_name + len - 4, ".seg") == 0)
			k = 0;
		else if (len > 4 && strcmp(de->d_name + len - 4, ".idx") == 0)
			k = 1;
		else if (len > 5 && strcmp(de->d_name + len - 5, ".zseg") == 0)
			k = 0, sfx = 5;		/* compressed: walk_zsegment */
		else
			continue;
		memcpy(seq, de->d_name, len - sfx < sizeof(seq) ? len - sfx : 0);
		seq[len - sfx < sizeof(seq) ? len - sfx : 0] = '\0';
		if (kds_seq_parse(seq, &sh, &counter) == -1 || sh != shard ||
		    counter == 0) {
			snprintf(file, sizeof(file), "%s/%s", id, de->d_name);
			if (k == 0 && add(p, K_DAMAGE, file, "not a segment of "
			    "this shard") == NULL)
				goto fail_errno;
			continue;
		}
		if (n[k] == cap[k]) {
			uint64_t *nv;

			cap[k] = cap[k] ? cap[k] * 2 : 16;
			if ((nv = reallocarray(v[k], cap[k], sizeof(*nv))) == NULL)
				goto fail_errno;
			v[k] = nv;
		}
		v[k][n[k]++] = counter;
	}
	if (errno != 0)
		goto fail_errno;
	closedir(d);
	for (int k = 0; k < 2; k++)
		if (n[k] > 1)	/* qsort's base may not be NULL, even for 0 */
			qsort(v[k], n[k], sizeof(*v[k]), cmp_u64);
	/* SEQ.seg and SEQ.zseg both (a conversion under way): walked once,
	 * as SEQ.seg, which readers read. */
	if (n[0] > 1) {
		size_t j = 1;

		for (size_t i = 1; i < n[0]; i++)
			if (v[0][i] != v[0][j - 1])
				v[0][j++] = v[0][i];
		n[0] = j;
	}
	*segs = v[0];
	*nsegs = n[0];
	*idxs = v[1];
	*nidxs = n[1];
	return 0;
fail_errno:
	kds_fail_errno(e, "%s", id);
	closedir(d);
	free(v[0]);
	free(v[1]);
	return -1;
}

/* One walk of a shard, every segment, its indexes and its tail. */
static int
shard_pass(const struct kds_shard *sh, int dirfd, struct pass *p,
    struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1], file[KDS_SHARD_ID_LEN + 80];
	uint64_t *segs = NULL, *idxs = NULL, expect = 0;
	int64_t prev = INT64_MIN;
	size_t nsegs = 0, nidxs = 0, k = 0;
	struct tailinfo ti;
	struct seg_end se = { 0 }, cur;
	int rc = -1, walked = 0, last_walked = 0;

	kds_shard_id(sh->number, id);
	tail_read(dirfd, &ti);
	if (list_shard(p, dirfd, id, sh->number, &segs, &nsegs, &idxs, &nidxs,
	    e) == -1)
		return -1;
	for (size_t i = 0; i < nsegs; i++) {
		int r = walk_segment(p, dirfd, sh, segs[i], i + 1 == nsegs,
		    nsegs == 1, &ti, &expect, &prev, &cur, e);

		if (r == -1)
			goto out;
		last_walked = r == 0;
		if (r == 1) {		/* expired under us: start afresh */
			expect = 0;
			prev = INT64_MIN;
			continue;
		}
		se = cur;
		walked = 1;
	}
	/* Indexes without a segment; an expiry removes the index first,
	 * so one still there after its segment has gone is a leftover. */
	for (size_t i = 0; i < nidxs; i++) {
		char seg[64], idx[64];
		struct finding *f;

		while (k < nsegs && segs[k] < idxs[i])
			k++;
		if (k < nsegs && segs[k] == idxs[i])
			continue;
		kds_seg_name(sh->number, idxs[i], ".seg", seg, sizeof(seg));
		kds_seg_name(sh->number, idxs[i], ".idx", idx, sizeof(idx));
		if (faccessat(dirfd, seg, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
		    faccessat(dirfd, idx, F_OK, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		snprintf(file, sizeof(file), "%s/%s", id, idx);
		if ((f = add(p, K_ORPHAN, file, "an index without its "
		    "segment")) == NULL)
			goto nomem;
		if (p->repair) {
			if (unlinkat(dirfd, idx, 0) == -1) {
				kds_fail_errno(e, "%s: unlink", file);
				goto out;
			}
			f->done = "removed";
			p->repaired = 1;
		}
	}
	if (!walked) {
		if (nsegs == 0 && add(p, K_DAMAGE, id, "no segment") == NULL)
			goto nomem;
		rc = 0;
		goto out;
	}
	if (!last_walked) {
		/* Its last segment went as we walked: an expiry was here,
		 * and without STREAM/lock its end is not ours to judge. */
		rc = 0;
		goto out;
	}
	if (!se.damaged && !se.bad_end) {
		p->end_known = 1;
		p->last_counter = se.last_counter;
	}
	if (sh->open) {
		/* A tear or a damaged end says more than the tail can. */
		if (!se.torn && !se.damaged && !se.leftover &&
		    tail_check(p, id, &ti, &se) == -1)
			goto nomem;
	} else if (p->end_known && se.last_counter != sh->end_counter) {
		char a[KDS_SEQ_LEN], b[KDS_SEQ_LEN], name[64];

		kds_seq_format(sh->number, sh->end_counter, a);
		kds_seq_format(sh->number, se.last_counter, b);
		kds_seg_name(sh->number, se.first, ".seg", name, sizeof(name));
		snprintf(file, sizeof(file), "%s/%s", id, name);
		if (add(p, K_DAMAGE, file, "offset %" PRIu64 ": meta says the "
		    "shard was closed at %s, its records end at %s",
		    se.valid_end, a, b) == NULL)
			goto nomem;
	}
	rc = 0;
	goto out;
nomem:
	kds_fail_errno(e, "verify");
out:
	free(segs);
	free(idxs);
	return rc;
}

static void
pass_free(struct pass *p)
{
	free(p->f);
	memset(p, 0, sizeof(*p));
}

/* Lock a shard's tail as a writer does; -1 when there is none to lock. */
static int
tail_lock(int dirfd)
{
	int fd = openat(dirfd, "tail", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1)
		return -1;
	while (flock(fd, LOCK_EX) == -1) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void
tail_unlock(int fd)
{
	if (fd != -1) {
		flock(fd, LOCK_UN);
		close(fd);
	}
}

/*
 * After a repair: what the walk after it still finds was not repaired, and
 * what it finds anew (a tail that recovery could not rewrite) is reported.
 */
static int
reconcile(struct pass *before, const struct pass *after)
{
	size_t n = before->n;

	for (size_t j = 0; j < after->n; j++) {
		const struct finding *g = &after->f[j];
		size_t i;

		for (i = 0; i < n; i++)
			if (before->f[i].kind == g->kind &&
			    strcmp(before->f[i].file, g->file) == 0)
				break;
		if (i == n) {
			if (add(before, g->kind, g->file, "%s", g->what) == NULL)
				return -1;
			snprintf(before->f[before->n - 1].not_done,
			    sizeof(before->f[0].not_done), "left after repair");
			continue;
		}
		if (g->kind == K_DAMAGE)
			continue;
		if (before->f[i].done != NULL || before->f[i].not_done[0] == '\0')
			snprintf(before->f[i].not_done, sizeof(before->f[i].not_done),
			    "still there after repair");
		before->f[i].done = NULL;
	}
	return 0;
}

/* The tail findings of p were not repaired, for this reason. */
static void
tail_not_repaired(struct pass *p, const char *why)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->f[i].kind == K_TAIL)
			snprintf(p->f[i].not_done, sizeof(p->f[i].not_done), "%.200s",
			    why);
}

/*
 * After a cut or a removal under the lock, or for a tail that disagrees
 * with its segment: the writer's own recovery, in a shard with no damage,
 * makes the tail agree, as the next writer would.  It takes the tail lock
 * itself, so the caller must not hold it.
 */
static void
recover(struct verify *v, const struct kds_shard *sh, struct pass *p)
{
	struct kds_err e;
	uint64_t last;
	int need = p->cut;

	for (size_t i = 0; i < p->n; i++)
		if (p->f[i].kind == K_TAIL || p->f[i].kind == K_LEFTOVER)
			need = 1;
	if (!need)
		return;
	if (p->damaged) {
		tail_not_repaired(p, "the shard has other damage");
		return;
	}
	p->repaired = 1;
	if (kds_shard_recover(v->st, sh->number, &last, &e) == -1) {
		tail_not_repaired(p, e.msg);
		return;
	}
	for (size_t i = 0; i < p->n; i++)
		if (p->f[i].kind == K_TAIL)
			p->f[i].done = "rewritten";
}

/* Walk a shard under its tail lock; 1 when it has no tail to lock. */
static int
locked_pass(const struct kds_shard *sh, int dirfd, struct pass *p,
    struct kds_err *e)
{
	int fd = tail_lock(dirfd), rc;

	if (fd == -1)
		return 1;
	rc = shard_pass(sh, dirfd, p, e);
	tail_unlock(fd);
	return rc;
}

/* Is the shard gone from meta as it is now (expired meanwhile)? */
static int
shard_gone(struct kds_stream *st, uint64_t number)
{
	struct kds_meta m;
	struct kds_err e;
	int gone = 1;

	if (kds_meta_read(st->dirfd, &m, &e) == -1)
		return 0;
	for (size_t i = 0; i < m.nshards; i++)
		if (m.shards[i].number == number)
			gone = 0;
	kds_meta_free(&m);
	return gone;
}

/*
 * Verify (and repair) one shard.  Its findings are left in *out, each
 * marked with what repair did or why it did not.
 */
static int
verify_shard(struct verify *v, const struct kds_shard *sh, struct pass *out,
    struct kds_err *e)
{
	struct pass b = { 0 };
	char id[KDS_SHARD_ID_LEN + 1];
	int dirfd, rc;

	kds_shard_id(sh->number, id);
	if ((dirfd = kds_shard_dir_open(v->st, sh->number, e)) == -1) {
		if (e->errnum != ENOENT)
			return -1;
		/* Without STREAM/lock, an expiry may have removed it. */
		if (!v->repair && shard_gone(v->st, sh->number))
			return 0;
		return add(out, K_DAMAGE, id, "missing: meta lists the shard") ?
		    0 : kds_fail_errno(e, "verify");
	}
	/* A closed shard is never written; with STREAM/lock held (repair)
	 * nothing else moves its files either. */
	out->repair = v->repair && !sh->open;
	if ((rc = shard_pass(sh, dirfd, out, e)) == -1)
		goto out;
	if (out->n > 0 && sh->open) {
		/* Look again, and repair, where no append is in flight. */
		struct pass a = { 0 };

		a.repair = v->repair;
		if ((rc = locked_pass(sh, dirfd, &a, e)) == -1) {
			pass_free(&a);
			goto out;
		}
		if (rc == 0) {
			pass_free(out);
			*out = a;
		} else {
			pass_free(&a);
		}
		if (v->repair)
			recover(v, sh, out);
	}
	rc = 0;
	if (out->repaired) {
		/* What the walk after the repair still finds was not. */
		rc = sh->open ? locked_pass(sh, dirfd, &b, e) :
		    shard_pass(sh, dirfd, &b, e);
		if (rc != -1)
			rc = reconcile(out, &b) == -1 ? kds_fail_errno(e,
			    "verify") : 0;
	}
out:
	pass_free(&b);
	close(dirfd);
	return rc;
}

/* The line of meta that holds shard number's line, 0 when not found. */
static size_t
meta_line(struct kds_stream *st, uint64_t number)
{
	char want[KDS_SHARD_ID_LEN + 8], *buf = NULL;
	size_t cap = 0, line = 0, found = 0;
	ssize_t n;
	FILE *f;
	int fd;

	snprintf(want, sizeof(want), "shard ");
	kds_shard_id(number, want + 6);
	strcat(want, " ");
	if ((fd = openat(st->dirfd, "meta", O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return 0;
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		return 0;
	}
	while ((n = getline(&buf, &cap, f)) != -1) {
		line++;
		if (strncmp(buf, want, strlen(want)) == 0) {
			found = line;
			break;
		}
	}
	free(buf);
	fclose(f);
	return found;
}

static int
cmp_start(const void *a, const void *b)
{
	const struct kds_shard *x = *(const struct kds_shard *const *)a;
	const struct kds_shard *y = *(const struct kds_shard *const *)b;

	return (x->start_hash > y->start_hash) - (x->start_hash < y->start_hash);
}

/*
 * What meta.c does not check, as it reads one file: that the open shards
 * cover the hash key space once, and that parents are older than their
 * children.
 */
static int
meta_check(struct verify *v, struct pass *p)
{
	const struct kds_shard **open;
	unsigned __int128 at = 0;
	size_t n = 0;
	int done = 0;

	if ((open = calloc(v->nshards + 1, sizeof(*open))) == NULL)
		return -1;
	for (size_t i = 0; i < v->nshards; i++) {
		const struct kds_shard *sh = &v->shards[i];

		if (sh->open)
			open[n++] = sh;
		if ((sh->parent >= 0 && (uint64_t)sh->parent >= sh->number) ||
		    (sh->adjacent >= 0 && (uint64_t)sh->adjacent >= sh->number)) {
			if (add(p, K_DAMAGE, "meta", "line %zu: a parent that "
			    "is not older than its child",
			    meta_line(v->st, sh->number)) == NULL)
				goto nomem;
		}
	}
	qsort(open, n, sizeof(*open), cmp_start);
	for (size_t i = 0; i < n && !done; i++) {
		if (open[i]->start_hash != at || (i > 0 && at == 0)) {
			if (add(p, K_DAMAGE, "meta", "line %zu: the open shards "
			    "do not cover the hash key space once",
			    meta_line(v->st, open[i]->number)) == NULL)
				goto nomem;
			done = 1;
		}
		at = open[i]->end_hash + 1;
	}
	if (!done && (n == 0 || at != 0)) {
		if (add(p, K_DAMAGE, "meta", n == 0 ? "no open shard" :
		    "line %zu: the open shards do not reach the last hash key",
		    n ? meta_line(v->st, open[n - 1]->number) : 0) == NULL)
			goto nomem;
	}
	free(open);
	return 0;
nomem:
	free(open);
	return -1;
}

/*
 * Read every consumer's checkpoints before the shards are walked: a
 * checkpoint only ever names a record that was on disk when it was
 * written, so one read first never runs ahead of the walk that follows.
 */
static int
ckpt_collect(struct verify *v, struct pass *p, struct ckpt **out, size_t *nout,
    struct kds_err *e)
{
	struct ckpt *c = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *top;
	int fd;

	*out = NULL;
	*nout = 0;
	fd = openat(v->st->dirfd, "consumers", O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		return 0;
	if (fd == -1 || (top = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return kds_fail_errno(e, "consumers");
	}
	while ((errno = 0, de = readdir(top)) != NULL) {
		struct kds_err ce_err;
		struct dirent *ce;
		DIR *cd;
		int cfd;

		if (!kds_consumer_name_ok(de->d_name))
			continue;
		cfd = openat(dirfd(top), de->d_name, O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);
		if (cfd == -1)
			continue;	/* dropped meanwhile, or not ours */
		if (kds_consumer_start_read(cfd, &(struct kds_iter_opts){ 0 },
		    &ce_err) == -1 && ce_err.errnum == EINVAL) {
			char file[KDS_SHARD_ID_LEN + 300];

			snprintf(file, sizeof(file), "consumers/%.128s/start",
			    de->d_name);
			if (add(p, K_DAMAGE, file, "line 1: bad start") == NULL)
				goto nomem;
		}
		if ((cd = fdopendir(cfd)) == NULL) {
			close(cfd);
			continue;
		}
		while ((errno = 0, ce = readdir(cd)) != NULL) {
			struct kds_checkpoint ck;
			char file[KDS_SHARD_ID_LEN + 300];
			char idbuf[KDS_SHARD_ID_LEN + 1];
			uint64_t shard;
			size_t len = strlen(ce->d_name);

			if (len != KDS_SHARD_ID_LEN + 11 ||
			    strcmp(ce->d_name + KDS_SHARD_ID_LEN,
			    ".checkpoint") != 0)
				continue;
			memcpy(idbuf, ce->d_name, KDS_SHARD_ID_LEN);
			idbuf[KDS_SHARD_ID_LEN] = '\0';
			if (strncmp(idbuf, "shardId-", 8) != 0 ||
			    kds_shard_id_parse(idbuf, &shard) == -1)
				continue;
			/* A consumer's name is at most 128 characters. */
			snprintf(file, sizeof(file), "consumers/%.128s/%.*s",
			    de->d_name, KDS_SHARD_ID_LEN + 11, ce->d_name);
			if (kds_checkpoint_read(cfd, shard, &ck, &ce_err) == -1) {
				if (ce_err.errnum != EINVAL && ce_err.errnum !=
				    ENOENT) {
					closedir(cd);
					closedir(top);
					free(c);
					*e = ce_err;
					return -1;
				}
				if (ce_err.errnum == EINVAL && add(p, K_DAMAGE,
				    file, "line 1: bad checkpoint") == NULL)
					goto nomem;
				continue;
			}
			if (ck.kind == KDS_CKPT_NONE)
				continue;
			if (n == cap) {
				struct ckpt *nc;

				cap = cap ? cap * 2 : 16;
				if ((nc = reallocarray(c, cap, sizeof(*c))) ==
				    NULL)
					goto nomem;
				c = nc;
			}
			snprintf(c[n].file, sizeof(c[n].file), "%s", file);
			c[n].shard = shard;
			c[n].kind = ck.kind;
			c[n++].counter = ck.counter;
		}
		closedir(cd);
	}
	closedir(top);
	*out = c;
	*nout = n;
	return 0;
nomem:
	free(c);
	return kds_fail_errno(e, "verify");
}

static int
lock_stream(struct kds_stream *st, struct kds_err *e)
{
	int fd = openat(st->dirfd, "lock", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1)
		return kds_fail_errno(e, "lock");
	if (kds_lock(fd, "lock", e) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
kds_stream_verify(struct kds_stream *st, int repair, kds_verify_fn *report,
    void *arg, struct kds_verify_stats *stats, struct kds_err *e)
{
	struct verify v = { st, repair, report, arg, stats, NULL, 0 };
	struct pass p = { 0 };
	struct ckpt *ck = NULL;
	uint64_t *ends = NULL;
	size_t nck = 0;
	int lockfd = -1, rc = -1;

	memset(stats, 0, sizeof(*stats));
	if (repair && (lockfd = lock_stream(st, e)) == -1)
		return -1;
	/* meta as it is now; damage in it is a finding, with its line. */
	if (kds_stream_reread(st, e) == -1) {
		if (e->errnum != 0)
			goto out;
		if (add(&p, K_DAMAGE, "meta", "%s", strncmp(e->msg, "meta: ",
		    6) == 0 ? e->msg + 6 : e->msg) == NULL)
			goto nomem;
		emit(&v, &p.f[0]);
		rc = 0;
		goto out;
	}
	v.nshards = st->meta.nshards;
	if ((v.shards = calloc(v.nshards + 1, sizeof(*v.shards))) == NULL ||
	    (ends = calloc(v.nshards + 1, 2 * sizeof(*ends))) == NULL)
		goto nomem;
	memcpy(v.shards, st->meta.shards, v.nshards * sizeof(*v.shards));
	if (meta_check(&v, &p) == -1)
		goto nomem;
	if (ckpt_collect(&v, &p, &ck, &nck, e) == -1)
		goto out;
	for (size_t i = 0; i < p.n; i++)
		if (strcmp(p.f[i].file, "meta") == 0)
			emit(&v, &p.f[i]);
	for (size_t i = 0; i < v.nshards; i++) {
		struct pass sp = { 0 };

		stats->shards++;
		if (verify_shard(&v, &v.shards[i], &sp, e) == -1) {
			pass_free(&sp);
			goto out;
		}
		for (size_t j = 0; j < sp.n; j++)
			emit(&v, &sp.f[j]);
		stats->segments += sp.segments;
		stats->records += sp.records;
		stats->bytes += sp.bytes;
		ends[2 * i] = (uint64_t)sp.end_known;
		ends[2 * i + 1] = sp.last_counter;
		pass_free(&sp);
	}
	/* Consumers: bad files first, then checkpoints past a shard's end. */
	for (size_t i = 0; i < p.n; i++)
		if (strcmp(p.f[i].file, "meta") != 0)
			emit(&v, &p.f[i]);
	pass_free(&p);
	for (size_t i = 0; i < nck; i++) {
		const struct kds_shard *sh = NULL;
		size_t k;

		for (k = 0; k < v.nshards; k++)
			if (v.shards[k].number == ck[i].shard) {
				sh = &v.shards[k];
				break;
			}
		if (sh == NULL || !ends[2 * k])
			continue;	/* expired, or its end is not known */
		if (ck[i].kind == KDS_CKPT_END && sh->open) {
			if (add(&p, K_DAMAGE, ck[i].file, "line 1: SHARD_END "
			    "in an open shard") == NULL)
				goto nomem;
		} else if (ck[i].kind == KDS_CKPT_AT &&
		    ck[i].counter > ends[2 * k + 1]) {
			char a[KDS_SEQ_LEN], b[KDS_SEQ_LEN];

			kds_seq_format(sh->number, ck[i].counter, a);
			kds_seq_format(sh->number, ends[2 * k + 1], b);
			if (add(&p, K_DAMAGE, ck[i].file, "line 1: checkpoint "
			    "%s is past the shard's last record, %s", a, b) ==
			    NULL)
				goto nomem;
		}
	}
	for (size_t i = 0; i < p.n; i++)
		emit(&v, &p.f[i]);
	rc = 0;
	goto out;
nomem:
	kds_fail_errno(e, "verify");
out:
	pass_free(&p);
	free(ck);
	free(ends);
	free(v.shards);
	if (lockfd != -1) {
		kds_unlock(lockfd);
		close(lockfd);
	}
	return rc;
}
