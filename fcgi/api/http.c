#include "http.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kr_audit.h"
#include "kr_crypto.h"
#include "kr_json.h"

#define RESP_MAX	(64 * 1024 * 1024)

void
kr_req_init(struct kr_req *req, const struct kr_config *cfg, struct kr_db *db)
{
	memset(req, 0, sizeof(*req));
	req->cfg = cfg;
	req->db = db;
	req->content_length = -1;
	req->query = "";
}

void
kr_req_release(struct kr_req *req)
{
	if (req->json != NULL)
		json_object_put(req->json);
	req->json = NULL;
	kr_wipe(&req->p, sizeof(req->p));
}

void
kr_resp_init(struct kr_resp *resp)
{
	resp->status = 0;
	resp->content_type = "application/json";
	kr_buf_init(&resp->headers, 16 * 1024);
	kr_buf_init(&resp->body, RESP_MAX);
}

void
kr_resp_release(struct kr_resp *resp)
{
	kr_buf_release(&resp->headers, 1);
	kr_buf_release(&resp->body, 0);
}

void
resp_header(struct kr_resp *resp, const char *name, const char *value)
{
	kr_buf_printf(&resp->headers, "%s: %s\r\n", name, value);
}

void
resp_json(struct kr_resp *resp, int status, json_object *obj)
{
	const char *s = json_object_to_json_string_ext(obj,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	resp->status = status;
	kr_buf_reset(&resp->body);
	if (kr_buf_puts(&resp->body, s) != KR_BUF_OK) {
		kr_buf_reset(&resp->body);
		resp->status = 500;
		kr_buf_puts(&resp->body,
		    "{\"error\":{\"code\":\"internal\",\"message\":\"answer too large\"}}");
	}
	json_object_put(obj);
}

static const struct {
	int		 status;
	const char	*code;
} error_codes[] = {
	{ 400, "bad_request" }, { 401, "unauthorized" }, { 403, "forbidden" },
	{ 404, "not_found" }, { 405, "method_not_allowed" }, { 409, "conflict" },
	{ 413, "payload_too_large" }, { 415, "unsupported_media_type" },
	{ 422, "validation_failed" }, { 429, "rate_limited" }, { 500, "internal" },
	{ 503, "unavailable" },
};

static const char *
error_code(int status)
{
	for (size_t i = 0; i < sizeof(error_codes) / sizeof(error_codes[0]); i++)
		if (error_codes[i].status == status)
			return error_codes[i].code;
	return status >= 500 ? "internal" : "bad_request";
}

/* Like resp_error, with the code given (invalid_json shares 400 with bad_request). */
static void
resp_error_code(struct kr_resp *resp, int status, const char *code, const char *field,
    const char *msg)
{
	json_object *o = json_object_new_object(), *e = json_object_new_object();

	kr_json_add_str(e, "code", code);
	kr_json_add_str(e, "message", msg);
	if (field != NULL)
		kr_json_add_str(e, "field", field);
	json_object_object_add(o, "error", e);
	resp_json(resp, status, o);
}

void
resp_error(struct kr_resp *resp, int status, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	resp_error_code(resp, status, error_code(status), field, msg);
}

void
resp_invalid_json(struct kr_resp *resp, const char *msg)
{
	resp_error_code(resp, 400, "invalid_json", NULL, msg);
}

void
resp_db_error(struct kr_resp *resp, enum kr_db_err rc)
{
	if (rc == KR_DB_DOWN || rc == KR_DB_RETRY) {
		resp_header(resp, "Retry-After", "1");
		resp_error(resp, 503, NULL, "the database is unavailable, try again shortly");
	} else
		resp_error(resp, 500, NULL, "internal error");
}

void
resp_no_content(struct kr_resp *resp)
{
	resp->status = 204;
	kr_buf_reset(&resp->body);
}

/* Input -------------------------------------------------------------------------------- */

int
req_str(struct kr_req *req, struct kr_resp *resp, const char *field, int required,
    size_t minlen, size_t maxlen, const char **out)
{
	const char *s;
	size_t n, chars;

	switch (kr_json_str(req->json, field, &s, &n)) {
	case KR_JSON_ABSENT:
		if (!required)
			return 0;
		resp_error(resp, 422, field, "%s is required", field);
		return -1;
	case KR_JSON_TYPE:
		resp_error(resp, 422, field, "%s must be a string", field);
		return -1;
	case KR_JSON_OK:
		break;
	}
	if (memchr(s, '\0', n) != NULL) {
		resp_error(resp, 422, field, "%s must not contain NUL characters", field);
		return -1;
	}
	chars = kr_utf8_chars(s, n);
	if (chars < minlen || chars > maxlen) {
		resp_error(resp, 422, field, "%s must be %zu to %zu characters", field, minlen,
		    maxlen);
		return -1;
	}
	*out = s;
	return 0;
}

int
req_bool(struct kr_req *req, struct kr_resp *resp, const char *field, int required, int *out)
{
	switch (kr_json_bool(req->json, field, out)) {
	case KR_JSON_OK:
		return 0;
	case KR_JSON_ABSENT:
		if (!required)
			return 0;
		resp_error(resp, 422, field, "%s is required", field);
		return -1;
	case KR_JSON_TYPE:
		break;
	}
	resp_error(resp, 422, field, "%s must be true or false", field);
	return -1;
}

int
req_role(struct kr_req *req, struct kr_resp *resp, const char *field, int required,
    enum kr_role *out)
{
	const char *s = NULL;

	if (req_str(req, resp, field, required, 1, 16, &s) != 0)
		return -1;
	if (s == NULL)
		return 0;
	if ((*out = kr_role_parse(s)) == KR_ROLE_NONE) {
		resp_error(resp, 422, field, "%s must be admin, member or viewer", field);
		return -1;
	}
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode src[0..n) into buf; '+' is a space. -1 when it does not fit or is bad. */
static int
url_decode(const char *src, size_t n, char *buf, size_t buflen)
{
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n || (hi = hexval((unsigned char)src[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)src[i + 2])) < 0)
				return -1;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+')
			c = ' ';
		if (c == 0 || j + 1 >= buflen)
			return -1;
		buf[j++] = (char)c;
	}
	buf[j] = '\0';
	return 0;
}

const char *
req_query(const struct kr_req *req, const char *name, char *buf, size_t buflen)
{
	size_t nlen = strlen(name);
	const char *p = req->query;

	while (p != NULL && *p != '\0') {
		const char *amp = strchr(p, '&');
		size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
		if (len > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=')
			return url_decode(p + nlen + 1, len - nlen - 1, buf, buflen) == 0 ?
			    buf : NULL;
		if (len == nlen && strncmp(p, name, nlen) == 0)
			return buflen > 0 ? (buf[0] = '\0', buf) : NULL;
		p = amp != NULL ? amp + 1 : NULL;
	}
	return NULL;
}

int
req_bytes(struct kr_req *req, struct kr_resp *resp, const char *field, int required,
    size_t minbytes, size_t maxbytes, const char **out)
{
	const char *s = NULL;
	size_t n;

	if (req_str(req, resp, field, required, 0, SIZE_MAX, &s) != 0)
		return -1;
	n = s != NULL ? strlen(s) : 0;
	if (s != NULL && (n < minbytes || n > maxbytes)) {
		resp_error(resp, 422, field, "%s must be %zu to %zu bytes", field, minbytes,
		    maxbytes);
		return -1;
	}
	*out = n > 0 ? s : NULL;
	return 0;
}

int
req_query_has(const struct kr_req *req, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = req->query; p != NULL && *p != '\0';
	    p = strchr(p, '&') != NULL ? strchr(p, '&') + 1 : NULL)
		if (strncmp(p, name, n) == 0 && (p[n] == '=' || p[n] == '&' || p[n] == '\0'))
			return 1;
	return 0;
}

int
req_query_id(struct kr_req *req, struct kr_resp *resp, const char *name, char *buf,
    size_t len, const char **out)
{
	const char *s = req_query(req, name, buf, len);

	*out = NULL;
	if ((s == NULL && req_query_has(req, name)) || (s != NULL && *s != '\0' &&
	    !kr_uuid_valid(s))) {
		resp_error(resp, 422, name, "%s must be an id", name);
		return -1;
	}
	if (s != NULL && *s != '\0')
		*out = s;
	return 0;
}

int
req_limit(struct kr_req *req, struct kr_resp *resp, unsigned *limit)
{
	char buf[16], *end = NULL;
	const char *s = req_query(req, "limit", buf, sizeof(buf));
	long v = 0;

	*limit = 50;
	if (s == NULL && !req_query_has(req, "limit"))
		return 0;
	if (s != NULL)
		v = strtol(s, &end, 10);
	/* Present but undecodable or too long for buf (s NULL) is as wrong as "abc". */
	if (s == NULL || *s == '\0' || *end != '\0' || v < 1 || v > 200) {
		resp_error(resp, 422, "limit", "limit must be a whole number from 1 to 200");
		return -1;
	}
	*limit = (unsigned)v;
	return 0;
}

int
req_page(struct kr_req *req, struct kr_resp *resp, struct kr_page *pg)
{
	pg->before = NULL;
	pg->buf[0] = '\0';
	if (req_limit(req, resp, &pg->limit) != 0)
		return -1;
	return req_query_id(req, resp, "before", pg->buf, sizeof(pg->buf), &pg->before);
}

void
resp_page(struct kr_resp *resp, const struct kr_list *l, const struct kr_page *pg,
    enum kr_db_err rc, struct kr_db_res *res, int found)
{
	json_object *o, *a;
	unsigned n;

	if (rc != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (!found) {
		resp_error(resp, 422, "before", "before must be %s of this list (a nextCursor)",
		    l->item);
		kr_db_res_free(res);
		return;
	}
	o = json_object_new_object();
	a = json_object_new_array();
	n = res->nrows > pg->limit ? pg->limit : res->nrows;
	for (unsigned i = 0; i < n; i++)
		json_object_array_add(a, l->view(res, i));
	json_object_object_add(o, l->name, a);
	kr_json_add_str(o, "nextCursor",
	    res->nrows > pg->limit && n > 0 ? kr_db_cell(res, n - 1, 0) : NULL);
	resp_json(resp, 200, o);
	kr_db_res_free(res);
}

struct kr_actor
req_actor(const struct kr_req *req)
{
	struct kr_actor a = { KR_ACTOR_SYSTEM, NULL, NULL, req->remote_addr };

	if (req->p.kind == KR_PRINCIPAL_SESSION) {
		a.type = KR_ACTOR_USER;
		a.id = req->p.user.id;
		a.label = req->p.user.email;
	} else if (req->p.kind == KR_PRINCIPAL_TOKEN) {
		a.type = KR_ACTOR_TOKEN;
		a.id = req->p.token.id;
		a.label = req->p.token.name;
	}
	return a;
}
