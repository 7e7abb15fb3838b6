/*
 * Fuzz target: what a provider answers, which comes from the internet. The input is a
 * provider (first byte), an HTTP status (second byte), four retry hint header values
 * (lines: retry-after, retry-after-ms, x-ratelimit-reset-requests and -tokens; an empty
 * line is an absent header) and the body (the rest). Each body is read as a completion
 * (kr_llm_parse_completion) and classified as an answer with that status
 * (kr_llm_classify_answer). Invariants: the classified message never holds the key nor
 * any 8 consecutive characters of it, even when the body echoes them (kr_llm_scrub's
 * promise); a retry hint stays within its cap.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kr_llm.h"
#include "kr_providers.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = { 200, 201, 301, 400, 401, 403, 404, 408, 409, 413, 422,
    429, 500, 502, 503, 504, 529 };
static const char key[] = "sk-ant-api03-fuzz0123456789abcdefABCDEF";

/* Whether msg holds 8 or more consecutive characters of the key. */
static int
leaks(const char *msg)
{
	char run[9];

	for (size_t i = 0; i + 8 <= sizeof(key) - 1; i++) {
		memcpy(run, key + i, 8);
		run[8] = '\0';
		if (strstr(msg, run) != NULL)
			return 1;
	}
	return 0;
}

/* The next line of [*p, end) into out (NUL-terminated, cut to cap - 1); NULL when empty. */
static const char *
line(const char **p, const char *end, char *out, size_t cap)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = (size_t)((nl != NULL ? nl : end) - *p);

	memcpy(out, *p, n < cap ? n : cap - 1);
	out[n < cap ? n : cap - 1] = '\0';
	*p = nl != NULL ? nl + 1 : end;
	return out[0] != '\0' ? out : NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char hdr[4][64];
	struct kr_llm_answer a;
	struct kr_llm_result out;
	const struct kr_provider *p;
	const char *cur, *end;

	if (size < 2)
		return 0;
	p = kr_provider_get((enum kr_provider_id)(data[0] % KR_PROV__MAX));
	memset(&a, 0, sizeof(a));
	a.status = statuses[data[1] % (sizeof(statuses) / sizeof(statuses[0]))];
	cur = (const char *)data + 2;
	end = (const char *)data + size;
	a.retry_after = line(&cur, end, hdr[0], sizeof(hdr[0]));
	a.retry_after_ms = line(&cur, end, hdr[1], sizeof(hdr[1]));
	a.reset_requests = line(&cur, end, hdr[2], sizeof(hdr[2]));
	a.reset_tokens = line(&cur, end, hdr[3], sizeof(hdr[3]));
	a.body = cur;
	a.len = (size_t)(end - cur);

	memset(&out, 0, sizeof(out));
	(void)kr_llm_parse_completion(p, a.body, a.len, &out);
	kr_llm_result_release(&out);

	memset(&out, 0, sizeof(out));
	kr_llm_classify_answer(p, &a, key, sizeof(key) - 1, &out);
	if (leaks(out.message) || out.retry_after_ms > KR_LLM_RETRY_MAX_MS)
		abort();
	kr_llm_result_release(&out);
	return 0;
}
