/*
 * What the two files of the keys API share: h_keys.c (list, read, test, change, rotate,
 * reorder, delete) and h_keys_create.c (POST keys, one key or many, checked or not).
 */
#ifndef H_KEYS_INT_H
#define H_KEYS_INT_H

#include <stddef.h>

#include <json-c/json.h>

#include "handlers.h"
#include "kr_keys.h"
#include "kr_settings.h"

#define CHECK_TIMEOUT_MS	15000	/* one key check (the bulk ones run at once) */

/* Entries of a "keys" or "names" field: trimmed, NUL-terminated copies. */
struct hkeys_entries {
	char	*v[KR_KEYS_BATCH_MAX];
	size_t	 len[KR_KEYS_BATCH_MAX];
	size_t	 n;
};

/* In h_keys_create.c. */
void	hkeys_entries_release(struct hkeys_entries *e);
int	hkeys_entries_add(struct hkeys_entries *e, const char *s, size_t n);

/* In h_keys.c, each described there. */
enum kr_db_err	hkeys_now(struct kr_req *req, const char *id, json_object **out);
void		hkeys_error(struct kr_resp *resp, enum kr_keys_err rc, enum kr_db_err db_rc,
		    const char *field);
enum kr_db_err	hkeys_audit(struct kr_req *req, const char *action, const char *id,
		    json_object *detail);
enum kr_db_err	hkeys_event(struct kr_req *req, json_object *key);
enum kr_db_err	hkeys_step(enum kr_keys_err rc, enum kr_db_err db_rc, enum kr_keys_err *why);
enum kr_keys_err hkeys_tx(struct kr_req *req, enum kr_db_err (*body)(struct kr_db *, void *),
		    void *arg, const enum kr_keys_err *why, enum kr_db_err *db_rc);
const char	*hkeys_test_url(struct kr_req *req, struct kr_resp *resp,
		    const struct kr_provider *p, struct kr_settings *s);

#endif
