#include "kr_time.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kr_crypto.h"

void
kr_time_now_rfc3339(char out[KR_TIME_MAX])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* strftime cannot print milliseconds; the sizes are bounded by struct tm's ranges. */
	snprintf(out, KR_TIME_MAX, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
	    (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
	    (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
	    (unsigned)tm.tm_sec % 100u, (unsigned)(ts.tv_nsec / 1000000L) % 1000u);
}

/* "YYYY-MM-DD?HH:MM:SS" with sep at position 10; digits everywhere they belong. */
static int
datetime_prefix(const char *s, char sep)
{
	static const char shape[] = "dddd-dd-dd?dd:dd:dd";

	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\0')
			return -1;
		if (shape[i] == 'd' ? !isdigit(c) : shape[i] == '?' ? c != (unsigned char)sep
		    : c != (unsigned char)shape[i])
			return -1;
	}
	return 0;
}

/* Copy up to three fraction digits after s (which points at '.' or elsewhere), padded. */
static void
millis(const char *s, char ms[4])
{
	size_t i = 0;

	memcpy(ms, "000", 4);
	if (*s != '.')
		return;
	for (s++; i < 3 && isdigit((unsigned char)*s); s++, i++)
		ms[i] = *s;
}

/* 1 when p is "" or "." and digits; *end (may be NULL) gets where that stops. */
static int
fraction(const char *p, const char **end)
{
	if (*p == '.') {
		if (!isdigit((unsigned char)p[1]))
			return 0;
		for (p++; isdigit((unsigned char)*p); p++)
			;
	}
	if (end != NULL)
		*end = p;
	return 1;
}

static int
fraction_only(const char *p)
{
	const char *end;

	return fraction(p, &end) && *end == '\0';
}

int
kr_time_from_db(const char *s, char out[KR_TIME_MAX])
{
	char ms[4];

	if (s == NULL || datetime_prefix(s, ' ') != 0 || !fraction_only(s + 19))
		return -1;
	millis(s + 19, ms);
	snprintf(out, KR_TIME_MAX, "%.10sT%.8s.%sZ", s, s + 11, ms);
	return 0;
}

/* 1 when the date and time in "YYYY-MM-DDTHH:MM:SS" exist (no February 30, no 24:00). */
static int
real_datetime(const char *s)
{
	struct tm tm, back;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2d%*c%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
	    &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6 || tm.tm_year < 1000)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	back = tm;
	if ((t = timegm(&tm)) == (time_t)-1)
		return 0;
	gmtime_r(&t, &tm);
	return tm.tm_year == back.tm_year && tm.tm_mon == back.tm_mon &&
	    tm.tm_mday == back.tm_mday && tm.tm_hour == back.tm_hour &&
	    tm.tm_min == back.tm_min && tm.tm_sec == back.tm_sec;
}

int
kr_time_to_db(const char *s, char out[KR_TIME_MAX])
{
	const char *p;
	char ms[4];

	if (s == NULL || datetime_prefix(s, 'T') != 0 || !real_datetime(s))
		return -1;
	millis(s + 19, ms);
	if (!fraction(s + 19, &p) || (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0))
		return -1;
	snprintf(out, KR_TIME_MAX, "%.10s %.8s.%s", s, s + 11, ms);
	return 0;
}

int64_t
kr_time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
kr_uuid_new(char out[KR_UUID_MAX])
{
	unsigned char b[16];
	struct timespec ts;
	uint64_t ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	if (kr_random(b, sizeof(b)) != KR_CRYPTO_OK)
		memset(b, 0, sizeof(b));	/* RAND_bytes does not fail once seeded */
	for (int i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | (b[6] & 0x0f));
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
	snprintf(out, KR_UUID_MAX,
	    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
	    b[12], b[13], b[14], b[15]);
}

int
kr_uuid_valid(const char *s)
{
	for (size_t i = 0; i < KR_UUID_LEN; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!isdigit(c) && (c < 'a' || c > 'f'))
			return 0;
	}
	return s[KR_UUID_LEN] == '\0';
}
