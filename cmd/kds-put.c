/*
 * kds-put: append the records on standard input to a stream, one a line
 * (or NUL-terminated with -0, or JSON objects with -i jsonl), routed to
 * shards by partition key.  With -p, prints each record's shard and sequence
 * number, in input order, as PutRecord answers.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kds.h"

#define FLUSH_AFTER_MS	50		/* a pending record waits no longer */
#define FLUSH_IDLE_MS	1		/* nor after input paused this long */
#define LINE_MAX_BYTES	(3 * KDS_MAX_RECORD)	/* base64 of 1 MiB in JSON */
#define READ_WINDOW	(256 * 1024)	/* a read(2) at most, see read_input() */
/* A value as a message may show it: one line, escaped, cut. */
#define V(s)		kds_printable((s), val, sizeof(val))

static char val[256];

struct put {
	const char		*stream;
	const char		*name;		/* stream as messages show it */
	struct kds_producer	*p;
	int			 jsonl_in;
	int			 acks;		/* 0 none, 1 text, 2 jsonl */
	const char		*key;		/* -k */
	unsigned long		 field;		/* -f, 1-based; 0 none */
	char			 delim;		/* -d */
	const char		*hashkey;	/* -E */
	int			 skip_invalid;
	unsigned long long	 recno, skipped;
	char			 recdec[24];	/* recno in decimal, right-aligned */
	size_t			 recdec_at;	/* where its first digit is */
	char			 first_skip[1200];
	struct kds_scratch	 scratch;
	int			 acked;		/* acks printed since fflush */
	int			 out_errno;	/* of the first failed ack write */
};

static void
usage(void)
{
	fprintf(stderr, "usage: kds-put [-0p] [-i lines|jsonl] [-o text|jsonl] "
	    "[-k key | -f field [-d delim]]\n"
	    "               [-E hashkey] [--skip-invalid] "
	    "[--sync=exit|always|never] stream\n");
	exit(2);
}

static void
help(void)
{
	printf("usage: kds-put [-0p] [-i lines|jsonl] [-o text|jsonl] "
	    "[-k key | -f field [-d delim]]\n"
	    "               [-E hashkey] [--skip-invalid] "
	    "[--sync=exit|always|never] stream\n"
	    "  -0, --null                records end with NUL, not newline\n"
	    "  -p, --print-sequence      print SHARD_ID SEQUENCE_NUMBER per record\n"
	    "  -i, --input FORMAT        lines (default) or jsonl (PartitionKey, Data,\n"
	    "                            ExplicitHashKey, as aws kinesis put-records)\n"
	    "  -o, --output FORMAT       acks as text (as -p) or jsonl\n"
	    "  -k, --partition-key KEY   partition key of every record\n"
	    "  -f, --field N             partition key is field N of the line\n"
	    "  -d, --delimiter C         field delimiter for -f (default TAB)\n"
	    "  -E, --explicit-hash-key K route by this hash key, not the key's MD5\n"
	    "      --skip-invalid        skip bad records, count them at the end\n"
	    "      --sync=WHEN           fsync at exit (default), always, or never\n"
	    "  -h, --help                show this help\n"
	    "  -V, --version             show the version\n");
	if (fflush(stdout) == EOF)
		err(1, "stdout");
	exit(0);
}

static void
ack(void *arg, const struct kds_ack *a)
{
	struct put *c = arg;
	int rc = 0;

	/* Once a write of stdout failed, nothing more: stdio would go on
	 * with the next buffer, after a line the failure cut short. */
	if (c->out_errno != 0)
		return;
	if (c->acks == 1)
		rc = printf("%s %s\n", a->shard_id, a->sequence);
	else if (c->acks == 2)
		rc = printf("{\"ShardId\":\"%s\","
		    "\"SequenceNumber\":\"%s\"}\n", a->shard_id, a->sequence);
	/* printf may hide a failed write of its buffer; ferror does not */
	if (rc < 0 || ferror(stdout))
		c->out_errno = errno ? errno : EIO;
	c->acked = 1;
}

/* Stop: what was put before stays stored, durable as --sync says. */
static void __attribute__((noreturn))
fail(struct put *c, const char *what)
{
	struct kds_err e;

	fprintf(stderr, "kds-put: %s: %s\n", c->name, what);
	if (kds_producer_close(c->p, &e) == -1)
		fprintf(stderr, "kds-put: %s: %s\n", c->name, e.msg);
	fflush(stdout);
	exit(1);
}

/*
 * The acks so far out.  A full or closed stdout stops kds-put as any
 * failure does, the stream named: the records are stored, unacked.  What
 * stdio still holds is dropped, never written later: a write after the
 * failed one would join a line cut short to the rest of another.
 */
static void
flush_stdout(struct put *c)
{
	char why[128];

	if (c->acked && c->out_errno == 0 &&
	    (fflush(stdout) == EOF || ferror(stdout)))
		c->out_errno = errno ? errno : EIO;
	if (c->out_errno != 0) {
		snprintf(why, sizeof(why), "stdout: %s", strerror(c->out_errno));
		__fpurge(stdout);
		fail(c, why);
	}
	c->acked = 0;
}

static void
bad_record(struct put *c, const char *why)
{
	char msg[1200];

	snprintf(msg, sizeof(msg), "record %llu: %s", c->recno, why);
	if (!c->skip_invalid) {
		struct kds_err e;

		if (kds_producer_flush(c->p, &e) == -1)
			fail(c, e.msg);
		flush_stdout(c);
		fail(c, msg);
	}
	if (c->skipped++ == 0)
		snprintf(c->first_skip, sizeof(c->first_skip), "%s", msg);
}

/* The fieldth field of line, split on delim. */
static int
field_of(const char *line, size_t len, unsigned long field, char delim,
    const char **f, size_t *flen)
{
	const char *p = line, *end = line + len;

	for (unsigned long i = 1; i < field; i++) {
		const char *d = memchr(p, delim, (size_t)(end - p));

		if (d == NULL)
			return -1;
		p = d + 1;
	}
	*f = p;
	*flen = (size_t)((const char *)memchr(p, delim, (size_t)(end - p)) ?
	    (const char *)memchr(p, delim, (size_t)(end - p)) - p : end - p);
	return 0;
}

/* The next record: its number, and that number in decimal kept beside it
 * and counted up in place, with no division per record (a key without -k
 * or -f is the number). */
static void
next_recno(struct put *c)
{
	size_t i = sizeof(c->recdec);

	c->recno++;
	while (i > c->recdec_at && c->recdec[i - 1] == '9')
		c->recdec[--i] = '0';
	if (i == c->recdec_at)
		c->recdec[--c->recdec_at] = '1';
	else
		c->recdec[i - 1]++;
}

static void
put_one(struct put *c, const char *line, size_t len)
{
	struct kds_put_record r = { line, 0, line, len, c->hashkey, 0 };
	char num[32];
	struct kds_err e;
	int rc;

	next_recno(c);
	if (c->jsonl_in) {
		if ((rc = kds_jsonl_parse(line, len, &r, &c->scratch, &e)) != 0) {
			if (rc == -1)
				fail(c, e.msg);
			bad_record(c, e.msg);
			return;
		}
		if (c->hashkey != NULL && r.explicit_hash_key == NULL)
			r.explicit_hash_key = c->hashkey;
	} else if (c->key != NULL) {
		r.key = c->key;
		r.keylen = strlen(c->key);
	} else if (c->field > 0) {
		if (field_of(line, len, c->field, c->delim, &r.key,
		    &r.keylen) == -1) {
			snprintf(num, sizeof(num), "no field %lu", c->field);
			bad_record(c, num);
			return;
		}
	} else {
		r.key = c->recdec + c->recdec_at;
		r.keylen = sizeof(c->recdec) - c->recdec_at;
		r.spread = 1;
	}
	rc = kds_producer_add(c->p, &r, &e);
	if (rc == -1)
		fail(c, e.msg);
	if (rc == KDS_BAD_RECORD)
		bad_record(c, e.msg);
	flush_stdout(c);
}

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Read stdin in large blocks and hand out whole records.  A batch is
 * written once input has had nothing more for FLUSH_IDLE_MS, so that a
 * line from tail -F reaches readers at once (and -p answers it at once),
 * and a record waits at most FLUSH_AFTER_MS while input keeps trickling.
 * A pipe that a fast writer keeps full still gives batches of megabytes.
 */
static void
read_input(struct put *c, char delim)
{
	size_t cap = LINE_MAX_BYTES + READ_WINDOW, start = 0, end = 0;
	size_t scanned = 0;		/* no delimiter in [start, scanned) */
	char *buf = malloc(cap), *nl;
	int64_t pending_since = -1;
	int discarding = 0;
	struct kds_err e;

	if (buf == NULL)
		err(1, "input");
	for (;;) {
		struct pollfd pfd = { 0, POLLIN, 0 };
		size_t want;
		ssize_t n;

		while ((nl = memchr(buf + scanned, delim, end - scanned)) !=
		    NULL) {
			if (!discarding)
				put_one(c, buf + start, (size_t)(nl - (buf + start)));
			discarding = 0;
			start = scanned = (size_t)(nl - buf) + 1;
		}
		scanned = end;
		if (!discarding && end - start > LINE_MAX_BYTES - 1) {
			char why[80];

			snprintf(why, sizeof(why), "record larger than %d bytes "
			    "(partition key and data)", KDS_MAX_RECORD);
			next_recno(c);
			bad_record(c, why);
			discarding = 1;
		}
		if (discarding)
			start = end;
		memmove(buf, buf + start, end - start);
		end -= start;
		scanned -= start;
		start = 0;
		if (!kds_producer_pending(c->p)) {
			pending_since = -1;
		} else {
			int64_t waited;

			if (pending_since < 0)
				pending_since = monotonic_ms();
			waited = monotonic_ms() - pending_since;
			if (waited >= FLUSH_AFTER_MS ||
			    poll(&pfd, 1, FLUSH_IDLE_MS) == 0) {
				if (kds_producer_flush(c->p, &e) == -1)
					fail(c, e.msg);
				flush_stdout(c);
				pending_since = -1;
			}
		}
		/*
		 * At most READ_WINDOW a read: the buffer is sized for the
		 * longest line, but short lines then touch only its first
		 * pages, and a page first touched costs a fault, dearer than
		 * the read(2) calls saved.
		 */
		want = cap - end < READ_WINDOW ? cap - end : READ_WINDOW;
		n = read(0, buf + end, want);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			char why[128];

			snprintf(why, sizeof(why), "stdin: %s", strerror(errno));
			free(buf);	/* fail() exits: nothing else holds it */
			fail(c, why);
		}
		if (n == 0)
			break;
		end += (size_t)n;
	}
	if (end > start && !discarding)		/* a last record, unterminated */
		put_one(c, buf + start, end - start);
	free(buf);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "null", no_argument, NULL, '0' },
		{ "print-sequence", no_argument, NULL, 'p' },
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "partition-key", required_argument, NULL, 'k' },
		{ "field", required_argument, NULL, 'f' },
		{ "delimiter", required_argument, NULL, 'd' },
		{ "explicit-hash-key", required_argument, NULL, 'E' },
		{ "skip-invalid", no_argument, NULL, 'S' },
		{ "sync", required_argument, NULL, 'Y' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct put c = { .delim = '\t', .recdec_at = sizeof(c.recdec) };
	enum kds_sync sync = KDS_SYNC_EXIT;
	struct kds_stream *st;
	struct kds_err e;
	char recdelim = '\n', name[256];
	unsigned __int128 hk;
	uint64_t v;
	int ch;

	while ((ch = getopt_long(argc, argv, "0pi:o:k:f:d:E:hV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case '0':
			recdelim = '\0';
			break;
		case 'p':
			c.acks = c.acks ? c.acks : 1;
			break;
		case 'i':
			if (strcmp(optarg, "lines") != 0 &&
			    strcmp(optarg, "jsonl") != 0)
				errx(2, "bad input format '%s': lines or jsonl",
				    V(optarg));
			c.jsonl_in = optarg[0] == 'j';
			break;
		case 'o':
			if (strcmp(optarg, "text") != 0 &&
			    strcmp(optarg, "jsonl") != 0)
				errx(2, "bad output format '%s': text or jsonl",
				    V(optarg));
			c.acks = optarg[0] == 'j' ? 2 : 1;
			break;
		case 'k':
			c.key = optarg;
			break;
		case 'f':
			if (kds_parse_uint(optarg, 1000000, &v) == -1 || v < 1)
				errx(2, "bad field number '%s'", V(optarg));
			c.field = (unsigned long)v;
			break;
		case 'd':
			if (strlen(optarg) != 1)
				errx(2, "bad delimiter '%s': one character",
				    V(optarg));
			c.delim = optarg[0];
			break;
		case 'E':
			if (kds_hashkey_parse(optarg, &hk) == -1)
				errx(2, "bad explicit hash key '%s': a decimal "
				    "in [0, 2^128-1]", V(optarg));
			c.hashkey = optarg;
			break;
		case 'S':
			c.skip_invalid = 1;
			break;
		case 'Y':
			if (strcmp(optarg, "exit") == 0)
				sync = KDS_SYNC_EXIT;
			else if (strcmp(optarg, "always") == 0)
				sync = KDS_SYNC_ALWAYS;
			else if (strcmp(optarg, "never") == 0)
				sync = KDS_SYNC_NEVER;
			else
				errx(2, "bad --sync '%s': exit, always or never",
				    V(optarg));
			break;
		case 'h':
			help();
			break;
		case 'V':
			printf("kds-put (kds) %s\n", KDS_VERSION);
			if (fflush(stdout) == EOF)
				err(1, "stdout");
			exit(0);
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1 || argv[0][0] == '\0')
		usage();
	if (c.key != NULL && c.field > 0)
		errx(2, "-k and -f exclude each other");
	if (c.jsonl_in && (c.key != NULL || c.field > 0))
		errx(2, "-i jsonl takes the partition key from each record");
	c.stream = argv[0];
	c.name = kds_printable(argv[0], name, sizeof(name));

	/* A file size limit must fail a write, not kill us mid-batch. */
	signal(SIGXFSZ, SIG_IGN);
	if ((st = kds_stream_open(c.stream, &e)) == NULL)
		errx(1, "%s: %s", c.name, e.msg);
	if ((c.p = kds_producer_new(st, sync, c.acks ? ack : NULL, &c,
	    &e)) == NULL)
		errx(1, "%s: %s", c.name, e.msg);
	read_input(&c, recdelim);
	if (kds_producer_close(c.p, &e) == -1) {
		c.p = NULL;
		fflush(stdout);
		errx(1, "%s: %s", c.name, e.msg);
	}
	kds_stream_close(st);
	free(c.scratch.buf);
	if (c.out_errno != 0 || ferror(stdout) || fclose(stdout) == EOF) {
		if (c.out_errno != 0)
			errno = c.out_errno;
		err(1, "%s: stdout", c.name);
	}
	if (c.skipped > 0)
		warnx("%s: skipped %llu invalid record%s (first: %s)", c.name,
		    c.skipped, c.skipped == 1 ? "" : "s", c.first_skip);
	return 0;
}
