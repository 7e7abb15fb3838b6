/*
 * kr_cron: cron expressions and the time zones they are evaluated in.
 *
 * Zones are read from the system's TZif files (RFC 8536) by this file, not through
 * TZ + tzset() + localtime_r(): changing TZ means setenv(), which races with getenv() in
 * every other thread (libcurl and libmariadb read the environment at run time), and a
 * global mutex would serialise every scheduler thread. A loaded zone is immutable and
 * cached for the life of the process (a few KB each, at most one per file under
 * /usr/share/zoneinfo), so kr_cron_next only takes a mutex for the cache look-up. A tzdata
 * upgrade therefore takes effect when the process restarts.
 *
 * Wall-clock times are handled as "wall seconds": the local date and time counted as if
 * the zone were UTC (days since 1970-01-01 * 86400 + seconds of the day).
 */
#include "kr_cron.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZONEINFO_DIR	"/usr/share/zoneinfo"
#define TZ_NAME_MAX	64
#define TZIF_MAX_BYTES	(512 * 1024)
#define TZIF_MAX_TIMES	100000u
/*
 * Offsets beyond +-26 h are refused at load time; the wall-clock search only looks that
 * far either side of a wall time for the instants showing it.
 */
#define TZ_MAX_OFF	(26 * 3600)
#define CRON_EXPR_MAX	200
#define CRON_YEARS	5
/* kr_cron_next answers for instants from year 1 to well before year 9999. */
#define CRON_MIN_T	(-62135596800LL)
#define CRON_MAX_T	(253402300799LL - (CRON_YEARS + 2) * 366LL * 86400)

enum tz_err {
	TZ_OK = 0,
	TZ_ENAME,	/* not a zone name we accept */
	TZ_ENOENT,	/* no such file, or not a regular file inside ZONEINFO_DIR */
	TZ_EFORMAT,	/* not a TZif file we can use */
	TZ_ENOMEM
};

/* ---- Proleptic Gregorian calendar (H. Hinnant's days_from_civil and inverse) ---- */

static int64_t
floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static int
is_leap(int64_t y)
{
	return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int
month_days(int64_t y, int m)
{
	static const int len[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int
weekday(int64_t days)
{
	return (int)((days % 7 + 11) % 7);
}

/* ---- POSIX TZ strings (the TZif footer), RFC 8536 section 3.3 ---- */

struct tz_date {
	char	kind;		/* 'J' 1-365 (no Feb 29), 'N' 0-365, 'M' month.week.day */
	int	n, m, w, d;
	int32_t	secs;		/* local time of the change, -167 h .. 167 h */
};

struct tz_posix {
	int32_t		std_off;	/* seconds east of UTC */
	int32_t		dst_off;
	int		has_dst;
	struct tz_date	start, end;	/* into and out of daylight time */
};

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int
is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* A decimal number 0..max; the end of it, or NULL. */
static const char *
posix_num(const char *p, int max, int *v)
{
	const char *s = p;
	int n = 0;

	for (; is_digit(*p); p++) {
		n = n * 10 + (*p - '0');
		if (n > max)
			return NULL;
	}
	if (p == s)
		return NULL;
	*v = n;
	return p;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh, as signed seconds. */
static const char *
posix_hms(const char *p, int maxh, int32_t *secs)
{
	int sign = 1, h, m = 0, s = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if ((p = posix_num(p, maxh, &h)) == NULL)
		return NULL;
	if (*p == ':' && (p = posix_num(p + 1, 59, &m)) != NULL && *p == ':')
		p = posix_num(p + 1, 59, &s);
	if (p == NULL)
		return NULL;
	*secs = sign * (h * 3600 + m * 60 + s);
	return p;
}

/* An abbreviation: three or more letters, or <...> of letters, digits, '+' and '-'. */
static const char *
posix_abbr(const char *p)
{
	const char *s;

	if (*p == '<') {
		for (s = ++p; is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-'; p++)
			;
		return *p == '>' && p - s >= 3 ? p + 1 : NULL;
	}
	for (s = p; is_alpha(*p); p++)
		;
	return p - s >= 3 ? p : NULL;
}

static const char *
posix_date(const char *p, struct tz_date *d)
{
	memset(d, 0, sizeof(*d));
	d->secs = 2 * 3600;
	if (*p == 'J') {
		d->kind = 'J';
		if ((p = posix_num(p + 1, 365, &d->n)) == NULL || d->n < 1)
			return NULL;
	} else if (*p == 'M') {
		d->kind = 'M';
		if ((p = posix_num(p + 1, 12, &d->m)) == NULL || d->m < 1 || *p != '.' ||
		    (p = posix_num(p + 1, 5, &d->w)) == NULL || d->w < 1 || *p != '.' ||
		    (p = posix_num(p + 1, 6, &d->d)) == NULL)
			return NULL;
	} else {
		d->kind = 'N';
		if ((p = posix_num(p, 365, &d->n)) == NULL)
			return NULL;
	}
	if (*p == '/')
		p = posix_hms(p + 1, 167, &d->secs);
	return p;
}

/*
 * "std offset [dst [offset] [,start[/time],end[/time]]]". A daylight name without rules
 * gets the US rules, as glibc and tzcode do.
 */
static int
posix_parse(const char *p, struct tz_posix *r)
{
	int32_t secs;

	memset(r, 0, sizeof(*r));
	if ((p = posix_abbr(p)) == NULL || (p = posix_hms(p, 24, &secs)) == NULL)
		return -1;
	r->std_off = -secs;
	if (*p == '\0')
		return 0;
	r->has_dst = 1;
	if ((p = posix_abbr(p)) == NULL)
		return -1;
	r->dst_off = r->std_off + 3600;
	if (*p != ',' && *p != '\0') {
		if ((p = posix_hms(p, 24, &secs)) == NULL)
			return -1;
		r->dst_off = -secs;
	}
	if (*p == '\0')
		p = ",M3.2.0,M11.1.0";
	if (*p != ',' || (p = posix_date(p + 1, &r->start)) == NULL || *p != ',' ||
	    (p = posix_date(p + 1, &r->end)) == NULL || *p != '\0')
		return -1;
	return 0;
}

/* The UTC instant of rule date d in year y, the local time then having offset off. */
static int64_t
posix_instant(const struct tz_date *d, int64_t y, int32_t off)
{
	int64_t day;
	int last;

	switch (d->kind) {
	case 'J':
		day = days_from_civil(y, 1, 1) + d->n - 1 + (is_leap(y) && d->n >= 60);
		break;
	case 'N':
		day = days_from_civil(y, 1, 1) + d->n;
		break;
	default:
		day = days_from_civil(y, d->m, 1);
		day += (d->d - weekday(day) + 7) % 7 + (d->w - 1) * 7;
		last = month_days(y, d->m);
		while (day >= days_from_civil(y, d->m, 1) + last)
			day -= 7;
		break;
	}
	return day * 86400 + d->secs - off;
}

/*
 * The offset in effect at t, and in *next the next instant after t where it may change.
 * The changes of the years around t's are computed and sorted, which also covers southern
 * hemisphere rules and changes that spill into the neighbouring year.
 */
static int32_t
posix_offset(const struct tz_posix *r, int64_t t, int64_t *next)
{
	struct { int64_t at; int32_t off; } ev[6], tmp;
	int64_t y;
	int32_t off;
	int m, d, i, j;

	*next = INT64_MAX;
	if (!r->has_dst)
		return r->std_off;
	civil_from_days(floor_div(t, 86400), &y, &m, &d);
	for (i = 0; i < 3; i++) {
		ev[2 * i].at = posix_instant(&r->start, y - 1 + i, r->std_off);
		ev[2 * i].off = r->dst_off;
		ev[2 * i + 1].at = posix_instant(&r->end, y - 1 + i, r->dst_off);
		ev[2 * i + 1].off = r->std_off;
	}
	/* Stable insertion sort: with all-year daylight time ("J365/25") an end and the next
	 * start fall on the same instant and the start, listed later, wins. */
	for (i = 1; i < 6; i++)
		for (j = i; j > 0 && ev[j - 1].at > ev[j].at; j--) {
			tmp = ev[j];
			ev[j] = ev[j - 1];
			ev[j - 1] = tmp;
		}
	off = ev[0].off == r->dst_off ? r->std_off : r->dst_off;
	for (i = 0; i < 6; i++) {
		if (ev[i].at > t) {
			*next = ev[i].at;
			break;
		}
		off = ev[i].off;
	}
	return off;
}

/* ---- TZif files ---- */

struct tz_zone {
	struct tz_zone	*next;		/* cache list */
	char		 name[TZ_NAME_MAX + 1];
	size_t		 n;		/* transitions that change the offset */
	int64_t		*at;		/* their UTC instants, ascending */
	int32_t		*off;		/* offset from at[i] on */
	int32_t		 off0;		/* before at[0] (RFC 8536: time type 0) */
	int		 has_footer;	/* after at[n - 1], footer decides */
	struct tz_posix	 footer;
};

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
	uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);

	return v <= INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1;
}

static int32_t
be32s(const unsigned char *p)
{
	uint32_t v = be32(p);

	return v <= INT32_MAX ? (int32_t)v : -(int32_t)(~v) - 1;
}

struct tzif_counts {
	uint32_t	isut, isstd, leap, time, type, chars;
};

/* The header at p (44 bytes, checked present); 0 or -1. */
static int
tzif_header(const unsigned char *p, struct tzif_counts *c)
{
	if (memcmp(p, "TZif", 4) != 0)
		return -1;
	c->isut = be32(p + 20);
	c->isstd = be32(p + 24);
	c->leap = be32(p + 28);
	c->time = be32(p + 32);
	c->type = be32(p + 36);
	c->chars = be32(p + 40);
	if (c->time > TZIF_MAX_TIMES || c->type == 0 || c->type > 256 || c->chars > 65536 ||
	    c->leap > TZIF_MAX_TIMES || c->isut > c->type || c->isstd > c->type)
		return -1;
	return 0;
}

static size_t
tzif_block_len(const struct tzif_counts *c, size_t tsize)
{
	return c->time * (tsize + 1) + c->type * 6 + c->chars + c->leap * (tsize + 4) +
	    c->isstd + c->isut;
}

/* The data block (after the header) with tsize-byte times into z. */
static enum tz_err
tzif_data(const unsigned char *p, const struct tzif_counts *c, size_t tsize,
    struct tz_zone *z)
{
	const unsigned char *idx = p + c->time * tsize, *types = idx + c->time;
	int64_t prev = INT64_MIN, at;
	int32_t cur;
	uint32_t i;

	/* Leap-second ("right/") zones count TAI-like seconds; kr_cron works in POSIX time. */
	if (c->leap != 0)
		return TZ_EFORMAT;
	for (i = 0; i < c->type; i++) {
		int32_t o = be32s(types + i * 6);
		if (o < -TZ_MAX_OFF || o > TZ_MAX_OFF || types[i * 6 + 4] > 1)
			return TZ_EFORMAT;
	}
	z->at = malloc((c->time + 1) * sizeof(*z->at));
	z->off = malloc((c->time + 1) * sizeof(*z->off));
	if (z->at == NULL || z->off == NULL)
		return TZ_ENOMEM;
	cur = z->off0 = be32s(types);
	for (i = 0; i < c->time; i++) {
		at = tsize == 8 ? be64(p + i * 8) : (int64_t)be32s(p + i * 4);
		if (at <= prev || idx[i] >= c->type)
			return TZ_EFORMAT;
		prev = at;
		if (be32s(types + idx[i] * 6) == cur)
			continue;	/* only the abbreviation or the dst flag changes */
		cur = be32s(types + idx[i] * 6);
		z->at[z->n] = at;
		z->off[z->n++] = cur;
	}
	return TZ_OK;
}

/* A whole TZif file of len bytes into z (arrays allocated; tz_zone_free on failure). */
static enum tz_err
tzif_parse(const unsigned char *buf, size_t len, struct tz_zone *z)
{
	struct tzif_counts c;
	const unsigned char *p, *nl;
	char footer[128];
	size_t off;
	enum tz_err rc;

	if (len < 44 || tzif_header(buf, &c) != 0)
		return TZ_EFORMAT;
	off = 44 + tzif_block_len(&c, 4);
	if (buf[4] == '\0')	/* version 1: 32-bit times, no footer */
		return off <= len ? tzif_data(buf + 44, &c, 4, z) : TZ_EFORMAT;
	if (off + 44 > len || tzif_header(buf + off, &c) != 0)
		return TZ_EFORMAT;
	p = buf + off + 44;
	off += 44 + tzif_block_len(&c, 8);
	if (off >= len || buf[off] != '\n')
		return TZ_EFORMAT;
	if ((rc = tzif_data(p, &c, 8, z)) != TZ_OK)
		return rc;
	nl = memchr(buf + off + 1, '\n', len - off - 1);
	if (nl == NULL || (size_t)(nl - (buf + off + 1)) >= sizeof(footer))
		return TZ_EFORMAT;
	memcpy(footer, buf + off + 1, (size_t)(nl - (buf + off + 1)));
	footer[nl - (buf + off + 1)] = '\0';
	if (footer[0] == '\0')
		return TZ_OK;
	if (posix_parse(footer, &z->footer) != 0)
		return TZ_EFORMAT;
	z->has_footer = 1;
	return TZ_OK;
}

static void
tz_zone_free(struct tz_zone **zp)
{
	if (*zp == NULL)
		return;
	free((*zp)->at);
	free((*zp)->off);
	free(*zp);
	*zp = NULL;
}

/* A relative path of [A-Za-z0-9_+-] components, at most TZ_NAME_MAX characters. */
static int
tz_name_ok(const char *tz)
{
	size_t i, len, comp = 0;

	if (tz == NULL || (len = strnlen(tz, TZ_NAME_MAX + 1)) == 0 || len > TZ_NAME_MAX)
		return 0;
	/* The machine's own zone (a link to /etc/localtime): not a name a job may depend on. */
	if (strcmp(tz, "localtime") == 0)
		return 0;
	for (i = 0; i < len; i++) {
		char ch = tz[i];
		if (ch == '/') {
			if (comp == 0)
				return 0;
			comp = 0;
		} else if (!is_alpha(ch) && !is_digit(ch) && ch != '_' && ch != '+' &&
		    ch != '-') {
			return 0;
		} else {
			comp++;
		}
	}
	return comp > 0;
}

/*
 * Read the file for a valid name into a malloc'ed buffer. Symbolic links are followed
 * (UTC -> Etc/UTC) but must stay inside ZONEINFO_DIR ("localtime" -> /etc/localtime is
 * refused: a job's zone must not depend on how the machine is set up).
 */
static enum tz_err
tz_read(const char *name, unsigned char **out, size_t *outlen)
{
	char path[sizeof(ZONEINFO_DIR) + TZ_NAME_MAX + 1], real[PATH_MAX], root[PATH_MAX];
	unsigned char *buf = NULL;
	struct stat st;
	size_t len = 0, rootlen;
	ssize_t n;
	int fd = -1;
	enum tz_err rc = TZ_ENOENT;

	snprintf(path, sizeof(path), "%s/%s", ZONEINFO_DIR, name);
	if (realpath(ZONEINFO_DIR, root) == NULL || realpath(path, real) == NULL)
		goto out;
	rootlen = strlen(root);
	if (strncmp(real, root, rootlen) != 0 || real[rootlen] != '/')
		goto out;
	if ((fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0 ||
	    fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	rc = TZ_EFORMAT;
	if (st.st_size < 44 || st.st_size > TZIF_MAX_BYTES)
		goto out;
	rc = TZ_ENOMEM;
	if ((buf = malloc((size_t)st.st_size)) == NULL)
		goto out;
	rc = TZ_EFORMAT;
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto out;
		len += (size_t)n;
	}
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = TZ_OK;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static enum tz_err
tz_load(const char *name, struct tz_zone **out)
{
	struct tz_zone *z = NULL;
	unsigned char *buf = NULL;
	size_t len = 0;
	enum tz_err rc;

	*out = NULL;
	if (!tz_name_ok(name))
		return TZ_ENAME;
	if ((rc = tz_read(name, &buf, &len)) != TZ_OK)
		goto out;
	rc = TZ_ENOMEM;
	if ((z = calloc(1, sizeof(*z))) == NULL)
		goto out;
	snprintf(z->name, sizeof(z->name), "%s", name);
	if ((rc = tzif_parse(buf, len, z)) != TZ_OK)
		goto out;
	*out = z;
	z = NULL;
out:
	tz_zone_free(&z);
	free(buf);
	return rc;
}

/*
 * Loaded zones, newest first. Entries are immutable once linked and never freed, so a
 * pointer handed out stays valid without the lock. Failed names are not remembered.
 */
static pthread_mutex_t zone_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tz_zone *zone_cache;

static const struct tz_zone *
zone_get(const char *name)
{
	struct tz_zone *z;

	if (!tz_name_ok(name))
		return NULL;
	pthread_mutex_lock(&zone_lock);
	for (z = zone_cache; z != NULL; z = z->next)
		if (strcmp(z->name, name) == 0)
			break;
	/* Loading under the lock keeps it simple: it happens once per zone and process. */
	if (z == NULL && tz_load(name, &z) == TZ_OK) {
		z->next = zone_cache;
		zone_cache = z;
	}
	pthread_mutex_unlock(&zone_lock);
	return z;
}

/* The offset at t; *next as for posix_offset (always > t). */
static int32_t
zone_offset(const struct tz_zone *z, int64_t t, int64_t *next)
{
	size_t lo = 0, hi = z->n, mid;

	*next = INT64_MAX;
	if (z->n == 0)
		return z->has_footer ? posix_offset(&z->footer, t, next) : z->off0;
	if (t < z->at[0]) {
		*next = z->at[0];
		return z->off0;
	}
	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (z->at[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	if (lo + 1 < z->n) {
		*next = z->at[lo + 1];
		return z->off[lo];
	}
	return z->has_footer ? posix_offset(&z->footer, t, next) : z->off[lo];
}

/*
 * The first UTC instant whose local time is wall w: the offsets in effect from
 * w - TZ_MAX_OFF on are walked segment by segment, and the first segment containing
 * w - offset wins. 0 when w does not exist (skipped by a change).
 */
static int
zone_wall_first(const struct tz_zone *z, int64_t w, int64_t *out)
{
	int64_t t = w - TZ_MAX_OFF, next, cand;
	int32_t off;

	while (t <= w + TZ_MAX_OFF) {
		off = zone_offset(z, t, &next);
		cand = w - off;
		if (cand >= t && cand < next) {
			*out = cand;
			return 1;
		}
		if (next <= t)
			break;
		t = next;
	}
	return 0;
}

int
kr_tz_valid(const char *tz)
{
	return zone_get(tz) != NULL;
}

int
kr_tz_utc_offset(const char *tz, time_t t, long *off)
{
	const struct tz_zone *z;
	int64_t next;

	if (off == NULL || (z = zone_get(tz)) == NULL)
		return -1;
	*off = zone_offset(z, (int64_t)t, &next);
	return 0;
}

/* ---- Cron expressions ---- */

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
	if (len > 0 && is_digit(s[0])) {
		for (i = 0; i < len; i++) {
			if (!is_digit(s[i]))
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
			if (!is_digit(st[i])) {
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

struct civil {
	int64_t	y;
	int	mo, d, h, mi;
};

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
	int wd = c->wdays >> weekday(days_from_civil(y, mo, d)) & 1;

	return c->mday_star || c->wday_star ? md && wd : md || wd;
}

static void
civil_next_day(struct civil *v)
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
cron_match_from(const struct kr_cron *c, struct civil *v, int64_t ylimit)
{
	int h, m;

	for (;;) {
		if (v->mo > 12) {
			v->y++;
			v->mo = 1;
		}
		if (v->y > ylimit)
			return 0;
		if (!(c->months >> v->mo & 1) || v->d > month_days(v->y, v->mo)) {
			v->mo++;
			v->d = 1;
			v->h = v->mi = 0;
			continue;
		}
		if (!c->mday_star && c->wday_star &&
		    (m = next_bit(c->mdays, v->d, month_days(v->y, v->mo))) != v->d) {
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
	const struct tz_zone *z;
	struct civil v;
	int64_t wall, t, next, ylimit;

	if (c == NULL || (c->minutes & 0x0fffffffffffffffULL) == 0 ||
	    (c->hours & 0xffffff) == 0 || (c->mdays & 0xfffffffe) == 0 ||
	    (c->months & 0x1ffe) == 0 || (c->wdays & 0x7f) == 0)
		return -1;
	if ((int64_t)after < CRON_MIN_T || (int64_t)after > CRON_MAX_T ||
	    (z = zone_get(tz)) == NULL)
		return -1;
	wall = (int64_t)after + zone_offset(z, (int64_t)after, &next);
	wall = floor_div(wall, 60) * 60 + 60;
	civil_from_days(floor_div(wall, 86400), &v.y, &v.mo, &v.d);
	v.h = (int)(wall - floor_div(wall, 86400) * 86400) / 3600;
	v.mi = (int)(wall - floor_div(wall, 3600) * 3600) / 60;
	ylimit = v.y + CRON_YEARS;
	for (;;) {
		if (!cron_match_from(c, &v, ylimit))
			return -1;
		wall = days_from_civil(v.y, v.mo, v.d) * 86400 + v.h * 3600 + v.mi * 60;
		if (zone_wall_first(z, wall, &t) && t > (int64_t)after)
			return (time_t)t;
		v.mi++;
	}
}
