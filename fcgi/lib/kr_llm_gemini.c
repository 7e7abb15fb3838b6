/*
 * kr_llm_gemini: the Gemini API's generateContent (providers.md).
 *
 *	POST /models/{model}:generateContent
 *	     {"contents":[{"role":"user"|"model","parts":[{"text"}]}],
 *	      "systemInstruction":{"parts":[{"text"}]},"generationConfig":{"maxOutputTokens"}}
 *	GET  /models	the key check
 * Header: x-goog-api-key (never ?key=, URLs end up in logs). Errors follow google.rpc.Status:
 *	{"error":{"code","message","status","details":[{"@type":"...ErrorInfo","reason"},
 *	 {"@type":"...QuotaFailure","violations":[{"quotaId"}]},{"@type":"...RetryInfo",
 *	 "retryDelay":"36s"}]}}
 */
#include "kr_llm_proto.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "kr_json.h"

#define MODEL_MAX	256

/* {"parts":[{"text":text}]}, with "role" when role is not NULL. */
static json_object *
content(const char *role, const char *text)
{
	json_object *c = json_object_new_object(), *parts = json_object_new_array();
	json_object *part = json_object_new_object();

	if (role != NULL)
		kr_json_add_str(c, "role", role);
	kr_json_add_str(part, "text", text);
	json_object_array_add(parts, part);
	json_object_object_add(c, "parts", parts);
	return c;
}

/* Gemini calls the assistant "model". */
static int
add_contents(json_object *body, const struct kr_llm_request *req, char *err, size_t errlen)
{
	json_object *arr = json_object_new_array();

	json_object_object_add(body, "contents", arr);
	for (size_t i = 0; i < req->nmsgs; i++) {
		const char *role = req->msgs[i].role;
		if (!kr_llm__role_ok(role) || req->msgs[i].content == NULL) {
			snprintf(err, errlen, "message %zu has no valid role or content", i);
			return -1;
		}
		json_object_array_add(arr, content(strcmp(role, "assistant") == 0 ? "model" :
		    "user", req->msgs[i].content));
	}
	return 0;
}

/*
 * "/models/<model>:generateContent" with the model percent-encoded (RFC 3986 unreserved
 * characters stay), so a model name cannot change the path; "models/x" is taken as "x".
 */
static int
chat_path(const char *model, char *out, size_t cap, char *err, size_t errlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = (size_t)snprintf(out, cap, "/models/");

	if (strncmp(model, "models/", 7) == 0)
		model += 7;
	for (; *model != '\0' && o + 4 < cap; model++) {
		unsigned char c = (unsigned char)*model;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			out[o++] = (char)c;
		else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (*model != '\0' || o + sizeof(":generateContent") > cap) {
		snprintf(err, errlen, "the model name is too long");
		return -1;
	}
	memcpy(out + o, ":generateContent", sizeof(":generateContent"));
	return 0;
}

static json_object *
generation_config(const struct kr_llm_request *req)
{
	json_object *g = json_object_new_object();

	kr_json_add_int(g, "maxOutputTokens", kr_llm__max_tokens(req));
	return g;
}

static int
gemini_build(const struct kr_llm_request *req, enum kr_llm_op op, struct kr_llm_wire *w,
    char *err, size_t errlen)
{
	char path[3 * MODEL_MAX + 32];
	json_object *body;

	if (op != KR_LLM_OP_CHECK && chat_path(kr_llm__model(req), path, sizeof(path), err,
	    errlen) != 0)
		return -1;
	if (kr_llm__url(w, req->base_url, op == KR_LLM_OP_CHECK ? req->prov->check_path : path,
	    err, errlen) != 0 ||
	    kr_llm__auth(w, "x-goog-api-key: ", req, err, errlen) != 0 ||
	    kr_llm__header(w, "Accept: application/json", err, errlen) != 0)
		return -1;
	if (op == KR_LLM_OP_CHECK)
		return 0;
	body = json_object_new_object();
	if (add_contents(body, req, err, errlen) != 0) {
		json_object_put(body);
		return -1;
	}
	if (kr_llm__system(req) != NULL)
		json_object_object_add(body, "systemInstruction", content(NULL,
		    kr_llm__system(req)));
	json_object_object_add(body, "generationConfig", generation_config(req));
	return kr_llm__body(w, body, err, errlen);
}

/*
 * Proto3 JSON leaves out zero counts: with usageMetadata present, a missing count is 0.
 * Thinking tokens are billed as output.
 */
static void
usage(json_object *root, struct kr_llm_result *out)
{
	json_object *u = kr_llm__obj(root, "usageMetadata");
	long long in, cand, thoughts;

	if (u == NULL)
		return;
	in = kr_llm__int(u, "promptTokenCount");
	cand = kr_llm__int(u, "candidatesTokenCount");
	thoughts = kr_llm__int(u, "thoughtsTokenCount");
	out->input_tokens = in > 0 ? in : 0;
	out->output_tokens = (cand > 0 ? cand : 0) + (thoughts > 0 ? thoughts : 0);
}

/* finishReason values that mean the answer was withheld. */
static int
withheld(const char *reason)
{
	static const char *const reasons[] = {
		"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
		"IMAGE_SAFETY",
	};

	for (size_t i = 0; reason != NULL && i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(reason, reasons[i]) == 0)
			return 1;
	return 0;
}

/* The text parts of the first candidate; parts marked "thought" are not the answer. */
static int
gemini_parse(json_object *root, struct kr_llm_result *out)
{
	json_object *cand = kr_llm__at(kr_llm__arr(root, "candidates"), 0), *parts, *part;
	const char *block = kr_llm__str(kr_llm__obj(root, "promptFeedback"), "blockReason");
	const char *finish = kr_llm__str(cand, "finishReason");
	struct kr_buf text;
	json_bool thought;

	usage(root, out);
	if (cand == NULL && block != NULL) {
		kr_llm__blocked(out, block);
		return 0;
	}
	if (cand == NULL)
		return -1;
	parts = kr_llm__arr(kr_llm__obj(cand, "content"), "parts");
	kr_buf_init(&text, KR_LLM_BODY_MAX);
	for (size_t i = 0; i < kr_llm__len(parts); i++) {
		json_object *t = NULL;
		part = kr_llm__at(parts, i);
		thought = json_object_object_get_ex(part, "thought", &t) && json_object_get_boolean(t);
		if (!thought)
			kr_llm__text_add(&text, kr_llm__str(part, "text"));
	}
	if (text.len == 0 && !text.failed && withheld(finish)) {
		kr_buf_release(&text, 0);
		kr_llm__blocked(out, finish);
		return 0;
	}
	if (text.len == 0 && !text.failed && finish != NULL &&
	    strcmp(finish, "MAX_TOKENS") == 0) {
		kr_buf_release(&text, 0);
		kr_llm__cut_short(out, finish);
		return 0;
	}
	return kr_llm__text_take(&text, out);
}

/* 1 when s ends with "." + name, as in "type.googleapis.com/google.rpc.RetryInfo". */
static int
detail_is(json_object *d, const char *name)
{
	const char *t = kr_llm__str(d, "@type");
	size_t n = t != NULL ? strlen(t) : 0, m = strlen(name);

	return n > m && t[n - m - 1] == '.' && strcmp(t + n - m, name) == 0;
}

/* A QuotaFailure whose violated quota is counted per day (its id or metric says so). */
static int
daily_quota(json_object *d)
{
	static const char *const words[] = { "perday", "per_day", "per-day", "daily" };
	json_object *v = kr_llm__arr(d, "violations");

	for (size_t i = 0; i < kr_llm__len(v); i++)
		for (size_t j = 0; j < sizeof(words) / sizeof(words[0]); j++)
			if (kr_llm__has(kr_llm__str(kr_llm__at(v, i), "quotaId"), words[j]) ||
			    kr_llm__has(kr_llm__str(kr_llm__at(v, i), "quotaMetric"), words[j]))
				return 1;
	return 0;
}

static int
key_reason(const char *reason)
{
	return reason != NULL && (strcmp(reason, "API_KEY_INVALID") == 0 ||
	    strcmp(reason, "API_KEY_EXPIRED") == 0);
}

static void
gemini_fault(const struct kr_provider *p, long status, json_object *root,
    struct kr_llm_fault *f)
{
	json_object *e, *details;
	const char *st;

	(void)p;
	if (json_object_is_type(root, json_type_array))	/* some endpoints wrap it: [{...}] */
		root = kr_llm__at(root, 0);
	e = kr_llm__obj(root, "error");
	details = kr_llm__arr(e, "details");
	st = kr_llm__str(e, "status");
	f->msg = kr_llm__str(e, "message");
	if (status == 403 && st != NULL && strcmp(st, "PERMISSION_DENIED") == 0)
		f->cls = KR_LLM_AUTH;
	/* The reason is the documented sign; the message alone serves when details are cut. */
	if (status == 400 && kr_llm__has(f->msg, "API key not valid"))
		f->cls = KR_LLM_AUTH;
	for (size_t i = 0; i < kr_llm__len(details); i++) {
		json_object *d = kr_llm__at(details, i);
		if (status == 400 && key_reason(kr_llm__str(d, "reason")))
			f->cls = KR_LLM_AUTH;
		else if (status == 429 && detail_is(d, "QuotaFailure") && daily_quota(d))
			f->cls = KR_LLM_QUOTA;
		else if (detail_is(d, "RetryInfo"))
			f->retry_ms = kr_llm_duration_ms(kr_llm__str(d, "retryDelay"));
	}
}

const struct kr_llm_proto kr_llm_gemini_proto = {
	gemini_build, gemini_parse, gemini_fault, NULL,
};
