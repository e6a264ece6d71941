/*
 * reader.h: the reader's insides, shared by reader.c (reading and merging)
 * and follow.c (waiting for more with inotify), and by nothing else.
 */
#ifndef KDS_READER_H
#define KDS_READER_H

#include "internal.h"

/* Where a shard reader stands. */
enum shard_state {
	SR_READY,		/* r->f holds its next record (heap or last) */
	SR_IDLE,		/* at the end of its data for now */
	SR_WAIT,		/* a child waiting for its parents to be read */
	SR_DONE			/* closed, and read to its end */
};

struct shard_reader {
	struct kds_stream	*st;
	uint64_t		 shard;
	int			 dirfd;
	uint64_t		*segs;		/* first counters, ascending */
	size_t			 nsegs, cur;
	int			 segfd;
	struct kds_seg_header	 hdr;
	char			 segname[KDS_SHARD_ID_LEN + 1 + 64];
	uint64_t		 off;		/* next frame */
	uint64_t		 expect;	/* its counter */
	int64_t			 prev_arrival;
	int64_t			 floor_ms;	/* retention: skip older */
	unsigned char		*buf;
	size_t			 cap, len, chunk;
	uint64_t		 buf_off;	/* file offset of buf[0] */
	int			 eof;		/* buf reaches the file's end */
	struct kds_frame	 f;		/* the frame at off, once read */
	/* A compressed segment (segfd is SEQ.zseg): buf holds the block
	 * whose first frame lies at buf_off, offsets are SEQ.seg's. */
	int			 compressed;
	struct kds_zseg_header	 zh;
	uint64_t		 zsize;		/* of SEQ.zseg */
	uint64_t		 blk_off;	/* of buf's block, 0: none */
	uint64_t		 blk_next;	/* of the block after it */
	struct kds_zbuf		*z;		/* the reader's decompressor */
	enum shard_state	 state;
	int			 wd;		/* inotify watch, -1: none */
	int			 dirty;		/* its directory changed */
};

struct kds_reader {
	struct kds_stream	 *st;
	struct shard_reader	**shards;	/* ascending shard number */
	size_t			  n, cap;
	size_t			 *heap;		/* indices into shards */
	size_t			  nheap;
	ssize_t			  last;		/* to re-read before the next */
	size_t			  chunk;
	unsigned		  flags;	/* KDS_READ_* */
	int			  ifd;		/* inotify, -1: not following */
	int			  meta_wd;
	int			  polling;	/* following without inotify:
						   the errno that took it */
	struct kds_zbuf		  z;		/* shared by its shards */
};

/* reader.c */
int	kds_reader_settle(struct kds_reader *, struct kds_err *);
int	kds_reader_poke(struct kds_reader *, struct shard_reader *,
	    struct kds_err *);
int	kds_reader_adopt_children(struct kds_reader *, struct kds_err *);

/* follow.c */
int	kds_follow_start(struct kds_reader *, struct kds_err *);
int	kds_follow_watch(struct kds_reader *, struct shard_reader *,
	    struct kds_err *);
void	kds_follow_stop(struct kds_reader *);

#endif
