/* migrate.h — bring a database to the schema version this build carries. */
#ifndef AB_MIGRATE_H
#define AB_MIGRATE_H

#include "core/db.h"

/* The newest schema version this build knows. */
int ab_schema_latest(void);

/* The version the database is at (0 for an empty database). */
int ab_schema_current(ab_db *db, ab_error *err);

/* Apply every missing migration in order, under a MariaDB named lock so that engines
 * starting together do not race. applied (may be NULL) receives the number applied.
 * A database newer than this build is refused (unavailable) rather than touched.
 * Runs its own transactions: call it outside a batch. */
int ab_migrate(ab_db *db, int *applied, ab_error *err);

#endif
