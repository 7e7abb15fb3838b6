#include "kr_chats.h"

#include <string.h>

#include "kr_events.h"
#include "kr_jobs.h"
#include "kr_json.h"

#define N(a)	((unsigned)(sizeof(a) / sizeof((a)[0])))
#define CHAT_JOB_MAX_ATTEMPTS	5	/* the jobs table's default */

static const char sql_chat_insert[] =
    "INSERT INTO chats (id, workspace_id, title) VALUES (?, ?, ?)";
static const char sql_chat_get[] =
    "SELECT id, title, created_at FROM chats WHERE workspace_id = ? AND id = ?";
/* Newest first on chats_ws (workspace_id, created_at, and the primary key id). */
static const char sql_chat_list[] =
    "SELECT id, title, created_at FROM chats WHERE workspace_id = ? "
    "AND (? IS NULL OR created_at < ? OR (created_at = ? AND id < ?)) "
    "ORDER BY created_at DESC, id DESC LIMIT ?";
static const char sql_chat_cursor[] =
    "SELECT created_at FROM chats WHERE workspace_id = ? AND id = ?";

#define MESSAGE_SELECT \
    "SELECT id, chat_id, direction, sender, content, job_id, created_at FROM messages "
static const char sql_msg_get[] = MESSAGE_SELECT "WHERE workspace_id = ? AND id = ?";
/* Oldest first on messages_chat (chat_id, created_at, id). */
static const char sql_msg_list[] = MESSAGE_SELECT
    "WHERE chat_id = ? AND workspace_id = ? "
    "AND (? IS NULL OR created_at > ? OR (created_at = ? AND id > ?)) "
    "ORDER BY created_at, id LIMIT ?";
static const char sql_msg_cursor[] =
    "SELECT created_at FROM messages WHERE chat_id = ? AND workspace_id = ? AND id = ?";
static const char sql_msg_insert[] =
    "INSERT INTO messages (id, workspace_id, chat_id, direction, sender, content) "
    "VALUES (?, ?, ?, 'in', ?, ?)";

static json_object *
chat_row_json(const struct kr_db_res *r, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "id", kr_db_cell(r, row, 0));
	kr_json_add_str(o, "title", kr_db_cell(r, row, 1));
	kr_json_add_time(o, "createdAt", kr_db_cell(r, row, 2));
	return o;
}

static json_object *
message_row_json(const struct kr_db_res *r, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "id", kr_db_cell(r, row, 0));
	kr_json_add_str(o, "chatId", kr_db_cell(r, row, 1));
	kr_json_add_str(o, "direction", kr_db_cell(r, row, 2));
	kr_json_add_str(o, "sender", kr_db_cell(r, row, 3));
	kr_json_add_str(o, "content", kr_db_cell(r, row, 4));
	kr_json_add_str(o, "jobId", kr_db_cell(r, row, 5));
	kr_json_add_time(o, "createdAt", kr_db_cell(r, row, 6));
	return o;
}

/* Run sql (params p) and answer the first row through view, NULL when there is none. */
static enum kr_db_err
one_json(struct kr_db *db, const char *sql, const struct kr_dbp *p, unsigned np,
    json_object *(*view)(const struct kr_db_res *, unsigned), json_object **out)
{
	struct kr_db_res res;
	enum kr_db_err rc;

	*out = NULL;
	if ((rc = kr_db_exec(db, sql, p, np, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1)
		*out = view(&res, 0);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

/*
 * The created_at of a cursor row (sql with params p) into at; *found 0 when the cursor
 * names no row.
 */
static enum kr_db_err
cursor_time(struct kr_db *db, const char *sql, const struct kr_dbp *p, unsigned np,
    char at[KR_TIME_MAX], int *found)
{
	struct kr_db_res res;
	enum kr_db_err rc;
	const char *s;

	*found = 0;
	if ((rc = kr_db_exec(db, sql, p, np, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1 && (s = kr_db_cell(&res, 0, 0)) != NULL && strlen(s) < KR_TIME_MAX) {
		memcpy(at, s, strlen(s) + 1);
		*found = 1;
	}
	kr_db_res_free(&res);
	return KR_DB_OK;
}

/*
 * {"<name>": [the first limit rows], "nextCursor"}: the id of the last row shown when the
 * query found more (it asked for limit + 1).
 */
static json_object *
page_json(const char *name, const struct kr_db_res *res, unsigned limit,
    json_object *(*view)(const struct kr_db_res *, unsigned))
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	unsigned n = res->nrows > limit ? limit : res->nrows;

	for (unsigned i = 0; i < n; i++)
		json_object_array_add(a, view(res, i));
	json_object_object_add(o, name, a);
	kr_json_add_str(o, "nextCursor",
	    res->nrows > limit && n > 0 ? kr_db_cell(res, n - 1, 0) : NULL);
	return o;
}

enum kr_db_err
kr_chat_create(struct kr_db *db, const char *ws_id, const char *title, json_object **out)
{
	char id[KR_UUID_MAX];
	enum kr_db_err rc;

	*out = NULL;
	kr_uuid_new(id);
	{
		struct kr_dbp p[3] = { KR_P_STR(id), KR_P_STR(ws_id), KR_P_STR(title) };
		if ((rc = kr_db_exec(db, sql_chat_insert, p, N(p), NULL, NULL)) != KR_DB_OK)
			return rc;
	}
	{
		struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
		if ((rc = one_json(db, sql_chat_get, p, N(p), chat_row_json, out)) != KR_DB_OK)
			return rc;
	}
	return *out != NULL ? KR_DB_OK : KR_DB_ERROR;
}

enum kr_db_err
kr_chat_exists(struct kr_db *db, const char *ws_id, const char *id, int *found)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
	json_object *o = NULL;
	enum kr_db_err rc;

	*found = 0;
	if ((rc = one_json(db, sql_chat_get, p, N(p), chat_row_json, &o)) != KR_DB_OK)
		return rc;
	*found = o != NULL;
	json_object_put(o);
	return KR_DB_OK;
}

enum kr_db_err
kr_chat_list_json(struct kr_db *db, const char *ws_id, const char *before, unsigned limit,
    json_object **out)
{
	char at_buf[KR_TIME_MAX];
	const char *at = NULL;
	struct kr_db_res res;
	enum kr_db_err rc;
	int found;

	*out = NULL;
	if (before != NULL) {
		struct kr_dbp c[2] = { KR_P_STR(ws_id), KR_P_STR(before) };
		if ((rc = cursor_time(db, sql_chat_cursor, c, N(c), at_buf, &found)) != KR_DB_OK)
			return rc;
		if (!found)
			return KR_DB_OK;
		at = at_buf;
	}
	{
		struct kr_dbp p[6] = { KR_P_STR(ws_id), KR_P_STR(at), KR_P_STR(at), KR_P_STR(at),
		    KR_P_STR(before), KR_P_INT((long long)limit + 1) };
		if ((rc = kr_db_exec(db, sql_chat_list, p, N(p), &res, NULL)) != KR_DB_OK)
			return rc;
	}
	*out = page_json("chats", &res, limit, chat_row_json);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_message_list_json(struct kr_db *db, const char *ws_id, const char *chat_id,
    const char *after, unsigned limit, json_object **out)
{
	char at_buf[KR_TIME_MAX];
	const char *at = NULL;
	struct kr_db_res res;
	enum kr_db_err rc;
	int found;

	*out = NULL;
	if (after != NULL) {
		struct kr_dbp c[3] = { KR_P_STR(chat_id), KR_P_STR(ws_id), KR_P_STR(after) };
		if ((rc = cursor_time(db, sql_msg_cursor, c, N(c), at_buf, &found)) != KR_DB_OK)
			return rc;
		if (!found)
			return KR_DB_OK;
		at = at_buf;
	}
	{
		struct kr_dbp p[7] = { KR_P_STR(chat_id), KR_P_STR(ws_id), KR_P_STR(at),
		    KR_P_STR(at), KR_P_STR(at), KR_P_STR(after), KR_P_INT((long long)limit + 1) };
		if ((rc = kr_db_exec(db, sql_msg_list, p, N(p), &res, NULL)) != KR_DB_OK)
			return rc;
	}
	*out = page_json("messages", &res, limit, message_row_json);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_message_json(struct kr_db *db, const char *ws_id, const char *id, json_object **out)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };

	return one_json(db, sql_msg_get, p, N(p), message_row_json, out);
}

/* ------------------------------------------------------------------------------- post */

struct post_tx {
	const char			*ws_id;
	const struct kr_message_new	*m;
	json_object			*out;	/* {"message","job"}, NULL: no such chat */
};

/* Insert the message and append message_created; *msg gets the message object. */
static enum kr_db_err
insert_message(struct kr_db *db, struct post_tx *t, json_object **msg)
{
	char id[KR_UUID_MAX];
	json_object *payload;
	enum kr_db_err rc;

	*msg = NULL;
	kr_uuid_new(id);
	{
		struct kr_dbp p[5] = { KR_P_STR(id), KR_P_STR(t->ws_id), KR_P_STR(t->m->chat_id),
		    KR_P_STR(t->m->sender), KR_P_STR(t->m->content) };
		if ((rc = kr_db_exec(db, sql_msg_insert, p, N(p), NULL, NULL)) != KR_DB_OK)
			return rc;
	}
	if ((rc = kr_message_json(db, t->ws_id, id, msg)) != KR_DB_OK)
		return rc;
	if (*msg == NULL)
		return KR_DB_ERROR;
	payload = json_object_new_object();
	json_object_object_add(payload, "message", json_object_get(*msg));
	rc = kr_event_append(db, t->ws_id, "message_created", payload, NULL);
	json_object_put(payload);
	return rc;
}

static enum kr_db_err
post_in_tx(struct kr_db *db, void *arg)
{
	struct post_tx *t = arg;
	const struct kr_message_new *m = t->m;
	struct kr_job_new j = {
		.type = "chat", .input = m->content, .chat_id = m->chat_id,
		.system_prompt = m->system_prompt, .max_attempts = CHAT_JOB_MAX_ATTEMPTS,
		.created_by = m->sender,
	};
	char job_id[KR_UUID_MAX];
	json_object *msg = NULL, *job = NULL;
	enum kr_db_err rc;
	int found = 0, existing = 0;

	json_object_put(t->out);	/* from an earlier run of this transaction */
	t->out = NULL;
	if ((rc = kr_chat_exists(db, t->ws_id, m->chat_id, &found)) != KR_DB_OK || !found)
		return rc;
	if ((rc = insert_message(db, t, &msg)) != KR_DB_OK)
		goto out;
	if ((rc = kr_job_create(db, t->ws_id, &j, 1, job_id, &existing)) != KR_DB_OK)
		goto out;
	if ((rc = kr_job_json(db, t->ws_id, job_id, 0, &job)) != KR_DB_OK)
		goto out;
	if (job == NULL) {
		rc = KR_DB_ERROR;
		goto out;
	}
	t->out = json_object_new_object();
	json_object_object_add(t->out, "message", msg);
	json_object_object_add(t->out, "job", job);
	msg = job = NULL;
out:
	json_object_put(msg);
	json_object_put(job);
	return rc;
}

enum kr_db_err
kr_message_post(struct kr_db *db, const char *ws_id, const struct kr_message_new *m,
    json_object **out)
{
	struct post_tx t = { ws_id, m, NULL };
	enum kr_db_err rc = kr_db_tx(db, post_in_tx, &t, 0);

	if (rc != KR_DB_OK) {
		json_object_put(t.out);
		t.out = NULL;
	}
	*out = t.out;
	return rc;
}
