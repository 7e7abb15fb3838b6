/*
 * auth: who is calling. Reads the bearer token or the session cookie, checks CSRF for
 * cookie-authenticated writes, and resolves a workspace route's {ws} and the caller's role.
 * Each returns 0, or -1 after answering (401, 403, 404 or 503).
 */
#ifndef KR_AUTH_H
#define KR_AUTH_H

#include "http.h"

int	auth_principal(struct kr_req *req, struct kr_resp *resp);
int	auth_csrf(struct kr_req *req, struct kr_resp *resp);
/* A workspace the caller may see (404 otherwise, like a missing one), with min_role (403). */
int	auth_workspace(struct kr_req *req, struct kr_resp *resp, const char *slug,
	    enum kr_role min_role);
/*
 * Check again, for a long-lived request (an event stream), that its caller may still do what
 * the router let it do: the same lookups as auth_principal and auth_workspace on the
 * request's own credentials, answering nobody. AUTH_VALID: the session or token is still
 * valid and still has min_role in the same workspace (same id, not just the same slug);
 * AUTH_REVOKED: not; AUTH_UNKNOWN: the database could not tell, try again later. req->p is
 * left as it was unless the answer is AUTH_VALID.
 */
enum auth_check { AUTH_VALID = 0, AUTH_REVOKED, AUTH_UNKNOWN };
enum auth_check	auth_recheck(struct kr_req *req, enum kr_role min_role);
/* The value of the kr_session cookie, copied into out; 0 when present. */
int	auth_cookie(const char *header, char *out, size_t outlen);

#endif
