/*
 * /api/workspaces/{ws}/notifications: Telegram targets that also receive each answer.
 * Reading for every role, changes and tests for admins (the router checks roles). The bot
 * token is sealed in the vault and never leaves: answers carry the masked hint only.
 */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_json.h"
#include "kr_notify.h"

static json_object *
view_target_row(const struct kr_db_res *res, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "id", kr_db_cell(res, row, KR_NC_ID));
	kr_json_add_str(o, "type", kr_db_cell(res, row, KR_NC_TYPE));
	kr_json_add_str(o, "chatId", kr_db_cell(res, row, KR_NC_CHAT_ID));
	kr_json_add_str(o, "maskedToken", kr_db_cell(res, row, KR_NC_HINT));
	kr_json_add_bool(o, "isEnabled", kr_db_cell_int(res, row, KR_NC_ENABLED, 1) != 0);
	kr_json_add_str(o, "lastError", kr_db_cell(res, row, KR_NC_LAST_ERROR));
	kr_json_add_time(o, "lastDeliveredAt", kr_db_cell(res, row, KR_NC_LAST_DELIVERED_AT));
	kr_json_add_time(o, "createdAt", kr_db_cell(res, row, KR_NC_CREATED_AT));
	return o;
}

/* Answer target id with status, or 404. */
static void
answer_target(struct kr_req *req, struct kr_resp *resp, const char *id, int status)
{
	struct kr_db_res res;
	enum kr_db_err rc;

	if ((rc = kr_notify_get(req->db, req->p.ws.id, id, &res)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (res.nrows == 1)
		resp_json(resp, status, view_target_row(&res, 0));
	else
		resp_error(resp, 404, NULL, "no such notification target");
	kr_db_res_free(&res);
}

static void
notify_error(struct kr_resp *resp, enum kr_notify_err rc, enum kr_db_err db_rc)
{
	switch (rc) {
	case KR_NOTIFY_NOTFOUND:
		resp_error(resp, 404, NULL, "no such notification target");
		break;
	case KR_NOTIFY_VAULT:
		resp_error(resp, 500, NULL, "the key vault is unavailable");
		break;
	default:
		resp_db_error(resp, db_rc);
	}
}

/*
 * chatId: a string, or a whole number as Telegram's numeric chat ids come (copied into
 * buf). *out stays NULL when absent and optional. -1 after answering 422.
 */
static int
req_chat(struct kr_req *req, struct kr_resp *resp, int required, char *buf, size_t buflen,
    const char **out)
{
	json_object *v = NULL;
	const char *why;

	if (json_object_object_get_ex(req->json, "chatId", &v) &&
	    json_object_is_type(v, json_type_int)) {
		snprintf(buf, buflen, "%lld", (long long)json_object_get_int64(v));
		*out = buf;
	} else if (req_str(req, resp, "chatId", required, 1, KR_NOTIFY_CHAT_MAX, out) != 0)
		return -1;
	if (*out != NULL && (why = kr_telegram_chat_error(*out)) != NULL) {
		resp_error(resp, 422, "chatId", "%s", why);
		return -1;
	}
	return 0;
}

static void
audit_target(struct kr_req *req, const char *action, const char *id, json_object *detail)
{
	struct kr_actor a = req_actor(req);

	(void)kr_audit(req->db, req->p.ws.id, &a, action, id, detail);
	json_object_put(detail);
}

void
h_notifications_list(struct kr_req *req, struct kr_resp *resp)
{
	static const struct kr_list targets = { "targets", "a target", view_target_row };
	struct kr_page pg;
	struct kr_db_res res;
	enum kr_db_err rc;
	int found = 0;

	if (req_page(req, resp, &pg) != 0)
		return;
	rc = kr_notify_list(req->db, req->p.ws.id, pg.before, pg.limit + 1, &res, &found);
	resp_page(resp, &targets, &pg, rc, &res, found);
}

void
h_notifications_create(struct kr_req *req, struct kr_resp *resp)
{
	const char *type = NULL, *token = NULL, *chat = NULL, *why;
	char chatbuf[32], id[KR_UUID_MAX];
	enum kr_notify_err rc;
	enum kr_db_err db_rc;
	int enabled = 1;
	json_object *d;

	if (req_str(req, resp, "type", 0, 1, 32, &type) != 0)
		return;
	if (type != NULL && strcmp(type, "telegram") != 0) {
		resp_error(resp, 422, "type", "type must be telegram");
		return;
	}
	if (req_str(req, resp, "botToken", 1, 1, KR_NOTIFY_TOKEN_MAX, &token) != 0)
		return;
	if ((why = kr_telegram_token_error(token, strlen(token))) != NULL) {
		resp_error(resp, 422, "botToken", "%s", why);
		return;
	}
	if (req_chat(req, resp, 1, chatbuf, sizeof(chatbuf), &chat) != 0 ||
	    req_bool(req, resp, "isEnabled", 0, &enabled) != 0)
		return;
	if ((rc = kr_notify_create(req->db, req->p.ws.id, token, strlen(token), chat, enabled,
	    id, &db_rc)) != KR_NOTIFY_OK) {
		notify_error(resp, rc, db_rc);
		return;
	}
	d = json_object_new_object();
	kr_json_add_str(d, "type", "telegram");
	kr_json_add_str(d, "chatId", chat);
	audit_target(req, "notification.created", id, d);
	answer_target(req, resp, id, 201);
}

void
h_notifications_update(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1], *chat = NULL;
	enum kr_notify_err rc;
	enum kr_db_err db_rc;
	int enabled = 0, has_enabled;
	char chatbuf[32];
	json_object *d;

	if (!kr_uuid_valid(id)) {
		resp_error(resp, 404, NULL, "no such notification target");
		return;
	}
	if (req_bool(req, resp, "isEnabled", 0, &enabled) != 0 ||
	    req_chat(req, resp, 0, chatbuf, sizeof(chatbuf), &chat) != 0)
		return;
	has_enabled = req->json != NULL && json_object_object_get(req->json, "isEnabled") != NULL;
	if ((rc = kr_notify_update(req->db, req->p.ws.id, id, has_enabled, enabled, chat,
	    &db_rc)) != KR_NOTIFY_OK) {
		notify_error(resp, rc, db_rc);
		return;
	}
	d = json_object_new_object();
	if (has_enabled)
		kr_json_add_bool(d, "isEnabled", enabled);
	if (chat != NULL)
		kr_json_add_str(d, "chatId", chat);
	audit_target(req, "notification.updated", id, d);
	answer_target(req, resp, id, 200);
}

void
h_notifications_delete(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1];
	enum kr_notify_err rc = KR_NOTIFY_NOTFOUND;
	enum kr_db_err db_rc = KR_DB_OK;

	if (kr_uuid_valid(id))
		rc = kr_notify_delete(req->db, req->p.ws.id, id, &db_rc);
	if (rc != KR_NOTIFY_OK) {
		notify_error(resp, rc, db_rc);
		return;
	}
	audit_target(req, "notification.deleted", id, NULL);
	resp_no_content(resp);
}

void
h_notifications_test(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1];
	char err[KR_NOTIFY_ERR_MAX + 1] = "";
	enum kr_notify_err rc = KR_NOTIFY_NOTFOUND;
	enum kr_db_err db_rc = KR_DB_OK;
	json_object *o, *d;

	if (kr_uuid_valid(id))
		rc = kr_notify_test(req->db, req->cfg, req->p.ws.id, id, err, sizeof(err),
		    &db_rc);
	if (rc != KR_NOTIFY_OK && rc != KR_NOTIFY_SEND) {
		notify_error(resp, rc, db_rc);
		return;
	}
	o = json_object_new_object();
	kr_json_add_bool(o, "ok", rc == KR_NOTIFY_OK);
	if (rc != KR_NOTIFY_OK)
		kr_json_add_str(o, "error", err);
	d = json_object_new_object();
	kr_json_add_bool(d, "ok", rc == KR_NOTIFY_OK);
	if (rc != KR_NOTIFY_OK)
		kr_json_add_str(d, "error", err);
	audit_target(req, "notification.tested", id, d);
	resp_json(resp, 200, o);
}
