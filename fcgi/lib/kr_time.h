/*
 * kr_time: times as the API shows them, RFC 3339 UTC with milliseconds
 * ("2026-11-21T22:49:05.123Z"), and ids.
 */
#ifndef KR_TIME_H
#define KR_TIME_H

#include <stddef.h>
#include <stdint.h>

#define KR_TIME_MAX	32
#define KR_UUID_LEN	36
#define KR_UUID_MAX	37

/* The current time. */
void	kr_time_now_rfc3339(char out[KR_TIME_MAX]);
/*
 * A MariaDB DATETIME(3) as text ("2026-11-21 22:49:05.123", in UTC since every connection
 * sets time_zone '+00:00') as RFC 3339. Returns 0, or -1 when s is not of that form.
 */
int	kr_time_from_db(const char *s, char out[KR_TIME_MAX]);
/* The reverse, for a bound parameter; accepts a "Z" or "+00:00" suffix only. 0 or -1. */
int	kr_time_to_db(const char *rfc3339, char out[KR_TIME_MAX]);
/* Milliseconds since the epoch, monotonic clock. */
int64_t	kr_time_mono_ms(void);

/* A new UUID, version 7 (time-ordered, RFC 9562), lower-case with hyphens. */
void	kr_uuid_new(char out[KR_UUID_MAX]);
/* 1 when s is a UUID in that form. */
int	kr_uuid_valid(const char *s);

#endif
