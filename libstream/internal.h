/*
 * internal.h: what the files of libstream share and the tools never see.
 * The byte layouts here are kds-stream(5); change them there first.
 */
#ifndef KDS_INTERNAL_H
#define KDS_INTERNAL_H

#include <sys/types.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <time.h>
#include <endian.h>
#include <string.h>
#include <stdarg.h>
#include <stdint.h>

#include "kds.h"

#define KDS_FORMAT_VERSION	1

#define SEG_MAGIC		"KDSSEG"
#define SEG_HEADER_LEN		48
#define FRAME_HEADER_LEN	32
#define FRAME_MAX_LEN		(FRAME_HEADER_LEN + KDS_MAX_RECORD)
#define KEY_MAX_BYTES		(KDS_MAX_KEY_CHARS * 4)
#define INDEX_ENTRY_LEN		32
#define INDEX_INTERVAL		(32 * 1024)	/* an entry per this many bytes */
#define TAIL_MAGIC		"KDSTAIL1"
#define TAIL_LEN		64
#define TAIL_CLOSED		1	/* tail flag: a reshard closed the shard */
#define ZSEG_MAGIC		"KDSZSG"
#define ZSEG_HEADER_LEN		96
#define ZBLOCK_HEADER_LEN	48
#define ZBLOCK_TARGET		(128 * 1024)	/* a block ends at or past this */
#define ZBLOCK_MAX		(ZBLOCK_TARGET - 1 + FRAME_MAX_LEN)
#define ZIDX_ENTRY_LEN		40
#define SEQ_SHARD_SCALE		100000000000000000000.0L	/* 10^20 */
#define COUNTER_LIMIT		UINT64_C(10000000000000000000)	/* 10^19 */

/* err.c */
int	kds_fail(struct kds_err *, int errnum, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
int	kds_fail_errno(struct kds_err *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* Little-endian fields; memcpy compiles to one load or store. */
static inline uint64_t
get_le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}
static inline uint32_t
get_le32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}
static inline uint16_t
get_le16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}
static inline void
put_le64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}
static inline void
put_le32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}
static inline void
put_le16(unsigned char *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

/* checksum.c: XXH3-64, the one checksum of the format. */
uint64_t kds_checksum(const void *, size_t, uint64_t seed);

/* meta.c: STREAM/meta, the shard table. */
struct kds_shard {
	uint64_t		number;
	int			open;
	int64_t			parent;		/* -1: none */
	int64_t			adjacent;	/* -1: none */
	unsigned __int128	start_hash;
	unsigned __int128	end_hash;
	uint64_t		end_counter;	/* closed shards: last counter */
};

struct kds_meta {
	int64_t			created_ms;
	int64_t			retention_s;
	uint64_t		segment_bytes;
	int64_t			segment_age_s;
	int			compress;	/* a compress-after line */
	int64_t			compress_after_s;
	uint64_t		next_shard;
	size_t			nshards;
	struct kds_shard	*shards;	/* ascending shard number */
};

int	kds_meta_read(int dirfd, struct kds_meta *, struct kds_err *);
int	kds_meta_write(int dirfd, const struct kds_meta *, struct kds_err *);
void	kds_meta_free(struct kds_meta *);
void	kds_aws_ranges(unsigned n, unsigned i, unsigned __int128 *start,
	    unsigned __int128 *end);

/* atomic.c: replace a file whole: temp, fsync, rename, fsync directory. */
int	kds_atomic_write(int dirfd, const char *name, const void *, size_t,
	    struct kds_err *);
int	kds_fsync_dir(int dirfd, const char *what, struct kds_err *);
int	kds_rename_new(int dirfd, const char *tmp, const char *name,
	    const char *what, struct kds_err *);
int	kds_write_all(int fd, const void *, size_t);
int	kds_write_all_intr(int fd, const void *, size_t);

/* perm.c: modes of what tools create (kds-stream(5), PERMISSIONS).  Files
 * are created 0664 and directories 0775, less the umask; under a
 * set-group-ID directory, kds_perm_fix adds these whatever the umask. */
#define KDS_FILE_MODE		0664
#define KDS_DIR_MODE		0775
#define KDS_GROUP_FILE		0660
#define KDS_GROUP_DIR		02770
int	kds_perm_fix(int parentfd, int fd, const char *what, struct kds_err *);
int	kds_perm_stream(int fd, int shared, uint32_t gid, struct kds_err *);

/* lock.c */
int	kds_lock(int fd, const char *what, struct kds_err *);
void	kds_unlock(int fd);

/* stream.c */
struct kds_stream {
	char		*path;
	int		 dirfd;
	struct kds_meta	 meta;
	dev_t		 meta_dev;	/* the meta read, to notice a new one */
	ino_t		 meta_ino;
	off_t		 meta_size;
	struct timespec	 meta_ctime;
};
int	kds_stream_reload(struct kds_stream *, int *changed, struct kds_err *);
/* Read meta whatever its inode says: inodes are reused (kds-stream(5)). */
int	kds_stream_reread(struct kds_stream *, struct kds_err *);
int	kds_shard_dir_open(struct kds_stream *, uint64_t shard,
	    struct kds_err *);
int	kds_opendirat(int dirfd, const char *name);	/* no symlinks */
const struct kds_shard *kds_stream_shard(const struct kds_stream *, uint64_t);

/* segment.c: segment files and their headers. */
struct kds_seg_header {
	uint64_t	shard;
	uint64_t	first_counter;
	int64_t		created_ms;
	uint64_t	salt;
};
void	kds_seg_name(uint64_t shard, uint64_t counter, const char *suffix,
	    char *out, size_t);
int	kds_seg_header_encode(unsigned char out[SEG_HEADER_LEN],
	    const struct kds_seg_header *);
int	kds_seg_header_decode(const unsigned char in[SEG_HEADER_LEN],
	    struct kds_seg_header *);
const char *kds_seg_header_check(const unsigned char *, size_t, uint64_t,
	    uint64_t, struct kds_seg_header *);
int	kds_seg_create(int shard_dirfd, uint64_t shard, uint64_t counter,
	    int64_t created_ms, struct kds_seg_header *, struct kds_err *);
/* The first counters of the shard's segments, .seg or .zseg, ascending,
 * each once. */
int	kds_seg_list(int shard_dirfd, uint64_t shard, uint64_t **counters,
	    size_t *n, struct kds_err *);

/* frame.c: one record on disk. */
enum frame_status { FRAME_OK, FRAME_INCOMPLETE, FRAME_BAD };
struct kds_frame {
	uint32_t	len;
	uint16_t	keylen;
	uint64_t	counter;
	int64_t		arrival_ms;
	const unsigned char *key;
	const unsigned char *data;
	size_t		datalen;
};
enum frame_status kds_frame_decode(const unsigned char *p, size_t avail,
	    uint64_t salt, struct kds_frame *, const char **why);
void	kds_frame_seal(unsigned char *p, uint64_t counter, int64_t arrival_ms,
	    uint64_t salt);
size_t	kds_frame_encode_head(unsigned char *p, size_t keylen,
	    size_t datalen);
int	kds_tail_is_torn(int fd, uint64_t off, uint64_t size, uint64_t salt,
	    int complete, struct kds_err *);

/* index.c: the sparse index, a cache beside each segment. */
struct kds_index_entry {
	uint64_t	counter;
	int64_t		arrival_ms;
	uint64_t	offset;		/* .zidx: of the block in SEQ.zseg */
};
void	kds_index_entry_encode(unsigned char out[INDEX_ENTRY_LEN],
	    const struct kds_index_entry *);
int	kds_index_load(int shard_dirfd, const char *segname,
	    struct kds_index_entry **, size_t *n);
size_t	kds_index_find_counter(const struct kds_index_entry *, size_t n,
	    uint64_t counter);
size_t	kds_index_find_time(const struct kds_index_entry *, size_t n,
	    int64_t ms);

/*
 * zseg.c: compressed segments (kds-stream(5), COMPRESSED SEGMENTS): zstd
 * blocks of whole frames, byte for byte those of the SEQ.seg they replace.
 */
struct kds_zseg_header {
	struct kds_seg_header	seg;
	unsigned char		seghdr[SEG_HEADER_LEN];	/* as in SEQ.seg */
	uint64_t		last_counter;
	int64_t			first_arrival, last_arrival;
	uint64_t		size;		/* of SEQ.seg: 48 + frames */
};
struct kds_zblock {
	uint64_t	off;		/* of its header in SEQ.zseg */
	uint64_t	seg_off;	/* of its first frame in SEQ.seg */
	uint64_t	first_counter;
	int64_t		first_arrival;
	uint32_t	raw_len, comp_len;
	uint64_t	sum;		/* of the compressed bytes */
};
/* A decompressor and its input buffer, shared by the shards of a reader:
 * only one block is decompressed at a time.  Zeroed is empty. */
struct kds_zbuf {
	void		*dctx;
	unsigned char	*cbuf;
	size_t		 ccap;
};
const char *kds_zseg_header_check(const unsigned char *, size_t,
	    uint64_t shard, uint64_t first, struct kds_zseg_header *);
/* Read SEQ.zseg's header: 0, 1 when there is no SEQ.zseg, -1. */
int	kds_zseg_header_read(int shard_dirfd, uint64_t shard, uint64_t first,
	    struct kds_zseg_header *, struct kds_err *);
/* Load the block at off of a SEQ.zseg of fsize bytes into *buf (grown to
 * fit; the caller owns it): 0, 1 when it does not check out (*why says
 * how; b->off is off when at least its header does, else 0), -1 on an
 * I/O error. */
int	kds_zblock_load(int fd, uint64_t off, uint64_t fsize, uint64_t salt,
	    struct kds_zbuf *, struct kds_zblock *, unsigned char **buf,
	    size_t *cap, const char **why, struct kds_err *);
void	kds_zbuf_free(struct kds_zbuf *);
/* Load SEQ.zidx beside zsegname, as kds_index_load does SEQ.idx; the
 * offsets are of blocks, and (*inner)[i] that of entry i's frame in its
 * block.  The caller frees both arrays. */
int	kds_zidx_load(int shard_dirfd, const char *zsegname,
	    struct kds_index_entry **, uint32_t **inner, size_t *n);
/* Convert SEQ.seg of a shard to SEQ.zseg and SEQ.zidx, steps 1 to 4 of
 * kds-stream(5), COMPRESSION: SEQ.seg and SEQ.idx are the caller's to
 * remove.  A frame that does not check out fails it, naming SEQ.seg. */
struct kds_zseg_stats {
	uint64_t	records, raw_size, size;
};
int	kds_zseg_compress(int shard_dirfd, uint64_t shard, uint64_t first,
	    struct kds_zseg_stats *, struct kds_err *);
/* Every block of a SEQ.zseg in order, checked, decompressed: for those
 * that read a compressed segment whole (archives, verify). */
struct kds_zseg_walk {
	int			fd;
	uint64_t		fsize, next, seg_off;
	struct kds_zseg_header	h;
	struct kds_zblock	b;
	struct kds_zbuf		z;
	unsigned char		*buf;		/* b.raw_len bytes */
	size_t			cap;
	char			where[KDS_SHARD_ID_LEN + 1 + 64];
};
int	kds_zseg_walk_open(int shard_dirfd, uint64_t shard, uint64_t first,
	    struct kds_zseg_walk *, struct kds_err *);
/* 1 a block in w->buf, 0 the end, -1 (corruption named with offset). */
int	kds_zseg_walk_next(struct kds_zseg_walk *, struct kds_err *);
void	kds_zseg_walk_close(struct kds_zseg_walk *);

/* shard_writer.c: appending batches of sealed frames to one shard. */
struct kds_shard_writer;
struct kds_shard_writer *kds_shard_writer_new(struct kds_stream *,
	    uint64_t shard, enum kds_sync, struct kds_err *);
/* Lock the shard and bring the writer up to date.  Returns 1 when the
 * shard was closed meanwhile (the lock is then released), 0, or -1. */
int	kds_shard_writer_begin(struct kds_shard_writer *, struct kds_err *);
/* Write frames (built with kds_frame_encode_head), counters and times
 * assigned here; first_counter receives the counter of the first one and
 * stored how many are in the shard, all of them unless -1 is returned:
 * a batch that rolled a segment before failing keeps what went before. */
int	kds_shard_writer_append(struct kds_shard_writer *, unsigned char *buf,
	    size_t len, size_t nframes, uint64_t *first_counter,
	    size_t *stored, struct kds_err *);
void	kds_shard_writer_end(struct kds_shard_writer *);
int	kds_shard_writer_sync(struct kds_shard_writer *, struct kds_err *);
void	kds_shard_writer_free(struct kds_shard_writer *);
/* Make STREAM/SHARD/ with an empty first segment and its tail file;
 * floor_ms: no record of the shard arrives earlier (0: a root shard). */
int	kds_shard_init(int stream_dirfd, uint64_t shard, int64_t created_ms,
	    int64_t floor_ms, struct kds_err *);
/* Expiry, under the lock of kds_shard_writer_begin(): where the shard
 * stands, and sealing its active segment behind a new, empty one. */
void	kds_shard_writer_state(const struct kds_shard_writer *,
	    uint64_t *seg_first, uint64_t *end, uint64_t *last_counter,
	    int64_t *last_arrival);
int	kds_shard_writer_seal(struct kds_shard_writer *, struct kds_err *);
/* Reshard: lock and recover a shard, report its last counter and arrival,
 * and keep the lock (until kds_shard_writer_end); flag its tail closed. */
int	kds_shard_writer_hold(struct kds_shard_writer *, uint64_t *last_counter,
	    int64_t *last_arrival, struct kds_err *);
int	kds_shard_writer_mark(struct kds_shard_writer *, int closed,
	    struct kds_err *);
/* Recover a shard's tail under its lock, as a writer would. */
int	kds_shard_recover(struct kds_stream *, uint64_t shard,
	    uint64_t *last_counter, struct kds_err *);

/* archive.c: segments into tar.zst archives (kds-stream(5), Archives). */
struct kds_archive_member {
	uint64_t	first;		/* first counter: the segment's name */
	uint64_t	size;		/* bytes: header and whole frames */
	int64_t		oldest_ms;	/* its first record's arrival */
	int		compressed;	/* read it from SEQ.zseg */
};
typedef void kds_archive_progress_fn(void *arg, uint64_t bytes);
int	kds_archive_dir_open(const char *dir, const char *stream,
	    int64_t hour_ms, int create, char *path, size_t pathlen,
	    struct kds_err *);
void	kds_archive_name(uint64_t shard, uint64_t first, uint64_t last,
	    char *out, size_t);
int	kds_archive_name_parse(const char *name, uint64_t *shard,
	    uint64_t *first, uint64_t *last);
int	kds_archive_holds(int dirfd, const char *name, const char *member,
	    uint64_t size, const unsigned char hdr[SEG_HEADER_LEN]);
int	kds_archive_write(int dirfd, const char *name, const char *what,
	    const char *stream, uint64_t shard, int shard_dirfd,
	    const struct kds_archive_member *, size_t n,
	    kds_archive_progress_fn *, void *arg, struct kds_err *);

/* lease.c: a consumer's leases and workers (kds-stream(5), CONSUMERS). */
int	kds_lease_try(int cdirfd, uint64_t shard, int *fd, struct kds_err *);
void	kds_lease_release(int fd);
int	kds_worker_register(int cdirfd, char name[64], struct kds_err *);
void	kds_worker_unregister(int cdirfd, const char *name, int fd);
int	kds_worker_count(int cdirfd, int reap, size_t *n, struct kds_err *);

/* consumer.c: checkpoints and the start, as describe.c reads them too. */
struct kds_checkpoint {
	int		kind;		/* KDS_CKPT_* */
	uint64_t	counter;	/* KDS_CKPT_AT: last delivered */
	int64_t		arrival_ms;
};
#define KDS_CKPT_NONE	0
#define KDS_CKPT_AT	1
#define KDS_CKPT_END	2		/* SHARD_END */
int	kds_checkpoint_read(int cdirfd, uint64_t shard, struct kds_checkpoint *,
	    struct kds_err *);
int	kds_consumer_start_read(int cdirfd, struct kds_iter_opts *,
	    struct kds_err *);

/* reader.c, for describe.c */
int	kds_shard_position(struct kds_stream *, uint64_t shard,
	    const struct kds_iter_opts *, uint64_t *counter, int64_t *arrival_ms,
	    struct kds_err *);

/* utf8.c */
long	kds_utf8_chars(const char *, size_t);	/* -1: invalid UTF-8 */
size_t	kds_utf8_len(const char *, size_t);	/* 0: invalid UTF-8 */

/* outpipe.c: here and not in kds.h so that format.c may fill the buffer
 * in place (kds_outpipe_reserve), a record at a time without a call. */
struct kds_outpipe {
	int		 fd;
	size_t		 cap;		/* bytes of each buffer */
	char		*buf[2];	/* buf[1]: only with the thread */
	int		 cur;		/* the caller's: buf[cur] */
	size_t		 len;		/* bytes in buf[cur] */
	int		 err;		/* sticky errno, the caller's view */
	int		 thread;	/* 0: not yet, 1: running, -1: none */
	pthread_t	 tid;
	int		 busy;		/* the writer has wbuf, not yet back */
	sem_t		 todo;		/* caller -> writer: wbuf, or quit */
	sem_t		 done;		/* writer -> caller: wbuf written */
	/* Owned by the writer while busy, by the caller otherwise. */
	const char	*wbuf;
	size_t		 wlen;
	int		 werr;
	int		 quit;
	_Atomic unsigned long progress;	/* the writer's write(2)s so far */
};
char	*kds_outpipe_reserve_slow(struct kds_outpipe *, size_t);

/*
 * n contiguous bytes at the end of the output, for the caller to fill
 * before its next call: they count as written.  n is at most the buffer
 * size (else NULL, EMSGSIZE); NULL with errno when the output failed.
 */
static inline char *
kds_outpipe_reserve(struct kds_outpipe *o, size_t n)
{
	char *p;

	if (o->err || n > o->cap - o->len)
		return kds_outpipe_reserve_slow(o, n);
	p = o->buf[o->cur] + o->len;
	o->len += n;
	return p;
}

/* base64.c */
size_t	kds_base64_encoded_len(size_t);
void	kds_base64_encode(char *out, const void *, size_t);
int	kds_base64_decode(unsigned char *out, size_t *outlen, const char *,
	    size_t);

#endif
