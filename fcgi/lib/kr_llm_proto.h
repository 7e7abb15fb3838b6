/*
 * kr_llm_proto: what each wire protocol (kr_llm_anthropic.c, kr_llm_openai.c,
 * kr_llm_gemini.c) supplies to the transport (kr_llm.c) and the classifier
 * (kr_llm_classify.c), and the helpers they share. Private to the kr_llm*.c files.
 */
#ifndef KR_LLM_PROTO_H
#define KR_LLM_PROTO_H

#include <stddef.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "kr_buf.h"
#include "kr_llm.h"

/*
 * A request ready to go out. url and body are malloc'd; headers (curl's copies) hold the
 * key and are wiped by kr_llm__wire_release.
 */
struct kr_llm_wire {
	const char		*method;	/* "GET" or "POST" */
	char			*url;
	struct curl_slist	*headers;
	char			*body;		/* NULL for a GET */
	size_t			 bodylen;
};

/* What a protocol reads from an error body; cls arrives preset from the status alone. */
struct kr_llm_fault {
	enum kr_llm_class	 cls;
	const char		*msg;		/* the provider's message, inside the JSON; or NULL */
	long			 retry_ms;	/* a hint found in the body, -1 when none */
};

struct kr_llm_proto {
	/* Fill w for KR_LLM_OP_CHAT or KR_LLM_OP_CHECK: 0, or -1 with err (no secret). */
	int	(*build)(const struct kr_llm_request *req, enum kr_llm_op op,
		    struct kr_llm_wire *w, char *err, size_t errlen);
	/* Read a 200 completion; as kr_llm_parse_completion. */
	int	(*parse)(json_object *root, struct kr_llm_result *out);
	/* Read an error body (root: its JSON, never NULL) into f. */
	void	(*fault)(const struct kr_provider *p, long status, json_object *root,
		    struct kr_llm_fault *f);
	/* Optional: judge a 200 answer to the key check (moonshot's balance); may set out. */
	void	(*checked)(const struct kr_provider *p, json_object *root,
		    struct kr_llm_result *out);
};

extern const struct kr_llm_proto kr_llm_anthropic_proto;
extern const struct kr_llm_proto kr_llm_openai_proto;
extern const struct kr_llm_proto kr_llm_gemini_proto;

/* The protocol of p; never NULL for a registry provider. */
const struct kr_llm_proto *kr_llm__proto(const struct kr_provider *p);

/* Building requests (kr_llm.c). Each returns 0, or -1 with err set. */
int	kr_llm__url(struct kr_llm_wire *w, const char *base, const char *path, char *err,
	    size_t errlen);
int	kr_llm__header(struct kr_llm_wire *w, const char *line, char *err, size_t errlen);
/* The header "<prefix><key>", e.g. prefix "Authorization: Bearer ". */
int	kr_llm__auth(struct kr_llm_wire *w, const char *prefix, const struct kr_llm_request *req,
	    char *err, size_t errlen);
/* Serialise obj as the POST body (adds the JSON content type); takes over obj. */
int	kr_llm__body(struct kr_llm_wire *w, json_object *obj, char *err, size_t errlen);
void	kr_llm__wire_release(struct kr_llm_wire *w);
/* The model to ask for (the request's, else the provider's default), or NULL. */
const char *kr_llm__model(const struct kr_llm_request *req);
unsigned kr_llm__max_tokens(const struct kr_llm_request *req);
/* 1 for "user" and "assistant", the only roles a request may carry. */
int	kr_llm__role_ok(const char *role);
/* The system prompt, or NULL when absent or empty. */
const char *kr_llm__system(const struct kr_llm_request *req);

/* Parse a body; NULL when it is not complete JSON. The caller puts the result. */
json_object	*kr_llm__json(const char *body, size_t len);
/* Set out->message from a format, cut at a UTF-8 boundary to fit, control characters as spaces. */
void		 kr_llm__message(struct kr_llm_result *out, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

/* Reading JSON defensively (kr_llm_classify.c): wrong types read as absent. */
json_object	*kr_llm__obj(json_object *o, const char *key);	/* an object member */
json_object	*kr_llm__arr(json_object *o, const char *key);	/* an array member */
json_object	*kr_llm__at(json_object *arr, size_t i);	/* NULL out of range */
size_t		 kr_llm__len(json_object *arr);			/* 0 for a non-array */
const char	*kr_llm__str(json_object *o, const char *key);
/* An integer member, also when sent as a number string ("1113"); -1 when absent. */
long long	 kr_llm__int(json_object *o, const char *key);
/* Case-insensitive substring test; 0 when either is NULL. */
int		 kr_llm__has(const char *hay, const char *needle);
/* Append s to the answer text; -1 when the buffer failed. */
int		 kr_llm__text_add(struct kr_buf *b, const char *s);
/* Move the text into out->text (an empty answer becomes ""); -1 on failure. */
int		 kr_llm__text_take(struct kr_buf *b, struct kr_llm_result *out);
/* Set out to KR_LLM_REQUEST because the provider withheld the answer (why: its reason). */
void		 kr_llm__blocked(struct kr_llm_result *out, const char *why);
/*
 * Set out to KR_LLM_REQUEST because the answer is empty and the model stopped at its output
 * token limit (why: the provider's finish reason): a model that thinks first can spend it
 * all before writing. Delivered, it would be an empty answer taken for a success.
 */
void		 kr_llm__cut_short(struct kr_llm_result *out, const char *why);

#endif
