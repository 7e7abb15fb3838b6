#include "kr_startup.h"

#include <stdio.h>

#include "kr_db.h"
#include "kr_log.h"
#include "kr_vault.h"

int
kr_startup_vault(const struct kr_config *cfg, const char *prog)
{
	struct kr_db *db = NULL;
	enum kr_vault_err rc;
	char err[512];
	int ret = -1;

	if (cfg->secrets_master_keys == NULL) {
		fprintf(stderr, "%s: config: secrets.master_keys: required, set it in the file or "
		    "as KEYRELAY_SECRETS_MASTER_KEYS\n", prog);
		return -1;
	}
	if (kr_vault_load(cfg->secrets_master_keys, cfg->secrets_active_master_key, err,
	    sizeof(err)) != KR_VAULT_OK) {
		fprintf(stderr, "%s: master keys: %s\n", prog, err);
		return -1;
	}
	if ((db = kr_db_new(cfg)) == NULL)
		goto out;
	if (kr_db_connect(db) != KR_DB_OK) {
		kr_warn("database unreachable at start; master keys are checked on first use");
		ret = 0;
		goto out;
	}
	if ((rc = kr_vault_verify(db, err, sizeof(err))) == KR_VAULT_OK || rc == KR_VAULT_DB) {
		if (rc == KR_VAULT_DB)
			kr_warn("could not check the master keys now (database error)");
		ret = 0;
	} else
		fprintf(stderr, "%s: master keys: %s\n", prog, err);
out:
	kr_db_free(&db);
	if (ret != 0)
		kr_vault_unload();
	return ret;
}
