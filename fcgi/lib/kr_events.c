#include "kr_events.h"

#include <stdlib.h>

#include "kr_json.h"
#include "kr_time.h"

static const char sql_next_seq[] =
    "UPDATE workspaces SET event_seq = LAST_INSERT_ID(event_seq + 1) WHERE id = ?";
static const char sql_insert[] =
    "INSERT INTO events (workspace_id, seq, type, payload) VALUES (?,?,?,?)";
static const char sql_after[] =
    "SELECT seq, type, payload FROM events WHERE workspace_id = ? AND seq > ? "
    "ORDER BY seq LIMIT ?";
static const char sql_bounds[] =
    "SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM events WHERE workspace_id = ?";
static const char sql_last_seq[] = "SELECT event_seq FROM workspaces WHERE id = ?";
static const char sql_prune[] =
    "DELETE FROM events WHERE created_at < NOW(3) - INTERVAL ? HOUR LIMIT 10000";

struct append {
	const char	*ws_id, *type;
	json_object	*payload;
	uint64_t	*seq;
};

static enum kr_db_err append_in_tx(struct kr_db *db, const char *ws_id, const char *type,
    json_object *payload, uint64_t *seq);

static enum kr_db_err
append_body(struct kr_db *db, void *arg)
{
	struct append *a = arg;

	return append_in_tx(db, a->ws_id, a->type, a->payload, a->seq);
}

/*
 * Outside a transaction the sequence step and the row get one of their own: the id must
 * never be visible before its row, and a failed insert must not leave a hole.
 */
enum kr_db_err
kr_event_append(struct kr_db *db, const char *ws_id, const char *type, json_object *payload,
    uint64_t *seq)
{
	struct append a = { ws_id, type, payload, seq };

	if (kr_db_in_tx(db))
		return append_in_tx(db, ws_id, type, payload, seq);
	return kr_db_tx(db, append_body, &a, 0);
}

static enum kr_db_err
append_in_tx(struct kr_db *db, const char *ws_id, const char *type, json_object *payload,
    uint64_t *seq)
{
	json_object *o = payload != NULL ? json_object_get(payload) : json_object_new_object();
	struct kr_dbp p[4];
	enum kr_db_err rc;
	char now[KR_TIME_MAX];
	long long id;

	p[0] = KR_P_STR(ws_id);
	if ((rc = kr_db_exec(db, sql_next_seq, p, 1, NULL, NULL)) != KR_DB_OK)
		goto out;
	/* LAST_INSERT_ID(expr) comes back with the UPDATE itself: no second round trip. */
	id = (long long)kr_db_insert_id(db);
	kr_json_add_str(o, "type", type);
	kr_time_now_rfc3339(now);
	kr_json_add_str(o, "at", now);
	p[1] = KR_P_INT(id);
	p[2] = KR_P_STR(type);
	p[3] = KR_P_STR(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE));
	rc = kr_db_exec(db, sql_insert, p, 4, NULL, NULL);
	if (rc == KR_DB_OK && seq != NULL)
		*seq = (uint64_t)id;
out:
	json_object_put(o);
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

enum kr_db_err
kr_events_prune(struct kr_db *db, unsigned hours, uint64_t *deleted)
{
	struct kr_dbp p[1] = { KR_P_INT(hours) };

	return kr_db_exec(db, sql_prune, p, 1, NULL, deleted);
}
