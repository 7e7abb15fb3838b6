/*
 * /api/workspaces/{ws}/members: list (viewer), add, change role, remove (admin). A workspace
 * keeps at least one admin: a role change or removal counts the admins and changes the member
 * in one transaction under the workspace's lock (kr_ws_lock).
 */
#include <string.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_json.h"
#include "views.h"

/* Answer the member row of user_id with status, or 404. */
static void
answer_member(struct kr_req *req, struct kr_resp *resp, const char *user_id, int status)
{
	struct kr_db_res res;
	enum kr_db_err rc;

	if ((rc = kr_member_get(req->db, req->p.ws.id, user_id, &res)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (res.nrows == 1)
		resp_json(resp, status, view_member_row(&res, 0));
	else
		resp_error(resp, 404, NULL, "no such member");
	kr_db_res_free(&res);
}

static void
audit_member(struct kr_req *req, const char *action, const char *user_id, enum kr_role role)
{
	struct kr_actor a = req_actor(req);
	json_object *d = json_object_new_object();

	if (role != KR_ROLE_NONE)
		kr_json_add_str(d, "role", kr_role_name(role));
	(void)kr_audit(req->db, req->p.ws.id, &a, action, user_id, d);
	json_object_put(d);
}

void
h_members_list(struct kr_req *req, struct kr_resp *resp)
{
	static const struct kr_list members = { "members", "the user id of a member", view_member_row };
	struct kr_page pg;
	struct kr_db_res res;
	enum kr_db_err rc;
	int found = 0;

	if (req_page(req, resp, &pg) != 0)
		return;
	rc = kr_member_list(req->db, req->p.ws.id, pg.before, pg.limit + 1, &res, &found);
	resp_page(resp, &members, &pg, rc, &res, found);
}

void
h_members_add(struct kr_req *req, struct kr_resp *resp)
{
	char email[KR_EMAIL_MAX + 1];
	const char *raw = NULL;
	enum kr_role role = KR_ROLE_NONE;
	enum kr_db_err rc;
	struct kr_user u;
	int found = 0;

	if (req_str(req, resp, "email", 1, 1, KR_EMAIL_MAX, &raw) != 0 ||
	    req_role(req, resp, "role", 1, &role) != 0)
		return;
	if (kr_email_normalize(raw, email) != 0) {
		resp_error(resp, 422, "email", "email must be an address like name@example.com");
		return;
	}
	if ((rc = kr_user_by_email(req->db, email, &u, &found)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (!found) {
		resp_error(resp, 422, "email", "no user has this e-mail; an instance admin "
		    "creates users first");
		return;
	}
	rc = kr_member_add(req->db, req->p.ws.id, u.id, role);
	if (rc == KR_DB_DUPLICATE) {
		resp_error(resp, 409, "email", "this user is a member already");
		return;
	}
	if (rc != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	audit_member(req, "member.added", u.id, role);
	answer_member(req, resp, u.id, 201);
}

/* A role change or a removal of one member as a kr_db_tx body's argument. */
struct change_tx {
	struct kr_req	*req;
	const char	*user_id;
	enum kr_role	 role;		/* the new role, unless remove */
	int		 remove;	/* remove the member */
	int		 last_admin;	/* refused: it would leave the workspace without an admin */
	int		 found;		/* the user was a member */
};

/*
 * Count the admins and change the member under the workspace's lock: two admins demoting or
 * removing each other at the same moment take turns, and the second one counts what the first
 * left (READ COMMITTED: each statement reads the latest commits).
 */
static enum kr_db_err
change_in_tx(struct kr_db *db, void *arg)
{
	struct change_tx *t = arg;
	const char *ws = t->req->p.ws.id;
	enum kr_role current;
	unsigned admins = 0;
	enum kr_db_err rc;

	t->last_admin = t->found = 0;
	if ((rc = kr_ws_lock(db, ws)) != KR_DB_OK ||
	    (rc = kr_member_role(db, ws, t->user_id, &current)) != KR_DB_OK ||
	    (rc = kr_member_admin_count(db, ws, &admins)) != KR_DB_OK)
		return rc;
	if (current == KR_ROLE_ADMIN && (t->remove || t->role != KR_ROLE_ADMIN) && admins <= 1) {
		t->last_admin = 1;
		return KR_DB_ABORT;
	}
	if (t->remove)
		return kr_member_delete(db, ws, t->user_id, &t->found);
	return kr_member_set_role(db, ws, t->user_id, t->role, &t->found);
}

/*
 * Run t as one transaction. 0 once it committed a change; else -1 after answering 409 (the
 * last admin), 404 (no such member) or the database error.
 */
static int
change_member(struct kr_req *req, struct kr_resp *resp, struct change_tx *t)
{
	enum kr_db_err rc = KR_DB_OK;

	if (kr_uuid_valid(t->user_id))
		rc = kr_db_tx(req->db, change_in_tx, t, 0);
	if (t->last_admin) {
		resp_error(resp, 409, NULL, "a workspace keeps at least one admin");
		return -1;
	}
	if (rc != KR_DB_OK) {
		resp_db_error(resp, rc);
		return -1;
	}
	if (!t->found) {
		resp_error(resp, 404, NULL, "no such member");
		return -1;
	}
	return 0;
}

void
h_members_update(struct kr_req *req, struct kr_resp *resp)
{
	struct change_tx t = { .req = req, .user_id = req->params[1], .role = KR_ROLE_NONE };

	if (req_role(req, resp, "role", 1, &t.role) != 0 || change_member(req, resp, &t) != 0)
		return;
	audit_member(req, "member.updated", t.user_id, t.role);
	answer_member(req, resp, t.user_id, 200);
}

void
h_members_delete(struct kr_req *req, struct kr_resp *resp)
{
	struct change_tx t = { .req = req, .user_id = req->params[1], .remove = 1 };

	if (change_member(req, resp, &t) != 0)
		return;
	audit_member(req, "member.removed", t.user_id, KR_ROLE_NONE);
	resp_no_content(resp);
}
