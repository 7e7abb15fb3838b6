/* kr_usage's pure parts: the bounds of the queried range and the grouping names. */
#include <stdint.h>

#include "kr_test.h"
#include "kr_usage.h"

/* s parsed (end or not) and written back as DATETIME(3) text. */
static const char *
db(const char *s, int end, char out[KR_TIME_MAX])
{
	int64_t ms;

	if (kr_usage_parse_time(s, end, &ms) != 0)
		return "(invalid)";
	kr_usage_db_time(ms, out);
	return out;
}

static void
test_times(void)
{
	char b[KR_TIME_MAX];
	int64_t ms = 0;

	CHECK(kr_usage_parse_time("1970-01-01", 0, &ms) == 0 && ms == 0);
	CHECK(kr_usage_parse_time("2000-03-01T00:00:00Z", 0, &ms) == 0 && ms == 951868800000LL);
	CHECK_STR(db("2026-11-21T22:49:05.123Z", 0, b), "2026-11-21 22:49:05.123");
	CHECK_STR(db("2026-11-21t22:49:05z", 0, b), "2026-11-21 22:49:05.000");
	CHECK_STR(db("2026-11-21T22:49:05.5Z", 0, b), "2026-11-21 22:49:05.500");
	CHECK_STR(db("2026-11-21T22:49:05.123999Z", 0, b), "2026-11-21 22:49:05.123");
	CHECK_STR(db("2026-11-21T00:30:00+01:00", 0, b), "2026-11-20 23:30:00.000");
	CHECK_STR(db("2026-11-21T00:30:00 01:00", 0, b), "2026-11-20 23:30:00.000");
	CHECK_STR(db("2026-12-31T20:00:00-05:30", 0, b), "2027-01-01 01:30:00.000");
	CHECK_STR(db("2026-11-21", 0, b), "2026-11-21 00:00:00.000");
	CHECK_STR(db("2026-11-21", 1, b), "2026-11-22 00:00:00.000");
	CHECK_STR(db("2026-12-31", 1, b), "2027-01-01 00:00:00.000");
	CHECK_STR(db("2024-02-29", 1, b), "2024-03-01 00:00:00.000");
	CHECK_STR(db("2000-02-29", 0, b), "2000-02-29 00:00:00.000");
	CHECK_STR(db("2023-02-29", 0, b), "(invalid)");
	CHECK_STR(db("1900-02-29", 0, b), "(invalid)");
	CHECK_STR(db("2026-04-31", 0, b), "(invalid)");
	CHECK_STR(db("2026-13-01", 0, b), "(invalid)");
	CHECK_STR(db("2026-00-10", 0, b), "(invalid)");
	CHECK_STR(db("0999-01-01", 0, b), "(invalid)");
	CHECK_STR(db("9999-12-31", 0, b), "9999-12-31 00:00:00.000");
	CHECK_STR(db("9999-12-31T23:59:59.999Z", 0, b), "9999-12-31 23:59:59.999");
	CHECK_STR(db("9999-12-31", 1, b), "(invalid)");		/* its end is in 10000 */
	CHECK_STR(db("9999-12-31T23:00:00-05:00", 0, b), "(invalid)");
	CHECK_STR(db("2026-1-01", 0, b), "(invalid)");
	CHECK_STR(db("2026-01-01T24:00:00Z", 0, b), "(invalid)");
	CHECK_STR(db("2026-01-01T10:60:00Z", 0, b), "(invalid)");
	CHECK_STR(db("2026-01-01T10:00:00", 0, b), "(invalid)");
	CHECK_STR(db("2026-01-01T10:00:00.Z", 0, b), "(invalid)");
	CHECK_STR(db("2026-01-01T10:00:00+1", 0, b), "(invalid)");
	CHECK_STR(db("2026-01-01T10:00:00+01:00x", 0, b), "(invalid)");
	CHECK_STR(db("2026-01-01T10:00", 0, b), "(invalid)");
	CHECK_STR(db("2026-01-01T1", 0, b), "(invalid)");
	CHECK_STR(db("2026-01-01x", 0, b), "(invalid)");
	CHECK_STR(db("", 0, b), "(invalid)");
	CHECK_STR(db("yesterday", 0, b), "(invalid)");
	kr_usage_db_time(-1, b);
	CHECK_STR(b, "1969-12-31 23:59:59.999");
	kr_usage_db_time(253402300799999LL, b);
	CHECK_STR(b, "9999-12-31 23:59:59.999");
}

static void
test_groups(void)
{
	enum kr_usage_group g = KR_USAGE_BY__MAX;

	CHECK(kr_usage_group_parse("provider", &g) == 0 && g == KR_USAGE_BY_PROVIDER);
	CHECK(kr_usage_group_parse("model", &g) == 0 && g == KR_USAGE_BY_MODEL);
	CHECK(kr_usage_group_parse("key", &g) == 0 && g == KR_USAGE_BY_KEY);
	CHECK(kr_usage_group_parse("day", &g) == 0 && g == KR_USAGE_BY_DAY);
	CHECK(kr_usage_group_parse("Day", &g) != 0);
	CHECK(kr_usage_group_parse("", &g) != 0);
	CHECK(kr_usage_group_parse("week", &g) != 0);
}

int
main(void)
{
	test_times();
	test_groups();
	return kr_test_done("test_usage");
}
