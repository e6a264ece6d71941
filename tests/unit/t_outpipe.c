/* t_outpipe.c: output written by a second thread (outpipe.c). */
#define _GNU_SOURCE
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

/* The threads of this process, from /proc. */
static int
threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;

	if (f == NULL)
		bail_out("/proc/self/status");
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

static int
pending(int fd)
{
	int n = -1;

	if (ioctl(fd, FIONREAD, &n) == -1)
		bail_out("FIONREAD");
	return n;
}

/* A byte pattern no two nearby positions share: a lost, doubled or
 * reordered block shows. */
static char
pat(size_t i)
{
	return (char)(i * 7 + i / 251);
}

/* Long output equal, or where it differs (not all of it, as is_mem). */
static void
same(const char *got, size_t gotlen, const char *want, size_t wantlen,
    const char *what)
{
	size_t i = 0;

	while (i < gotlen && i < wantlen && got[i] == want[i])
		i++;
	if (!ok(gotlen == wantlen && i == gotlen, "%s", what))
		diag("%zu bytes, not %zu; first difference at %zu", gotlen,
		    wantlen, i);
}

struct drain {
	int	 fd;
	char	*got;
	size_t	 len, cap;
};

static void *
drain(void *arg)
{
	struct drain *d = arg;
	ssize_t k;

	while ((k = read(d->fd, d->got + d->len, d->cap - d->len)) > 0)
		d->len += (size_t)k;
	return NULL;
}

/* The same, 16 kB every 2 ms: a reader slower than the writer. */
static void *
slow_drain(void *arg)
{
	struct drain *d = arg;
	ssize_t k;

	while ((k = read(d->fd, d->got + d->len, d->cap - d->len < 16384 ?
	    d->cap - d->len : 16384)) > 0) {
		d->len += (size_t)k;
		usleep(2000);
	}
	return NULL;
}

/* Less than a buffer: no thread, nothing written before the flush. */
static void
small(void)
{
	struct kds_outpipe *o;
	int p[2], before = threads();

	if (pipe(p) == -1 || (o = kds_outpipe_new(p[1], 4096)) == NULL)
		bail_out("setup");
	ok(kds_outpipe_write(o, "hello", 5) == 0 &&
	    kds_outpipe_write(o, NULL, 0) == 0, "write 5 bytes, and none");
	is_int(pending(p[0]), 0, "nothing written before the flush");
	ok(kds_outpipe_flush(o) == 0, "flush");
	is_int(pending(p[0]), 5, "all written at the flush");
	ok(kds_outpipe_write(o, "ab", 2) == 0 && kds_outpipe_flush(o) == 0 &&
	    pending(p[0]) == 7, "and again");
	is_int(threads(), before, "no thread for output under a buffer");
	kds_outpipe_free(o);
	close(p[0]);
	close(p[1]);
}

/*
 * Many writes of every size about the buffer's, and reservations, read
 * back whole and in order by a thread draining the pipe.
 */
static void
big(void)
{
	static const size_t sizes[] = { 1, 999, 1000, 1001, 2500, 3, 0, 1000,
		17, 4000, 1, 1 };
	struct drain d = { 0 };
	struct kds_outpipe *o;
	pthread_t t;
	size_t total = 0;
	int p[2], rc = 0, before, during;
	char *want;

	for (int round = 0; round < 50; round++)
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
			total += sizes[i] + 10;
	if ((want = malloc(total)) == NULL ||
	    (d.got = malloc(total + 1)) == NULL)
		bail_out("malloc");
	for (size_t i = 0; i < total; i++)
		want[i] = pat(i);
	d.cap = total + 1;
	if (pipe(p) == -1 || (o = kds_outpipe_new(p[1], 1000)) == NULL)
		bail_out("setup");
	d.fd = p[0];
	if (pthread_create(&t, NULL, drain, &d) != 0)
		bail_out("pthread_create");
	before = threads();	/* with the drain */
	total = 0;
	for (int round = 0; round < 50; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			char *r;

			rc |= kds_outpipe_write(o, want + total, sizes[i]);
			total += sizes[i];
			if ((r = kds_outpipe_reserve(o, 10)) == NULL) {
				rc = -1;
				continue;
			}
			memcpy(r, want + total, 10);
			total += 10;
		}
		if (round % 10 == 9)
			rc |= kds_outpipe_flush(o);
	}
	during = threads();
	rc |= kds_outpipe_flush(o);
	ok(rc == 0, "%zu bytes written and flushed, in buffers of 1000",
	    total);
	errno = 0;
	ok(kds_outpipe_reserve(o, 1001) == NULL && errno == EMSGSIZE,
	    "no reservation larger than a buffer");
	is_int(during, before + 1, "one writer thread");
	kds_outpipe_free(o);
	is_int(threads(), before, "no writer thread after free");
	close(p[1]);
	pthread_join(t, NULL);
	same(d.got, d.len, want, total, "the bytes, whole and in order");
	free(want);
	free(d.got);
	close(p[0]);
}

/* A flush returns once everything is written, the thread's part too. */
static void
flushed(void)
{
	char buf[777];
	struct kds_outpipe *o;
	FILE *tmp = tmpfile();
	struct stat st;
	off_t total = 0;
	int bad = 0;

	memset(buf, 'x', sizeof(buf));
	if (tmp == NULL || (o = kds_outpipe_new(fileno(tmp), 100)) == NULL)
		bail_out("setup");
	for (int i = 0; i < 200; i++) {
		size_t n = (size_t)(i * 37) % sizeof(buf);

		if (kds_outpipe_write(o, buf, n) == -1 ||
		    kds_outpipe_flush(o) == -1 || fstat(fileno(tmp), &st) == -1)
			bail_out("write");
		total += (off_t)n;
		bad += st.st_size != total;
	}
	is_int(bad, 0, "after each of 200 flushes, the file holds it all");
	kds_outpipe_free(o);
	fclose(tmp);
}

/* Write errors, from the caller's write or the thread's: sticky. */
static void
errors(void)
{
	char buf[10000];
	struct kds_outpipe *o;
	int fd = open("/dev/full", O_WRONLY), p[2], rc = 0;

	memset(buf, 'y', sizeof(buf));
	if (fd == -1 || (o = kds_outpipe_new(fd, 4096)) == NULL)
		bail_out("/dev/full");
	ok(kds_outpipe_write(o, "a\n", 2) == 0, "/dev/full: buffered");
	errno = 0;
	ok(kds_outpipe_flush(o) == -1 && errno == ENOSPC,
	    "/dev/full: ENOSPC at the flush");
	errno = 0;
	ok(kds_outpipe_write(o, "b", 1) == -1 && errno == ENOSPC &&
	    kds_outpipe_reserve(o, 1) == NULL && errno == ENOSPC &&
	    kds_outpipe_flush(o) == -1 && errno == ENOSPC,
	    "/dev/full: the error stays");
	kds_outpipe_free(o);

	if ((o = kds_outpipe_new(fd, 1000)) == NULL)
		bail_out("outpipe");
	for (int i = 0; i < 10 && rc == 0; i++)
		rc = kds_outpipe_write(o, buf, sizeof(buf));
	if (rc == 0)
		rc = kds_outpipe_flush(o);
	ok(rc == -1 && errno == ENOSPC, "/dev/full: ENOSPC from the thread");
	kds_outpipe_free(o);
	close(fd);

	signal(SIGPIPE, SIG_IGN);
	if (pipe(p) == -1 || (o = kds_outpipe_new(p[1], 1000)) == NULL)
		bail_out("pipe");
	close(p[0]);
	rc = 0;
	for (int i = 0; i < 10 && rc == 0; i++)
		rc = kds_outpipe_write(o, buf, sizeof(buf));
	if (rc == 0)
		rc = kds_outpipe_flush(o);
	ok(rc == -1 && errno == EPIPE, "a closed pipe: EPIPE");
	kds_outpipe_free(o);
	close(p[1]);
}

static void
on_alarm(int sig)
{
	(void)sig;
}

/*
 * A signal handler does not end a wait for a writer that is getting on
 * with it, on a pipe read slowly: the flush returns with all written.
 */
static void
interrupted_slow(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	struct itimerval it = { .it_value = { 0, 50000 },
	    .it_interval = { 0, 50000 } };
	size_t total = 4 << 20;
	struct drain d = { 0 };
	struct kds_outpipe *o;
	pthread_t t;
	int p[2], rc = 0;
	char *want;

	if ((want = malloc(total)) == NULL || (d.got = malloc(total)) == NULL)
		bail_out("malloc");
	for (size_t i = 0; i < total; i++)
		want[i] = pat(i);
	d.cap = total;
	if (pipe(p) == -1 || (o = kds_outpipe_new(p[1], 256 * 1024)) == NULL)
		bail_out("setup");
	d.fd = p[0];
	if (pthread_create(&t, NULL, slow_drain, &d) != 0)
		bail_out("pthread_create");
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);	/* every 50 ms */
	for (size_t off = 0; off < total; off += 100000)
		rc |= kds_outpipe_write(o, want + off, total - off < 100000 ?
		    total - off : 100000);
	rc |= kds_outpipe_flush(o);
	it.it_value.tv_usec = it.it_interval.tv_usec = 0;
	setitimer(ITIMER_REAL, &it, NULL);
	ok(rc == 0, "signals every 50 ms while a slow reader reads: no error");
	kds_outpipe_free(o);
	close(p[1]);
	pthread_join(t, NULL);
	same(d.got, d.len, want, total, "4 MB whole, in order");
	free(want);
	free(d.got);
	close(p[0]);
}

/*
 * A signal handler ends a wait for a writer stuck on a full pipe, with
 * EINTR, and free then cuts the writer's write short: nothing hangs.
 */
static void
interrupted(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	struct itimerval it = { .it_value = { 0, 200000 } };
	static char buf[1 << 16];
	struct kds_outpipe *o;
	int p[2], rc = 0, before = threads();

	if (pipe(p) == -1 || (o = kds_outpipe_new(p[1], sizeof(buf))) == NULL)
		bail_out("setup");
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &it, NULL);
	/* No one reads: the pipe fills, the writer blocks, and we wait. */
	for (int i = 0; i < 64 && rc == 0; i++)
		rc = kds_outpipe_write(o, buf, sizeof(buf));
	ok(rc == -1 && errno == EINTR, "a wait for a stuck writer: EINTR");
	errno = 0;
	ok(kds_outpipe_flush(o) == -1 && errno == EINTR, "and it stays");
	/* A watchdog: should free hang, the test dies of SIGALRM. */
	signal(SIGALRM, SIG_DFL);
	alarm(20);
	kds_outpipe_free(o);
	alarm(0);
	is_int(threads(), before, "free ended the stuck writer");
	close(p[0]);
	close(p[1]);
}

int
main(void)
{
	small();
	big();
	flushed();
	errors();
	interrupted_slow();
	interrupted();
	kds_outpipe_free(NULL);
	ok(1, "kds_outpipe_free(NULL) is harmless");
	return done_testing();
}
