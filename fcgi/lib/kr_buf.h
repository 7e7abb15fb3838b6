/*
 * kr_buf: a growable byte buffer with a hard size cap.
 *
 * Invariants: data is NULL or NUL-terminated at len; len < cap; len never exceeds max.
 * An append that would pass max, or that fails to allocate, frees the buffer and sets
 * failed: every later append is a no-op returning the same error, so a caller may append
 * many times and check once (curl's dynbuf does the same).
 */
#ifndef KR_BUF_H
#define KR_BUF_H

#include <stdarg.h>
#include <stddef.h>

enum kr_buf_err {
	KR_BUF_OK = 0,
	KR_BUF_TOOBIG,	/* the append would pass max */
	KR_BUF_NOMEM,
};

struct kr_buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
	enum kr_buf_err failed;
};

/* Start an empty buffer that will never hold more than max bytes. */
void		kr_buf_init(struct kr_buf *b, size_t max);
enum kr_buf_err	kr_buf_add(struct kr_buf *b, const void *p, size_t n);
enum kr_buf_err	kr_buf_puts(struct kr_buf *b, const char *s);
enum kr_buf_err	kr_buf_printf(struct kr_buf *b, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));
enum kr_buf_err	kr_buf_vprintf(struct kr_buf *b, const char *fmt, va_list ap)
		    __attribute__((format(printf, 2, 0)));
/* The contents as a string: "" for an empty buffer, never NULL. */
const char	*kr_buf_str(const struct kr_buf *b);
/* Empty the buffer, keeping its memory and max; clears failed. */
void		kr_buf_reset(struct kr_buf *b);
/* Free the memory (wiped first when wipe is non-zero); the buffer may be reused. */
void		kr_buf_release(struct kr_buf *b, int wipe);
/* Take the contents (caller frees); the buffer is left empty. NULL if empty or failed. */
char		*kr_buf_detach(struct kr_buf *b, size_t *len);

#endif
