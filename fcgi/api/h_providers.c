/*
 * /api/workspaces/{ws}/providers: the provider registry as this workspace sees it, and its
 * settings (primary, fallback chain, models, base URLs, system keys allowed).
 */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "kr_audit.h"
#include "kr_events.h"
#include "kr_json.h"
#include "kr_settings.h"

static json_object *
view_settings(const struct kr_settings *s)
{
	json_object *o = json_object_new_object(), *chain = json_object_new_array();
	json_object *models = json_object_new_object(), *urls = json_object_new_object();

	kr_json_add_str(o, "primary", s->primary != NULL ? s->primary->slug : NULL);
	for (unsigned i = 0; i < s->nchain; i++)
		json_object_array_add(chain, json_object_new_string(s->chain[i]->slug));
	json_object_object_add(o, "fallbackChain", chain);
	for (unsigned i = 0; i < KR_PROV__MAX; i++) {
		if (s->models[i][0] != '\0')
			kr_json_add_str(models, kr_provider_get(i)->slug, s->models[i]);
		if (s->base_urls[i][0] != '\0')
			kr_json_add_str(urls, kr_provider_get(i)->slug, s->base_urls[i]);
	}
	json_object_object_add(o, "models", models);
	json_object_object_add(o, "baseUrls", urls);
	kr_json_add_bool(o, "allowSystemKeys", s->allow_system_keys);
	return o;
}

static json_object *
view_provider(const struct kr_settings *s, const struct kr_key_counts *c,
    const struct kr_provider *p)
{
	json_object *o = json_object_new_object();

	kr_json_add_str(o, "id", p->slug);
	kr_json_add_str(o, "name", p->name);
	kr_json_add_str(o, "protocol", kr_protocol_name(p->protocol));
	kr_json_add_str(o, "defaultModel", p->default_model);
	kr_json_add_str(o, "model", kr_settings_model(s, p));
	kr_json_add_int(o, "keyCount", c->total[p->id]);
	kr_json_add_int(o, "usableKeyCount", c->usable[p->id]);
	kr_json_add_bool(o, "systemKeyAvailable", kr_system_key_available(p));
	return o;
}

static void
answer_settings(struct kr_req *req, struct kr_resp *resp)
{
	const struct kr_provider *eff;
	struct kr_key_counts counts;
	struct kr_settings s;
	enum kr_db_err rc;
	json_object *o, *a;

	if ((rc = kr_settings_get(req->db, req->p.ws.id, &s)) != KR_DB_OK ||
	    (rc = kr_keys_count(req->db, req->p.ws.id, &counts)) != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	o = view_settings(&s);
	eff = kr_settings_effective_primary(req->cfg, &s, &counts);
	kr_json_add_str(o, "effectivePrimary", eff != NULL ? eff->slug : NULL);
	a = json_object_new_array();
	for (unsigned i = 0; i < KR_PROV__MAX; i++)
		json_object_array_add(a, view_provider(&s, &counts, kr_provider_get(i)));
	json_object_object_add(o, "providers", a);
	resp_json(resp, 200, o);
}

void
h_providers_get(struct kr_req *req, struct kr_resp *resp)
{
	answer_settings(req, resp);
}

/* A provider id from v; NULL after answering 422 naming field. */
static const struct kr_provider *
provider_at(struct kr_resp *resp, json_object *v, const char *field)
{
	const struct kr_provider *p = NULL;

	if (json_object_is_type(v, json_type_string))
		p = kr_provider_find(json_object_get_string(v));
	if (p == NULL)
		resp_error(resp, 422, field, "%s must be one of anthropic, openai, google, zai, "
		    "moonshot, openai_compatible", field);
	return p;
}

static int
read_primary(struct kr_req *req, struct kr_resp *resp, struct kr_settings *s)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(req->json, "primary", &v))
		return 0;
	s->primary = NULL;
	return v == NULL || (s->primary = provider_at(resp, v, "primary")) != NULL ? 0 : -1;
}

static int
read_chain(struct kr_req *req, struct kr_resp *resp, struct kr_settings *s)
{
	json_object *a = NULL;
	char field[48];

	if (!json_object_object_get_ex(req->json, "fallbackChain", &a) || a == NULL)
		return 0;		/* null: as if left out (primary's null clears it) */
	if (!json_object_is_type(a, json_type_array) ||
	    json_object_array_length(a) > KR_PROV__MAX) {
		resp_error(resp, 422, "fallbackChain", "fallbackChain must be a list of at most %d "
		    "provider ids", KR_PROV__MAX);
		return -1;
	}
	s->nchain = 0;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		snprintf(field, sizeof(field), "fallbackChain[%zu]", i);
		if ((s->chain[i] = provider_at(resp, json_object_array_get_idx(a, i), field)) ==
		    NULL)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (s->chain[j] == s->chain[i]) {
				resp_error(resp, 422, field, "%s appears twice in the chain",
				    s->chain[i]->slug);
				return -1;
			}
		s->nchain = (unsigned)i + 1;
	}
	return 0;
}

/* models or baseUrls: {"provider": "value" | null}; check(value) says why it is wrong. */
static int
read_map(struct kr_req *req, struct kr_resp *resp, const char *name, char *table,
    size_t width, const char *(*check)(const struct kr_req *, const char *))
{
	json_object *o = NULL;
	char field[64];
	const char *why;

	if (!json_object_object_get_ex(req->json, name, &o) || o == NULL)
		return 0;		/* null: as if left out */
	if (!json_object_is_type(o, json_type_object)) {
		resp_error(resp, 422, name, "%s must be an object keyed by provider id", name);
		return -1;
	}
	json_object_object_foreach(o, k, v) {
		const struct kr_provider *p = kr_provider_find(k);
		snprintf(field, sizeof(field), "%s.%.32s", name, k);
		if (p == NULL) {
			resp_error(resp, 422, field, "unknown provider \"%.32s\"", k);
			return -1;
		}
		if (v == NULL) {
			table[(size_t)p->id * width] = '\0';
			continue;
		}
		if (!json_object_is_type(v, json_type_string) ||
		    (size_t)json_object_get_string_len(v) >= width ||
		    (why = check(req, json_object_get_string(v))) != NULL) {
			resp_error(resp, 422, field, "%s: %s", field, json_object_is_type(v,
			    json_type_string) && (size_t)json_object_get_string_len(v) < width ?
			    why : "must be a string of reasonable length, or null");
			return -1;
		}
		snprintf(table + (size_t)p->id * width, width, "%s", json_object_get_string(v));
	}
	return 0;
}

static const char *
check_model(const struct kr_req *req, const char *v)
{
	const unsigned char *c = (const unsigned char *)v;

	(void)req;
	while (*c > ' ' && *c < 0x7f && strchr("/?#", *c) == NULL)
		c++;
	return *c != '\0' || *v == '\0' ?
	    "a model id is printable ASCII without spaces, '/', '?' or '#'" : NULL;
}

static const char *
check_url(const struct kr_req *req, const char *v)
{
	if (!kr_base_url_allowed(req->cfg, v))
		return "the base URL's origin must be in the instance's base URL allowlist";
	return NULL;
}

/* PUT as a kr_db_tx body's argument. */
struct put_tx {
	struct kr_req	*req;
	struct kr_resp	*resp;
	int		 refused;	/* the body answered 422 */
};

/* The request's changes applied to s; -1 once it answered 422. */
static int
merge(struct kr_req *req, struct kr_resp *resp, struct kr_settings *s)
{
	if (read_primary(req, resp, s) != 0 || read_chain(req, resp, s) != 0 ||
	    read_map(req, resp, "models", &s->models[0][0], sizeof(s->models[0]),
	    check_model) != 0 || read_map(req, resp, "baseUrls", &s->base_urls[0][0],
	    sizeof(s->base_urls[0]), check_url) != 0 ||
	    req_bool(req, resp, "allowSystemKeys", 0, &s->allow_system_keys) != 0)
		return -1;
	for (unsigned i = 0; s->primary != NULL && i < s->nchain; i++)
		if (s->chain[i] == s->primary) {
			resp_error(resp, 422, "fallbackChain", "the primary provider (%s) cannot also "
			    "be in the fallback chain", s->primary->slug);
			return -1;
		}
	return 0;
}

/*
 * Read the settings under the workspace's lock, apply the request, store them with their
 * audit entry and their settings_changed event {"settings": view}: one transaction, so a
 * concurrent PUT is never lost and all of it commits together or not at all.
 */
static enum kr_db_err
put_in_tx(struct kr_db *db, void *arg)
{
	struct put_tx *t = arg;
	struct kr_actor a = req_actor(t->req);
	const char *ws = t->req->p.ws.id;
	struct kr_settings s;
	json_object *view, *e;
	enum kr_db_err rc;

	if ((rc = kr_ws_lock(db, ws)) != KR_DB_OK ||
	    (rc = kr_settings_get(db, ws, &s)) != KR_DB_OK)
		return rc;
	if (merge(t->req, t->resp, &s) != 0) {
		t->refused = 1;
		return KR_DB_ABORT;
	}
	view = view_settings(&s);
	if ((rc = kr_settings_put(db, ws, &s)) == KR_DB_OK &&
	    (rc = kr_audit(db, ws, &a, "settings.changed", NULL, view)) == KR_DB_OK) {
		e = json_object_new_object();
		json_object_object_add(e, "settings", json_object_get(view));
		rc = kr_event_append(db, ws, "settings_changed", e, NULL);
		json_object_put(e);
	}
	json_object_put(view);
	return rc;
}

void
h_providers_put(struct kr_req *req, struct kr_resp *resp)
{
	struct put_tx t = { req, resp, 0 };
	enum kr_db_err rc = kr_db_tx(req->db, put_in_tx, &t, 0);

	if (t.refused)
		return;
	if (rc != KR_DB_OK) {
		resp_db_error(resp, rc);
		return;
	}
	answer_settings(req, resp);
}
