/*
 * kr_events: the workspace event log behind the server-sent events streams.
 *
 * An event is appended in the same transaction as the change it describes. Its id is the
 * workspace's next sequence number, taken under the workspace row lock (UPDATE ...
 * event_seq), so ids commit in order: a reader that has seen id n and then sees n + 2 can
 * rely on n + 1 never appearing later. Payloads are one JSON object
 * {"type", "jobId"?, "job"?, "message"?, "key"?, "at"} and never hold a secret.
 */
#ifndef KR_EVENTS_H
#define KR_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "kr_db.h"

/*
 * Append an event of type to the workspace's log; payload (may be NULL) gets "type" and
 * "at" added and is not consumed. Call inside the caller's transaction (or alone: the
 * statements then commit one by one, which is still ordered). *seq (may be NULL) gets the id.
 */
enum kr_db_err	kr_event_append(struct kr_db *db, const char *ws_id, const char *type,
		    json_object *payload, uint64_t *seq);

/*
 * Append n events (types[i] with payloads[i], which may be NULL; same treatment as
 * kr_event_append) to the workspace's log in this order, with consecutive ids: one sequence
 * step of n and multi-row INSERTs (at most KR_EVENTS_MANY_MAX rows each). *first_seq (may
 * be NULL) gets the first id. n == 0 does nothing.
 */
#define KR_EVENTS_MANY_MAX	64
enum kr_db_err	kr_events_append_many(struct kr_db *db, const char *ws_id,
		    const char *const *types, json_object *const *payloads, size_t n,
		    uint64_t *first_seq);

/*
 * Events of a workspace after seq, oldest first, at most limit. Columns: seq, type, payload
 * (the JSON text).
 */
enum kr_db_err	kr_events_after(struct kr_db *db, const char *ws_id, uint64_t after,
		    unsigned limit, struct kr_db_res *res);
/* The lowest and highest retained ids of a workspace (0, 0 when it has none). */
enum kr_db_err	kr_events_bounds(struct kr_db *db, const char *ws_id, uint64_t *first,
		    uint64_t *last);
/* The workspace's latest event id (its sequence), also when older events were pruned. */
enum kr_db_err	kr_events_last_seq(struct kr_db *db, const char *ws_id, uint64_t *last);
/*
 * Delete events older than hours, workspace by workspace, up to 10,000 of each per call;
 * stops after the workspace that brings the count to max. *deleted gets the count: when it
 * reaches max, there may be more to prune.
 */
enum kr_db_err	kr_events_prune(struct kr_db *db, unsigned hours, uint64_t max,
		    uint64_t *deleted);

#endif
