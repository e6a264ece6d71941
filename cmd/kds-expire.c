/*
 * kds-expire: remove the records a stream's retention has passed, a whole
 * segment at a time, optionally archiving them first to tar.zst files
 * named as Kinesis Data Firehose names its S3 objects; then compress the
 * sealed segments past the stream's compress-after.  Quiet unless told
 * otherwise, so that it can run from cron.
 */
#include <sys/stat.h>
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kds.h"

#define SYNOPSIS "usage: kds-expire [-nv] [-a dir] [-r retention] " \
	"[--compress-after duration]\n" \
	"                  [--no-wait] stream ...\n"

struct run {
	const char	*stream;
	char		 name[1024];	/* stream, as messages show it */
	int		 verbose;
	int		 said;		/* lines reported for this stream */
	int		 shown;		/* a progress line is on the terminal */
	struct timespec	 start, last;
};

static void
usage(void)
{
	fputs(SYNOPSIS, stderr);
	exit(2);
}

/* --help and --version: a full or closed stdout is a failure. */
static void __attribute__((noreturn))
done(void)
{
	if (fclose(stdout) == EOF)
		err(1, "stdout");
	exit(0);
}

static void
help(void)
{
	printf(SYNOPSIS
	    "  -a, --archive DIR        archive expired segments under DIR first\n"
	    "  -r, --retention DURATION change the retention first: 90s, 30m, 24h, 7d;\n"
	    "                           at most 8760h\n"
	    "      --compress-after DURATION  change compress-after first, then\n"
	    "                           compress sealed segments whose newest record\n"
	    "                           is this old: 0s to 8760h\n"
	    "  -n, --dry-run            say what would be done, do nothing\n"
	    "  -v, --verbose            say what is done\n"
	    "      --no-wait            skip a stream that another process has locked\n"
	    "  -h, --help               show this help\n"
	    "  -V, --version            show the version\n");
	done();
}

static void
report(void *arg, const char *line)
{
	struct run *r = arg;

	r->said++;
	if (!r->verbose)
		return;
	if (r->shown) {
		fputs("\r\033[K", stderr);
		r->shown = 0;
	}
	printf("%s: %s\n", r->name, line);
	fflush(stdout);
}

static double
since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* On a terminal, once the work has taken a second: bytes archived. */
static void
progress(void *arg, uint64_t done, uint64_t total)
{
	struct run *r = arg;
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (since(&r->start, &now) < 1.0 || (r->shown &&
	    since(&r->last, &now) < 0.25 && done < total))
		return;
	r->last = now;
	r->shown = 1;
	fprintf(stderr, "\rkds-expire: %s: archived %.1f of %.1f MiB (%d%%)"
	    "\033[K", r->name, (double)done / 1048576,
	    (double)total / 1048576, total ? (int)(done * 100 / total) : 100);
}

/* One stream: 0, or 1 after printing why it failed. */
static int
expire(struct run *r, struct kds_expire_opts *o)
{
	struct kds_stream *st;
	struct kds_err e;
	int rc;

	r->said = r->shown = 0;
	clock_gettime(CLOCK_MONOTONIC, &r->start);
	o->arg = r;
	if ((st = kds_stream_open(r->stream, &e)) == NULL) {
		warnx("%s: %s", r->name, e.msg);
		return 1;
	}
	rc = kds_expire(st, o, &e);
	kds_stream_close(st);
	if (r->shown)
		fputs("\r\033[K", stderr);
	if (rc == -1) {
		fflush(stdout);
		warnx("%s: %s", r->name, e.msg);
		return 1;
	}
	if (rc == 1 && r->verbose)
		printf("%s: skipped: locked by another process\n", r->name);
	else if (r->said == 0 && r->verbose)
		printf("%s: nothing has expired\n", r->name);
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "archive", required_argument, NULL, 'a' },
		{ "retention", required_argument, NULL, 'r' },
		{ "compress-after", required_argument, NULL, 'C' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "no-wait", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct kds_expire_opts o = { .report = report, .compress_after_s = -1 };
	struct run r = { 0 };
	struct stat sb;
	char val[1024];
	int ch, status = 0;

	while ((ch = getopt_long(argc, argv, "a:r:nvhV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'a':
			o.archive_dir = optarg;
			break;
		case 'r':
			if (kds_parse_duration(optarg, &o.retention_s) == -1 ||
			    o.retention_s < 1 || o.retention_s > 8760 * 3600)
				errx(2, "bad retention '%s': a number and s, m, "
				    "h or d, from 1s to 8760h",
				    kds_printable(optarg, val, sizeof(val)));
			break;
		case 'C':
			if (kds_parse_duration(optarg, &o.compress_after_s) == -1 ||
			    o.compress_after_s > 8760 * 3600)
				errx(2, "bad compress-after '%s': a number and s, "
				    "m, h or d, from 0s to 8760h",
				    kds_printable(optarg, val, sizeof(val)));
			break;
		case 'n':
			o.dry_run = 1;
			break;
		case 'v':
			r.verbose = 1;
			break;
		case 'W':
			o.nowait = 1;
			break;
		case 'h':
			help();
			break;
		case 'V':
			printf("kds-expire (kds) %s\n", KDS_VERSION);
			done();
		default:
			usage();
		}
	}
	/* A file size limit must fail a write (EFBIG), not kill us midway. */
	signal(SIGXFSZ, SIG_IGN);
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	for (int i = 0; i < argc; i++)
		if (argv[i][0] == '\0')
			usage();
	if (o.dry_run)
		r.verbose = 1;
	if (o.archive_dir != NULL)
		kds_printable(o.archive_dir, val, sizeof(val));
	if (o.archive_dir != NULL && stat(o.archive_dir, &sb) == -1)
		err(1, "%s", val);
	if (o.archive_dir != NULL && !S_ISDIR(sb.st_mode))
		errx(1, "%s: %s", val, strerror(ENOTDIR));
	if (isatty(STDERR_FILENO))
		o.progress = progress;

	for (int i = 0; i < argc; i++) {
		r.stream = argv[i];
		kds_printable(r.stream, r.name, sizeof(r.name));
		status |= expire(&r, &o);
	}
	if (fclose(stdout) == EOF)
		err(1, "stdout");
	return status;
}
