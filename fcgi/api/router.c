/*
 * router: the table of every API route, and kr_dispatch(), which takes a request from
 * path to handler: match (404/405), authenticate (401), CSRF (403), workspace and role
 * (404/403), body (415/400), then the handler.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth.h"
#include "handlers.h"
#include "http.h"
#include "kr_log.h"
#include "metrics.h"

enum route_auth {
	AUTH_PUBLIC,		/* anyone */
	AUTH_SESSION,		/* a signed-in user (browser session) */
	AUTH_ANY,		/* a session or a token */
	AUTH_INSTANCE_ADMIN,	/* a signed-in instance admin */
	AUTH_WORKSPACE,		/* a session or token with min_role in {ws} (first param) */
};

struct route {
	const char	*method;
	const char	*pattern;
	enum route_auth	 auth;
	enum kr_role	 min_role;
	kr_handler	 handler;
};

#define WS	"/api/workspaces/{ws}"

static const struct route routes[] = {
	{ "POST", "/api/auth/login", AUTH_PUBLIC, 0, h_auth_login },
	{ "POST", "/api/auth/logout", AUTH_SESSION, 0, h_auth_logout },
	{ "GET", "/api/auth/me", AUTH_SESSION, 0, h_auth_me },
	{ "GET", "/api/users", AUTH_INSTANCE_ADMIN, 0, h_users_list },
	{ "POST", "/api/users", AUTH_INSTANCE_ADMIN, 0, h_users_create },
	{ "DELETE", "/api/users/{id}", AUTH_INSTANCE_ADMIN, 0, h_users_delete },
	{ "GET", "/api/workspaces", AUTH_ANY, 0, h_workspaces_list },
	{ "POST", "/api/workspaces", AUTH_INSTANCE_ADMIN, 0, h_workspaces_create },
	{ "DELETE", WS, AUTH_INSTANCE_ADMIN, 0, h_workspaces_delete },
	{ "GET", WS "/members", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_members_list },
	{ "POST", WS "/members", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_members_add },
	{ "PATCH", WS "/members/{id}", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_members_update },
	{ "DELETE", WS "/members/{id}", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_members_delete },
	{ "GET", WS "/tokens", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_tokens_list },
	{ "POST", WS "/tokens", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_tokens_create },
	{ "DELETE", WS "/tokens/{id}", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_tokens_delete },
	{ "GET", WS "/keys", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_keys_list },
	{ "POST", WS "/keys", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_keys_create },
	{ "PUT", WS "/keys/reorder", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_keys_reorder },
	{ "GET", WS "/keys/{id}", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_keys_get },
	{ "PATCH", WS "/keys/{id}", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_keys_update },
	{ "DELETE", WS "/keys/{id}", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_keys_delete },
	{ "POST", WS "/keys/{id}/test", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_keys_test },
	{ "POST", WS "/keys/{id}/rotate", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_keys_rotate },
	{ "GET", WS "/providers", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_providers_get },
	{ "PUT", WS "/providers", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_providers_put },
	{ "GET", WS "/chats", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_chats_list },
	{ "POST", WS "/chats", AUTH_WORKSPACE, KR_ROLE_MEMBER, h_chats_create },
	{ "GET", WS "/chats/{id}/messages", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_messages_list },
	{ "POST", WS "/chats/{id}/messages", AUTH_WORKSPACE, KR_ROLE_MEMBER, h_messages_post },
	{ "GET", WS "/jobs", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_jobs_list },
	{ "POST", WS "/jobs", AUTH_WORKSPACE, KR_ROLE_MEMBER, h_jobs_create },
	{ "GET", WS "/jobs/{id}", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_jobs_get },
	{ "POST", WS "/jobs/{id}/cancel", AUTH_WORKSPACE, KR_ROLE_MEMBER, h_jobs_cancel },
	{ "POST", WS "/jobs/{id}/retry", AUTH_WORKSPACE, KR_ROLE_MEMBER, h_jobs_retry },
	{ "GET", WS "/schedules", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_schedules_list },
	{ "POST", WS "/schedules", AUTH_WORKSPACE, KR_ROLE_MEMBER, h_schedules_create },
	{ "GET", WS "/schedules/{id}", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_schedules_get },
	{ "PATCH", WS "/schedules/{id}", AUTH_WORKSPACE, KR_ROLE_MEMBER, h_schedules_update },
	{ "DELETE", WS "/schedules/{id}", AUTH_WORKSPACE, KR_ROLE_MEMBER, h_schedules_delete },
	{ "GET", WS "/notifications", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_notifications_list },
	{ "POST", WS "/notifications", AUTH_WORKSPACE, KR_ROLE_ADMIN, h_notifications_create },
	{ "PATCH", WS "/notifications/{id}", AUTH_WORKSPACE, KR_ROLE_ADMIN,
	    h_notifications_update },
	{ "DELETE", WS "/notifications/{id}", AUTH_WORKSPACE, KR_ROLE_ADMIN,
	    h_notifications_delete },
	{ "POST", WS "/notifications/{id}/test", AUTH_WORKSPACE, KR_ROLE_ADMIN,
	    h_notifications_test },
	{ "GET", WS "/usage", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_usage },
	{ "GET", WS "/events", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_events },
	{ "GET", WS "/audit", AUTH_WORKSPACE, KR_ROLE_VIEWER, h_audit_list },
	{ "GET", "/healthz", AUTH_PUBLIC, 0, h_healthz },
	{ "GET", "/metrics", AUTH_PUBLIC, 0, h_metrics },
};

#define NROUTES	(sizeof(routes) / sizeof(routes[0]))

/*
 * Match path against pattern segment by segment; a {name} segment matches any non-empty
 * segment without '%', captured into req->params (copied into req->param_buf).
 */
static int
match(struct kr_req *req, const char *pattern, const char *path)
{
	size_t used = 0;
	unsigned np = 0;

	while (*pattern != '\0' && *path != '\0') {
		const char *pe = strchr(pattern, '/'), *se = strchr(path, '/');
		size_t plen, slen;
		if (*pattern != '/' || *path != '/')
			return 0;
		pattern++, path++;
		pe = strchr(pattern, '/');
		se = strchr(path, '/');
		plen = pe != NULL ? (size_t)(pe - pattern) : strlen(pattern);
		slen = se != NULL ? (size_t)(se - path) : strlen(path);
		if (*pattern == '{') {
			if (slen == 0 || memchr(path, '%', slen) != NULL || np >= KR_MAX_PARAMS ||
			    used + slen + 1 > sizeof(req->param_buf))
				return 0;
			memcpy(req->param_buf + used, path, slen);
			req->param_buf[used + slen] = '\0';
			req->params[np++] = req->param_buf + used;
			used += slen + 1;
		} else if (plen != slen || strncmp(pattern, path, plen) != 0)
			return 0;
		pattern += plen;
		path += slen;
	}
	return *pattern == '\0' && *path == '\0';
}

/* Split req->uri into path and query. */
static int
split_uri(struct kr_req *req)
{
	const char *q = strchr(req->uri, '?');
	size_t n = q != NULL ? (size_t)(q - req->uri) : strlen(req->uri);

	if (n == 0 || n >= sizeof(req->path))
		return -1;
	memcpy(req->path, req->uri, n);
	req->path[n] = '\0';
	req->query = q != NULL ? q + 1 : "";
	/* A trailing slash is the same path ("/api/users/" is "/api/users"). */
	if (n > 1 && req->path[n - 1] == '/')
		req->path[n - 1] = '\0';
	return 0;
}

static const struct route *
find_route(struct kr_req *req, struct kr_resp *resp)
{
	char allow[128] = "";
	size_t alen = 0;

	for (size_t i = 0; i < NROUTES; i++) {
		if (!match(req, routes[i].pattern, req->path))
			continue;
		req->route = routes[i].pattern;
		if (strcmp(routes[i].method, req->method) == 0)
			return &routes[i];
		alen += (size_t)snprintf(allow + alen, sizeof(allow) - alen, "%s%s",
		    alen ? ", " : "", routes[i].method);
		if (alen >= sizeof(allow))
			alen = sizeof(allow) - 1;
	}
	if (alen > 0) {
		resp_header(resp, "Allow", allow);
		resp_error(resp, 405, NULL, "%s is not allowed here", req->method);
	} else
		resp_error(resp, 404, NULL, "no such resource");
	return NULL;
}

static int
is_json_type(const char *ct)
{
	size_t n = strlen("application/json");

	return ct != NULL && strncasecmp(ct, "application/json", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/*
 * Whether v holds, at any depth, a string with a NUL character in it. JSON allows \u0000,
 * but no field of this API can hold one, and the C strings they become would end there
 * while their recorded lengths go on.
 */
static int	has_nul(json_object *v);

/* The name of the first member of object o that holds such a string; NULL: none does. */
static const char *
nul_member(json_object *o)
{
	struct json_object_iterator it = json_object_iter_begin(o);
	struct json_object_iterator end = json_object_iter_end(o);

	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		if (has_nul(json_object_iter_peek_value(&it)))
			return json_object_iter_peek_name(&it);
	return NULL;
}

static int
has_nul(json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return memchr(json_object_get_string(v), '\0',
		    (size_t)json_object_get_string_len(v)) != NULL;
	case json_type_array:
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if (has_nul(json_object_array_get_idx(v, i)))
				return 1;
		return 0;
	case json_type_object:
		return nul_member(v) != NULL;
	default:
		return 0;
	}
}

/* Parse the body of a write into req->json: 413, 415, 400, 422 (a NUL in a string) or 0. */
static int
parse_body(struct kr_req *req, struct kr_resp *resp)
{
	struct json_tokener *tok;
	enum json_tokener_error jerr;
	const char *f;

	if (req->content_length > KR_BODY_MAX || req->body_len > KR_BODY_MAX) {
		resp_error(resp, 413, NULL, "request body over 1 MiB");
		return -1;
	}
	if (req->body_len == 0)
		return 0;
	if (!is_json_type(req->content_type)) {
		resp_error(resp, 415, NULL, "send the body as Content-Type: application/json");
		return -1;
	}
	if ((tok = json_tokener_new()) == NULL) {
		resp_error(resp, 500, NULL, "internal error");
		return -1;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	/* The terminating NUL is passed too: it ends a top-level number or literal. */
	req->json = json_tokener_parse_ex(tok, req->body, (int)req->body_len + 1);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_success && json_tokener_get_parse_end(tok) < req->body_len) {
		/* Trailing bytes after the value: only white space is allowed. */
		for (size_t i = json_tokener_get_parse_end(tok); i < req->body_len; i++) {
			char c = req->body[i];
			if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
				jerr = json_tokener_error_parse_unexpected;
		}
	}
	json_tokener_free(tok);
	if (jerr == json_tokener_success && req->json == NULL) {	/* the body was null */
		resp_error(resp, 400, NULL, "the body must be a JSON object");
		return -1;
	}
	if (jerr != json_tokener_success || req->json == NULL) {
		if (req->json != NULL)
			json_object_put(req->json);
		req->json = NULL;
		resp_invalid_json(resp, jerr == json_tokener_continue ?
		    "the JSON body ends too early" : "the body is not valid JSON");
		return -1;
	}
	if (!json_object_is_type(req->json, json_type_object)) {
		resp_error(resp, 400, NULL, "the body must be a JSON object");
		return -1;
	}
	if ((f = nul_member(req->json)) != NULL) {
		resp_error(resp, 422, f, "%.64s must not contain a NUL character (\\u0000)", f);
		return -1;
	}
	return 0;
}

static int
authorize(struct kr_req *req, struct kr_resp *resp, const struct route *r)
{
	if (r->auth == AUTH_PUBLIC)
		return 0;
	if (auth_principal(req, resp) != 0)
		return -1;
	if (r->auth != AUTH_ANY && r->auth != AUTH_WORKSPACE &&
	    req->p.kind != KR_PRINCIPAL_SESSION) {
		resp_error(resp, 403, NULL, "API tokens work only under their workspace's paths");
		return -1;
	}
	if (auth_csrf(req, resp) != 0)
		return -1;
	if (r->auth == AUTH_INSTANCE_ADMIN && !req->p.user.is_instance_admin) {
		resp_error(resp, 403, NULL, "only instance admins may do this");
		return -1;
	}
	if (r->auth == AUTH_WORKSPACE)
		return auth_workspace(req, resp, req->params[0], r->min_role);
	return 0;
}

static double
elapsed(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

void
kr_dispatch(struct kr_req *req, struct kr_resp *resp)
{
	const struct route *r = NULL;
	struct timespec t0;
	int writes;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	req->route = "unmatched";
	if (split_uri(req) != 0) {
		resp_error(resp, 404, NULL, "no such resource");
		goto out;
	}
	if ((r = find_route(req, resp)) == NULL)
		goto out;
	writes = strcmp(req->method, "GET") != 0 && strcmp(req->method, "DELETE") != 0;
	if (authorize(req, resp, r) != 0)
		goto out;
	if ((writes || req->body_len > 0) && parse_body(req, resp) != 0)
		goto out;
	r->handler(req, resp);
	if (resp->status == 0)
		resp_error(resp, 500, NULL, "internal error");
out:
	/* A stream's lifetime is no request latency: count it, keep it out of the histogram. */
	kr_metrics_observe(r != NULL ? r->method : "other", req->route, resp->status,
	    req->stream != NULL && req->stream->begun ? -1.0 : elapsed(&t0));
	if (resp->status >= 500)
		kr_warn("%s %s -> %d", r != NULL ? r->method : "-", req->route, resp->status);
}
