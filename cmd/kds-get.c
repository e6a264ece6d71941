/*
 * kds-get: write a stream's records to standard output, from where an
 * iterator says, merged over shards by arrival time, each shard's order
 * kept.  Records come out as lines, raw, NUL-terminated, JSON lines as the
 * AWS API writes them, or in a --format of kcat's tokens.  -F follows the
 * stream as records arrive; -c reads as a named consumer, from its
 * checkpoints, moving them on as records are delivered (to stdout, or to
 * a command run per batch with --exec).
 */
#define _GNU_SOURCE
#include <sys/wait.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kds.h"

/* Each of stdout's two buffers (kds_outpipe). */
#define OUTBUF		(1 << 20)
/* A value as a message may show it: one line, escaped, cut. */
#define V(s)		kds_printable((s), val, sizeof(val))

static char val[256];
#define BATCH_DEFAULT	1000	/* records a batch for -c and --exec */

static const char *iterators[] = {
	[KDS_TRIM_HORIZON] = "TRIM_HORIZON",
	[KDS_LATEST] = "LATEST",
	[KDS_AT_SEQUENCE_NUMBER] = "AT_SEQUENCE_NUMBER",
	[KDS_AFTER_SEQUENCE_NUMBER] = "AFTER_SEQUENCE_NUMBER",
	[KDS_AT_TIMESTAMP] = "AT_TIMESTAMP",
};

#define SYNOPSIS \
	"usage: kds-get [-0F] [-n limit] [-s shard]... [-i type] " \
	"[--sequence seq]\n" \
	"               [--timestamp time] [-o lines|raw|jsonl] " \
	"[--format fmt]\n" \
	"               [--idle-timeout duration] [-c name [-b batch] " \
	"[--exec cmd]]\n" \
	"               stream\n" \
	"       kds-get -c name --reset | --delete stream\n" \
	"       kds-get --archive [options] file ...\n"

/* What the command line asked for; one per run. */
struct get {
	const char		*stream;	/* as given, for %t */
	const char		*name;		/* as messages show it */
	struct kds_iter_opts	 o;
	struct kds_format	*fmt;
	uint64_t		 limit;
	int			 follow;
	int64_t			 idle_ms;	/* -1: wait for ever */
	const char		*consumer;
	const char		*exec;
	uint64_t		 batch;
	struct kds_stream	*st;
	struct kds_reader	*rd;		/* without -c */
	struct kds_consumer	*c;		/* with -c */
	struct kds_outpipe	*op;		/* stdout, without --exec */
	FILE			*out;		/* --exec's pipe */
	pid_t			 child;
	int			 warned;	/* that -F polls */
};

static volatile sig_atomic_t stop;

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
	    "  -F, --follow          keep reading as records arrive, like tail -f\n"
	    "      --idle-timeout D  with -F, exit after D without a record (e.g. 30s)\n"
	    "  -c, --consumer NAME   read as this named consumer, from its checkpoints\n"
	    "  -b, --batch N         at most N records a batch (default %d)\n"
	    "      --exec CMD        run CMD with each batch on its stdin; checkpoint\n"
	    "                        only when it exits 0\n"
	    "      --reset           with -c: forget the consumer's checkpoints\n"
	    "      --delete          with -c: drop the consumer\n"
	    "      --archive         read kds-expire's archives, the files named,\n"
	    "                        instead of a stream\n"
	    "  -h, --help            show this help\n"
	    "  -V, --version         show the version\n", BATCH_DEFAULT);
	if (fflush(stdout) == EOF)
		err(1, "stdout");
	exit(0);
}

static int
iterator_type(const char *s)
{
	for (size_t i = 0; i < sizeof(iterators) / sizeof(iterators[0]); i++)
		if (strcasecmp(s, iterators[i]) == 0)
			return (int)i;
	errx(2, "bad iterator type '%s'", V(s));
}

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * stdout failed.  A closed pipe downstream is a normal end, as for head,
 * and so is a write cut short by SIGINT or SIGTERM; the records of the
 * batch are not checkpointed.  _exit: stdio would only try again.
 */
static void
out_failed(struct get *g)
{
	int saved = errno;

	kds_consumer_close(g->c);
	kds_outpipe_free(g->op);
	if (saved == EPIPE || (saved == EINTR && stop))
		_exit(0);
	errno = saved;
	warn("%s: stdout", g->name);
	_exit(1);
}

static void
fail(struct get *g, const char *msg)
{
	kds_consumer_close(g->c);
	kds_outpipe_free(g->op);
	errx(1, "%s: %s", g->name, msg);
}

static int
source_next(struct get *g, struct kds_record *rec, struct kds_err *e)
{
	return g->c ? kds_consumer_next(g->c, rec, e) :
	    kds_reader_next(g->rd, rec, e);
}

/* --exec: start CMD with a pipe to its stdin; its stdout is ours. */
static void
exec_start(struct get *g)
{
	int p[2];

	fflush(stdout);
	if (pipe2(p, O_CLOEXEC) == -1)
		err(1, "%s: pipe", g->name);
	if ((g->child = fork()) == -1)
		err(1, "%s: fork", g->name);
	if (g->child == 0) {
		signal(SIGPIPE, SIG_DFL);
		if (dup2(p[0], 0) == -1)
			_exit(127);
		execl("/bin/sh", "sh", "-c", g->exec, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	if ((g->out = fdopen(p[1], "w")) == NULL)
		err(1, "%s: pipe", g->name);
}

/* --exec: close CMD's input and wait; its exit status, 128 + signal. */
static int
exec_end(struct get *g, int broken)
{
	int status;

	/* Whatever stops the last of the batch reaching CMD (it exited
	 * early: EPIPE; a signal: EINTR) leaves the batch undelivered. */
	if (fclose(g->out) == EOF)
		broken = 1;
	g->out = NULL;
	while (waitpid(g->child, &status, 0) == -1)
		if (errno != EINTR)
			err(1, "%s: wait", g->name);
	status = WIFEXITED(status) ? WEXITSTATUS(status) :
	    128 + WTERMSIG(status);
	if (status != 0) {
		kds_consumer_close(g->c);
		warnx("%s: %s: exit status %d", g->name, V(g->exec), status);
		exit(status);
	}
	if (broken)
		fail(g, "--exec: the command did not read its whole batch");
	return 0;
}

/*
 * One batch: the records available now, at most -b (and the -n left).
 * Delivered (flushed to stdout, or taken by CMD, which exited 0), then
 * checkpointed.  Returns the number of records.
 */
static uint64_t
batch(struct get *g, uint64_t max)
{
	struct kds_record rec;
	struct kds_err e;
	uint64_t n = 0;
	int rc = 0, broken = 0;

	while (n < max && !stop && (rc = source_next(g, &rec, &e)) == 1) {
		if (!g->exec) {
			if (kds_format_out(g->op, g->fmt, g->stream, &rec) == -1)
				out_failed(g);
			n++;
			continue;
		}
		if (g->out == NULL)
			exec_start(g);
		if (kds_format_write(g->out, g->fmt, g->stream, &rec) == -1) {
			broken = 1;
			break;
		}
		n++;
	}
	if (g->exec && g->out != NULL)
		exec_end(g, broken);
	/* Written out in full, the writer thread's part too, before the
	 * checkpoint says so. */
	else if (!g->exec && kds_outpipe_flush(g->op) == -1)
		out_failed(g);
	/* What was delivered is checkpointed even when a read failed. */
	if (n > 0 && g->c && kds_consumer_commit(g->c, &e) == -1)
		fail(g, e.msg);
	if (rc == -1)
		fail(g, e.msg);
	return n;
}

/* Once: following goes on without inotify, as tail -f says it does. */
static void
polling_said(struct get *g)
{
	int why = g->c ? kds_consumer_polling(g->c) : kds_reader_polling(g->rd);

	if (why == 0 || g->warned)
		return;
	g->warned = 1;
	if (why == ENOSPC || why == EMFILE || why == ENFILE)
		warnx("%s: inotify resources exhausted: looking for new records "
		    "every %d ms", g->name, KDS_FOLLOW_POLL_MS);
	else
		warnx("%s: inotify: %s: looking for new records every %d ms",
		    g->name, strerror(why), KDS_FOLLOW_POLL_MS);
}

/* Sleep until a record may have come, the idle time is up or a signal. */
static void
wait_more(struct get *g, int64_t deadline)
{
	sigset_t block, old;
	struct kds_err e;
	int64_t left = -1;
	int rc = 0;

	polling_said(g);
	if (deadline >= 0)
		left = deadline - mono_ms();
	if (left > INT32_MAX)
		left = INT32_MAX;
	/* Signals blocked from the check of stop to inside ppoll: a stop
	 * between the two is not slept through. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	if (!stop)
		rc = g->c ? kds_consumer_wait(g->c, (int)left, &old, &e) :
		    kds_reader_wait(g->rd, (int)left, &old, &e);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (rc == -1)
		fail(g, e.msg);
}

/* Read, batch after batch; with -F, wait when there is nothing. */
static void
run(struct get *g)
{
	uint64_t total = 0, n;
	int64_t deadline = g->idle_ms >= 0 ? mono_ms() + g->idle_ms : -1;

	while (total < g->limit && !stop) {
		uint64_t max = g->limit - total < g->batch ? g->limit - total :
		    g->batch;

		if ((n = batch(g, max)) > 0) {
			total += n;
			if (g->idle_ms >= 0)
				deadline = mono_ms() + g->idle_ms;
			continue;
		}
		if (!g->follow || (deadline >= 0 && mono_ms() >= deadline))
			break;
		wait_more(g, deadline);
	}
}

static void
open_shards(struct get *g, const char **names, size_t nnames)
{
	uint64_t *shards;
	struct kds_err e;

	if (nnames == 0)
		return;
	if ((shards = calloc(nnames, sizeof(*shards))) == NULL)
		err(1, NULL);
	for (size_t i = 0; i < nnames; i++) {
		uint64_t sh;
		size_t j;

		if (kds_stream_shard_lookup(g->st, names[i], &sh, &e) == -1) {
			free(shards);
			errx(1, "%s: %s", g->name, e.msg);
		}
		for (j = 0; j < g->o.nshards && shards[j] != sh; j++)
			;
		if (j == g->o.nshards)	/* named twice: read once */
			shards[g->o.nshards++] = sh;
	}
	g->o.shards = shards;
}

/* The checks of options against each other, once all are known. */
static void
check_options(struct get *g, int type, const char *timestamp, size_t nshards,
    int reset, int del, int batch_set)
{
	uint64_t seq_shard, seq_counter;

	/* --sequence and --timestamp imply their iterator, and need it. */
	if (type == -1)
		type = g->o.sequence ? KDS_AT_SEQUENCE_NUMBER : timestamp ?
		    KDS_AT_TIMESTAMP : KDS_TRIM_HORIZON;
	g->o.type = (enum kds_iterator)type;
	if ((g->o.type == KDS_AT_SEQUENCE_NUMBER ||
	    g->o.type == KDS_AFTER_SEQUENCE_NUMBER) != (g->o.sequence != NULL))
		errx(2, "--sequence goes with AT_SEQUENCE_NUMBER and "
		    "AFTER_SEQUENCE_NUMBER, and they need it");
	if ((g->o.type == KDS_AT_TIMESTAMP) != (timestamp != NULL))
		errx(2, "--timestamp goes with AT_TIMESTAMP, and it needs it");
	if (g->o.sequence && kds_seq_parse(g->o.sequence, &seq_shard,
	    &seq_counter))
		errx(2, "bad sequence number '%s'", V(g->o.sequence));
	if (timestamp && kds_parse_time(timestamp, &g->o.timestamp_ms) == -1)
		errx(2, "bad timestamp '%s': ISO 8601 or epoch seconds",
		    V(timestamp));
	if ((reset || del) && g->consumer == NULL)
		errx(2, "--reset and --delete go with -c");
	if (reset && del)
		errx(2, "--reset and --delete do not go together");
	if (g->consumer && !kds_consumer_name_ok(g->consumer))
		errx(2, "bad consumer name '%s': 1 to 128 of A-Z a-z 0-9 _ . -, "
		    "not starting with '.'", V(g->consumer));
	if (g->consumer && nshards > 0)
		errx(2, "-s does not go with -c: a consumer reads every shard");
	if (g->consumer && g->o.sequence)
		errx(2, "-c starts at TRIM_HORIZON, LATEST or AT_TIMESTAMP");
	if (batch_set && g->consumer == NULL && g->exec == NULL)
		errx(2, "-b goes with -c or --exec");
	if (g->o.type == KDS_AT_TIMESTAMP && g->o.timestamp_ms > kds_now_ms())
		errx(1, "%s: timestamp %s is in the future", g->name,
		    timestamp);
}

/* --reset, --delete: act on the consumer, read nothing. */
static void
reset(struct get *g, int drop)
{
	struct kds_err e;

	if (kds_consumer_reset(g->st, g->consumer, drop, &e) == -1)
		errx(1, "%s: %s", g->name, e.msg);
	exit(0);
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
			errx(2, "bad shard id '%s'", V(names[i]));
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
		{ "format", required_argument, NULL, 'f' },
		{ "follow", no_argument, NULL, 'F' },
		{ "idle-timeout", required_argument, NULL, 'I' },
		{ "consumer", required_argument, NULL, 'c' },
		{ "batch", required_argument, NULL, 'b' },
		{ "exec", required_argument, NULL, 'X' },
		{ "reset", no_argument, NULL, 'R' },
		{ "delete", no_argument, NULL, 'D' },
		{ "archive", no_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct get g = { .limit = UINT64_MAX, .idle_ms = -1,
	    .batch = BATCH_DEFAULT };
	const char *output = "lines", *format = NULL, *timestamp = NULL;
	const char **shard_names = NULL;
	size_t nshards = 0;
	int type = -1, ch, resetc = 0, del = 0, archive = 0, batch_set = 0;
	int64_t secs;
	struct kds_err e;
	char name[256];

	while ((ch = getopt_long(argc, argv, "0n:s:i:o:Fc:b:hV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case '0':
			output = "null";
			break;
		case 'n':
			if (kds_parse_uint(optarg, UINT64_MAX, &g.limit) == -1)
				errx(2, "bad limit '%s'", V(optarg));
			break;
		case 's':
			/* Malformed is a usage error; missing is found later. */
			if (kds_shard_id_parse(optarg, &(uint64_t){ 0 }) == -1)
				errx(2, "bad shard id '%s'", V(optarg));
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
			g.o.sequence = optarg;
			break;
		case 'T':
			timestamp = optarg;
			break;
		case 'o':
			if (strcmp(optarg, "lines") && strcmp(optarg, "raw") &&
			    strcmp(optarg, "jsonl"))
				errx(2, "bad output format '%s': lines, raw or "
				    "jsonl", V(optarg));
			output = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'F':
			g.follow = 1;
			break;
		case 'I':
			if (kds_parse_duration(optarg, &secs) == -1 ||
			    secs > INT64_MAX / 1000)
				errx(2, "bad idle timeout '%s': a number and "
				    "s, m, h or d", V(optarg));
			g.idle_ms = secs * 1000;
			break;
		case 'c':
			g.consumer = optarg;
			break;
		case 'b':
			if (kds_parse_uint(optarg, UINT64_MAX, &g.batch) == -1 ||
			    g.batch == 0)
				errx(2, "bad batch size '%s'", V(optarg));
			batch_set = 1;
			break;
		case 'X':
			g.exec = optarg;
			break;
		case 'R':
			resetc = 1;
			break;
		case 'D':
			del = 1;
			break;
		case 'A':
			archive = 1;
			break;
		case 'h':
			help();
			break;
		case 'V':
			printf("kds-get (kds) %s\n", KDS_VERSION);
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
	if ((archive ? argc < 1 : argc != 1) || argv[0][0] == '\0')
		usage();
	g.stream = argv[0];
	g.name = kds_printable(argv[0], name, sizeof(name));
	if (format != NULL && (g.fmt = kds_format_new(format, &e)) == NULL)
		errx(2, "%s", e.msg);
	if (format == NULL && (g.fmt = kds_format_builtin(output, &e)) == NULL)
		errx(2, "%s", e.msg);
	if (g.idle_ms >= 0)
		g.follow = 1;
	check_options(&g, type, timestamp, nshards, resetc, del, batch_set);
	if (g.exec == NULL && g.consumer == NULL)
		g.batch = UINT64_MAX;	/* flush when nothing is left */

	if (archive) {
		if (g.follow || g.consumer)
			errx(2, "--archive does not go with -F or -c");
		return from_archives(argc, argv, &g.o, g.fmt, g.limit,
		    shard_names, nshards);
	}

	if ((g.st = kds_stream_open(g.stream, &e)) == NULL)
		errx(1, "%s: %s", g.name, e.msg);
	if (resetc || del)
		reset(&g, del);
	open_shards(&g, shard_names, nshards);
	if (g.follow)
		g.o.flags = KDS_READ_FOLLOW | KDS_READ_CHILDREN;
	if (g.follow || g.consumer) {
		struct sigaction sa = { .sa_handler = on_stop };

		/* No SA_RESTART: a write stuck on a full pipe ends too. */
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	if (g.consumer)
		g.c = kds_consumer_open(g.st, g.consumer, &g.o, &e);
	else
		g.rd = kds_reader_open(g.st, &g.o, &e);
	if (g.c == NULL && g.rd == NULL)
		errx(1, "%s: %s", g.name, e.msg);

	signal(SIGPIPE, SIG_IGN);
	/* Records go to stdout through an outpipe, not stdio: written by a
	 * second thread while this one reads on. */
	if (!g.exec && (g.op = kds_outpipe_new(STDOUT_FILENO, OUTBUF)) == NULL)
		err(1, "%s", g.name);
	run(&g);
	kds_consumer_close(g.c);
	kds_outpipe_free(g.op);
	if (fclose(stdout) == EOF && errno != EPIPE)
		err(1, "%s: stdout", g.name);
	kds_reader_close(g.rd);
	kds_format_free(g.fmt);
	kds_stream_close(g.st);
	free((void *)g.o.shards);
	free(shard_names);
	return 0;
}
