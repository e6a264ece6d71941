/*
 * fuzz.h: what the libFuzzer targets share.  Header only, static: each
 * fuzz_*.c is one program (tests/fuzz/fuzz.mk).
 *
 * A parser reached only through a file gets its input written into one
 * scratch directory, made once per process under $TMPDIR (fuzz.mk points
 * it at /dev/shm when it can: millions of writes, and fsync, cost nothing
 * there) and removed at exit.  A crash leaves it behind: kds-fuzz.XXXXXX.
 */
#ifndef KDS_FUZZ_H
#define KDS_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/stat.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char fuzz_dir[PATH_MAX];

static inline int
fuzz_rm(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static inline void
fuzz_cleanup(void)
{
	if (fuzz_dir[0] != '\0')
		nftw(fuzz_dir, fuzz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* The scratch directory, made on the first call; aborts when it cannot
 * be: a target without it would only report false crashes. */
static inline const char *
fuzz_tmpdir(void)
{
	const char *tmp = getenv("TMPDIR");

	if (fuzz_dir[0] != '\0')
		return fuzz_dir;
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/kds-fuzz.XXXXXX", tmp);
	if (mkdtemp(fuzz_dir) == NULL) {
		perror(fuzz_dir);
		abort();
	}
	atexit(fuzz_cleanup);
	return fuzz_dir;
}

/* Replace dir/name with the n bytes at p; aborts on failure (a full
 * disk is not a finding). */
static inline void
fuzz_write(int dirfd, const char *name, const void *p, size_t n)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0666);

	if (fd == -1 || (n > 0 && write(fd, p, n) != (ssize_t)n)) {
		perror(name);
		abort();
	}
	close(fd);
}

/* Remove every file of a directory (not the directory). */
static inline void
fuzz_clear(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	if (fd == -1 || (d = fdopendir(fd)) == NULL) {
		perror("fuzz_clear");
		abort();
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(dirfd, de->d_name, 0);
	closedir(d);
}

/* Make right the checksum of each frame of [off, n) whose length fits:
 * random bytes would otherwise never get past the first check. */
static inline void
fuzz_reseal_frames(unsigned char *p, size_t n, size_t off, uint64_t salt)
{
	while (n - off >= 12) {
		uint32_t len = get_le32(p + off + 8);

		if (len <= FRAME_HEADER_LEN || len > FRAME_MAX_LEN ||
		    len > n - off)
			break;
		put_le64(p + off, kds_checksum(p + off + 8, len - 8, salt));
		off += len;
	}
}

/* The same for a segment, its header's checksum first. */
static inline void
fuzz_reseal_segment(unsigned char *p, size_t n)
{
	if (n < SEG_HEADER_LEN)
		return;
	put_le64(p + 40, kds_checksum(p, 40, 0));
	fuzz_reseal_frames(p, n, SEG_HEADER_LEN, get_le64(p + 32));
}

/* The iterator bits 0-2 of a mode byte name: 0 TRIM_HORIZON, 1 LATEST,
 * 2 AT_SEQUENCE_NUMBER, 3 AFTER_SEQUENCE_NUMBER, 4 AT_TIMESTAMP, else
 * TRIM_HORIZON. */
static inline enum kds_iterator
fuzz_iterator(unsigned mode)
{
	static const enum kds_iterator types[8] = {
		KDS_TRIM_HORIZON, KDS_LATEST, KDS_AT_SEQUENCE_NUMBER,
		KDS_AFTER_SEQUENCE_NUMBER, KDS_AT_TIMESTAMP,
		KDS_TRIM_HORIZON, KDS_TRIM_HORIZON, KDS_TRIM_HORIZON,
	};

	return types[mode & 7];
}

/*
 * The input of the segment-like targets: byte 0 the mode, bytes 1-8 a
 * parameter (little-endian), and the rest, copied (the targets change it
 * in place; libFuzzer's data is read-only), or NULL when there is no rest.
 */
static inline unsigned char *
fuzz_input(const uint8_t *data, size_t size, unsigned *mode,
    uint64_t *param, size_t *n)
{
	unsigned char *buf;

	if (size < 9)
		return NULL;
	*mode = data[0];
	*param = get_le64(data + 1);
	*n = size - 9;
	if ((buf = malloc(*n + 1)) == NULL)
		abort();
	memcpy(buf, data + 9, *n);
	return buf;
}

/* A finding that no sanitizer sees: an invariant broken. */
#define FUZZ_ASSERT(c) do {						\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #c);				\
		abort();						\
	}								\
} while (0)

/* r written out by a jsonl format: one line, and JSON whatever the bytes
 * of the record (kds-get -o jsonl output is read by JSON parsers). */
static inline void
fuzz_jsonl_check(struct kds_format *jsonl, const char *stream,
    const struct kds_record *r)
{
	json_error_t jerr;
	json_t *j;
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	if ((f = open_memstream(&out, &len)) == NULL)
		abort();
	FUZZ_ASSERT(kds_format_write(f, jsonl, stream, r) == 0);
	if (fclose(f) != 0)
		abort();
	FUZZ_ASSERT(len > 0 && out[len - 1] == '\n' &&
	    memchr(out, '\n', len) == out + len - 1);
	if ((j = json_loadb(out, len - 1, JSON_ALLOW_NUL, &jerr)) == NULL)
		fprintf(stderr, "not JSON: %s: %s", jerr.text, out);
	FUZZ_ASSERT(j != NULL);
	json_decref(j);
	free(out);
}

#endif
