/*
 * kr_vault without a database: the master key spec (ids, duplicates, sources, file modes,
 * encodings, environment variables wiped and unset, the active key, messages that never
 * carry key material), and the field and data-key formats over raw keys (round trips,
 * known answers computed independently with Python's cryptography AESGCM, every tampered
 * byte, every truncation and every change of AAD refused).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kr_crypto.h"
#include "kr_keys.h"
#include "kr_test.h"
#include "kr_vault.h"

#define HEXKEY	"00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"

static char dir[64];
static char errbuf[512];

static void
write_file(const char *name, const void *p, size_t n, mode_t mode, char *path, size_t cap)
{
	FILE *f;

	snprintf(path, cap, "%s/%s", dir, name);
	unlink(path);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "cannot write %s\n", path);
		exit(1);
	}
	chmod(path, mode);
}

/* Load the single key id=file:path (path + suffix). */
static enum kr_vault_err
load1(const char *id, const char *path, const char *suffix)
{
	char spec[1024];

	snprintf(spec, sizeof(spec), "%s=file:%s%s", id, path, suffix);
	return kr_vault_load(spec, NULL, errbuf, sizeof(errbuf));
}

/* The loaded key id has exactly the 32 bytes key. */
static int
key_is(const char *id, const unsigned char key[KR_KEY_LEN])
{
	static const char label[] = "keyrelay master key check v1";
	unsigned char mac[KR_SHA256_LEN];
	char want[65], have[65];

	if (kr_vault_master_check(id, have) != KR_VAULT_OK)
		return 0;
	kr_hmac_sha256(key, KR_KEY_LEN, label, sizeof(label) - 1, mac);
	kr_hex_encode(mac, sizeof(mac), want);
	return strcmp(want, have) == 0;
}

static void
test_spec_errors(void)
{
	static const char *const bad[] = {
		"", "k0", "=file:/x", "k0=", "k0=file:", "k0=file:relative", "k0=foo:/x",
		"k0=env:", "k0=env:1A", "k0=env:A-B", "k 0=env:A", "k.0=env:A",
		"k0=env:A,", ",k0=env:A", "k0=env:A,,k1=env:B",
		"abcdefghijklmnopqrstuvwxyz0123456=env:A",	/* 33 characters */
	};
	char spec[1024], path[256];
	unsigned char raw[KR_KEY_LEN];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(kr_vault_load(bad[i], NULL, errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
		CHECK(errbuf[0] != '\0');
		CHECK_STR(kr_vault_active_id(), "");
	}
	CHECK(kr_vault_load(NULL, NULL, errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);

	/* A 32-character id is fine; duplicates and a ninth key are not. */
	memset(raw, 0xa5, sizeof(raw));
	write_file("ok.key", raw, sizeof(raw), 0600, path, sizeof(path));
	CHECK(load1("abcdefghijklmnopqrstuvwxyz012345", path, "") == KR_VAULT_OK);
	CHECK_STR(kr_vault_active_id(), "abcdefghijklmnopqrstuvwxyz012345");
	snprintf(spec, sizeof(spec), "k0=file:%s,k1=file:%s,k0=file:%s", path, path, path);
	CHECK(kr_vault_load(spec, "k1", errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "'k0'") != NULL && strstr(errbuf, "twice") != NULL);
	CHECK_STR(kr_vault_active_id(), "");
	spec[0] = '\0';
	for (int i = 0; i < 9; i++) {
		size_t o = strlen(spec);
		snprintf(spec + o, sizeof(spec) - o, "%sk%d=file:%s", i ? "," : "", i, path);
	}
	CHECK(kr_vault_load(spec, "k0", errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "more than 8") != NULL);
	*strrchr(spec, ',') = '\0';	/* eight keys */
	CHECK(kr_vault_load(spec, "k7", errbuf, sizeof(errbuf)) == KR_VAULT_OK);
	CHECK_STR(kr_vault_active_id(), "k7");
	kr_vault_unload();
	CHECK_STR(kr_vault_active_id(), "");
}

static void
test_files(void)
{
	unsigned char raw[KR_KEY_LEN], buf[80];
	char path[256], text[80];

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(0xa0 + i);

	CHECK(load1("k0", dir, "/missing.key") == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "missing.key") != NULL && strstr(errbuf, "'k0'") != NULL);
	CHECK(load1("k0", dir, "") == KR_VAULT_CONFIG);	/* a directory */

	/* Group- or world-readable files are refused with a message naming the path. */
	write_file("open.key", raw, sizeof(raw), 0644, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, path) != NULL);
	chmod(path, 0640);
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	chmod(path, 0604);
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	chmod(path, 0400);
	CHECK(load1("k0", path, "") == KR_VAULT_OK);
	CHECK(key_is("k0", raw));

	/* Raw, raw with a newline, and a raw key whose last byte is '\n'. */
	memcpy(buf, raw, 32);
	buf[32] = '\n';
	write_file("raw.key", buf, 33, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_OK && key_is("k0", raw));
	raw[31] = '\n';
	write_file("raw.key", raw, 32, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_OK && key_is("k0", raw));
	raw[31] = 0xbf;

	/* Hex, upper and lower case, with "\n" or "\r\n". */
	kr_hex_encode(raw, sizeof(raw), text);
	write_file("hex.key", text, 64, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_OK && key_is("k0", raw));
	for (int i = 0; i < 64; i++)
		if (text[i] >= 'a')
			text[i] = (char)(text[i] - 32);
	memcpy(text + 64, "\r\n", 2);
	write_file("hex.key", text, 66, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_OK && key_is("k0", raw));

	/* base64url without padding, and standard base64 with '=' and a newline (0xfb bytes
	 * encode as "-_v7" and "+/v7", so both alphabets are exercised). */
	kr_b64url_encode(raw, sizeof(raw), text, sizeof(text));
	write_file("b64.key", text, 43, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_OK && key_is("k0", raw));
	memset(buf, 0xfb, 32);
	kr_b64url_encode(buf, 32, text, sizeof(text));
	CHECK(strncmp(text, "-_v7", 4) == 0);
	write_file("b64.key", text, 43, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_OK && key_is("k0", buf));
	for (int i = 0; i < 43; i++)
		text[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
	memcpy(text + 43, "=\n", 2);
	write_file("b64.key", text, 45, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_OK && key_is("k0", buf));

	/* Wrong lengths and encodings. */
	write_file("short.key", raw, 31, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, path) != NULL && strstr(errbuf, "31 bytes") != NULL);
	memcpy(buf, raw, 32);
	buf[32] = 'x';
	write_file("long.key", buf, 33, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	kr_hex_encode(raw, sizeof(raw), text);
	write_file("hex62.key", text, 62, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	text[10] = 'g';
	write_file("hexbad.key", text, 64, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	kr_b64url_encode(raw, sizeof(raw), text, sizeof(text));
	text[5] = '+';
	text[6] = '-';	/* both alphabets at once */
	write_file("b64mix.key", text, 43, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	write_file("b64short.key", text, 42, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	write_file("empty.key", "", 0, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	/* 32 characters of text (a 16-byte key in hex) are not taken as a raw key. */
	memcpy(buf, HEXKEY, 32);
	buf[32] = '\n';
	write_file("hex32.key", buf, 33, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "text") != NULL && strstr(errbuf, "0011") == NULL);
	write_file("hex32.key", HEXKEY, 32, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	memset(buf, 0, sizeof(buf));
	write_file("zero.key", buf, 32, 0600, path, sizeof(path));
	CHECK(load1("k0", path, "") == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "zero") != NULL);
	CHECK_STR(kr_vault_active_id(), "");
}

/* A variable set by putenv, so the test owns the bytes and can see them wiped. */
static char env_a[] = "KR_TEST_MASTER_A=" HEXKEY;
static char env_b[] = "KR_TEST_MASTER_B=" HEXKEY "\n";
static char env_c[] = "KR_TEST_MASTER_C=tooshort";
static char env_d[] = "KR_TEST_MASTER_D=" HEXKEY;

static int
wiped(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != '\0')
			return 0;
	return 1;
}

static void
test_env(void)
{
	const size_t prefix = strlen("KR_TEST_MASTER_A=");
	unsigned char want[KR_KEY_LEN];
	char spec[512];

	for (size_t i = 0; i < KR_KEY_LEN; i++)
		want[i] = (unsigned char)strtoul((char[]){ HEXKEY[2 * i], HEXKEY[2 * i + 1], 0 },
		    NULL, 16);
	CHECK(putenv(env_a) == 0 && putenv(env_b) == 0);
	CHECK(kr_vault_load("a=env:KR_TEST_MASTER_A,b=env:KR_TEST_MASTER_B", "b", errbuf,
	    sizeof(errbuf)) == KR_VAULT_OK);
	CHECK(getenv("KR_TEST_MASTER_A") == NULL && getenv("KR_TEST_MASTER_B") == NULL);
	CHECK(wiped(env_a + prefix, 64) && wiped(env_b + prefix, 65));
	CHECK(key_is("a", want) && key_is("b", want));
	CHECK_STR(kr_vault_active_id(), "b");

	CHECK(kr_vault_load("a=env:KR_TEST_MASTER_A", NULL, errbuf, sizeof(errbuf)) ==
	    KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "KR_TEST_MASTER_A") != NULL && strstr(errbuf, "not set") != NULL);

	/* A bad value is still wiped and unset, and so is a variable named after a failure. */
	CHECK(putenv(env_c) == 0 && putenv(env_d) == 0);
	snprintf(spec, sizeof(spec), "c=env:KR_TEST_MASTER_C,x=file:%s/missing,"
	    "d=env:KR_TEST_MASTER_D", dir);
	CHECK(kr_vault_load(spec, "d", errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "KR_TEST_MASTER_C") != NULL && strstr(errbuf, "tooshort") == NULL);
	CHECK(getenv("KR_TEST_MASTER_C") == NULL && getenv("KR_TEST_MASTER_D") == NULL);
	CHECK(wiped(env_c + prefix, 8) && wiped(env_d + prefix, 64));
	CHECK_STR(kr_vault_active_id(), "");
}

static void
test_active_and_secrecy(void)
{
	unsigned char raw[KR_KEY_LEN];
	char spec[1024], path[256];

	memset(raw, 0xc3, sizeof(raw));
	write_file("a.key", raw, sizeof(raw), 0400, path, sizeof(path));
	snprintf(spec, sizeof(spec), "old=file:%s,new=file:%s", path, path);
	CHECK(kr_vault_load(spec, NULL, errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(kr_vault_load(spec, "", errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(kr_vault_load(spec, "other", errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "'other'") != NULL);
	CHECK(kr_vault_load(spec, HEXKEY, errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "0011223344") == NULL);
	CHECK(kr_vault_load(spec, "old", errbuf, sizeof(errbuf)) == KR_VAULT_OK);
	CHECK_STR(kr_vault_active_id(), "old");
	CHECK(key_is("new", raw) && key_is("old", raw));
	{
		char check[65];
		CHECK(kr_vault_master_check("nope", check) == KR_VAULT_NOKEY);
	}

	/* A key pasted into the spec is never echoed back. */
	CHECK(kr_vault_load(HEXKEY, NULL, errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "0011223344") == NULL && strstr(errbuf, "entry 1") != NULL);
	CHECK(kr_vault_load("k0=" HEXKEY, NULL, errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "0011223344") == NULL && strstr(errbuf, "'k0'") != NULL);
	CHECK(kr_vault_load(HEXKEY "=env:X", NULL, errbuf, sizeof(errbuf)) == KR_VAULT_CONFIG);
	CHECK(strstr(errbuf, "0011223344") == NULL);
	CHECK_STR(kr_vault_active_id(), "");
}

/* ---- fields ---------------------------------------------------------------------------- */

static const unsigned char dk[KR_KEY_LEN] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

static enum kr_vault_err
open_as(const unsigned char *key, const char *purpose, const char *ws, const char *rec,
    const char *col, const unsigned char *ct, size_t n)
{
	enum kr_vault_err rc;
	char *plain = (char *)1;
	size_t len = 99;

	rc = kr_vault_open_raw(key, purpose, ws, rec, col, ct, n, &plain, &len);
	if (rc != KR_VAULT_OK && (plain != NULL || len != 0))
		return KR_VAULT_ERROR;	/* a failure must not hand anything out */
	if (plain != NULL) {
		kr_wipe(plain, len);
		free(plain);
	}
	return rc;
}

static void
unhex(const char *s, unsigned char *out, size_t *n)
{
	*n = strlen(s) / 2;
	for (size_t i = 0; i < *n; i++)
		out[i] = (unsigned char)strtoul((char[]){ s[2 * i], s[2 * i + 1], 0 }, NULL, 16);
}

static void
test_field_roundtrip(void)
{
	static const char secret[] = "sk-ant-api03-secret";
	unsigned char *ct = NULL, *ct2 = NULL;
	char *plain = NULL;
	size_t n = 0, n2 = 0, len = 0;
	uint32_t v = 0;

	CHECK(kr_vault_seal_raw(dk, 0x01020304, "provider_key", "ws-1", "rec-1", "secret",
	    secret, strlen(secret), &ct, &n) == KR_VAULT_OK);
	CHECK(n == strlen(secret) + KR_FIELD_OVERHEAD);
	CHECK(ct[0] == 0x01 && ct[1] == 1 && ct[2] == 2 && ct[3] == 3 && ct[4] == 4);
	CHECK(kr_vault_field_version(ct, n, &v) == KR_VAULT_OK && v == 0x01020304);
	CHECK(kr_vault_open_raw(dk, "provider_key", "ws-1", "rec-1", "secret", ct, n, &plain,
	    &len) == KR_VAULT_OK);
	CHECK(len == strlen(secret) && plain != NULL && strcmp(plain, secret) == 0);
	free(plain);
	/* A fresh nonce each time. */
	CHECK(kr_vault_seal_raw(dk, 0x01020304, "provider_key", "ws-1", "rec-1", "secret",
	    secret, strlen(secret), &ct2, &n2) == KR_VAULT_OK);
	CHECK(n2 == n && memcmp(ct, ct2, n) != 0);
	free(ct);
	free(ct2);

	/* An empty plaintext. */
	CHECK(kr_vault_seal_raw(dk, 1, "p", "w", "r", "c", NULL, 0, &ct, &n) == KR_VAULT_OK);
	CHECK(n == KR_FIELD_OVERHEAD);
	CHECK(kr_vault_open_raw(dk, "p", "w", "r", "c", ct, n, &plain, &len) == KR_VAULT_OK);
	CHECK(len == 0 && plain != NULL && plain[0] == '\0');
	free(plain);
	free(ct);

	/* Bad arguments: version 0, names that are empty, too long or hold the separator. */
	{
		char longname[KR_VAULT_NAME_MAX + 2];
		memset(longname, 'a', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		CHECK(kr_vault_seal_raw(dk, 0, "p", "w", "r", "c", "x", 1, &ct, &n) ==
		    KR_VAULT_ERROR && ct == NULL && n == 0);
		CHECK(kr_vault_seal_raw(dk, 1, "", "w", "r", "c", "x", 1, &ct, &n) ==
		    KR_VAULT_ERROR);
		CHECK(kr_vault_seal_raw(dk, 1, "p", "w|r", "c", "d", "x", 1, &ct, &n) ==
		    KR_VAULT_ERROR);
		CHECK(kr_vault_seal_raw(dk, 1, "p", "w", NULL, "c", "x", 1, &ct, &n) ==
		    KR_VAULT_ERROR);
		CHECK(kr_vault_seal_raw(dk, 1, "p", "w", "r", longname, "x", 1, &ct, &n) ==
		    KR_VAULT_ERROR);
		longname[KR_VAULT_NAME_MAX] = '\0';
		CHECK(kr_vault_seal_raw(dk, 1, "p", "w", "r", longname, "x", 1, &ct, &n) ==
		    KR_VAULT_OK);
		CHECK(open_as(dk, "p", "w", "r", longname, ct, n) == KR_VAULT_OK);
		free(ct);
	}
}

/* A field made by Python's cryptography (AESGCM) with the layout of kr_vault.h. */
static void
test_field_known_answer(void)
{
	static const char vec[] =
	    "01000000076465666768696a6b6c6d6e6f3b70f3121c9a22b30f506cbe84f6208a311023f81f1a"
	    "c510d6f0cd";
	unsigned char key[KR_KEY_LEN], ct[128];
	char *plain = NULL;
	size_t n, len = 0;

	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)i;
	unhex(vec, ct, &n);
	CHECK(kr_vault_open_raw(key, "provider_key", "ws-1", "rec-1", "secret", ct, n, &plain,
	    &len) == KR_VAULT_OK);
	CHECK(len == 11 && plain != NULL && strcmp(plain, "sk-test-123") == 0);
	free(plain);
}

static void
test_field_tampering(void)
{
	static const char secret[] = "a secret of some length";
	unsigned char *ct = NULL, other[KR_KEY_LEN];
	size_t n = 0;
	int all = 1;

	CHECK(kr_vault_seal_raw(dk, 3, "provider_key", "ws-1", "rec-1", "secret", secret,
	    strlen(secret), &ct, &n) == KR_VAULT_OK);
	if (ct == NULL)
		return;
	CHECK(open_as(dk, "provider_key", "ws-1", "rec-1", "secret", ct, n) == KR_VAULT_OK);

	/* Every bit position of every byte: format, version, nonce, ciphertext, tag. */
	for (size_t i = 0; i < n; i++)
		for (int bit = 0; bit < 8; bit++) {
			ct[i] ^= (unsigned char)(1u << bit);
			all &= open_as(dk, "provider_key", "ws-1", "rec-1", "secret", ct, n) ==
			    KR_VAULT_CORRUPT;
			ct[i] ^= (unsigned char)(1u << bit);
		}
	CHECK(all);
	/* Every truncation, and an extra byte. */
	all = 1;
	for (size_t i = 0; i < n; i++)
		all &= open_as(dk, "provider_key", "ws-1", "rec-1", "secret", ct, i) ==
		    KR_VAULT_CORRUPT;
	CHECK(all);
	{
		unsigned char *longer = malloc(n + 1);
		memcpy(longer, ct, n);
		longer[n] = 0;
		CHECK(open_as(dk, "provider_key", "ws-1", "rec-1", "secret", longer, n + 1) ==
		    KR_VAULT_CORRUPT);
		free(longer);
	}
	CHECK(open_as(dk, "provider_key", "ws-1", "rec-1", "secret", NULL, 0) ==
	    KR_VAULT_CORRUPT);

	/* Another record, column, workspace, purpose or key. */
	CHECK(open_as(dk, "provider_key", "ws-1", "rec-2", "secret", ct, n) == KR_VAULT_CORRUPT);
	CHECK(open_as(dk, "provider_key", "ws-1", "rec-1", "secret2", ct, n) ==
	    KR_VAULT_CORRUPT);
	CHECK(open_as(dk, "provider_key", "ws-2", "rec-1", "secret", ct, n) == KR_VAULT_CORRUPT);
	CHECK(open_as(dk, "webhook", "ws-1", "rec-1", "secret", ct, n) == KR_VAULT_CORRUPT);
	/* The separator keeps the parts apart: "ws-1" "rec-1" is not "ws-1r" "ec-1". */
	CHECK(open_as(dk, "provider_key", "ws-1r", "ec-1", "secret", ct, n) == KR_VAULT_CORRUPT);
	memcpy(other, dk, sizeof(other));
	other[0] ^= 1;
	CHECK(open_as(other, "provider_key", "ws-1", "rec-1", "secret", ct, n) ==
	    KR_VAULT_CORRUPT);

	/* An unknown format byte and version 0 are refused before any decryption. */
	{
		uint32_t v = 7;
		ct[0] = 0x02;
		CHECK(kr_vault_field_version(ct, n, &v) == KR_VAULT_CORRUPT && v == 0);
		ct[0] = 0x01;
		memset(ct + 1, 0, 4);
		CHECK(kr_vault_field_version(ct, n, &v) == KR_VAULT_CORRUPT);
		CHECK(kr_vault_field_version(ct, KR_FIELD_OVERHEAD - 1, &v) == KR_VAULT_CORRUPT);
	}
	free(ct);
}

static void
test_wrap(void)
{
	static const char vec[] =
	    "000102030405060708090a0b1c131fe40e70adabf4b0838d6a3e10734321bb373e44f0467c5489e1"
	    "e7dc95c7318f4ae12d8365315e3ff1dbea394af0";
	unsigned char mk[KR_KEY_LEN], key[KR_KEY_LEN], out[KR_KEY_LEN], w[KR_WRAPPED_LEN];
	unsigned char kat[128];
	size_t n;
	int all = 1;

	for (size_t i = 0; i < KR_KEY_LEN; i++) {
		mk[i] = (unsigned char)(32 + i);
		key[i] = (unsigned char)(64 + i);
	}
	/* Known answer from Python's AESGCM: AAD "ws-1" '|' 00000001 '|' "k0". */
	unhex(vec, kat, &n);
	CHECK(n == KR_WRAPPED_LEN);
	CHECK(kr_vault_unwrap_raw(mk, "k0", "ws-1", 1, kat, out) == KR_VAULT_OK);
	CHECK(memcmp(out, key, sizeof(key)) == 0);

	CHECK(kr_vault_wrap_raw(mk, "k1", "ws-9", 5, key, w) == KR_VAULT_OK);
	CHECK(kr_vault_unwrap_raw(mk, "k1", "ws-9", 5, w, out) == KR_VAULT_OK);
	CHECK(memcmp(out, key, sizeof(key)) == 0);
	CHECK(kr_vault_unwrap_raw(mk, "k2", "ws-9", 5, w, out) == KR_VAULT_CORRUPT);
	CHECK(kr_vault_unwrap_raw(mk, "k1", "ws-8", 5, w, out) == KR_VAULT_CORRUPT);
	CHECK(kr_vault_unwrap_raw(mk, "k1", "ws-9", 6, w, out) == KR_VAULT_CORRUPT);
	for (size_t i = 0; i < sizeof(out); i++)
		all &= out[i] == 0;
	CHECK(all);
	all = 1;
	for (size_t i = 0; i < sizeof(w); i++) {
		w[i] ^= 0x80;
		all &= kr_vault_unwrap_raw(mk, "k1", "ws-9", 5, w, out) == KR_VAULT_CORRUPT;
		w[i] ^= 0x80;
	}
	CHECK(all);
	CHECK(kr_vault_wrap_raw(mk, "bad id", "ws-9", 5, key, w) == KR_VAULT_ERROR);
	CHECK(kr_vault_wrap_raw(mk, "k1", "ws-9", 0, key, w) == KR_VAULT_ERROR);
}

/* Environment lists of keys: commas or line breaks, trimmed, empty entries passed over. */
static void
test_key_list(void)
{
	static const struct {
		const char	*list;
		const char	*want;	/* the entries joined by '|' */
	} cases[] = {
		{ "a", "a" },
		{ " a , b,c ", "a|b|c" },
		{ "a,\nb\r\n\tc\t", "a|b|c" },
		{ ",, ,\n\n", "" },
		{ "", "" },
		{ "a b,", "a b" },
	};
	char got[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *v = cases[i].list, *e;
		size_t len;
		got[0] = '\0';
		while (kr_key_list_next(&v, &e, &len))
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%.*s",
			    got[0] != '\0' ? "|" : "", (int)len, e);
		CHECK_STR(got, cases[i].want);
	}
	{
		const char *v = NULL, *e;
		size_t len;
		CHECK(kr_key_list_next(&v, &e, &len) == 0);	/* an unset variable */
	}
}

int
main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/kr-test-vault-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_spec_errors();
	test_files();
	test_env();
	test_active_and_secrecy();
	test_field_roundtrip();
	test_field_known_answer();
	test_field_tampering();
	test_wrap();
	test_key_list();
	kr_vault_unload();
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return kr_test_done("test_vault");
}
