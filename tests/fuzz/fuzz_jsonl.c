/*
 * fuzz_jsonl.c: arbitrary bytes as kds-put -i jsonl input: cut into lines
 * as kds-put cuts them, each line through kds_jsonl_parse with one scratch
 * buffer reused, as kds-put reuses it, then through the checks
 * kds_producer_add makes of a record (UTF-8 key, explicit hash key).
 *
 * Invariants beside the sanitizers: a parsed record's parts lie in the
 * scratch buffer, its key holds no NUL; written out by kds-get -o jsonl
 * (kds_format_write) and parsed again, it is the same record.
 */
#include "fuzz.h"

static struct kds_scratch scratch, again_scratch;
static struct kds_format *fmt;

static void
round_trip(const struct kds_put_record *r)
{
	struct kds_record rec = { r->key, r->keylen, r->data, r->datalen,
	    3, 42, 1767225600123 };
	struct kds_put_record back;
	struct kds_err e;
	char *out = NULL;
	size_t outlen = 0;
	FILE *f;

	if ((f = open_memstream(&out, &outlen)) == NULL)
		abort();
	FUZZ_ASSERT(kds_format_write(f, fmt, "s", &rec) == 0);
	if (fclose(f) != 0)
		abort();
	FUZZ_ASSERT(outlen > 0 && out[outlen - 1] == '\n' &&
	    memchr(out, '\n', outlen) == out + outlen - 1);
	if (kds_jsonl_parse(out, outlen - 1, &back, &again_scratch, &e) != 0) {
		fprintf(stderr, "fuzz_jsonl: own output refused: %s: %s",
		    e.msg, out);
		abort();
	}
	FUZZ_ASSERT(back.keylen == r->keylen &&
	    memcmp(back.key, r->key, r->keylen) == 0);
	FUZZ_ASSERT(back.datalen == r->datalen &&
	    memcmp(back.data, r->data, r->datalen) == 0);
	free(out);
}

static void
one_line(const char *line, size_t len)
{
	struct kds_put_record r = { 0 };
	unsigned __int128 h;
	struct kds_err e;
	int rc;

	rc = kds_jsonl_parse(line, len, &r, &scratch, &e);
	FUZZ_ASSERT(rc == 0 || rc == KDS_BAD_RECORD);
	if (rc != 0)
		return;
	FUZZ_ASSERT(r.key == scratch.buf && r.data == r.key + r.keylen);
	FUZZ_ASSERT(r.keylen + r.datalen <= scratch.cap);
	FUZZ_ASSERT(memchr(r.key, '\0', r.keylen) == NULL);
	if (r.explicit_hash_key != NULL) {
		FUZZ_ASSERT(r.explicit_hash_key >= scratch.buf &&
		    r.explicit_hash_key + strlen(r.explicit_hash_key) <
		    scratch.buf + scratch.cap);
		kds_hashkey_parse(r.explicit_hash_key, &h);
	}
	/* jansson takes only UTF-8, so keys are: kds-put counts them. */
	FUZZ_ASSERT(kds_utf8_chars(r.key, r.keylen) >= 0);
	kds_hashkey_of(r.key, r.keylen);
	round_trip(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct kds_err e;

	if (fmt == NULL && (fmt = kds_format_builtin("jsonl", &e)) == NULL)
		abort();
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *line;

		/* An exact-size copy, so that ASan sees any read past it. */
		if ((line = malloc(len ? len : 1)) == NULL)
			abort();
		memcpy(line, p, len);
		one_line(line, len);
		free(line);
		p += len + 1;
	}
	return 0;
}
