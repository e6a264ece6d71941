/*
 * jsonl.c: one record per JSON object, the shape `aws kinesis put-records`
 * takes ({"PartitionKey", "Data" in base64, "ExplicitHashKey"}) and
 * kds-get -o jsonl writes (whose other members are passed over, so that a
 * stream's output replays into another; any other member is refused).  Parsing is jansson's.
 */
#include <errno.h>
#include <jansson.h>
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/*
 * The first member that is neither put-records' nor one of those that
 * kds-get -o jsonl adds, or NULL.  A misspelt "ExplicitHashkey" must not
 * route a record by MD5 in silence.
 */
static const char *
unknown_member(json_t *o, struct kds_err *e)
{
	static const char *const known[] = {
		"PartitionKey", "Data", "ExplicitHashKey",
		"ShardId", "SequenceNumber", "ApproximateArrivalTimestamp",
	};
	const char *name;
	json_t *v;

	json_object_foreach(o, name, v) {
		size_t i;

		(void)v;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(name, known[i]) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0])) {
			kds_fail(e, EINVAL, "unknown field '%.64s'", name);
			return name;
		}
	}
	return NULL;
}

static int
reserve(struct kds_scratch *s, size_t n)
{
	if (n > s->cap) {
		char *nb = realloc(s->buf, n);

		if (nb == NULL)
			return -1;
		s->buf = nb;
		s->cap = n;
	}
	return 0;
}

static const char *
member(json_t *o, const char *name, size_t *len, int required,
    struct kds_err *e, int *bad)
{
	json_t *v = json_object_get(o, name);

	if (v == NULL) {
		if (required) {
			*bad = 1;
			kds_fail(e, EINVAL, "%s missing", name);
		}
		return NULL;
	}
	if (!json_is_string(v)) {
		*bad = 1;
		kds_fail(e, EINVAL, "%s is not a string", name);
		return NULL;
	}
	*len = json_string_length(v);
	return json_string_value(v);
}

/* 0, or KDS_BAD_RECORD with the reason; -1 when out of memory. */
int
kds_jsonl_parse(const char *line, size_t len, struct kds_put_record *r,
    struct kds_scratch *s, struct kds_err *e)
{
	json_error_t je;
	const char *key, *data, *ehk;
	size_t keylen = 0, datalen = 0, ehklen = 0, out;
	json_t *o;
	int bad = 0, rc = KDS_BAD_RECORD;

	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL) {
		kds_fail(e, EINVAL, "bad JSON at column %d: %s", je.column,
		    je.text);
		return KDS_BAD_RECORD;
	}
	if (!json_is_object(o)) {
		kds_fail(e, EINVAL, "not a JSON object");
		goto out;
	}
	if (unknown_member(o, e) != NULL)
		goto out;
	key = member(o, "PartitionKey", &keylen, 1, e, &bad);
	if (bad)
		goto out;
	data = member(o, "Data", &datalen, 1, e, &bad);
	if (bad)
		goto out;
	ehk = member(o, "ExplicitHashKey", &ehklen, 0, e, &bad);
	if (bad)
		goto out;
	if (memchr(key, '\0', keylen) != NULL) {
		kds_fail(e, EINVAL, "PartitionKey holds a NUL character");
		goto out;
	}
	/* key, then the decoded data, then the hash key, in one buffer. */
	if (reserve(s, keylen + BASE64_DECODE_LENGTH(datalen) + ehklen + 2) == -1) {
		rc = kds_fail_errno(e, "jsonl");
		goto out;
	}
	memcpy(s->buf, key, keylen);
	if (kds_base64_decode((unsigned char *)s->buf + keylen, &out, data,
	    datalen) == -1) {
		kds_fail(e, EINVAL, "Data is not valid base64");
		goto out;
	}
	r->key = s->buf;
	r->keylen = keylen;
	r->data = s->buf + keylen;
	r->datalen = out;
	r->explicit_hash_key = NULL;
	if (ehk != NULL) {
		char *h = s->buf + keylen + out;

		memcpy(h, ehk, ehklen);
		h[ehklen] = '\0';
		r->explicit_hash_key = h;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}
