/*
 * kr_llm: the transport. Builds a call with the protocol's request, sets up the curl easy
 * handle by libcurl's security guide (protocols, no redirects, timeouts, a size cap, TLS
 * verification, kr_outbound's check of the resolved address), and turns what came back into a
 * kr_llm_result. What answers mean lives in kr_llm_classify.c; the wire formats in
 * kr_llm_anthropic.c, kr_llm_openai.c and kr_llm_gemini.c.
 */
#include "kr_llm_proto.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kr_crypto.h"

#define CONNECT_TIMEOUT_MS	10000L
#define DEFAULT_TIMEOUT_MS	60000L
#define DEFAULT_MAX_TOKENS	4096u	/* a cap, not a charge; thinking models spend from it */
#define USER_AGENT		"keyrelay/0.1"
#define HINT_MAX		64	/* a retry header value; longer ones are nonsense */
#define URL_MAX			4096

struct kr_llm_call {
	CURL				*easy;
	const struct kr_provider	*prov;
	enum kr_llm_op			 op;
	struct kr_outbound_guard		 guard;
	long				 timeout_ms;
	char				*key;		/* our copy, wiped on free */
	size_t				 keylen;
	char				*base;
	char				*model;		/* for the zai check fallback */
	struct kr_llm_wire		 wire;
	struct kr_buf			 resp;
	long				 latency_ms;
	char				 retry_after[HINT_MAX];
	char				 retry_after_ms[HINT_MAX];
	char				 reset_requests[HINT_MAX];
	char				 reset_tokens[HINT_MAX];
};

/* ---- building requests ---- */

int
kr_llm__url(struct kr_llm_wire *w, const char *base, const char *path, char *err,
    size_t errlen)
{
	size_t blen = strlen(base);
	struct kr_buf b;

	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	kr_buf_init(&b, URL_MAX);
	kr_buf_add(&b, base, blen);
	kr_buf_puts(&b, path);
	if ((w->url = kr_buf_detach(&b, NULL)) == NULL) {
		snprintf(err, errlen, "the URL is too long");
		return -1;
	}
	return 0;
}

int
kr_llm__header(struct kr_llm_wire *w, const char *line, char *err, size_t errlen)
{
	struct curl_slist *l = curl_slist_append(w->headers, line);

	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->headers = l;
	return 0;
}

int
kr_llm__auth(struct kr_llm_wire *w, const char *prefix, const struct kr_llm_request *req,
    char *err, size_t errlen)
{
	struct kr_buf b;
	int rc;

	kr_buf_init(&b, 8192);
	kr_buf_puts(&b, prefix);
	kr_buf_add(&b, req->key, req->keylen);
	rc = b.failed ? -1 : kr_llm__header(w, kr_buf_str(&b), err, errlen);
	if (b.failed)
		snprintf(err, errlen, "the key is too long");
	kr_buf_release(&b, 1);
	return rc;
}

int
kr_llm__body(struct kr_llm_wire *w, json_object *obj, char *err, size_t errlen)
{
	const char *s = obj != NULL ? json_object_to_json_string_ext(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
	int rc = -1;

	w->method = "POST";
	if (s != NULL && (w->body = strdup(s)) != NULL) {
		w->bodylen = strlen(w->body);
		rc = kr_llm__header(w, "Content-Type: application/json", err, errlen);
	} else
		snprintf(err, errlen, "out of memory");
	json_object_put(obj);
	return rc;
}

/* Free the headers after wiping them: one of them carries the key. */
static void
headers_free(struct curl_slist **h)
{
	for (struct curl_slist *l = *h; l != NULL; l = l->next)
		kr_wipe(l->data, strlen(l->data));
	curl_slist_free_all(*h);
	*h = NULL;
}

void
kr_llm__wire_release(struct kr_llm_wire *w)
{
	headers_free(&w->headers);
	free(w->url);
	free(w->body);
	memset(w, 0, sizeof(*w));
}

const char *
kr_llm__model(const struct kr_llm_request *req)
{
	if (req->model != NULL && *req->model != '\0')
		return req->model;
	return req->prov->default_model;
}

unsigned
kr_llm__max_tokens(const struct kr_llm_request *req)
{
	return req->max_tokens > 0 ? req->max_tokens : DEFAULT_MAX_TOKENS;
}

int
kr_llm__role_ok(const char *role)
{
	return role != NULL && (strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0);
}

const char *
kr_llm__system(const struct kr_llm_request *req)
{
	return req->system != NULL && *req->system != '\0' ? req->system : NULL;
}

/* 1 when every byte of the key may stand in a header (visible ASCII, no CR/LF injection). */
static int
key_ok(const char *key, size_t len)
{
	if (key == NULL || len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)key[i] <= 0x20 || (unsigned char)key[i] >= 0x7f)
			return 0;
	return 1;
}

/*
 * The request for op, through the provider's protocol. The zai check fallback
 * (KR_LLM_OP_PING) is a chat of one word answered with at most one token.
 */
static int
build(const struct kr_llm_request *req, enum kr_llm_op op, struct kr_llm_wire *w,
    char *err, size_t errlen)
{
	static const struct kr_llm_msg ping = { "user", "ping" };
	struct kr_llm_request r = *req;
	int rc;

	memset(w, 0, sizeof(*w));
	w->method = "GET";
	if (!key_ok(req->key, req->keylen)) {
		snprintf(err, errlen, "the key contains characters that cannot be sent");
		return -1;
	}
	if (op == KR_LLM_OP_PING) {
		r.system = NULL;
		r.msgs = &ping;
		r.nmsgs = 1;
		r.max_tokens = 1;
	}
	if (op != KR_LLM_OP_CHECK && kr_llm__model(&r) == NULL) {
		snprintf(err, errlen, "no model is set for %s", req->prov->name);
		return -1;
	}
	rc = kr_llm__proto(req->prov)->build(&r, op == KR_LLM_OP_CHECK ? KR_LLM_OP_CHECK
	    : KR_LLM_OP_CHAT, w, err, errlen);
	if (rc != 0)
		kr_llm__wire_release(w);
	return rc;
}

/* ---- callbacks ---- */

/* If line is "name: value" (name case-insensitive), copy the trimmed value to out. */
static void
header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), v;

	if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
		return;
	for (v = nl + 1; v < len && (line[v] == ' ' || line[v] == '\t'); v++)
		;
	while (len > v && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
	    line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len - v >= cap)
		return;	/* no sane hint is that long */
	memcpy(out, line + v, len - v);
	out[len - v] = '\0';
}

/* CURLOPT_HEADERFUNCTION: the retry hints of the last response (not of a 1xx before it). */
static size_t
on_header(char *p, size_t size, size_t n, void *ud)
{
	struct kr_llm_call *c = ud;
	size_t len = size * n;

	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		c->retry_after[0] = c->retry_after_ms[0] = '\0';
		c->reset_requests[0] = c->reset_tokens[0] = '\0';
		return len;
	}
	header_value(p, len, "retry-after", c->retry_after, HINT_MAX);
	header_value(p, len, "retry-after-ms", c->retry_after_ms, HINT_MAX);
	header_value(p, len, "x-ratelimit-reset-requests", c->reset_requests, HINT_MAX);
	header_value(p, len, "x-ratelimit-reset-tokens", c->reset_tokens, HINT_MAX);
	return len;
}

/* ---- the call ---- */

/* Point the easy handle at the call's current wire request. */
static CURLcode
arm(struct kr_llm_call *c)
{
	CURLcode rc;
	int post = c->wire.body != NULL;

	kr_buf_release(&c->resp, 1);
	kr_buf_init(&c->resp, KR_LLM_BODY_MAX);
	c->guard.refused = 0;
	c->retry_after[0] = c->retry_after_ms[0] = '\0';
	c->reset_requests[0] = c->reset_tokens[0] = '\0';
	if ((rc = curl_easy_setopt(c->easy, CURLOPT_URL, c->wire.url)) != CURLE_OK ||
	    (rc = curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->wire.headers)) != CURLE_OK)
		return rc;
	if (!post)
		return curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
	if ((rc = curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)c->wire.bodylen)) != CURLE_OK)
		return rc;
	return curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->wire.body);
}

/* The options that hold for every call; see the file's opening comment. */
static CURLcode
setup(struct kr_llm_call *c, CURLSH *share)
{
	CURL *e = c->easy;
	CURLcode rc = CURLE_OK;

#define SET(opt, val)	do { if (rc == CURLE_OK) rc = curl_easy_setopt(e, opt, val); } while (0)
	SET(CURLOPT_PROTOCOLS_STR, c->guard.allowlisted ? "http,https" : "https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, 1L);
	SET(CURLOPT_SSL_VERIFYHOST, 2L);
	SET(CURLOPT_USERAGENT, USER_AGENT);
	/* A proxy would hide the destination from the address check. */
	SET(CURLOPT_PROXY, "");
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)KR_LLM_BODY_MAX);
	/* Answers are a few kilobytes: half of curl's 16 KiB receive buffer, which each of
	 * the runner's thousands of calls in flight would otherwise hold. */
	SET(CURLOPT_BUFFERSIZE, 8192L);
	SET(CURLOPT_WRITEFUNCTION, kr_outbound_keep_body);
	SET(CURLOPT_WRITEDATA, &c->resp);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, c);
	SET(CURLOPT_OPENSOCKETFUNCTION, kr_outbound_open_socket);
	SET(CURLOPT_OPENSOCKETDATA, &c->guard);
	SET(CURLOPT_PRIVATE, c);
	if (share != NULL)
		SET(CURLOPT_SHARE, share);
#undef SET
	return rc != CURLE_OK ? rc : arm(c);
}

/*
 * 0 when a call may go to base: https, or http when the origin is allowlisted (which
 * also lets the socket check pass loopback and private addresses).
 */
static int
base_ok(const struct kr_config *cfg, const struct kr_llm_request *req, int *allowlisted,
    char *err, size_t errlen)
{
	const char *u = req->base_url;

	if (u == NULL || *u == '\0') {
		snprintf(err, errlen, "no base URL is set for %s", req->prov->name);
		return -1;
	}
	if (strpbrk(u, " \t\r\n\"'<>\\") != NULL) {
		snprintf(err, errlen, "the base URL of %s is malformed", req->prov->name);
		return -1;
	}
	*allowlisted = kr_base_url_allowlisted(cfg, u);
	if (strncasecmp(u, "https://", 8) == 0 || (*allowlisted &&
	    strncasecmp(u, "http://", 7) == 0))
		return 0;
	snprintf(err, errlen, "the base URL of %s must use https (plain http only for "
	    "allowlisted origins)", req->prov->name);
	return -1;
}

/* Copy what the call needs after kr_llm_call_new returns. */
static int
keep(struct kr_llm_call *c, const struct kr_llm_request *req)
{
	const char *model = kr_llm__model(req);

	c->prov = req->prov;
	c->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->keylen = req->keylen;
	if ((c->key = malloc(req->keylen + 1)) == NULL || (c->base = strdup(req->base_url)) ==
	    NULL || (model != NULL && (c->model = strdup(model)) == NULL))
		return -1;
	memcpy(c->key, req->key, req->keylen);
	c->key[req->keylen] = '\0';
	return 0;
}

/* kr_llm_call_new, also saying what class a failure is (cls). */
static struct kr_llm_call *
call_create(const struct kr_config *cfg, const struct kr_llm_request *req, int check_only,
    enum kr_llm_class *cls, char *err, size_t errlen)
{
	struct kr_llm_call *c = NULL;
	int allowlisted = 0;

	*cls = KR_LLM_REQUEST;
	if (req->prov == NULL || kr_llm__proto(req->prov) == NULL) {
		snprintf(err, errlen, "unknown provider");
		return NULL;
	}
	if (base_ok(cfg, req, &allowlisted, err, errlen) != 0)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto nomem;
	c->guard.allowlisted = allowlisted;
	c->op = check_only ? KR_LLM_OP_CHECK : KR_LLM_OP_CHAT;
	kr_buf_init(&c->resp, KR_LLM_BODY_MAX);
	if (build(req, c->op, &c->wire, err, errlen) != 0) {
		kr_llm_call_free(&c);
		return NULL;
	}
	if (keep(c, req) != 0 || (c->easy = curl_easy_init()) == NULL ||
	    setup(c, req->share) != CURLE_OK)
		goto nomem;
	return c;
nomem:
	kr_llm_call_free(&c);
	*cls = KR_LLM_TRANSIENT;
	snprintf(err, errlen, "out of memory");
	return NULL;
}

struct kr_llm_call *
kr_llm_call_new(const struct kr_config *cfg, const struct kr_llm_request *req, int check_only,
    char *err, size_t errlen)
{
	enum kr_llm_class cls;

	return call_create(cfg, req, check_only, &cls, err, errlen);
}

CURL *
kr_llm_call_easy(struct kr_llm_call *call)
{
	return call->easy;
}

void
kr_llm_call_free(struct kr_llm_call **call)
{
	struct kr_llm_call *c = *call;

	if (c == NULL)
		return;
	if (c->easy != NULL)
		curl_easy_cleanup(c->easy);
	kr_llm__wire_release(&c->wire);
	kr_buf_release(&c->resp, 1);
	if (c->key != NULL)
		kr_wipe(c->key, c->keylen);
	free(c->key);
	free(c->base);
	free(c->model);
	free(c);
	*call = NULL;
}

/* ---- after the transfer ---- */

/* Transfer failures that need no more than their words. */
static const struct {
	CURLcode	 rc;
	const char	*msg;
} failures[] = {
	{ CURLE_PARTIAL_FILE, "response cut off" },
	{ CURLE_RECV_ERROR, "response cut off" },
	{ CURLE_GOT_NOTHING, "response cut off" },
	{ CURLE_HTTP2, "response cut off" },
	{ CURLE_HTTP2_STREAM, "response cut off" },
	{ CURLE_FILESIZE_EXCEEDED, "response too large" },
	{ CURLE_SEND_ERROR, "connection lost while sending" },
	{ CURLE_COULDNT_RESOLVE_HOST, "host not found" },
	{ CURLE_PEER_FAILED_VERIFICATION, "TLS certificate not trusted" },
	{ CURLE_SSL_CONNECT_ERROR, "TLS handshake failed" },
};

static void
connect_failed(struct kr_llm_call *c, struct kr_llm_result *out)
{
	long oserr = 0;

	(void)curl_easy_getinfo(c->easy, CURLINFO_OS_ERRNO, &oserr);
	if (c->guard.refused) {
		/* Policy, not an outage: retrying cannot help, the base URL must change. */
		out->cls = KR_LLM_REQUEST;
		kr_llm__message(out, "refused to connect to %s: not a public address "
		    "(allowlist the base URL's origin to permit it)", c->guard.refused_addr);
	} else if (oserr == ECONNREFUSED)
		/* openai_compatible: a local server that is not running is offline, which
		 * says nothing about the key. */
		kr_llm__message(out, "connection refused%s", c->prov->id ==
		    KR_PROV_OPENAI_COMPATIBLE ? " (server offline)" : "");
	else
		kr_llm__message(out, "could not connect");
}

static void
timed_out(struct kr_llm_call *c, struct kr_llm_result *out)
{
	curl_off_t connected = 0;

	(void)curl_easy_getinfo(c->easy, CURLINFO_CONNECT_TIME_T, &connected);
	if (connected == 0)
		kr_llm__message(out, "connect timed out after %ld ms",
		    c->timeout_ms < CONNECT_TIMEOUT_MS ? c->timeout_ms : CONNECT_TIMEOUT_MS);
	else
		kr_llm__message(out, "timed out after %ld ms", c->timeout_ms);
}

/* A transfer that ended without a full HTTP answer: transient, but for a refused address. */
static void
transport_fail(struct kr_llm_call *c, CURLcode rc, struct kr_llm_result *out)
{
	out->cls = KR_LLM_TRANSIENT;
	if (rc == CURLE_COULDNT_CONNECT) {
		connect_failed(c, out);
		return;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		timed_out(c, out);
		return;
	}
	if (rc == CURLE_WRITE_ERROR) {	/* only kr_outbound_keep_body fails a write */
		kr_llm__message(out, c->resp.failed == KR_BUF_NOMEM ? "out of memory" :
		    "response too large");
		return;
	}
	for (size_t i = 0; i < sizeof(failures) / sizeof(failures[0]); i++)
		if (failures[i].rc == rc) {
			kr_llm__message(out, "%s", failures[i].msg);
			return;
		}
	kr_llm__message(out, "network error: %s", curl_easy_strerror(rc));
}

/* A 2xx: the completion, or the verdict of the key check. */
static void
succeeded(struct kr_llm_call *c, struct kr_llm_result *out)
{
	const struct kr_llm_proto *proto = kr_llm__proto(c->prov);
	json_object *root;

	if (c->op == KR_LLM_OP_CHAT) {
		if (kr_llm_parse_completion(c->prov, c->resp.data, c->resp.len, out) != 0) {
			out->cls = KR_LLM_TRANSIENT;
			kr_llm__message(out, "unreadable answer (%ld)", out->http_status);
		}
		kr_llm_scrub(out->message, sizeof(out->message), c->key, c->keylen);
		return;
	}
	out->cls = KR_LLM_OK;
	if (c->op != KR_LLM_OP_CHECK)
		return;
	/*
	 * Every provider answers its key check with a JSON object. Anything else (a captive
	 * portal's or a web server's page at the base URL, a 200 carrying an error) proves
	 * nothing about the key: not valid, and not invalid either.
	 */
	root = kr_llm__json(c->resp.data, c->resp.len);
	if (root == NULL || !json_object_is_type(root, json_type_object) ||
	    json_object_object_get_ex(root, "error", NULL)) {
		out->cls = KR_LLM_TRANSIENT;
		kr_llm__message(out, "the key check's answer (%ld) is not the provider's: %s",
		    out->http_status, root == NULL || !json_object_is_type(root,
		    json_type_object) ? "not a JSON object (is the base URL right?)" :
		    "it carries an error");
	} else if (proto->checked != NULL)
		proto->checked(c->prov, root, out);
	json_object_put(root);
}

/*
 * zai may not serve GET /models (providers.md: unverified); a 404 there sends the
 * check on as a one-token chat. 0 when the handle is armed again.
 */
static int
fall_back(struct kr_llm_call *c)
{
	struct kr_llm_request r = { .prov = c->prov, .base_url = c->base, .key = c->key,
	    .keylen = c->keylen, .model = c->model };
	struct kr_llm_wire w;
	char err[128];

	if (build(&r, KR_LLM_OP_PING, &w, err, sizeof(err)) != 0)
		return -1;
	kr_llm__wire_release(&c->wire);
	c->wire = w;
	c->op = KR_LLM_OP_PING;
	return arm(c) == CURLE_OK ? 0 : -1;
}

static void
result_init(struct kr_llm_result *out)
{
	memset(out, 0, sizeof(*out));
	out->retry_after_ms = -1;
	out->input_tokens = out->output_tokens = -1;
}

/*
 * An error answer whose body passed the size cap (by its Content-Length, or as it came):
 * its status and headers still say what happened; only the provider's words are lost.
 */
static int
oversized_error(struct kr_llm_call *c, CURLcode rc)
{
	long status = 0;

	if (rc != CURLE_FILESIZE_EXCEEDED && c->resp.failed != KR_BUF_TOOBIG)
		return 0;
	return curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
	    status >= 400;
}

int
kr_llm_call_finish(struct kr_llm_call *c, CURLcode rc, struct kr_llm_result *out)
{
	curl_off_t us = 0;
	long status = 0;
	struct kr_llm_answer a;
	int oversized;

	result_init(out);
	if (curl_easy_getinfo(c->easy, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK)
		c->latency_ms += (long)(us / 1000);
	out->latency_ms = c->latency_ms;
	oversized = (rc != CURLE_OK || c->resp.failed) && oversized_error(c, rc);
	if ((rc != CURLE_OK || c->resp.failed) && !oversized) {
		transport_fail(c, rc != CURLE_OK ? rc : CURLE_WRITE_ERROR, out);
		return 0;
	}
	(void)curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	out->http_status = status;
	if (c->op == KR_LLM_OP_CHECK && c->prov->id == KR_PROV_ZAI && status == 404 &&
	    fall_back(c) == 0)
		return 1;
	if (status >= 200 && status < 300) {
		succeeded(c, out);
		return 0;
	}
	a = (struct kr_llm_answer){ status, c->retry_after[0] ? c->retry_after : NULL,
	    c->retry_after_ms[0] ? c->retry_after_ms : NULL,
	    c->reset_requests[0] ? c->reset_requests : NULL,
	    c->reset_tokens[0] ? c->reset_tokens : NULL, oversized ? NULL : c->resp.data,
	    oversized ? 0 : c->resp.len };
	kr_llm_classify_answer(c->prov, &a, c->key, c->keylen, out);
	return 0;
}

/* What a call that could not be made or run answers. */
static void
run_refused(struct kr_llm_result *out, enum kr_llm_class cls, const char *err)
{
	result_init(out);
	out->cls = cls;
	kr_llm__message(out, "%s", err);
}

void
kr_llm_run(const struct kr_config *cfg, const struct kr_llm_request *req, int check_only,
    struct kr_llm_result *out)
{
	struct kr_llm_call *c;
	enum kr_llm_class cls;
	char err[KR_LLM_MSG_MAX];

	if ((c = call_create(cfg, req, check_only, &cls, err, sizeof(err))) == NULL) {
		run_refused(out, cls, err);
		return;
	}
	while (kr_llm_call_finish(c, curl_easy_perform(c->easy), out) == 1)
		;
	kr_llm_call_free(&c);
}

void
kr_llm_run_many(const struct kr_config *cfg, const struct kr_llm_request *reqs, size_t n,
    int check_only, struct kr_llm_result *outs)
{
	struct kr_llm_call **c = calloc(n ? n : 1, sizeof(*c));
	CURLM *multi = curl_multi_init();
	int running = 1, left;
	enum kr_llm_class cls;
	char err[KR_LLM_MSG_MAX];
	CURLMsg *msg;

	for (size_t i = 0; i < n; i++) {
		if (c == NULL || multi == NULL)
			run_refused(&outs[i], KR_LLM_TRANSIENT, "out of memory");
		else if ((c[i] = call_create(cfg, &reqs[i], check_only, &cls, err,
		    sizeof(err))) == NULL)
			run_refused(&outs[i], cls, err);
		else if (curl_multi_add_handle(multi, c[i]->easy) != CURLM_OK) {
			run_refused(&outs[i], KR_LLM_TRANSIENT, "out of memory");
			kr_llm_call_free(&c[i]);
		}
	}
	/* Each call ends within its own timeout (twice for zai's check fallback). */
	while (multi != NULL && running > 0) {
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			size_t i = 0;
			if (msg->msg != CURLMSG_DONE)
				continue;
			while (i < n && (c[i] == NULL || c[i]->easy != msg->easy_handle))
				i++;
			if (i == n)
				continue;
			curl_multi_remove_handle(multi, c[i]->easy);
			if (kr_llm_call_finish(c[i], msg->data.result, &outs[i]) == 1 &&
			    curl_multi_add_handle(multi, c[i]->easy) == CURLM_OK)
				running++;		/* zai: its fallback call */
			else
				kr_llm_call_free(&c[i]);
		}
		if (running > 0 && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
	}
	for (size_t i = 0; c != NULL && i < n; i++)
		if (c[i] != NULL) {	/* the multi handle failed under it */
			curl_multi_remove_handle(multi, c[i]->easy);
			run_refused(&outs[i], KR_LLM_TRANSIENT, "the check could not run");
			kr_llm_call_free(&c[i]);
		}
	curl_multi_cleanup(multi);
	free(c);
}

void
kr_llm_result_release(struct kr_llm_result *out)
{
	free(out->text);
	out->text = NULL;
}

/* ---- connection reuse ---- */

CURLSH *
kr_llm_share_new(void)
{
	CURLSH *sh = curl_share_init();

	if (sh == NULL)
		return NULL;
	if (curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
	    curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
	    curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
		curl_share_cleanup(sh);
		return NULL;
	}
	return sh;
}

void
kr_llm_share_free(CURLSH **share)
{
	if (*share != NULL)
		curl_share_cleanup(*share);
	*share = NULL;
}

/* ---- for tests ---- */

/* The header lines joined by '\n'. */
static char *
headers_text(const struct curl_slist *h)
{
	struct kr_buf b;

	kr_buf_init(&b, 64 * 1024);
	for (; h != NULL; h = h->next)
		kr_buf_printf(&b, "%s%s", h->data, h->next != NULL ? "\n" : "");
	return b.len > 0 ? kr_buf_detach(&b, NULL) : strdup("");
}

int
kr_llm_build_for_test(const struct kr_llm_request *req, enum kr_llm_op op,
    struct kr_llm_built *out, char *err, size_t errlen)
{
	struct kr_llm_wire w;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (req->prov == NULL || req->base_url == NULL) {
		snprintf(err, errlen, "no provider or base URL");
		return -1;
	}
	if (build(req, op, &w, err, errlen) != 0)
		return -1;
	out->method = w.method;
	out->url = w.url;
	out->body = w.body;
	w.url = w.body = NULL;
	if ((out->headers = headers_text(w.headers)) != NULL)
		rc = 0;
	else
		snprintf(err, errlen, "out of memory");
	kr_llm__wire_release(&w);
	if (rc != 0)
		kr_llm_built_release(out);
	return rc;
}

void
kr_llm_built_release(struct kr_llm_built *b)
{
	if (b->headers != NULL)
		kr_wipe(b->headers, strlen(b->headers));
	free(b->url);
	free(b->headers);
	free(b->body);
	memset(b, 0, sizeof(*b));
}
