/*
 * outpipe.c: output to a descriptor, written by a second thread while the
 * caller makes the next buffer (double buffering, as pigz and zstd -T do
 * it), so that write(2)'s copy of the output costs the second core and not
 * the reader's.
 *
 * Two buffers at most, of the size given to kds_outpipe_new().  The caller
 * fills one; when it is full it is handed to the writer thread, which
 * writes it whole and gives it back, while the caller fills the other.
 * The thread and the second buffer come only when a first buffer fills:
 * less output than a buffer holds is written at kds_outpipe_flush() by the
 * caller itself, with no thread, as stdio would.
 *
 * Ownership.  Between the caller's post of todo and the writer's post of
 * done (busy set), the writer owns wbuf, wlen and werr, and the caller
 * touches none of them; the caller's buffer is buf[cur], never wbuf.  The
 * two semaphores order those accesses.  Semaphores and not a condition
 * variable: sem_wait() ends with EINTR when a signal handler installed
 * without SA_RESTART runs (see collect()).
 *
 * Signals.  The writer thread blocks every signal, so that each goes to
 * the caller's thread, as if there were no writer: a handler interrupts
 * the caller's ppoll, write or wait, and not an idle thread beside it.
 * A signal that interrupts the caller's wait for the writer ends the wait
 * (EINTR) only once the writer is stuck, as it ends a write(2) blocked on
 * a full pipe, and not while the writer is getting on with it, as a
 * write(2) to a file would: kds-get -F ends on SIGINT after writing what
 * it has read, unless no one reads its output.
 *
 * Errors are sticky, as ferror's: after the first failed write (or a wait
 * given up, EINTR) every call fails with the same errno, and what is
 * still buffered is never written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* The writer's write(2)s are at most this long, so that its progress
 * shows while a pipe drains slowly. */
#define CHUNK		(128 * 1024)
/* After a signal, a writer that wrote nothing for this long is stuck.
 * Long enough that a busy machine's scheduler is not taken for a reader
 * that stopped: at 250 ms a slow pipe reader beside a loaded make check
 * passed for a stuck one. */
#define STUCK_MS	1000

static void *
writer(void *arg)
{
	struct kds_outpipe *o = arg;

	for (;;) {
		/* No signal reaches this thread: EINTR here is spurious. */
		while (sem_wait(&o->todo) == -1)
			;
		if (o->quit)
			return NULL;
		for (size_t off = 0, n; off < o->wlen && o->werr == 0;
		    off += n) {
			n = o->wlen - off < CHUNK ? o->wlen - off : CHUNK;
			if (kds_write_all_intr(o->fd, o->wbuf + off, n) == -1)
				o->werr = errno;
			atomic_fetch_add_explicit(&o->progress, 1,
			    memory_order_relaxed);
		}
		sem_post(&o->done);
	}
}

struct kds_outpipe *
kds_outpipe_new(int fd, size_t bufsize)
{
	struct kds_outpipe *o;

	if (bufsize == 0) {
		errno = EINVAL;
		return NULL;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return NULL;
	if ((o->buf[0] = malloc(bufsize)) == NULL) {
		free(o);
		return NULL;
	}
	o->fd = fd;
	o->cap = bufsize;
	sem_init(&o->todo, 0, 0);
	sem_init(&o->done, 0, 0);
	return o;
}

/*
 * The writer thread and its buffer, at the first buffer full.  When
 * either cannot be had, the caller writes its buffers itself (thread -1):
 * slower, but the output is the same, so it is no error.
 */
static void
start(struct kds_outpipe *o)
{
	sigset_t all, old;

	o->thread = -1;
	if ((o->buf[1] = malloc(o->cap)) == NULL)
		return;
	/* The thread inherits this mask: it never takes a signal. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&o->tid, NULL, writer, o) == 0)
		o->thread = 1;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (o->thread == -1) {
		free(o->buf[1]);
		o->buf[1] = NULL;
	}
}

static int
failed(struct kds_outpipe *o, int errnum)
{
	if (o->err == 0)
		o->err = errnum;
	errno = o->err;
	return -1;
}

/*
 * Wait until the writer wrote what it had; or, once a signal handler ran,
 * until it did or no chunk of it moved for STUCK_MS (then EINTR, with the
 * writer still busy, blocked on a pipe no one reads).
 */
static int
wait_done(struct kds_outpipe *o)
{
	struct timespec ts;
	unsigned long seen;

	if (sem_wait(&o->done) == 0)
		return 0;
	for (;;) {
		if (errno != EINTR && errno != ETIMEDOUT)
			return -1;
		seen = atomic_load_explicit(&o->progress, memory_order_relaxed);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += STUCK_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		if (sem_timedwait(&o->done, &ts) == 0)
			return 0;
		if (errno == ETIMEDOUT && seen == atomic_load_explicit(
		    &o->progress, memory_order_relaxed)) {
			errno = EINTR;
			return -1;
		}
	}
}

/* Wait for the writer to give its buffer back; its error becomes ours. */
static int
collect(struct kds_outpipe *o)
{
	if (!o->busy)
		return 0;
	if (wait_done(o) == -1)
		return failed(o, errno);	/* busy stays set */
	o->busy = 0;
	if (o->werr)
		return failed(o, o->werr);
	return 0;
}

/* buf[cur] written by the caller, here and now. */
static int
write_here(struct kds_outpipe *o)
{
	if (o->len > 0 &&
	    kds_write_all_intr(o->fd, o->buf[o->cur], o->len) == -1)
		return failed(o, errno);
	o->len = 0;
	return 0;
}

/* buf[cur] is done: to the writer, and fill the other one meanwhile. */
static int
hand_over(struct kds_outpipe *o)
{
	if (o->thread == 0)
		start(o);
	if (o->thread == -1)
		return write_here(o);
	if (collect(o) == -1)
		return -1;
	o->wbuf = o->buf[o->cur];
	o->wlen = o->len;
	o->busy = 1;
	sem_post(&o->todo);
	o->cur ^= 1;
	o->len = 0;
	return 0;
}

char *
kds_outpipe_reserve_slow(struct kds_outpipe *o, size_t n)
{
	char *p;

	if (o->err) {
		failed(o, o->err);
		return NULL;
	}
	if (n > o->cap) {
		errno = EMSGSIZE;
		return NULL;
	}
	if (hand_over(o) == -1)
		return NULL;
	p = o->buf[o->cur] + o->len;
	o->len += n;
	return p;
}

int
kds_outpipe_write(struct kds_outpipe *o, const void *p, size_t n)
{
	const char *s = p;

	if (o->err)
		return failed(o, o->err);
	if (n == 0)		/* and p may be NULL */
		return 0;
	for (;;) {
		size_t k = o->cap - o->len < n ? o->cap - o->len : n;

		memcpy(o->buf[o->cur] + o->len, s, k);
		o->len += k;
		s += k;
		n -= k;
		/* A full buffer stays until more comes: a flush may write it
		 * without the thread. */
		if (n == 0)
			return 0;
		if (hand_over(o) == -1)
			return -1;
	}
}

int
kds_outpipe_flush(struct kds_outpipe *o)
{
	if (o->err)
		return failed(o, o->err);
	/* Once there is a writer, the rest goes through it too: a signal
	 * would cut the caller's own write(2) to a slow reader short, while
	 * a wait for the writer goes on as long as the reader reads. */
	if (o->thread == 1 && o->len > 0 && hand_over(o) == -1)
		return -1;
	if (collect(o) == -1)
		return -1;
	return write_here(o);
}

void
kds_outpipe_free(struct kds_outpipe *o)
{
	if (o == NULL)
		return;
	if (o->thread == 1) {
		/* A writer still busy (a wait cut short by a signal) may be
		 * blocked on a pipe no one reads: cut its write short. */
		if (o->busy) {
			pthread_cancel(o->tid);
		} else {
			o->quit = 1;
			sem_post(&o->todo);
		}
		pthread_join(o->tid, NULL);
	}
	sem_destroy(&o->todo);
	sem_destroy(&o->done);
	free(o->buf[0]);
	free(o->buf[1]);
	free(o);
}
