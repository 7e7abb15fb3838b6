/*
 * kr_log: one line per event on stderr, "time level=... prog=... message".
 *
 * Never pass a secret (key, password, token, session id, master key) to these functions:
 * callers log ids, hints and outcomes only.
 */
#ifndef KR_LOG_H
#define KR_LOG_H

enum kr_log_level {
	KR_LOG_DEBUG = 0,
	KR_LOG_INFO,
	KR_LOG_WARN,
	KR_LOG_ERROR,
};

void	kr_log_init(const char *prog, enum kr_log_level level);
/* Parse "debug", "info", "warn" or "error": 0 on success, -1 otherwise. */
int	kr_log_parse_level(const char *s, enum kr_log_level *out);
void	kr_log(enum kr_log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#define kr_debug(...)	kr_log(KR_LOG_DEBUG, __VA_ARGS__)
#define kr_info(...)	kr_log(KR_LOG_INFO, __VA_ARGS__)
#define kr_warn(...)	kr_log(KR_LOG_WARN, __VA_ARGS__)
#define kr_error(...)	kr_log(KR_LOG_ERROR, __VA_ARGS__)

#endif
