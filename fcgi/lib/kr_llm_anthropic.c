/*
 * kr_llm_anthropic: the Anthropic Messages API (providers.md).
 *
 *	POST /v1/messages	{"model","max_tokens","system"?,"messages":[{"role","content"}]}
 *	GET  /v1/models		the key check
 * Headers: x-api-key, anthropic-version: 2023-06-01. Errors:
 *	{"type":"error","error":{"type":"rate_limit_error","message":"..."}}
 */
#include "kr_llm_proto.h"

#include <stdio.h>
#include <string.h>

#include "kr_json.h"

#define ANTHROPIC_VERSION	"anthropic-version: 2023-06-01"

static int
add_messages(json_object *body, const struct kr_llm_request *req, char *err, size_t errlen)
{
	json_object *arr = json_object_new_array();

	json_object_object_add(body, "messages", arr);
	for (size_t i = 0; i < req->nmsgs; i++) {
		json_object *m = json_object_new_object();
		if (!kr_llm__role_ok(req->msgs[i].role) || req->msgs[i].content == NULL) {
			json_object_put(m);
			snprintf(err, errlen, "message %zu has no valid role or content", i);
			return -1;
		}
		kr_json_add_str(m, "role", req->msgs[i].role);
		kr_json_add_str(m, "content", req->msgs[i].content);
		json_object_array_add(arr, m);
	}
	return 0;
}

static int
anthropic_build(const struct kr_llm_request *req, enum kr_llm_op op, struct kr_llm_wire *w,
    char *err, size_t errlen)
{
	json_object *body;

	if (kr_llm__url(w, req->base_url, op == KR_LLM_OP_CHECK ? req->prov->check_path :
	    "/v1/messages", err, errlen) != 0 ||
	    kr_llm__auth(w, "x-api-key: ", req, err, errlen) != 0 ||
	    kr_llm__header(w, ANTHROPIC_VERSION, err, errlen) != 0 ||
	    kr_llm__header(w, "Accept: application/json", err, errlen) != 0)
		return -1;
	if (op == KR_LLM_OP_CHECK)
		return 0;
	body = json_object_new_object();
	kr_json_add_str(body, "model", kr_llm__model(req));
	kr_json_add_int(body, "max_tokens", kr_llm__max_tokens(req));
	if (kr_llm__system(req) != NULL)
		kr_json_add_str(body, "system", kr_llm__system(req));
	if (add_messages(body, req, err, errlen) != 0) {
		json_object_put(body);
		return -1;
	}
	return kr_llm__body(w, body, err, errlen);
}

/* input_tokens excludes cache reads and writes: all three together are the prompt. */
static void
usage(json_object *root, struct kr_llm_result *out)
{
	json_object *u = kr_llm__obj(root, "usage");
	long long in = kr_llm__int(u, "input_tokens");
	long long cw = kr_llm__int(u, "cache_creation_input_tokens");
	long long cr = kr_llm__int(u, "cache_read_input_tokens");

	if (in >= 0)
		out->input_tokens = in + (cw > 0 ? cw : 0) + (cr > 0 ? cr : 0);
	out->output_tokens = kr_llm__int(u, "output_tokens");
}

/* The text blocks of "content", in order; thinking and tool blocks are not the answer. */
static int
anthropic_parse(json_object *root, struct kr_llm_result *out)
{
	json_object *content = kr_llm__arr(root, "content");
	struct kr_buf text;

	if (content == NULL)
		return -1;
	usage(root, out);
	kr_buf_init(&text, KR_LLM_BODY_MAX);
	for (size_t i = 0; i < kr_llm__len(content); i++) {
		json_object *blk = kr_llm__at(content, i);
		const char *type = kr_llm__str(blk, "type");
		if (type != NULL && strcmp(type, "text") == 0)
			kr_llm__text_add(&text, kr_llm__str(blk, "text"));
	}
	if (text.len == 0 && !text.failed && kr_llm__has(kr_llm__str(root, "stop_reason"),
	    "refusal")) {
		kr_buf_release(&text, 0);
		kr_llm__blocked(out, "refusal");
		return 0;
	}
	if (text.len == 0 && !text.failed && kr_llm__has(kr_llm__str(root, "stop_reason"),
	    "max_tokens")) {
		kr_buf_release(&text, 0);
		kr_llm__cut_short(out, "max_tokens");
		return 0;
	}
	return kr_llm__text_take(&text, out);
}

/* 400 with words of a spend limit or an empty credit balance: a billing refusal. */
static int
spend_limit(const char *msg)
{
	static const char *const words[] = {
		"spend limit", "spending limit", "usage limit", "credit balance",
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (kr_llm__has(msg, words[i]))
			return 1;
	return 0;
}

static void
anthropic_fault(const struct kr_provider *p, long status, json_object *root,
    struct kr_llm_fault *f)
{
	json_object *e = kr_llm__obj(root, "error");
	const char *type = kr_llm__str(e, "type");

	(void)p;
	f->msg = kr_llm__str(e, "message");
	if (type == NULL)
		return;
	if (strcmp(type, "authentication_error") == 0)
		f->cls = KR_LLM_AUTH;
	else if (strcmp(type, "billing_error") == 0)
		f->cls = KR_LLM_QUOTA;
	else if (strcmp(type, "rate_limit_error") == 0)
		f->cls = KR_LLM_RATE;
	else if (strcmp(type, "overloaded_error") == 0)
		f->cls = KR_LLM_TRANSIENT;
	else if (status == 400 && spend_limit(f->msg))
		f->cls = KR_LLM_QUOTA;
}

const struct kr_llm_proto kr_llm_anthropic_proto = {
	anthropic_build, anthropic_parse, anthropic_fault, NULL,
};
