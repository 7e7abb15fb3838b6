/*
 * The API layer without FastCGI and without a database: kr_dispatch() driven with
 * hand-filled requests, against a configuration whose database socket does not exist (the
 * database is "down"). Routing (404, 405 with Allow, trailing slashes), body checks (413,
 * 415, 400 invalid_json / bad_request, 422 naming the field), authentication (401), the
 * health check with the database down (503), the metrics (counted by route pattern, never
 * by raw path) and the query-string helpers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "http.h"
#include "kr_config.h"
#include "kr_db.h"
#include "kr_log.h"
#include "kr_test.h"

extern char **environ;

#define SLUG		"secret-slug-4711"	/* must never show up in /metrics */
#define NOPE		"nope-secret-path"
#define LOGIN_JSON	"application/json"

static struct kr_config cfg;
static struct kr_db *db;

/* What the test sent, by matched route and status, to check /metrics against. */
struct tally_row {
	const char		*route;
	int			 status;
	unsigned long long	 n;
};
static struct tally_row tally[128];
static unsigned ntally;

static void
tally_add(const char *route, int status)
{
	unsigned i;

	for (i = 0; i < ntally; i++)
		if (tally[i].status == status && strcmp(tally[i].route, route) == 0)
			break;
	if (i == ntally) {
		if (ntally == sizeof(tally) / sizeof(tally[0]))
			return;
		tally[ntally++] = (struct tally_row){ route, status, 0 };
	}
	tally[i].n++;
}

/* Dispatch a filled request into resp (initialised here; the caller releases it). */
static void
run(struct kr_req *req, struct kr_resp *resp)
{
	kr_resp_init(resp);
	kr_dispatch(req, resp);
	tally_add(req->route, resp->status);
	kr_req_release(req);
}

static void
call_auth(struct kr_resp *resp, const char *method, const char *uri, const char *ctype,
    const char *body, const char *cookie, const char *authorization)
{
	struct kr_req req;

	kr_req_init(&req, &cfg, db);
	req.method = method;
	req.uri = uri;
	req.content_type = ctype;
	req.cookie = cookie;
	req.authorization = authorization;
	req.remote_addr = "192.0.2.1";
	if (body != NULL) {
		req.body = body;
		req.body_len = strlen(body);
		req.content_length = (long long)req.body_len;
	}
	run(&req, resp);
}

static void
call(struct kr_resp *resp, const char *method, const char *uri, const char *ctype,
    const char *body)
{
	call_auth(resp, method, uri, ctype, body, NULL, NULL);
}

/* Parse the whole of s as JSON (nothing may follow), or NULL. */
static json_object *
parse(const char *s)
{
	struct json_tokener *tok = json_tokener_new();
	size_t n = strlen(s);
	json_object *o;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, s, (int)n + 1);	/* with the NUL: ends a bare number */
	if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != n)) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

static int
has_str(json_object *o, const char *key, const char *want)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) &&
	    (want == NULL ? json_object_get_string_len(v) > 0 :
	    strcmp(json_object_get_string(v), want) == 0);
}

/*
 * 1 when resp is exactly the api.md error shape, {"error":{"code","message"[,"field"]}}, as
 * application/json with that status; else 0, after showing what came.
 */
static int
is_error(const struct kr_resp *resp, int status, const char *code, const char *field)
{
	json_object *o = parse(kr_buf_str(&resp->body)), *e = NULL;
	int ok = o != NULL && resp->status == status &&
	    strcmp(resp->content_type, "application/json") == 0 &&
	    json_object_is_type(o, json_type_object) && json_object_object_length(o) == 1 &&
	    json_object_object_get_ex(o, "error", &e) && json_object_is_type(e, json_type_object) &&
	    json_object_object_length(e) == (field != NULL ? 3 : 2) &&
	    has_str(e, "code", code) && has_str(e, "message", NULL) &&
	    (field == NULL || has_str(e, "field", field));

	if (!ok)
		fprintf(stderr, "  got %d %s, want %d %s%s%s\n", resp->status,
		    kr_buf_str(&resp->body), status, code, field ? " field " : "",
		    field ? field : "");
	json_object_put(o);
	return ok;
}

/* The value of header name in resp (into buf), or NULL. */
static const char *
header(const struct kr_resp *resp, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	for (const char *p = kr_buf_str(&resp->headers); *p != '\0';) {
		const char *eol = strstr(p, "\r\n");
		size_t l = eol != NULL ? (size_t)(eol - p) : strlen(p);
		if (l > n + 1 && strncmp(p, name, n) == 0 && p[n] == ':' && p[n + 1] == ' ') {
			snprintf(buf, len, "%.*s", (int)(l - n - 2), p + n + 2);
			return buf;
		}
		p += l + (eol != NULL ? 2 : 0);
	}
	return NULL;
}

/* 1 when the comma-separated list holds exactly the given methods (any order). */
static int
allow_is(const char *allow, const char *const *methods, size_t n)
{
	size_t found = 0, items = 1;

	if (allow == NULL)
		return 0;
	for (const char *p = allow; *p != '\0'; p++)
		items += *p == ',';
	for (size_t i = 0; i < n; i++) {
		const char *p = strstr(allow, methods[i]);
		size_t l = strlen(methods[i]);
		if (p != NULL && (p == allow || p[-1] == ' ') && (p[l] == '\0' || p[l] == ','))
			found++;
	}
	return found == n && items == n;
}

static void
test_not_found(void)
{
	static const char *const paths[] = {
		"/api/" NOPE, "/", "/api", "/api/", "/api/auth", "/api/workspaces/" SLUG "/nope",
		"/api/workspaces/" SLUG "/keys/x/y/z", "/API/AUTH/LOGIN", "/api/users//",
		"/api/workspaces/ac%2Fme/keys", "/api/workspaces//keys", "api/auth/login", "",
		"?x=1", "/healthz/x",
	};
	struct kr_resp resp;
	char longuri[2048];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		call(&resp, "GET", paths[i], NULL, NULL);
		if (resp.status != 404)
			fprintf(stderr, "  GET \"%s\"\n", paths[i]);
		CHECK(is_error(&resp, 404, "not_found", NULL));
		kr_resp_release(&resp);
	}
	/* An unknown method on an unknown path is a 404 too. */
	call(&resp, "BREW", "/api/" NOPE, NULL, NULL);
	CHECK(is_error(&resp, 404, "not_found", NULL));
	kr_resp_release(&resp);
	/* A path longer than the router keeps. */
	memset(longuri, 'a', sizeof(longuri) - 1);
	longuri[0] = '/';
	longuri[sizeof(longuri) - 1] = '\0';
	call(&resp, "GET", longuri, NULL, NULL);
	CHECK(is_error(&resp, 404, "not_found", NULL));
	kr_resp_release(&resp);
}

static void
test_method_not_allowed(void)
{
	static const char *const post[] = { "POST" }, *const get_post[] = { "GET", "POST" };
	static const char *const key[] = { "GET", "PATCH", "DELETE" };
	static const char *const reorder[] = { "PUT", "GET", "PATCH", "DELETE" };
	static const char *const ws[] = { "DELETE" }, *const get[] = { "GET" };
	struct kr_resp resp;
	char allow[256];

	/* No credentials needed to learn that a method is wrong. */
	call(&resp, "DELETE", "/api/auth/login", NULL, NULL);
	CHECK(is_error(&resp, 405, "method_not_allowed", NULL));
	CHECK_STR(header(&resp, "Allow", allow, sizeof(allow)), "POST");
	kr_resp_release(&resp);
	call(&resp, "GET", "/api/auth/login", NULL, NULL);
	CHECK(is_error(&resp, 405, "method_not_allowed", NULL));
	CHECK(allow_is(header(&resp, "Allow", allow, sizeof(allow)), post, 1));
	kr_resp_release(&resp);
	call(&resp, "PATCH", "/api/users", LOGIN_JSON, "{}");
	CHECK(is_error(&resp, 405, "method_not_allowed", NULL));
	CHECK(allow_is(header(&resp, "Allow", allow, sizeof(allow)), get_post, 2));
	kr_resp_release(&resp);
	call(&resp, "PUT", "/api/workspaces/" SLUG "/keys/0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b",
	    NULL, NULL);
	CHECK(is_error(&resp, 405, "method_not_allowed", NULL));
	CHECK(allow_is(header(&resp, "Allow", allow, sizeof(allow)), key, 3));
	kr_resp_release(&resp);
	/* "reorder" is both a route of its own and a {id}: every method of both. */
	call(&resp, "POST", "/api/workspaces/" SLUG "/keys/reorder", NULL, NULL);
	CHECK(is_error(&resp, 405, "method_not_allowed", NULL));
	CHECK(allow_is(header(&resp, "Allow", allow, sizeof(allow)), reorder, 4));
	kr_resp_release(&resp);
	call(&resp, "GET", "/api/workspaces/" SLUG, NULL, NULL);
	CHECK(is_error(&resp, 405, "method_not_allowed", NULL));
	CHECK(allow_is(header(&resp, "Allow", allow, sizeof(allow)), ws, 1));
	kr_resp_release(&resp);
	call(&resp, "POST", "/healthz", LOGIN_JSON, "{}");
	CHECK(is_error(&resp, 405, "method_not_allowed", NULL));
	CHECK(allow_is(header(&resp, "Allow", allow, sizeof(allow)), get, 1));
	kr_resp_release(&resp);
	/* Method names are case-sensitive (RFC 9110 section 9.1). */
	call(&resp, "post", "/api/auth/login", NULL, NULL);
	CHECK(is_error(&resp, 405, "method_not_allowed", NULL));
	kr_resp_release(&resp);
}

static void
test_trailing_slash(void)
{
	static const char *const post[] = { "POST" };
	struct kr_resp a, b;
	char allow[256];

	call(&a, "DELETE", "/api/auth/login/", NULL, NULL);
	CHECK(is_error(&a, 405, "method_not_allowed", NULL));
	CHECK(allow_is(header(&a, "Allow", allow, sizeof(allow)), post, 1));
	kr_resp_release(&a);

	call(&a, "POST", "/api/auth/login", LOGIN_JSON, "{\"email\":5}");
	call(&b, "POST", "/api/auth/login/", LOGIN_JSON, "{\"email\":5}");
	CHECK(is_error(&a, 422, "validation_failed", "email"));
	CHECK(is_error(&b, 422, "validation_failed", "email"));
	CHECK_STR(kr_buf_str(&a.body), kr_buf_str(&b.body));
	kr_resp_release(&a);
	kr_resp_release(&b);

	call(&a, "GET", "/healthz", NULL, NULL);
	call(&b, "GET", "/healthz/?verbose=1", NULL, NULL);
	CHECK(a.status == 503 && b.status == 503);
	CHECK_STR(kr_buf_str(&a.body), kr_buf_str(&b.body));
	kr_resp_release(&a);
	kr_resp_release(&b);

	call(&a, "GET", "/api/workspaces/" SLUG "/keys/", NULL, NULL);
	CHECK(is_error(&a, 401, "unauthorized", NULL));
	kr_resp_release(&a);
	call(&a, "GET", "/api/" NOPE "/", NULL, NULL);
	CHECK(is_error(&a, 404, "not_found", NULL));
	kr_resp_release(&a);
}

static void
test_body(void)
{
	static const char *const invalid[] = {
		"{", "{\"email\":}", "nope", "{'email':'a'}", "{\"email\":\"a\",}",
		"{\"email\":\"\xff\"}", "{\"email\":\"a\"} x", "{}{}", "{} []", "{\"a\":1}}",
		"\"unterminated",
	};
	static const char *const not_object[] = { "[1,2]", "\"str\"", "[]", "[{}]" };
	struct kr_resp resp;
	struct kr_req req;
	char *big;

	/* 415: a body that is not declared JSON. */
	call(&resp, "POST", "/api/auth/login", "text/plain", "{\"email\":\"a@example.com\"}");
	CHECK(is_error(&resp, 415, "unsupported_media_type", NULL));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", NULL, "{\"email\":\"a@example.com\"}");
	CHECK(is_error(&resp, 415, "unsupported_media_type", NULL));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", "application/jsonx", "{}");
	CHECK(is_error(&resp, 415, "unsupported_media_type", NULL));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", "application/x-www-form-urlencoded",
	    "email=a&password=b");
	CHECK(is_error(&resp, 415, "unsupported_media_type", NULL));
	kr_resp_release(&resp);
	/* A media type with parameters, or in another case, is JSON. */
	call(&resp, "POST", "/api/auth/login", "application/json; charset=utf-8",
	    "{\"email\":5}");
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", "Application/JSON", "{\"email\":5}");
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);

	/* 413: by Content-Length, before reading the body, or by the body itself. */
	kr_req_init(&req, &cfg, db);
	req.method = "POST";
	req.uri = "/api/auth/login";
	req.content_type = LOGIN_JSON;
	req.body = "{}";
	req.body_len = 2;
	req.content_length = KR_BODY_MAX + 1;
	run(&req, &resp);
	CHECK(is_error(&resp, 413, "payload_too_large", NULL));
	kr_resp_release(&resp);

	if ((big = malloc(KR_BODY_MAX + 2)) == NULL) {
		FAIL("out of memory");
		return;
	}
	memset(big, ' ', KR_BODY_MAX + 1);
	big[0] = '{';
	big[KR_BODY_MAX] = '}';
	big[KR_BODY_MAX + 1] = '\0';
	kr_req_init(&req, &cfg, db);
	req.method = "POST";
	req.uri = "/api/auth/login";
	req.content_type = LOGIN_JSON;
	req.body = big;
	req.body_len = KR_BODY_MAX + 1;	/* no Content-Length (chunked) */
	run(&req, &resp);
	CHECK(is_error(&resp, 413, "payload_too_large", NULL));
	kr_resp_release(&resp);

	/* Exactly 1 MiB is allowed: parsed, and answered by the handler. */
	{
		static const char head[] = "{\"email\":5,\"pad\":\"";
		memset(big, 'x', KR_BODY_MAX);
		memcpy(big, head, sizeof(head) - 1);
		big[KR_BODY_MAX - 2] = '"';
		big[KR_BODY_MAX - 1] = '}';
		big[KR_BODY_MAX] = '\0';
	}
	kr_req_init(&req, &cfg, db);
	req.method = "POST";
	req.uri = "/api/auth/login";
	req.content_type = LOGIN_JSON;
	req.body = big;
	req.body_len = KR_BODY_MAX;
	req.content_length = KR_BODY_MAX;
	run(&req, &resp);
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	free(big);

	/* 400 invalid_json: not JSON, truncated, not UTF-8, or something after the value. */
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		call(&resp, "POST", "/api/auth/login", LOGIN_JSON, invalid[i]);
		if (resp.status != 400)
			fprintf(stderr, "  body [%s]\n", invalid[i]);
		CHECK(is_error(&resp, 400, "invalid_json", NULL));
		kr_resp_release(&resp);
	}
	/* White space around the value is fine. */
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON, " \r\n\t{\"email\":5} \r\n\t");
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	/* A NUL byte after the value is something, not white space. */
	kr_req_init(&req, &cfg, db);
	req.method = "POST";
	req.uri = "/api/auth/login";
	req.content_type = LOGIN_JSON;
	req.body = "{\"email\":5}\0";
	req.body_len = 12;
	req.content_length = 12;
	run(&req, &resp);
	CHECK(is_error(&resp, 400, "invalid_json", NULL));
	kr_resp_release(&resp);

	/* 400 bad_request: JSON, but not an object. */
	for (size_t i = 0; i < sizeof(not_object) / sizeof(not_object[0]); i++) {
		call(&resp, "POST", "/api/auth/login", LOGIN_JSON, not_object[i]);
		if (resp.status != 400)
			fprintf(stderr, "  body [%s]\n", not_object[i]);
		CHECK(is_error(&resp, 400, "bad_request", NULL));
		kr_resp_release(&resp);
	}
	/* A bare number or literal is valid JSON too (RFC 8259), not "invalid JSON". */
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON, "5");
	CHECK(is_error(&resp, 400, "bad_request", NULL));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON, "true");
	CHECK(is_error(&resp, 400, "bad_request", NULL));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON, "null");
	CHECK(is_error(&resp, 400, "bad_request", NULL));
	kr_resp_release(&resp);
}

static void
test_validation(void)
{
	struct kr_resp resp;
	char retry[16];

	call(&resp, "POST", "/api/auth/login", LOGIN_JSON, "{\"email\":5,\"password\":\"pw\"}");
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON, "{\"email\":null}");
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON, "{\"password\":\"pw\"}");
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON, "{\"email\":[\"a@example.com\"]}");
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON, "{\"email\":\"\",\"password\":\"pw\"}");
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON,
	    "{\"email\":\"a@example.com\",\"password\":true}");
	CHECK(is_error(&resp, 422, "validation_failed", "password"));
	kr_resp_release(&resp);
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON,
	    "{\"email\":\"a\\u0000@example.com\",\"password\":\"pw\"}");
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	/* A POST without a body is an empty object: the field is missing. */
	call(&resp, "POST", "/api/auth/login", NULL, NULL);
	CHECK(is_error(&resp, 422, "validation_failed", "email"));
	kr_resp_release(&resp);
	/* Unknown fields are ignored: with good fields, the request reaches the database. */
	call(&resp, "POST", "/api/auth/login", LOGIN_JSON,
	    "{\"email\":\"a@example.com\",\"password\":\"pw\",\"extra\":{\"x\":[1]}}");
	CHECK(is_error(&resp, 503, "unavailable", NULL));
	CHECK_STR(header(&resp, "Retry-After", retry, sizeof(retry)), "1");
	kr_resp_release(&resp);
}

static void
test_healthz(void)
{
	struct kr_resp resp;
	json_object *o, *e = NULL;

	call(&resp, "GET", "/healthz", NULL, NULL);
	CHECK(resp.status == 503);
	CHECK_STR(resp.content_type, "application/json");
	o = parse(kr_buf_str(&resp.body));
	CHECK(o != NULL);
	CHECK(has_str(o, "status", "unavailable"));
	CHECK(has_str(o, "db", "unavailable"));
	/* Also the error shape, for clients that know only that one. */
	CHECK(json_object_object_get_ex(o, "error", &e) && has_str(e, "code", "unavailable") &&
	    has_str(e, "message", NULL));
	json_object_put(o);
	kr_resp_release(&resp);
}

static void
test_unauthenticated(void)
{
	struct kr_resp resp;
	char buf[64];

	call(&resp, "GET", "/api/workspaces/" SLUG "/keys", NULL, NULL);
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	kr_resp_release(&resp);
	call(&resp, "GET", "/api/workspaces/" SLUG "/jobs?limit=5", NULL, NULL);
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	kr_resp_release(&resp);
	/* Credentials come before the body: no hint about the body for strangers. */
	call(&resp, "POST", "/api/workspaces/" SLUG "/keys", "text/plain", "{");
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	kr_resp_release(&resp);
	call(&resp, "GET", "/api/auth/me", NULL, NULL);
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	kr_resp_release(&resp);
	call(&resp, "GET", "/api/users", NULL, NULL);
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	kr_resp_release(&resp);
	call(&resp, "GET", "/api/workspaces", NULL, NULL);
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	kr_resp_release(&resp);
	/* Another cookie, an empty session cookie, another scheme, a token of another form. */
	call_auth(&resp, "GET", "/api/workspaces/" SLUG "/keys", NULL, NULL, "theme=dark", NULL);
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	kr_resp_release(&resp);
	call_auth(&resp, "GET", "/api/workspaces/" SLUG "/keys", NULL, NULL, "kr_session=", NULL);
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	kr_resp_release(&resp);
	call_auth(&resp, "GET", "/api/workspaces/" SLUG "/keys", NULL, NULL, NULL,
	    "Basic dXNlcjpwdw==");
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	CHECK_STR(header(&resp, "WWW-Authenticate", buf, sizeof(buf)), "Bearer");
	kr_resp_release(&resp);
	call_auth(&resp, "GET", "/api/workspaces/" SLUG "/keys", NULL, NULL, NULL,
	    "Bearer not-a-token");
	CHECK(is_error(&resp, 401, "unauthorized", NULL));
	CHECK_STR(header(&resp, "WWW-Authenticate", buf, sizeof(buf)), "Bearer");
	kr_resp_release(&resp);
	/* Credentials of the right form need the database: down, so 503 (not 401). */
	call_auth(&resp, "GET", "/api/workspaces/" SLUG "/keys", NULL, NULL, NULL,
	    "Bearer krt_abcdefghijklmnopqrstuvwxyz");
	CHECK(is_error(&resp, 503, "unavailable", NULL));
	kr_resp_release(&resp);
	call_auth(&resp, "GET", "/api/workspaces/" SLUG "/keys", NULL, NULL,
	    "theme=dark; kr_session=abcdef", NULL);
	CHECK(is_error(&resp, 503, "unavailable", NULL));
	kr_resp_release(&resp);
}

/* Sum of keyrelay_http_requests_total over methods for route and status; -1 if none. */
static long long
metric_count(const char *text, const char *route, int status)
{
	static const char name[] = "keyrelay_http_requests_total{";
	long long sum = -1;

	for (const char *p = text; (p = strstr(p, name)) != NULL; p += sizeof(name) - 1) {
		const char *r = strstr(p, "route=\""), *s = strstr(p, "status=\""), *eol;
		const char *c = strstr(p, "} ");
		size_t rlen = strlen(route);
		if ((eol = strchr(p, '\n')) == NULL || r == NULL || s == NULL || c == NULL ||
		    r > eol || s > eol || c > eol)
			continue;
		r += 7;
		if (strncmp(r, route, rlen) != 0 || r[rlen] != '"' || strtol(s + 8, NULL, 10) != status)
			continue;
		sum = (sum < 0 ? 0 : sum) + strtoll(c + 2, NULL, 10);
	}
	return sum;
}

/* Every keyrelay_http_requests_total route label is a pattern or "unmatched". */
static int
routes_are_patterns(const char *text)
{
	static const char name[] = "keyrelay_http_requests_total{";

	for (const char *p = text; (p = strstr(p, name)) != NULL; p += sizeof(name) - 1) {
		const char *r = strstr(p, "route=\"");
		if (r == NULL)
			return 0;
		r += 7;
		if (strncmp(r, "unmatched\"", 10) != 0 && strncmp(r, "/api/", 5) != 0 &&
		    strncmp(r, "/healthz\"", 9) != 0 && strncmp(r, "/metrics\"", 9) != 0)
			return 0;
	}
	return 1;
}

static void
test_metrics(void)
{
	struct kr_resp resp;
	const char *text;
	unsigned before;

	/* A few more, with the route labels they should get. */
	for (int i = 0; i < 3; i++) {
		call(&resp, "GET", "/api/workspaces/" SLUG "/chats/" SLUG "/messages?x=" SLUG,
		    NULL, NULL);
		kr_resp_release(&resp);
	}
	call(&resp, "OPTIONS", "/api/workspaces/" SLUG "/usage", NULL, NULL);
	kr_resp_release(&resp);

	before = ntally;
	{
		struct tally_row copy[sizeof(tally) / sizeof(tally[0])];
		memcpy(copy, tally, sizeof(copy));
		call(&resp, "GET", "/metrics", NULL, NULL);
		CHECK(resp.status == 200);
		CHECK(strncmp(resp.content_type, "text/plain", 10) == 0);
		text = kr_buf_str(&resp.body);
		CHECK(strstr(text, "# TYPE keyrelay_http_requests_total counter\n") != NULL);
		CHECK(strstr(text, "keyrelay_http_request_duration_seconds_count ") != NULL);
		CHECK(strstr(text, "keyrelay_db_errors_total ") != NULL);
		/* Every request made so far, counted by route pattern and status. */
		for (unsigned i = 0; i < before; i++) {
			long long got = metric_count(text, copy[i].route, copy[i].status);
			if (got != (long long)copy[i].n)
				fprintf(stderr, "  %s %d: counted %lld, sent %llu\n", copy[i].route,
				    copy[i].status, got, copy[i].n);
			CHECK(got == (long long)copy[i].n);
		}
		CHECK(metric_count(text, "/metrics", 200) == -1);	/* not yet answered */
		CHECK(strstr(text, "keyrelay_http_requests_total{method=\"GET\",route=\""
		    "/api/workspaces/{ws}/chats/{id}/messages\",status=\"401\"} 3\n") != NULL);
		CHECK(strstr(text, "keyrelay_http_requests_total{method=\"other\",route=\""
		    "/api/workspaces/{ws}/usage\",status=\"405\"} 1\n") != NULL);
		CHECK(strstr(text, "{method=\"other\",route=\"unmatched\",status=\"404\"}") != NULL);
		/* Never the raw path, query or slug. */
		CHECK(strstr(text, SLUG) == NULL);
		CHECK(strstr(text, NOPE) == NULL);
		CHECK(routes_are_patterns(text));
		kr_resp_release(&resp);
	}
	call(&resp, "GET", "/metrics/", NULL, NULL);
	CHECK(metric_count(kr_buf_str(&resp.body), "/metrics", 200) == 1);
	kr_resp_release(&resp);
}

static void
test_query(void)
{
	static const struct {
		const char	*query, *name, *want;	/* want NULL: absent or undecodable */
		int		 has;			/* req_query_has */
	} cases[] = {
		{ "limit=10&x=1", "limit", "10", 1 },
		{ "x=1&limit=5", "limit", "5", 1 },
		{ "x=1", "limit", NULL, 0 },
		{ "", "limit", NULL, 0 },
		{ "limit", "limit", "", 1 },
		{ "limit=", "limit", "", 1 },
		{ "a=1&limit&b=2", "limit", "", 1 },
		{ "limitx=3", "limit", NULL, 0 },
		{ "xlimit=3", "limit", NULL, 0 },
		{ "lim=3", "limit", NULL, 0 },
		{ "a=1&a=2", "a", "1", 1 },
		{ "q=a%20b+c%2B", "q", "a b c+", 1 },
		{ "q=%41%6a", "q", "Aj", 1 },
		{ "q=%C3%A9", "q", "\xc3\xa9", 1 },
		{ "q=%2", "q", NULL, 1 },
		{ "q=%zz", "q", NULL, 1 },
		{ "q=%00", "q", NULL, 1 },
		{ "q=a&&b=2", "b", "2", 1 },
		{ "q=0123456789012345678901234567890123456789", "q", NULL, 1 },	/* over buf */
	};
	struct kr_req req;
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got;
		kr_req_init(&req, &cfg, db);
		req.query = cases[i].query;
		got = req_query(&req, cases[i].name, buf, sizeof(buf));
		if (cases[i].want == NULL) {
			if (got != NULL)
				fprintf(stderr, "  req_query(\"%s\", %s) = \"%s\"\n", cases[i].query,
				    cases[i].name, got);
			CHECK(got == NULL);
		} else
			CHECK_STR(got, cases[i].want);
		CHECK(req_query_has(&req, cases[i].name) == cases[i].has);
		kr_req_release(&req);
	}
	/* A zero-length buffer never holds an answer. */
	kr_req_init(&req, &cfg, db);
	req.query = "a";
	CHECK(req_query(&req, "a", buf, 0) == NULL);
	kr_req_release(&req);
}

/* req_limit on query q: its return value, *limit and the answer. */
static int
limit_of(const char *q, unsigned *limit, struct kr_resp *resp)
{
	struct kr_req req;
	int rc;

	kr_req_init(&req, &cfg, db);
	req.query = q;
	kr_resp_init(resp);
	*limit = 12345;
	rc = req_limit(&req, resp, limit);
	kr_req_release(&req);
	return rc;
}

static void
test_limit(void)
{
	static const char *const bad[] = { "limit=0", "limit=201", "limit=abc", "limit=",
	    "limit", "limit=-5", "limit=10abc", "limit=1.5", "limit=99999999999999999999",
	    "limit=0x10" };
	static const struct {
		const char	*q;
		unsigned	 want;
	} ok[] = {
		{ "", 50 }, { "x=1", 50 }, { "limit=1", 1 }, { "limit=200", 200 },
		{ "before=abc&limit=25", 25 }, { "limit=050", 50 },
	};
	struct kr_resp resp;
	unsigned limit;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK(limit_of(ok[i].q, &limit, &resp) == 0);
		CHECK(limit == ok[i].want);
		CHECK(resp.status == 0);
		kr_resp_release(&resp);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = limit_of(bad[i], &limit, &resp);
		if (rc != -1)
			fprintf(stderr, "  req_limit accepted \"%s\" as %u\n", bad[i], limit);
		CHECK(rc == -1);
		CHECK(is_error(&resp, 422, "validation_failed", "limit"));
		kr_resp_release(&resp);
	}
	/*
	 * A limit the helper cannot decode is not an absent one: "limit=%zz" or a value too
	 * long for its buffer must not quietly become the default of 50.
	 */
	CHECK(limit_of("limit=%zz", &limit, &resp) == -1);
	kr_resp_release(&resp);
	CHECK(!(limit_of("limit=00000000000000000007", &limit, &resp) == 0 && limit == 50));
	kr_resp_release(&resp);
}

static void
test_query_id(void)
{
	struct kr_resp resp;
	struct kr_req req;
	char buf[64];
	const char *id;

	kr_req_init(&req, &cfg, db);
	kr_resp_init(&resp);
	req.query = "before=0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b";
	CHECK(req_query_id(&req, &resp, "before", buf, sizeof(buf), &id) == 0);
	CHECK_STR(id, "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b");
	req.query = "before=";
	CHECK(req_query_id(&req, &resp, "before", buf, sizeof(buf), &id) == 0 && id == NULL);
	req.query = "x=1";
	CHECK(req_query_id(&req, &resp, "before", buf, sizeof(buf), &id) == 0 && id == NULL);
	CHECK(resp.status == 0);
	req.query = "before=nope";
	CHECK(req_query_id(&req, &resp, "before", buf, sizeof(buf), &id) == -1);
	CHECK(is_error(&resp, 422, "validation_failed", "before"));
	req.query = "before=%zz";
	CHECK(req_query_id(&req, &resp, "before", buf, sizeof(buf), &id) == -1);
	CHECK(is_error(&resp, 422, "validation_failed", "before"));
	kr_resp_release(&resp);
	kr_req_release(&req);
}

/* Unset every KEYRELAY_* variable: the configuration comes from the test alone. */
static void
clear_env(void)
{
	for (;;) {
		char **e, *name;

		for (e = environ; *e != NULL; e++)
			if (strncmp(*e, "KEYRELAY_", 9) == 0)
				break;
		if (*e == NULL || (name = strndup(*e, strcspn(*e, "="))) == NULL)
			return;
		unsetenv(name);
		free(name);
	}
}

static int
setup(void)
{
	static const char text[] =
	    "db.socket = /nonexistent/keyrelay-test/mysqld.sock\n"
	    "db.password = unused\n";
	char path[] = "/tmp/kr_test_router_XXXXXX", err[256];
	enum kr_config_err rc;
	int fd;

	clear_env();
	kr_log_init("test_router", KR_LOG_ERROR);
	if ((fd = mkstemp(path)) == -1)
		return -1;
	if (write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1)) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	rc = kr_config_load(&cfg, path, err, sizeof(err));
	unlink(path);
	if (rc != KR_CONFIG_OK) {
		fprintf(stderr, "config: %s\n", err);
		return -1;
	}
	if (access(cfg.db_socket, F_OK) == 0 || (db = kr_db_new(&cfg)) == NULL) {
		kr_config_release(&cfg);
		return -1;
	}
	return 0;
}

int
main(void)
{
	if (setup() != 0) {
		fprintf(stderr, "test_router: setup failed\n");
		return 1;
	}
	test_not_found();
	test_method_not_allowed();
	test_trailing_slash();
	test_body();
	test_validation();
	test_healthz();
	test_unauthenticated();
	test_metrics();
	test_query();
	test_limit();
	test_query_id();
	kr_db_free(&db);
	kr_config_release(&cfg);
	return kr_test_done("test_router");
}
