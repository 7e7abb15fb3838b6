/*
 * kr_telegram: one Bot API sendMessage as a curl easy handle, and what its answer means
 * (kr_telegram.h).
 */
#include "kr_telegram.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "kr_crypto.h"
#include "kr_llm.h"
#include "kr_providers.h"

#define TG_CONNECT_TIMEOUT_MS	5000L
#define TG_TIMEOUT_MS		15000L
#define TG_RESP_MAX		(64 * 1024)
#define TG_URL_MAX		4096
#define TG_TEXT_MAX		4096	/* UTF-16 code units Telegram takes in one message */
#define TG_RETRY_AFTER_MAX_S	3600L
#define USER_AGENT		"keyrelay/0.1"

void
kr_tg_release(struct kr_tg_msg *m)
{
	if (m->easy != NULL)
		curl_easy_cleanup(m->easy);
	curl_slist_free_all(m->hdrs);
	if (m->url != NULL)
		kr_wipe(m->url, m->urllen);
	free(m->url);
	free(m->body);
	if (m->token != NULL)
		kr_wipe(m->token, m->tokenlen);
	free(m->token);
	kr_buf_release(&m->resp, 1);
	memset(m, 0, sizeof(*m));
}

/*
 * text cut to what Telegram takes (TG_TEXT_MAX UTF-16 code units), with "…" when cut;
 * an empty text becomes "(empty answer)", which Telegram would refuse. malloc'd.
 */
static char *
tg_text(const char *text)
{
	size_t len = strlen(text), units = 0, cut = 0, i, n;
	char *out;

	if (len == 0)
		return strdup("(empty answer)");
	for (i = 0; i < len; i += n) {
		unsigned char c = (unsigned char)text[i];
		n = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		if (n > len - i)
			n = len - i;
		units += n == 4 ? 2 : 1;
		if (units <= TG_TEXT_MAX - 1)
			cut = i + n;
	}
	if (units <= TG_TEXT_MAX)
		return strdup(text);
	if ((out = malloc(cut + sizeof("\u2026"))) == NULL)
		return NULL;
	memcpy(out, text, cut);
	memcpy(out + cut, "\u2026", sizeof("\u2026"));
	return out;
}

/* The request's URL and body; -1 with err set. */
static int
tg_build(const struct kr_config *cfg, struct kr_tg_msg *m, const char *chat, const char *text,
    char *err, size_t errlen)
{
	const char *base = cfg->telegram_base_url;
	json_object *o;
	struct kr_buf u;
	size_t blen;
	char *t;

	if (base == NULL || *base == '\0' || strpbrk(base, " \t\r\n\"'<>\\?#") != NULL) {
		snprintf(err, errlen, "the Telegram base URL is not set or malformed");
		return -1;
	}
	m->guard.allowlisted = kr_base_url_allowlisted(cfg, base);
	if (strncasecmp(base, "https://", 8) != 0 && !(m->guard.allowlisted &&
	    strncasecmp(base, "http://", 7) == 0)) {
		snprintf(err, errlen, "the Telegram base URL must use https (plain http only "
		    "for allowlisted origins)");
		return -1;
	}
	for (blen = strlen(base); blen > 0 && base[blen - 1] == '/'; blen--)
		;
	kr_buf_init(&u, TG_URL_MAX);
	kr_buf_add(&u, base, blen);
	kr_buf_puts(&u, "/bot");
	kr_buf_add(&u, m->token, m->tokenlen);
	kr_buf_puts(&u, "/sendMessage");
	if ((m->url = kr_buf_detach(&u, &m->urllen)) == NULL) {
		kr_buf_release(&u, 1);
		snprintf(err, errlen, "the Telegram URL is too long");
		return -1;
	}
	if ((t = tg_text(text)) == NULL || (o = json_object_new_object()) == NULL) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	json_object_object_add(o, "chat_id", json_object_new_string(chat));
	json_object_object_add(o, "text", json_object_new_string(t));
	m->body = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	free(t);
	if (m->body == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* The easy handle's options, by libcurl's security guide (as kr_llm does). */
static CURLcode
tg_setup(struct kr_tg_msg *m)
{
	struct curl_slist *h;
	CURL *e = m->easy;
	CURLcode rc = CURLE_OK;

	if ((h = curl_slist_append(NULL, "Content-Type: application/json")) == NULL)
		return CURLE_OUT_OF_MEMORY;
	m->hdrs = h;
#define SET(opt, val)	do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
	SET(CURLOPT_PROTOCOLS_STR, m->guard.allowlisted ? "http,https" : "https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, TG_CONNECT_TIMEOUT_MS);
	SET(CURLOPT_TIMEOUT_MS, TG_TIMEOUT_MS);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_USERAGENT, USER_AGENT);
	SET(CURLOPT_PROXY, "");		/* a proxy would hide the destination from the check */
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)TG_RESP_MAX);
	SET(CURLOPT_WRITEFUNCTION, kr_outbound_keep_body);
	SET(CURLOPT_WRITEDATA, &m->resp);
	SET(CURLOPT_OPENSOCKETFUNCTION, kr_outbound_open_socket);
	SET(CURLOPT_OPENSOCKETDATA, &m->guard);
	SET(CURLOPT_ERRORBUFFER, m->errbuf);
	SET(CURLOPT_PRIVATE, m);
	SET(CURLOPT_URL, m->url);
	SET(CURLOPT_HTTPHEADER, m->hdrs);
	SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(m->body));
	SET(CURLOPT_POSTFIELDS, m->body);
#undef SET
	return rc;
}

/*
 * Prepare a sendMessage of text to chat with the bot token (copied; the caller still wipes
 * its own). -1 with err set (no secret in it); m is released then.
 */
int
kr_tg_prepare(const struct kr_config *cfg, const char *token, size_t tokenlen, const char *chat,
    const char *text, struct kr_tg_msg *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	kr_buf_init(&m->resp, TG_RESP_MAX);
	if ((m->token = malloc(tokenlen + 1)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(m->token, token, tokenlen);
	m->token[tokenlen] = '\0';
	m->tokenlen = tokenlen;
	if (tg_build(cfg, m, chat, text, err, errlen) != 0)
		goto fail;
	if ((m->easy = curl_easy_init()) == NULL || tg_setup(m) != CURLE_OK) {
		snprintf(err, errlen, "the HTTP client could not be set up");
		goto fail;
	}
	return 0;
fail:
	kr_tg_release(m);
	return -1;
}

/* Make msg safe to store and show: the token scrubbed, printable ASCII only. */
static void
tg_clean(const struct kr_tg_msg *m, char *msg, size_t cap)
{
	kr_llm_scrub(msg, cap, m->token, m->tokenlen);
	for (char *p = msg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
}

/*
 * Read the Bot API's answer {"ok", "description", "parameters": {"retry_after",
 * "migrate_to_chat_id"}}.
 */
static void
tg_answer(const struct kr_tg_msg *m, long status, struct kr_tg_outcome *out)
{
	json_object *doc = json_tokener_parse(kr_buf_str(&m->resp)), *v = NULL, *prm = NULL;
	const char *desc = NULL;

	if (doc != NULL && json_object_is_type(doc, json_type_object)) {
		out->ok = status == 200 && json_object_object_get_ex(doc, "ok", &v) &&
		    json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
		if (json_object_object_get_ex(doc, "description", &v) &&
		    json_object_is_type(v, json_type_string))
			desc = json_object_get_string(v);
		if (json_object_object_get_ex(doc, "parameters", &prm) &&
		    json_object_object_get_ex(prm, "retry_after", &v) &&
		    json_object_is_type(v, json_type_int))
			out->retry_after_s = (long)json_object_get_int64(v);
		if (status == 400 && prm != NULL &&
		    json_object_object_get_ex(prm, "migrate_to_chat_id", &v) &&
		    json_object_is_type(v, json_type_int))
			snprintf(out->migrate_to, sizeof(out->migrate_to), "%" PRId64,
			    json_object_get_int64(v));
	}
	if (!out->ok) {
		snprintf(out->error, sizeof(out->error), "telegram: HTTP %ld: %.300s%s%s", status,
		    desc != NULL ? desc : status == 200 ? "unexpected answer" : "no description",
		    out->migrate_to[0] != '\0' ? "; the chat is now " : "", out->migrate_to);
		out->permanent = (status == 400 || status == 401 || status == 403 ||
		    status == 404) && out->migrate_to[0] == '\0';
		out->deferred = status == 429;
	} else
		out->migrate_to[0] = '\0';
	if (out->retry_after_s < 0 || out->retry_after_s > TG_RETRY_AFTER_MAX_S)
		out->retry_after_s = out->retry_after_s < 0 ? 0 : TG_RETRY_AFTER_MAX_S;
	json_object_put(doc);
}

/* What the transfer that ended with rc came to. */
void
kr_tg_finish(struct kr_tg_msg *m, CURLcode rc, struct kr_tg_outcome *out)
{
	long status = 0;

	memset(out, 0, sizeof(*out));
	if (rc != CURLE_OK) {
		if (m->guard.refused)
			snprintf(out->error, sizeof(out->error), "telegram: the Telegram API's "
			    "address is not public (allowlist its origin to permit it)");
		else
			snprintf(out->error, sizeof(out->error), "telegram: %s", m->errbuf[0] !=
			    '\0' ? m->errbuf : curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(m->easy, CURLINFO_RESPONSE_CODE, &status);
		tg_answer(m, status, out);
	}
	tg_clean(m, out->error, sizeof(out->error));
}
