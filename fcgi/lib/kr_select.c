#include "kr_select.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kr_crypto.h"

/*
 * Every key that may be used now or after its cooldown, in priority order, in one query:
 * columns id, provider, cooling, cooldown_until, clean, use_stale.
 */
static const char sql_usable[] =
    "SELECT id, provider, (cooldown_until IS NOT NULL AND cooldown_until > NOW(3)), "
    "cooldown_until, (status = 'valid' AND consecutive_failures = 0), "
    "(last_used_at IS NULL OR last_used_at < NOW(3) - INTERVAL 10 SECOND), fingerprint "
    "FROM provider_keys WHERE workspace_id = ? AND is_enabled = 1 "
    "AND status IN ('untested', 'valid') AND (expires_at IS NULL OR expires_at > NOW(3)) "
    "ORDER BY priority, created_at, id";

enum { U_ID, U_PROVIDER, U_COOLING, U_COOLDOWN, U_CLEAN, U_STALE, U_FINGERPRINT };

/* The providers to try, in order, without repeats. Returns how many. */
static unsigned
provider_order(const struct kr_config *cfg, const struct kr_settings *s,
    const struct kr_key_counts *counts, const struct kr_provider *requested,
    const struct kr_provider *out[KR_PROV__MAX])
{
	const struct kr_provider *first = requested;
	unsigned n = 0;

	if (first == NULL)
		first = s->primary != NULL ? s->primary : kr_settings_effective_primary(cfg, s,
		    counts);
	if (first != NULL)
		out[n++] = first;
	for (unsigned i = 0; i < s->nchain; i++) {
		unsigned j;
		for (j = 0; j < n && out[j] != s->chain[i]; j++)
			;
		if (j == n)
			out[n++] = s->chain[i];
	}
	return n;
}

static struct kr_candidate *
push(struct kr_candidates *c, size_t *cap)
{
	if (c->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct kr_candidate *v = reallocarray(c->v, ncap, sizeof(*v));
		if (v == NULL)
			return NULL;
		c->v = v;
		*cap = ncap;
	}
	memset(&c->v[c->n], 0, sizeof(c->v[0]));
	return &c->v[c->n++];
}

/*
 * Fill the provider-level fields of a candidate; -1 when p cannot be called here. A
 * workspace's own base URL is for its own keys: the instance's system keys go only where
 * the instance's configuration (or the provider's default) says, or a workspace admin
 * could send them to a server of their choosing.
 */
static int
describe(struct kr_candidate *k, const struct kr_config *cfg, const struct kr_settings *s,
    const struct kr_provider *p, int fallback, int system_key)
{
	const char *url = kr_provider_base_url(cfg, p, system_key ? NULL : s->base_urls[p->id]);
	const char *model = kr_settings_model(s, p);

	if (url == NULL || model == NULL)
		return -1;
	k->prov = p;
	k->is_fallback = fallback;
	snprintf(k->model, sizeof(k->model), "%s", model);
	snprintf(k->base_url, sizeof(k->base_url), "%s", url);
	return 0;
}

/* Number of entries of p's environment list (kr_key_list_next). */
static unsigned
env_count(const struct kr_provider *p)
{
	const char *v = p->env_var != NULL ? getenv(p->env_var) : NULL, *b;
	unsigned n = 0;
	size_t len;

	while (kr_key_list_next(&v, &b, &len))
		n++;
	return n;
}

static int
add_candidates(struct kr_candidates *out, size_t *cap, const struct kr_config *cfg,
    const struct kr_settings *s, const struct kr_provider *const order[], unsigned norder,
    const struct kr_db_res *keys)
{
	struct kr_candidate *k;

	for (unsigned i = 0; i < norder; i++)
		for (unsigned r = 0; r < keys->nrows; r++) {
			if (strcmp(kr_db_cell(keys, r, U_PROVIDER), order[i]->slug) != 0 ||
			    kr_db_cell_int(keys, r, U_COOLING, 0) != 0)
				continue;
			if ((k = push(out, cap)) == NULL)
				return -1;
			if (describe(k, cfg, s, order[i], i > 0, 0) != 0) {
				out->n--;
				break;
			}
			snprintf(k->key_id, sizeof(k->key_id), "%s", kr_db_cell(keys, r, U_ID));
			snprintf(k->fingerprint, sizeof(k->fingerprint), "%s",
			    kr_db_cell(keys, r, U_FINGERPRINT));
			k->clean = kr_db_cell_int(keys, r, U_CLEAN, 0) != 0;
			k->use_stale = kr_db_cell_int(keys, r, U_STALE, 1) != 0;
		}
	for (unsigned i = 0; s->allow_system_keys && i < norder; i++)
		for (unsigned e = 0; e < env_count(order[i]); e++) {
			if ((k = push(out, cap)) == NULL)
				return -1;
			if (describe(k, cfg, s, order[i], i > 0, 1) != 0) {
				out->n--;
				break;
			}
			k->system_index = e;
		}
	return 0;
}

/* The earliest cooldown end among the providers of the order ("" when none cools). */
static void
earliest_cooldown(const struct kr_db_res *keys, const struct kr_provider *const order[],
    unsigned norder, char out[KR_TIME_MAX])
{
	const char *best = NULL;

	for (unsigned r = 0; r < keys->nrows; r++)
		for (unsigned i = 0; i < norder; i++) {
			const char *t = kr_db_cell(keys, r, U_COOLDOWN);
			if (kr_db_cell_int(keys, r, U_COOLING, 0) != 0 &&
			    strcmp(kr_db_cell(keys, r, U_PROVIDER), order[i]->slug) == 0 &&
			    t != NULL && (best == NULL || strcmp(t, best) < 0))
				best = t;	/* DATETIME text sorts like time */
		}
	out[0] = '\0';
	if (best != NULL)
		kr_time_from_db(best, out);
}

enum kr_db_err
kr_select_candidates(struct kr_db *db, const struct kr_config *cfg, const char *ws_id,
    const struct kr_provider *requested, struct kr_candidates *out)
{
	const struct kr_provider *order[KR_PROV__MAX];
	struct kr_dbp p[1] = { KR_P_STR(ws_id) };
	struct kr_key_counts counts;
	struct kr_db_res keys;
	struct kr_settings s;
	enum kr_db_err rc;
	size_t cap = 0;
	unsigned norder;

	memset(out, 0, sizeof(*out));
	if ((rc = kr_settings_get(db, ws_id, &s)) != KR_DB_OK ||
	    (rc = kr_db_exec(db, sql_usable, p, 1, &keys, NULL)) != KR_DB_OK)
		return rc;
	/* Usable per provider as kr_keys_count counts them (cooling keys included). */
	memset(&counts, 0, sizeof(counts));
	for (unsigned r = 0; r < keys.nrows; r++) {
		const struct kr_provider *pv = kr_provider_find(kr_db_cell(&keys, r, U_PROVIDER));
		if (pv != NULL)
			counts.total[pv->id]++, counts.usable[pv->id]++;
	}
	norder = provider_order(cfg, &s, &counts, requested, order);
	if (add_candidates(out, &cap, cfg, &s, order, norder, &keys) != 0)
		rc = KR_DB_ERROR;
	earliest_cooldown(&keys, order, norder, out->earliest_cooldown);
	kr_db_res_free(&keys);
	if (rc != KR_DB_OK)
		kr_candidates_release(out);
	return rc;
}

void
kr_candidates_release(struct kr_candidates *c)
{
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/* Entry idx of p's environment list (kr_key_list_next), copied into a new string. */
static int
env_secret(const struct kr_provider *p, unsigned idx, char **secret, size_t *len)
{
	const char *v = p->env_var != NULL ? getenv(p->env_var) : NULL, *b;
	unsigned n = 0;

	while (kr_key_list_next(&v, &b, len))
		if (n++ == idx)
			return (*secret = strndup(b, *len)) != NULL ? 0 : -1;
	return -1;
}

int
kr_select_secret(struct kr_db *db, const char *ws_id, const struct kr_candidate *c,
    char **secret, size_t *len)
{
	enum kr_db_err db_rc;

	*secret = NULL;
	if (c->key_id[0] == '\0')
		return env_secret(c->prov, c->system_index, secret, len);
	return kr_keys_secret(db, ws_id, c->key_id, secret, len, NULL, &db_rc) == KR_KEYS_OK ?
	    0 : -1;
}
