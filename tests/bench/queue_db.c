/*
 * The runner's database path alone, for tests/bench/runner_bench.py --db-path: claim the
 * due jobs of one workspace CLAIM at a time (kr_queue_claim) and store each claim as
 * answered in transactions of BATCH (kr_queue_succeed_batch), one connection, no HTTP,
 * until the queue is empty. What this costs MariaDB per job is what the runner cannot go
 * below on the same machine.
 *
 *	queue_db CONFIG WORKSPACE_ID CLAIM BATCH
 *
 * Prints "jobs N seconds S client_cpu_s C" on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <mysql.h>

#include "kr_config.h"
#include "kr_db.h"
#include "kr_log.h"
#include "kr_queue.h"
#include "kr_time.h"

#define RUNNER_ID	"01a20000-0000-7000-8000-0000000bec4d"

static double
seconds(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double
cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int
only_ws(const char *ws_id, void *arg)
{
	return strcmp(ws_id, arg) == 0;
}

/* Store jobs[0, n) as answered, batch at a time; 0 when every call returned KR_DB_OK. */
static int
store(struct kr_db *db, struct kr_claimed *jobs, size_t n, size_t batch)
{
	static char text[] = "Hello from the database path";
	struct kr_llm_result res = { .cls = KR_LLM_OK, .http_status = 200, .retry_after_ms = -1,
	    .latency_ms = 1, .text = text, .input_tokens = 12, .output_tokens = 20 };
	const struct kr_claimed *jp[KR_QUEUE_BATCH_MAX];
	const struct kr_attempt *ap[KR_QUEUE_BATCH_MAX];
	struct kr_attempt a[KR_QUEUE_BATCH_MAX];
	enum kr_queue_result out[KR_QUEUE_BATCH_MAX];
	char now[KR_TIME_MAX];

	kr_time_now_rfc3339(now);
	for (size_t off = 0; off < n; off += batch) {
		size_t k = n - off < batch ? n - off : batch;
		for (size_t i = 0; i < k; i++) {
			memset(&a[i], 0, sizeof(a[i]));
			a[i].provider = "anthropic";
			a[i].model = "claude-sonnet-4-5-20250929";
			(void)kr_time_to_db(now, a[i].started_at);
			a[i].r = &res;
			a[i].outcome = "ok";
			jp[i] = &jobs[off + i];
			ap[i] = &a[i];
		}
		if (kr_queue_succeed_batch(db, jp, ap, k, out) != KR_DB_OK)
			return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct kr_config cfg;
	struct kr_db *db;
	char err[256];
	size_t total = 0, claim, batch;
	double t0, c0;

	if (argc != 5 || (claim = strtoul(argv[3], NULL, 10)) == 0 || claim > KR_DB_ROWS_MAX ||
	    (batch = strtoul(argv[4], NULL, 10)) == 0 || batch > KR_QUEUE_BATCH_MAX) {
		fprintf(stderr, "usage: queue_db CONFIG WORKSPACE_ID CLAIM(1-%d) BATCH(1-%d)\n",
		    KR_DB_ROWS_MAX, KR_QUEUE_BATCH_MAX);
		return 2;
	}
	if (kr_config_load(&cfg, argv[1], err, sizeof(err)) != KR_CONFIG_OK) {
		fprintf(stderr, "queue_db: %s\n", err);
		return 2;
	}
	kr_log_init("queue_db", cfg.log_level);
	if (mysql_library_init(0, NULL, NULL) != 0 || (db = kr_db_new(&cfg)) == NULL) {
		fprintf(stderr, "queue_db: no database\n");
		return 2;
	}
	t0 = seconds();
	c0 = cpu_seconds();
	for (;;) {
		struct kr_claimed *jobs = NULL;
		size_t n = 0;
		int rc;

		if (kr_queue_claim(db, RUNNER_ID, 60, (unsigned)claim, only_ws, argv[2], &jobs,
		    &n) != KR_DB_OK) {
			fprintf(stderr, "queue_db: a claim failed\n");
			return 1;
		}
		rc = n > 0 ? store(db, jobs, n, batch) : 0;
		for (size_t i = 0; i < n; i++)
			kr_claimed_release(&jobs[i]);
		free(jobs);
		if (rc != 0) {
			fprintf(stderr, "queue_db: a batch could not be stored\n");
			return 1;
		}
		if (n == 0)
			break;
		total += n;
	}
	printf("jobs %zu seconds %.3f client_cpu_s %.3f\n", total, seconds() - t0,
	    cpu_seconds() - c0);
	kr_db_free(&db);
	kr_config_release(&cfg);
	mysql_library_end();
	return 0;
}
