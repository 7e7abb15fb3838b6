#include "kr_queue.h"
#include "kr_queue_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kr_events.h"
#include "kr_json.h"
#include "kr_log.h"
#include "kr_notify.h"
#include "kr_prices.h"

#define N(a)		((unsigned)(sizeof(a) / sizeof((a)[0])))
#define TX_TRIES	5
#define CLAIM_SCAN	4	/* rows looked at per job wanted, for per-workspace caps */

static const char sql_claim_scan[] =
    "SELECT id, workspace_id, type, COALESCE(chat_id, ''), COALESCE(requested_provider, ''), "
    "COALESCE(requested_model, ''), created_at, input, system_prompt, attempts, max_attempts "
    "FROM jobs WHERE stage = 1 AND due_at <= NOW(3) "
    "ORDER BY stage, queue_rank DESC, due_at LIMIT ? FOR UPDATE SKIP LOCKED";
/*
 * The due jobs' ids by a plain read (scan_due), then those of them still claimable locked
 * and read by primary key.
 */
static const char sql_claim_peek[] =
    "SELECT id FROM jobs WHERE stage = 1 AND due_at <= NOW(3) "
    "ORDER BY stage, queue_rank DESC, due_at, id LIMIT ?";
static struct kr_db_rows sql_claim_lock = {
    "SELECT id, workspace_id, type, COALESCE(chat_id, ''), COALESCE(requested_provider, ''), "
    "COALESCE(requested_model, ''), created_at, input, system_prompt, attempts, max_attempts "
    "FROM jobs FORCE INDEX (PRIMARY) WHERE stage = 1 AND due_at <= NOW(3) AND id IN (?",
    ",?", ") ORDER BY stage, queue_rank DESC, due_at, id FOR UPDATE SKIP LOCKED", { NULL } };
/* The jobs taken, as one IN list padded to a power of two (kr_db_rows_fit). */
static struct kr_db_rows sql_claim_take = {
    "UPDATE jobs SET status = 'running', lease_token = ?, runner_id = ?, "
    "lease_expires_at = NOW(3) + INTERVAL ? SECOND, started_at = COALESCE(started_at, NOW(3)), "
    "updated_at = NOW(3) WHERE id IN (?", ",?", ")", { NULL } };
static const char sql_message_insert[] =
    "INSERT INTO messages (id, workspace_id, chat_id, direction, sender, content, job_id, "
    "created_at) VALUES (?, ?, ?, 'out', ?, ?, ?, ?)";
static const char sql_now[] = "SELECT NOW(3)";
static const char sql_succeed[] =
    "UPDATE jobs SET status = 'succeeded', result = ?, error = NULL, finished_at = NOW(3), "
    "delivered_at = NOW(3), provider = ?, model = ?, key_id = ?, used_fallback = ?, "
    "attempts = attempts + 1, input_tokens = input_tokens + ?, "
    "output_tokens = output_tokens + ?, cost_usd = cost_usd + ?, lease_token = NULL, "
    "updated_at = NOW(3) WHERE id = ? AND lease_token = ? AND status = 'running'";
/*
 * Fenced on the counter too: a rerun of the transaction after its COMMIT landed unseen (a
 * connection lost) must not count the attempt twice; sql_counted tells it apart from a
 * lease that is gone.
 */
static const char sql_attempt_counted[] =
    "UPDATE jobs SET attempts = attempts + 1, provider = ?, model = ?, key_id = ?, "
    "used_fallback = ?, error = ?, rescues = 0, updated_at = NOW(3) "
    "WHERE id = ? AND lease_token = ? AND status = 'running' AND attempts = ?";
static const char sql_counted[] =
    "SELECT attempts FROM jobs WHERE id = ? AND lease_token = ? AND status = 'running'";
static const char sql_attempt_insert[] =
    "INSERT INTO job_attempts (job_id, workspace_id, attempt, provider, key_id, system_key, "
    "model, is_fallback, started_at, finished_at, outcome, http_status, error, input_tokens, "
    "output_tokens, cost_usd, latency_ms) "
    "SELECT ?, ?, attempts + ?, ?, ?, ?, ?, ?, ?, NOW(3), ?, ?, ?, ?, ?, ?, ? FROM jobs "
    "WHERE id = ?";
static const char sql_retry_later[] =
    "UPDATE jobs SET status = 'retrying', run_at = NOW(3) + INTERVAL ? MICROSECOND, "
    "error = ?, lease_token = NULL, runner_id = NULL, lease_expires_at = NULL, "
    "updated_at = NOW(3) WHERE id = ? AND lease_token = ? AND status = 'running'";
static const char sql_fail[] =
    "UPDATE jobs SET status = 'failed', error = ?, finished_at = NOW(3), lease_token = NULL, "
    "lease_expires_at = NULL, updated_at = NOW(3) "
    "WHERE id = ? AND lease_token = ? AND status = 'running'";
/* Of the job's current run: the attempts logged since it was last retried. */
static const char sql_transient[] =
    "SELECT a.provider FROM job_attempts a JOIN jobs j ON j.id = a.job_id "
    "WHERE a.job_id = ? AND a.outcome = 'transient' AND a.id > j.attempts_floor "
    "GROUP BY a.provider HAVING COUNT(*) >= ?";
/* Newest first, as messages_chat is read backwards; kr_queue_history turns it around. */
static const char sql_history[] =
    "SELECT direction, content FROM messages "
    "WHERE workspace_id = ? AND chat_id = ? AND created_at <= ? "
    "ORDER BY created_at DESC, id DESC LIMIT ?";

void
kr_claimed_release(struct kr_claimed *j)
{
	free(j->input);
	free(j->system_prompt);
	j->input = j->system_prompt = NULL;
	kr_db_res_free(&j->history);
	j->has_history = 0;
}

enum kr_db_err
kr_queue__fenced(struct kr_db *db, enum kr_db_err (*body)(struct kr_db *, void *), void *arg,
    enum kr_queue_result *res)
{
	enum kr_db_err rc = kr_db_tx(db, body, arg, 1);

	*res = rc == KR_DB_ABORT ? KR_QUEUE_LOST : KR_QUEUE_DONE;
	return rc == KR_DB_ABORT ? KR_DB_OK : rc;
}

/* {"jobId", "job": {"id","status","attempts","provider","model","keyId","usedFallback","error"}} */
static json_object *
job_payload(const struct kr_claimed *j, const char *status, const struct kr_attempt *a,
    const char *error, int attempts_delta)
{
	json_object *o = json_object_new_object(), *job = json_object_new_object();

	kr_json_add_str(o, "jobId", j->id);
	kr_json_add_str(job, "id", j->id);
	kr_json_add_str(job, "type", j->type);
	kr_json_add_str(job, "status", status);
	kr_json_add_str(job, "chatId", j->chat_id[0] ? j->chat_id : NULL);
	kr_json_add_int(job, "attempts", (long long)j->attempts + attempts_delta);
	kr_json_add_int(job, "maxAttempts", j->max_attempts);
	if (a != NULL) {
		kr_json_add_str(job, "provider", a->provider);
		kr_json_add_str(job, "model", a->model);
		kr_json_add_str(job, "keyId", a->key_id);
		kr_json_add_bool(job, "usedFallback", a->is_fallback);
	}
	kr_json_add_str(job, "error", error);
	json_object_object_add(o, "job", job);
	return o;
}

enum kr_db_err
kr_queue__job_event(struct kr_db *db, const struct kr_claimed *j, const char *type,
    const char *status, const struct kr_attempt *a, const char *error, int attempts_delta)
{
	json_object *o = job_payload(j, status, a, error, attempts_delta);
	enum kr_db_err rc = kr_event_append(db, j->ws_id, type, o, NULL);

	json_object_put(o);
	return rc;
}

enum kr_db_err
kr_queue__append_grouped(struct kr_db *db, const char *const *ws, const char *const *types,
    json_object *const *payloads, size_t n)
{
	const char **t = calloc(n + 1, sizeof(*t));
	json_object **o = calloc(n + 1, sizeof(*o));
	unsigned char *done = calloc(n + 1, 1);
	enum kr_db_err rc = KR_DB_OK;

	if (t == NULL || o == NULL || done == NULL) {
		rc = KR_DB_ERROR;
		goto out;
	}
	for (size_t i = 0; i < n && rc == KR_DB_OK; i++) {
		size_t k = 0;
		if (done[i])
			continue;
		for (size_t e = i; e < n; e++)
			if (!done[e] && strcmp(ws[e], ws[i]) == 0) {
				done[e] = 1;
				t[k] = types[e];
				o[k++] = payloads[e];
			}
		rc = kr_events_append_many(db, ws[i], t, o, k, NULL);
	}
out:
	free(t);
	free(o);
	free(done);
	return rc;
}

static char *
dup_cell(const struct kr_db_res *res, unsigned row, unsigned col)
{
	const char *s = kr_db_cell(res, row, col);

	return s != NULL ? strdup(s) : NULL;
}

static void
claimed_from_row(struct kr_claimed *j, const struct kr_db_res *res, unsigned r)
{
	memset(j, 0, sizeof(*j));
	snprintf(j->id, sizeof(j->id), "%s", kr_db_cell(res, r, 0));
	snprintf(j->ws_id, sizeof(j->ws_id), "%s", kr_db_cell(res, r, 1));
	snprintf(j->type, sizeof(j->type), "%s", kr_db_cell(res, r, 2));
	snprintf(j->chat_id, sizeof(j->chat_id), "%s", kr_db_cell(res, r, 3));
	snprintf(j->requested_provider, sizeof(j->requested_provider), "%s",
	    kr_db_cell(res, r, 4));
	snprintf(j->requested_model, sizeof(j->requested_model), "%s", kr_db_cell(res, r, 5));
	snprintf(j->created_at, sizeof(j->created_at), "%s", kr_db_cell(res, r, 6));
	j->input = dup_cell(res, r, 7);
	j->system_prompt = dup_cell(res, r, 8);
	j->attempts = (unsigned)kr_db_cell_int(res, r, 9, 0);
	j->max_attempts = (unsigned)kr_db_cell_int(res, r, 10, 5);
}

struct claim_ctx {
	const char	*runner_id;
	unsigned	 lease_seconds, max;
	int		(*may_take)(const char *, void *);
	void		*arg;
	struct kr_claimed *out;
	size_t		 n;
};

static void
claim_reset(struct claim_ctx *c)
{
	for (size_t i = 0; i < c->n; i++)
		kr_claimed_release(&c->out[i]);
	c->n = 0;
}

/* job_started for each taken job: one sequence step and one insert per workspace. */
static enum kr_db_err
claim_events(struct kr_db *db, const struct kr_claimed *jobs, size_t n)
{
	const char **ws = calloc(n, sizeof(*ws)), **types = calloc(n, sizeof(*types));
	json_object **o = calloc(n, sizeof(*o));
	enum kr_db_err rc = KR_DB_ERROR;

	if (ws == NULL || types == NULL || o == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		ws[i] = jobs[i].ws_id;
		types[i] = "job_started";
		o[i] = job_payload(&jobs[i], "running", NULL, NULL, 0);
	}
	rc = kr_queue__append_grouped(db, ws, types, o, n);
out:
	for (size_t i = 0; o != NULL && i < n; i++)
		if (o[i] != NULL)
			json_object_put(o[i]);
	free(ws);
	free(types);
	free(o);
	return rc;
}

unsigned
kr_queue__bind_ids(struct kr_dbp *p, unsigned np, const char *const *ids, size_t n)
{
	size_t k = kr_db_rows_fit(n);

	for (size_t i = 0; i < k; i++)
		p[np + i] = KR_P_STR(ids[i < n ? i : n - 1]);
	return np + (unsigned)k;
}

/*
 * The rows of a scan the caps allow, into ids[*n] and row[*n]; 0 when a cap refused one.
 * Rows among counted[ncounted] (taken by an earlier scan of this claim) were allowed
 * already.
 */
static int
take_rows(struct claim_ctx *c, const struct kr_db_res *rows, const char *const *counted,
    size_t ncounted, const char **ids, unsigned *row, size_t *n)
{
	int all = 1;

	for (unsigned r = 0; r < rows->nrows && *n < c->max; r++) {
		const char *id = kr_db_cell(rows, r, 0);
		size_t k;
		for (k = 0; k < ncounted && strcmp(counted[k], id) != 0; k++)
			;
		if (k < ncounted || c->may_take == NULL ||
		    c->may_take(kr_db_cell(rows, r, 1), c->arg)) {
			row[*n] = r;
			ids[(*n)++] = id;
		} else
			all = 0;
	}
	return all;
}

/*
 * The due rows, at most max, locked, in the claim order: sql_claim_scan's answer. That
 * locking scan of jobs_stage steps over every entry that earlier claims left delete-marked
 * until purge removes it, and checks each one for a lock; when purge lags behind a busy
 * queue, that is milliseconds per claim. A plain read steps over them cheaply, so the ids
 * come from one (sql_claim_peek) and are then locked by primary key (sql_claim_lock). Only
 * when another claim took or holds some of them does the locking scan run after all.
 *
 * Locking by primary key leaves the jobs_stage entries unlocked. When another runner's
 * locking scan passes them meanwhile, it skips the rows (locked here) but keeps the entries
 * locked until it commits, and this claim's update waits that long for them: a wait of one
 * short transaction, never a cycle (that scan's own rows are locked entry first, and no
 * claim here holds an entry). The same scan, run here as the fallback, skips such rows too:
 * they stay locked but untaken until this transaction ends, and the next claim takes them.
 */
static enum kr_db_err
scan_due(struct kr_db *db, unsigned max, struct kr_db_res *rows)
{
	struct kr_dbp p[KR_DB_ROWS_MAX];
	const char *ids[KR_DB_ROWS_MAX];
	struct kr_db_res peek;
	enum kr_db_err rc;
	unsigned np;

	p[0] = KR_P_INT(max);
	if ((rc = kr_db_exec(db, sql_claim_peek, p, 1, &peek, NULL)) != KR_DB_OK)
		return rc;
	if (peek.nrows == 0) {
		*rows = peek;	/* nothing due */
		return KR_DB_OK;
	}
	if (peek.nrows > KR_DB_ROWS_MAX) {
		kr_db_res_free(&peek);
		return kr_db_exec(db, sql_claim_scan, p, 1, rows, NULL);
	}
	for (unsigned i = 0; i < peek.nrows; i++)
		ids[i] = kr_db_cell(&peek, i, 0);
	np = kr_queue__bind_ids(p, 0, ids, peek.nrows);
	rc = kr_db_exec(db, kr_db_rows_sql(&sql_claim_lock, kr_db_rows_fit(peek.nrows)), p, np,
	    rows, NULL);
	if (rc == KR_DB_OK && rows->nrows < peek.nrows) {
		kr_db_res_free(rows);
		p[0] = KR_P_INT(max);
		rc = kr_db_exec(db, sql_claim_scan, p, 1, rows, NULL);
	}
	kr_db_res_free(&peek);
	return rc;
}

/*
 * Lock the due rows wanted (scan_due; jobs of capped workspaces are skipped, and a wider
 * scan runs only when they left some behind), and take those with one lease token for the
 * batch (each change later is fenced on id and token together).
 */
static enum kr_db_err
claim_body(struct kr_db *db, void *arg)
{
	struct claim_ctx *c = arg;
	struct kr_dbp p[3 + KR_DB_ROWS_MAX];
	const char *ids[KR_DB_ROWS_MAX];
	unsigned row[KR_DB_ROWS_MAX];
	struct kr_db_res rows, wider = { 0, 0, NULL, NULL }, *from = &rows;
	char lease[KR_UUID_MAX];
	enum kr_db_err rc;
	size_t n = 0;
	unsigned np;

	claim_reset(c);
	if ((rc = scan_due(db, c->max, &rows)) != KR_DB_OK)
		return rc;
	if (!take_rows(c, &rows, NULL, 0, ids, row, &n) && rows.nrows == c->max) {
		const char *first[KR_DB_ROWS_MAX];
		size_t nfirst = n;
		memcpy(first, ids, n * sizeof(*ids));
		n = 0;
		p[0] = KR_P_INT((long long)c->max * CLAIM_SCAN);
		if ((rc = kr_db_exec(db, sql_claim_scan, p, 1, &wider, NULL)) != KR_DB_OK)
			goto out;
		(void)take_rows(c, &wider, first, nfirst, ids, row, &n);
		from = &wider;
	}
	if (n == 0)
		goto out;
	kr_uuid_new(lease);
	p[0] = KR_P_STR(lease);
	p[1] = KR_P_STR(c->runner_id);
	p[2] = KR_P_INT(c->lease_seconds);
	np = kr_queue__bind_ids(p, 3, ids, n);
	if ((rc = kr_db_exec(db, kr_db_rows_sql(&sql_claim_take, kr_db_rows_fit(n)), p, np,
	    NULL, NULL)) != KR_DB_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {	/* in the order of the scan: priority, then age */
		claimed_from_row(&c->out[c->n], from, row[i]);
		memcpy(c->out[c->n++].lease, lease, sizeof(lease));
	}
	rc = claim_events(db, c->out, c->n);
out:
	kr_db_res_free(&wider);
	kr_db_res_free(&rows);
	return rc;
}

enum kr_db_err
kr_queue_claim(struct kr_db *db, const char *runner_id, unsigned lease_seconds, unsigned max,
    int (*may_take)(const char *ws_id, void *arg), void *arg, struct kr_claimed **out,
    size_t *n)
{
	struct claim_ctx c = { runner_id, lease_seconds, max, may_take, arg, NULL, 0 };
	enum kr_queue_result res;
	enum kr_db_err rc;

	*out = NULL;
	*n = 0;
	if (max == 0)
		return KR_DB_OK;
	if (max > KR_DB_ROWS_MAX)
		c.max = max = KR_DB_ROWS_MAX;
	if ((c.out = calloc(max, sizeof(*c.out))) == NULL)
		return KR_DB_ERROR;
	rc = kr_queue__fenced(db, claim_body, &c, &res);
	if (rc != KR_DB_OK) {
		claim_reset(&c);
		free(c.out);
		return rc;
	}
	*out = c.out;
	*n = c.n;
	return KR_DB_OK;
}

double
kr_queue__attempt_cost(struct kr_db *db, const struct kr_attempt *a)
{
	return kr_price_cost(db, a->provider, a->model, a->r->input_tokens,
	    a->r->output_tokens);
}

void
kr_queue__attempt_params(struct kr_dbp *p, const struct kr_claimed *j,
    const struct kr_attempt *a, const char *cost)
{
	const struct kr_llm_result *r = a->r;

	p[0] = KR_P_STR(j->id);
	p[1] = KR_P_STR(j->ws_id);
	p[3] = KR_P_STR(a->provider);
	p[4] = KR_P_STR(a->key_id);
	p[5] = KR_P_INT(a->key_id == NULL);
	p[6] = KR_P_STR(a->model);
	p[7] = KR_P_INT(a->is_fallback);
	p[8] = KR_P_STR(a->started_at);
	p[9] = KR_P_STR(a->outcome);
	p[10] = r->http_status > 0 ? KR_P_INT(r->http_status) : KR_P_NULL;
	p[11] = KR_P_STR(r->cls == KR_LLM_OK ? NULL : r->message);
	p[12] = KR_P_INT(r->input_tokens > 0 ? r->input_tokens : 0);
	p[13] = KR_P_INT(r->output_tokens > 0 ? r->output_tokens : 0);
	p[14] = KR_P_STR(cost);
	p[15] = KR_P_INT(r->latency_ms > 0 ? r->latency_ms : 0);
}

/*
 * Insert the attempt row, numbered the job's attempts counter plus ahead (0 when the
 * counter was advanced for it already).
 */
static enum kr_db_err
insert_attempt(struct kr_db *db, const struct kr_claimed *j, const struct kr_attempt *a,
    double cost, int ahead)
{
	struct kr_dbp p[KR_QUEUE__ATTEMPT_COLS + 1];
	char costs[32];

	snprintf(costs, sizeof(costs), "%.6f", cost);
	kr_queue__attempt_params(p, j, a, costs);
	p[2] = KR_P_INT(ahead);
	p[KR_QUEUE__ATTEMPT_COLS] = KR_P_STR(j->id);
	return kr_db_exec(db, sql_attempt_insert, p, KR_QUEUE__ATTEMPT_COLS + 1, NULL, NULL);
}

struct succeed_ctx {
	const struct kr_claimed	*j;
	const struct kr_attempt	*a;
	double			 cost;
};

enum kr_db_err
kr_queue__db_now(struct kr_db *db, struct kr_queue__now *now)
{
	struct kr_db_res res;
	enum kr_db_err rc;

	if ((rc = kr_db_exec(db, sql_now, NULL, 0, &res, NULL)) != KR_DB_OK)
		return rc;
	rc = res.nrows == 1 && kr_db_cell(&res, 0, 0) != NULL &&
	    snprintf(now->db, sizeof(now->db), "%s", kr_db_cell(&res, 0, 0)) <
	    (int)sizeof(now->db) && kr_time_from_db(now->db, now->rfc3339) == 0 ?
	    KR_DB_OK : KR_DB_ERROR;
	kr_db_res_free(&res);
	return rc;
}

size_t
kr_queue__succeed_events(const struct kr_claimed *j, const struct kr_attempt *a,
    const char *msg_id, const struct kr_queue__now *msg_at, int attempts_delta,
    const char **types, json_object **o)
{
	size_t k = 0;

	if (j->chat_id[0] != '\0') {
		json_object *m = json_object_new_object();
		kr_json_add_str(m, "id", msg_id);
		kr_json_add_str(m, "chatId", j->chat_id);
		kr_json_add_str(m, "direction", "out");
		kr_json_add_str(m, "sender", a->model);
		kr_json_add_str(m, "content", a->r->text != NULL ? a->r->text : "");
		kr_json_add_str(m, "jobId", j->id);
		kr_json_add_str(m, "createdAt", msg_at->rfc3339);
		types[k] = "message_created";
		o[k] = json_object_new_object();
		kr_json_add_str(o[k], "jobId", j->id);
		json_object_object_add(o[k++], "message", m);
	}
	types[k] = "job_succeeded";
	o[k++] = job_payload(j, "succeeded", a, NULL, attempts_delta);
	return k;
}

/*
 * The job's own statements: the answer message (msg_id gets its id, msg_at its time), the
 * fenced status change, the attempt row and the notifications. KR_DB_ABORT when the lease
 * is gone or the answer was delivered already. The events are the caller's.
 */
static enum kr_db_err
succeed_job(struct kr_db *db, const struct succeed_ctx *c, char msg_id[KR_UUID_MAX],
    struct kr_queue__now *msg_at)
{
	const struct kr_claimed *j = c->j;
	const struct kr_attempt *a = c->a;
	const char *text = a->r->text != NULL ? a->r->text : "";
	char costs[32];
	enum kr_db_err rc;
	uint64_t n = 0;

	msg_id[0] = '\0';
	snprintf(costs, sizeof(costs), "%.6f", c->cost);
	if (j->chat_id[0] != '\0') {
		struct kr_dbp m[7];
		if ((rc = kr_queue__db_now(db, msg_at)) != KR_DB_OK)
			return rc;
		kr_uuid_new(msg_id);
		m[0] = KR_P_STR(msg_id);
		m[1] = KR_P_STR(j->ws_id);
		m[2] = KR_P_STR(j->chat_id);
		m[3] = KR_P_STR(a->model);
		m[4] = KR_P_STR(text);
		m[5] = KR_P_STR(j->id);
		m[6] = KR_P_STR(msg_at->db);
		rc = kr_db_exec(db, sql_message_insert, m, 7, NULL, NULL);
		if (rc == KR_DB_DUPLICATE)	/* delivered already: never twice */
			return KR_DB_ABORT;
		if (rc != KR_DB_OK)
			return rc;
	}
	{
		struct kr_dbp p[10] = { KR_P_STR(text), KR_P_STR(a->provider), KR_P_STR(a->model),
		    KR_P_STR(a->key_id), KR_P_INT(a->is_fallback),
		    KR_P_INT(a->r->input_tokens > 0 ? a->r->input_tokens : 0),
		    KR_P_INT(a->r->output_tokens > 0 ? a->r->output_tokens : 0), KR_P_STR(costs),
		    KR_P_STR(j->id), KR_P_STR(j->lease) };
		if ((rc = kr_db_exec(db, sql_succeed, p, 10, NULL, &n)) != KR_DB_OK)
			return rc;
	}
	if (n == 0)
		return KR_DB_ABORT;
	if ((rc = insert_attempt(db, j, a, c->cost, 0)) != KR_DB_OK)
		return rc;
	/* Telegram and the like: queued here, sent on their own; never undoes the answer. */
	if ((rc = kr_notify_enqueue(db, j->ws_id, j->id, text)) != KR_DB_OK &&
	    rc != KR_DB_ERROR)
		return rc;
	return KR_DB_OK;
}

static enum kr_db_err
succeed_body(struct kr_db *db, void *arg)
{
	struct succeed_ctx *c = arg;
	const char *types[KR_QUEUE__SUCCEED_EVENTS];
	json_object *o[KR_QUEUE__SUCCEED_EVENTS];
	struct kr_queue__now msg_at;
	char msg_id[KR_UUID_MAX];
	enum kr_db_err rc;
	size_t k;

	if ((rc = succeed_job(db, c, msg_id, &msg_at)) != KR_DB_OK)
		return rc;
	k = kr_queue__succeed_events(c->j, c->a, msg_id, &msg_at, 1, types, o);
	rc = kr_events_append_many(db, c->j->ws_id, types, o, k, NULL);
	for (size_t i = 0; i < k; i++)
		json_object_put(o[i]);
	return rc;
}

enum kr_db_err
kr_queue_succeed(struct kr_db *db, const struct kr_claimed *j, const struct kr_attempt *a,
    enum kr_queue_result *res)
{
	struct succeed_ctx c = { j, a, kr_queue__attempt_cost(db, a) };

	return kr_queue__fenced(db, succeed_body, &c, res);
}

static enum kr_db_err
failed_body(struct kr_db *db, void *arg)
{
	const struct succeed_ctx *c = arg;
	const struct kr_attempt *a = c->a;
	struct kr_dbp p[8] = { KR_P_STR(a->provider), KR_P_STR(a->model), KR_P_STR(a->key_id),
	    KR_P_INT(a->is_fallback), KR_P_STR(a->r->message), KR_P_STR(c->j->id),
	    KR_P_STR(c->j->lease), KR_P_INT(c->j->attempts) };
	struct kr_db_res res;
	enum kr_db_err rc;
	uint64_t n = 0;
	int landed;

	if ((rc = kr_db_exec(db, sql_attempt_counted, p, 8, NULL, &n)) != KR_DB_OK)
		return rc;
	if (n > 0)
		return insert_attempt(db, c->j, a, c->cost, 0);
	if ((rc = kr_db_exec(db, sql_counted, p + 5, 2, &res, NULL)) != KR_DB_OK)
		return rc;
	landed = res.nrows == 1 && kr_db_cell_int(&res, 0, 0, 0) == (long long)c->j->attempts + 1;
	kr_db_res_free(&res);
	return landed ? KR_DB_OK : KR_DB_ABORT;	/* counted already, or the lease is gone */
}

enum kr_db_err
kr_queue_attempt_failed(struct kr_db *db, const struct kr_claimed *j,
    const struct kr_attempt *a, enum kr_queue_result *res)
{
	struct succeed_ctx c = { j, a, kr_queue__attempt_cost(db, a) };

	return kr_queue__fenced(db, failed_body, &c, res);
}

struct end_ctx {
	const struct kr_claimed	*j;
	const char		*error;
	long			 delay_ms;
};

static enum kr_db_err
retry_body(struct kr_db *db, void *arg)
{
	const struct end_ctx *c = arg;
	struct kr_dbp p[4] = { KR_P_INT((long long)c->delay_ms * 1000), KR_P_STR(c->error),
	    KR_P_STR(c->j->id), KR_P_STR(c->j->lease) };
	enum kr_db_err rc;
	uint64_t n = 0;

	if ((rc = kr_db_exec(db, sql_retry_later, p, 4, NULL, &n)) != KR_DB_OK)
		return rc;
	if (n == 0)
		return KR_DB_ABORT;
	return kr_queue__job_event(db, c->j, "job_retrying", "retrying", NULL, c->error, 0);
}

enum kr_db_err
kr_queue_retry_later(struct kr_db *db, const struct kr_claimed *j, long delay_ms,
    const char *error, enum kr_queue_result *res)
{
	struct end_ctx c = { j, error, delay_ms };

	return kr_queue__fenced(db, retry_body, &c, res);
}

enum kr_db_err
kr_queue__fail_in_tx(struct kr_db *db, const struct kr_claimed *j, const char *error)
{
	struct kr_dbp p[3] = { KR_P_STR(error), KR_P_STR(j->id), KR_P_STR(j->lease) };
	enum kr_db_err rc;
	uint64_t n = 0;

	if ((rc = kr_db_exec(db, sql_fail, p, 3, NULL, &n)) != KR_DB_OK)
		return rc;
	if (n == 0)
		return KR_DB_ABORT;
	return kr_queue__job_event(db, j, "job_failed", "failed", NULL, error, 0);
}

static enum kr_db_err
fail_body(struct kr_db *db, void *arg)
{
	const struct end_ctx *c = arg;

	return kr_queue__fail_in_tx(db, c->j, c->error);
}

enum kr_db_err
kr_queue_fail(struct kr_db *db, const struct kr_claimed *j, const char *error,
    enum kr_queue_result *res)
{
	struct end_ctx c = { j, error, 0 };

	return kr_queue__fenced(db, fail_body, &c, res);
}

enum kr_db_err
kr_queue_log_attempt(struct kr_db *db, const struct kr_claimed *j, const struct kr_attempt *a)
{
	return insert_attempt(db, j, a, 0, 1);
}

enum kr_db_err
kr_queue_transient_providers(struct kr_db *db, const char *job_id, unsigned times,
    struct kr_db_res *res)
{
	struct kr_dbp p[2] = { KR_P_STR(job_id), KR_P_INT(times) };

	return kr_db_exec(db, sql_transient, p, 2, res, NULL);
}

enum kr_db_err
kr_queue_history(struct kr_db *db, const struct kr_claimed *j, unsigned max,
    struct kr_db_res *res)
{
	struct kr_dbp p[4] = { KR_P_STR(j->ws_id), KR_P_STR(j->chat_id), KR_P_STR(j->created_at),
	    KR_P_INT(max) };
	enum kr_db_err rc = kr_db_exec(db, sql_history, p, 4, res, NULL);

	/* Oldest first: swap the rows end for end. */
	for (unsigned a = 0, b = res->nrows; rc == KR_DB_OK && a + 1 < b; a++, b--)
		for (unsigned c = 0; c < res->ncols; c++) {
			size_t x = (size_t)a * res->ncols + c, y = (size_t)(b - 1) * res->ncols + c;
			char *cell = res->cells[x];
			size_t len = res->lens[x];
			res->cells[x] = res->cells[y];
			res->lens[x] = res->lens[y];
			res->cells[y] = cell;
			res->lens[y] = len;
		}
	return rc;
}
