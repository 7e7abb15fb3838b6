/*
 * h_events: GET /api/workspaces/{ws}/events, the workspace's server-sent events stream
 * (api.md, "Events (server-sent events)"; design.md, "Events and server-sent events").
 *
 * Served by the events pool only, one thread per open stream: the thread waits on the events
 * hub for the workspace's new events, reads the database itself only to resume from a
 * Last-Event-ID (or when it fell behind the hub's ring), checks every EV_RECHECK_MS that its
 * caller may still read the workspace, and sends a comment every EV_PING_MS.
 * The workspace is the one the router resolved for the authenticated caller, so a stream
 * only ever carries its own workspace's events.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "events_hub.h"
#include "handlers.h"
#include "kr_events.h"
#include "kr_json.h"
#include "kr_log.h"
#include "kr_time.h"

#define EV_RETRY_MS	3000	/* the client's reconnection delay (retry:) */
#define EV_PING_MS	15000	/* api.md: a comment at least every 15 s */
#define EV_RECHECK_MS	30000	/* design.md: the caller checked again at least every 60 s */
#define EV_UNKNOWN_MS	5000	/* the next check when the database could not tell */
#define EV_ALIVE_MS	1000	/* how often an idle stream looks for a client that left */
#define EV_DB_RETRY_MS	1000	/* the next catch-up read after a database error */
#define EV_FLUSH_BYTES	(256 * 1024)
#define EV_BUF_MAX	(64 * 1024 * 1024)
#define EV_ID_MAX	20	/* digits of the largest 64-bit id */
#define EV_ROLE		KR_ROLE_VIEWER	/* the route's role (router.c) */

struct ev {
	struct kr_req		*req;
	struct kr_stream	*out;
	struct hub_ws		*ws;
	char			 ws_id[KR_UUID_MAX];
	char			 caller[HUB_CALLER_MAX];	/* for the hub's limits */
	uint64_t		 cursor;	/* every event up to it is sent, none after it */
	struct kr_buf		 buf;		/* wire text not yet written */
	int64_t			 last_write;
	int64_t			 last_ping;	/* the last comment line */
	int64_t			 next_check;
};

/*
 * The id to resume after: the Last-Event-ID header (what a browser sends when it
 * reconnects), else ?lastEventId=. 0 with *have set when there is one; -1 after a 422.
 */
static int
resume_id(struct kr_req *req, struct kr_resp *resp, int *have, uint64_t *id)
{
	char qbuf[EV_ID_MAX + 8];
	const char *s = req->last_event_id;
	unsigned long long v = 0;
	int ok = 0;
	size_t n;

	*have = 0;
	if (s == NULL || *s == '\0') {
		s = req_query(req, "lastEventId", qbuf, sizeof(qbuf));
		if (s == NULL && req_query_has(req, "lastEventId"))
			s = "-";	/* too long or badly escaped: refused below */
	}
	if (s == NULL || *s == '\0')
		return 0;
	n = strlen(s);
	if (n <= EV_ID_MAX && strspn(s, "0123456789") == n) {
		errno = 0;
		v = strtoull(s, NULL, 10);
		ok = errno == 0;
	}
	if (!ok) {
		resp_error(resp, 422, "lastEventId", "lastEventId must be an event id (digits)");
		return -1;
	}
	*have = 1;
	*id = (uint64_t)v;
	return 0;
}

/*
 * Where a stream starts: after id (when given) if every event after it is still retained,
 * else after the workspace's latest event, with *resync set when an id was given.
 */
static enum kr_db_err
start_point(struct kr_db *db, const char *ws_id, int have, uint64_t id, uint64_t *cursor,
    int *resync)
{
	uint64_t latest, first;
	enum kr_db_err rc;

	*resync = 0;
	if ((rc = hub_head(db, ws_id, &first, &latest)) != KR_DB_OK)
		return rc;
	*cursor = latest;
	if (!have || id == latest)
		return KR_DB_OK;
	if (id < latest && first != 0 && first <= id + 1) {
		*cursor = id;
		return KR_DB_OK;
	}
	*resync = 1;		/* pruned since, or an id this workspace never had */
	return KR_DB_OK;
}

/* Queue `event: resync` telling the client to reload, then carry on from the cursor. */
static enum kr_buf_err
add_resync(struct ev *s)
{
	json_object *o = json_object_new_object();
	enum kr_buf_err rc;
	char now[KR_TIME_MAX];

	kr_time_now_rfc3339(now);
	kr_json_add_str(o, "type", "resync");
	kr_json_add_int(o, "lastEventId", (long long)s->cursor);
	kr_json_add_str(o, "at", now);
	/* With an id, a reconnect after this point resumes from here, not from the old id. */
	rc = hub_format(&s->buf, s->cursor, "resync", json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return rc;
}

/* Write and flush what is queued. 0, or -1 when the client has gone. */
static int
send_queued(struct ev *s)
{
	if (s->buf.failed != KR_BUF_OK)
		return -1;
	if (s->buf.len > 0 && s->out->write(s->out->ctx, s->buf.data, s->buf.len) != 0)
		return -1;
	kr_buf_reset(&s->buf);
	if (s->out->flush(s->out->ctx) != 0)
		return -1;
	s->last_write = kr_time_mono_ms();
	return 0;
}

/*
 * One page of events after the cursor from the database, for a stream the hub's ring no
 * longer covers. 0 when it sent some, 1 when the database failed (try again shortly), -1
 * to end the stream.
 */
static int
catch_up(struct ev *s)
{
	struct kr_db_res res;
	unsigned nrows;
	int resync;

	if (kr_events_after(s->req->db, s->ws_id, s->cursor, HUB_PAGE, &res) != KR_DB_OK)
		return 1;
	for (unsigned i = 0; i < res.nrows; i++) {
		uint64_t seq = (uint64_t)kr_db_cell_int(&res, i, 0, 0);
		if (seq <= s->cursor)
			continue;
		hub_format(&s->buf, seq, kr_db_cell(&res, i, 1), kr_db_cell(&res, i, 2));
		s->cursor = seq;
		if (s->buf.len >= EV_FLUSH_BYTES && send_queued(s) != 0)
			break;
	}
	nrows = res.nrows;
	kr_db_res_free(&res);
	if (s->buf.failed != KR_BUF_OK)
		return -1;
	if (nrows > 0)
		return 0;
	/* Nothing after the cursor, yet the ring starts later: pruned under our feet. */
	if (start_point(s->req->db, s->ws_id, 1, s->cursor, &s->cursor, &resync) != KR_DB_OK)
		return 1;
	if (resync)
		return add_resync(s) == KR_BUF_OK ? 0 : -1;
	kr_warn("events: workspace %s: the hub is ahead of the database; ending a stream",
	    s->ws_id);
	return -1;
}

/* Check the caller again when due; 0 when the stream may go on. */
static int
recheck(struct ev *s, int64_t now)
{
	if (now < s->next_check)
		return 0;
	switch (auth_recheck(s->req, EV_ROLE)) {
	case AUTH_VALID:
		s->next_check = now + EV_RECHECK_MS;
		return 0;
	case AUTH_UNKNOWN:
		s->next_check = now + EV_UNKNOWN_MS;
		return 0;
	case AUTH_REVOKED:
		break;
	}
	kr_info("events: ending a stream of workspace %s: its %s no longer gives access",
	    s->ws_id, s->req->p.kind == KR_PRINCIPAL_TOKEN ? "token" : "session");
	return -1;
}

static void
pause_ms(unsigned ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int64_t
min3(int64_t a, int64_t b, int64_t c)
{
	int64_t m = a < b ? a : b;

	return m < c ? m : c;
}

/* Until the client leaves, its access ends or the process stops. */
static void
stream_events(struct ev *s)
{
	for (;;) {
		int64_t now = kr_time_mono_ms(), wait;
		enum hub_next n;
		int r;

		if (recheck(s, now) != 0 || !s->out->alive(s->out->ctx))
			return;
		/* A comment at least every 15 s, also while events flow (api.md). */
		if (now - s->last_ping >= EV_PING_MS) {
			s->last_ping = now;
			if (kr_buf_puts(&s->buf, ": ping\n\n") != KR_BUF_OK || send_queued(s) != 0)
				return;
			continue;
		}
		wait = min3(EV_ALIVE_MS, s->last_ping + EV_PING_MS - now, s->next_check - now);
		n = hub_next(s->ws, &s->cursor, &s->buf, (unsigned)(wait > 0 ? wait : 0));
		if (n == HUB_NEXT_STOP || n == HUB_NEXT_NOMEM)
			return;
		if (n == HUB_NEXT_BEHIND && (r = catch_up(s)) != 0) {
			if (r < 0)
				return;
			pause_ms(EV_DB_RETRY_MS);
		}
		if (s->buf.len > 0 && send_queued(s) != 0)
			return;
	}
}

/* Why hub_join said no: 429 for a caller or workspace at its limit, else 503. */
static void
join_refused(struct kr_resp *resp, enum hub_err herr)
{
	switch (herr) {
	case HUB_CALLER_FULL:
		resp_header(resp, "Retry-After", "10");
		resp_error(resp, 429, NULL, "too many event streams open for this caller "
		    "(events.streams_per_client): close one");
		break;
	case HUB_WS_FULL:
		resp_header(resp, "Retry-After", "10");
		resp_error(resp, 429, NULL, "too many event streams open for this workspace "
		    "(events.streams_per_workspace)");
		break;
	default:
		resp_header(resp, "Retry-After", "1");
		resp_error(resp, 503, NULL, herr == HUB_STOPPING ? "the server is restarting" :
		    "out of memory");
	}
}

void
h_events(struct kr_req *req, struct kr_resp *resp)
{
	const struct hub_limits lim = { req->cfg->events_streams_per_client,
	    req->cfg->events_streams_per_workspace };
	struct ev s = { .req = req, .out = req->stream };
	enum kr_db_err rc;
	enum hub_err herr;
	uint64_t id = 0;
	int have, resync;

	if (req->stream == NULL) {
		resp_error(resp, 400, NULL, "event streams are served on the events socket "
		    "(fcgi.events_socket): check the web server's configuration");
		return;
	}
	if (resume_id(req, resp, &have, &id) != 0)
		return;
	memcpy(s.ws_id, req->p.ws.id, sizeof(s.ws_id));
	if ((rc = start_point(req->db, s.ws_id, have, id, &s.cursor, &resync)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (req->p.kind == KR_PRINCIPAL_TOKEN)
		snprintf(s.caller, sizeof(s.caller), "t:%s", req->p.token.id);
	else
		snprintf(s.caller, sizeof(s.caller), "u:%s", req->p.user.id);
	if ((herr = hub_join(s.ws_id, s.caller, &lim, &s.ws)) != HUB_OK) {
		join_refused(resp, herr);
		return;
	}
	resp->status = 200;
	resp->content_type = "text/event-stream";
	resp_header(resp, "X-Accel-Buffering", "no");
	kr_buf_init(&s.buf, EV_BUF_MAX);
	s.last_write = s.last_ping = kr_time_mono_ms();
	s.next_check = s.last_write + EV_RECHECK_MS;
	kr_buf_printf(&s.buf, "retry: %d\n\n", EV_RETRY_MS);
	if (resync)
		add_resync(&s);
	if (req->stream->begin(req->stream->ctx, resp) == 0 && send_queued(&s) == 0)
		stream_events(&s);
	hub_leave(&s.ws, s.caller);
	kr_buf_release(&s.buf, 0);
}
