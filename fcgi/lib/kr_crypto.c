/*
 * kr_crypto: hashing, MACs, encodings, password hashing and random secrets over OpenSSL 3.
 * The contract of each function is in kr_crypto.h; comments here explain the choices.
 */
#include "kr_crypto.h"

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/* ---- primitives ---------------------------------------------------------------------- */

void
kr_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		OPENSSL_cleanse(p, n);
}

enum kr_crypto_err
kr_random(void *buf, size_t n)
{
	unsigned char *p = buf;
	size_t chunk;

	/* RAND_bytes takes an int, so ask in chunks. */
	while (n > 0) {
		chunk = n > INT_MAX ? INT_MAX : n;
		if (RAND_bytes(p, (int)chunk) != 1)
			return KR_CRYPTO_ERROR;
		p += chunk;
		n -= chunk;
	}
	return KR_CRYPTO_OK;
}

/*
 * The API promises a digest and has no error path. SHA-256 only fails when OpenSSL cannot
 * allocate a context or find its default provider; carrying on with an arbitrary value
 * would make unrelated tokens hash alike, so that is fatal.
 */
void
kr_sha256(const void *p, size_t n, unsigned char out[KR_SHA256_LEN])
{
	static const unsigned char empty[1];
	unsigned int len = 0;

	if (EVP_Digest(n > 0 ? p : empty, n, out, &len, EVP_sha256(), NULL) != 1 ||
	    len != KR_SHA256_LEN)
		abort();
}

void
kr_sha256_hex(const void *p, size_t n, char out[KR_SHA256_HEX])
{
	unsigned char md[KR_SHA256_LEN];

	kr_sha256(p, n, md);
	kr_hex_encode(md, sizeof(md), out);
	kr_wipe(md, sizeof(md));
}

/* HMAC-SHA256 (RFC 2104) through EVP_Q_mac. An empty key is passed as a non-NULL pointer,
 * since a NULL key means "no key" to the MAC provider. */
enum kr_crypto_err
kr_hmac_sha256(const void *key, size_t klen, const void *msg, size_t mlen,
    unsigned char out[KR_SHA256_LEN])
{
	static const unsigned char empty[1];
	size_t outlen = 0;
	enum kr_crypto_err rc = KR_CRYPTO_ERROR;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, klen > 0 ? key : empty, klen,
	    mlen > 0 ? msg : empty, mlen, out, KR_SHA256_LEN, &outlen) == NULL ||
	    outlen != KR_SHA256_LEN)
		goto out;
	rc = KR_CRYPTO_OK;
out:
	if (rc != KR_CRYPTO_OK)
		kr_wipe(out, KR_SHA256_LEN);
	return rc;
}

int
kr_ct_equal(const void *a, const void *b, size_t n)
{
	return n == 0 || CRYPTO_memcmp(a, b, n) == 0;
}

void
kr_hex_encode(const void *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *s = p;
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[s[i] >> 4];
		out[2 * i + 1] = digits[s[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

/* ---- base64url (RFC 4648 section 5, no padding) -------------------------------------- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Characters needed for n bytes, without the NUL; 0 when that would overflow. */
static size_t
b64url_len(size_t n)
{
	size_t rem = n % 3;

	if (n / 3 > (SIZE_MAX - 4) / 4)
		return 0;
	return n / 3 * 4 + (rem > 0 ? rem + 1 : 0);
}

enum kr_crypto_err
kr_b64url_encode(const void *p, size_t n, char *out, size_t outcap)
{
	const unsigned char *s = p;
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, o = 0, need = b64url_len(n);

	if ((need == 0 && n > 0) || outcap < need + 1) {
		if (outcap > 0)
			out[0] = '\0';
		return KR_CRYPTO_SPACE;
	}
	for (i = 0; i < n; i++) {
		acc = (acc << 8) | s[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = b64url_alphabet[(acc >> bits) & 0x3f];
		}
		acc &= (1u << bits) - 1;
	}
	if (bits > 0)
		out[o++] = b64url_alphabet[(acc << (6 - bits)) & 0x3f];
	out[o] = '\0';
	return KR_CRYPTO_OK;
}

/* The 6-bit value of a base64url character, or -1 for anything else (padding included). */
static int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Strict decoding: a length of 4k+1 cannot come from any input, and the bits left over in
 * the last character must be zero, so each byte string has exactly one accepted encoding.
 * On failure nothing decoded is left in out.
 */
enum kr_crypto_err
kr_b64url_decode(const char *s, size_t slen, unsigned char *out, size_t outcap,
    size_t *outlen)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, o = 0, rem = slen % 4;
	enum kr_crypto_err rc = KR_CRYPTO_MALFORMED;
	int v;

	*outlen = 0;
	if (rem == 1)
		goto out;
	if (outcap < slen / 4 * 3 + (rem > 0 ? rem - 1 : 0)) {
		rc = KR_CRYPTO_SPACE;
		goto out;
	}
	for (i = 0; i < slen; i++) {
		if ((v = b64url_value((unsigned char)s[i])) < 0)
			goto out;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		goto out;
	*outlen = o;
	rc = KR_CRYPTO_OK;
out:
	if (rc != KR_CRYPTO_OK)
		kr_wipe(out, o);
	return rc;
}

/* ---- the bound on concurrent scrypt computations ------------------------------------- */

/* A counting semaphore from a mutex and a condition variable, so the limit can change
 * while callers wait (a POSIX semaphore cannot lower its count that way). */
static pthread_mutex_t	pw_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	pw_cond = PTHREAD_COND_INITIALIZER;
static unsigned		pw_limit = 2;
static unsigned		pw_running;
static unsigned		pw_waiting;
static unsigned		pw_peak;

static void
pw_acquire(void)
{
	pthread_mutex_lock(&pw_lock);
	pw_waiting++;
	while (pw_running >= pw_limit)
		pthread_cond_wait(&pw_cond, &pw_lock);
	pw_waiting--;
	pw_running++;
	if (pw_running > pw_peak)
		pw_peak = pw_running;
	pthread_mutex_unlock(&pw_lock);
}

static void
pw_release(void)
{
	pthread_mutex_lock(&pw_lock);
	pw_running--;
	pthread_cond_signal(&pw_cond);
	pthread_mutex_unlock(&pw_lock);
}

void
kr_password_set_concurrency(unsigned n)
{
	pthread_mutex_lock(&pw_lock);
	pw_limit = n > 0 ? n : 1;
	pw_peak = pw_running;
	pthread_cond_broadcast(&pw_cond);
	pthread_mutex_unlock(&pw_lock);
}

void
kr_password_stats(struct kr_password_stats *st)
{
	pthread_mutex_lock(&pw_lock);
	st->limit = pw_limit;
	st->running = pw_running;
	st->waiting = pw_waiting;
	st->peak = pw_peak;
	pthread_mutex_unlock(&pw_lock);
}

/* ---- scrypt and the PHC string ------------------------------------------------------- */

#define SCRYPT_DEFAULT_LN	17
#define SCRYPT_DEFAULT_R	8
#define SCRYPT_DEFAULT_P	1
#define SCRYPT_LN_MIN		10
#define SCRYPT_LN_MAX		20
#define SCRYPT_R_MAX		16
#define SCRYPT_P_MAX		4
#define SCRYPT_SALT_LEN		16
#define SCRYPT_HASH_LEN		32
#define PHC_PREFIX		"$scrypt$ln="

struct scrypt_phc {
	unsigned	ln, r, p;
	unsigned char	salt[SCRYPT_SALT_LEN];
	unsigned char	hash[SCRYPT_HASH_LEN];
};

static int
scrypt_params_ok(unsigned ln, unsigned r, unsigned p)
{
	return ln >= SCRYPT_LN_MIN && ln <= SCRYPT_LN_MAX && r >= 1 && r <= SCRYPT_R_MAX &&
	    p >= 1 && p <= SCRYPT_P_MAX;
}

/*
 * Memory OpenSSL's scrypt asks for: 128*r*p for B plus 128*r*(N+2) for V, which it checks
 * against maxmem (default 1 GiB, too little for ln=20 with r=16). Within the bounds above this
 * is at most about 2 GiB, so no overflow.
 */
static uint64_t
scrypt_maxmem(unsigned ln, unsigned r, unsigned p)
{
	uint64_t n = (uint64_t)1 << ln;

	return 128u * (uint64_t)r * (uint64_t)p + 128u * (uint64_t)r * (n + 2);
}

/*
 * Derive the hash of pw under ph->ln, r, p and salt into out, inside the concurrency bound.
 * The parameters must already be within bounds.
 */
static enum kr_crypto_err
scrypt_derive(const char *pw, size_t len, const struct scrypt_phc *ph,
    unsigned char out[SCRYPT_HASH_LEN])
{
	static const char empty[1];
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[7];
	uint64_t n = (uint64_t)1 << ph->ln, maxmem = scrypt_maxmem(ph->ln, ph->r, ph->p);
	uint32_t r = ph->r, p = ph->p;
	enum kr_crypto_err rc = KR_CRYPTO_ERROR;

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
	    (void *)(len > 0 ? pw : empty), len);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    (void *)ph->salt, sizeof(ph->salt));
	params[2] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	params[3] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	params[4] = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
	params[5] = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	params[6] = OSSL_PARAM_construct_end();

	pw_acquire();
	if ((kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL)) == NULL ||
	    (ctx = EVP_KDF_CTX_new(kdf)) == NULL ||
	    EVP_KDF_derive(ctx, out, SCRYPT_HASH_LEN, params) != 1)
		goto out;
	rc = KR_CRYPTO_OK;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	pw_release();
	if (rc != KR_CRYPTO_OK)
		kr_wipe(out, SCRYPT_HASH_LEN);
	return rc;
}

/* Write "$scrypt$ln=..,r=..,p=..$" into out; its length, or 0 if it does not fit. */
static size_t
phc_format_params(const struct scrypt_phc *ph, char *out, size_t outcap)
{
	int n = snprintf(out, outcap, PHC_PREFIX "%u,r=%u,p=%u$", ph->ln, ph->r, ph->p);

	return n > 0 && (size_t)n < outcap ? (size_t)n : 0;
}

/* The whole PHC string of ph; SPACE when outcap is too small. */
static enum kr_crypto_err
phc_format(const struct scrypt_phc *ph, char *out, size_t outcap)
{
	size_t o;

	if ((o = phc_format_params(ph, out, outcap)) == 0 ||
	    kr_b64url_encode(ph->salt, sizeof(ph->salt), out + o, outcap - o) != KR_CRYPTO_OK)
		goto fail;
	o += strlen(out + o);
	if (outcap - o < 2)
		goto fail;
	out[o++] = '$';
	if (kr_b64url_encode(ph->hash, sizeof(ph->hash), out + o, outcap - o) != KR_CRYPTO_OK)
		goto fail;
	return KR_CRYPTO_OK;
fail:
	kr_wipe(out, outcap);
	out[0] = '\0';
	return KR_CRYPTO_SPACE;
}

/* Consume the literal lit at *s; non-zero when it was there. */
static int
parse_lit(const char **s, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*s, lit, n) != 0)
		return 0;
	*s += n;
	return 1;
}

/* Consume a decimal in [lo, hi] at *s: digits only, no sign, no leading zero, at most two
 * digits (every bound is below 100). Non-zero on success. */
static int
parse_small_uint(const char **s, unsigned lo, unsigned hi, unsigned *v)
{
	const char *p = *s;
	unsigned n = 0;
	size_t digits = 0;

	while (p[digits] >= '0' && p[digits] <= '9' && digits < 3) {
		n = n * 10 + (unsigned)(p[digits] - '0');
		digits++;
	}
	if (digits == 0 || digits > 2 || p[0] == '0' || n < lo || n > hi)
		return 0;
	*v = n;
	*s = p + digits;
	return 1;
}

/* Decode exactly cap bytes of base64url from [s, s+slen). Non-zero on success. */
static int
parse_b64_exact(const char *s, size_t slen, unsigned char *out, size_t cap)
{
	size_t n = 0;

	return kr_b64url_decode(s, slen, out, cap, &n) == KR_CRYPTO_OK && n == cap;
}

/*
 * Parse $scrypt$ln=L,r=R,p=P$SALT$HASH exactly: parameters in that order and within bounds,
 * a 16-byte salt and a 32-byte hash, nothing before or after. Non-zero on success.
 */
static int
phc_parse(const char *s, struct scrypt_phc *ph)
{
	const char *dollar;

	if (!parse_lit(&s, PHC_PREFIX) ||
	    !parse_small_uint(&s, SCRYPT_LN_MIN, SCRYPT_LN_MAX, &ph->ln) ||
	    !parse_lit(&s, ",r=") || !parse_small_uint(&s, 1, SCRYPT_R_MAX, &ph->r) ||
	    !parse_lit(&s, ",p=") || !parse_small_uint(&s, 1, SCRYPT_P_MAX, &ph->p) ||
	    !parse_lit(&s, "$") || (dollar = strchr(s, '$')) == NULL)
		return 0;
	if (!parse_b64_exact(s, (size_t)(dollar - s), ph->salt, sizeof(ph->salt)))
		return 0;
	s = dollar + 1;
	return parse_b64_exact(s, strlen(s), ph->hash, sizeof(ph->hash));
}

/* ---- passwords ----------------------------------------------------------------------- */

enum kr_crypto_err
kr_password_hash_params(const char *pw, size_t len, unsigned ln, unsigned r, unsigned p,
    char *out, size_t outcap)
{
	struct scrypt_phc ph;
	char buf[KR_PASSWORD_HASH_MAX];
	size_t need;
	enum kr_crypto_err rc = KR_CRYPTO_MALFORMED;

	memset(&ph, 0, sizeof(ph));
	if (outcap > 0)
		out[0] = '\0';
	if ((pw == NULL && len > 0) || !scrypt_params_ok(ln, r, p))
		goto out;
	ph.ln = ln;
	ph.r = r;
	ph.p = p;
	/* Refuse a short buffer before spending the time of a hash. */
	rc = KR_CRYPTO_SPACE;
	if ((need = phc_format_params(&ph, buf, sizeof(buf))) == 0)
		goto out;
	need += b64url_len(sizeof(ph.salt)) + 1 + b64url_len(sizeof(ph.hash)) + 1;
	if (need > outcap || need > sizeof(buf))
		goto out;
	if ((rc = kr_random(ph.salt, sizeof(ph.salt))) != KR_CRYPTO_OK ||
	    (rc = scrypt_derive(pw, len, &ph, ph.hash)) != KR_CRYPTO_OK ||
	    (rc = phc_format(&ph, buf, sizeof(buf))) != KR_CRYPTO_OK)
		goto out;
	memcpy(out, buf, need);
out:
	kr_wipe(&ph, sizeof(ph));
	kr_wipe(buf, sizeof(buf));
	return rc;
}

enum kr_crypto_err
kr_password_hash(const char *pw, size_t len, char *out, size_t outcap)
{
	return kr_password_hash_params(pw, len, SCRYPT_DEFAULT_LN, SCRYPT_DEFAULT_R,
	    SCRYPT_DEFAULT_P, out, outcap);
}

enum kr_crypto_err
kr_password_verify(const char *pw, size_t len, const char *phc)
{
	struct scrypt_phc ph;
	unsigned char got[SCRYPT_HASH_LEN];
	enum kr_crypto_err rc = KR_CRYPTO_MALFORMED;

	memset(&ph, 0, sizeof(ph));
	memset(got, 0, sizeof(got));
	if ((pw == NULL && len > 0) || phc == NULL ||
	    strnlen(phc, KR_PASSWORD_HASH_MAX) >= KR_PASSWORD_HASH_MAX || !phc_parse(phc, &ph))
		goto out;
	if ((rc = scrypt_derive(pw, len, &ph, got)) != KR_CRYPTO_OK)
		goto out;
	rc = CRYPTO_memcmp(got, ph.hash, sizeof(got)) == 0 ? KR_CRYPTO_OK : KR_CRYPTO_MISMATCH;
out:
	kr_wipe(&ph, sizeof(ph));
	kr_wipe(got, sizeof(got));
	return rc;
}

static pthread_once_t	dummy_once = PTHREAD_ONCE_INIT;
static char		dummy_phc[KR_PASSWORD_HASH_MAX];

/*
 * The dummy is a real hash, with the current defaults, of 32 random bytes nobody knows. If
 * that fails (no entropy, no memory) a well-formed string with a zero salt and hash stands in:
 * verifying against it costs the same, and no password matches with any real probability.
 */
static void
dummy_init(void)
{
	unsigned char pw[32];
	struct scrypt_phc ph;

	memset(&ph, 0, sizeof(ph));
	if (kr_random(pw, sizeof(pw)) != KR_CRYPTO_OK ||
	    kr_password_hash((const char *)pw, sizeof(pw), dummy_phc, sizeof(dummy_phc)) !=
	    KR_CRYPTO_OK) {
		ph.ln = SCRYPT_DEFAULT_LN;
		ph.r = SCRYPT_DEFAULT_R;
		ph.p = SCRYPT_DEFAULT_P;
		(void)phc_format(&ph, dummy_phc, sizeof(dummy_phc));
	}
	kr_wipe(pw, sizeof(pw));
}

/* The first call also computes the dummy hash, so it costs one extra hash once. */
void
kr_password_dummy(const char *pw, size_t len)
{
	pthread_once(&dummy_once, dummy_init);
	(void)kr_password_verify(pw, len, dummy_phc);
}

/* ---- secrets ------------------------------------------------------------------------- */

#define SECRET_BYTES	32

enum kr_crypto_err
kr_secret_new(const char *prefix, char *out, size_t outcap)
{
	unsigned char raw[SECRET_BYTES];
	size_t plen;
	enum kr_crypto_err rc = KR_CRYPTO_MALFORMED;

	memset(raw, 0, sizeof(raw));
	if (prefix == NULL)
		goto out;
	rc = KR_CRYPTO_SPACE;
	plen = strlen(prefix);
	if (plen >= outcap || outcap - plen < b64url_len(sizeof(raw)) + 1)
		goto out;
	memcpy(out, prefix, plen);
	if ((rc = kr_random(raw, sizeof(raw))) != KR_CRYPTO_OK)
		goto out;
	rc = kr_b64url_encode(raw, sizeof(raw), out + plen, outcap - plen);
out:
	kr_wipe(raw, sizeof(raw));
	if (rc != KR_CRYPTO_OK && outcap > 0) {
		kr_wipe(out, outcap);
		out[0] = '\0';
	}
	return rc;
}
