/*
 * kr_llm_classify: what a provider's answer means (providers.md, "Errors and what they
 * mean"), retry hints, the scrubbing of keys from messages, and the defensive JSON reading
 * the protocol files share. Nothing here touches the network.
 */
#include "kr_llm_proto.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kr_crypto.h"

#define REDACTED		"[redacted]"
#define SCRUB_RUN		8	/* the shortest piece of a key that counts as the key */
#define PROVIDER_MSG_MAX	2048	/* the provider's words, before they are fitted */
#define SNIPPET_MAX		200	/* of a plain-text error body */
#define DURATION_MAX_US		1000000000000LL	/* 1e6 s: beyond any sensible hint */

static const char *const class_names[] = {
	"ok", "auth", "quota", "rate", "transient", "request",
};

/* The words that open a message, per class. */
static const char *const class_words[] = {
	"ok", "authentication failed", "quota exhausted", "rate limited",
	"provider unavailable", "request refused",
};

const char *
kr_llm_class_name(enum kr_llm_class c)
{
	return (unsigned)c <= KR_LLM_REQUEST ? class_names[c] : "unknown";
}

const struct kr_llm_proto *
kr_llm__proto(const struct kr_provider *p)
{
	static const struct kr_llm_proto *const protos[] = {
		[KR_PROTO_ANTHROPIC] = &kr_llm_anthropic_proto,
		[KR_PROTO_OPENAI] = &kr_llm_openai_proto,
		[KR_PROTO_GEMINI] = &kr_llm_gemini_proto,
	};

	return (unsigned)p->protocol <= KR_PROTO_GEMINI ? protos[p->protocol] : NULL;
}

/* ---- JSON, read defensively ---- */

json_object *
kr_llm__json(const char *body, size_t len)
{
	json_tokener *tok;
	json_object *o;

	if (body == NULL || len == 0 || len > INT_MAX || (tok = json_tokener_new()) == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, body, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static json_object *
member(json_object *o, const char *key, json_type t)
{
	json_object *v = NULL;

	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v)
	    || !json_object_is_type(v, t))
		return NULL;
	return v;
}

json_object *
kr_llm__obj(json_object *o, const char *key)
{
	return member(o, key, json_type_object);
}

json_object *
kr_llm__arr(json_object *o, const char *key)
{
	return member(o, key, json_type_array);
}

size_t
kr_llm__len(json_object *arr)
{
	return json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
}

json_object *
kr_llm__at(json_object *arr, size_t i)
{
	return i < kr_llm__len(arr) ? json_object_array_get_idx(arr, i) : NULL;
}

const char *
kr_llm__str(json_object *o, const char *key)
{
	json_object *v = member(o, key, json_type_string);

	return v != NULL ? json_object_get_string(v) : NULL;
}

/* A decimal integer string of at most 18 digits, optionally negative; -1 otherwise. */
static long long
int_string(const char *s)
{
	long long v = 0;
	size_t n = 0;
	int neg = *s == '-';

	for (s += neg; isdigit((unsigned char)*s) && n < 18; s++, n++)
		v = v * 10 + (*s - '0');
	return n > 0 && *s == '\0' ? (neg ? -v : v) : -1;
}

long long
kr_llm__int(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v))
		return -1;
	if (json_object_is_type(v, json_type_int))
		return (long long)json_object_get_int64(v);
	if (json_object_is_type(v, json_type_double)) {
		double d = json_object_get_double(v);
		return d >= -1e15 && d <= 1e15 ? (long long)d : -1;
	}
	if (json_object_is_type(v, json_type_string))
		return int_string(json_object_get_string(v));
	return -1;
}

int
kr_llm__has(const char *hay, const char *needle)
{
	size_t n;

	if (hay == NULL || needle == NULL)
		return 0;
	n = strlen(needle);
	for (; *hay != '\0'; hay++) {
		size_t i = 0;
		while (i < n && hay[i] != '\0' && tolower((unsigned char)hay[i]) ==
		    tolower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return 1;
	}
	return n == 0;
}

int
kr_llm__text_add(struct kr_buf *b, const char *s)
{
	return s == NULL || kr_buf_puts(b, s) == KR_BUF_OK ? 0 : -1;
}

int
kr_llm__text_take(struct kr_buf *b, struct kr_llm_result *out)
{
	if (b->failed)
		return -1;
	out->text = b->len > 0 ? kr_buf_detach(b, NULL) : strdup("");
	kr_buf_release(b, 0);
	return out->text != NULL ? 0 : -1;
}

void
kr_llm__blocked(struct kr_llm_result *out, const char *why)
{
	out->cls = KR_LLM_REQUEST;
	kr_llm__message(out, "content withheld by the provider (%s)", why);
}

void
kr_llm__cut_short(struct kr_llm_result *out, const char *why)
{
	out->cls = KR_LLM_REQUEST;
	kr_llm__message(out, "empty answer: the model reached its output token limit before "
	    "writing any (%s)", why);
}

/* ---- messages ---- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when none starts there. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xC2 && s[0] <= 0xDF ? 2 :
	    s[0] >= 0xE0 && s[0] <= 0xEF ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;

	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	/* overlong forms, surrogates, past U+10FFFF */
	if ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] > 0x9F) ||
	    (s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] > 0x8F))
		return 0;
	return len;
}

/*
 * Make s valid UTF-8 in place, as the database's utf8mb4 columns demand (a provider may
 * send Latin-1, and a cut may split a character): a byte that starts no valid sequence
 * becomes '?'.
 */
static void
utf8_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n = strlen(s), m;

	for (size_t i = 0; i < n; i += m)
		if ((m = utf8_seq(p + i, n - i)) == 0) {
			p[i] = '?';
			m = 1;
		}
}

/* Index of the last UTF-8 character boundary at or before n. */
static size_t
utf8_cut(const char *s, size_t n)
{
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/*
 * Copy n bytes of src into dst (cap bytes), replacing control characters with spaces (they
 * would forge log lines); when it does not fit, cut at a character boundary and end
 * with "...".
 */
static void
fit(char *dst, size_t cap, const char *src, size_t n)
{
	int cut;
	size_t i;

	n = strnlen(src, n);
	if ((cut = n >= cap) != 0)
		n = cap > 4 ? utf8_cut(src, cap - 4) : 0;
	memcpy(dst, src, n);
	for (i = 0; i < n; i++)
		if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
			dst[i] = ' ';
	if (cut && cap > 4) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
	utf8_clean(dst);
}

void
kr_llm__message(struct kr_llm_result *out, const char *fmt, ...)
{
	char tmp[PROVIDER_MSG_MAX + 256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0)
		tmp[0] = '\0';
	/* Longer than tmp: fit() sees sizeof(tmp) - 1 bytes and cuts them to the message. */
	fit(out->message, sizeof(out->message), tmp, sizeof(tmp) - 1);
}

/* ---- scrubbing ---- */

/*
 * Length of the longest run at s (slen bytes) that appears in the key and is at least
 * SCRUB_RUN long (the whole key when it is shorter); 0 when none.
 */
static size_t
key_run(const char *s, size_t slen, const char *key, size_t keylen)
{
	size_t best = 0, j, k;

	if (keylen < SCRUB_RUN)
		return slen >= keylen && memcmp(s, key, keylen) == 0 ? keylen : 0;
	for (j = 0; j + SCRUB_RUN <= keylen; j++) {
		for (k = 0; k < slen && j + k < keylen && s[k] == key[j + k]; k++)
			;
		if (k > best)
			best = k;
	}
	return best >= SCRUB_RUN ? best : 0;
}

/* Append n bytes of p at dst[*o] without passing cap - 1. */
static void
put(char *dst, size_t cap, size_t *o, const char *p, size_t n)
{
	if (n > cap - 1 - *o)
		n = cap - 1 - *o;
	memcpy(dst + *o, p, n);
	*o += n;
}

/* Without memory for a copy: overwrite every run with '*', which never grows the text. */
static void
mask(char *msg, size_t len, const char *key, size_t keylen)
{
	for (size_t i = 0, m; i < len; i += m > 0 ? m : 1)
		if ((m = key_run(msg + i, len - i, key, keylen)) > 0)
			memset(msg + i, '*', m);
}

void
kr_llm_scrub(char *msg, size_t cap, const char *key, size_t keylen)
{
	size_t len, i, m, o = 0;
	char *src;

	if (msg == NULL || cap == 0 || key == NULL || keylen == 0)
		return;
	len = strnlen(msg, cap - 1);
	msg[len] = '\0';
	if ((src = malloc(len + 1)) == NULL) {
		mask(msg, len, key, keylen);
		return;
	}
	memcpy(src, msg, len + 1);
	for (i = 0; i < len; i += m > 0 ? m : 1) {
		m = key_run(src + i, len - i, key, keylen);
		put(msg, cap, &o, m > 0 ? REDACTED : src + i, m > 0 ? strlen(REDACTED) : 1);
	}
	msg[o] = '\0';
	utf8_clean(msg);	/* a cut at cap may split a character */
	kr_wipe(src, len);
	free(src);
}

/* ---- retry hints ---- */

/* A decimal number "12" or "1.5": whole part, and the fraction as frac / den. */
struct decimal {
	long long	whole, frac, den;
};

/* Read a decimal at *sp and advance; -1 when no digit is there. Parts are bounded. */
static int
decimal(const char **sp, struct decimal *d)
{
	const char *s = *sp;
	int digits = 0;

	d->whole = d->frac = 0;
	d->den = 1;
	for (; isdigit((unsigned char)*s); s++, digits++)
		if (d->whole < 1000000000LL)
			d->whole = d->whole * 10 + (*s - '0');
	if (*s == '.')
		for (s++; isdigit((unsigned char)*s); s++, digits++)
			if (d->den < 1000000LL) {
				d->frac = d->frac * 10 + (*s - '0');
				d->den *= 10;
			}
	if (digits == 0)
		return -1;
	*sp = s;
	return 0;
}

/* d times unit_us (at most an hour), in microseconds, at most DURATION_MAX_US. */
static long long
scale(const struct decimal *d, long long unit_us)
{
	long long v;

	if (d->whole >= DURATION_MAX_US / unit_us)
		return DURATION_MAX_US;
	v = d->whole * unit_us + d->frac * unit_us / d->den;
	return v < DURATION_MAX_US ? v : DURATION_MAX_US;
}

/* Microseconds to milliseconds, rounding up so that a short hint is not zero. */
static long
us_to_ms(long long us)
{
	return (long)((us + 999) / 1000);
}

long
kr_llm_duration_ms(const char *s)
{
	static const struct { const char *unit; long long us; } units[] = {
		{ "ms", 1000LL }, { "us", 1LL }, { "h", 3600000000LL }, { "m", 60000000LL },
		{ "s", 1000000LL },
	};
	const size_t nunits = sizeof(units) / sizeof(units[0]);
	long long total = 0;
	struct decimal d;
	size_t i;

	if (s == NULL || *s == '\0')
		return -1;
	while (*s != '\0') {
		if (decimal(&s, &d) != 0)
			return -1;
		for (i = 0; i < nunits; i++)
			if (strncmp(s, units[i].unit, strlen(units[i].unit)) == 0)
				break;
		if (i == nunits)
			return -1;
		s += strlen(units[i].unit);
		total += scale(&d, units[i].us);
		if (total > DURATION_MAX_US)
			total = DURATION_MAX_US;
	}
	return us_to_ms(total);
}

/* A plain number ("20", "1.5", surrounding spaces allowed) times unit_us, in ms; else -1. */
static long
plain_ms(const char *s, long long unit_us)
{
	struct decimal d;

	while (*s == ' ')
		s++;
	if (decimal(&s, &d) != 0)
		return -1;
	while (*s == ' ')
		s++;
	return *s == '\0' ? us_to_ms(scale(&d, unit_us)) : -1;
}

/* retry-after: delay-seconds or an HTTP-date (RFC 9110, section 10.2.3). */
static long
retry_after_ms(const char *s, long long now)
{
	long ms = plain_ms(s, 1000000LL);
	time_t t;

	if (ms >= 0)
		return ms;
	if ((t = curl_getdate(s, NULL)) == (time_t)-1)
		return -1;
	if ((long long)t <= now)
		return 0;
	return (long long)t - now > KR_LLM_RETRY_MAX_MS / 1000 ? KR_LLM_RETRY_MAX_MS
	    : (long)((long long)t - now) * 1000;
}

long
kr_llm_retry_hint_ms(const struct kr_llm_answer *a, long long now)
{
	long ms = -1, t;

	if (a->retry_after_ms != NULL)
		ms = plain_ms(a->retry_after_ms, 1000LL);
	if (ms < 0 && a->retry_after != NULL)
		ms = retry_after_ms(a->retry_after, now);
	if (ms < 0 && a->status == 429) {
		/*
		 * Which limit was hit is not said: wait for the later reset, so the key is
		 * not tried again while one of its limits is still spent. OpenAI sends these
		 * on every answer: they say nothing of a 503's retry.
		 */
		ms = kr_llm_duration_ms(a->reset_requests);
		if ((t = kr_llm_duration_ms(a->reset_tokens)) > ms)
			ms = t;
	}
	if (ms < 0)
		return -1;
	return ms < KR_LLM_RETRY_MAX_MS ? ms : KR_LLM_RETRY_MAX_MS;
}

/* ---- classification ---- */

/* The meaning of a status when the body says nothing more (providers.md). */
static enum kr_llm_class
status_class(long s)
{
	if (s == 401)
		return KR_LLM_AUTH;
	if (s == 402)
		return KR_LLM_QUOTA;	/* Payment Required: billing, whoever sends it */
	if (s == 408 || s == 409 || s >= 500)
		return KR_LLM_TRANSIENT;
	if (s == 429)
		return KR_LLM_RATE;
	if (s >= 400)
		return KR_LLM_REQUEST;
	return KR_LLM_TRANSIENT;	/* 1xx or nonsense: not the request's fault */
}

/* The provider's own words: the message its JSON carried, else a short plain-text body. */
static void
provider_words(char *dst, size_t cap, const char *msg, const struct kr_llm_answer *a)
{
	const char *s = a->body;
	size_t n = a->len;

	dst[0] = '\0';
	if (msg != NULL) {
		fit(dst, cap, msg, strlen(msg));
		return;
	}
	if (s == NULL)
		return;
	for (; n > 0 && isspace((unsigned char)*s); s++, n--)
		;
	/* An HTML error page or JSON without a message says nothing worth keeping. */
	if (n == 0 || *s == '<' || *s == '{' || *s == '[')
		return;
	fit(dst, cap, s, n < SNIPPET_MAX ? n : SNIPPET_MAX);
}

void
kr_llm_classify_answer(const struct kr_provider *p, const struct kr_llm_answer *a,
    const char *key, size_t keylen, struct kr_llm_result *out)
{
	struct kr_llm_fault f = { status_class(a->status), NULL, -1 };
	char words[PROVIDER_MSG_MAX];
	json_object *root;
	long hint;

	out->http_status = a->status;
	out->retry_after_ms = -1;
	out->message[0] = '\0';
	if (a->status >= 200 && a->status < 300) {
		out->cls = KR_LLM_OK;
		return;
	}
	/*
	 * Redirects are never followed (the key would travel to wherever they point). A
	 * provider API that redirects is misconfigured (wrong base URL, http to https): the
	 * same request will be redirected again, so retrying only wastes the attempts, and the
	 * key is not at fault. Hence a request error, not a transient one.
	 */
	if (a->status >= 300 && a->status < 400) {
		out->cls = KR_LLM_REQUEST;
		kr_llm__message(out, "provider answered with a redirect (%ld)", a->status);
		return;
	}
	if ((root = kr_llm__json(a->body, a->len)) != NULL)
		kr_llm__proto(p)->fault(p, a->status, root, &f);
	provider_words(words, sizeof(words), f.msg, a);
	json_object_put(root);
	kr_llm_scrub(words, sizeof(words), key, keylen);
	out->cls = f.cls;
	hint = kr_llm_retry_hint_ms(a, (long long)time(NULL));
	if (hint < 0 && f.retry_ms >= 0)
		hint = f.retry_ms < KR_LLM_RETRY_MAX_MS ? f.retry_ms : KR_LLM_RETRY_MAX_MS;
	out->retry_after_ms = hint;
	if (words[0] != '\0')
		kr_llm__message(out, "%s (%ld): %s", class_words[f.cls], a->status, words);
	else
		kr_llm__message(out, "%s (%ld)", class_words[f.cls], a->status);
	kr_llm_scrub(out->message, sizeof(out->message), key, keylen);
}

void
kr_llm_classify(const struct kr_provider *p, long status, const char *retry_after,
    const char *retry_after_ms, const char *body, size_t len, const char *key,
    size_t keylen, struct kr_llm_result *out)
{
	struct kr_llm_answer a = { status, retry_after, retry_after_ms, NULL, NULL, body, len };

	kr_llm_classify_answer(p, &a, key, keylen, out);
}

int
kr_llm_parse_completion(const struct kr_provider *p, const char *body, size_t len,
    struct kr_llm_result *out)
{
	json_object *root = kr_llm__json(body, len);
	int rc = -1;

	out->cls = KR_LLM_OK;
	out->text = NULL;
	out->input_tokens = out->output_tokens = -1;
	if (json_object_is_type(root, json_type_object))
		rc = kr_llm__proto(p)->parse(root, out);
	json_object_put(root);
	return rc;
}
