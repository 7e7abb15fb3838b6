/*
 * kr_config: the one configuration file of all three programs.
 *
 * Format: "key = value" lines, '#' comments, blank lines. An unknown key, a bad value or a
 * missing required setting is an error naming the key. Every key can be overridden from the
 * environment as KEYRELAY_ + the key upper-cased with '.' as '_' (db.password ->
 * KEYRELAY_DB_PASSWORD); the environment wins over the file.
 */
#ifndef KR_CONFIG_H
#define KR_CONFIG_H

#include <stddef.h>

#include "kr_log.h"

enum kr_config_err {
	KR_CONFIG_OK = 0,
	KR_CONFIG_IO,		/* the file could not be read */
	KR_CONFIG_INVALID,	/* a line, key or value is wrong; the message names it */
	KR_CONFIG_MISSING,	/* a required setting has no value */
};

struct kr_config {
	char	*path;

	char	*db_host;
	unsigned db_port;
	char	*db_socket;
	char	*db_name;
	char	*db_user;
	char	*db_password;

	char	*fcgi_socket;
	char	*fcgi_events_socket;
	char	*fcgi_socket_group;
	unsigned fcgi_socket_mode;
	unsigned fcgi_threads;
	unsigned fcgi_events_threads;

	char	*runner_name;
	unsigned runner_heartbeat_seconds;
	unsigned runner_max_in_flight;		/* provider calls at once */
	unsigned runner_workspace_cap;		/* of those, for one workspace */
	unsigned runner_lease_seconds;		/* a job's lease; heartbeats extend it */
	unsigned runner_attempt_timeout_seconds;
	unsigned runner_drain_seconds;		/* SIGTERM: time to finish calls in hand */
	unsigned runner_backoff_max_seconds;
	unsigned runner_idle_poll_ms;		/* longest pause between claims that find nothing */
	unsigned events_retention_hours;
	unsigned events_streams_per_client;	/* per user or token, per keyrelay-fcgi */
	unsigned events_streams_per_workspace;	/* per keyrelay-fcgi */

	unsigned auth_session_hours;
	unsigned auth_hash_concurrency;
	unsigned auth_login_max_failures;
	unsigned auth_login_max_failures_per_address;
	unsigned auth_login_window_seconds;

	enum kr_log_level log_level;

	char	*secrets_master_keys;		/* "ID=file:/path,ID2=env:NAME" */
	char	*secrets_active_master_key;

	/* Per-provider base URL overrides, indexed like the provider registry. */
	char	*provider_base_url[6];
	char	*base_url_allowlist;		/* comma-separated origins allowed for http:// */
	char	*telegram_base_url;
};

/*
 * Find the configuration path: "--config PATH" (or "--config=PATH") in argv, which is then
 * removed from argv (argc updated), else $KEYRELAY_CONFIG. NULL when neither is given.
 */
const char	*kr_config_path(int *argc, char **argv);

/*
 * Load defaults, then the file (NULL: none), then the environment, then check required
 * settings. On failure err holds "key: why" (no secret values) and the config is released.
 */
enum kr_config_err kr_config_load(struct kr_config *cfg, const char *path, char *err,
		    size_t errlen);
void		kr_config_release(struct kr_config *cfg);

#endif
