/* db.h — the engine's MariaDB layer: one connection, prepared statements only (cached
 * per connection), typed parameters, rows read as text, and a bulk insert for many rows
 * in one round trip (Connector/C array binding).
 *
 * Errors: functions return 0 / -1; on -1 *err is set (internal, with a generic message;
 * the server's text goes to the log) and ab_db_errno() tells the server's error number,
 * so callers can turn a duplicate key into `conflict`. */
#ifndef AB_DB_H
#define AB_DB_H

#include <mysql.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/errors.h"

typedef struct ab_db ab_db;

#define AB_ER_DUP_ENTRY 1062

/* Connect using a DSN (see config.h). Creates the database when it does not exist yet.
 * The session runs in UTC with autocommit off. Returns NULL with a message in errbuf.
 * Caller owns the result. */
ab_db *ab_db_open(const char *dsn, char *errbuf, size_t errlen);

/* Close and free; sets *db to NULL; safe on NULL. */
void ab_db_close(ab_db **db);

/* Run one statement that takes no parameters and returns no rows (BEGIN, COMMIT,
 * SAVEPOINT, DDL). */
int ab_db_exec(ab_db *db, const char *sql, ab_error *err);

/* How many statements that change rows have succeeded on this connection; the apply
 * loop compares it before and after a command to know whether the command wrote. */
uint64_t ab_db_writes(const ab_db *db);

/* The server's number for the last error (0 = none). */
unsigned ab_db_errno(const ab_db *db);

/* The key named by the last duplicate-key error ("organisations_name"), or "". */
const char *ab_db_dup_key(const ab_db *db);

/* True when the last error means the transaction is gone (deadlock, lock wait timeout,
 * lost connection): the whole batch must be rolled back and retried or refused. */
bool ab_db_batch_broken(const ab_db *db);

/* True when the connection is unusable and must be reopened. */
bool ab_db_connection_lost(const ab_db *db);

/* --- parameters ------------------------------------------------------------------- */
#define AB_PARAMS_MAX 80

typedef struct {
    MYSQL_BIND bind[AB_PARAMS_MAX];
    long long ints[AB_PARAMS_MAX];
    unsigned long lens[AB_PARAMS_MAX];
    int n;
} ab_params;

void ab_params_init(ab_params *p);
/* Strings are referenced, not copied: keep them alive until the statement has run.
 * s == NULL binds SQL NULL. */
void ab_param_str(ab_params *p, const char *s, size_t len);
void ab_param_cstr(ab_params *p, const char *s);
void ab_param_int(ab_params *p, int64_t v);
void ab_param_blob(ab_params *p, const void *data, size_t len);

/* Run a statement that returns no rows. insert_id / affected may be NULL. */
int ab_db_run(ab_db *db, const char *sql, ab_params *p, uint64_t *insert_id, uint64_t *affected,
              ab_error *err);

/* --- reading rows ------------------------------------------------------------------ */
typedef struct {
    MYSQL_STMT *stmt;
    int ncols;
    MYSQL_BIND *bind;
    char **buf;
    unsigned long *len;
    my_bool *null;
} ab_rows;

/* Run a SELECT; read its rows with ab_rows_next, then ab_rows_close. */
int ab_db_query(ab_db *db, const char *sql, ab_params *p, ab_rows *rows, ab_error *err);

/* 1 when a row was read, 0 at the end, -1 on error. */
int ab_rows_next(ab_rows *rows);

/* Column col of the current row as text (NUL-terminated) or NULL for SQL NULL. */
const char *ab_rows_str(const ab_rows *rows, int col, size_t *len);

/* Column col as an integer (0 for NULL). */
int64_t ab_rows_int(const ab_rows *rows, int col);

/* Free the result (the statement stays cached). Safe on a zeroed struct. */
void ab_rows_close(ab_rows *rows);

/* Run a query expected to give one integer (COUNT(*), a version…); *out = 0 when no row. */
int ab_db_scalar(ab_db *db, const char *sql, ab_params *p, int64_t *out, ab_error *err);

/* --- bulk insert -------------------------------------------------------------------- */
typedef enum { AB_COL_STR, AB_COL_BLOB, AB_COL_INT } ab_col_type;

/* Insert nrows rows with one execution. cols[c] is an array of nrows values: for STR a
 * or BLOB a (const char **) with lens[c] an (unsigned long *) of lengths (NULL pointer = SQL NULL),
 * for INT a (long long *). */
int ab_db_bulk(ab_db *db, const char *sql, int ncols, const ab_col_type *types, void **cols,
               unsigned long **lens, unsigned nrows, ab_error *err);

#endif
