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

/*
 * A batch is written when it holds BATCH_BYTES, or SLOT_BYTES a shard it
 * goes to if that is more, up to BATCH_BYTES_MAX: each shard written costs
 * a lock, a tail update and an index append, which small parts over many
 * shards would pay too often.
 */
#define BATCH_BYTES	(1024 * 1024)
#define SLOT_BYTES	(256 * 1024)
#define BATCH_BYTES_MAX	(4 * 1024 * 1024)
#define BATCH_RECORDS	32768

struct slot {
	uint64_t		 shard;
	struct kds_shard_writer	*w;
	unsigned char		*buf;		/* frames, unsealed */
	size_t			 len, cap, nframes;
	uint64_t		 next;		/* counter of the first record */
	size_t			 unmarked;	/* written, not yet marked so */
};

struct route {
	unsigned __int128	start, end;
	size_t			slot;
};

/* A record of the batch.  A slot's frames are its pending records' in
 * input order; the write gives each its counter. */
struct pending {
	unsigned __int128	hash;
	size_t			slot;
	uint64_t		counter;	/* once written */
	int			written;
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
	size_t			 batch_bytes;	/* see BATCH_BYTES */
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
	p->batch_bytes = n * SLOT_BYTES;
	if (p->batch_bytes < BATCH_BYTES)
		p->batch_bytes = BATCH_BYTES;
	if (p->batch_bytes > BATCH_BYTES_MAX)
		p->batch_bytes = BATCH_BYTES_MAX;
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
	size_t si, flen, ri;
	long chars = 0;

	/* The key of the record before, checked then: a -k key's case. */
	if (r->keylen == p->lastkeylen && r->keylen > 0 && !r->spread &&
	    r->explicit_hash_key == NULL && r->keylen + r->datalen <=
	    KDS_MAX_RECORD && memcmp(r->key, p->lastkey, r->keylen) == 0) {
		h = p->lasthash;
		goto routed;
	}
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
		/* Counted round, not taken modulo: a division per record
		 * costs more than all else of routing it.  A reshard may
		 * have left fewer routes than the count. */
		ri = p->spread_next < p->nroutes ? p->spread_next : 0;
		p->spread_next = ri + 1 == p->nroutes ? 0 : ri + 1;
		h = p->routes[ri].start;
		si = p->routes[ri].slot;
		goto slotted;
	} else if (r->explicit_hash_key != NULL) {
		if (kds_hashkey_parse(r->explicit_hash_key, &h) == -1)
			return kds_fail(e, EINVAL, "explicit hash key '%.64s' is "
			    "not a decimal in [0, 2^128-1]",
			    r->explicit_hash_key), KDS_BAD_RECORD;
	} else {
		h = kds_hashkey_of(r->key, r->keylen);
		memcpy(p->lastkey, r->key, r->keylen);
		p->lastkeylen = r->keylen;
		p->lasthash = h;
	}
routed:
	if (route(p, h, &si) == -1)
		return kds_fail(e, 0, "no open shard for the hash key");
slotted:
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
	p->recs[p->nrecs].written = 0;
	p->nrecs++;
	p->bytes += flen;
	if (p->bytes >= p->batch_bytes || p->nrecs == BATCH_RECORDS)
		return kds_producer_flush(p, e);
	return 0;
}

/*
 * A shard of the batch was closed by a reshard: route every record not yet
 * written again, by its hash key, over the shards open now.  The slots are
 * rebuilt in input order, so that a child taking records from two parents
 * (a merge) holds them in the order they came, as their acks say.
 */
static int
reroute(struct kds_producer *p, struct kds_err *e)
{
	struct old { unsigned char *buf; size_t off; } *old;
	size_t nold = p->nslots;
	int rc = -1;

	if ((old = calloc(nold, sizeof(*old))) == NULL)
		return kds_fail_errno(e, "producer");
	for (size_t i = 0; i < nold; i++) {
		struct slot *s = &p->slots[i];

		if (s->nframes == 0)
			continue;
		old[i].buf = s->buf;
		s->buf = NULL;
		s->len = s->cap = s->nframes = 0;
	}
	if (build_routes(p, e) == -1)
		goto out;
	for (size_t k = 0; k < p->nrecs; k++) {
		struct pending *r = &p->recs[k];
		struct old *o = &old[r->slot];
		struct slot *s;
		uint32_t flen;
		size_t to;

		if (r->written)
			continue;
		flen = get_le32(o->buf + o->off + 8);
		if (route(p, r->hash, &to) == -1) {
			kds_fail(e, 0, "no open shard for the hash key");
			goto out;
		}
		s = &p->slots[to];
		if (slot_reserve(s, flen, e) == -1)
			goto out;
		memcpy(s->buf + s->len, o->buf + o->off, flen);
		s->len += flen;
		s->nframes++;
		r->slot = to;
		o->off += flen;
	}
	rc = 0;
out:
	for (size_t i = 0; i < nold; i++)
		free(old[i].buf);
	free(old);
	return rc;
}

/*
 * Give the records each slot's writes stored their counters, in one pass
 * over the batch: a slot's stored records are its first unwritten ones.
 */
static void
mark_written(struct kds_producer *p)
{
	for (size_t k = 0; k < p->nrecs; k++) {
		struct pending *r = &p->recs[k];
		struct slot *s = &p->slots[r->slot];

		if (r->written || s->unmarked == 0)
			continue;
		r->counter = s->next++;
		r->written = 1;
		s->unmarked--;
	}
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
			uint64_t first;
			size_t stored;

			rc = kds_shard_writer_append(s->w, s->buf, s->len,
			    s->nframes, &first, &stored, e);
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
				stored = 0;
			s->next = first;
			s->unmarked = stored;
			return rc;
		}
		/* Closed under us; its records go where they belong now. */
		mark_written(p);
		return reroute(p, e) == -1 ? -1 : 1;
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
		p->slots[i].len = 0;
		p->slots[i].nframes = 0;
	}
	/*
	 * After a failure, ack the records before the first one not stored:
	 * the ack of a record says every record before it is stored too.
	 * Records of other shards after that one may be stored unacked, as
	 * when a PutRecords answer is lost; never the other way round.
	 */
	mark_written(p);
	for (size_t k = 0; k < p->nrecs && p->ack != NULL; k++) {
		const struct pending *r = &p->recs[k];
		uint64_t shard = p->slots[r->slot].shard;
		struct kds_ack a;

		if (!r->written)
			break;
		kds_shard_id(shard, a.shard_id);
		kds_seq_format(shard, r->counter, a.sequence);
		p->ack(p->ack_arg, &a);
	}
	for (i = 0; i < p->nslots; i++) {
		p->slots[i].len = 0;
		p->slots[i].nframes = 0;
		p->slots[i].unmarked = 0;
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
