/*
 * fuzz_meta.c: arbitrary text as STREAM/meta, read by kds_stream_open as
 * every tool reads it.  A meta that opens is then used as the tools use
 * it: each shard looked up and described (kds_stream_shard_text), a
 * reader and a description begun (their shard directories are missing, so
 * they stop there), and written back with kds_meta_write.
 *
 * Input:
 *	byte 0		bit 0: the meta as given; else the harness appends
 *			the "checksum HEX" line over the rest, which random
 *			text would never get right
 *	the rest	the meta
 *
 * Invariants beside the sanitizers: an accepted meta has shards in
 * ascending order with sane ranges and settings, and what kds_meta_write
 * makes of it reads back the same.
 */
#include "fuzz.h"

#include <inttypes.h>

static char path[PATH_MAX + 8];
static int meta_dirfd = -1;

static void
init(void)
{
	setenv("KDS_NOW", "2026-01-01T00:00:00Z", 1);
	snprintf(path, sizeof(path), "%s/s", fuzz_tmpdir());
	if (mkdir(path, 0777) == -1 ||
	    (meta_dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		perror(path);
		abort();
	}
}

static void
same_meta(const struct kds_meta *a, const struct kds_meta *b)
{
	FUZZ_ASSERT(a->created_ms == b->created_ms);
	FUZZ_ASSERT(a->retention_s == b->retention_s);
	FUZZ_ASSERT(a->segment_bytes == b->segment_bytes);
	FUZZ_ASSERT(a->segment_age_s == b->segment_age_s);
	FUZZ_ASSERT(a->next_shard == b->next_shard);
	FUZZ_ASSERT(a->nshards == b->nshards);
	for (size_t i = 0; i < a->nshards; i++) {
		const struct kds_shard *x = &a->shards[i], *y = &b->shards[i];

		FUZZ_ASSERT(x->number == y->number && x->open == y->open &&
		    x->parent == y->parent && x->adjacent == y->adjacent &&
		    x->start_hash == y->start_hash &&
		    x->end_hash == y->end_hash &&
		    x->end_counter == y->end_counter);
	}
}

static void
use(struct kds_stream *st)
{
	const struct kds_iter_opts th = { .type = KDS_TRIM_HORIZON };
	const struct kds_meta *m = &st->meta;
	struct kds_description d;
	struct kds_shard_text t;
	struct kds_reader *rd;
	struct kds_meta again;
	struct kds_err e;

	FUZZ_ASSERT(m->nshards > 0 && m->retention_s > 0 &&
	    m->segment_bytes > 0 && m->segment_age_s > 0);
	FUZZ_ASSERT(m->next_shard > m->shards[m->nshards - 1].number);
	for (size_t i = 0; i < m->nshards; i++) {
		const struct kds_shard *sh = &m->shards[i];
		char id[KDS_SHARD_ID_LEN + 1];
		uint64_t number;

		FUZZ_ASSERT(i == 0 || sh->number > sh[-1].number);
		FUZZ_ASSERT(sh->start_hash <= sh->end_hash);
		FUZZ_ASSERT(kds_stream_shard(st, sh->number) == sh);
		FUZZ_ASSERT(kds_stream_shard_text(st, sh->number, &t, &e) == 0);
		kds_shard_id(sh->number, id);
		FUZZ_ASSERT(kds_stream_shard_lookup(st, id, &number, &e) == 0 &&
		    number == sh->number);
	}
	if ((rd = kds_reader_open(st, &th, &e)) != NULL)
		kds_reader_close(rd);
	if (kds_stream_describe(st, &d, &e) == 0)
		kds_description_free(&d);
	if (kds_meta_write(meta_dirfd, m, &e) == -1) {
		fprintf(stderr, "fuzz_meta: %s\n", e.msg);
		abort();
	}
	FUZZ_ASSERT(kds_meta_read(meta_dirfd, &again, &e) == 0);
	same_meta(m, &again);
	kds_meta_free(&again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kds_stream *st;
	struct kds_err e;
	char *buf;
	size_t n;

	if (meta_dirfd == -1)
		init();
	if (size < 1)
		return 0;
	n = size - 1;
	if ((buf = malloc(n + 32)) == NULL)
		abort();
	memcpy(buf, data + 1, n);
	if (!(data[0] & 1))
		n += (size_t)sprintf(buf + n, "checksum %016" PRIx64 "\n",
		    kds_checksum(buf, n, 0));
	fuzz_write(meta_dirfd, "meta", buf, n);
	free(buf);
	if ((st = kds_stream_open(path, &e)) != NULL) {
		use(st);
		kds_stream_close(st);
	}
	return 0;
}
