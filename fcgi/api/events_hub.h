/*
 * events_hub: fans a workspace's events out to the server-sent event streams of this process
 * (design.md, "Events and server-sent events").
 *
 * One poller thread (hub_run) reads, every HUB_POLL_MS and at once when a stream joins a
 * workspace nobody watched yet, the new events of each workspace that has listeners: one
 * query per such workspace per tick, however many streams watch it. It keeps the latest of
 * them, already in wire form, in a per-workspace ring (at most HUB_RING events and
 * HUB_RING_BYTES bytes) and wakes that workspace's streams with its condition variable.
 * Stream threads never poll for new events; they read the database only to catch up from an
 * id older than what the ring holds (a resume, or a stream that fell behind).
 *
 * Event ids of a workspace are gap-free and commit in order (kr_events.h), so a stream's
 * state is one number, its cursor: it has sent every event up to it and none after it.
 *
 * Process-wide: hub_run once, in its own thread; hub_stop from anywhere (ends the poller
 * and wakes every stream, which then sees HUB_NEXT_STOP); hub_release after the poller and
 * every stream thread have returned.
 */
#ifndef KR_EVENTS_HUB_H
#define KR_EVENTS_HUB_H

#include <stdint.h>

#include "kr_buf.h"
#include "kr_config.h"
#include "kr_db.h"
#include "kr_time.h"

#define HUB_POLL_MS	250
#define HUB_RING	1024
#define HUB_RING_BYTES	(4 * 1024 * 1024)
#define HUB_PAGE	500		/* events per query, poller and catch-up alike */

enum hub_err {
	HUB_OK = 0,
	HUB_NOMEM,
	HUB_STOPPING,	/* hub_stop was called: no new streams */
	HUB_CALLER_FULL,	/* the caller has max_per_caller streams open in this process */
	HUB_WS_FULL,	/* the workspace has max_per_ws streams open in this process */
};

/* Open streams at most, in this process: one caller's (a user or a token) and a workspace's. */
struct hub_limits {
	unsigned	max_per_caller, max_per_ws;
};
/* The caller's name for the limits: "u:" + user id or "t:" + token id. */
#define HUB_CALLER_MAX	(2 + KR_UUID_MAX)

/* A workspace as the hub watches it; streams hold it between hub_join and hub_leave. */
struct hub_ws;

/* The poller: runs until hub_stop, with its own database connection. 0, or -1 at start-up. */
int		hub_run(const struct kr_config *cfg);
/* End the poller and wake every stream for good. Safe from any thread, more than once. */
void		hub_stop(void);
int		hub_stopping(void);
/* Free what the hub holds; only once hub_run and every stream have returned. */
void		hub_release(void);

/*
 * Become a listener of the workspace (by id) for caller, within lim: so that one caller, or
 * the callers of one workspace, cannot hold every stream thread of the process. *ws is valid
 * until hub_leave.
 */
enum hub_err	hub_join(const char *ws_id, const char *caller, const struct hub_limits *lim,
		    struct hub_ws **ws);
/* Stop listening (as caller); *ws becomes NULL. */
void		hub_leave(struct hub_ws **ws, const char *caller);

enum hub_next {
	HUB_NEXT_EVENTS,	/* out got events after *cursor in wire form; *cursor advanced */
	HUB_NEXT_TIMEOUT,	/* nothing new within wait_ms */
	HUB_NEXT_BEHIND,	/* the ring no longer holds *cursor + 1: read from the database */
	HUB_NEXT_STOP,		/* hub_stop was called: end the stream */
	HUB_NEXT_NOMEM,		/* out could not grow */
};

/*
 * Wait up to wait_ms for events after *cursor and append them (at most about 256 KiB, at
 * least one event) to out in wire form.
 */
enum hub_next	hub_next(struct hub_ws *ws, uint64_t *cursor, struct kr_buf *out,
		    unsigned wait_ms);

/*
 * Where a new reader of the workspace starts: *head is its highest retained event id, or its
 * sequence when it retains none; *first is its lowest retained id (0 when none). The row is
 * what counts, not the sequence: kr_event_append outside a transaction commits the id a
 * moment before the row, and a reader starting at the id would never see that row.
 */
enum kr_db_err	hub_head(struct kr_db *db, const char *ws_id, uint64_t *first, uint64_t *head);

/*
 * Append one event in the wire form of the HTML standard's server-sent events:
 * "id: <seq>\nevent: <type>\ndata: <data>\n\n" (a line break in data starts another data
 * line, which the client joins back; CR and LF are dropped from type).
 */
enum kr_buf_err	hub_format(struct kr_buf *out, uint64_t seq, const char *type, const char *data);

#endif
