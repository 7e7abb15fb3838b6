/*
 * kr_vault: wrapped workspace data keys and field ciphertexts (design.md, "Secrets"), over
 * the master keys of kr_master. The contract is in kr_vault.h; comments here explain the
 * choices.
 *
 * Data keys are not cached: each seal or open reads and unwraps the row, so a shredded
 * workspace is unreadable at once in every process, and an unwrapped data key lives on the
 * stack of one call only.
 */
#include "kr_vault.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "kr_crypto.h"
#include "kr_log.h"
#include "kr_master.h"

#define NONCE_LEN	12
#define TAG_LEN		16
#define HDR_LEN		5		/* format byte and version */
#define FIELD_FORMAT	0x01
#define PLAIN_MAX	((size_t)INT_MAX - KR_FIELD_OVERHEAD)
/* header | purpose | '|' workspace | '|' record | '|' column */
#define FIELD_AAD_MAX	(HDR_LEN + 4 * KR_VAULT_NAME_MAX + 3)
/* workspace | '|' version | '|' master id */
#define WRAP_AAD_MAX	(KR_VAULT_NAME_MAX + 1 + 4 + 1 + KR_MASTER_ID_MAX)
#define REKEY_BATCH	100

static const char check_label[] = "keyrelay master key check v1";
static const char fingerprint_info[] = "keyrelay fingerprint v1";

/* ---- SQL ----------------------------------------------------------------------------- */

static const char sql_mk_insert[] = "INSERT INTO master_keys (id, check_hmac) VALUES (?, ?)";
static const char sql_mk_get[] = "SELECT check_hmac FROM master_keys WHERE id = ?";
static const char sql_dk_sample[] =
    "SELECT workspace_id, version, wrapped FROM workspace_keys WHERE master_key_id = ? LIMIT 1";
static const char sql_dk_master_ids[] = "SELECT DISTINCT master_key_id FROM workspace_keys";
static const char sql_dk_current[] =
    "SELECT version, master_key_id, wrapped FROM workspace_keys WHERE workspace_id = ? "
    "ORDER BY version DESC LIMIT 1";
static const char sql_dk_get[] =
    "SELECT version, master_key_id, wrapped FROM workspace_keys "
    "WHERE workspace_id = ? AND version = ?";
static const char sql_dk_insert[] =
    "INSERT INTO workspace_keys (workspace_id, version, master_key_id, wrapped) "
    "VALUES (?, ?, ?, ?)";
static const char sql_dk_count_old[] =
    "SELECT COUNT(*) FROM workspace_keys WHERE master_key_id <> ?";
/* Keyset pagination over the primary key, so every row is visited once even when an
 * update does not apply (another process rewrapped it first). */
static const char sql_dk_list_old[] =
    "SELECT workspace_id, version, master_key_id, wrapped FROM workspace_keys "
    "WHERE master_key_id <> ? AND (workspace_id > ? OR (workspace_id = ? AND version > ?)) "
    "ORDER BY workspace_id, version LIMIT 100";
/* Fenced on the row as it was read: a concurrent rekey or a newer wrap is never undone. */
static const char sql_dk_rewrap[] =
    "UPDATE workspace_keys SET master_key_id = ?, wrapped = ?, "
    "rewrapped_at = CURRENT_TIMESTAMP(3) "
    "WHERE workspace_id = ? AND version = ? AND master_key_id = ? AND wrapped = ?";

/* Whether the loaded keys passed kr_vault_verify in this process (under verify_lock). */
static pthread_mutex_t verify_lock = PTHREAD_MUTEX_INITIALIZER;
static int verified;

/* ---- master keys ---------------------------------------------------------------------- */

enum kr_vault_err
kr_vault_load(const char *spec, const char *active, char *err, size_t errlen)
{
	verified = 0;	/* new keys are checked again before first use: ensure_verified */
	return kr_master_load(spec, active, err, errlen);
}

void
kr_vault_unload(void)
{
	kr_master_unload();
}

const char *
kr_vault_active_id(void)
{
	const struct kr_master_key *mk = kr_master_active();

	return mk != NULL ? mk->id : "";
}

enum kr_vault_err
kr_vault_master_check(const char *id, char out[65])
{
	const struct kr_master_key *mk = kr_master_find(id);
	unsigned char mac[KR_SHA256_LEN];

	out[0] = '\0';
	if (mk == NULL)
		return KR_VAULT_NOKEY;
	if (kr_hmac_sha256(mk->key, KR_KEY_LEN, check_label, sizeof(check_label) - 1, mac) !=
	    KR_CRYPTO_OK)
		return KR_VAULT_ERROR;
	kr_hex_encode(mac, sizeof(mac), out);
	kr_wipe(mac, sizeof(mac));
	return KR_VAULT_OK;
}

/* ---- AES-256-GCM --------------------------------------------------------------------- */

/* Encrypt inlen bytes of in to out (inlen bytes) and tag. */
static enum kr_vault_err
gcm_seal(const unsigned char key[KR_KEY_LEN], const unsigned char nonce[NONCE_LEN],
    const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t inlen,
    unsigned char *out, unsigned char tag[TAG_LEN])
{
	enum kr_vault_err rc = KR_VAULT_ERROR;
	EVP_CIPHER_CTX *ctx = NULL;
	int len = 0;

	if (inlen > PLAIN_MAX || aadlen > INT_MAX || (ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto out;
	if (aadlen > 0 && EVP_EncryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
		goto out;
	if (inlen > 0 && (EVP_EncryptUpdate(ctx, out, &len, in, (int)inlen) != 1 ||
	    (size_t)len != inlen))
		goto out;
	if (EVP_EncryptFinal_ex(ctx, out + inlen, &len) != 1 || len != 0 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	rc = KR_VAULT_OK;
out:
	EVP_CIPHER_CTX_free(ctx);	/* cleanses the key schedule */
	return rc;
}

/*
 * Decrypt inlen bytes of in to out and verify tag: KR_VAULT_CORRUPT when it does not
 * verify. out is wiped on every failure, so nothing unauthenticated is left behind.
 */
static enum kr_vault_err
gcm_open(const unsigned char key[KR_KEY_LEN], const unsigned char nonce[NONCE_LEN],
    const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t inlen,
    const unsigned char tag[TAG_LEN], unsigned char *out)
{
	enum kr_vault_err rc = KR_VAULT_ERROR;
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char t[TAG_LEN];
	int len = 0;

	memcpy(t, tag, TAG_LEN);
	if (inlen > PLAIN_MAX || aadlen > INT_MAX || (ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
		goto out;
	if (aadlen > 0 && EVP_DecryptUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
		goto out;
	if (inlen > 0 && (EVP_DecryptUpdate(ctx, out, &len, in, (int)inlen) != 1 ||
	    (size_t)len != inlen))
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, t) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, out + inlen, &len) != 1 || len != 0) {
		rc = KR_VAULT_CORRUPT;
		goto out;
	}
	rc = KR_VAULT_OK;
out:
	if (rc != KR_VAULT_OK)
		kr_wipe(out, inlen);
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* ---- fields -------------------------------------------------------------------------- */

static int
valid_name(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strnlen(s, KR_VAULT_NAME_MAX + 1);
	return n > 0 && n <= KR_VAULT_NAME_MAX && memchr(s, '|', n) == NULL;
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static size_t
add_part(unsigned char *aad, size_t o, const char *s, int sep)
{
	size_t n = strlen(s);

	if (sep)
		aad[o++] = '|';
	memcpy(aad + o, s, n);
	return o + n;
}

/* header | purpose | '|' workspace | '|' record | '|' column; names already validated. */
static size_t
field_aad(unsigned char aad[FIELD_AAD_MAX], const unsigned char hdr[HDR_LEN],
    const char *purpose, const char *ws, const char *rec, const char *col)
{
	size_t o;

	memcpy(aad, hdr, HDR_LEN);
	o = add_part(aad, HDR_LEN, purpose, 0);
	o = add_part(aad, o, ws, 1);
	o = add_part(aad, o, rec, 1);
	return add_part(aad, o, col, 1);
}

enum kr_vault_err
kr_vault_field_version(const unsigned char *ct, size_t ctlen, uint32_t *version)
{
	*version = 0;
	if (ct == NULL || ctlen < KR_FIELD_OVERHEAD || ct[0] != FIELD_FORMAT ||
	    get_be32(ct + 1) == 0)
		return KR_VAULT_CORRUPT;
	*version = get_be32(ct + 1);
	return KR_VAULT_OK;
}

enum kr_vault_err
kr_vault_seal_raw(const unsigned char key[KR_KEY_LEN], uint32_t version, const char *purpose,
    const char *workspace_id, const char *record_id, const char *column, const void *plain,
    size_t plainlen, unsigned char **out, size_t *outlen)
{
	unsigned char aad[FIELD_AAD_MAX], *buf = NULL;
	enum kr_vault_err rc = KR_VAULT_ERROR;
	size_t aadlen;

	*out = NULL;
	*outlen = 0;
	if (version == 0 || !valid_name(purpose) || !valid_name(workspace_id) ||
	    !valid_name(record_id) || !valid_name(column) || (plain == NULL && plainlen > 0) ||
	    plainlen > PLAIN_MAX)
		goto out;
	if ((buf = malloc(plainlen + KR_FIELD_OVERHEAD)) == NULL)
		goto out;
	buf[0] = FIELD_FORMAT;
	put_be32(buf + 1, version);
	if (kr_random(buf + HDR_LEN, NONCE_LEN) != KR_CRYPTO_OK)
		goto out;
	aadlen = field_aad(aad, buf, purpose, workspace_id, record_id, column);
	rc = gcm_seal(key, buf + HDR_LEN, aad, aadlen, plain, plainlen,
	    buf + HDR_LEN + NONCE_LEN, buf + HDR_LEN + NONCE_LEN + plainlen);
	if (rc != KR_VAULT_OK)
		goto out;
	*out = buf;
	*outlen = plainlen + KR_FIELD_OVERHEAD;
	buf = NULL;
out:
	free(buf);
	return rc;
}

enum kr_vault_err
kr_vault_open_raw(const unsigned char key[KR_KEY_LEN], const char *purpose,
    const char *workspace_id, const char *record_id, const char *column,
    const unsigned char *ct, size_t ctlen, char **plain, size_t *plainlen)
{
	unsigned char aad[FIELD_AAD_MAX], *tmp = NULL;
	enum kr_vault_err rc = KR_VAULT_ERROR;
	uint32_t version;
	size_t aadlen, n;

	*plain = NULL;
	*plainlen = 0;
	if (!valid_name(purpose) || !valid_name(workspace_id) || !valid_name(record_id) ||
	    !valid_name(column))
		goto out;
	if ((rc = kr_vault_field_version(ct, ctlen, &version)) != KR_VAULT_OK)
		goto out;
	rc = KR_VAULT_ERROR;
	n = ctlen - KR_FIELD_OVERHEAD;
	if ((tmp = malloc(n + 1)) == NULL)
		goto out;
	aadlen = field_aad(aad, ct, purpose, workspace_id, record_id, column);
	rc = gcm_open(key, ct + HDR_LEN, aad, aadlen, ct + HDR_LEN + NONCE_LEN, n,
	    ct + HDR_LEN + NONCE_LEN + n, tmp);
	if (rc != KR_VAULT_OK)
		goto out;
	tmp[n] = '\0';
	*plain = (char *)tmp;
	*plainlen = n;
	tmp = NULL;
out:
	free(tmp);	/* gcm_open wiped it */
	return rc;
}

/* ---- wrapped data keys --------------------------------------------------------------- */

static size_t
wrap_aad(unsigned char aad[WRAP_AAD_MAX], const char *ws, uint32_t version, const char *mid)
{
	size_t o = add_part(aad, 0, ws, 0);

	aad[o++] = '|';
	put_be32(aad + o, version);
	return add_part(aad, o + 4, mid, 1);
}

enum kr_vault_err
kr_vault_wrap_raw(const unsigned char master[KR_KEY_LEN], const char *master_id,
    const char *workspace_id, uint32_t version, const unsigned char dk[KR_KEY_LEN],
    unsigned char out[KR_WRAPPED_LEN])
{
	unsigned char aad[WRAP_AAD_MAX];
	size_t aadlen;

	if (master_id == NULL || !kr_master_valid_id(master_id, strlen(master_id)) ||
	    !valid_name(workspace_id) || version == 0)
		return KR_VAULT_ERROR;
	if (kr_random(out, NONCE_LEN) != KR_CRYPTO_OK)
		return KR_VAULT_ERROR;
	aadlen = wrap_aad(aad, workspace_id, version, master_id);
	return gcm_seal(master, out, aad, aadlen, dk, KR_KEY_LEN, out + NONCE_LEN,
	    out + NONCE_LEN + KR_KEY_LEN);
}

enum kr_vault_err
kr_vault_unwrap_raw(const unsigned char master[KR_KEY_LEN], const char *master_id,
    const char *workspace_id, uint32_t version, const unsigned char wrapped[KR_WRAPPED_LEN],
    unsigned char dk[KR_KEY_LEN])
{
	unsigned char aad[WRAP_AAD_MAX];
	size_t aadlen;

	memset(dk, 0, KR_KEY_LEN);
	if (master_id == NULL || !kr_master_valid_id(master_id, strlen(master_id)) ||
	    !valid_name(workspace_id) || version == 0)
		return KR_VAULT_ERROR;
	aadlen = wrap_aad(aad, workspace_id, version, master_id);
	return gcm_open(master, wrapped, aad, aadlen, wrapped + NONCE_LEN, KR_KEY_LEN,
	    wrapped + NONCE_LEN + KR_KEY_LEN, dk);
}

/* ---- data keys in the database ------------------------------------------------------- */

static uint32_t
cell_version(const struct kr_db_res *res, unsigned row, unsigned col)
{
	long long v = kr_db_cell_int(res, row, col, 0);

	return v > 0 && v <= (long long)UINT32_MAX ? (uint32_t)v : 0;
}

/* Unwrap a data key row; the master key it names must be loaded. */
static enum kr_vault_err
unwrap_row(const char *ws, uint32_t version, const char *mid, const char *wrapped,
    size_t wlen, unsigned char dk[KR_KEY_LEN])
{
	const struct kr_master_key *mk = kr_master_find(mid);
	enum kr_vault_err rc;

	memset(dk, 0, KR_KEY_LEN);
	if (mk == NULL) {
		kr_error("data key %u of workspace %s is wrapped under master key '%s', which "
		    "is not loaded", version, ws, mid != NULL ? mid : "");
		return KR_VAULT_NOKEY;
	}
	if (version == 0 || wrapped == NULL || wlen != KR_WRAPPED_LEN)
		rc = KR_VAULT_CORRUPT;
	else
		rc = kr_vault_unwrap_raw(mk->key, mid, ws, version,
		    (const unsigned char *)wrapped, dk);
	if (rc == KR_VAULT_CORRUPT)
		kr_error("data key %u of workspace %s does not verify under master key '%s'",
		    version, ws, mid);
	return rc;
}

/* Unwrap row 0 of a (version, master_key_id, wrapped) result. */
static enum kr_vault_err
unwrap_res(const struct kr_db_res *res, const char *ws, uint32_t *version,
    unsigned char dk[KR_KEY_LEN])
{
	*version = cell_version(res, 0, 0);
	return unwrap_row(ws, *version, kr_db_cell(res, 0, 1), kr_db_cell(res, 0, 2),
	    res->lens[2], dk);
}

/*
 * No data key is used, made or wrapped before the loaded master keys passed
 * kr_vault_verify in this process: a program that started while the database was away
 * checks them on first use instead, so a wrong key can never wrap a data key.
 */
static enum kr_vault_err
ensure_verified(struct kr_db *db)
{
	enum kr_vault_err rc = KR_VAULT_OK;
	char err[256];

	pthread_mutex_lock(&verify_lock);
	if (!verified) {
		if ((rc = kr_vault_verify(db, err, sizeof(err))) != KR_VAULT_OK)
			kr_error("master keys: %s", err);
	}
	pthread_mutex_unlock(&verify_lock);
	return rc;
}

/* Data key version of the workspace: KR_VAULT_NOKEY when there is no such row. */
static enum kr_vault_err
dk_get(struct kr_db *db, const char *ws, uint32_t version, unsigned char dk[KR_KEY_LEN])
{
	struct kr_dbp p[2] = { KR_P_STR(ws), KR_P_INT(version) };
	struct kr_db_res res;
	enum kr_vault_err rc;
	uint32_t v;

	if ((rc = ensure_verified(db)) != KR_VAULT_OK)
		return rc;
	memset(dk, 0, KR_KEY_LEN);
	if (kr_db_exec(db, sql_dk_get, p, 2, &res, NULL) != KR_DB_OK)
		return KR_VAULT_DB;
	if (res.nrows == 0)
		rc = KR_VAULT_NOKEY;
	else if ((rc = unwrap_res(&res, ws, &v, dk)) == KR_VAULT_OK && v != version)
		rc = KR_VAULT_CORRUPT;
	kr_db_res_free(&res);
	if (rc != KR_VAULT_OK)
		kr_wipe(dk, KR_KEY_LEN);
	return rc;
}

/*
 * Make data key version for the workspace under the active master key. When the row exists
 * already (another process made it first: PRIMARY KEY (workspace_id, version)), that row's
 * key is the one returned, so every process seals under the same key.
 */
static enum kr_vault_err
dk_create(struct kr_db *db, const char *ws, uint32_t version, unsigned char dk[KR_KEY_LEN])
{
	const struct kr_master_key *mk = kr_master_active();
	unsigned char wrapped[KR_WRAPPED_LEN];
	enum kr_vault_err rc = KR_VAULT_NOKEY;
	enum kr_db_err drc;
	struct kr_dbp p[4];

	if (mk == NULL)
		goto out;
	rc = KR_VAULT_ERROR;
	if (kr_random(dk, KR_KEY_LEN) != KR_CRYPTO_OK ||
	    kr_vault_wrap_raw(mk->key, mk->id, ws, version, dk, wrapped) != KR_VAULT_OK)
		goto out;
	p[0] = KR_P_STR(ws);
	p[1] = KR_P_INT(version);
	p[2] = KR_P_STR(mk->id);
	p[3] = KR_P_BLOB(wrapped, sizeof(wrapped));
	drc = kr_db_exec(db, sql_dk_insert, p, 4, NULL, NULL);
	if (drc == KR_DB_DUPLICATE)
		rc = dk_get(db, ws, version, dk);
	else
		rc = drc == KR_DB_OK ? KR_VAULT_OK : KR_VAULT_DB;
out:
	if (rc != KR_VAULT_OK)
		kr_wipe(dk, KR_KEY_LEN);
	return rc;
}

/*
 * The workspace's current (highest) data key. With create, version 1 is made when the
 * workspace has none; without, that is KR_VAULT_NOKEY. *version 0 means none.
 */
static enum kr_vault_err
dk_current(struct kr_db *db, const char *ws, int create, uint32_t *version,
    unsigned char dk[KR_KEY_LEN])
{
	struct kr_dbp p[1] = { KR_P_STR(ws) };
	struct kr_db_res res;
	enum kr_vault_err rc;

	if ((rc = ensure_verified(db)) != KR_VAULT_OK)
		return rc;
	*version = 0;
	memset(dk, 0, KR_KEY_LEN);
	if (kr_db_exec(db, sql_dk_current, p, 1, &res, NULL) != KR_DB_OK)
		return KR_VAULT_DB;
	if (res.nrows > 0)
		rc = unwrap_res(&res, ws, version, dk);
	else if (create && (rc = dk_create(db, ws, 1, dk)) == KR_VAULT_OK)
		*version = 1;
	else if (!create)
		rc = KR_VAULT_NOKEY;
	kr_db_res_free(&res);
	if (rc != KR_VAULT_OK)
		kr_wipe(dk, KR_KEY_LEN);
	return rc;
}

enum kr_vault_err
kr_vault_seal(struct kr_db *db, const char *workspace_id, const char *purpose,
    const char *record_id, const char *column, const void *plain, size_t plainlen,
    unsigned char **out, size_t *outlen)
{
	unsigned char dk[KR_KEY_LEN];
	enum kr_vault_err rc;
	uint32_t version;

	*out = NULL;
	*outlen = 0;
	if (!valid_name(workspace_id) || !valid_name(purpose) || !valid_name(record_id) ||
	    !valid_name(column))
		return KR_VAULT_ERROR;
	if ((rc = dk_current(db, workspace_id, 1, &version, dk)) == KR_VAULT_OK)
		rc = kr_vault_seal_raw(dk, version, purpose, workspace_id, record_id, column,
		    plain, plainlen, out, outlen);
	kr_wipe(dk, sizeof(dk));
	return rc;
}

enum kr_vault_err
kr_vault_open(struct kr_db *db, const char *workspace_id, const char *purpose,
    const char *record_id, const char *column, const unsigned char *ct, size_t ctlen,
    char **plain, size_t *plainlen)
{
	unsigned char dk[KR_KEY_LEN];
	enum kr_vault_err rc;
	uint32_t version;

	*plain = NULL;
	*plainlen = 0;
	if (!valid_name(workspace_id) || !valid_name(purpose) || !valid_name(record_id) ||
	    !valid_name(column))
		return KR_VAULT_ERROR;
	if ((rc = kr_vault_field_version(ct, ctlen, &version)) != KR_VAULT_OK)
		return rc;
	if ((rc = dk_get(db, workspace_id, version, dk)) == KR_VAULT_OK)
		rc = kr_vault_open_raw(dk, purpose, workspace_id, record_id, column, ct, ctlen,
		    plain, plainlen);
	kr_wipe(dk, sizeof(dk));
	return rc;
}

/* HKDF-SHA256 (RFC 5869) of ikm without salt, through EVP_KDF "HKDF". */
static enum kr_vault_err
hkdf_sha256(const unsigned char *ikm, size_t ikmlen, const char *info,
    unsigned char out[KR_SHA256_LEN])
{
	char digest[] = "SHA256";
	enum kr_vault_err rc = KR_VAULT_ERROR;
	EVP_KDF_CTX *kctx = NULL;
	EVP_KDF *kdf;
	OSSL_PARAM params[4];

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL)
		goto out;
	kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (kctx == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    (void *)(uintptr_t)ikm, ikmlen);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (void *)(uintptr_t)info, strlen(info));
	params[3] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, KR_SHA256_LEN, params) != 1)
		goto out;
	rc = KR_VAULT_OK;
out:
	EVP_KDF_CTX_free(kctx);
	if (rc != KR_VAULT_OK)
		kr_wipe(out, KR_SHA256_LEN);
	return rc;
}

enum kr_vault_err
kr_vault_fingerprint(struct kr_db *db, const char *workspace_id, const char *provider,
    const char *secret, size_t len, char out[65])
{
	unsigned char dk[KR_KEY_LEN], kfp[KR_SHA256_LEN], mac[KR_SHA256_LEN], *msg = NULL;
	enum kr_vault_err rc = KR_VAULT_ERROR;
	size_t wl, pl, n = 0;
	uint32_t version;

	out[0] = '\0';
	memset(dk, 0, sizeof(dk));
	memset(kfp, 0, sizeof(kfp));
	if (!valid_name(workspace_id) || !valid_name(provider) || (secret == NULL && len > 0) ||
	    len > PLAIN_MAX)
		goto out;
	/* Version 1, which exists as long as the workspace has data keys at all. */
	rc = dk_current(db, workspace_id, 1, &version, dk);
	if (rc == KR_VAULT_OK && version != 1)
		rc = dk_get(db, workspace_id, 1, dk);
	if (rc != KR_VAULT_OK || (rc = hkdf_sha256(dk, sizeof(dk), fingerprint_info, kfp)) !=
	    KR_VAULT_OK)
		goto out;
	rc = KR_VAULT_ERROR;
	wl = strlen(workspace_id);
	pl = strlen(provider);
	n = wl + 1 + pl + 1 + len;
	if ((msg = malloc(n)) == NULL)
		goto out;
	memcpy(msg, workspace_id, wl);
	msg[wl] = '|';
	memcpy(msg + wl + 1, provider, pl);
	msg[wl + 1 + pl] = '|';
	if (len > 0)
		memcpy(msg + wl + pl + 2, secret, len);
	if (kr_hmac_sha256(kfp, sizeof(kfp), msg, n, mac) != KR_CRYPTO_OK)
		goto out;
	kr_hex_encode(mac, sizeof(mac), out);
	rc = KR_VAULT_OK;
out:
	if (msg != NULL)
		kr_wipe(msg, n);
	free(msg);
	kr_wipe(dk, sizeof(dk));
	kr_wipe(kfp, sizeof(kfp));
	kr_wipe(mac, sizeof(mac));
	return rc;
}

/* ---- verification, rekey, shredding -------------------------------------------------- */

/*
 * Record or compare the check of one loaded master key, then make sure it unwraps one of the
 * data keys wrapped under its id: that catches a wrong key even when its check row is gone.
 */
static enum kr_vault_err
check_master(struct kr_db *db, const struct kr_master_key *mk, char *err, size_t errlen)
{
	struct kr_dbp p[2];
	struct kr_db_res res;
	enum kr_vault_err rc = KR_VAULT_DB;
	enum kr_db_err drc;
	unsigned char dk[KR_KEY_LEN];
	char check[65];
	const char *have;
	int recorded;

	memset(&res, 0, sizeof(res));
	if ((rc = kr_vault_master_check(mk->id, check)) != KR_VAULT_OK)
		goto out;
	rc = KR_VAULT_DB;
	p[0] = KR_P_STR(mk->id);
	p[1] = KR_P_STR(check);
	if (kr_db_exec(db, sql_mk_get, p, 1, &res, NULL) != KR_DB_OK)
		goto dberr;
	have = kr_db_cell(&res, 0, 0);
	recorded = res.nrows == 1;
	if (recorded && (have == NULL || res.lens[0] != 64 || !kr_ct_equal(have, check, 64)))
		goto mismatch;
	kr_db_res_free(&res);
	/* A data key wrapped under this id must unwrap, recorded check or not. */
	if (kr_db_exec(db, sql_dk_sample, p, 1, &res, NULL) != KR_DB_OK)
		goto dberr;
	if (res.nrows > 0 && kr_db_cell(&res, 0, 0) != NULL &&
	    unwrap_row(kr_db_cell(&res, 0, 0), cell_version(&res, 0, 1), mk->id,
	    kr_db_cell(&res, 0, 2), res.lens[2], dk) != KR_VAULT_OK) {
		kr_master_seterr(err, errlen, "master key '%s' does not unwrap data key %s of "
		    "workspace %s", mk->id, kr_db_cell(&res, 0, 1), kr_db_cell(&res, 0, 0));
		rc = KR_VAULT_MISMATCH;
		goto out;
	}
	kr_db_res_free(&res);
	/* Only a key that passed every check is recorded for its id. */
	if (!recorded) {
		drc = kr_db_exec(db, sql_mk_insert, p, 2, NULL, NULL);
		if (drc == KR_DB_DUPLICATE) {	/* recorded meanwhile: compare with that */
			if (kr_db_exec(db, sql_mk_get, p, 1, &res, NULL) != KR_DB_OK ||
			    res.nrows != 1)
				goto dberr;
			have = kr_db_cell(&res, 0, 0);
			if (have == NULL || res.lens[0] != 64 || !kr_ct_equal(have, check, 64))
				goto mismatch;
		} else if (drc != KR_DB_OK)
			goto dberr;
	}
	rc = KR_VAULT_OK;
	goto out;
mismatch:
	kr_master_seterr(err, errlen, "master key '%s' is not the key this database recorded for "
	    "that id", mk->id);
	rc = KR_VAULT_MISMATCH;
	goto out;
dberr:
	kr_master_seterr(err, errlen, "database error while checking master key '%s'", mk->id);
	rc = KR_VAULT_DB;
out:
	kr_wipe(dk, sizeof(dk));
	kr_db_res_free(&res);
	return rc;
}

enum kr_vault_err
kr_vault_verify(struct kr_db *db, char *err, size_t errlen)
{
	struct kr_db_res res;
	enum kr_vault_err rc;

	kr_master_seterr(err, errlen, "%s", "");
	if (kr_master_count() == 0) {
		kr_master_seterr(err, errlen, "no master key is loaded");
		return KR_VAULT_NOKEY;
	}
	for (unsigned i = 0; i < kr_master_count(); i++)
		if ((rc = check_master(db, kr_master_at(i), err, errlen)) != KR_VAULT_OK)
			return rc;
	if (kr_db_exec(db, sql_dk_master_ids, NULL, 0, &res, NULL) != KR_DB_OK) {
		kr_master_seterr(err, errlen, "database error while listing data key master ids");
		return KR_VAULT_DB;
	}
	rc = KR_VAULT_OK;
	for (unsigned r = 0; r < res.nrows && rc == KR_VAULT_OK; r++) {
		const char *mid = kr_db_cell(&res, r, 0);
		if (kr_master_find(mid) == NULL) {
			kr_master_seterr(err, errlen, "data keys are wrapped under master key "
			    "'%s', which is not loaded", mid != NULL ? mid : "");
			rc = KR_VAULT_NOKEY;
		}
	}
	kr_db_res_free(&res);
	if (rc == KR_VAULT_OK)
		verified = 1;
	return rc;
}

enum { REKEY_DONE, REKEY_SKIPPED };

/* Rewrap row r of a rekey batch under mk; *outcome says whether this run changed it. */
static enum kr_vault_err
rekey_row(struct kr_db *db, const struct kr_master_key *mk, const struct kr_db_res *res,
    unsigned r, int *outcome)
{
	const char *ws = kr_db_cell(res, r, 0), *mid = kr_db_cell(res, r, 2);
	const char *old = kr_db_cell(res, r, 3);
	uint32_t version = cell_version(res, r, 1);
	unsigned char dk[KR_KEY_LEN], wrapped[KR_WRAPPED_LEN];
	enum kr_vault_err rc;
	uint64_t affected = 0;
	struct kr_dbp p[6];

	if (ws == NULL || !valid_name(ws))
		return KR_VAULT_CORRUPT;
	if ((rc = unwrap_row(ws, version, mid, old, res->lens[r * res->ncols + 3], dk)) !=
	    KR_VAULT_OK)
		goto out;
	if ((rc = kr_vault_wrap_raw(mk->key, mk->id, ws, version, dk, wrapped)) != KR_VAULT_OK)
		goto out;
	p[0] = KR_P_STR(mk->id);
	p[1] = KR_P_BLOB(wrapped, sizeof(wrapped));
	p[2] = KR_P_STR(ws);
	p[3] = KR_P_INT(version);
	p[4] = KR_P_STR(mid);
	p[5] = KR_P_BLOB(old, KR_WRAPPED_LEN);
	if (kr_db_exec(db, sql_dk_rewrap, p, 6, NULL, &affected) != KR_DB_OK) {
		kr_error("rekey: database error on data key %u of workspace %s", version, ws);
		rc = KR_VAULT_DB;
		goto out;
	}
	*outcome = affected > 0 ? REKEY_DONE : REKEY_SKIPPED;
out:
	kr_wipe(dk, sizeof(dk));
	return rc;
}

enum kr_vault_err
kr_vault_rekey_counted(struct kr_db *db,
    void (*progress)(unsigned long done, unsigned long total, void *), void *arg,
    struct kr_vault_rekey_counts *counts)
{
	struct kr_vault_rekey_counts c = { 0, 0, 0, 0 };
	const struct kr_master_key *mk = kr_master_active();
	char last_ws[KR_VAULT_NAME_MAX + 1] = "", msg[512];
	struct kr_db_res res;
	enum kr_vault_err rc = KR_VAULT_NOKEY;
	long long last_ver = 0;
	struct kr_dbp p[4];
	int outcome = REKEY_SKIPPED;

	memset(&res, 0, sizeof(res));
	if (mk == NULL)
		goto out;
	/* Never rewrap under a key the database does not know, nor with an old one that
	 * does not match: both are checked as at start. */
	for (unsigned i = 0; i < kr_master_count(); i++)
		if ((rc = check_master(db, kr_master_at(i), msg, sizeof(msg))) != KR_VAULT_OK) {
			kr_error("rekey: %s", msg);
			goto out;
		}
	rc = KR_VAULT_DB;
	p[0] = KR_P_STR(mk->id);
	if (kr_db_exec(db, sql_dk_count_old, p, 1, &res, NULL) != KR_DB_OK)
		goto out;
	c.total = (unsigned long)kr_db_cell_int(&res, 0, 0, 0);
	for (;;) {
		kr_db_res_free(&res);
		p[1] = KR_P_STR(last_ws);
		p[2] = KR_P_STR(last_ws);
		p[3] = KR_P_INT(last_ver);
		if (kr_db_exec(db, sql_dk_list_old, p, 4, &res, NULL) != KR_DB_OK)
			goto out;
		if (res.nrows == 0)
			break;
		for (unsigned r = 0; r < res.nrows; r++) {
			if ((rc = rekey_row(db, mk, &res, r, &outcome)) != KR_VAULT_OK)
				goto out;
			if (outcome == REKEY_DONE)
				c.rewrapped++;
			else
				c.skipped++;
			if (progress != NULL)
				progress(c.rewrapped + c.skipped, c.total, arg);
		}
		/* rekey_row checked that the workspace id fits. */
		memcpy(last_ws, kr_db_cell(&res, res.nrows - 1, 0),
		    strlen(kr_db_cell(&res, res.nrows - 1, 0)) + 1);
		last_ver = kr_db_cell_int(&res, res.nrows - 1, 1, 0);
		rc = KR_VAULT_DB;
	}
	kr_db_res_free(&res);
	if (kr_db_exec(db, sql_dk_count_old, p, 1, &res, NULL) != KR_DB_OK)
		goto out;
	c.left = (unsigned long)kr_db_cell_int(&res, 0, 0, 0);
	rc = KR_VAULT_OK;
out:
	kr_db_res_free(&res);
	if (counts != NULL)
		*counts = c;
	return rc;
}
