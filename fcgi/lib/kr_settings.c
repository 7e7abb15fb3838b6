#include "kr_settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kr_keys.h"

#define N(a)	((unsigned)(sizeof(a) / sizeof((a)[0])))

static const char sql_get[] =
    "SELECT primary_provider, fallback_chain, models, base_urls, allow_system_keys, updated_at "
    "FROM provider_settings WHERE workspace_id = ?";
static const char sql_put[] =
    "INSERT INTO provider_settings (workspace_id, primary_provider, fallback_chain, models, "
    "base_urls, allow_system_keys) VALUES (?,?,?,?,?,?) ON DUPLICATE KEY UPDATE "
    "primary_provider = VALUES(primary_provider), fallback_chain = VALUES(fallback_chain), "
    "models = VALUES(models), base_urls = VALUES(base_urls), "
    "allow_system_keys = VALUES(allow_system_keys), updated_at = NOW(3)";

/* Read a stored {"provider": "text"} object into table (unknown providers ignored). */
static void
read_map(const char *json, char *table, size_t width)
{
	json_object *o = json != NULL ? json_tokener_parse(json) : NULL;

	if (o != NULL && json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v) {
			const struct kr_provider *p = kr_provider_find(k);
			if (p != NULL && json_object_is_type(v, json_type_string))
				snprintf(table + (size_t)p->id * width, width, "%s",
				    json_object_get_string(v));
		}
	}
	json_object_put(o);
}

static void
read_chain(const char *json, struct kr_settings *s)
{
	json_object *a = json != NULL ? json_tokener_parse(json) : NULL;

	if (a != NULL && json_object_is_type(a, json_type_array))
		for (size_t i = 0; i < json_object_array_length(a) && s->nchain < KR_PROV__MAX;
		    i++) {
			const struct kr_provider *p = kr_provider_find(
			    json_object_get_string(json_object_array_get_idx(a, i)));
			if (p != NULL)
				s->chain[s->nchain++] = p;
		}
	json_object_put(a);
}

enum kr_db_err
kr_settings_get(struct kr_db *db, const char *ws_id, struct kr_settings *s)
{
	struct kr_dbp p[1] = { KR_P_STR(ws_id) };
	struct kr_db_res res;
	enum kr_db_err rc;

	memset(s, 0, sizeof(*s));
	if ((rc = kr_db_exec(db, sql_get, p, 1, &res, NULL)) != KR_DB_OK)
		return rc;
	if (res.nrows == 1) {
		s->primary = kr_provider_find(kr_db_cell(&res, 0, 0));
		read_chain(kr_db_cell(&res, 0, 1), s);
		read_map(kr_db_cell(&res, 0, 2), &s->models[0][0], sizeof(s->models[0]));
		read_map(kr_db_cell(&res, 0, 3), &s->base_urls[0][0], sizeof(s->base_urls[0]));
		s->allow_system_keys = kr_db_cell_int(&res, 0, 4, 0) != 0;
		snprintf(s->updated_at, sizeof(s->updated_at), "%s", kr_db_cell(&res, 0, 5));
	}
	kr_db_res_free(&res);
	return KR_DB_OK;
}

/* {"provider": "text"} for the non-empty entries of a table. */
static json_object *
write_map(const char *table, size_t width)
{
	json_object *o = json_object_new_object();

	for (unsigned i = 0; i < KR_PROV__MAX; i++) {
		const char *v = table + (size_t)i * width;
		if (*v != '\0')
			json_object_object_add(o, kr_provider_get(i)->slug,
			    json_object_new_string(v));
	}
	return o;
}

enum kr_db_err
kr_settings_put(struct kr_db *db, const char *ws_id, const struct kr_settings *s)
{
	json_object *chain = json_object_new_array();
	json_object *models = write_map((const char *)s->models, sizeof(s->models[0]));
	json_object *urls = write_map((const char *)s->base_urls, sizeof(s->base_urls[0]));
	enum kr_db_err rc;

	for (unsigned i = 0; i < s->nchain; i++)
		json_object_array_add(chain, json_object_new_string(s->chain[i]->slug));
	{
		struct kr_dbp p[6] = {
			KR_P_STR(ws_id), KR_P_STR(s->primary != NULL ? s->primary->slug : NULL),
			KR_P_STR(json_object_to_json_string_ext(chain, JSON_C_TO_STRING_PLAIN)),
			KR_P_STR(json_object_to_json_string_ext(models, JSON_C_TO_STRING_PLAIN)),
			KR_P_STR(json_object_to_json_string_ext(urls, JSON_C_TO_STRING_PLAIN)),
			KR_P_INT(s->allow_system_keys ? 1 : 0),
		};
		rc = kr_db_exec(db, sql_put, p, N(p), NULL, NULL);
	}
	json_object_put(chain);
	json_object_put(models);
	json_object_put(urls);
	return rc;
}

int
kr_system_key_available(const struct kr_provider *p)
{
	const char *v = p->env_var != NULL ? getenv(p->env_var) : NULL, *b;
	size_t len;

	return kr_key_list_next(&v, &b, &len);
}

int
kr_provider_usable(const struct kr_config *cfg, const struct kr_settings *s,
    const struct kr_key_counts *c, const struct kr_provider *p)
{
	if (kr_settings_model(s, p) == NULL)
		return 0;
	/* The workspace's keys go to its base URL, system keys only to the instance's. */
	return (c->usable[p->id] > 0 &&
	    kr_provider_base_url(cfg, p, s->base_urls[p->id]) != NULL) ||
	    (s->allow_system_keys && kr_system_key_available(p) &&
	    kr_provider_base_url(cfg, p, NULL) != NULL);
}

const struct kr_provider *
kr_settings_effective_primary(const struct kr_config *cfg, const struct kr_settings *s,
    const struct kr_key_counts *c)
{
	if (s->primary != NULL && kr_provider_usable(cfg, s, c, s->primary))
		return s->primary;
	for (unsigned i = 0; i < s->nchain; i++)
		if (kr_provider_usable(cfg, s, c, s->chain[i]))
			return s->chain[i];
	if (s->primary == NULL)
		for (unsigned i = 0; i < KR_PROV__MAX; i++)
			if (kr_provider_usable(cfg, s, c, kr_provider_get(i)))
				return kr_provider_get(i);
	return NULL;
}

const char *
kr_settings_model(const struct kr_settings *s, const struct kr_provider *p)
{
	return s->models[p->id][0] != '\0' ? s->models[p->id] : p->default_model;
}
