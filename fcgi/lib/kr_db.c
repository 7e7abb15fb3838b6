#include "kr_db.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>

#include "kr_log.h"
#include "kr_time.h"

#define STMT_CACHE	96
#define RECONNECT_MS	1000	/* at most one connection attempt per second */

struct cached_stmt {
	const char	*sql;
	MYSQL_STMT	*stmt;
};

struct kr_db {
	const struct kr_config	*cfg;
	MYSQL			*conn;		/* NULL while disconnected */
	int64_t			 last_try_ms;
	unsigned		 last_errno;
	uint64_t		 insert_id;
	int			 in_tx;		/* between kr_db_begin and commit/rollback */
	int			 tx_broken;	/* the connection died inside a transaction */
	unsigned		 nstmts;
	struct cached_stmt	 stmts[STMT_CACHE];
};

static atomic_uint_fast64_t db_errors;

static const char init_sql[] =
    "SET time_zone = '+00:00', tx_isolation = 'READ-COMMITTED', "
    "innodb_lock_wait_timeout = 5, "
    "sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION'";

struct kr_db *
kr_db_new(const struct kr_config *cfg)
{
	struct kr_db *db = calloc(1, sizeof(*db));

	if (db != NULL) {
		db->cfg = cfg;
		db->last_try_ms = INT64_MIN / 2;
	}
	return db;
}

static void
disconnect(struct kr_db *db)
{
	for (unsigned i = 0; i < db->nstmts; i++)
		mysql_stmt_close(db->stmts[i].stmt);
	db->nstmts = 0;
	if (db->conn != NULL)
		mysql_close(db->conn);
	db->conn = NULL;
	if (db->in_tx)
		db->tx_broken = 1;	/* refuse statements until the caller rolls back */
	db->in_tx = 0;
}

void
kr_db_free(struct kr_db **db)
{
	if (*db == NULL)
		return;
	disconnect(*db);
	free(*db);
	*db = NULL;
}

/* Classify a MariaDB error number; drop the connection when it is gone. */
static enum kr_db_err
classify(struct kr_db *db, unsigned err)
{
	db->last_errno = err;
	switch (err) {
	case 0:
		return KR_DB_OK;
	case ER_DUP_ENTRY:
		return KR_DB_DUPLICATE;
	case ER_LOCK_DEADLOCK:
	case ER_LOCK_WAIT_TIMEOUT:
	case 1020:	/* ER_CHECKREAD: record changed since last read */
		atomic_fetch_add(&db_errors, 1);
		return KR_DB_RETRY;
	case CR_SERVER_GONE_ERROR:
	case CR_SERVER_LOST:
	case CR_CONNECTION_ERROR:
	case CR_CONN_HOST_ERROR:
	case CR_SERVER_LOST_EXTENDED:
	case CR_COMMANDS_OUT_OF_SYNC:
	case ER_CONNECTION_KILLED:
	case ER_SERVER_SHUTDOWN:
	case 4031:	/* ER_CLIENT_INTERACTION_TIMEOUT */
		atomic_fetch_add(&db_errors, 1);
		if (db->conn != NULL)
			kr_warn("database connection lost (error %u)", err);
		disconnect(db);
		return KR_DB_DOWN;
	default:
		atomic_fetch_add(&db_errors, 1);
		return KR_DB_ERROR;
	}
}

enum kr_db_err
kr_db_connect(struct kr_db *db)
{
	const struct kr_config *c = db->cfg;
	unsigned int timeout = 3, rw_timeout = 30;
	int64_t now;
	MYSQL *m;

	if (db->conn != NULL)
		return KR_DB_OK;
	now = kr_time_mono_ms();
	if (now - db->last_try_ms < RECONNECT_MS)
		return KR_DB_DOWN;
	db->last_try_ms = now;
	if ((m = mysql_init(NULL)) == NULL)
		return KR_DB_ERROR;
	mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
	mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
	mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
	mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
	mysql_optionsv(m, MYSQL_INIT_COMMAND, init_sql);
	/* Flags 0, no CLIENT_FOUND_ROWS: affected rows count rows changed, not rows matched
	 * (kr_login_reserve tells a count at its limit by 0). */
	if (mysql_real_connect(m, c->db_socket != NULL ? NULL : c->db_host, c->db_user,
	    c->db_password, c->db_name, c->db_port, c->db_socket, 0) == NULL) {
		unsigned err = mysql_errno(m);
		kr_warn("database connect failed (error %u: %s)", err, mysql_error(m));
		mysql_close(m);
		db->last_errno = err;
		atomic_fetch_add(&db_errors, 1);
		return KR_DB_DOWN;
	}
	db->conn = m;
	kr_debug("database connected");
	return KR_DB_OK;
}

static MYSQL_STMT *
prepare(struct kr_db *db, const char *sql, enum kr_db_err *rc)
{
	MYSQL_STMT *st;

	for (unsigned i = 0; i < db->nstmts; i++)
		if (db->stmts[i].sql == sql)
			return db->stmts[i].stmt;
	if ((st = mysql_stmt_init(db->conn)) == NULL) {
		*rc = classify(db, mysql_errno(db->conn));
		if (*rc == KR_DB_OK)
			*rc = KR_DB_ERROR;
		return NULL;
	}
	if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0) {
		unsigned err = mysql_stmt_errno(st);
		kr_error("prepare failed (error %u: %s)", err, mysql_stmt_error(st));
		mysql_stmt_close(st);
		*rc = classify(db, err);
		return NULL;
	}
	if (db->nstmts < STMT_CACHE)
		db->stmts[db->nstmts++] = (struct cached_stmt){ sql, st };
	else
		kr_warn("statement cache full; raise STMT_CACHE");
	return st;
}

/* Release a statement that did not fit in the cache. */
static void
unprepare(struct kr_db *db, MYSQL_STMT *st)
{
	for (unsigned i = 0; i < db->nstmts; i++)
		if (db->stmts[i].stmt == st)
			return;
	mysql_stmt_close(st);
}

static void
bind_params(MYSQL_BIND *b, const struct kr_dbp *p, unsigned n)
{
	memset(b, 0, sizeof(*b) * n);
	for (unsigned i = 0; i < n; i++) {
		switch (p[i].type) {
		case KR_DBP_NULL:
			b[i].buffer_type = MYSQL_TYPE_NULL;
			break;
		case KR_DBP_STR:
			b[i].buffer_type = MYSQL_TYPE_STRING;
			b[i].buffer = (void *)(uintptr_t)p[i].p;
			b[i].buffer_length = (unsigned long)p[i].len;
			break;
		case KR_DBP_BLOB:
			b[i].buffer_type = MYSQL_TYPE_BLOB;
			b[i].buffer = (void *)(uintptr_t)p[i].p;
			b[i].buffer_length = (unsigned long)p[i].len;
			break;
		case KR_DBP_INT:
			b[i].buffer_type = MYSQL_TYPE_LONGLONG;
			b[i].buffer = (void *)(uintptr_t)&p[i].i;
			break;
		}
	}
}

/* Fetch every row of an executed statement as text cells. */
static enum kr_db_err
fetch_all(struct kr_db *db, MYSQL_STMT *st, struct kr_db_res *res)
{
	enum kr_db_err rc = KR_DB_ERROR;
	MYSQL_RES *meta = NULL;
	MYSQL_BIND *b = NULL;
	unsigned long *lens = NULL;
	my_bool *nulls = NULL;
	unsigned ncols, r;
	my_bool on = 1;

	if ((meta = mysql_stmt_result_metadata(st)) == NULL)
		return KR_DB_OK;	/* a statement without a result set */
	ncols = mysql_num_fields(meta);
	mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &on);
	if (mysql_stmt_store_result(st) != 0) {
		rc = classify(db, mysql_stmt_errno(st));
		goto out;
	}
	res->ncols = ncols;
	res->nrows = (unsigned)mysql_stmt_num_rows(st);
	b = calloc(ncols ? ncols : 1, sizeof(*b));
	lens = calloc(ncols ? ncols : 1, sizeof(*lens));
	nulls = calloc(ncols ? ncols : 1, sizeof(*nulls));
	res->cells = calloc((size_t)res->nrows * ncols + 1, sizeof(char *));
	res->lens = calloc((size_t)res->nrows * ncols + 1, sizeof(size_t));
	if (b == NULL || lens == NULL || nulls == NULL || res->cells == NULL || res->lens == NULL)
		goto out;
	for (unsigned c = 0; c < ncols; c++) {
		b[c].buffer_type = MYSQL_TYPE_STRING;
		b[c].length = &lens[c];
		b[c].is_null = &nulls[c];
	}
	if (mysql_stmt_bind_result(st, b) != 0)
		goto out;
	for (r = 0; r < res->nrows; r++) {
		int f = mysql_stmt_fetch(st);
		if (f == 1 || f == MYSQL_NO_DATA)
			break;
		for (unsigned c = 0; c < ncols; c++) {
			size_t k = (size_t)r * ncols + c;
			char *cell;
			if (nulls[c])
				continue;
			if ((cell = malloc(lens[c] + 1)) == NULL)
				goto out;
			b[c].buffer = cell;
			b[c].buffer_length = lens[c] + 1;
			if (lens[c] > 0 && mysql_stmt_fetch_column(st, &b[c], c, 0) != 0) {
				free(cell);
				goto out;
			}
			cell[lens[c]] = '\0';
			res->cells[k] = cell;
			res->lens[k] = lens[c];
			b[c].buffer = NULL;
			b[c].buffer_length = 0;
		}
	}
	rc = r == res->nrows ? KR_DB_OK : KR_DB_ERROR;
out:
	mysql_stmt_free_result(st);
	mysql_free_result(meta);
	free(b);
	free(lens);
	free(nulls);
	return rc;
}

static enum kr_db_err
exec_once(struct kr_db *db, const char *sql, const struct kr_dbp *params, unsigned nparams,
    struct kr_db_res *res, uint64_t *affected)
{
	enum kr_db_err rc = KR_DB_ERROR;
	MYSQL_BIND *b = NULL;
	MYSQL_STMT *st;

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (db->tx_broken)
		return KR_DB_DOWN;
	if ((rc = kr_db_connect(db)) != KR_DB_OK)
		return rc;
	if ((st = prepare(db, sql, &rc)) == NULL)
		return rc;
	if (mysql_stmt_param_count(st) != nparams) {
		kr_error("statement expects %lu parameters, got %u",
		    mysql_stmt_param_count(st), nparams);
		rc = KR_DB_ERROR;
		goto out;
	}
	if (nparams > 0) {
		if ((b = calloc(nparams, sizeof(*b))) == NULL)
			goto out;
		bind_params(b, params, nparams);
		if (mysql_stmt_bind_param(st, b) != 0) {
			rc = classify(db, mysql_stmt_errno(st));
			goto out;
		}
	}
	if (mysql_stmt_execute(st) != 0) {
		rc = classify(db, mysql_stmt_errno(st));
		if (rc == KR_DB_ERROR)
			kr_error("statement failed (error %u: %s)", db->last_errno,
			    mysql_stmt_error(st));
		st = rc == KR_DB_DOWN ? NULL : st;	/* disconnect() closed it */
		goto out;
	}
	if (affected != NULL)
		*affected = (uint64_t)mysql_stmt_affected_rows(st);
	db->insert_id = (uint64_t)mysql_stmt_insert_id(st);
	rc = KR_DB_OK;
	if (res != NULL)
		rc = fetch_all(db, st, res);
	else
		mysql_stmt_free_result(st);
	if (rc == KR_DB_DOWN)
		st = NULL;
out:
	if (rc != KR_DB_OK && res != NULL)
		kr_db_res_free(res);
	if (st != NULL)
		unprepare(db, st);
	free(b);
	return rc;
}

/*
 * A connection found dead when a statement is sent outside a transaction (the server
 * restarted since it was last used) is replaced at once and the statement sent again, once.
 * Within a transaction the caller must retry the whole transaction instead. A statement
 * that did reach the server before the connection broke may thus run twice: our writes
 * carry application-made ids (a second insert is a duplicate) or set absolute values.
 */
static int
retry_on_fresh_connection(struct kr_db *db, int was_connected, enum kr_db_err rc)
{
	if (rc != KR_DB_DOWN || !was_connected || db->in_tx)
		return 0;
	db->last_try_ms = INT64_MIN / 2;	/* no reconnect delay for this one */
	return 1;
}

enum kr_db_err
kr_db_exec(struct kr_db *db, const char *sql, const struct kr_dbp *params, unsigned nparams,
    struct kr_db_res *res, uint64_t *affected)
{
	int was_connected = db->conn != NULL, in_tx = db->in_tx;
	enum kr_db_err rc = exec_once(db, sql, params, nparams, res, affected);

	db->in_tx = in_tx && db->conn != NULL;
	if (retry_on_fresh_connection(db, was_connected && !in_tx, rc))
		rc = exec_once(db, sql, params, nparams, res, affected);
	return rc;
}

static enum kr_db_err
query_once(struct kr_db *db, const char *sql)
{
	enum kr_db_err rc;

	if (db->tx_broken)
		return KR_DB_DOWN;
	if ((rc = kr_db_connect(db)) != KR_DB_OK)
		return rc;
	if (mysql_real_query(db->conn, sql, (unsigned long)strlen(sql)) != 0) {
		unsigned err = mysql_errno(db->conn);
		rc = classify(db, err);
		if (rc == KR_DB_ERROR)
			kr_error("query failed (error %u: %s)", err, mysql_error(db->conn));
		return rc;
	}
	/* Drain any result so the connection stays usable. */
	do {
		MYSQL_RES *r = mysql_store_result(db->conn);
		if (r != NULL)
			mysql_free_result(r);
	} while (mysql_next_result(db->conn) == 0);
	return KR_DB_OK;
}

enum kr_db_err
kr_db_query(struct kr_db *db, const char *sql)
{
	int was_connected = db->conn != NULL;
	enum kr_db_err rc = query_once(db, sql);

	if (retry_on_fresh_connection(db, was_connected, rc))
		rc = query_once(db, sql);
	return rc;
}

enum kr_db_err
kr_db_begin(struct kr_db *db)
{
	enum kr_db_err rc;

	db->in_tx = db->tx_broken = 0;
	if ((rc = kr_db_query(db, "START TRANSACTION")) == KR_DB_OK)
		db->in_tx = 1;
	return rc;
}

int
kr_db_in_tx(const struct kr_db *db)
{
	return db->in_tx;
}

enum kr_db_err
kr_db_commit(struct kr_db *db)
{
	enum kr_db_err rc;

	db->tx_broken = 0;
	if (db->conn == NULL)
		return KR_DB_DOWN;
	db->in_tx = 0;
	if (mysql_commit(db->conn) == 0)
		return KR_DB_OK;
	rc = classify(db, mysql_errno(db->conn));
	return rc == KR_DB_OK ? KR_DB_ERROR : rc;
}

void
kr_db_rollback(struct kr_db *db)
{
	db->in_tx = db->tx_broken = 0;
	if (db->conn != NULL && mysql_rollback(db->conn) != 0)
		disconnect(db);
}

#define TX_TRIES	4

enum kr_db_err
kr_db_tx(struct kr_db *db, enum kr_db_err (*body)(struct kr_db *, void *), void *arg,
    int retry_down)
{
	enum kr_db_err rc = KR_DB_ERROR;

	for (int run = 0; run < TX_TRIES; run++) {
		if (run > 0) {
			struct timespec d = { 0, 10000000L << run };	/* 20, 40, 80 ms */
			nanosleep(&d, NULL);
		}
		if ((rc = kr_db_begin(db)) == KR_DB_OK && (rc = body(db, arg)) == KR_DB_OK &&
		    (rc = kr_db_commit(db)) == KR_DB_OK)
			return KR_DB_OK;
		kr_db_rollback(db);
		if (rc != KR_DB_RETRY && !(rc == KR_DB_DOWN && retry_down))
			return rc;
	}
	return rc;
}

#define PAGE_AT_MAX	32	/* "YYYY-MM-DD HH:MM:SS.mmm" and room */

enum kr_db_err
kr_db_page(struct kr_db *db, const char *cursor_sql, const char *list_sql, const char *scope,
    const char *before, unsigned limit, struct kr_db_res *res, int *found)
{
	unsigned off = scope != NULL ? 1 : 0;
	char at_buf[PAGE_AT_MAX] = "";
	const char *at = NULL, *s;
	struct kr_dbp p[6];
	struct kr_db_res c;
	enum kr_db_err rc;

	memset(res, 0, sizeof(*res));
	*found = 1;
	p[0] = KR_P_STR(scope);
	if (before != NULL) {
		p[off] = KR_P_STR(before);
		if ((rc = kr_db_exec(db, cursor_sql, p, off + 1, &c, NULL)) != KR_DB_OK)
			return rc;
		if (c.nrows == 1 && (s = kr_db_cell(&c, 0, 0)) != NULL && strlen(s) < PAGE_AT_MAX)
			memcpy(at_buf, s, strlen(s) + 1);
		kr_db_res_free(&c);
		if (at_buf[0] == '\0') {
			*found = 0;
			return KR_DB_OK;
		}
		at = at_buf;
	}
	p[off] = KR_P_STR(at);
	p[off + 1] = KR_P_STR(at);
	p[off + 2] = KR_P_STR(at);
	p[off + 3] = KR_P_STR(before);
	p[off + 4] = KR_P_INT(limit);
	return kr_db_exec(db, list_sql, p, off + 5, res, NULL);
}

static pthread_mutex_t sized_lock = PTHREAD_MUTEX_INITIALIZER;

const char *
kr_db_sized_sql(char *texts[8], size_t n, char *(*build)(const void *arg, size_t n),
    const void *arg)
{
	size_t cls = 0;
	char *t;

	while (((size_t)1 << cls) < n)
		cls++;
	if (n == 0 || ((size_t)1 << cls) != n || n > KR_DB_ROWS_MAX)
		return NULL;
	pthread_mutex_lock(&sized_lock);
	if ((t = texts[cls]) == NULL && (t = build(arg, n)) != NULL)
		texts[cls] = t;
	pthread_mutex_unlock(&sized_lock);
	return t;
}

/* head, n - 1 copies of more, tail. */
static char *
rows_build(const void *arg, size_t n)
{
	const struct kr_db_rows *r = arg;
	size_t hl = strlen(r->head), ml = strlen(r->more), tl = strlen(r->tail);
	char *t = malloc(hl + (n - 1) * ml + tl + 1), *p;

	if (t == NULL)
		return NULL;
	memcpy(t, r->head, hl);
	p = t + hl;
	for (size_t i = 1; i < n; i++, p += ml)
		memcpy(p, r->more, ml);
	memcpy(p, r->tail, tl + 1);
	return t;
}

const char *
kr_db_rows_sql(struct kr_db_rows *r, size_t n)
{
	return kr_db_sized_sql(r->text, n, rows_build, r);
}

size_t
kr_db_rows_chunk(size_t n)
{
	size_t k = KR_DB_ROWS_MAX;

	while (k > n && k > 1)
		k >>= 1;
	return k;
}

size_t
kr_db_rows_fit(size_t n)
{
	size_t k = 1;

	while (k < n && k < KR_DB_ROWS_MAX)
		k <<= 1;
	return k;
}

enum kr_db_err
kr_db_exec_rows(struct kr_db *db, struct kr_db_rows *r, unsigned ncols, size_t n,
    void (*row)(void *arg, size_t i, struct kr_dbp *p), void *arg, uint64_t *affected)
{
	struct kr_dbp *p = calloc(kr_db_rows_chunk(n) * ncols, sizeof(*p));
	enum kr_db_err rc = p != NULL ? KR_DB_OK : KR_DB_ERROR;
	const char *sql;
	uint64_t one;

	if (affected != NULL)
		*affected = 0;
	for (size_t done = 0, k; done < n && rc == KR_DB_OK; done += k) {
		k = kr_db_rows_chunk(n - done);
		for (size_t i = 0; i < k; i++)
			row(arg, done + i, &p[i * ncols]);
		one = 0;
		rc = (sql = kr_db_rows_sql(r, k)) != NULL ?
		    kr_db_exec(db, sql, p, (unsigned)(k * ncols), NULL, &one) : KR_DB_ERROR;
		if (affected != NULL)
			*affected += one;
	}
	free(p);
	return rc;
}

const char *
kr_db_cell(const struct kr_db_res *res, unsigned row, unsigned col)
{
	if (res->cells == NULL || row >= res->nrows || col >= res->ncols)
		return NULL;
	return res->cells[(size_t)row * res->ncols + col];
}

long long
kr_db_cell_int(const struct kr_db_res *res, unsigned row, unsigned col, long long def)
{
	const char *s = kr_db_cell(res, row, col);
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return def;
	v = strtoll(s, &end, 10);
	return *end == '\0' ? v : def;
}

void
kr_db_res_free(struct kr_db_res *res)
{
	if (res->cells != NULL)
		for (size_t i = 0; i < (size_t)res->nrows * res->ncols; i++)
			free(res->cells[i]);
	free(res->cells);
	free(res->lens);
	memset(res, 0, sizeof(*res));
}

uint64_t
kr_db_insert_id(const struct kr_db *db)
{
	return db->insert_id;
}

unsigned
kr_db_errno(const struct kr_db *db)
{
	return db->last_errno;
}

uint64_t
kr_db_error_count(void)
{
	return (uint64_t)atomic_load(&db_errors);
}
