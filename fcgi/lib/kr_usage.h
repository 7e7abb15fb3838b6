/*
 * kr_usage: usage of a workspace's keys, summed from job_attempts (one row per provider
 * call: tokens, cost, latency, outcome) for the Usage API.
 */
#ifndef KR_USAGE_H
#define KR_USAGE_H

#include <stdint.h>

#include "kr_db.h"
#include "kr_time.h"

#define KR_USAGE_DEFAULT_DAYS	30
#define KR_USAGE_MAX_DAYS	366	/* the longest from..to range */

enum kr_usage_group {
	KR_USAGE_BY_PROVIDER,	/* provider */
	KR_USAGE_BY_MODEL,	/* provider and model */
	KR_USAGE_BY_KEY,	/* provider and key id (NULL: the instance's system keys) */
	KR_USAGE_BY_DAY,	/* UTC day */
	KR_USAGE_BY__MAX
};

/* The columns of kr_usage_rows; a key column not part of the grouping is NULL. */
enum kr_usage_col {
	KR_UC_PROVIDER, KR_UC_MODEL, KR_UC_KEY_ID, KR_UC_DAY, KR_UC_CALLS, KR_UC_SUCCESSES,
	KR_UC_FAILURES, KR_UC_INPUT_TOKENS, KR_UC_OUTPUT_TOKENS, KR_UC_COST_USD, KR_UC_P50,
	KR_UC_P95, KR_UC__MAX
};

/* "provider", "model", "key" or "day": 0 with *g set, else -1. */
int		kr_usage_group_parse(const char *s, enum kr_usage_group *g);

/*
 * A bound of the queried range as milliseconds since the epoch: an RFC 3339 time with any
 * UTC offset ("2026-11-21T22:49:05.123Z", "...+01:00"; a space stands for '+', as a '+'
 * in a query string decodes to one), or a date "2026-11-21", which means that day's start,
 * or for the end of the range (end non-zero) the next day's start, so that the day is
 * included. Years 1000 to 9999, and never past the end of 9999 (so not the end of
 * 9999-12-31). 0, or -1 when s is none of these or not a real date.
 */
int		kr_usage_parse_time(const char *s, int end, int64_t *ms);
/* ms since the epoch as DATETIME(3) text for a bound parameter ("2026-11-21 22:49:05.123"). */
void		kr_usage_db_time(int64_t ms, char out[KR_TIME_MAX]);

/*
 * One row per group of the workspace's attempts that started in [from, to) (DATETIME(3)
 * texts), columns enum kr_usage_col: calls, successes (outcome ok), failures, token and
 * cost sums, and the 50th and 95th latency percentiles of the group's calls (linear
 * interpolation between the closest ranks, PERCENTILE_CONT), in whole milliseconds.
 * Ordered by day, provider, model, key id.
 */
enum kr_db_err	kr_usage_rows(struct kr_db *db, const char *ws_id, enum kr_usage_group g,
		    const char *from, const char *to, struct kr_db_res *res);

#endif
