/*
 * producer.c: records in.  Each record is checked, hashed to its open shard
 * and framed into that shard's batch; a batch is written when it is full or
 * the caller flushes (input went quiet, or ended).  Acks go out in input
 * order once every shard of the batch is written.  A shard closed by a
 * reshard meanwhile hands its records to the shards now open for their
 * hash keys, so a running producer follows a reshard.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BATCH_BYTES	(1024 * 1024)
#define BATCH_RECORDS	16384

struct slot {
	uint64_t		 shard;
	struct kds_shard_writer	*w;
	unsigned char		*buf;		/* frames, unsealed */
	size_t			 len, cap, nframes;
	uint64_t		 first_counter;	/* after the write */
	uint64_t		 acked;		/* acks given out of this batch */
	size_t			 stored;	/* of a failed write, in the shard */
};

struct route {
	unsigned __int128	start, end;
	size_t			slot;
};

struct pending {
	unsigned __int128	hash;
	size_t			slot;
};

struct kds_producer {
	struct kds_stream	*st;
	enum kds_sync		 sync;
	kds_ack_fn		*ack;
	void			*ack_arg;
	struct slot		*slots;
	size_t			 nslots;
	struct route		*routes;	/* open shards, by start hash */
	size_t			 nroutes;
	struct pending		*recs;		/* this batch, input order */
	size_t			 nrecs;
	size_t			 bytes;
	char			 lastkey[KEY_MAX_BYTES];
	size_t			 lastkeylen;
	unsigned __int128	 lasthash;
	size_t			 spread_next;	/* round-robin position */
};

static int
slot_for(struct kds_producer *p, uint64_t shard, size_t *out,
    struct kds_err *e)
{
	struct slot *ns;

	for (size_t i = 0; i < p->nslots; i++) {
		if (p->slots[i].shard == shard) {
			*out = i;
			return 0;
		}
	}
	if ((ns = reallocarray(p->slots, p->nslots + 1, sizeof(*ns))) == NULL)
		return kds_fail_errno(e, "producer");
	p->slots = ns;
	memset(&ns[p->nslots], 0, sizeof(*ns));
	ns[p->nslots].shard = shard;
	/* The writer (four descriptors) is opened at the shard's first
	 * batch: a stream of 10,000 shards must not need 40,000 at once. */
	*out = p->nslots++;
	return 0;
}

static int
cmp_route(const void *a, const void *b)
{
	const struct route *x = a, *y = b;

	return (x->start > y->start) - (x->start < y->start);
}

static int
build_routes(struct kds_producer *p, struct kds_err *e)
{
	const struct kds_meta *m = &p->st->meta;
	struct route *r;
	size_t n = 0;

	if ((r = calloc(m->nshards, sizeof(*r))) == NULL)
		return kds_fail_errno(e, "producer");
	for (size_t i = 0; i < m->nshards; i++) {
		if (!m->shards[i].open)
			continue;
		r[n].start = m->shards[i].start_hash;
		r[n].end = m->shards[i].end_hash;
		if (slot_for(p, m->shards[i].number, &r[n].slot, e) == -1) {
			free(r);
			return -1;
		}
		n++;
	}
	qsort(r, n, sizeof(*r), cmp_route);
	free(p->routes);
	p->routes = r;
	p->nroutes = n;
	return 0;
}

static int
route(const struct kds_producer *p, unsigned __int128 h, size_t *slot)
{
	size_t lo = 0, hi = p->nroutes;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->routes[mid].end < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == p->nroutes || p->routes[lo].start > h)
		return -1;
	*slot = p->routes[lo].slot;
	return 0;
}

struct kds_producer *
kds_producer_new(struct kds_stream *st, enum kds_sync sync, kds_ack_fn *ack,
    void *arg, struct kds_err *e)
{
	struct kds_producer *p;

	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->recs = calloc(BATCH_RECORDS, sizeof(*p->recs))) == NULL) {
		free(p);
		kds_fail_errno(e, "producer");
		return NULL;
	}
	p->st = st;
	p->sync = sync;
	p->ack = ack;
	p->ack_arg = arg;
	if (build_routes(p, e) == -1) {
		kds_producer_close(p, NULL);
		return NULL;
	}
	return p;
}

static int
slot_reserve(struct slot *s, size_t more, struct kds_err *e)
{
	if (s->len + more > s->cap) {
		size_t nc = s->cap ? s->cap : 64 * 1024;
		unsigned char *nb;

		while (nc < s->len + more)
			nc *= 2;
		if ((nb = realloc(s->buf, nc)) == NULL)
			return kds_fail_errno(e, "producer");
		s->buf = nb;
		s->cap = nc;
	}
	return 0;
}

int
kds_producer_add(struct kds_producer *p, const struct kds_put_record *r,
    struct kds_err *e)
{
	unsigned __int128 h;
	struct slot *s;
	size_t si, flen;
	long chars = 0;

	if (r->keylen == 0)
		return kds_fail(e, EINVAL, "empty partition key"), KDS_BAD_RECORD;
	if (r->keylen > KEY_MAX_BYTES ||
	    (chars = kds_utf8_chars(r->key, r->keylen)) > KDS_MAX_KEY_CHARS)
		return kds_fail(e, EINVAL, "partition key longer than %d "
		    "characters", KDS_MAX_KEY_CHARS), KDS_BAD_RECORD;
	if (chars < 0)
		return kds_fail(e, EINVAL, "partition key is not valid UTF-8"),
		    KDS_BAD_RECORD;
	if (r->keylen + r->datalen > KDS_MAX_RECORD)
		return kds_fail(e, EFBIG, "record larger than %d bytes "
		    "(partition key and data)", KDS_MAX_RECORD), KDS_BAD_RECORD;
	if (r->spread && r->explicit_hash_key == NULL) {
		/* Round-robin: exactly even, and no MD5 to compute. */
		h = p->routes[p->spread_next++ % p->nroutes].start;
	} else if (r->explicit_hash_key != NULL) {
		if (kds_hashkey_parse(r->explicit_hash_key, &h) == -1)
			return kds_fail(e, EINVAL, "explicit hash key '%.64s' is "
			    "not a decimal in [0, 2^128-1]",
			    r->explicit_hash_key), KDS_BAD_RECORD;
	} else if (r->keylen == p->lastkeylen &&
	    memcmp(r->key, p->lastkey, r->keylen) == 0) {
		h = p->lasthash;
	} else {
		h = kds_hashkey_of(r->key, r->keylen);
		memcpy(p->lastkey, r->key, r->keylen);
		p->lastkeylen = r->keylen;
		p->lasthash = h;
	}
	if (route(p, h, &si) == -1)
		return kds_fail(e, 0, "no open shard for the hash key");
	s = &p->slots[si];
	flen = FRAME_HEADER_LEN + r->keylen + r->datalen;
	if (slot_reserve(s, flen, e) == -1)
		return -1;
	kds_frame_encode_head(s->buf + s->len, r->keylen, r->datalen);
	memcpy(s->buf + s->len + FRAME_HEADER_LEN, r->key, r->keylen);
	if (r->datalen > 0)
		memcpy(s->buf + s->len + FRAME_HEADER_LEN + r->keylen, r->data,
		    r->datalen);
	s->len += flen;
	s->nframes++;
	p->recs[p->nrecs].hash = h;
	p->recs[p->nrecs].slot = si;
	p->nrecs++;
	p->bytes += flen;
	if (p->bytes >= BATCH_BYTES || p->nrecs == BATCH_RECORDS)
		return kds_producer_flush(p, e);
	return 0;
}

/*
 * The shard of slot `from` was closed by a reshard: move its frames, in
 * order, to the slots that now own their hash keys.
 */
static int
reroute(struct kds_producer *p, size_t from, struct kds_err *e)
{
	unsigned char *buf = p->slots[from].buf;
	size_t len = p->slots[from].len, off = 0;

	if (build_routes(p, e) == -1)
		return -1;
	p->slots[from].buf = NULL;
	p->slots[from].len = p->slots[from].cap = p->slots[from].nframes = 0;
	for (size_t i = 0; i < p->nrecs && off < len; i++) {
		struct slot *s;
		uint32_t flen;
		size_t to;

		if (p->recs[i].slot != from)
			continue;
		flen = get_le32(buf + off + 8);
		if (route(p, p->recs[i].hash, &to) == -1) {
			free(buf);
			return kds_fail(e, 0, "no open shard for the hash key");
		}
		s = &p->slots[to];
		if (slot_reserve(s, flen, e) == -1) {
			free(buf);
			return -1;
		}
		memcpy(s->buf + s->len, buf + off, flen);
		s->len += flen;
		s->nframes++;
		p->recs[i].slot = to;
		off += flen;
	}
	free(buf);
	return 0;
}

static int
write_slot(struct kds_producer *p, size_t i, struct kds_err *e)
{
	for (;;) {
		struct slot *s = &p->slots[i];
		int rc;

		if (s->w == NULL && (s->w = kds_shard_writer_new(p->st,
		    s->shard, p->sync, e)) == NULL)
			return -1;
		rc = kds_shard_writer_begin(s->w, e);

		if (rc == -1)
			return -1;
		if (rc == 0) {
			rc = kds_shard_writer_append(s->w, s->buf, s->len,
			    s->nframes, &s->first_counter, &s->stored, e);
			kds_shard_writer_end(s->w);
			/*
			 * Group commit: fsync after the lock is released, so
			 * that producers of one shard share their flushes
			 * instead of queueing behind each other's.  A failed
			 * fsync fails the batch, unacknowledged; its records
			 * may remain, never retried as durable.
			 */
			if (rc == 0 && p->sync == KDS_SYNC_ALWAYS &&
			    (rc = kds_shard_writer_sync(s->w, e)) == -1)
				s->stored = 0;
			return rc;
		}
		/* Closed under us; its records go where they belong now. */
		return reroute(p, i, e) == -1 ? -1 : 1;
	}
}

int
kds_producer_flush(struct kds_producer *p, struct kds_err *e)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < p->nslots; i++) {
		int r;

		if (p->slots[i].nframes == 0)
			continue;
		if ((r = write_slot(p, i, e)) == -1) {
			rc = -1;
			break;
		}
		if (r == 1) {
			i = (size_t)-1;		/* rerouted: start over */
			continue;
		}
		p->slots[i].acked = 0;
		p->slots[i].len = 0;
		p->slots[i].nframes = 0;	/* written: see below */
	}
	/*
	 * After a failure, ack the records before the first one not stored:
	 * the ack of a record says every record before it is stored too.
	 * Records of other shards after that one may be stored unacked, as
	 * when a PutRecords answer is lost; never the other way round.
	 */
	for (size_t k = 0; k < p->nrecs && p->ack != NULL; k++) {
		struct slot *s = &p->slots[p->recs[k].slot];
		struct kds_ack a;

		if (rc == -1 && s->nframes != 0 && s->acked >= s->stored)
			break;
		kds_shard_id(s->shard, a.shard_id);
		kds_seq_format(s->shard, s->first_counter + s->acked++,
		    a.sequence);
		p->ack(p->ack_arg, &a);
	}
	for (i = 0; i < p->nslots; i++) {
		p->slots[i].len = 0;
		p->slots[i].nframes = 0;
		p->slots[i].acked = 0;
		p->slots[i].stored = 0;
	}
	p->nrecs = 0;
	p->bytes = 0;
	return rc;
}

int
kds_producer_pending(const struct kds_producer *p)
{
	return p->nrecs > 0;
}

/* Flush, fsync what this producer wrote (unless KDS_SYNC_NEVER), free;
 * with e NULL, free only (kds.h). */
int
kds_producer_close(struct kds_producer *p, struct kds_err *e)
{
	int rc = 0;

	if (p == NULL)
		return 0;
	if (e != NULL && p->nrecs > 0 && kds_producer_flush(p, e) == -1)
		rc = -1;
	for (size_t i = 0; i < p->nslots; i++) {
		if (rc == 0 && e != NULL && p->slots[i].w != NULL &&
		    kds_shard_writer_sync(p->slots[i].w, e) == -1)
			rc = -1;
		kds_shard_writer_free(p->slots[i].w);
		free(p->slots[i].buf);
	}
	free(p->slots);
	free(p->routes);
	free(p->recs);
	free(p);
	return rc;
}
