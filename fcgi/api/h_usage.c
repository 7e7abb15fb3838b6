/*
 * GET /api/workspaces/{ws}/usage?from=&to=&groupBy=provider|model|key|day: the workspace's
 * provider calls summed per group (kr_usage). from and to are RFC 3339 times or dates
 * (a date as to includes that day); by default the last 30 days; groupBy defaults to day.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handlers.h"
#include "kr_json.h"
#include "kr_usage.h"

#define PARAM_MAX	80

/* 1 when the query string has name (with or without a value), whatever its value. */
static int
query_has(const struct kr_req *req, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = req->query; p != NULL && *p != '\0'; ) {
		if (strncmp(p, name, n) == 0 && (p[n] == '=' || p[n] == '&' || p[n] == '\0'))
			return 1;
		p = strchr(p, '&');
		p = p != NULL ? p + 1 : NULL;
	}
	return 0;
}

/* A bound from the query (ms since the epoch); 0 when absent, 1 when set, -1 after 422. */
static int
req_bound(struct kr_req *req, struct kr_resp *resp, const char *name, int end, int64_t *ms)
{
	char buf[PARAM_MAX];
	const char *s = req_query(req, name, buf, sizeof(buf));

	if (s == NULL && !query_has(req, name))
		return 0;
	if (s == NULL || kr_usage_parse_time(s, end, ms) != 0) {
		resp_error(resp, 422, name, "%s must be an RFC 3339 time such as "
		    "2026-11-21T22:49:05Z or a date such as 2026-11-21", name);
		return -1;
	}
	return 1;
}

/* The range [from, to) as DATETIME(3) texts; -1 after answering 422. */
static int
req_range(struct kr_req *req, struct kr_resp *resp, char from[KR_TIME_MAX],
    char to[KR_TIME_MAX])
{
	int64_t f = 0, t = 0;
	struct timespec now;
	int has_f, has_t;

	if ((has_f = req_bound(req, resp, "from", 0, &f)) < 0 ||
	    (has_t = req_bound(req, resp, "to", 1, &t)) < 0)
		return -1;
	if (!has_t) {
		clock_gettime(CLOCK_REALTIME, &now);
		t = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	}
	if (!has_f)
		f = t - (int64_t)KR_USAGE_DEFAULT_DAYS * 86400000;
	if (f >= t) {
		resp_error(resp, 422, "from", "from must be before to");
		return -1;
	}
	if (t - f > (int64_t)KR_USAGE_MAX_DAYS * 86400000) {
		resp_error(resp, 422, "from", "the range from..to is at most %d days",
		    KR_USAGE_MAX_DAYS);
		return -1;
	}
	kr_usage_db_time(f, from);
	kr_usage_db_time(t, to);
	return 0;
}

/* 1 when s is a plain decimal number ("-12.50"), which JSON can carry as written. */
static int
is_decimal(const char *s)
{
	size_t i = *s == '-' ? 1 : 0, d = strspn(s + i, "0123456789");

	if (d == 0)
		return 0;
	i += d;
	if (s[i] == '.' && strspn(s + i + 1, "0123456789") > 0)
		i += 1 + strspn(s + i + 1, "0123456789");
	return s[i] == '\0';
}

/* Add a DECIMAL cell as a JSON number written like the database wrote it. */
static void
add_number(json_object *o, const char *key, const char *cell)
{
	char t[64];
	size_t n;

	if (cell == NULL || strlen(cell) >= sizeof(t) || !is_decimal(cell)) {
		json_object_object_add(o, key, cell != NULL ? json_object_new_double(
		    strtod(cell, NULL)) : NULL);
		return;
	}
	memcpy(t, cell, strlen(cell) + 1);
	if (strchr(t, '.') != NULL) {
		for (n = strlen(t); t[n - 1] == '0'; n--)
			t[n - 1] = '\0';
		if (t[n - 1] == '.')
			t[n - 1] = '\0';
	}
	json_object_object_add(o, key, json_object_new_double_s(strtod(t, NULL), t));
}

static json_object *
view_usage_row(const struct kr_db_res *res, unsigned row)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "provider", kr_db_cell(res, row, KR_UC_PROVIDER));
	kr_json_add_str(o, "model", kr_db_cell(res, row, KR_UC_MODEL));
	kr_json_add_str(o, "keyId", kr_db_cell(res, row, KR_UC_KEY_ID));
	kr_json_add_str(o, "day", kr_db_cell(res, row, KR_UC_DAY));
	kr_json_add_int(o, "calls", kr_db_cell_int(res, row, KR_UC_CALLS, 0));
	kr_json_add_int(o, "successes", kr_db_cell_int(res, row, KR_UC_SUCCESSES, 0));
	kr_json_add_int(o, "failures", kr_db_cell_int(res, row, KR_UC_FAILURES, 0));
	kr_json_add_int(o, "inputTokens", kr_db_cell_int(res, row, KR_UC_INPUT_TOKENS, 0));
	kr_json_add_int(o, "outputTokens", kr_db_cell_int(res, row, KR_UC_OUTPUT_TOKENS, 0));
	add_number(o, "costUsd", kr_db_cell(res, row, KR_UC_COST_USD));
	kr_json_add_int(o, "p50LatencyMs", kr_db_cell_int(res, row, KR_UC_P50, 0));
	kr_json_add_int(o, "p95LatencyMs", kr_db_cell_int(res, row, KR_UC_P95, 0));
	return o;
}

void
h_usage(struct kr_req *req, struct kr_resp *resp)
{
	enum kr_usage_group g = KR_USAGE_BY_DAY;
	char from[KR_TIME_MAX], to[KR_TIME_MAX], buf[PARAM_MAX];
	const char *by = req_query(req, "groupBy", buf, sizeof(buf));
	json_object *o, *a;
	struct kr_db_res res;
	enum kr_db_err rc;

	if ((by != NULL || query_has(req, "groupBy")) &&
	    (by == NULL || kr_usage_group_parse(by, &g) != 0)) {
		resp_error(resp, 422, "groupBy", "groupBy must be provider, model, key or day");
		return;
	}
	if (req_range(req, resp, from, to) != 0)
		return;
	if ((rc = kr_usage_rows(req->db, req->p.ws.id, g, from, to, &res)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	o = json_object_new_object();
	a = json_object_new_array();
	for (unsigned i = 0; i < res.nrows; i++)
		json_object_array_add(a, view_usage_row(&res, i));
	json_object_object_add(o, "rows", a);
	kr_db_res_free(&res);
	resp_json(resp, 200, o);
}
