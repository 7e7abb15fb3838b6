#include "kr_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kr_time.h"

static const char *log_prog = "keyrelay";
static enum kr_log_level log_level = KR_LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
kr_log_init(const char *prog, enum kr_log_level level)
{
	log_prog = prog;
	log_level = level;
}

int
kr_log_parse_level(const char *s, enum kr_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum kr_log_level)i;
			return 0;
		}
	return -1;
}

void
kr_log(enum kr_log_level level, const char *fmt, ...)
{
	char line[2048], now[KR_TIME_MAX];
	va_list ap;
	int n;

	if (level < log_level)
		return;
	kr_time_now_rfc3339(now);
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* One fprintf per line: stdio locks the stream, so threads do not interleave. */
	fprintf(stderr, "%s level=%s prog=%s %s%s\n", now, level_names[level], log_prog, line,
	    (size_t)n >= sizeof(line) ? "..." : "");
}
