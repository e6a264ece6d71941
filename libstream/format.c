/*
 * format.c: writing records out.  The built-in formats (lines, raw, null,
 * jsonl) and --format strings with kcat's tokens: %s data, %S data length,
 * %k key, %K key length, %o sequence number, %T arrival ms, %p shard id,
 * %t stream, %h hash key, %%; escapes \n \t \r \0 \\.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum op { OP_TEXT, OP_DATA, OP_DATALEN, OP_KEY, OP_KEYLEN, OP_SEQ,
	OP_TIME, OP_SHARD, OP_STREAM, OP_HASH, OP_JSON };

struct kds_format {
	int	 data_then;	/* -1, or the format is data and this byte */
	enum op	*ops;
	char	**text;		/* OP_TEXT: the literal */
	size_t	*textlen;
	size_t	 n;
	char	*scratch;	/* base64 of one record */
	size_t	 scap;
};

static int
add_op(struct kds_format *f, enum op op, const char *t, size_t tlen)
{
	enum op *no = reallocarray(f->ops, f->n + 1, sizeof(*no));
	char **nt;
	size_t *nl;

	if (no == NULL)
		return -1;
	f->ops = no;
	if ((nt = reallocarray(f->text, f->n + 1, sizeof(*nt))) == NULL)
		return -1;
	f->text = nt;
	if ((nl = reallocarray(f->textlen, f->n + 1, sizeof(*nl))) == NULL)
		return -1;
	f->textlen = nl;
	f->text[f->n] = NULL;
	f->textlen[f->n] = tlen;
	if (op == OP_TEXT && (f->text[f->n] = malloc(tlen ? tlen : 1)) == NULL)
		return -1;
	if (op == OP_TEXT)
		memcpy(f->text[f->n], t, tlen);
	f->ops[f->n++] = op;
	return 0;
}

struct kds_format *
kds_format_new(const char *spec, struct kds_err *e)
{
	struct kds_format *f = calloc(1, sizeof(*f));
	char *lit = malloc(strlen(spec) + 1);
	size_t n = 0;

	if (f == NULL || lit == NULL)
		goto nomem;
	f->data_then = -1;
	for (const char *p = spec; ; p++) {
		enum op op = OP_TEXT;

		if (*p == '\\' && p[1] == '\0') {
			kds_fail(e, EINVAL, "format: '\\' at the end");
			goto fail;
		}
		if (*p == '\\') {
			switch (*++p) {
			case 'n': lit[n++] = '\n'; continue;
			case 't': lit[n++] = '\t'; continue;
			case 'r': lit[n++] = '\r'; continue;
			case '0': lit[n++] = '\0'; continue;
			case '\\': lit[n++] = '\\'; continue;
			default:
				kds_fail(e, EINVAL, "format: unknown escape "
				    "'\\%c'", *p ? *p : ' ');
				goto fail;
			}
		}
		if (*p != '%' && *p != '\0') {
			lit[n++] = *p;
			continue;
		}
		if (*p == '%' && p[1] == '\0') {
			kds_fail(e, EINVAL, "format: '%%' at the end");
			goto fail;
		}
		if (*p == '%') {
			switch (*++p) {
			case '%': lit[n++] = '%'; continue;
			case 's': op = OP_DATA; break;
			case 'S': op = OP_DATALEN; break;
			case 'k': op = OP_KEY; break;
			case 'K': op = OP_KEYLEN; break;
			case 'o': op = OP_SEQ; break;
			case 'T': op = OP_TIME; break;
			case 'p': op = OP_SHARD; break;
			case 't': op = OP_STREAM; break;
			case 'h': op = OP_HASH; break;
			default:
				kds_fail(e, EINVAL, "format: unknown token "
				    "'%%%c'", *p ? *p : ' ');
				goto fail;
			}
		}
		if (n > 0 && add_op(f, OP_TEXT, lit, n) == -1)
			goto nomem;
		n = 0;
		if (op == OP_TEXT)	/* the end of spec */
			break;
		if (add_op(f, op, NULL, 0) == -1)
			goto nomem;
	}
	free(lit);
	return f;
nomem:
	kds_fail_errno(e, "format");
fail:
	free(lit);
	kds_format_free(f);
	return NULL;
}

struct kds_format *
kds_format_builtin(const char *name, struct kds_err *e)
{
	struct kds_format *f;

	if (strcmp(name, "lines") == 0 || strcmp(name, "null") == 0) {
		if ((f = kds_format_new("%s", e)) != NULL)
			f->data_then = name[0] == 'l' ? '\n' : '\0';
		return f;
	}
	if (strcmp(name, "raw") == 0)
		return kds_format_new("%s", e);
	if (strcmp(name, "jsonl") != 0) {
		kds_fail(e, EINVAL, "unknown output format '%s'", name);
		return NULL;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL || (f->data_then = -1,
	    add_op(f, OP_JSON, NULL, 0))) {
		kds_format_free(f);
		kds_fail_errno(e, "format");
		return NULL;
	}
	return f;
}

/*
 * Where a record goes: a FILE, or an outpipe (o set).  Each writes into
 * its own buffer; err is set once the outpipe failed (a FILE keeps its
 * error in ferror).
 */
struct sink {
	FILE			*f;
	struct kds_outpipe	*o;
	int			 err;
};

static void
put(struct sink *s, const void *p, size_t n)
{
	if (s->o == NULL)
		fwrite_unlocked(p, 1, n, s->f);
	else if (!s->err && kds_outpipe_write(s->o, p, n) == -1)
		s->err = 1;
}

static void
put_str(struct sink *s, const char *p)
{
	put(s, p, strlen(p));
}

static void
put_dec(struct sink *s, int64_t v)
{
	char b[24];

	put(s, b, (size_t)snprintf(b, sizeof(b), "%" PRId64, v));
}

/*
 * A JSON string.  Keys are valid UTF-8 (kds-put refuses others), but one
 * from a forged segment may not be: a byte that starts no well-formed
 * character becomes U+FFFD, as a decoder would show it, so that the
 * output stays JSON whatever the input.  Escaped into a block at a time,
 * not a call a byte.
 */
static void
json_string(struct sink *s, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char b[512];
	size_t k = 0;

	b[k++] = '"';
	for (size_t i = 0, len; i < n; i += len) {
		unsigned char c = (unsigned char)p[i];

		if (k > sizeof(b) - 7) {	/* room for \u00XX and '"' */
			put(s, b, k);
			k = 0;
		}
		len = 1;
		if (c == '"' || c == '\\') {
			b[k++] = '\\';
			b[k++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(b + k, "\\u00", 4);
			b[k + 4] = hex[c >> 4];
			b[k + 5] = hex[c & 0xf];
			k += 6;
		} else if (c < 0x80) {
			b[k++] = (char)c;
		} else if ((len = kds_utf8_len(p + i, n - i)) == 0) {
			memcpy(b + k, "\\ufffd", 6);
			k += 6;
			len = 1;
		} else {
			memcpy(b + k, p + i, len);
			k += len;
		}
	}
	b[k++] = '"';
	put(s, b, k);
}

/* Milliseconds as JSON's seconds, 1764324000.123; before the epoch (a
 * forged segment's) -0.500, not 0.-500. */
static size_t
json_seconds(char *b, size_t n, int64_t ms)
{
	uint64_t a = ms < 0 ? -(uint64_t)ms : (uint64_t)ms;

	return (size_t)snprintf(b, n, "%s%" PRIu64 ".%03u", ms < 0 ? "-" : "",
	    a / 1000, (unsigned)(a % 1000));
}

static int
base64(struct sink *s, struct kds_format *f, const char *p, size_t n)
{
	size_t need = kds_base64_encoded_len(n);
	char *out;

	if (need == 0)		/* and scratch may still be NULL */
		return 0;
	/* Into the outpipe's buffer in place, when it fits there. */
	if (s->o != NULL && !s->err && need <= s->o->cap) {
		if ((out = kds_outpipe_reserve(s->o, need)) == NULL)
			s->err = 1;
		else
			kds_base64_encode(out, p, n);
		return 0;
	}
	if (need > f->scap) {
		char *ns = realloc(f->scratch, need);

		if (ns == NULL)
			return -1;
		f->scratch = ns;
		f->scap = need;
	}
	kds_base64_encode(f->scratch, p, n);
	put(s, f->scratch, need);
	return 0;
}

static int
format(struct sink *s, struct kds_format *f, const char *stream,
    const struct kds_record *r)
{
	char seq[KDS_SEQ_LEN], id[KDS_SHARD_ID_LEN + 1], hk[KDS_HASHKEY_LEN];
	char head[256];

	for (size_t i = 0; i < f->n; i++) {
		switch (f->ops[i]) {
		case OP_TEXT:
			put(s, f->text[i], f->textlen[i]);
			break;
		case OP_DATA:
			put(s, r->data, r->datalen);
			break;
		case OP_DATALEN:
			put_dec(s, (int64_t)r->datalen);
			break;
		case OP_KEY:
			put(s, r->key, r->keylen);
			break;
		case OP_KEYLEN:
			put_dec(s, (int64_t)r->keylen);
			break;
		case OP_SEQ:
			kds_seq_format(r->shard, r->counter, seq);
			put_str(s, seq);
			break;
		case OP_TIME:
			put_dec(s, r->arrival_ms);
			break;
		case OP_SHARD:
			kds_shard_id(r->shard, id);
			put_str(s, id);
			break;
		case OP_STREAM:
			put_str(s, stream);
			break;
		case OP_HASH:
			kds_hashkey_format(kds_hashkey_of(r->key, r->keylen), hk);
			put_str(s, hk);
			break;
		case OP_JSON:
			kds_shard_id(r->shard, id);
			kds_seq_format(r->shard, r->counter, seq);
			put(s, head, (size_t)snprintf(head, sizeof(head),
			    "{\"ShardId\":\"%s\",\"SequenceNumber\":\"%s\","
			    "\"ApproximateArrivalTimestamp\":", id, seq));
			put(s, head, json_seconds(head, sizeof(head),
			    r->arrival_ms));
			put_str(s, ",\"PartitionKey\":");
			json_string(s, r->key, r->keylen);
			put_str(s, ",\"Data\":\"");
			if (base64(s, f, r->data, r->datalen) == -1)
				return -1;
			put_str(s, "\"}\n");
			break;
		}
	}
	return 0;
}

int
kds_format_write(FILE *o, struct kds_format *f, const char *stream,
    const struct kds_record *r)
{
	struct sink s = { o, NULL, 0 };

	if (f->data_then >= 0) {	/* the common case, lines: no loop */
		fwrite_unlocked(r->data, 1, r->datalen, o);
		putc_unlocked(f->data_then, o);
		return ferror_unlocked(o) ? -1 : 0;
	}
	if (format(&s, f, stream, r) == -1)
		return -1;
	return ferror(o) ? -1 : 0;
}

int
kds_format_out(struct kds_outpipe *o, struct kds_format *f,
    const char *stream, const struct kds_record *r)
{
	struct sink s = { NULL, o, 0 };
	char *p;

	/* lines and -0, the common case: one copy into the buffer, no loop
	 * and no call, as long as the record fits in a buffer. */
	if (f->data_then >= 0 && r->datalen < o->cap) {
		if ((p = kds_outpipe_reserve(o, r->datalen + 1)) == NULL)
			return -1;
		if (r->datalen > 0)	/* and data may be NULL */
			memcpy(p, r->data, r->datalen);
		p[r->datalen] = (char)f->data_then;
		return 0;
	}
	if (f->data_then >= 0) {
		put(&s, r->data, r->datalen);
		put(&s, &(char){ (char)f->data_then }, 1);
	} else if (format(&s, f, stream, r) == -1) {
		return -1;
	}
	return s.err ? -1 : 0;
}

void
kds_format_free(struct kds_format *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->text[i]);
	free(f->text);
	free(f->textlen);
	free(f->ops);
	free(f->scratch);
	free(f);
}
