/*
 * kr_audit: the audit trail. Entries name the actor, the action ("key.created"), the target
 * and a small JSON detail; never a secret.
 */
#ifndef KR_AUDIT_H
#define KR_AUDIT_H

#include <json-c/json.h>

#include "kr_db.h"

enum kr_actor_type { KR_ACTOR_USER, KR_ACTOR_TOKEN, KR_ACTOR_RUNNER, KR_ACTOR_SYSTEM };

struct kr_actor {
	enum kr_actor_type	 type;
	const char		*id;	/* user, token or runner id; may be NULL */
	const char		*label;	/* e-mail, token name, runner name; may be NULL */
	const char		*ip;	/* may be NULL */
};

/*
 * Append an entry. workspace_id may be NULL for instance-wide actions; detail (may be NULL)
 * is serialised, not consumed: the caller still owns it.
 */
enum kr_db_err	kr_audit(struct kr_db *db, const char *workspace_id, const struct kr_actor *a,
		    const char *action, const char *target, json_object *detail);
/* Append the same entry to every workspace the user is a member of (logins). */
enum kr_db_err	kr_audit_user_workspaces(struct kr_db *db, const char *user_id,
		    const struct kr_actor *a, const char *action, json_object *detail);
/*
 * A page of the workspace's entries, newest first, with row numbers below before_id (0:
 * from the newest). Columns: uid (the entry's id in the API), at, actor_type, actor_id,
 * actor_label, action, target, detail, ip, id (the row number, the list's cursor).
 */
enum kr_db_err	kr_audit_list(struct kr_db *db, const char *workspace_id,
		    unsigned long long before_id, unsigned limit, struct kr_db_res *res);

#endif
