/*
 * follow.c: waiting for records, as tail -f does, without a polling loop.
 * inotify watches each shard directory read (a segment appended to, a new
 * segment renamed into place) and the stream directory (meta replaced by a
 * reshard, which closes shards and adds their children).  An event only
 * marks its shard for another look; the look itself is the reader's, so
 * a lost or merged event costs nothing but the wake-up.
 */
#define _GNU_SOURCE
#include <sys/inotify.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reader.h"

#define SHARD_EVENTS	(IN_MODIFY | IN_CREATE | IN_MOVED_TO)
#define STREAM_EVENTS	(IN_CREATE | IN_MOVED_TO)

/*
 * inotify out of instances or watches (their limits are per user, and a
 * busy machine's tail -f and editors share them), or not there at all:
 * follow by looking every KDS_FOLLOW_POLL_MS instead, as tail -f does,
 * rather than fail.  Any other error (a directory gone, no permission)
 * is one.
 */
static int
lacking(int errnum)
{
	return errnum == EMFILE || errnum == ENFILE || errnum == ENOSPC ||
	    errnum == ENOMEM || errnum == ENOSYS;
}

static void
poll_instead(struct kds_reader *rd, int errnum)
{
	if (rd->ifd != -1)
		close(rd->ifd);		/* and every watch with it */
	rd->ifd = rd->meta_wd = -1;
	for (size_t i = 0; i < rd->n; i++)
		rd->shards[i]->wd = -1;
	rd->polling = errnum;
}

int
kds_follow_start(struct kds_reader *rd, struct kds_err *e)
{
	if ((rd->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1) {
		if (lacking(errno)) {
			poll_instead(rd, errno);
			return 0;
		}
		return kds_fail_errno(e, "inotify");
	}
	rd->meta_wd = inotify_add_watch(rd->ifd, rd->st->path, STREAM_EVENTS);
	if (rd->meta_wd == -1 && lacking(errno)) {
		poll_instead(rd, errno);
		return 0;
	}
	if (rd->meta_wd == -1)
		return kds_fail_errno(e, "watch");
	return 0;
}

int
kds_follow_watch(struct kds_reader *rd, struct shard_reader *r,
    struct kds_err *e)
{
	char id[KDS_SHARD_ID_LEN + 1], *path;

	kds_shard_id(r->shard, id);
	if (asprintf(&path, "%s/%s", rd->st->path, id) == -1)
		return kds_fail_errno(e, "%s", id);
	r->wd = inotify_add_watch(rd->ifd, path, SHARD_EVENTS);
	free(path);
	if (r->wd == -1 && lacking(errno)) {
		poll_instead(rd, errno);
		return 0;
	}
	if (r->wd == -1)
		return kds_fail_errno(e, "%s: watch", id);
	return 0;
}

int
kds_reader_polling(const struct kds_reader *rd)
{
	return rd->polling;
}

void
kds_follow_stop(struct kds_reader *rd)
{
	if (rd->ifd != -1)
		close(rd->ifd);
	rd->ifd = -1;
}

/* Read every queued event; mark the shards they name.  *meta: the stream
 * directory saw meta replaced (or events were lost). */
static int
drain(struct kds_reader *rd, int *meta, struct kds_err *e)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

	for (;;) {
		ssize_t n = read(rd->ifd, buf, sizeof(buf));

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return kds_fail_errno(e, "inotify: read");
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				*meta = 1;
				for (size_t i = 0; i < rd->n; i++)
					rd->shards[i]->dirty = 1;
			} else if (ev->wd == rd->meta_wd) {
				if (ev->len > 0 && strcmp(ev->name, "meta") == 0)
					*meta = 1;
			} else {
				for (size_t i = 0; i < rd->n; i++)
					if (rd->shards[i]->wd == ev->wd)
						rd->shards[i]->dirty = 1;
			}
		}
	}
}

int
kds_reader_wait(struct kds_reader *rd, int timeout_ms, const sigset_t *mask,
    struct kds_err *e)
{
	struct pollfd pfd = { .fd = rd->ifd, .events = POLLIN };
	struct timespec ts, *tsp = NULL;
	int n, meta = 0, changed;

	if (rd->nheap > 0 || rd->last >= 0)
		return 1;	/* records are waiting already */
	if (timeout_ms >= 0) {
		ts.tv_sec = timeout_ms / 1000;
		ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000;
		tsp = &ts;
	}
	if (rd->polling && (tsp == NULL || timeout_ms > KDS_FOLLOW_POLL_MS)) {
		ts.tv_sec = 0;
		ts.tv_nsec = KDS_FOLLOW_POLL_MS * 1000000L;
		tsp = &ts;
	}
	n = ppoll(rd->ifd == -1 ? NULL : &pfd, rd->ifd == -1 ? 0 : 1, tsp,
	    mask);
	if (n == -1 && errno == EINTR)
		return 0;
	if (n == -1)
		return kds_fail_errno(e, "poll");
	if (n == 0 && !rd->polling)
		return 0;
	if (rd->polling) {
		/* No events to say where: look everywhere, meta too. */
		for (size_t i = 0; i < rd->n; i++)
			rd->shards[i]->dirty = 1;
		meta = 1;
	} else if (drain(rd, &meta, e) == -1) {
		return -1;
	}
	if (meta) {
		/* Shards may have closed: every idle one gets another look,
		 * and a closed one's children may join. */
		if (kds_stream_reload(rd->st, &changed, e) == -1)
			return -1;
		for (size_t i = 0; i < rd->n; i++)
			rd->shards[i]->dirty = 1;
		if (kds_reader_adopt_children(rd, e) == -1)
			return -1;
	}
	for (size_t i = 0; i < rd->n; i++) {
		struct shard_reader *r = rd->shards[i];

		if (r->dirty && r->state == SR_IDLE &&
		    kds_reader_poke(rd, r, e) == -1)
			return -1;
		r->dirty = 0;
	}
	if (kds_reader_settle(rd, e) == -1)
		return -1;
	return 1;
}
