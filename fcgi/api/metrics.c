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
	for (i = 0; i < NBUCKETS && seconds > buckets[i]; i++)
		;
	hist[i]++;
	hist_count++;
	hist_sum += seconds;
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
