/*
 * kr_settings: a workspace's provider settings (primary, fallback chain, model and base URL
 * per provider, system keys allowed) and the effective primary derived from its keys.
 */
#ifndef KR_SETTINGS_H
#define KR_SETTINGS_H

#include <json-c/json.h>

#include "kr_db.h"
#include "kr_keys.h"
#include "kr_providers.h"

#define KR_MODEL_MAX	128
#define KR_URL_MAX	512

struct kr_settings {
	const struct kr_provider *primary;		/* NULL: none chosen */
	const struct kr_provider *chain[KR_PROV__MAX];
	unsigned		 nchain;
	char			 models[KR_PROV__MAX][KR_MODEL_MAX + 1];	/* "" = default */
	char			 base_urls[KR_PROV__MAX][KR_URL_MAX + 1];	/* "" = none */
	int			 allow_system_keys;
	char			 updated_at[KR_TIME_MAX];
};

/* The stored settings, or the defaults (nothing chosen) when none are stored. */
enum kr_db_err	kr_settings_get(struct kr_db *db, const char *ws_id, struct kr_settings *s);
/*
 * Store s (one statement). Call it inside the transaction that also appends the change's
 * audit entry and its settings_changed event, so that they commit together.
 */
enum kr_db_err	kr_settings_put(struct kr_db *db, const char *ws_id, const struct kr_settings *s);

/* 1 when the instance environment holds a key for p (p->env_var set and not empty). */
int		kr_system_key_available(const struct kr_provider *p);
/*
 * 1 when p can be called now: it has a model, and a usable stored key with a base URL for
 * it, or (when allowed) a system key with the instance's base URL.
 */
int		kr_provider_usable(const struct kr_config *cfg, const struct kr_settings *s,
		    const struct kr_key_counts *c, const struct kr_provider *p);
/*
 * The provider jobs use when none is requested: the primary when usable, else the first
 * usable provider of the chain, else (no primary chosen) the first usable provider of the
 * registry; NULL when nothing is usable. Deleting or disabling the primary's last key thus
 * never leaves the workspace pointing at a provider without keys, nor does a provider
 * without a model or base URL (openai_compatible before both are set) count as usable.
 */
const struct kr_provider *kr_settings_effective_primary(const struct kr_config *cfg,
		    const struct kr_settings *s, const struct kr_key_counts *c);
/* The model for p: the workspace's choice or the provider's default (may be NULL). */
const char	*kr_settings_model(const struct kr_settings *s, const struct kr_provider *p);

#endif
