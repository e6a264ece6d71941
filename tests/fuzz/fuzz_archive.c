/*
 * fuzz_archive.c: arbitrary bytes as archives that kds-expire wrote
 * (kds-stream(5), Archives), read back as kds-get --archive reads them:
 * kds_archive_reader_open/next, each record written out by
 * kds_format_write.
 *
 * Input:
 *	byte 0		mode: bits 0-2 the iterator (0 TRIM_HORIZON,
 *			1 LATEST, 2 AT_SEQUENCE_NUMBER, 3 AFTER_, 4
 *			AT_TIMESTAMP, else TRIM_HORIZON); bit 3 keep the
 *			checksums as given; bit 4 raw: each piece below is
 *			an archive file as it is, libarchive's to make sense
 *			of; bit 5 compress the archives made with zstd, as
 *			kds-expire does; bit 6 read shard 1 only
 *	bytes 1-8	for the iterator, little-endian: a time in ms, or
 *			a shard number (top 2 bits) and a counter
 *	the rest	pieces, separated by SEP below.  Unless raw, each is
 *			a member of the archive being made: a segment, named
 *			STREAM/shardId-N/SEQ.seg after its header (shard
 *			number mod 4 at bytes 8-15, first counter at 16-23)
 *			or, when it starts "NAME:", after the rest of its
 *			first line; a piece starting "KDSNEXT" ends an
 *			archive and starts the next.
 *
 * KDS_FUZZ_DEBUG=1 in the environment says what was read.
 *
 * Unless bit 3 says not to, the checksums of each member's header and of
 * each frame whose length fits are made right.
 *
 * Invariants beside the sanitizers: every record returned is whole and
 * within the limits, and each shard's records come in strictly increasing
 * sequence numbers with arrival times that never go back; written out by
 * kds-get -o jsonl's format, it is one line of JSON.
 */
#include "fuzz.h"

#include <archive.h>
#include <archive_entry.h>

#define SEP		"\n--kds-fuzz--\n"
#define MAX_ARCHIVES	4
#define MAX_MEMBERS	8
#define MAX_SHARDS	4
#define MAX_RECORDS	100000

static FILE *devnull;
static struct kds_format *fmt_all, *fmt_json;

static void
init(void)
{
	struct kds_err e;

	if ((fmt_all = kds_format_new("%s%S%k%K%o%T%p%t%h\\n", &e)) == NULL ||
	    (fmt_json = kds_format_builtin("jsonl", &e)) == NULL) {
		fprintf(stderr, "fuzz_archive: %s\n", e.msg);
		abort();
	}
	if ((devnull = fopen("/dev/null", "w")) == NULL)
		abort();
}

struct archive_out {
	struct archive	*a;
	int		 zstd;
};

static void
archive_begin(struct archive_out *ao, const char *path)
{
	if ((ao->a = archive_write_new()) == NULL ||
	    archive_write_set_format_pax_restricted(ao->a) != ARCHIVE_OK ||
	    (ao->zstd && archive_write_add_filter_zstd(ao->a) != ARCHIVE_OK) ||
	    archive_write_open_filename(ao->a, path) != ARCHIVE_OK) {
		fprintf(stderr, "fuzz_archive: %s: %s\n", path,
		    ao->a ? archive_error_string(ao->a) : "no memory");
		abort();
	}
}

static void
archive_member(struct archive_out *ao, const char *name, const void *p,
    size_t n)
{
	struct archive_entry *ent = archive_entry_new();

	if (ent == NULL)
		abort();
	archive_entry_set_pathname(ent, name);
	archive_entry_set_size(ent, (la_int64_t)n);
	archive_entry_set_filetype(ent, AE_IFREG);
	archive_entry_set_perm(ent, 0644);
	/* A name tar cannot hold (empty, say) is no finding: skipped. */
	if (archive_write_header(ao->a, ent) < ARCHIVE_WARN) {
		archive_entry_free(ent);
		return;
	}
	if (n > 0 && archive_write_data(ao->a, p, n) != (la_ssize_t)n) {
		fprintf(stderr, "fuzz_archive: %s: %s\n", name,
		    archive_error_string(ao->a));
		abort();
	}
	archive_entry_free(ent);
}

static void
archive_end(struct archive_out *ao)
{
	if (archive_write_close(ao->a) != ARCHIVE_OK)
		abort();
	archive_write_free(ao->a);
	ao->a = NULL;
}

/* Write the pieces at p as archive files; their paths into paths[]. */
static size_t
lay_out(unsigned char *p, size_t n, unsigned mode, char paths[][PATH_MAX])
{
	struct archive_out ao = { NULL, (mode & 0x20) != 0 };
	size_t narch = 0, members = 0;
	uint64_t counter = 0;
	char name[512];

	for (int pieces = 0; pieces < MAX_MEMBERS + MAX_ARCHIVES; pieces++) {
		unsigned char *end = memmem(p, n, SEP, sizeof(SEP) - 1);
		size_t len = end ? (size_t)(end - p) : n;

		if (mode & 0x10) {
			snprintf(paths[narch], PATH_MAX, "%s/a%zu.tar.zst",
			    fuzz_tmpdir(), narch);
			fuzz_write(AT_FDCWD, paths[narch], p, len);
			if (++narch == MAX_ARCHIVES)
				break;
		} else if (len >= 7 && memcmp(p, "KDSNEXT", 7) == 0) {
			if (ao.a != NULL) {
				archive_end(&ao);
				if (narch == MAX_ARCHIVES)
					break;
			}
		} else if (members < MAX_MEMBERS) {
			unsigned char *q = p;
			size_t qlen = len;

			if (len >= 5 && memcmp(p, "NAME:", 5) == 0) {
				unsigned char *nl = memchr(p, '\n', len);
				size_t nlen = nl ? (size_t)(nl - p) - 5 : len - 5;

				if (nlen >= sizeof(name))
					nlen = sizeof(name) - 1;
				memcpy(name, p + 5, nlen);
				name[nlen] = '\0';
				q = nl ? nl + 1 : p + len;
				qlen = (size_t)(p + len - q);
			} else {
				uint64_t shard = qlen >= 16 ?
				    get_le64(q + 8) % MAX_SHARDS : 0;
				char seq[KDS_SEQ_LEN];

				counter = qlen >= 24 ? get_le64(q + 16) %
				    COUNTER_LIMIT : counter + 1;
				kds_seq_format(shard, counter, seq);
				snprintf(name, sizeof(name),
				    "s/shardId-%012llu/%s.seg",
				    (unsigned long long)shard, seq);
			}
			if (!(mode & 0x08))
				fuzz_reseal_segment(q, qlen);
			if (ao.a == NULL) {
				snprintf(paths[narch], PATH_MAX, "%s/a%zu.tar",
				    fuzz_tmpdir(), narch);
				archive_begin(&ao, paths[narch++]);
			}
			archive_member(&ao, name, q, qlen);
			members++;
		}
		if (end == NULL)
			break;
		n -= len + sizeof(SEP) - 1;
		p = end + sizeof(SEP) - 1;
	}
	if (ao.a != NULL)
		archive_end(&ao);
	return narch;
}

static void
read_all(const char *const *files, size_t n, const struct kds_iter_opts *o)
{
	struct kds_archive_reader *rd;
	uint64_t last[MAX_SHARDS] = { 0 };
	int64_t arrival[MAX_SHARDS];
	struct kds_record r;
	struct kds_err e;
	long k = 0;
	int rc = 0;

	if ((rd = kds_archive_reader_open(files, n, o, &e)) == NULL) {
		if (getenv("KDS_FUZZ_DEBUG") != NULL)
			fprintf(stderr, "open: %s\n", e.msg);
		return;
	}
	while (k < MAX_RECORDS &&
	    (rc = kds_archive_reader_next(rd, &r, &e)) == 1) {
		k++;
		FUZZ_ASSERT(r.keylen > 0 && r.keylen + r.datalen <=
		    KDS_MAX_RECORD && r.shard < MAX_SHARDS);
		FUZZ_ASSERT(last[r.shard] == 0 || (r.counter > last[r.shard] &&
		    r.arrival_ms >= arrival[r.shard]));
		last[r.shard] = r.counter;
		arrival[r.shard] = r.arrival_ms;
		kds_format_write(devnull, fmt_all,
		    kds_archive_reader_stream(rd), &r);
		fuzz_jsonl_check(fmt_json, kds_archive_reader_stream(rd), &r);
	}
	if (getenv("KDS_FUZZ_DEBUG") != NULL)
		fprintf(stderr, "%ld records%s%s\n", k,
		    rc == -1 ? ", then: " : "", rc == -1 ? e.msg : "");
	kds_archive_reader_close(rd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t one[1] = { 1 };
	static char paths[MAX_ARCHIVES][PATH_MAX];
	struct kds_iter_opts o = { KDS_TRIM_HORIZON, NULL, 0, NULL, 0, 0 };
	const char *files[MAX_ARCHIVES];
	char seq[KDS_SEQ_LEN];
	unsigned char *buf;
	uint64_t param;
	unsigned mode;
	size_t n, len;

	if (devnull == NULL)
		init();
	if ((buf = fuzz_input(data, size, &mode, &param, &len)) == NULL)
		return 0;
	n = lay_out(buf, len, mode, paths);
	free(buf);
	for (size_t i = 0; i < n; i++)
		files[i] = paths[i];
	o.type = fuzz_iterator(mode);
	o.timestamp_ms = (int64_t)param;
	kds_seq_format(param >> 62, (param & ~(UINT64_C(3) << 62)) % COUNTER_LIMIT,
	    seq);
	o.sequence = seq;
	if (mode & 0x40) {
		o.shards = one;
		o.nshards = 1;
	}
	read_all(files, n, &o);
	for (size_t i = 0; i < n; i++)
		unlink(paths[i]);
	return 0;
}
