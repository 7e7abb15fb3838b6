#include "kr_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kr_crypto.h"

enum opt_type { OPT_STR, OPT_UINT, OPT_MODE, OPT_LOGLEVEL };

struct opt {
	const char	*key;
	enum opt_type	 type;
	size_t		 offset;
	const char	*def;		/* NULL: no default */
	int		 required;
	unsigned	 min, max;	/* OPT_UINT bounds */
};

#define O(f)	offsetof(struct kr_config, f)

static const struct opt opts[] = {
	{ "db.host", OPT_STR, O(db_host), "127.0.0.1", 0, 0, 0 },
	{ "db.port", OPT_UINT, O(db_port), "3306", 0, 1, 65535 },
	{ "db.socket", OPT_STR, O(db_socket), NULL, 0, 0, 0 },
	{ "db.name", OPT_STR, O(db_name), "keyrelay", 1, 0, 0 },
	{ "db.user", OPT_STR, O(db_user), "keyrelay", 1, 0, 0 },
	{ "db.password", OPT_STR, O(db_password), NULL, 1, 0, 0 },
	{ "fcgi.socket", OPT_STR, O(fcgi_socket), "/run/keyrelay/api.sock", 0, 0, 0 },
	{ "fcgi.events_socket", OPT_STR, O(fcgi_events_socket), "/run/keyrelay/events.sock",
	    0, 0, 0 },
	{ "fcgi.socket_group", OPT_STR, O(fcgi_socket_group), NULL, 0, 0, 0 },
	{ "fcgi.socket_mode", OPT_MODE, O(fcgi_socket_mode), "0660", 0, 0, 0777 },
	{ "fcgi.threads", OPT_UINT, O(fcgi_threads), "8", 0, 1, 1024 },
	{ "fcgi.events_threads", OPT_UINT, O(fcgi_events_threads), "64", 0, 1, 65536 },
	{ "runner.name", OPT_STR, O(runner_name), NULL, 0, 0, 0 },
	{ "runner.heartbeat_seconds", OPT_UINT, O(runner_heartbeat_seconds), "10", 0, 1, 3600 },
	{ "runner.max_in_flight", OPT_UINT, O(runner_max_in_flight), "256", 0, 1, 10000 },
	{ "runner.workspace_cap", OPT_UINT, O(runner_workspace_cap), "64", 0, 1, 10000 },
	{ "runner.lease_seconds", OPT_UINT, O(runner_lease_seconds), "60", 0, 2, 3600 },
	{ "runner.attempt_timeout_seconds", OPT_UINT, O(runner_attempt_timeout_seconds), "120",
	    0, 1, 3600 },
	{ "runner.drain_seconds", OPT_UINT, O(runner_drain_seconds), "20", 0, 0, 3600 },
	{ "runner.backoff_max_seconds", OPT_UINT, O(runner_backoff_max_seconds), "60", 0, 1,
	    3600 },
	{ "runner.idle_poll_ms", OPT_UINT, O(runner_idle_poll_ms), "250", 0, 20, 10000 },
	{ "events.retention_hours", OPT_UINT, O(events_retention_hours), "72", 0, 1, 8760 },
	{ "events.streams_per_client", OPT_UINT, O(events_streams_per_client), "8", 0, 1,
	    65536 },
	{ "events.streams_per_workspace", OPT_UINT, O(events_streams_per_workspace), "32", 0, 1,
	    65536 },
	{ "auth.session_hours", OPT_UINT, O(auth_session_hours), "168", 0, 1, 24 * 366 },
	{ "auth.hash_concurrency", OPT_UINT, O(auth_hash_concurrency), "2", 0, 1, 64 },
	{ "auth.login_max_failures", OPT_UINT, O(auth_login_max_failures), "5", 0, 1, 1000 },
	{ "auth.login_max_failures_per_address", OPT_UINT,
	    O(auth_login_max_failures_per_address), "50", 0, 1, 100000 },
	{ "auth.login_window_seconds", OPT_UINT, O(auth_login_window_seconds), "900", 0, 1,
	    86400 },
	{ "log.level", OPT_LOGLEVEL, O(log_level), "info", 0, 0, 0 },
	{ "secrets.master_keys", OPT_STR, O(secrets_master_keys), NULL, 0, 0, 0 },
	{ "secrets.active_master_key", OPT_STR, O(secrets_active_master_key), NULL, 0, 0, 0 },
	/* Same order as the provider registry (kr_providers.c). */
	{ "provider.anthropic_base_url", OPT_STR, O(provider_base_url[0]), NULL, 0, 0, 0 },
	{ "provider.openai_base_url", OPT_STR, O(provider_base_url[1]), NULL, 0, 0, 0 },
	{ "provider.google_base_url", OPT_STR, O(provider_base_url[2]), NULL, 0, 0, 0 },
	{ "provider.zai_base_url", OPT_STR, O(provider_base_url[3]), NULL, 0, 0, 0 },
	{ "provider.moonshot_base_url", OPT_STR, O(provider_base_url[4]), NULL, 0, 0, 0 },
	{ "provider.openai_compatible_base_url", OPT_STR, O(provider_base_url[5]), NULL, 0, 0,
	    0 },
	{ "base_url_allowlist", OPT_STR, O(base_url_allowlist), NULL, 0, 0, 0 },
	{ "telegram_base_url", OPT_STR, O(telegram_base_url), "https://api.telegram.org", 0, 0,
	    0 },
};

#define NOPTS	(sizeof(opts) / sizeof(opts[0]))

const char *
kr_config_path(int *argc, char **argv)
{
	const char *path = NULL;
	int i, drop = 0;

	for (i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < *argc) {
			path = argv[i + 1];
			drop = 2;
			break;
		}
		if (strncmp(argv[i], "--config=", 9) == 0) {
			path = argv[i] + 9;
			drop = 1;
			break;
		}
	}
	if (drop > 0) {
		memmove(&argv[i], &argv[i + drop], (size_t)(*argc - i - drop + 1) * sizeof(*argv));
		*argc -= drop;
	}
	if (path == NULL)
		path = getenv("KEYRELAY_CONFIG");
	return path != NULL && *path != '\0' ? path : NULL;
}

static const struct opt *
find_opt(const char *key)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].key, key) == 0)
			return &opts[i];
	return NULL;
}

static int
parse_uint(const char *s, int base, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;
	char *end;

	if (*s == '\0' || *s == '-' || *s == '+' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Store value for o; err gets "why" on failure. Secret values are never copied into err. */
static enum kr_config_err
set_opt(struct kr_config *cfg, const struct opt *o, const char *value, char *err, size_t errlen)
{
	char *base = (char *)cfg + o->offset;
	char **sp;

	switch (o->type) {
	case OPT_STR:
		sp = (char **)(void *)base;
		if (*sp != NULL)
			kr_wipe(*sp, strlen(*sp));
		free(*sp);
		*sp = NULL;
		if (*value == '\0')
			return KR_CONFIG_OK;	/* empty: unset */
		if ((*sp = strdup(value)) == NULL) {
			snprintf(err, errlen, "%s: out of memory", o->key);
			return KR_CONFIG_INVALID;
		}
		return KR_CONFIG_OK;
	case OPT_UINT:
		if (parse_uint(value, 10, o->min, o->max, (unsigned *)(void *)base) != 0) {
			snprintf(err, errlen, "%s: must be a whole number from %u to %u", o->key,
			    o->min, o->max);
			return KR_CONFIG_INVALID;
		}
		return KR_CONFIG_OK;
	case OPT_MODE:
		if (parse_uint(value, 8, 0, o->max, (unsigned *)(void *)base) != 0) {
			snprintf(err, errlen, "%s: must be an octal file mode such as 0660", o->key);
			return KR_CONFIG_INVALID;
		}
		return KR_CONFIG_OK;
	case OPT_LOGLEVEL:
		if (kr_log_parse_level(value, (enum kr_log_level *)(void *)base) != 0) {
			snprintf(err, errlen, "%s: must be debug, info, warn or error", o->key);
			return KR_CONFIG_INVALID;
		}
		return KR_CONFIG_OK;
	}
	return KR_CONFIG_INVALID;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static enum kr_config_err
load_file(struct kr_config *cfg, const char *path, char *err, size_t errlen)
{
	enum kr_config_err rc = KR_CONFIG_OK;
	const struct opt *o;
	char *line = NULL, *eq, *key;
	size_t cap = 0;
	unsigned lineno = 0;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return KR_CONFIG_IO;
	}
	while (rc == KR_CONFIG_OK && getline(&line, &cap, f) != -1) {
		lineno++;
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		if ((eq = strchr(key, '=')) == NULL) {
			snprintf(err, errlen, "%s:%u: expected key = value", path, lineno);
			rc = KR_CONFIG_INVALID;
			break;
		}
		*eq = '\0';
		key = trim(key);
		if ((o = find_opt(key)) == NULL) {
			/* The line number, not the text: a misplaced line may hold a password
			 * with a '=' in it, and that must not end up in a message. */
			snprintf(err, errlen, "%s:%u: unknown key (see keyrelay.conf.example)",
			    path, lineno);
			rc = KR_CONFIG_INVALID;
			break;
		}
		rc = set_opt(cfg, o, trim(eq + 1), err, errlen);
	}
	if (rc == KR_CONFIG_OK && ferror(f)) {	/* a directory, an I/O error: not "empty" */
		snprintf(err, errlen, "%s: cannot be read: %s", path, strerror(errno));
		rc = KR_CONFIG_IO;
	}
	if (line != NULL)
		kr_wipe(line, cap);
	free(line);
	fclose(f);
	return rc;
}

/* KEYRELAY_ + key upper-cased with '.' as '_'. */
static void
env_name(const char *key, char *out, size_t outlen)
{
	size_t n = (size_t)snprintf(out, outlen, "KEYRELAY_%s", key);

	for (size_t i = 9; i < n && i < outlen; i++)
		out[i] = out[i] == '.' ? '_' : (char)toupper((unsigned char)out[i]);
}

static enum kr_config_err
load_env(struct kr_config *cfg, char *err, size_t errlen)
{
	enum kr_config_err rc;
	char name[96];
	const char *v;

	for (size_t i = 0; i < NOPTS; i++) {
		env_name(opts[i].key, name, sizeof(name));
		if ((v = getenv(name)) == NULL)
			continue;
		if ((rc = set_opt(cfg, &opts[i], v, err, errlen)) != KR_CONFIG_OK) {
			size_t n = strlen(err);
			snprintf(err + n, errlen - n, " (from %s)", name);
			return rc;
		}
	}
	return KR_CONFIG_OK;
}

enum kr_config_err
kr_config_load(struct kr_config *cfg, const char *path, char *err, size_t errlen)
{
	enum kr_config_err rc = KR_CONFIG_OK;
	char host[256];

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NOPTS && rc == KR_CONFIG_OK; i++)
		if (opts[i].def != NULL)
			rc = set_opt(cfg, &opts[i], opts[i].def, err, errlen);
	if (rc == KR_CONFIG_OK && path != NULL) {
		if ((cfg->path = strdup(path)) == NULL)
			rc = KR_CONFIG_IO;
		else
			rc = load_file(cfg, path, err, errlen);
	}
	if (rc == KR_CONFIG_OK)
		rc = load_env(cfg, err, errlen);
	if (rc == KR_CONFIG_OK && cfg->runner_name == NULL &&
	    gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		cfg->runner_name = strdup(host);
	}
	for (size_t i = 0; i < NOPTS && rc == KR_CONFIG_OK; i++) {
		if (opts[i].required && opts[i].type == OPT_STR &&
		    *(char **)(void *)((char *)cfg + opts[i].offset) == NULL) {
			char name[96];
			env_name(opts[i].key, name, sizeof(name));
			snprintf(err, errlen, "%s: required, set it in the file or as %s",
			    opts[i].key, name);
			rc = KR_CONFIG_MISSING;
		}
	}
	if (rc != KR_CONFIG_OK)
		kr_config_release(cfg);
	return rc;
}

void
kr_config_release(struct kr_config *cfg)
{
	for (size_t i = 0; i < NOPTS; i++) {
		char **sp;
		if (opts[i].type != OPT_STR)
			continue;
		sp = (char **)(void *)((char *)cfg + opts[i].offset);
		if (*sp != NULL)
			kr_wipe(*sp, strlen(*sp));
		free(*sp);
		*sp = NULL;
	}
	free(cfg->path);
	cfg->path = NULL;
}
