/* t_utf8.c: counting characters of partition keys, refusing bad UTF-8. */
#include <stdio.h>

#include "internal.h"
#include "tap.h"

/* Length given, since some cases hold NUL bytes. */
#define S(lit) lit, sizeof(lit) - 1

static void
good(void)
{
	static const struct { const char *s; size_t len; long chars;
	    const char *name; } t[] = {
		{ S(""), 0, "empty" },
		{ S("a"), 1, "one ASCII byte" },
		{ S("hello, world"), 12, "ASCII" },
		{ S("a\0b"), 3, "NUL is a character" },
		{ S("\x7f"), 1, "U+007F, the last 1-byte form" },
		{ S("\xc2\x80"), 1, "U+0080, the first 2-byte form" },
		{ S("\xc3\xa9"), 1, "U+00E9 e acute, 2 bytes" },
		{ S("\xdf\xbf"), 1, "U+07FF, the last 2-byte form" },
		{ S("\xe0\xa0\x80"), 1, "U+0800, the first 3-byte form" },
		{ S("\xe2\x82\xac"), 1, "U+20AC euro sign, 3 bytes" },
		{ S("\xed\x9f\xbf"), 1, "U+D7FF, just below the surrogates" },
		{ S("\xee\x80\x80"), 1, "U+E000, just above the surrogates" },
		{ S("\xef\xbf\xbf"), 1, "U+FFFF, the last 3-byte form" },
		{ S("\xf0\x90\x80\x80"), 1, "U+10000, the first 4-byte form" },
		{ S("\xf0\x9f\x98\x80"), 1, "U+1F600 emoji, 4 bytes" },
		{ S("\xf4\x8f\xbf\xbf"), 1, "U+10FFFF, the last code point" },
		{ S("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"), 5,
		    "1, 2, 3, 4, 1 bytes mixed" },
		{ S("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"), 3, "three CJK" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(kds_utf8_chars(t[i].s, t[i].len), t[i].chars, "%s: %ld",
		    t[i].name, t[i].chars);
}

static void
bad(void)
{
	static const struct { const char *s; size_t len; const char *name; } t[] = {
		{ S("\x80"), "lone continuation byte" },
		{ S("a\xbf"), "continuation byte after ASCII" },
		{ S("\xc0\x80"), "overlong NUL, 2 bytes (C0 80)" },
		{ S("\xc0\xaf"), "overlong '/', 2 bytes" },
		{ S("\xc1\xbf"), "overlong U+007F, 2 bytes" },
		{ S("\xe0\x80\x80"), "overlong NUL, 3 bytes" },
		{ S("\xe0\x9f\xbf"), "overlong U+07FF, 3 bytes" },
		{ S("\xf0\x80\x80\x80"), "overlong NUL, 4 bytes" },
		{ S("\xf0\x8f\xbf\xbf"), "overlong U+FFFF, 4 bytes" },
		{ S("\xf8\x88\x80\x80\x80"), "5-byte form" },
		{ S("\xfc\x84\x80\x80\x80\x80"), "6-byte form" },
		{ S("\xed\xa0\x80"), "surrogate U+D800" },
		{ S("\xed\xb0\x80"), "surrogate U+DC00" },
		{ S("\xed\xbf\xbf"), "surrogate U+DFFF" },
		{ S("\xed\xa0\xbd\xed\xb8\x80"), "CESU-8 surrogate pair" },
		{ S("\xf4\x90\x80\x80"), "U+110000, above U+10FFFF" },
		{ S("\xf5\x80\x80\x80"), "lead byte F5" },
		{ S("\xf7\xbf\xbf\xbf"), "U+1FFFFF" },
		{ S("\xfe"), "byte FE" },
		{ S("\xff"), "byte FF" },
		{ S("\xc3"), "truncated 2-byte form" },
		{ S("\xe2\x82"), "truncated 3-byte form" },
		{ S("\xe2"), "3-byte lead alone" },
		{ S("\xf0\x9f\x98"), "truncated 4-byte form" },
		{ S("ab\xf0\x9f"), "truncated 4-byte form at the end" },
		{ S("\xc3\x41"), "2-byte form with an ASCII second byte" },
		{ S("\xe2\x82\x41"), "3-byte form with an ASCII third byte" },
		{ S("\xf0\x9f\x98\xc3\xa9"), "4-byte form cut by a 2-byte form" },
		{ S("\xe2\x82\xac\x80"), "extra continuation byte" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		is_int(kds_utf8_chars(t[i].s, t[i].len), -1, "refused: %s",
		    t[i].name);
}

/* Only len bytes count: a valid prefix of a longer, bad string. */
static void
bounds(void)
{
	is_int(kds_utf8_chars("ab\xff", 2), 2, "bytes past len are not read");
	is_int(kds_utf8_chars("\xe2\x82\xac", 2), -1,
	    "a character cut by len is truncated");
	is_int(kds_utf8_chars("\xe2\x82\xac", 3), 1, "the same, whole");
}

/* Every code point, encoded here, counts as one character. */
static void
every_code_point(void)
{
	unsigned char b[4];
	long wrong = 0;

	for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
		size_t n;
		long want = 1;

		if (cp < 0x80) {
			b[0] = (unsigned char)cp;
			n = 1;
		} else if (cp < 0x800) {
			b[0] = (unsigned char)(0xc0 | cp >> 6);
			b[1] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 2;
		} else if (cp < 0x10000) {
			b[0] = (unsigned char)(0xe0 | cp >> 12);
			b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
			b[2] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 3;
			if (cp >= 0xd800 && cp <= 0xdfff)
				want = -1;
		} else {
			b[0] = (unsigned char)(0xf0 | cp >> 18);
			b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
			b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
			b[3] = (unsigned char)(0x80 | (cp & 0x3f));
			n = 4;
		}
		if (kds_utf8_chars((const char *)b, n) != want)
			wrong++;
	}
	is_int(wrong, 0, "every code point U+0000 to U+10FFFF counts 1, "
	    "surrogates -1");
}

int
main(void)
{
	good();
	bad();
	bounds();
	every_code_point();
	return done_testing();
}
