/*
 * kr_keys: the provider keys of a workspace (table provider_keys).
 *
 * Secrets are sealed with kr_vault under purpose "provider_key", column "secret", with the
 * key's own id as record id; listing never decrypts (hint and fingerprint are stored
 * beside the ciphertext). Every function filters on the caller's workspace id.
 *
 * Changes (kr_keys_add, _update, _rotate, _reorder, _delete and kr_keys_record) are
 * statements of the caller's transaction (kr_db_begin, or a kr_db_tx body), which also
 * holds the change's audit entry and its event (design.md, "Events and server-sent
 * events"): they commit together or not at all. Outside a transaction a change does
 * nothing and fails with KR_DB_ERROR. After any failure, refusals included (NOTFOUND,
 * DUPLICATE, VAULT: earlier statements may have run), the caller rolls back; after
 * KR_DB_RETRY the whole transaction may run again (kr_db_tx does). Each change first locks
 * the workspace's row, so the key changes of a workspace take turns in one lock order; the
 * caller must not lock the workspace's keys before calling.
 */
#ifndef KR_KEYS_H
#define KR_KEYS_H

#include <stddef.h>

#include <json-c/json.h>

#include "kr_db.h"
#include "kr_llm.h"
#include "kr_providers.h"
#include "kr_time.h"

#define KR_KEY_SECRET_MIN	8
#define KR_KEY_SECRET_MAX	4096
#define KR_KEY_HINT_MAX		32
#define KR_KEY_FINGERPRINT_MAX	65	/* kr_vault_fingerprint: 64 hex digits and the NUL */
#define KR_KEYS_BATCH_MAX	50

enum kr_keys_err {
	KR_KEYS_OK = 0,
	KR_KEYS_NOTFOUND,	/* no such key in this workspace */
	KR_KEYS_DUPLICATE,	/* already stored for this provider (bad_index says which) */
	KR_KEYS_VAULT,		/* encryption failed (no master key, corrupt data key) */
	KR_KEYS_DB,		/* see db_rc */
};

/* The columns of every key row, in this order, for views. */
enum kr_key_col {
	KR_KC_ID, KR_KC_PROVIDER, KR_KC_NAME, KR_KC_HINT, KR_KC_STATUS, KR_KC_ENABLED,
	KR_KC_PRIORITY, KR_KC_LAST_ERROR, KR_KC_VALIDATED_AT, KR_KC_LAST_USED_AT,
	KR_KC_EXPIRES_AT, KR_KC_FAILURES, KR_KC_COOLDOWN_UNTIL, KR_KC_CREATED_AT,
	KR_KC_UPDATED_AT, KR_KC_EXPIRED, KR_KC_COOLING, KR_KC__MAX
};

/*
 * NULL when secret has the form of a key for p, else why not (a sentence without the key).
 * Prefixes change over time, so a prefix never rejects a key; only the shape does
 * (printable ASCII without spaces, 8..4096 bytes; zai's "{id}.{secret}"; no Anthropic
 * subscription OAuth tokens).
 */
const char	*kr_key_format_error(const struct kr_provider *p, const char *secret, size_t len);
/*
 * The next entry of a list of keys as an environment variable holds them (separated by
 * commas or line breaks), trimmed of spaces, tabs and carriage returns; empty entries are
 * passed over. 1 with *entry and *len set and *list moved past it; 0 at the end.
 */
int		 kr_key_list_next(const char **list, const char **entry, size_t *len);
/* The masked display form: "sk-ant-…AbCd" (first 7, ellipsis, last 4; short keys "…" + last 2). */
void		 kr_key_hint(const char *secret, size_t len, char out[KR_KEY_HINT_MAX]);

/* The workspace's keys (provider NULL: all), by provider then priority. */
enum kr_db_err	 kr_keys_list(struct kr_db *db, const char *ws_id, const char *provider,
		    struct kr_db_res *res);
/*
 * Up to limit of those keys (provider NULL: all), in the same order, after key after (NULL:
 * from the first); *found is 0 when after is not one of them (res is then empty).
 */
enum kr_db_err	 kr_keys_page(struct kr_db *db, const char *ws_id, const char *provider,
		    const char *after, unsigned limit, struct kr_db_res *res, int *found);
/* One key; res.nrows is 0 when there is none in this workspace. */
enum kr_db_err	 kr_keys_get(struct kr_db *db, const char *ws_id, const char *id,
		    struct kr_db_res *res);
/* The key object of the API (masked, never the secret) of a row of kr_keys_list/get. */
json_object	*kr_keys_view(const struct kr_db_res *res, unsigned row);
/*
 * Append key_status_changed for key id with that object as the key is now, in the caller's
 * transaction; nothing when the key is not in the workspace.
 */
enum kr_db_err	 kr_keys_event(struct kr_db *db, const char *ws_id, const char *id);

struct kr_key_entry {
	const char	*secret;
	size_t		 len;
	const char	*name;		/* NULL: "<Provider> key N" */
	char		 id[KR_UUID_MAX];	/* filled on success */
};

/*
 * Add entries for one provider, priorities after the provider's existing keys; adds to one
 * workspace take turns (its row is locked until the caller's transaction ends).
 * KR_KEYS_DUPLICATE with *bad_index set when an entry is already stored (or repeated within
 * the batch); the caller rolls back, so a batch is stored all or nothing.
 */
enum kr_keys_err kr_keys_add(struct kr_db *db, const char *ws_id, const struct kr_provider *p,
		    struct kr_key_entry *entries, size_t n, size_t *bad_index,
		    enum kr_db_err *db_rc);
/*
 * Before anything is sent anywhere (validate-before-save): KR_KEYS_DUPLICATE with *bad_index
 * when an entry is stored already for this provider or repeats an earlier entry; compared by
 * fingerprint, without decrypting. kr_keys_add checks again under its lock.
 */
enum kr_keys_err kr_keys_find_duplicate(struct kr_db *db, const char *ws_id,
		    const struct kr_provider *p, const struct kr_key_entry *entries, size_t n,
		    size_t *bad_index, enum kr_db_err *db_rc);
/*
 * Decrypt a key's secret (caller wipes and frees *secret); its fingerprint into fingerprint
 * unless NULL, for kr_keys_record.
 */
enum kr_keys_err kr_keys_secret(struct kr_db *db, const char *ws_id, const char *id,
		    char **secret, size_t *len, char fingerprint[KR_KEY_FINGERPRINT_MAX],
		    enum kr_db_err *db_rc);

/* Fields of a PATCH; a has_ flag says whether the field was given. */
struct kr_key_patch {
	int		 has_name, has_priority, has_enabled, has_expires;
	const char	*name;
	unsigned	 priority;
	int		 enabled;
	const char	*expires_at;	/* DATETIME(3) text, or NULL to clear */
};
enum kr_keys_err kr_keys_update(struct kr_db *db, const char *ws_id, const char *id,
		    const struct kr_key_patch *patch, enum kr_db_err *db_rc);
/* Replace the secret; status back to untested, health cleared. */
enum kr_keys_err kr_keys_rotate(struct kr_db *db, const char *ws_id, const char *id,
		    const char *secret, size_t len, enum kr_db_err *db_rc);
/* Set priorities of several keys; KR_KEYS_NOTFOUND with *bad_index for a key not in the
 * workspace (the caller rolls back, so no priority changes). */
enum kr_keys_err kr_keys_reorder(struct kr_db *db, const char *ws_id, const char **ids,
		    const unsigned *priorities, size_t n, size_t *bad_index,
		    enum kr_db_err *db_rc);
enum kr_keys_err kr_keys_delete(struct kr_db *db, const char *ws_id, const char *id,
		    enum kr_db_err *db_rc);

/*
 * Record what a use or a test of the key taught (design.md, "Key selection"): OK → valid
 * (failures reset, validated when tested); AUTH → invalid; QUOTA → exhausted; RATE →
 * cooldown until now + retry_after_ms (default 60 s, capped at 5 min); TRANSIENT and
 * REQUEST leave the status alone. used: also set last_used_at. *changed is 1 when the
 * status changed; it is read under the key's row lock, so of two records racing only the
 * one that changes the status says so. The caller appends the key_status_changed event in
 * the same transaction. fingerprint names the secret the outcome is about: when the key
 * holds another one now (rotated while the call was out) or is gone, nothing is recorded
 * and the answer is KR_DB_ABORT. NULL: the key's current secret.
 */
enum kr_db_err	 kr_keys_record(struct kr_db *db, const char *ws_id, const char *id,
		    const char *fingerprint, const struct kr_llm_result *r, int tested, int used,
		    int *changed);

/* Per provider: keys stored and usable now (enabled, untested or valid, not expired). */
struct kr_key_counts {
	unsigned	total[KR_PROV__MAX];
	unsigned	usable[KR_PROV__MAX];
};
enum kr_db_err	 kr_keys_count(struct kr_db *db, const char *ws_id, struct kr_key_counts *c);

#endif
