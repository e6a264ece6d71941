/*
 * verify.c: check every byte of a stream that a checksum covers, as fsck
 * would: segment headers, every frame, sequence continuity, arrival order,
 * index entries.  Unlike a reader it does not stop at the first damage: it
 * reports each problem with file and offset, skips to the next frame that
 * checks out, and goes on.  With repair it cuts torn tails (through the
 * writer's own recovery) and rebuilds indexes, which are only caches;
 * damaged records are reported, never "repaired" away.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct verify {
	struct kds_stream	*st;
	int			 repair;
	kds_verify_fn		*report;
	void			*arg;
	struct kds_verify_stats	*stats;
	char			 where[KDS_SHARD_ID_LEN + 1 + 64];
};

static void
problem(struct verify *v, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
problem(struct verify *v, uint64_t off, const char *fmt, ...)
{
	char what[512], line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s: offset %llu: %s", v->where,
	    (unsigned long long)off, what);
	v->stats->problems++;
	if (v->report != NULL)
		v->report(v->arg, line);
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
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	*out = buf;
	*len = have;
	return 0;
}

/* Check the index entries of a segment against the frames found. */
static void
verify_index(struct verify *v, int dirfd, const char *segname,
    const uint64_t *offs, const uint64_t *counters, size_t nframes)
{
	struct kds_index_entry *ix;
	size_t nix, j = 0;

	kds_index_load(dirfd, segname, &ix, &nix);
	for (size_t i = 0; i < nix; i++) {
		while (j < nframes && offs[j] < ix[i].offset)
			j++;
		if (j == nframes || offs[j] != ix[i].offset ||
		    counters[j] != ix[i].counter) {
			v->stats->stale_index++;
			break;
		}
	}
	free(ix);
}

/* Write SEG.idx anew from the frames found: the index is a cache. */
static int
rebuild_index(int dirfd, const char *segname, const uint64_t *offs,
    const uint64_t *counters, const int64_t *arrivals, size_t n,
    struct kds_err *e)
{
	unsigned char *buf = malloc(n * INDEX_ENTRY_LEN + 1);
	char name[80];
	size_t len = 0;
	int rc;

	if (buf == NULL)
		return kds_fail_errno(e, "index");
	for (size_t i = 0; i < n; i++) {
		struct kds_index_entry ie = { counters[i], arrivals[i], offs[i] };

		if (i == 0 || offs[i] / INDEX_INTERVAL != offs[i - 1] /
		    INDEX_INTERVAL) {
			kds_index_entry_encode(buf + len, &ie);
			len += INDEX_ENTRY_LEN;
		}
	}
	snprintf(name, sizeof(name), "%.*s.idx", (int)(strlen(segname) - 4),
	    segname);
	rc = kds_atomic_write(dirfd, name, buf, len, e);
	free(buf);
	return rc;
}

/* A frame found in a compressed segment, for checking SEQ.zidx. */
struct zframe {
	uint64_t	counter, zoff, seg_off;
	int64_t		arrival;
	uint32_t	inner;
};

/* Check SEQ.zidx against the frames found; with repair, write it anew. */
static int
verify_zindex(struct verify *v, int dirfd, const char *zsegname,
    const struct zframe *fr, size_t n, struct kds_err *e)
{
	struct kds_index_entry *ix;
	uint32_t *inner;
	unsigned char *buf;
	char name[80];
	size_t nix, j = 0, len = 0;
	int rc;

	kds_zidx_load(dirfd, zsegname, &ix, &inner, &nix);
	for (size_t i = 0; i < nix; i++) {
		while (j < n && (fr[j].zoff < ix[i].offset || (fr[j].zoff ==
		    ix[i].offset && fr[j].inner < inner[i])))
			j++;
		if (j == n || fr[j].zoff != ix[i].offset ||
		    fr[j].inner != inner[i] || fr[j].counter != ix[i].counter) {
			v->stats->stale_index++;
			break;
		}
	}
	free(ix);
	free(inner);
	if (!v->repair)
		return 0;
	if ((buf = malloc(n * ZIDX_ENTRY_LEN + 1)) == NULL)
		return kds_fail_errno(e, "index");
	for (size_t i = 0; i < n; i++) {
		unsigned char *p = buf + len;

		if (fr[i].inner != 0 && fr[i].seg_off / INDEX_INTERVAL ==
		    fr[i - 1].seg_off / INDEX_INTERVAL)
			continue;
		put_le64(p, fr[i].counter);
		put_le64(p + 8, (uint64_t)fr[i].arrival);
		put_le64(p + 16, fr[i].zoff);
		put_le32(p + 24, fr[i].inner);
		put_le32(p + 28, 0);
		put_le64(p + 32, kds_checksum(p, 32, 0));
		len += ZIDX_ENTRY_LEN;
	}
	snprintf(name, sizeof(name), "%.*s.zidx", (int)(strlen(zsegname) - 5),
	    zsegname);
	rc = kds_atomic_write(dirfd, name, buf, len, e);
	free(buf);
	return rc;
}

/*
 * Walk one compressed segment (kds-stream(5), COMPRESSED SEGMENTS), as
 * verify_segment walks a plain one: every block and every frame in it.
 * A compressed segment is sealed: nothing in it is a torn tail.  A block
 * that fails is reported and skipped when its header still gives its
 * length; otherwise the rest of the segment is.
 */
static int
verify_zsegment(struct verify *v, int dirfd, uint64_t shard, uint64_t first,
    uint64_t *expect, int64_t *prev, struct kds_err *e)
{
	unsigned char h[ZSEG_HEADER_LEN], *buf = NULL;
	struct kds_zseg_header zh;
	struct kds_zbuf z = { 0 };
	struct zframe *fr = NULL;
	uint64_t at = ZSEG_HEADER_LEN, seg_off = SEG_HEADER_LEN, fsize;
	size_t cap = 0, n = 0, frcap = 0;
	char name[64], id[KDS_SHARD_ID_LEN + 1];
	const char *why;
	struct stat sb;
	ssize_t got;
	int fd, lr, rc = -1, resync = 0;

	kds_shard_id(shard, id);
	kds_seg_name(shard, first, ".zseg", name, sizeof(name));
	snprintf(v->where, sizeof(v->where), "%s/%s", id, name);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return kds_fail_errno(e, "%s", v->where);
	if (fstat(fd, &sb) == -1 || (got = pread(fd, h, sizeof(h), 0)) == -1) {
		kds_fail_errno(e, "%s", v->where);
		goto out;
	}
	fsize = (uint64_t)sb.st_size;
	v->stats->segments++;
	v->stats->bytes += fsize;
	if ((why = kds_zseg_header_check(h, (size_t)got, shard, first,
	    &zh)) != NULL) {
		problem(v, 0, "%s", why);
		rc = 0;
		goto out;
	}
	if (*expect != 0 && first != *expect)
		problem(v, 0, "first sequence number does not follow the "
		    "previous segment");
	*expect = first;
	while (at < fsize) {
		struct kds_zblock b;
		size_t pos = 0;

		lr = kds_zblock_load(fd, at, fsize, zh.seg.salt, &z, &b, &buf,
		    &cap, &why, e);
		if (lr == -1)
			goto out;
		if (lr == 1 && b.off == 0) {
			problem(v, at, "%s; the rest of the segment skipped", why);
			break;
		}
		if (b.seg_off != seg_off || (b.first_counter != *expect &&
		    !resync))
			problem(v, at, "block out of place");
		seg_off = b.seg_off + b.raw_len;
		if (resync || b.first_counter != *expect)
			*expect = b.first_counter;
		resync = 0;
		if (lr == 1) {		/* its header holds: skip it */
			problem(v, at, "%s", why);
			resync = 1;
			at += ZBLOCK_HEADER_LEN + b.comp_len;
			continue;
		}
		while (pos < b.raw_len) {
			const char *fwhy = "frame runs past its block";
			struct kds_frame f;
			enum frame_status fs;

			fs = kds_frame_decode(buf + pos, b.raw_len - pos,
			    zh.seg.salt, &f, &fwhy);
			if (fs == FRAME_OK && f.counter != *expect) {
				fs = FRAME_BAD;
				fwhy = "sequence number out of order";
			}
			if (fs == FRAME_OK && f.arrival_ms < *prev) {
				fs = FRAME_BAD;
				fwhy = "arrival time goes back";
			}
			if (fs != FRAME_OK) {
				problem(v, at, "segment offset %llu: %s",
				    (unsigned long long)(b.seg_off + pos), fwhy);
				resync = 1;
				break;
			}
			if (n == frcap) {
				size_t nc = frcap ? frcap * 2 : 1024;
				struct zframe *nf = reallocarray(fr, nc,
				    sizeof(*nf));

				if (nf == NULL) {
					kds_fail_errno(e, "verify");
					goto out;
				}
				fr = nf;
				frcap = nc;
			}
			fr[n++] = (struct zframe){ f.counter, at,
			    b.seg_off + pos, f.arrival_ms, (uint32_t)pos };
			v->stats->records++;
			*expect = f.counter + 1;
			*prev = f.arrival_ms;
			pos += f.len;
		}
		at += ZBLOCK_HEADER_LEN + b.comp_len;
	}
	if (at == fsize && seg_off != zh.size)
		problem(v, at, "blocks end at segment offset %llu, not %llu",
		    (unsigned long long)seg_off, (unsigned long long)zh.size);
	else if (at == fsize && !resync && zh.last_counter + 1 != *expect)
		problem(v, 56, "last counter %llu, the last frame's is %llu",
		    (unsigned long long)zh.last_counter,
		    (unsigned long long)(*expect - 1));
	if (resync) {		/* the header says where the next one starts */
		*expect = zh.last_counter + 1;
		*prev = zh.last_arrival;
	}
	rc = verify_zindex(v, dirfd, name, fr, n, e);
out:
	free(fr);
	free(buf);
	kds_zbuf_free(&z);
	close(fd);
	return rc;
}

/*
 * Walk one segment.  expect/prev carry the shard's continuity from the
 * segment before; last says whether this is the shard's last segment,
 * whose final frame alone may be a torn tail.
 */
static int
verify_segment(struct verify *v, int dirfd, uint64_t shard, uint64_t first,
    int last, uint64_t *expect, int64_t *prev, int *torn,
    struct kds_err *e)
{
	unsigned char *buf = NULL;
	uint64_t *offs = NULL, *counters = NULL;
	int64_t *arrivals = NULL;
	size_t len = 0, n = 0, cap = 0, off = SEG_HEADER_LEN;
	struct kds_seg_header h;
	char name[64];
	int fd, rc = -1;

	kds_seg_name(shard, first, ".seg", name, sizeof(name));
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)	/* compressed */
		return verify_zsegment(v, dirfd, shard, first, expect, prev, e);
	if (fd == -1)
		return kds_fail_errno(e, "%s", v->where);
	if (read_all(fd, &buf, &len, e) == -1)
		goto out;
	v->stats->segments++;
	v->stats->bytes += len;
	if (len < SEG_HEADER_LEN || kds_seg_header_decode(buf, &h) == -1 ||
	    h.shard != shard || h.first_counter != first) {
		problem(v, 0, "bad segment header");
		rc = 0;
		goto out;
	}
	if (*expect != 0 && first != *expect)
		problem(v, 0, "first sequence number does not follow the "
		    "previous segment");
	*expect = first;
	while (off < len) {
		struct kds_frame f;
		const char *why = "bad frame length";
		enum frame_status fs;

		fs = kds_frame_decode(buf + off, len - off, h.salt, &f, &why);
		if (fs == FRAME_OK && f.counter != *expect) {
			fs = FRAME_BAD;
			why = "sequence number out of order";
		}
		if (fs == FRAME_OK && f.arrival_ms < *prev) {
			fs = FRAME_BAD;
			why = "arrival time goes back";
		}
		if (fs != FRAME_OK) {
			int t = last ? kds_tail_is_torn(fd, off, len, h.salt,
			    fs == FRAME_BAD, e) : 0;
			size_t next;

			if (t == -1)
				goto out;
			if (t) {
				*torn = 1;
				v->stats->torn++;
				problem(v, off, "torn tail, %zu bytes%s", len - off,
				    v->repair ? ", cut" : "");
				break;
			}
			/* Resynchronise on the next frame that checks out. */
			for (next = off + 1; next + FRAME_HEADER_LEN < len; next++)
				if (kds_frame_decode(buf + next, len - next, h.salt,
				    &f, &why) == FRAME_OK)
					break;
			if (next + FRAME_HEADER_LEN >= len) {
				problem(v, off, "%s; nothing valid after it",
				    fs == FRAME_BAD ? why : "bad frame length");
				break;
			}
			problem(v, off, "%s; %zu bytes skipped to the next "
			    "valid frame", fs == FRAME_BAD ? why :
			    "bad frame length", next - off);
			off = next;
			*expect = f.counter;
			continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 1024;
			void *a = reallocarray(offs, nc, sizeof(*offs));

			if (a == NULL)
				goto nomem;
			offs = a;
			if ((a = reallocarray(counters, nc, sizeof(*counters))) == NULL)
				goto nomem;
			counters = a;
			if ((a = reallocarray(arrivals, nc, sizeof(*arrivals))) == NULL)
				goto nomem;
			arrivals = a;
			cap = nc;
		}
		offs[n] = off;
		counters[n] = f.counter;
		arrivals[n++] = f.arrival_ms;
		v->stats->records++;
		*expect = f.counter + 1;
		*prev = f.arrival_ms;
		off += f.len;
	}
	verify_index(v, dirfd, name, offs, counters, n);
	if (v->repair && rebuild_index(dirfd, name, offs, counters, arrivals, n,
	    e) == -1)
		goto out;
	rc = 0;
	goto out;
nomem:
	kds_fail_errno(e, "verify");
out:
	free(buf);
	free(offs);
	free(counters);
	free(arrivals);
	close(fd);
	return rc;
}

static int
verify_shard(struct verify *v, uint64_t shard, int *torn, struct kds_err *e)
{
	uint64_t *segs = NULL, expect = 0;
	int64_t prev = INT64_MIN;
	char id[KDS_SHARD_ID_LEN + 1];
	size_t nsegs;
	int dirfd, rc = 0;

	kds_shard_id(shard, id);
	if ((dirfd = kds_shard_dir_open(v->st, shard, e)) == -1)
		return -1;
	if (kds_seg_list(dirfd, shard, &segs, &nsegs, e) == -1) {
		close(dirfd);
		return -1;
	}
	for (size_t k = 0; k < nsegs && rc == 0; k++) {
		char seg[64];

		kds_seg_name(shard, segs[k], ".seg", seg, sizeof(seg));
		snprintf(v->where, sizeof(v->where), "%s/%s", id, seg);
		rc = verify_segment(v, dirfd, shard, segs[k], k + 1 == nsegs,
		    &expect, &prev, torn, e);
	}
	free(segs);
	close(dirfd);
	return rc;
}

int
kds_stream_verify(struct kds_stream *st, int repair, kds_verify_fn *report,
    void *arg, struct kds_verify_stats *stats, struct kds_err *e)
{
	struct verify v = { st, 0, report, arg, stats, "" };

	memset(stats, 0, sizeof(*stats));
	for (size_t i = 0; i < st->meta.nshards; i++) {
		uint64_t shard = st->meta.shards[i].number, last;
		size_t stale = stats->stale_index;
		struct kds_verify_stats again;
		struct verify quiet;
		int torn = 0, lockfd, dirfd, rc;

		stats->shards++;
		v.repair = 0;
		if (verify_shard(&v, shard, &torn, e) == -1)
			return -1;
		if (!repair || (!torn && stats->stale_index == stale))
			continue;
		/*
		 * Repair: the writer's own recovery cuts a torn tail (and only
		 * that); then, holding the shard's lock so that no writer adds
		 * entries meanwhile, walk again and write the indexes anew.
		 */
		if (torn && st->meta.shards[i].open &&
		    kds_shard_recover(st, shard, &last, e) == -1)
			return -1;
		if ((dirfd = kds_shard_dir_open(st, shard, e)) == -1)
			return -1;
		lockfd = openat(dirfd, "tail", O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		close(dirfd);
		if (lockfd == -1 || kds_lock(lockfd, "tail", e) == -1) {
			if (lockfd != -1)
				close(lockfd);
			return kds_fail_errno(e, "tail");
		}
		quiet = v;
		quiet.repair = 1;
		quiet.report = NULL;
		quiet.stats = &again;
		memset(&again, 0, sizeof(again));
		torn = 0;
		rc = verify_shard(&quiet, shard, &torn, e);
		kds_unlock(lockfd);
		close(lockfd);
		if (rc == -1)
			return -1;
		stats->repaired++;
	}
	return 0;
}
