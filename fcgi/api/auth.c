#include "auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kr_crypto.h"

#define COOKIE_NAME	"kr_session"

int
auth_cookie(const char *header, char *out, size_t outlen)
{
	const char *p = header;
	size_t nlen = strlen(COOKIE_NAME);

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ';');
		size_t len;
		while (*p == ' ')
			p++;
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (len > nlen && strncmp(p, COOKIE_NAME, nlen) == 0 && p[nlen] == '=') {
			size_t vlen = len - nlen - 1;
			if (vlen == 0 || vlen >= outlen)
				return -1;
			memcpy(out, p + nlen + 1, vlen);
			out[vlen] = '\0';
			return 0;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return -1;
}

static int
auth_bearer(struct kr_req *req, struct kr_resp *resp, const char *secret)
{
	enum kr_db_err rc;
	int found = 0;

	if (strncmp(secret, "krt_", 4) == 0 && strlen(secret) < KR_SECRET_MAX) {
		if ((rc = kr_token_lookup(req->db, secret, &req->p.token, &found)) != KR_DB_OK) {
			resp_db_error(resp, rc);
			return -1;
		}
	}
	if (!found) {
		resp_header(resp, "WWW-Authenticate", "Bearer");
		resp_error(resp, 401, NULL, "invalid or revoked API token");
		return -1;
	}
	req->p.kind = KR_PRINCIPAL_TOKEN;
	return 0;
}

static int
auth_session(struct kr_req *req, struct kr_resp *resp)
{
	enum kr_db_err rc;
	int found = 0;

	if (auth_cookie(req->cookie, req->p.cookie, sizeof(req->p.cookie)) != 0) {
		resp_error(resp, 401, NULL, "sign in first");
		return -1;
	}
	if ((rc = kr_session_lookup(req->db, req->p.cookie, &req->p.user, &found)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return -1;
	}
	if (!found) {
		resp_error(resp, 401, NULL, "your session has ended, sign in again");
		return -1;
	}
	req->p.kind = KR_PRINCIPAL_SESSION;
	return 0;
}

int
auth_principal(struct kr_req *req, struct kr_resp *resp)
{
	const char *a = req->authorization;

	if (a != NULL && *a != '\0') {
		if (strncasecmp(a, "Bearer ", 7) != 0) {
			resp_header(resp, "WWW-Authenticate", "Bearer");
			resp_error(resp, 401, NULL, "unsupported Authorization scheme");
			return -1;
		}
		return auth_bearer(req, resp, a + 7);
	}
	return auth_session(req, resp);
}

/*
 * An Origin header, when sent, must be this server's origin: the scheme of this request,
 * its host (nginx passes $host, without a port) and the port it came in on (RFC 6454).
 */
static int
origin_ok(const struct kr_req *req)
{
	const char *o = req->origin, *scheme = req->https ? "https://" : "http://", *h, *colon;
	const char *port = req->server_port != NULL ? req->server_port : "";
	const char *dflt = req->https ? "443" : "80";
	size_t slen = strlen(scheme), hlen;

	if (o == NULL || *o == '\0')
		return 1;
	if (req->host == NULL || strncasecmp(o, scheme, slen) != 0)
		return 0;
	h = o + slen;
	colon = strchr(h, ':');
	hlen = colon != NULL ? (size_t)(colon - h) : strlen(h);
	if (hlen != strlen(req->host) || strncasecmp(h, req->host, hlen) != 0)
		return 0;
	if (colon == NULL)
		return strcmp(port, dflt) == 0;
	return strcmp(colon + 1, port) == 0;
}

int
auth_csrf(struct kr_req *req, struct kr_resp *resp)
{
	char want[KR_CSRF_MAX];
	const char *m = req->method;
	int ok;

	if (req->p.kind != KR_PRINCIPAL_SESSION || strcmp(m, "GET") == 0 ||
	    strcmp(m, "HEAD") == 0)
		return 0;
	if (req->sec_fetch_site != NULL && strcmp(req->sec_fetch_site, "same-origin") != 0 &&
	    strcmp(req->sec_fetch_site, "none") != 0) {
		resp_error(resp, 403, NULL, "cross-site request refused");
		return -1;
	}
	if (!origin_ok(req)) {
		resp_error(resp, 403, NULL, "request from another origin refused");
		return -1;
	}
	kr_session_csrf(req->p.cookie, want);
	ok = req->csrf != NULL && want[0] != '\0' && strlen(req->csrf) == strlen(want) &&
	    kr_ct_equal(req->csrf, want, strlen(want));
	kr_wipe(want, sizeof(want));
	if (!ok) {
		resp_error(resp, 403, NULL, "missing or wrong X-CSRF-Token header");
		return -1;
	}
	return 0;
}

/* A token carries its workspace (kr_token_lookup joined it): no query needed. */
static void
token_workspace(struct kr_req *req, const char *slug)
{
	const struct kr_token *t = &req->p.token;

	if (strcmp(t->ws_slug, slug) != 0)
		return;
	snprintf(req->p.ws.id, sizeof(req->p.ws.id), "%s", t->workspace_id);
	snprintf(req->p.ws.slug, sizeof(req->p.ws.slug), "%s", t->ws_slug);
	snprintf(req->p.ws.name, sizeof(req->p.ws.name), "%s", t->ws_name);
	snprintf(req->p.ws.created_at, sizeof(req->p.ws.created_at), "%s", t->ws_created_at);
	req->p.role = t->role;
}

int
auth_workspace(struct kr_req *req, struct kr_resp *resp, const char *slug,
    enum kr_role min_role)
{
	enum kr_db_err rc;
	int found = 0;

	req->p.role = KR_ROLE_NONE;
	if (req->p.kind == KR_PRINCIPAL_TOKEN)
		token_workspace(req, slug);
	else if (req->p.kind == KR_PRINCIPAL_SESSION && kr_slug_valid(slug) &&
	    (rc = kr_ws_with_role(req->db, slug, req->p.user.id, &req->p.ws, &req->p.role,
	    &found)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return -1;
	}
	if (req->p.role == KR_ROLE_NONE) {
		resp_error(resp, 404, NULL, "no such workspace");
		return -1;
	}
	if (req->p.role < min_role) {
		resp_error(resp, 403, NULL, "your role (%s) does not allow this",
		    kr_role_name(req->p.role));
		return -1;
	}
	return 0;
}

enum auth_check
auth_recheck(struct kr_req *req, enum kr_role min_role)
{
	struct kr_principal before = req->p;
	struct kr_resp scratch;
	enum auth_check rc;

	kr_resp_init(&scratch);
	if (auth_principal(req, &scratch) == 0 &&
	    auth_workspace(req, &scratch, req->params[0], min_role) == 0)
		rc = strcmp(before.ws.id, req->p.ws.id) == 0 ? AUTH_VALID : AUTH_REVOKED;
	else
		rc = scratch.status >= 500 ? AUTH_UNKNOWN : AUTH_REVOKED;
	if (rc != AUTH_VALID)
		req->p = before;
	kr_resp_release(&scratch);
	kr_wipe(&before, sizeof(before));
	return rc;
}
