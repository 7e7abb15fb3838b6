/*
 * kr_master: the master keys of kr_vault, internal to it (only kr_vault.c and kr_master.c
 * include this; programs call kr_vault_load, kr_vault_unload and kr_vault_active_id).
 *
 * The keys are loaded once per process, before threads start, into one page that is locked
 * in memory, excluded from core dumps and read-only while loaded. Readers take no lock: a
 * key pointer handed out stays valid until the next kr_master_load or kr_master_unload, so
 * neither may run while another thread uses a key. Errors are the vault's (kr_vault.h),
 * since kr_vault_load passes them on.
 */
#ifndef KR_MASTER_H
#define KR_MASTER_H

#include <stddef.h>

#include "kr_vault.h"

struct kr_master_key {
	char		id[KR_MASTER_ID_MAX + 1];	/* [A-Za-z0-9_-]{1,32} */
	unsigned char	key[KR_KEY_LEN];
};

/*
 * kr_vault_load without the vault's own state: parse spec, read and decode every key and
 * pick the active one, as documented there. The keys loaded before are wiped and unmapped
 * first, also when loading fails; on failure none is loaded and every variable the spec
 * names is wiped and unset. KR_VAULT_CONFIG for a wrong spec, key or source (err names the
 * id or source, never key material), KR_VAULT_ERROR when the page cannot be set up.
 */
enum kr_vault_err	kr_master_load(const char *spec, const char *active, char *err,
			    size_t errlen);
/* Wipe, unlock and unmap the keys; harmless when none is loaded. */
void			kr_master_unload(void);

/* The loaded key with this id, or NULL (also for id NULL or nothing loaded). */
const struct kr_master_key	*kr_master_find(const char *id);
/* The key that wraps new data keys; NULL when nothing is loaded. */
const struct kr_master_key	*kr_master_active(void);
/*
 * The loaded keys are kr_master_at(0) .. kr_master_at(kr_master_count() - 1), in spec order;
 * kr_master_count() is 0 when nothing is loaded, and kr_master_at is NULL past the end.
 */
unsigned			 kr_master_count(void);
const struct kr_master_key	*kr_master_at(unsigned i);

/* 1 when the n bytes at s are a master key id, [A-Za-z0-9_-]{1,KR_MASTER_ID_MAX}; else 0. */
int	kr_master_valid_id(const char *s, size_t n);
/*
 * Format a message into err (errlen bytes, cut short if need be; nothing when err is NULL
 * or errlen 0). Shared by the vault's two files so they word errors alike.
 */
void	kr_master_seterr(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
