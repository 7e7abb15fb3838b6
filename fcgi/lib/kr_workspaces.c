#include "kr_workspaces.h"

#include <stdio.h>
#include <string.h>

#define N(a)	((unsigned)(sizeof(a) / sizeof((a)[0])))


int
kr_slug_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > KR_SLUG_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && i > 0);
		if (!ok)
			return 0;
	}
	return 1;
}

static const char sql_ws_insert[] = "INSERT INTO workspaces (id, slug, name) VALUES (?,?,?)";
static const char sql_ws_by_slug[] =
    "SELECT id, slug, name, created_at FROM workspaces WHERE slug = ?";
static const char sql_ws_delete[] = "DELETE FROM workspaces WHERE id = ?";
static const char sql_ws_for_user[] =
    "SELECT w.slug, w.name, m.role, w.created_at FROM memberships m "
    "JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = ? ORDER BY w.name, w.slug";
/* GET /api/workspaces: newest first by (created_at, slug); the cursor is a slug. */
static const char sql_ws_page[] =
    "SELECT w.slug, w.name, m.role, w.created_at FROM memberships m "
    "JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = ? "
    "AND (? IS NULL OR w.created_at < ? OR (w.created_at = ? AND w.slug < ?)) "
    "ORDER BY w.created_at DESC, w.slug DESC LIMIT ?";
static const char sql_ws_page_cursor[] =
    "SELECT w.created_at FROM memberships m JOIN workspaces w ON w.id = m.workspace_id "
    "WHERE m.user_id = ? AND w.slug = ?";
static const char sql_ws_with_role[] =
    "SELECT w.id, w.slug, w.name, w.created_at, m.role FROM workspaces w "
    "LEFT JOIN memberships m ON m.workspace_id = w.id AND m.user_id = ? WHERE w.slug = ?";
static const char sql_member_insert[] =
    "INSERT INTO memberships (workspace_id, user_id, role) VALUES (?,?,?)";
static const char sql_member_role[] =
    "SELECT role FROM memberships WHERE workspace_id = ? AND user_id = ?";
static const char sql_member_list[] =
    "SELECT u.id, u.email, u.name, m.role, m.created_at FROM memberships m "
    "JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ? "
    "AND (? IS NULL OR m.created_at < ? OR (m.created_at = ? AND m.user_id < ?)) "
    "ORDER BY m.created_at DESC, m.user_id DESC LIMIT ?";
static const char sql_member_cursor[] =
    "SELECT created_at FROM memberships WHERE workspace_id = ? AND user_id = ?";
static const char sql_member_get[] =
    "SELECT u.id, u.email, u.name, m.role, m.created_at FROM memberships m "
    "JOIN users u ON u.id = m.user_id WHERE m.workspace_id = ? AND m.user_id = ?";
/* Existence is checked first: affected rows count changed rows, not matched ones. */
static const char sql_member_set_role[] =
    "UPDATE memberships SET role = ? WHERE workspace_id = ? AND user_id = ?";
static const char sql_member_exists[] =
    "SELECT 1 FROM memberships WHERE workspace_id = ? AND user_id = ?";
static const char sql_member_delete[] =
    "DELETE FROM memberships WHERE workspace_id = ? AND user_id = ?";
static const char sql_sole_admin[] =
    "SELECT COUNT(*) FROM memberships m WHERE m.user_id = ? AND m.role = 'admin' "
    "AND NOT EXISTS (SELECT 1 FROM memberships o WHERE o.workspace_id = m.workspace_id "
    "AND o.role = 'admin' AND o.user_id <> m.user_id)";
static const char sql_member_admins[] =
    "SELECT COUNT(*) FROM memberships WHERE workspace_id = ? AND role = 'admin'";
static const char sql_ws_lock[] = "SELECT id FROM workspaces WHERE id = ? FOR UPDATE";
static const char sql_user_lock[] = "SELECT id FROM users WHERE id = ? FOR UPDATE";
static const char sql_user_workspaces[] =
    "SELECT workspace_id FROM memberships WHERE user_id = ? ORDER BY workspace_id";

/* Columns id, slug, name, created_at of the first row. */
static void
ws_from_row(struct kr_workspace *ws, const struct kr_db_res *res)
{
	snprintf(ws->id, sizeof(ws->id), "%s", kr_db_cell(res, 0, 0));
	snprintf(ws->slug, sizeof(ws->slug), "%s", kr_db_cell(res, 0, 1));
	snprintf(ws->name, sizeof(ws->name), "%s", kr_db_cell(res, 0, 2));
	snprintf(ws->created_at, sizeof(ws->created_at), "%s", kr_db_cell(res, 0, 3));
}

enum kr_db_err
kr_ws_create(struct kr_db *db, const char *slug, const char *name, const char *owner_id,
    struct kr_workspace *out)
{
	struct kr_dbp p[3];
	enum kr_db_err rc;
	int found;

	memset(out, 0, sizeof(*out));
	kr_uuid_new(out->id);
	if ((rc = kr_db_begin(db)) != KR_DB_OK)
		return rc;
	p[0] = KR_P_STR(out->id);
	p[1] = KR_P_STR(slug);
	p[2] = KR_P_STR(name);
	rc = kr_db_exec(db, sql_ws_insert, p, 3, NULL, NULL);
	if (rc == KR_DB_OK && owner_id != NULL)
		rc = kr_member_add(db, out->id, owner_id, KR_ROLE_ADMIN);
	if (rc == KR_DB_OK)
		rc = kr_db_commit(db);
	if (rc != KR_DB_OK) {
		kr_db_rollback(db);
		return rc;
	}
	return kr_ws_by_slug(db, slug, out, &found);
}

enum kr_db_err
kr_ws_by_slug(struct kr_db *db, const char *slug, struct kr_workspace *ws, int *found)
{
	struct kr_dbp p[1] = { KR_P_STR(slug) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*found = 0;
	if ((rc = kr_db_exec(db, sql_ws_by_slug, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1) {
		ws_from_row(ws, &res);
		*found = 1;
	}
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_ws_delete(struct kr_db *db, const char *id, int *deleted)
{
	struct kr_dbp p[1] = { KR_P_STR(id) };
	uint64_t n = 0;
	enum kr_db_err rc;

	rc = kr_db_exec(db, sql_ws_delete, p, 1, NULL, &n);
	*deleted = rc == KR_DB_OK && n > 0;
	return rc;
}

enum kr_db_err
kr_ws_list_for_user(struct kr_db *db, const char *user_id, struct kr_db_res *res)
{
	struct kr_dbp p[1] = { KR_P_STR(user_id) };

	return kr_db_exec(db, sql_ws_for_user, p, 1, res, NULL);
}

enum kr_db_err
kr_ws_with_role(struct kr_db *db, const char *slug, const char *user_id,
    struct kr_workspace *ws, enum kr_role *role, int *found)
{
	struct kr_dbp p[2] = { KR_P_STR(user_id), KR_P_STR(slug) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*found = 0;
	*role = KR_ROLE_NONE;
	if ((rc = kr_db_exec(db, sql_ws_with_role, p, 2, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1) {
		ws_from_row(ws, &res);
		*role = kr_role_parse(kr_db_cell(&res, 0, 4));
		*found = 1;
	}
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_member_role(struct kr_db *db, const char *ws_id, const char *user_id, enum kr_role *role)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(user_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*role = KR_ROLE_NONE;
	if ((rc = kr_db_exec(db, sql_member_role, p, 2, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1)
		*role = kr_role_parse(kr_db_cell(&res, 0, 0));
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_ws_page_for_user(struct kr_db *db, const char *user_id, const char *before, unsigned limit,
    struct kr_db_res *res, int *found)
{
	return kr_db_page(db, sql_ws_page_cursor, sql_ws_page, user_id, before, limit, res,
	    found);
}

enum kr_db_err
kr_member_list(struct kr_db *db, const char *ws_id, const char *before, unsigned limit,
    struct kr_db_res *res, int *found)
{
	return kr_db_page(db, sql_member_cursor, sql_member_list, ws_id, before, limit, res, found);
}

enum kr_db_err
kr_member_get(struct kr_db *db, const char *ws_id, const char *user_id, struct kr_db_res *res)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(user_id) };

	return kr_db_exec(db, sql_member_get, p, 2, res, NULL);
}

enum kr_db_err
kr_member_add(struct kr_db *db, const char *ws_id, const char *user_id, enum kr_role role)
{
	struct kr_dbp p[3] = { KR_P_STR(ws_id), KR_P_STR(user_id), KR_P_STR(kr_role_name(role)) };

	return kr_db_exec(db, sql_member_insert, p, 3, NULL, NULL);
}

enum kr_db_err
kr_member_set_role(struct kr_db *db, const char *ws_id, const char *user_id, enum kr_role role,
    int *matched)
{
	struct kr_dbp p[3] = { KR_P_STR(kr_role_name(role)), KR_P_STR(ws_id), KR_P_STR(user_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*matched = 0;
	if ((rc = kr_db_exec(db, sql_member_exists, p + 1, 2, &res, NULL)) != KR_DB_OK)
		return rc;
	*matched = res.nrows == 1;
	kr_db_res_free(&res);
	if (!*matched)
		return KR_DB_OK;
	return kr_db_exec(db, sql_member_set_role, p, 3, NULL, NULL);
}

enum kr_db_err
kr_member_delete(struct kr_db *db, const char *ws_id, const char *user_id, int *deleted)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(user_id) };
	uint64_t n = 0;
	enum kr_db_err rc;

	rc = kr_db_exec(db, sql_member_delete, p, 2, NULL, &n);
	*deleted = rc == KR_DB_OK && n > 0;
	return rc;
}

enum kr_db_err
kr_member_admin_count(struct kr_db *db, const char *ws_id, unsigned *n)
{
	struct kr_dbp p[1] = { KR_P_STR(ws_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*n = 0;
	if ((rc = kr_db_exec(db, sql_member_admins, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	*n = (unsigned)kr_db_cell_int(&res, 0, 0, 0);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_member_sole_admin_of(struct kr_db *db, const char *user_id, unsigned *n)
{
	struct kr_dbp p[1] = { KR_P_STR(user_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*n = 0;
	if ((rc = kr_db_exec(db, sql_sole_admin, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	*n = (unsigned)kr_db_cell_int(&res, 0, 0, 0);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_ws_lock(struct kr_db *db, const char *ws_id)
{
	struct kr_dbp p[1] = { KR_P_STR(ws_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	if ((rc = kr_db_exec(db, sql_ws_lock, p, 1, &res, NULL)) == KR_DB_OK)
		kr_db_res_free(&res);
	return rc;
}

/*
 * The workspaces are read without a lock and then locked one by one: with the user's row
 * locked first, the list can only shrink meanwhile, and one order for every caller keeps two
 * deletions from deadlocking on them.
 */
enum kr_db_err
kr_member_lock_user(struct kr_db *db, const char *user_id)
{
	struct kr_dbp p[1] = { KR_P_STR(user_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	if ((rc = kr_db_exec(db, sql_user_lock, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	kr_db_res_free(&res);
	if ((rc = kr_db_exec(db, sql_user_workspaces, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	for (unsigned i = 0; i < res.nrows && rc == KR_DB_OK; i++)
		rc = kr_ws_lock(db, kr_db_cell(&res, i, 0));
	kr_db_res_free(&res);
	return rc;
}
