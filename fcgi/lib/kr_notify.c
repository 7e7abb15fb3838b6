#include "kr_notify.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "kr_audit.h"
#include "kr_crypto.h"
#include "kr_keys.h"
#include "kr_log.h"
#include "kr_telegram.h"
#include "kr_vault.h"

#define N(a)			((unsigned)(sizeof(a) / sizeof((a)[0])))
#define PURPOSE			"telegram_token"
#define COLUMN			"secret"
#define CLAIM_LEASE_S		60	/* longer than a send can take */

#define TARGET_COLUMNS \
    "id, type, chat_ref, hint, is_enabled, last_error, last_delivered_at, created_at"

/* A send's error is stored as the row's and the target's last_error. */
_Static_assert(KR_TG_ERR_MAX <= KR_NOTIFY_ERR_MAX, "a Telegram error fits last_error");

static const char sql_list[] =
    "SELECT " TARGET_COLUMNS " FROM notification_targets WHERE workspace_id = ? "
    "AND (? IS NULL OR created_at < ? OR (created_at = ? AND id < ?)) "
    "ORDER BY created_at DESC, id DESC LIMIT ?";
static const char sql_cursor[] =
    "SELECT created_at FROM notification_targets WHERE workspace_id = ? AND id = ?";
static const char sql_get[] =
    "SELECT " TARGET_COLUMNS " FROM notification_targets WHERE workspace_id = ? AND id = ?";
static const char sql_insert[] =
    "INSERT INTO notification_targets (id, workspace_id, type, chat_ref, secret, hint, "
    "is_enabled) VALUES (?, ?, 'telegram', ?, ?, ?, ?)";
static const char sql_exists[] =
    "SELECT 1 FROM notification_targets WHERE workspace_id = ? AND id = ?";
static const char sql_update[] =
    "UPDATE notification_targets SET is_enabled = IF(?, ?, is_enabled), "
    "chat_ref = COALESCE(?, chat_ref) WHERE workspace_id = ? AND id = ?";
static const char sql_delete[] =
    "DELETE FROM notification_targets WHERE workspace_id = ? AND id = ?";
static const char sql_secret[] =
    "SELECT chat_ref, secret, is_enabled FROM notification_targets "
    "WHERE workspace_id = ? AND id = ?";
/* INSERT ... SELECT reads the targets without locking them at READ COMMITTED. */
static const char sql_enqueue[] =
    "INSERT INTO notification_outbox (target_id, workspace_id, job_id, text) "
    "SELECT id, workspace_id, ?, ? FROM notification_targets "
    "WHERE workspace_id = ? AND is_enabled = 1 "
    "ON DUPLICATE KEY UPDATE notification_outbox.id = notification_outbox.id";
static const char sql_has_targets[] =
    "SELECT EXISTS (SELECT 1 FROM notification_targets WHERE workspace_id = ? "
    "AND is_enabled = 1)";
/* Walks notification_outbox_due (delivered_at, next_try_at). */
static const char sql_due[] =
    "SELECT id, target_id, workspace_id, text, attempts FROM notification_outbox "
    "WHERE delivered_at IS NULL AND next_try_at <= NOW(3) ORDER BY next_try_at LIMIT ? "
    "FOR UPDATE SKIP LOCKED";
static const char sql_claim[] =
    "UPDATE notification_outbox SET attempts = attempts + 1, "
    "next_try_at = NOW(3) + INTERVAL ? SECOND WHERE id = ?";
/* Outcomes are fenced on the attempt that was claimed: a row claimed again is not ours. */
static const char sql_sent[] =
    "UPDATE notification_outbox SET delivered_at = NOW(3), last_error = NULL "
    "WHERE id = ? AND attempts = ? AND delivered_at IS NULL";
static const char sql_failed[] =
    "UPDATE notification_outbox SET last_error = ?, next_try_at = "
    "IF(?, CAST('9999-12-31 23:59:59' AS DATETIME(3)), NOW(3) + INTERVAL ? SECOND) "
    "WHERE id = ? AND attempts = ? AND delivered_at IS NULL";
static const char sql_target_sent[] =
    "UPDATE notification_targets SET last_delivered_at = NOW(3), last_error = NULL "
    "WHERE id = ?";
static const char sql_target_failed[] =
    "UPDATE notification_targets SET last_error = ? WHERE id = ?";
/* Its group became a supergroup: the target follows, unless an admin changed the chat since. */
static const char sql_target_moved[] =
    "UPDATE notification_targets SET chat_ref = ? WHERE workspace_id = ? AND id = ? "
    "AND chat_ref = ?";

enum due_col { DUE_ID, DUE_TARGET, DUE_WS, DUE_TEXT, DUE_ATTEMPTS };

/* ---- validation ------------------------------------------------------------------------ */

const char *
kr_telegram_token_error(const char *token, size_t len)
{
	size_t id = strspn(token, "0123456789"), rest;

	if (len < 3 || len > KR_NOTIFY_TOKEN_MAX || memchr(token, '\0', len) != NULL)
		return "a bot token is 3 to 256 characters long";
	rest = len - id - 1;
	if (id == 0 || id > 20 || token[id] != ':' || rest < 1 ||
	    strspn(token + id + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_-") != rest)
		return "a Telegram bot token looks like 123456789:AAF... (the bot id, a colon, "
		    "then letters, digits, '_' and '-'), as @BotFather gives it";
	return NULL;
}

const char *
kr_telegram_chat_error(const char *chat)
{
	size_t n = strlen(chat);

	if (n == 0 || n > KR_NOTIFY_CHAT_MAX)
		return "a chat id is 1 to 64 characters long";
	for (size_t i = 0; i < n; i++)
		if (!isgraph((unsigned char)chat[i]))
			return "a chat id is a number such as -1001234567890 or a @channelname, "
			    "without spaces";
	return NULL;
}

/* ---- targets --------------------------------------------------------------------------- */

enum kr_db_err
kr_notify_list(struct kr_db *db, const char *ws_id, const char *before, unsigned limit,
    struct kr_db_res *res, int *found)
{
	return kr_db_page(db, sql_cursor, sql_list, ws_id, before, limit, res, found);
}

enum kr_db_err
kr_notify_get(struct kr_db *db, const char *ws_id, const char *id, struct kr_db_res *res)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };

	return kr_db_exec(db, sql_get, p, N(p), res, NULL);
}

enum kr_notify_err
kr_notify_create(struct kr_db *db, const char *ws_id, const char *token, size_t tokenlen,
    const char *chat_id, int enabled, char id[KR_UUID_MAX], enum kr_db_err *db_rc)
{
	char hint[KR_KEY_HINT_MAX];
	unsigned char *ct = NULL;
	size_t ctlen = 0;

	*db_rc = KR_DB_OK;
	kr_uuid_new(id);
	if (kr_vault_seal(db, ws_id, PURPOSE, id, COLUMN, token, tokenlen, &ct, &ctlen) !=
	    KR_VAULT_OK)
		return KR_NOTIFY_VAULT;
	kr_key_hint(token, tokenlen, hint);
	{
		struct kr_dbp p[6] = { KR_P_STR(id), KR_P_STR(ws_id), KR_P_STR(chat_id),
		    KR_P_BLOB(ct, ctlen), KR_P_STR(hint), KR_P_INT(enabled ? 1 : 0) };
		*db_rc = kr_db_exec(db, sql_insert, p, N(p), NULL, NULL);
	}
	free(ct);
	return *db_rc == KR_DB_OK ? KR_NOTIFY_OK : KR_NOTIFY_DB;
}

enum kr_notify_err
kr_notify_update(struct kr_db *db, const char *ws_id, const char *id, int has_enabled,
    int enabled, const char *chat_id, enum kr_db_err *db_rc)
{
	struct kr_dbp q[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
	struct kr_dbp p[5] = { KR_P_INT(has_enabled ? 1 : 0), KR_P_INT(enabled ? 1 : 0),
	    KR_P_STR(chat_id), KR_P_STR(ws_id), KR_P_STR(id) };
	struct kr_db_res res;
	unsigned n;

	if ((*db_rc = kr_db_exec(db, sql_exists, q, N(q), &res, NULL)) != KR_DB_OK)
		return KR_NOTIFY_DB;
	n = res.nrows;
	kr_db_res_free(&res);
	if (n != 1)
		return KR_NOTIFY_NOTFOUND;
	*db_rc = kr_db_exec(db, sql_update, p, N(p), NULL, NULL);
	return *db_rc == KR_DB_OK ? KR_NOTIFY_OK : KR_NOTIFY_DB;
}

enum kr_notify_err
kr_notify_delete(struct kr_db *db, const char *ws_id, const char *id, enum kr_db_err *db_rc)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
	uint64_t n = 0;

	if ((*db_rc = kr_db_exec(db, sql_delete, p, N(p), NULL, &n)) != KR_DB_OK)
		return KR_NOTIFY_DB;
	return n > 0 ? KR_NOTIFY_OK : KR_NOTIFY_NOTFOUND;
}

/* What a send needs of a target: its chat id, whether it is enabled, its token (secret). */
struct target {
	char	*chat;
	int	 enabled;
	char	*token;
	size_t	 tokenlen;
};

static void
target_release(struct target *t)
{
	if (t->token != NULL)
		kr_wipe(t->token, t->tokenlen);
	free(t->token);
	free(t->chat);
	memset(t, 0, sizeof(*t));
}

/* Read and decrypt target id of the workspace. */
static enum kr_notify_err
target_open(struct kr_db *db, const char *ws_id, const char *id, struct target *t,
    enum kr_db_err *db_rc)
{
	struct kr_dbp p[2] = { KR_P_STR(ws_id), KR_P_STR(id) };
	enum kr_notify_err rc = KR_NOTIFY_NOTFOUND;
	enum kr_vault_err vrc;
	struct kr_db_res res;

	memset(t, 0, sizeof(*t));
	if ((*db_rc = kr_db_exec(db, sql_secret, p, N(p), &res, NULL)) != KR_DB_OK)
		return KR_NOTIFY_DB;
	if (res.nrows == 1 && kr_db_cell(&res, 0, 0) != NULL && kr_db_cell(&res, 0, 1) != NULL) {
		t->enabled = kr_db_cell_int(&res, 0, 2, 0) != 0;
		vrc = kr_vault_open(db, ws_id, PURPOSE, id, COLUMN,
		    (const unsigned char *)kr_db_cell(&res, 0, 1), res.lens[1], &t->token,
		    &t->tokenlen);
		rc = vrc == KR_VAULT_OK ? KR_NOTIFY_OK : vrc == KR_VAULT_DB ? KR_NOTIFY_DB :
		    KR_NOTIFY_VAULT;
		if (vrc == KR_VAULT_DB)
			*db_rc = KR_DB_DOWN;
		if (rc == KR_NOTIFY_OK && (t->chat = strdup(kr_db_cell(&res, 0, 0))) == NULL)
			rc = KR_NOTIFY_VAULT;
	}
	kr_db_res_free(&res);
	if (rc != KR_NOTIFY_OK)
		target_release(t);
	return rc;
}

/* A target following its chat, as a kr_db_tx body's argument. */
struct follow_tx {
	const char	*ws_id, *id, *chat, *moved_to;
	uint64_t	 moved;		/* rows changed: 0 when an admin changed the chat since */
};

static enum kr_db_err
follow_in_tx(struct kr_db *db, void *arg)
{
	static const struct kr_actor telegram = { KR_ACTOR_SYSTEM, NULL,
	    "telegram migrate_to_chat_id", NULL };
	struct follow_tx *f = arg;
	struct kr_dbp p[4] = { KR_P_STR(f->moved_to), KR_P_STR(f->ws_id), KR_P_STR(f->id),
	    KR_P_STR(f->chat) };
	json_object *d;
	enum kr_db_err rc;

	f->moved = 0;
	if ((rc = kr_db_exec(db, sql_target_moved, p, N(p), NULL, &f->moved)) != KR_DB_OK ||
	    f->moved == 0)
		return rc;
	d = json_object_new_object();
	json_object_object_add(d, "chatId", json_object_new_string(f->moved_to));
	json_object_object_add(d, "previousChatId", json_object_new_string(f->chat));
	rc = kr_audit(db, f->ws_id, &telegram, "notification.updated", f->id, d);
	json_object_put(d);
	return rc;
}

/*
 * Point target id at the chat Telegram moved chat to (a group became a supergroup), with
 * an audit entry; *moved (may be NULL): whether it did (not when an admin changed the chat
 * meanwhile).
 */
static enum kr_db_err
follow(struct kr_db *db, const char *ws_id, const char *id, const char *chat,
    const char *moved_to, int *moved)
{
	struct follow_tx f = { ws_id, id, chat, moved_to, 0 };
	enum kr_db_err rc = kr_db_tx(db, follow_in_tx, &f, 0);

	if (rc == KR_DB_OK && f.moved > 0)
		kr_info("notification target %s: its group became a supergroup; it sends to the "
		    "new chat from now on", id);
	if (moved != NULL)
		*moved = rc == KR_DB_OK && f.moved > 0;
	return rc;
}

/*
 * Send the test text to target id. A chat that moved (a group became a supergroup) is
 * followed, as deliveries do, and tried once more there.
 */
enum kr_notify_err
kr_notify_test(struct kr_db *db, const struct kr_config *cfg, const char *ws_id,
    const char *id, char *err, size_t errlen, enum kr_db_err *db_rc)
{
	struct kr_tg_outcome out;
	struct target t;
	struct kr_tg_msg m;
	enum kr_notify_err rc;
	char *chat;
	int moved;

	err[0] = '\0';
	if ((rc = target_open(db, ws_id, id, &t, db_rc)) != KR_NOTIFY_OK)
		return rc;
	for (int tries = 0;; tries++) {
		rc = KR_NOTIFY_SEND;
		if (kr_tg_prepare(cfg, t.token, t.tokenlen, t.chat, KR_NOTIFY_TEST_TEXT, &m, err,
		    errlen) != 0)
			break;
		kr_tg_finish(&m, curl_easy_perform(m.easy), &out);
		kr_tg_release(&m);
		if (out.ok) {
			rc = KR_NOTIFY_OK;
			break;
		}
		snprintf(err, errlen, "%s", out.error);
		if (tries > 0 || out.migrate_to[0] == '\0' ||
		    follow(db, ws_id, id, t.chat, out.migrate_to, &moved) != KR_DB_OK || !moved ||
		    (chat = strdup(out.migrate_to)) == NULL)
			break;
		free(t.chat);
		t.chat = chat;
	}
	target_release(&t);
	if (rc == KR_NOTIFY_OK)
		err[0] = '\0';
	return rc;
}

/* ---- outbox ---------------------------------------------------------------------------- */

enum kr_db_err
kr_notify_enqueue(struct kr_db *db, const char *ws_id, const char *job_id, const char *text)
{
	struct kr_dbp p[3] = { KR_P_STR(job_id), KR_P_STR(text != NULL ? text : ""),
	    KR_P_STR(ws_id) };

	return kr_db_exec(db, sql_enqueue, p, N(p), NULL, NULL);
}

enum kr_db_err
kr_notify_has_targets(struct kr_db *db, const char *ws_id, int *yes)
{
	struct kr_dbp p[1] = { KR_P_STR(ws_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	*yes = 1;
	if ((rc = kr_db_exec(db, sql_has_targets, p, N(p), &res, NULL)) != KR_DB_OK)
		return rc;
	*yes = kr_db_cell_int(&res, 0, 0, 1) != 0;
	kr_db_res_free(&res);
	return KR_DB_OK;
}

/* One claimed outbox row on its way. */
struct delivery {
	struct kr_tg_msg		m;
	int			prepared;	/* m holds a transfer to run */
	int			record_target;	/* the outcome belongs on the target too */
	long long		attempts;	/* the claimed attempt (fence) */
	char			chat[KR_NOTIFY_CHAT_MAX + 1];	/* sent to */
	struct kr_tg_outcome	out;
};

/* The claim, as a kr_db_tx body: up to max due rows into res, each pushed a lease ahead. */
struct claim_tx {
	unsigned		max;
	struct kr_db_res	res;
};

static enum kr_db_err
claim_in_tx(struct kr_db *db, void *arg)
{
	struct claim_tx *c = arg;
	struct kr_dbp p[1] = { KR_P_INT(c->max) };
	enum kr_db_err rc;

	kr_db_res_free(&c->res);
	if ((rc = kr_db_exec(db, sql_due, p, N(p), &c->res, NULL)) != KR_DB_OK)
		return rc;
	for (unsigned i = 0; i < c->res.nrows; i++) {
		struct kr_dbp q[2] = { KR_P_INT(CLAIM_LEASE_S), KR_P_STR(kr_db_cell(&c->res, i,
		    DUE_ID)) };
		if ((rc = kr_db_exec(db, sql_claim, q, N(q), NULL, NULL)) != KR_DB_OK)
			return rc;
	}
	return KR_DB_OK;
}

/* Claim up to max due rows into res (one short transaction); res is empty on failure. */
static enum kr_db_err
claim(struct kr_db *db, unsigned max, struct kr_db_res *res)
{
	struct claim_tx c = { max, { 0 } };
	enum kr_db_err rc = kr_db_tx(db, claim_in_tx, &c, 0);

	if (rc != KR_DB_OK)
		kr_db_res_free(&c.res);
	*res = c.res;
	return rc;
}

/* Open row i's target and prepare its send, or settle its outcome now. */
static void
prepare(struct kr_db *db, const struct kr_config *cfg, const struct kr_db_res *res,
    unsigned i, struct delivery *d)
{
	const char *ws = kr_db_cell(res, i, DUE_WS), *target = kr_db_cell(res, i, DUE_TARGET);
	const char *text = kr_db_cell(res, i, DUE_TEXT);
	enum kr_db_err db_rc;
	enum kr_notify_err rc;
	struct target t;

	d->attempts = kr_db_cell_int(res, i, DUE_ATTEMPTS, 0) + 1;
	rc = target_open(db, ws, target, &t, &db_rc);
	d->record_target = rc != KR_NOTIFY_NOTFOUND;
	if (rc == KR_NOTIFY_OK && !t.enabled) {
		snprintf(d->out.error, sizeof(d->out.error), "the target is disabled");
		d->out.permanent = 1;
		d->record_target = 0;
	} else if (rc == KR_NOTIFY_OK) {
		snprintf(d->chat, sizeof(d->chat), "%s", t.chat);
		if (kr_tg_prepare(cfg, t.token, t.tokenlen, t.chat, text != NULL ? text : "",
		    &d->m, d->out.error, sizeof(d->out.error)) == 0)
			d->prepared = 1;
	} else {
		snprintf(d->out.error, sizeof(d->out.error), "%s", rc == KR_NOTIFY_NOTFOUND ?
		    "the target was deleted" : rc == KR_NOTIFY_DB ? "the database was unavailable"
		    : "the bot token could not be decrypted");
		d->out.permanent = rc != KR_NOTIFY_DB;
		d->out.deferred = rc == KR_NOTIFY_DB;
	}
	target_release(&t);
}

/* Run every prepared transfer at once; each ends within its own timeout. */
static void
send_all(struct delivery *d, unsigned n)
{
	CURLM *multi = curl_multi_init();
	struct kr_tg_msg *m;
	CURLMsg *msg;
	int running = 0, left;

	for (unsigned i = 0; multi != NULL && i < n; i++)
		if (d[i].prepared && curl_multi_add_handle(multi, d[i].m.easy) == CURLM_OK)
			running++;
	while (multi != NULL && running > 0) {
		if (curl_multi_perform(multi, &running) != CURLM_OK)
			break;
		if (running > 0 && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
	}
	while (multi != NULL && (msg = curl_multi_info_read(multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE ||
		    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&m) != CURLE_OK)
			continue;
		m->done = 1;
		m->rc = msg->data.result;
	}
	for (unsigned i = 0; i < n; i++) {
		if (!d[i].prepared)
			continue;
		if (multi != NULL)
			curl_multi_remove_handle(multi, d[i].m.easy);
		kr_tg_finish(&d[i].m, d[i].m.done ? d[i].m.rc : CURLE_FAILED_INIT, &d[i].out);
	}
	curl_multi_cleanup(multi);
}

/* 10 s, 20 s, 40 s ... capped; Telegram's retry_after when longer. */
static long
backoff_s(long long attempts, long hint)
{
	long s = KR_NOTIFY_BACKOFF_S;

	for (long long i = 1; i < attempts && s < KR_NOTIFY_BACKOFF_MAX_S; i++)
		s *= 2;
	if (s > KR_NOTIFY_BACKOFF_MAX_S)
		s = KR_NOTIFY_BACKOFF_MAX_S;
	return hint > s ? hint : s;
}

/*
 * Store row i's outcome on the row and its target. A chat that moved is followed and the
 * row sent again at once (the attempt still counts: two chats naming each other end).
 */
static enum kr_db_err
record(struct kr_db *db, const struct kr_db_res *res, unsigned i, const struct delivery *d)
{
	const char *id = kr_db_cell(res, i, DUE_ID), *target = kr_db_cell(res, i, DUE_TARGET);
	const char *ws = kr_db_cell(res, i, DUE_WS);
	int moved = d->out.migrate_to[0] != '\0' && d->record_target;
	int give_up = d->out.permanent || d->attempts >= (d->out.deferred ?
	    KR_NOTIFY_DEFERRED_MAX : KR_NOTIFY_MAX_ATTEMPTS);
	struct kr_dbp t[2] = { KR_P_STR(d->out.error), KR_P_STR(target) };
	enum kr_db_err rc;

	if (d->out.ok) {
		struct kr_dbp p[2] = { KR_P_STR(id), KR_P_INT(d->attempts) };
		if ((rc = kr_db_exec(db, sql_sent, p, N(p), NULL, NULL)) != KR_DB_OK)
			return rc;
		return kr_db_exec(db, sql_target_sent, t + 1, 1, NULL, NULL);
	}
	{
		struct kr_dbp p[5] = { KR_P_STR(d->out.error), KR_P_INT(give_up),
		    KR_P_INT(moved ? 0 : backoff_s(d->attempts, d->out.retry_after_s)),
		    KR_P_STR(id), KR_P_INT(d->attempts) };
		if ((moved && (rc = follow(db, ws, target, d->chat, d->out.migrate_to, NULL)) !=
		    KR_DB_OK) || (rc = kr_db_exec(db, sql_failed, p, N(p), NULL, NULL)) != KR_DB_OK)
			return rc;
	}
	if (give_up)
		kr_info("notification %s to target %s given up after %lld attempts", id, target,
		    d->attempts);
	return d->record_target ? kr_db_exec(db, sql_target_failed, t, N(t), NULL, NULL) :
	    KR_DB_OK;
}

enum kr_db_err
kr_notify_deliver_due(struct kr_db *db, const struct kr_config *cfg, unsigned max,
    unsigned *delivered)
{
	struct kr_db_res res = { 0 };
	struct delivery *d = NULL;
	enum kr_db_err rc, first = KR_DB_OK;

	*delivered = 0;
	if (max > KR_NOTIFY_BATCH_MAX)
		max = KR_NOTIFY_BATCH_MAX;
	if (max == 0)
		return KR_DB_OK;
	if ((rc = claim(db, max, &res)) != KR_DB_OK || res.nrows == 0)
		goto out;
	if ((d = calloc(res.nrows, sizeof(*d))) == NULL) {
		rc = KR_DB_ERROR;	/* the rows come back when their claim expires */
		goto out;
	}
	for (unsigned i = 0; i < res.nrows; i++)
		prepare(db, cfg, &res, i, &d[i]);
	send_all(d, res.nrows);
	for (unsigned i = 0; i < res.nrows; i++) {
		if ((rc = record(db, &res, i, &d[i])) != KR_DB_OK && first == KR_DB_OK)
			first = rc;
		*delivered += d[i].out.ok ? 1u : 0u;
		if (d[i].prepared)
			kr_tg_release(&d[i].m);
	}
	rc = first;
out:
	free(d);
	kr_db_res_free(&res);
	return rc;
}
