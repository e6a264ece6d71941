/*
 * kds-get: write a stream's records to standard output, from where an
 * iterator says, merged over shards by arrival time, each shard's order
 * kept.  Records come out as lines, raw, NUL-terminated, JSON lines as the
 * AWS API writes them, or in a --format of kcat's tokens.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kds.h"

#define OUTBUF	(1 << 20)

static const char *iterators[] = {
	[KDS_TRIM_HORIZON] = "TRIM_HORIZON",
	[KDS_LATEST] = "LATEST",
	[KDS_AT_SEQUENCE_NUMBER] = "AT_SEQUENCE_NUMBER",
	[KDS_AFTER_SEQUENCE_NUMBER] = "AFTER_SEQUENCE_NUMBER",
	[KDS_AT_TIMESTAMP] = "AT_TIMESTAMP",
};

static void
usage(void)
{
	fprintf(stderr, "usage: kds-get [-0] [-n limit] [-s shard]... [-i type] "
	    "[--sequence seq]\n"
	    "               [--timestamp time] [-o lines|raw|jsonl] "
	    "[--format fmt] stream\n"
	    "       kds-get --archive [options] file ...\n");
	exit(2);
}

static void
help(void)
{
	printf("usage: kds-get [-0] [-n limit] [-s shard]... [-i type] "
	    "[--sequence seq]\n"
	    "               [--timestamp time] [-o lines|raw|jsonl] "
	    "[--format fmt] stream\n"
	    "       kds-get --archive [options] file ...\n"
	    "  -0, --null            end each record with NUL, not newline\n"
	    "  -n, --limit N         stop after N records\n"
	    "  -s, --shard SHARD     read this shard only (repeatable)\n"
	    "  -i, --iterator TYPE   TRIM_HORIZON (default), LATEST, AT_SEQUENCE_NUMBER,\n"
	    "                        AFTER_SEQUENCE_NUMBER or AT_TIMESTAMP\n"
	    "      --sequence SEQ    where AT_ and AFTER_SEQUENCE_NUMBER start\n"
	    "      --timestamp TIME  where AT_TIMESTAMP starts: ISO 8601 or epoch seconds\n"
	    "  -o, --output FORMAT   lines (default), raw or jsonl\n"
	    "      --format FMT      %%s data, %%S its length, %%k key, %%K its length,\n"
	    "                        %%o sequence, %%T arrival ms, %%p shard, %%t stream,\n"
	    "                        %%h hash key, %%%%; \\n \\t \\r \\0 \\\\\n"
	    "      --archive         read kds-expire's archives, the files named,\n"
	    "                        instead of a stream\n"
	    "  -h, --help            show this help\n"
	    "  -V, --version         show the version\n");
	exit(0);
}

static int
iterator_type(const char *s)
{
	for (size_t i = 0; i < sizeof(iterators) / sizeof(iterators[0]); i++)
		if (strcasecmp(s, iterators[i]) == 0)
			return (int)i;
	errx(2, "bad iterator type '%s'", s);
}

/* A closed pipe downstream is a normal end, as for head. */
static void
check_stdout(const char *stream)
{
	if (errno == EPIPE)
		exit(0);
	err(1, "%s: stdout", stream);
}

/*
 * --archive: the records of kds-expire's archives, with the options of a
 * live stream; shards are named by id or number, with no stream to ask.
 */
static int
from_archives(int argc, char *argv[], struct kds_iter_opts *o,
    struct kds_format *fmt, uint64_t limit, const char **names, size_t nnames)
{
	struct kds_archive_reader *rd;
	struct kds_record rec;
	struct kds_err e;
	uint64_t *shards = NULL, n = 0;
	int rc = 0;

	if (nnames > 0 && (shards = calloc(nnames, sizeof(*shards))) == NULL)
		err(1, NULL);
	for (size_t i = 0; i < nnames; i++) {
		if (kds_shard_id_parse(names[i], &shards[i]) == -1) {
			kds_format_free(fmt);
			free(shards);
			errx(2, "bad shard id '%.64s'", names[i]);
		}
	}
	o->shards = shards;
	o->nshards = nnames;
	if ((rd = kds_archive_reader_open((const char *const *)argv,
	    (size_t)argc, o, &e)) == NULL) {
		kds_format_free(fmt);
		free(shards);
		errx(1, "%s", e.msg);
	}
	signal(SIGPIPE, SIG_IGN);
	while (n < limit && (rc = kds_archive_reader_next(rd, &rec, &e)) == 1) {
		if (kds_format_write(stdout, fmt, kds_archive_reader_stream(rd),
		    &rec) == -1)
			check_stdout(kds_archive_reader_stream(rd));
		n++;
	}
	if (n < limit && rc == -1) {
		fflush(stdout);
		kds_archive_reader_close(rd);
		kds_format_free(fmt);
		free(shards);
		errx(1, "%s", e.msg);
	}
	if (fclose(stdout) == EOF)
		check_stdout(kds_archive_reader_stream(rd));
	kds_archive_reader_close(rd);
	kds_format_free(fmt);
	free(shards);
	free(names);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "null", no_argument, NULL, '0' },
		{ "limit", required_argument, NULL, 'n' },
		{ "shard", required_argument, NULL, 's' },
		{ "iterator", required_argument, NULL, 'i' },
		{ "sequence", required_argument, NULL, 'Q' },
		{ "timestamp", required_argument, NULL, 'T' },
		{ "output", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'F' },
		{ "archive", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct kds_iter_opts o = { .type = KDS_TRIM_HORIZON };
	const char *output = "lines", *format = NULL, *timestamp = NULL;
	const char **shard_names = NULL;
	uint64_t limit = UINT64_MAX, *shards = NULL, n = 0, seq_shard, seq_counter;
	size_t nshards = 0;
	int type = -1, ch, rc, archive = 0;
	struct kds_stream *st;
	struct kds_reader *rd;
	struct kds_format *fmt;
	struct kds_record rec;
	struct kds_err e;
	char *outbuf;

	while ((ch = getopt_long(argc, argv, "0n:s:i:o:hV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case '0':
			output = "null";
			break;
		case 'n':
			if (kds_parse_uint(optarg, UINT64_MAX, &limit) == -1)
				errx(2, "bad limit '%s'", optarg);
			break;
		case 's':
			shard_names = reallocarray(shard_names, nshards + 1,
			    sizeof(*shard_names));
			if (shard_names == NULL)
				err(1, NULL);
			shard_names[nshards++] = optarg;
			break;
		case 'i':
			type = iterator_type(optarg);
			break;
		case 'Q':
			o.sequence = optarg;
			break;
		case 'T':
			timestamp = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "lines") && strcmp(optarg, "raw") &&
			    strcmp(optarg, "jsonl"))
				errx(2, "bad output format '%s': lines, raw or "
				    "jsonl", optarg);
			output = optarg;
			break;
		case 'F':
			format = optarg;
			break;
		case 'A':
			archive = 1;
			break;
		case 'h':
			help();
			break;
		case 'V':
			printf("kds-get (kds) %s\n", KDS_VERSION);
			exit(0);
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if ((archive ? argc < 1 : argc != 1) || argv[0][0] == '\0')
		usage();

	/* --sequence and --timestamp imply their iterator, and need it. */
	if (type == -1)
		type = o.sequence ? KDS_AT_SEQUENCE_NUMBER : timestamp ?
		    KDS_AT_TIMESTAMP : KDS_TRIM_HORIZON;
	o.type = (enum kds_iterator)type;
	if ((o.type == KDS_AT_SEQUENCE_NUMBER ||
	    o.type == KDS_AFTER_SEQUENCE_NUMBER) != (o.sequence != NULL))
		errx(2, "--sequence goes with AT_SEQUENCE_NUMBER and "
		    "AFTER_SEQUENCE_NUMBER, and they need it");
	if ((o.type == KDS_AT_TIMESTAMP) != (timestamp != NULL))
		errx(2, "--timestamp goes with AT_TIMESTAMP, and it needs it");
	if (o.sequence && kds_seq_parse(o.sequence, &seq_shard, &seq_counter))
		errx(2, "bad sequence number '%.64s'", o.sequence);
	if (timestamp && kds_parse_time(timestamp, &o.timestamp_ms) == -1)
		errx(2, "bad timestamp '%s': ISO 8601 or epoch seconds",
		    timestamp);
	if (format != NULL && (fmt = kds_format_new(format, &e)) == NULL)
		errx(2, "%s", e.msg);
	if (format == NULL && (fmt = kds_format_builtin(output, &e)) == NULL)
		errx(2, "%s", e.msg);
	if (timestamp && o.timestamp_ms > kds_now_ms())
		errx(1, "%s: timestamp %s is in the future", argv[0], timestamp);

	if (archive)
		return from_archives(argc, argv, &o, fmt, limit, shard_names,
		    nshards);

	if ((st = kds_stream_open(argv[0], &e)) == NULL)
		errx(1, "%s: %s", argv[0], e.msg);
	if (nshards > 0 && (shards = calloc(nshards, sizeof(*shards))) == NULL)
		err(1, NULL);
	for (size_t i = 0; i < nshards; i++) {
		uint64_t sh;
		size_t j;

		if (kds_stream_shard_lookup(st, shard_names[i], &sh, &e) == -1)
			errx(1, "%s: %s", argv[0], e.msg);
		for (j = 0; j < o.nshards && shards[j] != sh; j++)
			;
		if (j == o.nshards)	/* named twice: read once */
			shards[o.nshards++] = sh;
	}
	o.shards = shards;
	if ((rd = kds_reader_open(st, &o, &e)) == NULL)
		errx(1, "%s: %s", argv[0], e.msg);

	signal(SIGPIPE, SIG_IGN);
	/* glibc ignores the size unless it is given the buffer. */
	if ((outbuf = malloc(OUTBUF)) != NULL)
		setvbuf(stdout, outbuf, _IOFBF, OUTBUF);
	while (n < limit && (rc = kds_reader_next(rd, &rec, &e)) == 1) {
		if (kds_format_write(stdout, fmt, argv[0], &rec) == -1)
			check_stdout(argv[0]);
		n++;
	}
	if (n < limit && rc == -1) {
		fflush(stdout);
		errx(1, "%s: %s", argv[0], e.msg);
	}
	if (fclose(stdout) == EOF)
		check_stdout(argv[0]);
	kds_reader_close(rd);
	kds_format_free(fmt);
	kds_stream_close(st);
	free(shards);
	free(shard_names);
	free(outbuf);
	return 0;
}
