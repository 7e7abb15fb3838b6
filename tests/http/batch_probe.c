/*
 * kr-batch-probe: drives the runner's way of storing answers (kr_queue_succeed_batch) on
 * jobs of one workspace, for tests/http/test_batch.py, with the stack's runner stopped.
 *
 *	kr-batch-probe CONFIG WORKSPACE_ID STEAL BUMP [FAIL]
 *
 * Claims the due jobs of WORKSPACE_ID (at most KR_QUEUE_BATCH_MAX). When STEAL is a claimed
 * job's id, that job then gets another lease token in the database, as a rescue and a
 * claim by another runner would leave it. When BUMP is one, its attempts counter goes up
 * by one in the database, as a recorded failure whose commit landed twice would leave it
 * ("-": none). When FAIL is one, a failed attempt of it is recorded twice with the same
 * claim, as a rerun of the transaction after its COMMIT landed unseen would, and the probe
 * prints "fail <first>/<second>" (done or lost each). Then every claimed job is stored as
 * answered ("probe answer <id>", 7 + 11 tokens) in one batch. Prints "<id> done" or "<id>
 * lost" per job and "rc <kr_db_err>"; exits 0 when the batch call returned KR_DB_OK.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "kr_config.h"
#include "kr_db.h"
#include "kr_log.h"
#include "kr_queue.h"
#include "kr_time.h"

#define PROBE_RUNNER	"01a20000-0000-7000-8000-00000000b47c"

static int
only_ws(const char *ws_id, void *arg)
{
	return strcmp(ws_id, arg) == 0;
}

static int
steal(struct kr_db *db, const char *id)
{
	char lease[KR_UUID_MAX];
	struct kr_dbp p[2];
	uint64_t n = 0;

	kr_uuid_new(lease);
	p[0] = KR_P_STR(lease);
	p[1] = KR_P_STR(id);
	return kr_db_exec(db, "UPDATE jobs SET lease_token = ? WHERE id = ?", p, 2, NULL, &n) ==
	    KR_DB_OK && n == 1 ? 0 : -1;
}

static int
bump(struct kr_db *db, const char *id)
{
	struct kr_dbp p[1] = { KR_P_STR(id) };
	uint64_t n = 0;

	return kr_db_exec(db, "UPDATE jobs SET attempts = attempts + 1 WHERE id = ?", p, 1,
	    NULL, &n) == KR_DB_OK && n == 1 ? 0 : -1;
}

static const char *
result_name(enum kr_queue_result r)
{
	return r == KR_QUEUE_DONE ? "done" : "lost";
}

/* A transient failure recorded twice for j, then counted once as the runner does. */
static int
fail_twice(struct kr_db *db, struct kr_claimed *j)
{
	struct kr_llm_result res = { .cls = KR_LLM_TRANSIENT, .http_status = 529,
	    .retry_after_ms = -1 };
	struct kr_attempt a = { "anthropic", NULL, "claude-sonnet-4-5-20250929", 0, "", &res,
	    "transient" };
	enum kr_queue_result first, second;
	char now[KR_TIME_MAX];

	snprintf(res.message, sizeof(res.message), "overloaded");
	kr_time_now_rfc3339(now);
	(void)kr_time_to_db(now, a.started_at);
	if (kr_queue_attempt_failed(db, j, &a, &first) != KR_DB_OK ||
	    kr_queue_attempt_failed(db, j, &a, &second) != KR_DB_OK)
		return -1;
	printf("fail %s/%s\n", result_name(first), result_name(second));
	j->attempts++;
	return 0;
}

int
main(int argc, char **argv)
{
	static char texts[KR_QUEUE_BATCH_MAX][64];
	struct kr_llm_result res[KR_QUEUE_BATCH_MAX];
	struct kr_attempt a[KR_QUEUE_BATCH_MAX];
	const struct kr_claimed *jp[KR_QUEUE_BATCH_MAX];
	const struct kr_attempt *ap[KR_QUEUE_BATCH_MAX];
	enum kr_queue_result out[KR_QUEUE_BATCH_MAX];
	struct kr_claimed *jobs = NULL;
	struct kr_config cfg;
	struct kr_db *db;
	char err[256], now[KR_TIME_MAX];
	enum kr_db_err rc;
	size_t n = 0;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: kr-batch-probe CONFIG WORKSPACE_ID STEAL BUMP [FAIL]\n");
		return 2;
	}
	if (kr_config_load(&cfg, argv[1], err, sizeof(err)) != KR_CONFIG_OK) {
		fprintf(stderr, "kr-batch-probe: %s\n", err);
		return 2;
	}
	kr_log_init("kr-batch-probe", cfg.log_level);
	if (mysql_library_init(0, NULL, NULL) != 0 || (db = kr_db_new(&cfg)) == NULL) {
		fprintf(stderr, "kr-batch-probe: no database\n");
		return 2;
	}
	if (kr_queue_claim(db, PROBE_RUNNER, 60, KR_QUEUE_BATCH_MAX, only_ws, argv[2], &jobs,
	    &n) != KR_DB_OK) {
		fprintf(stderr, "kr-batch-probe: the claim failed\n");
		return 2;
	}
	kr_time_now_rfc3339(now);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(jobs[i].id, argv[3]) == 0 && steal(db, jobs[i].id) != 0) {
			fprintf(stderr, "kr-batch-probe: could not take job %s away\n", jobs[i].id);
			return 2;
		}
		if (strcmp(jobs[i].id, argv[4]) == 0 && bump(db, jobs[i].id) != 0) {
			fprintf(stderr, "kr-batch-probe: could not count for job %s\n", jobs[i].id);
			return 2;
		}
		if (argc == 6 && strcmp(jobs[i].id, argv[5]) == 0 && fail_twice(db, &jobs[i]) != 0) {
			fprintf(stderr, "kr-batch-probe: could not record job %s's failure\n",
			    jobs[i].id);
			return 2;
		}
		snprintf(texts[i], sizeof(texts[i]), "probe answer %s", jobs[i].id);
		memset(&res[i], 0, sizeof(res[i]));
		res[i].cls = KR_LLM_OK;
		res[i].http_status = 200;
		res[i].text = texts[i];
		res[i].input_tokens = 7;
		res[i].output_tokens = 11;
		res[i].latency_ms = 5;
		memset(&a[i], 0, sizeof(a[i]));
		a[i].provider = "anthropic";
		a[i].model = "claude-sonnet-4-5-20250929";
		(void)kr_time_to_db(now, a[i].started_at);
		a[i].r = &res[i];
		a[i].outcome = "ok";
		jp[i] = &jobs[i];
		ap[i] = &a[i];
	}
	rc = kr_queue_succeed_batch(db, jp, ap, n, out);
	for (size_t i = 0; i < n; i++) {
		printf("%s %s\n", jobs[i].id, rc != KR_DB_OK ? "error" : result_name(out[i]));
		res[i].text = NULL;		/* not ours to free */
		kr_claimed_release(&jobs[i]);
	}
	printf("rc %d\n", (int)rc);
	free(jobs);
	kr_db_free(&db);
	kr_config_release(&cfg);
	mysql_library_end();
	return rc == KR_DB_OK ? 0 : 1;
}
