/*
 * kds-create: make a stream, a directory of shards that split the 128-bit
 * hash key space exactly as AWS CreateStream does, so that a partition key
 * lands on the same shard here as there.
 */
#include <err.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "kds.h"

static void
usage(void)
{
	fprintf(stderr, "usage: kds-create [-n shards] [-r retention] "
	    "[--segment-bytes size]\n"
	    "                  [--segment-age duration] "
	    "[--compress-after duration] stream\n");
	exit(2);
}

static void
help(void)
{
	printf("usage: kds-create [-n shards] [-r retention] [--segment-bytes size]\n"
	    "                  [--segment-age duration] [--compress-after duration] stream\n"
	    "  -n, --shards N            shards, 1 to %d (default 1)\n"
	    "  -r, --retention DURATION  keep records this long: 90s, 30m, 24h, 7d;\n"
	    "                            at most 8760h (default 24h)\n"
	    "      --segment-bytes SIZE  start a new segment past SIZE bytes, K, M or G\n"
	    "                            (default 64M)\n"
	    "      --segment-age DURATION  or past this age (default 1h)\n"
	    "      --compress-after DURATION  kds-expire compresses sealed segments\n"
	    "                            whose newest record is this old: 0s to 8760h\n"
	    "                            (default: never)\n"
	    "  -h, --help                show this help\n"
	    "  -V, --version             show the version\n", KDS_MAX_SHARDS);
	if (fflush(stdout) == EOF)
		err(1, "stdout");
	exit(0);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "shards", required_argument, NULL, 'n' },
		{ "retention", required_argument, NULL, 'r' },
		{ "segment-bytes", required_argument, NULL, 'B' },
		{ "segment-age", required_argument, NULL, 'A' },
		{ "compress-after", required_argument, NULL, 'C' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct kds_create_opts o = { 1, 24 * 3600, 64 << 20, 3600, 0, 0 };
	struct kds_err e;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "n:r:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (kds_parse_uint(optarg, KDS_MAX_SHARDS, &v) == -1 || v < 1)
				errx(2, "bad shard count '%s': 1 to %d",
				    optarg, KDS_MAX_SHARDS);
			o.shards = (unsigned)v;
			break;
		case 'r':
			if (kds_parse_duration(optarg, &o.retention_s) == -1 ||
			    o.retention_s < 1 || o.retention_s > 8760 * 3600)
				errx(2, "bad retention '%s': a number and s, m, "
				    "h or d, from 1s to 8760h", optarg);
			break;
		case 'B':
			if (kds_parse_size(optarg, &o.segment_bytes) == -1 ||
			    o.segment_bytes < 4096 || o.segment_bytes > (1 << 30))
				errx(2, "bad segment size '%s': 4096 to 1G bytes",
				    optarg);
			break;
		case 'A':
			if (kds_parse_duration(optarg, &o.segment_age_s) == -1 ||
			    o.segment_age_s < 1 || o.segment_age_s > 8760 * 3600)
				errx(2, "bad segment age '%s': a number and s, m, "
				    "h or d, from 1s to 8760h", optarg);
			break;
		case 'C':
			if (kds_parse_duration(optarg, &o.compress_after_s) == -1 ||
			    o.compress_after_s > 8760 * 3600)
				errx(2, "bad compress-after '%s': a number and s, "
				    "m, h or d, from 0s to 8760h", optarg);
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
	argc -= optind;
	argv += optind;
	if (argc != 1 || argv[0][0] == '\0')
		usage();

	if (kds_stream_create(argv[0], &o, &e) == -1)
		errx(1, "%s: %s", argv[0], e.msg);
	return 0;
}
