/*
 * meta.c: STREAM/meta, the stream's settings and shard table in plain text
 * (kds-stream(5), META).  Read whole, checked against its checksum line,
 * and only ever replaced whole through kds_atomic_write().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define META_MAX	(16 * 1024 * 1024)

static int
read_all(int dirfd, const char *name, char **out, size_t *outlen,
    struct kds_err *e)
{
	size_t cap = 4096, len = 0;
	char *buf;
	int fd;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return kds_fail_errno(e, "%s", name);
	if ((buf = malloc(cap + 1)) == NULL)
		goto nomem;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *nb;

			if (cap >= META_MAX) {
				kds_fail(e, EFBIG, "%s: larger than %d bytes",
				    name, META_MAX);
				goto fail;
			}
			cap *= 2;
			if ((nb = realloc(buf, cap + 1)) == NULL)
				goto nomem;
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			kds_fail_errno(e, "%s: read", name);
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
nomem:
	kds_fail_errno(e, "%s", name);
fail:
	free(buf);
	close(fd);
	return -1;
}

static int
parse_parent(const char *s, int64_t *v)
{
	uint64_t n;

	if (strcmp(s, "-") == 0) {
		*v = -1;
		return 0;
	}
	if (kds_shard_id_parse(s, &n) == -1 || strncmp(s, "shardId-", 8) != 0)
		return -1;
	*v = (int64_t)n;
	return 0;
}

static int
parse_shard(char *args, struct kds_shard *sh)
{
	char *f[8], *save = NULL;
	uint64_t shard, counter;
	size_t n = 0;

	for (char *t = strtok_r(args, " ", &save); t != NULL;
	    t = strtok_r(NULL, " ", &save)) {
		if (n == 8)
			return -1;
		f[n++] = t;
	}
	if (n != 8 || strncmp(f[0], "shardId-", 8) != 0 ||
	    kds_shard_id_parse(f[0], &sh->number) == -1)
		return -1;
	if (strcmp(f[1], "open") == 0)
		sh->open = 1;
	else if (strcmp(f[1], "closed") == 0)
		sh->open = 0;
	else
		return -1;
	if (parse_parent(f[2], &sh->parent) || parse_parent(f[3], &sh->adjacent))
		return -1;
	if (kds_hashkey_parse(f[4], &sh->start_hash) ||
	    kds_hashkey_parse(f[5], &sh->end_hash) ||
	    sh->start_hash > sh->end_hash)
		return -1;
	if (kds_seq_parse(f[6], &shard, &counter) || shard != sh->number ||
	    counter != 1)
		return -1;
	sh->end_counter = 0;
	if (sh->open != (strcmp(f[7], "-") == 0))
		return -1;
	if (!sh->open && (kds_seq_parse(f[7], &shard, &sh->end_counter) ||
	    shard != sh->number))
		return -1;
	return 0;
}

/* 0; -1 when the line is malformed; -2 when its key is unknown. */
static int
parse_line(char *line, struct kds_meta *m, size_t *cap)
{
	char *sp = strchr(line, ' '), *val;
	uint64_t v;

	if (sp == NULL)
		return -1;
	*sp = '\0';
	val = sp + 1;
	if (strcmp(line, "shard") == 0) {
		struct kds_shard *sh;

		if (m->nshards == *cap) {
			size_t nc = *cap ? *cap * 2 : 8;
			struct kds_shard *ns;

			if ((ns = reallocarray(m->shards, nc, sizeof(*ns))) == NULL)
				return -1;
			m->shards = ns;
			*cap = nc;
		}
		sh = &m->shards[m->nshards];
		if (parse_shard(val, sh) == -1)
			return -1;
		if (m->nshards > 0 && sh->number <= sh[-1].number)
			return -1;
		m->nshards++;
		return 0;
	}
	if (strcmp(line, "created") != 0 && strcmp(line, "retention") != 0 &&
	    strcmp(line, "segment-bytes") != 0 &&
	    strcmp(line, "segment-age") != 0 && strcmp(line, "next-shard") != 0 &&
	    strcmp(line, "compress-after") != 0)
		return -2;
	if (kds_parse_uint(val, INT64_MAX, &v) == -1)
		return -1;
	/* Retention and segment age are seconds that readers and writers
	 * take in milliseconds: those must fit in an int64_t too. */
	if (strcmp(line, "created") == 0)
		m->created_ms = (int64_t)v;
	else if (strcmp(line, "retention") == 0 && v > 0 &&
	    v <= INT64_MAX / 1000)
		m->retention_s = (int64_t)v;
	else if (strcmp(line, "segment-bytes") == 0 && v > 0)
		m->segment_bytes = v;
	else if (strcmp(line, "segment-age") == 0 && v > 0 &&
	    v <= INT64_MAX / 1000)
		m->segment_age_s = (int64_t)v;
	else if (strcmp(line, "next-shard") == 0)
		m->next_shard = v;
	else if (strcmp(line, "compress-after") == 0 && !m->compress) {
		m->compress = 1;
		m->compress_after_s = (int64_t)v;
	}
	else
		return -1;
	return 0;
}

int
kds_meta_read(int dirfd, struct kds_meta *m, struct kds_err *e)
{
	char *buf = NULL, *line, *end, *sum;
	size_t len = 0, cap = 0, lineno = 1;
	char want[17];
	int rc = -1;

	memset(m, 0, sizeof(*m));
	if (read_all(dirfd, "meta", &buf, &len, e) == -1)
		return -1;
	if (memchr(buf, '\0', len) != NULL)
		goto bad_sum;
	/* The last line is "checksum HEX" over every byte before it. */
	if (len < 2 || buf[len - 1] != '\n')
		goto bad_sum;
	buf[len - 1] = '\0';
	sum = strrchr(buf, '\n');
	sum = sum ? sum + 1 : buf;
	snprintf(want, sizeof(want), "%016" PRIx64,
	    kds_checksum(buf, (size_t)(sum - buf), 0));
	if (strncmp(sum, "checksum ", 9) != 0 || strcmp(sum + 9, want) != 0)
		goto bad_sum;
	*sum = '\0';
	line = buf;
	if (strncmp(line, "kds-stream ", 11) != 0 || strchr(line, '\n') == NULL)
		goto bad;
	if (strncmp(line + 11, "1\n", 2) != 0) {
		kds_fail(e, 0, "meta: line 1: unknown format version");
		goto out;
	}
	line = strchr(line, '\n') + 1;
	for (lineno = 2; *line != '\0'; line = end + 1, lineno++) {
		end = strchr(line, '\n');
		*end = '\0';
		switch (parse_line(line, m, &cap)) {
		case -1:
			goto bad;
		case -2:
			/* A newer kds may know the key: name it. */
			kds_fail(e, 0, "meta: line %zu: unknown key '%.64s'",
			    lineno, line);
			goto out;
		}
	}
	if (m->nshards == 0 || m->created_ms == 0 || m->retention_s == 0 ||
	    m->segment_bytes == 0 || m->segment_age_s == 0 ||
	    m->next_shard <= m->shards[m->nshards - 1].number) {
		lineno = 0;
		goto bad;
	}
	rc = 0;
	goto out;
bad_sum:
	kds_fail(e, 0, "meta: bad checksum");
	goto out;
bad:
	if (lineno)
		kds_fail(e, 0, "meta: line %zu: malformed", lineno);
	else
		kds_fail(e, 0, "meta: incomplete");
out:
	free(buf);
	if (rc == -1)
		kds_meta_free(m);
	return rc;
}

static void
put_parent(FILE *f, int64_t p)
{
	char id[KDS_SHARD_ID_LEN + 1];

	if (p < 0) {
		fputs(" -", f);
		return;
	}
	kds_shard_id((uint64_t)p, id);
	fprintf(f, " %s", id);
}

int
kds_meta_write(int dirfd, const struct kds_meta *m, struct kds_err *e)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if ((f = open_memstream(&buf, &len)) == NULL)
		return kds_fail_errno(e, "meta");
	fprintf(f, "kds-stream %d\n", KDS_FORMAT_VERSION);
	fprintf(f, "created %" PRId64 "\n", m->created_ms);
	fprintf(f, "retention %" PRId64 "\n", m->retention_s);
	fprintf(f, "segment-bytes %" PRIu64 "\n", m->segment_bytes);
	fprintf(f, "segment-age %" PRId64 "\n", m->segment_age_s);
	if (m->compress)
		fprintf(f, "compress-after %" PRId64 "\n", m->compress_after_s);
	fprintf(f, "next-shard %" PRIu64 "\n", m->next_shard);
	for (size_t i = 0; i < m->nshards; i++) {
		const struct kds_shard *sh = &m->shards[i];
		char id[KDS_SHARD_ID_LEN + 1], a[KDS_HASHKEY_LEN],
		    b[KDS_HASHKEY_LEN], seq[KDS_SEQ_LEN];

		kds_shard_id(sh->number, id);
		kds_hashkey_format(sh->start_hash, a);
		kds_hashkey_format(sh->end_hash, b);
		fprintf(f, "shard %s %s", id, sh->open ? "open" : "closed");
		put_parent(f, sh->parent);
		put_parent(f, sh->adjacent);
		kds_seq_format(sh->number, 1, seq);
		fprintf(f, " %s %s %s", a, b, seq);
		if (sh->open) {
			fputs(" -\n", f);
		} else {
			kds_seq_format(sh->number, sh->end_counter, seq);
			fprintf(f, " %s\n", seq);
		}
	}
	if (fflush(f) != 0) {
		fclose(f);
		free(buf);
		return kds_fail_errno(e, "meta");
	}
	fprintf(f, "checksum %016" PRIx64 "\n", kds_checksum(buf, len, 0));
	if (fclose(f) != 0) {
		free(buf);
		return kds_fail_errno(e, "meta");
	}
	rc = kds_atomic_write(dirfd, "meta", buf, len, e);
	free(buf);
	return rc;
}

void
kds_meta_free(struct kds_meta *m)
{
	free(m->shards);
	m->shards = NULL;
	m->nshards = 0;
}
