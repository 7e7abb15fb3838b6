#include "kr_jobs.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kr_events.h"
#include "kr_json.h"
#include "kr_log.h"

#define N(a)		((unsigned)(sizeof(a) / sizeof((a)[0])))
#define COST_MAX	40	/* a DECIMAL(14,6) as text, with room to spare */

/* The columns of JOB_SELECT, in order. */
enum job_col {
	JC_ID, JC_TYPE, JC_STATUS, JC_INPUT, JC_CHAT, JC_SYSTEM, JC_SCHEDULE,
	JC_SCHED_ID, JC_SCHED_DESC, JC_SCHED_CRON, JC_PRIORITY, JC_ATTEMPTS, JC_MAX_ATTEMPTS,
	JC_RUN_AT, JC_STARTED, JC_FINISHED, JC_DELIVERED, JC_PROVIDER, JC_MODEL, JC_KEY,
	JC_FALLBACK, JC_RESULT, JC_ERROR, JC_IN_TOKENS, JC_OUT_TOKENS, JC_COST, JC_CREATED,
	JC_REQ_PROVIDER, JC_REQ_MODEL,
};

#define JOB_SELECT \
    "SELECT j.id, j.type, j.status, j.input, j.chat_id, j.system_prompt, j.schedule_id, " \
    "IF(s.id IS NULL AND j.schedule_cron IS NULL, NULL, j.schedule_id), " \
    "COALESCE(s.description, j.schedule_description), COALESCE(s.cron, j.schedule_cron), " \
    "j.priority, j.attempts, j.max_attempts, j.run_at, " \
    "j.started_at, j.finished_at, j.delivered_at, j.provider, j.model, j.key_id, " \
    "j.used_fallback, j.result, j.error, j.input_tokens, j.output_tokens, j.cost_usd, " \
    "j.created_at, j.requested_provider, j.requested_model " \
    "FROM jobs j LEFT JOIN schedules s " \
    "ON s.id = j.schedule_id AND s.workspace_id = j.workspace_id "

static const char sql_get[] = JOB_SELECT "WHERE j.workspace_id = ? AND j.id = ?";
/* Newest first on jobs_ws (workspace_id, created_at, id); a NULL parameter is no filter. */
static const char sql_list[] = JOB_SELECT
    "WHERE j.workspace_id = ? AND (? IS NULL OR j.status = ?) "
    "AND (? IS NULL OR j.chat_id = ?) AND (? IS NULL OR j.schedule_id = ?) "
    "AND (? IS NULL OR j.created_at < ? OR (j.created_at = ? AND j.id < ?)) "
    "ORDER BY j.created_at DESC, j.id DESC LIMIT ?";
static const char sql_cursor[] =
    "SELECT created_at FROM jobs WHERE workspace_id = ? AND id = ?";
static const char sql_attempts[] =
    "SELECT attempt, provider, key_id, model, started_at, finished_at, outcome, error, "
    "http_status, latency_ms, input_tokens, output_tokens, cost_usd, is_fallback, system_key "
    "FROM job_attempts WHERE job_id = ? AND workspace_id = ? ORDER BY id";
static const char sql_by_key[] =
    "SELECT id FROM jobs WHERE workspace_id = ? AND idempotency_key = ?";
/*
 * The guard makes a chat or schedule of another workspace impossible whatever the caller
 * checked; a past run_at is now (database clock, like the claim).
 */
static const char sql_insert[] =
    "INSERT INTO jobs (id, workspace_id, type, input, chat_id, system_prompt, schedule_id, "
    "priority, max_attempts, run_at, requested_provider, requested_model, idempotency_key, "
    "created_by, schedule_description, schedule_cron) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "GREATEST(COALESCE(CAST(? AS DATETIME(3)), NOW(3)), NOW(3)), ?, ?, ?, ?, "
    "(SELECT description FROM schedules WHERE id = ? AND workspace_id = ?), "
    "(SELECT cron FROM schedules WHERE id = ? AND workspace_id = ?) FROM DUAL "
    "WHERE (? IS NULL OR EXISTS (SELECT 1 FROM chats WHERE id = ? AND workspace_id = ?)) "
    "AND (? IS NULL OR EXISTS (SELECT 1 FROM schedules WHERE id = ? AND workspace_id = ?))";
static const char sql_lock[] =
    "SELECT status FROM jobs WHERE workspace_id = ? AND id = ? FOR UPDATE";
/* The runner flying the job sees it no longer running under its lease and aborts the call. */
static const char sql_cancel[] =
    "UPDATE jobs SET status = 'cancelled', finished_at = NOW(3), lease_token = NULL, "
    "updated_at = NOW(3) WHERE workspace_id = ? AND id = ?";
/*
 * The attempts logged so far stay in the log, below the floor of the new run (009); so does
 * their usage, which the job's usage keeps adding up. What said who answered goes.
 */
static const char sql_retry[] =
    "UPDATE jobs SET status = 'queued', attempts = 0, rescues = 0, attempts_floor = (SELECT "
    "COALESCE(MAX(a.id), 0) FROM job_attempts a WHERE a.job_id = jobs.id), "
    "error = NULL, result = NULL, provider = NULL, model = NULL, key_id = NULL, "
    "used_fallback = 0, delivered_at = NULL, "
    "started_at = NULL, finished_at = NULL, lease_token = NULL, lease_expires_at = NULL, "
    "runner_id = NULL, run_at = NOW(3), updated_at = NOW(3) "
    "WHERE workspace_id = ? AND id = ?";

/* A DECIMAL from the database as a JSON number, without trailing zeros ("0.25", "0"). */
static json_object *
decimal_json(const char *s)
{
	char buf[COST_MAX];
	size_t n;

	if (s == NULL || (n = strlen(s)) == 0 || n >= sizeof(buf) ||
	    strspn(s, "-0123456789.") != n)
		return json_object_new_int(0);
	memcpy(buf, s, n + 1);
	if (strchr(buf, '.') != NULL) {
		while (n > 0 && buf[n - 1] == '0')
			buf[--n] = '\0';
		if (n > 0 && buf[n - 1] == '.')
			buf[--n] = '\0';
	}
	if (n == 0 || strcmp(buf, "-0") == 0 || strcmp(buf, "-") == 0)
		return json_object_new_int(0);
	return json_object_new_double_s(strtod(buf, NULL), buf);
}

static void
add_cell(json_object *o, const char *key, const struct kr_db_res *r, unsigned row, unsigned col)
{
	kr_json_add_str(o, key, kr_db_cell(r, row, col));
}

static void
add_time(json_object *o, const char *key, const struct kr_db_res *r, unsigned row, unsigned col)
{
	kr_json_add_time(o, key, kr_db_cell(r, row, col));
}

static void
add_int(json_object *o, const char *key, const struct kr_db_res *r, unsigned row, unsigned col)
{
	kr_json_add_int(o, key, kr_db_cell_int(r, row, col, 0));
}

static json_object *
schedule_json(const struct kr_db_res *r, unsigned row)
{
	json_object *o;

	if (kr_db_cell(r, row, JC_SCHED_ID) == NULL)
		return NULL;
	o = json_object_new_object();
	add_cell(o, "id", r, row, JC_SCHED_ID);
	add_cell(o, "description", r, row, JC_SCHED_DESC);
	add_cell(o, "cron", r, row, JC_SCHED_CRON);
	return o;
}

/* A row of JOB_SELECT as api.md's job object (plus requestedProvider, requestedModel). */
static json_object *
job_row_json(const struct kr_db_res *r, unsigned row)
{
	json_object *o = json_object_new_object(), *u = json_object_new_object();

	add_cell(o, "id", r, row, JC_ID);
	add_cell(o, "type", r, row, JC_TYPE);
	add_cell(o, "status", r, row, JC_STATUS);
	add_cell(o, "input", r, row, JC_INPUT);
	add_cell(o, "chatId", r, row, JC_CHAT);
	add_cell(o, "systemPrompt", r, row, JC_SYSTEM);
	add_cell(o, "scheduleId", r, row, JC_SCHEDULE);
	json_object_object_add(o, "schedule", schedule_json(r, row));
	add_int(o, "priority", r, row, JC_PRIORITY);
	add_int(o, "attempts", r, row, JC_ATTEMPTS);
	add_int(o, "maxAttempts", r, row, JC_MAX_ATTEMPTS);
	add_time(o, "runAt", r, row, JC_RUN_AT);
	add_time(o, "startedAt", r, row, JC_STARTED);
	add_time(o, "finishedAt", r, row, JC_FINISHED);
	add_time(o, "deliveredAt", r, row, JC_DELIVERED);
	add_cell(o, "provider", r, row, JC_PROVIDER);
	add_cell(o, "model", r, row, JC_MODEL);
	add_cell(o, "keyId", r, row, JC_KEY);
	kr_json_add_bool(o, "usedFallback", kr_db_cell_int(r, row, JC_FALLBACK, 0) != 0);
	add_cell(o, "result", r, row, JC_RESULT);
	add_cell(o, "error", r, row, JC_ERROR);
	add_int(u, "inputTokens", r, row, JC_IN_TOKENS);
	add_int(u, "outputTokens", r, row, JC_OUT_TOKENS);
	json_object_object_add(u, "costUsd", decimal_json(kr_db_cell(r, row, JC_COST)));
	json_object_object_add(o, "usage", u);
	add_time(o, "createdAt", r, row, JC_CREATED);
	add_cell(o, "requestedProvider", r, row, JC_REQ_PROVIDER);
	add_cell(o, "requestedModel", r, row, JC_REQ_MODEL);
	return o;
}

/* A row of sql_attempts as an attemptsLog entry. */
static json_object *
attempt_row_json(const struct kr_db_res *r, unsigned row)
{
	json_object *o = json_object_new_object();

	add_int(o, "attempt", r, row, 0);
	add_cell(o, "provider", r, row, 1);
	add_cell(o, "keyId", r, row, 2);
	add_cell(o, "model", r, row, 3);
	add_time(o, "startedAt", r, row, 4);
	add_time(o, "finishedAt", r, row, 5);
	add_cell(o, "outcome", r, row, 6);
	add_cell(o, "error", r, row, 7);
	if (kr_db_cell(r, row, 8) != NULL)
		add_int(o, "httpStatus", r, row, 8);
	else
		json_object_object_add(o, "httpStatus", NULL);
	add_int(o, "latencyMs", r, row, 9);
	add_int(o, "inputTokens", r, row, 10);
	add_int(o, "outputTokens", r, row, 11);
	json_object_object_add(o, "costUsd", decimal_json(kr_db_cell(r, row, 12)));
	kr_json_add_bool(o, "usedFallback", kr_db_cell_int(r, row, 13, 0) != 0);
	kr_json_add_bool(o, "systemKey", kr_db_cell_int(r, row, 14, 0) != 0);
	return o;
}

static enum kr_db_err
attempts_json(struct kr_db *db, const char *ws_id, const char *id, json_object **out)
{
	struct kr_dbp p[2] = { KR_P_STR(id), KR_P_STR(ws_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*out = NULL;
	if ((rc = kr_db_exec(db, sql_attempts, p, N(p), &res, NULL)) != KR_DB_OK)
		return rc;
	*out = json_object_new_array();
	for (unsigned i = 0; i < res.nrows; i++)
		json_object_array_add(*out, attempt_row_json(&res, i));
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_job_json(struct kr_db *db, const char *ws_id, const char *id, int detail,
    json_object **out)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
	json_object *o = NULL, *log = NULL;
	struct kr_db_res res;
	enum kr_db_err rc;

	*out = NULL;
	if ((rc = kr_db_exec(db, sql_get, p, N(p), &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1)
		o = job_row_json(&res, 0);
	kr_db_res_free(&res);
	if (o != NULL && detail) {
		if ((rc = attempts_json(db, ws_id, id, &log)) != KR_DB_OK) {
			json_object_put(o);
			return rc;
		}
		json_object_object_add(o, "attemptsLog", log);
	}
	*out = o;
	return KR_DB_OK;
}

/* The created_at of job id into at ("" when it is not a job of the workspace). */
static enum kr_db_err
cursor_time(struct kr_db *db, const char *ws_id, const char *id, char at[KR_TIME_MAX])
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
	struct kr_db_res res;
	enum kr_db_err rc;
	const char *s;

	at[0] = '\0';
	if ((rc = kr_db_exec(db, sql_cursor, p, N(p), &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1 && (s = kr_db_cell(&res, 0, 0)) != NULL && strlen(s) < KR_TIME_MAX)
		memcpy(at, s, strlen(s) + 1);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

enum kr_db_err
kr_job_list_json(struct kr_db *db, const char *ws_id, const struct kr_job_filter *f,
    json_object **out)
{
	char at_buf[KR_TIME_MAX];
	const char *at = NULL;
	struct kr_db_res res;
	enum kr_db_err rc;
	json_object *list;
	unsigned n;

	*out = NULL;
	if (f->before != NULL) {
		if ((rc = cursor_time(db, ws_id, f->before, at_buf)) != KR_DB_OK)
			return rc;
		if (at_buf[0] == '\0')
			return KR_DB_OK;	/* not a job of this workspace */
		at = at_buf;
	}
	{
		/* One row more than asked tells whether there is a next page. */
		struct kr_dbp p[12] = {
			KR_P_STR(ws_id), KR_P_STR(f->status), KR_P_STR(f->status),
			KR_P_STR(f->chat_id), KR_P_STR(f->chat_id),
			KR_P_STR(f->schedule_id), KR_P_STR(f->schedule_id),
			KR_P_STR(at), KR_P_STR(at), KR_P_STR(at), KR_P_STR(f->before),
			KR_P_INT((long long)f->limit + 1),
		};
		if ((rc = kr_db_exec(db, sql_list, p, N(p), &res, NULL)) != KR_DB_OK)
			return rc;
	}
	n = res.nrows > f->limit ? f->limit : res.nrows;
	*out = json_object_new_object();
	list = json_object_new_array();
	for (unsigned i = 0; i < n; i++)
		json_object_array_add(list, job_row_json(&res, i));
	json_object_object_add(*out, "jobs", list);
	kr_json_add_str(*out, "nextCursor",
	    res.nrows > f->limit && n > 0 ? kr_db_cell(&res, n - 1, JC_ID) : NULL);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

/* Append an event of type for job id with payload {"jobId", "job"} as it is now. */
static enum kr_db_err
job_event(struct kr_db *db, const char *ws_id, const char *id, const char *type)
{
	json_object *payload, *job = NULL;
	enum kr_db_err rc;

	if ((rc = kr_job_json(db, ws_id, id, 0, &job)) != KR_DB_OK)
		return rc;
	if (job == NULL)
		return KR_DB_ERROR;	/* written in this transaction: cannot be missing */
	payload = json_object_new_object();
	kr_json_add_str(payload, "jobId", id);
	json_object_object_add(payload, "job", job);
	rc = kr_event_append(db, ws_id, type, payload, NULL);
	json_object_put(payload);
	return rc;
}

/* ---------------------------------------------------------------------------- create */

struct create_tx {
	const char		*ws_id;
	const struct kr_job_new	*j;
	char			*id;
	int			*existing;
};

/* The job holding key in the workspace into id; *found 0 when there is none. */
static enum kr_db_err
by_key(struct kr_db *db, const char *ws_id, const char *key, char *id, int *found)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(key) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*found = 0;
	if ((rc = kr_db_exec(db, sql_by_key, p, N(p), &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1 && kr_uuid_valid(kr_db_cell(&res, 0, 0))) {
		memcpy(id, kr_db_cell(&res, 0, 0), KR_UUID_MAX);
		*found = 1;
	}
	kr_db_res_free(&res);
	return KR_DB_OK;
}

static enum kr_db_err
create_in_tx(struct kr_db *db, void *arg)
{
	struct create_tx *c = arg;
	const struct kr_job_new *j = c->j;
	enum kr_db_err rc;
	uint64_t affected = 0;
	int found = 0;

	*c->existing = 0;
	if (j->idempotency_key != NULL) {
		if ((rc = by_key(db, c->ws_id, j->idempotency_key, c->id, &found)) != KR_DB_OK)
			return rc;
		if (found) {
			*c->existing = 1;
			return KR_DB_OK;
		}
	}
	kr_uuid_new(c->id);
	{
		struct kr_dbp p[24] = {
			KR_P_STR(c->id), KR_P_STR(c->ws_id), KR_P_STR(j->type),
			KR_P_STR(j->input), KR_P_STR(j->chat_id), KR_P_STR(j->system_prompt),
			KR_P_STR(j->schedule_id), KR_P_INT(j->priority), KR_P_INT(j->max_attempts),
			KR_P_STR(j->run_at), KR_P_STR(j->provider), KR_P_STR(j->model),
			KR_P_STR(j->idempotency_key), KR_P_STR(j->created_by),
			KR_P_STR(j->schedule_id), KR_P_STR(c->ws_id),
			KR_P_STR(j->schedule_id), KR_P_STR(c->ws_id),
			KR_P_STR(j->chat_id), KR_P_STR(j->chat_id), KR_P_STR(c->ws_id),
			KR_P_STR(j->schedule_id), KR_P_STR(j->schedule_id), KR_P_STR(c->ws_id),
		};
		rc = kr_db_exec(db, sql_insert, p, N(p), NULL, &affected);
	}
	if (rc == KR_DB_DUPLICATE && j->idempotency_key != NULL) {
		/*
		 * A concurrent request with the same key committed first (InnoDB made this
		 * insert wait for it); only the statement was undone, so read its job.
		 */
		if ((rc = by_key(db, c->ws_id, j->idempotency_key, c->id, &found)) != KR_DB_OK)
			return rc;
		*c->existing = found;
		return found ? KR_DB_OK : KR_DB_RETRY;
	}
	if (rc != KR_DB_OK)
		return rc;
	if (affected != 1) {
		kr_error("job not created: chat or schedule not in workspace %s", c->ws_id);
		return KR_DB_ERROR;
	}
	return job_event(db, c->ws_id, c->id, "job_queued");
}

enum kr_db_err
kr_job_create(struct kr_db *db, const char *ws_id, const struct kr_job_new *j, int in_tx,
    char id[KR_UUID_MAX], int *existing)
{
	struct create_tx c = { ws_id, j, id, existing };

	return in_tx ? create_in_tx(db, &c) : kr_db_tx(db, create_in_tx, &c, 0);
}

/* ---------------------------------------------------------------------- cancel, retry */

struct change_tx {
	const char		*ws_id;
	const char		*id;
	const char *const	*from;		/* the states it applies to, NULL-ended */
	const char		*sql;		/* the change */
	const char		*event;
	enum kr_job_change	*result;
};

static int
one_of(const char *s, const char *const *set)
{
	for (; s != NULL && *set != NULL; set++)
		if (strcmp(s, *set) == 0)
			return 1;
	return 0;
}

static enum kr_db_err
change_in_tx(struct kr_db *db, void *arg)
{
	struct change_tx *c = arg;
	struct kr_dbp p[2] = { KR_P_STR(c->ws_id), KR_P_STR(c->id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*c->result = KR_JOB_NOTFOUND;
	if ((rc = kr_db_exec(db, sql_lock, p, N(p), &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1)
		*c->result = one_of(kr_db_cell(&res, 0, 0), c->from) ? KR_JOB_CHANGED :
		    KR_JOB_WRONG_STATE;
	kr_db_res_free(&res);
	if (*c->result != KR_JOB_CHANGED)
		return KR_DB_OK;
	if ((rc = kr_db_exec(db, c->sql, p, N(p), NULL, NULL)) != KR_DB_OK)
		return rc;
	return job_event(db, c->ws_id, c->id, c->event);
}

enum kr_db_err
kr_job_cancel(struct kr_db *db, const char *ws_id, const char *id,
    enum kr_job_change *result)
{
	static const char *const from[] = { "queued", "retrying", "running", NULL };
	struct change_tx c = { ws_id, id, from, sql_cancel, "job_cancelled", result };

	return kr_db_tx(db, change_in_tx, &c, 0);
}

enum kr_db_err
kr_job_retry(struct kr_db *db, const char *ws_id, const char *id,
    enum kr_job_change *result)
{
	static const char *const from[] = { "failed", "cancelled", NULL };
	struct change_tx c = { ws_id, id, from, sql_retry, "job_queued", result };

	return kr_db_tx(db, change_in_tx, &c, 0);
}
