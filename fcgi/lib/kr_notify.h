/*
 * kr_notify: notification targets of a workspace (table notification_targets) and the
 * outbox that sends each answer to them (notification_outbox); api.md, "Notification
 * targets", seed 000's G5.
 *
 * A target is a Telegram chat: a bot token, sealed with kr_vault under purpose
 * "telegram_token", column "secret", the target's id as record id, and shown only as a
 * masked hint (kr_key_hint); and a chat id. Messages go to the Bot API through
 * kr_telegram, which keeps the token out of every message it returns.
 *
 * The web chat is always delivered first and on its own: an answer is put in the outbox
 * inside the job-finish transaction (kr_notify_enqueue), and sent later, retried on its
 * own schedule (kr_notify_deliver_due). Nothing here touches the job or its message.
 */
#ifndef KR_NOTIFY_H
#define KR_NOTIFY_H

#include <stddef.h>

#include "kr_config.h"
#include "kr_db.h"
#include "kr_time.h"

#define KR_NOTIFY_CHAT_MAX	64	/* characters of a chat id */
#define KR_NOTIFY_TOKEN_MAX	256	/* bytes of a bot token */
#define KR_NOTIFY_ERR_MAX	500	/* bytes of an error message (last_error) */
#define KR_NOTIFY_MAX_ATTEMPTS	10	/* sends of one outbox row before it is given up */
/* ... when they were only deferred: Telegram's flood control (429), or the database away */
#define KR_NOTIFY_DEFERRED_MAX	(3 * KR_NOTIFY_MAX_ATTEMPTS)
#define KR_NOTIFY_BACKOFF_S	10	/* first retry delay; doubles, capped at ... */
#define KR_NOTIFY_BACKOFF_MAX_S	600
#define KR_NOTIFY_BATCH_MAX	64	/* rows one kr_notify_deliver_due call sends at most */
#define KR_NOTIFY_TEST_TEXT	"keyrelay test message"

enum kr_notify_err {
	KR_NOTIFY_OK = 0,
	KR_NOTIFY_NOTFOUND,	/* no such target in this workspace */
	KR_NOTIFY_VAULT,	/* the token could not be sealed or opened */
	KR_NOTIFY_SEND,		/* Telegram did not take the message; err says why */
	KR_NOTIFY_DB,		/* see db_rc */
};

/* The columns of every target row, in this order, for views. */
enum kr_notify_col {
	KR_NC_ID, KR_NC_TYPE, KR_NC_CHAT_ID, KR_NC_HINT, KR_NC_ENABLED, KR_NC_LAST_ERROR,
	KR_NC_LAST_DELIVERED_AT, KR_NC_CREATED_AT, KR_NC__MAX
};

/*
 * NULL when token has the form of a Telegram bot token ("<bot id>:<secret>", digits, a
 * colon, then letters, digits, '_' and '-'; it becomes part of a URL path), else why not
 * (a sentence without the token).
 */
const char	*kr_telegram_token_error(const char *token, size_t len);
/* NULL when chat is a usable chat id (1 to 64 visible characters, no spaces), else why not. */
const char	*kr_telegram_chat_error(const char *chat);

/*
 * The workspace's targets, newest first (created_at, id): at most limit rows after the
 * target before (NULL: from the newest). *found is 0 (and res empty) when before is not a
 * target of the workspace.
 */
enum kr_db_err	 kr_notify_list(struct kr_db *db, const char *ws_id, const char *before,
		    unsigned limit, struct kr_db_res *res, int *found);
/* One target; res.nrows is 0 when there is none in this workspace. */
enum kr_db_err	 kr_notify_get(struct kr_db *db, const char *ws_id, const char *id,
		    struct kr_db_res *res);
/* Add a Telegram target (token and chat checked by the caller); id gets its id. */
enum kr_notify_err kr_notify_create(struct kr_db *db, const char *ws_id, const char *token,
		    size_t tokenlen, const char *chat_id, int enabled, char id[KR_UUID_MAX],
		    enum kr_db_err *db_rc);
/* Change is_enabled (when has_enabled) and the chat id (when chat_id is not NULL). */
enum kr_notify_err kr_notify_update(struct kr_db *db, const char *ws_id, const char *id,
		    int has_enabled, int enabled, const char *chat_id, enum kr_db_err *db_rc);
/* Delete a target; its undelivered outbox rows go with it. */
enum kr_notify_err kr_notify_delete(struct kr_db *db, const char *ws_id, const char *id,
		    enum kr_db_err *db_rc);

/*
 * Send KR_NOTIFY_TEST_TEXT to the target now (synchronously, at most about 15 s).
 * KR_NOTIFY_SEND with err (scrubbed) when Telegram refused it or could not be reached.
 * Changes nothing in the database.
 */
enum kr_notify_err kr_notify_test(struct kr_db *db, const struct kr_config *cfg,
		    const char *ws_id, const char *id, char *err, size_t errlen,
		    enum kr_db_err *db_rc);

/*
 * For the job-finish transaction (call it inside, after the answer message is stored):
 * queue text for every enabled target of the workspace, one outbox row per target and job
 * (UNIQUE (target_id, job_id): a second call for the same job adds nothing, so a retried
 * finish transaction is harmless). Never fails the caller for lack of targets. text NULL
 * counts as "". A KR_DB_ERROR undoes only this statement (the transaction stays usable),
 * so a caller may log it and commit the answer anyway.
 */
enum kr_db_err	 kr_notify_enqueue(struct kr_db *db, const char *ws_id, const char *job_id,
		    const char *text);

/*
 * Whether the workspace has an enabled target (*yes 1) or not (0): lets a caller finishing
 * many jobs of a workspace skip kr_notify_enqueue when there is nothing to queue. Same
 * non-locking read as kr_notify_enqueue's. On an error *yes is 1 (enqueue as usual).
 */
enum kr_db_err	 kr_notify_has_targets(struct kr_db *db, const char *ws_id, int *yes);

/*
 * For the runner, about once a second: send up to max (at most KR_NOTIFY_BATCH_MAX) due
 * outbox rows. Claims them in one short transaction (FOR UPDATE SKIP LOCKED on
 * notification_outbox_due; attempts + 1 and next_try_at pushed a minute ahead, so another
 * runner leaves them alone), commits, sends them all at once on a curl multi handle with no
 * transaction open (it returns within about 15 s), then records each outcome: delivered, or
 * retried after 10 s, 20 s, 40 s ... capped at 10 min (or Telegram's retry_after when
 * longer), or given up (next_try_at parked at the end of time) after
 * KR_NOTIFY_MAX_ATTEMPTS attempts (KR_NOTIFY_DEFERRED_MAX when the last one was only
 * deferred: a 429, or the database away), when Telegram refuses the request itself (400,
 * 401, 403, 404) or when the target is disabled. last_error goes on the row and on the
 * target; last_delivered_at on the target. *delivered gets the number sent.
 *
 * At least once: Telegram has no idempotency key, so a message sent by a runner that dies
 * (or loses the database) before recording it is sent again when its claim expires.
 */
enum kr_db_err	 kr_notify_deliver_due(struct kr_db *db, const struct kr_config *cfg,
		    unsigned max, unsigned *delivered);

#endif
