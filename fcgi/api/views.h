/*
 * views: the JSON shape of each resource, in one place, so every endpoint that answers a
 * user, workspace, member or token answers it the same way.
 */
#ifndef KR_VIEWS_H
#define KR_VIEWS_H

#include <json-c/json.h>

#include "kr_accounts.h"
#include "kr_db.h"

json_object	*view_user(const struct kr_user *u);
/* A row of kr_user_list: id, email, name, is_instance_admin, created_at. */
json_object	*view_user_row(const struct kr_db_res *res, unsigned row);
/* A row of kr_ws_list_for_user: slug, name, role, created_at. */
json_object	*view_workspace_row(const struct kr_db_res *res, unsigned row);
/* A row of kr_member_list: user_id, email, name, role, created_at. */
json_object	*view_member_row(const struct kr_db_res *res, unsigned row);
/* A row of kr_token_list: id, name, role, prefix, created_at, last_used_at. */
json_object	*view_token_row(const struct kr_db_res *res, unsigned row);
/* {"<name>": [view(row) for each row]} */
json_object	*view_list(const char *name, const struct kr_db_res *res,
		    json_object *(*view)(const struct kr_db_res *, unsigned));

#endif
