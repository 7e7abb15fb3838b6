/*
 * kr_cron: parsing (a table of accepted and refused expressions with their messages),
 * zone names, next fire times at exact UTC instants across daylight-saving changes
 * (Europe/Berlin, America/New_York, Australia/Lord_Howe), the day-of-month/day-of-week
 * rule, leap days, impossible dates, and calls from 8 threads. Two oracles independent of
 * kr_cron's own TZif reader check it further: glibc's localtime_r (TZ set in this
 * single-threaded program) gives the UTC offset of every zone on the machine, and a
 * minute-by-minute brute force over glibc's local times gives the fire times of several
 * expressions around every change in 2026 and 2045 in a dozen zones.
 */
#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "kr_cron.h"
#include "kr_test.h"

static time_t
utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return timegm(&tm);
}

/* kr_cron_next of expr (which must parse), -2 when it does not. */
static time_t
next_of(const char *expr, const char *tz, time_t after)
{
	struct kr_cron c;
	char err[128];

	if (kr_cron_parse(expr, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "unexpected parse failure: %s: %s\n", expr, err);
		return -2;
	}
	return kr_cron_next(&c, tz, after);
}

/* Fire times in order: n calls of kr_cron_next chained from after; 0 or -1 (mismatch). */
static int
chain_is(const char *expr, const char *tz, time_t after, const time_t *want, size_t n)
{
	struct kr_cron c;
	char err[128];
	time_t t = after;
	size_t i;

	if (kr_cron_parse(expr, &c, err, sizeof(err)) != 0)
		return -1;
	for (i = 0; i < n; i++) {
		t = kr_cron_next(&c, tz, t);
		if (t != want[i]) {
			fprintf(stderr, "%s in %s: fire %zu is %lld, want %lld\n", expr, tz, i,
			    (long long)t, (long long)want[i]);
			return -1;
		}
	}
	return 0;
}

/* ---- Parsing ---- */

static void
test_parse_accepts(void)
{
	static const char *const ok[] = {
		"* * * * *", "*/15 * * * *", "0 9 * * MON-FRI", "0 0 1,15 * *", "5-10/2 * * * *",
		"0 0 * JAN-MAR,dec *", "0 0 * * sun", "0 0 * * 7", "0 0 * * 0-7", "59 23 31 12 6",
		"  0   0 * * *  ", "0\t0\t*\t*\t*", "0 0 * * FRI-SUN", "*/1 * * * *",
		"*/60 * * * *", "0 */24 * * *", "1-1 * * * *", "0 0 * * Mon,wEd,FRI",
		"00 08 01 01 *", "0 0 */2 * *", "0 0 1-31/10 1-12/3 0-6/2", "0 0 * * SUN-MON",
		"0-59 0-23 1-31 1-12 0-7",
	};
	struct kr_cron c;
	char err[128];
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int rc = kr_cron_parse(ok[i], &c, err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "refused '%s': %s\n", ok[i], err);
		CHECK(rc == 0);
	}

	CHECK(kr_cron_parse("* * * * *", &c, err, sizeof(err)) == 0);
	CHECK(c.minutes == 0x0fffffffffffffffULL && c.hours == 0xffffff);
	CHECK(c.mdays == 0xfffffffe && c.months == 0x1ffe && c.wdays == 0x7f);
	CHECK(c.mday_star == 1 && c.wday_star == 1);

	CHECK(kr_cron_parse("5-10/2 3,4 */10 JAN-MAR,dec 7", &c, err, sizeof(err)) == 0);
	CHECK(c.minutes == ((1ULL << 5) | (1ULL << 7) | (1ULL << 9)));
	CHECK(c.hours == ((1u << 3) | (1u << 4)));
	CHECK(c.mdays == ((1u << 1) | (1u << 11) | (1u << 21) | (1u << 31)));
	CHECK(c.months == ((1u << 1) | (1u << 2) | (1u << 3) | (1u << 12)));
	CHECK(c.wdays == 1);
	CHECK(c.mday_star == 0 && c.wday_star == 0);

	CHECK(kr_cron_parse("0 9 * * MON-FRI", &c, err, sizeof(err)) == 0);
	CHECK(c.minutes == 1 && c.hours == (1u << 9) && c.wdays == 0x3e);
	CHECK(c.mday_star == 1 && c.wday_star == 0);
	CHECK(kr_cron_parse("0 0 * * FRI-SUN", &c, err, sizeof(err)) == 0);
	CHECK(c.wdays == ((1u << 5) | (1u << 6) | 1u));
	CHECK(kr_cron_parse("0 0 * * MON-SUN", &c, err, sizeof(err)) == 0);
	CHECK(c.wdays == 0x7f);
	CHECK(kr_cron_parse("0 0 * * SUN-MON", &c, err, sizeof(err)) == 0);
	CHECK(c.wdays == 3);
	CHECK(kr_cron_parse("0 0 * * 0-7", &c, err, sizeof(err)) == 0);
	CHECK(c.wdays == 0x7f && c.wday_star == 0);
	CHECK(kr_cron_parse("0 0 * * */2", &c, err, sizeof(err)) == 0);
	CHECK(c.wdays == ((1u << 0) | (1u << 2) | (1u << 4) | (1u << 6)));
	CHECK(kr_cron_parse("*/60 */24 * * *", &c, err, sizeof(err)) == 0);
	CHECK(c.minutes == 1 && c.hours == 1);
}

static void
test_parse_refuses(void)
{
	static const struct {
		const char *expr, *msg;	/* msg: the exact message, or a prefix ending in '*' */
	} bad[] = {
		{ "", "expression: expected 5 fields (minute hour day-of-month month "
		    "day-of-week), found 0" },
		{ "   ", "expression: expected 5 fields*" },
		{ "* * * *", "expression: expected 5 fields (minute hour day-of-month month "
		    "day-of-week), found 4" },
		{ "* * * * * *", "expression: expected 5 fields*" },
		{ "@daily", "expression: expected 5 fields*" },
		{ "60 * * * *", "minute: 60 is out of range 0-59" },
		{ "* 24 * * *", "hour: 24 is out of range 0-23" },
		{ "0 9-24 * * *", "hour: 24 is out of range 0-23" },
		{ "* * 0 * *", "day of month: 0 is out of range 1-31" },
		{ "* * 32 * *", "day of month: 32 is out of range 1-31" },
		{ "* * * 0 *", "month: 0 is out of range 1-12" },
		{ "* * * 13 *", "month: 13 is out of range 1-12" },
		{ "* * * * 8", "day of week: 8 is out of range 0-7" },
		{ "99999999999 * * * *", "minute: 99999999999 is out of range 0-59" },
		{ "*/0 * * * *", "minute: step 0 is out of range 1-60" },
		{ "0 0-23/0 * * *", "hour: step 0 is out of range 1-24" },
		{ "* */25 * * *", "hour: step 25 is out of range 1-24" },
		{ "* * * * */8", "day of week: step 8 is out of range 1-7" },
		{ "10-5 * * * *", "minute: range 10-5 is reversed" },
		{ "0 0 * * SAT-MON", "day of week: range SAT-MON is reversed" },
		{ "0 0 * DEC-JAN *", "month: range DEC-JAN is reversed" },
		{ "1,,2 * * * *", "minute: empty item in list" },
		{ ",1 * * * *", "minute: empty item in list" },
		{ "1, * * * *", "minute: empty item in list" },
		{ "a * * * *", "minute: 'a' is not a number" },
		{ "* * * FOO *", "month: 'FOO' is not a number or name" },
		{ "* * * JANUARY *", "month: 'JANUARY' is not a number or name" },
		{ "* * * * MON_FRI", "day of week: 'MON_FRI' is not a number or name" },
		{ "* * MON * *", "day of month: 'MON' is not a number" },
		{ "* * * * JAN", "day of week: 'JAN' is not a number or name" },
		{ "* * * * MON-", "day of week: a value is missing" },
		{ "-1 * * * *", "minute: a value is missing" },
		{ "1-2-3 * * * *", "minute: '2-3' is not a number" },
		{ "5/15 * * * *",
		    "minute: a step needs '*' or a range before it (write 5-59/n)" },
		{ "* * * * 1/2", "day of week: a step needs*" },
		{ "*/ * * * *", "minute: the step is missing" },
		{ "*/x * * * *", "minute: step 'x' is not a number" },
		{ "*/2/3 * * * *", "minute: step '2/3' is not a number" },
		{ "* * ? * *", "day of month: '?' is not a number" },
		{ "** * * * *", "minute: '**' is not a number" },
		{ "0 0 L * *", "day of month: 'L' is not a number" },
		{ "0 0 * * 5#3", "day of week: '5#3' is not a number or name" },
		{ "1.5 * * * *", "minute: '1.5' is not a number" },
		{ "+1 * * * *", "minute: '+1' is not a number" },
		{ "* * * * *\n", "day of week: '*\n' is not a number or name" },
	};
	struct kr_cron c;
	char err[128], longexpr[260];
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = kr_cron_parse(bad[i].expr, &c, err, sizeof(err));
		n = strlen(bad[i].msg);
		CHECK(rc == -1);
		if (bad[i].msg[n - 1] == '*' ? strncmp(err, bad[i].msg, n - 1) != 0 :
		    strcmp(err, bad[i].msg) != 0) {
			fprintf(stderr, "'%s': message \"%s\", want \"%s\"\n", bad[i].expr, err,
			    bad[i].msg);
			FAIL("message");
		}
	}

	/* 200 characters are fine, 201 are not (whatever they are). */
	memset(longexpr, ' ', sizeof(longexpr));
	memcpy(longexpr, "0 0 * * *", 9);
	longexpr[200] = '\0';
	CHECK(kr_cron_parse(longexpr, &c, err, sizeof(err)) == 0);
	longexpr[200] = ' ';
	longexpr[201] = '\0';
	CHECK(kr_cron_parse(longexpr, &c, err, sizeof(err)) == -1);
	CHECK_STR(err, "expression: longer than 200 characters");

	/* No room for a message, or none wanted: still refused, nothing written. */
	CHECK(kr_cron_parse("61 * * * *", &c, NULL, 0) == -1);
	err[0] = 'x';
	CHECK(kr_cron_parse("61 * * * *", &c, err, 0) == -1 && err[0] == 'x');
	CHECK(kr_cron_parse("61 * * * *", &c, err, 5) == -1);
	CHECK_STR(err, "minu");
	CHECK(kr_cron_parse(NULL, &c, err, sizeof(err)) == -1);
	/* A bad token is quoted at most 20 characters long. */
	CHECK(kr_cron_parse("* * * * abcdefghijklmnopqrstuvwxyz", &c, err, sizeof(err)) == -1);
	CHECK_STR(err, "day of week: 'abcdefghijklmnopqrst' is not a number or name");
}

/* ---- Zone names ---- */

static void
test_tz_valid(void)
{
	static const char *const good[] = {
		"UTC", "Etc/UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
		"America/Argentina/Buenos_Aires", "Etc/GMT+5", "Etc/GMT-14", "posixrules",
		"EST5EDT", "Asia/Kolkata",
	};
	static const char *const bad[] = {
		"", "Foo/Bar", "../etc/passwd", "/etc/passwd", "Europe/../Europe/Berlin",
		"Europe//Berlin", "Europe/Berlin/", "/Europe/Berlin", "Europe", "zone.tab",
		"tzdata.zi", "leapseconds", "localtime", "right/Europe/Berlin", "Europe/Berlin ",
		" UTC", "europe/berlin", "Europe\\Berlin", "Europe/Berlin\n", "Etc/UTC/",
		"right", "posix", "CET:1", "CET-1CEST,M3.5.0,M10.5.0/3",
		"Europe/Berlin_____________________________________________________x",
	};
	char sixtyfive[66];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!kr_tz_valid(good[i]))
			fprintf(stderr, "zone refused: %s\n", good[i]);
		CHECK(kr_tz_valid(good[i]) == 1);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (kr_tz_valid(bad[i]))
			fprintf(stderr, "zone accepted: '%s'\n", bad[i]);
		CHECK(kr_tz_valid(bad[i]) == 0);
	}
	CHECK(kr_tz_valid(NULL) == 0);
	memset(sixtyfive, 'A', 65);
	sixtyfive[65] = '\0';
	CHECK(kr_tz_valid(sixtyfive) == 0);
	CHECK(next_of("* * * * *", "Foo/Bar", 0) == -1);
	CHECK(next_of("* * * * *", NULL, 0) == -1);
	CHECK(kr_cron_next(NULL, "UTC", 0) == -1);
}

/* ---- Next fire times at known instants ---- */

static void
test_utc(void)
{
	time_t a = utc(2026, 1, 1, 0, 0);
	const time_t q[] = { utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 0, 30),
	    utc(2026, 1, 1, 0, 45), utc(2026, 1, 1, 1, 0) };

	CHECK(chain_is("*/15 * * * *", "UTC", a, q, 4) == 0);
	CHECK(next_of("*/15 * * * *", "UTC", a - 1) == a);
	CHECK(next_of("*/15 * * * *", "UTC", a + 7 * 60 + 30) == q[0]);
	CHECK(next_of("*/15 * * * *", "Etc/UTC", utc(2026, 12, 31, 23, 50)) ==
	    utc(2027, 1, 1, 0, 0));
	CHECK(next_of("* * * * *", "UTC", a + 59) == a + 60);
	CHECK(next_of("59 23 31 12 *", "UTC", a) == utc(2026, 12, 31, 23, 59));
	CHECK(next_of("0 0 1 1 *", "UTC", a) == utc(2027, 1, 1, 0, 0));
	/* Before 1970 and far ahead work too; the very far future does not. */
	CHECK(next_of("0 0 1 1 *", "UTC", utc(1960, 6, 1, 0, 0)) == utc(1961, 1, 1, 0, 0));
	CHECK(next_of("0 12 * * *", "UTC", utc(2999, 12, 31, 13, 0)) == utc(3000, 1, 1, 12, 0));
	CHECK(next_of("0 0 * * *", "UTC", (time_t)INT64_MAX) == -1);
	CHECK(next_of("0 0 * * *", "UTC", (time_t)INT64_MIN) == -1);
}

static void
test_berlin_weekdays(void)
{
	/* A CET week (UTC+1): 09:00 is 08:00Z; Saturday and Sunday are skipped. */
	const time_t winter[] = { utc(2026, 1, 5, 8, 0), utc(2026, 1, 6, 8, 0),
	    utc(2026, 1, 7, 8, 0), utc(2026, 1, 8, 8, 0), utc(2026, 1, 9, 8, 0),
	    utc(2026, 1, 12, 8, 0) };
	/* A CEST week (UTC+2): 07:00Z. */
	const time_t summer[] = { utc(2026, 6, 1, 7, 0), utc(2026, 6, 2, 7, 0),
	    utc(2026, 6, 3, 7, 0), utc(2026, 6, 4, 7, 0), utc(2026, 6, 5, 7, 0),
	    utc(2026, 6, 8, 7, 0) };
	/* Across the change of 2026-03-29: Friday in CET, Monday in CEST. */
	const time_t across[] = { utc(2026, 3, 26, 8, 0), utc(2026, 3, 27, 8, 0),
	    utc(2026, 3, 30, 7, 0), utc(2026, 3, 31, 7, 0) };

	CHECK(chain_is("0 9 * * MON-FRI", "Europe/Berlin", utc(2026, 1, 3, 0, 0), winter, 6) ==
	    0);
	CHECK(chain_is("0 9 * * MON-FRI", "Europe/Berlin", utc(2026, 5, 30, 12, 0), summer,
	    6) == 0);
	CHECK(chain_is("0 9 * * 1-5", "Europe/Berlin", utc(2026, 3, 26, 7, 59), across, 4) ==
	    0);
	/* Exactly at a fire time: the next one, not the same. */
	CHECK(next_of("0 9 * * MON-FRI", "Europe/Berlin", winter[0]) == winter[1]);
	CHECK(next_of("0 9 * * MON-FRI", "Europe/Berlin", winter[0] - 1) == winter[0]);
}

static void
test_berlin_spring_forward(void)
{
	/* 2026-03-29 02:00 CET (01:00Z) becomes 03:00 CEST: 02:30 does not exist that day. */
	const time_t hourly[] = { utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 0, 0),
	    utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0), utc(2026, 3, 29, 3, 0) };
	const time_t quarter[] = { utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 0, 45),
	    utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 15) };
	time_t t;
	int i;

	CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27, 12, 0)) ==
	    utc(2026, 3, 28, 1, 30));
	CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 1, 30)) ==
	    utc(2026, 3, 30, 0, 30));
	CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0)) ==
	    utc(2026, 3, 30, 0, 30));
	/* Every minute of the missing hour is skipped; 03:00 CEST is 01:00Z. */
	CHECK(next_of("* 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0)) ==
	    utc(2026, 3, 30, 0, 0));
	CHECK(next_of("0 3 * * *", "Europe/Berlin", utc(2026, 3, 28, 12, 0)) ==
	    utc(2026, 3, 29, 1, 0));
	/* Hourly: consecutive UTC hours, 01:00Z being 03:00 CEST. */
	CHECK(chain_is("0 * * * *", "Europe/Berlin", utc(2026, 3, 28, 22, 30), hourly, 5) == 0);
	CHECK(chain_is("*/15 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 15), quarter, 4) ==
	    0);
	/* Every minute: still every UTC minute, no gap, no repeat. */
	t = utc(2026, 3, 29, 0, 30);
	for (i = 0; i < 60; i++) {
		time_t n = next_of("* * * * *", "Europe/Berlin", t);
		CHECK(n == t + 60);
		t = n;
	}
}

static void
test_berlin_fall_back(void)
{
	/*
	 * 2026-10-25 03:00 CEST (01:00Z) becomes 02:00 CET: 02:00-02:59 happen twice and fire
	 * at their first occurrence only (the CEST one, 00:xxZ).
	 */
	const time_t hourly[] = { utc(2026, 10, 24, 22, 0), utc(2026, 10, 24, 23, 0),
	    utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0), utc(2026, 10, 25, 3, 0) };
	const time_t halves[] = { utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30),
	    utc(2026, 10, 25, 2, 0), utc(2026, 10, 25, 2, 30) };
	time_t t, n;
	int i, fires = 0;

	CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12, 0)) ==
	    utc(2026, 10, 25, 0, 30));
	CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 30)) ==
	    utc(2026, 10, 26, 1, 30));
	for (t = utc(2026, 10, 24, 12, 0); (t = next_of("30 2 * * *", "Europe/Berlin", t)) <
	    utc(2026, 10, 26, 0, 0);)
		fires++;
	CHECK(fires == 1);
	/* Hourly: no duplicate; 01:00Z (02:00 CET, the repetition) does not fire. */
	CHECK(chain_is("0 * * * *", "Europe/Berlin", utc(2026, 10, 24, 21, 30), hourly, 5) ==
	    0);
	CHECK(chain_is("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 45), halves, 4) ==
	    0);
	/* Asked from inside the repetition. */
	CHECK(next_of("0 * * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 10)) ==
	    utc(2026, 10, 25, 2, 0));
	CHECK(next_of("30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 10)) ==
	    utc(2026, 10, 26, 1, 30));
	CHECK(next_of("0 3 * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 10)) ==
	    utc(2026, 10, 25, 2, 0));
	/* Every minute: the repeated hour of UTC (01:00Z-01:59Z) is silent, nothing twice. */
	t = utc(2026, 10, 25, 0, 58);
	n = next_of("* * * * *", "Europe/Berlin", t);
	CHECK(n == utc(2026, 10, 25, 0, 59));
	CHECK(next_of("* * * * *", "Europe/Berlin", n) == utc(2026, 10, 25, 2, 0));
	for (i = 0, t = utc(2026, 10, 25, 2, 0); i < 30; i++, t += 60)
		CHECK(next_of("* * * * *", "Europe/Berlin", t) == t + 60);
}

static void
test_new_york(void)
{
	/* 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST. */
	CHECK(next_of("30 2 * * *", "America/New_York", utc(2026, 3, 6, 12, 0)) ==
	    utc(2026, 3, 7, 7, 30));
	CHECK(next_of("30 2 * * *", "America/New_York", utc(2026, 3, 7, 7, 30)) ==
	    utc(2026, 3, 9, 6, 30));
	CHECK(next_of("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12, 0)) ==
	    utc(2026, 11, 1, 5, 30));
	CHECK(next_of("30 1 * * *", "America/New_York", utc(2026, 11, 1, 5, 30)) ==
	    utc(2026, 11, 2, 6, 30));
	CHECK(next_of("0 9 * * MON-FRI", "America/New_York", utc(2026, 7, 4, 0, 0)) ==
	    utc(2026, 7, 6, 13, 0));
	CHECK(next_of("0 9 * * MON-FRI", "America/New_York", utc(2026, 12, 5, 0, 0)) ==
	    utc(2026, 12, 7, 14, 0));
}

static void
test_lord_howe(void)
{
	/*
	 * Half-hour daylight saving: +10:30 standard, +11:00 daylight. 2026-10-04 02:00
	 * becomes 02:30 (15:30Z the day before); 2026-04-05 02:00 becomes 01:30 (15:00Z).
	 */
	CHECK(next_of("15 2 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 0, 0)) ==
	    utc(2026, 10, 4, 15, 15));
	CHECK(next_of("45 2 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 0, 0)) ==
	    utc(2026, 10, 3, 15, 45));
	CHECK(next_of("0 12 * * *", "Australia/Lord_Howe", utc(2026, 7, 1, 0, 0)) ==
	    utc(2026, 7, 1, 1, 30));
	CHECK(next_of("0 12 * * *", "Australia/Lord_Howe", utc(2026, 12, 1, 0, 0)) ==
	    utc(2026, 12, 1, 1, 0));
	CHECK(next_of("45 1 * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 0, 0)) ==
	    utc(2026, 4, 4, 14, 45));
	CHECK(next_of("45 1 * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 14, 45)) ==
	    utc(2026, 4, 5, 15, 15));
	/* At 15:00Z the clock shows 01:30 again; 02:00 first shows at 15:30Z. */
	CHECK(next_of("*/30 * * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 14, 30)) ==
	    utc(2026, 4, 4, 15, 30));
}

static void
test_impossible_and_leap(void)
{
	struct kr_cron c;
	int i;

	CHECK(next_of("0 0 30 2 *", "UTC", utc(2026, 1, 1, 0, 0)) == -1);
	CHECK(next_of("0 0 30 2 *", "Europe/Berlin", utc(2026, 1, 1, 0, 0)) == -1);
	CHECK(next_of("0 0 31 4,6,9,11 *", "America/New_York", utc(2026, 1, 1, 0, 0)) == -1);
	/* The OR rule rescues it: Mondays in February. */
	CHECK(next_of("0 0 30 2 MON", "UTC", utc(2026, 1, 1, 0, 0)) == utc(2026, 2, 2, 0, 0));

	CHECK(next_of("0 0 29 2 *", "UTC", utc(2026, 1, 1, 0, 0)) == utc(2028, 2, 29, 0, 0));
	CHECK(next_of("0 0 29 2 *", "UTC", utc(2028, 2, 29, 0, 0)) == utc(2032, 2, 29, 0, 0));
	CHECK(next_of("0 0 29 2 *", "Europe/Berlin", utc(2026, 1, 1, 0, 0)) ==
	    utc(2028, 2, 28, 23, 0));
	CHECK(next_of("0 0 29 2 *", "UTC", utc(2099, 1, 1, 0, 0)) == utc(2104, 2, 29, 0, 0));
	CHECK(next_of("0 0 29 2 *", "UTC", utc(2096, 3, 1, 0, 0)) == -1);	/* 8 years */
	CHECK(next_of("0 12 29 2 *", "UTC", utc(2000, 1, 1, 0, 0)) == utc(2000, 2, 29, 12, 0));

	/* Sparse expressions, many start times (the search skips what cannot match). */
	CHECK(kr_cron_parse("0 0 30 2 *", &c, NULL, 0) == 0);
	for (i = 0; i < 1000; i++)
		CHECK(kr_cron_next(&c, "Europe/Berlin", utc(2026, 1, 1, 0, 0) + i * 3600) == -1);
	CHECK(kr_cron_parse("0 0 29 2 *", &c, NULL, 0) == 0);
	for (i = 0; i < 1000; i++)
		CHECK(kr_cron_next(&c, "Europe/Berlin", utc(2026, 1, 1, 0, 0) + i * 3600) ==
		    utc(2028, 2, 28, 23, 0));
	CHECK(kr_cron_parse("0 9 * * MON-FRI", &c, NULL, 0) == 0);
	for (i = 0; i < 1000; i++)
		CHECK(kr_cron_next(&c, "Europe/Berlin", utc(2026, 1, 1, 0, 0) + i * 3600) > 0);
}

static void
test_day_rule(void)
{
	/* Both restricted: the 13th or any Friday. 2026-01-02 is a Friday, 13th a Tuesday. */
	const time_t either[] = { utc(2026, 1, 2, 12, 0), utc(2026, 1, 9, 12, 0),
	    utc(2026, 1, 13, 12, 0), utc(2026, 1, 16, 12, 0), utc(2026, 1, 23, 12, 0),
	    utc(2026, 1, 30, 12, 0), utc(2026, 2, 6, 12, 0), utc(2026, 2, 13, 12, 0),
	    utc(2026, 2, 20, 12, 0) };
	const time_t thirteenth[] = { utc(2026, 1, 13, 12, 0), utc(2026, 2, 13, 12, 0) };
	const time_t fridays[] = { utc(2026, 1, 2, 12, 0), utc(2026, 1, 9, 12, 0) };
	/* "*\/2" is a restriction: odd days or Fridays (Vixie cron would AND them). */
	const time_t odd_or_fri[] = { utc(2026, 1, 2, 12, 0), utc(2026, 1, 3, 12, 0),
	    utc(2026, 1, 5, 12, 0), utc(2026, 1, 7, 12, 0), utc(2026, 1, 9, 12, 0),
	    utc(2026, 1, 11, 12, 0) };
	time_t a = utc(2026, 1, 1, 12, 0);

	CHECK(chain_is("0 12 13 * FRI", "UTC", a, either, 9) == 0);
	CHECK(chain_is("0 12 13 * *", "UTC", a, thirteenth, 2) == 0);
	CHECK(chain_is("0 12 * * 5", "UTC", a, fridays, 2) == 0);
	CHECK(chain_is("0 12 */2 * FRI", "UTC", a, odd_or_fri, 6) == 0);
	/* A restricted month still applies to both. */
	CHECK(next_of("0 12 13 3 FRI", "UTC", a) == utc(2026, 3, 6, 12, 0));
	/* Sunday as 0, 7 and SUN. */
	CHECK(next_of("0 0 * * 0", "UTC", a) == utc(2026, 1, 4, 0, 0));
	CHECK(next_of("0 0 * * 7", "UTC", a) == utc(2026, 1, 4, 0, 0));
	CHECK(next_of("0 0 * * sun", "UTC", a) == utc(2026, 1, 4, 0, 0));
}

/* ---- The glibc oracles ---- */

static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static long
glibc_off(time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	return tm.tm_gmtoff;
}

/* Compare the UTC offset with glibc's every 10 days of 1995-2055 and at each change. */
static int
offsets_agree(const char *tz)
{
	time_t t, lo, hi, mid, end = utc(2055, 1, 1, 0, 0);
	long mine, prev;
	int bad = 0;

	set_tz(tz);
	prev = glibc_off(utc(1995, 1, 1, 0, 0));
	for (t = utc(1995, 1, 1, 0, 0); t < end && bad < 3; t += 10 * 86400) {
		long g = glibc_off(t);
		if (kr_tz_utc_offset(tz, t, &mine) != 0 || mine != g) {
			fprintf(stderr, "%s at %lld: offset %ld, glibc %ld\n", tz, (long long)t,
			    mine, g);
			bad++;
		}
		if (g != prev) {
			for (lo = t - 10 * 86400, hi = t; hi - lo > 1;) {
				mid = lo + (hi - lo) / 2;
				if (glibc_off(mid) == g)
					hi = mid;
				else
					lo = mid;
			}
			if (kr_tz_utc_offset(tz, hi, &mine) != 0 || mine != g ||
			    kr_tz_utc_offset(tz, hi - 1, &mine) != 0 || mine != glibc_off(hi - 1)) {
				fprintf(stderr, "%s: change at %lld differs from glibc\n", tz,
				    (long long)hi);
				bad++;
			}
			prev = g;
		}
	}
	return bad == 0;
}

/* Each file once: names that are links or copies of another are the same data. */
static int
zone_seen(const struct stat *st)
{
	static struct { dev_t dev; ino_t ino; } seen[2048];
	static size_t n;
	size_t i;

	for (i = 0; i < n; i++)
		if (seen[i].dev == st->st_dev && seen[i].ino == st->st_ino)
			return 1;
	if (n < sizeof(seen) / sizeof(seen[0])) {
		seen[n].dev = st->st_dev;
		seen[n++].ino = st->st_ino;
	}
	return 0;
}

static int
zone_walk(const char *dir, const char *rel, int *zones, int *agree)
{
	char path[512], name[256];
	struct dirent *de;
	struct stat st;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strcmp(de->d_name, "right") == 0 ||
		    strcmp(de->d_name, "posix") == 0)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path) ||
		    (size_t)snprintf(name, sizeof(name), "%s%s%s", rel, *rel ? "/" : "",
		    de->d_name) >= sizeof(name) || stat(path, &st) != 0)
			continue;	/* no zone name is that long */
		if (S_ISDIR(st.st_mode)) {
			zone_walk(path, name, zones, agree);
		} else if (kr_tz_valid(name) && !zone_seen(&st)) {
			(*zones)++;
			*agree += offsets_agree(name);
		}
	}
	closedir(d);
	return 0;
}

static void
test_offsets_vs_glibc(void)
{
	int zones = 0, agree = 0;

	CHECK(zone_walk("/usr/share/zoneinfo", "", &zones, &agree) == 0);
	printf("UTC offsets of %d zone files compared with glibc, 1995-2055: %d agree\n", zones,
	    agree);
	CHECK(zones > 250);
	CHECK(agree == zones);
	unsetenv("TZ");
}

/*
 * Brute force over every UTC minute of (from, to] with glibc's local time: a minute may
 * fire when its wall time has not been shown before (the running maximum of the wall
 * times seen from a day earlier on), and fires when that wall time matches.
 */
struct minute {
	time_t	t;
	int	min, hour, mday, mon, wday;
};

static size_t
walk(const char *tz, time_t from, time_t to, struct minute *m, size_t max)
{
	struct tm tm;
	time_t t;
	long long wall, seen = LLONG_MIN;
	size_t n = 0;

	set_tz(tz);
	for (t = from - 86400 - from % 60; t <= to && n < max; t += 60) {
		localtime_r(&t, &tm);
		wall = (long long)t + tm.tm_gmtoff;
		if (wall <= seen)
			continue;
		seen = wall;
		if (t <= from || tm.tm_sec != 0)
			continue;
		m[n].t = t;
		m[n].min = tm.tm_min;
		m[n].hour = tm.tm_hour;
		m[n].mday = tm.tm_mday;
		m[n].mon = tm.tm_mon + 1;
		m[n++].wday = tm.tm_wday;
	}
	return n;
}

static size_t
oracle(const struct kr_cron *c, const struct minute *m, size_t n, time_t *out)
{
	size_t i, k = 0;
	int md, wd, day;

	for (i = 0; i < n; i++) {
		md = (int)(c->mdays >> m[i].mday & 1);
		wd = c->wdays >> m[i].wday & 1;
		day = c->mday_star || c->wday_star ? md && wd : md || wd;
		if ((c->minutes >> m[i].min & 1) && (c->hours >> m[i].hour & 1) && day &&
		    (c->months >> m[i].mon & 1))
			out[k++] = m[i].t;
	}
	return k;
}

static void
test_brute_force(void)
{
	static const char *const zones[] = {
		"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Europe/Dublin",
		"America/Nuuk", "America/Santiago", "Asia/Jerusalem", "Pacific/Chatham",
		"Africa/Casablanca", "America/St_Johns", "Australia/Sydney", "Asia/Tehran",
	};
	static const char *const exprs[] = {
		"* * * * *", "*/7 * * * *", "0 * * * *", "30 2 * * *", "15,45 1-3 * * *",
		"0 0 * * *", "59 23 * * *", "30 0 * * SUN", "*/20 0-4 * * *", "0 1 * * *",
		"45 1 * * 0,6", "0 0 1,15 * MON",
	};
	static struct minute mins[6000];
	static time_t want[6000], got[6000];
	static const int years[] = { 2026, 2045 };
	struct kr_cron c;
	size_t zi, ei, yi, nm, nw, ng;
	time_t t, from, prev, end;
	int windows = 0, compared = 0, bad = 0;

	for (zi = 0; zi < sizeof(zones) / sizeof(zones[0]); zi++) {
		CHECK(kr_tz_valid(zones[zi]));
		for (yi = 0; yi < 2; yi++) {
			end = utc(years[yi] + 1, 1, 1, 0, 0);
			/* Two days around each change glibc sees that year. */
			for (t = utc(years[yi], 1, 1, 0, 0); t < end; t += 86400) {
				set_tz(zones[zi]);
				if (glibc_off(t) == glibc_off(t + 86400))
					continue;
				windows++;
				from = t - 12 * 3600;
				nm = walk(zones[zi], from, from + 2 * 86400, mins, 6000);
				for (ei = 0; ei < sizeof(exprs) / sizeof(exprs[0]); ei++) {
					CHECK(kr_cron_parse(exprs[ei], &c, NULL, 0) == 0);
					nw = oracle(&c, mins, nm, want);
					for (ng = 0, prev = from; ng < 6000; ng++) {
						got[ng] = kr_cron_next(&c, zones[zi], prev);
						if (got[ng] < 0 || got[ng] > from + 2 * 86400)
							break;
						prev = got[ng];
					}
					compared++;
					if ((ng != nw || memcmp(got, want, nw * sizeof(time_t)) != 0)
					    && bad++ < 5)
						fprintf(stderr, "%s in %s from %lld: %zu fire times, "
						    "brute force %zu\n", exprs[ei], zones[zi],
						    (long long)from, ng, nw);
				}
			}
		}
	}
	unsetenv("TZ");
	printf("brute force: %d windows around changes, %d comparisons, %d differ\n", windows,
	    compared, bad);
	CHECK(windows >= 30);
	CHECK(bad == 0);
}

/* ---- Threads ---- */

#define THREADS	8
#define CHAIN	400

struct job {
	const char	*tz, *expr;
	time_t		 start;
	time_t		 out[CHAIN];
};

static void *
run_chain(void *arg)
{
	struct job *j = arg;
	struct kr_cron c;
	time_t t = j->start;
	int i;

	if (kr_cron_parse(j->expr, &c, NULL, 0) != 0)
		return NULL;
	for (i = 0; i < CHAIN; i++) {
		t = kr_cron_next(&c, j->tz, t);
		j->out[i] = t;
		/* Keep the zone cache busy with the others meanwhile. */
		if (i % 50 == 0)
			(void)kr_tz_valid(i % 100 == 0 ? "Asia/Tokyo" : "Nope/Nothing");
	}
	return NULL;
}

/* First of all tests, so that every thread also races to load its zone. */
static void
test_threads(void)
{
	static struct job jobs[THREADS] = {
		{ "America/Sao_Paulo", "*/7 * * * *", 0, { 0 } },
		{ "Australia/Adelaide", "0 * * * *", 0, { 0 } },
		{ "Pacific/Auckland", "30 2 * * *", 0, { 0 } },
		{ "America/Los_Angeles", "0 9 * * MON-FRI", 0, { 0 } },
		{ "Europe/London", "15,45 0-3 * * *", 0, { 0 } },
		{ "Asia/Kathmandu", "0 0 13 * FRI", 0, { 0 } },
		{ "America/Havana", "0 0,1 * * *", 0, { 0 } },
		{ "Europe/Paris", "0 2 * * SUN", 0, { 0 } },
	};
	static struct job again;
	pthread_t th[THREADS];
	int i, started = 0, same = 0;

	for (i = 0; i < THREADS; i++) {
		jobs[i].start = utc(2026, 1, 1, 0, 0) + i * 86400;
		if (pthread_create(&th[i], NULL, run_chain, &jobs[i]) == 0)
			started++;
	}
	CHECK(started == THREADS);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < THREADS; i++) {
		again.tz = jobs[i].tz;
		again.expr = jobs[i].expr;
		again.start = jobs[i].start;
		run_chain(&again);
		same += memcmp(again.out, jobs[i].out, sizeof(again.out)) == 0 &&
		    jobs[i].out[CHAIN - 1] > jobs[i].start;
	}
	CHECK(same == THREADS);
}

int
main(void)
{
	test_threads();
	test_parse_accepts();
	test_parse_refuses();
	test_tz_valid();
	test_utc();
	test_berlin_weekdays();
	test_berlin_spring_forward();
	test_berlin_fall_back();
	test_new_york();
	test_lord_howe();
	test_impossible_and_leap();
	test_day_rule();
	test_offsets_vs_glibc();
	test_brute_force();
	return kr_test_done("test_cron");
}
