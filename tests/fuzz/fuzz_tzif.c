/*
 * Fuzz target: the TZif parser (kr_tz_parse, the loader of /usr/share/zoneinfo files and
 * of their POSIX TZ footer), then the offset lookups over every zone it accepts.
 * Invariant: a wall time that kr_tz_wall produced exists, and its first occurrence is
 * no later than the instant it came from.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "kr_tz.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* UTC instants across the years kr_cron works in (1 to 9990), DST changes among them. */
static const int64_t instants[] = {
	-62135596800LL,		/* 0001-01-01 */
	-2208988800LL,		/* 1900-01-01 */
	-1, 0, 1,
	1711846800LL,		/* 2024-03-31 01:00, spring forward in Europe */
	1729990800LL,		/* 2024-10-27 01:00, fall back in Europe */
	2147482800LL,		/* 2038-01-19 03:00 */
	4102444800LL,		/* 2100-01-01 */
	253118217600LL,		/* 9990-12-31 */
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kr_tz_zone *z = kr_tz_parse(data, size);
	int64_t first;

	if (z == NULL)
		return 0;
	for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
		int64_t w = kr_tz_wall(z, instants[i]);
		if (!kr_tz_wall_first(z, w, &first) || first > instants[i])
			abort();
	}
	kr_tz_free(&z);
	return 0;
}
