/*
 * kr_llm_openai: the OpenAI chat completions protocol, spoken by openai, zai, moonshot and
 * OpenAI-compatible servers (providers.md).
 *
 *	POST /chat/completions	{"model","messages":[{"role","content"}],"max_tokens"}
 *	GET  <check_path>	the key check (/models; moonshot /users/me/balance)
 * Header: Authorization: Bearer KEY. Errors: {"error":{"message","type","code"}}; zai puts
 * a business code in "code" ("1113").
 */
#include "kr_llm_proto.h"

#include <stdio.h>
#include <string.h>

#include "kr_json.h"

static json_object *
message(const char *role, const char *content)
{
	json_object *m = json_object_new_object();

	kr_json_add_str(m, "role", role);
	kr_json_add_str(m, "content", content);
	return m;
}

/* The system prompt goes first, as a message of role "system". */
static int
add_messages(json_object *body, const struct kr_llm_request *req, char *err, size_t errlen)
{
	json_object *arr = json_object_new_array();

	json_object_object_add(body, "messages", arr);
	if (kr_llm__system(req) != NULL)
		json_object_array_add(arr, message("system", kr_llm__system(req)));
	for (size_t i = 0; i < req->nmsgs; i++) {
		if (!kr_llm__role_ok(req->msgs[i].role) || req->msgs[i].content == NULL) {
			snprintf(err, errlen, "message %zu has no valid role or content", i);
			return -1;
		}
		json_object_array_add(arr, message(req->msgs[i].role, req->msgs[i].content));
	}
	return 0;
}

/*
 * OpenAI's own API deprecated max_tokens, and its reasoning models refuse it, in favour of
 * max_completion_tokens; zai, moonshot and local servers know max_tokens only.
 */
static const char *
max_tokens_field(const struct kr_provider *p)
{
	return p->id == KR_PROV_OPENAI ? "max_completion_tokens" : "max_tokens";
}

static int
openai_build(const struct kr_llm_request *req, enum kr_llm_op op, struct kr_llm_wire *w,
    char *err, size_t errlen)
{
	json_object *body;

	if (kr_llm__url(w, req->base_url, op == KR_LLM_OP_CHECK ? req->prov->check_path :
	    "/chat/completions", err, errlen) != 0 ||
	    kr_llm__auth(w, "Authorization: Bearer ", req, err, errlen) != 0 ||
	    kr_llm__header(w, "Accept: application/json", err, errlen) != 0)
		return -1;
	if (op == KR_LLM_OP_CHECK)
		return 0;
	body = json_object_new_object();
	kr_json_add_str(body, "model", kr_llm__model(req));
	if (add_messages(body, req, err, errlen) != 0) {
		json_object_put(body);
		return -1;
	}
	kr_json_add_int(body, max_tokens_field(req->prov), kr_llm__max_tokens(req));
	return kr_llm__body(w, body, err, errlen);
}

/* "content" as a string, or (some compatible servers) an array of text parts. */
static void
content_text(json_object *msg, struct kr_buf *text)
{
	json_object *parts = kr_llm__arr(msg, "content");

	if (parts == NULL) {
		kr_llm__text_add(text, kr_llm__str(msg, "content"));
		return;
	}
	for (size_t i = 0; i < kr_llm__len(parts); i++)
		kr_llm__text_add(text, kr_llm__str(kr_llm__at(parts, i), "text"));
}

static int
openai_parse(json_object *root, struct kr_llm_result *out)
{
	json_object *choice = kr_llm__at(kr_llm__arr(root, "choices"), 0);
	json_object *msg = kr_llm__obj(choice, "message"), *u = kr_llm__obj(root, "usage");
	const char *finish = kr_llm__str(choice, "finish_reason");
	struct kr_buf text;

	if (msg == NULL)
		return -1;
	out->input_tokens = kr_llm__int(u, "prompt_tokens");
	out->output_tokens = kr_llm__int(u, "completion_tokens");
	kr_buf_init(&text, KR_LLM_BODY_MAX);
	content_text(msg, &text);
	if (text.len == 0 && !text.failed && (kr_llm__str(msg, "refusal") != NULL ||
	    (finish != NULL && strcmp(finish, "content_filter") == 0))) {
		kr_buf_release(&text, 0);
		kr_llm__blocked(out, kr_llm__str(msg, "refusal") != NULL ? "refusal" :
		    "content_filter");
		return 0;
	}
	if (text.len == 0 && !text.failed && finish != NULL && strcmp(finish, "length") == 0) {
		kr_buf_release(&text, 0);
		kr_llm__cut_short(out, finish);
		return 0;
	}
	return kr_llm__text_take(&text, out);
}

/* OpenAI's words for a spent balance or a spend limit (providers.md). */
static int
quota_word(const char *s)
{
	static const char suffix[] = "_spend_limit_exceeded";
	size_t n;

	if (s == NULL)
		return 0;
	n = strlen(s);
	return strcmp(s, "insufficient_quota") == 0 || strcmp(s, "credit_balance_exhausted") == 0
	    || (n >= sizeof(suffix) - 1 && strcmp(s + n - (sizeof(suffix) - 1), suffix) == 0);
}

/* zai business codes: 1000-1004 authentication, 1112/1113/1121 the account, 1302 rate. */
static void
zai_fault(long long code, struct kr_llm_fault *f)
{
	if (code >= 1000 && code <= 1004)
		f->cls = KR_LLM_AUTH;
	else if (code == 1112 || code == 1113 || code == 1121)
		f->cls = KR_LLM_QUOTA;
	else if (code == 1302)
		f->cls = KR_LLM_RATE;
}

/*
 * moonshot: 403 is its quota refusal (exceeded_current_quota_error), except
 * permission_denied_error, an API the account may not use; 429 says which it is in type.
 */
static void
moonshot_fault(long status, const char *type, struct kr_llm_fault *f)
{
	int denied = type != NULL && strcmp(type, "permission_denied_error") == 0;

	if (status == 403)
		f->cls = denied ? KR_LLM_REQUEST : KR_LLM_QUOTA;
	else if (type != NULL && strcmp(type, "exceeded_current_quota_error") == 0)
		f->cls = KR_LLM_QUOTA;
	else if (type != NULL && strcmp(type, "rate_limit_reached_error") == 0)
		f->cls = KR_LLM_RATE;
	else if (type != NULL && strcmp(type, "engine_overloaded_error") == 0)
		f->cls = KR_LLM_TRANSIENT;	/* the server's load, not the key's limit (429) */
}

static void
openai_fault(const struct kr_provider *p, long status, json_object *root,
    struct kr_llm_fault *f)
{
	json_object *e = kr_llm__obj(root, "error");
	const char *type = kr_llm__str(e, "type"), *code = kr_llm__str(e, "code");

	if (e != NULL)
		f->msg = kr_llm__str(e, "message");
	else	/* {"error":"..."} of local servers, {"code","msg"} of some zai gateways */
		f->msg = kr_llm__str(root, "error") != NULL ? kr_llm__str(root, "error") :
		    kr_llm__str(root, "msg") != NULL ? kr_llm__str(root, "msg") :
		    kr_llm__str(root, "message");
	if (p->id == KR_PROV_ZAI)
		zai_fault(kr_llm__int(e != NULL ? e : root, "code"), f);
	else if (p->id == KR_PROV_MOONSHOT)
		moonshot_fault(status, type, f);
	if (status == 429 && (quota_word(type) || quota_word(code)))
		f->cls = KR_LLM_QUOTA;
}

/*
 * moonshot's key check reads the balance: a valid key with nothing left to spend is
 * exhausted ({"data":{"available_balance":0,...}}).
 */
static void
openai_checked(const struct kr_provider *p, json_object *root, struct kr_llm_result *out)
{
	json_object *bal = NULL, *data = kr_llm__obj(root, "data");

	if (p->id != KR_PROV_MOONSHOT || !json_object_object_get_ex(data, "available_balance",
	    &bal) || !(json_object_is_type(bal, json_type_int) ||
	    json_object_is_type(bal, json_type_double)))
		return;
	if (json_object_get_double(bal) <= 0.0) {
		out->cls = KR_LLM_QUOTA;
		kr_llm__message(out, "quota exhausted (%ld): the available balance is %g",
		    out->http_status, json_object_get_double(bal));
	}
}

const struct kr_llm_proto kr_llm_openai_proto = {
	openai_build, openai_parse, openai_fault, openai_checked,
};
