/*
 * kds-describe: what AWS DescribeStream, ListShards and the stream metrics
 * tell of a stream: its settings and totals, a table of shards and one of
 * named consumers with their lag, or all of it as one JSON document (-j)
 * with the AWS responses' key names.  It reads metadata and indexes only.
 * --verify checks every checksum of the stream instead, as fsck does, and
 * --repair fixes what is safe to fix: torn tails, indexes, tails.
 */
#define _GNU_SOURCE
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kds.h"

#define SYNOPSIS	"usage: kds-describe [-j] stream\n" \
			"       kds-describe --verify [--repair] stream\n"
#define MAXCOLS		11

struct table {
	char	**cells;		/* rows * MAXCOLS, owned */
	size_t	  rows, cols;
};

static void
usage(void)
{
	fputs(SYNOPSIS, stderr);
	exit(2);
}

static void
help(void)
{
	printf(SYNOPSIS
	    "  -j, --json     one JSON document, with the key names of AWS\n"
	    "                 DescribeStream and ListShards\n"
	    "      --verify   check every checksum: one line per problem on\n"
	    "                 stderr, a summary on stdout; exit 1 on damage\n"
	    "      --repair   with --verify: cut torn tails, rewrite indexes\n"
	    "                 and tails; damaged records are only reported\n"
	    "  -h, --help     show this help\n"
	    "  -V, --version  show the version\n");
	if (fflush(stdout) == EOF)
		err(1, "stdout");
	exit(0);
}

/* ISO 8601 in UTC with milliseconds, or "-". */
static const char *
iso(int64_t ms, int any)
{
	static char buf[4][40];
	static int k;
	char *b = buf[k++ % 4];
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!any)
		return "-";
	gmtime_r(&t, &tm);
	strftime(b, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(b + strlen(b), 8, ".%03dZ", (int)(ms % 1000));
	return b;
}

static const char *
retention(int64_t s)
{
	static char b[32];

	if (s % 86400 == 0)
		snprintf(b, sizeof(b), "%" PRId64 "d", s / 86400);
	else if (s % 3600 == 0)
		snprintf(b, sizeof(b), "%" PRId64 "h", s / 3600);
	else if (s % 60 == 0)
		snprintf(b, sizeof(b), "%" PRId64 "m", s / 60);
	else
		snprintf(b, sizeof(b), "%" PRId64 "s", s);
	return b;
}

/* A size as kds-create takes it: 64M rather than 67108864. */
static const char *
size(uint64_t n)
{
	static char b[32];
	static const char units[] = "GMK";

	for (int i = 0; i < 3; i++) {
		uint64_t u = 1ULL << (10 * (3 - i));

		if (n >= u && n % u == 0) {
			snprintf(b, sizeof(b), "%" PRIu64 "%c", n / u, units[i]);
			return b;
		}
	}
	snprintf(b, sizeof(b), "%" PRIu64, n);
	return b;
}

static void
cell(struct table *t, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
cell(struct table *t, size_t col, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (col == 0) {
		t->cells = reallocarray(t->cells, (t->rows + 1) * MAXCOLS,
		    sizeof(*t->cells));
		if (t->cells == NULL)
			err(1, NULL);
		memset(t->cells + t->rows * MAXCOLS, 0, MAXCOLS *
		    sizeof(*t->cells));
		t->rows++;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		err(1, NULL);
	va_end(ap);
	t->cells[(t->rows - 1) * MAXCOLS + col] = s;
	if (col + 1 > t->cols)
		t->cols = col + 1;
}

/* Columns two spaces apart, the last one not padded. */
static void
table_print(struct table *t)
{
	size_t w[MAXCOLS] = { 0 };

	for (size_t r = 0; r < t->rows; r++)
		for (size_t c = 0; c < t->cols; c++) {
			const char *s = t->cells[r * MAXCOLS + c];

			if (s && strlen(s) > w[c])
				w[c] = strlen(s);
		}
	for (size_t r = 0; r < t->rows; r++) {
		for (size_t c = 0; c < t->cols; c++) {
			const char *s = t->cells[r * MAXCOLS + c];

			if (c + 1 < t->cols)
				printf("%-*s  ", (int)w[c], s ? s : "");
			else
				printf("%s\n", s ? s : "");
		}
	}
	for (size_t i = 0; i < t->rows * MAXCOLS; i++)
		free(t->cells[i]);
	free(t->cells);
}

static void
id(char out[KDS_SHARD_ID_LEN + 1], int64_t n)
{
	if (n < 0)
		strcpy(out, "-");
	else
		kds_shard_id((uint64_t)n, out);
}

static void
text(const char *name, const struct kds_description *d)
{
	struct table t = { 0 };

	printf("stream     %s\n", name);
	printf("retention  %s\n", retention(d->retention_s));
	printf("segments   past %s", size(d->segment_bytes));
	printf(" or %s\n", retention(d->segment_age_s));
	if (d->compress)
		printf("compress   after %s\n", retention(d->compress_after_s));
	else
		printf("compress   never\n");
	printf("shards     %zu open, %zu closed\n", d->open, d->closed);
	printf("records    %" PRIu64 "\n", d->records);
	printf("bytes      %" PRIu64 "\n", d->bytes);
	printf("oldest     %s\n", iso(d->oldest_ms, d->records > 0));
	printf("newest     %s\n", iso(d->newest_ms, d->records > 0));
	printf("consumers  %zu\n", d->nconsumers);
	printf("\n");
	cell(&t, 0, "SHARD");
	cell(&t, 1, "STATE");
	cell(&t, 2, "PARENT");
	cell(&t, 3, "ADJACENT");
	cell(&t, 4, "START-HASH");
	cell(&t, 5, "END-HASH");
	cell(&t, 6, "FIRST-SEQ");
	cell(&t, 7, "LAST-SEQ");
	cell(&t, 8, "RECORDS");
	cell(&t, 9, "BYTES");
	cell(&t, 10, "SEGMENTS");
	for (size_t i = 0; i < d->nshards; i++) {
		const struct kds_shard_desc *s = &d->shards[i];
		char a[KDS_SHARD_ID_LEN + 1], b[KDS_SHARD_ID_LEN + 1];
		char h1[KDS_HASHKEY_LEN], h2[KDS_HASHKEY_LEN];
		char q1[KDS_SEQ_LEN] = "-", q2[KDS_SEQ_LEN] = "-";

		kds_shard_id(s->number, a);
		cell(&t, 0, "%s", a);
		cell(&t, 1, "%s", s->open ? "open" : "closed");
		id(a, s->parent);
		id(b, s->adjacent);
		cell(&t, 2, "%s", a);
		cell(&t, 3, "%s", b);
		kds_hashkey_format(s->start_hash, h1);
		kds_hashkey_format(s->end_hash, h2);
		cell(&t, 4, "%s", h1);
		cell(&t, 5, "%s", h2);
		if (s->records > 0) {
			kds_seq_format(s->number, s->first_counter, q1);
			kds_seq_format(s->number, s->last_counter, q2);
		}
		cell(&t, 6, "%s", q1);
		cell(&t, 7, "%s", q2);
		cell(&t, 8, "%" PRIu64, s->records);
		cell(&t, 9, "%" PRIu64, s->bytes);
		cell(&t, 10, "%" PRIu64, s->segments);
	}
	table_print(&t);
	if (d->nconsumers == 0)
		return;
	memset(&t, 0, sizeof(t));
	printf("\n");
	cell(&t, 0, "CONSUMER");
	cell(&t, 1, "PROCESSES");
	cell(&t, 2, "SHARD");
	cell(&t, 3, "CHECKPOINT");
	cell(&t, 4, "RECORDS-BEHIND");
	cell(&t, 5, "MILLIS-BEHIND");
	for (size_t i = 0; i < d->nconsumers; i++) {
		const struct kds_consumer_desc *c = &d->consumers[i];

		for (size_t j = 0; j < c->nshards; j++) {
			const struct kds_consumer_shard *cs = &c->shards[j];
			char sid[KDS_SHARD_ID_LEN + 1], seq[KDS_SEQ_LEN];

			kds_shard_id(cs->shard, sid);
			if (cs->kind == 2)
				strcpy(seq, "SHARD_END");
			else if (cs->kind == 1)
				kds_seq_format(cs->shard, cs->counter, seq);
			else
				strcpy(seq, "-");
			cell(&t, 0, "%s", c->name);
			cell(&t, 1, "%zu", c->processes);
			cell(&t, 2, "%s", sid);
			cell(&t, 3, "%s", seq);
			cell(&t, 4, "%" PRIu64, cs->behind);
			cell(&t, 5, "%" PRId64, cs->ms_behind);
		}
	}
	table_print(&t);
}

static void
json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* Epoch seconds with milliseconds, as ApproximateArrivalTimestamp. */
static void
json_time(const char *key, int64_t ms)
{
	printf(",\"%s\":%" PRId64 ".%03d", key, ms / 1000, (int)(ms % 1000));
}

static void
json_shard(const struct kds_shard_desc *s)
{
	char a[KDS_SHARD_ID_LEN + 1], h[KDS_HASHKEY_LEN], q[KDS_SEQ_LEN];

	kds_shard_id(s->number, a);
	printf("{\"ShardId\":\"%s\"", a);
	if (s->parent >= 0) {
		kds_shard_id((uint64_t)s->parent, a);
		printf(",\"ParentShardId\":\"%s\"", a);
	}
	if (s->adjacent >= 0) {
		kds_shard_id((uint64_t)s->adjacent, a);
		printf(",\"AdjacentParentShardId\":\"%s\"", a);
	}
	kds_hashkey_format(s->start_hash, h);
	printf(",\"HashKeyRange\":{\"StartingHashKey\":\"%s\"", h);
	kds_hashkey_format(s->end_hash, h);
	printf(",\"EndingHashKey\":\"%s\"}", h);
	kds_seq_format(s->number, 1, q);
	printf(",\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"%s\"", q);
	if (!s->open) {
		kds_seq_format(s->number, s->end_counter, q);
		printf(",\"EndingSequenceNumber\":\"%s\"", q);
	}
	printf("},\"ShardState\":\"%s\"", s->open ? "OPEN" : "CLOSED");
	printf(",\"Records\":%" PRIu64 ",\"Bytes\":%" PRIu64
	    ",\"Segments\":%" PRIu64, s->records, s->bytes, s->segments);
	if (s->records > 0) {
		kds_seq_format(s->number, s->first_counter, q);
		printf(",\"FirstSequenceNumber\":\"%s\"", q);
		kds_seq_format(s->number, s->last_counter, q);
		printf(",\"LastSequenceNumber\":\"%s\"", q);
		json_time("OldestArrivalTimestamp", s->oldest_ms);
		json_time("NewestArrivalTimestamp", s->newest_ms);
	}
	printf("}");
}

static void
json(const char *name, const struct kds_description *d)
{
	printf("{\"StreamDescription\":{\"StreamName\":");
	json_str(name);
	printf(",\"StreamStatus\":\"ACTIVE\"");
	printf(",\"RetentionPeriodHours\":%" PRId64, d->retention_s / 3600);
	printf(",\"RetentionPeriodSeconds\":%" PRId64, d->retention_s);
	printf(",\"SegmentBytes\":%" PRIu64 ",\"SegmentAgeSeconds\":%" PRId64,
	    d->segment_bytes, d->segment_age_s);
	if (d->compress)
		printf(",\"CompressAfterSeconds\":%" PRId64,
		    d->compress_after_s);
	json_time("StreamCreationTimestamp", d->created_ms);
	printf(",\"OpenShardCount\":%zu,\"ClosedShardCount\":%zu", d->open,
	    d->closed);
	printf(",\"Records\":%" PRIu64 ",\"Bytes\":%" PRIu64, d->records,
	    d->bytes);
	if (d->records > 0) {
		json_time("OldestArrivalTimestamp", d->oldest_ms);
		json_time("NewestArrivalTimestamp", d->newest_ms);
	}
	printf(",\"HasMoreShards\":false,\"Shards\":[");
	for (size_t i = 0; i < d->nshards; i++) {
		if (i > 0)
			putchar(',');
		json_shard(&d->shards[i]);
	}
	printf("],\"ConsumerCount\":%zu,\"Consumers\":[", d->nconsumers);
	for (size_t i = 0; i < d->nconsumers; i++) {
		const struct kds_consumer_desc *c = &d->consumers[i];

		printf("%s{\"ConsumerName\":", i > 0 ? "," : "");
		json_str(c->name);
		printf(",\"ConsumerStatus\":\"ACTIVE\",\"Processes\":%zu"
		    ",\"Shards\":[", c->processes);
		for (size_t j = 0; j < c->nshards; j++) {
			const struct kds_consumer_shard *cs = &c->shards[j];
			char sid[KDS_SHARD_ID_LEN + 1], seq[KDS_SEQ_LEN];

			kds_shard_id(cs->shard, sid);
			printf("%s{\"ShardId\":\"%s\",\"Checkpoint\":",
			    j > 0 ? "," : "", sid);
			if (cs->kind == 2) {
				printf("\"SHARD_END\"");
			} else if (cs->kind == 1) {
				kds_seq_format(cs->shard, cs->counter, seq);
				printf("\"%s\"", seq);
			} else {
				printf("null");
			}
			printf(",\"RecordsBehind\":%" PRIu64
			    ",\"MillisBehindLatest\":%" PRId64 "}", cs->behind,
			    cs->ms_behind);
		}
		printf("]}");
	}
	printf("]}}\n");
}

static void
problem(void *arg, const char *line)
{
	warnx("%s: %s", (const char *)arg, line);
}

static const char *
count(uint64_t n, const char *what)
{
	static char buf[4][64];
	static int k;
	char *b = buf[k++ % 4];

	snprintf(b, sizeof(buf[0]), "%" PRIu64 " %s%s", n, what,
	    n == 1 ? "" : "s");
	return b;
}

/* Exit status: 0 when nothing is left damaged, else 1. */
static int
verify(const char *name, struct kds_stream *st, int repair)
{
	struct kds_verify_stats vs;
	struct kds_err e;

	if (kds_stream_verify(st, repair, problem, (void *)name, &vs, &e) == -1)
		errx(1, "%s: %s", name, e.msg);
	printf("%s: %s, %s, %s, %" PRIu64 " bytes checked: ", name,
	    count(vs.shards, "shard"), count(vs.segments, "segment"),
	    count(vs.records, "record"), vs.bytes);
	if (vs.problems == 0)
		printf("no damage\n");
	else if (repair)
		printf("%s, %" PRIu64 " repaired\n", count(vs.problems,
		    "problem"), vs.repaired);
	else
		printf("%s\n", count(vs.problems, "problem"));
	return vs.problems > vs.repaired;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "verify", no_argument, NULL, 'Y' },
		{ "repair", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct kds_description d;
	struct kds_stream *st;
	struct kds_err e;
	char name[256];
	int ch, as_json = 0, check = 0, repair = 0, rc = 0;

	while ((ch = getopt_long(argc, argv, "jhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			as_json = 1;
			break;
		case 'Y':
			check = 1;
			break;
		case 'R':
			repair = 1;
			break;
		case 'h':
			help();
			break;
		case 'V':
			printf("kds-describe (kds) %s\n", KDS_VERSION);
			if (fflush(stdout) == EOF)
				err(1, "stdout");
			exit(0);
		default:
			usage();
		}
	}
	/* A file size limit must fail a write (EFBIG), not kill us midway. */
	signal(SIGXFSZ, SIG_IGN);
	argc -= optind;
	argv += optind;
	if (argc != 1 || argv[0][0] == '\0')
		usage();
	if (repair && !check) {
		warnx("--repair goes with --verify");
		usage();
	}
	if (as_json && check) {
		warnx("--json and --verify do not go together");
		usage();
	}
	kds_printable(argv[0], name, sizeof(name));
	if ((st = kds_stream_open(argv[0], &e)) == NULL)
		errx(1, "%s: %s", name, e.msg);
	if (check) {
		rc = verify(name, st, repair);
	} else {
		if (kds_stream_describe(st, &d, &e) == -1)
			errx(1, "%s: %s", name, e.msg);
		if (as_json)
			json(argv[0], &d);
		else
			text(argv[0], &d);
		kds_description_free(&d);
	}
	if (fclose(stdout) == EOF)
		err(1, "%s: stdout", name);
	kds_stream_close(st);
	return rc;
}
