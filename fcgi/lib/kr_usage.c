#include "kr_usage.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define DAY_MS	86400000LL

/*
 * One statement per grouping. The innermost select names the group's key columns (NULL
 * for those not grouped on), the middle one adds the percentiles over each group (window
 * functions cannot be aggregated directly), the outer one sums. The range scan walks
 * job_attempts_usage (workspace_id, started_at).
 */
#define USAGE_SQL(kp, km, kk, kd) \
    "SELECT kp, km, kk, kd, COUNT(*), SUM(outcome = 'ok'), SUM(outcome <> 'ok'), " \
    "SUM(input_tokens), SUM(output_tokens), SUM(cost_usd), CAST(ROUND(MAX(p50)) AS SIGNED), " \
    "CAST(ROUND(MAX(p95)) AS SIGNED) FROM (" \
    "SELECT a.*, " \
    "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY latency_ms) " \
    "OVER (PARTITION BY kp, km, kk, kd) AS p50, " \
    "PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY latency_ms) " \
    "OVER (PARTITION BY kp, km, kk, kd) AS p95 FROM (" \
    "SELECT " kp " AS kp, " km " AS km, " kk " AS kk, " kd " AS kd, outcome, input_tokens, " \
    "output_tokens, cost_usd, latency_ms FROM job_attempts " \
    "WHERE workspace_id = ? AND started_at >= ? AND started_at < ?) a) b " \
    "GROUP BY kp, km, kk, kd ORDER BY kd, kp, km, kk"

static const char *const sqls[KR_USAGE_BY__MAX] = {
	[KR_USAGE_BY_PROVIDER] = USAGE_SQL("provider", "NULL", "NULL", "NULL"),
	[KR_USAGE_BY_MODEL] = USAGE_SQL("provider", "model", "NULL", "NULL"),
	[KR_USAGE_BY_KEY] = USAGE_SQL("provider", "NULL", "key_id", "NULL"),
	[KR_USAGE_BY_DAY] = USAGE_SQL("NULL", "NULL", "NULL", "DATE(started_at)"),
};

static const char *const group_names[KR_USAGE_BY__MAX] = {
	[KR_USAGE_BY_PROVIDER] = "provider",
	[KR_USAGE_BY_MODEL] = "model",
	[KR_USAGE_BY_KEY] = "key",
	[KR_USAGE_BY_DAY] = "day",
};

int
kr_usage_group_parse(const char *s, enum kr_usage_group *g)
{
	for (int i = 0; i < KR_USAGE_BY__MAX; i++)
		if (strcmp(s, group_names[i]) == 0) {
			*g = (enum kr_usage_group)i;
			return 0;
		}
	return -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static long long
days_from_civil(long long y, long long m, long long d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(long long z, long long *y, long long *m, long long *d)
{
	long long era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yoe + era * 400 + (*m <= 2);
}

static int
days_in_month(long long y, long long m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dim[m - 1];
}

/* Exactly n digits at s as a number; -1 when they are not all digits. */
static long long
digits(const char *s, size_t n)
{
	long long v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* The UTC offset at p ("Z", "+01:00", "-05:30"; ' ' for '+') in minutes; -1 on garbage. */
static int
offset_minutes(const char *p, long long *off)
{
	long long h, m;

	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		*off = 0;
		return 0;
	}
	if (strlen(p) != 6 || (*p != '+' && *p != '-' && *p != ' ') || p[3] != ':' ||
	    (h = digits(p + 1, 2)) < 0 || (m = digits(p + 4, 2)) < 0 || h > 23 || m > 59)
		return -1;
	*off = (*p == '-' ? -1 : 1) * (h * 60 + m);
	return 0;
}

/* "THH:MM:SS[.fff...]<offset>" at p: milliseconds into the day, minus the offset. */
static int
time_of_day(const char *p, long long *ms)
{
	long long h, mi, se, frac = 0, off = 0;
	int nd = 0;

	if (strlen(p) < 9 || (*p != 'T' && *p != 't') || p[3] != ':' || p[6] != ':' ||
	    (h = digits(p + 1, 2)) < 0 || (mi = digits(p + 4, 2)) < 0 ||
	    (se = digits(p + 7, 2)) < 0 || h > 23 || mi > 59 || se > 59)
		return -1;
	p += 9;
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, nd++)
			if (nd < 3)
				frac = frac * 10 + (*p - '0');
		if (nd == 0)
			return -1;
		for (int i = nd; i < 3; i++)
			frac *= 10;
	}
	if (offset_minutes(p, &off) != 0)
		return -1;
	*ms = ((h * 60 + mi - off) * 60 + se) * 1000 + frac;
	return 0;
}

int
kr_usage_parse_time(const char *s, int end, int64_t *ms)
{
	long long y, mo, d, day, tod = 0;

	if (strlen(s) < 10 || s[4] != '-' || s[7] != '-' || (y = digits(s, 4)) < 1000 ||
	    (mo = digits(s + 5, 2)) < 1 || mo > 12 || (d = digits(s + 8, 2)) < 1 ||
	    d > days_in_month(y, mo))
		return -1;
	day = days_from_civil(y, mo, d);
	if (s[10] == '\0')
		tod = end ? DAY_MS : 0;
	else if (time_of_day(s + 10, &tod) != 0)
		return -1;
	/* Past the end of 9999 (a date's end, an offset) no DATETIME can say it. */
	if (day * DAY_MS + tod >= days_from_civil(10000, 1, 1) * DAY_MS)
		return -1;
	*ms = (int64_t)(day * DAY_MS + tod);
	return 0;
}

void
kr_usage_db_time(int64_t ms, char out[KR_TIME_MAX])
{
	long long days = ms / DAY_MS, rem = ms % DAY_MS, y, m, d;

	if (rem < 0) {
		rem += DAY_MS;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	/* Every field is in range by construction; the modulos tell the compiler so. */
	snprintf(out, KR_TIME_MAX, "%04u-%02u-%02u %02u:%02u:%02u.%03u",
	    (unsigned)(y % 10000), (unsigned)(m % 100), (unsigned)(d % 100),
	    (unsigned)(rem / 3600000 % 100), (unsigned)(rem / 60000 % 60),
	    (unsigned)(rem / 1000 % 60), (unsigned)(rem % 1000));
}

enum kr_db_err
kr_usage_rows(struct kr_db *db, const char *ws_id, enum kr_usage_group g, const char *from,
    const char *to, struct kr_db_res *res)
{
	struct kr_dbp p[3] = { KR_P_STR(ws_id), KR_P_STR(from), KR_P_STR(to) };

	memset(res, 0, sizeof(*res));
	if ((int)g < 0 || g >= KR_USAGE_BY__MAX)
		return KR_DB_ERROR;
	return kr_db_exec(db, sqls[g], p, 3, res, NULL);
}
