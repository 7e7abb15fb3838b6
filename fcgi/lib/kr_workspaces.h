/*
 * kr_workspaces: workspaces and their memberships.
 *
 * Every function that reads or changes a workspace-owned row takes the workspace id of the
 * authenticated caller and filters on it.
 */
#ifndef KR_WORKSPACES_H
#define KR_WORKSPACES_H

#include "kr_accounts.h"
#include "kr_db.h"

#define KR_SLUG_MAX	63

struct kr_workspace {
	char	id[KR_UUID_MAX];
	char	slug[KR_SLUG_MAX + 1];
	char	name[KR_NAME_MAX * 4 + 1];
	char	created_at[KR_TIME_MAX];
};

/* 1 when s is a valid slug: [a-z0-9][a-z0-9-]{0,62}. */
int		kr_slug_valid(const char *s);

/* Create a workspace; owner_id (may be NULL) becomes its admin. KR_DB_DUPLICATE: slug taken. */
enum kr_db_err	kr_ws_create(struct kr_db *db, const char *slug, const char *name,
		    const char *owner_id, struct kr_workspace *out);
enum kr_db_err	kr_ws_by_slug(struct kr_db *db, const char *slug, struct kr_workspace *ws,
		    int *found);
/* Delete the workspace and everything it owns (foreign keys cascade). */
enum kr_db_err	kr_ws_delete(struct kr_db *db, const char *id, int *deleted);
/* The user's workspaces: columns slug, name, role, created_at; by name. */
enum kr_db_err	kr_ws_list_for_user(struct kr_db *db, const char *user_id, struct kr_db_res *res);
/*
 * A page of the user's workspaces, newest first, after the one with slug before (NULL: from
 * the newest); *found 0 when before is not one of them. Columns as kr_ws_list_for_user's.
 */
enum kr_db_err	kr_ws_page_for_user(struct kr_db *db, const char *user_id, const char *before,
		    unsigned limit, struct kr_db_res *res, int *found);

/*
 * The workspace with that slug and the user's role in it (KR_ROLE_NONE when not a member),
 * in one query. *found is 0 when there is no such workspace.
 */
enum kr_db_err	kr_ws_with_role(struct kr_db *db, const char *slug, const char *user_id,
		    struct kr_workspace *ws, enum kr_role *role, int *found);

/* The user's role in the workspace, KR_ROLE_NONE when not a member. */
enum kr_db_err	kr_member_role(struct kr_db *db, const char *ws_id, const char *user_id,
		    enum kr_role *role);
/*
 * Columns user_id, email, name, role, created_at; newest membership first (created_at,
 * user_id); at most limit rows after the member whose user id is before (NULL: from the
 * newest). *found is 0 (and res empty) when before is not a member of the workspace.
 */
enum kr_db_err	kr_member_list(struct kr_db *db, const char *ws_id, const char *before,
		    unsigned limit, struct kr_db_res *res, int *found);
enum kr_db_err	kr_member_get(struct kr_db *db, const char *ws_id, const char *user_id,
		    struct kr_db_res *res);
/* KR_DB_DUPLICATE when the user is a member already. */
enum kr_db_err	kr_member_add(struct kr_db *db, const char *ws_id, const char *user_id,
		    enum kr_role role);
/* *matched is 0 when the user is not a member. */
enum kr_db_err	kr_member_set_role(struct kr_db *db, const char *ws_id, const char *user_id,
		    enum kr_role role, int *matched);
enum kr_db_err	kr_member_delete(struct kr_db *db, const char *ws_id, const char *user_id,
		    int *deleted);
/*
 * Workspaces in which the user is the only admin (to refuse deleting that user). The answer
 * holds until commit only under kr_member_lock_user.
 */
enum kr_db_err	kr_member_sole_admin_of(struct kr_db *db, const char *user_id, unsigned *n);
/*
 * Number of admins of the workspace (to refuse removing the last one). The answer holds
 * until commit only under kr_ws_lock.
 */
enum kr_db_err	kr_member_admin_count(struct kr_db *db, const char *ws_id, unsigned *n);

/*
 * Inside a transaction: lock the workspace's row until it ends. Changes that read before
 * they write take it first, so that those of one workspace run one after the other and each
 * reads what the one before left: a role change, a removal or deleting a user (which count
 * the admins), a settings change (read, merge, write). Every key change takes it first too:
 * the change's event takes it anyway (the sequence), and the audit and key rows point at
 * it, so a change that took a key row first could deadlock with one that holds the
 * workspace (an add).
 */
enum kr_db_err	kr_ws_lock(struct kr_db *db, const char *ws_id);
/*
 * Inside a transaction, before deleting the user: lock the user's row, so that no membership
 * of theirs can be added meanwhile (adding one checks that row), then with kr_ws_lock, in id
 * order, every workspace they are a member of.
 */
enum kr_db_err	kr_member_lock_user(struct kr_db *db, const char *user_id);

#endif
