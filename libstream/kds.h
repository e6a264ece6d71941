/*
 * kds.h: the public interface of libstream, Kinesis Data Streams over files.
 *
 * Model.  A stream is a directory.  Its hash key space [0, 2^128) is cut into
 * shards; a record (partition key + data) goes to the open shard whose range
 * holds MD5(partition key), or an explicit hash key.  Each shard is a
 * directory of append-only segment files; every record in it gets the next
 * sequence number of that shard and an arrival time.  The on-disk format is
 * kds-stream(5); this header is its only door.
 *
 * Locking, the one order everything takes (kds-stream(5), LOCKING):
 *   1. STREAM/lock              exclusive, only by whoever rewrites STREAM/meta
 *   2. STREAM/SHARD/tail        exclusive, per shard, in ascending shard order
 * Producers take only (2), one shard at a time, per batch.  A reshard holds
 * (1), then (2) of every shard it closes, until the new meta is in place.
 * Readers take no lock at all: they read only what a checksum proves
 * complete.
 *
 * Calling sequence.
 *   producer:  kds_stream_open -> kds_producer_new -> kds_producer_add ...
 *              -> kds_producer_close -> kds_stream_close
 *   consumer:  kds_stream_open -> kds_reader_open -> kds_reader_next ...
 *              -> kds_reader_close -> kds_stream_close
 *   expiry:    kds_stream_open -> kds_expire -> kds_stream_close
 *   archives:  kds_archive_reader_open -> kds_archive_reader_next ...
 *              -> kds_archive_reader_close
 *   reshard:   kds_stream_open -> kds_reshard_split, _merge or _scale
 *              -> kds_stream_close
 * The boundary is records in, records out: a tool never sees a segment.
 *
 * Errors.  Every call that can fail returns -1 (or NULL) and fills the
 * caller's struct kds_err with one line naming what and where, without the
 * tool or stream name, which the caller prefixes.  Nothing here prints or exits.
 */
#ifndef KDS_H
#define KDS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KDS_VERSION		"0.1.0"
#define KDS_MAX_RECORD		(1024 * 1024)	/* partition key + data, bytes */
#define KDS_MAX_KEY_CHARS	256		/* partition key, UTF-8 characters */
#define KDS_MAX_SHARDS		10000
#define KDS_SHARD_ID_LEN	20		/* "shardId-" + 12 digits */
#define KDS_SEQ_LEN		40		/* room for a sequence number + NUL */
#define KDS_HASHKEY_LEN		40		/* 2^128-1 has 39 digits, + NUL */

struct kds_err {
	int	errnum;			/* errno of the cause, 0 when none */
	char	msg[1024];
};

/* Results of kds_producer_add() beside 0 and -1. */
#define KDS_BAD_RECORD		1	/* this record was refused; the stream is fine */

enum kds_sync {
	KDS_SYNC_EXIT,			/* fsync once, in kds_producer_close() */
	KDS_SYNC_ALWAYS,		/* fsync each batch before it is acknowledged */
	KDS_SYNC_NEVER			/* leave it to the kernel */
};

enum kds_iterator {
	KDS_TRIM_HORIZON,
	KDS_LATEST,
	KDS_AT_SEQUENCE_NUMBER,
	KDS_AFTER_SEQUENCE_NUMBER,
	KDS_AT_TIMESTAMP
};

struct kds_create_opts {
	unsigned	shards;
	int64_t		retention_s;
	uint64_t	segment_bytes;
	int64_t		segment_age_s;
	int		compress;	/* compress segments after: */
	int64_t		compress_after_s;
};

/*
 * A record on its way in.  explicit_hash_key is NULL or a decimal string.
 * spread: the user gave no partition key (key is a stand-in, such as the
 * input number); the record goes round-robin over the open shards.
 */
struct kds_put_record {
	const char	*key;
	size_t		 keylen;
	const void	*data;
	size_t		 datalen;
	const char	*explicit_hash_key;
	int		 spread;
};

/*
 * A record on its way out.  key and data point into the reader's buffer and
 * stay valid until the next kds_reader_next() or kds_reader_close().
 */
struct kds_record {
	const char	*key;
	size_t		 keylen;
	const char	*data;
	size_t		 datalen;
	uint64_t	 shard;		/* shard number */
	uint64_t	 counter;	/* with shard, the sequence number */
	int64_t		 arrival_ms;
};

/* An acknowledgement of a stored record, as PutRecord answers. */
struct kds_ack {
	char	shard_id[KDS_SHARD_ID_LEN + 1];
	char	sequence[KDS_SEQ_LEN];
};
typedef void kds_ack_fn(void *arg, const struct kds_ack *ack);

struct kds_iter_opts {
	enum kds_iterator	 type;
	const char		*sequence;	/* AT_ and AFTER_SEQUENCE_NUMBER */
	int64_t			 timestamp_ms;	/* AT_TIMESTAMP */
	const uint64_t		*shards;	/* NULL: every shard */
	size_t			 nshards;
	unsigned		 flags;		/* KDS_READ_* */
};
#define KDS_READ_FOLLOW		0x1	/* watch for more: kds_reader_wait() */
#define KDS_READ_CHILDREN	0x2	/* go on to children of closed shards */

struct kds_stream;
struct kds_producer;
struct kds_reader;
struct kds_format;
struct kds_outpipe;

/* stream.c */
int	kds_stream_create(const char *path, const struct kds_create_opts *,
	    struct kds_err *);
/* The same, shared by the members of group gid (kds-stream(5),
 * PERMISSIONS): the caller must be one of them. */
int	kds_stream_create_shared(const char *path,
	    const struct kds_create_opts *, uint32_t gid, struct kds_err *);
struct kds_stream *kds_stream_open(const char *path, struct kds_err *);
void	kds_stream_close(struct kds_stream *);
size_t	kds_stream_shard_count(const struct kds_stream *);
int	kds_stream_shard_lookup(const struct kds_stream *, const char *name,
	    uint64_t *number, struct kds_err *);

/* A shard as ListShards describes it; "" where AWS gives no value. */
struct kds_shard_text {
	char	id[KDS_SHARD_ID_LEN + 1];
	char	parent[KDS_SHARD_ID_LEN + 1];
	char	adjacent[KDS_SHARD_ID_LEN + 1];
	char	start_hash[KDS_HASHKEY_LEN];
	char	end_hash[KDS_HASHKEY_LEN];
	char	start_seq[KDS_SEQ_LEN];
	char	end_seq[KDS_SEQ_LEN];		/* "" while open */
};
int	kds_stream_shard_text(const struct kds_stream *, uint64_t number,
	    struct kds_shard_text *, struct kds_err *);

/* reshard.c: SplitShard, MergeShards and UpdateShardCount(UNIFORM_SCALING),
 * as kds-stream(5), RESHARDING, does them.  Each takes STREAM/lock, checks
 * AWS's rules against meta as it is then, and changes nothing when one is
 * broken.  key NULL: the middle of the shard's range.  fn gets each shard
 * made, once meta names it; the stream then holds the new meta. */
typedef void kds_shard_fn(void *arg, uint64_t shard);
int	kds_reshard_split(struct kds_stream *, uint64_t shard,
	    const unsigned __int128 *key, kds_shard_fn *fn, void *arg,
	    struct kds_err *);
int	kds_reshard_merge(struct kds_stream *, uint64_t shard,
	    uint64_t adjacent, kds_shard_fn *fn, void *arg, struct kds_err *);
int	kds_reshard_scale(struct kds_stream *, unsigned shards,
	    kds_shard_fn *fn, void *arg, struct kds_err *);

/* producer.c: records in.  ack is called in input order, after the record
 * is written (and, with KDS_SYNC_ALWAYS, durable). */
struct kds_producer *kds_producer_new(struct kds_stream *, enum kds_sync,
	    kds_ack_fn *ack, void *ack_arg, struct kds_err *);
int	kds_producer_add(struct kds_producer *, const struct kds_put_record *,
	    struct kds_err *);
int	kds_producer_flush(struct kds_producer *, struct kds_err *);
int	kds_producer_pending(const struct kds_producer *);
/* Flush, fsync as the sync mode says, free.  With a NULL kds_err it only
 * frees, dropping what is pending: for cleaning up after a failure. */
int	kds_producer_close(struct kds_producer *, struct kds_err *);

/* reader.c: records out, merged over shards by arrival time. */
struct kds_reader *kds_reader_open(struct kds_stream *,
	    const struct kds_iter_opts *, struct kds_err *);
int	kds_reader_next(struct kds_reader *, struct kds_record *,
	    struct kds_err *);		/* 1 record, 0 end, -1 error */
void	kds_reader_close(struct kds_reader *);
/* Following (KDS_READ_FOLLOW): after kds_reader_next() returned 0, sleep
 * until a shard may have more, timeout_ms passes (-1: no limit) or a signal
 * unblocked by mask (as ppoll(2); NULL: none) arrives.  1 woken, 0 timeout
 * or signal, -1 error.  With KDS_READ_CHILDREN, the children of a shard
 * closed by a reshard are read once their parents are read to the end. */
int	kds_reader_wait(struct kds_reader *, int timeout_ms,
	    const sigset_t *mask, struct kds_err *);
/* Following without inotify (out of instances or watches, as tail -f
 * can be): the errno that took it away, and the reader looks every
 * KDS_FOLLOW_POLL_MS instead; 0 while inotify serves. */
#define KDS_FOLLOW_POLL_MS	100
int	kds_reader_polling(const struct kds_reader *);
/* A changing set of shards, as a consumer's leases come and go: add one
 * at o's position (o->shards is not used), drop one, and ask whether one
 * is closed and read to its end.  Adding or dropping may read ahead. */
int	kds_reader_add(struct kds_reader *, uint64_t shard,
	    const struct kds_iter_opts *o, struct kds_err *);
int	kds_reader_drop(struct kds_reader *, uint64_t shard, struct kds_err *);
int	kds_reader_done(struct kds_reader *, uint64_t shard);

/*
 * consumer.c: a named consumer (kds-stream(5), CONSUMERS).  next returns
 * records of the shards this process leases, from the checkpoint in each
 * (or where o says, for a new consumer); commit says that every record
 * next returned has been delivered, and moves the checkpoints; wait is
 * kds_reader_wait's.  Processes of one name share the shards; o->flags
 * may hold KDS_READ_FOLLOW.  reset drops the checkpoints (drop: the
 * consumer), refused while a process of it runs.
 */
struct kds_consumer;
int	kds_consumer_name_ok(const char *);
struct kds_consumer *kds_consumer_open(struct kds_stream *, const char *name,
	    const struct kds_iter_opts *o, struct kds_err *);
int	kds_consumer_next(struct kds_consumer *, struct kds_record *,
	    struct kds_err *);		/* 1 record, 0 none now, -1 error */
int	kds_consumer_commit(struct kds_consumer *, struct kds_err *);
int	kds_consumer_wait(struct kds_consumer *, int timeout_ms,
	    const sigset_t *mask, struct kds_err *);
int	kds_consumer_polling(const struct kds_consumer *);
void	kds_consumer_close(struct kds_consumer *);
int	kds_consumer_reset(struct kds_stream *, const char *name, int drop,
	    struct kds_err *);

/*
 * describe.c: what DescribeStream, ListShards and the stream metrics tell,
 * from metadata and indexes, never every record.  Times in epoch ms; a
 * shard's retained records are first_counter..last_counter (records of
 * them; none when records is 0).  A consumer's lag in a shard is the
 * records after its checkpoint (or its start) and how far the newest
 * record arrived after the one it last delivered (MillisBehindLatest).
 */
struct kds_shard_desc {
	uint64_t		number;
	int			open;
	int64_t			parent, adjacent;	/* -1: none */
	unsigned __int128	start_hash, end_hash;
	uint64_t		end_counter;		/* closed shards */
	uint64_t		first_counter, last_counter, records;
	int64_t			oldest_ms, newest_ms;
	uint64_t		bytes, segments;
};
struct kds_consumer_shard {
	uint64_t	shard;
	int		kind;		/* 0 none, 1 at counter, 2 SHARD_END */
	uint64_t	counter;
	uint64_t	behind;
	int64_t		ms_behind;
};
struct kds_consumer_desc {
	char			 name[129];
	size_t			 processes;	/* running now */
	struct kds_consumer_shard *shards;	/* one per shard, in order */
	size_t			 nshards;
};
struct kds_description {
	int64_t			 created_ms, retention_s, segment_age_s;
	uint64_t		 segment_bytes;
	int			 compress;	/* kds-expire compresses after: */
	int64_t			 compress_after_s;
	size_t			 open, closed;
	uint64_t		 records, bytes;
	int64_t			 oldest_ms, newest_ms;	/* 0: no record */
	struct kds_shard_desc	*shards;
	size_t			 nshards;
	struct kds_consumer_desc *consumers;	/* by name */
	size_t			 nconsumers;
};
int	kds_stream_describe(struct kds_stream *, struct kds_description *,
	    struct kds_err *);
void	kds_description_free(struct kds_description *);

/* verify.c: check every checksum of a stream, as fsck does.  Each problem
 * goes to report as one line naming segment and offset; with repair, torn
 * tails are cut and indexes rebuilt; damaged records are only reported. */
struct kds_verify_stats {
	uint64_t	shards, segments, records, bytes;
	uint64_t	problems, torn, stale_index, repaired;
};
typedef void kds_verify_fn(void *arg, const char *problem);
int	kds_stream_verify(struct kds_stream *, int repair, kds_verify_fn *,
	    void *arg, struct kds_verify_stats *, struct kds_err *);

/*
 * retention.c: kds-expire (kds-stream(5), RETENTION).  Removes the segments
 * the retention has passed, archiving them first when archive_dir is set,
 * and closed shards whose records have all expired; then compresses the
 * sealed segments that compress-after has passed (COMPRESSION).  Holds
 * STREAM/lock for the whole call.  report gets one line per thing done (or,
 * with dry_run, that would be done); progress, the bytes archived so far
 * and in all.
 * Returns 0, 1 when nowait and another holds STREAM/lock, or -1.
 */
typedef void kds_report_fn(void *arg, const char *line);
typedef void kds_progress_fn(void *arg, uint64_t done, uint64_t total);
struct kds_expire_opts {
	int64_t		 retention_s;	/* > 0: change the retention first */
	int64_t		 compress_after_s; /* >= 0: change compress-after
					    first; -1: keep */
	const char	*archive_dir;	/* NULL: remove without archiving */
	int		 dry_run;
	int		 nowait;
	kds_report_fn	*report;
	kds_progress_fn	*progress;
	void		*arg;
};
int	kds_expire(struct kds_stream *, const struct kds_expire_opts *,
	    struct kds_err *);

/* archive_read.c: records out of kds-expire's archives, as a reader gives
 * them; o->shards are shard numbers.  The record's stream is
 * kds_archive_reader_stream(), until the next call. */
struct kds_archive_reader;
struct kds_archive_reader *kds_archive_reader_open(const char *const *files,
	    size_t n, const struct kds_iter_opts *o, struct kds_err *);
int	kds_archive_reader_next(struct kds_archive_reader *,
	    struct kds_record *, struct kds_err *);
const char *kds_archive_reader_stream(const struct kds_archive_reader *);
void	kds_archive_reader_close(struct kds_archive_reader *);

/* format.c: writing records out. */
struct kds_format *kds_format_new(const char *spec, struct kds_err *);
struct kds_format *kds_format_builtin(const char *name, struct kds_err *);
int	kds_format_write(FILE *, struct kds_format *, const char *stream,
	    const struct kds_record *);
/* The same into an outpipe; -1 with errno when the output failed. */
int	kds_format_out(struct kds_outpipe *, struct kds_format *,
	    const char *stream, const struct kds_record *);
void	kds_format_free(struct kds_format *);

/*
 * outpipe.c: output to a descriptor (not closed here) through two buffers
 * of bufsize bytes, the full one written by a second thread while the
 * caller fills the other; the thread starts only when a first buffer
 * fills.  A flush returns once everything given was written: the point
 * where output counts as delivered.  -1 with errno, sticky, on a failed
 * write, or EINTR when a signal handler cut a wait for the thread short.
 * kds_outpipe_free discards what was not flushed, stops the thread (a
 * writer still busy after EINTR is cancelled) and joins it.
 */
struct kds_outpipe *kds_outpipe_new(int fd, size_t bufsize);
int	kds_outpipe_write(struct kds_outpipe *, const void *, size_t);
int	kds_outpipe_flush(struct kds_outpipe *);
void	kds_outpipe_free(struct kds_outpipe *);

/* jsonl.c: one JSON object a line, as `aws kinesis put-records` takes them.
 * The record points into scratch, which the caller owns and reuses. */
struct kds_scratch {
	char	*buf;
	size_t	 cap;
};
int	kds_jsonl_parse(const char *line, size_t len, struct kds_put_record *,
	    struct kds_scratch *, struct kds_err *);

/* names.c, hashkey.c, parse.c, clock.c: small pieces tools need too. */
void	kds_shard_id(uint64_t number, char out[KDS_SHARD_ID_LEN + 1]);
int	kds_shard_id_parse(const char *s, uint64_t *number);
void	kds_seq_format(uint64_t shard, uint64_t counter, char out[KDS_SEQ_LEN]);
int	kds_seq_parse(const char *s, uint64_t *shard, uint64_t *counter);
int	kds_hashkey_parse(const char *s, unsigned __int128 *);
void	kds_hashkey_format(unsigned __int128, char out[KDS_HASHKEY_LEN]);
unsigned __int128 kds_hashkey_of(const char *key, size_t len);
int	kds_parse_duration(const char *s, int64_t *seconds);
int	kds_parse_size(const char *s, uint64_t *bytes);
int	kds_parse_time(const char *s, int64_t *ms);
int	kds_parse_uint(const char *s, uint64_t max, uint64_t *v);
int64_t	kds_now_ms(void);

/* err.c: s as a message may show it, on one line: control characters
 * escaped (\n, \x1b), cut with "..." past n - 1 bytes.  Returns out. */
const char *kds_printable(const char *s, char *out, size_t n);

#endif
