#include "kr_audit.h"

static const char *const actor_types[] = { "user", "token", "runner", "system" };

static const char sql_audit_insert[] =
    "INSERT INTO audit_log (workspace_id, actor_type, actor_id, actor_label, action, target, "
    "detail, ip) VALUES (?,?,?,?,?,?,?,?)";
static const char sql_audit_user_ws[] =
    "INSERT INTO audit_log (workspace_id, actor_type, actor_id, actor_label, action, target, "
    "detail, ip) SELECT workspace_id, ?, ?, ?, ?, ?, ?, ? FROM memberships WHERE user_id = ?";
static const char sql_audit_list[] =
    "SELECT uid, at, actor_type, actor_id, actor_label, action, target, detail, ip, id "
    "FROM audit_log WHERE workspace_id = ? AND id < ? ORDER BY id DESC LIMIT ?";

enum kr_db_err
kr_audit(struct kr_db *db, const char *workspace_id, const struct kr_actor *a,
    const char *action, const char *target, json_object *detail)
{
	const char *json = detail != NULL ?
	    json_object_to_json_string_ext(detail, JSON_C_TO_STRING_PLAIN) : NULL;
	struct kr_dbp p[8] = {
		KR_P_STR(workspace_id), KR_P_STR(actor_types[a->type]), KR_P_STR(a->id),
		KR_P_STR(a->label), KR_P_STR(action), KR_P_STR(target), KR_P_STR(json),
		KR_P_STR(a->ip),
	};

	return kr_db_exec(db, sql_audit_insert, p, 8, NULL, NULL);
}

enum kr_db_err
kr_audit_list(struct kr_db *db, const char *workspace_id, unsigned long long before_id,
    unsigned limit, struct kr_db_res *res)
{
	struct kr_dbp p[3] = {
		KR_P_STR(workspace_id),
		KR_P_INT(before_id == 0 ? (long long)(~0ULL >> 1) : (long long)before_id),
		KR_P_INT(limit),
	};

	return kr_db_exec(db, sql_audit_list, p, 3, res, NULL);
}

enum kr_db_err
kr_audit_user_workspaces(struct kr_db *db, const char *user_id, const struct kr_actor *a,
    const char *action, json_object *detail)
{
	const char *json = detail != NULL ?
	    json_object_to_json_string_ext(detail, JSON_C_TO_STRING_PLAIN) : NULL;
	struct kr_dbp p[8] = {
		KR_P_STR(actor_types[a->type]), KR_P_STR(a->id), KR_P_STR(a->label),
		KR_P_STR(action), KR_P_STR(user_id), KR_P_STR(json), KR_P_STR(a->ip),
		KR_P_STR(user_id),
	};

	return kr_db_exec(db, sql_audit_user_ws, p, 8, NULL, NULL);
}
