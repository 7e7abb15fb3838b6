/*
 * kr_startup: what keyrelay-fcgi and keyrelay-runner do before serving: load the master
 * keys and check them against the database.
 */
#ifndef KR_STARTUP_H
#define KR_STARTUP_H

#include "kr_config.h"

/*
 * Load the configured master keys and verify them against the database when it can be
 * reached (when it cannot, the check is left to the first use and a warning is logged).
 * Returns 0, or -1 after printing "prog: ..." to stderr: the program must exit 1.
 */
int	kr_startup_vault(const struct kr_config *cfg, const char *prog);

#endif
