/*
 * kr_jobs: jobs as the API sees them: create (with idempotency), read, list, cancel, retry,
 * and their JSON shape. The runner's side of the queue (claim, finish, rescue) is
 * kr_queue.h. Every function filters on the caller's workspace id, and every change
 * appends its event (kr_events) in the same transaction.
 */
#ifndef KR_JOBS_H
#define KR_JOBS_H

#include <json-c/json.h>

#include "kr_db.h"
#include "kr_time.h"

#define KR_JOB_INPUT_MAX	(256 * 1024)	/* bytes of input or system prompt */
#define KR_JOB_MAX_ATTEMPTS	20

struct kr_job_new {
	const char	*type;		/* "chat", "task" or "scheduled" */
	const char	*input;
	const char	*chat_id;	/* NULL: none (must be a chat of the workspace) */
	const char	*system_prompt;	/* NULL: none */
	const char	*schedule_id;	/* NULL: none */
	const char	*provider;	/* requested provider id, NULL: the workspace's */
	const char	*model;		/* requested model, NULL: the workspace's */
	unsigned	 max_attempts;	/* 1..KR_JOB_MAX_ATTEMPTS */
	const char	*run_at;	/* DATETIME(3) text, NULL: now */
	int		 priority;
	const char	*idempotency_key;	/* NULL: none */
	const char	*created_by;	/* e-mail or token name, for display */
};

/*
 * Insert a job and its job_queued event in one transaction (or inside the caller's when
 * in_tx). With an idempotency key already used in the workspace, nothing is inserted and
 * *existing is 1 with id set to that job. id must have room for KR_UUID_MAX.
 */
enum kr_db_err	kr_job_create(struct kr_db *db, const char *ws_id, const struct kr_job_new *j,
		    int in_tx, char id[KR_UUID_MAX], int *existing);

/* The job as api.md shows it (with "attemptsLog" when detail), or NULL when not found. */
enum kr_db_err	kr_job_json(struct kr_db *db, const char *ws_id, const char *id, int detail,
		    json_object **out);

struct kr_job_filter {
	const char	*status;	/* NULL: any */
	const char	*chat_id;
	const char	*schedule_id;
	const char	*before;	/* cursor: a job id; NULL: from the newest */
	unsigned	 limit;
};
/*
 * {"jobs":[...], "nextCursor"}: newest first, at most limit, nextCursor the id to pass as
 * before for the next page (null at the end). *out is NULL when before is not a job of the
 * workspace.
 */
enum kr_db_err	kr_job_list_json(struct kr_db *db, const char *ws_id,
		    const struct kr_job_filter *f, json_object **out);

enum kr_job_change {
	KR_JOB_CHANGED = 0,
	KR_JOB_NOTFOUND,
	KR_JOB_WRONG_STATE,	/* e.g. retry of a job that has not failed */
};
/*
 * Cancel a queued, retrying or running job: status cancelled, lease dropped (a runner
 * holding it sees that and aborts its call), job_cancelled event.
 */
enum kr_db_err	kr_job_cancel(struct kr_db *db, const char *ws_id, const char *id,
		    enum kr_job_change *result);
/* Queue a failed or cancelled job again (attempts start over), job_queued event. */
enum kr_db_err	kr_job_retry(struct kr_db *db, const char *ws_id, const char *id,
		    enum kr_job_change *result);


#endif
