/*
 * kds-reshard: split a shard, merge two, or scale a stream to N even
 * shards, as Kinesis SplitShard, MergeShards and UpdateShardCount do,
 * while producers and readers keep running.  Prints the shards it made.
 */
#include <err.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kds.h"

struct out {
	struct kds_stream	*st;
	const char		*name;		/* as messages show it */
	int			 json;
};

static char val[1024];		/* an argument, as a message shows it */
#define V(s)	kds_printable((s), val, sizeof(val))

static void
usage(void)
{
	fprintf(stderr, "usage: kds-reshard [-j] stream split shard [hashkey]\n"
	    "       kds-reshard [-j] stream merge shard adjacent-shard\n"
	    "       kds-reshard [-j] stream scale count\n");
	exit(2);
}

static void
help(void)
{
	printf("usage: kds-reshard [-j] stream split shard [hashkey]\n"
	    "       kds-reshard [-j] stream merge shard adjacent-shard\n"
	    "       kds-reshard [-j] stream scale count\n"
	    "  split SHARD [HASHKEY]  close SHARD; its children split its range at\n"
	    "                         HASHKEY (default: the middle)\n"
	    "  merge SHARD ADJACENT   close both; one child takes both ranges\n"
	    "  scale COUNT            end with COUNT even shards, 1 to %d\n"
	    "  -j, --json             print the shards made as JSON, one a line\n"
	    "  -h, --help             show this help\n"
	    "  -V, --version          show the version\n", KDS_MAX_SHARDS);
	if (fclose(stdout) == EOF)
		err(1, "stdout");
	exit(0);
}

static uint64_t
shard_arg(const char *s)
{
	uint64_t n;

	if (kds_shard_id_parse(s, &n) == -1)
		errx(2, "bad shard id '%s'", V(s));
	return n;
}

/* Each shard made, as its reshard is done: its id, or ListShards' JSON. */
static void
made(void *arg, uint64_t shard)
{
	struct out *o = arg;
	struct kds_shard_text d;
	struct kds_err e;

	if (kds_stream_shard_text(o->st, shard, &d, &e) == -1)
		errx(1, "%s: %s", o->name, e.msg);
	if (!o->json) {
		printf("%s\n", d.id);
	} else {
		printf("{\"ShardId\":\"%s\"", d.id);
		if (d.parent[0] != '\0')
			printf(",\"ParentShardId\":\"%s\"", d.parent);
		if (d.adjacent[0] != '\0')
			printf(",\"AdjacentParentShardId\":\"%s\"", d.adjacent);
		printf(",\"HashKeyRange\":{\"StartingHashKey\":\"%s\","
		    "\"EndingHashKey\":\"%s\"},\"SequenceNumberRange\":"
		    "{\"StartingSequenceNumber\":\"%s\"}}\n", d.start_hash,
		    d.end_hash, d.start_seq);
	}
	/* A reshard that fails later leaves these done: say so at once. */
	if (fflush(stdout) == EOF)
		err(1, "%s: stdout", o->name);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct out o = { NULL, NULL, 0 };
	enum { SPLIT, MERGE, SCALE } what;
	unsigned __int128 key, *keyp = NULL;
	struct kds_err e;
	uint64_t a = 0, b = 0, count = 0;
	const char *cmd;
	char name[1024];
	int c, rc;

	while ((c = getopt_long(argc, argv, "jhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = 1;
			break;
		case 'h':
			help();
			break;
		case 'V':
			printf("kds-reshard (kds) %s\n", KDS_VERSION);
			if (fclose(stdout) == EOF)
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
	if (argc < 2 || argv[0][0] == '\0')
		usage();
	o.name = kds_printable(argv[0], name, sizeof(name));
	cmd = argv[1];
	if (strcmp(cmd, "split") == 0) {
		what = SPLIT;
		if (argc != 3 && argc != 4)
			usage();
		a = shard_arg(argv[2]);
		if (argc == 4 && kds_hashkey_parse(argv[3], keyp = &key) == -1)
			errx(2, "bad hash key '%s': a decimal from 0 to 2^128-1",
			    V(argv[3]));
	} else if (strcmp(cmd, "merge") == 0) {
		what = MERGE;
		if (argc != 4)
			usage();
		a = shard_arg(argv[2]);
		b = shard_arg(argv[3]);
	} else if (strcmp(cmd, "scale") == 0) {
		what = SCALE;
		if (argc != 3)
			usage();
		if (kds_parse_uint(argv[2], KDS_MAX_SHARDS, &count) == -1 ||
		    count < 1)
			errx(2, "bad shard count '%s': 1 to %d", V(argv[2]),
			    KDS_MAX_SHARDS);
	} else {
		errx(2, "unknown command '%s': split, merge or scale", V(cmd));
	}

	if ((o.st = kds_stream_open(argv[0], &e)) == NULL)
		errx(1, "%s: %s", o.name, e.msg);
	if (what == SPLIT)
		rc = kds_reshard_split(o.st, a, keyp, made, &o, &e);
	else if (what == MERGE)
		rc = kds_reshard_merge(o.st, a, b, made, &o, &e);
	else
		rc = kds_reshard_scale(o.st, (unsigned)count, made, &o, &e);
	if (rc == -1)
		errx(1, "%s: %s", o.name, e.msg);
	kds_stream_close(o.st);
	if (fclose(stdout) == EOF)
		err(1, "%s: stdout", o.name);
	return 0;
}
