/*
 * kr_db: one MariaDB connection, prepared statements only.
 *
 * A struct kr_db belongs to one thread. It connects lazily and reconnects by itself: after a
 * lost connection the next call tries again (at most once per kr_db_reconnect_delay), so a
 * caller sees KR_DB_DOWN while the server is away and KR_DB_OK once it is back. Statements
 * are prepared once per connection, keyed by the address of their (static) SQL text, and
 * prepared again after a reconnect.
 *
 * Every connection sets utf8mb4, time_zone '+00:00', READ COMMITTED and a short lock wait.
 */
#ifndef KR_DB_H
#define KR_DB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kr_config.h"

enum kr_db_err {
	KR_DB_OK = 0,
	KR_DB_DUPLICATE,	/* a UNIQUE or PRIMARY KEY refused the row (1062) */
	KR_DB_RETRY,		/* deadlock, lock wait timeout, snapshot conflict: retry the tx */
	KR_DB_DOWN,		/* no connection; the next call reconnects */
	KR_DB_ERROR,		/* anything else (bad SQL, constraint, ...): a bug or bad data */
	KR_DB_ABORT,		/* kr_db_tx: the body chose to roll back; not an error */
};

enum kr_dbp_type { KR_DBP_NULL, KR_DBP_STR, KR_DBP_INT, KR_DBP_BLOB };

/* A bound parameter. Build them with the macros below. */
struct kr_dbp {
	enum kr_dbp_type type;
	const void	*p;
	size_t		 len;
	long long	 i;
};

/* A string parameter; NULL binds SQL NULL. */
static inline struct kr_dbp
kr_p_str(const char *s)
{
	struct kr_dbp p = { s != NULL ? KR_DBP_STR : KR_DBP_NULL, s, s != NULL ? strlen(s) : 0, 0 };

	return p;
}

#define KR_P_STR(s)	kr_p_str(s)
#define KR_P_STRN(s, n)	((struct kr_dbp){ KR_DBP_STR, (s), (n), 0 })
#define KR_P_INT(v)	((struct kr_dbp){ KR_DBP_INT, NULL, 0, (long long)(v) })
#define KR_P_BLOB(b, n)	((struct kr_dbp){ KR_DBP_BLOB, (b), (n), 0 })
#define KR_P_NULL	((struct kr_dbp){ KR_DBP_NULL, NULL, 0, 0 })

/*
 * A result: nrows x ncols cells, each NUL-terminated text (numbers and times as MariaDB
 * prints them) or NULL for SQL NULL; lens[] has the byte lengths (binary-safe for blobs).
 */
struct kr_db_res {
	unsigned	 nrows;
	unsigned	 ncols;
	char		**cells;
	size_t		*lens;
};

struct kr_db;

/* A handle for cfg (which must outlive it). Does not connect yet; NULL only without memory. */
struct kr_db	*kr_db_new(const struct kr_config *cfg);
void		 kr_db_free(struct kr_db **db);
/* Connect now if not connected. */
enum kr_db_err	 kr_db_connect(struct kr_db *db);

/*
 * Run one statement with nparams bound parameters. When res is non-NULL the rows are
 * stored there (free with kr_db_res_free; an empty result on error). affected, when
 * non-NULL, gets the affected-row count (changed rows, not matched rows).
 */
enum kr_db_err	 kr_db_exec(struct kr_db *db, const char *sql, const struct kr_dbp *params,
		    unsigned nparams, struct kr_db_res *res, uint64_t *affected);
/* Plain statement text with no parameters and no result (DDL, SET, migrations). */
enum kr_db_err	 kr_db_query(struct kr_db *db, const char *sql);

enum kr_db_err	 kr_db_begin(struct kr_db *db);
/* 1 between kr_db_begin and kr_db_commit / kr_db_rollback. */
int		 kr_db_in_tx(const struct kr_db *db);
enum kr_db_err	 kr_db_commit(struct kr_db *db);
/* Always safe to call; a failure drops the connection. */
void		 kr_db_rollback(struct kr_db *db);

/*
 * Run body inside a transaction and commit. On deadlock or lock wait timeout the whole
 * transaction runs again (up to 4 times, with short growing pauses); after a lost
 * connection too when retry_down is set, which is only safe for bodies whose effects can
 * be recognised when they landed before the connection broke (UNIQUE keys, fenced updates).
 * A body returning KR_DB_ABORT is rolled back and KR_DB_ABORT returned.
 */
enum kr_db_err	 kr_db_tx(struct kr_db *db, enum kr_db_err (*body)(struct kr_db *, void *),
		    void *arg, int retry_down);

/*
 * One page of a list kept newest first by (created_at, id), for ?limit= and ?before=.
 * cursor_sql selects the created_at of the item before names, from (scope, before) or just
 * (before) when scope is NULL; list_sql takes (scope,) at, at, at, before, limit, in that
 * order. *found is 0 (and res empty) when before names no item of the list; NULL before is
 * the first page.
 */
enum kr_db_err	 kr_db_page(struct kr_db *db, const char *cursor_sql, const char *list_sql,
		    const char *scope, const char *before, unsigned limit, struct kr_db_res *res,
		    int *found);

const char	*kr_db_cell(const struct kr_db_res *res, unsigned row, unsigned col);
/* The cell as a number; def for NULL or garbage. */
long long	 kr_db_cell_int(const struct kr_db_res *res, unsigned row, unsigned col,
		    long long def);
void		 kr_db_res_free(struct kr_db_res *res);

/*
 * Multi-row statements. A struct kr_db_rows describes a text made of head (which holds the
 * first row's placeholders), n - 1 copies of more (one further row with its separator) and
 * tail. kr_db_rows_sql gives the text for n rows, n a power of two up to KR_DB_ROWS_MAX
 * (see kr_db_rows_fit), built the first time and kept for the life of the process: kr_db
 * prepares statements by the address of their text, so each size is prepared once per
 * connection. NULL only without memory.
 *
 *	static struct kr_db_rows ins = { "INSERT INTO t (a, b) VALUES (?,?)", ",(?,?)", "" };
 */
#define KR_DB_ROWS_MAX	128
struct kr_db_rows {
	const char	*head, *more, *tail;
	char		*text[8];		/* by log2(n) */
};
const char	*kr_db_rows_sql(struct kr_db_rows *r, size_t n);
/*
 * The same for any statement whose text depends on a row count: texts[log2(n)] for n a
 * power of two up to KR_DB_ROWS_MAX, made by build(arg, n) (malloc'd) the first time and
 * kept for the life of the process. NULL for another n or without memory.
 */
const char	*kr_db_sized_sql(char *texts[8], size_t n,
		    char *(*build)(const void *arg, size_t n), const void *arg);
/* The largest power of two <= n (n >= 1), at most KR_DB_ROWS_MAX: the next chunk of rows. */
size_t		 kr_db_rows_chunk(size_t n);
/* The smallest power of two >= n (1 <= n <= KR_DB_ROWS_MAX): a list padded to that size. */
size_t		 kr_db_rows_fit(size_t n);

/*
 * Run r for n rows (any n >= 1), in as few statements as the power-of-two sizes allow
 * (100 rows: 64 + 32 + 4). row(arg, i, p) writes the ncols parameters of row i at p.
 * Stops at the first statement that fails and returns its result. *affected (unless NULL)
 * gets the rows the statements changed, summed.
 */
enum kr_db_err	 kr_db_exec_rows(struct kr_db *db, struct kr_db_rows *r, unsigned ncols,
		    size_t n, void (*row)(void *arg, size_t i, struct kr_dbp *p), void *arg,
		    uint64_t *affected);

/* The AUTO_INCREMENT or LAST_INSERT_ID(expr) value of the last statement run. */
uint64_t	 kr_db_insert_id(const struct kr_db *db);
/* The last server or client error number (0 if none), for logs and metrics. */
unsigned	 kr_db_errno(const struct kr_db *db);
/* Process-wide count of database errors (not counting duplicates), for /metrics. */
uint64_t	 kr_db_error_count(void);

#endif
