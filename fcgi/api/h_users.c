/*
 * GET /api/users, POST /api/users, DELETE /api/users/{id}: instance admins only. Deleting the
 * only admin of a workspace is refused, in the same transaction as the deletion.
 */
#include <string.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_crypto.h"
#include "kr_json.h"
#include "views.h"

void
h_users_list(struct kr_req *req, struct kr_resp *resp)
{
	static const struct kr_list users = { "users", "a user", view_user_row };
	struct kr_page pg;
	struct kr_db_res res;
	enum kr_db_err rc;
	int found = 0;

	if (req_page(req, resp, &pg) != 0)
		return;
	rc = kr_user_list(req->db, pg.before, pg.limit + 1, &res, &found);
	resp_page(resp, &users, &pg, rc, &res, found);
}

void
h_users_create(struct kr_req *req, struct kr_resp *resp)
{
	const char *raw_email = NULL, *name = NULL, *pw = NULL;
	char email[KR_EMAIL_MAX + 1], hash[KR_PASSWORD_HASH_MAX];
	struct kr_actor a = req_actor(req);
	int is_admin = 0;
	struct kr_user u;
	enum kr_db_err rc;
	json_object *d;
	size_t pwlen;

	if (req_str(req, resp, "email", 1, 1, KR_EMAIL_MAX, &raw_email) != 0 ||
	    req_str(req, resp, "name", 1, 1, KR_NAME_MAX, &name) != 0 ||
	    req_bytes(req, resp, "password", 1, KR_PASSWORD_MIN, KR_PASSWORD_MAX, &pw) != 0 ||
	    req_bool(req, resp, "isInstanceAdmin", 0, &is_admin) != 0)
		return;
	if (kr_email_normalize(raw_email, email) != 0) {
		resp_error(resp, 422, "email", "email must be an address like name@example.com");
		return;
	}
	pwlen = strlen(pw);
	if (kr_password_hash(pw, pwlen, hash, sizeof(hash)) != KR_CRYPTO_OK) {
		resp_error(resp, 500, NULL, "internal error");
		return;
	}
	rc = kr_user_create(req->db, email, name, hash, is_admin, &u);
	if (rc == KR_DB_DUPLICATE) {
		resp_error(resp, 409, "email", "a user with this e-mail exists already");
		return;
	}
	if (rc != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	d = json_object_new_object();
	kr_json_add_str(d, "email", u.email);
	kr_json_add_bool(d, "isInstanceAdmin", is_admin);
	(void)kr_audit(req->db, NULL, &a, "user.created", u.id, d);
	json_object_put(d);
	resp_json(resp, 201, view_user(&u));
}

/* DELETE /api/users/{id} as a kr_db_tx body's argument. */
struct delete_tx {
	const char	*id;
	unsigned	 sole;		/* refused: the user is the only admin of that many workspaces */
	int		 deleted;
};

/*
 * Count the workspaces the user is the only admin of and delete the user under the locks of
 * kr_member_lock_user: a concurrent demotion, removal or deletion of another admin of one of
 * those workspaces waits, and counts after this one committed.
 */
static enum kr_db_err
delete_in_tx(struct kr_db *db, void *arg)
{
	struct delete_tx *t = arg;
	enum kr_db_err rc;

	t->sole = 0;
	t->deleted = 0;
	if ((rc = kr_member_lock_user(db, t->id)) != KR_DB_OK ||
	    (rc = kr_member_sole_admin_of(db, t->id, &t->sole)) != KR_DB_OK)
		return rc;
	if (t->sole > 0)
		return KR_DB_ABORT;
	return kr_user_delete(db, t->id, &t->deleted);
}

void
h_users_delete(struct kr_req *req, struct kr_resp *resp)
{
	struct delete_tx t = { .id = req->params[0] };
	struct kr_actor a = req_actor(req);
	enum kr_db_err rc = KR_DB_OK;

	if (strcmp(t.id, req->p.user.id) == 0) {
		resp_error(resp, 409, NULL, "you cannot delete your own account");
		return;
	}
	if (kr_uuid_valid(t.id))
		rc = kr_db_tx(req->db, delete_in_tx, &t, 0);
	if (t.sole > 0) {
		resp_error(resp, 409, NULL, "this user is the only admin of %u workspace(s): "
		    "make someone else admin there first", t.sole);
		return;
	}
	if (rc != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (!t.deleted) {
		resp_error(resp, 404, NULL, "no such user");
		return;
	}
	(void)kr_audit(req->db, NULL, &a, "user.deleted", t.id, NULL);
	resp_no_content(resp);
}
