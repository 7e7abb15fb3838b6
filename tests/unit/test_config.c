/*
 * kr_config: the defaults, the file format (comments, blank lines, spaces around '='), every
 * value type with its bounds, unknown keys and malformed lines, required settings, the
 * environment overriding the file, kr_config_path's argv handling, error messages that name
 * the key (or the variable) but never a secret, and the shipped example, which documents
 * every key. Temporary files live under /tmp and are removed at once.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kr_buf.h"
#include "kr_config.h"
#include "kr_test.h"

extern char **environ;

#define EXAMPLE	"../deploy/keyrelay.conf.example"
/* A password distinctive enough that finding it in an error message means a leak. */
#define SECRET	"Zq7vW-uniq-SECRET-4711"
#define PW_LINE	"db.password = pw\n"

/* Every key kr_config.c knows, as the example must document it. */
static const char *const all_keys[] = {
	"db.host", "db.port", "db.socket", "db.name", "db.user", "db.password",
	"fcgi.socket", "fcgi.events_socket", "fcgi.socket_group", "fcgi.socket_mode",
	"fcgi.threads", "fcgi.events_threads",
	"runner.name", "runner.heartbeat_seconds", "runner.max_in_flight", "runner.workspace_cap",
	"runner.lease_seconds", "runner.attempt_timeout_seconds", "runner.drain_seconds",
	"runner.backoff_max_seconds", "runner.idle_poll_ms", "events.retention_hours",
	"events.streams_per_client", "events.streams_per_workspace",
	"auth.session_hours", "auth.hash_concurrency", "auth.login_max_failures",
	"auth.login_max_failures_per_address", "auth.login_window_seconds",
	"log.level", "secrets.master_keys", "secrets.active_master_key",
	"provider.anthropic_base_url", "provider.openai_base_url", "provider.google_base_url",
	"provider.zai_base_url", "provider.moonshot_base_url",
	"provider.openai_compatible_base_url", "base_url_allowlist", "telegram_base_url",
};
#define NKEYS	(sizeof(all_keys) / sizeof(all_keys[0]))

/* The whole-number settings and their documented bounds. */
static const struct {
	const char	*key;
	size_t		 offset;
	unsigned	 min, max, def;
} uints[] = {
	{ "db.port", offsetof(struct kr_config, db_port), 1, 65535, 3306 },
	{ "fcgi.threads", offsetof(struct kr_config, fcgi_threads), 1, 1024, 8 },
	{ "fcgi.events_threads", offsetof(struct kr_config, fcgi_events_threads), 1, 65536, 64 },
	{ "runner.heartbeat_seconds", offsetof(struct kr_config, runner_heartbeat_seconds), 1,
	    3600, 10 },
	{ "runner.max_in_flight", offsetof(struct kr_config, runner_max_in_flight), 1, 10000,
	    256 },
	{ "runner.workspace_cap", offsetof(struct kr_config, runner_workspace_cap), 1, 10000,
	    64 },
	{ "runner.lease_seconds", offsetof(struct kr_config, runner_lease_seconds), 2, 3600,
	    60 },
	{ "runner.attempt_timeout_seconds",
	    offsetof(struct kr_config, runner_attempt_timeout_seconds), 1, 3600, 120 },
	{ "runner.drain_seconds", offsetof(struct kr_config, runner_drain_seconds), 0, 3600,
	    20 },
	{ "runner.backoff_max_seconds", offsetof(struct kr_config, runner_backoff_max_seconds),
	    1, 3600, 60 },
	{ "runner.idle_poll_ms", offsetof(struct kr_config, runner_idle_poll_ms), 20, 10000,
	    250 },
	{ "events.retention_hours", offsetof(struct kr_config, events_retention_hours), 1, 8760,
	    72 },
	{ "events.streams_per_client", offsetof(struct kr_config, events_streams_per_client), 1,
	    65536, 8 },
	{ "events.streams_per_workspace",
	    offsetof(struct kr_config, events_streams_per_workspace), 1, 65536, 32 },
	{ "auth.session_hours", offsetof(struct kr_config, auth_session_hours), 1, 8784, 168 },
	{ "auth.hash_concurrency", offsetof(struct kr_config, auth_hash_concurrency), 1, 64, 2 },
	{ "auth.login_max_failures", offsetof(struct kr_config, auth_login_max_failures), 1,
	    1000, 5 },
	{ "auth.login_max_failures_per_address",
	    offsetof(struct kr_config, auth_login_max_failures_per_address), 1, 100000, 50 },
	{ "auth.login_window_seconds", offsetof(struct kr_config, auth_login_window_seconds),
	    1, 86400, 900 },
};
#define NUINTS	(sizeof(uints) / sizeof(uints[0]))

static unsigned
uint_at(const struct kr_config *c, size_t offset)
{
	unsigned v;

	memcpy(&v, (const char *)c + offset, sizeof(v));
	return v;
}

/* Unset every KEYRELAY_* variable, so the caller's environment cannot leak into a test. */
static void
clear_env(void)
{
	for (;;) {
		char **e, *name;

		for (e = environ; *e != NULL; e++)
			if (strncmp(*e, "KEYRELAY_", 9) == 0)
				break;
		if (*e == NULL || (name = strndup(*e, strcspn(*e, "="))) == NULL)
			return;
		unsetenv(name);
		free(name);
	}
}

/* Write text to a new file under /tmp (path: at least 32 bytes). 0 or -1. */
static int
write_tmp(char *path, const char *text)
{
	size_t len = strlen(text), off = 0;
	int fd;

	snprintf(path, 32, "/tmp/kr_test_config_XXXXXX");
	if ((fd = mkstemp(path)) == -1)
		return -1;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w <= 0) {
			close(fd);
			unlink(path);
			return -1;
		}
		off += (size_t)w;
	}
	close(fd);
	return 0;
}

/* kr_config_load of a temporary file holding text; the file is gone afterwards. */
static enum kr_config_err
load_text(struct kr_config *c, const char *text, char *err, size_t errlen)
{
	enum kr_config_err rc;
	char path[32];

	err[0] = '\0';
	if (write_tmp(path, text) != 0) {
		snprintf(err, errlen, "cannot write a temporary file");
		memset(c, 0, sizeof(*c));
		return KR_CONFIG_IO;
	}
	rc = kr_config_load(c, path, err, errlen);
	unlink(path);
	return rc;
}

/* "db.password = pw" and "key = value", loaded. */
static enum kr_config_err
load_kv(struct kr_config *c, const char *key, const char *value, char *err, size_t errlen)
{
	char text[512];

	snprintf(text, sizeof(text), PW_LINE "%s = %s\n", key, value);
	return load_text(c, text, err, errlen);
}

static int
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * 1 when loading text fails with want, err holds need1 and need2 (when not NULL) and no
 * trace of SECRET; else 0, after saying why.
 */
static int
fails_with(const char *text, enum kr_config_err want, const char *need1, const char *need2)
{
	struct kr_config c;
	char err[512];
	enum kr_config_err rc = load_text(&c, text, err, sizeof(err));
	int ok = rc == want && (need1 == NULL || strstr(err, need1) != NULL) &&
	    (need2 == NULL || strstr(err, need2) != NULL) && strstr(err, SECRET) == NULL &&
	    strstr(err, "Zq7vW") == NULL;

	if (rc == KR_CONFIG_OK)
		kr_config_release(&c);
	if (!ok)
		fprintf(stderr, "  loading [%s]: rc %d (want %d), err \"%s\"\n", text, (int)rc,
		    (int)want, err);
	return ok;
}

/* 1 when key = value is refused with an error "key: ..." (no secret in it). */
static int
value_refused(const char *key, const char *value)
{
	struct kr_config c;
	char err[512], prefix[128];
	enum kr_config_err rc = load_kv(&c, key, value, err, sizeof(err));
	int ok;

	snprintf(prefix, sizeof(prefix), "%s: ", key);
	ok = rc == KR_CONFIG_INVALID && starts_with(err, prefix) && strstr(err, SECRET) == NULL;
	if (rc == KR_CONFIG_OK)
		kr_config_release(&c);
	if (!ok)
		fprintf(stderr, "  %s = [%s]: rc %d, err \"%s\"\n", key, value, (int)rc, err);
	return ok;
}

static void
test_defaults(void)
{
	struct kr_config c;
	char err[512] = "", host[256];

	clear_env();
	setenv("KEYRELAY_DB_PASSWORD", "pw", 1);
	CHECK(kr_config_load(&c, NULL, err, sizeof(err)) == KR_CONFIG_OK);
	CHECK(c.path == NULL);
	CHECK_STR(c.db_host, "127.0.0.1");
	CHECK(c.db_port == 3306);
	CHECK(c.db_socket == NULL);
	CHECK_STR(c.db_name, "keyrelay");
	CHECK_STR(c.db_user, "keyrelay");
	CHECK_STR(c.db_password, "pw");
	CHECK_STR(c.fcgi_socket, "/run/keyrelay/api.sock");
	CHECK_STR(c.fcgi_events_socket, "/run/keyrelay/events.sock");
	CHECK(c.fcgi_socket_group == NULL);
	CHECK(c.fcgi_socket_mode == 0660);
	for (size_t i = 0; i < NUINTS; i++) {
		unsigned v = uint_at(&c, uints[i].offset);
		if (v != uints[i].def)
			fprintf(stderr, "  default of %s: %u, want %u\n", uints[i].key, v,
			    uints[i].def);
		CHECK(v == uints[i].def);
	}
	CHECK(c.log_level == KR_LOG_INFO);
	CHECK(c.secrets_master_keys == NULL && c.secrets_active_master_key == NULL);
	for (size_t i = 0; i < sizeof(c.provider_base_url) / sizeof(c.provider_base_url[0]); i++)
		CHECK(c.provider_base_url[i] == NULL);
	CHECK(c.base_url_allowlist == NULL);
	CHECK_STR(c.telegram_base_url, "https://api.telegram.org");
	/* runner.name defaults to the host name. */
	CHECK(gethostname(host, sizeof(host)) == 0);
	host[sizeof(host) - 1] = '\0';
	CHECK_STR(c.runner_name, host);
	kr_config_release(&c);
	CHECK(c.db_host == NULL && c.db_password == NULL && c.runner_name == NULL);
	kr_config_release(&c);	/* a second release is harmless */
	clear_env();
}

static void
test_file_format(void)
{
	struct kr_config c;
	char err[512];

	clear_env();
	CHECK(load_text(&c,
	    "# keyrelay\n"
	    "\n"
	    "   # an indented comment = with an equals sign\n"
	    "db.host=db.example.com\n"
	    "  db.port   =   3307  \n"
	    "\tdb.name\t=\tkr\t\n"
	    "\n\n"
	    "db.user =kr_user\r\n"
	    "db.password= p#ss=w0rd with spaces \n"
	    "fcgi.socket = /a\n"
	    "fcgi.socket = /b\n"
	    "log.level = debug\n"
	    "   \t   \n"
	    "# the end, without a final newline\n"
	    "runner.name = r1", err, sizeof(err)) == KR_CONFIG_OK);
	CHECK_STR(err, "");
	CHECK_STR(c.db_host, "db.example.com");
	CHECK(c.db_port == 3307);
	CHECK_STR(c.db_name, "kr");
	CHECK_STR(c.db_user, "kr_user");	/* CRLF line ending */
	/* Only the first '=' splits; '#' inside a value is no comment; inner spaces stay. */
	CHECK_STR(c.db_password, "p#ss=w0rd with spaces");
	CHECK_STR(c.fcgi_socket, "/b");		/* the last of a repeated key wins */
	CHECK(c.log_level == KR_LOG_DEBUG);
	CHECK_STR(c.runner_name, "r1");
	CHECK(c.path != NULL && starts_with(c.path, "/tmp/kr_test_config_"));
	kr_config_release(&c);

	/* An empty file is the defaults; then db.password is missing. */
	CHECK(fails_with("", KR_CONFIG_MISSING, "db.password", NULL));
	CHECK(fails_with("\n# nothing\n\n", KR_CONFIG_MISSING, "db.password", NULL));
}

static void
test_strings(void)
{
	struct kr_config c;
	char err[512];

	clear_env();
	CHECK(load_kv(&c, "db.socket", "/run/mysqld/mysqld.sock", err, sizeof(err)) ==
	    KR_CONFIG_OK);
	CHECK_STR(c.db_socket, "/run/mysqld/mysqld.sock");
	kr_config_release(&c);

	/* An empty value unsets a string, whether it had a default or a value before. */
	CHECK(load_text(&c, PW_LINE "db.socket = /x\ndb.socket =\ntelegram_base_url =\n"
	    "fcgi.socket_group=   \n", err, sizeof(err)) == KR_CONFIG_OK);
	CHECK(c.db_socket == NULL);
	CHECK(c.telegram_base_url == NULL);
	CHECK(c.fcgi_socket_group == NULL);
	kr_config_release(&c);

	/* Unsetting a required string is reported as missing, naming key and variable. */
	CHECK(fails_with(PW_LINE "db.name =\n", KR_CONFIG_MISSING, "db.name: ", "KEYRELAY_DB_NAME"));
	CHECK(fails_with(PW_LINE "db.user=\n", KR_CONFIG_MISSING, "db.user: ", "KEYRELAY_DB_USER"));
	CHECK(fails_with("db.password =\n", KR_CONFIG_MISSING, "db.password: ",
	    "KEYRELAY_DB_PASSWORD"));
}

static void
test_uints(void)
{
	struct kr_config c;
	char err[512], v[32], want[64];

	clear_env();
	for (size_t i = 0; i < NUINTS; i++) {
		/* The bounds themselves are accepted... */
		snprintf(v, sizeof(v), "%u", uints[i].min);
		CHECK(load_kv(&c, uints[i].key, v, err, sizeof(err)) == KR_CONFIG_OK);
		CHECK(uint_at(&c, uints[i].offset) == uints[i].min);
		kr_config_release(&c);
		snprintf(v, sizeof(v), "%u", uints[i].max);
		CHECK(load_kv(&c, uints[i].key, v, err, sizeof(err)) == KR_CONFIG_OK);
		CHECK(uint_at(&c, uints[i].offset) == uints[i].max);
		kr_config_release(&c);
		/* ...one past either is not, and the message gives the range. */
		if (uints[i].min > 0)
			snprintf(v, sizeof(v), "%u", uints[i].min - 1);
		else
			snprintf(v, sizeof(v), "-1");
		CHECK(value_refused(uints[i].key, v));
		snprintf(v, sizeof(v), "%u", uints[i].max + 1);
		CHECK(value_refused(uints[i].key, v));
		CHECK(load_kv(&c, uints[i].key, v, err, sizeof(err)) == KR_CONFIG_INVALID);
		snprintf(want, sizeof(want), "from %u to %u", uints[i].min, uints[i].max);
		CHECK(strstr(err, want) != NULL);
	}
	CHECK(load_kv(&c, "db.port", "08", err, sizeof(err)) == KR_CONFIG_OK);
	CHECK(c.db_port == 8);	/* decimal, not octal */
	kr_config_release(&c);
	CHECK(value_refused("db.port", ""));
	CHECK(value_refused("db.port", "abc"));
	CHECK(value_refused("db.port", "5x"));
	CHECK(value_refused("db.port", "+5"));
	CHECK(value_refused("db.port", "-5"));
	CHECK(value_refused("db.port", "0x10"));
	CHECK(value_refused("db.port", "3306.0"));
	CHECK(value_refused("db.port", "33 06"));
	CHECK(value_refused("db.port", "99999999999999999999999"));
	CHECK(value_refused("db.port", "4294970602"));	/* 3306 + 2^32 */
	CHECK(value_refused("fcgi.threads", "18446744073709551617"));
}

static void
test_mode(void)
{
	static const struct {
		const char	*value;
		unsigned	 mode;
	} ok[] = {
		{ "0660", 0660 }, { "0600", 0600 }, { "660", 0660 }, { "0", 0 }, { "0777", 0777 },
		{ "00640", 0640 },
	};
	static const char *const bad[] = { "01000", "0668", "0o660", "rw-rw----", "-0660", "",
	    "0x1ff", "6 60" };
	struct kr_config c;
	char err[512];

	clear_env();
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK(load_kv(&c, "fcgi.socket_mode", ok[i].value, err, sizeof(err)) ==
		    KR_CONFIG_OK);
		CHECK(c.fcgi_socket_mode == ok[i].mode);
		kr_config_release(&c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(value_refused("fcgi.socket_mode", bad[i]));
}

static void
test_log_level(void)
{
	static const struct {
		const char		*value;
		enum kr_log_level	 level;
	} ok[] = {
		{ "debug", KR_LOG_DEBUG }, { "info", KR_LOG_INFO }, { "warn", KR_LOG_WARN },
		{ "error", KR_LOG_ERROR },
	};
	static const char *const bad[] = { "INFO", "Info", "warning", "trace", "", "0", "fatal" };
	struct kr_config c;
	char err[512];

	clear_env();
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK(load_kv(&c, "log.level", ok[i].value, err, sizeof(err)) == KR_CONFIG_OK);
		CHECK(c.log_level == ok[i].level);
		kr_config_release(&c);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(value_refused("log.level", bad[i]));
}

static void
test_bad_lines(void)
{
	struct kr_config c;
	enum kr_config_err rc;
	char err[512];

	clear_env();
	/* Unknown keys: a typo, another case, an environment-style name, an empty key. */
	/* (Named by line number only: the text of a wrong line may be a secret.) */
	CHECK(fails_with(PW_LINE "db.hots = x\n", KR_CONFIG_INVALID, "unknown key", ":2:"));
	CHECK(fails_with("DB.HOST = x\n" PW_LINE, KR_CONFIG_INVALID, "unknown key", ":1:"));
	CHECK(fails_with(PW_LINE "KEYRELAY_DB_HOST = x\n", KR_CONFIG_INVALID, "unknown key",
	    ":2:"));
	CHECK(fails_with(PW_LINE "# c\n\n = x\n", KR_CONFIG_INVALID, ":4:", NULL));
	CHECK(fails_with(PW_LINE "db .host = x\n", KR_CONFIG_INVALID, "unknown key", ":2:"));

	/* A line without '=' is refused with its line number (comments and blanks count). */
	CHECK(fails_with("# one\n\ndb.host 127.0.0.1\n" PW_LINE, KR_CONFIG_INVALID, ":3:",
	    "expected key = value"));
	CHECK(fails_with(PW_LINE "[db]\n", KR_CONFIG_INVALID, ":2:", NULL));
	/* The message carries the file's path, for the program's "config:" line. */
	CHECK(load_text(&c, PW_LINE "oops\n", err, sizeof(err)) == KR_CONFIG_INVALID);
	CHECK(starts_with(err, "/tmp/kr_test_config_"));
	/* The config is released on failure. */
	CHECK(c.db_host == NULL && c.db_password == NULL && c.path == NULL);

	/* Files that cannot be read. */
	CHECK(kr_config_load(&c, "/nonexistent/keyrelay.conf", err, sizeof(err)) ==
	    KR_CONFIG_IO);
	CHECK(strstr(err, "/nonexistent/keyrelay.conf") != NULL);
	/*
	 * A directory opens for reading on Linux, but every read fails (EISDIR); that is an
	 * unreadable file, not an empty one.
	 */
	setenv("KEYRELAY_DB_PASSWORD", "pw", 1);
	rc = kr_config_load(&c, "/tmp", err, sizeof(err));
	CHECK(rc == KR_CONFIG_IO);
	if (rc == KR_CONFIG_OK)
		kr_config_release(&c);
	clear_env();
}

static void
test_required(void)
{
	struct kr_config c;
	char err[512];

	clear_env();
	CHECK(fails_with("db.host = h\n", KR_CONFIG_MISSING, "db.password: ",
	    "KEYRELAY_DB_PASSWORD"));
	CHECK(kr_config_load(&c, NULL, err, sizeof(err)) == KR_CONFIG_MISSING);
	CHECK(starts_with(err, "db.password: "));
	CHECK(strstr(err, "KEYRELAY_DB_PASSWORD") != NULL);
	/* Released: nothing left behind for the caller to free. */
	CHECK(c.db_host == NULL && c.db_name == NULL && c.runner_name == NULL);
}

static void
test_env(void)
{
	struct kr_config c;
	char err[512];
	static const char file[] =
	    "db.password = filepw\n"
	    "fcgi.threads = 4\n"
	    "db.socket = /file.sock\n"
	    "provider.anthropic_base_url = http://file.example\n"
	    "log.level = error\n";

	clear_env();
	CHECK(load_text(&c, file, err, sizeof(err)) == KR_CONFIG_OK);
	CHECK_STR(c.db_password, "filepw");
	CHECK(c.fcgi_threads == 4);
	CHECK_STR(c.provider_base_url[0], "http://file.example");
	kr_config_release(&c);

	/* The environment wins over the file. */
	setenv("KEYRELAY_DB_PASSWORD", "envpw", 1);
	setenv("KEYRELAY_FCGI_THREADS", "12", 1);
	setenv("KEYRELAY_PROVIDER_ANTHROPIC_BASE_URL", "http://env.example", 1);
	setenv("KEYRELAY_FCGI_SOCKET_MODE", "0600", 1);
	setenv("KEYRELAY_LOG_LEVEL", "warn", 1);
	setenv("KEYRELAY_TELEGRAM_BASE_URL", "http://tg.example", 1);
	setenv("KEYRELAY_AUTH_LOGIN_MAX_FAILURES_PER_ADDRESS", "77", 1);
	setenv("KEYRELAY_DB_SOCKET", "", 1);	/* empty: unsets the file's value */
	CHECK(load_text(&c, file, err, sizeof(err)) == KR_CONFIG_OK);
	CHECK_STR(c.db_password, "envpw");
	CHECK(c.fcgi_threads == 12);
	CHECK_STR(c.provider_base_url[0], "http://env.example");
	CHECK(c.provider_base_url[1] == NULL);
	CHECK(c.fcgi_socket_mode == 0600);
	CHECK(c.log_level == KR_LOG_WARN);
	CHECK_STR(c.telegram_base_url, "http://tg.example");
	CHECK(c.auth_login_max_failures_per_address == 77);
	CHECK(c.db_socket == NULL);
	kr_config_release(&c);

	/* Without a file: the defaults and the environment. */
	CHECK(kr_config_load(&c, NULL, err, sizeof(err)) == KR_CONFIG_OK);
	CHECK_STR(c.db_password, "envpw");
	CHECK(c.fcgi_threads == 12);
	kr_config_release(&c);

	/* A bad value in the environment names the key and the variable. */
	clear_env();
	setenv("KEYRELAY_FCGI_THREADS", "0", 1);
	CHECK(fails_with(file, KR_CONFIG_INVALID, "fcgi.threads: ", "KEYRELAY_FCGI_THREADS"));
	setenv("KEYRELAY_FCGI_THREADS", "many", 1);
	CHECK(fails_with(file, KR_CONFIG_INVALID, "fcgi.threads: ", "KEYRELAY_FCGI_THREADS"));
	setenv("KEYRELAY_FCGI_THREADS", " 5", 1);	/* the environment is not trimmed */
	CHECK(fails_with(file, KR_CONFIG_INVALID, "KEYRELAY_FCGI_THREADS", NULL));
	clear_env();
	setenv("KEYRELAY_LOG_LEVEL", "loud", 1);
	CHECK(fails_with(file, KR_CONFIG_INVALID, "log.level: ", "KEYRELAY_LOG_LEVEL"));
	clear_env();
	setenv("KEYRELAY_FCGI_SOCKET_MODE", "0999", 1);
	CHECK(fails_with(file, KR_CONFIG_INVALID, "fcgi.socket_mode: ",
	    "KEYRELAY_FCGI_SOCKET_MODE"));

	/* An empty KEYRELAY_DB_PASSWORD unsets the file's password: then it is missing. */
	clear_env();
	setenv("KEYRELAY_DB_PASSWORD", "", 1);
	CHECK(fails_with(file, KR_CONFIG_MISSING, "db.password: ", "KEYRELAY_DB_PASSWORD"));

	/* The environment fixes nothing a bad file line breaks: the file fails first. */
	clear_env();
	setenv("KEYRELAY_DB_PORT", "3306", 1);
	CHECK(fails_with(PW_LINE "db.port = x\n", KR_CONFIG_INVALID, "db.port: ", NULL));
	clear_env();
}

static void
test_no_secret_in_errors(void)
{
	clear_env();
	/* The password after a line that fails. */
	CHECK(fails_with("db.password = " SECRET "\nbogus.key = 1\n", KR_CONFIG_INVALID,
	    "unknown key", ":2:"));
	CHECK(fails_with("db.password = " SECRET "\ndb.port = x\n", KR_CONFIG_INVALID,
	    "db.port: ", NULL));
	/* The password under the wrong key, of each type. */
	CHECK(fails_with(PW_LINE "db.port = " SECRET "\n", KR_CONFIG_INVALID, "db.port: ", NULL));
	CHECK(fails_with(PW_LINE "fcgi.socket_mode = " SECRET "\n", KR_CONFIG_INVALID,
	    "fcgi.socket_mode: ", NULL));
	CHECK(fails_with(PW_LINE "log.level = " SECRET "\n", KR_CONFIG_INVALID, "log.level: ",
	    NULL));
	/* Under a misspelt key, with a colon instead of '=', on a line of its own. */
	CHECK(fails_with("db.pasword = " SECRET "\n", KR_CONFIG_INVALID, "unknown key", ":1:"));
	CHECK(fails_with("db.password: " SECRET "\n", KR_CONFIG_INVALID, ":1:", NULL));
	CHECK(fails_with("db.password " SECRET "\n", KR_CONFIG_INVALID, ":1:", NULL));
	CHECK(fails_with("db.password =\n  " SECRET "\n", KR_CONFIG_INVALID, ":2:", NULL));
	/* From the environment. */
	setenv("KEYRELAY_FCGI_THREADS", SECRET, 1);
	CHECK(fails_with(PW_LINE, KR_CONFIG_INVALID, "KEYRELAY_FCGI_THREADS", NULL));
	clear_env();
	setenv("KEYRELAY_LOG_LEVEL", SECRET, 1);
	CHECK(fails_with(PW_LINE, KR_CONFIG_INVALID, "KEYRELAY_LOG_LEVEL", NULL));
	clear_env();
	/*
	 * A password that holds '=' written without the key's '=' (or on a continuation line):
	 * the text before its '=' becomes the "key" of the unknown-key message.
	 */
	CHECK(fails_with("db.password " SECRET "=tail\n", KR_CONFIG_INVALID, ":1:", NULL));
	CHECK(fails_with("db.password =\n" SECRET "=tail\n", KR_CONFIG_INVALID, ":2:", NULL));
}

static void
test_config_path(void)
{
	char a0[] = "keyrelay-admin", a1[] = "--config", a2[] = "/etc/k.conf", a3[] = "migrate";
	char a4[] = "--config=/q.conf", a5[] = "--dir", a6[] = "schema";
	const char *p;
	int argc;

	clear_env();
	{
		char *argv[] = { a0, a1, a2, a3, NULL };
		argc = 4;
		p = kr_config_path(&argc, argv);
		CHECK_STR(p, "/etc/k.conf");
		CHECK(argc == 2);
		CHECK(argv[0] == a0 && argv[1] == a3 && argv[2] == NULL);
	}
	{
		char *argv[] = { a0, a3, a4, a5, a6, NULL };
		argc = 5;
		p = kr_config_path(&argc, argv);
		CHECK_STR(p, "/q.conf");
		CHECK(argc == 4);
		CHECK(argv[0] == a0 && argv[1] == a3 && argv[2] == a5 && argv[3] == a6 &&
		    argv[4] == NULL);
	}
	{
		/* --config last, without its value: left alone. */
		char *argv[] = { a0, a3, a1, NULL };
		argc = 3;
		CHECK(kr_config_path(&argc, argv) == NULL);
		CHECK(argc == 3 && argv[2] == a1 && argv[3] == NULL);
	}
	{
		/* Neither: NULL, argv untouched. */
		char *argv[] = { a0, a3, NULL };
		argc = 2;
		CHECK(kr_config_path(&argc, argv) == NULL);
		CHECK(argc == 2 && argv[0] == a0 && argv[1] == a3 && argv[2] == NULL);
	}
	setenv("KEYRELAY_CONFIG", "/env.conf", 1);
	{
		char *argv[] = { a0, a3, NULL };
		argc = 2;
		CHECK_STR(kr_config_path(&argc, argv), "/env.conf");
		CHECK(argc == 2 && argv[1] == a3);
	}
	{
		/* The option wins over the environment. */
		char *argv[] = { a0, a1, a2, a3, NULL };
		argc = 4;
		CHECK_STR(kr_config_path(&argc, argv), "/etc/k.conf");
		CHECK(argc == 2 && argv[1] == a3 && argv[2] == NULL);
	}
	setenv("KEYRELAY_CONFIG", "", 1);
	{
		char *argv[] = { a0, NULL };
		argc = 1;
		CHECK(kr_config_path(&argc, argv) == NULL);
		CHECK(argc == 1);
	}
	clear_env();
}

/* Read the whole file (caller frees), or NULL. */
static char *
read_file(const char *path)
{
	struct kr_buf b;
	char chunk[4096];
	size_t n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return NULL;
	kr_buf_init(&b, 1024 * 1024);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		kr_buf_add(&b, chunk, n);
	fclose(f);
	if (b.failed != KR_BUF_OK) {
		kr_buf_release(&b, 0);
		return NULL;
	}
	return kr_buf_detach(&b, &n);
}

/* 1 when the text has a line "key =" or "#key =" (documented, maybe commented out). */
static int
documents(const char *text, const char *key)
{
	char a[128], b[128];

	snprintf(a, sizeof(a), "\n%s =", key);
	snprintf(b, sizeof(b), "\n#%s =", key);
	return strstr(text, a) != NULL || strstr(text, b) != NULL;
}

static void
test_example(void)
{
	struct kr_config ex, def;
	struct kr_buf un;
	char err[512] = "", *text;

	clear_env();
	CHECK(kr_config_load(&ex, EXAMPLE, err, sizeof(err)) == KR_CONFIG_OK);
	CHECK_STR(err, "");
	if ((text = read_file(EXAMPLE)) == NULL) {
		FAIL("cannot read " EXAMPLE);
		return;
	}
	/* It documents every key. */
	for (size_t i = 0; i < NKEYS; i++) {
		if (!documents(text, all_keys[i]))
			fprintf(stderr, "  %s does not document %s\n", EXAMPLE, all_keys[i]);
		CHECK(documents(text, all_keys[i]));
	}
	/* Its values are the defaults, except where marked "(example)". */
	setenv("KEYRELAY_DB_PASSWORD", "pw", 1);
	CHECK(kr_config_load(&def, NULL, err, sizeof(err)) == KR_CONFIG_OK);
	clear_env();
	for (size_t i = 0; i < NUINTS; i++) {
		if (uint_at(&ex, uints[i].offset) != uint_at(&def, uints[i].offset))
			fprintf(stderr, "  %s: example %u, default %u\n", uints[i].key,
			    uint_at(&ex, uints[i].offset), uint_at(&def, uints[i].offset));
		CHECK(uint_at(&ex, uints[i].offset) == uint_at(&def, uints[i].offset));
	}
	CHECK_STR(ex.db_host, def.db_host);
	CHECK_STR(ex.db_name, def.db_name);
	CHECK_STR(ex.db_user, def.db_user);
	CHECK_STR(ex.fcgi_socket, def.fcgi_socket);
	CHECK_STR(ex.fcgi_events_socket, def.fcgi_events_socket);
	CHECK(ex.fcgi_socket_mode == def.fcgi_socket_mode);
	CHECK(ex.log_level == def.log_level);
	CHECK_STR(ex.telegram_base_url, def.telegram_base_url);
	kr_config_release(&def);
	kr_config_release(&ex);

	/* With its commented-out keys ("#key = ...") enabled, it loads as well. */
	kr_buf_init(&un, 1024 * 1024);
	for (const char *line = text; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) + 1 : strlen(line);
		if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z')
			kr_buf_add(&un, line + 1, len - 1);
		else
			kr_buf_add(&un, line, len);
		line += len;
	}
	CHECK(un.failed == KR_BUF_OK);
	CHECK(load_text(&ex, kr_buf_str(&un), err, sizeof(err)) == KR_CONFIG_OK);
	if (err[0] != '\0')
		fprintf(stderr, "  example with comments enabled: %s\n", err);
	CHECK_STR(ex.db_socket, "/run/mysqld/mysqld.sock");
	CHECK_STR(ex.runner_name, "worker-1");
	CHECK_STR(ex.provider_base_url[0], "https://api.anthropic.com");
	CHECK(ex.provider_base_url[5] == NULL);
	CHECK(ex.base_url_allowlist != NULL);
	kr_config_release(&ex);
	kr_buf_release(&un, 0);
	free(text);
}

int
main(void)
{
	test_defaults();
	test_file_format();
	test_strings();
	test_uints();
	test_mode();
	test_log_level();
	test_bad_lines();
	test_required();
	test_env();
	test_no_secret_in_errors();
	test_config_path();
	test_example();
	return kr_test_done("test_config");
}
