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
#include "h_keys_int.h"

/* The key as this connection sees it now into *out; NULL when it is not in the workspace. */
enum kr_db_err
hkeys_now(struct kr_req *req, const char *id, json_object **out)
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
void
hkeys_error(struct kr_resp *resp, enum kr_keys_err rc, enum kr_db_err db_rc, const char *field)
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
enum kr_db_err
hkeys_audit(struct kr_req *req, const char *action, const char *id, json_object *detail)
{
	struct kr_actor a = req_actor(req);

	return kr_audit(req->db, req->p.ws.id, &a, action, id, detail);
}

/* key_status_changed with payload {"key": key}, in the change's transaction. key is the key
 * object of the answers (masked: it never holds the secret); it is not consumed. */
enum kr_db_err
hkeys_event(struct kr_req *req, json_object *key)
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
enum kr_db_err
hkeys_step(enum kr_keys_err rc, enum kr_db_err db_rc, enum kr_keys_err *why)
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
 * gave up (*why), or KR_KEYS_DB with *db_rc, for hkeys_error.
 */
enum kr_keys_err
hkeys_tx(struct kr_req *req, enum kr_db_err (*body)(struct kr_db *, void *), void *arg,
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
	if ((rc = hkeys_now(t->req, t->id, &t->key)) != KR_DB_OK)
		return rc;
	if (t->key == NULL) {
		t->why = KR_KEYS_NOTFOUND;
		return KR_DB_ABORT;
	}
	return hkeys_event(t->req, t->key);
}

/* Answer the key row id (404 when it is not in this workspace). */
static void
answer_key(struct kr_req *req, struct kr_resp *resp, const char *id)
{
	json_object *k;
	enum kr_db_err rc;

	if ((rc = hkeys_now(req, id, &k)) != KR_DB_OK)
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

/*
 * Paged like every list (?limit, ?before=nextCursor), in the list's own order (provider,
 * then priority): a cursor is the last key of a page.
 */
void
h_keys_list(struct kr_req *req, struct kr_resp *resp)
{
	static const struct kr_list keys = { "keys", "a key", kr_keys_view };
	char buf[40];
	const char *provider = req_query(req, "provider", buf, sizeof(buf));
	struct kr_page pg;
	struct kr_db_res res;
	enum kr_db_err rc;
	int found = 0;

	if (provider != NULL && kr_provider_find(provider) == NULL) {
		resp_error(resp, 422, "provider", "unknown provider");
		return;
	}
	if (req_page(req, resp, &pg) != 0)
		return;
	rc = kr_keys_page(req->db, req->p.ws.id, provider, pg.before, pg.limit + 1, &res,
	    &found);
	resp_page(resp, &keys, &pg, rc, &res, found);
}

/* The base URL to test keys of p against, or NULL after answering 422. */
const char *
hkeys_test_url(struct kr_req *req, struct kr_resp *resp, const struct kr_provider *p,
    struct kr_settings *s)
{
	enum kr_db_err rc;
	const char *url;

	if ((rc = kr_settings_get(req->db, req->p.ws.id, s)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return NULL;
	}
	if ((url = kr_provider_base_url(req->cfg, p, s->base_urls[p->id])) != NULL)
		return url;
	if (s->base_urls[p->id][0] != '\0')
		resp_error(resp, 422, "provider", "the base URL set for %s is no longer in the "
		    "instance's base URL allowlist: set another in the provider settings",
		    p->slug);
	else
		resp_error(resp, 422, "provider", "set a base URL for %s in the provider settings "
		    "first", p->slug);
	return NULL;
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
	if ((rc = hkeys_now(t->req, t->id, &t->key)) != KR_DB_OK)
		return rc;
	if (t->key == NULL)	/* deleted while the provider answered */
		return KR_DB_ABORT;
	if (stale == KR_DB_ABORT) {	/* rotated meanwhile: the outcome is the old secret's */
		t->rotated = 1;
		return KR_DB_ABORT;
	}
	if (changed && (rc = hkeys_event(t->req, t->key)) != KR_DB_OK)
		return rc;
	d = json_object_new_object();
	kr_json_add_str(d, "outcome", kr_llm_class_name(r->cls));
	json_object_object_add(d, "status", json_object_get(json_object_object_get(t->key,
	    "status")));
	if (r->cls != KR_LLM_OK)
		kr_json_add_str(d, "error", r->message);
	rc = hkeys_audit(t->req, "key.tested", t->id, d);
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
	if ((url = hkeys_test_url(req, resp, p, &s)) == NULL)
		return;
	if ((rc = kr_keys_secret(req->db, req->p.ws.id, id, &secret, &len, t.fingerprint,
	    &db_rc)) != KR_KEYS_OK) {
		hkeys_error(resp, rc, db_rc, NULL);
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

/* priority: absent (untouched) or 0 to 1000000. -1 after 422. */
static int
req_priority(struct kr_req *req, struct kr_resp *resp, struct kr_key_patch *k)
{
	long long priority = 0;

	switch (kr_json_int(req->json, "priority", &priority)) {
	case KR_JSON_TYPE:
		resp_error(resp, 422, "priority", "priority must be a whole number");
		return -1;
	case KR_JSON_OK:
		if (priority < 0 || priority > 1000000) {
			resp_error(resp, 422, "priority", "priority must be >= 0 and <= 1000000");
			return -1;
		}
		k->has_priority = 1;
		k->priority = (unsigned)priority;
		break;
	case KR_JSON_ABSENT:
		break;
	}
	return 0;
}

/* The PATCH, its audit entry and its event. */
static enum kr_db_err
update_in_tx(struct kr_db *db, void *arg)
{
	struct key_tx *t = arg;
	enum kr_db_err rc, db_rc = KR_DB_OK;

	if ((rc = hkeys_step(kr_keys_update(db, t->req->p.ws.id, t->id, t->patch, &db_rc), db_rc,
	    &t->why)) != KR_DB_OK ||
	    (rc = hkeys_audit(t->req, "key.updated", t->id, t->detail)) != KR_DB_OK)
		return rc;
	return key_changed(t);
}

void
h_keys_update(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1];
	struct key_tx t = { .req = req, .id = id };
	struct kr_key_patch k = { 0 };
	struct hkeys_entries name = { .n = 0 };
	char expires[KR_TIME_MAX];
	enum kr_db_err db_rc;
	enum kr_keys_err rc;

	if (req_str(req, resp, "name", 0, 1, KR_NAME_MAX, &k.name) != 0 ||
	    req_bool(req, resp, "isEnabled", 0, &k.enabled) != 0 ||
	    req_expires(req, resp, &k, expires) != 0)
		return;
	k.has_name = k.name != NULL;
	k.has_enabled = json_object_object_get_ex(req->json, "isEnabled", NULL) &&
	    json_object_object_get(req->json, "isEnabled") != NULL;
	if (req_priority(req, resp, &k) != 0)
		return;
	if (!k.has_name && !k.has_priority && !k.has_enabled && !k.has_expires) {
		answer_key(req, resp, id);	/* nothing to change: nothing written */
		return;
	}
	/* Trimmed, as POST trims its names. */
	if (k.has_name && hkeys_entries_add(&name, k.name, strlen(k.name)) != 0) {
		resp_error(resp, 500, NULL, "internal error");
		return;
	}
	if (k.has_name && name.len[0] == 0) {
		resp_error(resp, 422, "name", "name must not be blank");
		hkeys_entries_release(&name);
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
	rc = hkeys_tx(req, update_in_tx, &t, &t.why, &db_rc);
	json_object_put(t.detail);
	hkeys_entries_release(&name);
	if (rc != KR_KEYS_OK) {
		json_object_put(t.key);
		hkeys_error(resp, rc, db_rc, NULL);
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

	if ((rc = hkeys_step(kr_keys_rotate(db, t->req->p.ws.id, t->id, t->secret, t->len,
	    &db_rc), db_rc, &t->why)) != KR_DB_OK ||
	    (rc = hkeys_audit(t->req, "key.rotated", t->id, NULL)) != KR_DB_OK)
		return rc;
	return key_changed(t);
}

void
h_keys_rotate(struct kr_req *req, struct kr_resp *resp)
{
	const char *id = req->params[1], *secret = NULL, *why;
	struct key_tx t = { .req = req, .id = id };
	const struct kr_provider *p = NULL;
	struct hkeys_entries e = { .n = 0 };
	enum kr_db_err db_rc;
	enum kr_keys_err rc;

	if (req_str(req, resp, "key", 1, 1, KR_KEY_SECRET_MAX, &secret) != 0)
		return;
	if ((p = key_provider(req, resp, id)) == NULL)
		return;
	if (hkeys_entries_add(&e, secret, strlen(secret)) != 0) {
		resp_error(resp, 500, NULL, "internal error");
		return;
	}
	t.secret = e.v[0];
	t.len = e.len[0];
	if ((why = kr_key_format_error(p, e.v[0], e.len[0])) != NULL)
		resp_error(resp, 422, "key", "%s", why);
	else if ((rc = hkeys_tx(req, rotate_in_tx, &t, &t.why, &db_rc)) != KR_KEYS_OK)
		hkeys_error(resp, rc, db_rc, rc == KR_KEYS_DUPLICATE ? "key" : NULL);
	else {
		resp_json(resp, 200, t.key);
		t.key = NULL;
	}
	json_object_put(t.key);
	hkeys_entries_release(&e);
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

	if ((rc = hkeys_step(kr_keys_reorder(db, o->req->p.ws.id, o->ids, o->prio, o->n, &o->bad,
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
	rc = hkeys_audit(o->req, "key.reordered", NULL, d);
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
	rc = hkeys_tx(req, reorder_in_tx, &o, &o.why, &db_rc);
	json_object_put(o.order);
	if (rc != KR_KEYS_OK) {
		snprintf(field, sizeof(field), "keys[%zu].id", o.bad);
		hkeys_error(resp, rc, db_rc, field);
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

	if ((rc = hkeys_step(kr_keys_delete(db, t->req->p.ws.id, t->id, &db_rc), db_rc,
	    &t->why)) != KR_DB_OK ||
	    (rc = hkeys_audit(t->req, "key.deleted", t->id, NULL)) != KR_DB_OK)
		return rc;
	k = json_object_new_object();
	kr_json_add_str(k, "id", t->id);
	kr_json_add_bool(k, "deleted", 1);
	rc = hkeys_event(t->req, k);
	json_object_put(k);
	return rc;
}

void
h_keys_delete(struct kr_req *req, struct kr_resp *resp)
{
	struct key_tx t = { .req = req, .id = req->params[1] };
	enum kr_db_err db_rc;
	enum kr_keys_err rc;

	if ((rc = hkeys_tx(req, delete_in_tx, &t, &t.why, &db_rc)) != KR_KEYS_OK) {
		hkeys_error(resp, rc, db_rc, NULL);
		return;
	}
	resp_no_content(resp);
}
