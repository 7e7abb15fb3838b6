#include "kr_schedules.h"

#include <stdio.h>
#include <string.h>

#include "kr_cron.h"
#include "kr_jobs.h"
#include "kr_log.h"

#define N(a)		((unsigned)(sizeof(a) / sizeof((a)[0])))
#define CREATED_BY	"schedule"


#define SCHED_COLUMNS \
    "id, description, cron, timezone, input, chat_id, system_prompt, enabled, next_run_at, " \
    "last_run_at, created_at, updated_at"

static const char sql_list[] =
    "SELECT " SCHED_COLUMNS " FROM schedules WHERE workspace_id = ? "
    "AND (? IS NULL OR created_at < ? OR (created_at = ? AND id < ?)) "
    "ORDER BY created_at DESC, id DESC LIMIT ?";
static const char sql_cursor[] =
    "SELECT created_at FROM schedules WHERE workspace_id = ? AND id = ?";
static const char sql_get[] =
    "SELECT " SCHED_COLUMNS " FROM schedules WHERE workspace_id = ? AND id = ?";
/* The database clock (whole seconds) and whether a chat (NULL: none) is the workspace's. */
static const char sql_now_chat[] =
    "SELECT UNIX_TIMESTAMP(), ? IS NULL OR "
    "EXISTS (SELECT 1 FROM chats WHERE workspace_id = ? AND id = ?)";
static const char sql_insert[] =
    "INSERT INTO schedules (id, workspace_id, description, cron, timezone, input, chat_id, "
    "system_prompt, enabled, next_run_at) VALUES (?,?,?,?,?,?,?,?,?,FROM_UNIXTIME(?))";
static const char sql_lock[] =
    "SELECT cron, timezone, enabled FROM schedules WHERE workspace_id = ? AND id = ? "
    "FOR UPDATE";
static const char sql_update[] =
    "UPDATE schedules SET description = IF(?, ?, description), cron = IF(?, ?, cron), "
    "timezone = IF(?, ?, timezone), input = IF(?, ?, input), chat_id = IF(?, ?, chat_id), "
    "system_prompt = IF(?, ?, system_prompt), enabled = ?, "
    "next_run_at = IF(?, FROM_UNIXTIME(?), next_run_at), updated_at = NOW(3) "
    "WHERE workspace_id = ? AND id = ?";
static const char sql_delete[] = "DELETE FROM schedules WHERE workspace_id = ? AND id = ?";

/* The runner's statements: the due index schedules_due (enabled, next_run_at) is walked. */
static const char sql_due[] =
    "SELECT id, workspace_id, cron, timezone, input, chat_id, system_prompt, next_run_at, "
    "FLOOR(UNIX_TIMESTAMP(next_run_at)), UNIX_TIMESTAMP() FROM schedules "
    "WHERE enabled = 1 AND next_run_at <= NOW(3) ORDER BY next_run_at LIMIT 1 "
    "FOR UPDATE SKIP LOCKED";
static const char sql_fire[] =
    "INSERT INTO schedule_fires (schedule_id, fire_time, job_id) VALUES (?,?,?)";
/*
 * Fenced on the slot read and on its being due: the row lock of the due query is the first
 * guard, this compare-and-set the second, so a slot fires once even if a read under
 * SKIP LOCKED ever returned a row version other than the one its WHERE matched.
 */
static const char sql_fired[] =
    "UPDATE schedules SET last_run_at = ?, next_run_at = FROM_UNIXTIME(?) "
    "WHERE id = ? AND enabled = 1 AND next_run_at = ? AND next_run_at <= NOW(3)";
/* Skip a slot without firing it; fenced on the slot, so a concurrent change wins. */
static const char sql_skip[] =
    "UPDATE schedules SET next_run_at = FROM_UNIXTIME(?) WHERE id = ? AND next_run_at = ?";

enum due_col {
	DUE_ID, DUE_WS, DUE_CRON, DUE_TZ, DUE_INPUT, DUE_CHAT, DUE_SYSTEM, DUE_SLOT,
	DUE_SLOT_S, DUE_NOW_S
};

/* 1 when tz can only be a zone name ("Europe/Berlin", "Etc/GMT+1"), never a path trick. */
static int
tz_name_ok(const char *tz)
{
	size_t n = strlen(tz);

	if (n == 0 || n > KR_SCHED_TZ_MAX || tz[0] == '/' || strstr(tz, "..") != NULL)
		return 0;
	return strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-")
	    == n;
}

enum kr_sched_err
kr_sched_check(const char *cron, const char *tz, char *msg, size_t msglen)
{
	struct kr_cron c;

	msg[0] = '\0';
	if (strlen(cron) > KR_SCHED_CRON_MAX) {
		snprintf(msg, msglen, "a cron expression is at most %d characters",
		    KR_SCHED_CRON_MAX);
		return KR_SCHED_BAD_CRON;
	}
	if (kr_cron_parse(cron, &c, msg, msglen) != 0) {
		if (msg[0] == '\0')
			snprintf(msg, msglen, "not a 5-field cron expression");
		return KR_SCHED_BAD_CRON;
	}
	if (!tz_name_ok(tz) || !kr_tz_valid(tz)) {
		snprintf(msg, msglen, "unknown time zone \"%.64s\" (use an IANA name such as "
		    "Europe/Berlin or UTC)", tz);
		return KR_SCHED_BAD_TZ;
	}
	return KR_SCHED_OK;
}

time_t
kr_sched_next_slot(const char *cron, const char *tz, time_t prev, time_t now)
{
	struct kr_cron c;
	char err[KR_SCHED_MSG_MAX];
	time_t next;

	if (kr_cron_parse(cron, &c, err, sizeof(err)) != 0)
		return -1;
	next = kr_cron_next(&c, tz, prev);
	if (next != -1 && next <= now)
		next = kr_cron_next(&c, tz, now);
	return next;
}

/* The first slot after now, or KR_SCHED_NEVER with msg set. */
static enum kr_sched_err
first_slot(const char *cron, const char *tz, time_t now, time_t *next, char *msg,
    size_t msglen)
{
	if ((*next = kr_sched_next_slot(cron, tz, now, now)) != -1)
		return KR_SCHED_OK;
	snprintf(msg, msglen, "the cron expression never fires (no matching time within the "
	    "next years)");
	return KR_SCHED_NEVER;
}

enum kr_db_err
kr_schedules_list(struct kr_db *db, const char *ws_id, const char *before, unsigned limit,
    struct kr_db_res *res, int *found)
{
	return kr_db_page(db, sql_cursor, sql_list, ws_id, before, limit, res, found);
}

enum kr_db_err
kr_schedules_get(struct kr_db *db, const char *ws_id, const char *id, struct kr_db_res *res)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };

	return kr_db_exec(db, sql_get, p, N(p), res, NULL);
}

/* The database clock, and KR_SCHED_BAD_CHAT unless chat_id (may be NULL) is the workspace's. */
static enum kr_sched_err
now_and_chat(struct kr_db *db, const char *ws_id, const char *chat_id, time_t *now,
    enum kr_db_err *db_rc)
{
	struct kr_dbp p[3] = { KR_P_STR(chat_id), KR_P_STR(ws_id), KR_P_STR(chat_id) };
	struct kr_db_res res;
	enum kr_sched_err rc;

	if ((*db_rc = kr_db_exec(db, sql_now_chat, p, N(p), &res, NULL)) != KR_DB_OK)
		return KR_SCHED_DB;
	*now = (time_t)kr_db_cell_int(&res, 0, 0, 0);
	rc = kr_db_cell_int(&res, 0, 1, 0) == 1 ? KR_SCHED_OK : KR_SCHED_BAD_CHAT;
	kr_db_res_free(&res);
	if (*now <= 0) {
		*db_rc = KR_DB_ERROR;
		return KR_SCHED_DB;
	}
	return rc;
}

enum kr_sched_err
kr_schedules_create(struct kr_db *db, const char *ws_id, const struct kr_sched_in *in,
    char id[KR_UUID_MAX], char *msg, size_t msglen, enum kr_db_err *db_rc)
{
	enum kr_sched_err rc;
	time_t now = 0, next = -1;

	*db_rc = KR_DB_OK;
	if ((rc = kr_sched_check(in->cron, in->timezone, msg, msglen)) != KR_SCHED_OK)
		return rc;
	if ((rc = now_and_chat(db, ws_id, in->chat_id, &now, db_rc)) != KR_SCHED_OK)
		return rc;
	if ((rc = first_slot(in->cron, in->timezone, now, &next, msg, msglen)) != KR_SCHED_OK)
		return rc;
	kr_uuid_new(id);
	{
		struct kr_dbp p[10] = { KR_P_STR(id), KR_P_STR(ws_id), KR_P_STR(in->description),
		    KR_P_STR(in->cron), KR_P_STR(in->timezone), KR_P_STR(in->input),
		    KR_P_STR(in->chat_id), KR_P_STR(in->system_prompt),
		    KR_P_INT(in->enabled ? 1 : 0), in->enabled ? KR_P_INT(next) : KR_P_NULL };
		*db_rc = kr_db_exec(db, sql_insert, p, N(p), NULL, NULL);
	}
	return *db_rc == KR_DB_OK ? KR_SCHED_OK : KR_SCHED_DB;
}

/* The schedule as it will be after the patch: which slot it fires next (has_next, next). */
struct planned {
	char	cron[KR_SCHED_CRON_MAX + 1];
	char	tz[KR_SCHED_TZ_MAX + 1];
	int	enabled;
	int	has_next;	/* next_run_at changes */
	time_t	next;		/* -1: NULL */
};

/* Merge the locked row (cron, timezone, enabled) with the patch and plan next_run_at. */
static enum kr_sched_err
plan(const struct kr_db_res *row, const struct kr_sched_in *in, time_t now,
    struct planned *pl, char *msg, size_t msglen)
{
	const char *old_cron = kr_db_cell(row, 0, 0), *old_tz = kr_db_cell(row, 0, 1);
	const char *cron = in->has_cron ? in->cron : old_cron;
	const char *tz = in->has_timezone ? in->timezone : old_tz;
	int was_enabled = kr_db_cell_int(row, 0, 2, 0) != 0, changed;
	enum kr_sched_err rc;

	if (old_cron == NULL || old_tz == NULL || cron == NULL || tz == NULL)
		return KR_SCHED_DB;
	if ((in->has_cron || in->has_timezone) &&
	    (rc = kr_sched_check(cron, tz, msg, msglen)) != KR_SCHED_OK)
		return rc;
	snprintf(pl->cron, sizeof(pl->cron), "%s", cron);
	snprintf(pl->tz, sizeof(pl->tz), "%s", tz);
	pl->enabled = in->has_enabled ? in->enabled : was_enabled;
	changed = strcmp(cron, old_cron) != 0 || strcmp(tz, old_tz) != 0;
	pl->has_next = !pl->enabled || !was_enabled || changed;
	pl->next = -1;
	if (pl->has_next && pl->enabled)
		return first_slot(pl->cron, pl->tz, now, &pl->next, msg, msglen);
	return KR_SCHED_OK;
}

static enum kr_db_err
apply(struct kr_db *db, const char *ws_id, const char *id, const struct kr_sched_in *in,
    const struct planned *pl)
{
	struct kr_dbp p[17] = {
		KR_P_INT(in->has_description), KR_P_STR(in->description),
		KR_P_INT(in->has_cron), KR_P_STR(in->cron),
		KR_P_INT(in->has_timezone), KR_P_STR(in->timezone),
		KR_P_INT(in->has_input), KR_P_STR(in->input),
		KR_P_INT(in->has_chat_id), KR_P_STR(in->chat_id),
		KR_P_INT(in->has_system_prompt), KR_P_STR(in->system_prompt),
		KR_P_INT(pl->enabled ? 1 : 0),
		KR_P_INT(pl->has_next), pl->next >= 0 ? KR_P_INT(pl->next) : KR_P_NULL,
		KR_P_STR(ws_id), KR_P_STR(id),
	};

	return kr_db_exec(db, sql_update, p, N(p), NULL, NULL);
}

/* One PATCH, as a kr_db_tx body; result says why it aborted. */
struct update_tx {
	const char		*ws_id;
	const char		*id;
	const struct kr_sched_in *in;
	char			*msg;
	size_t			 msglen;
	enum kr_sched_err	 result;
};

static enum kr_db_err
update_in_tx(struct kr_db *db, void *arg)
{
	struct update_tx *u = arg;
	struct kr_dbp q[2] = { KR_P_STR(u->ws_id), KR_P_STR(u->id) };
	struct kr_db_res res;
	struct planned pl;
	enum kr_db_err rc;
	time_t now = 0;

	u->result = KR_SCHED_DB;
	if ((rc = kr_db_exec(db, sql_lock, q, N(q), &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows != 1)
		u->result = KR_SCHED_NOTFOUND;
	else if ((u->result = now_and_chat(db, u->ws_id, u->in->has_chat_id ? u->in->chat_id :
	    NULL, &now, &rc)) == KR_SCHED_OK)
		u->result = plan(&res, u->in, now, &pl, u->msg, u->msglen);
	kr_db_res_free(&res);
	if (u->result != KR_SCHED_OK)
		return u->result != KR_SCHED_DB ? KR_DB_ABORT : rc != KR_DB_OK ? rc : KR_DB_ERROR;
	return apply(db, u->ws_id, u->id, u->in, &pl);
}

enum kr_sched_err
kr_schedules_update(struct kr_db *db, const char *ws_id, const char *id,
    const struct kr_sched_in *in, char *msg, size_t msglen, enum kr_db_err *db_rc)
{
	struct update_tx u = { ws_id, id, in, msg, msglen, KR_SCHED_DB };

	msg[0] = '\0';
	*db_rc = kr_db_tx(db, update_in_tx, &u, 0);
	if (*db_rc == KR_DB_OK)
		return KR_SCHED_OK;
	if (*db_rc == KR_DB_ABORT)
		return u.result;
	return KR_SCHED_DB;
}

enum kr_sched_err
kr_schedules_delete(struct kr_db *db, const char *ws_id, const char *id, enum kr_db_err *db_rc)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
	uint64_t n = 0;

	if ((*db_rc = kr_db_exec(db, sql_delete, p, N(p), NULL, &n)) != KR_DB_OK)
		return KR_SCHED_DB;
	return n > 0 ? KR_SCHED_OK : KR_SCHED_NOTFOUND;
}

/* ---- firing ---------------------------------------------------------------------------- */

/* The slot after the due row's (see kr_sched_next_slot); -1 for none or a broken row. */
static time_t
due_next(const struct kr_db_res *due)
{
	const char *cron = kr_db_cell(due, 0, DUE_CRON), *tz = kr_db_cell(due, 0, DUE_TZ);
	char msg[KR_SCHED_MSG_MAX];

	if (cron == NULL || tz == NULL || kr_sched_check(cron, tz, msg, sizeof(msg)) !=
	    KR_SCHED_OK)
		return -1;
	return kr_sched_next_slot(cron, tz, (time_t)kr_db_cell_int(due, 0, DUE_SLOT_S, 0),
	    (time_t)kr_db_cell_int(due, 0, DUE_NOW_S, 0));
}

/* After a rollback: move the due row past its slot without firing it. */
static enum kr_db_err
skip_slot(struct kr_db *db, const struct kr_db_res *due, time_t next)
{
	struct kr_dbp p[3] = { next >= 0 ? KR_P_INT(next) : KR_P_NULL,
	    KR_P_STR(kr_db_cell(due, 0, DUE_ID)), KR_P_STR(kr_db_cell(due, 0, DUE_SLOT)) };

	return kr_db_exec(db, sql_skip, p, N(p), NULL, NULL);
}

/* Inside the transaction that locked the due row: make its job and record the fire. */
static enum kr_db_err
fire_locked(struct kr_db *db, const struct kr_db_res *due, time_t next)
{
	struct kr_job_new j = {
		.type = "scheduled", .input = kr_db_cell(due, 0, DUE_INPUT),
		.chat_id = kr_db_cell(due, 0, DUE_CHAT),
		.system_prompt = kr_db_cell(due, 0, DUE_SYSTEM),
		.schedule_id = kr_db_cell(due, 0, DUE_ID),
		.max_attempts = KR_SCHED_MAX_ATTEMPTS, .created_by = CREATED_BY,
	};
	char job_id[KR_UUID_MAX] = "";
	enum kr_db_err rc;
	int existing = 0;
	uint64_t n = 0;

	{
		struct kr_dbp p[4] = { KR_P_STR(kr_db_cell(due, 0, DUE_SLOT)),
		    next >= 0 ? KR_P_INT(next) : KR_P_NULL, KR_P_STR(j.schedule_id),
		    KR_P_STR(kr_db_cell(due, 0, DUE_SLOT)) };
		if ((rc = kr_db_exec(db, sql_fired, p, N(p), NULL, &n)) != KR_DB_OK)
			return rc;
		if (n == 0)
			return KR_DB_ABORT;	/* the slot moved on: not ours to fire */
	}
	if ((rc = kr_job_create(db, kr_db_cell(due, 0, DUE_WS), &j, 1, job_id, &existing)) !=
	    KR_DB_OK)
		return rc;
	{
		struct kr_dbp p[3] = { KR_P_STR(j.schedule_id),
		    KR_P_STR(kr_db_cell(due, 0, DUE_SLOT)), KR_P_STR(job_id) };
		return kr_db_exec(db, sql_fire, p, N(p), NULL, NULL);
	}
}

/* One fire, as a kr_db_tx body: the due row it locked stays in due for the caller. */
struct fire_tx {
	struct kr_db_res	due;
	time_t			next;
	int			lost;	/* a due row was found but its slot had moved on */
};

static enum kr_db_err
fire_in_tx(struct kr_db *db, void *arg)
{
	struct fire_tx *f = arg;
	enum kr_db_err rc;

	kr_db_res_free(&f->due);
	if ((rc = kr_db_exec(db, sql_due, NULL, 0, &f->due, NULL)) != KR_DB_OK)
		return rc;
	if (f->due.nrows == 0)
		return KR_DB_ABORT;
	f->next = due_next(&f->due);
	rc = fire_locked(db, &f->due, f->next);
	f->lost = rc == KR_DB_ABORT;
	return rc;
}

/*
 * Fire the first due schedule nobody else holds. *found is 0 when none was due, *fired 1
 * when a job was made. A lost connection retries the transaction: a fire that landed
 * before it broke has moved next_run_at, so the retry does not find the slot due again.
 */
static enum kr_db_err
fire_one(struct kr_db *db, int *found, int *fired)
{
	struct fire_tx f = { { 0 }, -1, 0 };
	enum kr_db_err rc = kr_db_tx(db, fire_in_tx, &f, 1);

	*found = rc != KR_DB_ABORT || f.lost;
	*fired = rc == KR_DB_OK;
	if (rc == KR_DB_ABORT)
		rc = KR_DB_OK;
	else if (f.due.nrows == 1 && (rc == KR_DB_DUPLICATE || rc == KR_DB_ERROR)) {
		/* Another runner fired this slot, or its job cannot be made: skip, not forever. */
		if (rc == KR_DB_DUPLICATE)
			kr_info("schedule %s: slot %s was fired already",
			    kr_db_cell(&f.due, 0, DUE_ID), kr_db_cell(&f.due, 0, DUE_SLOT));
		else
			kr_warn("schedule %s: slot %s skipped: its job could not be created",
			    kr_db_cell(&f.due, 0, DUE_ID), kr_db_cell(&f.due, 0, DUE_SLOT));
		rc = skip_slot(db, &f.due, f.next);
	}
	kr_db_res_free(&f.due);
	return rc;
}

enum kr_db_err
kr_schedules_fire_due(struct kr_db *db, unsigned max, unsigned *fired)
{
	enum kr_db_err rc = KR_DB_OK;
	int found = 1, one = 0;

	*fired = 0;
	for (unsigned i = 0; i < max && found && rc == KR_DB_OK; i++) {
		rc = fire_one(db, &found, &one);
		*fired += (unsigned)one;
	}
	return rc;
}
