/*
 * kr_schedules' pure parts: the checks the API makes, and the slot the runner fires next,
 * from the previous scheduled time (across daylight-saving changes in Europe/Berlin) or,
 * after downtime, the first slot after now.
 */
#include <stdint.h>
#include <time.h>

#include "kr_schedules.h"
#include "kr_test.h"
#include "kr_usage.h"

/* An RFC 3339 UTC time as seconds since the epoch (kr_usage parses them). */
static time_t
at(const char *rfc3339)
{
	int64_t ms = -1;

	if (kr_usage_parse_time(rfc3339, 0, &ms) != 0)
		return (time_t)-2;
	return (time_t)(ms / 1000);
}

/* The chain of slots the runner fires with no downtime: each from the previous one. */
static void
check_chain(const char *cron, const char *tz, const char *start, const char **want, size_t n)
{
	time_t prev = at(start);

	for (size_t i = 0; i < n; i++) {
		time_t next = kr_sched_next_slot(cron, tz, prev, prev);
		CHECK(next == at(want[i]));
		if (next != at(want[i]))
			fprintf(stderr, "  slot %zu of \"%s\" %s: got %lld, want %s\n", i, cron, tz,
			    (long long)next, want[i]);
		prev = next;
	}
}

static void
test_check(void)
{
	char msg[KR_SCHED_MSG_MAX];

	CHECK(kr_sched_check("*/15 * * * *", "Europe/Berlin", msg, sizeof(msg)) == KR_SCHED_OK);
	CHECK(kr_sched_check("0 9 * * MON-FRI", "UTC", msg, sizeof(msg)) == KR_SCHED_OK);
	CHECK(kr_sched_check("0 9 * *", "UTC", msg, sizeof(msg)) == KR_SCHED_BAD_CRON);
	CHECK(msg[0] != '\0');
	CHECK(kr_sched_check("61 * * * *", "UTC", msg, sizeof(msg)) == KR_SCHED_BAD_CRON);
	CHECK(kr_sched_check("* * * * *", "Europe/Atlantis", msg, sizeof(msg)) ==
	    KR_SCHED_BAD_TZ);
	CHECK(strstr(msg, "Europe/Atlantis") != NULL);
	CHECK(kr_sched_check("* * * * *", "../../etc/passwd", msg, sizeof(msg)) ==
	    KR_SCHED_BAD_TZ);
	CHECK(kr_sched_check("* * * * *", "/usr/share/zoneinfo/UTC", msg, sizeof(msg)) ==
	    KR_SCHED_BAD_TZ);
	CHECK(kr_sched_check("* * * * *", "", msg, sizeof(msg)) == KR_SCHED_BAD_TZ);
	CHECK(kr_sched_check("* * * * *", "Europe/Berlin\n", msg, sizeof(msg)) ==
	    KR_SCHED_BAD_TZ);
}

static void
test_season(void)
{
	/* 09:00 in Berlin: 08:00Z in winter (CET), 07:00Z in summer (CEST). */
	CHECK(kr_sched_next_slot("0 9 * * *", "Europe/Berlin", at("2026-01-15T12:00:00Z"),
	    at("2026-01-15T12:00:00Z")) == at("2026-01-16T08:00:00Z"));
	CHECK(kr_sched_next_slot("0 9 * * *", "Europe/Berlin", at("2026-07-15T12:00:00Z"),
	    at("2026-07-15T12:00:00Z")) == at("2026-07-16T07:00:00Z"));
}

static void
test_dst_chains(void)
{
	/* Spring forward (29 March 2026): 02:30 does not exist that day, so no fire. */
	static const char *spring[] = { "2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z",
	    "2026-03-31T00:30:00Z" };
	/* Fall back (25 October 2026): 02:30 happens twice and fires once, the first time. */
	static const char *fall[] = { "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z",
	    "2026-10-27T01:30:00Z" };
	/*
	 * Every 20 minutes across the fall-back night: strictly increasing, no slot twice; the
	 * repeated hour 02:00-02:59 (CET, 01:00Z-01:59Z) fired already and does not again.
	 */
	static const char *every[] = { "2026-10-24T23:40:00Z", "2026-10-25T00:00:00Z",
	    "2026-10-25T00:20:00Z", "2026-10-25T00:40:00Z", "2026-10-25T02:00:00Z" };

	check_chain("30 2 * * *", "Europe/Berlin", "2026-03-27T01:30:00Z", spring, 3);
	check_chain("30 2 * * *", "Europe/Berlin", "2026-10-24T00:30:00Z", fall, 3);
	check_chain("*/20 * * * *", "Europe/Berlin", "2026-10-24T23:20:00Z", every, 5);
}

static void
test_catch_up(void)
{
	/* Down for three days: one catch-up fire, then the first slot after now. */
	CHECK(kr_sched_next_slot("*/5 * * * *", "UTC", at("2026-03-01T00:00:00Z"),
	    at("2026-03-04T12:03:10Z")) == at("2026-03-04T12:05:00Z"));
	CHECK(kr_sched_next_slot("0 0 1 1 *", "UTC", at("2026-11-19T10:00:00Z"),
	    at("2026-11-22T10:00:00Z")) == at("2027-01-01T00:00:00Z"));
	/* Fired on time: the next slot comes from the slot, not from the clock. */
	CHECK(kr_sched_next_slot("*/5 * * * *", "UTC", at("2026-03-04T12:05:00Z"),
	    at("2026-03-04T12:05:00Z")) == at("2026-03-04T12:10:00Z"));
	/* A slot equal to now is past: the one after it. */
	CHECK(kr_sched_next_slot("*/5 * * * *", "UTC", at("2026-03-04T12:00:00Z"),
	    at("2026-03-04T12:05:00Z")) == at("2026-03-04T12:10:00Z"));
	CHECK(kr_sched_next_slot("0 0 30 2 *", "UTC", at("2026-03-04T12:00:00Z"),
	    at("2026-03-04T12:00:00Z")) == -1);
	CHECK(kr_sched_next_slot("not cron", "UTC", 0, 0) == -1);
}

int
main(void)
{
	test_check();
	test_season();
	test_dst_chains();
	test_catch_up();
	return kr_test_done("test_schedules");
}
