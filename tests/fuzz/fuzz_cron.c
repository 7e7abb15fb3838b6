/*
 * Fuzz target: cron expressions as users type them (kr_cron_parse), and the next fire
 * time of every expression it accepts, in UTC and in two zones with daylight saving.
 * Invariant: a next fire time is later than the time it follows, and a minute boundary.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kr_cron.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const zones[] = { "UTC", "Europe/Berlin", "America/New_York" };

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char expr[256], err[128];
	struct kr_cron c;
	time_t after = 1729990800;	/* 2024-10-27 01:00 UTC, the night Europe falls back */

	if (size >= sizeof(expr))
		size = sizeof(expr) - 1;
	memcpy(expr, data, size);
	expr[size] = '\0';
	if (kr_cron_parse(expr, &c, err, sizeof(err)) != 0)
		return 0;
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		time_t next = kr_cron_next(&c, zones[i], after);
		if (next != -1 && (next <= after || next % 60 != 0))
			abort();
	}
	return 0;
}
