/* GET /api/workspaces, POST /api/workspaces, DELETE /api/workspaces/{ws}. */
#include <string.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_json.h"
#include "views.h"

/*
 * A session: the user's workspaces, newest first, paged (api.md "Conventions"). A token
 * (issue 2 lists workspaces with one): its own workspace, known already.
 */
void
h_workspaces_list(struct kr_req *req, struct kr_resp *resp)
{
	static const struct kr_list workspaces = { "workspaces", "the slug of one of your "
	    "workspaces", view_workspace_row };
	struct kr_page pg;
	struct kr_db_res res;
	enum kr_db_err rc;
	int found = 0;

	pg.before = NULL;
	if (req_limit(req, resp, &pg.limit) != 0)
		return;
	if (req->p.kind == KR_PRINCIPAL_TOKEN) {
		const struct kr_token *t = &req->p.token;
		json_object *o = json_object_new_object(), *a = json_object_new_array();
		json_object *w = json_object_new_object();
		kr_json_add_str(w, "slug", t->ws_slug);
		kr_json_add_str(w, "name", t->ws_name);
		kr_json_add_str(w, "role", kr_role_name(t->role));
		kr_json_add_time(w, "createdAt", t->ws_created_at);
		json_object_array_add(a, w);
		json_object_object_add(o, "workspaces", a);
		kr_json_add_str(o, "nextCursor", NULL);
		resp_json(resp, 200, o);
		return;
	}
	/* Not req_page: its cursors are ids, this list's are slugs. */
	if (req_query_has(req, "before")) {
		const char *b = req_query(req, "before", pg.buf, sizeof(pg.buf));
		if (b == NULL || (*b != '\0' && !kr_slug_valid(b))) {
			resp_error(resp, 422, "before", "before must be %s (a nextCursor)",
			    workspaces.item);
			return;
		}
		pg.before = *b != '\0' ? b : NULL;	/* empty, as elsewhere: the first page */
	}
	rc = kr_ws_page_for_user(req->db, req->p.user.id, pg.before, pg.limit + 1, &res, &found);
	resp_page(resp, &workspaces, &pg, rc, &res, found);
}

void
h_workspaces_create(struct kr_req *req, struct kr_resp *resp)
{
	const char *slug = NULL, *name = NULL;
	struct kr_actor a = req_actor(req);
	struct kr_workspace ws;
	enum kr_db_err rc;
	json_object *o;

	if (req_str(req, resp, "slug", 1, 1, KR_SLUG_MAX, &slug) != 0 ||
	    req_str(req, resp, "name", 1, 1, KR_NAME_MAX, &name) != 0)
		return;
	if (!kr_slug_valid(slug)) {
		resp_error(resp, 422, "slug", "slug must be lower-case letters, digits and '-', "
		    "starting with a letter or digit");
		return;
	}
	rc = kr_ws_create(req->db, slug, name, req->p.user.id, &ws);
	if (rc == KR_DB_DUPLICATE) {
		resp_error(resp, 409, "slug", "a workspace with this slug exists already");
		return;
	}
	if (rc != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	(void)kr_audit(req->db, ws.id, &a, "workspace.created", ws.slug, NULL);
	o = json_object_new_object();
	kr_json_add_str(o, "slug", ws.slug);
	kr_json_add_str(o, "name", ws.name);
	kr_json_add_str(o, "role", "admin");
	kr_json_add_time(o, "createdAt", ws.created_at);
	resp_json(resp, 201, o);
}

void
h_workspaces_delete(struct kr_req *req, struct kr_resp *resp)
{
	struct kr_actor a = req_actor(req);
	struct kr_workspace ws;
	enum kr_db_err rc;
	int found = 0, deleted = 0;
	json_object *d;

	if (kr_slug_valid(req->params[0]) &&
	    (rc = kr_ws_by_slug(req->db, req->params[0], &ws, &found)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (found && (rc = kr_ws_delete(req->db, ws.id, &deleted)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (!deleted) {
		resp_error(resp, 404, NULL, "no such workspace");
		return;
	}
	d = json_object_new_object();
	kr_json_add_str(d, "slug", ws.slug);
	(void)kr_audit(req->db, NULL, &a, "workspace.deleted", ws.id, d);
	json_object_put(d);
	resp_no_content(resp);
}
