/*
 * kr_crypto: the primitives keyrelay builds on, all over OpenSSL 3.
 *
 * Nothing here logs, and nothing here keeps a secret beyond the call: buffers that held
 * secret material are wiped with OPENSSL_cleanse before they are freed or returned from.
 */
#ifndef KR_CRYPTO_H
#define KR_CRYPTO_H

#include <stddef.h>

enum kr_crypto_err {
	KR_CRYPTO_OK = 0,
	KR_CRYPTO_MISMATCH,	/* a password or tag did not verify */
	KR_CRYPTO_MALFORMED,	/* input that is not of the expected form */
	KR_CRYPTO_SPACE,	/* the output buffer is too small */
	KR_CRYPTO_ERROR,	/* OpenSSL failed (no entropy, no memory, ...) */
};

#define KR_SHA256_LEN	32
#define KR_SHA256_HEX	65	/* 64 hex digits and a NUL */

/* Fill buf with n bytes from the CSPRNG. */
enum kr_crypto_err	kr_random(void *buf, size_t n);

void	kr_sha256(const void *p, size_t n, unsigned char out[KR_SHA256_LEN]);
/* Lower-case hex of SHA-256(p). */
void	kr_sha256_hex(const void *p, size_t n, char out[KR_SHA256_HEX]);
enum kr_crypto_err	kr_hmac_sha256(const void *key, size_t klen, const void *msg,
			    size_t mlen, unsigned char out[KR_SHA256_LEN]);

/* Constant-time comparison: 1 when equal, 0 otherwise (CRYPTO_memcmp). */
int	kr_ct_equal(const void *a, const void *b, size_t n);

/* Lower-case hex; out needs 2n+1 bytes. */
void	kr_hex_encode(const void *p, size_t n, char *out);
/*
 * Base64url without padding (RFC 4648 section 5). Encode writes a NUL-terminated string and
 * needs 4*ceil(n/3)+1 bytes. Decode writes *outlen bytes and refuses any character outside
 * the alphabet, padding and impossible lengths.
 */
enum kr_crypto_err	kr_b64url_encode(const void *p, size_t n, char *out, size_t outcap);
enum kr_crypto_err	kr_b64url_decode(const char *s, size_t slen, unsigned char *out,
			    size_t outcap, size_t *outlen);

/*
 * Passwords: scrypt through EVP_KDF "SCRYPT" (N = 2^17, r = 8, p = 1, 16-byte salt,
 * 32-byte hash), stored as the PHC-style string
 *	$scrypt$ln=17,r=8,p=1$<b64url salt>$<b64url hash>
 * Verification reads the parameters from the string, so they can change later. At most
 * kr_password_set_concurrency() hashes run at once (default 2); further callers wait, since
 * each hash takes 128 MiB and a CPU for a good fraction of a second.
 */
#define KR_PASSWORD_HASH_MAX	160
enum kr_crypto_err	kr_password_hash(const char *pw, size_t len, char *out, size_t outcap);
/* KR_CRYPTO_OK when pw matches, KR_CRYPTO_MISMATCH when not, else MALFORMED or ERROR. */
enum kr_crypto_err	kr_password_verify(const char *pw, size_t len, const char *phc);
/* Spend the time of a verification against a fixed dummy hash, for unknown users. */
void			kr_password_dummy(const char *pw, size_t len);
/* At most n scrypt computations at once (0 is taken as 1); callers already waiting re-check. */
void			kr_password_set_concurrency(unsigned n);
/*
 * kr_password_hash with explicit parameters: N = 2^ln, r, p, each within the bounds that
 * verification accepts (ln 10..20, r 1..16, p 1..4; MALFORMED otherwise). For tests and
 * for a later change of the defaults; everything else calls kr_password_hash.
 */
enum kr_crypto_err	kr_password_hash_params(const char *pw, size_t len, unsigned ln,
			    unsigned r, unsigned p, char *out, size_t outcap);
/* A snapshot of the hash bound, e.g. for /metrics. peak: most running at once since the
 * process started or kr_password_set_concurrency was last called. */
struct kr_password_stats {
	unsigned	limit;
	unsigned	running;
	unsigned	waiting;
	unsigned	peak;
};
void			kr_password_stats(struct kr_password_stats *st);

/*
 * Opaque secrets handed to people or browsers: prefix followed by the base64url of 32 random
 * bytes (43 characters), e.g. "krt_" for API tokens, "" for session ids.
 */
#define KR_SECRET_MAX	64
enum kr_crypto_err	kr_secret_new(const char *prefix, char *out, size_t outcap);

/* Wipe n bytes in a way the compiler will not remove. */
void	kr_wipe(void *p, size_t n);

#endif
