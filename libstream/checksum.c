/* checksum.c: XXH3-64 from libxxhash, the one checksum of the format. */
/* Inlined: frames are short, and a call through the PLT into the
 * library costs a fair part of hashing 100 bytes. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "internal.h"

uint64_t
kds_checksum(const void *p, size_t n, uint64_t seed)
{
	return XXH3_64bits_withSeed(p, n, seed);
}
