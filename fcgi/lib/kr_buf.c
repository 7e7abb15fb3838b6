#include "kr_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

void
kr_buf_init(struct kr_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

static enum kr_buf_err
fail(struct kr_buf *b, enum kr_buf_err why)
{
	kr_buf_release(b, 1);
	b->failed = why;
	return why;
}

/* Make room for n more bytes plus the terminating NUL. */
static enum kr_buf_err
reserve(struct kr_buf *b, size_t n)
{
	size_t need, ncap;
	char *p;

	if (b->failed)
		return b->failed;
	if (n > b->max || b->len > b->max - n)
		return fail(b, KR_BUF_TOOBIG);
	need = b->len + n + 1;
	if (need <= b->cap)
		return KR_BUF_OK;
	ncap = b->cap ? b->cap : 256;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > b->max + 1)
		ncap = b->max + 1;
	if ((p = realloc(b->data, ncap)) == NULL)
		return fail(b, KR_BUF_NOMEM);
	b->data = p;
	b->cap = ncap;
	return KR_BUF_OK;
}

enum kr_buf_err
kr_buf_add(struct kr_buf *b, const void *p, size_t n)
{
	enum kr_buf_err rc;

	if ((rc = reserve(b, n)) != KR_BUF_OK)
		return rc;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return KR_BUF_OK;
}

enum kr_buf_err
kr_buf_puts(struct kr_buf *b, const char *s)
{
	return kr_buf_add(b, s, strlen(s));
}

enum kr_buf_err
kr_buf_vprintf(struct kr_buf *b, const char *fmt, va_list ap)
{
	enum kr_buf_err rc;
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(NULL, 0, fmt, cp);
	va_end(cp);
	if (n < 0)
		return fail(b, KR_BUF_NOMEM);
	if ((rc = reserve(b, (size_t)n)) != KR_BUF_OK)
		return rc;
	(void)vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return KR_BUF_OK;
}

enum kr_buf_err
kr_buf_printf(struct kr_buf *b, const char *fmt, ...)
{
	enum kr_buf_err rc;
	va_list ap;

	va_start(ap, fmt);
	rc = kr_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *
kr_buf_str(const struct kr_buf *b)
{
	return b->data != NULL ? b->data : "";
}

void
kr_buf_reset(struct kr_buf *b)
{
	b->len = 0;
	b->failed = KR_BUF_OK;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void
kr_buf_release(struct kr_buf *b, int wipe)
{
	if (b->data != NULL && wipe)
		OPENSSL_cleanse(b->data, b->cap);
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = KR_BUF_OK;
}

char *
kr_buf_detach(struct kr_buf *b, size_t *len)
{
	char *p = b->failed ? NULL : b->data;

	if (len != NULL)
		*len = p != NULL ? b->len : 0;
	if (p == NULL)
		kr_buf_release(b, 0);
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
