/*
 * fuzz_segment.c: arbitrary bytes as the files of shard 0 of a one-shard
 * stream, read back through the library's own paths: a reader
 * (kds_reader_open/next, records written out by kds_format_write), and
 * as the mode asks, kds_stream_verify, the writer's crash recovery
 * (kds_shard_recover), which truncates and re-indexes, and
 * kds_stream_describe, which reads the tail and indexes for its numbers.
 * The stream's consumers directory is there and empty, as deleting the
 * last consumer leaves it.
 *
 * Input:
 *	byte 0		mode: bits 0-2 the iterator (0 TRIM_HORIZON,
 *			1 LATEST, 2 AT_SEQUENCE_NUMBER, 3 AFTER_, 4
 *			AT_TIMESTAMP, else TRIM_HORIZON); bit 3 keep the
 *			checksums as given; bit 4 verify; bit 5 recover;
 *			bit 6 verify with repair; bit 7 describe
 *	bytes 1-8	a counter or a time in ms (little-endian) for the
 *			iterator
 *	the rest	files, separated by SEP below: one starting
 *			"KDSIDX" is the index of the segment before it (the
 *			bytes after those 6), one starting "KDSTAIL1" is the
 *			tail file, one starting "KDSZSG" a compressed segment
 *			(named by bytes 24-31), "KDSZIX" the compressed
 *			index of the one before it (the bytes after those
 *			6), "KDSCMP" a segment (the bytes after those 6) that
 *			kds_zseg_compress converts, as kds-expire does; any
 *			other a segment, named by the first counter in its
 *			header (bytes 16-23) or, shorter than that, the one
 *			after the segment before.
 *
 * Unless bit 3 says not to, every checksum the bytes have room for is made
 * right (segment headers, each frame or block whose length fits, index
 * entries, the tail): random bytes would otherwise never get past the
 * first check.
 *
 * KDS_FUZZ_DEBUG=1 in the environment says what each reader read.
 *
 * Invariants beside the sanitizers: when a reader reads the shard to its
 * end without an error, the writer's recovery keeps every record it read
 * (only a torn tail may be cut; kds-stream(5), CRASH RECOVERY), and
 * compressing segments changes none of the records read; each record
 * written out by kds-get -o jsonl's format is one line of JSON.
 */
#include "fuzz.h"

#define SEP		"\n--kds-fuzz--\n"
#define MAX_FILES	8
#define MAX_RECORDS	100000

static struct kds_stream *st;
static int shard_dirfd = -1;
static FILE *devnull;
static struct kds_format *fmt_all, *fmt_json;
static int debug;		/* $KDS_FUZZ_DEBUG: say what was read */
static uint64_t digest;		/* of the records read_all read */
static uint64_t to_compress[MAX_FILES];	/* KDSCMP segments */
static size_t ncompress;
static int twins;		/* a .seg and a .zseg of one counter */

static void
init(void)
{
	struct kds_create_opts o = { 1, 8760 * 3600, 1 << 20, 3600, 0, 0 };
	char path[PATH_MAX + 8];
	struct kds_err e;

	/* A fixed clock: the same retention floor on every run. */
	setenv("KDS_NOW", "2026-01-01T00:00:00Z", 1);
	snprintf(path, sizeof(path), "%s/s", fuzz_tmpdir());
	if (kds_stream_create(path, &o, &e) == -1 ||
	    (st = kds_stream_open(path, &e)) == NULL ||
	    (shard_dirfd = kds_shard_dir_open(st, 0, &e)) == -1 ||
	    (fmt_all = kds_format_new("%s%S%k%K%o%T%p%t%h\\n", &e)) == NULL ||
	    (fmt_json = kds_format_builtin("jsonl", &e)) == NULL) {
		fprintf(stderr, "fuzz_segment: %s\n", e.msg);
		abort();
	}
	if ((devnull = fopen("/dev/null", "w")) == NULL ||
	    mkdirat(st->dirfd, "consumers", 0777) == -1)
		abort();
	debug = getenv("KDS_FUZZ_DEBUG") != NULL;
}

static void
reseal_index(unsigned char *p, size_t n)
{
	for (size_t off = 0; n - off >= INDEX_ENTRY_LEN; off += INDEX_ENTRY_LEN)
		put_le64(p + off + 24, kds_checksum(p + off, 24, 0));
}

static void
reseal_zseg(unsigned char *p, size_t n)
{
	uint64_t salt;

	if (n < ZSEG_HEADER_LEN)
		return;
	put_le64(p + 8 + 40, kds_checksum(p + 8, 40, 0));
	put_le64(p + 88, kds_checksum(p, 88, 0));
	salt = get_le64(p + 8 + 32);
	for (size_t off = ZSEG_HEADER_LEN; n - off >= ZBLOCK_HEADER_LEN; ) {
		uint32_t clen = get_le32(p + off + 28);

		if (clen > n - off - ZBLOCK_HEADER_LEN)
			break;
		put_le64(p + off + 32, kds_checksum(p + off + ZBLOCK_HEADER_LEN,
		    clen, salt));
		put_le64(p + off + 40, kds_checksum(p + off, 40, salt));
		off += ZBLOCK_HEADER_LEN + clen;
	}
}

static void
reseal_zidx(unsigned char *p, size_t n)
{
	for (size_t off = 0; n - off >= ZIDX_ENTRY_LEN; off += ZIDX_ENTRY_LEN)
		put_le64(p + off + 32, kds_checksum(p + off, 32, 0));
}

/* Lay the files out in the shard directory; 1 when a tail was given. */
static int
lay_out(unsigned char *p, size_t n, int reseal)
{
	static const unsigned char zeros[TAIL_LEN];
	uint64_t counter = 0;
	char name[64];
	int files = 0, tail = 0, seg = 0, zseg = 0;

	fuzz_clear(shard_dirfd);
	ncompress = twins = 0;
	while (files < MAX_FILES) {
		unsigned char *end = memmem(p, n, SEP, sizeof(SEP) - 1);
		size_t len = end ? (size_t)(end - p) : n;

		if (len >= 6 && memcmp(p, "KDSIDX", 6) == 0) {
			if (reseal)
				reseal_index(p + 6, len - 6);
			if (seg) {
				kds_seg_name(0, counter, ".idx", name,
				    sizeof(name));
				fuzz_write(shard_dirfd, name, p + 6, len - 6);
			}
		} else if (len >= 8 && memcmp(p, TAIL_MAGIC, 8) == 0) {
			if (reseal && len >= TAIL_LEN)
				put_le64(p + 56, kds_checksum(p, 56, 0));
			fuzz_write(shard_dirfd, "tail", p, len);
			tail = 1;
		} else if (len >= 6 && memcmp(p, ZSEG_MAGIC, 6) == 0) {
			counter = len >= 32 ? get_le64(p + 24) % COUNTER_LIMIT :
			    counter + 1;
			if (reseal)
				reseal_zseg(p, len);
			kds_seg_name(0, counter, ".seg", name, sizeof(name));
			twins |= faccessat(shard_dirfd, name, F_OK, 0) == 0;
			kds_seg_name(0, counter, ".zseg", name, sizeof(name));
			fuzz_write(shard_dirfd, name, p, len);
			seg = 0;
			zseg = 1;
		} else if (len >= 6 && memcmp(p, "KDSZIX", 6) == 0) {
			if (reseal)
				reseal_zidx(p + 6, len - 6);
			if (zseg) {
				kds_seg_name(0, counter, ".zidx", name,
				    sizeof(name));
				fuzz_write(shard_dirfd, name, p + 6, len - 6);
			}
		} else {
			unsigned char *q = p;
			size_t qlen = len;
			int compress = len >= 6 && memcmp(p, "KDSCMP", 6) == 0;

			if (compress) {
				q += 6;
				qlen -= 6;
			}
			counter = qlen >= 24 ? get_le64(q + 16) % COUNTER_LIMIT :
			    counter + 1;
			if (reseal)
				fuzz_reseal_segment(q, qlen);
			kds_seg_name(0, counter, ".zseg", name, sizeof(name));
			twins |= faccessat(shard_dirfd, name, F_OK, 0) == 0;
			kds_seg_name(0, counter, ".seg", name, sizeof(name));
			fuzz_write(shard_dirfd, name, q, qlen);
			if (compress)
				to_compress[ncompress++] = counter;
			seg = 1;
			zseg = 0;
		}
		files++;
		if (end == NULL)
			break;
		n -= len + sizeof(SEP) - 1;
		p = end + sizeof(SEP) - 1;
	}
	/* The writer locks the tail file: all zeros is one it distrusts. */
	if (!tail)
		fuzz_write(shard_dirfd, "tail", zeros, sizeof(zeros));
	return tail;
}

/* Read what o asks for to the end: records read, -1 on an error. */
static long
read_all(const struct kds_iter_opts *o)
{
	struct kds_reader *rd;
	struct kds_record r;
	struct kds_err e;
	long n = 0;
	int rc;

	digest = 0;
	if ((rd = kds_reader_open(st, o, &e)) == NULL) {
		if (debug)
			fprintf(stderr, "iterator %d: %s\n", o->type, e.msg);
		return -1;
	}
	while (n < MAX_RECORDS && (rc = kds_reader_next(rd, &r, &e)) == 1) {
		FUZZ_ASSERT(r.shard == 0 && r.keylen > 0 &&
		    r.keylen + r.datalen <= KDS_MAX_RECORD);
		kds_format_write(devnull, fmt_all, "s", &r);
		fuzz_jsonl_check(fmt_json, "s", &r);
		digest = kds_checksum(r.key, r.keylen, digest ^ r.counter);
		digest = kds_checksum(r.data, r.datalen, digest ^
		    (uint64_t)r.arrival_ms);
		n++;
	}
	kds_reader_close(rd);
	if (debug)
		fprintf(stderr, "iterator %d: %ld records%s%s\n", o->type, n,
		    rc == -1 ? ", then: " : "", rc == -1 ? e.msg : "");
	return rc == -1 ? -1 : n;
}

/* Compress the KDSCMP segments as kds-expire does: records read before
 * and after are the same when they were all read and all converted. */
static void
compress(void)
{
	const struct kds_iter_opts th = { .type = KDS_TRIM_HORIZON };
	long before = read_all(&th), after;
	uint64_t was = digest;
	struct kds_zseg_stats zs;
	struct kds_err e;
	char name[64];
	int all = 1;

	for (size_t i = 0; i < ncompress; i++) {
		if (kds_zseg_compress(shard_dirfd, 0, to_compress[i], &zs,
		    &e) == -1) {
			if (debug)
				fprintf(stderr, "compress: %s\n", e.msg);
			all = 0;
			continue;
		}
		kds_seg_name(0, to_compress[i], ".seg", name, sizeof(name));
		unlinkat(shard_dirfd, name, 0);
		kds_seg_name(0, to_compress[i], ".idx", name, sizeof(name));
		unlinkat(shard_dirfd, name, 0);
	}
	if (before < 0 || !all)
		return;
	after = read_all(&th);
	if (after != before || digest != was)
		fprintf(stderr, "compression: %ld records read before, %ld "
		    "after%s\n", before, after, digest != was ?
		    ", not the same" : "");
	FUZZ_ASSERT(after == before && digest == was);
}

static void
no_report(void *arg, const char *line)
{
	(void)arg;
	(void)line;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kds_iter_opts o = { KDS_TRIM_HORIZON, NULL, 0, NULL, 0, 0 };
	struct kds_verify_stats vs;
	struct kds_description d;
	char seq[KDS_SEQ_LEN];
	unsigned char *buf;
	struct kds_err e;
	uint64_t param, last;
	unsigned mode;
	size_t n;
	int tail;

	if (st == NULL)
		init();
	if ((buf = fuzz_input(data, size, &mode, &param, &n)) == NULL)
		return 0;
	tail = lay_out(buf, n, !(mode & 0x08));
	free(buf);

	o.type = fuzz_iterator(mode);
	o.timestamp_ms = (int64_t)param;
	kds_seq_format(0, param % COUNTER_LIMIT, seq);
	o.sequence = seq;
	if (ncompress > 0)
		compress();
	read_all(&o);
	if (mode & 0x10)
		kds_stream_verify(st, 0, no_report, NULL, &vs, &e);
	if (mode & 0x20) {
		const struct kds_iter_opts th = { .type = KDS_TRIM_HORIZON };
		long before = read_all(&th), after;

		/* Not with a forged tail, nor with a segment both plain and
		 * compressed: recovery may remove a plain one cut short in a
		 * roll, which readers pass over, and nothing compresses a
		 * shard's last segment. */
		if (kds_shard_recover(st, 0, &last, &e) == 0 && before >= 0 &&
		    !tail && !twins) {
			after = read_all(&th);
			if (after != before)
				fprintf(stderr, "recovery: %ld records read "
				    "before, %ld after\n", before, after);
			FUZZ_ASSERT(after == before);
		}
	}
	if (mode & 0x40)
		kds_stream_verify(st, 1, no_report, NULL, &vs, &e);
	if ((mode & 0x80) && kds_stream_describe(st, &d, &e) == 0)
		kds_description_free(&d);
	return 0;
}
