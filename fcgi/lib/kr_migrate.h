/*
 * kr_migrate: apply schema/NNN_name.sql files in order, each once.
 *
 * Applied versions are recorded in schema_migrations with the file's SHA-256; a recorded
 * file whose contents changed since is reported, never re-applied. A file's statements end
 * with ';' at the end of a line. MariaDB commits each DDL statement by itself, so a file
 * that fails half-way is reported with the statement that failed and is not recorded.
 */
#ifndef KR_MIGRATE_H
#define KR_MIGRATE_H

#include <stdio.h>

#include "kr_db.h"

enum kr_migrate_err {
	KR_MIGRATE_OK = 0,
	KR_MIGRATE_IO,		/* the directory or a file could not be read */
	KR_MIGRATE_DB,		/* the database refused a statement or is down */
};

/* Apply what is missing; progress lines go to out. *applied gets the count applied now. */
enum kr_migrate_err	kr_migrate(struct kr_db *db, const char *dir, FILE *out,
			    unsigned *applied);
/* The highest applied version (0 for none). */
enum kr_db_err		kr_migrate_version(struct kr_db *db, unsigned *version);

#endif
