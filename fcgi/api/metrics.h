/*
 * metrics: request counts by route and status, a latency histogram and database errors,
 * rendered in the Prometheus text format. Thread-safe; per process.
 */
#ifndef KR_METRICS_H
#define KR_METRICS_H

#include "kr_buf.h"

/*
 * Count one answered request; route is the matched pattern (static) or "unmatched";
 * seconds < 0 counts it without a latency.
 */
void	kr_metrics_observe(const char *method, const char *route, int status, double seconds);
void	kr_metrics_render(struct kr_buf *out);
/*
 * The job and runner figures, shared by every process, read from the database: jobs by
 * status (queue depth is queued + retrying), provider calls in flight on live runners,
 * attempts by outcome and an attempt latency histogram over the last five minutes.
 */
struct kr_db;
void	kr_metrics_render_jobs(struct kr_db *db, struct kr_buf *out);

#endif
