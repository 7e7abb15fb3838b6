/*
 * The batch store of kr_queue (kr_queue_succeed_batch): many answers in one transaction,
 * tried first without the fence query (every lease still held is the rule), then fenced.
 */
#include "kr_queue.h"
#include "kr_queue_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kr_log.h"
#include "kr_notify.h"

struct batch_ctx {
	const struct kr_claimed	*const *jobs;
	const struct kr_attempt	*const *attempts;
	const double		*costs;
	size_t			 n;
	enum kr_queue_result	*results;
	int			 fenced;	/* lock and check the leases first */
};

/*
 * notify[i] for every job of the batch: whether its workspace has an enabled notification
 * target, asked once per workspace.
 */
static enum kr_db_err
batch_notify(struct kr_db *db, const struct batch_ctx *b, int *notify)
{
	enum kr_db_err rc;

	for (size_t i = 0; i < b->n; i++) {
		size_t e;
		for (e = 0; e < i && strcmp(b->jobs[e]->ws_id, b->jobs[i]->ws_id) != 0; e++)
			;
		if (e < i) {
			notify[i] = notify[e];
			continue;
		}
		rc = kr_notify_has_targets(db, b->jobs[i]->ws_id, &notify[i]);
		if (rc != KR_DB_OK && rc != KR_DB_ERROR)
			return rc;
	}
	return KR_DB_OK;
}

/* Row statements of the batch; the derived tables carry each job's own values. */
static struct kr_db_rows sql_batch_fence = {
    "SELECT id, lease_token, attempts FROM jobs WHERE status = 'running' AND id IN (?", ",?",
    ") FOR UPDATE", { NULL } };
static struct kr_db_rows sql_batch_messages = {
    "INSERT INTO messages (id, workspace_id, chat_id, direction, sender, content, job_id, "
    "created_at) VALUES (?,?,?,'out',?,?,?,?)", ",(?,?,?,'out',?,?,?,?)", "", { NULL } };
#define MESSAGE_COLS	7
/*
 * The success update of n jobs in one single-table statement. Each job's values are in
 * per-column lists, picked by the job's position in the id list (FIELD): the WHERE checks
 * lease and attempts counter with it, and the SET finds it once more into @kr_i in its
 * first value to pick the rest (ELT): MariaDB evaluates a single-table update's assignments
 * left to right. The update walks the primary key, which it does not change, so MariaDB
 * applies each row's SET as it meets the row. (A join with a derived table of the values
 * did the same, but MariaDB's multi-table update carries the new values through temporary
 * tables, created and dropped on disk for each statement.)
 */
enum { L_SETIDS, L_RESULT, L_PROVIDER, L_MODEL, L_KEY, L_FB, L_TIN, L_TOUT, L_COST, L_IDS,
    L_FIELD, L_FENCE, L__N };
static const char *const succeed_parts[L__N + 1] = {
    "UPDATE jobs FORCE INDEX (PRIMARY) SET status = 'succeeded', "
    "result = ELT(@kr_i := FIELD(id",
    ")",
    "), error = NULL, finished_at = NOW(3), delivered_at = NOW(3), provider = ELT(@kr_i",
    "), model = ELT(@kr_i",
    "), key_id = ELT(@kr_i",
    "), used_fallback = ELT(@kr_i",
    "), attempts = attempts + 1, input_tokens = input_tokens + CAST(ELT(@kr_i",
    ") AS SIGNED), output_tokens = output_tokens + CAST(ELT(@kr_i",
    ") AS SIGNED), cost_usd = cost_usd + CAST(ELT(@kr_i",
    ") AS DECIMAL(14,6)), lease_token = NULL, updated_at = NOW(3) WHERE id IN (",
    ") AND status = 'running' AND CONCAT(lease_token, '/', attempts) = ELT(FIELD(id",
    ")",
    ")" };
static char *succeed_text[8];		/* by log2(n), built once */

/* The parts with n placeholders in each list. */
static char *
succeed_build(const void *arg, size_t n)
{
	size_t len = 1;
	char *t, *p;

	(void)arg;
	for (size_t l = 0; l <= L__N; l++)
		len += strlen(succeed_parts[l]) + 2 * n;
	if ((t = p = malloc(len)) == NULL)
		return NULL;
	for (size_t l = 0; l < L__N; l++) {
		p = stpcpy(p, succeed_parts[l]);
		for (size_t i = 0; i < n; i++)
			p = stpcpy(p, l == L_IDS && i == 0 ? "?" : ",?");
	}
	stpcpy(p, succeed_parts[L__N]);
	return t;
}
/* The attempt's number: the job's attempts counter before the update (batch_rows), plus one. */
static struct kr_db_rows sql_batch_attempts = {
    "INSERT INTO job_attempts (job_id, workspace_id, attempt, provider, key_id, system_key, "
    "model, is_fallback, started_at, finished_at, outcome, http_status, error, input_tokens, "
    "output_tokens, cost_usd, latency_ms) VALUES (?,?,?,?,?,?,?,?,?,NOW(3),?,?,?,?,?,?,?)",
    ",(?,?,?,?,?,?,?,?,?,NOW(3),?,?,?,?,?,?,?)", "", { NULL } };

/* The jobs of the batch still held (held[] indexes into b->jobs) and their texts. */
struct batch_rows {
	const struct batch_ctx	*b;
	size_t			 held[KR_QUEUE_BATCH_MAX], n;
	size_t			 chat[KR_QUEUE_BATCH_MAX], nchat;	/* indexes into held */
	size_t			 by_id[KR_QUEUE_BATCH_MAX];	/* held, in job id order */
	unsigned		 attempts[KR_QUEUE_BATCH_MAX];	/* the counter before */
	char			 msg_id[KR_QUEUE_BATCH_MAX][KR_UUID_MAX];
	char			 cost[KR_QUEUE_BATCH_MAX][32];
	char			 fence[KR_QUEUE_BATCH_MAX][KR_UUID_MAX + 16];	/* "lease/attempts" */
	struct kr_queue__now	 msg_at;	/* the answer messages' time */
};

static long long
tokens(long long t)
{
	return t > 0 ? t : 0;
}

static void
message_row(void *arg, size_t i, struct kr_dbp *p)
{
	struct batch_rows *br = arg;
	size_t h = br->chat[i];
	const struct kr_claimed *j = br->b->jobs[br->held[h]];
	const struct kr_attempt *a = br->b->attempts[br->held[h]];

	p[0] = KR_P_STR(br->msg_id[h]);
	p[1] = KR_P_STR(j->ws_id);
	p[2] = KR_P_STR(j->chat_id);
	p[3] = KR_P_STR(a->model);
	p[4] = KR_P_STR(a->r->text != NULL ? a->r->text : "");
	p[5] = KR_P_STR(j->id);
	p[6] = KR_P_STR(br->msg_at.db);
}

/* Held job i's value for list l (in job id order: rows are locked in primary key order). */
static struct kr_dbp
succeed_param(const struct batch_rows *br, size_t i, int l)
{
	size_t h = br->by_id[i];
	const struct kr_claimed *j = br->b->jobs[br->held[h]];
	const struct kr_attempt *a = br->b->attempts[br->held[h]];

	switch (l) {
	case L_RESULT:		return KR_P_STR(a->r->text != NULL ? a->r->text : "");
	case L_PROVIDER:	return KR_P_STR(a->provider);
	case L_MODEL:		return KR_P_STR(a->model);
	case L_KEY:		return KR_P_STR(a->key_id);
	case L_FB:		return KR_P_INT(a->is_fallback);
	case L_TIN:		return KR_P_INT(tokens(a->r->input_tokens));
	case L_TOUT:		return KR_P_INT(tokens(a->r->output_tokens));
	case L_COST:		return KR_P_STR(br->cost[h]);
	case L_FENCE:		return KR_P_STR(br->fence[h]);
	default:		return KR_P_STR(j->id);	/* L_SETIDS, L_IDS, L_FIELD */
	}
}

/* The success update of the held jobs, in power-of-two chunks; *changed: rows changed. */
static enum kr_db_err
exec_succeed(struct kr_db *db, const struct batch_rows *br, uint64_t *changed)
{
	struct kr_dbp *p = calloc(L__N * kr_db_rows_chunk(br->n), sizeof(*p));
	enum kr_db_err rc = p != NULL ? KR_DB_OK : KR_DB_ERROR;
	const char *sql;
	uint64_t one;

	*changed = 0;
	for (size_t done = 0, k; done < br->n && rc == KR_DB_OK; done += k) {
		unsigned np = 0;
		k = kr_db_rows_chunk(br->n - done);
		for (int l = 0; l < L__N; l++)
			for (size_t i = 0; i < k; i++)
				p[np++] = succeed_param(br, done + i, l);
		one = 0;
		rc = (sql = kr_db_sized_sql(succeed_text, k, succeed_build, NULL)) != NULL ?
		    kr_db_exec(db, sql, p, np, NULL, &one) : KR_DB_ERROR;
		*changed += one;
	}
	free(p);
	return rc;
}

static void
attempt_row(void *arg, size_t i, struct kr_dbp *p)
{
	struct batch_rows *br = arg;

	kr_queue__attempt_params(p, br->b->jobs[br->held[i]], br->b->attempts[br->held[i]],
	    br->cost[i]);
	p[2] = KR_P_INT((long long)br->attempts[i] + 1);
}

/*
 * Keep job i of the batch, its attempts counter as it stands: its cost as text and, for a
 * chat job, a new message id.
 */
static void
hold(struct batch_rows *br, size_t i, unsigned attempts)
{
	const struct kr_claimed *j = br->b->jobs[i];

	br->attempts[br->n] = attempts;
	snprintf(br->cost[br->n], sizeof(br->cost[0]), "%.6f", br->b->costs[i]);
	snprintf(br->fence[br->n], sizeof(br->fence[0]), "%s/%u", j->lease, attempts);
	br->msg_id[br->n][0] = '\0';
	if (j->chat_id[0] != '\0') {
		kr_uuid_new(br->msg_id[br->n]);
		br->chat[br->nchat++] = br->n;
	}
	br->held[br->n++] = i;
}

struct id_ref {
	const char	*id;
	size_t		 h;
};

static int
id_ref_cmp(const void *x, const void *y)
{
	return strcmp(((const struct id_ref *)x)->id, ((const struct id_ref *)y)->id);
}

/* br->by_id: the held jobs in the order of their ids. */
static void
order_by_id(struct batch_rows *br)
{
	struct id_ref refs[KR_QUEUE_BATCH_MAX];

	for (size_t h = 0; h < br->n; h++)
		refs[h] = (struct id_ref){ br->b->jobs[br->held[h]]->id, h };
	qsort(refs, br->n, sizeof(refs[0]), id_ref_cmp);
	for (size_t h = 0; h < br->n; h++)
		br->by_id[h] = refs[h].h;
}

/*
 * The jobs of the batch to store. Fenced: lock their rows and keep those whose lease is
 * still this runner's, with their attempts counter as the database has it. Otherwise all
 * of them, with the counter as this runner knows it (the calls made under the lease); the
 * update then checks lease and counter, and that it changed every job.
 */
static enum kr_db_err
batch_hold(struct kr_db *db, struct batch_rows *br)
{
	const struct batch_ctx *b = br->b;
	const char *ids[KR_QUEUE_BATCH_MAX];
	struct kr_dbp p[KR_DB_ROWS_MAX];
	struct kr_db_res res;
	enum kr_db_err rc;
	unsigned np;

	br->n = br->nchat = 0;
	if (!b->fenced) {
		for (size_t i = 0; i < b->n; i++)
			hold(br, i, b->jobs[i]->attempts);
		order_by_id(br);
		return KR_DB_OK;
	}
	for (size_t i = 0; i < b->n; i++)
		ids[i] = b->jobs[i]->id;
	np = kr_queue__bind_ids(p, 0, ids, b->n);
	if ((rc = kr_db_exec(db, kr_db_rows_sql(&sql_batch_fence, kr_db_rows_fit(b->n)), p, np,
	    &res, NULL)) != KR_DB_OK)
		return rc;
	for (size_t i = 0; i < b->n; i++) {
		const struct kr_claimed *j = b->jobs[i];
		unsigned r;
		for (r = 0; r < res.nrows; r++)
			if (strcmp(kr_db_cell(&res, r, 0), j->id) == 0)
				break;
		if (r < res.nrows && kr_db_cell(&res, r, 1) != NULL &&
		    strcmp(kr_db_cell(&res, r, 1), j->lease) == 0)
			hold(br, i, (unsigned)kr_db_cell_int(&res, r, 2, 0));
	}
	kr_db_res_free(&res);
	order_by_id(br);
	return KR_DB_OK;
}

/*
 * The batch in a fixed number of statements: mark the jobs succeeded (only where the lease
 * is still this runner's), insert the answer messages (chat jobs) and the attempts, queue
 * notifications, append the events (one sequence step and insert per workspace, in the
 * jobs' order).
 *
 * Not fenced (the first try): when the update did not change every job, a lease is gone
 * or a job's attempts counter is not what this runner counted (a recorded failure whose
 * commit landed twice): KR_DB_ABORT, and the caller runs the batch again fenced. Fenced:
 * the rows are locked first, a job whose lease is gone is left out (KR_QUEUE_LOST), and
 * the attempts are numbered from the database's counter; the update can then miss a job
 * only when one is in the batch twice, which fails the whole batch. So does a duplicate
 * answer message (delivered already, which the leases should make impossible): the caller
 * then stores the jobs one by one, where either is recognised. Any failure leaves the
 * transaction to kr_db_tx.
 */
static enum kr_db_err
batch_body(struct kr_db *db, void *arg)
{
	const struct batch_ctx *b = arg;
	const char *ws[KR_QUEUE_BATCH_MAX * KR_QUEUE__SUCCEED_EVENTS] = { NULL };
	const char *types[KR_QUEUE_BATCH_MAX * KR_QUEUE__SUCCEED_EVENTS] = { NULL };
	json_object *o[KR_QUEUE_BATCH_MAX * KR_QUEUE__SUCCEED_EVENTS] = { NULL };
	int notify[KR_QUEUE_BATCH_MAX];
	struct batch_rows *br = calloc(1, sizeof(*br));
	enum kr_db_err rc = KR_DB_ERROR;
	uint64_t changed = 0;
	size_t ne = 0;

	for (size_t i = 0; i < b->n; i++)
		b->results[i] = KR_QUEUE_LOST;
	if (br == NULL)
		return KR_DB_ERROR;
	br->b = b;
	if ((rc = batch_notify(db, b, notify)) != KR_DB_OK ||
	    (rc = batch_hold(db, br)) != KR_DB_OK || br->n == 0)
		goto out;
	if ((rc = exec_succeed(db, br, &changed)) != KR_DB_OK)
		goto out;
	if (changed != br->n) {
		if (b->fenced)
			kr_warn("a batch of answers changed %llu of %zu jobs; storing them one by "
			    "one", (unsigned long long)changed, br->n);
		rc = b->fenced ? KR_DB_ERROR : KR_DB_ABORT;
		goto out;
	}
	if ((br->nchat > 0 && ((rc = kr_queue__db_now(db, &br->msg_at)) != KR_DB_OK ||
	    (rc = kr_db_exec_rows(db, &sql_batch_messages, MESSAGE_COLS, br->nchat, message_row,
	    br, NULL)) != KR_DB_OK)) ||
	    (rc = kr_db_exec_rows(db, &sql_batch_attempts, KR_QUEUE__ATTEMPT_COLS, br->n,
	    attempt_row, br, NULL)) != KR_DB_OK)
		goto out;
	for (size_t h = 0; h < br->n; h++) {
		const struct kr_claimed *j = b->jobs[br->held[h]];
		const struct kr_attempt *a = b->attempts[br->held[h]];
		size_t k;

		/* Telegram and the like: queued here, sent on their own. */
		if (notify[br->held[h]] && (rc = kr_notify_enqueue(db, j->ws_id, j->id,
		    a->r->text != NULL ? a->r->text : "")) != KR_DB_OK && rc != KR_DB_ERROR)
			goto out;
		/* The counter as the update left it (the fence may have read another). */
		k = kr_queue__succeed_events(j, a, br->msg_id[h], &br->msg_at,
		    (int)br->attempts[h] + 1 - (int)j->attempts, &types[ne], &o[ne]);
		for (size_t e = 0; e < k; e++)
			ws[ne + e] = j->ws_id;
		ne += k;
	}
	if ((rc = kr_queue__append_grouped(db, ws, types, o, ne)) == KR_DB_OK)
		for (size_t h = 0; h < br->n; h++)
			b->results[br->held[h]] = KR_QUEUE_DONE;
out:
	for (size_t e = 0; e < ne; e++)
		json_object_put(o[e]);
	free(br);
	return rc;
}

enum kr_db_err
kr_queue_succeed_batch(struct kr_db *db, const struct kr_claimed *const *jobs,
    const struct kr_attempt *const *attempts, size_t n, enum kr_queue_result *results)
{
	double costs[KR_QUEUE_BATCH_MAX];
	struct batch_ctx b = { jobs, attempts, costs, n, results, 0 };
	enum kr_db_err rc;

	if (n == 0)
		return KR_DB_OK;
	if (n == 1)
		return kr_queue_succeed(db, jobs[0], attempts[0], &results[0]);
	if (n > KR_QUEUE_BATCH_MAX)
		return KR_DB_ERROR;
	for (size_t i = 0; i < n; i++)
		costs[i] = kr_queue__attempt_cost(db, attempts[i]);
	/* Every lease still held is the rule: try without the fence first. */
	if ((rc = kr_db_tx(db, batch_body, &b, 1)) == KR_DB_ABORT) {
		b.fenced = 1;
		rc = kr_db_tx(db, batch_body, &b, 1);
	}
	return rc == KR_DB_ABORT || rc == KR_DB_DUPLICATE ? KR_DB_ERROR : rc;
}
