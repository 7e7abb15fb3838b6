#include "kr_migrate.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kr_buf.h"
#include "kr_crypto.h"

#define MIGRATION_MAX	(4 * 1024 * 1024)

static const char sql_bootstrap[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INT UNSIGNED NOT NULL PRIMARY KEY,"
    " name VARCHAR(200) NOT NULL,"
    " checksum CHAR(64) CHARACTER SET ascii NOT NULL,"
    " applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
static const char sql_applied[] = "SELECT checksum FROM schema_migrations WHERE version = ?";
static const char sql_record[] =
    "INSERT INTO schema_migrations (version, name, checksum) VALUES (?,?,?)";
static const char sql_version[] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";

/* "NNN_name.sql" -> NNN; 0 for other names. */
static unsigned
file_version(const char *name)
{
	size_t n = strlen(name);
	unsigned v = 0;
	size_t i;

	if (n < 6 || strcmp(name + n - 4, ".sql") != 0)
		return 0;
	for (i = 0; i < n && name[i] >= '0' && name[i] <= '9' && v < 100000; i++)
		v = v * 10 + (unsigned)(name[i] - '0');
	return i > 0 && name[i] == '_' ? v : 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return (int)file_version(*(char *const *)a) - (int)file_version(*(char *const *)b);
}

static enum kr_migrate_err
read_file(const char *path, struct kr_buf *b)
{
	char chunk[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return KR_MIGRATE_IO;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (kr_buf_add(b, chunk, n) != KR_BUF_OK)
			break;
	fclose(f);
	return b->failed ? KR_MIGRATE_IO : KR_MIGRATE_OK;
}

/* Run each statement of text; statements end with ';' at the end of a line. */
static enum kr_migrate_err
run_statements(struct kr_db *db, char *text, const char *name, FILE *out)
{
	char *stmt = text, *p = text;

	while (*p != '\0') {
		char *eol = strchr(p, '\n'), *end = eol != NULL ? eol : p + strlen(p), *q = end;
		while (q > p && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '\r'))
			q--;
		if (q > p && q[-1] == ';' && strncmp(p, "--", 2) != 0) {
			q[-1] = '\0';
			if (kr_db_query(db, stmt) != KR_DB_OK) {
				fprintf(out, "%s: statement failed (error %u):\n%.300s\n", name,
				    kr_db_errno(db), stmt);
				return KR_MIGRATE_DB;
			}
			stmt = end + (eol != NULL);
		}
		p = end + (eol != NULL);
	}
	return KR_MIGRATE_OK;
}

static enum kr_migrate_err
apply_one(struct kr_db *db, const char *dir, const char *name, FILE *out, int *done)
{
	char path[4096], sum[KR_SHA256_HEX];
	unsigned version = file_version(name);
	struct kr_dbp p[3];
	struct kr_db_res res;
	enum kr_migrate_err rc;
	struct kr_buf b;

	*done = 0;
	kr_buf_init(&b, MIGRATION_MAX);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((rc = read_file(path, &b)) != KR_MIGRATE_OK) {
		fprintf(out, "%s: cannot read: %s\n", path, strerror(errno));
		goto out;
	}
	kr_sha256_hex(kr_buf_str(&b), b.len, sum);
	p[0] = KR_P_INT(version);
	rc = KR_MIGRATE_DB;
	if (kr_db_exec(db, sql_applied, p, 1, &res, NULL) != KR_DB_OK)
		goto out;
	if (res.nrows == 1) {
		if (strcmp(kr_db_cell(&res, 0, 0), sum) != 0)
			fprintf(out, "warning: %s changed after it was applied; not applied again\n",
			    name);
		kr_db_res_free(&res);
		rc = KR_MIGRATE_OK;
		goto out;
	}
	kr_db_res_free(&res);
	fprintf(out, "applying %s\n", name);
	if ((rc = run_statements(db, b.data, name, out)) != KR_MIGRATE_OK)
		goto out;
	p[1] = KR_P_STR(name);
	p[2] = KR_P_STR(sum);
	rc = kr_db_exec(db, sql_record, p, 3, NULL, NULL) == KR_DB_OK ? KR_MIGRATE_OK :
	    KR_MIGRATE_DB;
	*done = rc == KR_MIGRATE_OK;
out:
	kr_buf_release(&b, 0);
	return rc;
}

enum kr_migrate_err
kr_migrate(struct kr_db *db, const char *dir, FILE *out, unsigned *applied)
{
	enum kr_migrate_err rc = KR_MIGRATE_OK;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d;

	*applied = 0;
	if (kr_db_query(db, sql_bootstrap) != KR_DB_OK) {
		fprintf(out, "cannot create schema_migrations (error %u)\n", kr_db_errno(db));
		return KR_MIGRATE_DB;
	}
	if ((d = opendir(dir)) == NULL) {
		fprintf(out, "%s: %s\n", dir, strerror(errno));
		return KR_MIGRATE_IO;
	}
	while ((e = readdir(d)) != NULL) {
		if (file_version(e->d_name) == 0)
			continue;
		if (n == cap) {
			char **nn = reallocarray(names, cap ? cap * 2 : 16, sizeof(*names));
			if (nn == NULL)
				break;
			names = nn;
			cap = cap ? cap * 2 : 16;
		}
		if ((names[n] = strdup(e->d_name)) != NULL)
			n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n && rc == KR_MIGRATE_OK; i++) {
		int done = 0;
		rc = apply_one(db, dir, names[i], out, &done);
		*applied += (unsigned)done;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

enum kr_db_err
kr_migrate_version(struct kr_db *db, unsigned *version)
{
	struct kr_db_res res;
	enum kr_db_err rc;

	*version = 0;
	if ((rc = kr_db_exec(db, sql_version, NULL, 0, &res, NULL)) != KR_DB_OK)
		return rc;
	*version = (unsigned)kr_db_cell_int(&res, 0, 0, 0);
	kr_db_res_free(&res);
	return KR_DB_OK;
}
