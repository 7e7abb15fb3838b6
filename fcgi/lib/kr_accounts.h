/*
 * kr_accounts: users, browser sessions, workspace API tokens and login throttling.
 *
 * Secrets handed out here (session ids, token secrets) are stored only as their SHA-256;
 * the plaintext goes back to the caller once and is never logged.
 */
#ifndef KR_ACCOUNTS_H
#define KR_ACCOUNTS_H

#include "kr_crypto.h"
#include "kr_db.h"
#include "kr_time.h"

enum kr_role {
	KR_ROLE_NONE = 0,
	KR_ROLE_VIEWER,
	KR_ROLE_MEMBER,
	KR_ROLE_ADMIN,
};

/* "admin", "member", "viewer"; KR_ROLE_NONE for anything else. */
enum kr_role	 kr_role_parse(const char *s);
const char	*kr_role_name(enum kr_role r);

#define KR_EMAIL_MAX	254
#define KR_NAME_MAX	200
#define KR_NAME_MAX_BYTES	(KR_NAME_MAX * 4 + 1)	/* utf8mb4 */
#define KR_PASSWORD_MIN	12
#define KR_PASSWORD_MAX	1024

struct kr_user {
	char	id[KR_UUID_MAX];
	char	email[KR_EMAIL_MAX + 1];
	char	name[KR_NAME_MAX * 4 + 1];	/* utf8mb4: up to 4 bytes a character */
	int	is_instance_admin;
	char	created_at[KR_TIME_MAX];
	char	password_hash[160];
};

/*
 * Normalise an e-mail address for storage and lookup: trimmed, ASCII letters lower-cased.
 * Returns 0, or -1 when it is not of the form local@domain, has spaces or control
 * characters, or is longer than KR_EMAIL_MAX bytes.
 */
int		kr_email_normalize(const char *in, char out[KR_EMAIL_MAX + 1]);

/* Create a user (email already normalised); KR_DB_DUPLICATE when the e-mail is taken. */
enum kr_db_err	kr_user_create(struct kr_db *db, const char *email, const char *name,
		    const char *password_hash, int is_instance_admin, struct kr_user *out);
/* KR_DB_OK with *found set to 0 or 1. */
enum kr_db_err	kr_user_by_email(struct kr_db *db, const char *email, struct kr_user *u,
		    int *found);
enum kr_db_err	kr_user_by_id(struct kr_db *db, const char *id, struct kr_user *u, int *found);
/*
 * Users newest first (created_at, id): columns id, email, name, is_instance_admin,
 * created_at; at most limit rows after the user before (NULL: from the newest). *found is
 * 0 (and res empty) when before is not a user.
 */
enum kr_db_err	kr_user_list(struct kr_db *db, const char *before, unsigned limit,
		    struct kr_db_res *res, int *found);
/* Delete a user, their sessions and memberships; *deleted 0 when there was none. */
enum kr_db_err	kr_user_delete(struct kr_db *db, const char *id, int *deleted);

/*
 * Sessions. create makes a new random id, stores its hash and writes the cookie value
 * (43 characters) to cookie. lookup finds the live session's user; the CSRF token of a
 * session is derived from its cookie value (kr_session_csrf), so it needs no storage.
 */
#define KR_COOKIE_MAX	KR_SECRET_MAX
#define KR_CSRF_MAX	48
enum kr_db_err	kr_session_create(struct kr_db *db, const char *user_id, const char *ip,
		    unsigned hours, char cookie[KR_COOKIE_MAX]);
enum kr_db_err	kr_session_lookup(struct kr_db *db, const char *cookie, struct kr_user *u,
		    int *found);
enum kr_db_err	kr_session_delete(struct kr_db *db, const char *cookie);
void		kr_session_csrf(const char *cookie, char out[KR_CSRF_MAX]);

/* API tokens. */
struct kr_token {
	char		id[KR_UUID_MAX];
	char		workspace_id[KR_UUID_MAX];
	char		name[KR_NAME_MAX * 4 + 1];
	enum kr_role	role;
	/* The token's workspace, filled by kr_token_lookup (one query for both). */
	char		ws_slug[64];
	char		ws_name[KR_NAME_MAX * 4 + 1];
	char		ws_created_at[KR_TIME_MAX];
};

/* Create a token; secret gets "krt_..." (shown once). */
enum kr_db_err	kr_token_create(struct kr_db *db, const char *workspace_id, const char *name,
		    enum kr_role role, const char *created_by, struct kr_token *out,
		    char secret[KR_SECRET_MAX]);
/* Find the token for a presented secret, with its workspace, and note its use. */
enum kr_db_err	kr_token_lookup(struct kr_db *db, const char *secret, struct kr_token *t,
		    int *found);
/*
 * Columns id, name, role, prefix, created_at, last_used_at; newest first (created_at, id);
 * at most limit rows after the token before (NULL: from the newest). *found is 0 (and res
 * empty) when before is not a token of the workspace.
 */
enum kr_db_err	kr_token_list(struct kr_db *db, const char *workspace_id, const char *before,
		    unsigned limit, struct kr_db_res *res, int *found);
/* One token of the workspace, same columns as the list. */
enum kr_db_err	kr_token_get(struct kr_db *db, const char *workspace_id, const char *id,
		    struct kr_db_res *res);
enum kr_db_err	kr_token_delete(struct kr_db *db, const char *workspace_id, const char *id,
		    int *deleted);

/*
 * Login throttling, kept in the database so every process sees it. A key is "e:" + e-mail
 * (as normalised, or as sent when it is not an e-mail) or "a:" + client address; its count
 * covers a window that opens with a failure and lasts window_seconds, and starts again at
 * one after that.
 *
 * An attempt is counted before its password is hashed, so that guesses sent in parallel
 * cannot all read the same count: kr_login_reserve counts it for both keys in one
 * transaction unless either key has reached its limit, in which case neither count changes
 * and reserved is 0 (the caller answers 429). A count therefore never exceeds its limit nor
 * the attempts that went on to the hash. A sign-in that succeeds gives its attempt back:
 * kr_login_clear forgets the e-mail's failures, kr_login_release takes one off the address.
 */
struct kr_login_try {
	const char	*ekey;		/* "e:..." */
	const char	*akey;		/* "a:..." */
	unsigned	 max_email;	/* failures allowed per window, >= 1 */
	unsigned	 max_address;
	unsigned	 window_seconds;
	int		 reserved;	/* out: 1 when the attempt was counted */
	unsigned	 efailures;	/* out: the e-mail's count, this attempt included */
};
enum kr_db_err	kr_login_reserve(struct kr_db *db, struct kr_login_try *t);
enum kr_db_err	kr_login_release(struct kr_db *db, const char *key);
enum kr_db_err	kr_login_clear(struct kr_db *db, const char *key);

/*
 * Delete up to max expired sessions and up to max login counters whose window closed more
 * than window_seconds ago (a counter past its window counts from one again anyway);
 * *deleted gets how many rows went.
 */
enum kr_db_err	kr_accounts_prune(struct kr_db *db, unsigned window_seconds, unsigned max,
		    uint64_t *deleted);

#endif
