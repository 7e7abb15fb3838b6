/*
 * kr_chats: the chats of a workspace and their messages as the API sees them.
 *
 * A message is `in` (posted by a user or token) or `out` (an answer, written by the runner
 * when it finishes the message's job, see kr_queue.h). Posting a message creates its `chat`
 * job in the same transaction. Every function filters on the caller's workspace id.
 *
 * JSON shapes (api.md): chat {"id","title","createdAt"}; message {"id","chatId",
 * "direction","sender","content","jobId","createdAt"}. An `in` message has jobId null:
 * messages.job_id is UNIQUE so that the one answer of a job is delivered once, and belongs
 * to the `out` message; the POST answer pairs the message with its job.
 */
#ifndef KR_CHATS_H
#define KR_CHATS_H

#include <json-c/json.h>

#include "kr_db.h"
#include "kr_time.h"

#define KR_CHAT_TITLE_MAX	200	/* characters */

/* Create a chat; *out gets the chat object. */
enum kr_db_err	kr_chat_create(struct kr_db *db, const char *ws_id, const char *title,
		    json_object **out);
/* *found is 1 when id is a chat of the workspace. */
enum kr_db_err	kr_chat_exists(struct kr_db *db, const char *ws_id, const char *id,
		    int *found);
/*
 * {"chats":[...], "nextCursor"}: newest first, at most limit, after the chat before (NULL:
 * from the newest). *out is NULL when before is not a chat of the workspace.
 */
enum kr_db_err	kr_chat_list_json(struct kr_db *db, const char *ws_id, const char *before,
		    unsigned limit, json_object **out);

/*
 * {"messages":[...], "nextCursor"}: the chat's messages oldest first, at most limit, after
 * the message after (NULL: from the first); nextCursor is the last one's id when there are
 * more. *out is NULL when after is not a message of the chat. The caller has checked that
 * the chat is in the workspace.
 */
enum kr_db_err	kr_message_list_json(struct kr_db *db, const char *ws_id,
		    const char *chat_id, const char *after, unsigned limit, json_object **out);
/* The message object, NULL when id is not a message of the workspace. */
enum kr_db_err	kr_message_json(struct kr_db *db, const char *ws_id, const char *id,
		    json_object **out);

struct kr_message_new {
	const char	*chat_id;
	const char	*content;	/* 1..KR_JOB_INPUT_MAX bytes: the job's input */
	const char	*system_prompt;	/* NULL: none */
	const char	*sender;	/* the caller's e-mail or token name */
};
/*
 * Post an `in` message and queue its `chat` job, in one transaction with the
 * message_created and job_queued events (rerun on deadlocks). *out gets
 * {"message":{...},"job":{...}} as committed, or NULL when the chat is not in the workspace
 * (nothing is written then).
 */
enum kr_db_err	kr_message_post(struct kr_db *db, const char *ws_id,
		    const struct kr_message_new *m, json_object **out);

#endif
