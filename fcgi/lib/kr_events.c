#include "kr_events.h"

#include <stdlib.h>

#include "kr_json.h"
#include "kr_time.h"

static const char sql_next_seq_many[] =
    "UPDATE workspaces SET event_seq = LAST_INSERT_ID(event_seq + ?) WHERE id = ?";
/* Multi-row inserts of 1, 2, 4 ... 64 rows: fixed texts, so each is prepared once. */
#define INS_HEAD	"INSERT INTO events (workspace_id, seq, type, payload) VALUES "
#define ROWS1		"(?,?,?,?)"
#define ROWS2		ROWS1 "," ROWS1
#define ROWS4		ROWS2 "," ROWS2
#define ROWS8		ROWS4 "," ROWS4
#define ROWS16		ROWS8 "," ROWS8
#define ROWS32		ROWS16 "," ROWS16
#define ROWS64		ROWS32 "," ROWS32
static const char *const sql_insert_rows[] = {
	INS_HEAD ROWS1, INS_HEAD ROWS2, INS_HEAD ROWS4, INS_HEAD ROWS8, INS_HEAD ROWS16,
	INS_HEAD ROWS32, INS_HEAD ROWS64,
};
#define INS_TEXTS	(sizeof(sql_insert_rows) / sizeof(sql_insert_rows[0]))
#define INS_COLS	4
static const char sql_after[] =
    "SELECT seq, type, payload FROM events WHERE workspace_id = ? AND seq > ? "
    "ORDER BY seq LIMIT ?";
static const char sql_bounds[] =
    "SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM events WHERE workspace_id = ?";
static const char sql_last_seq[] = "SELECT event_seq FROM workspaces WHERE id = ?";
/*
 * Pruning, workspace by workspace along the primary key: ids grow with time within a
 * workspace, so the old events are the first ones, up to the first to keep. Each pass over
 * a workspace looks at a window of its first PRUNE_WINDOW ids at most, so its cost is
 * bounded however far behind the pruning is. The delete checks the time again: an id taken
 * while the clock was set back stays, and an event written meanwhile never goes.
 */
#define PRUNE_WINDOW	10000
static const char sql_prune_workspaces[] = "SELECT id FROM workspaces ORDER BY id";
static const char sql_prune_first[] = "SELECT MIN(seq) FROM events WHERE workspace_id = ?";
static const char sql_prune_keep[] =
    "SELECT seq FROM events WHERE workspace_id = ? AND seq < ? "
    "AND created_at >= NOW(3) - INTERVAL ? HOUR ORDER BY seq LIMIT 1";
static const char sql_prune[] =
    "DELETE FROM events WHERE workspace_id = ? AND seq < ? "
    "AND created_at < NOW(3) - INTERVAL ? HOUR";

/*
 * Outside a transaction the sequence step and the row get one of their own: the id must
 * never be visible before its row, and a failed insert must not leave a hole.
 */
enum kr_db_err
kr_event_append(struct kr_db *db, const char *ws_id, const char *type, json_object *payload,
    uint64_t *seq)
{
	return kr_events_append_many(db, ws_id, &type, &payload, 1, seq);
}

struct append_many {
	const char		*ws_id;
	const char *const	*types;
	json_object *const	*payloads;
	size_t			 n;
	uint64_t		*first_seq;
};

static enum kr_db_err append_many_in_tx(struct kr_db *db, const struct append_many *m);

static enum kr_db_err
append_many_body(struct kr_db *db, void *arg)
{
	return append_many_in_tx(db, arg);
}

enum kr_db_err
kr_events_append_many(struct kr_db *db, const char *ws_id, const char *const *types,
    json_object *const *payloads, size_t n, uint64_t *first_seq)
{
	struct append_many m = { ws_id, types, payloads, n, first_seq };

	if (n == 0)
		return KR_DB_OK;
	if (kr_db_in_tx(db))
		return append_many_in_tx(db, &m);
	return kr_db_tx(db, append_many_body, &m, 0);
}

/* Insert rows [from, from + k) of m with ids first + from ...; k is one of the row counts. */
static enum kr_db_err
insert_rows(struct kr_db *db, const struct append_many *m, json_object *const *objs,
    uint64_t first, size_t from, size_t k, const char *sql)
{
	struct kr_dbp p[KR_EVENTS_MANY_MAX * INS_COLS];

	for (size_t i = 0; i < k; i++) {
		size_t e = from + i;
		p[i * INS_COLS] = KR_P_STR(m->ws_id);
		p[i * INS_COLS + 1] = KR_P_INT((long long)(first + e));
		p[i * INS_COLS + 2] = KR_P_STR(m->types[e]);
		p[i * INS_COLS + 3] = KR_P_STR(json_object_to_json_string_ext(objs[e],
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	}
	return kr_db_exec(db, sql, p, (unsigned)(k * INS_COLS), NULL, NULL);
}

static enum kr_db_err
append_many_in_tx(struct kr_db *db, const struct append_many *m)
{
	json_object **objs = calloc(m->n, sizeof(*objs));
	struct kr_dbp p[2];
	enum kr_db_err rc = KR_DB_ERROR;
	char now[KR_TIME_MAX];
	uint64_t last, first;
	size_t done = 0;

	if (objs == NULL)
		return KR_DB_ERROR;
	kr_time_now_rfc3339(now);
	for (size_t i = 0; i < m->n; i++) {
		objs[i] = m->payloads[i] != NULL ? json_object_get(m->payloads[i]) :
		    json_object_new_object();
		kr_json_add_str(objs[i], "type", m->types[i]);
		kr_json_add_str(objs[i], "at", now);
	}
	p[0] = KR_P_INT((long long)m->n);
	p[1] = KR_P_STR(m->ws_id);
	if ((rc = kr_db_exec(db, sql_next_seq_many, p, 2, NULL, NULL)) != KR_DB_OK)
		goto out;
	/* LAST_INSERT_ID(expr) is the last of the n ids taken. */
	last = kr_db_insert_id(db);
	first = last + 1 - m->n;
	while (done < m->n && rc == KR_DB_OK) {
		size_t t = INS_TEXTS - 1, k = (size_t)1 << t;
		while (k > m->n - done) {
			t--;
			k >>= 1;
		}
		rc = insert_rows(db, m, objs, first, done, k, sql_insert_rows[t]);
		done += k;
	}
	if (rc == KR_DB_OK && m->first_seq != NULL)
		*m->first_seq = first;
out:
	for (size_t i = 0; i < m->n; i++)
		json_object_put(objs[i]);
	free(objs);
	return rc;
}

enum kr_db_err
kr_events_after(struct kr_db *db, const char *ws_id, uint64_t after, unsigned limit,
    struct kr_db_res *res)
{
	struct kr_dbp p[3] = { KR_P_STR(ws_id), KR_P_INT(after), KR_P_INT(limit) };

	return kr_db_exec(db, sql_after, p, 3, res, NULL);
}

enum kr_db_err
kr_events_bounds(struct kr_db *db, const char *ws_id, uint64_t *first, uint64_t *last)
{
	struct kr_dbp p[1] = { KR_P_STR(ws_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*first = *last = 0;
	if ((rc = kr_db_exec(db, sql_bounds, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	*first = (uint64_t)kr_db_cell_int(&res, 0, 0, 0);
	*last = (uint64_t)kr_db_cell_int(&res, 0, 1, 0);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_events_last_seq(struct kr_db *db, const char *ws_id, uint64_t *last)
{
	struct kr_dbp p[1] = { KR_P_STR(ws_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*last = 0;
	if ((rc = kr_db_exec(db, sql_last_seq, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	*last = (uint64_t)kr_db_cell_int(&res, 0, 0, 0);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

/*
 * Delete workspace ws_id's events older than hours among its first PRUNE_WINDOW ids;
 * *deleted: how many.
 */
static enum kr_db_err
prune_workspace(struct kr_db *db, const char *ws_id, unsigned hours, uint64_t *deleted)
{
	struct kr_dbp p[3] = { KR_P_STR(ws_id) };
	struct kr_db_res res;
	enum kr_db_err rc;
	long long end;

	*deleted = 0;
	if ((rc = kr_db_exec(db, sql_prune_first, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	end = kr_db_cell(&res, 0, 0) != NULL ? kr_db_cell_int(&res, 0, 0, 0) + PRUNE_WINDOW : 0;
	kr_db_res_free(&res);
	if (end == 0)
		return KR_DB_OK;		/* no events */
	p[1] = KR_P_INT(end);
	p[2] = KR_P_INT(hours);
	if ((rc = kr_db_exec(db, sql_prune_keep, p, 3, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows > 0)
		p[1] = KR_P_INT(kr_db_cell_int(&res, 0, 0, end));
	kr_db_res_free(&res);
	return kr_db_exec(db, sql_prune, p, 3, NULL, deleted);
}

enum kr_db_err
kr_events_prune(struct kr_db *db, unsigned hours, uint64_t max, uint64_t *deleted)
{
	struct kr_db_res ws;
	enum kr_db_err rc;
	uint64_t n;

	*deleted = 0;
	if ((rc = kr_db_exec(db, sql_prune_workspaces, NULL, 0, &ws, NULL)) != KR_DB_OK)
		return rc;
	for (unsigned r = 0; r < ws.nrows && rc == KR_DB_OK && *deleted < max; r++)
		if ((rc = prune_workspace(db, kr_db_cell(&ws, r, 0), hours, &n)) == KR_DB_OK)
			*deleted += n;
	kr_db_res_free(&ws);
	return rc;
}
