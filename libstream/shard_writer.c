/*
 * shard_writer.c: appending batches of records to one shard.
 *
 * Every append happens under the shard's lock (flock on STREAM/SHARD/tail),
 * one batch at a time: counters and arrival times are given out under the
 * lock, the batch goes to the segment in one write(2), then its index
 * entries in one more, then the tail file says where the shard now ends.
 * The tail file is a hint that saves a scan: when it does not agree with
 * the segment, the writer walks the frames after the last good point and
 * repairs a torn tail (kds-stream(5), CRASH RECOVERY).
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct tail_state {
	uint64_t	seg_first;	/* first counter of the active segment */
	uint64_t	end;		/* valid bytes of the active segment */
	uint64_t	last_counter;	/* 0: the shard holds no record yet */
	int64_t		last_arrival;
	uint64_t	last_frame_off;	/* 0: the segment holds no frame */
};

struct kds_shard_writer {
	struct kds_stream	*st;
	uint64_t		 shard;
	enum kds_sync		 sync;
	int			 dirfd;		/* STREAM/SHARD */
	int			 tailfd;	/* the lock, and the tail state */
	int			 segfd;		/* active segment, O_APPEND */
	int			 idxfd;
	int			 dirty;		/* written since the last fsync */
	struct kds_seg_header	 hdr;
	struct tail_state	 t;
	char			 segname[KDS_SHARD_ID_LEN + 1 + 64];
};

/* flags: 0, or TAIL_CLOSED from a reshard. */
static void
tail_encode(unsigned char p[TAIL_LEN], const struct tail_state *t,
    uint64_t flags)
{
	memset(p, 0, TAIL_LEN);
	memcpy(p, TAIL_MAGIC, 8);
	put_le64(p + 8, t->seg_first);
	put_le64(p + 16, t->end);
	put_le64(p + 24, t->last_counter);
	put_le64(p + 32, (uint64_t)t->last_arrival);
	put_le64(p + 40, t->last_frame_off);
	put_le64(p + 48, flags);
	put_le64(p + 56, kds_checksum(p, 56, 0));
}

static int
tail_decode(const unsigned char p[TAIL_LEN], struct tail_state *t,
    uint64_t *flags)
{
	if (memcmp(p, TAIL_MAGIC, 8) != 0 ||
	    get_le64(p + 56) != kds_checksum(p, 56, 0))
		return -1;
	*flags = get_le64(p + 48);
	t->seg_first = get_le64(p + 8);
	t->end = get_le64(p + 16);
	t->last_counter = get_le64(p + 24);
	t->last_arrival = (int64_t)get_le64(p + 32);
	t->last_frame_off = get_le64(p + 40);
	if (t->end < SEG_HEADER_LEN || t->seg_first == 0 ||
	    t->last_counter + 1 < t->seg_first)
		return -1;
	return 0;
}

int
kds_shard_init(int sdirfd, uint64_t shard, int64_t created_ms,
    int64_t floor_ms, struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1];
	unsigned char buf[TAIL_LEN];
	struct kds_seg_header h;
	struct tail_state t = { 1, SEG_HEADER_LEN, 0, floor_ms, 0 };
	int dfd, fd;

	kds_shard_id(shard, id);
	if (mkdirat(sdirfd, id, KDS_DIR_MODE) == -1)
		return kds_fail_errno(e, "%s", id);
	if ((dfd = openat(sdirfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return kds_fail_errno(e, "%s", id);
	if (kds_perm_fix(sdirfd, dfd, id, e) == -1)
		goto fail;
	if ((fd = kds_seg_create(dfd, shard, 1, created_ms, &h, e)) == -1)
		goto fail;
	if (fsync(fd) == -1) {
		close(fd);
		kds_fail_errno(e, "%s: fsync", id);
		goto fail;
	}
	close(fd);
	tail_encode(buf, &t, 0);
	fd = openat(dfd, "tail", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    KDS_FILE_MODE);
	if (fd != -1 && kds_perm_fix(dfd, fd, "tail", NULL) == -1) {
		close(fd);
		fd = -1;
	}
	if (fd != -1)
		errno = 0;	/* a short write sets none */
	if (fd == -1 || write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf) ||
	    fsync(fd) == -1) {
		if (errno == 0)
			errno = ENOSPC;
		kds_fail_errno(e, "%s/tail", id);
		if (fd != -1)
			close(fd);
		goto fail;
	}
	close(fd);
	if (kds_fsync_dir(dfd, id, e) == -1)
		goto fail;
	close(dfd);
	return 0;
fail:
	close(dfd);
	return -1;
}

/* Messages name the segment as SHARD/SEQ.seg, from the stream's top. */
static void
set_segname(struct kds_shard_writer *w, uint64_t counter)
{
	char id[KDS_SHARD_ID_LEN + 1], seg[64];

	kds_shard_id(w->shard, id);
	kds_seg_name(w->shard, counter, ".seg", seg, sizeof(seg));
	snprintf(w->segname, sizeof(w->segname), "%s/%s", id, seg);
}

struct kds_shard_writer *
kds_shard_writer_new(struct kds_stream *st, uint64_t shard,
    enum kds_sync sync, struct kds_err *e)
{
	struct kds_shard_writer *w;
	char id[KDS_SHARD_ID_LEN + 1];

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		kds_fail_errno(e, "writer");
		return NULL;
	}
	w->st = st;
	w->shard = shard;
	w->sync = sync;
	w->segfd = w->idxfd = w->tailfd = -1;
	kds_shard_id(shard, id);
	if ((w->dirfd = kds_shard_dir_open(st, shard, e)) == -1) {
		free(w);
		return NULL;
	}
	w->tailfd = openat(w->dirfd, "tail", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (w->tailfd == -1) {
		kds_fail_errno(e, "%s/tail", id);
		kds_shard_writer_free(w);
		return NULL;
	}
	return w;
}

static int
sync_segment(struct kds_shard_writer *w, struct kds_err *e)
{
	if (!w->dirty || w->segfd == -1 || w->sync == KDS_SYNC_NEVER)
		return 0;
	if (fdatasync(w->segfd) == -1)
		return kds_fail_errno(e, "%s: fsync", w->segname);
	w->dirty = 0;
	return 0;
}

static void
close_segment(struct kds_shard_writer *w)
{
	if (w->segfd != -1)
		close(w->segfd);
	if (w->idxfd != -1)
		close(w->idxfd);
	w->segfd = w->idxfd = -1;
}

/* Open segment `counter` for appending and check its header. */
static int
open_segment(struct kds_shard_writer *w, uint64_t counter, struct kds_err *e)
{
	unsigned char buf[SEG_HEADER_LEN];
	char name[64];
	const char *why;
	ssize_t n;

	close_segment(w);
	set_segname(w, counter);
	kds_seg_name(w->shard, counter, ".seg", name, sizeof(name));
	w->segfd = openat(w->dirfd, name, O_RDWR | O_APPEND | O_NOFOLLOW |
	    O_CLOEXEC);
	if (w->segfd == -1)
		return kds_fail_errno(e, "%s", w->segname);
	n = pread(w->segfd, buf, sizeof(buf), 0);
	if (n == -1)
		return kds_fail_errno(e, "%s: read", w->segname);
	if ((why = kds_seg_header_check(buf, (size_t)n, w->shard, counter,
	    &w->hdr)) != NULL)
		return kds_fail(e, 0, "%s: offset 0: %s", w->segname, why);
	kds_seg_name(w->shard, counter, ".idx", name, sizeof(name));
	w->idxfd = openat(w->dirfd, name, O_WRONLY | O_APPEND | O_CREAT |
	    O_NOFOLLOW | O_CLOEXEC, KDS_FILE_MODE);
	/* No index is a slower seek, not an error: it is a cache.  But a
	 * symbolic link in its place was planted there: write nothing. */
	if (w->idxfd == -1 && errno == ELOOP) {
		char id[KDS_SHARD_ID_LEN + 1];

		kds_shard_id(w->shard, id);
		return kds_fail_errno(e, "%s/%s", id, name);
	}
	if (w->idxfd != -1)
		(void)kds_perm_fix(w->dirfd, w->idxfd, name, NULL);
	return 0;
}

static void
index_append(struct kds_shard_writer *w, const unsigned char *buf, size_t n)
{
	struct stat sb;

	if (w->idxfd == -1 || n == 0)
		return;
	/* A short write by a crashed writer would shift every later entry. */
	if (fstat(w->idxfd, &sb) == 0 && sb.st_size % INDEX_ENTRY_LEN != 0 &&
	    ftruncate(w->idxfd, sb.st_size / INDEX_ENTRY_LEN *
	    INDEX_ENTRY_LEN) == -1)
		return;
	if (write(w->idxfd, buf, n) != (ssize_t)n && fstat(w->idxfd, &sb) == 0)
		(void)!ftruncate(w->idxfd, sb.st_size / INDEX_ENTRY_LEN *
		    INDEX_ENTRY_LEN);
}

/*
 * Drop the index entries at or after off (and any damaged one before them):
 * a recovering writer re-indexes from off, and must not leave entries that
 * point into what it cuts away.
 */
static void
index_cut(struct kds_shard_writer *w, uint64_t off)
{
	unsigned char e[INDEX_ENTRY_LEN];
	off_t pos = 0;

	if (w->idxfd == -1)
		return;
	while (pread(w->idxfd, e, sizeof(e), pos) == (ssize_t)sizeof(e) &&
	    get_le64(e + 24) == kds_checksum(e, 24, 0) &&
	    get_le64(e + 16) < off)
		pos += INDEX_ENTRY_LEN;
	(void)!ftruncate(w->idxfd, pos);
}

static int
needs_entry(uint64_t prev_off, uint64_t off)
{
	return prev_off == 0 || off / INDEX_INTERVAL != prev_off / INDEX_INTERVAL;
}

/*
 * Walk the frames of the active segment from w->t (a frame boundary that
 * checks out) to EOF, re-indexing what the index lacks.  At the first frame
 * that does not decode, cut a torn tail or report corruption.
 */
static int
walk_to_end(struct kds_shard_writer *w, struct kds_err *e)
{
	size_t cap = 2 * (size_t)FRAME_MAX_LEN, have = 0;
	unsigned char *buf, idx[64 * INDEX_ENTRY_LEN];
	uint64_t base = w->t.end, size;
	size_t nidx = 0;
	struct stat sb;
	int rc = -1;

	if (fstat(w->segfd, &sb) == -1)
		return kds_fail_errno(e, "%s", w->segname);
	size = (uint64_t)sb.st_size;
	index_cut(w, w->t.end);
	if ((buf = malloc(cap)) == NULL)
		return kds_fail_errno(e, "%s", w->segname);
	for (;;) {
		struct kds_frame f;
		const char *why = "bad frame length";
		enum frame_status fs;
		uint64_t off = w->t.end;

		if (off >= size)
			break;
		if (off + FRAME_MAX_LEN > base + have && base + have < size) {
			ssize_t n;

			base = off;
			have = 0;
			while (have < cap && base + have < size) {
				n = pread(w->segfd, buf + have, cap - have,
				    (off_t)(base + have));
				if (n == -1 && errno == EINTR)
					continue;
				if (n == -1) {
					kds_fail_errno(e, "%s: read", w->segname);
					goto out;
				}
				if (n == 0)
					break;
				have += (size_t)n;
			}
		}
		fs = kds_frame_decode(buf + (off - base), have - (off - base),
		    w->hdr.salt, &f, &why);
		if (fs == FRAME_OK && f.counter != w->t.last_counter + 1) {
			fs = FRAME_BAD;
			why = "sequence number out of order";
		} else if (fs == FRAME_OK && f.arrival_ms < w->t.last_arrival &&
		    w->t.last_frame_off != 0) {
			fs = FRAME_BAD;
			why = "arrival time goes back";
		}
		if (fs != FRAME_OK) {
			int torn = kds_tail_is_torn(w->segfd, off, size,
			    w->hdr.salt, fs == FRAME_BAD, e);

			if (torn == -1)
				goto out;
			if (!torn) {
				kds_fail(e, 0, "%s: offset %llu: %s", w->segname,
				    (unsigned long long)off, why);
				goto out;
			}
			if (ftruncate(w->segfd, (off_t)off) == -1) {
				kds_fail_errno(e, "%s: truncate", w->segname);
				goto out;
			}
			break;
		}
		if (needs_entry(w->t.last_frame_off, off)) {
			struct kds_index_entry ie = { f.counter, f.arrival_ms, off };

			if (nidx == 64) {
				index_append(w, idx, sizeof(idx));
				nidx = 0;
			}
			kds_index_entry_encode(idx + nidx++ * INDEX_ENTRY_LEN, &ie);
		}
		w->t.last_counter = f.counter;
		if (f.arrival_ms > w->t.last_arrival)
			w->t.last_arrival = f.arrival_ms;
		w->t.last_frame_off = off;
		w->t.end = off + f.len;
	}
	index_append(w, idx, nidx * INDEX_ENTRY_LEN);
	rc = 0;
out:
	free(buf);
	return rc;
}

/*
 * Arrival times in a shard never go back; a new segment's creation time is
 * the floor for its records, since a roll creates it at max(now, last).  A
 * child shard's first segment is created no earlier than its parents' last
 * record, which keeps parents first in a merge by time.  Only a root
 * shard's first segment has no floor, so that records can be put with any
 * KDS_NOW into a stream made earlier.
 */
static int64_t
arrival_floor(const struct kds_shard_writer *w)
{
	const struct kds_shard *sh = kds_stream_shard(w->st, w->shard);

	if (w->hdr.first_counter == 1 && sh != NULL && sh->parent < 0)
		return 0;
	return w->hdr.created_ms;
}

static int tail_write(struct kds_shard_writer *, struct kds_err *);

/*
 * The shard's last segment exists only compressed: a crash of the machine
 * lost the segment that sealed it (kds-stream(5), CRASH RECOVERY).  A
 * compressed segment is never appended to: start a new segment after its
 * last record, as a roll does.  0, 1 when there is no SEQ.zseg either.
 */
static int
restart_after_zseg(struct kds_shard_writer *w, uint64_t first,
    struct kds_err *e)
{
	struct kds_zseg_header zh;
	struct kds_seg_header h;
	int64_t now = kds_now_ms();
	int fd, rc;

	if ((rc = kds_zseg_header_read(w->dirfd, w->shard, first, &zh, e)) != 0)
		return rc;
	w->t.seg_first = zh.last_counter + 1;
	w->t.end = SEG_HEADER_LEN;
	w->t.last_counter = zh.last_counter;
	w->t.last_arrival = now > zh.last_arrival ? now : zh.last_arrival;
	w->t.last_frame_off = 0;
	set_segname(w, w->t.seg_first);
	if (tail_write(w, e) == -1)
		return -1;
	fd = kds_seg_create(w->dirfd, w->shard, w->t.seg_first,
	    w->t.last_arrival, &h, e);
	if (fd == -1)
		return -1;
	close(fd);
	if (kds_fsync_dir(w->dirfd, w->segname, e) == -1)
		return -1;
	return open_segment(w, w->t.seg_first, e);
}

/*
 * The tail file cannot be trusted: find the shard's last segment and the
 * last index entry of it that checks out, then walk to the end.
 */
static int
recover(struct kds_shard_writer *w, struct kds_err *e)
{
	struct kds_index_entry *ix = NULL;
	uint64_t *segs = NULL;
	size_t nsegs, nix;
	char name[64], iname[64];

	if (kds_seg_list(w->dirfd, w->shard, &segs, &nsegs, e) == -1)
		return -1;
	for (;;) {
		struct stat sb;

		if (nsegs == 0) {
			char id[KDS_SHARD_ID_LEN + 1];

			kds_shard_id(w->shard, id);
			free(segs);
			return kds_fail(e, 0, "%s: no segment", id);
		}
		kds_seg_name(w->shard, segs[nsegs - 1], ".seg", name,
		    sizeof(name));
		if (faccessat(w->dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == -1 &&
		    errno == ENOENT) {
			int rc;

			set_segname(w, segs[nsegs - 1]);
			rc = restart_after_zseg(w, segs[nsegs - 1], e);
			free(segs);
			if (rc == 1)	/* gone meanwhile */
				return kds_fail(e, ENOENT, "%s: %s", w->segname,
				    strerror(ENOENT));
			return rc;
		}
		if (open_segment(w, segs[nsegs - 1], e) == 0)
			break;
		/* A roll interrupted before its header was whole leaves a
		 * segment with no valid header and nothing after it. */
		kds_seg_name(w->shard, segs[nsegs - 1], ".seg", name,
		    sizeof(name));
		if (nsegs == 1 || w->segfd == -1 || fstat(w->segfd, &sb) == -1 ||
		    sb.st_size > SEG_HEADER_LEN) {
			free(segs);
			return -1;
		}
		close_segment(w);
		/* Its index goes first: an index left without its segment
		 * would be taken for the next segment of that name's. */
		kds_seg_name(w->shard, segs[nsegs - 1], ".idx", iname,
		    sizeof(iname));
		if (unlinkat(w->dirfd, iname, 0) == -1 && errno != ENOENT) {
			free(segs);
			return kds_fail_errno(e, "%s: unlink", iname);
		}
		if (unlinkat(w->dirfd, name, 0) == -1) {
			free(segs);
			return kds_fail_errno(e, "%s: unlink", name);
		}
		nsegs--;
	}
	free(segs);
	w->t.seg_first = w->hdr.first_counter;
	w->t.end = SEG_HEADER_LEN;
	w->t.last_counter = w->hdr.first_counter - 1;
	w->t.last_arrival = arrival_floor(w);
	w->t.last_frame_off = 0;
	kds_index_load(w->dirfd, w->segname + KDS_SHARD_ID_LEN + 1, &ix, &nix);
	while (nix > 0) {
		unsigned char head[FRAME_HEADER_LEN], *fb;
		struct kds_index_entry *ie = &ix[nix - 1];
		struct kds_frame f;
		const char *why;
		uint32_t len = 0;
		int whole = 0;

		/* A cache, trusted only where a whole frame of its counter and
		 * time checks out: an entry pointing into a record's data would
		 * have the walk cut that record as a torn tail. */
		if (pread(w->segfd, head, sizeof(head), (off_t)ie->offset) ==
		    (ssize_t)sizeof(head) && get_le64(head + 16) == ie->counter)
			len = get_le32(head + 8);
		if (len > FRAME_HEADER_LEN && len <= FRAME_MAX_LEN &&
		    (fb = malloc(len)) != NULL) {
			whole = pread(w->segfd, fb, len, (off_t)ie->offset) ==
			    (ssize_t)len && kds_frame_decode(fb, len,
			    w->hdr.salt, &f, &why) == FRAME_OK &&
			    f.arrival_ms == ie->arrival_ms;
			free(fb);
		}
		if (whole) {
			/* Walk from this frame, re-checked and re-indexed:
			 * last_frame_off 0 makes it get its entry again. */
			w->t.end = ie->offset;
			w->t.last_counter = ie->counter - 1;
			w->t.last_arrival = ie->arrival_ms;
			w->t.last_frame_off = 0;
			break;
		}
		nix--;
	}
	free(ix);
	return walk_to_end(w, e);
}

static int
tail_write_flags(struct kds_shard_writer *w, uint64_t flags,
    struct kds_err *e)
{
	unsigned char buf[TAIL_LEN];
	char id[KDS_SHARD_ID_LEN + 1];

	tail_encode(buf, &w->t, flags);
	if (pwrite(w->tailfd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf)) {
		if (errno == 0)
			errno = ENOSPC;
		kds_shard_id(w->shard, id);
		return kds_fail_errno(e, "%s/tail: write", id);
	}
	return 0;
}

static int
tail_write(struct kds_shard_writer *w, struct kds_err *e)
{
	return tail_write_flags(w, 0, e);
}

/*
 * Whether the frame that tail state T names as the last is whole, with
 * T's counter: otherwise the tail is not trusted and the shard recovers,
 * cutting a zeroed or torn last frame instead of appending behind it.
 */
static int
last_frame_ok(struct kds_shard_writer *w, const struct tail_state *t)
{
	unsigned char small[4096], *buf = small;
	uint64_t len = t->end - t->last_frame_off;
	struct kds_frame f;
	const char *why;
	int ok;

	if (t->last_frame_off == 0)
		return t->end == SEG_HEADER_LEN;
	if (t->last_frame_off < SEG_HEADER_LEN || t->end < t->last_frame_off ||
	    len < FRAME_HEADER_LEN || len > FRAME_MAX_LEN)
		return 0;
	if (len > sizeof(small) && (buf = malloc(len)) == NULL)
		return 0;
	ok = pread(w->segfd, buf, len, (off_t)t->last_frame_off) ==
	    (ssize_t)len && kds_frame_decode(buf, len, w->hdr.salt, &f,
	    &why) == FRAME_OK && f.counter == t->last_counter && f.len == len;
	if (buf != small)
		free(buf);
	return ok;
}

int
kds_shard_writer_begin(struct kds_shard_writer *w, struct kds_err *e)
{
	unsigned char buf[TAIL_LEN];
	const struct kds_shard *sh;
	struct tail_state t;
	struct stat sb;
	uint64_t flags = 0;
	int changed, trusted, rc;
	char id[KDS_SHARD_ID_LEN + 1];

	kds_shard_id(w->shard, id);
	if (kds_lock(w->tailfd, id, e) == -1)
		return -1;
	trusted = pread(w->tailfd, buf, sizeof(buf), 0) == TAIL_LEN &&
	    tail_decode(buf, &t, &flags) == 0;
	/*
	 * Under the lock, so that a reshard closing this shard is seen.  A
	 * reshard flags the tail first: then meta is read whatever its inode
	 * says, for a new meta may have the inode of the one we hold.
	 */
	if (!trusted || (flags & TAIL_CLOSED))
		rc = kds_stream_reread(w->st, e);
	else
		rc = kds_stream_reload(w->st, &changed, e);
	if (rc == -1)
		goto fail;
	sh = kds_stream_shard(w->st, w->shard);
	if (sh == NULL || !sh->open) {
		kds_unlock(w->tailfd);
		return 1;
	}
	/* A flag without a closed shard is a reshard that did not finish:
	 * the next tail written clears it. */
	if (trusted && (w->segfd == -1 || w->hdr.first_counter != t.seg_first)) {
		if (sync_segment(w, e) == -1)
			goto fail;
		if (open_segment(w, t.seg_first, e) == -1)
			trusted = 0;
	}
	if (trusted && (fstat(w->segfd, &sb) == -1 ||
	    (uint64_t)sb.st_size < t.end))
		trusted = 0;
	/* A tail this writer has not seen may have reached the disk before
	 * the frame it counts (a power loss between their writebacks). */
	if (trusted && memcmp(&t, &w->t, sizeof(t)) != 0 &&
	    !last_frame_ok(w, &t))
		trusted = 0;
	if (trusted) {
		w->t = t;
		/* A writer that died after its write but before updating the
		 * tail: walk the frames it left. */
		if ((uint64_t)sb.st_size != t.end && walk_to_end(w, e) == -1)
			goto fail;
	} else {
		if (sync_segment(w, e) == -1 || recover(w, e) == -1)
			goto fail;
	}
	return 0;
fail:
	kds_unlock(w->tailfd);
	return -1;
}

/* Start a new segment after the last record; the caller holds the lock. */
static int
roll(struct kds_shard_writer *w, int64_t now, struct kds_err *e)
{
	struct kds_seg_header h;
	struct tail_state old = w->t;
	uint64_t next = w->t.last_counter + 1;
	int64_t created = now > w->t.last_arrival ? now : w->t.last_arrival;
	int fd;

	if (sync_segment(w, e) == -1)
		return -1;
	/*
	 * The tail names the new segment before it exists.  A crash before it
	 * does leaves a tail that is not trusted (its segment is missing), and
	 * the next writer recovers to the old segment; the other order would
	 * leave a trusted tail naming the old segment while an empty one
	 * follows it, and the next writer would append behind a segment that
	 * readers take as the next, then fail to roll onto its name.
	 */
	w->t.seg_first = next;
	w->t.end = SEG_HEADER_LEN;
	w->t.last_frame_off = 0;
	w->t.last_arrival = created;
	if (tail_write(w, e) == -1)
		goto undo;
	if ((fd = kds_seg_create(w->dirfd, w->shard, next, created, &h, e)) == -1)
		goto undo;
	close(fd);
	if (w->sync != KDS_SYNC_NEVER && kds_fsync_dir(w->dirfd,
	    w->segname, e) == -1)
		return -1;
	return open_segment(w, next, e);
undo:
	w->t = old;
	(void)tail_write(w, NULL);
	return -1;
}

/* Write [buf, buf+len) (n whole frames) into the active segment. */
static int
append_chunk(struct kds_shard_writer *w, unsigned char *buf, size_t len,
    size_t n, int64_t now, struct kds_err *e)
{
	unsigned char *idx;
	size_t nidx = 0, pos = 0;
	struct tail_state t = w->t, old = w->t;
	int64_t arrival = now > t.last_arrival ? now : t.last_arrival;

	/* At most one entry per INDEX_INTERVAL bytes, and one more. */
	if ((idx = malloc((len / INDEX_INTERVAL + 2) * INDEX_ENTRY_LEN)) == NULL)
		return kds_fail_errno(e, "%s", w->segname);
	for (size_t i = 0; i < n; i++) {
		unsigned char *p = buf + pos;
		uint64_t off = t.end;

		kds_frame_seal(p, t.last_counter + 1, arrival, w->hdr.salt);
		if (needs_entry(t.last_frame_off, off)) {
			struct kds_index_entry ie = { t.last_counter + 1,
			    arrival, off };

			kds_index_entry_encode(idx + nidx++ * INDEX_ENTRY_LEN, &ie);
		}
		t.last_counter++;
		t.last_frame_off = off;
		t.end += get_le32(p + 8);
		pos += get_le32(p + 8);
	}
	t.last_arrival = arrival;
	if (kds_write_all(w->segfd, buf, pos) == -1) {
		kds_fail_errno(e, "%s: write", w->segname);
		goto undo;
	}
	w->dirty = 1;
	w->t = t;
	if (tail_write(w, e) == -1)
		goto undo;
	/* Last, so that a crash leaves the index short, never ahead. */
	index_append(w, idx, nidx * INDEX_ENTRY_LEN);
	free(idx);
	return 0;
undo:
	/* Nothing half-written stays: we hold the lock, the bytes are ours.
	 * The index may now point past the end; readers check entries. */
	(void)!ftruncate(w->segfd, (off_t)old.end);
	w->t = old;
	free(idx);
	return -1;
}

int
kds_shard_writer_append(struct kds_shard_writer *w, unsigned char *buf,
    size_t len, size_t nframes, uint64_t *first_counter, size_t *stored,
    struct kds_err *e)
{
	int64_t now = kds_now_ms();
	uint64_t limit = w->st->meta.segment_bytes;
	size_t pos = 0, done = 0;

	*first_counter = w->t.last_counter + 1;
	/*
	 * Each chunk is committed (the tail names it) before the next; a
	 * roll fsyncs the segment it seals.  So when a later chunk fails,
	 * the earlier ones are in the shard as surely as any batch, and
	 * readers may have seen them: they are counted, never taken back.
	 */
	*stored = 0;
	while (done < nframes) {
		size_t start = pos, n = 0;

		/* Seal a full or old segment before the chunk goes in. */
		if (w->t.last_frame_off != 0 &&
		    (w->t.end + get_le32(buf + pos + 8) > limit ||
		    now - w->hdr.created_ms >= w->st->meta.segment_age_s * 1000)) {
			if (roll(w, now, e) == -1)
				return -1;
		}
		/* Take frames while they fit; at least one per segment.
		 * The common case, all of them, without a look at each. */
		if (w->t.end + (len - pos) <= limit) {
			n = nframes - done;
			pos = len;
		}
		while (done + n < nframes) {
			uint32_t flen = get_le32(buf + pos + 8);

			if (n > 0 && w->t.end + (pos - start) + flen > limit)
				break;
			pos += flen;
			n++;
		}
		if (append_chunk(w, buf + start, pos - start, n, now, e) == -1)
			return -1;
		done += n;
		*stored = done;
	}
	return 0;
}

void
kds_shard_writer_end(struct kds_shard_writer *w)
{
	kds_unlock(w->tailfd);
}

int
kds_shard_writer_sync(struct kds_shard_writer *w, struct kds_err *e)
{
	return sync_segment(w, e);
}

void
kds_shard_writer_free(struct kds_shard_writer *w)
{
	if (w == NULL)
		return;
	close_segment(w);
	if (w->tailfd != -1)
		close(w->tailfd);
	if (w->dirfd != -1)
		close(w->dirfd);
	free(w);
}

int
kds_shard_recover(struct kds_stream *st, uint64_t shard, uint64_t *last,
    struct kds_err *e)
{
	struct kds_shard_writer *w;
	int rc;

	if ((w = kds_shard_writer_new(st, shard, KDS_SYNC_ALWAYS, e)) == NULL)
		return -1;
	rc = kds_shard_writer_begin(w, e);
	if (rc == 0) {
		*last = w->t.last_counter;
		rc = tail_write(w, e);
		kds_shard_writer_end(w);
	}
	kds_shard_writer_free(w);
	return rc;
}

/* Where the shard stands, under the lock of kds_shard_writer_begin(). */
void
kds_shard_writer_state(const struct kds_shard_writer *w, uint64_t *seg_first,
    uint64_t *end, uint64_t *last_counter, int64_t *last_arrival)
{
	*seg_first = w->t.seg_first;
	*end = w->t.end;
	*last_counter = w->t.last_counter;
	*last_arrival = w->t.last_arrival;
}

/*
 * Expiry (kds-stream(5), RETENTION), under the lock of
 * kds_shard_writer_begin(): start an empty segment after the last record,
 * so that the active one is sealed and may be removed while the counters
 * go on.  The tail names the new segment before it exists: a crash then
 * leaves a tail that is not trusted, and the next writer recovers to the
 * old segment, rather than appending to a segment that is no longer last.
 */
int
kds_shard_writer_seal(struct kds_shard_writer *w, struct kds_err *e)
{
	struct tail_state old = w->t;
	struct kds_seg_header h;
	uint64_t next = w->t.last_counter + 1;
	int64_t now = kds_now_ms();
	int fd;

	if (w->t.last_counter < w->t.seg_first)
		return 0;		/* already empty: nothing to seal */
	if (sync_segment(w, e) == -1)
		return -1;
	w->t.seg_first = next;
	w->t.end = SEG_HEADER_LEN;
	w->t.last_frame_off = 0;
	if (now > w->t.last_arrival)
		w->t.last_arrival = now;
	if (tail_write(w, e) == -1)
		goto undo;
	fd = kds_seg_create(w->dirfd, w->shard, next, w->t.last_arrival, &h, e);
	if (fd == -1)
		goto undo;
	if (fsync(fd) == -1) {
		close(fd);
		set_segname(w, next);
		return kds_fail_errno(e, "%s: fsync", w->segname);
	}
	close(fd);
	if (kds_fsync_dir(w->dirfd, w->segname, e) == -1)
		return -1;
	return open_segment(w, next, e);
undo:
	w->t = old;
	(void)tail_write(w, NULL);
	return -1;
}
/*
 * For a reshard, which holds STREAM/lock: lock the shard and bring it up to
 * date as a writer would, sync its active segment so that the end a reshard
 * records is durable, and keep the lock until kds_shard_writer_end().  The
 * writer is then good only for kds_shard_writer_mark, _end and _free.
 */
int
kds_shard_writer_hold(struct kds_shard_writer *w, uint64_t *last_counter,
    int64_t *last_arrival, struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1];
	int rc;

	kds_shard_id(w->shard, id);
	if ((rc = kds_shard_writer_begin(w, e)) == -1)
		return -1;
	if (rc == 1)
		return kds_fail(e, 0, "%s: closed while being resharded", id);
	if (w->segfd != -1 && fdatasync(w->segfd) == -1) {
		kds_fail_errno(e, "%s: fsync", w->segname);
		goto fail;
	}
	if (tail_write(w, e) == -1)
		goto fail;
	*last_counter = w->t.last_counter;
	*last_arrival = w->t.last_arrival;
	/* A reshard may hold hundreds: keep only the lock's descriptor. */
	close_segment(w);
	close(w->dirfd);
	w->dirfd = -1;
	return 0;
fail:
	kds_unlock(w->tailfd);
	return -1;
}

/* Under the lock of kds_shard_writer_hold(): flag the tail (closed = 1) or
 * clear the flag again (closed = 0, a reshard that failed). */
int
kds_shard_writer_mark(struct kds_shard_writer *w, int closed,
    struct kds_err *e)
{
	return tail_write_flags(w, closed ? TAIL_CLOSED : 0, e);
}
