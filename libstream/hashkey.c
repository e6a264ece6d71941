/*
 * hashkey.c: 128-bit hash keys.  MD5 of the partition key, read as a
 * big-endian integer, as Kinesis does; decimal in and out, as the AWS API
 * writes them.
 */
#include <nettle/md5.h>
#include <string.h>

#include "internal.h"

#define U128_MAX (~(unsigned __int128)0)

unsigned __int128
kds_hashkey_of(const char *key, size_t len)
{
	struct md5_ctx ctx;
	unsigned char d[MD5_DIGEST_SIZE];
	unsigned __int128 v = 0;

	md5_init(&ctx);
	md5_update(&ctx, len, (const uint8_t *)key);
	md5_digest(&ctx, sizeof(d), d);
	for (size_t i = 0; i < sizeof(d); i++)
		v = v << 8 | d[i];
	return v;
}

/* Decimal digits only, in [0, 2^128 - 1]. */
int
kds_hashkey_parse(const char *s, unsigned __int128 *out)
{
	unsigned __int128 v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (v > (U128_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

void
kds_hashkey_format(unsigned __int128 v, char out[KDS_HASHKEY_LEN])
{
	char tmp[KDS_HASHKEY_LEN];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + (unsigned)(v % 10));
		v /= 10;
	} while (v != 0);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
}

/*
 * The ranges AWS CreateStream gives n shards: h = floor(2^128 / n); shard i
 * is [i*h, (i+1)*h - 1] and the last one ends at 2^128 - 1.  2^128 does not
 * fit, so floor(2^128 / n) is computed from 2^128 - 1.
 */
void
kds_aws_ranges(unsigned n, unsigned i, unsigned __int128 *start,
    unsigned __int128 *end)
{
	unsigned __int128 h = U128_MAX / n;

	if (U128_MAX % n == (unsigned __int128)(n - 1))
		h++;
	*start = h * i;
	*end = (i == n - 1) ? U128_MAX : h * (i + 1) - 1;
}
