/*
 * keyrelay-runner: the long-lived job runner. For now a daemon skeleton: it registers in
 * the runners table, heartbeats every runner.heartbeat_seconds (reconnecting by itself
 * when the database comes and goes), and on SIGTERM or SIGINT marks itself stopped and
 * exits 0. Jobs come in a later step.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <mysql.h>

#include "kr_config.h"
#include "kr_db.h"
#include "kr_log.h"
#include "kr_startup.h"
#include "kr_vault.h"
#include "kr_time.h"

#define PROG	"keyrelay-runner"

static const char sql_register[] =
    "INSERT INTO runners (id, name, pid, version) VALUES (?,?,?,?) "
    "ON DUPLICATE KEY UPDATE heartbeat_at = NOW(3), stopped_at = NULL";
static const char sql_heartbeat[] =
    "UPDATE runners SET heartbeat_at = NOW(3) WHERE id = ?";
static const char sql_stopped[] =
    "UPDATE runners SET stopped_at = NOW(3), heartbeat_at = NOW(3) WHERE id = ?";

struct runner {
	const struct kr_config	*cfg;
	struct kr_db		*db;
	char			 id[KR_UUID_MAX];
	int			 registered;
};

/* Register (first time, or again after the row went missing) or heartbeat. */
static void
beat(struct runner *r)
{
	struct kr_dbp p[4] = { KR_P_STR(r->id), KR_P_STR(r->cfg->runner_name),
	    KR_P_INT(getpid()), KR_P_STR(PROJECT_VERSION) };
	uint64_t n = 0;
	enum kr_db_err rc;

	if (r->registered) {
		rc = kr_db_exec(r->db, sql_heartbeat, p, 1, NULL, &n);
		if (rc == KR_DB_OK && n > 0)
			return;
	}
	rc = kr_db_exec(r->db, sql_register, p, 4, NULL, NULL);
	if (rc == KR_DB_OK && !r->registered)
		kr_info("registered as runner %s (%s)", r->id, r->cfg->runner_name);
	r->registered = rc == KR_DB_OK;
}

int
main(int argc, char **argv)
{
	struct kr_config cfg;
	struct runner r;
	struct timespec wait;
	char err[512];
	sigset_t sigs;
	int sig, rc = 1;
	const char *path = kr_config_path(&argc, argv);

	if (argc > 1) {
		fprintf(stderr, "usage: %s [--config PATH]\n", PROG);
		return 2;
	}
	if (kr_config_load(&cfg, path, err, sizeof(err)) != KR_CONFIG_OK) {
		fprintf(stderr, "%s: config: %s\n", PROG, err);
		return 1;
	}
	kr_log_init(PROG, cfg.log_level);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	memset(&r, 0, sizeof(r));
	r.cfg = &cfg;
	kr_uuid_new(r.id);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    mysql_library_init(0, NULL, NULL) != 0 || (r.db = kr_db_new(&cfg)) == NULL) {
		kr_error("initialisation failed");
		goto out;
	}
	if (kr_startup_vault(&cfg, PROG) != 0)
		goto out;
	wait = (struct timespec){ (time_t)cfg.runner_heartbeat_seconds, 0 };
	for (;;) {
		beat(&r);
		sig = sigtimedwait(&sigs, NULL, &wait);
		if (sig == SIGTERM || sig == SIGINT)
			break;
	}
	kr_info("signal %d: stopping", sig);
	if (kr_db_exec(r.db, sql_stopped, (struct kr_dbp[]){ KR_P_STR(r.id) }, 1, NULL, NULL) !=
	    KR_DB_OK)
		kr_warn("could not mark runner %s stopped", r.id);
	rc = 0;
out:
	kr_vault_unload();
	kr_db_free(&r.db);
	mysql_library_end();
	curl_global_cleanup();
	kr_config_release(&cfg);
	return rc;
}
