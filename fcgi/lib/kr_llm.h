/*
 * kr_llm: calls to AI providers over libcurl, for the key check (costs no tokens) and for
 * completions, and the one classifier that maps every answer to what it means
 * (providers.md, "Errors and what they mean").
 *
 * A call is prepared as a curl easy handle (kr_llm_call_new), so the runner can drive many
 * at once on a curl multi handle, and the API can run one synchronously (kr_llm_run).
 * Outbound rules: https only unless the base URL's origin is allowlisted; no redirects;
 * connect and total timeouts; a response-size cap; TLS verification on; the resolved address
 * is refused when it is loopback or private unless allowlisted (CURLOPT_OPENSOCKETFUNCTION);
 * the key travels only in the provider's auth header, never in the URL; messages from the
 * provider are stored and shown only after anything resembling the key is removed.
 */
#ifndef KR_LLM_H
#define KR_LLM_H

#include <netinet/in.h>
#include <stddef.h>

#include <curl/curl.h>

#include "kr_config.h"
#include "kr_outbound.h"
#include "kr_providers.h"

#define KR_LLM_MSG_MAX		501	/* 500 bytes: the VARCHAR(500) of last_error */
#define KR_LLM_BODY_MAX		(8 * 1024 * 1024)	/* response-size cap */

enum kr_llm_class {
	KR_LLM_OK = 0,
	KR_LLM_AUTH,		/* the key is invalid or expired: mark it invalid, next key */
	KR_LLM_QUOTA,		/* billing or quota refused: mark it exhausted, next key */
	KR_LLM_RATE,		/* rate limited: cool the key down for retry_after_ms, next key */
	KR_LLM_TRANSIENT,	/* overloaded, 5xx, network, timeout, cut-off body: back off */
	KR_LLM_REQUEST,		/* the request itself is wrong: fail without retry */
};

/* "ok", "auth", "quota", "rate", "transient", "request". */
const char	*kr_llm_class_name(enum kr_llm_class c);

struct kr_llm_msg {
	const char	*role;		/* "user" or "assistant" */
	const char	*content;
};

struct kr_llm_request {
	const struct kr_provider *prov;
	const char		*base_url;	/* from kr_provider_base_url */
	const char		*key;		/* the plaintext key; the call keeps a copy, wiped on free */
	size_t			 keylen;
	const char		*model;		/* NULL: the provider's default */
	const char		*system;	/* may be NULL */
	const struct kr_llm_msg	*msgs;
	size_t			 nmsgs;
	unsigned		 max_tokens;	/* 0: 1024 */
	long			 timeout_ms;	/* total; 0: 60000 */
	CURLSH			*share;		/* optional, caller-owned: kr_llm_share_new */
};

struct kr_llm_result {
	enum kr_llm_class	cls;
	long			http_status;	/* 0 when no HTTP answer came */
	long			retry_after_ms;	/* provider hint, -1 when none; capped at 300000 */
	long			latency_ms;
	char			message[KR_LLM_MSG_MAX];	/* human-readable, key scrubbed */
	char			*text;		/* completion text (malloc'd), NULL otherwise */
	long long		input_tokens;	/* all prompt tokens, cached ones included; -1: unknown */
	long long		output_tokens;	/* thinking tokens included; -1: unknown */
};

struct kr_llm_call;

/*
 * Prepare a call: check_only selects the zero-token key check (providers.md's "key check"
 * column; zai falls back to a 1-token chat call when /models answers 404). NULL with err
 * set when the request cannot be made (base URL missing or not allowed, no memory).
 */
struct kr_llm_call	*kr_llm_call_new(const struct kr_config *cfg,
			    const struct kr_llm_request *req, int check_only, char *err,
			    size_t errlen);
/* The easy handle to add to a multi handle; owned by the call. Its CURLINFO_PRIVATE is the call. */
CURL			*kr_llm_call_easy(struct kr_llm_call *call);
/*
 * After the transfer ended with rc: classify, parse, fill out (overwritten: release it
 * first). A completion refused by a content filter is KR_LLM_REQUEST. May return 1 ("run the
 * easy handle again": the zai check fallback) after re-arming the handle; else 0.
 */
int			 kr_llm_call_finish(struct kr_llm_call *call, CURLcode rc,
			    struct kr_llm_result *out);
/* Free the call, wiping the copy of the key in its headers. */
void			 kr_llm_call_free(struct kr_llm_call **call);

/* Run one call synchronously (curl_easy_perform) and fill out. */
void			 kr_llm_run(const struct kr_config *cfg, const struct kr_llm_request *req,
			    int check_only, struct kr_llm_result *out);
/*
 * Run the n calls reqs[] at once on a multi handle, each within its own timeout, and fill
 * outs[i] for each (the bulk key check, so that n keys take as long as the slowest).
 */
void			 kr_llm_run_many(const struct kr_config *cfg,
			    const struct kr_llm_request *reqs, size_t n, int check_only,
			    struct kr_llm_result *outs);
void			 kr_llm_result_release(struct kr_llm_result *out);

/*
 * A connection cache, DNS cache and TLS session cache for synchronous calls, so that
 * kr_llm_run reuses connections (a multi handle has its own caches). One per thread: libcurl
 * does not support a shared connection cache used by concurrent threads (curl issue 4915).
 */
CURLSH			*kr_llm_share_new(void);
void			 kr_llm_share_free(CURLSH **share);

/*
 * Pure pieces, exposed for unit tests. classify maps one HTTP answer (status, the
 * retry-after and retry-after-ms headers or NULL, the body) to out->cls, retry_after_ms and
 * a scrubbed message "<what> (<status>): <provider message>". parse_completion reads text
 * and usage from a 200 body: 0 with cls KR_LLM_OK, or 0 with cls KR_LLM_REQUEST and a
 * message when a content filter withheld the answer; -1 when the body is not a completion.
 * scrub replaces every occurrence of the key, and of any run of 8 or more consecutive
 * characters of it (its last characters, as providers echo them, among others), with
 * "[redacted]", in place; a key shorter than 8 is replaced only whole.
 */
void	kr_llm_classify(const struct kr_provider *p, long status, const char *retry_after,
	    const char *retry_after_ms, const char *body, size_t len, const char *key,
	    size_t keylen, struct kr_llm_result *out);
int	kr_llm_parse_completion(const struct kr_provider *p, const char *body, size_t len,
	    struct kr_llm_result *out);
void	kr_llm_scrub(char *msg, size_t cap, const char *key, size_t keylen);

/* One HTTP answer as kr_llm_classify_answer reads it; a NULL header is absent. */
struct kr_llm_answer {
	long		 status;
	const char	*retry_after;		/* seconds or an HTTP date */
	const char	*retry_after_ms;
	const char	*reset_requests;	/* x-ratelimit-reset-requests: "6s", "1m30s" */
	const char	*reset_tokens;		/* x-ratelimit-reset-tokens: "12ms" */
	const char	*body;
	size_t		 len;
};
/* kr_llm_classify with every retry hint header. */
void	kr_llm_classify_answer(const struct kr_provider *p, const struct kr_llm_answer *a,
	    const char *key, size_t keylen, struct kr_llm_result *out);
/*
 * The retry hint in milliseconds, -1 when none: retry-after-ms, else retry-after (seconds
 * or an HTTP date, against now), else the later of the x-ratelimit-reset-* durations;
 * capped at KR_LLM_RETRY_MAX_MS. now: seconds since the epoch, for HTTP dates.
 */
#define KR_LLM_RETRY_MAX_MS	300000L
long	kr_llm_retry_hint_ms(const struct kr_llm_answer *a, long long now);
/* A duration as "6s", "12ms", "1m30s", "1.5s", "2h" or "36s" (protobuf): ms, -1 if malformed. */
long	kr_llm_duration_ms(const char *s);
/* What a call asks for; KR_LLM_OP_PING is the 1-token chat of the zai key check fallback. */
enum kr_llm_op {
	KR_LLM_OP_CHAT = 0,
	KR_LLM_OP_CHECK,
	KR_LLM_OP_PING,
};
/* The request as it would go out, for tests: headers are "Name: value" lines joined by \n. */
struct kr_llm_built {
	const char	*method;	/* "GET" or "POST" */
	char	*url;
	char	*headers;
	char	*body;		/* NULL for a GET */
};
/* 0, or -1 with err set (no secret in it). Release with kr_llm_built_release (wipes). */
int	kr_llm_build_for_test(const struct kr_llm_request *req, enum kr_llm_op op,
	    struct kr_llm_built *out, char *err, size_t errlen);
void	kr_llm_built_release(struct kr_llm_built *b);

#endif
