/*
 * kr_select: which key to use for the next attempt (design.md, "Key selection").
 *
 * Read fresh from the database every time, so a key added, rotated, disabled or deleted is
 * used or dropped by the very next attempt, with no restart and no cache. (The runner makes
 * one read for first attempts that start within 20 ms of each other: see runner.h.)
 */
#ifndef KR_SELECT_H
#define KR_SELECT_H

#include <stddef.h>

#include "kr_db.h"
#include "kr_settings.h"

struct kr_candidate {
	const struct kr_provider *prov;
	char		key_id[KR_UUID_MAX];	/* "" for a system key */
	char		fingerprint[KR_KEY_FINGERPRINT_MAX];	/* the secret's, when selected */
	unsigned	system_index;		/* which entry of the environment's list */
	int		is_fallback;		/* not the first provider of the order */
	char		model[KR_MODEL_MAX + 1];
	char		base_url[KR_URL_MAX + 1];
	int		clean;		/* status valid, no failures: a success changes nothing */
	int		use_stale;	/* last_used_at is older than 10 s (or never set) */
};

struct kr_candidates {
	struct kr_candidate	*v;
	size_t			 n;
	char			 earliest_cooldown[KR_TIME_MAX];	/* "" when none cools */
};

/*
 * The ordered candidates for a workspace: the requested provider (NULL: the primary, or
 * the effective primary when none is chosen), then the fallback chain; within a provider
 * its enabled keys that are not invalid, exhausted, expired or cooling down, by priority;
 * then, when allowSystemKeys, the instance environment's keys for the same providers.
 * A provider without a base URL (openai_compatible not configured) is skipped.
 * earliest_cooldown tells when the first cooling key of those providers is usable again.
 */
enum kr_db_err	kr_select_candidates(struct kr_db *db, const struct kr_config *cfg,
		    const char *ws_id, const struct kr_provider *requested,
		    struct kr_candidates *out);
void		kr_candidates_release(struct kr_candidates *c);

/*
 * The secret of a candidate: decrypted from the vault, or read from the environment.
 * The caller wipes and frees *secret. 0 on success, -1 when it is gone or unreadable.
 */
int		kr_select_secret(struct kr_db *db, const char *ws_id,
		    const struct kr_candidate *c, char **secret, size_t *len);

#endif
