/*
 * reader.c: records out.  A shard reader walks a shard's segments with
 * pread and takes no lock: it returns only frames whose checksum holds, and
 * stops quietly at an incomplete last frame of the shard's last segment (a
 * writer may be halfway through it).  Everything else that fails is
 * corruption, reported with segment and offset.  Several shards are merged
 * by (arrival time, shard number): a parent's records all arrive no later
 * than its children's, so a parent is read out before its children.
 *
 * The set of shards can change while reading: a consumer adds the shards
 * it leases and drops those it gives up, and a follower goes on to the
 * children of a shard that a reshard closed, once it has read that shard
 * (and, for a merge, its adjacent parent) to the end.  Waiting for more is
 * follow.c's.
 */
#define _GNU_SOURCE
#include <sys/inotify.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "reader.h"

/* Read-ahead per shard: large for speed, shared out so that memory stays
 * bounded (4 MiB in all, at least 64 KiB a shard) whatever the shard count.
 * A frame larger than this grows its shard's buffer to fit. */
#define READ_BUDGET	(4 * 1024 * 1024)
#define READ_CHUNK_MIN	(64 * 1024)
#define READ_CHUNK_MAX	(256 * 1024)
#define DESCRIBE_CHUNK	4096		/* a peek, not a read */

static void
set_segname(struct shard_reader *r, uint64_t counter, const char *suffix)
{
	char id[KDS_SHARD_ID_LEN + 1], seg[64];

	kds_shard_id(r->shard, id);
	kds_seg_name(r->shard, counter, suffix, seg, sizeof(seg));
	snprintf(r->segname, sizeof(r->segname), "%s/%s", id, seg);
}

static int
corrupt(struct shard_reader *r, uint64_t off, const char *why,
    struct kds_err *e)
{
	return kds_fail(e, 0, "%s: offset %llu: %s", r->segname,
	    (unsigned long long)off, why);
}

/* In a compressed segment: the offset is the block's in the file, and a
 * frame's own is its offset in the segment (kds-stream(5)). */
static int
zcorrupt(struct shard_reader *r, uint64_t off, const char *why,
    struct kds_err *e)
{
	if (r->blk_off == 0)
		return corrupt(r, r->zsize, why, e);
	return kds_fail(e, 0, "%s: offset %llu: segment offset %llu: %s",
	    r->segname, (unsigned long long)r->blk_off,
	    (unsigned long long)off, why);
}

/* Forget what buf holds: the next peek reads afresh at off. */
static void
invalidate(struct shard_reader *r)
{
	r->len = 0;
	r->eof = 0;
	r->blk_off = 0;
}

static int
relist(struct shard_reader *r, struct kds_err *e)
{
	uint64_t *segs;
	size_t n;

	if (kds_seg_list(r->dirfd, r->shard, &segs, &n, e) == -1)
		return -1;
	/* A last segment shorter than a header is a roll that a crash cut
	 * short; the next writer removes it.  Until then it is not there.
	 * Anything but a file (a planted link) is opened, and refused. */
	if (n > 1) {
		char name[64];
		struct stat sb;

		kds_seg_name(r->shard, segs[n - 1], ".seg", name, sizeof(name));
		if (fstatat(r->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(sb.st_mode) && sb.st_size < SEG_HEADER_LEN)
			n--;
	}
	free(r->segs);
	r->segs = segs;
	r->nsegs = n;
	return 0;
}

/*
 * Open segment i at its first frame: SEQ.seg, or when it is not there,
 * SEQ.zseg, which replaces it (kds-stream(5), COMPRESSED SEGMENTS).
 * 0, 1 when it has gone (expired).
 */
static int
open_seg(struct shard_reader *r, size_t i, struct kds_err *e)
{
	unsigned char h[ZSEG_HEADER_LEN];
	char name[64];
	const char *why;
	struct stat sb;
	ssize_t n;

	if (r->segfd != -1)
		close(r->segfd);
	r->cur = i;
	r->compressed = 0;
	invalidate(r);
	set_segname(r, r->segs[i], ".seg");
	kds_seg_name(r->shard, r->segs[i], ".seg", name, sizeof(name));
	r->segfd = openat(r->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (r->segfd == -1 && errno == ENOENT) {
		set_segname(r, r->segs[i], ".zseg");
		kds_seg_name(r->shard, r->segs[i], ".zseg", name, sizeof(name));
		r->segfd = openat(r->dirfd, name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (r->segfd == -1 && errno == ENOENT)
			return 1;
		r->compressed = 1;
	}
	if (r->segfd == -1)
		return kds_fail_errno(e, "%s", r->segname);
	n = pread(r->segfd, h, r->compressed ? ZSEG_HEADER_LEN : SEG_HEADER_LEN,
	    0);
	if (n == -1)
		return kds_fail_errno(e, "%s: read", r->segname);
	if (r->compressed) {
		if (fstat(r->segfd, &sb) == -1)
			return kds_fail_errno(e, "%s", r->segname);
		r->zsize = (uint64_t)sb.st_size;
		why = kds_zseg_header_check(h, (size_t)n, r->shard, r->segs[i],
		    &r->zh);
		r->hdr = r->zh.seg;
	} else {
		why = kds_seg_header_check(h, (size_t)n, r->shard, r->segs[i],
		    &r->hdr);
	}
	if (why != NULL)
		return corrupt(r, 0, why, e);
	r->off = SEG_HEADER_LEN;
	r->expect = r->segs[i];
	return 0;
}

/* Load the block at file offset at into buf.  0, or -1 (corruption). */
static int
zload(struct shard_reader *r, uint64_t at, struct kds_err *e)
{
	struct kds_zblock b;
	const char *why;
	int rc;

	r->blk_off = 0;
	r->len = 0;
	if (at == r->zsize) {		/* past the last block */
		if (r->off != r->zh.size)
			return corrupt(r, at, "blocks end before the segment "
			    "size", e);
		r->buf_off = r->off;
		r->eof = 1;
		return 0;
	}
	rc = kds_zblock_load(r->segfd, at, r->zsize, r->hdr.salt, r->z, &b,
	    &r->buf, &r->cap, &why, e);
	if (rc == -1) {
		struct kds_err inner = *e;

		return kds_fail(e, inner.errnum, "%s: %s", r->segname, inner.msg);
	}
	if (rc == 1)
		return corrupt(r, at, why, e);
	/* The block must hold the frame at off: peek would throw away any
	 * other, and come back for the same block, forever. */
	if (b.seg_off > r->off || r->off - b.seg_off >= b.raw_len)
		return corrupt(r, at, "block out of place", e);
	r->buf_off = b.seg_off;
	r->len = b.raw_len;
	r->eof = 0;
	r->blk_off = at;
	r->blk_next = at + ZBLOCK_HEADER_LEN + b.comp_len;
	return 0;
}

/*
 * Make buf hold the block of the frame at off.  At the end of a block, the
 * next one; inside one, nothing more (a frame that runs past its block);
 * elsewhere, the block found by hopping over block headers from the first.
 */
static int
zfill(struct shard_reader *r, struct kds_err *e)
{
	unsigned char p[ZBLOCK_HEADER_LEN];
	uint64_t at = ZSEG_HEADER_LEN;

	if (r->blk_off != 0 && r->off == r->buf_off + r->len)
		return zload(r, r->blk_next, e);
	if (r->blk_off != 0 && r->off >= r->buf_off &&
	    r->off < r->buf_off + r->len) {
		r->eof = 1;
		return 0;
	}
	while (at < r->zsize) {
		ssize_t n = pread(r->segfd, p, sizeof(p), (off_t)at);
		uint64_t seg_off;

		if (n == -1)
			return kds_fail_errno(e, "%s: read", r->segname);
		if (n != (ssize_t)sizeof(p) ||
		    get_le64(p + 40) != kds_checksum(p, 40, r->hdr.salt))
			return corrupt(r, at, "bad block header", e);
		seg_off = get_le64(p);
		if (r->off < seg_off + get_le32(p + 24))
			break;
		at += ZBLOCK_HEADER_LEN + get_le32(p + 28);
	}
	return zload(r, at, e);
}

static int open_at(struct shard_reader *, size_t, struct kds_err *);

/* Fill buf from off; want: bytes wanted from off. */
static int
fill(struct shard_reader *r, size_t want, struct kds_err *e)
{
	if (want > r->cap) {
		size_t nc = r->cap;
		unsigned char *nb;

		while (nc < want)
			nc *= 2;
		if ((nb = realloc(r->buf, nc)) == NULL)
			return kds_fail_errno(e, "%s", r->segname);
		r->buf = nb;
		r->cap = nc;
	}
	r->buf_off = r->off;
	r->len = 0;
	r->eof = 0;
	while (r->len < r->cap) {
		ssize_t n = pread(r->segfd, r->buf + r->len, r->cap - r->len,
		    (off_t)(r->buf_off + r->len));

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return kds_fail_errno(e, "%s: read", r->segname);
		if (n == 0) {
			r->eof = 1;
			break;
		}
		r->len += (size_t)n;
		if (r->len >= want)
			break;
	}
	return 0;
}

/*
 * kds-expire removed the segment we are reading, once the last of the
 * shard: it put an empty one after it first, so it is sealed, and our
 * descriptor still reads it whole.  Read it to its end, then go on to the
 * segment after it (kds-stream(5), RETENTION).  2 moved on or read more,
 * -1.
 */
static int
after_removed(struct shard_reader *r, enum frame_status fs, const char *why,
    struct kds_err *e)
{
	uint64_t expect = r->expect;
	int64_t prev = r->prev_arrival;
	struct stat sb;
	size_t i;
	int rc;

	for (i = 0; i < r->nsegs && r->segs[i] <= r->hdr.first_counter; i++)
		;
	if (i == r->nsegs)
		return corrupt(r, r->off, "segment removed while being read", e);
	if (fstat(r->segfd, &sb) == -1)
		return kds_fail_errno(e, "%s", r->segname);
	/* Only a buffer that reached the end can tell that it grew. */
	if (r->eof && (uint64_t)sb.st_size > r->buf_off + r->len) {
		r->len = 0;	/* it grew before it was sealed */
		return 2;
	}
	if (fs != FRAME_INCOMPLETE || r->off != (uint64_t)sb.st_size)
		return corrupt(r, r->off, fs == FRAME_BAD ? why :
		    "truncated frame", e);
	if ((rc = open_seg(r, i, e)) == 1)
		return open_at(r, 0, e) == -1 ? -1 : 2;
	if (rc == -1)
		return -1;
	r->prev_arrival = prev;
	/* A later first counter: what lay between has expired too. */
	if (r->hdr.first_counter < expect)
		return corrupt(r, 0, "first sequence number does not follow "
		    "the previous segment", e);
	return 2;
}

/*
 * The frame at off did not decode.  On the last segment of the shard it
 * may be the end of the data for now, or a torn tail: both are "no more".
 * Returns 0 (no more), 2 (moved on to another segment: try again) or -1.
 */
/* Go on from a sealed segment read to its end to segment i, which must
 * follow it.  2, or -1. */
static int
next_seg(struct shard_reader *r, size_t i, struct kds_err *e)
{
	int64_t prev = r->prev_arrival;
	uint64_t expect = r->expect;
	int rc = open_seg(r, i, e);

	if (rc == 1)		/* we fell behind kds-expire */
		return open_at(r, 0, e) == -1 ? -1 : 2;
	if (rc == -1)
		return -1;
	r->prev_arrival = prev;
	if (r->hdr.first_counter != expect)
		return corrupt(r, 0, "first sequence number does not "
		    "follow the previous segment", e);
	return 2;
}

static int
at_end(struct shard_reader *r, enum frame_status fs, const char *why,
    struct kds_err *e)
{
	struct stat sb;
	size_t i;
	int torn;

	/* A compressed segment is sealed: nothing in it is a torn tail. */
	if (r->compressed) {
		if (fs != FRAME_INCOMPLETE || !r->eof || r->len != 0 ||
		    r->off != r->zh.size)
			return zcorrupt(r, r->off, fs == FRAME_BAD ? why :
			    "frame runs past its block", e);
		if (r->cur + 1 < r->nsegs)
			return next_seg(r, r->cur + 1, e);
		/* The shard's last segment, as far as we knew: any after it?
		 * (Ours may have gone from the list meanwhile: read on.) */
		if (relist(r, e) == -1)
			return -1;
		for (i = 0; i < r->nsegs && r->segs[i] <= r->hdr.first_counter;
		    i++)
			;
		return i < r->nsegs ? next_seg(r, i, e) : 0;
	}
	if (r->cur + 1 >= r->nsegs) {
		size_t had = r->nsegs;

		if (relist(r, e) == -1)
			return -1;
		if (r->nsegs > had || (r->cur < r->nsegs &&
		    r->segs[r->cur] != r->hdr.first_counter)) {
			/* A roll (or expiry) happened: the segment we are in
			 * may have grown before it was sealed; look again. */
			for (i = 0; i < r->nsegs; i++) {
				if (r->segs[i] == r->hdr.first_counter) {
					r->cur = i;
					invalidate(r);
					return 2;
				}
			}
			return after_removed(r, fs, why, e);
		}
		if (fstat(r->segfd, &sb) == -1)
			return kds_fail_errno(e, "%s", r->segname);
		if ((uint64_t)sb.st_size == r->off)
			return 0;
		/*
		 * A bad frame may be found with the file read only in part:
		 * then more bytes are no news, and reading again would find
		 * the same frame, forever.
		 */
		if (r->eof && (uint64_t)sb.st_size > r->buf_off + r->len) {
			r->len = 0;	/* it grew meanwhile: read again */
			return 2;
		}
		torn = kds_tail_is_torn(r->segfd, r->off, (uint64_t)sb.st_size,
		    r->hdr.salt, fs == FRAME_BAD, e);
		if (torn == -1)
			return -1;
		if (torn)
			return 0;
		return corrupt(r, r->off, fs == FRAME_BAD ? why :
		    "bad frame length", e);
	}
	/* A sealed segment ends exactly on a frame boundary. */
	if (fs == FRAME_INCOMPLETE && r->eof && r->off == r->buf_off + r->len)
		return next_seg(r, r->cur + 1, e);
	return corrupt(r, r->off, fs == FRAME_BAD ? why : "truncated frame", e);
}

/* Decode the frame at off into r->f.  1 frame, 0 no more, -1 error. */
static int
peek(struct shard_reader *r, struct kds_err *e)
{
	for (;;) {
		const char *why = NULL;
		enum frame_status fs;
		size_t avail;
		int rc;

		if (r->off < r->buf_off || r->off > r->buf_off + r->len) {
			invalidate(r);
			r->buf_off = r->off;
		}
		avail = r->buf_off + r->len - r->off;
		fs = kds_frame_decode(r->buf + (r->off - r->buf_off), avail,
		    r->hdr.salt, &r->f, &why);
		if (fs == FRAME_INCOMPLETE && !r->eof && r->compressed) {
			if (zfill(r, e) == -1)
				return -1;
			continue;
		}
		if (fs == FRAME_INCOMPLETE && !r->eof) {
			size_t want = FRAME_HEADER_LEN;

			if (avail >= 12)
				want = get_le32(r->buf + (r->off - r->buf_off) + 8);
			if (fill(r, want < r->chunk ? r->chunk : want, e) == -1)
				return -1;
			continue;
		}
		if (fs == FRAME_OK && r->f.counter != r->expect)
			return (r->compressed ? zcorrupt : corrupt)(r, r->off,
			    "sequence number out of order", e);
		if (fs == FRAME_OK && r->f.arrival_ms < r->prev_arrival)
			return (r->compressed ? zcorrupt : corrupt)(r, r->off,
			    "arrival time goes back", e);
		if (fs == FRAME_OK)
			return 1;
		if ((rc = at_end(r, fs, why, e)) != 2)
			return rc;
		/* at_end moved on, or the file grew: read afresh. */
		invalidate(r);
		r->buf_off = r->off;
	}
}

static void
advance(struct shard_reader *r)
{
	r->off += r->f.len;
	r->expect = r->f.counter + 1;
	r->prev_arrival = r->f.arrival_ms;
}

/* 1 with r->f at the next record not older than the floor, 0, -1. */
static int
next_frame(struct shard_reader *r, struct kds_err *e)
{
	int rc;

	while ((rc = peek(r, e)) == 1 && r->f.arrival_ms < r->floor_ms)
		advance(r);
	return rc;
}

/* Start at index entry ie of the current segment, if it checks out. */
static void
start_at_entry(struct shard_reader *r, const struct kds_index_entry *ie,
    uint32_t inner, struct kds_err *e)
{
	uint64_t off = r->off, expect = r->expect, first = r->hdr.first_counter;
	int64_t prev = r->prev_arrival;

	r->off = ie->offset;
	r->expect = ie->counter;
	r->prev_arrival = ie->arrival_ms;
	invalidate(r);
	/* A .zidx entry names a block, and a frame in it. */
	if (r->compressed && (zload(r, ie->offset, e) == -1 || r->len == 0 ||
	    inner >= r->len))
		goto stale;
	if (r->compressed)
		r->off = r->buf_off + inner;
	if (peek(r, e) == 1 && r->f.counter == ie->counter &&
	    r->f.arrival_ms == ie->arrival_ms && r->hdr.first_counter == first)
		return;
stale:
	/* A stale entry: the segment itself is the truth. */
	r->off = off;
	r->expect = expect;
	r->prev_arrival = prev;
	invalidate(r);
}

/* The current segment's index, .idx or .zidx (whose entries name a
 * block, and the frame's offset in it, inner). */
static void
load_index(struct shard_reader *r, struct kds_index_entry **ix,
    uint32_t **inner, size_t *n)
{
	const char *name = r->segname + KDS_SHARD_ID_LEN + 1;

	*inner = NULL;
	if (r->compressed)
		kds_zidx_load(r->dirfd, name, ix, inner, n);
	else
		kds_index_load(r->dirfd, name, ix, n);
}

static int
open_at(struct shard_reader *r, size_t i, struct kds_err *e)
{
	int rc = open_seg(r, i, e);

	if (rc == 1) {
		/* Expired between the listing and the open: list again. */
		if (relist(r, e) == -1)
			return -1;
		if (r->nsegs == 0)
			return corrupt(r, 0, "no segment", e);
		rc = open_seg(r, 0, e);
	}
	r->prev_arrival = INT64_MIN;
	return rc == 1 ? corrupt(r, 0, "segment vanished", e) : rc;
}

static int
seek_counter(struct shard_reader *r, uint64_t counter, struct kds_err *e)
{
	struct kds_index_entry *ix;
	uint32_t *inner;
	size_t lo = 0, hi = r->nsegs, nix, k;
	int rc;

	while (lo < hi) {		/* last segment starting <= counter */
		size_t mid = lo + (hi - lo) / 2;

		if (r->segs[mid] <= counter)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (open_at(r, lo == 0 ? 0 : lo - 1, e) == -1)
		return -1;
	load_index(r, &ix, &inner, &nix);
	if ((k = kds_index_find_counter(ix, nix, counter)) < nix)
		start_at_entry(r, &ix[k], inner ? inner[k] : 0, e);
	free(ix);
	free(inner);
	while ((rc = peek(r, e)) == 1 && r->f.counter < counter)
		advance(r);
	return rc == -1 ? -1 : 0;
}

/* The arrival time of segment i's first frame; INT64_MAX when empty. */
static int
first_arrival(struct shard_reader *r, size_t i, int64_t *ms,
    struct kds_err *e)
{
	int rc;

	if ((rc = open_at(r, i, e)) == -1)
		return -1;
	if (r->cur != i) {
		*ms = INT64_MIN;
		return 0;
	}
	if (r->compressed) {		/* its header says, checksummed */
		*ms = r->zh.first_arrival;
		return 0;
	}
	if ((rc = peek(r, e)) == -1)
		return -1;
	*ms = rc == 1 && r->cur == i ? r->f.arrival_ms : INT64_MAX;
	return 0;
}

static int
seek_time(struct shard_reader *r, int64_t ms, struct kds_err *e)
{
	struct kds_index_entry *ix;
	uint32_t *inner;
	size_t lo = 0, hi = r->nsegs, nix, k;
	int64_t t;
	int rc;

	while (lo < hi) {		/* last segment whose first is < ms */
		size_t mid = lo + (hi - lo) / 2;

		if (first_arrival(r, mid, &t, e) == -1)
			return -1;
		if (t < ms)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (open_at(r, lo == 0 ? 0 : lo - 1, e) == -1)
		return -1;
	load_index(r, &ix, &inner, &nix);
	if ((k = kds_index_find_time(ix, nix, ms)) < nix)
		start_at_entry(r, &ix[k], inner ? inner[k] : 0, e);
	free(ix);
	free(inner);
	while ((rc = peek(r, e)) == 1 && r->f.arrival_ms < ms)
		advance(r);
	return rc == -1 ? -1 : 0;
}

static int
seek_latest(struct shard_reader *r, struct kds_err *e)
{
	struct kds_index_entry *ix;
	uint32_t *inner;
	size_t nix;
	int rc;

	if (open_at(r, r->nsegs - 1, e) == -1)
		return -1;
	load_index(r, &ix, &inner, &nix);
	if (nix > 0)
		start_at_entry(r, &ix[nix - 1], inner ? inner[nix - 1] : 0,
		    e);
	free(ix);
	free(inner);
	while ((rc = peek(r, e)) == 1)
		advance(r);
	return rc;
}

static void
shard_reader_free(struct shard_reader *r)
{
	if (r == NULL)
		return;
	if (r->segfd != -1)
		close(r->segfd);
	if (r->dirfd != -1)
		close(r->dirfd);
	free(r->segs);
	free(r->buf);
	free(r);
}

static struct shard_reader *
shard_reader_open(struct kds_stream *st, uint64_t shard,
    const struct kds_iter_opts *o, uint64_t seq_counter, size_t chunk,
    struct kds_zbuf *z, struct kds_err *e)
{
	struct shard_reader *r;
	int64_t floor_ms = kds_now_ms() - st->meta.retention_s * 1000;
	int rc = -1;

	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->buf = malloc(chunk)) == NULL) {
		free(r);
		kds_fail_errno(e, "reader");
		return NULL;
	}
	r->st = st;
	r->shard = shard;
	r->cap = r->chunk = chunk;
	r->segfd = -1;
	r->wd = -1;
	r->floor_ms = floor_ms;
	r->z = z;
	set_segname(r, 1, ".seg");
	if ((r->dirfd = kds_shard_dir_open(st, shard, e)) == -1)
		goto out;
	if (relist(r, e) == -1)
		goto out;
	if (r->nsegs == 0) {
		kds_fail(e, 0, "%.*s: no segment", KDS_SHARD_ID_LEN, r->segname);
		goto out;
	}
	switch (o->type) {
	case KDS_TRIM_HORIZON:
		rc = seek_time(r, floor_ms, e);
		break;
	case KDS_LATEST:
		rc = seek_latest(r, e);
		break;
	case KDS_AT_TIMESTAMP:
		rc = seek_time(r, o->timestamp_ms > floor_ms ? o->timestamp_ms :
		    floor_ms, e);
		break;
	case KDS_AT_SEQUENCE_NUMBER:
		rc = seek_counter(r, seq_counter, e);
		break;
	case KDS_AFTER_SEQUENCE_NUMBER:
		rc = seek_counter(r, seq_counter + 1, e);
		break;
	}
out:
	if (rc == -1) {
		shard_reader_free(r);
		return NULL;
	}
	return r;
}

static int
before(const struct kds_reader *rd, size_t a, size_t b)
{
	const struct shard_reader *x = rd->shards[a], *y = rd->shards[b];

	if (x->f.arrival_ms != y->f.arrival_ms)
		return x->f.arrival_ms < y->f.arrival_ms;
	return x->shard < y->shard;
}

static void
heap_push(struct kds_reader *rd, size_t s)
{
	size_t i = rd->nheap++;

	rd->heap[i] = s;
	while (i > 0) {
		size_t up = (i - 1) / 2;

		if (!before(rd, rd->heap[i], rd->heap[up]))
			break;
		rd->heap[i] = rd->heap[up];
		rd->heap[up] = s;
		i = up;
	}
}

static size_t
heap_pop(struct kds_reader *rd)
{
	size_t top = rd->heap[0], i = 0;

	rd->heap[0] = rd->heap[--rd->nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i, t;

		if (l < rd->nheap && before(rd, rd->heap[l], rd->heap[m]))
			m = l;
		if (r < rd->nheap && before(rd, rd->heap[r], rd->heap[m]))
			m = r;
		if (m == i)
			break;
		t = rd->heap[i];
		rd->heap[i] = rd->heap[m];
		rd->heap[m] = t;
		i = m;
	}
	return top;
}

/* The shard reader's index in rd->shards, or rd->n. */
static size_t
find(const struct kds_reader *rd, uint64_t shard)
{
	size_t lo = 0, hi = rd->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (rd->shards[mid]->shard == shard)
			return mid;
		if (rd->shards[mid]->shard < shard)
			lo = mid + 1;
		else
			hi = mid;
	}
	return rd->n;
}

/* Closed, and nothing after the record it would read next. */
static int
done(const struct shard_reader *r)
{
	const struct kds_shard *sh = kds_stream_shard(r->st, r->shard);

	return sh == NULL || (!sh->open && r->expect > sh->end_counter);
}

/* Look for the next record of an idle shard; into the heap if there is
 * one, to SR_DONE if there never will be. */
int
kds_reader_poke(struct kds_reader *rd, struct shard_reader *r,
    struct kds_err *e)
{
	int rc;

	if (r->state != SR_IDLE)
		return 0;
	r->dirty = 0;
	if ((rc = next_frame(r, e)) == -1)
		return -1;
	if (rc == 1) {
		r->state = SR_READY;
		heap_push(rd, find(rd, r->shard));
	} else if (done(r)) {
		r->state = SR_DONE;
	}
	return 0;
}

/* The record last handed out has been taken: read its shard on. */
static int
take_last(struct kds_reader *rd, struct kds_err *e)
{
	struct shard_reader *r;
	size_t s = (size_t)rd->last;

	if (rd->last < 0)
		return 0;
	rd->last = -1;
	r = rd->shards[s];
	r->state = SR_IDLE;
	return kds_reader_poke(rd, r, e);
}

/* A waiting child starts once every parent this reader reads is done. */
static int
parents_done(const struct kds_reader *rd, const struct shard_reader *r)
{
	const struct kds_shard *sh = kds_stream_shard(rd->st, r->shard);
	int64_t p[2];

	if (sh == NULL)
		return 1;
	p[0] = sh->parent;
	p[1] = sh->adjacent;
	for (int i = 0; i < 2; i++) {
		size_t k;

		if (p[i] < 0 || (k = find(rd, (uint64_t)p[i])) == rd->n)
			continue;
		if (rd->shards[k]->state != SR_DONE)
			return 0;
	}
	return 1;
}

/* Start the children whose parents are done; repeat for grandchildren
 * that are themselves done at once. */
int
kds_reader_settle(struct kds_reader *rd, struct kds_err *e)
{
	int again = 1;

	while (again) {
		again = 0;
		for (size_t i = 0; i < rd->n; i++) {
			struct shard_reader *r = rd->shards[i];

			if (r->state != SR_WAIT || !parents_done(rd, r))
				continue;
			r->state = SR_IDLE;
			if (kds_reader_poke(rd, r, e) == -1)
				return -1;
			again |= r->state == SR_DONE;
		}
	}
	return 0;
}

static int
grow(struct kds_reader *rd, size_t want, struct kds_err *e)
{
	struct shard_reader **ns;
	size_t *nh, nc = rd->cap ? rd->cap : 4;

	if (want <= rd->cap)
		return 0;
	while (nc < want)
		nc *= 2;
	if ((ns = reallocarray(rd->shards, nc, sizeof(*ns))) == NULL)
		return kds_fail_errno(e, "reader");
	rd->shards = ns;
	if ((nh = reallocarray(rd->heap, nc, sizeof(*nh))) == NULL)
		return kds_fail_errno(e, "reader");
	rd->heap = nh;
	rd->cap = nc;
	return 0;
}

/* Rebuild the heap after rd->shards changed its order. */
static void
reheap(struct kds_reader *rd)
{
	rd->nheap = 0;
	for (size_t i = 0; i < rd->n; i++)
		if (rd->shards[i]->state == SR_READY)
			heap_push(rd, i);
}

/*
 * Whether SHARD has left the shard table since this reader read it: a
 * closed shard that kds-expire removed between our reading meta and our
 * opening its directory.  Its records have all expired; it is done.
 */
static int
dropped(struct kds_stream *st, uint64_t shard)
{
	const struct kds_shard *sh = kds_stream_shard(st, shard);
	struct kds_err e;
	int changed;

	if (sh == NULL || sh->open)
		return 0;
	if (kds_stream_reload(st, &changed, &e) == -1 || !changed)
		return 0;
	return kds_stream_shard(st, shard) == NULL;
}

/*
 * Add a shard reader at o's position; wait: it is a child that starts
 * when its parents are done.  Not yet read: kds_reader_settle or poke.
 */
static int
add(struct kds_reader *rd, uint64_t shard, const struct kds_iter_opts *o,
    uint64_t seq_counter, int wait, struct kds_err *e)
{
	struct shard_reader *r;
	size_t k;

	if (find(rd, shard) != rd->n)
		return 0;
	if (take_last(rd, e) == -1 || grow(rd, rd->n + 1, e) == -1)
		return -1;
	if ((r = shard_reader_open(rd->st, shard, o, seq_counter, rd->chunk,
	    &rd->z, e)) == NULL)
		return dropped(rd->st, shard) ? 0 : -1;
	r->state = wait ? SR_WAIT : SR_IDLE;
	for (k = rd->n; k > 0 && rd->shards[k - 1]->shard > shard; k--)
		rd->shards[k] = rd->shards[k - 1];
	rd->shards[k] = r;
	rd->n++;
	reheap(rd);
	if (rd->ifd != -1 && kds_follow_watch(rd, r, e) == -1)
		return -1;
	return 0;
}

/*
 * Children of the shards read, not yet read themselves, join as waiting,
 * from their oldest record: a follower carries on past a reshard.
 */
int
kds_reader_adopt_children(struct kds_reader *rd, struct kds_err *e)
{
	const struct kds_iter_opts th = { .type = KDS_TRIM_HORIZON };
	int added = 1;

	if (!(rd->flags & KDS_READ_CHILDREN))
		return 0;
	while (added) {
		added = 0;
		for (size_t i = 0; i < rd->st->meta.nshards; i++) {
			const struct kds_shard *sh = &rd->st->meta.shards[i];

			if (find(rd, sh->number) != rd->n)
				continue;
			if ((sh->parent < 0 || find(rd, (uint64_t)sh->parent) ==
			    rd->n) && (sh->adjacent < 0 ||
			    find(rd, (uint64_t)sh->adjacent) == rd->n))
				continue;
			if (add(rd, sh->number, &th, 0, 1, e) == -1)
				return -1;
			added = 1;
			break;		/* rd changed, and add() may re-read meta */
		}
	}
	return kds_reader_settle(rd, e);
}

struct kds_reader *
kds_reader_open(struct kds_stream *st, const struct kds_iter_opts *o,
    struct kds_err *e)
{
	const struct kds_meta *m = &st->meta;
	struct kds_reader *rd;
	uint64_t seq_shard = 0, seq_counter = 0, *list = NULL;
	int by_seq = o->type == KDS_AT_SEQUENCE_NUMBER ||
	    o->type == KDS_AFTER_SEQUENCE_NUMBER;
	size_t want = o->shards ? o->nshards : m->nshards, chunk;

	if (by_seq) {
		if (o->sequence == NULL ||
		    kds_seq_parse(o->sequence, &seq_shard, &seq_counter) == -1) {
			kds_fail(e, EINVAL, "bad sequence number '%.64s'",
			    o->sequence ? o->sequence : "");
			return NULL;
		}
		if (kds_stream_shard(st, seq_shard) == NULL) {
			char id[KDS_SHARD_ID_LEN + 1];

			kds_shard_id(seq_shard, id);
			kds_fail(e, ENOENT, "sequence number %s: no shard %s",
			    o->sequence, id);
			return NULL;
		}
		for (size_t i = 0; o->shards && i < o->nshards; i++) {
			if (o->shards[i] != seq_shard) {
				kds_fail(e, EINVAL, "sequence number %s is not "
				    "of the shards asked for", o->sequence);
				return NULL;
			}
		}
		want = 1;	/* a sequence number names its shard */
	}
	if ((rd = calloc(1, sizeof(*rd))) == NULL) {
		kds_fail_errno(e, "reader");
		return NULL;
	}
	rd->st = st;
	rd->last = -1;
	rd->ifd = rd->meta_wd = -1;
	rd->flags = o->flags;
	chunk = READ_BUDGET / (want ? want : 1);
	rd->chunk = chunk < READ_CHUNK_MIN ? READ_CHUNK_MIN :
	    chunk > READ_CHUNK_MAX ? READ_CHUNK_MAX : chunk;
	if (grow(rd, want, e) == -1)
		goto fail;
	/* Watch before the first read, so that no append goes unnoticed. */
	if ((o->flags & KDS_READ_FOLLOW) && kds_follow_start(rd, e) == -1)
		goto fail;
	/* add() may re-read meta (a shard expired meanwhile): the list of
	 * shards to open is taken first, not walked in a table that moves. */
	if ((list = calloc(want ? want : 1, sizeof(*list))) == NULL) {
		kds_fail_errno(e, "reader");
		goto fail;
	}
	for (size_t i = 0; i < want; i++)
		list[i] = by_seq ? seq_shard : o->shards ? o->shards[i] :
		    m->shards[i].number;
	for (size_t i = 0; i < want; i++)
		if (add(rd, list[i], o, seq_counter, 0, e) == -1)
			goto fail;
	free(list);
	list = NULL;
	/* A child read with its parents waits for them to be read out. */
	for (size_t i = 0; (o->flags & KDS_READ_CHILDREN) && i < rd->n; i++)
		if (!parents_done(rd, rd->shards[i]))
			rd->shards[i]->state = SR_WAIT;
	for (size_t i = 0; i < rd->n; i++)
		if (kds_reader_poke(rd, rd->shards[i], e) == -1)
			goto fail;
	if (kds_reader_adopt_children(rd, e) == -1)
		goto fail;
	return rd;
fail:
	free(list);
	kds_reader_close(rd);
	return NULL;
}

int
kds_reader_add(struct kds_reader *rd, uint64_t shard,
    const struct kds_iter_opts *o, struct kds_err *e)
{
	uint64_t seq_shard = shard, seq_counter = 0;
	size_t k;

	if (o->type == KDS_AT_SEQUENCE_NUMBER ||
	    o->type == KDS_AFTER_SEQUENCE_NUMBER) {
		if (o->sequence == NULL || kds_seq_parse(o->sequence,
		    &seq_shard, &seq_counter) == -1 || seq_shard != shard)
			return kds_fail(e, EINVAL, "bad sequence number "
			    "'%.64s'", o->sequence ? o->sequence : "");
	}
	if (add(rd, shard, o, seq_counter, 0, e) == -1)
		return -1;
	k = find(rd, shard);
	return kds_reader_poke(rd, rd->shards[k], e);
}

int
kds_reader_drop(struct kds_reader *rd, uint64_t shard, struct kds_err *e)
{
	size_t k;

	/* Settle the last record's shard first: indices are about to move. */
	if (take_last(rd, e) == -1)
		return -1;
	if ((k = find(rd, shard)) == rd->n)
		return 0;
	if (rd->shards[k]->wd != -1 && rd->ifd != -1)
		inotify_rm_watch(rd->ifd, rd->shards[k]->wd);
	shard_reader_free(rd->shards[k]);
	memmove(rd->shards + k, rd->shards + k + 1,
	    (rd->n - k - 1) * sizeof(*rd->shards));
	rd->n--;
	reheap(rd);
	return 0;
}

int
kds_reader_done(struct kds_reader *rd, uint64_t shard)
{
	size_t k = find(rd, shard);
	struct shard_reader *r;

	if (k == rd->n)
		return 0;
	r = rd->shards[k];
	if (r->state == SR_DONE)
		return 1;
	if (r->state == SR_READY && (ssize_t)k != rd->last)
		return 0;	/* it holds a record not yet handed out */
	/* Idle, waiting, or its last record just taken: expect is next. */
	return done(r);
}

int
kds_reader_next(struct kds_reader *rd, struct kds_record *rec,
    struct kds_err *e)
{
	struct shard_reader *r;
	size_t s;

	if (rd->last >= 0) {
		int rc;

		s = (size_t)rd->last;
		r = rd->shards[s];
		rd->last = -1;
		if ((rc = next_frame(r, e)) == -1)
			return -1;
		/* Runs of one shard (a batch shares its arrival time) skip
		 * the heap: still first, it is simply next. */
		if (rc == 1 && (rd->nheap == 0 || before(rd, s, rd->heap[0])))
			goto take;
		if (rc == 1) {
			heap_push(rd, s);
		} else {
			r->state = done(r) ? SR_DONE : SR_IDLE;
			if (r->state == SR_DONE &&
			    kds_reader_settle(rd, e) == -1)
				return -1;
		}
	}
	if (rd->nheap == 0)
		return 0;
	s = heap_pop(rd);
take:
	r = rd->shards[s];
	r->state = SR_READY;
	rec->key = (const char *)r->f.key;
	rec->keylen = r->f.keylen;
	rec->data = (const char *)r->f.data;
	rec->datalen = r->f.datalen;
	rec->shard = r->shard;
	rec->counter = r->f.counter;
	rec->arrival_ms = r->f.arrival_ms;
	advance(r);		/* r->buf is untouched until the next peek */
	rd->last = (ssize_t)s;
	return 1;
}

void
kds_reader_close(struct kds_reader *rd)
{
	if (rd == NULL)
		return;
	kds_follow_stop(rd);
	for (size_t i = 0; i < rd->n; i++)
		shard_reader_free(rd->shards[i]);
	free(rd->shards);
	free(rd->heap);
	kds_zbuf_free(&rd->z);
	free(rd);
}

/*
 * Where o points in one shard, for those who describe rather than read:
 * 1 with the counter and arrival of the record there, or 0 with the
 * counter the next record will get (at the end, or all expired).
 */
int
kds_shard_position(struct kds_stream *st, uint64_t shard,
    const struct kds_iter_opts *o, uint64_t *counter, int64_t *arrival_ms,
    struct kds_err *e)
{
	uint64_t sh = shard, c = 0;
	struct shard_reader *r;
	struct kds_zbuf z = { 0 };
	int rc;

	if (o->sequence != NULL && kds_seq_parse(o->sequence, &sh, &c) == -1)
		return kds_fail(e, EINVAL, "bad sequence number '%.64s'",
		    o->sequence);
	r = shard_reader_open(st, shard, o, c, DESCRIBE_CHUNK, &z, e);
	if (r == NULL) {
		kds_zbuf_free(&z);
		return -1;
	}
	if ((rc = next_frame(r, e)) == 1) {
		*counter = r->f.counter;
		*arrival_ms = r->f.arrival_ms;
	} else {
		*counter = r->expect;
	}
	shard_reader_free(r);
	kds_zbuf_free(&z);
	return rc;
}
