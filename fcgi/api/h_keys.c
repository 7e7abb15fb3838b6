/*
 * /api/workspaces/{ws}/keys: the workspace's provider keys. Listing and reading for every
 * role; changes for admins. The secret never leaves: answers carry the masked hint only.
 *
 * Every change is one transaction (a kr_db_tx body, run again on deadlock) holding the
 * change, its audit entry and its key_status_changed event: they commit together, and a
 * refused or failed change leaves none of them. Provider calls (tests, validate) happen
 * before it, never inside.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_crypto.h"
#include "kr_events.h"
#include "kr_json.h"
#include "kr_keys.h"
#include "kr_llm.h"
#include "kr_settings.h"
#include "views.h"

#define CHECK_TIMEOUT_MS	15000	/* one key check (the bulk ones run at once) */

/* Entries of a "keys" or "names" field: trimmed, NUL-terminated copies. */
struct entries {
	char	*v[KR_KEYS_BATCH_MAX];
	size_t	 len[KR_KEYS_BATCH_MAX];
	size_t	 n;
};

static void
entries_release(struct entries *e)
{
	for (size_t i = 0; i < e->n; i++) {
		kr_wipe(e->v[i], e->len[i]);
		free(e->v[i]);
	}
	e->n = 0;
}

/* Append s[0..n) trimmed; -1 when there are too many or no memory. */
static int
entries_add(struct entries *e, const char *s, size_t n)
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
    struct entries *e)
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
			if (entries_add(e, json_object_get_string(x),
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
		if (entries_add(e, s, n) != 0)
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

/* The key as this connection sees it now into *out; NULL when it is not in the workspace. */
static enum kr_db_err
key_now(struct kr_req *req, const char *id, json_object **out)
{
	struct kr_db_res res;
	enum kr_db_err rc;

	*out = NULL;
	if ((rc = kr_keys_get(req->db, req->p.ws.id, id, &res)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1)
		*out = kr_keys_view(&res, 0);
	kr_db_res_free(&res);
	return KR_DB_OK;
}

static void
answer_keys(struct kr_req *req, struct kr_resp *resp, const char *provider, int status)
{
	struct kr_db_res res;
	enum kr_db_err rc;

	if ((rc = kr_keys_list(req->db, req->p.ws.id, provider, &res)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	resp_json(resp, status, view_list("keys", &res, kr_keys_view));
	kr_db_res_free(&res);
}

/* Answer a failure of kr_keys_* (field may be NULL). */
static void
keys_error(struct kr_resp *resp, enum kr_keys_err rc, enum kr_db_err db_rc, const char *field)
{
	switch (rc) {
	case KR_KEYS_NOTFOUND:
		resp_error(resp, 404, field, "no such key");
		break;
	case KR_KEYS_DUPLICATE:
		resp_error(resp, 409, field, "this key is stored already for this provider, or "
		    "given twice in this request");
		break;
	case KR_KEYS_VAULT:
		kr_warn("key change: the vault failed");
		resp_error(resp, 500, NULL, "the key vault is unavailable");
		break;
	default:
		/* A failed statement logged itself; a refusal that should not happen did not. */
		if (db_rc == KR_DB_DUPLICATE || db_rc == KR_DB_ABORT || db_rc == KR_DB_OK)
			kr_warn("key change: unexpected result %d (database %d)", (int)rc,
			    (int)db_rc);
		resp_db_error(resp, db_rc);
	}
}

/* The audit entry of a change, in its transaction; detail (may be NULL) is not consumed. */
static enum kr_db_err
audit_key(struct kr_req *req, const char *action, const char *id, json_object *detail)
{
	struct kr_actor a = req_actor(req);

	return kr_audit(req->db, req->p.ws.id, &a, action, id, detail);
}

/* key_status_changed with payload {"key": key}, in the change's transaction. key is the key
 * object of the answers (masked: it never holds the secret); it is not consumed. */
static enum kr_db_err
key_event(struct kr_req *req, json_object *key)
{
	json_object *o = json_object_new_object();
	enum kr_db_err rc;

	json_object_object_add(o, "key", json_object_get(key));
	rc = kr_event_append(req->db, req->p.ws.id, "key_status_changed", o, NULL);
	json_object_put(o);
	return rc;
}

/*
 * What a kr_db_tx body does with the result of a kr_keys_* change: go on (KR_DB_OK), give
 * up with *why set (KR_DB_ABORT: rolled back, nothing written), or fail with the database
 * error (rolled back; run again when it is KR_DB_RETRY).
 */
static enum kr_db_err
keys_step(enum kr_keys_err rc, enum kr_db_err db_rc, enum kr_keys_err *why)
{
	*why = rc;
	if (rc == KR_KEYS_OK)
		return KR_DB_OK;
	if (rc == KR_KEYS_DB)
		return db_rc != KR_DB_OK && db_rc != KR_DB_ABORT ? db_rc : KR_DB_ERROR;
	return KR_DB_ABORT;
}

/*
 * Run body as the change's one transaction. KR_KEYS_OK once it committed; else why the body
 * gave up (*why), or KR_KEYS_DB with *db_rc, for keys_error.
 */
static enum kr_keys_err
keys_tx(struct kr_req *req, enum kr_db_err (*body)(struct kr_db *, void *), void *arg,
    const enum kr_keys_err *why, enum kr_db_err *db_rc)
{
	if ((*db_rc = kr_db_tx(req->db, body, arg, 0)) == KR_DB_OK)
		return KR_KEYS_OK;
	return *db_rc == KR_DB_ABORT ? *why : KR_KEYS_DB;
}

/* A change of one key (test, PATCH, rotate, DELETE) as a kr_db_tx body's argument. */
struct key_tx {
	struct kr_req		*req;
	const char		*id;
	json_object		*detail;	/* of the audit entry; may be NULL; not owned */
	json_object		*key;		/* the key as the transaction left it; owned */
	enum kr_keys_err	 why;		/* why the body gave up */
	const struct kr_key_patch *patch;	/* PATCH */
	const char		*secret;	/* rotate */
	size_t			 len;
	const struct kr_llm_result *result;	/* test */
	char			 fingerprint[KR_KEY_FINGERPRINT_MAX];	/* the secret tested */
	int			 rotated;	/* the key holds another secret now */
};

/*
 * After the change of t->id: the key as it is now into t->key and its event. A key gone
 * meanwhile (deleted by a concurrent request) gives up as not found.
 */
static enum kr_db_err
key_changed(struct key_tx *t)
{
	enum kr_db_err rc;

	json_object_put(t->key);
	if ((rc = key_now(t->req, t->id, &t->key)) != KR_DB_OK)
		return rc;
	if (t->key == NULL) {
		t->why = KR_KEYS_NOTFOUND;
		return KR_DB_ABORT;
	}
	return key_event(t->req, t->key);
}

/* Answer the key row id (404 when it is not in this workspace). */
static void
answer_key(struct kr_req *req, struct kr_resp *resp, const char *id)
{
	json_object *k;
	enum kr_db_err rc;

	if ((rc = key_now(req, id, &k)) != KR_DB_OK)
		resp_db_error(resp, rc);
	else if (k == NULL)
		resp_error(resp, 404, NULL, "no such key");
	else
		resp_json(resp, 200, k);
}

/* The provider of key id in this workspace; NULL after answering 404 or 503. */
static const struct kr_provider *
key_provider(struct kr_req *req, struct kr_resp *resp, const char *id)
{
	const struct kr_provider *p = NULL;
	struct kr_db_res res;
	enum kr_db_err rc;

	if ((rc = kr_keys_get(req->db, req->p.ws.id, id, &res)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return NULL;
	}
	if (res.nrows == 1)
		p = kr_provider_find(kr_db_cell(&res, 0, KR_KC_PROVIDER));
	kr_db_res_free(&res);
	if (p == NULL)
		resp_error(resp, 404, NULL, "no such key");
	return p;
}

void
h_keys_list(struct kr_req *req, struct kr_resp *resp)
{
	char buf[40];
	const char *provider = req_query(req, "provider", buf, sizeof(buf));

	if (provider != NULL && kr_provider_find(provider) == NULL) {
		resp_error(resp, 422, "provider", "unknown provider");
		return;
	}
	answer_keys(req, resp, provider, 200);
}

/* The base URL to test keys of p against, or NULL after answering 422. */
static const char *
test_url(struct kr_req *req, struct kr_resp *resp, const struct kr_provider *p,
    struct kr_settings *s)
{
	enum kr_db_err rc;
	const char *url;

	if ((rc = kr_settings_get(req->db, req->p.ws.id, s)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return NULL;
	}
	if ((url = kr_provider_base_url(req->cfg, p, s->base_urls[p->id])) == NULL)
		resp_error(resp, 422, "provider", "set a base URL for %s in the provider settings "
		    "first", p->slug);
	return url;
}

/* Check one key against the provider. */
static void
check_key(struct kr_req *req, const struct kr_provider *p, const char *url,
    const struct kr_settings *s, const char *key, size_t len, struct kr_llm_result *out)
{
	struct kr_llm_request r = { .prov = p, .base_url = url, .key = key, .keylen = len,
	    .model = kr_settings_model(s, p), .timeout_ms = CHECK_TIMEOUT_MS };

	kr_llm_run(req->cfg, &r, 1, out);
}

/*
 * With "validate": test every entry, all at once (so that a batch takes as long as its
 * slowest check, well inside the web server's timeout); 0 when all pass, else -1 after
 * answering 422 for the first that did not.
 */
static int
validate_all(struct kr_req *req, struct kr_resp *resp, const struct kr_provider *p,
    const struct entries *keys)
{
	struct kr_llm_request rq[KR_KEYS_BATCH_MAX];
	struct kr_llm_result r[KR_KEYS_BATCH_MAX];
	struct kr_settings s;
	const char *url;
	char field[40];
	int rc = 0;

	if ((url = test_url(req, resp, p, &s)) == NULL)
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
check_entries(struct kr_resp *resp, const struct kr_provider *p, const struct entries *keys,
    const struct entries *names)
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
	rc = audit_key(c->req, "key.created", id, d);
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
	if ((rc = keys_step(kr_keys_add(db, ws, c->p, c->e, c->n, &c->bad, &db_rc), db_rc,
	    &c->why)) != KR_DB_OK)
		return rc;
	for (size_t i = 0; i < c->n; i++) {
		json_object *k;
		if (c->validated && (rc = kr_keys_record(db, ws, c->e[i].id, NULL, &ok, 1, 0,
		    &changed)) != KR_DB_OK)
			return rc;
		if ((rc = key_now(c->req, c->e[i].id, &k)) != KR_DB_OK)
			return rc;
		if (k == NULL) {	/* added in this transaction: cannot be missing */
			kr_error("key %s: not found right after it was added", c->e[i].id);
			return KR_DB_ERROR;
		}
		json_object_array_add(c->keys, k);
		if ((rc = audit_created(c, c->e[i].id, k)) != KR_DB_OK ||
		    (rc = key_event(c->req, k)) != KR_DB_OK)
			return rc;
	}
	return KR_DB_OK;
}

static void
store_keys(struct kr_req *req, struct kr_resp *resp, const struct kr_provider *p,
    const struct entries *keys, const struct entries *names, int validated)
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
	if ((rc = keys_tx(req, create_in_tx, &c, &c.why, &db_rc)) != KR_KEYS_OK) {
		json_object_put(c.keys);
		snprintf(field, sizeof(field), "keys[%zu]", c.bad);
		keys_error(resp, rc, db_rc, field);
		return;
	}
	o = json_object_new_object();
	json_object_object_add(o, "keys", c.keys);
	resp_json(resp, 201, o);
}

/* 409 naming the entry when a key is stored already (checked before any provider call). */
static int
no_duplicates(struct kr_req *req, struct kr_resp *resp, const struct kr_provider *p,
    const struct entries *keys)
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
	keys_error(resp, rc, db_rc, field);
	return -1;
}

void
h_keys_create(struct kr_req *req, struct kr_resp *resp)
{
	struct entries keys = { .n = 0 }, names = { .n = 0 };
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
	entries_release(&keys);
	entries_release(&names);
}

/*
 * What the test taught, its audit entry (with the outcome) and, when the status changed,
 * its event; KR_DB_ABORT, nothing recorded, when the key was deleted while it was being
 * tested, or rotated (t->rotated).
 */
static enum kr_db_err
test_in_tx(struct kr_db *db, void *arg)
{
	struct key_tx *t = arg;
	const struct kr_llm_result *r = t->result;
	enum kr_db_err rc, stale;
	json_object *d;
	int changed = 0;

	json_object_put(t->key);
	t->key = NULL;
	t->rotated = 0;
	stale = kr_keys_record(db, t->req->p.ws.id, t->id, t->fingerprint, r, 1, 0, &changed);
	if (stale != KR_DB_OK && stale != KR_DB_ABORT)
		return stale;
	if ((rc = key_now(t->req, t->id, &t->key)) != KR_DB_OK)
		return rc;
	if (t->key == NULL)	/* deleted while the provider answered */
		return KR_DB_ABORT;
	if (stale == KR_DB_ABORT) {	/* rotated meanwhile: the outcome is the old secret's */
		t->rotated = 1;
		return KR_DB_ABORT;
	}
	if (changed && (rc = key_event(t->req, t->key)) != KR_DB_OK)
		return rc;
	d = json_object_new_object();
	kr_json_add_str(d, "outcome", kr_llm_class_name(r->cls));
	json_object_object_add(d, "status", json_object_get(json_object_object_get(t->key,
	    "status")));
	if (r->cls != KR_LLM_OK)
		kr_json_add_str(d, "error", r->message);
	rc = audit_key(t->req, "key.tested", t->id, d);
	json_object_put(d);
	return rc;
}

void
h_keys_test(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1];
	const struct kr_provider *p = NULL;
	struct key_tx t = { .req = req, .id = id };
	struct kr_llm_result r;
	struct kr_settings s;
	enum kr_db_err db_rc;
	enum kr_keys_err rc;
	const char *url;
	char *secret = NULL;
	json_object *o;
	size_t len = 0;

	if ((p = key_provider(req, resp, id)) == NULL)
		return;
	if ((url = test_url(req, resp, p, &s)) == NULL)
		return;
	if ((rc = kr_keys_secret(req->db, req->p.ws.id, id, &secret, &len, t.fingerprint,
	    &db_rc)) != KR_KEYS_OK) {
		keys_error(resp, rc, db_rc, NULL);
		return;
	}
	memset(&r, 0, sizeof(r));
	check_key(req, p, url, &s, secret, len, &r);
	kr_wipe(secret, len);
	free(secret);
	t.result = &r;
	if ((db_rc = kr_db_tx(req->db, test_in_tx, &t, 0)) != KR_DB_OK) {
		json_object_put(t.key);
		kr_llm_result_release(&r);
		if (db_rc == KR_DB_ABORT && t.rotated)
			resp_error(resp, 409, NULL, "the key was rotated while it was being tested: "
			    "test it again");
		else if (db_rc == KR_DB_ABORT)
			resp_error(resp, 404, NULL, "no such key");
		else
			resp_db_error(resp, db_rc);
		return;
	}
	o = json_object_new_object();
	kr_json_add_bool(o, "valid", r.cls == KR_LLM_OK);
	json_object_object_add(o, "status", json_object_get(json_object_object_get(t.key,
	    "status")));
	if (r.cls == KR_LLM_OK)
		kr_json_add_int(o, "latencyMs", r.latency_ms);
	else
		kr_json_add_str(o, "error", r.message);
	json_object_put(t.key);
	kr_llm_result_release(&r);
	resp_json(resp, 200, o);
}

void
h_keys_get(struct kr_req *req, struct kr_resp *resp)
{
	answer_key(req, resp, req->params[1]);
}

/* expiresAt: absent (untouched), null (cleared) or an RFC 3339 time. -1 after 422. */
static int
req_expires(struct kr_req *req, struct kr_resp *resp, struct kr_key_patch *k, char *buf)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(req->json, "expiresAt", &v))
		return 0;
	k->has_expires = 1;
	if (v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string) ||
	    kr_time_to_db(json_object_get_string(v), buf) != 0) {
		resp_error(resp, 422, "expiresAt", "expiresAt must be an RFC 3339 UTC time "
		    "such as 2027-01-31T00:00:00Z, or null");
		return -1;
	}
	k->expires_at = buf;
	return 0;
}

/* The PATCH, its audit entry and its event. */
static enum kr_db_err
update_in_tx(struct kr_db *db, void *arg)
{
	struct key_tx *t = arg;
	enum kr_db_err rc, db_rc = KR_DB_OK;

	if ((rc = keys_step(kr_keys_update(db, t->req->p.ws.id, t->id, t->patch, &db_rc), db_rc,
	    &t->why)) != KR_DB_OK ||
	    (rc = audit_key(t->req, "key.updated", t->id, t->detail)) != KR_DB_OK)
		return rc;
	return key_changed(t);
}

void
h_keys_update(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1];
	struct key_tx t = { .req = req, .id = id };
	struct kr_key_patch k = { 0 };
	struct entries name = { .n = 0 };
	char expires[KR_TIME_MAX];
	long long priority = 0;
	enum kr_db_err db_rc;
	enum kr_keys_err rc;

	if (req_str(req, resp, "name", 0, 1, KR_NAME_MAX, &k.name) != 0 ||
	    req_bool(req, resp, "isEnabled", 0, &k.enabled) != 0 ||
	    req_expires(req, resp, &k, expires) != 0)
		return;
	k.has_name = k.name != NULL;
	k.has_enabled = json_object_object_get_ex(req->json, "isEnabled", NULL) &&
	    json_object_object_get(req->json, "isEnabled") != NULL;
	switch (kr_json_int(req->json, "priority", &priority)) {
	case KR_JSON_TYPE:
		resp_error(resp, 422, "priority", "priority must be a whole number");
		return;
	case KR_JSON_OK:
		if (priority < 0 || priority > 1000000) {
			resp_error(resp, 422, "priority", "priority must be >= 0 and <= 1000000");
			return;
		}
		k.has_priority = 1;
		k.priority = (unsigned)priority;
		break;
	case KR_JSON_ABSENT:
		break;
	}
	if (!k.has_name && !k.has_priority && !k.has_enabled && !k.has_expires) {
		answer_key(req, resp, id);	/* nothing to change: nothing written */
		return;
	}
	/* Trimmed, as POST trims its names. */
	if (k.has_name && entries_add(&name, k.name, strlen(k.name)) != 0) {
		resp_error(resp, 500, NULL, "internal error");
		return;
	}
	if (k.has_name && name.len[0] == 0) {
		resp_error(resp, 422, "name", "name must not be blank");
		entries_release(&name);
		return;
	}
	t.patch = &k;
	t.detail = json_object_new_object();
	if (k.has_name)
		kr_json_add_str(t.detail, "name", k.name = name.v[0]);
	if (k.has_priority)
		kr_json_add_int(t.detail, "priority", k.priority);
	if (k.has_enabled)
		kr_json_add_bool(t.detail, "isEnabled", k.enabled);
	if (k.has_expires)	/* as given (RFC 3339), or null */
		json_object_object_add(t.detail, "expiresAt", json_object_get(
		    json_object_object_get(req->json, "expiresAt")));
	rc = keys_tx(req, update_in_tx, &t, &t.why, &db_rc);
	json_object_put(t.detail);
	entries_release(&name);
	if (rc != KR_KEYS_OK) {
		json_object_put(t.key);
		keys_error(resp, rc, db_rc, NULL);
		return;
	}
	resp_json(resp, 200, t.key);
}

/* The new secret, its audit entry and its event. */
static enum kr_db_err
rotate_in_tx(struct kr_db *db, void *arg)
{
	struct key_tx *t = arg;
	enum kr_db_err rc, db_rc = KR_DB_OK;

	if ((rc = keys_step(kr_keys_rotate(db, t->req->p.ws.id, t->id, t->secret, t->len,
	    &db_rc), db_rc, &t->why)) != KR_DB_OK ||
	    (rc = audit_key(t->req, "key.rotated", t->id, NULL)) != KR_DB_OK)
		return rc;
	return key_changed(t);
}

void
h_keys_rotate(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1], *secret = NULL, *why;
	struct key_tx t = { .req = req, .id = id };
	const struct kr_provider *p = NULL;
	struct entries e = { .n = 0 };
	enum kr_db_err db_rc;
	enum kr_keys_err rc;

	if (req_str(req, resp, "key", 1, 1, KR_KEY_SECRET_MAX, &secret) != 0)
		return;
	if ((p = key_provider(req, resp, id)) == NULL)
		return;
	if (entries_add(&e, secret, strlen(secret)) != 0) {
		resp_error(resp, 500, NULL, "internal error");
		return;
	}
	t.secret = e.v[0];
	t.len = e.len[0];
	if ((why = kr_key_format_error(p, e.v[0], e.len[0])) != NULL)
		resp_error(resp, 422, "key", "%s", why);
	else if ((rc = keys_tx(req, rotate_in_tx, &t, &t.why, &db_rc)) != KR_KEYS_OK)
		keys_error(resp, rc, db_rc, rc == KR_KEYS_DUPLICATE ? "key" : NULL);
	else {
		resp_json(resp, 200, t.key);
		t.key = NULL;
	}
	json_object_put(t.key);
	entries_release(&e);
}

/* Read {"keys":[{"id","priority"}]}; -1 after answering 422. */
static int
read_order(struct kr_req *req, struct kr_resp *resp, const char **ids, unsigned *prio,
    size_t *n)
{
	json_object *a = NULL;
	char field[40];

	if (!json_object_object_get_ex(req->json, "keys", &a) ||
	    !json_object_is_type(a, json_type_array) || json_object_array_length(a) == 0 ||
	    json_object_array_length(a) > 1000) {
		resp_error(resp, 422, "keys", "keys must be a list of 1 to 1000 {id, priority}");
		return -1;
	}
	*n = json_object_array_length(a);
	for (size_t i = 0; i < *n; i++) {
		json_object *o = json_object_array_get_idx(a, i);
		long long pr = -1;
		if (kr_json_str(o, "id", &ids[i], NULL) != KR_JSON_OK) {
			snprintf(field, sizeof(field), "keys[%zu].id", i);
			resp_error(resp, 422, field, "%s must be a key id", field);
			return -1;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(ids[j], ids[i]) == 0) {
				snprintf(field, sizeof(field), "keys[%zu].id", i);
				resp_error(resp, 422, field, "%s repeats keys[%zu].id", field, j);
				return -1;
			}
		if (kr_json_int(o, "priority", &pr) != KR_JSON_OK || pr < 0 || pr > 1000000) {
			snprintf(field, sizeof(field), "keys[%zu].priority", i);
			resp_error(resp, 422, field, "priority must be >= 0 and <= 1000000");
			return -1;
		}
		prio[i] = (unsigned)pr;
	}
	return 0;
}

/* PUT keys/reorder as a kr_db_tx body's argument. */
struct reorder_tx {
	struct kr_req		*req;
	const char		**ids;
	const unsigned		*prio;
	size_t			 n;
	size_t			 bad;		/* the entry refused */
	json_object		*order;		/* [{"id", "priority"}], for audit and event */
	enum kr_keys_err	 why;
};

/* The priorities, their event {"keys": order} and their audit entry. */
static enum kr_db_err
reorder_in_tx(struct kr_db *db, void *arg)
{
	struct reorder_tx *o = arg;
	enum kr_db_err rc, db_rc = KR_DB_OK;
	json_object *e, *d;

	if ((rc = keys_step(kr_keys_reorder(db, o->req->p.ws.id, o->ids, o->prio, o->n, &o->bad,
	    &db_rc), db_rc, &o->why)) != KR_DB_OK)
		return rc;
	e = json_object_new_object();
	json_object_object_add(e, "keys", json_object_get(o->order));
	rc = kr_event_append(db, o->req->p.ws.id, "key_status_changed", e, NULL);
	json_object_put(e);
	if (rc != KR_DB_OK)
		return rc;
	d = json_object_new_object();
	json_object_object_add(d, "keys", json_object_get(o->order));
	rc = audit_key(o->req, "key.reordered", NULL, d);
	json_object_put(d);
	return rc;
}

void
h_keys_reorder(struct kr_req *req, struct kr_resp *resp)
{
	const char *ids[1000];
	unsigned prio[1000];
	struct reorder_tx o = { req, ids, prio, 0, 0, NULL, KR_KEYS_OK };
	enum kr_db_err db_rc;
	enum kr_keys_err rc;
	char field[40];

	if (read_order(req, resp, ids, prio, &o.n) != 0)
		return;
	o.order = json_object_new_array();
	for (size_t i = 0; i < o.n; i++) {
		json_object *x = json_object_new_object();
		kr_json_add_str(x, "id", ids[i]);
		kr_json_add_int(x, "priority", prio[i]);
		json_object_array_add(o.order, x);
	}
	rc = keys_tx(req, reorder_in_tx, &o, &o.why, &db_rc);
	json_object_put(o.order);
	if (rc != KR_KEYS_OK) {
		snprintf(field, sizeof(field), "keys[%zu].id", o.bad);
		keys_error(resp, rc, db_rc, field);
		return;
	}
	answer_keys(req, resp, NULL, 200);
}

/* The deletion, its audit entry and its event {"key": {"id", "deleted": true}}. */
static enum kr_db_err
delete_in_tx(struct kr_db *db, void *arg)
{
	struct key_tx *t = arg;
	enum kr_db_err rc, db_rc = KR_DB_OK;
	json_object *k;

	if ((rc = keys_step(kr_keys_delete(db, t->req->p.ws.id, t->id, &db_rc), db_rc,
	    &t->why)) != KR_DB_OK ||
	    (rc = audit_key(t->req, "key.deleted", t->id, NULL)) != KR_DB_OK)
		return rc;
	k = json_object_new_object();
	kr_json_add_str(k, "id", t->id);
	kr_json_add_bool(k, "deleted", 1);
	rc = key_event(t->req, k);
	json_object_put(k);
	return rc;
}

void
h_keys_delete(struct kr_req *req, struct kr_resp *resp)
{
	struct key_tx t = { .req = req, .id = req->params[1] };
	enum kr_db_err db_rc;
	enum kr_keys_err rc;

	if ((rc = keys_tx(req, delete_in_tx, &t, &t.why, &db_rc)) != KR_KEYS_OK) {
		keys_error(resp, rc, db_rc, NULL);
		return;
	}
	resp_no_content(resp);
}
