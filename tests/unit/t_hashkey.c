/* t_hashkey.c: 128-bit hash keys, MD5 of partition keys, AWS shard ranges. */
#include <stdio.h>

#include "internal.h"
#include "tap.h"

#define U128_MAX (~(unsigned __int128)0)

/* A 128-bit constant from two 64-bit halves. */
#define U128(hi, lo) (((unsigned __int128)(hi) << 64) | (unsigned __int128)(lo))

static const char *
fmt(unsigned __int128 v, char out[KDS_HASHKEY_LEN])
{
	kds_hashkey_format(v, out);
	return out;
}

static void
round_trips(void)
{
	static const struct {
		unsigned __int128 v;
		const char *s;
	} t[] = {
		{ 0, "0" },
		{ 1, "1" },
		{ 9, "9" },
		{ 10, "10" },
		{ UINT64_MAX, "18446744073709551615" },
		{ (unsigned __int128)UINT64_MAX + 1, "18446744073709551616" },
		{ U128(0x8000000000000000ULL, 0), "170141183460469231731687303715884105728" },
		{ U128_MAX - 1, "340282366920938463463374607431768211454" },
		{ U128_MAX, "340282366920938463463374607431768211455" },
	};
	static const char *bad[] = {
		"", "-1", " 1", "1 ", "+1", "0x10", "1e3", "1.0", "abc", "1_000",
		"340282366920938463463374607431768211456",	/* 2^128 */
		"340282366920938463463374607431768211460",
		"999999999999999999999999999999999999999",
		"3402823669209384634633746074317682114550",	/* 10 (2^128-1) */
	};
	char buf[KDS_HASHKEY_LEN];
	unsigned __int128 v;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		is_str(fmt(t[i].v, buf), t[i].s, "kds_hashkey_format %s", t[i].s);
		v = 12345;
		ok(kds_hashkey_parse(t[i].s, &v) == 0 && v == t[i].v,
		    "kds_hashkey_parse %s", t[i].s);
	}
	v = 7;
	ok(kds_hashkey_parse("000000000000000000000000000000000000000000042", &v)
	    == 0 && v == 42, "leading zeros are only digits");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		ok(kds_hashkey_parse(bad[i], &v) == -1 && v == 12345,
		    "kds_hashkey_parse refuses '%s'", bad[i]);
	}
	/* Pseudo-random values through format and parse. */
	{
		unsigned __int128 x = 0x9e3779b97f4a7c15ULL;
		int wrong = 0;

		for (int i = 0; i < 10000; i++) {
			x = x * U128(0x2360ed051fc65da4ULL, 0x4385df649fccf645ULL) +
			    U128(0x5851f42d4c957f2dULL, 0x14057b7ef767814fULL);
			fmt(x >> (i % 128), buf);
			if (kds_hashkey_parse(buf, &v) != 0 || v != x >> (i % 128))
				wrong++;
		}
		is_int(wrong, 0, "10000 pseudo-random values round trip");
	}
}

static void
md5_keys(void)
{
	char buf[KDS_HASHKEY_LEN];

	ok(kds_hashkey_of("a", 1) ==
	    U128(0x0cc175b9c0f1b6a8ULL, 0x31c399e269772661ULL),
	    "kds_hashkey_of(\"a\") is MD5 0cc175b9c0f1b6a831c399e269772661, "
	    "big-endian");
	is_str(fmt(kds_hashkey_of("a", 1), buf),
	    "16955237001963240173058271559858726497", "the same in decimal");
	ok(kds_hashkey_of("", 0) ==
	    U128(0xd41d8cd98f00b204ULL, 0xe9800998ecf8427eULL),
	    "kds_hashkey_of(\"\") is MD5 d41d8cd98f00b204e9800998ecf8427e");
	ok(kds_hashkey_of("abc", 3) ==
	    U128(0x900150983cd24fb0ULL, 0xd6963f7d28e17f72ULL),
	    "kds_hashkey_of(\"abc\") is MD5 900150983cd24fb0d6963f7d28e17f72");
	ok(kds_hashkey_of("abcdef", 3) == kds_hashkey_of("abc", 3),
	    "only len bytes of the key are hashed");
	ok(kds_hashkey_of("a\0b", 3) != kds_hashkey_of("a", 1),
	    "bytes after a NUL count");
}

static void
aws_ranges(void)
{
	/* python3: h = 2**128 // n; [i*h, (i+1)*h - 1], last ends at 2**128-1 */
	static const struct {
		unsigned n, i;
		const char *start, *end;
	} t[] = {
	{ 1, 0, "0", "340282366920938463463374607431768211455" },
	{ 2, 0, "0", "170141183460469231731687303715884105727" },
	{ 2, 1, "170141183460469231731687303715884105728", "340282366920938463463374607431768211455" },
	{ 3, 0, "0", "113427455640312821154458202477256070484" },
	{ 3, 1, "113427455640312821154458202477256070485", "226854911280625642308916404954512140969" },
	{ 3, 2, "226854911280625642308916404954512140970", "340282366920938463463374607431768211455" },
	{ 7, 0, "0", "48611766702991209066196372490252601635" },
	{ 7, 1, "48611766702991209066196372490252601636", "97223533405982418132392744980505203271" },
	{ 7, 2, "97223533405982418132392744980505203272", "145835300108973627198589117470757804907" },
	{ 7, 3, "145835300108973627198589117470757804908", "194447066811964836264785489961010406543" },
	{ 7, 4, "194447066811964836264785489961010406544", "243058833514956045330981862451263008179" },
	{ 7, 5, "243058833514956045330981862451263008180", "291670600217947254397178234941515609815" },
	{ 7, 6, "291670600217947254397178234941515609816", "340282366920938463463374607431768211455" },
	{ 16, 0, "0", "21267647932558653966460912964485513215" },
	{ 16, 1, "21267647932558653966460912964485513216", "42535295865117307932921825928971026431" },
	{ 16, 2, "42535295865117307932921825928971026432", "63802943797675961899382738893456539647" },
	{ 16, 3, "63802943797675961899382738893456539648", "85070591730234615865843651857942052863" },
	{ 16, 4, "85070591730234615865843651857942052864", "106338239662793269832304564822427566079" },
	{ 16, 5, "106338239662793269832304564822427566080", "127605887595351923798765477786913079295" },
	{ 16, 6, "127605887595351923798765477786913079296", "148873535527910577765226390751398592511" },
	{ 16, 7, "148873535527910577765226390751398592512", "170141183460469231731687303715884105727" },
	{ 16, 8, "170141183460469231731687303715884105728", "191408831393027885698148216680369618943" },
	{ 16, 9, "191408831393027885698148216680369618944", "212676479325586539664609129644855132159" },
	{ 16, 10, "212676479325586539664609129644855132160", "233944127258145193631070042609340645375" },
	{ 16, 11, "233944127258145193631070042609340645376", "255211775190703847597530955573826158591" },
	{ 16, 12, "255211775190703847597530955573826158592", "276479423123262501563991868538311671807" },
	{ 16, 13, "276479423123262501563991868538311671808", "297747071055821155530452781502797185023" },
	{ 16, 14, "297747071055821155530452781502797185024", "319014718988379809496913694467282698239" },
	{ 16, 15, "319014718988379809496913694467282698240", "340282366920938463463374607431768211455" },
	};
	char a[KDS_HASHKEY_LEN], b[KDS_HASHKEY_LEN];
	unsigned __int128 s, e;

	for (size_t k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
		kds_aws_ranges(t[k].n, t[k].i, &s, &e);
		fmt(s, a);
		fmt(e, b);
		ok(strcmp(a, t[k].start) == 0 && strcmp(b, t[k].end) == 0,
		    "kds_aws_ranges n=%u i=%u is [%s, %s]", t[k].n, t[k].i,
		    t[k].start, t[k].end);
		if (strcmp(a, t[k].start) != 0 || strcmp(b, t[k].end) != 0)
			diag("got [%s, %s]", a, b);
	}

	/*
	 * Every n a stream may have: ranges start at 0, touch, are
	 * floor(2^128 / n) wide but for the last, which ends at 2^128 - 1.
	 * floor(2^128 / n) = (2^128 - n) / n + 1, which fits in 128 bits.
	 */
	{
		unsigned bad_n = 0, n;

		for (n = 1; n <= KDS_MAX_SHARDS; n += n < 1100 ? 1 : 97) {
			unsigned __int128 h = (U128_MAX - (n - 1)) / n + 1, prev = 0;

			if (n == 1)
				h = 0;	/* 2^128 does not fit; only one range */
			for (unsigned i = 0; i < n; i++) {
				kds_aws_ranges(n, i, &s, &e);
				if ((i == 0 && s != 0) || (i > 0 && s != prev + 1) ||
				    (n > 1 && s != h * i) ||
				    (i + 1 < n && e != h * (i + 1) - 1) ||
				    (i + 1 == n && e != U128_MAX) || e < s) {
					bad_n = n;
					break;
				}
				prev = e;
			}
			if (bad_n)
				break;
		}
		is_int(bad_n, 0, "ranges tile [0, 2^128) for n = 1 to %d",
		    KDS_MAX_SHARDS);
		kds_aws_ranges(KDS_MAX_SHARDS, KDS_MAX_SHARDS - 1, &s, &e);
		ok(e == U128_MAX, "the last of %d shards ends at 2^128 - 1",
		    KDS_MAX_SHARDS);
	}

	/* MD5("a") falls into the shard whose range holds it. */
	kds_aws_ranges(16, 0, &s, &e);
	ok(kds_hashkey_of("a", 1) >= s && kds_hashkey_of("a", 1) <= e,
	    "MD5(\"a\") = 0x0cc1... is in shard 0 of 16");
	kds_aws_ranges(16, 1, &s, &e);
	ok(!(kds_hashkey_of("a", 1) >= s && kds_hashkey_of("a", 1) <= e),
	    "and not in shard 1 of 16");
}

int
main(void)
{
	round_trips();
	md5_keys();
	aws_ranges();
	return done_testing();
}
