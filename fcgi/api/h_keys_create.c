/*
 * POST /api/workspaces/{ws}/keys: one key or many for a provider, as a comma- or
 * newline-separated string or an array, with names the same way. Every entry is checked
 * (format, duplicates, and with "validate" against the provider, all at once) before
 * anything is stored; then all of them, their audit entries and events, in one transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "kr_crypto.h"
#include "kr_json.h"
#include "kr_keys.h"
#include "kr_llm.h"
#include "kr_log.h"
#include "kr_settings.h"
#include "h_keys_int.h"

void
hkeys_entries_release(struct hkeys_entries *e)
{
	for (size_t i = 0; i < e->n; i++) {
		kr_wipe(e->v[i], e->len[i]);
		free(e->v[i]);
	}
	e->n = 0;
}

/* Append s[0..n) trimmed; -1 when there are too many or no memory. */
int
hkeys_entries_add(struct hkeys_entries *e, const char *s, size_t n)
{
	while (n > 0 && strchr(" \t\r\n", *s) != NULL)
		s++, n--;
	while (n > 0 && strchr(" \t\r\n", s[n - 1]) != NULL)
		n--;
	if (e->n == KR_KEYS_BATCH_MAX || (e->v[e->n] = strndup(s, n)) == NULL)
		return -1;
	e->len[e->n] = strlen(e->v[e->n]);	/* the copy's, whatever s held (the router */
	e->n++;					/* refuses a NUL in a string, too) */
	return 0;
}

/*
 * Read field as a comma- or newline-separated string or an array of strings. 0, or -1
 * after answering 422. An absent optional field leaves e empty.
 */
static int
read_entries(struct kr_req *req, struct kr_resp *resp, const char *field, int required,
    struct hkeys_entries *e)
{
	json_object *v = NULL;
	const char *s, *end;

	if (!json_object_object_get_ex(req->json, field, &v) || v == NULL) {
		if (required)
			resp_error(resp, 422, field, "%s is required", field);
		return required ? -1 : 0;
	}
	if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *x = json_object_array_get_idx(v, i);
			if (!json_object_is_type(x, json_type_string)) {
				char name[40];
				snprintf(name, sizeof(name), "%s[%zu]", field, i);
				resp_error(resp, 422, name, "%s must be a string", name);
				return -1;
			}
			if (hkeys_entries_add(e, json_object_get_string(x),
			    (size_t)json_object_get_string_len(x)) != 0)
				goto toomany;
		}
		return 0;
	}
	if (!json_object_is_type(v, json_type_string)) {
		resp_error(resp, 422, field, "%s must be a string or an array of strings", field);
		return -1;
	}
	s = json_object_get_string(v);
	end = s + json_object_get_string_len(v);
	while (end > s && strchr(" \t\r\n,", end[-1]) != NULL && end[-1] != ',')
		end--;	/* a trailing newline is not an entry; a trailing comma is */
	for (;;) {
		size_t n = strcspn(s, ",\n");
		if (s + n > end)
			n = (size_t)(end - s);
		if (hkeys_entries_add(e, s, n) != 0)
			goto toomany;
		if (s + n >= end)
			return 0;
		s += n + 1;
	}
toomany:
	resp_error(resp, 422, field, "at most %d entries at once", KR_KEYS_BATCH_MAX);
	return -1;
}

/* The provider named by field; -1 after answering 422. */
static int
req_provider(struct kr_req *req, struct kr_resp *resp, const char *field,
    const struct kr_provider **out)
{
	const char *s = NULL;

	if (req_str(req, resp, field, 1, 1, 32, &s) != 0)
		return -1;
	if ((*out = kr_provider_find(s)) == NULL) {
		resp_error(resp, 422, field, "unknown provider \"%.32s\"", s);
		return -1;
	}
	return 0;
}

/*
 * With "validate": test every entry, all at once (so that a batch takes as long as its
 * slowest check, well inside the web server's timeout); 0 when all pass, else -1 after
 * answering 422 for the first that did not.
 */
static int
validate_all(struct kr_req *req, struct kr_resp *resp, const struct kr_provider *p,
    const struct hkeys_entries *keys)
{
	struct kr_llm_request rq[KR_KEYS_BATCH_MAX];
	struct kr_llm_result r[KR_KEYS_BATCH_MAX];
	struct kr_settings s;
	const char *url;
	char field[40];
	int rc = 0;

	if ((url = hkeys_test_url(req, resp, p, &s)) == NULL)
		return -1;
	for (size_t i = 0; i < keys->n; i++)
		rq[i] = (struct kr_llm_request){ .prov = p, .base_url = url, .key = keys->v[i],
		    .keylen = keys->len[i], .model = kr_settings_model(&s, p),
		    .timeout_ms = CHECK_TIMEOUT_MS };
	kr_llm_run_many(req->cfg, rq, keys->n, 1, r);
	for (size_t i = 0; i < keys->n; i++) {
		if (rc == 0 && r[i].cls != KR_LLM_OK) {
			snprintf(field, sizeof(field), "keys[%zu]", i);
			resp_error(resp, 422, field, "entry %zu did not pass the check: %s", i,
			    r[i].message);
			rc = -1;
		}
		kr_llm_result_release(&r[i]);
	}
	return rc;
}

/* Format checks of every entry and name; -1 after answering 422. */
static int
check_entries(struct kr_resp *resp, const struct kr_provider *p, const struct hkeys_entries *keys,
    const struct hkeys_entries *names)
{
	char field[40];
	const char *why;

	if (keys->n == 0) {
		resp_error(resp, 422, "keys", "give at least one key");
		return -1;
	}
	if (names->n > keys->n) {
		resp_error(resp, 422, "names", "more names than keys");
		return -1;
	}
	for (size_t i = 0; i < keys->n; i++) {
		snprintf(field, sizeof(field), "keys[%zu]", i);
		why = keys->len[i] == 0 ? "the entry is empty" :
		    kr_key_format_error(p, keys->v[i], keys->len[i]);
		if (why != NULL) {
			resp_error(resp, 422, field, "entry %zu: %s", i, why);
			return -1;
		}
	}
	for (size_t i = 0; i < names->n; i++)
		if (kr_utf8_chars(names->v[i], names->len[i]) > KR_NAME_MAX) {
			snprintf(field, sizeof(field), "names[%zu]", i);
			resp_error(resp, 422, field, "a name is at most %d characters", KR_NAME_MAX);
			return -1;
		}
	return 0;
}

/* POST keys as a kr_db_tx body's argument. */
struct create_tx {
	struct kr_req		*req;
	const struct kr_provider *p;
	struct kr_key_entry	*e;
	size_t			 n;
	int			 validated;	/* tested before: stored as valid */
	size_t			 bad;		/* the entry refused */
	json_object		*keys;		/* the keys as added, for the answer; owned */
	enum kr_keys_err	 why;
};

/* key.created for key k (the key object of the answer). */
static enum kr_db_err
audit_created(struct create_tx *c, const char *id, json_object *k)
{
	json_object *d = json_object_new_object();
	enum kr_db_err rc;

	kr_json_add_str(d, "provider", c->p->slug);
	kr_json_add_str(d, "name", json_object_get_string(json_object_object_get(k, "name")));
	kr_json_add_str(d, "maskedKey", json_object_get_string(
	    json_object_object_get(k, "maskedKey")));
	rc = hkeys_audit(c->req, "key.created", id, d);
	json_object_put(d);
	return rc;
}

/* The keys, and for each its audit entry and its event. */
static enum kr_db_err
create_in_tx(struct kr_db *db, void *arg)
{
	struct create_tx *c = arg;
	struct kr_llm_result ok = { .cls = KR_LLM_OK };
	enum kr_db_err rc, db_rc = KR_DB_OK;
	const char *ws = c->req->p.ws.id;
	int changed;

	json_object_put(c->keys);
	c->keys = json_object_new_array();
	if ((rc = hkeys_step(kr_keys_add(db, ws, c->p, c->e, c->n, &c->bad, &db_rc), db_rc,
	    &c->why)) != KR_DB_OK)
		return rc;
	for (size_t i = 0; i < c->n; i++) {
		json_object *k;
		if (c->validated && (rc = kr_keys_record(db, ws, c->e[i].id, NULL, &ok, 1, 0,
		    &changed)) != KR_DB_OK)
			return rc;
		if ((rc = hkeys_now(c->req, c->e[i].id, &k)) != KR_DB_OK)
			return rc;
		if (k == NULL) {	/* added in this transaction: cannot be missing */
			kr_error("key %s: not found right after it was added", c->e[i].id);
			return KR_DB_ERROR;
		}
		json_object_array_add(c->keys, k);
		if ((rc = audit_created(c, c->e[i].id, k)) != KR_DB_OK ||
		    (rc = hkeys_event(c->req, k)) != KR_DB_OK)
			return rc;
	}
	return KR_DB_OK;
}

static void
store_keys(struct kr_req *req, struct kr_resp *resp, const struct kr_provider *p,
    const struct hkeys_entries *keys, const struct hkeys_entries *names, int validated)
{
	struct kr_key_entry e[KR_KEYS_BATCH_MAX];
	struct create_tx c = { req, p, e, keys->n, validated, 0, NULL, KR_KEYS_OK };
	enum kr_db_err db_rc;
	enum kr_keys_err rc;
	char field[40];
	json_object *o;

	memset(e, 0, sizeof(e));
	for (size_t i = 0; i < keys->n; i++)
		e[i] = (struct kr_key_entry){ keys->v[i], keys->len[i],
		    i < names->n && names->len[i] > 0 ? names->v[i] : NULL, "" };
	if ((rc = hkeys_tx(req, create_in_tx, &c, &c.why, &db_rc)) != KR_KEYS_OK) {
		json_object_put(c.keys);
		snprintf(field, sizeof(field), "keys[%zu]", c.bad);
		hkeys_error(resp, rc, db_rc, field);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "keys", c.keys);
	resp_json(resp, 201, o);
}

/* 409 naming the entry when a key is stored already (checked before any provider call). */
static int
no_duplicates(struct kr_req *req, struct kr_resp *resp, const struct kr_provider *p,
    const struct hkeys_entries *keys)
{
	struct kr_key_entry e[KR_KEYS_BATCH_MAX];
	enum kr_db_err db_rc;
	enum kr_keys_err rc;
	size_t bad = 0;
	char field[40];

	for (size_t i = 0; i < keys->n; i++)
		e[i] = (struct kr_key_entry){ keys->v[i], keys->len[i], NULL, "" };
	if ((rc = kr_keys_find_duplicate(req->db, req->p.ws.id, p, e, keys->n, &bad, &db_rc)) ==
	    KR_KEYS_OK)
		return 0;
	snprintf(field, sizeof(field), "keys[%zu]", bad);
	hkeys_error(resp, rc, db_rc, field);
	return -1;
}

void
h_keys_create(struct kr_req *req, struct kr_resp *resp)
{
	struct hkeys_entries keys = { .n = 0 }, names = { .n = 0 };
	const struct kr_provider *p;
	int validate = 0;

	if (req_provider(req, resp, "provider", &p) != 0 ||
	    req_bool(req, resp, "validate", 0, &validate) != 0 ||
	    read_entries(req, resp, "keys", 1, &keys) != 0 ||
	    read_entries(req, resp, "names", 0, &names) != 0 ||
	    check_entries(resp, p, &keys, &names) != 0 ||
	    (validate && (no_duplicates(req, resp, p, &keys) != 0 ||
	    validate_all(req, resp, p, &keys) != 0)))
		goto out;
	store_keys(req, resp, p, &keys, &names, validate);
out:
	hkeys_entries_release(&keys);
	hkeys_entries_release(&names);
}

