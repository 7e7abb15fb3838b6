/*
 * kr_vault: envelope encryption of workspace secrets (design.md, "Secrets").
 *
 * Master keys (32 bytes each, with a short id) are loaded once per process from files or
 * environment variables, kept in locked memory excluded from core dumps; one is active.
 * Each workspace has data keys (32 random bytes per version) stored in workspace_keys,
 * wrapped with AES-256-GCM under a master key with AAD "workspace id|version|master id".
 * A secret field is stored as
 *
 *	0x01 | data-key version (4 bytes, big endian) | nonce (12) | ciphertext | tag (16)
 *
 * AES-256-GCM with AAD = the 5-byte header | purpose | '|' workspace id | '|' record id |
 * '|' column, so a ciphertext copied to another row, column or workspace does not decrypt.
 * Plaintext is released only after the tag verified. Nothing here logs a secret.
 */
#ifndef KR_VAULT_H
#define KR_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "kr_db.h"

#define KR_KEY_LEN		32
#define KR_MASTER_ID_MAX	32	/* [A-Za-z0-9_-]{1,32} */
#define KR_FIELD_OVERHEAD	(1 + 4 + 12 + 16)
#define KR_MASTER_KEYS_MAX	8	/* master keys loaded at once */
#define KR_WRAPPED_LEN		(12 + KR_KEY_LEN + 16)	/* nonce | ciphertext | tag */
/*
 * purpose, workspace id, record id, column and provider: 1 to KR_VAULT_NAME_MAX bytes without
 * '|', the AAD separator (so no two tuples give the same AAD); anything else is refused with
 * KR_VAULT_ERROR, as a caller's bug.
 */
#define KR_VAULT_NAME_MAX	255

enum kr_vault_err {
	KR_VAULT_OK = 0,
	KR_VAULT_CONFIG,	/* master key configuration wrong (bad id, file, length, ...) */
	KR_VAULT_NOKEY,		/* a master key or data key that is needed is not there */
	KR_VAULT_MISMATCH,	/* a master key does not match what the database was made with */
	KR_VAULT_CORRUPT,	/* a ciphertext or wrapped key did not verify: tampered or moved */
	KR_VAULT_DB,		/* the database failed; see kr_db_errno */
	KR_VAULT_ERROR,		/* OpenSSL or memory failure, or an invalid name (a bug) */
};

/*
 * Load master keys from spec, a comma-separated list of ID=SOURCE where SOURCE is
 * "file:/path" (32 raw bytes that are not all text, or 64 hex digits, or base64 or base64url
 * of 32 bytes, not all zero, optionally followed by a newline; the file must not be readable
 * or writable by group or others) or "env:NAME" (same encodings; the variable's bytes are
 * wiped and it is unset after reading). active names
 * the master key that wraps new data keys (NULL: the only one). err gets a message naming
 * the key id or source, never key material. Ids are [A-Za-z0-9_-]{1,32}, unique, 1 to
 * KR_MASTER_KEYS_MAX of them; paths are absolute. Every variable the spec names is wiped and
 * unset even when loading fails. Call once at start, before threads; a second call replaces
 * the keys, and after a failure none is loaded.
 */
enum kr_vault_err	kr_vault_load(const char *spec, const char *active, char *err,
			    size_t errlen);
/* Wipe and unlock every master key. */
void			kr_vault_unload(void);
/* The active master key's id ("" before kr_vault_load). */
const char		*kr_vault_active_id(void);

/*
 * Check the loaded master keys against the database (table master_keys keeps an HMAC of
 * each id's key): a loaded key whose check differs is KR_VAULT_MISMATCH; a data key
 * wrapped under an id that is not loaded is KR_VAULT_NOKEY. Records checks for new ids.
 */
enum kr_vault_err	kr_vault_verify(struct kr_db *db, char *err, size_t errlen);

/*
 * Encrypt plaintext for (purpose, workspace, record, column) under the workspace's current
 * data key (created on first use). *out is malloc'd, *outlen bytes; caller frees.
 */
enum kr_vault_err	kr_vault_seal(struct kr_db *db, const char *workspace_id,
			    const char *purpose, const char *record_id, const char *column,
			    const void *plain, size_t plainlen, unsigned char **out,
			    size_t *outlen);
/*
 * Decrypt a field. *plain is malloc'd with a NUL after *plainlen bytes; the caller wipes
 * (kr_wipe) and frees it as soon as it is done.
 */
enum kr_vault_err	kr_vault_open(struct kr_db *db, const char *workspace_id,
			    const char *purpose, const char *record_id, const char *column,
			    const unsigned char *ct, size_t ctlen, char **plain,
			    size_t *plainlen);

/*
 * A keyed fingerprint for duplicate detection without decryption:
 * HMAC-SHA256(k_fp, workspace id | provider | secret) in hex, where k_fp is derived by HKDF
 * from the workspace's first data key, so it survives master-key rotation (which only
 * rewraps data keys) and is destroyed with the workspace.
 */
enum kr_vault_err	kr_vault_fingerprint(struct kr_db *db, const char *workspace_id,
			    const char *provider, const char *secret, size_t len,
			    char out[65]);

/*
 * Rewrap every data key not yet under the active master key (needs the old one loaded
 * too), one row per short transaction, so an interrupted run resumes where it stopped.
 * Before rewrapping, each loaded key is checked as kr_vault_verify does. progress(done,
 * total, arg) is called after each row (may be NULL). Errors are logged with the workspace
 * id, version and master id.
 *
 * What it did goes to *counts (may be NULL; filled on error too): total, the rows under
 * another master key when the run started; rewrapped, the rows this run rewrapped; skipped,
 * the rows it read but another process changed first (the UPDATE is fenced on the old
 * master id and wrapped key). With two runs at once, rows the other one finished before
 * this one read them are in neither count, so rewrapped + skipped may end below total.
 * left: the rows still under another master key after the run (made meanwhile by a
 * process whose active key is still an old one: the run does not go back for them).
 */
struct kr_vault_rekey_counts {
	unsigned long	total;
	unsigned long	rewrapped;
	unsigned long	skipped;
	unsigned long	left;
};
enum kr_vault_err	kr_vault_rekey_counted(struct kr_db *db,
			    void (*progress)(unsigned long done, unsigned long total, void *),
			    void *arg, struct kr_vault_rekey_counts *counts);

/* ---- for tests and internal use -------------------------------------------------------- */

/*
 * The check master_keys records for the loaded key id: lower-case hex of
 * HMAC-SHA256(key, "keyrelay master key check v1"). KR_VAULT_NOKEY when id is not loaded.
 */
enum kr_vault_err	kr_vault_master_check(const char *id, char out[65]);

/*
 * The field format over a raw data key of the given version (1 or more). seal_raw writes
 * plainlen + KR_FIELD_OVERHEAD bytes to a malloc'd *out. open_raw takes the version from the
 * header; a short input, another format byte, version 0 or a tag that does not verify is
 * KR_VAULT_CORRUPT, and *plain is set (malloc'd, NUL-terminated) only after the tag verified.
 */
enum kr_vault_err	kr_vault_seal_raw(const unsigned char key[KR_KEY_LEN], uint32_t version,
			    const char *purpose, const char *workspace_id, const char *record_id,
			    const char *column, const void *plain, size_t plainlen,
			    unsigned char **out, size_t *outlen);
enum kr_vault_err	kr_vault_open_raw(const unsigned char key[KR_KEY_LEN],
			    const char *purpose, const char *workspace_id, const char *record_id,
			    const char *column, const unsigned char *ct, size_t ctlen, char **plain,
			    size_t *plainlen);
/* The data-key version of a field: KR_VAULT_CORRUPT when it cannot be a format-1 field. */
enum kr_vault_err	kr_vault_field_version(const unsigned char *ct, size_t ctlen,
			    uint32_t *version);

/*
 * Wrap and unwrap a data key under a raw master key: nonce (12, random) | ciphertext (32) |
 * tag (16), AES-256-GCM with AAD workspace id | '|' | version (4 bytes, big endian) | '|' |
 * master id. unwrap_raw: KR_VAULT_CORRUPT when the tag does not verify (dk is then zero).
 */
enum kr_vault_err	kr_vault_wrap_raw(const unsigned char master[KR_KEY_LEN],
			    const char *master_id, const char *workspace_id, uint32_t version,
			    const unsigned char dk[KR_KEY_LEN], unsigned char out[KR_WRAPPED_LEN]);
enum kr_vault_err	kr_vault_unwrap_raw(const unsigned char master[KR_KEY_LEN],
			    const char *master_id, const char *workspace_id, uint32_t version,
			    const unsigned char wrapped[KR_WRAPPED_LEN],
			    unsigned char dk[KR_KEY_LEN]);

#endif
