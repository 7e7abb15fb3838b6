#include "kr_accounts.h"

#include <stdio.h>
#include <string.h>

#include "kr_crypto.h"

#define N(a)	((unsigned)(sizeof(a) / sizeof((a)[0])))


static const char *const role_names[] = { NULL, "viewer", "member", "admin" };

enum kr_role
kr_role_parse(const char *s)
{
	for (unsigned i = 1; s != NULL && i < N(role_names); i++)
		if (strcmp(s, role_names[i]) == 0)
			return (enum kr_role)i;
	return KR_ROLE_NONE;
}

const char *
kr_role_name(enum kr_role r)
{
	return (unsigned)r < N(role_names) && role_names[r] != NULL ? role_names[r] : "none";
}

int
kr_email_normalize(const char *in, char out[KR_EMAIL_MAX + 1])
{
	const char *e, *at;
	size_t n;

	while (*in == ' ' || *in == '\t')
		in++;
	e = in + strlen(in);
	while (e > in && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - in);
	if (n < 3 || n > KR_EMAIL_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c <= ' ' || c == 0x7f)
			return -1;
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	out[n] = '\0';
	at = strrchr(out, '@');
	if (at == NULL || at == out || at[1] == '\0' || strchr(out, '@') != at)
		return -1;
	return 0;
}

/* Copy a cell into a fixed buffer; truncation cannot happen for values the schema bounds. */
static void
cell_copy(char *dst, size_t cap, const struct kr_db_res *res, unsigned row, unsigned col)
{
	const char *s = kr_db_cell(res, row, col);

	snprintf(dst, cap, "%s", s != NULL ? s : "");
}

static const char sql_user_insert[] =
    "INSERT INTO users (id, email, name, password_hash, is_instance_admin) VALUES (?,?,?,?,?)";
static const char sql_user_by_email[] =
    "SELECT id, email, name, is_instance_admin, created_at, password_hash FROM users "
    "WHERE email = ?";
static const char sql_user_by_id[] =
    "SELECT id, email, name, is_instance_admin, created_at, password_hash FROM users "
    "WHERE id = ?";
static const char sql_user_list[] =
    "SELECT id, email, name, is_instance_admin, created_at FROM users "
    "WHERE (? IS NULL OR created_at < ? OR (created_at = ? AND id < ?)) "
    "ORDER BY created_at DESC, id DESC LIMIT ?";
static const char sql_user_cursor[] = "SELECT created_at FROM users WHERE id = ?";
static const char sql_user_delete[] = "DELETE FROM users WHERE id = ?";

static void
user_from_row(struct kr_user *u, const struct kr_db_res *res)
{
	cell_copy(u->id, sizeof(u->id), res, 0, 0);
	cell_copy(u->email, sizeof(u->email), res, 0, 1);
	cell_copy(u->name, sizeof(u->name), res, 0, 2);
	u->is_instance_admin = kr_db_cell_int(res, 0, 3, 0) != 0;
	cell_copy(u->created_at, sizeof(u->created_at), res, 0, 4);
	cell_copy(u->password_hash, sizeof(u->password_hash), res, 0, 5);
}

enum kr_db_err
kr_user_create(struct kr_db *db, const char *email, const char *name, const char *pw_hash,
    int is_instance_admin, struct kr_user *out)
{
	struct kr_dbp p[5];
	enum kr_db_err rc;
	int found;

	memset(out, 0, sizeof(*out));
	kr_uuid_new(out->id);
	p[0] = KR_P_STR(out->id);
	p[1] = KR_P_STR(email);
	p[2] = KR_P_STR(name);
	p[3] = KR_P_STR(pw_hash);
	p[4] = KR_P_INT(is_instance_admin ? 1 : 0);
	if ((rc = kr_db_exec(db, sql_user_insert, p, N(p), NULL, NULL)) != KR_DB_OK)
		return rc;
	return kr_user_by_id(db, out->id, out, &found);
}

static enum kr_db_err
user_one(struct kr_db *db, const char *sql, const char *arg, struct kr_user *u, int *found)
{
	struct kr_dbp p[1] = { KR_P_STR(arg) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*found = 0;
	if ((rc = kr_db_exec(db, sql, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1) {
		user_from_row(u, &res);
		*found = 1;
	}
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_user_by_email(struct kr_db *db, const char *email, struct kr_user *u, int *found)
{
	return user_one(db, sql_user_by_email, email, u, found);
}

enum kr_db_err
kr_user_by_id(struct kr_db *db, const char *id, struct kr_user *u, int *found)
{
	return user_one(db, sql_user_by_id, id, u, found);
}

enum kr_db_err
kr_user_list(struct kr_db *db, const char *before, unsigned limit, struct kr_db_res *res,
    int *found)
{
	return kr_db_page(db, sql_user_cursor, sql_user_list, NULL, before, limit, res, found);
}

enum kr_db_err
kr_user_delete(struct kr_db *db, const char *id, int *deleted)
{
	struct kr_dbp p[1] = { KR_P_STR(id) };
	uint64_t n = 0;
	enum kr_db_err rc;

	rc = kr_db_exec(db, sql_user_delete, p, 1, NULL, &n);
	*deleted = rc == KR_DB_OK && n > 0;
	return rc;
}

/* Sessions ------------------------------------------------------------------------------ */

static const char sql_session_insert[] =
    "INSERT INTO sessions (id_hash, user_id, expires_at, ip) "
    "VALUES (?, ?, NOW(3) + INTERVAL ? HOUR, ?)";
static const char sql_session_lookup[] =
    "SELECT u.id, u.email, u.name, u.is_instance_admin, u.created_at, u.password_hash "
    "FROM sessions s JOIN users u ON u.id = s.user_id "
    "WHERE s.id_hash = ? AND s.expires_at > NOW(3)";
static const char sql_session_delete[] = "DELETE FROM sessions WHERE id_hash = ?";

enum kr_db_err
kr_session_create(struct kr_db *db, const char *user_id, const char *ip, unsigned hours,
    char cookie[KR_COOKIE_MAX])
{
	char hash[KR_SHA256_HEX];
	struct kr_dbp p[4];
	enum kr_db_err rc;

	if (kr_secret_new("", cookie, KR_COOKIE_MAX) != KR_CRYPTO_OK)
		return KR_DB_ERROR;
	kr_sha256_hex(cookie, strlen(cookie), hash);
	p[0] = KR_P_STR(hash);
	p[1] = KR_P_STR(user_id);
	p[2] = KR_P_INT(hours);
	p[3] = KR_P_STR(ip);
	rc = kr_db_exec(db, sql_session_insert, p, N(p), NULL, NULL);
	if (rc != KR_DB_OK)
		kr_wipe(cookie, KR_COOKIE_MAX);
	return rc;
}

enum kr_db_err
kr_session_lookup(struct kr_db *db, const char *cookie, struct kr_user *u, int *found)
{
	char hash[KR_SHA256_HEX];

	kr_sha256_hex(cookie, strlen(cookie), hash);
	return user_one(db, sql_session_lookup, hash, u, found);
}

enum kr_db_err
kr_session_delete(struct kr_db *db, const char *cookie)
{
	char hash[KR_SHA256_HEX];
	struct kr_dbp p[1];

	kr_sha256_hex(cookie, strlen(cookie), hash);
	p[0] = KR_P_STR(hash);
	return kr_db_exec(db, sql_session_delete, p, 1, NULL, NULL);
}

void
kr_session_csrf(const char *cookie, char out[KR_CSRF_MAX])
{
	unsigned char mac[KR_SHA256_LEN];

	/* Bound to the session: whoever holds the cookie value can derive it, nobody else. */
	if (kr_hmac_sha256(cookie, strlen(cookie), "keyrelay csrf v1", 16, mac) != KR_CRYPTO_OK ||
	    kr_b64url_encode(mac, sizeof(mac), out, KR_CSRF_MAX) != KR_CRYPTO_OK)
		out[0] = '\0';
	kr_wipe(mac, sizeof(mac));
}

/* Tokens -------------------------------------------------------------------------------- */

static const char sql_token_insert[] =
    "INSERT INTO api_tokens (id, workspace_id, name, role, token_hash, prefix, created_by) "
    "VALUES (?,?,?,?,?,?,?)";
static const char sql_token_lookup[] =
    "SELECT t.id, t.workspace_id, t.name, t.role, "
    "(t.last_used_at IS NULL OR t.last_used_at < NOW(3) - INTERVAL 1 MINUTE), "
    "w.slug, w.name, w.created_at "
    "FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id WHERE t.token_hash = ?";
static const char sql_token_used[] =
    "UPDATE api_tokens SET last_used_at = NOW(3) WHERE id = ?";
static const char sql_token_list[] =
    "SELECT id, name, role, prefix, created_at, last_used_at FROM api_tokens "
    "WHERE workspace_id = ? "
    "AND (? IS NULL OR created_at < ? OR (created_at = ? AND id < ?)) "
    "ORDER BY created_at DESC, id DESC LIMIT ?";
static const char sql_token_cursor[] =
    "SELECT created_at FROM api_tokens WHERE workspace_id = ? AND id = ?";
static const char sql_token_get[] =
    "SELECT id, name, role, prefix, created_at, last_used_at FROM api_tokens "
    "WHERE workspace_id = ? AND id = ?";
static const char sql_token_delete[] =
    "DELETE FROM api_tokens WHERE workspace_id = ? AND id = ?";

#define TOKEN_PREFIX_LEN	12	/* "krt_" and 8 characters of the secret */

enum kr_db_err
kr_token_create(struct kr_db *db, const char *workspace_id, const char *name,
    enum kr_role role, const char *created_by, struct kr_token *out,
    char secret[KR_SECRET_MAX])
{
	char hash[KR_SHA256_HEX], prefix[TOKEN_PREFIX_LEN + 1];
	struct kr_dbp p[7];
	enum kr_db_err rc;

	memset(out, 0, sizeof(*out));
	if (kr_secret_new("krt_", secret, KR_SECRET_MAX) != KR_CRYPTO_OK)
		return KR_DB_ERROR;
	kr_sha256_hex(secret, strlen(secret), hash);
	snprintf(prefix, sizeof(prefix), "%.*s", TOKEN_PREFIX_LEN, secret);
	kr_uuid_new(out->id);
	snprintf(out->workspace_id, sizeof(out->workspace_id), "%s", workspace_id);
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->role = role;
	p[0] = KR_P_STR(out->id);
	p[1] = KR_P_STR(workspace_id);
	p[2] = KR_P_STR(name);
	p[3] = KR_P_STR(kr_role_name(role));
	p[4] = KR_P_STR(hash);
	p[5] = KR_P_STR(prefix);
	p[6] = KR_P_STR(created_by);
	rc = kr_db_exec(db, sql_token_insert, p, N(p), NULL, NULL);
	if (rc != KR_DB_OK)
		kr_wipe(secret, KR_SECRET_MAX);
	return rc;
}

enum kr_db_err
kr_token_lookup(struct kr_db *db, const char *secret, struct kr_token *t, int *found)
{
	char hash[KR_SHA256_HEX];
	struct kr_db_res res;
	struct kr_dbp p[1];
	enum kr_db_err rc;
	int stale = 0;

	*found = 0;
	kr_sha256_hex(secret, strlen(secret), hash);
	p[0] = KR_P_STR(hash);
	if ((rc = kr_db_exec(db, sql_token_lookup, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1) {
		cell_copy(t->id, sizeof(t->id), &res, 0, 0);
		cell_copy(t->workspace_id, sizeof(t->workspace_id), &res, 0, 1);
		cell_copy(t->name, sizeof(t->name), &res, 0, 2);
		t->role = kr_role_parse(kr_db_cell(&res, 0, 3));
		stale = kr_db_cell_int(&res, 0, 4, 1) != 0;
		cell_copy(t->ws_slug, sizeof(t->ws_slug), &res, 0, 5);
		cell_copy(t->ws_name, sizeof(t->ws_name), &res, 0, 6);
		cell_copy(t->ws_created_at, sizeof(t->ws_created_at), &res, 0, 7);
		*found = 1;
	}
	kr_db_res_free(&res);
	/* lastUsedAt is kept to the minute: a busy token does not write on every request. */
	if (*found && stale) {
		p[0] = KR_P_STR(t->id);
		rc = kr_db_exec(db, sql_token_used, p, 1, NULL, NULL);
	}
	return rc;
}

enum kr_db_err
kr_token_list(struct kr_db *db, const char *workspace_id, const char *before, unsigned limit,
    struct kr_db_res *res, int *found)
{
	return kr_db_page(db, sql_token_cursor, sql_token_list, workspace_id, before, limit, res, found);
}

enum kr_db_err
kr_token_get(struct kr_db *db, const char *workspace_id, const char *id, struct kr_db_res *res)
{
	struct kr_dbp p[2] = { KR_P_STR(workspace_id), KR_P_STR(id) };

	return kr_db_exec(db, sql_token_get, p, 2, res, NULL);
}

enum kr_db_err
kr_token_delete(struct kr_db *db, const char *workspace_id, const char *id, int *deleted)
{
	struct kr_dbp p[2] = { KR_P_STR(workspace_id), KR_P_STR(id) };
	uint64_t n = 0;
	enum kr_db_err rc;

	rc = kr_db_exec(db, sql_token_delete, p, 2, NULL, &n);
	*deleted = rc == KR_DB_OK && n > 0;
	return rc;
}

/* Login throttling ---------------------------------------------------------------------- */

/*
 * One more failure for a key, unless its window is live and the count has reached the
 * limit: affected rows 1 (a new key) or 2 (counted, or a run-out window opened again at
 * one), 0 when the count stood at the limit and nothing changed.
 */
static const char sql_failures_reserve[] =
    "INSERT INTO login_failures (key_hash, failures, window_start) VALUES (?, 1, NOW(3)) "
    "ON DUPLICATE KEY UPDATE "
    "failures = IF(window_start > NOW(3) - INTERVAL ? SECOND, "
    "IF(failures < ?, failures + 1, failures), 1), "
    "window_start = IF(window_start > NOW(3) - INTERVAL ? SECOND, window_start, NOW(3))";
static const char sql_failures_get[] = "SELECT failures FROM login_failures WHERE key_hash = ?";
/* Relative, unlike the writes kr_db_exec may resend after a lost connection: resent, it
 * gives an address two attempts back, which is the lenient side. */
static const char sql_failures_release[] =
    "UPDATE login_failures SET failures = failures - 1 WHERE key_hash = ? AND failures > 0";
static const char sql_failures_clear[] = "DELETE FROM login_failures WHERE key_hash = ?";
/* Both walk an index (012), oldest first (a bounded DELETE names its rows for the binlog). */
static const char sql_prune_sessions[] =
    "DELETE FROM sessions WHERE expires_at < NOW(3) ORDER BY expires_at LIMIT ?";
static const char sql_prune_failures[] =
    "DELETE FROM login_failures WHERE window_start < NOW(3) - INTERVAL ? SECOND "
    "ORDER BY window_start LIMIT ?";

/* Count one failure for key (see sql_failures_reserve); *count, unless NULL, gets the
 * count after it. The row stays locked until the transaction ends. */
static enum kr_db_err
reserve_one(struct kr_db *db, const char *key, unsigned max, unsigned window_seconds,
    int *reserved, unsigned *count)
{
	char hash[KR_SHA256_HEX];
	struct kr_db_res res;
	struct kr_dbp p[4];
	uint64_t n = 0;
	enum kr_db_err rc;

	*reserved = 0;
	kr_sha256_hex(key, strlen(key), hash);
	p[0] = KR_P_STR(hash);
	p[1] = KR_P_INT(window_seconds);
	p[2] = KR_P_INT(max);
	p[3] = KR_P_INT(window_seconds);
	if ((rc = kr_db_exec(db, sql_failures_reserve, p, N(p), NULL, &n)) != KR_DB_OK)
		return rc;
	*reserved = n > 0;
	if (count == NULL)
		return KR_DB_OK;
	if ((rc = kr_db_exec(db, sql_failures_get, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	*count = res.nrows == 1 ? (unsigned)kr_db_cell_int(&res, 0, 0, 0) : 0;
	kr_db_res_free(&res);
	return KR_DB_OK;
}

/* Both keys or neither. Every transaction locks an address row before an e-mail row, so
 * two of them never wait for each other in a circle. */
static enum kr_db_err
reserve_in_tx(struct kr_db *db, void *arg)
{
	struct kr_login_try *t = arg;
	enum kr_db_err rc;
	int ok;

	t->reserved = 0;
	if ((rc = reserve_one(db, t->akey, t->max_address, t->window_seconds, &ok, NULL)) !=
	    KR_DB_OK)
		return rc;
	if (!ok)
		return KR_DB_ABORT;
	if ((rc = reserve_one(db, t->ekey, t->max_email, t->window_seconds, &ok,
	    &t->efailures)) != KR_DB_OK)
		return rc;
	if (!ok)
		return KR_DB_ABORT;
	t->reserved = 1;
	return KR_DB_OK;
}

enum kr_db_err
kr_login_reserve(struct kr_db *db, struct kr_login_try *t)
{
	enum kr_db_err rc;

	t->efailures = 0;
	rc = kr_db_tx(db, reserve_in_tx, t, 0);
	if (rc != KR_DB_OK)
		t->reserved = 0;
	return rc == KR_DB_ABORT ? KR_DB_OK : rc;
}

static enum kr_db_err
key_exec(struct kr_db *db, const char *sql, const char *key)
{
	char hash[KR_SHA256_HEX];
	struct kr_dbp p[1];

	kr_sha256_hex(key, strlen(key), hash);
	p[0] = KR_P_STR(hash);
	return kr_db_exec(db, sql, p, 1, NULL, NULL);
}

enum kr_db_err
kr_login_release(struct kr_db *db, const char *key)
{
	return key_exec(db, sql_failures_release, key);
}

enum kr_db_err
kr_login_clear(struct kr_db *db, const char *key)
{
	return key_exec(db, sql_failures_clear, key);
}

enum kr_db_err
kr_accounts_prune(struct kr_db *db, unsigned window_seconds, unsigned max, uint64_t *deleted)
{
	struct kr_dbp p[2] = { KR_P_INT(max) };
	uint64_t n = 0;
	enum kr_db_err rc;

	*deleted = 0;
	if ((rc = kr_db_exec(db, sql_prune_sessions, p, 1, NULL, &n)) != KR_DB_OK)
		return rc;
	*deleted = n;
	p[0] = KR_P_INT(window_seconds);
	p[1] = KR_P_INT(max);
	n = 0;
	rc = kr_db_exec(db, sql_prune_failures, p, 2, NULL, &n);
	*deleted += n;
	return rc;
}
