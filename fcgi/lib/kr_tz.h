/*
 * kr_tz: IANA time zones, read from the TZif files (RFC 8536) under /usr/share/zoneinfo, and
 * the proleptic Gregorian calendar of the local times they give.
 *
 * A zone is read once, on first use, and cached for the life of the process (after a tzdata
 * upgrade, restart it); a loaded zone is immutable and never freed. Every function here is
 * safe to call from any number of threads: none touches TZ or the C library's local time.
 *
 * Local times are handled as "wall seconds": the local date and time counted as if the zone
 * were UTC (days since 1970-01-01 * 86400 + seconds of the day). Offsets are seconds east of
 * UTC, at most 26 hours either way (a zone with a larger one is refused).
 */
#ifndef KR_TZ_H
#define KR_TZ_H

#include <stdint.h>
#include <time.h>

/* A loaded zone: opaque, read-only, valid until the process exits. */
struct kr_tz_zone;

/* A wall-clock date and time; y may be any year, including 0 and negative ones. */
struct kr_tz_civil {
	int64_t	y;
	int	mo, d;		/* 1-12, 1-31 */
	int	h, mi, s;	/* 0-23, 0-59, 0-59 */
};

/*
 * 1 when tz names a time zone this machine knows: a relative name of [A-Za-z0-9_+-]
 * components joined by '/', at most 64 characters, naming a TZif file inside
 * /usr/share/zoneinfo (links are followed but must stay inside it; "localtime", the
 * machine's own zone, and the leap-second "right/" zones are refused). "UTC" and
 * "Etc/UTC" are valid. Zones are read once and cached for the life of the process: after
 * a tzdata upgrade, restart it.
 */
int	kr_tz_valid(const char *tz);
/* The offset from UTC (seconds east) in effect in tz at t: 0, or -1 for an unknown zone. */
int	kr_tz_utc_offset(const char *tz, time_t t, long *off);

/*
 * The zone named tz, loaded and cached on first use; NULL when kr_tz_valid(tz) is 0 (a
 * failure is not cached: the next call tries again). The cache owns the zone: never free it.
 */
const struct kr_tz_zone	*kr_tz_get(const char *tz);
/* The wall seconds in z at UTC instant t (t plus the offset then in effect). */
int64_t	kr_tz_wall(const struct kr_tz_zone *z, int64_t t);
/*
 * The first UTC instant whose local time in z is wall seconds w, into *out: 1, or 0 when w
 * does not exist that day (skipped by a change such as spring forward; *out is untouched).
 * A wall time that occurs twice (fall back) gives its first occurrence.
 */
int	kr_tz_wall_first(const struct kr_tz_zone *z, int64_t w, int64_t *out);

/*
 * A TZif file (RFC 8536) of len bytes held in memory, parsed into a zone of the caller's
 * own (kr_tz_get's loader; exposed for the fuzz tests): NULL when it is not one kr_tz
 * accepts. Free it with kr_tz_free.
 */
struct kr_tz_zone	*kr_tz_parse(const unsigned char *buf, size_t len);
void			 kr_tz_free(struct kr_tz_zone **z);

/* Wall seconds as a date and time, and back (which reads every field, s included). */
void	kr_tz_civil_from_wall(int64_t wall, struct kr_tz_civil *c);
int64_t	kr_tz_wall_from_civil(const struct kr_tz_civil *c);
/* The number of days of month mo (1-12) of year y. */
int	kr_tz_month_days(int64_t y, int mo);
/* The day of the week of a date, 0 = Sunday. */
int	kr_tz_weekday(int64_t y, int mo, int d);

#endif
