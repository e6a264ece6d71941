/*
 * zseg.c: compressed segments (kds-stream(5), COMPRESSED SEGMENTS).  A
 * sealed SEQ.seg becomes SEQ.zseg: a header that keeps the segment's own,
 * then blocks of about 128 KiB of whole frames, each one zstd frame that
 * decompresses without the others, each checksummed; and SEQ.zidx, whose
 * entries name a block and a frame in it, so that a seek decompresses one
 * block.  The frames are never rewritten: a reader checks them after
 * decompression exactly as in SEQ.seg, and the segment header followed by
 * the blocks decompressed is SEQ.seg again, byte for byte.
 *
 * Only kds-expire converts, holding STREAM/lock.  The conversion writes
 * SEQ.zidx and SEQ.zseg.tmp, syncs them, and renames SEQ.zseg.tmp into
 * place: a SEQ.zseg is complete whenever it exists.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "internal.h"

#define ZSTD_LEVEL	3	/* not part of the format */

static void
zseg_encode(unsigned char p[ZSEG_HEADER_LEN], const struct kds_zseg_header *h)
{
	memset(p, 0, ZSEG_HEADER_LEN);
	memcpy(p, ZSEG_MAGIC, 6);
	put_le16(p + 6, KDS_FORMAT_VERSION);
	memcpy(p + 8, h->seghdr, SEG_HEADER_LEN);
	put_le64(p + 56, h->last_counter);
	put_le64(p + 64, (uint64_t)h->first_arrival);
	put_le64(p + 72, (uint64_t)h->last_arrival);
	put_le64(p + 80, h->size);
	put_le64(p + 88, kds_checksum(p, 88, 0));
}

/*
 * Why the N bytes at P are not the header of compressed segment FIRST of
 * SHARD, or NULL when they are.
 */
const char *
kds_zseg_header_check(const unsigned char *p, size_t n, uint64_t shard,
    uint64_t first, struct kds_zseg_header *h)
{
	const char *why;

	if (n < ZSEG_HEADER_LEN || memcmp(p, ZSEG_MAGIC, 6) != 0 ||
	    get_le64(p + 88) != kds_checksum(p, 88, 0))
		return "bad compressed segment header";
	if (get_le16(p + 6) != KDS_FORMAT_VERSION)
		return "unknown compressed segment format version";
	if ((why = kds_seg_header_check(p + 8, SEG_HEADER_LEN, shard, first,
	    &h->seg)) != NULL)
		return why;
	memcpy(h->seghdr, p + 8, SEG_HEADER_LEN);
	h->last_counter = get_le64(p + 56);
	h->first_arrival = (int64_t)get_le64(p + 64);
	h->last_arrival = (int64_t)get_le64(p + 72);
	h->size = get_le64(p + 80);
	if (h->last_counter < first || h->last_arrival < h->first_arrival ||
	    h->size <= SEG_HEADER_LEN + FRAME_HEADER_LEN)
		return "bad compressed segment header";
	return NULL;
}

static void
zname(uint64_t shard, uint64_t first, const char *suffix, char *name,
    size_t n, char *where, size_t wn)
{
	char id[KDS_SHARD_ID_LEN + 1];

	kds_seg_name(shard, first, suffix, name, n);
	kds_shard_id(shard, id);
	if (where != NULL)
		snprintf(where, wn, "%s/%s", id, name);
}

int
kds_zseg_header_read(int dirfd, uint64_t shard, uint64_t first,
    struct kds_zseg_header *h, struct kds_err *e)
{
	unsigned char p[ZSEG_HEADER_LEN];
	char name[64], where[KDS_SHARD_ID_LEN + 1 + 64];
	const char *why;
	ssize_t n;
	int fd;

	zname(shard, first, ".zseg", name, sizeof(name), where, sizeof(where));
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		return 1;
	if (fd == -1)
		return kds_fail_errno(e, "%s", where);
	n = pread(fd, p, sizeof(p), 0);
	close(fd);
	if (n == -1)
		return kds_fail_errno(e, "%s: read", where);
	if ((why = kds_zseg_header_check(p, (size_t)n, shard, first, h)) != NULL)
		return kds_fail(e, 0, "%s: offset 0: %s", where, why);
	return 0;
}

static int
read_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t have = 0;

	while (have < n) {
		ssize_t k = pread(fd, (char *)buf + have, n - have,
		    (off_t)(off + have));

		if (k == -1 && errno == EINTR)
			continue;
		if (k == -1)
			return -1;
		if (k == 0)
			break;
		have += (size_t)k;
	}
	return (int)(have == n);
}

static int
grow(unsigned char **buf, size_t *cap, size_t want)
{
	unsigned char *nb;

	if (want <= *cap)
		return 0;
	if ((nb = realloc(*buf, want)) == NULL)
		return -1;
	*buf = nb;
	*cap = want;
	return 0;
}

int
kds_zblock_load(int fd, uint64_t off, uint64_t fsize, uint64_t salt,
    struct kds_zbuf *z, struct kds_zblock *b, unsigned char **buf,
    size_t *cap, const char **why, struct kds_err *e)
{
	unsigned char p[ZBLOCK_HEADER_LEN];
	size_t got;
	int rc;

	b->off = 0;		/* set once the header is known good */
	if (off < ZSEG_HEADER_LEN || off + ZBLOCK_HEADER_LEN > fsize) {
		*why = "block header past the end of the file";
		return 1;
	}
	if ((rc = read_full(fd, p, sizeof(p), off)) == -1)
		return kds_fail_errno(e, "read");
	if (rc == 0 || get_le64(p + 40) != kds_checksum(p, 40, salt)) {
		*why = "bad block header";
		return 1;
	}
	b->seg_off = get_le64(p);
	b->first_counter = get_le64(p + 8);
	b->first_arrival = (int64_t)get_le64(p + 16);
	b->raw_len = get_le32(p + 24);
	b->comp_len = get_le32(p + 28);
	b->sum = get_le64(p + 32);
	if (b->raw_len <= FRAME_HEADER_LEN || b->raw_len > ZBLOCK_MAX ||
	    b->comp_len == 0 || b->seg_off < SEG_HEADER_LEN ||
	    b->comp_len > fsize - off - ZBLOCK_HEADER_LEN) {
		*why = "bad block header";
		return 1;
	}
	b->off = off;
	if (z->dctx == NULL && (z->dctx = ZSTD_createDCtx()) == NULL)
		return kds_fail(e, ENOMEM, "zstd");
	if (grow(&z->cbuf, &z->ccap, b->comp_len) == -1 ||
	    grow(buf, cap, b->raw_len) == -1)
		return kds_fail_errno(e, "block");
	if ((rc = read_full(fd, z->cbuf, b->comp_len,
	    off + ZBLOCK_HEADER_LEN)) != 1) {
		if (rc == -1)
			return kds_fail_errno(e, "read");
		*why = "block cut short";
		return 1;
	}
	if (kds_checksum(z->cbuf, b->comp_len, salt) != b->sum) {
		*why = "bad block checksum";
		return 1;
	}
	got = ZSTD_decompressDCtx(z->dctx, *buf, b->raw_len, z->cbuf,
	    b->comp_len);
	if (ZSTD_isError(got) || got != b->raw_len) {
		*why = "block does not decompress to its length";
		return 1;
	}
	return 0;
}

void
kds_zbuf_free(struct kds_zbuf *z)
{
	ZSTD_freeDCtx(z->dctx);
	free(z->cbuf);
	memset(z, 0, sizeof(*z));
}

int
kds_zidx_load(int dirfd, const char *zsegname, struct kds_index_entry **out,
    uint32_t **inner, size_t *nout)
{
	char name[80];
	struct stat st;
	unsigned char *raw = NULL;
	struct kds_index_entry *v = NULL;
	uint32_t *in = NULL;
	size_t n = 0, len;
	int fd;

	*out = NULL;
	*inner = NULL;
	*nout = 0;
	snprintf(name, sizeof(name), "%.*s.zidx", (int)(strlen(zsegname) - 5),
	    zsegname);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return 0;
	if (fstat(fd, &st) == -1 || st.st_size < ZIDX_ENTRY_LEN)
		goto out;
	len = (size_t)st.st_size / ZIDX_ENTRY_LEN * ZIDX_ENTRY_LEN;
	if ((raw = malloc(len)) == NULL ||
	    (v = malloc(len / ZIDX_ENTRY_LEN * sizeof(*v))) == NULL ||
	    (in = malloc(len / ZIDX_ENTRY_LEN * sizeof(*in))) == NULL)
		goto out;
	if (read_full(fd, raw, len, 0) != 1)
		goto out;
	for (size_t i = 0; i < len; i += ZIDX_ENTRY_LEN) {
		const unsigned char *p = raw + i;
		struct kds_index_entry ie;
		uint32_t at;

		if (get_le64(p + 32) != kds_checksum(p, 32, 0))
			continue;
		ie.counter = get_le64(p);
		ie.arrival_ms = (int64_t)get_le64(p + 8);
		ie.offset = get_le64(p + 16);
		at = get_le32(p + 24);
		if (ie.offset < ZSEG_HEADER_LEN || at >= ZBLOCK_MAX)
			continue;
		if (n > 0 && (ie.counter <= v[n - 1].counter ||
		    ie.offset < v[n - 1].offset ||
		    ie.arrival_ms < v[n - 1].arrival_ms))
			continue;
		in[n] = at;
		v[n++] = ie;
	}
out:
	free(raw);
	close(fd);
	if (n == 0) {
		free(v);
		free(in);
		v = NULL;
		in = NULL;
	}
	*out = v;
	*inner = in;
	*nout = n;
	return 0;
}

/* The conversion's state: SEQ.seg in, SEQ.zseg.tmp and SEQ.zidx out. */
struct conv {
	int			 segfd, zfd, ifd;
	uint64_t		 size;		/* of SEQ.seg */
	struct kds_zseg_header	 h;
	ZSTD_CCtx		*cctx;
	unsigned char		*blk, *cbuf, *ix;
	size_t			 cbufcap, nix, ixcap;
	uint64_t		 zoff;		/* where the next block goes */
	char			 seg[KDS_SHARD_ID_LEN + 1 + 64];
	char			 tmp[KDS_SHARD_ID_LEN + 1 + 80];
	char			 idx[KDS_SHARD_ID_LEN + 1 + 64];
};

static int
add_entry(struct conv *c, uint64_t counter, int64_t arrival, uint32_t inner,
    struct kds_err *e)
{
	unsigned char *p;

	if (c->nix == c->ixcap) {
		size_t nc = c->ixcap ? c->ixcap * 2 : 256;

		if ((p = reallocarray(c->ix, nc, ZIDX_ENTRY_LEN)) == NULL)
			return kds_fail_errno(e, "%s", c->idx);
		c->ix = p;
		c->ixcap = nc;
	}
	p = c->ix + c->nix++ * ZIDX_ENTRY_LEN;
	put_le64(p, counter);
	put_le64(p + 8, (uint64_t)arrival);
	put_le64(p + 16, c->zoff);
	put_le32(p + 24, inner);
	put_le32(p + 28, 0);
	put_le64(p + 32, kds_checksum(p, 32, 0));
	return 0;
}

/* Compress blk[0..len), frames from segment offset seg_off, as a block. */
static int
put_block(struct conv *c, uint64_t seg_off, size_t len, uint64_t first,
    int64_t arrival, struct kds_err *e)
{
	unsigned char *p = c->cbuf;
	size_t n;

	n = ZSTD_compress2(c->cctx, p + ZBLOCK_HEADER_LEN,
	    c->cbufcap - ZBLOCK_HEADER_LEN, c->blk, len);
	if (ZSTD_isError(n))
		return kds_fail(e, EIO, "%s: zstd: %s", c->tmp,
		    ZSTD_getErrorName(n));
	put_le64(p, seg_off);
	put_le64(p + 8, first);
	put_le64(p + 16, (uint64_t)arrival);
	put_le32(p + 24, (uint32_t)len);
	put_le32(p + 28, (uint32_t)n);
	put_le64(p + 32, kds_checksum(p + ZBLOCK_HEADER_LEN, n,
	    c->h.seg.salt));
	put_le64(p + 40, kds_checksum(p, 40, c->h.seg.salt));
	if (kds_write_all(c->zfd, p, ZBLOCK_HEADER_LEN + n) == -1)
		return kds_fail_errno(e, "%s: write", c->tmp);
	c->zoff += ZBLOCK_HEADER_LEN + n;
	return 0;
}

/*
 * Read SEQ.seg a block at a time, checking every frame as a reader does,
 * and write the blocks and index entries.  blk holds [base, base + have)
 * of the segment; a block is its first pos bytes.
 */
static int
convert(struct conv *c, struct kds_err *e)
{
	uint64_t base = SEG_HEADER_LEN, expect = c->h.seg.first_counter;
	uint64_t prev_off = 0;
	int64_t prev = INT64_MIN;
	size_t have = 0;

	for (;;) {
		uint64_t first = 0;
		int64_t first_arrival = 0;
		size_t pos = 0;

		while (have < ZBLOCK_MAX && base + have < c->size) {
			size_t want = ZBLOCK_MAX - have;
			ssize_t n;

			if (want > c->size - base - have)
				want = (size_t)(c->size - base - have);
			n = pread(c->segfd, c->blk + have, want,
			    (off_t)(base + have));
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1)
				return kds_fail_errno(e, "%s: read", c->seg);
			if (n == 0)
				break;
			have += (size_t)n;
		}
		while (pos < ZBLOCK_TARGET && pos < have) {
			const char *why = "truncated frame";
			struct kds_frame f;
			enum frame_status fs;
			uint64_t off = base + pos;

			fs = kds_frame_decode(c->blk + pos, have - pos,
			    c->h.seg.salt, &f, &why);
			if (fs == FRAME_OK && f.counter != expect) {
				fs = FRAME_BAD;
				why = "sequence number out of order";
			}
			if (fs == FRAME_OK && f.arrival_ms < prev) {
				fs = FRAME_BAD;
				why = "arrival time goes back";
			}
			if (fs != FRAME_OK)
				return kds_fail(e, 0, "%s: offset %llu: %s",
				    c->seg, (unsigned long long)off, why);
			if ((pos == 0 || off / INDEX_INTERVAL !=
			    prev_off / INDEX_INTERVAL) &&
			    add_entry(c, f.counter, f.arrival_ms,
			    (uint32_t)pos, e) == -1)
				return -1;
			if (pos == 0) {
				first = f.counter;
				first_arrival = f.arrival_ms;
			}
			if (expect == c->h.seg.first_counter)
				c->h.first_arrival = f.arrival_ms;
			c->h.last_counter = f.counter;
			c->h.last_arrival = f.arrival_ms;
			prev = f.arrival_ms;
			prev_off = off;
			expect++;
			pos += f.len;
		}
		if (pos == 0)
			return 0;
		if (put_block(c, base, pos, first, first_arrival, e) == -1)
			return -1;
		memmove(c->blk, c->blk + pos, have - pos);
		have -= pos;
		base += pos;
	}
}

static int
sync_close(int *fd, const char *what, struct kds_err *e)
{
	int rc = 0;

	if (fsync(*fd) == -1)
		rc = kds_fail_errno(e, "%s: fsync", what);
	if (close(*fd) == -1 && rc == 0)
		rc = kds_fail_errno(e, "%s: close", what);
	*fd = -1;
	return rc;
}

int
kds_zseg_compress(int dirfd, uint64_t shard, uint64_t first,
    struct kds_zseg_stats *st, struct kds_err *e)
{
	struct conv c = { .segfd = -1, .zfd = -1, .ifd = -1 };
	unsigned char hdr[ZSEG_HEADER_LEN];
	char seg[64], tmp[72], zseg[64], zidx[64], what[96];
	struct stat sb;
	const char *why;
	ssize_t n;
	int rc = -1, renamed = 0;

	zname(shard, first, ".seg", seg, sizeof(seg), c.seg, sizeof(c.seg));
	zname(shard, first, ".zseg", zseg, sizeof(zseg), NULL, 0);
	zname(shard, first, ".zidx", zidx, sizeof(zidx), c.idx, sizeof(c.idx));
	snprintf(tmp, sizeof(tmp), "%s.tmp", zseg);
	snprintf(c.tmp, sizeof(c.tmp), "%.*s/%s", KDS_SHARD_ID_LEN, c.seg, tmp);
	if ((c.segfd = openat(dirfd, seg, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return kds_fail_errno(e, "%s", c.seg);
	if (fstat(c.segfd, &sb) == -1) {
		kds_fail_errno(e, "%s", c.seg);
		goto out;
	}
	c.size = (uint64_t)sb.st_size;
	n = pread(c.segfd, c.h.seghdr, SEG_HEADER_LEN, 0);
	if (n == -1) {
		kds_fail_errno(e, "%s: read", c.seg);
		goto out;
	}
	if ((why = kds_seg_header_check(c.h.seghdr, (size_t)n, shard, first,
	    &c.h.seg)) != NULL) {
		kds_fail(e, 0, "%s: offset 0: %s", c.seg, why);
		goto out;
	}
	if (c.size <= SEG_HEADER_LEN) {
		kds_fail(e, 0, "%s: no record to compress", c.seg);
		goto out;
	}
	c.h.size = c.size;
	c.cbufcap = ZBLOCK_HEADER_LEN + ZSTD_compressBound(ZBLOCK_MAX);
	if ((c.cctx = ZSTD_createCCtx()) == NULL ||
	    (c.blk = malloc(ZBLOCK_MAX)) == NULL ||
	    (c.cbuf = malloc(c.cbufcap)) == NULL) {
		kds_fail(e, ENOMEM, "%s: %s", c.seg, strerror(ENOMEM));
		goto out;
	}
	ZSTD_CCtx_setParameter(c.cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
	/* A leftover of an interrupted conversion is ours to overwrite. */
	c.zfd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, KDS_FILE_MODE);
	if (c.zfd == -1) {
		kds_fail_errno(e, "%s", c.tmp);
		goto out;
	}
	if (kds_perm_fix(dirfd, c.zfd, c.tmp, e) == -1)
		goto out;
	c.ifd = openat(dirfd, zidx, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, KDS_FILE_MODE);
	if (c.ifd == -1) {
		kds_fail_errno(e, "%s", c.idx);
		goto out;
	}
	if (kds_perm_fix(dirfd, c.ifd, c.idx, e) == -1)
		goto out;
	/* The header goes last, once it is known: zeros hold its place. */
	memset(hdr, 0, sizeof(hdr));
	if (kds_write_all(c.zfd, hdr, sizeof(hdr)) == -1) {
		kds_fail_errno(e, "%s: write", c.tmp);
		goto out;
	}
	c.zoff = ZSEG_HEADER_LEN;
	if (convert(&c, e) == -1)
		goto out;
	zseg_encode(hdr, &c.h);
	if (pwrite(c.zfd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
		if (errno == 0)
			errno = ENOSPC;
		kds_fail_errno(e, "%s: write", c.tmp);
		goto out;
	}
	if (kds_write_all(c.ifd, c.ix, c.nix * ZIDX_ENTRY_LEN) == -1) {
		kds_fail_errno(e, "%s: write", c.idx);
		goto out;
	}
	if (sync_close(&c.ifd, c.idx, e) == -1 ||
	    sync_close(&c.zfd, c.tmp, e) == -1)
		goto out;
	snprintf(what, sizeof(what), "%.*s/%s", KDS_SHARD_ID_LEN, c.seg, zseg);
	if (kds_rename_new(dirfd, tmp, zseg, what, e) == -1)
		goto out;
	renamed = 1;
	snprintf(c.tmp, sizeof(c.tmp), "%.*s", KDS_SHARD_ID_LEN, c.seg);
	if (kds_fsync_dir(dirfd, c.tmp, e) == -1)
		goto out;
	st->records = c.h.last_counter - first + 1;
	st->raw_size = c.size;
	st->size = c.zoff;
	rc = 0;
out:
	if (c.zfd != -1)
		close(c.zfd);
	if (c.ifd != -1)
		close(c.ifd);
	if (rc == -1 && !renamed) {
		unlinkat(dirfd, tmp, 0);
		/* An index beside a SEQ.zseg that is there is its own. */
		if (faccessat(dirfd, zseg, F_OK, AT_SYMLINK_NOFOLLOW) == -1)
			unlinkat(dirfd, zidx, 0);
	}
	close(c.segfd);
	ZSTD_freeCCtx(c.cctx);
	free(c.blk);
	free(c.cbuf);
	free(c.ix);
	return rc;
}

int
kds_zseg_walk_open(int dirfd, uint64_t shard, uint64_t first,
    struct kds_zseg_walk *w, struct kds_err *e)
{
	unsigned char p[ZSEG_HEADER_LEN];
	char name[64];
	struct stat sb;
	const char *why;
	ssize_t n;

	memset(w, 0, sizeof(*w));
	zname(shard, first, ".zseg", name, sizeof(name), w->where,
	    sizeof(w->where));
	w->fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (w->fd == -1)
		return kds_fail_errno(e, "%s", w->where);
	if (fstat(w->fd, &sb) == -1 || (n = pread(w->fd, p, sizeof(p), 0)) == -1) {
		kds_fail_errno(e, "%s", w->where);
		goto fail;
	}
	if ((why = kds_zseg_header_check(p, (size_t)n, shard, first,
	    &w->h)) != NULL) {
		kds_fail(e, 0, "%s: offset 0: %s", w->where, why);
		goto fail;
	}
	w->fsize = (uint64_t)sb.st_size;
	w->next = ZSEG_HEADER_LEN;
	w->seg_off = SEG_HEADER_LEN;
	return 0;
fail:
	close(w->fd);
	w->fd = -1;
	return -1;
}

int
kds_zseg_walk_next(struct kds_zseg_walk *w, struct kds_err *e)
{
	const char *why = NULL;
	int rc;

	if (w->next == w->fsize) {
		if (w->seg_off != w->h.size)
			return kds_fail(e, 0, "%s: offset %llu: blocks end at "
			    "segment offset %llu, not %llu", w->where,
			    (unsigned long long)w->next,
			    (unsigned long long)w->seg_off,
			    (unsigned long long)w->h.size);
		return 0;
	}
	rc = kds_zblock_load(w->fd, w->next, w->fsize, w->h.seg.salt, &w->z,
	    &w->b, &w->buf, &w->cap, &why, e);
	if (rc == -1) {
		struct kds_err inner = *e;

		return kds_fail(e, inner.errnum, "%s: %s", w->where, inner.msg);
	}
	if (rc == 0 && w->b.seg_off != w->seg_off)
		why = "block out of place";
	if (rc == 1 || why != NULL)
		return kds_fail(e, 0, "%s: offset %llu: %s", w->where,
		    (unsigned long long)w->next, why);
	w->next += ZBLOCK_HEADER_LEN + w->b.comp_len;
	w->seg_off += w->b.raw_len;
	return 1;
}

void
kds_zseg_walk_close(struct kds_zseg_walk *w)
{
	if (w->fd != -1)
		close(w->fd);
	w->fd = -1;
	kds_zbuf_free(&w->z);
	free(w->buf);
	w->buf = NULL;
}
