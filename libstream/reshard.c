/*
 * reshard.c: SplitShard, MergeShards and UpdateShardCount (UNIFORM_SCALING)
 * over files (kds-stream(5), RESHARDING).
 *
 * A reshard closes open shards and makes children that take over their hash
 * keys.  Nothing is copied: a parent keeps its records, and its children
 * start empty, numbered above it, their arrival times floored at the
 * parents' last.  One transaction holds STREAM/lock, then the tails of the
 * shards it closes (ascending), so that no writer appends to a parent
 * after its end is taken; writers waiting for those locks find the shard
 * closed and follow the new meta to the children.
 */
#define _GNU_SOURCE
#include <sys/resource.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define U128_MAX	(~(unsigned __int128)0)
#define BATCH_MAX	256	/* splits or merges in one transaction */

/* One split or merge of a transaction. */
struct op {
	int			 merge;
	uint64_t		 a, b;		/* split: a; merge: a, then b */
	unsigned __int128	 key;		/* split: the upper child's start */
};

/* A shard being closed: its lock is held from hold to the end. */
struct parent {
	uint64_t		 shard;
	struct kds_shard_writer	*w;
	int			 held, marked;
	uint64_t		 last_counter;
	int64_t			 last_arrival;
};

static struct kds_shard *
find(const struct kds_meta *m, uint64_t number)
{
	size_t lo = 0, hi = m->nshards;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->shards[mid].number == number)
			return &m->shards[mid];
		if (m->shards[mid].number < number)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static size_t
open_count(const struct kds_meta *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nshards; i++)
		n += m->shards[i].open;
	return n;
}

/* The shard, open: or an error naming the rule. */
static const struct kds_shard *
open_shard(const struct kds_meta *m, uint64_t number, const char *verb,
    struct kds_err *e)
{
	const struct kds_shard *sh = find(m, number);
	char id[KDS_SHARD_ID_LEN + 1];

	kds_shard_id(number, id);
	if (sh == NULL) {
		kds_fail(e, ENOENT, "%s: no such shard", id);
		return NULL;
	}
	if (!sh->open) {
		kds_fail(e, EINVAL, "%s: shard is closed: only open shards can "
		    "be %s", id, verb);
		return NULL;
	}
	return sh;
}

/*
 * AWS's rules (aws), or for the steps of a scaling only that both children
 * have keys.  The split key must be greater than the shard's starting hash
 * key plus one and less than its ending hash key; a merge takes a shard
 * and the one whose range starts right after it.
 */
static int
check(const struct kds_meta *m, const struct op *op, int aws,
    struct kds_err *e)
{
	const struct kds_shard *x, *y;
	char ia[KDS_SHARD_ID_LEN + 1], ib[KDS_SHARD_ID_LEN + 1];
	char k[KDS_HASHKEY_LEN], s[KDS_HASHKEY_LEN], t[KDS_HASHKEY_LEN];

	kds_shard_id(op->a, ia);
	kds_shard_id(op->b, ib);
	if (!op->merge) {
		int ok;

		if ((x = open_shard(m, op->a, "split", e)) == NULL)
			return -1;
		if (aws)
			ok = x->start_hash < U128_MAX - 1 &&
			    op->key > x->start_hash + 1 && op->key < x->end_hash;
		else
			ok = op->key > x->start_hash && op->key <= x->end_hash;
		if (!ok) {
			kds_hashkey_format(op->key, k);
			kds_hashkey_format(x->start_hash, s);
			kds_hashkey_format(x->end_hash, t);
			return kds_fail(e, EINVAL, "%s: new starting hash key %s "
			    "is not both greater than the shard's starting hash "
			    "key %s plus one and less than its ending hash key "
			    "%s", ia, k, s, t);
		}
		if (aws && open_count(m) + 1 > KDS_MAX_SHARDS)
			return kds_fail(e, EINVAL, "%s: a split would make more "
			    "than %d open shards", ia, KDS_MAX_SHARDS);
		return 0;
	}
	if (op->a == op->b)
		return kds_fail(e, EINVAL, "%s: a shard cannot be merged with "
		    "itself", ia);
	if ((x = open_shard(m, op->a, "merged", e)) == NULL ||
	    (y = open_shard(m, op->b, "merged", e)) == NULL)
		return -1;
	if (x->end_hash == U128_MAX || x->end_hash + 1 != y->start_hash) {
		kds_hashkey_format(x->end_hash, s);
		kds_hashkey_format(y->start_hash, t);
		return kds_fail(e, EINVAL, "%s and %s are not adjacent: %s ends "
		    "at %s and %s starts at %s; the second must start right "
		    "after the first", ia, ib, ia, s, ib, t);
	}
	return 0;
}

/* Remove one shard directory that meta does not name. */
static int
remove_shard_dir(int sdirfd, const char *name, struct kds_err *e)
{
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(sdirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		return kds_fail_errno(e, "%s", name);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return kds_fail_errno(e, "%s", name);
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == -1) {
			kds_fail_errno(e, "%s/%s: unlink", name, de->d_name);
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	if (unlinkat(sdirfd, name, AT_REMOVEDIR) == -1)
		return kds_fail_errno(e, "%s: rmdir", name);
	return 0;
}

/* Shard directories numbered next-shard or higher: an interrupted reshard
 * made them and never named them in meta, so nobody else opens them. */
static int
remove_leftovers(int sdirfd, uint64_t next, struct kds_err *e)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	if ((fd = openat(sdirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return kds_fail_errno(e, "%s", ".");
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return kds_fail_errno(e, "%s", ".");
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		uint64_t n;

		if (strncmp(de->d_name, "shardId-", 8) != 0 ||
		    kds_shard_id_parse(de->d_name, &n) == -1 || n < next)
			continue;
		rc = remove_shard_dir(sdirfd, de->d_name, e);
	}
	closedir(d);
	return rc;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static struct parent *
parent_of(struct parent *p, size_t n, uint64_t shard)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].shard == shard)
			return &p[i];
	return NULL;
}

static void
release(struct parent *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i].marked)
			(void)kds_shard_writer_mark(p[i].w, 0, NULL);
		if (p[i].held)
			kds_shard_writer_end(p[i].w);
		kds_shard_writer_free(p[i].w);
	}
	free(p);
}

/* Did a meta write that reported failure rename the new meta in? */
static int
replaced(int sdirfd, uint64_t next)
{
	struct kds_meta m;
	int yes;

	if (kds_meta_read(sdirfd, &m, NULL) == -1)
		return 0;
	yes = m.next_shard >= next;
	kds_meta_free(&m);
	return yes;
}

static struct kds_shard *
add_child(struct kds_meta *m, int64_t parent, int64_t adjacent,
    unsigned __int128 start, unsigned __int128 end)
{
	struct kds_shard *c = &m->shards[m->nshards++];

	memset(c, 0, sizeof(*c));
	c->number = m->next_shard++;
	c->open = 1;
	c->parent = parent;
	c->adjacent = adjacent;
	c->start_hash = start;
	c->end_hash = end;
	return c;
}

/*
 * One transaction: the caller holds STREAM/lock.  Either meta ends with
 * every op done, or nothing is changed.
 */
static int
commit(struct kds_stream *st, const struct op *ops, size_t nops, int aws,
    kds_shard_fn *fn, void *arg, struct kds_err *e)
{
	struct kds_meta nm = { 0 };
	struct parent *par = NULL;
	uint64_t *nums = NULL, first_child = 0;
	size_t npar = 0, nchild = 0;
	int64_t now = kds_now_ms();
	int rc = -1;

	if (kds_stream_reread(st, e) == -1)
		return -1;
	for (size_t i = 0; i < nops; i++)
		if (check(&st->meta, &ops[i], aws, e) == -1)
			return -1;
	if (remove_leftovers(st->dirfd, st->meta.next_shard, e) == -1)
		return -1;

	/* The shards to close, locked in ascending order and held. */
	if ((nums = calloc(2 * nops, sizeof(*nums))) == NULL ||
	    (par = calloc(2 * nops, sizeof(*par))) == NULL) {
		kds_fail_errno(e, "reshard");
		goto out;
	}
	for (size_t i = 0; i < nops; i++) {
		nums[npar++] = ops[i].a;
		if (ops[i].merge)
			nums[npar++] = ops[i].b;
	}
	qsort(nums, npar, sizeof(*nums), cmp_u64);
	for (size_t i = 0; i < npar; i++) {
		if (i > 0 && nums[i] == nums[i - 1]) {
			char id[KDS_SHARD_ID_LEN + 1];

			kds_shard_id(nums[i], id);
			kds_fail(e, EINVAL, "%s: resharded twice at once", id);
			npar = i;
			goto out;
		}
		par[i].shard = nums[i];
		if ((par[i].w = kds_shard_writer_new(st, nums[i],
		    KDS_SYNC_ALWAYS, e)) == NULL) {
			npar = i;
			goto out;
		}
		if (kds_shard_writer_hold(par[i].w, &par[i].last_counter,
		    &par[i].last_arrival, e) == -1) {
			npar = i + 1;
			goto out;
		}
		par[i].held = 1;
	}

	/* The new table: a copy, parents closed, children at the end. */
	nm = st->meta;
	nm.shards = calloc(st->meta.nshards + 2 * nops, sizeof(*nm.shards));
	if (nm.shards == NULL) {
		kds_fail_errno(e, "reshard");
		goto out;
	}
	memcpy(nm.shards, st->meta.shards, st->meta.nshards *
	    sizeof(*nm.shards));
	first_child = nm.next_shard;
	for (size_t i = 0; i < nops; i++) {
		const struct op *op = &ops[i];
		struct kds_shard *x = find(&nm, op->a), *y = NULL;
		struct parent *px = parent_of(par, npar, op->a), *py = NULL;
		int64_t floor_ms = px->last_arrival, created;
		size_t had = nm.nshards;

		x->open = 0;
		x->end_counter = px->last_counter;
		if (op->merge) {
			y = find(&nm, op->b);
			py = parent_of(par, npar, op->b);
			y->open = 0;
			y->end_counter = py->last_counter;
			if (py->last_arrival > floor_ms)
				floor_ms = py->last_arrival;
			add_child(&nm, (int64_t)op->a, (int64_t)op->b,
			    x->start_hash, y->end_hash);
		} else {
			add_child(&nm, (int64_t)op->a, -1, x->start_hash,
			    op->key - 1);
			add_child(&nm, (int64_t)op->a, -1, op->key, x->end_hash);
		}
		/* No child record arrives before its parents' last. */
		created = now > floor_ms ? now : floor_ms;
		for (size_t c = had; c < nm.nshards; c++) {
			nchild++;	/* to remove, even half made */
			if (kds_shard_init(st->dirfd, nm.shards[c].number,
			    created, floor_ms, e) == -1)
				goto out;
		}
	}

	/* Flags first: a writer must not trust an old meta's inode. */
	for (size_t i = 0; i < npar; i++) {
		if (kds_shard_writer_mark(par[i].w, 1, e) == -1)
			goto out;
		par[i].marked = 1;
	}
	if (kds_meta_write(st->dirfd, &nm, e) == -1) {
		if (!replaced(st->dirfd, nm.next_shard))
			goto out;
		/* Renamed into place, but the directory sync failed: the
		 * children are named in meta and must stay. */
		for (size_t i = 0; i < npar; i++)
			par[i].marked = 0;
		nchild = 0;
		goto out;
	}
	for (size_t i = 0; i < npar; i++)
		par[i].marked = 0;
	kds_meta_free(&st->meta);
	st->meta = nm;
	nm.shards = NULL;
	st->meta_size = -1;	/* not the file's: the next reload reads it */
	nchild = 0;
	rc = 0;
out:
	release(par, npar);
	/* A failed transaction leaves no child behind. */
	for (size_t c = 0; c < nchild; c++) {
		char id[KDS_SHARD_ID_LEN + 1];

		kds_shard_id(first_child + c, id);
		(void)remove_shard_dir(st->dirfd, id, NULL);
	}
	free(nm.shards);
	free(nums);
	if (rc == 0 && fn != NULL)
		for (uint64_t c = first_child; c < st->meta.next_shard; c++)
			fn(arg, c);
	return rc;
}

static int
lock_stream(struct kds_stream *st, struct kds_err *e)
{
	int fd = openat(st->dirfd, "lock", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1)
		return kds_fail_errno(e, "lock");
	if (kds_lock(fd, "lock", e) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
unlock_stream(int fd)
{
	kds_unlock(fd);
	close(fd);
}

static int
one(struct kds_stream *st, const struct op *op, kds_shard_fn *fn, void *arg,
    struct kds_err *e)
{
	int fd, rc;

	if ((fd = lock_stream(st, e)) == -1)
		return -1;
	rc = commit(st, op, 1, 1, fn, arg, e);
	unlock_stream(fd);
	return rc;
}

int
kds_reshard_split(struct kds_stream *st, uint64_t shard,
    const unsigned __int128 *key, kds_shard_fn *fn, void *arg,
    struct kds_err *e)
{
	struct op op = { 0, shard, shard, 0 };
	int fd, rc;

	if (key != NULL) {
		op.key = *key;
		return one(st, &op, fn, arg, e);
	}
	/* The middle of the range, as the AWS console offers: start +
	 * (end - start + 1) / 2, which must not overflow at 2^128. */
	if ((fd = lock_stream(st, e)) == -1)
		return -1;
	if ((rc = kds_stream_reread(st, e)) == 0) {
		const struct kds_shard *sh = find(&st->meta, shard);

		if (sh != NULL) {
			unsigned __int128 d = sh->end_hash - sh->start_hash;

			op.key = sh->start_hash + d / 2 + (d & 1);
		}
		rc = commit(st, &op, 1, 1, fn, arg, e);
	}
	unlock_stream(fd);
	return rc;
}

int
kds_reshard_merge(struct kds_stream *st, uint64_t shard, uint64_t adjacent,
    kds_shard_fn *fn, void *arg, struct kds_err *e)
{
	struct op op = { 1, shard, adjacent, 0 };

	return one(st, &op, fn, arg, e);
}

/* Open shards by starting hash key. */
static int
cmp_start(const void *a, const void *b)
{
	const struct kds_shard *x = *(const struct kds_shard *const *)a;
	const struct kds_shard *y = *(const struct kds_shard *const *)b;

	return (x->start_hash > y->start_hash) - (x->start_hash < y->start_hash);
}

static size_t
open_by_hash(const struct kds_meta *m, const struct kds_shard **out)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nshards; i++)
		if (m->shards[i].open)
			out[n++] = &m->shards[i];
	qsort(out, n, sizeof(*out), cmp_start);
	return n;
}

/* Which of the n even ranges holds hash key k; h is the width of one. */
static unsigned __int128
range_of(unsigned __int128 k, unsigned __int128 h, unsigned n)
{
	unsigned __int128 r = k / h;

	return r > n - 1 ? n - 1 : r;
}

/*
 * The next round of a scaling to n shards: splits while an open shard
 * holds a boundary of the n ranges (it splits at its middle boundary, so
 * that k boundaries take log2(k + 1) rounds); then merges, in pairs, of
 * the open shards inside one range.  0 ops: done.
 */
static size_t
plan(const struct kds_meta *m, unsigned n, const struct kds_shard **sorted,
    struct op *ops)
{
	unsigned __int128 h, start, end;
	size_t nopen = open_by_hash(m, sorted), nops = 0;

	/* h: the width of every range but the last, which ends at 2^128-1;
	 * range j starts at j * h. */
	kds_aws_ranges(n, 0, &start, &end);
	h = n == 1 ? U128_MAX : end + 1;
	for (size_t i = 0; i < nopen && n > 1; i++) {
		const struct kds_shard *sh = sorted[i];
		unsigned __int128 lo = sh->start_hash / h + 1;
		unsigned __int128 hi = sh->end_hash / h;

		if (hi > n - 1)
			hi = n - 1;
		if (lo > hi)
			continue;
		ops[nops].merge = 0;
		ops[nops].a = sh->number;
		ops[nops].key = (lo + (hi - lo) / 2) * h;
		nops++;
	}
	if (nops > 0)
		return nops;
	for (size_t i = 0; i + 1 < nopen; i++) {
		if (range_of(sorted[i]->start_hash, h, n) !=
		    range_of(sorted[i + 1]->start_hash, h, n))
			continue;
		ops[nops].merge = 1;
		ops[nops].a = sorted[i]->number;
		ops[nops].b = sorted[i + 1]->number;
		nops++;
		i++;		/* in pairs: this one is taken */
	}
	return nops;
}

/*
 * How many splits or merges one transaction of a scaling takes: each holds
 * one or two tail locks, one descriptor each, until the transaction ends,
 * and the process may have few descriptors.
 */
static size_t
batch_size(void)
{
	struct rlimit rl;
	rlim_t n = BATCH_MAX;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = rl.rlim_cur > 64 ? (rl.rlim_cur - 32) / 2 : 1;
	return n < BATCH_MAX ? (size_t)n : BATCH_MAX;
}

int
kds_reshard_scale(struct kds_stream *st, unsigned n, kds_shard_fn *fn,
    void *arg, struct kds_err *e)
{
	const struct kds_shard **sorted = NULL;
	struct op *ops = NULL;
	size_t batch = batch_size();
	int fd, rc = -1;

	if (n < 1 || n > KDS_MAX_SHARDS)
		return kds_fail(e, EINVAL, "bad shard count %u: 1 to %d", n,
		    KDS_MAX_SHARDS);
	/* STREAM/lock from the first round to the last: another reshard
	 * cannot change the plan halfway. */
	if ((fd = lock_stream(st, e)) == -1)
		return -1;
	for (;;) {
		size_t nops;

		if (kds_stream_reread(st, e) == -1)
			break;
		free(sorted);
		free(ops);
		sorted = calloc(st->meta.nshards, sizeof(*sorted));
		ops = calloc(st->meta.nshards, sizeof(*ops));
		if (sorted == NULL || ops == NULL) {
			kds_fail_errno(e, "reshard");
			break;
		}
		if ((nops = plan(&st->meta, n, sorted, ops)) == 0) {
			rc = 0;
			break;
		}
		for (size_t i = 0; i < nops; i += batch) {
			size_t k = nops - i < batch ? nops - i : batch;

			if (commit(st, ops + i, k, 0, fn, arg, e) == -1)
				goto out;
		}
	}
out:
	unlock_stream(fd);
	free(sorted);
	free(ops);
	return rc;
}
