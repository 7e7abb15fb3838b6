/*
 * /api/workspaces/{ws}/chats and their messages: list and read (viewer); create a chat and
 * post a message (member). Posting answers 202: the answer arrives later, as an `out`
 * message written by the runner when the message's job succeeds.
 */
#include <stdint.h>
#include <string.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_chats.h"
#include "kr_jobs.h"
#include "kr_json.h"

/* The chat of the path ({id}) when it is in this workspace; 0, or -1 after 404 or 503. */
static int
path_chat(struct kr_req *req, struct kr_resp *resp, const char **out)
{
	const char *id = req->params[1];
	enum kr_db_err rc;
	int found = 0;

	if (kr_uuid_valid(id) &&
	    (rc = kr_chat_exists(req->db, req->p.ws.id, id, &found)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return -1;
	}
	if (!found) {
		resp_error(resp, 404, NULL, "no such chat");
		return -1;
	}
	*out = id;
	return 0;
}

void
h_chats_list(struct kr_req *req, struct kr_resp *resp)
{
	char buf[64];
	const char *before = NULL;
	json_object *o = NULL;
	enum kr_db_err rc;
	unsigned limit;

	if (req_limit(req, resp, &limit) != 0 ||
	    req_query_id(req, resp, "before", buf, sizeof(buf), &before) != 0)
		return;
	if ((rc = kr_chat_list_json(req->db, req->p.ws.id, before, limit, &o)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (o == NULL)
		resp_error(resp, 422, "before", "before is not a chat of this workspace");
	else
		resp_json(resp, 200, o);
}

void
h_chats_create(struct kr_req *req, struct kr_resp *resp)
{
	const char *title = NULL;
	json_object *o = NULL;
	enum kr_db_err rc;

	if (req_str(req, resp, "title", 1, 1, KR_CHAT_TITLE_MAX, &title) != 0)
		return;
	if ((rc = kr_chat_create(req->db, req->p.ws.id, title, &o)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	resp_json(resp, 201, o);
}

void
h_messages_list(struct kr_req *req, struct kr_resp *resp)
{
	const char *chat = NULL, *after = NULL;
	json_object *o = NULL;
	enum kr_db_err rc;
	unsigned limit;
	char buf[64];

	if (path_chat(req, resp, &chat) != 0 || req_limit(req, resp, &limit) != 0 ||
	    req_query_id(req, resp, "after", buf, sizeof(buf), &after) != 0)
		return;
	rc = kr_message_list_json(req->db, req->p.ws.id, chat, after, limit, &o);
	if (rc != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (o == NULL)
		resp_error(resp, 422, "after", "after is not a message of this chat");
	else
		resp_json(resp, 200, o);
}

void
h_messages_post(struct kr_req *req, struct kr_resp *resp)
{
	struct kr_actor a = req_actor(req);
	struct kr_message_new m = { 0 };
	json_object *o = NULL;
	enum kr_db_err rc;

	/* A missing chat is 404 before the body is looked at; the post checks it again, in
	 * its transaction, against a chat deleted meanwhile. */
	if (path_chat(req, resp, &m.chat_id) != 0)
		return;
	if (req_bytes(req, resp, "content", 1, 1, KR_JOB_INPUT_MAX, &m.content) != 0 ||
	    req_bytes(req, resp, "systemPrompt", 0, 0, KR_JOB_INPUT_MAX, &m.system_prompt) != 0)
		return;
	m.sender = a.label != NULL ? a.label : "api";
	if ((rc = kr_message_post(req->db, req->p.ws.id, &m, &o)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (o == NULL)
		resp_error(resp, 404, NULL, "no such chat");
	else
		resp_json(resp, 202, o);
}
