/*
 * kr_schedules: the cron schedules of a workspace (table schedules) and the runner's side
 * of them, firing (design.md, "Job lifecycle": schedules).
 *
 * A schedule is a 5-field cron expression in an IANA time zone (kr_cron.h) that makes a job
 * of type "scheduled" at each slot. next_run_at always holds the next slot (UTC) while the
 * schedule is enabled and NULL while it is disabled, or when the expression never fires
 * again. The API computes it from the database clock when a schedule is created, enabled,
 * or its cron or time zone changes; the runner computes it from the slot it just fired.
 *
 * Every function taking a ws_id filters on it; the runner's kr_schedules_fire_due works
 * across workspaces.
 */
#ifndef KR_SCHEDULES_H
#define KR_SCHEDULES_H

#include <stddef.h>
#include <time.h>

#include "kr_db.h"
#include "kr_time.h"

#define KR_SCHED_DESC_MAX	500	/* characters of description */
#define KR_SCHED_CRON_MAX	200	/* bytes of the cron expression */
#define KR_SCHED_TZ_MAX		64	/* bytes of the time zone name */
#define KR_SCHED_MSG_MAX	256	/* an error message for the caller */
#define KR_SCHED_MAX_ATTEMPTS	5	/* max_attempts of the jobs a schedule makes */

enum kr_sched_err {
	KR_SCHED_OK = 0,
	KR_SCHED_NOTFOUND,	/* no such schedule in this workspace */
	KR_SCHED_BAD_CRON,	/* msg says why (kr_cron_parse's message) */
	KR_SCHED_BAD_TZ,	/* unknown time zone */
	KR_SCHED_NEVER,		/* the expression has no slot within the next years */
	KR_SCHED_BAD_CHAT,	/* chat_id is not a chat of the workspace */
	KR_SCHED_DB,		/* see db_rc */
};

/* The columns of every schedule row, in this order, for views. */
enum kr_sched_col {
	KR_SC_ID, KR_SC_DESCRIPTION, KR_SC_CRON, KR_SC_TIMEZONE, KR_SC_INPUT, KR_SC_CHAT_ID,
	KR_SC_SYSTEM_PROMPT, KR_SC_ENABLED, KR_SC_NEXT_RUN_AT, KR_SC_LAST_RUN_AT,
	KR_SC_CREATED_AT, KR_SC_UPDATED_AT, KR_SC__MAX
};

/*
 * Fields of a create (every has_ flag set) or a PATCH (only the given ones). A NULL chat_id
 * or system_prompt with its has_ flag set clears it.
 */
struct kr_sched_in {
	int		 has_description, has_cron, has_timezone, has_input, has_chat_id,
			 has_system_prompt, has_enabled;
	const char	*description;
	const char	*cron;
	const char	*timezone;
	const char	*input;
	const char	*chat_id;
	const char	*system_prompt;
	int		 enabled;
};

/*
 * Check cron and tz as the API does: KR_SCHED_OK, or BAD_CRON / BAD_TZ with msg set to a
 * sentence naming what is wrong. Pure; no database.
 */
enum kr_sched_err kr_sched_check(const char *cron, const char *tz, char *msg, size_t msglen);

/*
 * The slot to fire after the one at prev (UTC seconds) of cron in tz: the first slot after
 * prev, unless that is not after now (the runner was down), then the first slot after now,
 * so that downtime costs one catch-up fire and not a burst. -1 when there is none (or
 * cron does not parse).
 */
time_t		 kr_sched_next_slot(const char *cron, const char *tz, time_t prev, time_t now);

/*
 * The workspace's schedules, newest first (created_at, id): at most limit rows after the
 * schedule before (NULL: from the newest). *found is 0 (and res empty) when before is not
 * a schedule of the workspace.
 */
enum kr_db_err	 kr_schedules_list(struct kr_db *db, const char *ws_id, const char *before,
		    unsigned limit, struct kr_db_res *res, int *found);
/* One schedule; res.nrows is 0 when there is none in this workspace. */
enum kr_db_err	 kr_schedules_get(struct kr_db *db, const char *ws_id, const char *id,
		    struct kr_db_res *res);

/*
 * Create a schedule from in (every field read; chat_id and system_prompt may be NULL).
 * id must have room for KR_UUID_MAX. msg gets the reason of BAD_CRON, BAD_TZ and NEVER.
 */
enum kr_sched_err kr_schedules_create(struct kr_db *db, const char *ws_id,
		    const struct kr_sched_in *in, char id[KR_UUID_MAX], char *msg, size_t msglen,
		    enum kr_db_err *db_rc);
/*
 * Change the given fields in one transaction (retried on deadlock). next_run_at is
 * computed again from now when the schedule gets enabled or its cron or time zone changes,
 * and cleared when it gets disabled; otherwise it stays.
 */
enum kr_sched_err kr_schedules_update(struct kr_db *db, const char *ws_id, const char *id,
		    const struct kr_sched_in *in, char *msg, size_t msglen, enum kr_db_err *db_rc);
enum kr_sched_err kr_schedules_delete(struct kr_db *db, const char *ws_id, const char *id,
		    enum kr_db_err *db_rc);

/*
 * The runner's part, called about once a second by every runner: fire at most max due
 * schedules (enabled, next_run_at <= NOW(3)), each in its own short READ COMMITTED
 * transaction: lock it (FOR UPDATE SKIP LOCKED on schedules_due, so runners never wait
 * for each other), create its job (kr_job_create: type "scheduled", the schedule's input,
 * chat and system prompt, max_attempts KR_SCHED_MAX_ATTEMPTS), record the slot in
 * schedule_fires (its primary key refuses a second fire of one slot: the transaction is
 * rolled back and the slot skipped), set last_run_at to the slot and next_run_at to
 * kr_sched_next_slot(slot, now), commit. A schedule whose job cannot be made (bad data)
 * skips the slot, with a warning, so it cannot block the others. *fired gets the number of
 * jobs made. KR_DB_RETRY or KR_DB_DOWN: try again on the next call.
 */
enum kr_db_err	 kr_schedules_fire_due(struct kr_db *db, unsigned max, unsigned *fired);

#endif
