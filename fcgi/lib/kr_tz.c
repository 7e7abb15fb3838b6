/*
 * kr_tz: time zones read from the system's TZif files (RFC 8536), not through
 * TZ + tzset() + localtime_r(): changing TZ means setenv(), which races with getenv() in
 * every other thread (libcurl and libmariadb read the environment at run time), and a
 * global mutex would serialise every scheduler thread. A loaded zone is immutable and
 * cached for the life of the process (a few KB each, at most one per file under
 * /usr/share/zoneinfo), so callers only take a mutex for the cache look-up. A tzdata
 * upgrade therefore takes effect when the process restarts. The contract is in kr_tz.h.
 */
#include "kr_tz.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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

struct kr_tz_zone {
	struct kr_tz_zone *next;	/* cache list */
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
    struct kr_tz_zone *z)
{
	const unsigned char *idx = p + c->time * tsize, *types = idx + c->time;
	int64_t prev = INT64_MIN, at;
	int32_t cur;
	uint32_t i;

	/* Leap-second ("right/") zones count TAI-like seconds; kr_tz works in POSIX time. */
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
tzif_parse(const unsigned char *buf, size_t len, struct kr_tz_zone *z)
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
tz_zone_free(struct kr_tz_zone **zp)
{
	if (*zp == NULL)
		return;
	free((*zp)->at);
	free((*zp)->off);
	free(*zp);
	*zp = NULL;
}

struct kr_tz_zone *
kr_tz_parse(const unsigned char *buf, size_t len)
{
	struct kr_tz_zone *z = calloc(1, sizeof(*z));

	if (z != NULL && tzif_parse(buf, len, z) != TZ_OK)
		tz_zone_free(&z);
	return z;
}

void
kr_tz_free(struct kr_tz_zone **z)
{
	tz_zone_free(z);
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
tz_load(const char *name, struct kr_tz_zone **out)
{
	struct kr_tz_zone *z = NULL;
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
static struct kr_tz_zone *zone_cache;

const struct kr_tz_zone *
kr_tz_get(const char *name)
{
	struct kr_tz_zone *z;

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
zone_offset(const struct kr_tz_zone *z, int64_t t, int64_t *next)
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

int64_t
kr_tz_wall(const struct kr_tz_zone *z, int64_t t)
{
	int64_t next;

	return t + zone_offset(z, t, &next);
}

/*
 * The offsets in effect from w - TZ_MAX_OFF on are walked segment by segment, and the first
 * segment containing w - offset wins.
 */
int
kr_tz_wall_first(const struct kr_tz_zone *z, int64_t w, int64_t *out)
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
	return kr_tz_get(tz) != NULL;
}

int
kr_tz_utc_offset(const char *tz, time_t t, long *off)
{
	const struct kr_tz_zone *z;
	int64_t next;

	if (off == NULL || (z = kr_tz_get(tz)) == NULL)
		return -1;
	*off = zone_offset(z, (int64_t)t, &next);
	return 0;
}

/* ---- Wall seconds and the calendar ---- */

void
kr_tz_civil_from_wall(int64_t wall, struct kr_tz_civil *c)
{
	int64_t days = floor_div(wall, 86400), secs = wall - days * 86400;

	civil_from_days(days, &c->y, &c->mo, &c->d);
	c->h = (int)(secs / 3600);
	c->mi = (int)(secs % 3600 / 60);
	c->s = (int)(secs % 60);
}

int64_t
kr_tz_wall_from_civil(const struct kr_tz_civil *c)
{
	return days_from_civil(c->y, c->mo, c->d) * 86400 + c->h * 3600 + c->mi * 60 + c->s;
}

int
kr_tz_month_days(int64_t y, int mo)
{
	return month_days(y, mo);
}

int
kr_tz_weekday(int64_t y, int mo, int d)
{
	return weekday(days_from_civil(y, mo, d));
}
