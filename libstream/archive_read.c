/*
 * archive_read.c: records out of archives that kds-expire wrote
 * (kds-stream(5), Archives), as a reader gives them out of a stream:
 * iterator, shards, merged over shards by (arrival time, shard number),
 * each shard's order kept.  Every archive holds one shard; the archives of
 * a shard are read in sequence order whatever order they are named in, a
 * record that two archives hold is returned once, and frames are checked
 * as a reader checks them.  Memory: one decompressor and one buffer per
 * shard read.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define BUF_MIN		(256 * 1024)
#define STREAM_MAX	256

struct afile {
	const char	*path;
	uint64_t	 shard;
	uint64_t	 first;		/* first counter of its first member */
	char		 stream[STREAM_MAX];
};

/* One shard: its archives in order, the open one, the member in it. */
struct ashard {
	uint64_t		 shard;
	struct afile		**files;
	size_t			 nfiles, cur;
	struct archive		*a;		/* files[cur], open */
	int			 in_member;
	char			 member[512];
	uint64_t		 salt;
	uint64_t		 expect;	/* counter of the next frame */
	int64_t			 prev_arrival;
	uint64_t		 moff;		/* member offset of buf[pos] */
	uint64_t		 done;		/* last counter returned, 0 none */
	unsigned char		*buf;
	size_t			 cap, pos, len;
	struct kds_frame	 f;
};

struct kds_archive_reader {
	struct afile		 *files;
	struct afile		**order;	/* wanted files, by shard, first */
	size_t			  nfiles;
	struct ashard		 *shards;
	size_t			  nshards;
	size_t			 *heap;
	size_t			  nheap;
	ssize_t			  last;
	struct kds_iter_opts	  o;
	uint64_t		  seq_shard, seq_counter;
	const char		 *stream;	/* of the record last returned */
};

/* "STREAM/shardId-N/SEQ.seg": its parts, or -1. */
static int
member_parse(const char *path, char *stream, size_t n, uint64_t *shard,
    uint64_t *first)
{
	const char *s1 = strchr(path, '/'), *s2;
	char id[KDS_SHARD_ID_LEN + 1], seq[KDS_SEQ_LEN];
	uint64_t sh;
	size_t len;

	if (s1 == NULL || s1 == path || (size_t)(s1 - path) >= n ||
	    (s2 = strchr(s1 + 1, '/')) == NULL ||
	    s2 - s1 - 1 != KDS_SHARD_ID_LEN)
		return -1;
	memcpy(stream, path, (size_t)(s1 - path));
	stream[s1 - path] = '\0';
	memcpy(id, s1 + 1, KDS_SHARD_ID_LEN);
	id[KDS_SHARD_ID_LEN] = '\0';
	len = strlen(s2 + 1);
	if (strncmp(id, "shardId-", 8) != 0 || kds_shard_id_parse(id, shard) ||
	    len < 5 || len - 4 >= sizeof(seq) ||
	    strcmp(s2 + 1 + len - 4, ".seg") != 0)
		return -1;
	memcpy(seq, s2 + 1, len - 4);
	seq[len - 4] = '\0';
	if (kds_seq_parse(seq, &sh, first) == -1 || sh != *shard)
		return -1;
	return 0;
}

static int afail(struct kds_err *, struct archive *, const char *,
    const char *);

static struct archive *
aopen(const char *path, struct kds_err *e)
{
	struct archive *a = archive_read_new();

	if (a == NULL) {
		kds_fail_errno(e, "%s", path);
		return NULL;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, path, 64 * 1024) != ARCHIVE_OK) {
		afail(e, a, path, NULL);
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/*
 * libarchive's error as one message: a system error as "PATH[: CALL]:
 * strerror", its own (a format it does not know, a damaged header) in
 * its words.  A format error comes with errno EILSEQ (libarchive's
 * ARCHIVE_ERRNO_FILE_FORMAT, which its public header leaves commented
 * out), whose strerror, "Invalid or incomplete multibyte or wide
 * character", would say nothing true.
 */
static int
afail(struct kds_err *e, struct archive *a, const char *path,
    const char *call)
{
	int n = archive_errno(a);

	if (n > 0 && n != EILSEQ) {
		errno = n;
		return call ? kds_fail_errno(e, "%s: %s", path, call) :
		    kds_fail_errno(e, "%s", path);
	}
	return kds_fail(e, 0, "%s: %s", path, archive_error_string(a));
}

/* Learn an archive's stream, shard and first counter from its first member. */
static int
scan(struct afile *f, struct kds_err *e)
{
	struct archive_entry *ent;
	struct archive *a;
	int rc;

	if ((a = aopen(f->path, e)) == NULL)
		return -1;
	rc = archive_read_next_header(a, &ent);
	if (rc == ARCHIVE_EOF)
		rc = kds_fail(e, 0, "%s: empty archive", f->path);
	else if (rc != ARCHIVE_OK)
		rc = afail(e, a, f->path, "read");
	else if (member_parse(archive_entry_pathname(ent), f->stream,
	    sizeof(f->stream), &f->shard, &f->first) == -1)
		rc = kds_fail(e, 0, "%s: %s: not a segment of a kds stream",
		    f->path, archive_entry_pathname(ent));
	else
		rc = 0;
	archive_read_free(a);
	return rc;
}

static int
cmp_file(const void *x, const void *y)
{
	const struct afile *const *a = x, *const *b = y;

	if ((*a)->shard != (*b)->shard)
		return (*a)->shard < (*b)->shard ? -1 : 1;
	return ((*a)->first > (*b)->first) - ((*a)->first < (*b)->first);
}

static int
corrupt(struct ashard *s, uint64_t off, const char *why, struct kds_err *e)
{
	return kds_fail(e, 0, "%s: %s: offset %llu: %s",
	    s->files[s->cur]->path, s->member, (unsigned long long)off, why);
}

/* Have at least want bytes at buf[pos], or all that is left of the member.
 * 0, -1. */
static int
need(struct ashard *s, size_t want, struct kds_err *e)
{
	if (s->len - s->pos >= want)
		return 0;
	if (s->pos > 0) {
		memmove(s->buf, s->buf + s->pos, s->len - s->pos);
		s->len -= s->pos;
		s->pos = 0;
	}
	if (want > s->cap) {
		size_t nc = s->cap;
		unsigned char *nb;

		while (nc < want)
			nc *= 2;
		if ((nb = realloc(s->buf, nc)) == NULL)
			return kds_fail_errno(e, "%s", s->files[s->cur]->path);
		s->buf = nb;
		s->cap = nc;
	}
	while (s->len < want) {
		la_ssize_t n = archive_read_data(s->a, s->buf + s->len,
		    s->cap - s->len);

		if (n < 0)
			return afail(e, s->a, s->files[s->cur]->path, "read");
		if (n == 0)
			break;
		s->len += (size_t)n;
	}
	return 0;
}

/* Open the next member of this shard, in this archive or the next one.
 * 1 opened, 0 no more, -1. */
static int
next_member(struct ashard *s, struct kds_err *e)
{
	struct archive_entry *ent;
	struct kds_seg_header h;
	const char *why;
	char stream[STREAM_MAX];
	uint64_t shard, first;
	int rc;

	for (;;) {
		if (s->a == NULL) {
			if (s->cur >= s->nfiles)
				return 0;
			if ((s->a = aopen(s->files[s->cur]->path, e)) == NULL)
				return -1;
		}
		rc = archive_read_next_header(s->a, &ent);
		if (rc == ARCHIVE_EOF) {
			archive_read_free(s->a);
			s->a = NULL;
			s->cur++;
			continue;
		}
		if (rc != ARCHIVE_OK)
			return afail(e, s->a, s->files[s->cur]->path, "read");
		snprintf(s->member, sizeof(s->member), "%s",
		    archive_entry_pathname(ent));
		if (member_parse(s->member, stream, sizeof(stream), &shard,
		    &first) == -1)
			return kds_fail(e, 0, "%s: %s: not a segment of a kds "
			    "stream", s->files[s->cur]->path, s->member);
		if (shard != s->shard)
			return kds_fail(e, 0, "%s: %s: another shard than the "
			    "archive's first member", s->files[s->cur]->path,
			    s->member);
		s->pos = s->len = 0;
		s->moff = 0;
		if (need(s, SEG_HEADER_LEN, e) == -1)
			return -1;
		if ((why = kds_seg_header_check(s->buf, s->len, shard, first,
		    &h)) != NULL)
			return corrupt(s, 0, why, e);
		s->salt = h.salt;
		s->expect = first;
		s->prev_arrival = INT64_MIN;
		s->pos = SEG_HEADER_LEN;
		s->moff = SEG_HEADER_LEN;
		s->in_member = 1;
		return 1;
	}
}

/* Does the iterator want this record? */
static int
wanted(const struct kds_archive_reader *rd, const struct ashard *s)
{
	const struct kds_frame *f = &s->f;

	if (s->done != 0 && f->counter <= s->done)
		return 0;		/* two archives hold it: once is enough */
	switch (rd->o.type) {
	case KDS_TRIM_HORIZON:
		return 1;
	case KDS_LATEST:
		return 0;
	case KDS_AT_TIMESTAMP:
		return f->arrival_ms >= rd->o.timestamp_ms;
	case KDS_AT_SEQUENCE_NUMBER:
		return f->counter >= rd->seq_counter;
	case KDS_AFTER_SEQUENCE_NUMBER:
		return f->counter > rd->seq_counter;
	}
	return 1;
}

/* The next wanted frame of shard s into s->f.  1, 0 at the end, -1. */
static int
shard_next(struct kds_archive_reader *rd, struct ashard *s, struct kds_err *e)
{
	for (;;) {
		const char *why = "bad frame length";
		enum frame_status fs;
		size_t want;
		int rc;

		if (!s->in_member) {
			if ((rc = next_member(s, e)) != 1)
				return rc;
		}
		if (need(s, 12, e) == -1)
			return -1;
		if (s->len == s->pos) {		/* the member's end */
			s->in_member = 0;
			continue;
		}
		want = s->len - s->pos >= 12 ? get_le32(s->buf + s->pos + 8) : 12;
		if (want > FRAME_MAX_LEN)
			want = FRAME_MAX_LEN;
		if (need(s, want, e) == -1)
			return -1;
		fs = kds_frame_decode(s->buf + s->pos, s->len - s->pos, s->salt,
		    &s->f, &why);
		if (fs == FRAME_INCOMPLETE)
			return corrupt(s, s->moff, "truncated frame", e);
		if (fs == FRAME_BAD)
			return corrupt(s, s->moff, why, e);
		if (s->f.counter != s->expect)
			return corrupt(s, s->moff, "sequence number out of order",
			    e);
		if (s->f.arrival_ms < s->prev_arrival)
			return corrupt(s, s->moff, "arrival time goes back", e);
		s->pos += s->f.len;
		s->moff += s->f.len;
		s->expect = s->f.counter + 1;
		s->prev_arrival = s->f.arrival_ms;
		if (wanted(rd, s))
			return 1;
	}
}

static int
before(const struct kds_archive_reader *rd, size_t a, size_t b)
{
	const struct ashard *x = &rd->shards[a], *y = &rd->shards[b];

	if (x->f.arrival_ms != y->f.arrival_ms)
		return x->f.arrival_ms < y->f.arrival_ms;
	return x->shard < y->shard;
}

static void
heap_push(struct kds_archive_reader *rd, size_t s)
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
heap_pop(struct kds_archive_reader *rd)
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

/* Is shard wanted by o (and the sequence number's shard)? */
static int
shard_wanted(const struct kds_archive_reader *rd, uint64_t shard)
{
	int by_seq = rd->o.type == KDS_AT_SEQUENCE_NUMBER ||
	    rd->o.type == KDS_AFTER_SEQUENCE_NUMBER;

	if (by_seq)
		return shard == rd->seq_shard;
	if (rd->o.shards == NULL)
		return 1;
	for (size_t i = 0; i < rd->o.nshards; i++)
		if (rd->o.shards[i] == shard)
			return 1;
	return 0;
}

/* Every shard asked for, and the sequence number's, is in the archives. */
static int
check_shards(const struct kds_archive_reader *rd, struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1];
	int by_seq = rd->o.type == KDS_AT_SEQUENCE_NUMBER ||
	    rd->o.type == KDS_AFTER_SEQUENCE_NUMBER;
	size_t n = by_seq ? 1 : rd->o.shards ? rd->o.nshards : 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t want = by_seq ? rd->seq_shard : rd->o.shards[i];
		size_t j;

		for (j = 0; j < rd->nfiles && rd->files[j].shard != want; j++)
			;
		if (j < rd->nfiles)
			continue;
		kds_shard_id(want, id);
		if (by_seq)
			return kds_fail(e, ENOENT, "sequence number %s: no "
			    "shard %s in the archives", rd->o.sequence, id);
		return kds_fail(e, ENOENT, "%s: no such shard in the archives",
		    id);
	}
	return 0;
}

struct kds_archive_reader *
kds_archive_reader_open(const char *const *paths, size_t n,
    const struct kds_iter_opts *o, struct kds_err *e)
{
	struct kds_archive_reader *rd;
	size_t k = 0;

	if ((rd = calloc(1, sizeof(*rd))) == NULL) {
		kds_fail_errno(e, "archive reader");
		return NULL;
	}
	rd->o = *o;
	rd->last = -1;
	if ((rd->files = calloc(n ? n : 1, sizeof(*rd->files))) == NULL ||
	    (rd->order = calloc(n ? n : 1, sizeof(*rd->order))) == NULL ||
	    (rd->shards = calloc(n ? n : 1, sizeof(*rd->shards))) == NULL ||
	    (rd->heap = calloc(n ? n : 1, sizeof(*rd->heap))) == NULL) {
		kds_fail_errno(e, "archive reader");
		goto fail;
	}
	rd->nfiles = n;
	if ((o->type == KDS_AT_SEQUENCE_NUMBER ||
	    o->type == KDS_AFTER_SEQUENCE_NUMBER) && (o->sequence == NULL ||
	    kds_seq_parse(o->sequence, &rd->seq_shard, &rd->seq_counter))) {
		kds_fail(e, EINVAL, "bad sequence number '%.64s'",
		    o->sequence ? o->sequence : "");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		rd->files[i].path = paths[i];
		if (scan(&rd->files[i], e) == -1)
			goto fail;
	}
	if (check_shards(rd, e) == -1)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (shard_wanted(rd, rd->files[i].shard))
			rd->order[k++] = &rd->files[i];
	qsort(rd->order, k, sizeof(*rd->order), cmp_file);
	/* One struct ashard per shard, over its run of order[]. */
	for (size_t i = 0; i < k; ) {
		struct ashard *s = &rd->shards[rd->nshards++];
		size_t j = i;

		while (j < k && rd->order[j]->shard == rd->order[i]->shard)
			j++;
		s->shard = rd->order[i]->shard;
		s->files = rd->order + i;
		s->nfiles = j - i;
		s->cap = BUF_MIN;
		if ((s->buf = malloc(s->cap)) == NULL) {
			kds_fail_errno(e, "archive reader");
			goto fail;
		}
		i = j;
	}
	for (size_t i = 0; i < rd->nshards; i++) {
		int rc = shard_next(rd, &rd->shards[i], e);

		if (rc == -1)
			goto fail;
		if (rc == 1)
			heap_push(rd, i);
	}
	return rd;
fail:
	kds_archive_reader_close(rd);
	return NULL;
}

int
kds_archive_reader_next(struct kds_archive_reader *rd, struct kds_record *rec,
    struct kds_err *e)
{
	struct ashard *s;
	size_t i;

	if (rd->last >= 0) {
		int rc;

		i = (size_t)rd->last;
		rd->last = -1;
		if ((rc = shard_next(rd, &rd->shards[i], e)) == -1)
			return -1;
		if (rc == 1)
			heap_push(rd, i);
	}
	if (rd->nheap == 0)
		return 0;
	i = heap_pop(rd);
	s = &rd->shards[i];
	s->done = s->f.counter;
	rec->key = (const char *)s->f.key;
	rec->keylen = s->f.keylen;
	rec->data = (const char *)s->f.data;
	rec->datalen = s->f.datalen;
	rec->shard = s->shard;
	rec->counter = s->f.counter;
	rec->arrival_ms = s->f.arrival_ms;
	rd->stream = s->files[s->cur < s->nfiles ? s->cur : s->nfiles - 1]->stream;
	rd->last = (ssize_t)i;
	return 1;
}

const char *
kds_archive_reader_stream(const struct kds_archive_reader *rd)
{
	return rd->stream ? rd->stream : "";
}

void
kds_archive_reader_close(struct kds_archive_reader *rd)
{
	if (rd == NULL)
		return;
	for (size_t i = 0; i < rd->nshards; i++) {
		if (rd->shards[i].a != NULL)
			archive_read_free(rd->shards[i].a);
		free(rd->shards[i].buf);
	}
	free(rd->shards);
	free(rd->heap);
	free(rd->order);
	free(rd->files);
	free(rd);
}
