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
/* The value of the kr_session cookie, copied into out; 0 when present. */
int	auth_cookie(const char *header, char *out, size_t outlen);

#endif
