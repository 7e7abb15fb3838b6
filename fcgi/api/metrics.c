#include "metrics.h"

#include <pthread.h>
#include <string.h>

#include "kr_db.h"

#define MAX_SERIES	256

static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1, 2.5, 5, 10 };
#define NBUCKETS	(sizeof(buckets) / sizeof(buckets[0]))

struct series {
	const char		*method;
	const char		*route;
	int			 status;
	unsigned long long	 count;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct series series[MAX_SERIES];
static unsigned nseries;
static unsigned long long hist[NBUCKETS + 1];	/* last: +Inf */
static unsigned long long hist_count;
static double hist_sum;

void
kr_metrics_observe(const char *method, const char *route, int status, double seconds)
{
	unsigned i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < nseries; i++)
		if (series[i].status == status && strcmp(series[i].route, route) == 0 &&
		    strcmp(series[i].method, method) == 0)
			break;
	if (i == nseries && nseries < MAX_SERIES)
		series[nseries++] = (struct series){ method, route, status, 0 };
	if (i < nseries)
		series[i].count++;
	if (seconds >= 0) {	/* negative: not a latency (event streams) */
		for (i = 0; i < NBUCKETS && seconds > buckets[i]; i++)
			;
		hist[i]++;
		hist_count++;
		hist_sum += seconds;
	}
	pthread_mutex_unlock(&lock);
}

void
kr_metrics_render(struct kr_buf *out)
{
	unsigned long long cum = 0;

	pthread_mutex_lock(&lock);
	kr_buf_puts(out, "# HELP keyrelay_http_requests_total API requests answered.\n"
	    "# TYPE keyrelay_http_requests_total counter\n");
	for (unsigned i = 0; i < nseries; i++)
		kr_buf_printf(out, "keyrelay_http_requests_total{method=\"%s\",route=\"%s\","
		    "status=\"%d\"} %llu\n", series[i].method, series[i].route, series[i].status,
		    series[i].count);
	kr_buf_puts(out, "# HELP keyrelay_http_request_duration_seconds API request latency.\n"
	    "# TYPE keyrelay_http_request_duration_seconds histogram\n");
	for (unsigned i = 0; i < NBUCKETS; i++) {
		cum += hist[i];
		kr_buf_printf(out, "keyrelay_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    buckets[i], cum);
	}
	cum += hist[NBUCKETS];
	kr_buf_printf(out, "keyrelay_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "keyrelay_http_request_duration_seconds_sum %.6f\n"
	    "keyrelay_http_request_duration_seconds_count %llu\n", cum, hist_sum, hist_count);
	pthread_mutex_unlock(&lock);
	kr_buf_printf(out, "# HELP keyrelay_db_errors_total Database errors seen by this process.\n"
	    "# TYPE keyrelay_db_errors_total counter\nkeyrelay_db_errors_total %llu\n",
	    (unsigned long long)kr_db_error_count());
}

/* By stage (jobs_stage alone), and the due ones (stage 1) split by their status. */
static const char sql_jobs_by_status[] =
    "SELECT status, COUNT(*) FROM jobs WHERE stage = 1 GROUP BY status UNION ALL "
    "SELECT ELT(stage - 1, 'running', 'succeeded', 'failed', 'cancelled'), COUNT(*) FROM jobs "
    "WHERE stage > 1 GROUP BY stage";
static const char sql_in_flight[] =
    "SELECT COALESCE(SUM(in_flight), 0), COUNT(*) FROM runners "
    "WHERE stopped_at IS NULL AND heartbeat_at > NOW(3) - INTERVAL 1 MINUTE";
static const char sql_attempts[] =
    "SELECT outcome, COUNT(*) FROM job_attempts "
    "WHERE started_at > NOW(3) - INTERVAL 5 MINUTE GROUP BY outcome";
static const char sql_latency[] =
    "SELECT SUM(latency_ms <= 100), SUM(latency_ms <= 250), SUM(latency_ms <= 500), "
    "SUM(latency_ms <= 1000), SUM(latency_ms <= 2500), SUM(latency_ms <= 5000), "
    "SUM(latency_ms <= 10000), SUM(latency_ms <= 30000), SUM(latency_ms <= 60000), "
    "COUNT(*), COALESCE(SUM(latency_ms), 0) FROM job_attempts "
    "WHERE started_at > NOW(3) - INTERVAL 5 MINUTE";
static const char *const latency_le[] = { "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30",
    "60" };

static const char *const job_statuses[] = { "queued", "running", "retrying", "succeeded",
    "failed", "cancelled", NULL };
static const char *const outcomes[] = { "ok", "auth", "quota", "rate", "transient", "request",
    "cancelled", NULL };

/* One line per value of names (0 when the result has no row for it): stable series. */
static void
render_rows(struct kr_buf *out, const struct kr_db_res *res, const char *metric,
    const char *label, const char *const names[])
{
	for (unsigned n = 0; names[n] != NULL; n++) {
		const char *v = "0";
		for (unsigned i = 0; i < res->nrows; i++)
			if (strcmp(kr_db_cell(res, i, 0), names[n]) == 0)
				v = kr_db_cell(res, i, 1);
		kr_buf_printf(out, "%s{%s=\"%s\"} %s\n", metric, label, names[n], v);
	}
}

void
kr_metrics_render_jobs(struct kr_db *db, struct kr_buf *out)
{
	struct kr_db_res res;

	if (kr_db_exec(db, sql_jobs_by_status, NULL, 0, &res, NULL) == KR_DB_OK) {
		kr_buf_puts(out, "# HELP keyrelay_jobs Jobs by status (queue depth: queued and "
		    "retrying).\n# TYPE keyrelay_jobs gauge\n");
		render_rows(out, &res, "keyrelay_jobs", "status", job_statuses);
		kr_db_res_free(&res);
	}
	if (kr_db_exec(db, sql_in_flight, NULL, 0, &res, NULL) == KR_DB_OK) {
		kr_buf_printf(out, "# HELP keyrelay_runner_calls_in_flight Provider calls in flight "
		    "on live runners.\n# TYPE keyrelay_runner_calls_in_flight gauge\n"
		    "keyrelay_runner_calls_in_flight %s\n# HELP keyrelay_runners Live runners.\n"
		    "# TYPE keyrelay_runners gauge\nkeyrelay_runners %s\n",
		    kr_db_cell(&res, 0, 0), kr_db_cell(&res, 0, 1));
		kr_db_res_free(&res);
	}
	if (kr_db_exec(db, sql_attempts, NULL, 0, &res, NULL) == KR_DB_OK) {
		kr_buf_puts(out, "# HELP keyrelay_attempts_5m Provider calls of the last five "
		    "minutes by outcome.\n# TYPE keyrelay_attempts_5m gauge\n");
		render_rows(out, &res, "keyrelay_attempts_5m", "outcome", outcomes);
		kr_db_res_free(&res);
	}
	if (kr_db_exec(db, sql_latency, NULL, 0, &res, NULL) == KR_DB_OK) {
		kr_buf_puts(out, "# HELP keyrelay_attempt_latency_5m_seconds Provider call latency, "
		    "last five minutes.\n# TYPE keyrelay_attempt_latency_5m_seconds histogram\n");
		for (unsigned i = 0; i < 9; i++)
			kr_buf_printf(out, "keyrelay_attempt_latency_5m_seconds_bucket{le=\"%s\"} "
			    "%lld\n", latency_le[i], kr_db_cell_int(&res, 0, i, 0));
		kr_buf_printf(out, "keyrelay_attempt_latency_5m_seconds_bucket{le=\"+Inf\"} %lld\n"
		    "keyrelay_attempt_latency_5m_seconds_sum %.3f\n"
		    "keyrelay_attempt_latency_5m_seconds_count %lld\n",
		    kr_db_cell_int(&res, 0, 9, 0), (double)kr_db_cell_int(&res, 0, 10, 0) / 1000.0,
		    kr_db_cell_int(&res, 0, 9, 0));
		kr_db_res_free(&res);
	}
}
