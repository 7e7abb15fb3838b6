#include "kr_keys.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kr_crypto.h"
#include "kr_events.h"
#include "kr_accounts.h"
#include "kr_json.h"
#include "kr_log.h"
#include "kr_vault.h"
#include "kr_workspaces.h"

#define N(a)		((unsigned)(sizeof(a) / sizeof((a)[0])))
#define PURPOSE		"provider_key"
#define COLUMN		"secret"
#define COOLDOWN_DEFAULT_MS	60000L
#define COOLDOWN_MAX_MS		300000L

#define KEY_COLUMNS \
    "id, provider, name, hint, status, is_enabled, priority, last_error, validated_at, " \
    "last_used_at, expires_at, consecutive_failures, cooldown_until, created_at, updated_at, " \
    "(expires_at IS NOT NULL AND expires_at <= NOW(3)), " \
    "(cooldown_until IS NOT NULL AND cooldown_until > NOW(3))"

static const char sql_list[] =
    "SELECT " KEY_COLUMNS " FROM provider_keys WHERE workspace_id = ? "
    "AND (? IS NULL OR provider = ?) ORDER BY provider, priority, created_at, id";
/* A page of that order: the keys after key ? (a row comparison on the order's columns). */
static const char sql_page[] =
    "SELECT " KEY_COLUMNS " FROM provider_keys WHERE workspace_id = ? "
    "AND (? IS NULL OR provider = ?) AND (? IS NULL OR (provider, priority, created_at, id) > "
    "(SELECT provider, priority, created_at, id FROM provider_keys WHERE workspace_id = ? "
    "AND id = ?)) ORDER BY provider, priority, created_at, id LIMIT ?";
static const char sql_page_cursor[] =
    "SELECT 1 FROM provider_keys WHERE workspace_id = ? AND id = ? "
    "AND (? IS NULL OR provider = ?)";
static const char sql_get[] =
    "SELECT " KEY_COLUMNS " FROM provider_keys WHERE workspace_id = ? AND id = ?";
/* Adds to one workspace take turns, so concurrent adds get distinct priorities. */
static const char sql_fingerprint[] =
    "SELECT 1 FROM provider_keys WHERE workspace_id = ? AND provider = ? AND fingerprint = ?";
static const char sql_next_priority[] =
    "SELECT COALESCE(MAX(priority) + 1, 0) FROM provider_keys "
    "WHERE workspace_id = ? AND provider = ? FOR UPDATE";
static const char sql_insert[] =
    "INSERT INTO provider_keys (id, workspace_id, provider, name, secret, hint, fingerprint, "
    "priority) VALUES (?,?,?,?,?,?,?,?)";
static const char sql_secret[] =
    "SELECT secret, fingerprint FROM provider_keys WHERE workspace_id = ? AND id = ?";
static const char sql_update[] =
    "UPDATE provider_keys SET name = IF(?, ?, name), priority = IF(?, ?, priority), "
    "is_enabled = IF(?, ?, is_enabled), expires_at = IF(?, ?, expires_at), "
    "updated_at = NOW(3) WHERE workspace_id = ? AND id = ?";
static const char sql_rotate[] =
    "UPDATE provider_keys SET secret = ?, hint = ?, fingerprint = ?, status = 'untested', "
    "last_error = NULL, validated_at = NULL, consecutive_failures = 0, cooldown_until = NULL, "
    "updated_at = NOW(3) WHERE workspace_id = ? AND id = ?";
static const char sql_lock[] =
    "SELECT id FROM provider_keys WHERE workspace_id = ? AND id = ? FOR UPDATE";
static const char sql_set_priority[] =
    "UPDATE provider_keys SET priority = ?, updated_at = NOW(3) "
    "WHERE workspace_id = ? AND id = ?";
static const char sql_delete[] = "DELETE FROM provider_keys WHERE workspace_id = ? AND id = ?";
/* The key, still holding the secret whose outcome is recorded (any, when NULL). */
static const char sql_status[] =
    "SELECT status FROM provider_keys WHERE workspace_id = ? AND id = ? "
    "AND (? IS NULL OR fingerprint = ?) FOR UPDATE";
/* One statement for every outcome: status (NULL keeps it), error, failures, cooldown. */
static const char sql_record[] =
    "UPDATE provider_keys SET status = COALESCE(?, status), "
    "last_error = IF(?, ?, last_error), "
    "consecutive_failures = IF(?, consecutive_failures + 1, 0), "
    "cooldown_until = IF(? > 0, NOW(3) + INTERVAL ? MICROSECOND, IF(?, NULL, cooldown_until)), "
    "validated_at = IF(?, NOW(3), validated_at), last_used_at = IF(?, NOW(3), last_used_at), "
    "updated_at = NOW(3) WHERE workspace_id = ? AND id = ?";
static const char sql_count[] =
    "SELECT provider, COUNT(*), SUM(is_enabled = 1 AND status IN ('untested', 'valid') "
    "AND (expires_at IS NULL OR expires_at > NOW(3))) FROM provider_keys "
    "WHERE workspace_id = ? GROUP BY provider";

const char *
kr_key_format_error(const struct kr_provider *p, const char *secret, size_t len)
{
	const char *dot;

	if (len < KR_KEY_SECRET_MIN || len > KR_KEY_SECRET_MAX)
		return "a key is 8 to 4096 characters long";
	for (size_t i = 0; i < len; i++)
		if (!isgraph((unsigned char)secret[i]))
			return "a key has no spaces, control or non-ASCII characters";
	if (p->id == KR_PROV_ANTHROPIC && strncmp(secret, "sk-ant-oat", 10) == 0)
		return "Anthropic subscription (OAuth) tokens cannot be used here; use an API key";
	if (p->id == KR_PROV_ZAI) {
		dot = memchr(secret, '.', len);
		if (dot == NULL || dot == secret || dot == secret + len - 1)
			return "a Z.ai key has the form {id}.{secret}";
	}
	return NULL;
}

int
kr_key_list_next(const char **list, const char **entry, size_t *len)
{
	const char *v = *list;

	while (v != NULL && *v != '\0') {
		size_t n = strcspn(v, ",\n");
		const char *b = v, *e = v + n;
		v = *e != '\0' ? e + 1 : e;
		while (b < e && (*b == ' ' || *b == '\t' || *b == '\r'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		if (b < e) {
			*list = v;
			*entry = b;
			*len = (size_t)(e - b);
			return 1;
		}
	}
	*list = v;
	return 0;
}

void
kr_key_hint(const char *secret, size_t len, char out[KR_KEY_HINT_MAX])
{
	/* "…" is three bytes of UTF-8. */
	if (len < 16)
		snprintf(out, KR_KEY_HINT_MAX, "\u2026%.*s", 2, secret + (len >= 2 ? len - 2 : 0));
	else
		snprintf(out, KR_KEY_HINT_MAX, "%.7s\u2026%.4s", secret, secret + len - 4);
}

enum kr_db_err
kr_keys_list(struct kr_db *db, const char *ws_id, const char *provider, struct kr_db_res *res)
{
	struct kr_dbp p[3] = { KR_P_STR(ws_id), KR_P_STR(provider), KR_P_STR(provider) };

	return kr_db_exec(db, sql_list, p, N(p), res, NULL);
}

enum kr_db_err
kr_keys_page(struct kr_db *db, const char *ws_id, const char *provider, const char *after,
    unsigned limit, struct kr_db_res *res, int *found)
{
	struct kr_dbp p[7] = { KR_P_STR(ws_id), KR_P_STR(after), KR_P_STR(provider),
	    KR_P_STR(provider) };
	struct kr_db_res c;
	enum kr_db_err rc;

	memset(res, 0, sizeof(*res));
	*found = 1;
	if (after != NULL) {
		if ((rc = kr_db_exec(db, sql_page_cursor, p, 4, &c, NULL)) != KR_DB_OK)
			return rc;
		*found = c.nrows == 1;
		kr_db_res_free(&c);
		if (!*found)
			return KR_DB_OK;
	}
	p[1] = KR_P_STR(provider);
	p[2] = KR_P_STR(provider);
	p[3] = KR_P_STR(after);
	p[4] = KR_P_STR(ws_id);
	p[5] = KR_P_STR(after);
	p[6] = KR_P_INT(limit);
	return kr_db_exec(db, sql_page, p, N(p), res, NULL);
}

enum kr_db_err
kr_keys_get(struct kr_db *db, const char *ws_id, const char *id, struct kr_db_res *res)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };

	return kr_db_exec(db, sql_get, p, N(p), res, NULL);
}

/* disabled wins over expired, which wins over what was learned. */
static const char *
key_status(const struct kr_db_res *res, unsigned row)
{
	if (kr_db_cell_int(res, row, KR_KC_ENABLED, 1) == 0)
		return "disabled";
	if (kr_db_cell_int(res, row, KR_KC_EXPIRED, 0) != 0)
		return "expired";
	return kr_db_cell(res, row, KR_KC_STATUS);
}

json_object *
kr_keys_view(const struct kr_db_res *res, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "id", kr_db_cell(res, row, KR_KC_ID));
	kr_json_add_str(o, "provider", kr_db_cell(res, row, KR_KC_PROVIDER));
	kr_json_add_str(o, "name", kr_db_cell(res, row, KR_KC_NAME));
	kr_json_add_str(o, "maskedKey", kr_db_cell(res, row, KR_KC_HINT));
	kr_json_add_str(o, "status", key_status(res, row));
	kr_json_add_bool(o, "isEnabled", kr_db_cell_int(res, row, KR_KC_ENABLED, 1) != 0);
	kr_json_add_int(o, "priority", kr_db_cell_int(res, row, KR_KC_PRIORITY, 0));
	kr_json_add_str(o, "lastError", kr_db_cell(res, row, KR_KC_LAST_ERROR));
	kr_json_add_time(o, "validatedAt", kr_db_cell(res, row, KR_KC_VALIDATED_AT));
	kr_json_add_time(o, "lastUsedAt", kr_db_cell(res, row, KR_KC_LAST_USED_AT));
	kr_json_add_time(o, "expiresAt", kr_db_cell(res, row, KR_KC_EXPIRES_AT));
	kr_json_add_int(o, "consecutiveFailures", kr_db_cell_int(res, row, KR_KC_FAILURES, 0));
	kr_json_add_time(o, "cooldownUntil", kr_db_cell_int(res, row, KR_KC_COOLING, 0) ?
	    kr_db_cell(res, row, KR_KC_COOLDOWN_UNTIL) : NULL);
	kr_json_add_time(o, "createdAt", kr_db_cell(res, row, KR_KC_CREATED_AT));
	kr_json_add_time(o, "updatedAt", kr_db_cell(res, row, KR_KC_UPDATED_AT));
	return o;
}

enum kr_db_err
kr_keys_event(struct kr_db *db, const char *ws_id, const char *id)
{
	struct kr_db_res res;
	enum kr_db_err rc;
	json_object *o;

	if ((rc = kr_keys_get(db, ws_id, id, &res)) != KR_DB_OK || res.nrows != 1) {
		kr_db_res_free(&res);
		return rc;
	}
	o = json_object_new_object();
	json_object_object_add(o, "key", kr_keys_view(&res, 0));
	kr_db_res_free(&res);
	rc = kr_event_append(db, ws_id, "key_status_changed", o, NULL);
	json_object_put(o);
	return rc;
}

/*
 * 1 (after logging the caller's mistake) when a change is asked for outside a transaction:
 * its audit entry and event could not commit with it (see kr_keys.h).
 */
static int
outside_tx(struct kr_db *db, const char *what)
{
	if (kr_db_in_tx(db))
		return 0;
	kr_error("%s: called outside a transaction", what);
	return 1;
}

/* Seal secret for key id; fingerprint and hint too. */
static enum kr_keys_err
seal(struct kr_db *db, const char *ws_id, const char *provider, const char *id,
    const char *secret, size_t len, unsigned char **ct, size_t *ctlen, char fp[65],
    char hint[KR_KEY_HINT_MAX])
{
	if (kr_vault_fingerprint(db, ws_id, provider, secret, len, fp) != KR_VAULT_OK ||
	    kr_vault_seal(db, ws_id, PURPOSE, id, COLUMN, secret, len, ct, ctlen) != KR_VAULT_OK)
		return KR_KEYS_VAULT;
	kr_key_hint(secret, len, hint);
	return KR_KEYS_OK;
}

/* Insert one sealed entry with the given priority. */
static enum kr_keys_err
insert_one(struct kr_db *db, const char *ws_id, const struct kr_provider *p,
    struct kr_key_entry *e, long long priority, char fps[][65], size_t idx,
    enum kr_db_err *db_rc)
{
	char hint[KR_KEY_HINT_MAX], name[KR_NAME_MAX_BYTES];
	unsigned char *ct = NULL;
	size_t ctlen = 0;
	enum kr_keys_err rc;

	kr_uuid_new(e->id);
	rc = seal(db, ws_id, p->slug, e->id, e->secret, e->len, &ct, &ctlen, fps[idx], hint);
	if (rc != KR_KEYS_OK)
		return rc;
	for (size_t j = 0; j < idx; j++)
		if (strcmp(fps[j], fps[idx]) == 0) {
			free(ct);
			return KR_KEYS_DUPLICATE;	/* the same key twice in one request */
		}
	if (e->name != NULL)
		snprintf(name, sizeof(name), "%s", e->name);
	else
		snprintf(name, sizeof(name), "%s key %lld", p->name, priority + 1);
	{
		struct kr_dbp q[8] = { KR_P_STR(e->id), KR_P_STR(ws_id), KR_P_STR(p->slug),
		    KR_P_STR(name), KR_P_BLOB(ct, ctlen), KR_P_STR(hint), KR_P_STR(fps[idx]),
		    KR_P_INT(priority) };
		*db_rc = kr_db_exec(db, sql_insert, q, N(q), NULL, NULL);
	}
	free(ct);
	if (*db_rc == KR_DB_DUPLICATE)
		return KR_KEYS_DUPLICATE;
	return *db_rc == KR_DB_OK ? KR_KEYS_OK : KR_KEYS_DB;
}

enum kr_keys_err
kr_keys_add(struct kr_db *db, const char *ws_id, const struct kr_provider *p,
    struct kr_key_entry *entries, size_t n, size_t *bad_index, enum kr_db_err *db_rc)
{
	struct kr_dbp q[2] = { KR_P_STR(ws_id), KR_P_STR(p->slug) };
	enum kr_keys_err rc = KR_KEYS_DB;
	char (*fps)[65] = NULL;
	struct kr_db_res res;
	long long next;

	*db_rc = KR_DB_ERROR;
	if (outside_tx(db, "kr_keys_add") || (fps = calloc(n ? n : 1, sizeof(*fps))) == NULL)
		return KR_KEYS_DB;
	if ((*db_rc = kr_ws_lock(db, ws_id)) != KR_DB_OK ||
	    (*db_rc = kr_db_exec(db, sql_next_priority, q, 2, &res, NULL)) != KR_DB_OK)
		goto out;
	next = kr_db_cell_int(&res, 0, 0, 0);
	kr_db_res_free(&res);
	for (size_t i = 0; i < n; i++) {
		*bad_index = i;
		if ((rc = insert_one(db, ws_id, p, &entries[i], next + (long long)i, fps, i,
		    db_rc)) != KR_KEYS_OK)
			goto out;
	}
	rc = KR_KEYS_OK;
out:
	free(fps);
	return rc;
}

enum kr_keys_err
kr_keys_find_duplicate(struct kr_db *db, const char *ws_id, const struct kr_provider *p,
    const struct kr_key_entry *entries, size_t n, size_t *bad_index, enum kr_db_err *db_rc)
{
	char (*fps)[65] = calloc(n ? n : 1, sizeof(*fps));
	enum kr_keys_err rc = KR_KEYS_OK;
	struct kr_db_res res;

	*db_rc = KR_DB_OK;
	if (fps == NULL)
		return KR_KEYS_DB;
	for (size_t i = 0; i < n && rc == KR_KEYS_OK; i++) {
		struct kr_dbp q[3];
		*bad_index = i;
		if (kr_vault_fingerprint(db, ws_id, p->slug, entries[i].secret, entries[i].len,
		    fps[i]) != KR_VAULT_OK) {
			rc = KR_KEYS_VAULT;
			break;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(fps[j], fps[i]) == 0)
				rc = KR_KEYS_DUPLICATE;
		if (rc != KR_KEYS_OK)
			break;
		q[0] = KR_P_STR(ws_id);
		q[1] = KR_P_STR(p->slug);
		q[2] = KR_P_STR(fps[i]);
		if ((*db_rc = kr_db_exec(db, sql_fingerprint, q, 3, &res, NULL)) != KR_DB_OK) {
			rc = KR_KEYS_DB;
			break;
		}
		if (res.nrows > 0)
			rc = KR_KEYS_DUPLICATE;
		kr_db_res_free(&res);
	}
	free(fps);
	return rc;
}

enum kr_keys_err
kr_keys_secret(struct kr_db *db, const char *ws_id, const char *id, char **secret,
    size_t *len, char fingerprint[KR_KEY_FINGERPRINT_MAX], enum kr_db_err *db_rc)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
	enum kr_keys_err rc = KR_KEYS_NOTFOUND;
	struct kr_db_res res;

	*secret = NULL;
	if ((*db_rc = kr_db_exec(db, sql_secret, p, 2, &res, NULL)) != KR_DB_OK)
		return KR_KEYS_DB;
	if (res.nrows == 1 && fingerprint != NULL)
		snprintf(fingerprint, KR_KEY_FINGERPRINT_MAX, "%s", kr_db_cell(&res, 0, 1));
	if (res.nrows == 1)
		rc = kr_vault_open(db, ws_id, PURPOSE, id, COLUMN,
		    (const unsigned char *)res.cells[0], res.lens[0], secret, len) == KR_VAULT_OK ?
		    KR_KEYS_OK : KR_KEYS_VAULT;
	kr_db_res_free(&res);
	return rc;
}

/* KR_KEYS_OK when the key exists in the workspace. */
static enum kr_keys_err
exists(struct kr_db *db, const char *ws_id, const char *id, enum kr_db_err *db_rc)
{
	struct kr_db_res res;
	enum kr_keys_err rc;

	if ((*db_rc = kr_keys_get(db, ws_id, id, &res)) != KR_DB_OK)
		return KR_KEYS_DB;
	rc = res.nrows == 1 ? KR_KEYS_OK : KR_KEYS_NOTFOUND;
	kr_db_res_free(&res);
	return rc;
}

enum kr_keys_err
kr_keys_update(struct kr_db *db, const char *ws_id, const char *id,
    const struct kr_key_patch *k, enum kr_db_err *db_rc)
{
	struct kr_dbp p[10] = {
		KR_P_INT(k->has_name), KR_P_STR(k->name),
		KR_P_INT(k->has_priority), KR_P_INT(k->priority),
		KR_P_INT(k->has_enabled), KR_P_INT(k->enabled ? 1 : 0),
		KR_P_INT(k->has_expires), KR_P_STR(k->expires_at),
		KR_P_STR(ws_id), KR_P_STR(id),
	};
	enum kr_keys_err rc;

	*db_rc = KR_DB_ERROR;
	if (outside_tx(db, "kr_keys_update") || (*db_rc = kr_ws_lock(db, ws_id)) != KR_DB_OK)
		return KR_KEYS_DB;
	if ((rc = exists(db, ws_id, id, db_rc)) != KR_KEYS_OK)
		return rc;
	*db_rc = kr_db_exec(db, sql_update, p, N(p), NULL, NULL);
	return *db_rc == KR_DB_OK ? KR_KEYS_OK : KR_KEYS_DB;
}

enum kr_keys_err
kr_keys_rotate(struct kr_db *db, const char *ws_id, const char *id, const char *secret,
    size_t len, enum kr_db_err *db_rc)
{
	char fp[65], hint[KR_KEY_HINT_MAX];
	struct kr_db_res res;
	unsigned char *ct = NULL;
	size_t ctlen = 0;
	enum kr_keys_err rc;

	*db_rc = KR_DB_ERROR;
	if (outside_tx(db, "kr_keys_rotate") || (*db_rc = kr_ws_lock(db, ws_id)) != KR_DB_OK)
		return KR_KEYS_DB;
	if ((*db_rc = kr_keys_get(db, ws_id, id, &res)) != KR_DB_OK)
		return KR_KEYS_DB;
	rc = res.nrows == 1 ? seal(db, ws_id, kr_db_cell(&res, 0, KR_KC_PROVIDER), id, secret,
	    len, &ct, &ctlen, fp, hint) : KR_KEYS_NOTFOUND;
	kr_db_res_free(&res);
	if (rc != KR_KEYS_OK)
		return rc;
	{
		struct kr_dbp p[5] = { KR_P_BLOB(ct, ctlen), KR_P_STR(hint), KR_P_STR(fp),
		    KR_P_STR(ws_id), KR_P_STR(id) };
		*db_rc = kr_db_exec(db, sql_rotate, p, N(p), NULL, NULL);
	}
	free(ct);
	if (*db_rc == KR_DB_DUPLICATE)
		return KR_KEYS_DUPLICATE;
	return *db_rc == KR_DB_OK ? KR_KEYS_OK : KR_KEYS_DB;
}

enum kr_keys_err
kr_keys_reorder(struct kr_db *db, const char *ws_id, const char **ids,
    const unsigned *priorities, size_t n, size_t *bad_index, enum kr_db_err *db_rc)
{
	enum kr_keys_err rc;
	struct kr_db_res res;

	*db_rc = KR_DB_ERROR;
	if (outside_tx(db, "kr_keys_reorder") || (*db_rc = kr_ws_lock(db, ws_id)) != KR_DB_OK)
		return KR_KEYS_DB;
	for (size_t i = 0; i < n; i++) {
		struct kr_dbp p[3] = { KR_P_INT(priorities[i]), KR_P_STR(ws_id),
		    KR_P_STR(ids[i]) };
		*bad_index = i;
		if ((*db_rc = kr_db_exec(db, sql_lock, p + 1, 2, &res, NULL)) != KR_DB_OK)
			return KR_KEYS_DB;
		rc = res.nrows == 1 ? KR_KEYS_OK : KR_KEYS_NOTFOUND;
		kr_db_res_free(&res);
		if (rc != KR_KEYS_OK)
			return rc;
		if ((*db_rc = kr_db_exec(db, sql_set_priority, p, 3, NULL, NULL)) != KR_DB_OK)
			return KR_KEYS_DB;
	}
	return KR_KEYS_OK;
}

enum kr_keys_err
kr_keys_delete(struct kr_db *db, const char *ws_id, const char *id, enum kr_db_err *db_rc)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
	uint64_t n = 0;

	*db_rc = KR_DB_ERROR;
	if (outside_tx(db, "kr_keys_delete") || (*db_rc = kr_ws_lock(db, ws_id)) != KR_DB_OK)
		return KR_KEYS_DB;
	if ((*db_rc = kr_db_exec(db, sql_delete, p, 2, NULL, &n)) != KR_DB_OK)
		return KR_KEYS_DB;
	return n > 0 ? KR_KEYS_OK : KR_KEYS_NOTFOUND;
}

static const char *
status_for(enum kr_llm_class c)
{
	switch (c) {
	case KR_LLM_OK:
		return "valid";
	case KR_LLM_AUTH:
		return "invalid";
	case KR_LLM_QUOTA:
		return "exhausted";
	default:
		return NULL;	/* rate limits and outages say nothing about the key itself */
	}
}

enum kr_db_err
kr_keys_record(struct kr_db *db, const char *ws_id, const char *id, const char *fingerprint,
    const struct kr_llm_result *r, int tested, int used, int *changed)
{
	struct kr_dbp q[4] = { KR_P_STR(ws_id), KR_P_STR(id), KR_P_STR(fingerprint),
	    KR_P_STR(fingerprint) };
	const char *status = status_for(r->cls), *before;
	int ok = r->cls == KR_LLM_OK, failed = !ok && r->cls != KR_LLM_REQUEST;
	long long cool_us = 0;
	struct kr_db_res res;
	enum kr_db_err rc;

	*changed = 0;
	if (outside_tx(db, "kr_keys_record"))
		return KR_DB_ERROR;
	if ((rc = kr_ws_lock(db, ws_id)) != KR_DB_OK)
		return rc;
	if (r->cls == KR_LLM_RATE)
		cool_us = 1000LL * (r->retry_after_ms > 0 ? (r->retry_after_ms < COOLDOWN_MAX_MS ?
		    r->retry_after_ms : COOLDOWN_MAX_MS) : COOLDOWN_DEFAULT_MS);
	if ((rc = kr_db_exec(db, sql_status, q, 4, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 0) {		/* rotated (or deleted) since: not this secret's key */
		kr_db_res_free(&res);
		return KR_DB_ABORT;
	}
	before = kr_db_cell(&res, 0, 0);
	*changed = status != NULL && before != NULL && strcmp(before, status) != 0;
	kr_db_res_free(&res);
	{
		struct kr_dbp p[12] = {
			KR_P_STR(status), KR_P_INT(ok || failed), KR_P_STR(ok ? NULL : r->message),
			KR_P_INT(failed), KR_P_INT(cool_us), KR_P_INT(cool_us), KR_P_INT(ok),
			KR_P_INT(tested && ok), KR_P_INT(used), KR_P_STR(ws_id), KR_P_STR(id),
		};
		return kr_db_exec(db, sql_record, p, 11, NULL, NULL);
	}
}

enum kr_db_err
kr_keys_count(struct kr_db *db, const char *ws_id, struct kr_key_counts *c)
{
	struct kr_dbp p[1] = { KR_P_STR(ws_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	memset(c, 0, sizeof(*c));
	if ((rc = kr_db_exec(db, sql_count, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	for (unsigned i = 0; i < res.nrows; i++) {
		const struct kr_provider *pv = kr_provider_find(kr_db_cell(&res, i, 0));
		if (pv == NULL)
			continue;
		c->total[pv->id] = (unsigned)kr_db_cell_int(&res, i, 1, 0);
		c->usable[pv->id] = (unsigned)kr_db_cell_int(&res, i, 2, 0);
	}
	kr_db_res_free(&res);
	return KR_DB_OK;
}
