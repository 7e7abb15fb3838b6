/*
 * kr_queue's pieces shared by its files: kr_queue.c (claims, single-job changes),
 * kr_queue_batch.c (storing many answers in one transaction) and kr_queue_lease.c (leases:
 * extend, check, hand back, rescue). Not for other modules.
 */
#ifndef KR_QUEUE_INT_H
#define KR_QUEUE_INT_H

#include <stddef.h>

#include <json-c/json.h>

#include "kr_db.h"
#include "kr_queue.h"
#include "kr_time.h"

/*
 * Run body in a transaction (again after deadlocks and lost connections: every change here
 * is fenced on the lease token or a UNIQUE key, so a rerun finds out what landed). A body
 * returns KR_DB_ABORT when the lease is gone: rolled back, and *res says KR_QUEUE_LOST.
 */
enum kr_db_err	kr_queue__fenced(struct kr_db *db, enum kr_db_err (*body)(struct kr_db *, void *),
		    void *arg, enum kr_queue_result *res);
/*
 * Append the job event type of job j (jobId and a JobSnapshot: status, the attempt a's
 * provider, model and key when a is not NULL, error, the attempts counter plus
 * attempts_delta).
 */
enum kr_db_err	kr_queue__job_event(struct kr_db *db, const struct kr_claimed *j,
		    const char *type, const char *status, const struct kr_attempt *a,
		    const char *error, int attempts_delta);
/*
 * Inside a transaction: fail job j, fenced on its lease (KR_DB_ABORT when the lease is
 * gone), with its job_failed event.
 */
enum kr_db_err	kr_queue__fail_in_tx(struct kr_db *db, const struct kr_claimed *j,
		    const char *error);
/*
 * Append n events (ws[i], types[i], payloads[i]) with one kr_events_append_many per
 * workspace; each workspace's events keep their order.
 */
enum kr_db_err	kr_queue__append_grouped(struct kr_db *db, const char *const *ws,
		    const char *const *types, json_object *const *payloads, size_t n);
/*
 * ids[0, n) padded with the last one to the next power of two, after np leading
 * parameters already in p; returns the parameter count.
 */
unsigned	kr_queue__bind_ids(struct kr_dbp *p, unsigned np, const char *const *ids,
		    size_t n);
/* Cost in USD of an attempt from the price table (kr_prices; 0 for unknown models). */
double		kr_queue__attempt_cost(struct kr_db *db, const struct kr_attempt *a);

/*
 * The parameters of a job_attempts row, KR_QUEUE__ATTEMPT_COLS of them in the column order
 * job_id, workspace_id, attempt, provider, key_id, system_key, model, is_fallback,
 * started_at, outcome, http_status, error, input_tokens, output_tokens, cost_usd,
 * latency_ms (finished_at is NOW(3) in the statement). p[2], the attempt number, is left
 * to the caller; cost is the cost in USD as text.
 */
#define KR_QUEUE__ATTEMPT_COLS	16
void		kr_queue__attempt_params(struct kr_dbp *p, const struct kr_claimed *j,
		    const struct kr_attempt *a, const char *cost);

/*
 * The database's clock, as the answer messages store it (db) and as their events show it
 * (rfc3339): the messages take the time of the database, as the questions do, so a chat
 * stays in order whatever the runner's clock says.
 */
struct kr_queue__now {
	char	db[KR_TIME_MAX], rfc3339[KR_TIME_MAX];
};
enum kr_db_err	kr_queue__db_now(struct kr_db *db, struct kr_queue__now *now);

/* The events of a finished job, in their order: message_created (chat jobs), job_succeeded. */
#define KR_QUEUE__SUCCEED_EVENTS	2
/*
 * The events of a succeeded job into types[]/o[] (o[] to be put by the caller); returns
 * how many. The message is the one just inserted (with msg_id at msg_at), built from what
 * is in hand.
 */
size_t		kr_queue__succeed_events(const struct kr_claimed *j,
		    const struct kr_attempt *a, const char *msg_id,
		    const struct kr_queue__now *msg_at, int attempts_delta,
		    const char **types, json_object **o);

#endif
