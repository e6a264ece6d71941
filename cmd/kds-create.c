/*
 * kds-create: make a stream, a directory of shards that split the 128-bit
 * hash key space exactly as AWS CreateStream does, so that a partition key
 * lands on the same shard here as there.
 */
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kds.h"

static void
usage(void)
{
	fprintf(stderr, "usage: kds-create [-n shards] [-r retention] "
	    "[--segment-bytes size]\n"
	    "                  [--segment-age duration] [--group group]\n"
	    "                  [--compress-after duration] stream\n");
	exit(2);
}

static void
help(void)
{
	printf("usage: kds-create [-n shards] [-r retention] [--segment-bytes size]\n"
	    "                  [--segment-age duration] [--group group]\n"
	    "                  [--compress-after duration] stream\n"
	    "  -n, --shards N            shards, 1 to %d (default 1)\n"
	    "  -r, --retention DURATION  keep records this long: 90s, 30m, 24h, 7d;\n"
	    "                            at most 8760h (default 24h)\n"
	    "      --segment-bytes SIZE  start a new segment past SIZE bytes, K, M or G\n"
	    "                            (default 64M)\n"
	    "      --segment-age DURATION  or past this age (default 1h)\n"
	    "      --group GROUP         the members of GROUP may all write and read\n"
	    "      --compress-after DURATION  kds-expire compresses sealed segments\n"
	    "                            whose newest record is this old: 0s to 8760h\n"
	    "                            (default: never)\n"
	    "  -h, --help                show this help\n"
	    "  -V, --version             show the version\n", KDS_MAX_SHARDS);
	if (fflush(stdout) == EOF)
		err(1, "stdout");
	exit(0);
}

/* An option's value, fit for one line of a message. */
#define V(s)	kds_printable((s), val, sizeof(val))

/* A group by name, or by number as chgrp(1) takes it. */
static int
group_id(const char *s, uint32_t *gid)
{
	struct group *gr = getgrnam(s);
	unsigned long n;
	char *end;

	if (gr != NULL) {
		*gid = (uint32_t)gr->gr_gid;
		return 0;
	}
	errno = 0;
	n = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || errno != 0 ||
	    n >= UINT32_MAX || getgrgid((gid_t)n) == NULL)
		return -1;
	*gid = (uint32_t)n;
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "shards", required_argument, NULL, 'n' },
		{ "retention", required_argument, NULL, 'r' },
		{ "segment-bytes", required_argument, NULL, 'B' },
		{ "segment-age", required_argument, NULL, 'A' },
		{ "group", required_argument, NULL, 'G' },
		{ "compress-after", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct kds_create_opts o = { 1, 24 * 3600, 64 << 20, 3600, 0, 0 };
	struct kds_err e;
	const char *group = NULL;
	char name[1024], val[80];
	uint32_t gid = 0;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "n:r:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (kds_parse_uint(optarg, KDS_MAX_SHARDS, &v) == -1 || v < 1)
				errx(2, "bad shard count '%s': 1 to %d",
				    V(optarg), KDS_MAX_SHARDS);
			o.shards = (unsigned)v;
			break;
		case 'r':
			if (kds_parse_duration(optarg, &o.retention_s) == -1 ||
			    o.retention_s < 1 || o.retention_s > 8760 * 3600)
				errx(2, "bad retention '%s': a number and s, m, "
				    "h or d, from 1s to 8760h", V(optarg));
			break;
		case 'B':
			if (kds_parse_size(optarg, &o.segment_bytes) == -1 ||
			    o.segment_bytes < 4096 || o.segment_bytes > (1 << 30))
				errx(2, "bad segment size '%s': 4096 to 1G bytes",
				    V(optarg));
			break;
		case 'A':
			if (kds_parse_duration(optarg, &o.segment_age_s) == -1 ||
			    o.segment_age_s < 1 || o.segment_age_s > 8760 * 3600)
				errx(2, "bad segment age '%s': a number and s, m, "
				    "h or d, from 1s to 8760h", V(optarg));
			break;
		case 'G':
			group = optarg;
			if (group_id(group, &gid) == -1)
				errx(2, "bad group '%s': no such group",
				    V(group));
			break;
		case 'C':
			if (kds_parse_duration(optarg, &o.compress_after_s) == -1 ||
			    o.compress_after_s > 8760 * 3600)
				errx(2, "bad compress-after '%s': a number and s, "
				    "m, h or d, from 0s to 8760h", V(optarg));
			o.compress = 1;
			break;
		case 'h':
			help();
			break;
		case 'V':
			printf("kds-create (kds) %s\n", KDS_VERSION);
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
	kds_printable(argv[0], name, sizeof(name));
	/* A name that would break every message and listing is refused. */
	for (const char *p = argv[0]; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			errx(2, "bad stream path '%s': control characters are "
			    "not allowed", name);

	if ((group ? kds_stream_create_shared(argv[0], &o, gid, &e) :
	    kds_stream_create(argv[0], &o, &e)) == -1)
		errx(1, "%s: %s", name, e.msg);
	return 0;
}
