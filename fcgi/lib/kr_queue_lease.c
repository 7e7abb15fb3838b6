/*
 * Leases: a runner extends those of the jobs it flies, checks which it still holds, hands
 * a job back when it stops; any runner requeues the jobs whose lease expired.
 */
#include "kr_queue.h"
#include "kr_queue_int.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kr_db.h"
#include "kr_log.h"

/* A job queued again, fenced on its lease: handed back by its runner (0), or rescued (1). */
static const char sql_requeue[] =
    "UPDATE jobs SET status = 'queued', lease_token = NULL, runner_id = NULL, "
    "lease_expires_at = NULL, run_at = NOW(3), updated_at = NOW(3), rescues = rescues + ? "
    "WHERE id = ? AND lease_token = ? AND status = 'running'";
/* The jobs the runner names, as one IN list padded to a power of two. */
static struct kr_db_rows sql_extend = {
    "UPDATE jobs SET lease_expires_at = NOW(3) + INTERVAL ? SECOND "
    "WHERE runner_id = ? AND status = 'running' AND id IN (?", ",?", ")", { NULL } };
/* Running jobs whose lease expired: a range of jobs_stage (stage 2, rank 0, due_at past). */
static const char sql_expired[] =
    "SELECT id, workspace_id, lease_token, type, COALESCE(chat_id, ''), attempts, "
    "max_attempts, rescues FROM jobs WHERE stage = 2 AND queue_rank = 0 AND due_at < NOW(3) "
    "LIMIT ? FOR UPDATE SKIP LOCKED";
/* Which of the jobs the runner names it still holds, as one IN list padded to a power of two. */
static struct kr_db_rows sql_held = {
    "SELECT id, lease_token FROM jobs WHERE runner_id = ? AND status = 'running' AND id IN (?",
    ",?", ")", { NULL } };

static enum kr_db_err
release_body(struct kr_db *db, void *arg)
{
	const struct kr_claimed *j = arg;
	struct kr_dbp p[3] = { KR_P_INT(0), KR_P_STR(j->id), KR_P_STR(j->lease) };
	enum kr_db_err rc;
	uint64_t n = 0;

	if ((rc = kr_db_exec(db, sql_requeue, p, 3, NULL, &n)) != KR_DB_OK)
		return rc;
	if (n == 0)
		return KR_DB_ABORT;
	return kr_queue__job_event(db, j, "job_retrying", "queued", NULL,
	    "its runner stopped before answering; queued again", 0);
}

enum kr_db_err
kr_queue_release(struct kr_db *db, const struct kr_claimed *j)
{
	enum kr_queue_result res;

	return kr_queue__fenced(db, release_body, (void *)(uintptr_t)j, &res);
}

enum kr_db_err
kr_queue_extend(struct kr_db *db, const char *runner_id, const char *const *ids, size_t n,
    unsigned lease_seconds)
{
	struct kr_dbp p[2 + KR_DB_ROWS_MAX];
	enum kr_db_err rc = KR_DB_OK;
	const char *sql;
	unsigned np;

	p[0] = KR_P_INT(lease_seconds);
	p[1] = KR_P_STR(runner_id);
	for (size_t done = 0, k; done < n && rc == KR_DB_OK; done += k) {
		k = n - done < KR_DB_ROWS_MAX ? n - done : KR_DB_ROWS_MAX;
		np = kr_queue__bind_ids(p, 2, ids + done, k);
		rc = (sql = kr_db_rows_sql(&sql_extend, kr_db_rows_fit(k))) != NULL ?
		    kr_db_exec(db, sql, p, np, NULL, NULL) : KR_DB_ERROR;
	}
	return rc;
}

/*
 * Why a job whose lease expired is failed rather than queued again, or NULL: its runner
 * died after counting the last attempt and before failing it (another call would go past
 * maxAttempts), or it was lost in KR_QUEUE_RESCUES_MAX runs in a row (its call stops
 * runners: every job a dying runner held counts one, those it had not called yet too).
 */
_Static_assert(KR_QUEUE_RESCUES_MAX == 3, "rescue_verdict's message says 3");

static const char *
rescue_verdict(const struct kr_claimed *j, long long rescues)
{
	if (j->attempts >= j->max_attempts)
		return "its runner stopped after the last attempt (maxAttempts)";
	if (rescues + 1 >= KR_QUEUE_RESCUES_MAX)
		return "its runner stopped answering in 3 runs in a row; not run again, so that it "
		    "stops no more runners";
	return NULL;
}

struct rescue_ctx {
	unsigned	max, rescued;
};

static enum kr_db_err
rescue_body(struct kr_db *db, void *arg)
{
	struct rescue_ctx *c = arg;
	struct kr_dbp p[3] = { KR_P_INT(c->max) };
	struct kr_db_res rows;
	enum kr_db_err rc;

	c->rescued = 0;
	if ((rc = kr_db_exec(db, sql_expired, p, 1, &rows, NULL)) != KR_DB_OK)
		return rc;
	for (unsigned r = 0; r < rows.nrows && rc == KR_DB_OK; r++) {
		struct kr_claimed j;
		long long rescues = kr_db_cell_int(&rows, r, 7, 0);
		const char *why;
		memset(&j, 0, sizeof(j));
		snprintf(j.id, sizeof(j.id), "%s", kr_db_cell(&rows, r, 0));
		snprintf(j.ws_id, sizeof(j.ws_id), "%s", kr_db_cell(&rows, r, 1));
		snprintf(j.type, sizeof(j.type), "%s", kr_db_cell(&rows, r, 3));
		snprintf(j.chat_id, sizeof(j.chat_id), "%s", kr_db_cell(&rows, r, 4));
		j.attempts = (unsigned)kr_db_cell_int(&rows, r, 5, 0);
		j.max_attempts = (unsigned)kr_db_cell_int(&rows, r, 6, 5);
		snprintf(j.lease, sizeof(j.lease), "%s", kr_db_cell(&rows, r, 2));
		c->rescued++;
		why = rescue_verdict(&j, rescues);
		if (why != NULL) {
			kr_info("job %s failed: %s", j.id, why);
			if ((rc = kr_queue__fail_in_tx(db, &j, why)) == KR_DB_ABORT)
				rc = KR_DB_OK;	/* locked above: cannot happen */
			continue;
		}
		p[0] = KR_P_INT(1);
		p[1] = KR_P_STR(j.id);
		p[2] = KR_P_STR(j.lease);
		if ((rc = kr_db_exec(db, sql_requeue, p, 3, NULL, NULL)) == KR_DB_OK)
			rc = kr_queue__job_event(db, &j, "job_retrying", "queued", NULL,
			    "its runner stopped answering; queued again", 0);
	}
	kr_db_res_free(&rows);
	return rc;
}

enum kr_db_err
kr_queue_rescue(struct kr_db *db, unsigned max, unsigned *rescued)
{
	struct rescue_ctx c = { max, 0 };
	enum kr_queue_result res;
	enum kr_db_err rc = kr_queue__fenced(db, rescue_body, &c, &res);

	*rescued = rc == KR_DB_OK ? c.rescued : 0;
	return rc;
}

/* held[0, n) of ids[0, n): whether the rows of res name each job with its lease. */
static void
mark_held(const struct kr_db_res *res, const char *const *ids, const char *const *leases,
    size_t n, int *held)
{
	for (unsigned r = 0; r < res->nrows; r++) {
		const char *id = kr_db_cell(res, r, 0), *lease = kr_db_cell(res, r, 1);
		/* Every match: a job rescued and claimed again may be here twice. */
		for (size_t i = 0; i < n; i++)
			if (strcmp(ids[i], id) == 0)
				held[i] = lease != NULL && strcmp(leases[i], lease) == 0;
	}
}

enum kr_db_err
kr_queue_held(struct kr_db *db, const char *runner_id, const char *const *ids,
    const char *const *leases, size_t n, int *held)
{
	struct kr_dbp p[1 + KR_DB_ROWS_MAX];
	enum kr_db_err rc = KR_DB_OK;
	struct kr_db_res res;
	const char *sql;
	unsigned np;

	p[0] = KR_P_STR(runner_id);
	for (size_t done = 0, k; done < n && rc == KR_DB_OK; done += k) {
		k = n - done < KR_DB_ROWS_MAX ? n - done : KR_DB_ROWS_MAX;
		for (size_t i = 0; i < k; i++)
			held[done + i] = 0;
		np = kr_queue__bind_ids(p, 1, ids + done, k);
		if ((sql = kr_db_rows_sql(&sql_held, kr_db_rows_fit(k))) == NULL)
			return KR_DB_ERROR;
		if ((rc = kr_db_exec(db, sql, p, np, &res, NULL)) == KR_DB_OK) {
			mark_held(&res, ids + done, leases + done, k, held + done);
			kr_db_res_free(&res);
		}
	}
	return rc;
}
