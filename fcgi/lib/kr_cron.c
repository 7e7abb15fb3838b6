/*
 * kr_cron: cron expressions, parsed into bit sets and walked in wall-clock time. The time
 * zone (its offsets and the calendar) comes from kr_tz; the contract is in kr_cron.h.
 */
#include "kr_cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CRON_EXPR_MAX	200
#define CRON_YEARS	5
/* kr_cron_next answers for instants from year 1 to well before year 9999. */
#define CRON_MIN_T	(-62135596800LL)
#define CRON_MAX_T	(253402300799LL - (CRON_YEARS + 2) * 366LL * 86400)

enum cron_field { F_MINUTE, F_HOUR, F_MDAY, F_MONTH, F_WDAY, F__MAX };

static const char *const month_names[] = { "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
    "AUG", "SEP", "OCT", "NOV", "DEC", NULL };
static const char *const wday_names[] = { "SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
    NULL };

static const struct cron_spec {
	const char		*name;
	int			 lo, hi;	/* values accepted; day of week 7 is Sunday */
	int			 star_hi;	/* what '*' stands for */
	const char *const	*names;
	int			 name_base;	/* value of names[0] */
} specs[F__MAX] = {
	{ "minute", 0, 59, 59, NULL, 0 },
	{ "hour", 0, 23, 23, NULL, 0 },
	{ "day of month", 1, 31, 31, NULL, 0 },
	{ "month", 1, 12, 12, month_names, 1 },
	{ "day of week", 0, 7, 6, wday_names, 0 },
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
cron_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Show at most this much of a bad token in a message. */
#define TOKEN_SHOW	20

static int
upper(char c)
{
	return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

/* One value (number or name) of s[0..len) into *v; 0 or -1 with err set. */
static int
cron_value(const struct cron_spec *f, const char *s, size_t len, int *v, int *named,
    char *err, size_t errlen)
{
	size_t i;
	int n = 0;

	*named = 0;
	if (len > 0 && isdigit((unsigned char)s[0])) {
		for (i = 0; i < len; i++) {
			if (!isdigit((unsigned char)s[i]))
				goto bad;
			if (n <= 9999)
				n = n * 10 + (s[i] - '0');
		}
		if (n < f->lo || n > f->hi) {
			cron_err(err, errlen, "%s: %.*s is out of range %d-%d", f->name,
			    len > TOKEN_SHOW ? TOKEN_SHOW : (int)len, s, f->lo, f->hi);
			return -1;
		}
		*v = n;
		return 0;
	}
	for (i = 0; f->names != NULL && len == 3 && f->names[i] != NULL; i++)
		if (upper(s[0]) == f->names[i][0] && upper(s[1]) == f->names[i][1] &&
		    upper(s[2]) == f->names[i][2]) {
			*v = (int)i + f->name_base;
			*named = 1;
			return 0;
		}
bad:
	if (len == 0)
		cron_err(err, errlen, "%s: a value is missing", f->name);
	else
		cron_err(err, errlen, "%s: '%.*s' is not a %s", f->name,
		    len > TOKEN_SHOW ? TOKEN_SHOW : (int)len, s,
		    f->names != NULL ? "number or name" : "number");
	return -1;
}

/* One list item: '*', value or range, optionally "/step". */
static int
cron_item(const struct cron_spec *f, const char *s, size_t len, uint64_t *bits, char *err,
    size_t errlen)
{
	const char *slash = memchr(s, '/', len), *dash;
	size_t rlen = slash != NULL ? (size_t)(slash - s) : len;
	int lo, hi, step = 1, named, v, span = f->hi - f->lo + (f->hi == 7 ? 0 : 1);

	if (rlen == 1 && s[0] == '*') {
		lo = f->lo;
		hi = f->star_hi;
	} else {
		dash = memchr(s, '-', rlen);
		if (cron_value(f, s, dash != NULL ? (size_t)(dash - s) : rlen, &lo, &named, err,
		    errlen) != 0)
			return -1;
		hi = lo;
		if (dash != NULL) {
			if (cron_value(f, dash + 1, rlen - (size_t)(dash + 1 - s), &hi, &named,
			    err, errlen) != 0)
				return -1;
			/* MON-SUN: Sunday as the end of a range is day 7. */
			if (f->hi == 7 && named && hi == 0 && lo > 0)
				hi = 7;
			if (lo > hi) {
				cron_err(err, errlen, "%s: range %.*s is reversed", f->name,
				    rlen > TOKEN_SHOW ? TOKEN_SHOW : (int)rlen, s);
				return -1;
			}
		} else if (slash != NULL) {
			cron_err(err, errlen, "%s: a step needs '*' or a range before it "
			    "(write %d-%d/n)", f->name, lo, f->star_hi);
			return -1;
		}
	}
	if (slash != NULL) {
		const char *st = slash + 1;
		size_t slen = len - rlen - 1, i;
		if (slen == 0) {
			cron_err(err, errlen, "%s: the step is missing", f->name);
			return -1;
		}
		for (i = 0, v = 0; i < slen; i++) {
			if (!isdigit((unsigned char)st[i])) {
				cron_err(err, errlen, "%s: step '%.*s' is not a number", f->name,
				    slen > TOKEN_SHOW ? TOKEN_SHOW : (int)slen, st);
				return -1;
			}
			if (v <= 9999)
				v = v * 10 + (st[i] - '0');
		}
		if (v < 1 || v > span) {
			cron_err(err, errlen, "%s: step %.*s is out of range 1-%d", f->name,
			    slen > TOKEN_SHOW ? TOKEN_SHOW : (int)slen, st, span);
			return -1;
		}
		step = v;
	}
	for (v = lo; v <= hi; v += step)
		*bits |= (uint64_t)1 << v;
	return 0;
}

/* A comma-separated list; a field that is exactly "*" sets *star. */
static int
cron_field(const struct cron_spec *f, const char *s, size_t len, uint64_t *bits, int *star,
    char *err, size_t errlen)
{
	const char *end = s + len, *comma;

	*bits = 0;
	*star = len == 1 && s[0] == '*';
	for (;;) {
		comma = memchr(s, ',', (size_t)(end - s));
		if (comma == NULL)
			comma = end;
		if (comma == s) {
			cron_err(err, errlen, "%s: empty item in list", f->name);
			return -1;
		}
		if (cron_item(f, s, (size_t)(comma - s), bits, err, errlen) != 0)
			return -1;
		if (comma == end)
			return 0;
		s = comma + 1;
		if (s == end) {
			cron_err(err, errlen, "%s: empty item in list", f->name);
			return -1;
		}
	}
}

int
kr_cron_parse(const char *expr, struct kr_cron *c, char *err, size_t errlen)
{
	const char *p, *tok[F__MAX];
	size_t toklen[F__MAX], len, nf = 0;
	uint64_t bits[F__MAX];
	int star[F__MAX], i;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (expr == NULL || c == NULL) {
		cron_err(err, errlen, "expression: missing");
		return -1;
	}
	if ((len = strnlen(expr, CRON_EXPR_MAX + 1)) > CRON_EXPR_MAX) {
		cron_err(err, errlen, "expression: longer than %d characters", CRON_EXPR_MAX);
		return -1;
	}
	for (p = expr; *p != '\0';) {
		if (*p == ' ' || *p == '\t') {
			p++;
			continue;
		}
		if (nf < F__MAX)
			tok[nf] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (nf < F__MAX)
			toklen[nf] = (size_t)(p - tok[nf]);
		nf++;
	}
	if (nf != F__MAX) {
		cron_err(err, errlen, "expression: expected 5 fields (minute hour day-of-month "
		    "month day-of-week), found %zu", nf);
		return -1;
	}
	for (i = 0; i < F__MAX; i++)
		if (cron_field(&specs[i], tok[i], toklen[i], &bits[i], &star[i], err,
		    errlen) != 0)
			return -1;
	memset(c, 0, sizeof(*c));
	c->minutes = bits[F_MINUTE];
	c->hours = (uint32_t)bits[F_HOUR];
	c->mdays = (uint32_t)bits[F_MDAY];
	c->months = (uint16_t)bits[F_MONTH];
	c->wdays = (uint8_t)((bits[F_WDAY] | bits[F_WDAY] >> 7) & 0x7f);
	c->mday_star = star[F_MDAY];
	c->wday_star = star[F_WDAY];
	return 0;
}

/* ---- Next fire time ---- */

/* The lowest set bit of bits at or above from, at most max; -1 when none. */
static int
next_bit(uint64_t bits, int from, int max)
{
	for (; from <= max; from++)
		if (bits >> from & 1)
			return from;
	return -1;
}

/* Vixie cron: both day fields restricted, either matches; otherwise both must. */
static int
cron_day(const struct kr_cron *c, int64_t y, int mo, int d)
{
	int md = (int)(c->mdays >> d & 1);
	int wd = c->wdays >> kr_tz_weekday(y, mo, d) & 1;

	return c->mday_star || c->wday_star ? md && wd : md || wd;
}

static void
civil_next_day(struct kr_tz_civil *v)
{
	v->d++;
	v->h = v->mi = 0;
}

/*
 * Move v to the first wall minute at or after it that c matches, skipping whole months,
 * days and hours; 0 when there is none before year ylimit ends. v's day, hour and minute
 * may be one past their range on entry (they roll over).
 */
static int
cron_match_from(const struct kr_cron *c, struct kr_tz_civil *v, int64_t ylimit)
{
	int h, m;

	for (;;) {
		if (v->mo > 12) {
			v->y++;
			v->mo = 1;
		}
		if (v->y > ylimit)
			return 0;
		if (!(c->months >> v->mo & 1) || v->d > kr_tz_month_days(v->y, v->mo)) {
			v->mo++;
			v->d = 1;
			v->h = v->mi = 0;
			continue;
		}
		if (!c->mday_star && c->wday_star &&
		    (m = next_bit(c->mdays, v->d, kr_tz_month_days(v->y, v->mo))) != v->d) {
			v->d = m < 0 ? 32 : m;
			v->h = v->mi = 0;
			continue;
		}
		if (!cron_day(c, v->y, v->mo, v->d)) {
			civil_next_day(v);
			continue;
		}
		if ((h = next_bit(c->hours, v->h, 23)) < 0) {
			civil_next_day(v);
			continue;
		}
		if (h != v->h) {
			v->h = h;
			v->mi = 0;
		}
		if ((m = next_bit(c->minutes, v->mi, 59)) < 0) {
			v->h++;
			v->mi = 0;
			continue;
		}
		v->mi = m;
		return 1;
	}
}

/*
 * Walk the matching wall times from the minute after the local time of `after`; the first
 * whose first occurrence is later than `after` is the answer. A wall time skipped by a
 * change has no occurrence, and one repeated has its first occurrence before the
 * repetition, so both are passed over. Wall times at or before the local time of `after`
 * occur (first) no later than `after`, since local time only runs backwards by repeating.
 */
time_t
kr_cron_next(const struct kr_cron *c, const char *tz, time_t after)
{
	const struct kr_tz_zone *z;
	struct kr_tz_civil v;
	int64_t wall, t, ylimit;

	if (c == NULL || (c->minutes & 0x0fffffffffffffffULL) == 0 ||
	    (c->hours & 0xffffff) == 0 || (c->mdays & 0xfffffffe) == 0 ||
	    (c->months & 0x1ffe) == 0 || (c->wdays & 0x7f) == 0)
		return -1;
	if ((int64_t)after < CRON_MIN_T || (int64_t)after > CRON_MAX_T ||
	    (z = kr_tz_get(tz)) == NULL)
		return -1;
	wall = kr_tz_wall(z, (int64_t)after);
	kr_tz_civil_from_wall(wall, &v);
	kr_tz_civil_from_wall(wall - v.s + 60, &v);	/* the start of the next minute */
	ylimit = v.y + CRON_YEARS;
	for (;;) {
		if (!cron_match_from(c, &v, ylimit))
			return -1;
		wall = kr_tz_wall_from_civil(&v);
		if (kr_tz_wall_first(z, wall, &t) && t > (int64_t)after)
			return (time_t)t;
		v.mi++;
	}
}
