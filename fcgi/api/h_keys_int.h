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
struct entries {
	char	*v[KR_KEYS_BATCH_MAX];
	size_t	 len[KR_KEYS_BATCH_MAX];
	size_t	 n;
};

/* In h_keys_create.c. */
void	entries_release(struct entries *e);
int	entries_add(struct entries *e, const char *s, size_t n);

/* In h_keys.c, each described there. */
enum kr_db_err	key_now(struct kr_req *req, const char *id, json_object **out);
void		keys_error(struct kr_resp *resp, enum kr_keys_err rc, enum kr_db_err db_rc,
		    const char *field);
enum kr_db_err	audit_key(struct kr_req *req, const char *action, const char *id,
		    json_object *detail);
enum kr_db_err	key_event(struct kr_req *req, json_object *key);
enum kr_db_err	keys_step(enum kr_keys_err rc, enum kr_db_err db_rc, enum kr_keys_err *why);
enum kr_keys_err keys_tx(struct kr_req *req, enum kr_db_err (*body)(struct kr_db *, void *),
		    void *arg, const enum kr_keys_err *why, enum kr_db_err *db_rc);
const char	*test_url(struct kr_req *req, struct kr_resp *resp,
		    const struct kr_provider *p, struct kr_settings *s);

#endif
