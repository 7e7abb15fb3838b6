/*
 * keyrelay-admin: operations from the shell. Exit 0 on success, 1 on failure, 2 on wrong
 * usage. Passwords are read from standard input or a prompt, never from argv; secrets that
 * must be shown (a new API token) go to standard output alone, everything else to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <curl/curl.h>
#include <mysql.h>

#include "kr_accounts.h"
#include "kr_audit.h"
#include "kr_json.h"
#include "kr_keys.h"
#include "kr_providers.h"
#include "kr_select.h"
#include "kr_vault.h"
#include "kr_config.h"
#include "kr_crypto.h"
#include "kr_db.h"
#include "kr_log.h"
#include "kr_migrate.h"
#include "kr_workspaces.h"

#define PROG	"keyrelay-admin"

struct ctx {
	struct kr_config	cfg;
	struct kr_db		*db;
};

struct command {
	const char	*name;
	const char	*usage;
	int		(*run)(struct ctx *, int, char **);
};

/* The value after --name in argv, or NULL. */
static const char *
opt(int argc, char **argv, const char *name)
{
	for (int i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

static int
flag(int argc, char **argv, const char *name)
{
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

static int
db_fail(struct ctx *c, const char *what, enum kr_db_err rc)
{
	if (rc == KR_DB_DOWN)
		fprintf(stderr, "%s: %s: cannot reach the database (error %u)\n", PROG, what,
		    kr_db_errno(c->db));
	else
		fprintf(stderr, "%s: %s: database error %u\n", PROG, what, kr_db_errno(c->db));
	return 1;
}

static int
cmd_migrate(struct ctx *c, int argc, char **argv)
{
	const char *dir = opt(argc, argv, "--dir");
	unsigned applied = 0, version = 0;

	if (dir == NULL)
		dir = getenv("KEYRELAY_SCHEMA_DIR");
	if (dir == NULL)
		dir = KEYRELAY_SCHEMA_DIR;
	if (kr_migrate(c->db, dir, stderr, &applied) != KR_MIGRATE_OK)
		return 1;
	(void)kr_migrate_version(c->db, &version);
	fprintf(stderr, "schema at version %u (%u applied now)\n", version, applied);
	return 0;
}

/* Read a line without echo when stdin is a terminal. -1 on EOF or overflow. */
static int
read_secret(const char *prompt, char *buf, size_t len)
{
	struct termios old, quiet;
	int tty = isatty(STDIN_FILENO), rc = -1;
	size_t n;

	if (tty) {
		fputs(prompt, stderr);
		tcgetattr(STDIN_FILENO, &old);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	if (fgets(buf, (int)len, stdin) != NULL) {
		n = strlen(buf);
		if (n > 0 && buf[n - 1] == '\n')
			buf[--n] = '\0';
		else if (n + 1 >= len)
			n = 0, buf[0] = '\0', rc = -2;
		if (n > 0 && buf[n - 1] == '\r')
			buf[--n] = '\0';
		if (rc != -2)
			rc = 0;
	}
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	return rc;
}

static int
read_password(char *pw, size_t len)
{
	char again[KR_PASSWORD_MAX + 2];
	int rc = -1;

	if (read_secret("Password: ", pw, len) != 0)
		fprintf(stderr, "%s: no password given (or longer than %d bytes)\n", PROG,
		    KR_PASSWORD_MAX);
	else if (strlen(pw) < KR_PASSWORD_MIN)
		fprintf(stderr, "%s: the password must be at least %d bytes\n", PROG,
		    KR_PASSWORD_MIN);
	else if (isatty(STDIN_FILENO) && (read_secret("Again: ", again, sizeof(again)) != 0 ||
	    strcmp(pw, again) != 0))
		fprintf(stderr, "%s: the passwords differ\n", PROG);
	else
		rc = 0;
	kr_wipe(again, sizeof(again));
	return rc;
}

static int
cmd_create_user(struct ctx *c, int argc, char **argv)
{
	const char *raw = opt(argc, argv, "--email"), *name = opt(argc, argv, "--name");
	char email[KR_EMAIL_MAX + 1], pw[KR_PASSWORD_MAX + 2], hash[KR_PASSWORD_HASH_MAX];
	struct kr_user u;
	enum kr_db_err rc;
	int ret = 1;

	if (raw == NULL || name == NULL)
		return 2;
	if (kr_email_normalize(raw, email) != 0) {
		fprintf(stderr, "%s: --email: not an e-mail address\n", PROG);
		return 1;
	}
	if (*name == '\0' || kr_utf8_chars(name, strlen(name)) > KR_NAME_MAX) {
		fprintf(stderr, "%s: --name: 1 to %d characters\n", PROG, KR_NAME_MAX);
		return 1;
	}
	if (read_password(pw, sizeof(pw)) != 0)
		goto out;
	if (kr_password_hash(pw, strlen(pw), hash, sizeof(hash)) != KR_CRYPTO_OK) {
		fprintf(stderr, "%s: password hashing failed\n", PROG);
		goto out;
	}
	rc = kr_user_create(c->db, email, name, hash, flag(argc, argv, "--instance-admin"), &u);
	if (rc == KR_DB_DUPLICATE)
		fprintf(stderr, "%s: a user with e-mail %s exists already\n", PROG, email);
	else if (rc != KR_DB_OK)
		db_fail(c, "create-user", rc);
	else {
		printf("%s\n", u.id);
		ret = 0;
	}
out:
	kr_wipe(pw, sizeof(pw));
	return ret;
}

static int
find_user(struct ctx *c, const char *raw, struct kr_user *u)
{
	char email[KR_EMAIL_MAX + 1];
	enum kr_db_err rc;
	int found = 0;

	if (kr_email_normalize(raw, email) != 0) {
		fprintf(stderr, "%s: not an e-mail address: %s\n", PROG, raw);
		return -1;
	}
	if ((rc = kr_user_by_email(c->db, email, u, &found)) != KR_DB_OK)
		return db_fail(c, "user lookup", rc), -1;
	if (!found) {
		fprintf(stderr, "%s: no user with e-mail %s\n", PROG, email);
		return -1;
	}
	return 0;
}

static int
find_workspace(struct ctx *c, const char *slug, struct kr_workspace *ws)
{
	enum kr_db_err rc;
	int found = 0;

	if (kr_slug_valid(slug) && (rc = kr_ws_by_slug(c->db, slug, ws, &found)) != KR_DB_OK)
		return db_fail(c, "workspace lookup", rc), -1;
	if (!found) {
		fprintf(stderr, "%s: no workspace %s\n", PROG, slug);
		return -1;
	}
	return 0;
}

static int
cmd_create_workspace(struct ctx *c, int argc, char **argv)
{
	const char *slug = opt(argc, argv, "--slug"), *name = opt(argc, argv, "--name");
	const char *owner = opt(argc, argv, "--owner");
	struct kr_workspace ws;
	struct kr_user u;
	enum kr_db_err rc;

	if (slug == NULL || name == NULL)
		return 2;
	if (!kr_slug_valid(slug)) {
		fprintf(stderr, "%s: --slug: lower-case letters, digits and '-', at most %d\n",
		    PROG, KR_SLUG_MAX);
		return 1;
	}
	if (*name == '\0' || kr_utf8_chars(name, strlen(name)) > KR_NAME_MAX) {
		fprintf(stderr, "%s: --name: 1 to %d characters\n", PROG, KR_NAME_MAX);
		return 1;
	}
	if (owner != NULL && find_user(c, owner, &u) != 0)
		return 1;
	rc = kr_ws_create(c->db, slug, name, owner != NULL ? u.id : NULL, &ws);
	if (rc == KR_DB_DUPLICATE) {
		fprintf(stderr, "%s: workspace %s exists already\n", PROG, slug);
		return 1;
	}
	if (rc != KR_DB_OK)
		return db_fail(c, "create-workspace", rc);
	printf("%s\n", ws.id);
	return 0;
}

static int
cmd_add_member(struct ctx *c, int argc, char **argv)
{
	const char *slug = opt(argc, argv, "--workspace"), *email = opt(argc, argv, "--email");
	const char *r = opt(argc, argv, "--role");
	struct kr_workspace ws;
	struct kr_user u;
	enum kr_role role;
	enum kr_db_err rc;

	if (slug == NULL || email == NULL || r == NULL)
		return 2;
	if ((role = kr_role_parse(r)) == KR_ROLE_NONE) {
		fprintf(stderr, "%s: --role: admin, member or viewer\n", PROG);
		return 1;
	}
	if (find_workspace(c, slug, &ws) != 0 || find_user(c, email, &u) != 0)
		return 1;
	rc = kr_member_add(c->db, ws.id, u.id, role);
	if (rc == KR_DB_DUPLICATE) {
		fprintf(stderr, "%s: %s is a member of %s already\n", PROG, u.email, slug);
		return 1;
	}
	return rc == KR_DB_OK ? 0 : db_fail(c, "add-member", rc);
}

static int
cmd_create_token(struct ctx *c, int argc, char **argv)
{
	const char *slug = opt(argc, argv, "--workspace"), *name = opt(argc, argv, "--name");
	const char *r = opt(argc, argv, "--role");
	char secret[KR_SECRET_MAX];
	struct kr_workspace ws;
	struct kr_token t;
	enum kr_role role;
	enum kr_db_err rc;

	if (slug == NULL || name == NULL || r == NULL)
		return 2;
	if ((role = kr_role_parse(r)) == KR_ROLE_NONE) {
		fprintf(stderr, "%s: --role: admin, member or viewer\n", PROG);
		return 1;
	}
	if (*name == '\0' || kr_utf8_chars(name, strlen(name)) > KR_NAME_MAX) {
		fprintf(stderr, "%s: --name: 1 to %d characters\n", PROG, KR_NAME_MAX);
		return 1;
	}
	if (find_workspace(c, slug, &ws) != 0)
		return 1;
	if ((rc = kr_token_create(c->db, ws.id, name, role, NULL, &t, secret)) != KR_DB_OK)
		return db_fail(c, "create-token", rc);
	printf("%s\n", secret);
	kr_wipe(secret, sizeof(secret));
	return 0;
}

static const char sql_runners[] =
    "SELECT name, pid, heartbeat_at, stopped_at, "
    "TIMESTAMPDIFF(SECOND, heartbeat_at, NOW(3)) FROM runners "
    "WHERE stopped_at IS NULL OR stopped_at > NOW(3) - INTERVAL 1 DAY ORDER BY heartbeat_at DESC";

static int
cmd_status(struct ctx *c, int argc, char **argv)
{
	struct kr_db_res res;
	enum kr_db_err rc;
	unsigned version = 0;

	(void)argc, (void)argv;
	if ((rc = kr_migrate_version(c->db, &version)) != KR_DB_OK)
		return db_fail(c, "status", rc);
	printf("database: ok\nschema version: %u\n", version);
	if ((rc = kr_db_exec(c->db, sql_runners, NULL, 0, &res, NULL)) != KR_DB_OK)
		return db_fail(c, "status", rc);
	printf("runners: %u\n", res.nrows);
	for (unsigned i = 0; i < res.nrows; i++)
		printf("  %s pid %s heartbeat %s (%ss ago)%s\n", kr_db_cell(&res, i, 0),
		    kr_db_cell(&res, i, 1), kr_db_cell(&res, i, 2), kr_db_cell(&res, i, 4),
		    kr_db_cell(&res, i, 3) != NULL ? " stopped" : "");
	kr_db_res_free(&res);
	return 0;
}

/* Load the master keys and check them against the database; 0 on success. */
static int
vault_ready(struct ctx *c)
{
	char err[512];

	if (c->cfg.secrets_master_keys == NULL) {
		fprintf(stderr, "%s: config: secrets.master_keys: required for this command\n",
		    PROG);
		return -1;
	}
	if (kr_vault_load(c->cfg.secrets_master_keys, c->cfg.secrets_active_master_key, err,
	    sizeof(err)) != KR_VAULT_OK || kr_vault_verify(c->db, err, sizeof(err)) !=
	    KR_VAULT_OK) {
		fprintf(stderr, "%s: master keys: %s\n", PROG, err);
		return -1;
	}
	return 0;
}

static void
rekey_progress(unsigned long done, unsigned long total, void *arg)
{
	(void)arg;
	fprintf(stderr, "rewrapped %lu of %lu data keys\n", done, total);
}

static int
cmd_rekey(struct ctx *c, int argc, char **argv)
{
	struct kr_vault_rekey_counts n;
	enum kr_vault_err rc;

	(void)argc, (void)argv;
	if (vault_ready(c) != 0)
		return 1;
	fprintf(stderr, "rewrapping data keys under master key %s\n", kr_vault_active_id());
	if ((rc = kr_vault_rekey_counted(c->db, rekey_progress, NULL, &n)) != KR_VAULT_OK) {
		fprintf(stderr, "%s: rekey stopped (%s); run it again to continue\n", PROG,
		    rc == KR_VAULT_NOKEY ? "a data key's master key is not loaded" :
		    rc == KR_VAULT_DB ? "database error" : "a wrapped data key did not verify");
		return 1;
	}
	if (n.left > 0) {
		fprintf(stderr, "%s: not done: %lu data key(s) were made under an old master key "
		    "while this ran; restart every keyrelay process with the new active key, then "
		    "run rekey again\n", PROG, n.left);
		return 1;
	}
	fprintf(stderr, "done: every data key is wrapped under %s\n", kr_vault_active_id());
	return 0;
}

/*
 * One imported key, its key.created audit entry (actor type "system") and its
 * key_status_changed event, as a kr_db_tx body.
 */
struct import_tx {
	const struct kr_workspace *ws;
	const struct kr_provider *p;
	struct kr_key_entry	*e;
	enum kr_keys_err	 why;	/* why the body gave up */
};

static enum kr_db_err
import_in_tx(struct kr_db *db, void *arg)
{
	struct import_tx *t = arg;
	struct kr_actor a = { KR_ACTOR_SYSTEM, NULL, "keyrelay-admin import-env", NULL };
	char hint[KR_KEY_HINT_MAX];
	enum kr_db_err rc = KR_DB_OK;
	json_object *d;
	size_t bad = 0;

	if ((t->why = kr_keys_add(db, t->ws->id, t->p, t->e, 1, &bad, &rc)) != KR_KEYS_OK)
		return t->why != KR_KEYS_DB ? KR_DB_ABORT : rc != KR_DB_OK ? rc : KR_DB_ERROR;
	kr_key_hint(t->e->secret, t->e->len, hint);
	d = json_object_new_object();
	kr_json_add_str(d, "provider", t->p->slug);
	kr_json_add_str(d, "name", t->e->name);
	kr_json_add_str(d, "maskedKey", hint);
	kr_json_add_str(d, "source", t->p->env_var);
	rc = kr_audit(db, t->ws->id, &a, "key.created", t->e->id, d);
	json_object_put(d);
	return rc == KR_DB_OK ? kr_keys_event(db, t->ws->id, t->e->id) : rc;
}

/* Add e with its audit entry and its event in one transaction (again on deadlock). */
static enum kr_keys_err
import_one(struct ctx *c, const struct kr_workspace *ws, const struct kr_provider *p,
    struct kr_key_entry *e)
{
	struct import_tx t = { ws, p, e, KR_KEYS_DB };
	enum kr_db_err rc = kr_db_tx(c->db, import_in_tx, &t, 0);

	return rc == KR_DB_OK ? KR_KEYS_OK : rc == KR_DB_ABORT ? t.why : KR_KEYS_DB;
}

/* What import-env did, over all providers. */
struct import_counts {
	unsigned	added, present, refused;
};

/* Import one provider's environment keys (kr_key_list_next), counted into *n. */
static int
import_provider(struct ctx *c, const struct kr_workspace *ws, const struct kr_provider *p,
    struct import_counts *n)
{
	const char *v = getenv(p->env_var), *b, *why;
	struct kr_key_entry entry;
	enum kr_keys_err rc;
	char name[128];
	size_t idx = 0, len;

	snprintf(name, sizeof(name), "Imported from %s", p->env_var);
	while (kr_key_list_next(&v, &b, &len)) {
		idx++;
		if ((why = kr_key_format_error(p, b, len)) != NULL) {
			fprintf(stderr, "%s entry %zu refused: %s\n", p->env_var, idx, why);
			n->refused++;
			continue;
		}
		entry = (struct kr_key_entry){ b, len, name, "" };
		if ((rc = import_one(c, ws, p, &entry)) == KR_KEYS_DUPLICATE) {
			n->present++;
			continue;
		}
		if (rc != KR_KEYS_OK) {
			fprintf(stderr, "%s: %s entry %zu: %s\n", PROG, p->env_var, idx,
			    rc == KR_KEYS_DB ? "database error" : "encryption failed");
			return -1;
		}
		n->added++;
	}
	return 0;
}

/* Exit 1 when an entry was refused: the keys that pass are imported all the same. */
static int
cmd_import_env(struct ctx *c, int argc, char **argv)
{
	const char *slug = opt(argc, argv, "--workspace");
	struct import_counts n = { 0, 0, 0 };
	struct kr_workspace ws;

	if (slug == NULL)
		return 2;
	if (find_workspace(c, slug, &ws) != 0 || vault_ready(c) != 0)
		return 1;
	for (unsigned i = 0; i < KR_PROV__MAX; i++) {
		const struct kr_provider *p = kr_provider_get(i);
		if (p->env_var != NULL && import_provider(c, &ws, p, &n) != 0)
			return 1;
	}
	fprintf(stderr, "imported %u key(s) into %s; %u already there; %u refused\n", n.added,
	    slug, n.present, n.refused);
	return n.refused > 0;
}

/* Which keys the next attempt of a job would try, in order (read fresh, like the runner). */
static int
cmd_candidates(struct ctx *c, int argc, char **argv)
{
	const char *slug = opt(argc, argv, "--workspace"), *prov = opt(argc, argv, "--provider");
	const struct kr_provider *p = NULL;
	struct kr_candidates cands;
	struct kr_workspace ws;
	enum kr_db_err rc;

	if (slug == NULL)
		return 2;
	if (prov != NULL && (p = kr_provider_find(prov)) == NULL) {
		fprintf(stderr, "%s: --provider: unknown provider %s\n", PROG, prov);
		return 1;
	}
	if (find_workspace(c, slug, &ws) != 0)
		return 1;
	if ((rc = kr_select_candidates(c->db, &c->cfg, ws.id, p, &cands)) != KR_DB_OK)
		return db_fail(c, "candidates", rc);
	for (size_t i = 0; i < cands.n; i++) {
		const struct kr_candidate *k = &cands.v[i];
		if (k->key_id[0] != '\0')
			printf("%zu %s key:%s model=%s fallback=%d\n", i + 1, k->prov->slug,
			    k->key_id, k->model, k->is_fallback);
		else
			printf("%zu %s system:%u model=%s fallback=%d\n", i + 1, k->prov->slug,
			    k->system_index, k->model, k->is_fallback);
	}
	if (cands.earliest_cooldown[0] != '\0')
		printf("cooling until %s\n", cands.earliest_cooldown);
	kr_candidates_release(&cands);
	return 0;
}

static const struct command commands[] = {
	{ "migrate", "migrate [--dir DIR]  (default: $KEYRELAY_SCHEMA_DIR, else " KEYRELAY_SCHEMA_DIR
	    ")", cmd_migrate },
	{ "create-user", "create-user --email E --name N [--instance-admin]  (password on stdin)",
	    cmd_create_user },
	{ "create-workspace", "create-workspace --slug S --name N [--owner EMAIL]",
	    cmd_create_workspace },
	{ "add-member", "add-member --workspace S --email E --role admin|member|viewer",
	    cmd_add_member },
	{ "create-token", "create-token --workspace S --name N --role admin|member|viewer",
	    cmd_create_token },
	{ "status", "status", cmd_status },
	{ "candidates", "candidates --workspace S [--provider P]  (the keys the next attempt "
	    "tries, in order)", cmd_candidates },
	{ "rekey", "rekey  (after adding the new master key and making it active)", cmd_rekey },
	{ "import-env", "import-env --workspace S  (ANTHROPIC_API_KEY, OPENAI_API_KEY, "
	    "GEMINI_API_KEY, ZAI_API_KEY, MOONSHOT_API_KEY)", cmd_import_env },
};

#define NCOMMANDS	(sizeof(commands) / sizeof(commands[0]))

static int
usage(FILE *out, int status)
{
	fprintf(out, "usage: %s [--config PATH] COMMAND ...\ncommands:\n", PROG);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %s\n", commands[i].usage);
	return status;
}

#define OPTS_MAX	8

/*
 * Whether argv fits the command's usage line, read as the specification of its options:
 * "--x V" takes a value, "[--x]" is an optional flag, "[--x V]" an optional option; text
 * after two spaces is a comment. Every option given must be one the line names (with its
 * value), and every option not in brackets must be given. Checked before the configuration
 * is read and the database reached, so that a mistyped command says so at once.
 */
static int
args_fit(const struct command *cmd, int argc, char **argv)
{
	struct { char name[32]; int value, optional, seen; } o[OPTS_MAX];
	char line[256], *tok, *next, *save = NULL;
	size_t n = 0, len = strcspn(cmd->usage, "(");

	if (len >= sizeof(line))
		return 0;	/* a usage line this long is a bug here: said at once */
	snprintf(line, sizeof(line), "%.*s", (int)len, cmd->usage);
	for (tok = strtok_r(line, " ", &save); tok != NULL; tok = next) {
		next = strtok_r(NULL, " ", &save);
		int optional = tok[0] == '[';
		const char *name = tok + optional;
		if (strncmp(name, "--", 2) != 0 || n == OPTS_MAX)
			continue;
		snprintf(o[n].name, sizeof(o[n].name), "%.*s", (int)strcspn(name, "]"), name);
		o[n].value = strchr(name, ']') == NULL && next != NULL && next[0] != '[' &&
		    strncmp(next, "--", 2) != 0;
		o[n].optional = optional;
		o[n++].seen = 0;
	}
	for (int i = 0; i < argc; i++) {
		size_t k = 0;
		while (k < n && strcmp(argv[i], o[k].name) != 0)
			k++;
		if (k == n || (o[k].value && ++i == argc))
			return 0;
		o[k].seen = 1;
	}
	for (size_t k = 0; k < n; k++)
		if (!o[k].optional && !o[k].seen)
			return 0;
	return 1;
}

int
main(int argc, char **argv)
{
	const char *path = kr_config_path(&argc, argv);
	const struct command *cmd = NULL;
	struct ctx c;
	char err[512];
	int rc;

	if (argc < 2)
		return usage(stderr, 2);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0)
		return usage(stdout, 0);
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL)
		return usage(stderr, 2);
	for (int i = 2; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: %s %s\n", PROG, cmd->usage);
			return 0;
		}
	if (!args_fit(cmd, argc - 2, argv + 2)) {
		fprintf(stderr, "usage: %s %s\n", PROG, cmd->usage);
		return 2;
	}
	memset(&c, 0, sizeof(c));
	if (kr_config_load(&c.cfg, path, err, sizeof(err)) != KR_CONFIG_OK) {
		fprintf(stderr, "%s: config: %s\n", PROG, err);
		return 1;
	}
	kr_log_init(PROG, KR_LOG_WARN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    mysql_library_init(0, NULL, NULL) != 0 || (c.db = kr_db_new(&c.cfg)) == NULL) {
		fprintf(stderr, "%s: initialisation failed\n", PROG);
		kr_config_release(&c.cfg);
		return 1;
	}
	if (kr_db_connect(c.db) != KR_DB_OK)
		rc = db_fail(&c, cmd->name, KR_DB_DOWN);
	else if ((rc = cmd->run(&c, argc - 2, argv + 2)) == 2)
		fprintf(stderr, "usage: %s %s\n", PROG, cmd->usage);
	kr_db_free(&c.db);
	kr_vault_unload();
	mysql_library_end();
	curl_global_cleanup();
	kr_config_release(&c.cfg);
	return rc;
}
