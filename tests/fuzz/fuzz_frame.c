/*
 * fuzz_frame.c: arbitrary bytes as a buffer of frames, walked as a reader
 * and kds_stream_verify walk one: kds_frame_decode at each boundary, and
 * at the first frame that fails, kds_tail_is_torn over the same bytes in a
 * memfd.  The first 48 bytes also go through kds_seg_header_check.
 *
 * Input:
 *	byte 0		bit 0: keep the checksums as given (else each frame
 *			whose length fits is resealed)
 *	bytes 1-8	the salt (little-endian)
 *	the rest	the frames
 *
 * Invariants beside the sanitizers: a decoded frame lies inside the
 * buffer and its parts add up; kds_tail_is_torn agrees with a brute-force
 * search for a valid frame after the bad one.
 */
#include "fuzz.h"

#include <sys/mman.h>

static int memfd = -1;

/* What kds_tail_is_torn should answer, the slow way. */
static int
torn_slowly(const unsigned char *p, size_t n, size_t off, uint64_t salt,
    int complete)
{
	struct kds_frame f;
	const char *why;

	if (complete)
		for (size_t i = off; i < n; i++)
			if (p[i] != 0)
				return 0;
	for (size_t i = off + 1; i + FRAME_HEADER_LEN < n; i++)
		if (kds_frame_decode(p + i, n - i, salt, &f, &why) == FRAME_OK)
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kds_seg_header h;
	unsigned char *p;
	struct kds_err e;
	uint64_t salt;
	unsigned mode;
	size_t n, off;

	if ((p = fuzz_input(data, size, &mode, &salt, &n)) == NULL)
		return 0;
	if (memfd == -1 && (memfd = memfd_create("fuzz_frame", 0)) == -1)
		abort();
	if (!(mode & 1))
		fuzz_reseal_frames(p, n, 0, salt);
	kds_seg_header_check(p, n, 0, 1, &h);

	for (off = 0; off < n; ) {
		enum frame_status fs;
		struct kds_frame f;
		const char *why = NULL;
		int torn;

		fs = kds_frame_decode(p + off, n - off, salt, &f, &why);
		if (fs == FRAME_OK) {
			FUZZ_ASSERT(f.len > FRAME_HEADER_LEN && f.len <= n - off);
			FUZZ_ASSERT(f.keylen > 0 && f.keylen <= KEY_MAX_BYTES);
			FUZZ_ASSERT(f.key == p + off + FRAME_HEADER_LEN);
			FUZZ_ASSERT(f.data == f.key + f.keylen);
			FUZZ_ASSERT(FRAME_HEADER_LEN + f.keylen + f.datalen ==
			    f.len);
			kds_utf8_chars((const char *)f.key, f.keylen);
			off += f.len;
			continue;
		}
		FUZZ_ASSERT(fs == FRAME_INCOMPLETE || why != NULL);
		if (ftruncate(memfd, 0) == -1 ||
		    pwrite(memfd, p, n, 0) != (ssize_t)n)
			abort();
		torn = kds_tail_is_torn(memfd, off, n, salt, fs == FRAME_BAD,
		    &e);
		FUZZ_ASSERT(torn == torn_slowly(p, n, off, salt,
		    fs == FRAME_BAD));
		break;
	}
	free(p);
	return 0;
}
