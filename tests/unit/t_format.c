/* t_format.c: writing records out: --format tokens and the built-ins. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"
#include "tap.h"

#define S(lit) lit, sizeof(lit) - 1

static struct kds_record rec = {
	"pk", 2, "hello", 5, 1, 42, 1795824000123,
};

/* Run a format over one record into memory; the caller frees *out. */
static int
run(struct kds_format *f, const struct kds_record *r, char **out, size_t *len)
{
	FILE *o = open_memstream(out, len);
	int rc;

	if (o == NULL)
		bail_out("open_memstream");
	rc = kds_format_write(o, f, "clicks", r);
	if (fclose(o) != 0)
		bail_out("fclose");
	return rc;
}

/*
 * The same through an outpipe (kds_format_out) of buffers of bufsize
 * bytes, into a temporary file; the caller frees *out.  A small bufsize
 * makes every record cross buffers, past the in-place fast paths.
 */
static int
run_out(struct kds_format *f, const struct kds_record *r, size_t bufsize,
    char **out, size_t *len)
{
	FILE *tmp = tmpfile();
	struct kds_outpipe *o;
	off_t end;
	int rc;

	if (tmp == NULL || (o = kds_outpipe_new(fileno(tmp), bufsize)) == NULL)
		bail_out("outpipe");
	rc = kds_format_out(o, f, "clicks", r);
	if (kds_outpipe_flush(o) == -1)
		rc = -1;
	kds_outpipe_free(o);
	if ((end = lseek(fileno(tmp), 0, SEEK_END)) == -1 ||
	    (*out = malloc((size_t)end + 1)) == NULL ||
	    pread(fileno(tmp), *out, (size_t)end, 0) != end)
		bail_out("read back");
	*len = (size_t)end;
	fclose(tmp);
	return rc;
}

/* Through an outpipe, big and small buffers, the same bytes as want. */
static void
out_is(struct kds_format *f, const struct kds_record *r, const char *want,
    size_t wantlen, const char *what)
{
	static const size_t sizes[] = { 1 << 20, 4 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *out = NULL;
		size_t len = 0;

		if (run_out(f, r, sizes[i], &out, &len) != 0)
			ok(0, "%s, outpipe of %zu: write failed", what,
			    sizes[i]);
		else
			is_mem(out, len, want, wantlen, "%s, outpipe of %zu",
			    what, sizes[i]);
		free(out);
	}
}

static void
spec_is(const char *spec, const struct kds_record *r, const char *want,
    size_t wantlen)
{
	struct kds_err e = { 0, "" };
	struct kds_format *f = kds_format_new(spec, &e);
	char *out = NULL;
	size_t len = 0;

	if (f == NULL) {
		ok(0, "format '%s': %s", spec, e.msg);
		return;
	}
	if (run(f, r, &out, &len) != 0)
		ok(0, "format '%s': write failed", spec);
	else
		is_mem(out, len, want, wantlen, "format '%s'", spec);
	free(out);
	out_is(f, r, want, wantlen, spec);
	kds_format_free(f);
}

static void
builtin_is(const char *name, const struct kds_record *r, const char *want,
    size_t wantlen, const char *what)
{
	struct kds_err e = { 0, "" };
	struct kds_format *f = kds_format_builtin(name, &e);
	char *out = NULL;
	size_t len = 0;

	if (f == NULL) {
		ok(0, "%s: %s", what, e.msg);
		return;
	}
	if (run(f, r, &out, &len) != 0)
		ok(0, "%s: write failed", what);
	else
		is_mem(out, len, want, wantlen, "%s", what);
	free(out);
	out_is(f, r, want, wantlen, what);
	kds_format_free(f);
}

static void
tokens(void)
{
	spec_is("%s", &rec, S("hello"));
	spec_is("%k", &rec, S("pk"));
	spec_is("%S", &rec, S("5"));
	spec_is("%K", &rec, S("2"));
	spec_is("%o", &rec, S("200000000000000000042"));
	spec_is("%T", &rec, S("1795824000123"));
	spec_is("%p", &rec, S("shardId-000000000001"));
	spec_is("%t", &rec, S("clicks"));
	spec_is("%h", &rec, S("38317986088707300215492326132921849533"));
	spec_is("%%", &rec, S("%"));
	spec_is("100%%", &rec, S("100%"));
	spec_is("", &rec, S(""));
	spec_is("plain text", &rec, S("plain text"));
	spec_is("%k\t%s\n", &rec, S("pk\thello\n"));
	spec_is("[%t/%p/%o] %k=%s (%S bytes, key %K) at %T%%\n", &rec,
	    S("[clicks/shardId-000000000001/200000000000000000042] pk=hello "
	    "(5 bytes, key 2) at 1795824000123%\n"));
	spec_is("%s%s%k%k", &rec, S("hellohellopkpk"));
}

static void
escapes(void)
{
	spec_is("\\n", &rec, S("\n"));
	spec_is("\\t", &rec, S("\t"));
	spec_is("\\r", &rec, S("\r"));
	spec_is("\\0", &rec, S("\0"));
	spec_is("\\\\", &rec, S("\\"));
	spec_is("%k\\0%s\\0", &rec, S("pk\0hello\0"));
	spec_is("a\\tb\\nc\\\\n%%s", &rec, S("a\tb\nc\\n%s"));
	spec_is("\\\\%s", &rec, S("\\hello"));
}

static void
bad_specs(void)
{
	static const struct { const char *spec, *msg; } t[] = {
		{ "%x", "format: unknown token '%x'" },
		{ "%s %q", "format: unknown token '%q'" },
		{ "%", "format: '%' at the end" },
		{ "abc%", "format: '%' at the end" },
		{ "\\q", "format: unknown escape '\\q'" },
		{ "%s\\x41", "format: unknown escape '\\x'" },
		{ "\\", "format: '\\' at the end" },
		{ "%s\\", "format: '\\' at the end" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct kds_err e = { 0, "" };
		struct kds_format *f = kds_format_new(t[i].spec, &e);

		ok(f == NULL && strcmp(e.msg, t[i].msg) == 0 &&
		    e.errnum == EINVAL, "format '%s' refused: %s", t[i].spec,
		    t[i].msg);
		if (f != NULL)
			kds_format_free(f);
		else if (strcmp(e.msg, t[i].msg) != 0)
			diag("message '%s'", e.msg);
	}
}

static void
builtins(void)
{
	struct kds_record bin = { "k\"\\\x01\x1f\x7f\xc3\xa9", 8,
	    "\0\1\2\xfe\xff", 5, 12, 7, 1795824000005 };
	struct kds_record empty = { "k", 1, "", 0, 0, 1, 5 };
	struct kds_record nul = { "k", 1, "a\0b", 3, 0, 1, 0 };
	/* a, a lone continuation byte, an overlong '/', b, a cut-short
	 * euro sign's first byte, a whole one, a surrogate's first two */
	struct kds_record forged = { "a\x80\xc0\xaf" "b\xe2\xe2\x82\xac\xed\xa0",
	    11, "", 0, 0, 1, -1500 };
	struct kds_record early = { "k", 1, "", 0, 0, 1, -5 };
	struct kds_err e = { 0, "" };

	builtin_is("lines", &rec, S("hello\n"), "lines: data and a newline");
	builtin_is("null", &rec, S("hello\0"), "null: data and a NUL");
	builtin_is("raw", &rec, S("hello"), "raw: data alone");
	builtin_is("raw", &nul, S("a\0b"), "raw: data holding a NUL");
	builtin_is("lines", &nul, S("a\0b\n"), "lines: data holding a NUL");
	builtin_is("jsonl", &rec,
	    S("{\"ShardId\":\"shardId-000000000001\","
	    "\"SequenceNumber\":\"200000000000000000042\","
	    "\"ApproximateArrivalTimestamp\":1795824000.123,"
	    "\"PartitionKey\":\"pk\",\"Data\":\"aGVsbG8=\"}\n"),
	    "jsonl: the exact line");
	builtin_is("jsonl", &bin,
	    S("{\"ShardId\":\"shardId-000000000012\","
	    "\"SequenceNumber\":\"1300000000000000000007\","
	    "\"ApproximateArrivalTimestamp\":1795824000.005,"
	    "\"PartitionKey\":\"k\\\"\\\\\\u0001\\u001f\\u007f\xc3\xa9\","
	    "\"Data\":\"AAEC/v8=\"}\n"),
	    "jsonl: key escaped, binary data in base64, milliseconds padded");
	builtin_is("jsonl", &empty,
	    S("{\"ShardId\":\"shardId-000000000000\","
	    "\"SequenceNumber\":\"100000000000000000001\","
	    "\"ApproximateArrivalTimestamp\":0.005,"
	    "\"PartitionKey\":\"k\",\"Data\":\"\"}\n"),
	    "jsonl: empty data");
	/* What only a forged segment holds: still JSON. */
	builtin_is("jsonl", &forged,
	    S("{\"ShardId\":\"shardId-000000000000\","
	    "\"SequenceNumber\":\"100000000000000000001\","
	    "\"ApproximateArrivalTimestamp\":-1.500,"
	    "\"PartitionKey\":\"a\\ufffd\\ufffd\\ufffdb\\ufffd\xe2\x82\xac"
	    "\\ufffd\\ufffd\","
	    "\"Data\":\"\"}\n"),
	    "jsonl: a key not UTF-8 gets U+FFFD, a time before 1970 a sign");
	builtin_is("jsonl", &early,
	    S("{\"ShardId\":\"shardId-000000000000\","
	    "\"SequenceNumber\":\"100000000000000000001\","
	    "\"ApproximateArrivalTimestamp\":-0.005,"
	    "\"PartitionKey\":\"k\",\"Data\":\"\"}\n"),
	    "jsonl: -5 ms is -0.005 seconds");

	/* One format, many records: the base64 scratch grows and is reused. */
	{
		struct kds_format *f = kds_format_builtin("jsonl", &e);
		char *big = malloc(100000), *out = NULL;
		size_t len = 0;
		struct kds_record r = rec;
		FILE *o = open_memstream(&out, &len);
		int rc = 0;

		if (f == NULL || big == NULL || o == NULL)
			bail_out("setup");
		memset(big, 'x', 100000);
		for (size_t n = 1; n <= 100000; n *= 10) {
			r.data = big;
			r.datalen = n;
			rc |= kds_format_write(o, f, "s", &r);
		}
		r.datalen = 3;
		rc |= kds_format_write(o, f, "s", &r);
		fclose(o);
		ok(rc == 0 && strstr(out, "\"Data\":\"eHh4\"}\n") != NULL &&
		    out[len - 1] == '\n', "jsonl: 1 byte to 100 kB, then 3 again");
		free(out);
		free(big);
		kds_format_free(f);
	}

	ok(kds_format_builtin("xml", &e) == NULL &&
	    strcmp(e.msg, "unknown output format 'xml'") == 0,
	    "unknown built-in: '%s'", e.msg);
	ok(kds_format_builtin("", &e) == NULL, "empty built-in name refused");
	kds_format_free(NULL);
	ok(1, "kds_format_free(NULL) is harmless");
}

int
main(void)
{
	tokens();
	escapes();
	bad_specs();
	builtins();
	return done_testing();
}
