/*
 * /api/workspaces/{ws}/jobs: list and read (viewer); create, cancel and retry (member).
 * Chat jobs are made by posting a message (h_chats.c), scheduled ones by schedules: this
 * endpoint creates tasks only.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_chats.h"
#include "kr_jobs.h"
#include "kr_json.h"
#include "kr_providers.h"

#define MODEL_MAX		128	/* characters, as jobs.requested_model */
#define IDEMPOTENCY_KEY_MAX	200
#define PRIORITY_MIN		(-100)
#define PRIORITY_MAX		100
#define RUN_AT_AHEAD_MAX_MS	(366LL * 24 * 3600 * 1000)	/* "a year", leap years too */

static const char *const job_statuses[] = {
	"queued", "running", "retrying", "succeeded", "failed", "cancelled",
};

/* ?status=: NULL when absent or empty; -1 after 422. */
static int
query_status(struct kr_req *req, struct kr_resp *resp, char *buf, size_t len,
    const char **out)
{
	const char *s = req_query(req, "status", buf, len);

	*out = NULL;
	if (s != NULL && *s == '\0')
		return 0;
	for (size_t i = 0; s != NULL && i < sizeof(job_statuses) / sizeof(job_statuses[0]); i++)
		if (strcmp(s, job_statuses[i]) == 0) {
			*out = job_statuses[i];
			return 0;
		}
	if (s == NULL && !req_query_has(req, "status"))
		return 0;
	resp_error(resp, 422, "status", "status must be queued, running, retrying, succeeded, "
	    "failed or cancelled");
	return -1;
}

/* An integer field within [lo, hi]; absent leaves *out alone. 0, or -1 after 422. */
static int
req_int_range(struct kr_req *req, struct kr_resp *resp, const char *field, long long lo,
    long long hi, long long *out)
{
	switch (kr_json_int(req->json, field, out)) {
	case KR_JSON_ABSENT:
		return 0;
	case KR_JSON_TYPE:
		resp_error(resp, 422, field, "%s must be a whole number", field);
		return -1;
	case KR_JSON_OK:
		break;
	}
	if (*out < lo || *out > hi) {
		resp_error(resp, 422, field, "%s must be from %lld to %lld", field, lo, hi);
		return -1;
	}
	return 0;
}

/* n digits at s as a number into *v; -1 when they are not all digits. */
static int
digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant). */
static int64_t
days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

/*
 * An RFC 3339 date-time (section 5.6: "2026-11-21T22:49:05.123Z", any numeric offset,
 * fractions beyond milliseconds dropped) as milliseconds since the epoch. 0, or -1 when s
 * is malformed or names no real time.
 */
static int
parse_rfc3339(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, frac = 0, sign = 0;
	const char *p;

	if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) || strchr("Tt ", s[10]) == NULL ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
	    digits(s + 17, 2, &sec))
		return -1;
	p = s + 19;
	if (*p == '.') {
		int n = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, n++)
			if (n < 3)
				frac = frac * 10 + (*p - '0');
		if (n == 0)
			return -1;
		for (; n < 3; n++)
			frac *= 10;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om))
			return -1;
		p += 6;
	} else
		return -1;
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 60 || oh > 23 || om > 59)
		return -1;
	if (sec == 60)
		sec = 59;	/* a leap second: close enough for a start time */
	*ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) -
	    (int64_t)sign * (oh * 3600 + om * 60)) * 1000 + frac;
	return 0;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * runAt: absent or in the past leaves *out NULL (run now); else the time as DATETIME(3)
 * text in buf. More than a year ahead is refused. 0, or -1 after 422.
 */
static int
req_run_at(struct kr_req *req, struct kr_resp *resp, char buf[KR_TIME_MAX], const char **out)
{
	const char *s = NULL;
	struct tm tm;
	int64_t ms, now = now_ms();
	time_t secs;

	if (req_str(req, resp, "runAt", 0, 1, 64, &s) != 0)
		return -1;
	if (s == NULL)
		return 0;
	if (parse_rfc3339(s, &ms) != 0) {
		resp_error(resp, 422, "runAt", "runAt must be an RFC 3339 time "
		    "(2026-11-21T22:49:05.123Z)");
		return -1;
	}
	if (ms > now + RUN_AT_AHEAD_MAX_MS) {
		resp_error(resp, 422, "runAt", "runAt must be at most a year ahead");
		return -1;
	}
	if (ms <= now)
		return 0;
	secs = (time_t)(ms / 1000);
	if (gmtime_r(&secs, &tm) == NULL) {
		resp_error(resp, 422, "runAt", "runAt is out of range");
		return -1;
	}
	/* The ranges of struct tm (and a year under 10000, a year from now) bound the size. */
	snprintf(buf, KR_TIME_MAX, "%04u-%02u-%02u %02u:%02u:%02u.%03u",
	    (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
	    (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
	    (unsigned)tm.tm_sec % 100u, (unsigned)(ms % 1000));
	*out = buf;
	return 0;
}

/* type: "task" (the default); the other types are made elsewhere. 0, or -1 after 422. */
static int
req_type(struct kr_req *req, struct kr_resp *resp)
{
	const char *s = NULL;

	if (req_str(req, resp, "type", 0, 1, 16, &s) != 0)
		return -1;
	if (s != NULL && strcmp(s, "task") != 0) {
		resp_error(resp, 422, "type", "type must be \"task\" (chat jobs come from "
		    "messages, scheduled jobs from schedules)");
		return -1;
	}
	return 0;
}

/* chatId: absent, or a chat of this workspace. 0, or -1 after answering 422 or 503. */
static int
req_chat(struct kr_req *req, struct kr_resp *resp, const char **out)
{
	const char *s = NULL;
	enum kr_db_err rc;
	int found = 0;

	if (req_str(req, resp, "chatId", 0, 1, 64, &s) != 0)
		return -1;
	if (s == NULL)
		return 0;
	if (kr_uuid_valid(s) &&
	    (rc = kr_chat_exists(req->db, req->p.ws.id, s, &found)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return -1;
	}
	if (!found) {
		resp_error(resp, 422, "chatId", "chatId is not a chat of this workspace");
		return -1;
	}
	*out = s;
	return 0;
}

static int
req_provider(struct kr_req *req, struct kr_resp *resp, const char **out)
{
	const char *s = NULL;

	if (req_str(req, resp, "provider", 0, 1, 32, &s) != 0)
		return -1;
	if (s != NULL && kr_provider_find(s) == NULL) {
		resp_error(resp, 422, "provider", "unknown provider \"%.32s\"", s);
		return -1;
	}
	*out = s;
	return 0;
}

/* Read and check the body into j (run_at points into buf). 0, or -1 after answering. */
static int
read_job(struct kr_req *req, struct kr_resp *resp, struct kr_job_new *j,
    char buf[KR_TIME_MAX])
{
	long long max_attempts = 5, priority = 0;

	if (req_type(req, resp) != 0 ||
	    req_bytes(req, resp, "input", 1, 1, KR_JOB_INPUT_MAX, &j->input) != 0 ||
	    req_bytes(req, resp, "systemPrompt", 0, 0, KR_JOB_INPUT_MAX, &j->system_prompt) != 0 ||
	    req_provider(req, resp, &j->provider) != 0 ||
	    req_str(req, resp, "model", 0, 1, MODEL_MAX, &j->model) != 0 ||
	    req_int_range(req, resp, "maxAttempts", 1, KR_JOB_MAX_ATTEMPTS,
	    &max_attempts) != 0 ||
	    req_int_range(req, resp, "priority", PRIORITY_MIN, PRIORITY_MAX, &priority) != 0 ||
	    req_run_at(req, resp, buf, &j->run_at) != 0 ||
	    req_str(req, resp, "idempotencyKey", 0, 1, IDEMPOTENCY_KEY_MAX,
	    &j->idempotency_key) != 0 ||
	    req_chat(req, resp, &j->chat_id) != 0)
		return -1;
	j->type = "task";
	j->max_attempts = (unsigned)max_attempts;
	j->priority = (int)priority;
	return 0;
}

/* Answer job id with status; 404 when it is not a job of this workspace. */
static void
answer_job(struct kr_req *req, struct kr_resp *resp, const char *id, int detail, int status)
{
	json_object *o = NULL;
	enum kr_db_err rc;

	if (kr_uuid_valid(id) &&
	    (rc = kr_job_json(req->db, req->p.ws.id, id, detail, &o)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (o == NULL)
		resp_error(resp, 404, NULL, "no such job");
	else
		resp_json(resp, status, o);
}

void
h_jobs_list(struct kr_req *req, struct kr_resp *resp)
{
	char status[16], chat[64], schedule[64], before[64];
	struct kr_job_filter f = { 0 };
	json_object *o = NULL;
	enum kr_db_err rc;

	if (req_limit(req, resp, &f.limit) != 0 ||
	    query_status(req, resp, status, sizeof(status), &f.status) != 0 ||
	    req_query_id(req, resp, "chatId", chat, sizeof(chat), &f.chat_id) != 0 ||
	    req_query_id(req, resp, "scheduleId", schedule, sizeof(schedule), &f.schedule_id) != 0 ||
	    req_query_id(req, resp, "before", before, sizeof(before), &f.before) != 0)
		return;
	if ((rc = kr_job_list_json(req->db, req->p.ws.id, &f, &o)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	if (o == NULL)
		resp_error(resp, 422, "before", "before is not a job of this workspace");
	else
		resp_json(resp, 200, o);
}

void
h_jobs_create(struct kr_req *req, struct kr_resp *resp)
{
	struct kr_actor a = req_actor(req);
	struct kr_job_new j = { 0 };
	char run_at[KR_TIME_MAX], id[KR_UUID_MAX];
	enum kr_db_err rc;
	int existing = 0;

	if (read_job(req, resp, &j, run_at) != 0)
		return;
	j.created_by = a.label;
	if ((rc = kr_job_create(req->db, req->p.ws.id, &j, 0, id, &existing)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	answer_job(req, resp, id, 0, existing ? 200 : 202);
}

void
h_jobs_get(struct kr_req *req, struct kr_resp *resp)
{
	answer_job(req, resp, req->params[1], 1, 200);
}

/* Cancel or retry: answer the job with status, 404 or 409. */
static void
change(struct kr_req *req, struct kr_resp *resp, int retry)
{
	const char *id = req->params[1];
	enum kr_job_change result = KR_JOB_NOTFOUND;
	enum kr_db_err rc;

	if (kr_uuid_valid(id)) {
		rc = retry ? kr_job_retry(req->db, req->p.ws.id, id, &result) :
		    kr_job_cancel(req->db, req->p.ws.id, id, &result);
		if (rc != KR_DB_OK) {
			resp_db_error(resp, rc);
			return;
		}
	}
	switch (result) {
	case KR_JOB_CHANGED:
		answer_job(req, resp, id, 0, retry ? 202 : 200);
		break;
	case KR_JOB_NOTFOUND:
		resp_error(resp, 404, NULL, "no such job");
		break;
	case KR_JOB_WRONG_STATE:
		resp_error(resp, 409, NULL, "%s", retry ?
		    "only a failed or cancelled job can be retried" :
		    "only a queued, retrying or running job can be cancelled");
		break;
	}
}

void
h_jobs_cancel(struct kr_req *req, struct kr_resp *resp)
{
	change(req, resp, 0);
}

void
h_jobs_retry(struct kr_req *req, struct kr_resp *resp)
{
	change(req, resp, 1);
}
