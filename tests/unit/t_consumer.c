/* t_consumer.c: consumer names, checkpoint files, leases and workers
 * (consumer.c, lease.c, kds-stream(5) CONSUMERS). */
#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

static void
names(void)
{
	char long_ok[129], long_bad[130];
	static const char *good[] = { "a", "A-z_0.9", "etl.v2", "x..y", "-a" };
	static const char *bad[] = { "", ".", "..", ".a", "a/b", "a b", "\xc3\xbc",
	    "a\n", "*" };

	memset(long_ok, 'x', 128);
	long_ok[128] = '\0';
	memset(long_bad, 'x', 129);
	long_bad[129] = '\0';
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		ok(kds_consumer_name_ok(good[i]), "name '%s' is good", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ok(!kds_consumer_name_ok(bad[i]), "name '%s' is refused", bad[i]);
	ok(kds_consumer_name_ok(long_ok), "128 characters are good");
	ok(!kds_consumer_name_ok(long_bad), "129 characters are refused");
}

static void
put(int dfd, const char *name, const char *text)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0666);

	if (fd == -1 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
}

static void
checkpoints(int dfd)
{
	struct kds_checkpoint c;
	struct kds_err e;
	static const char *bad[] = { "", "garbage\n", "100000000000000000005\n",
	    "100000000000000000005 12", "200000000000000000005 12\n",
	    "100000000000000000000 12\n", "SHARD_END", "shard_end\n" };

	ok(kds_checkpoint_read(dfd, 0, &c, &e) == 0 && c.kind == KDS_CKPT_NONE,
	    "no file: no checkpoint");
	put(dfd, "shardId-000000000000.checkpoint",
	    "100000000000000000005 1764324000123\n");
	ok(kds_checkpoint_read(dfd, 0, &c, &e) == 0 && c.kind == KDS_CKPT_AT &&
	    c.counter == 5 && c.arrival_ms == 1764324000123, "seq and arrival");
	put(dfd, "shardId-000000000000.checkpoint", "SHARD_END\n");
	ok(kds_checkpoint_read(dfd, 0, &c, &e) == 0 && c.kind == KDS_CKPT_END,
	    "SHARD_END");
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		put(dfd, "shardId-000000000000.checkpoint", bad[i]);
		if (bad[i][0] == '\0') {
			ok(kds_checkpoint_read(dfd, 0, &c, &e) == 0 &&
			    c.kind == KDS_CKPT_NONE, "an empty file is none");
			continue;
		}
		ok(kds_checkpoint_read(dfd, 0, &c, &e) == -1, "bad checkpoint %zu "
		    "refused", i);
		is_str(e.msg, "shardId-000000000000.checkpoint: bad checkpoint",
		    "and named");
	}
}

static void
leases(int dfd)
{
	struct kds_err e;
	char w1[64], w2[64];
	size_t n = 99;
	int a = -1, b = -1, f1, f2;

	is_int(kds_lease_try(dfd, 3, &a, &e), 1, "a free lease is taken");
	is_int(kds_lease_try(dfd, 3, &b, &e), 0, "a held lease is not");
	kds_lease_release(a);
	is_int(kds_lease_try(dfd, 3, &b, &e), 1, "released, it is free again");
	kds_lease_release(b);

	ok(kds_worker_count(dfd, 1, &n, &e) == 0 && n == 0, "no worker");
	ok((f1 = kds_worker_register(dfd, w1, &e)) >= 0, "register one");
	ok((f2 = kds_worker_register(dfd, w2, &e)) >= 0, "register two");
	ok(strcmp(w1, w2) != 0 && strncmp(w1, "worker.", 7) == 0, "named apart");
	ok(kds_worker_count(dfd, 1, &n, &e) == 0 && n == 2, "two live");
	close(f2);		/* dies without unregistering */
	ok(kds_worker_count(dfd, 0, &n, &e) == 0 && n == 1, "one live");
	ok(faccessat(dfd, w2, F_OK, 0) == 0, "a look does not reap");
	ok(kds_worker_count(dfd, 1, &n, &e) == 0 && n == 1, "still one live");
	ok(faccessat(dfd, w2, F_OK, 0) == -1, "the dead one's file is reaped");
	kds_worker_unregister(dfd, w1, f1);
	ok(faccessat(dfd, w1, F_OK, 0) == -1, "unregister removes the file");
}

int
main(void)
{
	char dir[] = "/tmp/t_consumer.XXXXXX";
	int dfd;

	if (mkdtemp(dir) == NULL || (dfd = open(dir, O_RDONLY)) == -1)
		return 1;
	names();
	checkpoints(dfd);
	leases(dfd);
	{
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			diag("could not remove %s", dir);
	}
	close(dfd);
	return done_testing();
}
