/* base64.c: the Data field of jsonl, through nettle's base64. */
#include <nettle/base64.h>

#include "internal.h"

size_t
kds_base64_encoded_len(size_t n)
{
	return BASE64_ENCODE_RAW_LENGTH(n);
}

void
kds_base64_encode(char *out, const void *in, size_t n)
{
	base64_encode_raw(out, n, in);
}

/* out must hold BASE64_DECODE_LENGTH(len) bytes.  Refuses bad characters
 * and bad padding, which nettle's final check catches. */
int
kds_base64_decode(unsigned char *out, size_t *outlen, const char *in,
    size_t len)
{
	struct base64_decode_ctx ctx;

	base64_decode_init(&ctx);
	*outlen = BASE64_DECODE_LENGTH(len);
	if (!base64_decode_update(&ctx, outlen, out, len, in))
		return -1;
	if (!base64_decode_final(&ctx))
		return -1;
	return 0;
}
