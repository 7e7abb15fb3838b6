/*
 * kr_master: the vault's master keys (kr_master.h; the spec format is documented at
 * kr_vault_load in kr_vault.h).
 *
 * Master keys live in one anonymous page: mlock'ed so they are not swapped out, excluded from
 * core dumps, read-only once loaded, wiped before it is unmapped.
 */
#include "kr_master.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kr_crypto.h"
#include "kr_log.h"

extern char **environ;

#define SRC_MAX		256		/* longest key file or variable we read */
#define ENV_NAME_MAX	128

/* ---- the master key page ------------------------------------------------------------- */

struct master_set {
	unsigned	 n;
	unsigned	 active;
	struct kr_master_key k[KR_MASTER_KEYS_MAX];
};

_Static_assert(sizeof(struct master_set) <= 4096, "master keys fit in one page");

static struct master_set *keys;	/* the mapped page; NULL when nothing is loaded */
static size_t keys_len;
static int mlock_warned;

/* A message cut short is still a message. */
void
kr_master_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(err, errlen, fmt, ap) < 0)
		err[0] = '\0';
	va_end(ap);
}

const struct kr_master_key *
kr_master_find(const char *id)
{
	if (keys == NULL || id == NULL)
		return NULL;
	for (unsigned i = 0; i < keys->n; i++)
		if (strcmp(keys->k[i].id, id) == 0)
			return &keys->k[i];
	return NULL;
}

const struct kr_master_key *
kr_master_active(void)
{
	return keys != NULL ? &keys->k[keys->active] : NULL;
}

unsigned
kr_master_count(void)
{
	return keys != NULL ? keys->n : 0;
}

const struct kr_master_key *
kr_master_at(unsigned i)
{
	return keys != NULL && i < keys->n ? &keys->k[i] : NULL;
}

static enum kr_vault_err
page_map(struct master_set **out, size_t *len, char *err, size_t errlen)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t n = pg > 0 && (size_t)pg >= sizeof(struct master_set) ? (size_t)pg : 4096;
	void *p;

	*out = NULL;
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		kr_master_seterr(err, errlen, "master keys: mmap failed: %s", strerror(errno));
		return KR_VAULT_ERROR;
	}
	if (madvise(p, n, MADV_DONTDUMP) != 0) {
		kr_master_seterr(err, errlen, "master keys: madvise(MADV_DONTDUMP) failed: %s",
		    strerror(errno));
		munmap(p, n);
		return KR_VAULT_ERROR;
	}
	if (mlock(p, n) != 0) {
		if (errno != EPERM && errno != ENOMEM && errno != EAGAIN) {
			kr_master_seterr(err, errlen, "master keys: mlock failed: %s",
			    strerror(errno));
			munmap(p, n);
			return KR_VAULT_ERROR;
		}
		if (!mlock_warned)
			kr_warn("master keys: cannot lock memory (%s); they may be swapped out "
			    "(raise RLIMIT_MEMLOCK, e.g. LimitMEMLOCK= in systemd)",
			    strerror(errno));
		mlock_warned = 1;
	}
	*out = p;
	*len = n;
	return KR_VAULT_OK;
}

/* Wipe, unlock and unmap a page from page_map (which may still be writable). */
static void
page_unmap(struct master_set **set, size_t len)
{
	if (*set == NULL)
		return;
	if (mprotect(*set, len, PROT_READ | PROT_WRITE) == 0)
		kr_wipe(*set, len);
	munlock(*set, len);
	munmap(*set, len);
	*set = NULL;
}

void
kr_master_unload(void)
{
	page_unmap(&keys, keys_len);
	keys_len = 0;
}

/* ---- parsing the master key spec ----------------------------------------------------- */

int
kr_master_valid_id(const char *s, size_t n)
{
	if (n == 0 || n > KR_MASTER_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

static int
valid_env_name(const char *s, size_t n)
{
	if (n == 0 || n >= ENV_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
hex_decode_key(const unsigned char *s, unsigned char key[KR_KEY_LEN])
{
	int hi, lo, bad = 0;

	for (size_t i = 0; i < KR_KEY_LEN; i++) {
		hi = hex_value(s[2 * i]);
		lo = hex_value(s[2 * i + 1]);
		bad |= hi < 0 || lo < 0;
		key[i] = (unsigned char)(((hi & 0xf) << 4) | (lo & 0xf));
	}
	if (bad)
		kr_wipe(key, KR_KEY_LEN);
	return bad ? -1 : 0;
}

/* 43 characters of base64 (RFC 4648 section 4) or base64url (section 5), not mixed. */
static int
b64_decode_key(const unsigned char *s, unsigned char key[KR_KEY_LEN])
{
	char tmp[43];
	int std = 0, url = 0, rc = -1;
	size_t outlen = 0;

	for (size_t i = 0; i < sizeof(tmp); i++) {
		char c = (char)s[i];
		std |= c == '+' || c == '/';
		url |= c == '-' || c == '_';
		tmp[i] = (char)(c == '+' ? '-' : c == '/' ? '_' : c);
	}
	if (!(std && url) && kr_b64url_decode(tmp, sizeof(tmp), key, KR_KEY_LEN, &outlen) ==
	    KR_CRYPTO_OK && outlen == KR_KEY_LEN)
		rc = 0;
	kr_wipe(tmp, sizeof(tmp));
	if (rc != 0)
		kr_wipe(key, KR_KEY_LEN);
	return rc;
}

/* Non-zero when all n bytes are printable ASCII or whitespace. */
static int
all_text(const unsigned char *s, size_t n)
{
	unsigned bad = 0;

	for (size_t i = 0; i < n; i++)
		bad |= (unsigned)((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') ||
		    s[i] > 0x7e);
	return !bad;
}

/*
 * 32 raw bytes, or 64 hex digits, or base64/base64url of 32 bytes (43 characters, or 44 with
 * the '=' pad), each optionally followed by "\n" ("\r\n" for the text forms). A raw key of
 * exactly 32 bytes is taken as is, even when its last byte is '\n'. Returns 0, -1 for
 * anything else, -2 for a key of zeros, -3 for 32 bytes of text: a 16-byte key in hex
 * (openssl rand -hex 16) would otherwise pass as a raw key of half the strength. 32 random
 * bytes are all printable with probability (95/256)^32, below 10^-13.
 */
static int
decode_key(const unsigned char *s, size_t n, unsigned char key[KR_KEY_LEN])
{
	unsigned char any = 0;
	int rc = -1;

	if (n == KR_KEY_LEN || (n == KR_KEY_LEN + 1 && s[KR_KEY_LEN] == '\n')) {
		if (all_text(s, KR_KEY_LEN))
			return -3;
		memcpy(key, s, KR_KEY_LEN);
		rc = 0;
	} else {
		if (n > 0 && s[n - 1] == '\n')
			n--;
		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (n == 2 * KR_KEY_LEN)
			rc = hex_decode_key(s, key);
		else if (n == 43 || (n == 44 && s[43] == '='))
			rc = b64_decode_key(s, key);
	}
	if (rc != 0)
		return -1;
	for (size_t i = 0; i < KR_KEY_LEN; i++)
		any |= key[i];
	return any != 0 ? 0 : -2;
}

static enum kr_vault_err
decode_error(int drc, const char *id, const char *what, const char *name, size_t n,
    char *err, size_t errlen)
{
	if (drc == -2)
		kr_master_seterr(err, errlen, "master key '%s': %s %s holds a key of all zero "
		    "bytes", id, what, name);
	else if (drc == -3)
		kr_master_seterr(err, errlen, "master key '%s': %s %s holds 32 characters of "
		    "text, not a 32-byte key (use 64 hex digits or base64 of 32 random bytes)", id,
		    what, name);
	else if (n > SRC_MAX)
		kr_master_seterr(err, errlen, "master key '%s': %s %s does not hold a 32-byte "
		    "key (more than %d bytes)", id, what, name, SRC_MAX);
	else
		kr_master_seterr(err, errlen, "master key '%s': %s %s does not hold a 32-byte "
		    "key (%zu bytes; expected 32 raw bytes, 64 hex digits or base64 of 32 bytes)",
		    id, what, name, n);
	return KR_VAULT_CONFIG;
}

static enum kr_vault_err
read_key_file(const char *id, const char *path, unsigned char key[KR_KEY_LEN], char *err,
    size_t errlen)
{
	unsigned char buf[SRC_MAX + 1];
	enum kr_vault_err rc = KR_VAULT_CONFIG;
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd, drc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		kr_master_seterr(err, errlen, "master key '%s': cannot open %s: %s", id, path,
		    strerror(errno));
		return KR_VAULT_CONFIG;
	}
	/* fstat on the open descriptor: the file checked is the file read. */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		kr_master_seterr(err, errlen, "master key '%s': %s is not a regular file", id,
		    path);
		goto out;
	}
	if ((st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) != 0) {
		kr_master_seterr(err, errlen, "master key '%s': %s is readable or writable by "
		    "group or others (mode %04o); chmod 0400 it", id, path,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (n < sizeof(buf)) {
		r = read(fd, buf + n, sizeof(buf) - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			kr_master_seterr(err, errlen, "master key '%s': cannot read %s: %s", id,
			    path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > SRC_MAX || (drc = decode_key(buf, n, key)) != 0) {
		rc = decode_error(drc, id, "file", path, n, err, errlen);
		goto out;
	}
	rc = KR_VAULT_OK;
out:
	kr_wipe(buf, sizeof(buf));
	close(fd);
	return rc;
}

/*
 * Wipe the value of every environment entry NAME=... in place (there may be several when
 * the process was started with duplicates), then unset NAME. If value is not NULL, the
 * first entry's value (up to cap bytes) is copied there first and *len gets its length.
 */
static int
take_env(const char *name, unsigned char *value, size_t cap, size_t *len)
{
	size_t nlen = strlen(name);
	int found = 0;

	for (char **e = environ; e != NULL && *e != NULL; e++) {
		char *v;
		size_t vlen;
		if (strncmp(*e, name, nlen) != 0 || (*e)[nlen] != '=')
			continue;
		v = *e + nlen + 1;
		vlen = strlen(v);
		if (!found && value != NULL) {
			memcpy(value, v, vlen < cap ? vlen : cap);
			*len = vlen;
		}
		found = 1;
		kr_wipe(v, vlen);
	}
	unsetenv(name);
	return found;
}

static enum kr_vault_err
read_key_env(const char *id, const char *name, unsigned char key[KR_KEY_LEN], char *err,
    size_t errlen)
{
	unsigned char buf[SRC_MAX];
	enum kr_vault_err rc = KR_VAULT_CONFIG;
	size_t n = 0;
	int drc = -1;

	if (!take_env(name, buf, sizeof(buf), &n)) {
		kr_master_seterr(err, errlen, "master key '%s': environment variable %s is not "
		    "set", id, name);
		goto out;
	}
	if (n > SRC_MAX || (drc = decode_key(buf, n, key)) != 0) {
		rc = decode_error(drc, id, "environment variable", name, n, err, errlen);
		goto out;
	}
	rc = KR_VAULT_OK;
out:
	kr_wipe(buf, sizeof(buf));
	return rc;
}

/*
 * Entry number idx, ID=SOURCE of n bytes at s, into the next free slot of set (the caller
 * counts it on success).
 */
static enum kr_vault_err
load_entry(struct master_set *set, unsigned idx, const char *s, size_t n, char *err,
    size_t errlen)
{
	char src[PATH_MAX];
	const char *eq = memchr(s, '=', n);
	size_t idlen = eq != NULL ? (size_t)(eq - s) : 0, slen;
	struct kr_master_key *k;

	if (set->n == KR_MASTER_KEYS_MAX) {
		kr_master_seterr(err, errlen, "more than %d master keys", KR_MASTER_KEYS_MAX);
		return KR_VAULT_CONFIG;
	}
	/* An entry that is not ID=... is never echoed: it may be a pasted key. */
	if (eq == NULL || !kr_master_valid_id(s, idlen)) {
		kr_master_seterr(err, errlen, "master key entry %u: expected ID=file:/path or "
		    "ID=env:NAME with an id of 1 to %d characters [A-Za-z0-9_-]", idx,
		    KR_MASTER_ID_MAX);
		return KR_VAULT_CONFIG;
	}
	k = &set->k[set->n];
	memcpy(k->id, s, idlen);
	k->id[idlen] = '\0';
	for (unsigned i = 0; i < set->n; i++)
		if (strcmp(set->k[i].id, k->id) == 0) {
			kr_master_seterr(err, errlen, "master key '%s' is configured twice", k->id);
			return KR_VAULT_CONFIG;
		}
	s = eq + 1;
	slen = n - idlen - 1;
	if (slen > 5 && memcmp(s, "file:", 5) == 0 && s[5] == '/' && slen - 5 < sizeof(src)) {
		memcpy(src, s + 5, slen - 5);
		src[slen - 5] = '\0';
		return read_key_file(k->id, src, k->key, err, errlen);
	} else if (slen > 4 && memcmp(s, "env:", 4) == 0 && valid_env_name(s + 4, slen - 4)) {
		memcpy(src, s + 4, slen - 4);
		src[slen - 4] = '\0';
		return read_key_env(k->id, src, k->key, err, errlen);
	}
	kr_master_seterr(err, errlen, "master key '%s': the source must be file:/absolute/path or "
	    "env:NAME", k->id);
	return KR_VAULT_CONFIG;
}

/* After a failure: wipe and unset every variable the spec names, as far as it parses. */
static void
scrub_env_sources(const char *spec)
{
	char name[ENV_NAME_MAX];
	const char *s = spec, *e, *eq;

	for (; *s != '\0'; s = *e == ',' ? e + 1 : e) {
		e = s + strcspn(s, ",");
		eq = memchr(s, '=', (size_t)(e - s));
		if (eq == NULL || e - eq - 1 <= 4 || memcmp(eq + 1, "env:", 4) != 0 ||
		    !valid_env_name(eq + 5, (size_t)(e - eq - 5)))
			continue;
		memcpy(name, eq + 5, (size_t)(e - eq - 5));
		name[e - eq - 5] = '\0';
		take_env(name, NULL, 0, NULL);
	}
}

static enum kr_vault_err
load_spec(struct master_set *set, const char *spec, char *err, size_t errlen)
{
	const char *s = spec, *e;
	enum kr_vault_err rc;
	unsigned idx = 1;

	if (*spec == '\0') {
		kr_master_seterr(err, errlen, "no master keys configured");
		return KR_VAULT_CONFIG;
	}
	for (;; idx++) {
		e = s + strcspn(s, ",");
		if ((rc = load_entry(set, idx, s, (size_t)(e - s), err, errlen)) != KR_VAULT_OK)
			return rc;
		set->n++;
		if (*e == '\0')
			return KR_VAULT_OK;
		s = e + 1;
	}
}

static enum kr_vault_err
pick_active(struct master_set *set, const char *active, char *err, size_t errlen)
{
	if (active == NULL || *active == '\0') {
		if (set->n > 1) {
			kr_master_seterr(err, errlen, "%u master keys are configured; name the "
			    "active one", set->n);
			return KR_VAULT_CONFIG;
		}
		set->active = 0;
		return KR_VAULT_OK;
	}
	if (!kr_master_valid_id(active, strlen(active))) {
		kr_master_seterr(err, errlen, "the active master key id is not a valid id");
		return KR_VAULT_CONFIG;
	}
	for (unsigned i = 0; i < set->n; i++)
		if (strcmp(set->k[i].id, active) == 0) {
			set->active = i;
			return KR_VAULT_OK;
		}
	kr_master_seterr(err, errlen, "the active master key '%s' is not among the loaded keys",
	    active);
	return KR_VAULT_CONFIG;
}

enum kr_vault_err
kr_master_load(const char *spec, const char *active, char *err, size_t errlen)
{
	struct master_set *set = NULL;
	enum kr_vault_err rc;
	size_t len = 0;

	kr_master_seterr(err, errlen, "%s", "");
	kr_master_unload();
	if (spec == NULL) {
		kr_master_seterr(err, errlen, "no master keys configured");
		return KR_VAULT_CONFIG;
	}
	if ((rc = page_map(&set, &len, err, errlen)) != KR_VAULT_OK)
		goto out;
	if ((rc = load_spec(set, spec, err, errlen)) != KR_VAULT_OK ||
	    (rc = pick_active(set, active, err, errlen)) != KR_VAULT_OK)
		goto out;
	if (mprotect(set, len, PROT_READ) != 0) {
		kr_master_seterr(err, errlen, "master keys: mprotect failed: %s", strerror(errno));
		rc = KR_VAULT_ERROR;
		goto out;
	}
	keys = set;
	keys_len = len;
	set = NULL;
	rc = KR_VAULT_OK;
out:
	if (rc != KR_VAULT_OK)
		scrub_env_sources(spec != NULL ? spec : "");
	page_unmap(&set, len);
	return rc;
}
