/*
 * kr_cron: 5-field cron expressions (minute hour day-of-month month day-of-week) evaluated
 * in an IANA time zone.
 *
 * Fields take '*', numbers, ranges "a-b", lists "a,b", steps "*\/n" and "a-b/n"; months
 * and days of the week also take English three-letter names (JAN, MON); day of week 0 and
 * 7 are Sunday. As in Vixie cron, when both day fields are restricted a day matching either
 * one matches. Across daylight-saving changes: a wall-clock time that does not exist that
 * day (spring forward) does not fire; a wall-clock time that occurs twice (fall back) fires
 * once, at its first occurrence.
 */
#ifndef KR_CRON_H
#define KR_CRON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kr_tz.h"	/* tz arguments name kr_tz zones (see kr_tz_valid) */

struct kr_cron {
	uint64_t	minutes;	/* bit m: minute m matches (0-59) */
	uint32_t	hours;		/* 0-23 */
	uint32_t	mdays;		/* 1-31 */
	uint16_t	months;		/* 1-12 */
	uint8_t		wdays;		/* 0-6, Sunday 0 */
	int		mday_star;	/* the day-of-month field was '*' */
	int		wday_star;
};

/*
 * Parse expr (exactly five fields separated by spaces or tabs, at most 200 characters);
 * 0, or -1 with err (may be NULL) set to a message naming the field that is wrong, e.g.
 * "hour: 24 is out of range 0-23". Refused: values out of range, empty list items, steps
 * of 0 or longer than the field, reversed ranges ("MON-SUN" is fine: Sunday ending a
 * range counts as 7), a step after a single value ("5/15": write "5-59/15"), anything
 * else. Only a field that is exactly "*" counts as unrestricted for the day-of-month /
 * day-of-week rule ("*\/2" is restricted, unlike Vixie cron's quirk).
 */
int	kr_cron_parse(const char *expr, struct kr_cron *c, char *err, size_t errlen);
/*
 * The first fire time strictly after `after` (UTC seconds) in time zone tz; -1 when there
 * is none within about five years (e.g. "0 0 30 2 *"), for an unknown zone or for
 * `after` outside years 1..9990. Safe to call from any number of threads; the zone comes
 * from kr_tz, so it never touches TZ or the C library's local time.
 */
time_t	kr_cron_next(const struct kr_cron *c, const char *tz, time_t after);

#endif
