/* t_jsonl.c: records in as JSON lines, the shape aws kinesis put-records takes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "tap.h"

static struct kds_scratch scratch;

static int
parse(const char *line, struct kds_put_record *r, struct kds_err *e)
{
	memset(r, 0, sizeof(*r));
	e->errnum = 0;
	e->msg[0] = '\0';
	return kds_jsonl_parse(line, strlen(line), r, &scratch, e);
}

static void
good(void)
{
	struct kds_put_record r;
	struct kds_err e;

	if (!ok(parse("{\"PartitionKey\":\"user-1\",\"Data\":\"aGVsbG8=\"}", &r,
	    &e) == 0, "a good object"))
		diag("%s", e.msg);
	is_mem(r.key, r.keylen, "user-1", 6, "PartitionKey");
	is_mem(r.data, r.datalen, "hello", 5, "Data, decoded from base64");
	ok(r.explicit_hash_key == NULL, "no ExplicitHashKey: NULL");
	ok(r.spread == 0, "not spread");

	ok(parse("{\"Data\":\"AAEC/v8=\",\"ExplicitHashKey\":"
	    "\"340282366920938463463374607431768211455\","
	    "\"PartitionKey\":\"k\"}", &r, &e) == 0, "with ExplicitHashKey, "
	    "members in any order");
	is_str(r.explicit_hash_key, "340282366920938463463374607431768211455",
	    "ExplicitHashKey, NUL-terminated");
	is_mem(r.data, r.datalen, "\0\1\2\xfe\xff", 5, "binary Data");
	is_mem(r.key, r.keylen, "k", 1, "key");

	ok(parse("{\"PartitionKey\":\"k\",\"Data\":\"\"}", &r, &e) == 0 &&
	    r.datalen == 0, "empty Data");
	ok(parse("  {\"PartitionKey\" : \"\\u00e9\\\"\\n\", \"Data\" : \"eA==\"} ",
	    &r, &e) == 0, "whitespace and escapes");
	is_mem(r.key, r.keylen, "\xc3\xa9\"\n", 4, "escapes in the key decoded");
	is_mem(r.data, r.datalen, "x", 1, "Data x");

	/* What kds-get -o jsonl writes replays: other members passed over. */
	ok(parse("{\"ShardId\":\"shardId-000000000001\",\"SequenceNumber\":"
	    "\"200000000000000000042\",\"ApproximateArrivalTimestamp\":"
	    "1795824000.123,\"PartitionKey\":\"pk\",\"Data\":\"aGVsbG8=\"}",
	    &r, &e) == 0 && r.keylen == 2 && r.datalen == 5,
	    "kds-get -o jsonl output parses back");

	/* Not NUL-terminated: only len bytes are read. */
	{
		const char *s = "{\"PartitionKey\":\"a\",\"Data\":\"YQ==\"}garbage";

		memset(&r, 0, sizeof(r));
		ok(kds_jsonl_parse(s, strlen(s) - 7, &r, &scratch, &e) == 0 &&
		    r.keylen == 1 && r.datalen == 1,
		    "only len bytes of the line are parsed");
	}

	/* The scratch buffer grows for a large record and is reused. */
	{
		size_t n = 300000, b64 = kds_base64_encoded_len(n);
		char *line = malloc(b64 + 64), *raw = malloc(n);
		int len;

		if (line == NULL || raw == NULL)
			bail_out("out of memory");
		for (size_t i = 0; i < n; i++)
			raw[i] = (char)(i * 31 + 7);
		len = sprintf(line, "{\"PartitionKey\":\"big\",\"Data\":\"");
		kds_base64_encode(line + len, raw, n);
		strcpy(line + len + b64, "\"}");
		ok(parse(line, &r, &e) == 0 && r.datalen == n &&
		    memcmp(r.data, raw, n) == 0 && r.keylen == 3 &&
		    memcmp(r.key, "big", 3) == 0, "a 300 kB record");
		free(line);
		free(raw);
	}
}

static void
bad(void)
{
	static const struct { const char *line, *msg; } t[] = {
		{ "{\"Data\":\"aGVsbG8=\"}", "PartitionKey missing" },
		{ "{\"PartitionKey\":\"k\"}", "Data missing" },
		{ "{}", "PartitionKey missing" },
		{ "{\"PartitionKey\":\"k\",\"Data\":42}", "Data is not a string" },
		{ "{\"PartitionKey\":\"k\",\"Data\":null}", "Data is not a string" },
		{ "{\"PartitionKey\":\"k\",\"Data\":[\"aGk=\"]}",
		    "Data is not a string" },
		{ "{\"PartitionKey\":7,\"Data\":\"aGk=\"}",
		    "PartitionKey is not a string" },
		{ "{\"PartitionKey\":\"k\",\"Data\":\"aGk=\",\"ExplicitHashKey\":5}",
		    "ExplicitHashKey is not a string" },
		{ "{\"PartitionKey\":\"k\",\"Data\":\"not base64!\"}",
		    "Data is not valid base64" },
		{ "{\"PartitionKey\":\"k\",\"Data\":\"aGVsbG8\"}",
		    "Data is not valid base64" },
		{ "{\"PartitionKey\":\"k\",\"Data\":\"a===\"}",
		    "Data is not valid base64" },
		{ "{\"PartitionKey\":\"k\",\"Data\":\"aGk=aGk=\"}",
		    "Data is not valid base64" },
		{ "[1,2]", "not a JSON object" },
		{ "[{\"PartitionKey\":\"k\",\"Data\":\"aGk=\"}]",
		    "not a JSON object" },
	};
	static const char *bad_json[] = {
		"", "{", "{\"PartitionKey\":\"k\",\"Data\":\"aGk=\"", "not json",
		"{'PartitionKey':'k','Data':'aGk='}",
		"{\"PartitionKey\":\"k\",\"Data\":\"aGk=\"} {}",
		"{\"PartitionKey\":\"k\",\"Data\":\"aGk=\",}",
		"{\"PartitionKey\":\"k\",\"PartitionKey\":\"j\",\"Data\":\"aGk=\"}",
		"{\"PartitionKey\":\"k\",\"Data\":\"aGk=\",\"Data\":\"aGk=\"}",
		/* jansson takes only objects and arrays at the top... */
		"\"PartitionKey\"", "42", "null",
		/* ...and refuses \u0000, so a key never holds a NUL. */
		"{\"PartitionKey\":\"a\\u0000b\",\"Data\":\"aGk=\"}",
	};
	struct kds_put_record r;
	struct kds_err e;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = parse(t[i].line, &r, &e);

		if (!ok(rc == KDS_BAD_RECORD && strcmp(e.msg, t[i].msg) == 0,
		    "%s: %s", t[i].line, t[i].msg))
			diag("rc %d, message '%s'", rc, e.msg);
	}
	for (size_t i = 0; i < sizeof(bad_json) / sizeof(bad_json[0]); i++) {
		int rc = parse(bad_json[i], &r, &e);

		if (!ok(rc == KDS_BAD_RECORD &&
		    strncmp(e.msg, "bad JSON at column ", 19) == 0,
		    "'%s' is bad JSON", bad_json[i]))
			diag("rc %d, message '%s'", rc, e.msg);
	}
	parse("{\"PartitionKey\":\"k\",\"PartitionKey\":\"j\",\"Data\":\"aGk=\"}",
	    &r, &e);
	ok(strstr(e.msg, "duplicate") != NULL, "a duplicate key is named as "
	    "such: '%s'", e.msg);
}

int
main(void)
{
	good();
	bad();
	free(scratch.buf);
	return done_testing();
}
