/* t_frame.c: one record on disk, and telling a torn tail from damage. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define SALT	UINT64_C(0x0123456789abcdef)

/* Build a sealed frame at p; returns its length. */
static size_t
build(unsigned char *p, const char *key, const void *data, size_t datalen,
    uint64_t counter, int64_t arrival, uint64_t salt)
{
	size_t keylen = strlen(key), h;

	h = kds_frame_encode_head(p, keylen, datalen);
	memcpy(p + h, key, keylen);
	if (datalen > 0)
		memcpy(p + h + keylen, data, datalen);
	kds_frame_seal(p, counter, arrival, salt);
	return h + keylen + datalen;
}

/* Re-checksum a frame whose header was changed on purpose. */
static void
reseal_raw(unsigned char *p, uint64_t salt)
{
	put_le64(p, kds_checksum(p + 8, get_le32(p + 8) - 8, salt));
}

static void
round_trip(void)
{
	unsigned char buf[256];
	const char data[] = "hello, frame";
	struct kds_frame f;
	const char *why = NULL;
	size_t len;

	len = build(buf, "pk", data, sizeof(data) - 1, 42, 1795824000123, SALT);
	is_int((long long)len, FRAME_HEADER_LEN + 2 + 12, "frame length is "
	    "32 + key + data");
	is_int(get_le32(buf + 8), (long long)len, "length field at offset 8");
	is_int(get_le16(buf + 12), 2, "key length field at offset 12");
	is_int(get_le16(buf + 14), 0, "flags field at offset 14 is 0");
	is_int((long long)get_le64(buf + 16), 42, "counter at offset 16");
	is_int((long long)get_le64(buf + 24), 1795824000123,
	    "arrival at offset 24");
	ok(get_le64(buf) == kds_checksum(buf + 8, len - 8, SALT),
	    "checksum at offset 0: XXH3-64 of bytes 8.. seeded with the salt");
	memset(&f, 0, sizeof(f));
	is_int(kds_frame_decode(buf, len, SALT, &f, &why), FRAME_OK,
	    "decode the frame");
	is_int(f.len, (long long)len, "decoded len");
	is_int(f.keylen, 2, "decoded keylen");
	is_int((long long)f.counter, 42, "decoded counter");
	is_int(f.arrival_ms, 1795824000123, "decoded arrival");
	ok(f.key == buf + 32 && memcmp(f.key, "pk", 2) == 0,
	    "decoded key points into the buffer");
	is_mem(f.data, f.datalen, data, sizeof(data) - 1, "decoded data");
	is_int(kds_frame_decode(buf, len + 100, SALT, &f, &why), FRAME_OK,
	    "decode with bytes after the frame");

	/* Smallest frame: a 1-byte key, no data. */
	len = build(buf, "k", "", 0, 1, 0, SALT);
	ok(len == 33 && kds_frame_decode(buf, len, SALT, &f, &why) == FRAME_OK &&
	    f.datalen == 0 && f.keylen == 1, "a frame with empty data, 33 bytes");

	/* Negative arrival times survive (KDS_NOW may be anything). */
	build(buf, "k", "x", 1, 7, -5, SALT);
	ok(kds_frame_decode(buf, 34, SALT, &f, &why) == FRAME_OK &&
	    f.arrival_ms == -5, "a negative arrival time round-trips");
}

static void
largest(void)
{
	size_t keylen = KEY_MAX_BYTES, datalen = KDS_MAX_RECORD - KEY_MAX_BYTES;
	unsigned char *p = malloc(FRAME_MAX_LEN + 64);
	char *key = malloc(keylen + 1);
	struct kds_frame f;
	const char *why = NULL;
	size_t len;

	if (p == NULL || key == NULL)
		bail_out("out of memory");
	memset(key, 'k', keylen);
	key[keylen] = '\0';
	memset(p, 0, FRAME_MAX_LEN + 64);
	len = kds_frame_encode_head(p, keylen, datalen);
	memcpy(p + len, key, keylen);
	memset(p + len + keylen, 0xab, datalen);
	kds_frame_seal(p, 9, 9, SALT);
	ok(kds_frame_decode(p, FRAME_MAX_LEN, SALT, &f, &why) == FRAME_OK &&
	    f.len == FRAME_MAX_LEN && f.keylen == KEY_MAX_BYTES &&
	    f.datalen == datalen, "the largest frame: 1024-byte key, 1 MiB "
	    "record in all");
	is_int(kds_frame_decode(p, FRAME_MAX_LEN - 1, SALT, &f, &why),
	    FRAME_INCOMPLETE, "the largest frame, one byte short");

	/* One byte more than the largest is refused by its length. */
	put_le32(p + 8, FRAME_MAX_LEN + 1);
	reseal_raw(p, SALT);
	why = NULL;
	is_int(kds_frame_decode(p, FRAME_MAX_LEN + 1, SALT, &f, &why),
	    FRAME_BAD, "a frame of 32 + 1 MiB + 1 bytes is bad");
	is_str(why, "bad frame length", "why: bad frame length");
	why = NULL;
	is_int(kds_frame_decode(p, 20, SALT, &f, &why), FRAME_BAD,
	    "a length over the maximum is bad before the frame is all there");

	/* A key longer than 1024 bytes, checksum right. */
	len = kds_frame_encode_head(p, KEY_MAX_BYTES + 1, 10);
	memset(p + len, 'k', KEY_MAX_BYTES + 11);
	kds_frame_seal(p, 1, 1, SALT);
	why = NULL;
	is_int(kds_frame_decode(p, FRAME_HEADER_LEN + KEY_MAX_BYTES + 11, SALT,
	    &f, &why), FRAME_BAD, "a key of 1025 bytes is bad");
	is_str(why, "bad partition key length", "why: bad partition key length");
	free(p);
	free(key);
}

static void
bad_headers(void)
{
	unsigned char buf[256];
	struct kds_frame f;
	const char *why;
	size_t len;

	/* Each of these has a checksum that matches what it covers. */
	len = build(buf, "pk", "data", 4, 1, 1, SALT);
	put_le16(buf + 14, 1);
	reseal_raw(buf, SALT);
	why = NULL;
	is_int(kds_frame_decode(buf, len, SALT, &f, &why), FRAME_BAD,
	    "flags 1 is bad");
	is_str(why, "unknown frame flags", "why: unknown frame flags");

	build(buf, "pk", "data", 4, 1, 1, SALT);
	put_le16(buf + 12, 0);
	reseal_raw(buf, SALT);
	why = NULL;
	is_int(kds_frame_decode(buf, len, SALT, &f, &why), FRAME_BAD,
	    "key length 0 is bad");
	is_str(why, "bad partition key length", "why: bad partition key length");

	build(buf, "pk", "data", 4, 1, 1, SALT);
	put_le16(buf + 12, 7);		/* 32 + 7 > 38 */
	reseal_raw(buf, SALT);
	why = NULL;
	is_int(kds_frame_decode(buf, len, SALT, &f, &why), FRAME_BAD,
	    "key length past the frame's end is bad");
	is_str(why, "bad partition key length", "why: bad partition key length");

	build(buf, "pk", "data", 4, 1, 1, SALT);
	put_le16(buf + 12, 6);		/* the key is all of it: no data */
	reseal_raw(buf, SALT);
	ok(kds_frame_decode(buf, len, SALT, &f, &why) == FRAME_OK &&
	    f.keylen == 6 && f.datalen == 0, "key length up to the frame's end "
	    "is fine");

	for (uint32_t l = 0; l <= FRAME_HEADER_LEN; l += 8) {
		memset(buf, 0, sizeof(buf));
		put_le32(buf + 8, l);
		why = NULL;
		if (l >= 8)
			reseal_raw(buf, SALT);
		ok(kds_frame_decode(buf, sizeof(buf), SALT, &f, &why) ==
		    FRAME_BAD && why != NULL &&
		    strcmp(why, "bad frame length") == 0,
		    "frame length %u is bad", (unsigned)l);
	}

	build(buf, "pk", "data", 4, 1, 1, SALT);
	why = NULL;
	is_int(kds_frame_decode(buf, len, SALT ^ 1, &f, &why), FRAME_BAD,
	    "a frame sealed with another salt is bad");
	is_str(why, "bad checksum", "why: bad checksum");
	is_int(kds_frame_decode(buf, len, 0, &f, &why), FRAME_BAD,
	    "and with salt 0");
}

static void
short_buffers(void)
{
	unsigned char buf[256];
	struct kds_frame f;
	const char *why = NULL;
	size_t len = build(buf, "partition", "some data here", 14, 5, 5, SALT);
	int wrong = 0;

	for (size_t avail = 0; avail < len; avail++)
		if (kds_frame_decode(buf, avail, SALT, &f, &why) !=
		    FRAME_INCOMPLETE)
			wrong++;
	is_int(wrong, 0, "every prefix shorter than the frame (0 to %zu "
	    "bytes) is FRAME_INCOMPLETE", len - 1);
	is_int(kds_frame_decode(buf, 11, SALT, &f, &why), FRAME_INCOMPLETE,
	    "11 bytes: no length field yet");
}

/*
 * Every single-bit flip of a frame, alone in the buffer or followed by a
 * second frame, is caught: never FRAME_OK.
 */
static void
bit_flips(void)
{
	unsigned char buf[512], orig[512];
	char data[100];
	struct kds_frame f;
	const char *why;
	size_t len, len2;
	int okays = 0, okays_followed = 0, flips = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7 + 1);
	len = build(orig, "a partition key", data, sizeof(data), 1234, 1795824000000,
	    SALT);
	len2 = build(orig + len, "next", data, 10, 1235, 1795824000000, SALT);
	for (size_t bit = 0; bit < len * 8; bit++) {
		memcpy(buf, orig, len + len2);
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		flips++;
		if (kds_frame_decode(buf, len, SALT, &f, &why) == FRAME_OK)
			okays++;
		if (kds_frame_decode(buf, len + len2, SALT, &f, &why) == FRAME_OK)
			okays_followed++;
	}
	is_int(okays, 0, "none of %d single-bit flips decodes as FRAME_OK",
	    flips);
	is_int(okays_followed, 0, "nor with another frame after it");

	/* Two-bit flips in the header, the likeliest place to fool a check. */
	okays = 0;
	flips = 0;
	for (size_t a = 0; a < FRAME_HEADER_LEN * 8; a++) {
		for (size_t b = a + 1; b < FRAME_HEADER_LEN * 8; b++) {
			memcpy(buf, orig, len + len2);
			buf[a / 8] ^= (unsigned char)(1u << (a % 8));
			buf[b / 8] ^= (unsigned char)(1u << (b % 8));
			flips++;
			if (kds_frame_decode(buf, len + len2, SALT, &f, &why) ==
			    FRAME_OK)
				okays++;
		}
	}
	is_int(okays, 0, "none of %d two-bit flips of the header decodes",
	    flips);
	memcpy(buf, orig, len);
	is_int(kds_frame_decode(buf, len, SALT, &f, &why), FRAME_OK,
	    "the unflipped frame still decodes");
}

/* A file of a 48-byte stand-in header, then the given bytes. */
static int
temp_file(const unsigned char *p, size_t n, uint64_t *size)
{
	char path[] = "/tmp/t_frame.XXXXXX";
	unsigned char head[SEG_HEADER_LEN];
	int fd = mkstemp(path);

	if (fd == -1)
		bail_out("mkstemp");
	unlink(path);
	memset(head, 'H', sizeof(head));
	if (write(fd, head, sizeof(head)) != (ssize_t)sizeof(head) ||
	    (n > 0 && write(fd, p, n) != (ssize_t)n))
		bail_out("write");
	*size = SEG_HEADER_LEN + n;
	return fd;
}

static void
torn_tails(void)
{
	size_t cap = 4 * (size_t)FRAME_MAX_LEN;
	unsigned char *buf = calloc(1, cap), *big;
	char data[200];
	struct kds_err e = { 0, "" };
	size_t a, b, c, off;
	uint64_t size;
	int fd;

	if (buf == NULL)
		bail_out("out of memory");
	memset(data, 'd', sizeof(data));

	/* A, B, then the first half of C: C is torn. */
	a = build(buf, "ka", data, 50, 1, 1, SALT);
	b = build(buf + a, "kb", data, 60, 2, 1, SALT);
	c = build(buf + a + b, "kc", data, 70, 3, 1, SALT);
	fd = temp_file(buf, a + b + c / 2, &size);
	off = SEG_HEADER_LEN + a + b;
	is_int(kds_tail_is_torn(fd, off, size, SALT, 0, &e), 1,
	    "an incomplete last frame with nothing after it is torn");
	close(fd);

	/* Only the first 11 bytes of C. */
	fd = temp_file(buf, a + b + 11, &size);
	is_int(kds_tail_is_torn(fd, off, size, SALT, 0, &e), 1,
	    "11 bytes of a last frame are torn");
	close(fd);

	/* B's length field damaged to claim more than is there, C after:
	 * B looks incomplete, but a valid frame follows, so it is damage. */
	put_le32(buf + a + 8, (uint32_t)(b + c + 1000));
	fd = temp_file(buf, a + b + c, &size);
	off = SEG_HEADER_LEN + a;
	is_int(kds_tail_is_torn(fd, off, size, SALT, 0, &e), 0,
	    "a damaged length with a valid frame after it is not torn");
	close(fd);

	/* B's length damaged to something too small: a bad, complete frame. */
	put_le32(buf + a + 8, 5);
	fd = temp_file(buf, a + b + c, &size);
	is_int(kds_tail_is_torn(fd, off, size, SALT, 1, &e), 0,
	    "a length too small with a valid frame after it is not torn");
	close(fd);

	/* A whole last frame with a flipped bit is damage, not a tear. */
	build(buf + a, "kb", data, 60, 2, 1, SALT);
	buf[a + 40] ^= 0x10;
	fd = temp_file(buf, a + b, &size);
	is_int(kds_tail_is_torn(fd, off, size, SALT, 1, &e), 0,
	    "a whole last frame that fails its checksum is not torn");
	close(fd);

	/* A, then zeros to the end (a power loss): torn. */
	memset(buf + a, 0, 500);
	fd = temp_file(buf, a + 500, &size);
	is_int(kds_tail_is_torn(fd, off, size, SALT, 1, &e), 1,
	    "zeros to the end of the file are torn");
	close(fd);

	/* A, then a partial frame whose data holds a whole frame sealed with
	 * another segment's salt: that frame does not count, still torn. */
	{
		unsigned char inner[128];
		size_t ilen = build(inner, "inner", "x", 1, 3, 1, SALT + 1);
		size_t blen = kds_frame_encode_head(buf + a, 2, 300);

		memcpy(buf + a + blen, "kb", 2);
		memset(buf + a + blen + 2, 'z', 300);
		memcpy(buf + a + blen + 10, inner, ilen);
		kds_frame_seal(buf + a, 2, 1, SALT);
		fd = temp_file(buf, a + blen + 2 + 10 + ilen + 5, &size);
		is_int(kds_tail_is_torn(fd, off, size, SALT, 0, &e), 1,
		    "a frame of another salt inside a torn frame's data "
		    "does not make it damage");
		close(fd);

		/* The same with this segment's salt: that does count. */
		ilen = build(inner, "inner", "x", 1, 3, 1, SALT);
		memcpy(buf + a + blen + 10, inner, ilen);
		fd = temp_file(buf, a + blen + 2 + 10 + ilen + 5, &size);
		is_int(kds_tail_is_torn(fd, off, size, SALT, 0, &e), 0,
		    "a frame of this salt after the bad one makes it damage");
		close(fd);
	}

	/* A damaged length, then more zeros than the 2 MiB window, then a
	 * valid frame: found across the window, so not torn. */
	memset(buf, 0, cap);
	a = build(buf, "ka", data, 50, 1, 1, SALT);
	put_le32(buf + a + 8, 1000);	/* "incomplete" */
	big = buf + a + 3 * (size_t)FRAME_MAX_LEN;
	c = build(big, "kc", data, 70, 3, 1, SALT);
	fd = temp_file(buf, (size_t)(big - buf) + c, &size);
	off = SEG_HEADER_LEN + a;
	is_int(kds_tail_is_torn(fd, off, size, SALT, 0, &e), 0,
	    "a valid frame 3 MiB after a damaged one is found");
	close(fd);
	/* And without it: torn. */
	fd = temp_file(buf, (size_t)(big - buf), &size);
	is_int(kds_tail_is_torn(fd, off, size, SALT, 0, &e), 1,
	    "3 MiB of nothing valid after an incomplete frame: torn");
	close(fd);

	/* A read error is -1 with a message. */
	e.msg[0] = '\0';
	is_int(kds_tail_is_torn(-1, off, size, SALT, 1, &e), -1,
	    "a bad descriptor is -1");
	ok(e.msg[0] != '\0' && e.errnum == EBADF, "with a message: '%s'", e.msg);
	free(buf);
}

int
main(void)
{
	round_trip();
	largest();
	bad_headers();
	short_buffers();
	bit_flips();
	torn_tails();
	return done_testing();
}
