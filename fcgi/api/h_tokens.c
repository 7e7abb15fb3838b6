/* /api/workspaces/{ws}/tokens: list (viewer), create and revoke (admin). */
#include <string.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_crypto.h"
#include "kr_json.h"
#include "views.h"

void
h_tokens_list(struct kr_req *req, struct kr_resp *resp)
{
	static const struct kr_list tokens = { "tokens", "a token", view_token_row };
	struct kr_page pg;
	struct kr_db_res res;
	enum kr_db_err rc;
	int found = 0;

	if (req_page(req, resp, &pg) != 0)
		return;
	rc = kr_token_list(req->db, req->p.ws.id, pg.before, pg.limit + 1, &res, &found);
	resp_page(resp, &tokens, &pg, rc, &res, found);
}

void
h_tokens_create(struct kr_req *req, struct kr_resp *resp)
{
	const char *name = NULL, *creator = NULL;
	struct kr_actor a = req_actor(req);
	enum kr_role role = KR_ROLE_NONE;
	char secret[KR_SECRET_MAX];
	struct kr_db_res res;
	struct kr_token t;
	enum kr_db_err rc;
	json_object *o, *d;

	if (req_str(req, resp, "name", 1, 1, KR_NAME_MAX, &name) != 0 ||
	    req_role(req, resp, "role", 1, &role) != 0)
		return;
	if (req->p.kind == KR_PRINCIPAL_SESSION)
		creator = req->p.user.id;
	rc = kr_token_create(req->db, req->p.ws.id, name, role, creator, &t, secret);
	if (rc == KR_DB_OK)
		rc = kr_token_get(req->db, req->p.ws.id, t.id, &res);
	if (rc != KR_DB_OK) {
		kr_wipe(secret, sizeof(secret));
		resp_db_error(resp, rc);
		return;
	}
	o = view_token_row(&res, 0);
	kr_db_res_free(&res);
	kr_json_add_str(o, "secret", secret);	/* the only time it is shown */
	kr_wipe(secret, sizeof(secret));
	d = json_object_new_object();
	kr_json_add_str(d, "name", t.name);
	kr_json_add_str(d, "role", kr_role_name(role));
	(void)kr_audit(req->db, req->p.ws.id, &a, "token.created", t.id, d);
	json_object_put(d);
	resp_json(resp, 201, o);
}

void
h_tokens_delete(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1];
	struct kr_actor a = req_actor(req);
	enum kr_db_err rc;
	int deleted = 0;

	if (kr_uuid_valid(id) &&
	    (rc = kr_token_delete(req->db, req->p.ws.id, id, &deleted)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (!deleted) {
		resp_error(resp, 404, NULL, "no such token");
		return;
	}
	(void)kr_audit(req->db, req->p.ws.id, &a, "token.revoked", id, NULL);
	resp_no_content(resp);
}
