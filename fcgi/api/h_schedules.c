/*
 * /api/workspaces/{ws}/schedules: cron schedules that make "scheduled" jobs. Reading for
 * every role, changes for members (the router checks roles). A bad cron expression, time
 * zone or chat is 422 naming the field; next_run_at is kept by kr_schedules.
 */
#include <stdint.h>
#include <string.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_jobs.h"
#include "kr_json.h"
#include "kr_schedules.h"

static json_object *
view_schedule_row(const struct kr_db_res *res, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "id", kr_db_cell(res, row, KR_SC_ID));
	kr_json_add_str(o, "description", kr_db_cell(res, row, KR_SC_DESCRIPTION));
	kr_json_add_str(o, "cron", kr_db_cell(res, row, KR_SC_CRON));
	kr_json_add_str(o, "timezone", kr_db_cell(res, row, KR_SC_TIMEZONE));
	kr_json_add_str(o, "input", kr_db_cell(res, row, KR_SC_INPUT));
	kr_json_add_str(o, "chatId", kr_db_cell(res, row, KR_SC_CHAT_ID));
	kr_json_add_str(o, "systemPrompt", kr_db_cell(res, row, KR_SC_SYSTEM_PROMPT));
	kr_json_add_bool(o, "enabled", kr_db_cell_int(res, row, KR_SC_ENABLED, 0) != 0);
	kr_json_add_time(o, "nextRunAt", kr_db_cell(res, row, KR_SC_NEXT_RUN_AT));
	kr_json_add_time(o, "lastRunAt", kr_db_cell(res, row, KR_SC_LAST_RUN_AT));
	kr_json_add_time(o, "createdAt", kr_db_cell(res, row, KR_SC_CREATED_AT));
	kr_json_add_time(o, "updatedAt", kr_db_cell(res, row, KR_SC_UPDATED_AT));
	return o;
}

/* Answer schedule id with status, or 404. */
static void
answer_schedule(struct kr_req *req, struct kr_resp *resp, const char *id, int status)
{
	struct kr_db_res res;
	enum kr_db_err rc;

	if ((rc = kr_schedules_get(req->db, req->p.ws.id, id, &res)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (res.nrows == 1)
		resp_json(resp, status, view_schedule_row(&res, 0));
	else
		resp_error(resp, 404, NULL, "no such schedule");
	kr_db_res_free(&res);
}

/* 1 when field is present in the body, even as null. */
static int
given(const struct kr_req *req, const char *field)
{
	return req->json != NULL && json_object_object_get_ex(req->json, field, NULL);
}

/* A long text field (input, systemPrompt): at most KR_JOB_INPUT_MAX bytes. -1 after 422. */
static int
req_text(struct kr_req *req, struct kr_resp *resp, const char *field, int required,
    size_t minlen, const char **out)
{
	if (req_str(req, resp, field, required, minlen, KR_JOB_INPUT_MAX, out) != 0)
		return -1;
	if (*out != NULL && strlen(*out) > KR_JOB_INPUT_MAX) {
		resp_error(resp, 422, field, "%s must be at most %d bytes", field,
		    KR_JOB_INPUT_MAX);
		return -1;
	}
	return 0;
}

/*
 * Read the body into in: every field required when creating, only the given ones for a
 * PATCH. -1 after answering 422.
 */
static int
read_schedule(struct kr_req *req, struct kr_resp *resp, int create, struct kr_sched_in *in)
{
	memset(in, 0, sizeof(*in));
	in->enabled = 1;
	if (req_str(req, resp, "description", create, 1, KR_SCHED_DESC_MAX, &in->description)
	    != 0 ||
	    req_str(req, resp, "cron", create, 1, KR_SCHED_CRON_MAX, &in->cron) != 0 ||
	    req_str(req, resp, "timezone", create, 1, KR_SCHED_TZ_MAX, &in->timezone) != 0 ||
	    req_text(req, resp, "input", create, 1, &in->input) != 0 ||
	    req_str(req, resp, "chatId", 0, 1, KR_UUID_LEN, &in->chat_id) != 0 ||
	    req_text(req, resp, "systemPrompt", 0, 0, &in->system_prompt) != 0 ||
	    req_bool(req, resp, "enabled", 0, &in->enabled) != 0)
		return -1;
	if (in->chat_id != NULL && !kr_uuid_valid(in->chat_id)) {
		resp_error(resp, 422, "chatId", "chatId must be a chat of this workspace");
		return -1;
	}
	if (in->system_prompt != NULL && *in->system_prompt == '\0')
		in->system_prompt = NULL;	/* "" is no system prompt */
	in->has_description = in->description != NULL;
	in->has_cron = in->cron != NULL;
	in->has_timezone = in->timezone != NULL;
	in->has_input = in->input != NULL;
	in->has_chat_id = create || given(req, "chatId");
	in->has_system_prompt = create || given(req, "systemPrompt");
	in->has_enabled = create || (given(req, "enabled") &&
	    json_object_object_get(req->json, "enabled") != NULL);
	return 0;
}

/* Answer a failure of kr_schedules_*. */
static void
sched_error(struct kr_resp *resp, enum kr_sched_err rc, enum kr_db_err db_rc, const char *msg)
{
	switch (rc) {
	case KR_SCHED_NOTFOUND:
		resp_error(resp, 404, NULL, "no such schedule");
		break;
	case KR_SCHED_BAD_CRON:
	case KR_SCHED_NEVER:
		resp_error(resp, 422, "cron", "%s", msg);
		break;
	case KR_SCHED_BAD_TZ:
		resp_error(resp, 422, "timezone", "%s", msg);
		break;
	case KR_SCHED_BAD_CHAT:
		resp_error(resp, 422, "chatId", "chatId must be a chat of this workspace");
		break;
	default:
		resp_db_error(resp, db_rc);
	}
}

static void
audit_schedule(struct kr_req *req, const char *action, const char *id,
    const struct kr_sched_in *in)
{
	struct kr_actor a = req_actor(req);
	json_object *d = NULL;

	if (in != NULL) {
		d = json_object_new_object();
		if (in->has_description)
			kr_json_add_str(d, "description", in->description);
		if (in->has_cron)
			kr_json_add_str(d, "cron", in->cron);
		if (in->has_timezone)
			kr_json_add_str(d, "timezone", in->timezone);
		if (in->has_enabled)
			kr_json_add_bool(d, "enabled", in->enabled);
	}
	(void)kr_audit(req->db, req->p.ws.id, &a, action, id, d);
	json_object_put(d);
}

void
h_schedules_list(struct kr_req *req, struct kr_resp *resp)
{
	static const struct kr_list schedules = { "schedules", "a schedule", view_schedule_row };
	struct kr_page pg;
	struct kr_db_res res;
	enum kr_db_err rc;
	int found = 0;

	if (req_page(req, resp, &pg) != 0)
		return;
	rc = kr_schedules_list(req->db, req->p.ws.id, pg.before, pg.limit + 1, &res, &found);
	resp_page(resp, &schedules, &pg, rc, &res, found);
}

void
h_schedules_create(struct kr_req *req, struct kr_resp *resp)
{
	char id[KR_UUID_MAX], msg[KR_SCHED_MSG_MAX];
	struct kr_sched_in in;
	enum kr_sched_err rc;
	enum kr_db_err db_rc;

	if (read_schedule(req, resp, 1, &in) != 0)
		return;
	if ((rc = kr_schedules_create(req->db, req->p.ws.id, &in, id, msg, sizeof(msg), &db_rc))
	    != KR_SCHED_OK) {
		sched_error(resp, rc, db_rc, msg);
		return;
	}
	audit_schedule(req, "schedule.created", id, &in);
	answer_schedule(req, resp, id, 201);
}

void
h_schedules_get(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1];

	if (!kr_uuid_valid(id)) {
		resp_error(resp, 404, NULL, "no such schedule");
		return;
	}
	answer_schedule(req, resp, id, 200);
}

void
h_schedules_update(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1];
	char msg[KR_SCHED_MSG_MAX];
	struct kr_sched_in in;
	enum kr_sched_err rc;
	enum kr_db_err db_rc;

	if (!kr_uuid_valid(id)) {
		resp_error(resp, 404, NULL, "no such schedule");
		return;
	}
	if (read_schedule(req, resp, 0, &in) != 0)
		return;
	if ((rc = kr_schedules_update(req->db, req->p.ws.id, id, &in, msg, sizeof(msg), &db_rc))
	    != KR_SCHED_OK) {
		sched_error(resp, rc, db_rc, msg);
		return;
	}
	audit_schedule(req, "schedule.updated", id, &in);
	answer_schedule(req, resp, id, 200);
}

void
h_schedules_delete(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1];
	enum kr_sched_err rc = KR_SCHED_NOTFOUND;
	enum kr_db_err db_rc = KR_DB_OK;

	if (kr_uuid_valid(id))
		rc = kr_schedules_delete(req->db, req->p.ws.id, id, &db_rc);
	if (rc != KR_SCHED_OK) {
		sched_error(resp, rc, db_rc, "");
		return;
	}
	audit_schedule(req, "schedule.deleted", id, NULL);
	resp_no_content(resp);
}
