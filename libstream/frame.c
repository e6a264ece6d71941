/*
 * frame.c: one record on disk (kds-stream(5), FRAMES), and the rule that
 * tells a torn tail from corruption.
 *
 * A frame is checksum(8) length(4) keylen(2) flags(2) counter(8) arrival(8)
 * key data; the checksum, seeded with the segment's salt, covers every byte
 * after itself, so a frame copied in from another segment, even inside a
 * record's data, never passes for one of this segment.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

size_t
kds_frame_encode_head(unsigned char *p, size_t keylen, size_t datalen)
{
	put_le32(p + 8, (uint32_t)(FRAME_HEADER_LEN + keylen + datalen));
	put_le16(p + 12, (uint16_t)keylen);
	put_le16(p + 14, 0);
	return FRAME_HEADER_LEN;
}

/* Give a built frame its place in the shard; after this it is final. */
void
kds_frame_seal(unsigned char *p, uint64_t counter, int64_t arrival_ms,
    uint64_t salt)
{
	uint32_t len = get_le32(p + 8);

	put_le64(p + 16, counter);
	put_le64(p + 24, (uint64_t)arrival_ms);
	put_le64(p, kds_checksum(p + 8, len - 8, salt));
}

enum frame_status
kds_frame_decode(const unsigned char *p, size_t avail, uint64_t salt,
    struct kds_frame *f, const char **why)
{
	uint32_t len;
	uint16_t keylen;

	if (avail < 12)
		return FRAME_INCOMPLETE;
	len = get_le32(p + 8);
	if (len <= FRAME_HEADER_LEN || len > FRAME_MAX_LEN) {
		*why = "bad frame length";
		return FRAME_BAD;
	}
	if (avail < len)
		return FRAME_INCOMPLETE;
	if (get_le64(p) != kds_checksum(p + 8, len - 8, salt)) {
		*why = "bad checksum";
		return FRAME_BAD;
	}
	keylen = get_le16(p + 12);
	if (keylen == 0 || keylen > KEY_MAX_BYTES ||
	    FRAME_HEADER_LEN + (size_t)keylen > len) {
		*why = "bad partition key length";
		return FRAME_BAD;
	}
	if (get_le16(p + 14) != 0) {
		*why = "unknown frame flags";
		return FRAME_BAD;
	}
	f->len = len;
	f->keylen = keylen;
	f->counter = get_le64(p + 16);
	f->arrival_ms = (int64_t)get_le64(p + 24);
	f->key = p + FRAME_HEADER_LEN;
	f->data = f->key + keylen;
	f->datalen = len - FRAME_HEADER_LEN - keylen;
	return FRAME_OK;
}

/*
 * The frame at off, in [off, size) of the shard's last segment, failed to
 * decode.  It is a torn tail only when no valid frame starts anywhere after
 * it: a damaged length field in an earlier frame looks just like a tear,
 * and "repairing" it would delete every acknowledged record behind it.
 * complete: the frame was all there, and failed its checks.
 * Returns 1 torn, 0 not torn (corruption), -1 on a read error.
 */
int
kds_tail_is_torn(int fd, uint64_t off, uint64_t size, uint64_t salt,
    int complete, struct kds_err *e)
{
	const size_t cap = 2 * (size_t)FRAME_MAX_LEN;
	unsigned char *buf;
	uint64_t base = 0, p;
	size_t have = 0;
	int rc = 1;

	if ((buf = malloc(cap)) == NULL)
		return kds_fail_errno(e, "tail check");
	/*
	 * A kill -9 leaves a frame short.  A whole frame that fails its checks
	 * is damage (a flipped bit), never a tear, unless it is nothing but
	 * zeros to the end: what a file system may show after a power loss.
	 */
	if (complete) {
		for (p = off; p < size && rc == 1; ) {
			ssize_t n = pread(fd, buf, size - p < cap ? size - p : cap,
			    (off_t)p);

			if (n <= 0) {
				rc = n == 0 ? 0 : kds_fail_errno(e, "read");
				break;
			}
			for (ssize_t i = 0; i < n; i++)
				if (buf[i] != 0)
					rc = 0;
			p += (uint64_t)n;
		}
		if (rc != 1)
			goto out;
	}
	for (p = off + 1; p + FRAME_HEADER_LEN < size; p++) {
		struct kds_frame f;
		const char *why;

		/* Keep [p, p + FRAME_MAX_LEN) in the window, or up to EOF. */
		uint64_t need = size - p < FRAME_MAX_LEN ? size : p + FRAME_MAX_LEN;

		if (need > base + have) {
			base = p;
			have = 0;
			while (have < cap && base + have < size) {
				ssize_t n = pread(fd, buf + have, cap - have,
				    (off_t)(base + have));

				if (n == -1 && errno == EINTR)
					continue;
				if (n == -1) {
					rc = kds_fail_errno(e, "read");
					goto out;
				}
				if (n == 0)
					break;
				have += (size_t)n;
			}
			if (need > base + have)
				break;	/* the file shrank: nothing follows */
		}
		if (kds_frame_decode(buf + (p - base), have - (p - base), salt,
		    &f, &why) == FRAME_OK) {
			rc = 0;
			break;
		}
	}
out:
	free(buf);
	return rc;
}
