#include "views.h"

#include "kr_json.h"

json_object *
view_user(const struct kr_user *u)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "id", u->id);
	kr_json_add_str(o, "email", u->email);
	kr_json_add_str(o, "name", u->name);
	kr_json_add_bool(o, "isInstanceAdmin", u->is_instance_admin);
	kr_json_add_time(o, "createdAt", u->created_at);
	return o;
}

json_object *
view_user_row(const struct kr_db_res *res, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "id", kr_db_cell(res, row, 0));
	kr_json_add_str(o, "email", kr_db_cell(res, row, 1));
	kr_json_add_str(o, "name", kr_db_cell(res, row, 2));
	kr_json_add_bool(o, "isInstanceAdmin", kr_db_cell_int(res, row, 3, 0) != 0);
	kr_json_add_time(o, "createdAt", kr_db_cell(res, row, 4));
	return o;
}

json_object *
view_workspace_row(const struct kr_db_res *res, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "slug", kr_db_cell(res, row, 0));
	kr_json_add_str(o, "name", kr_db_cell(res, row, 1));
	kr_json_add_str(o, "role", kr_db_cell(res, row, 2));
	kr_json_add_time(o, "createdAt", kr_db_cell(res, row, 3));
	return o;
}

json_object *
view_member_row(const struct kr_db_res *res, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "userId", kr_db_cell(res, row, 0));
	kr_json_add_str(o, "email", kr_db_cell(res, row, 1));
	kr_json_add_str(o, "name", kr_db_cell(res, row, 2));
	kr_json_add_str(o, "role", kr_db_cell(res, row, 3));
	kr_json_add_time(o, "createdAt", kr_db_cell(res, row, 4));
	return o;
}

json_object *
view_token_row(const struct kr_db_res *res, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "id", kr_db_cell(res, row, 0));
	kr_json_add_str(o, "name", kr_db_cell(res, row, 1));
	kr_json_add_str(o, "role", kr_db_cell(res, row, 2));
	kr_json_add_str(o, "prefix", kr_db_cell(res, row, 3));
	kr_json_add_time(o, "createdAt", kr_db_cell(res, row, 4));
	kr_json_add_time(o, "lastUsedAt", kr_db_cell(res, row, 5));
	return o;
}

json_object *
view_list(const char *name, const struct kr_db_res *res,
    json_object *(*view)(const struct kr_db_res *, unsigned))
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	for (unsigned i = 0; i < res->nrows; i++)
		json_object_array_add(a, view(res, i));
	json_object_object_add(o, name, a);
	return o;
}
