/* migrations.h — the SQL migrations embedded at build time (schemas/migrations/NNNN_name.sql). */
#ifndef AB_MIGRATIONS_H
#define AB_MIGRATIONS_H

typedef struct {
    int version;      /* the schema version this migration brings */
    const char *name; /* file name without .sql */
    const char *sql;  /* statements, each ending with ';' at the end of a line */
} ab_migration;

extern const ab_migration ab_migrations[]; /* ascending by version */
extern const int ab_migrations_count;

#endif
