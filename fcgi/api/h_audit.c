/*
 * GET /api/workspaces/{ws}/audit[?limit=&before=]: the workspace's audit trail, newest
 * first. An entry's id is its UUID; the cursor is its row number, which orders the trail.
 */
#include <stdio.h>
#include <stdlib.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_json.h"

static json_object *
view_entry(const struct kr_db_res *res, unsigned row)
{
	json_object *o = json_object_new_object(), *actor = json_object_new_object(), *d;
	const char *detail = kr_db_cell(res, row, 7);

	kr_json_add_str(o, "id", kr_db_cell(res, row, 0));
	kr_json_add_time(o, "at", kr_db_cell(res, row, 1));
	kr_json_add_str(actor, "type", kr_db_cell(res, row, 2));
	kr_json_add_str(actor, "id", kr_db_cell(res, row, 3));
	kr_json_add_str(actor, "label", kr_db_cell(res, row, 4));
	json_object_object_add(o, "actor", actor);
	kr_json_add_str(o, "action", kr_db_cell(res, row, 5));
	kr_json_add_str(o, "target", kr_db_cell(res, row, 6));
	d = detail != NULL ? json_tokener_parse(detail) : NULL;
	json_object_object_add(o, "detail", d != NULL ? d : json_object_new_object());
	kr_json_add_str(o, "ip", kr_db_cell(res, row, 8));
	return o;
}

void
h_audit_list(struct kr_req *req, struct kr_resp *resp)
{
	unsigned long long before = 0;
	char buf[32], *end;
	const char *s;
	unsigned limit;
	struct kr_db_res res;
	enum kr_db_err rc;
	json_object *o, *a;

	if (req_limit(req, resp, &limit) != 0)
		return;
	if ((s = req_query(req, "before", buf, sizeof(buf))) != NULL) {
		before = strtoull(s, &end, 10);
		if (*s == '\0' || *s == '-' || *end != '\0' || before == 0) {
			resp_error(resp, 422, "before", "before must be a cursor from nextCursor");
			return;
		}
	}
	if ((rc = kr_audit_list(req->db, req->p.ws.id, before, limit + 1, &res)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	o = json_object_new_object();
	a = json_object_new_array();
	for (unsigned i = 0; i < res.nrows && i < limit; i++)
		json_object_array_add(a, view_entry(&res, i));
	json_object_object_add(o, "entries", a);
	kr_json_add_str(o, "nextCursor", res.nrows > limit ? kr_db_cell(&res, limit - 1, 9) : NULL);
	kr_db_res_free(&res);
	resp_json(resp, 200, o);
}
