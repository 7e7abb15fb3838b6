/*
 * kr_llm: classification of every row of providers.md's error table, retry hints, parsing
 * of completions, scrubbing of keys, the requests as they would go out, the address check,
 * and the transport's own failures against loopback sockets (no provider, no stub).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "kr_llm.h"
#include "kr_test.h"

/* A failed precondition: count it and leave the test function. */
#define FAIL_RETURN()	do { CHECK(0); return; } while (0)

#define KEY	"sk-proj-Zq8vT3xW9yB2nK5mP7rL4sD6fG1hJ0aCeUoIiAbCd"

static const struct kr_provider *
prov(enum kr_provider_id id)
{
	return kr_provider_get(id);
}

/* ---- classification: one row per line of providers.md's table ---- */

struct row {
	int			 line;
	enum kr_provider_id	 prov;
	long			 status;
	const char		*retry_after, *retry_after_ms, *reset_req, *reset_tok;
	const char		*body;
	enum kr_llm_class	 cls;
	long			 retry_ms;
	const char		*message;	/* NULL: not checked */
};

#define R(...)	{ __LINE__, __VA_ARGS__ }
#define AN	KR_PROV_ANTHROPIC
#define OA	KR_PROV_OPENAI
#define GG	KR_PROV_GOOGLE
#define ZA	KR_PROV_ZAI
#define MS	KR_PROV_MOONSHOT
#define OC	KR_PROV_OPENAI_COMPATIBLE

static const struct row rows[] = {
	/* anthropic */
	R(AN, 401, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"authentication_error\",\"message\":\"invalid x-api-key\"},\"request_id\":"
	    "\"req_011CSHoEeqs5C35K2UUqR7Fy\"}", KR_LLM_AUTH, -1,
	    "authentication failed (401): invalid x-api-key"),
	R(AN, 402, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"billing_error\",\"message\":\"Your credit balance is too low to access the "
	    "Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.\"}}",
	    KR_LLM_QUOTA, -1, "quota exhausted (402): Your credit balance is too low to access "
	    "the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."),
	R(AN, 400, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"invalid_request_error\",\"message\":\"You have reached your specified workspace "
	    "API spend limit. You will regain access on 2026-12-01 at 00:00 UTC.\"}}",
	    KR_LLM_QUOTA, -1, NULL),
	R(AN, 400, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"invalid_request_error\",\"message\":\"You have reached your specified API usage "
	    "limits. You will regain access on 2026-12-01 at 00:00 UTC.\"}}", KR_LLM_QUOTA, -1,
	    NULL),
	R(AN, 400, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"invalid_request_error\",\"message\":\"messages: roles must alternate between "
	    "\\\"user\\\" and \\\"assistant\\\"\"}}", KR_LLM_REQUEST, -1,
	    "request refused (400): messages: roles must alternate between \"user\" and "
	    "\"assistant\""),
	R(AN, 403, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"permission_error\",\"message\":\"Your API key does not have permission to use "
	    "the specified resource.\"}}", KR_LLM_REQUEST, -1, NULL),
	R(AN, 404, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"not_found_error\",\"message\":\"model: claude-nope\"}}", KR_LLM_REQUEST, -1,
	    "request refused (404): model: claude-nope"),
	R(AN, 413, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"request_too_large\",\"message\":\"Request exceeds the maximum allowed number of "
	    "bytes.\"}}", KR_LLM_REQUEST, -1, NULL),
	R(AN, 429, "17", NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"rate_limit_error\",\"message\":\"This request would exceed the rate limit for "
	    "your organization of 50 requests per minute.\"}}", KR_LLM_RATE, 17000, NULL),
	R(AN, 529, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"overloaded_error\",\"message\":\"Overloaded\"}}", KR_LLM_TRANSIENT, -1,
	    "provider unavailable (529): Overloaded"),
	R(AN, 500, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"api_error\",\"message\":\"Internal server error\"}}", KR_LLM_TRANSIENT, -1, NULL),
	R(AN, 504, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"timeout_error\",\"message\":\"Request timed out\"}}", KR_LLM_TRANSIENT, -1, NULL),
	/* openai */
	R(OA, 401, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"Incorrect API key "
	    "provided: sk-proj-****AbCd. You can find your API key at https://platform.openai."
	    "com/account/api-keys.\",\"type\":\"invalid_request_error\",\"param\":null,"
	    "\"code\":\"invalid_api_key\"}}", KR_LLM_AUTH, -1, "authentication failed (401): "
	    "Incorrect API key provided: [redacted]****AbCd. You can find your API key at "
	    "https://platform.openai.com/account/api-keys."),
	R(OA, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"You exceeded your "
	    "current quota, please check your plan and billing details.\",\"type\":"
	    "\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}",
	    KR_LLM_QUOTA, -1, NULL),
	R(OA, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"Your credit balance is "
	    "exhausted.\",\"type\":\"invalid_request_error\",\"code\":\"credit_balance_exhausted\"}}",
	    KR_LLM_QUOTA, -1, NULL),
	R(OA, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"You have hit your monthly "
	    "spend limit.\",\"type\":\"project_monthly_spend_limit_exceeded\",\"code\":null}}",
	    KR_LLM_QUOTA, -1, NULL),
	R(OA, 429, "2", "1500", "6s", "12ms", "{\"error\":{\"message\":\"Rate limit reached for "
	    "gpt-4o-mini in organization org-abc on tokens per min (TPM): Limit 200000, Used "
	    "199823, Requested 1200. Please try again in 307ms.\",\"type\":\"tokens\",\"param\":"
	    "null,\"code\":\"rate_limit_exceeded\"}}", KR_LLM_RATE, 1500, NULL),
	R(OA, 429, NULL, NULL, "6s", "12ms", "{\"error\":{\"message\":\"Rate limit reached\","
	    "\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}", KR_LLM_RATE, 6000, NULL),
	R(OA, 500, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"The server had an error "
	    "while processing your request. Sorry about that!\",\"type\":\"server_error\","
	    "\"param\":null,\"code\":null}}", KR_LLM_TRANSIENT, -1, NULL),
	R(OA, 503, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"The engine is currently "
	    "overloaded, please try again later.\",\"type\":\"server_error\"}}",
	    KR_LLM_TRANSIENT, -1, NULL),
	R(OA, 400, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"Invalid value for "
	    "'max_completion_tokens'.\",\"type\":\"invalid_request_error\",\"param\":"
	    "\"max_completion_tokens\",\"code\":\"invalid_value\"}}", KR_LLM_REQUEST, -1, NULL),
	R(OA, 404, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"The model `gpt-9` does "
	    "not exist or you do not have access to it.\",\"type\":\"invalid_request_error\","
	    "\"param\":null,\"code\":\"model_not_found\"}}", KR_LLM_REQUEST, -1, NULL),
	R(OA, 400, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"Your request was rejected "
	    "as a result of our safety system.\",\"type\":\"invalid_request_error\",\"code\":"
	    "\"content_policy_violation\"}}", KR_LLM_REQUEST, -1, NULL),
	R(OA, 408, NULL, NULL, NULL, NULL, "", KR_LLM_TRANSIENT, -1,
	    "provider unavailable (408)"),
	R(OA, 409, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"conflict\"}}",
	    KR_LLM_TRANSIENT, -1, NULL),
	/* gemini */
	R(GG, 400, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":400,\"message\":\"API key not "
	    "valid. Please pass a valid API key.\",\"status\":\"INVALID_ARGUMENT\",\"details\":"
	    "[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":"
	    "\"API_KEY_INVALID\",\"domain\":\"googleapis.com\",\"metadata\":{\"service\":"
	    "\"generativelanguage.googleapis.com\"}},{\"@type\":\"type.googleapis.com/google.rpc."
	    "LocalizedMessage\",\"locale\":\"en-US\",\"message\":\"API key not valid. Please pass "
	    "a valid API key.\"}]}}", KR_LLM_AUTH, -1,
	    "authentication failed (400): API key not valid. Please pass a valid API key."),
	R(GG, 403, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":403,\"message\":\"Your API key "
	    "was reported as leaked. Please use another API key.\",\"status\":"
	    "\"PERMISSION_DENIED\"}}", KR_LLM_AUTH, -1, NULL),
	R(GG, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":429,\"message\":\"You exceeded "
	    "your current quota, please check your plan and billing details.\\n* Quota exceeded "
	    "for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, "
	    "limit: 250\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type."
	    "googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{\"quotaMetric\":"
	    "\"generativelanguage.googleapis.com/generate_content_free_tier_requests\","
	    "\"quotaId\":\"GenerateRequestsPerDayPerProjectPerModel-FreeTier\","
	    "\"quotaDimensions\":{\"location\":\"global\",\"model\":\"gemini-2.5-flash\"},"
	    "\"quotaValue\":\"250\"}]},{\"@type\":\"type.googleapis.com/google.rpc.Help\","
	    "\"links\":[{\"description\":\"Learn more\",\"url\":\"https://ai.google.dev/gemini-"
	    "api/docs/rate-limits\"}]},{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\","
	    "\"retryDelay\":\"11s\"}]}}", KR_LLM_QUOTA, 11000, NULL),
	R(GG, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":429,\"message\":\"You exceeded "
	    "your current quota.\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":"
	    "\"type.googleapis.com/google.rpc.QuotaFailure\",\"violations\":[{\"quotaMetric\":"
	    "\"generativelanguage.googleapis.com/generate_content_free_tier_requests\","
	    "\"quotaId\":\"GenerateRequestsPerMinutePerProjectPerModel-FreeTier\",\"quotaValue\":"
	    "\"10\"}]},{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":"
	    "\"36s\"}]}}", KR_LLM_RATE, 36000, NULL),
	R(GG, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":429,\"message\":\"Resource has "
	    "been exhausted (e.g. check quota).\",\"status\":\"RESOURCE_EXHAUSTED\"}}",
	    KR_LLM_RATE, -1, NULL),
	R(GG, 503, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":503,\"message\":\"The model is "
	    "overloaded. Please try again later.\",\"status\":\"UNAVAILABLE\"}}",
	    KR_LLM_TRANSIENT, -1, "provider unavailable (503): The model is overloaded. Please "
	    "try again later."),
	R(GG, 500, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":500,\"message\":\"An internal "
	    "error has occurred.\",\"status\":\"INTERNAL\"}}", KR_LLM_TRANSIENT, -1, NULL),
	R(GG, 504, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":504,\"message\":\"Deadline "
	    "exceeded\",\"status\":\"DEADLINE_EXCEEDED\"}}", KR_LLM_TRANSIENT, -1, NULL),
	R(GG, 400, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":400,\"message\":\"* "
	    "GenerateContentRequest.contents: contents is not specified\",\"status\":"
	    "\"INVALID_ARGUMENT\"}}", KR_LLM_REQUEST, -1, NULL),
	R(GG, 400, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":400,\"message\":\"User "
	    "location is not supported for the API use.\",\"status\":\"FAILED_PRECONDITION\"}}",
	    KR_LLM_REQUEST, -1, NULL),
	R(GG, 404, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":404,\"message\":\"models/"
	    "gemini-9 is not found for API version v1beta\",\"status\":\"NOT_FOUND\"}}",
	    KR_LLM_REQUEST, -1, NULL),
	R(GG, 429, NULL, NULL, NULL, NULL, "[{\"error\":{\"code\":429,\"message\":\"slow down\","
	    "\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/"
	    "google.rpc.RetryInfo\",\"retryDelay\":\"1.5s\"}]}}]", KR_LLM_RATE, 1500,
	    "rate limited (429): slow down"),
	/* moonshot */
	R(MS, 401, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"Invalid Authentication\","
	    "\"type\":\"invalid_authentication_error\"}}", KR_LLM_AUTH, -1,
	    "authentication failed (401): Invalid Authentication"),
	R(MS, 403, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"Your account org-abc<ak-"
	    "xyz> is suspended, please check your plan and billing details\",\"type\":"
	    "\"exceeded_current_quota_error\"}}", KR_LLM_QUOTA, -1, NULL),
	R(MS, 403, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"The API you are accessing "
	    "is not open\",\"type\":\"permission_denied_error\"}}", KR_LLM_REQUEST, -1, NULL),
	R(MS, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"Your account org-abc<ak-"
	    "xyz> is suspended, please check your plan and billing details\",\"type\":"
	    "\"exceeded_current_quota_error\"}}", KR_LLM_QUOTA, -1, NULL),
	R(MS, 429, "3", NULL, NULL, NULL, "{\"error\":{\"message\":\"Your account org-abc<ak-"
	    "xyz> request reached organization max RPM: 3, please try again after 1 seconds\","
	    "\"type\":\"rate_limit_reached_error\"}}", KR_LLM_RATE, 3000, NULL),
	R(MS, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"The engine is currently "
	    "overloaded, please try again later\",\"type\":\"engine_overloaded_error\"}}",
	    KR_LLM_TRANSIENT, -1, NULL),
	R(MS, 400, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"The request was rejected "
	    "because it was considered high risk\",\"type\":\"content_filter\"}}",
	    KR_LLM_REQUEST, -1, NULL),
	R(MS, 500, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"server error\",\"type\":"
	    "\"server_error\"}}", KR_LLM_TRANSIENT, -1, NULL),
	/* zai */
	R(ZA, 401, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":\"1000\",\"message\":"
	    "\"Authentication Failed\"}}", KR_LLM_AUTH, -1,
	    "authentication failed (401): Authentication Failed"),
	R(ZA, 401, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":\"1002\",\"message\":"
	    "\"Invalid Authentication Token\"}}", KR_LLM_AUTH, -1, NULL),
	R(ZA, 400, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":1004,\"message\":"
	    "\"Authentication failed: token expired\"}}", KR_LLM_AUTH, -1, NULL),
	R(ZA, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":\"1113\",\"message\":"
	    "\"Insufficient balance or no resource package. Please recharge.\"}}",
	    KR_LLM_QUOTA, -1, NULL),
	R(ZA, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":\"1112\",\"message\":\"Your "
	    "account has been locked\"}}", KR_LLM_QUOTA, -1, NULL),
	R(ZA, 429, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":\"1121\",\"message\":\"Your "
	    "account is locked due to irregular activities\"}}", KR_LLM_QUOTA, -1, NULL),
	R(ZA, 429, "5", NULL, NULL, NULL, "{\"error\":{\"code\":\"1302\",\"message\":\"High "
	    "concurrency usage of this API, please reduce concurrency or contact customer "
	    "service to increase limits\"}}", KR_LLM_RATE, 5000, NULL),
	R(ZA, 400, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":\"1211\",\"message\":\"Unknown "
	    "Model, please check the model code.\"}}", KR_LLM_REQUEST, -1, NULL),
	R(ZA, 500, NULL, NULL, NULL, NULL, "{\"error\":{\"code\":\"500\",\"message\":\"Internal "
	    "Error\"}}", KR_LLM_TRANSIENT, -1, NULL),
	/* openai_compatible and answers of no provider's shape */
	R(OC, 401, NULL, NULL, NULL, NULL, "{\"error\":{\"message\":\"Unauthorized\"}}",
	    KR_LLM_AUTH, -1, NULL),
	R(OC, 400, NULL, NULL, NULL, NULL, "{\"error\":\"Model not loaded\"}", KR_LLM_REQUEST,
	    -1, "request refused (400): Model not loaded"),
	R(OC, 302, NULL, NULL, NULL, NULL, "", KR_LLM_REQUEST, -1,
	    "provider answered with a redirect (302)"),
	R(OA, 502, NULL, NULL, NULL, NULL, "<html><body><h1>502 Bad Gateway</h1></body></html>",
	    KR_LLM_TRANSIENT, -1, "provider unavailable (502)"),
	R(OC, 503, NULL, NULL, NULL, NULL, "upstream connect error\r\nreset reason: overflow",
	    KR_LLM_TRANSIENT, -1, "provider unavailable (503): upstream connect error  reset "
	    "reason: overflow"),
	R(AN, 429, NULL, NULL, NULL, NULL, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\"",
	    KR_LLM_RATE, -1, "rate limited (429)"),
};

static void
test_classify_table(void)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];
		struct kr_llm_answer a = { w->status, w->retry_after, w->retry_after_ms,
		    w->reset_req, w->reset_tok, w->body, strlen(w->body) };
		struct kr_llm_result r;
		int bad;

		memset(&r, 0, sizeof(r));
		kr_llm_classify_answer(prov(w->prov), &a, KEY, strlen(KEY), &r);
		bad = r.cls != w->cls || r.retry_after_ms != w->retry_ms ||
		    r.http_status != w->status ||
		    (w->message != NULL && strcmp(r.message, w->message) != 0);
		CHECK(!bad);
		if (bad)
			fprintf(stderr, "  row at line %d: got %s retry %ld \"%s\"\n", w->line,
			    kr_llm_class_name(r.cls), r.retry_after_ms, r.message);
	}
}

/* The two-header form of the API: retry-after and retry-after-ms only. */
static void
test_classify_simple(void)
{
	static const char body[] = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
	    "\"message\":\"slow\"}}";
	struct kr_llm_result r;

	kr_llm_classify(prov(KR_PROV_ANTHROPIC), 429, "30", NULL, body, strlen(body), KEY,
	    strlen(KEY), &r);
	CHECK(r.cls == KR_LLM_RATE);
	CHECK(r.retry_after_ms == 30000);
	CHECK_STR(r.message, "rate limited (429): slow");
	kr_llm_classify(prov(KR_PROV_OPENAI), 200, NULL, NULL, "{}", 2, KEY, strlen(KEY), &r);
	CHECK(r.cls == KR_LLM_OK);
	kr_llm_classify(prov(KR_PROV_OPENAI), 500, NULL, NULL, NULL, 0, KEY, strlen(KEY), &r);
	CHECK(r.cls == KR_LLM_TRANSIENT);
	CHECK_STR(r.message, "provider unavailable (500)");
}

/* A provider echoing the key: the stored message never holds it. */
static void
test_classify_echo(void)
{
	static const char body[] = "{\"error\":{\"message\":\"Incorrect API key provided: "
	    KEY ". You can find your API key at https://platform.openai.com/account/api-keys."
	    "\",\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}";
	struct kr_llm_result r;

	kr_llm_classify(prov(KR_PROV_OPENAI), 401, NULL, NULL, body, strlen(body), KEY,
	    strlen(KEY), &r);
	CHECK(r.cls == KR_LLM_AUTH);
	CHECK(strstr(r.message, "Zq8vT3xW") == NULL);
	CHECK_STR(r.message, "authentication failed (401): Incorrect API key provided: "
	    "[redacted]. You can find your API key at https://platform.openai.com/account/"
	    "api-keys.");
}

/* A long message is cut to fit, at a character boundary, ending in "...". */
static void
test_classify_long(void)
{
	char body[4096], msg[3000];
	struct kr_llm_result r;
	size_t n;

	memset(msg, 'x', sizeof(msg));
	memcpy(msg + 505, "\xc3\xa9\xc3\xa9", 4);	/* "éé" across the cut */
	msg[sizeof(msg) - 1] = '\0';
	snprintf(body, sizeof(body), "{\"error\":{\"message\":\"%s\"}}", msg);
	kr_llm_classify(prov(KR_PROV_OPENAI), 400, NULL, NULL, body, strlen(body), KEY,
	    strlen(KEY), &r);
	n = strlen(r.message);
	CHECK(n < KR_LLM_MSG_MAX && n > 400);
	CHECK(strcmp(r.message + n - 3, "...") == 0);
	CHECK(strncmp(r.message, "request refused (400): xxx", 26) == 0);
	CHECK(((unsigned char)r.message[n - 4] & 0xC0) != 0xC0);	/* no half character */
}

/* 1 when s is valid UTF-8 (what a utf8mb4 column takes). */
static int
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		size_t len = *p < 0x80 ? 1 : *p >= 0xC2 && *p <= 0xDF ? 2 :
		    *p >= 0xE0 && *p <= 0xEF ? 3 : *p >= 0xF0 && *p <= 0xF4 ? 4 : 0;
		if (len == 0)
			return 0;
		for (size_t i = 1; i < len; i++)
			if ((p[i] & 0xC0) != 0x80)
				return 0;
		p += len;
	}
	return 1;
}

/*
 * Messages fit last_error (VARCHAR(500)) and are valid UTF-8 whatever the provider sent:
 * MariaDB refuses either, and the key's outcome would then not be recorded.
 */
static void
test_classify_storable(void)
{
	char body[4096], text[256];
	struct kr_llm_result r;

	memset(body, 0, sizeof(body));
	snprintf(body, sizeof(body), "{\"error\":{\"message\":\"%0600d\"}}", 7);
	kr_llm_classify(prov(KR_PROV_GOOGLE), 429, NULL, NULL, body, strlen(body), KEY,
	    strlen(KEY), &r);
	CHECK(strlen(r.message) <= 500);
	/* a plain-text body cut at 200 bytes, inside an "é" */
	memset(text, 'x', 199);
	memcpy(text + 199, "\xc3\xa9 tail", 8);
	text[207] = '\0';
	kr_llm_classify(prov(KR_PROV_OPENAI), 503, NULL, NULL, text, strlen(text), KEY,
	    strlen(KEY), &r);
	CHECK(r.cls == KR_LLM_TRANSIENT);
	CHECK(valid_utf8(r.message));
	CHECK(strstr(r.message, "xxxx") != NULL);
	/* Latin-1 inside a JSON message (json-c does not check UTF-8) */
	snprintf(body, sizeof(body), "{\"error\":{\"message\":\"caf\xe9 closed\"}}");
	kr_llm_classify(prov(KR_PROV_OPENAI), 400, NULL, NULL, body, strlen(body), KEY,
	    strlen(KEY), &r);
	CHECK(valid_utf8(r.message));
	CHECK(strstr(r.message, "caf? closed") != NULL);
}

/* ---- retry hints ---- */

static long
hint(const char *ra, const char *ram, const char *rq, const char *rt, long long now)
{
	struct kr_llm_answer a = { 429, ra, ram, rq, rt, NULL, 0 };

	return kr_llm_retry_hint_ms(&a, now);
}

static void
test_retry_hints(void)
{
	long long date = (long long)curl_getdate("Wed, 21 Oct 2026 07:28:00 GMT", NULL);

	CHECK(date > 0);
	CHECK(hint(NULL, NULL, NULL, NULL, 0) == -1);
	CHECK(hint(NULL, "1500", NULL, NULL, 0) == 1500);
	CHECK(hint(NULL, "250.7", NULL, NULL, 0) == 251);
	CHECK(hint("20", "1500", NULL, NULL, 0) == 1500);	/* -ms first */
	CHECK(hint("20", NULL, "6s", NULL, 0) == 20000);	/* then retry-after */
	CHECK(hint("1.5", NULL, NULL, NULL, 0) == 1500);
	CHECK(hint(" 7 ", NULL, NULL, NULL, 0) == 7000);
	CHECK(hint("Wed, 21 Oct 2026 07:28:00 GMT", NULL, NULL, NULL, date - 30) == 30000);
	CHECK(hint("Wed, 21 Oct 2026 07:28:00 GMT", NULL, NULL, NULL, date + 30) == 0);
	CHECK(hint("Wed, 21 Oct 2026 07:28:00 GMT", NULL, NULL, NULL, date - 86400) ==
	    KR_LLM_RETRY_MAX_MS);
	CHECK(hint("soon", NULL, NULL, NULL, 0) == -1);
	CHECK(hint(NULL, "x", NULL, NULL, 0) == -1);
	CHECK(hint("86400", NULL, NULL, NULL, 0) == KR_LLM_RETRY_MAX_MS);	/* capped */
	CHECK(hint(NULL, NULL, "6s", NULL, 0) == 6000);
	CHECK(hint(NULL, NULL, NULL, "12ms", 0) == 12);
	CHECK(hint(NULL, NULL, "6s", "12ms", 0) == 6000);	/* the later reset */
	CHECK(hint(NULL, NULL, "1m30s", "2s", 0) == 90000);
	CHECK(hint(NULL, NULL, "bogus", "2s", 0) == 2000);
	CHECK(hint(NULL, NULL, "2h", NULL, 0) == KR_LLM_RETRY_MAX_MS);
	{
		/* OpenAI's reset headers come on every answer: a 503 is not told to wait */
		struct kr_llm_answer a = { 503, NULL, NULL, "6m0s", "1s", NULL, 0 };
		CHECK(kr_llm_retry_hint_ms(&a, 0) == -1);
	}

	CHECK(kr_llm_duration_ms("6s") == 6000);
	CHECK(kr_llm_duration_ms("12ms") == 12);
	CHECK(kr_llm_duration_ms("1m30s") == 90000);
	CHECK(kr_llm_duration_ms("6m0s") == 360000);
	CHECK(kr_llm_duration_ms("1h2m3.5s") == 3723500);
	CHECK(kr_llm_duration_ms("36s") == 36000);
	CHECK(kr_llm_duration_ms("0.036s") == 36);
	CHECK(kr_llm_duration_ms("1.5s") == 1500);
	CHECK(kr_llm_duration_ms("500us") == 1);
	CHECK(kr_llm_duration_ms("0s") == 0);
	CHECK(kr_llm_duration_ms("99999999999999999999h") > 0);	/* bounded, no overflow */
	CHECK(kr_llm_duration_ms("6") == -1);
	CHECK(kr_llm_duration_ms("s") == -1);
	CHECK(kr_llm_duration_ms("6x") == -1);
	CHECK(kr_llm_duration_ms("") == -1);
	CHECK(kr_llm_duration_ms(NULL) == -1);
}

/* ---- completions ---- */

static void
parse(enum kr_provider_id id, const char *body, int rc, enum kr_llm_class cls,
    const char *text, long long in, long long out, int line)
{
	struct kr_llm_result r;
	int got;

	memset(&r, 0, sizeof(r));
	got = kr_llm_parse_completion(prov(id), body, strlen(body), &r);
	CHECK(got == rc);
	if (rc == 0) {
		CHECK(r.cls == cls);
		if (text != NULL)
			CHECK_STR(r.text, text);
		else
			CHECK(r.text == NULL);
		CHECK(r.input_tokens == in);
		CHECK(r.output_tokens == out);
	}
	if (got != rc || (rc == 0 && (r.cls != cls || r.input_tokens != in ||
	    r.output_tokens != out)))
		fprintf(stderr, "  parse at line %d: rc %d cls %s in %lld out %lld\n", line, got,
		    kr_llm_class_name(r.cls), r.input_tokens, r.output_tokens);
	kr_llm_result_release(&r);
}

#define PARSE(id, body, rc, cls, text, in, out) \
	parse(id, body, rc, cls, text, in, out, __LINE__)

static void
test_parse_anthropic(void)
{
	PARSE(AN, "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":"
	    "\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\","
	    "\"signature\":\"abc\"},{\"type\":\"text\",\"text\":\"Hello\"},{\"type\":\"text\","
	    "\"text\":\", world\",\"citations\":null}],\"model\":\"claude-sonnet-4-5-20250929\","
	    "\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
	    "\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":1000,"
	    "\"output_tokens\":6,\"service_tier\":\"standard\"},\"container\":null}",
	    0, KR_LLM_OK, "Hello, world", 1112, 6);
	PARSE(AN, "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}",
	    0, KR_LLM_OK, "Hi", -1, -1);
	PARSE(AN, "{\"type\":\"message\",\"content\":[],\"stop_reason\":\"max_tokens\","
	    "\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}", 0, KR_LLM_REQUEST, NULL, 3, 1);
	PARSE(AN, "{\"type\":\"message\",\"content\":[],\"stop_reason\":\"refusal\"}", 0,
	    KR_LLM_REQUEST, NULL, -1, -1);
	PARSE(AN, "{\"type\":\"message\"}", -1, KR_LLM_OK, NULL, -1, -1);
	PARSE(AN, "{\"content\":\"text\"}", -1, KR_LLM_OK, NULL, -1, -1);
	PARSE(AN, "[1,2]", -1, KR_LLM_OK, NULL, -1, -1);
	PARSE(AN, "{\"content\":[{\"type\":\"text\",\"text\":\"cut", -1, KR_LLM_OK, NULL,
	    -1, -1);
}

static void
test_parse_openai(void)
{
	PARSE(OA, "{\"id\":\"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT\",\"object\":"
	    "\"chat.completion\",\"created\":1741569952,\"model\":\"gpt-4o-mini-2024-07-18\","
	    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello "
	    "there\",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":"
	    "\"stop\"}],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":"
	    "29,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":"
	    "{\"reasoning_tokens\":0}},\"service_tier\":\"default\",\"system_fingerprint\":null}",
	    0, KR_LLM_OK, "Hello there", 19, 10);
	PARSE(OA, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"ok\"}}]}",
	    0, KR_LLM_OK, "ok", -1, -1);
	PARSE(ZA, "{\"id\":\"2025\",\"choices\":[{\"index\":0,\"finish_reason\":\"stop\","
	    "\"message\":{\"role\":\"assistant\",\"content\":\"GLM here\",\"reasoning_content\":"
	    "\"let me think\"}}],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":30,"
	    "\"total_tokens\":38,\"prompt_tokens_details\":{\"cached_tokens\":0}},\"request_id\":"
	    "\"x\"}", 0, KR_LLM_OK, "GLM here", 8, 30);
	PARSE(OC, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":[{\"type\":"
	    "\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}}],\"usage\":"
	    "{\"prompt_tokens\":\"4\",\"completion_tokens\":2}}", 0, KR_LLM_OK, "ab", 4, 2);
	PARSE(OA, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,"
	    "\"refusal\":\"I can't help with that.\"},\"finish_reason\":\"stop\"}]}", 0,
	    KR_LLM_REQUEST, NULL, -1, -1);
	PARSE(MS, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null},"
	    "\"finish_reason\":\"content_filter\"}]}", 0, KR_LLM_REQUEST, NULL, -1, -1);
	PARSE(OA, "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null},"
	    "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,"
	    "\"completion_tokens\":1}}", 0, KR_LLM_REQUEST, NULL, 5, 1);
	PARSE(OA, "{\"choices\":[]}", -1, KR_LLM_OK, NULL, -1, -1);
	PARSE(OA, "{\"object\":\"list\",\"data\":[]}", -1, KR_LLM_OK, NULL, -1, -1);
	PARSE(OA, "not json", -1, KR_LLM_OK, NULL, -1, -1);
}

static void
test_parse_gemini(void)
{
	PARSE(GG, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"thinking...\","
	    "\"thought\":true},{\"text\":\"Hello\"},{\"text\":\" Gemini\"}],\"role\":\"model\"},"
	    "\"finishReason\":\"STOP\",\"index\":0,\"safetyRatings\":[]}],\"usageMetadata\":"
	    "{\"promptTokenCount\":9,\"candidatesTokenCount\":3,\"totalTokenCount\":40,"
	    "\"thoughtsTokenCount\":28,\"promptTokensDetails\":[{\"modality\":\"TEXT\","
	    "\"tokenCount\":9}]},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"abc\"}",
	    0, KR_LLM_OK, "Hello Gemini", 9, 31);
	PARSE(GG, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}],\"role\":"
	    "\"model\"}}]}", 0, KR_LLM_OK, "x", -1, -1);
	PARSE(GG, "{\"candidates\":[{\"content\":{\"role\":\"model\"},\"finishReason\":"
	    "\"MAX_TOKENS\"}],\"usageMetadata\":{\"promptTokenCount\":4,\"totalTokenCount\":4}}",
	    0, KR_LLM_REQUEST, NULL, 4, 0);
	PARSE(GG, "{\"candidates\":[{\"finishReason\":\"SAFETY\",\"safetyRatings\":[]}],"
	    "\"usageMetadata\":{\"promptTokenCount\":4}}", 0, KR_LLM_REQUEST, NULL, 4, 0);
	PARSE(GG, "{\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},"
	    "\"usageMetadata\":{\"promptTokenCount\":7}}", 0, KR_LLM_REQUEST, NULL, 7, 0);
	PARSE(GG, "{\"usageMetadata\":{\"promptTokenCount\":7}}", -1, KR_LLM_OK, NULL, -1, -1);
	PARSE(GG, "{\"candidates\":\"no\"}", -1, KR_LLM_OK, NULL, -1, -1);
}

static void
test_parse_blocked_message(void)
{
	static const char body[] = "{\"candidates\":[{\"finishReason\":\"SAFETY\"}]}";
	struct kr_llm_result r;

	memset(&r, 0, sizeof(r));
	CHECK(kr_llm_parse_completion(prov(KR_PROV_GOOGLE), body, strlen(body), &r) == 0);
	CHECK(r.cls == KR_LLM_REQUEST);
	CHECK_STR(r.message, "content withheld by the provider (SAFETY)");
}

/* ---- scrubbing ---- */

static void
scrub(const char *in, size_t cap, const char *key, const char *want)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "%s", in);
	kr_llm_scrub(buf, cap, key, strlen(key));
	CHECK_STR(buf, want);
}

static void
test_scrub(void)
{
	scrub("bad key " KEY " given", 256, KEY, "bad key [redacted] given");
	scrub(KEY, 256, KEY, "[redacted]");
	scrub(KEY "," KEY, 256, KEY, "[redacted],[redacted]");
	scrub("Incorrect API key provided: sk-pr****UoIiAbCd.", 256, KEY,
	    "Incorrect API key provided: sk-pr****[redacted].");
	scrub("tail oIiAbCd is 7: kept", 256, KEY, "tail oIiAbCd is 7: kept");
	scrub("key ending UoIiAbCd and JfG1hJ0aCe in the middle", 256, KEY,
	    "key ending [redacted] and J[redacted] in the middle");
	scrub("tail ***AbCd shown as a hint", 256, KEY, "tail ***AbCd shown as a hint");
	scrub("no key here", 256, KEY, "no key here");
	scrub("short", 256, KEY, "short");
	scrub("", 256, KEY, "");
	scrub("a sk-proj- prefix", 256, KEY, "a [redacted] prefix");	/* 8 of its characters */
	scrub("k=abc123 and abc12", 256, "abc123", "k=[redacted] and abc12");
	scrub("xx" KEY, 12, KEY, "xx[redacted");	/* cut to cap */
	scrub("xx" KEY, 5, KEY, "xxsk");	/* only what fits in cap is looked at */
	{
		char buf[8] = "nothing";
		kr_llm_scrub(buf, sizeof(buf), KEY, 0);
		CHECK_STR(buf, "nothing");
		kr_llm_scrub(buf, sizeof(buf), NULL, 5);
		CHECK_STR(buf, "nothing");
	}
}

/* ---- requests as they would go out ---- */

static const struct kr_llm_msg convo[] = {
	{ "user", "Hello" }, { "assistant", "Hi! How can I help?" }, { "user", "Say \"ok\"" },
};

static struct kr_llm_request
request(enum kr_provider_id id, const char *base)
{
	struct kr_llm_request r;

	memset(&r, 0, sizeof(r));
	r.prov = prov(id);
	r.base_url = base;
	r.key = KEY;
	r.keylen = strlen(KEY);
	r.system = "Be brief.";
	r.msgs = convo;
	r.nmsgs = 3;
	return r;
}

/* The header line of that name (case-insensitive), or NULL. */
static const char *
header(const char *headers, const char *name, char *out, size_t cap)
{
	size_t n = strlen(name);

	for (const char *l = headers; l != NULL && *l != '\0'; l = strchr(l, '\n') ? strchr(l,
	    '\n') + 1 : NULL) {
		size_t len = strcspn(l, "\n");
		if (len > n + 1 && strncasecmp(l, name, n) == 0 && l[n] == ':') {
			snprintf(out, cap, "%.*s", (int)(len - n - 2), l + n + 2);
			return out;
		}
	}
	return NULL;
}

/* Build and check what every request shares: the key only in its header, never the URL. */
static int
built(const struct kr_llm_request *r, enum kr_llm_op op, struct kr_llm_built *b,
    json_object **body)
{
	char err[256];

	*body = NULL;
	if (kr_llm_build_for_test(r, op, b, err, sizeof(err)) != 0) {
		fprintf(stderr, "  build failed: %s\n", err);
		return -1;
	}
	CHECK(strstr(b->url, KEY) == NULL);
	CHECK(strstr(b->url, "key=") == NULL);
	CHECK(b->body == NULL || strstr(b->body, KEY) == NULL);
	if (b->body != NULL)
		*body = json_tokener_parse(b->body);
	return 0;
}

static const char *
jstr(json_object *o, const char *path0, const char *path1)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, path0, &v))
		return NULL;
	if (path1 != NULL && !json_object_object_get_ex(v, path1, &v))
		return NULL;
	return json_object_get_string(v);
}

static json_object *
jmsg(json_object *body, const char *arr, size_t i)
{
	json_object *a = NULL;

	return json_object_object_get_ex(body, arr, &a) ? json_object_array_get_idx(a, i) : NULL;
}

static void
test_build_anthropic(void)
{
	struct kr_llm_request r = request(KR_PROV_ANTHROPIC, "https://api.anthropic.com/");
	struct kr_llm_built b;
	json_object *body;
	char h[256];

	if (built(&r, KR_LLM_OP_CHAT, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.method, "POST");
	CHECK_STR(b.url, "https://api.anthropic.com/v1/messages");
	CHECK_STR(header(b.headers, "x-api-key", h, sizeof(h)), KEY);
	CHECK_STR(header(b.headers, "anthropic-version", h, sizeof(h)), "2023-06-01");
	CHECK_STR(header(b.headers, "content-type", h, sizeof(h)), "application/json");
	CHECK(header(b.headers, "Authorization", h, sizeof(h)) == NULL);
	CHECK_STR(jstr(body, "model", NULL), "claude-sonnet-4-5-20250929");
	CHECK_STR(jstr(body, "max_tokens", NULL), "4096");
	CHECK_STR(jstr(body, "system", NULL), "Be brief.");
	CHECK_STR(jstr(jmsg(body, "messages", 0), "role", NULL), "user");
	CHECK_STR(jstr(jmsg(body, "messages", 1), "role", NULL), "assistant");
	CHECK_STR(jstr(jmsg(body, "messages", 2), "content", NULL), "Say \"ok\"");
	CHECK(jmsg(body, "messages", 3) == NULL);
	json_object_put(body);
	kr_llm_built_release(&b);

	r.model = "claude-haiku-4-5";
	r.max_tokens = 64;
	r.system = "";
	if (built(&r, KR_LLM_OP_CHAT, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(jstr(body, "model", NULL), "claude-haiku-4-5");
	CHECK_STR(jstr(body, "max_tokens", NULL), "64");
	CHECK(jstr(body, "system", NULL) == NULL);
	json_object_put(body);
	kr_llm_built_release(&b);

	if (built(&r, KR_LLM_OP_CHECK, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.method, "GET");
	CHECK_STR(b.url, "https://api.anthropic.com/v1/models");
	CHECK(b.body == NULL);
	CHECK_STR(header(b.headers, "x-api-key", h, sizeof(h)), KEY);
	CHECK_STR(header(b.headers, "anthropic-version", h, sizeof(h)), "2023-06-01");
	kr_llm_built_release(&b);
}

static void
test_build_openai(void)
{
	struct kr_llm_request r = request(KR_PROV_OPENAI, "https://api.openai.com/v1");
	struct kr_llm_built b;
	json_object *body;
	char h[256];

	if (built(&r, KR_LLM_OP_CHAT, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.url, "https://api.openai.com/v1/chat/completions");
	CHECK_STR(header(b.headers, "Authorization", h, sizeof(h)), "Bearer " KEY);
	CHECK(header(b.headers, "x-api-key", h, sizeof(h)) == NULL);
	CHECK_STR(jstr(body, "model", NULL), "gpt-4o-mini");
	CHECK_STR(jstr(jmsg(body, "messages", 0), "role", NULL), "system");
	CHECK_STR(jstr(jmsg(body, "messages", 0), "content", NULL), "Be brief.");
	CHECK_STR(jstr(jmsg(body, "messages", 1), "content", NULL), "Hello");
	CHECK_STR(jstr(jmsg(body, "messages", 2), "role", NULL), "assistant");
	CHECK(jmsg(body, "messages", 4) == NULL);
	CHECK_STR(jstr(body, "max_completion_tokens", NULL), "4096");
	json_object_put(body);
	kr_llm_built_release(&b);

	if (built(&r, KR_LLM_OP_CHECK, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.method, "GET");
	CHECK_STR(b.url, "https://api.openai.com/v1/models");
	CHECK_STR(header(b.headers, "Authorization", h, sizeof(h)), "Bearer " KEY);
	kr_llm_built_release(&b);
}

static void
test_build_openai_family(void)
{
	struct kr_llm_request r = request(KR_PROV_MOONSHOT, "https://api.moonshot.ai/v1");
	struct kr_llm_built b;
	json_object *body;
	char h[256];

	if (built(&r, KR_LLM_OP_CHECK, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.url, "https://api.moonshot.ai/v1/users/me/balance");
	CHECK_STR(header(b.headers, "Authorization", h, sizeof(h)), "Bearer " KEY);
	kr_llm_built_release(&b);
	if (built(&r, KR_LLM_OP_CHAT, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(jstr(body, "model", NULL), "moonshot-v1-8k");
	CHECK_STR(jstr(body, "max_tokens", NULL), "4096");
	CHECK(jstr(body, "max_completion_tokens", NULL) == NULL);
	json_object_put(body);
	kr_llm_built_release(&b);

	r = request(KR_PROV_ZAI, "https://api.z.ai/api/paas/v4");
	if (built(&r, KR_LLM_OP_CHECK, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.url, "https://api.z.ai/api/paas/v4/models");
	kr_llm_built_release(&b);
	if (built(&r, KR_LLM_OP_PING, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.method, "POST");
	CHECK_STR(b.url, "https://api.z.ai/api/paas/v4/chat/completions");
	CHECK_STR(header(b.headers, "Authorization", h, sizeof(h)), "Bearer " KEY);
	CHECK_STR(jstr(body, "model", NULL), "glm-5");
	CHECK_STR(jstr(body, "max_tokens", NULL), "1");
	CHECK_STR(jstr(jmsg(body, "messages", 0), "role", NULL), "user");
	CHECK(jmsg(body, "messages", 1) == NULL);
	json_object_put(body);
	kr_llm_built_release(&b);

	r = request(KR_PROV_OPENAI_COMPATIBLE, "http://localhost:1234/v1");
	if (built(&r, KR_LLM_OP_CHECK, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.url, "http://localhost:1234/v1/models");
	kr_llm_built_release(&b);
	r.model = "qwen2.5-7b-instruct";
	if (built(&r, KR_LLM_OP_CHAT, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.url, "http://localhost:1234/v1/chat/completions");
	CHECK_STR(jstr(body, "model", NULL), "qwen2.5-7b-instruct");
	json_object_put(body);
	kr_llm_built_release(&b);
}

static void
test_build_gemini(void)
{
	struct kr_llm_request r = request(KR_PROV_GOOGLE,
	    "https://generativelanguage.googleapis.com/v1beta");
	struct kr_llm_built b;
	json_object *body, *sys = NULL, *gen = NULL;
	char h[256];

	if (built(&r, KR_LLM_OP_CHAT, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.url, "https://generativelanguage.googleapis.com/v1beta/models/"
	    "gemini-2.5-flash:generateContent");
	CHECK_STR(header(b.headers, "x-goog-api-key", h, sizeof(h)), KEY);
	CHECK(header(b.headers, "Authorization", h, sizeof(h)) == NULL);
	CHECK_STR(jstr(jmsg(body, "contents", 0), "role", NULL), "user");
	CHECK_STR(jstr(jmsg(body, "contents", 1), "role", NULL), "model");
	CHECK_STR(jstr(json_object_array_get_idx(json_object_object_get(jmsg(body, "contents",
	    1), "parts"), 0), "text", NULL), "Hi! How can I help?");
	CHECK(json_object_object_get_ex(body, "systemInstruction", &sys));
	CHECK_STR(jstr(jmsg(sys, "parts", 0), "text", NULL), "Be brief.");
	CHECK(json_object_object_get_ex(body, "generationConfig", &gen));
	CHECK_STR(jstr(gen, "maxOutputTokens", NULL), "4096");
	CHECK(jstr(body, "system", NULL) == NULL);
	json_object_put(body);
	kr_llm_built_release(&b);

	r.model = "models/gemini-2.5-pro";
	if (built(&r, KR_LLM_OP_CHAT, &b, &body) != 0)
		FAIL_RETURN();
	CHECK(strstr(b.url, "/models/gemini-2.5-pro:generateContent") != NULL);
	json_object_put(body);
	kr_llm_built_release(&b);
	r.model = "../x?key=1#";
	if (built(&r, KR_LLM_OP_CHAT, &b, &body) != 0)
		FAIL_RETURN();
	CHECK(strstr(b.url, "/models/..%2Fx%3Fkey%3D1%23:generateContent") != NULL);
	json_object_put(body);
	kr_llm_built_release(&b);

	if (built(&r, KR_LLM_OP_CHECK, &b, &body) != 0)
		FAIL_RETURN();
	CHECK_STR(b.url, "https://generativelanguage.googleapis.com/v1beta/models");
	CHECK_STR(header(b.headers, "x-goog-api-key", h, sizeof(h)), KEY);
	kr_llm_built_release(&b);
}

static void
test_build_refusals(void)
{
	static const struct kr_llm_msg bad_role[] = { { "system", "x" } };
	struct kr_llm_request r = request(KR_PROV_OPENAI, "https://api.openai.com/v1");
	struct kr_llm_built b;
	char err[256];

	r.key = "sk-abc\r\nX-Evil: 1";
	r.keylen = strlen(r.key);
	CHECK(kr_llm_build_for_test(&r, KR_LLM_OP_CHAT, &b, err, sizeof(err)) == -1);
	CHECK(strstr(err, "sk-abc") == NULL);
	r = request(KR_PROV_OPENAI, "https://api.openai.com/v1");
	r.msgs = bad_role;
	r.nmsgs = 1;
	CHECK(kr_llm_build_for_test(&r, KR_LLM_OP_CHAT, &b, err, sizeof(err)) == -1);
	r = request(KR_PROV_OPENAI_COMPATIBLE, "http://localhost:1234/v1");
	CHECK(kr_llm_build_for_test(&r, KR_LLM_OP_CHAT, &b, err, sizeof(err)) == -1);
	CHECK_STR(err, "no model is set for OpenAI-compatible");
}

/* ---- the address check ---- */

static int
v4(const char *ip)
{
	struct sockaddr_in sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	CHECK(inet_pton(AF_INET, ip, &sa.sin_addr) == 1);
	return kr_outbound_addr_public(&sa, sizeof(sa));
}

static int
v6(const char *ip)
{
	struct sockaddr_in6 sa;

	memset(&sa, 0, sizeof(sa));
	sa.sin6_family = AF_INET6;
	CHECK(inet_pton(AF_INET6, ip, &sa.sin6_addr) == 1);
	return kr_outbound_addr_public(&sa, sizeof(sa));
}

static void
addr_check(int got, int want, const char *ip)
{
	CHECK(got == want);
	if (got != want)
		fprintf(stderr, "  %s: public %d, want %d\n", ip, got, want);
}

static void
test_addresses(void)
{
	static const char *const closed4[] = { "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1",
	    "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
	    "224.0.0.1", "255.255.255.255" };
	static const char *const open4[] = { "8.8.8.8", "172.32.0.1", "172.15.255.255",
	    "160.79.104.10", "100.128.0.1", "1.1.1.1" };
	static const char *const closed6[] = { "::1", "::", "fe80::1", "febf::1", "fc00::1",
	    "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3",
	    "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:c0a8:101::1", "::127.0.0.1",
	    "2001:db8::1", "fec0::1" };
	static const char *const open6[] = { "2606:4700::1111", "2a00:1450:4001::200e",
	    "::ffff:8.8.8.8", "2002:808:808::1" };

	for (size_t i = 0; i < sizeof(closed4) / sizeof(closed4[0]); i++)
		addr_check(v4(closed4[i]), 0, closed4[i]);
	for (size_t i = 0; i < sizeof(open4) / sizeof(open4[0]); i++)
		addr_check(v4(open4[i]), 1, open4[i]);
	for (size_t i = 0; i < sizeof(closed6) / sizeof(closed6[0]); i++)
		addr_check(v6(closed6[i]), 0, closed6[i]);
	for (size_t i = 0; i < sizeof(open6) / sizeof(open6[0]); i++)
		addr_check(v6(open6[i]), 1, open6[i]);
	CHECK(kr_outbound_addr_public(NULL, 0) == 0);
}

/* ---- the transport against loopback sockets ---- */

/* A loopback TCP socket: listening (backlog, never accepting) or bound and closed. */
static int
loopback(int listening, unsigned short *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
	    (listening && listen(fd, 8) != 0))
		return -1;
	*port = ntohs(sa.sin_port);
	if (!listening) {
		close(fd);
		return -2;
	}
	return fd;
}

static void
run(enum kr_provider_id id, const char *base, const char *allow, long timeout,
    enum kr_llm_class cls, const char *msg)
{
	struct kr_config cfg;
	struct kr_llm_request r = request(id, base);
	struct kr_llm_result out;

	memset(&cfg, 0, sizeof(cfg));
	cfg.base_url_allowlist = (char *)allow;
	r.model = "m";
	r.timeout_ms = timeout;
	kr_llm_run(&cfg, &r, 0, &out);
	CHECK(out.cls == cls);
	CHECK(out.http_status == 0);
	CHECK(out.text == NULL);
	CHECK_STR(out.message, msg);
	kr_llm_result_release(&out);
}

static void
test_transport(void)
{
	char base[128], allow[128], want[128];
	unsigned short port = 0;
	int fd;

	CHECK(loopback(0, &port) == -2);
	snprintf(base, sizeof(base), "http://127.0.0.1:%u/v1", port);
	snprintf(allow, sizeof(allow), "http://127.0.0.1:%u", port);
	run(KR_PROV_OPENAI, base, allow, 5000, KR_LLM_TRANSIENT, "connection refused");
	run(KR_PROV_OPENAI_COMPATIBLE, base, allow, 5000, KR_LLM_TRANSIENT,
	    "connection refused (server offline)");
	run(KR_PROV_OPENAI, base, NULL, 5000, KR_LLM_REQUEST, "the base URL of OpenAI must use "
	    "https (plain http only for allowlisted origins)");
	snprintf(base, sizeof(base), "https://127.0.0.1:%u/v1", port);
	run(KR_PROV_OPENAI, base, NULL, 5000, KR_LLM_REQUEST, "refused to connect to "
	    "127.0.0.1: not a public address (allowlist the base URL's origin to permit it)");
	run(KR_PROV_OPENAI_COMPATIBLE, NULL, NULL, 5000, KR_LLM_REQUEST,
	    "no base URL is set for OpenAI-compatible");

	/* The kernel completes the handshake; nobody answers: the total timeout. */
	if ((fd = loopback(1, &port)) < 0)
		FAIL_RETURN();
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", port);
	snprintf(allow, sizeof(allow), "http://127.0.0.1:%u/", port);
	snprintf(want, sizeof(want), "timed out after %d ms", 300);
	run(KR_PROV_ANTHROPIC, base, allow, 300, KR_LLM_TRANSIENT, want);
	close(fd);
}

static void
test_call_new(void)
{
	struct kr_config cfg;
	struct kr_llm_request r = request(KR_PROV_GOOGLE, "https://generativelanguage."
	    "googleapis.com/v1beta");
	struct kr_llm_call *c;
	char err[256];
	void *priv = NULL;

	memset(&cfg, 0, sizeof(cfg));
	c = kr_llm_call_new(&cfg, &r, 1, err, sizeof(err));
	CHECK(c != NULL);
	if (c != NULL) {
		CHECK(curl_easy_getinfo(kr_llm_call_easy(c), CURLINFO_PRIVATE, &priv) ==
		    CURLE_OK);
		CHECK(priv == c);
	}
	kr_llm_call_free(&c);
	CHECK(c == NULL);
	kr_llm_call_free(&c);
	r.base_url = "ftp://example.com";
	CHECK(kr_llm_call_new(&cfg, &r, 1, err, sizeof(err)) == NULL);
	r.base_url = "https://example.com/\r\nx";
	CHECK(kr_llm_call_new(&cfg, &r, 1, err, sizeof(err)) == NULL);
	CHECK_STR(kr_llm_class_name(KR_LLM_QUOTA), "quota");
	CHECK_STR(kr_llm_class_name(KR_LLM_TRANSIENT), "transient");
	{
		CURLSH *sh = kr_llm_share_new();
		CHECK(sh != NULL);
		kr_llm_share_free(&sh);
		CHECK(sh == NULL);
	}
}

/* ---- the transport against a loopback server with canned answers ---- */

#define CANNED_MAX	4

struct canned {
	int		 fd;
	char		 answers[CANNED_MAX][2048];
	size_t		 n;
	char		 seen[CANNED_MAX][4096];	/* each request's head and body */
	size_t		 pad[CANNED_MAX];	/* filler bytes sent after an answer */
};

/* Send n bytes of filler, until done or the client hangs up. */
static void
send_pad(int c, size_t n)
{
	static const char fill[4096] = { 0 };
	ssize_t w;

	while (n > 0 && (w = send(c, fill, n < sizeof(fill) ? n : sizeof(fill),
	    MSG_NOSIGNAL)) > 0)
		n -= (size_t)w;
}

/* Read one request (head, then Content-Length bytes of body) into out. */
static void
read_request(int c, char *out, size_t cap)
{
	size_t len = 0, want = 0;
	char *end;
	ssize_t r;

	out[0] = '\0';
	while (len + 1 < cap && (r = read(c, out + len, cap - 1 - len)) > 0) {
		len += (size_t)r;
		out[len] = '\0';
		if ((end = strstr(out, "\r\n\r\n")) == NULL)
			continue;
		if (want == 0) {
			const char *cl = strstr(out, "\r\nContent-Length:");
			want = (size_t)(end + 4 - out) + (cl != NULL ? strtoul(cl + 17, NULL, 10) : 0);
		}
		if (len >= want)
			break;
	}
}

static void *
serve(void *arg)
{
	struct canned *cs = arg;

	for (size_t i = 0; i < cs->n; i++) {
		int c = accept(cs->fd, NULL, NULL);
		if (c < 0)
			break;
		read_request(c, cs->seen[i], sizeof(cs->seen[i]));
		if (write(c, cs->answers[i], strlen(cs->answers[i])) < 0)
			cs->seen[i][0] = '\0';
		send_pad(c, cs->pad[i]);
		close(c);
	}
	return NULL;
}

/* Run one call (check_only as given) against answers; cs keeps what the server saw. */
static void
canned_run(struct canned *cs, enum kr_provider_id id, int check, struct kr_llm_result *out)
{
	char base[64], allow[64];
	unsigned short port = 0;
	struct kr_config cfg;
	struct kr_llm_request r;
	pthread_t t;

	memset(out, 0, sizeof(*out));
	out->cls = KR_LLM_REQUEST;
	if ((cs->fd = loopback(1, &port)) < 0)
		FAIL_RETURN();
	snprintf(base, sizeof(base), "http://127.0.0.1:%u/v1", port);
	snprintf(allow, sizeof(allow), "http://127.0.0.1:%u", port);
	memset(&cfg, 0, sizeof(cfg));
	cfg.base_url_allowlist = allow;
	r = request(id, base);
	if (pthread_create(&t, NULL, serve, cs) != 0) {
		close(cs->fd);
		FAIL_RETURN();
	}
	kr_llm_run(&cfg, &r, check, out);
	pthread_join(t, NULL);
	close(cs->fd);
}

static int
starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Queue an answer: a JSON body with the status line, extra header lines and lead (a 1xx). */
static void
answer(struct canned *cs, const char *lead, const char *status, const char *extra,
    const char *body)
{
	snprintf(cs->answers[cs->n++], sizeof(cs->answers[0]), "%sHTTP/1.1 %s\r\nContent-Type: "
	    "application/json\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n%s", lead,
	    status, extra, strlen(body), body);
}

/* Queue an answer written as given (no Content-Length: the body ends with the connection). */
static void
answer_raw(struct canned *cs, const char *text, size_t pad)
{
	cs->pad[cs->n] = pad;
	snprintf(cs->answers[cs->n++], sizeof(cs->answers[0]), "%s", text);
}

/*
 * An error answer too large to keep is still classed by its status and retry headers;
 * only the provider's words are lost. A completion too large to read stays transient.
 */
static void
test_canned_oversized(void)
{
	struct canned cs;
	struct kr_llm_result out;
	char head[256];

	/* Refused by its Content-Length, before any of the body is read. */
	memset(&cs, 0, sizeof(cs));
	snprintf(head, sizeof(head), "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n{",
	    (size_t)KR_LLM_BODY_MAX + 1);
	answer_raw(&cs, head, 0);
	canned_run(&cs, KR_PROV_ANTHROPIC, 0, &out);
	CHECK(out.cls == KR_LLM_RATE);
	CHECK(out.http_status == 429);
	CHECK(out.retry_after_ms == 7000);
	CHECK_STR(out.message, "rate limited (429)");

	/* Passing the cap as it comes, without a length. */
	memset(&cs, 0, sizeof(cs));
	answer_raw(&cs, "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\n"
	    "Connection: close\r\n\r\n", (size_t)KR_LLM_BODY_MAX + 65536);
	canned_run(&cs, KR_PROV_OPENAI, 0, &out);
	CHECK(out.cls == KR_LLM_AUTH);
	CHECK(out.http_status == 401);

	memset(&cs, 0, sizeof(cs));
	answer_raw(&cs, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Connection: close\r\n\r\n", (size_t)KR_LLM_BODY_MAX + 65536);
	canned_run(&cs, KR_PROV_OPENAI, 0, &out);
	CHECK(out.cls == KR_LLM_TRANSIENT);
	CHECK_STR(out.message, "response too large");
	CHECK(out.text == NULL);
}

static void
test_canned(void)
{
	struct canned cs;
	struct kr_llm_result out;

	/* moonshot: a valid key with nothing left to spend is exhausted. */
	memset(&cs, 0, sizeof(cs));
	answer(&cs, "", "200 OK", "", "{\"code\":0,\"data\":{\"available_balance\":0,"
	    "\"voucher_balance\":0,\"cash_balance\":0},\"scode\":\"0x0\",\"status\":true}");
	canned_run(&cs, KR_PROV_MOONSHOT, 1, &out);
	CHECK(out.cls == KR_LLM_QUOTA);
	CHECK_STR(out.message, "quota exhausted (200): the available balance is 0");
	CHECK(starts(cs.seen[0], "GET /v1/users/me/balance HTTP/1.1\r\n"));

	/*
	 * A key check answered 200 by something else than the provider (a captive portal or a
	 * web server at the base URL, or a 200 carrying an error): not valid, not invalid.
	 */
	memset(&cs, 0, sizeof(cs));
	answer(&cs, "", "200 OK", "", "<html><body>Sign in to the Wi-Fi</body></html>");
	canned_run(&cs, KR_PROV_OPENAI, 1, &out);
	CHECK(out.cls == KR_LLM_TRANSIENT);
	CHECK_STR(out.message, "the key check's answer (200) is not the provider's: not a JSON "
	    "object (is the base URL right?)");
	memset(&cs, 0, sizeof(cs));
	answer(&cs, "", "200 OK", "", "{\"error\":{\"code\":\"invalid_api_key\"}}");
	canned_run(&cs, KR_PROV_OPENAI_COMPATIBLE, 1, &out);
	CHECK(out.cls == KR_LLM_TRANSIENT);
	memset(&cs, 0, sizeof(cs));
	answer(&cs, "", "200 OK", "", "{\"object\":\"list\",\"data\":[]}");
	canned_run(&cs, KR_PROV_OPENAI, 1, &out);
	CHECK(out.cls == KR_LLM_OK);

	/* zai: GET /models answered 404, then the one-token chat. */
	memset(&cs, 0, sizeof(cs));
	answer(&cs, "", "404 Not Found", "", "{}");
	answer(&cs, "", "200 OK", "", "{\"choices\":[{\"message\":{\"role\":\"assistant\","
	    "\"content\":\"p\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}");
	canned_run(&cs, KR_PROV_ZAI, 1, &out);
	CHECK(out.cls == KR_LLM_OK);
	CHECK(out.http_status == 200);
	CHECK(out.text == NULL);
	CHECK(starts(cs.seen[0], "GET /v1/models HTTP/1.1\r\n"));
	CHECK(starts(cs.seen[1], "POST /v1/chat/completions HTTP/1.1\r\n"));
	CHECK(strstr(cs.seen[1], "\"max_tokens\":1}") != NULL);
	CHECK(strstr(cs.seen[1], "Bearer " KEY "\r\n") != NULL);

	/* The header callback's hints: retry-after-ms wins; a 1xx's headers do not count. */
	memset(&cs, 0, sizeof(cs));
	answer(&cs, "HTTP/1.1 100 Continue\r\nRetry-After-Ms: 99\r\n\r\n",
	    "429 Too Many Requests", "retry-after: 2\r\nRetry-After-Ms: 1500\r\n"
	    "x-ratelimit-reset-requests: 6s\r\n", "{\"error\":{\"message\":\"Rate limit "
	    "reached\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}");
	canned_run(&cs, KR_PROV_OPENAI, 0, &out);
	CHECK(out.cls == KR_LLM_RATE);
	CHECK(out.retry_after_ms == 1500);
	CHECK_STR(out.message, "rate limited (429): Rate limit reached");

	memset(&cs, 0, sizeof(cs));
	answer(&cs, "HTTP/1.1 100 Continue\r\nRetry-After: 99\r\n\r\n", "429 Too Many "
	    "Requests", "x-ratelimit-reset-requests: 1m30s\r\nx-ratelimit-reset-tokens: "
	    "12ms\r\n", "{}");
	canned_run(&cs, KR_PROV_OPENAI, 0, &out);
	CHECK(out.cls == KR_LLM_RATE);
	CHECK(out.retry_after_ms == 90000);

	/* A completion that is not one: transient, the body may have been mangled. */
	memset(&cs, 0, sizeof(cs));
	answer(&cs, "", "200 OK", "", "{\"data\":[]}");
	canned_run(&cs, KR_PROV_OPENAI, 0, &out);
	CHECK(out.cls == KR_LLM_TRANSIENT);
	CHECK_STR(out.message, "unreadable answer (200)");
	CHECK(out.text == NULL);

	/* A completion: text and usage. */
	memset(&cs, 0, sizeof(cs));
	answer(&cs, "", "200 OK", "", "{\"type\":\"message\",\"content\":[{\"type\":"
	    "\"text\",\"text\":\"Hi there\"}],\"usage\":{\"input_tokens\":7,"
	    "\"output_tokens\":2}}");
	canned_run(&cs, KR_PROV_ANTHROPIC, 0, &out);
	CHECK(out.cls == KR_LLM_OK);
	CHECK_STR(out.text, "Hi there");
	CHECK(out.input_tokens == 7 && out.output_tokens == 2);
	CHECK(out.retry_after_ms == -1);
	kr_llm_result_release(&out);

	test_canned_oversized();
}

int
main(void)
{
	test_classify_table();
	test_classify_simple();
	test_classify_echo();
	test_classify_long();
	test_classify_storable();
	test_retry_hints();
	test_parse_anthropic();
	test_parse_openai();
	test_parse_gemini();
	test_parse_blocked_message();
	test_scrub();
	test_build_anthropic();
	test_build_openai();
	test_build_openai_family();
	test_build_gemini();
	test_build_refusals();
	test_addresses();
	test_call_new();
	test_transport();
	test_canned();
	return kr_test_done("test_llm");
}
