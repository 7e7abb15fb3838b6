/* POST /api/auth/login, POST /api/auth/logout, GET /api/auth/me. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_crypto.h"
#include "kr_json.h"
#include "kr_log.h"
#include "views.h"

#define LOGIN_FAILED_MSG	"wrong e-mail or password"
#define SLOW_AFTER		3	/* failures before answers are slowed down */

/* The answer of login and me: the user, their workspaces and the session's CSRF token. */
static void
answer_me(struct kr_req *req, struct kr_resp *resp, const struct kr_user *u,
    const char *cookie)
{
	char csrf[KR_CSRF_MAX];
	struct kr_db_res res;
	enum kr_db_err rc;
	json_object *o;

	if ((rc = kr_ws_list_for_user(req->db, u->id, &res)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	o = view_list("workspaces", &res, view_workspace_row);
	kr_db_res_free(&res);
	json_object_object_add(o, "user", view_user(u));
	kr_session_csrf(cookie, csrf);
	kr_json_add_str(o, "csrfToken", csrf);
	kr_wipe(csrf, sizeof(csrf));
	resp_json(resp, 200, o);
}

static void
set_cookie(struct kr_req *req, struct kr_resp *resp, const char *value, long max_age)
{
	char c[KR_COOKIE_MAX + 128];

	snprintf(c, sizeof(c), "kr_session=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%ld%s",
	    value, max_age, req->https ? "; Secure" : "");
	resp_header(resp, "Set-Cookie", c);
	kr_wipe(c, sizeof(c));
}

/* 429 when the e-mail or the address has failed too often in the window. */
static int
throttled(struct kr_req *req, struct kr_resp *resp, const char *ekey, const char *akey,
    unsigned *efail)
{
	const struct kr_config *c = req->cfg;
	unsigned afail = 0;
	enum kr_db_err rc;
	char retry[16];

	if ((rc = kr_login_failures(req->db, ekey, c->auth_login_window_seconds, efail)) !=
	    KR_DB_OK || (rc = kr_login_failures(req->db, akey, c->auth_login_window_seconds,
	    &afail)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return 1;
	}
	if (*efail < c->auth_login_max_failures &&
	    afail < c->auth_login_max_failures_per_address)
		return 0;
	snprintf(retry, sizeof(retry), "%u", c->auth_login_window_seconds);
	resp_header(resp, "Retry-After", retry);
	resp_error(resp, 429, NULL, "too many failed sign-ins, try again later");
	return 1;
}

static void
login_failed(struct kr_req *req, struct kr_resp *resp, const char *ekey, const char *akey,
    const struct kr_user *u, unsigned failures)
{
	struct kr_actor a = { KR_ACTOR_USER, NULL, NULL, req->remote_addr };
	unsigned window = req->cfg->auth_login_window_seconds;
	enum kr_db_err rc;

	if ((rc = kr_login_failed(req->db, ekey, window)) != KR_DB_OK ||
	    (rc = kr_login_failed(req->db, akey, window)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (u != NULL) {
		a.id = u->id;
		a.label = u->email;
		(void)kr_audit_user_workspaces(req->db, u->id, &a, "auth.login_failed", NULL);
	}
	if (failures + 1 >= SLOW_AFTER) {
		/* Slow down guessing before the hard limit answers 429. */
		struct timespec d = { 0, 250000000L };
		nanosleep(&d, NULL);
	}
	resp_error(resp, 401, NULL, LOGIN_FAILED_MSG);
}

void
h_auth_login(struct kr_req *req, struct kr_resp *resp)
{
	char email[KR_EMAIL_MAX + 1], ekey[KR_EMAIL_MAX + 3], akey[64], cookie[KR_COOKIE_MAX];
	const char *raw_email = NULL, *pw = NULL;
	struct kr_actor a;
	struct kr_user u;
	enum kr_db_err rc;
	unsigned failures = 0;
	int found = 0, ok;

	if (req_str(req, resp, "email", 1, 1, KR_EMAIL_MAX, &raw_email) != 0 ||
	    req_str(req, resp, "password", 1, 1, KR_PASSWORD_MAX, &pw) != 0)
		return;
	if (kr_email_normalize(raw_email, email) != 0) {
		kr_password_dummy(pw, strlen(pw));
		resp_error(resp, 401, NULL, LOGIN_FAILED_MSG);
		return;
	}
	snprintf(ekey, sizeof(ekey), "e:%s", email);
	snprintf(akey, sizeof(akey), "a:%s", req->remote_addr ? req->remote_addr : "");
	if (throttled(req, resp, ekey, akey, &failures))
		return;
	if ((rc = kr_user_by_email(req->db, email, &u, &found)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (found)
		ok = kr_password_verify(pw, strlen(pw), u.password_hash) == KR_CRYPTO_OK;
	else {
		kr_password_dummy(pw, strlen(pw));
		ok = 0;
	}
	if (!ok) {
		login_failed(req, resp, ekey, akey, found ? &u : NULL, failures);
		return;
	}
	if ((rc = kr_login_clear(req->db, ekey)) != KR_DB_OK ||
	    (rc = kr_session_create(req->db, u.id, req->remote_addr,
	    req->cfg->auth_session_hours, cookie)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	a = (struct kr_actor){ KR_ACTOR_USER, u.id, u.email, req->remote_addr };
	(void)kr_audit_user_workspaces(req->db, u.id, &a, "auth.login", NULL);
	set_cookie(req, resp, cookie, (long)req->cfg->auth_session_hours * 3600);
	answer_me(req, resp, &u, cookie);
	kr_wipe(cookie, sizeof(cookie));
}

void
h_auth_logout(struct kr_req *req, struct kr_resp *resp)
{
	enum kr_db_err rc;

	if ((rc = kr_session_delete(req->db, req->p.cookie)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	set_cookie(req, resp, "", 0);
	resp_no_content(resp);
}

void
h_auth_me(struct kr_req *req, struct kr_resp *resp)
{
	answer_me(req, resp, &req->p.user, req->p.cookie);
}
