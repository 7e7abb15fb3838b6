/* POST /api/auth/login, POST /api/auth/logout, GET /api/auth/me. */
#include <arpa/inet.h>
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
#define SLOW_AFTER		3	/* failures of an e-mail before answers are slowed down */
/* "e:" and an e-mail as sent: KR_EMAIL_MAX characters of valid UTF-8 (the JSON parser checks). */
#define EKEY_MAX		(2 + KR_EMAIL_MAX * 4 + 1)

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

/*
 * Count this attempt for the e-mail and the address before any password is hashed
 * (kr_login_reserve). 0 with *efail the e-mail's failures, this attempt included; 1 once
 * answered: 429 when either has used up its failures in the window, or the database error.
 */
static int
reserve(struct kr_req *req, struct kr_resp *resp, const char *ekey, const char *akey,
    unsigned *efail)
{
	const struct kr_config *c = req->cfg;
	struct kr_login_try t = { ekey, akey, c->auth_login_max_failures,
	    c->auth_login_max_failures_per_address, c->auth_login_window_seconds, 0, 0 };
	enum kr_db_err rc;
	char retry[16];

	if ((rc = kr_login_reserve(req->db, &t)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return 1;
	}
	*efail = t.efailures;
	if (t.reserved)
		return 0;
	snprintf(retry, sizeof(retry), "%u", c->auth_login_window_seconds);
	resp_header(resp, "Retry-After", retry);
	resp_error(resp, 429, NULL, "too many failed sign-ins, try again later");
	return 1;
}

/* The answer to a wrong password, an unknown e-mail or a text that is no e-mail at all. */
static void
login_failed(struct kr_req *req, struct kr_resp *resp, const struct kr_user *u,
    unsigned efail)
{
	struct kr_actor a = { KR_ACTOR_USER, NULL, NULL, req->remote_addr };

	if (u != NULL) {
		a.id = u->id;
		a.label = u->email;
		(void)kr_audit_user_workspaces(req->db, u->id, &a, "auth.login_failed", NULL);
	}
	if (efail >= SLOW_AFTER) {
		/* Slow down guessing before the hard limit answers 429. */
		struct timespec d = { 0, 250000000L };
		nanosleep(&d, NULL);
	}
	resp_error(resp, 401, NULL, LOGIN_FAILED_MSG);
}

/*
 * The attempt was counted (reserve) before the hash, whatever the e-mail: one that is not an
 * e-mail is counted under the text sent and costs a hash as well, so that it is answered and
 * throttled like a wrong password. A database error after reserve leaves the attempt counted.
 */
/*
 * The throttling key of a client address: "a:" and the address, except that an IPv6
 * client is counted by its /64, which one host usually holds whole (so a new address per
 * guess would otherwise never meet the limit). IPv4 inside IPv6 counts as IPv4.
 */
static void
address_key(const char *addr, char *out, size_t outlen)
{
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];

	if (addr == NULL || inet_pton(AF_INET6, addr, &a6) != 1 || IN6_IS_ADDR_V4MAPPED(&a6)) {
		snprintf(out, outlen, "a:%s", addr != NULL ? addr : "");
		return;
	}
	memset(a6.s6_addr + 8, 0, 8);
	if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) == NULL)
		snprintf(text, sizeof(text), "?");
	snprintf(out, outlen, "a:%s/64", text);
}

void
h_auth_login(struct kr_req *req, struct kr_resp *resp)
{
	char email[KR_EMAIL_MAX + 1], ekey[EKEY_MAX], akey[64], cookie[KR_COOKIE_MAX];
	const char *raw_email = NULL, *pw = NULL;
	struct kr_actor a;
	struct kr_user u;
	enum kr_db_err rc;
	unsigned failures = 0;
	int found = 0, ok = 0, is_email;
	size_t n;

	if (req_str(req, resp, "email", 1, 1, KR_EMAIL_MAX, &raw_email) != 0 ||
	    req_str(req, resp, "password", 1, 1, KR_PASSWORD_MAX, &pw) != 0)
		return;
	is_email = kr_email_normalize(raw_email, email) == 0;
	n = (size_t)snprintf(ekey, sizeof(ekey), "e:%s", is_email ? email : raw_email);
	address_key(req->remote_addr, akey, sizeof(akey));
	if (n >= sizeof(ekey)) {
		resp_error(resp, 500, NULL, "internal error");	/* req_str bounds it */
		return;
	}
	if (reserve(req, resp, ekey, akey, &failures))
		return;
	if (is_email && (rc = kr_user_by_email(req->db, email, &u, &found)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (found)
		ok = kr_password_verify(pw, strlen(pw), u.password_hash) == KR_CRYPTO_OK;
	else
		kr_password_dummy(pw, strlen(pw));
	if (!ok) {
		login_failed(req, resp, found ? &u : NULL, failures);
		return;
	}
	if ((rc = kr_login_clear(req->db, ekey)) != KR_DB_OK ||
	    (rc = kr_login_release(req->db, akey)) != KR_DB_OK ||
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
