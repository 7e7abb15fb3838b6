/*
 * kr_queue: the runner's side of the job queue (design.md, "Job lifecycle").
 *
 * A claimed job carries a lease token; every later change of the job by this runner is
 * fenced on that token (WHERE id = ? AND lease_token = ?), so once a lease has been lost
 * (expired and rescued by another runner, or the job cancelled) nothing this runner does
 * to the job lands. No transaction is held while a provider call is in flight: claim and
 * each outcome are short transactions of their own, retried on deadlock or a lost
 * connection.
 */
#ifndef KR_QUEUE_H
#define KR_QUEUE_H

#include <stddef.h>

#include "kr_db.h"
#include "kr_llm.h"
#include "kr_time.h"

struct kr_claimed {
	char	id[KR_UUID_MAX];
	char	ws_id[KR_UUID_MAX];
	char	lease[KR_UUID_MAX];
	char	type[16];
	char	chat_id[KR_UUID_MAX];		/* "" when none */
	char	requested_provider[33];		/* "" when none */
	char	requested_model[129];		/* "" when none */
	char	created_at[KR_TIME_MAX];
	char	*input;				/* malloc'd */
	char	*system_prompt;			/* malloc'd, NULL when none */
	unsigned attempts;			/* provider calls made so far */
	unsigned max_attempts;
	/* A chat job's history (kr_queue_history) when read before its first call. */
	struct kr_db_res history;
	int	 has_history;
};

void	kr_claimed_release(struct kr_claimed *j);

/*
 * Claim up to max (at most KR_DB_ROWS_MAX) due jobs for runner_id with a lease of
 * lease_seconds, skipping jobs of workspaces for which may_take(ws_id, arg) says no
 * (per-workspace caps). The claimed jobs become running under one new lease token (every
 * fence checks id and token together) and each gets a job_started event; a handful of
 * statements and one commit whatever the number. *out is malloc'd.
 */
enum kr_db_err	kr_queue_claim(struct kr_db *db, const char *runner_id, unsigned lease_seconds,
		    unsigned max, int (*may_take)(const char *ws_id, void *arg), void *arg,
		    struct kr_claimed **out, size_t *n);

/* One finished provider call, for the attempts log and the usage rows. */
struct kr_attempt {
	const char		*provider;
	const char		*key_id;	/* NULL for a system key */
	const char		*model;
	int			 is_fallback;
	char			 started_at[KR_TIME_MAX];	/* DATETIME(3) text */
	const struct kr_llm_result *r;
	const char		*outcome;	/* kr_llm_class_name, or "cancelled" */
};

enum kr_queue_result {
	KR_QUEUE_DONE = 0,	/* the change landed */
	KR_QUEUE_LOST,		/* the lease is gone (rescued, cancelled): nothing changed */
};

/*
 * Success: deliver the answer (an `out` message for chat jobs, UNIQUE per job), mark the
 * job succeeded, record the attempt and its usage, queue notifications, append
 * message_created and job_succeeded: one transaction.
 */
enum kr_db_err	kr_queue_succeed(struct kr_db *db, const struct kr_claimed *j,
		    const struct kr_attempt *a, enum kr_queue_result *res);
/*
 * kr_queue_succeed for n jobs (jobs[i] answered with attempts[i]) in ONE transaction of a
 * fixed number of statements (multi-row, whatever n), so one durable commit covers them
 * all. Notifications are only queued for workspaces that have an enabled target (asked
 * once per workspace); the events are appended with one sequence step and insert per
 * workspace. A job whose lease is gone gets KR_QUEUE_LOST in results[i] and changes
 * nothing; the others land. Any other failure (a duplicate answer message included)
 * undoes the whole batch and is returned (results[] are then meaningless): the caller may
 * finish the jobs one by one with kr_queue_succeed.
 */
#define KR_QUEUE_BATCH_MAX	128
enum kr_db_err	kr_queue_succeed_batch(struct kr_db *db, const struct kr_claimed *const *jobs,
		    const struct kr_attempt *const *attempts, size_t n,
		    enum kr_queue_result *results);
/*
 * Record a failed attempt (attempts + 1); the job stays running (the caller tries again).
 * Fenced on j->attempts too: the caller adds one to it after each recorded failure, and a
 * second call with the same count finds the attempt counted already (done, nothing new).
 */
enum kr_db_err	kr_queue_attempt_failed(struct kr_db *db, const struct kr_claimed *j,
		    const struct kr_attempt *a, enum kr_queue_result *res);
/* Give the job back for a later try at delay_ms from now: retrying + job_retrying. */
enum kr_db_err	kr_queue_retry_later(struct kr_db *db, const struct kr_claimed *j, long delay_ms,
		    const char *error, enum kr_queue_result *res);
/* Fail the job with error: failed + job_failed. */
enum kr_db_err	kr_queue_fail(struct kr_db *db, const struct kr_claimed *j, const char *error,
		    enum kr_queue_result *res);
/*
 * Log an attempt whose job is no longer ours (an aborted call): a row in the attempts log
 * numbered after the job's counted attempts; the job itself is not touched.
 */
enum kr_db_err	kr_queue_log_attempt(struct kr_db *db, const struct kr_claimed *j,
		    const struct kr_attempt *a);
/* Hand a job back untouched (shutdown): queued, lease dropped, job_retrying event. */
enum kr_db_err	kr_queue_release(struct kr_db *db, const struct kr_claimed *j);

/*
 * Extend the leases of the n jobs ids[] that this runner still holds. Only the jobs the
 * runner names: a job it lost track of (a failure it could not record) keeps the lease it
 * has, which expires, and the job is rescued.
 */
enum kr_db_err	kr_queue_extend(struct kr_db *db, const char *runner_id,
		    const char *const *ids, size_t n, unsigned lease_seconds);
/*
 * Requeue jobs whose lease expired (their runner died), or fail those whose attempts counter
 * reached maxAttempts already and those lost KR_QUEUE_RESCUES_MAX times in a row (no attempt
 * recorded in between: a job whose call stops every runner that makes it); *rescued gets
 * the count of all.
 */
#define KR_QUEUE_RESCUES_MAX	3
enum kr_db_err	kr_queue_rescue(struct kr_db *db, unsigned max, unsigned *rescued);
/*
 * Which of the n jobs ids[] (claimed under leases[]) the runner still holds: held[i] = 1
 * while job ids[i] is running under this runner and lease leases[i], else 0 (cancelled, or
 * rescued after its lease expired). Looks the jobs up by id, so the cost follows n, not the
 * number of jobs the runner ever ran.
 */
enum kr_db_err	kr_queue_held(struct kr_db *db, const char *runner_id,
		    const char *const *ids, const char *const *leases, size_t n, int *held);
/* Providers that failed transiently at least `times` times in this run of the job (since it
 * was last retried by POST …/retry). */
enum kr_db_err	kr_queue_transient_providers(struct kr_db *db, const char *job_id,
		    unsigned times, struct kr_db_res *res);
/* The chat history of a chat job, oldest first: columns direction, content. */
enum kr_db_err	kr_queue_history(struct kr_db *db, const struct kr_claimed *j, unsigned max,
		    struct kr_db_res *res);

#endif
