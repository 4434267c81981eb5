/* db.c — MariaDB connection, statement cache, parameters, rows and bulk inserts
 * (see db.h). Every value reaches the server through a bound parameter. */
#include "core/db.h"

#include <errmsg.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/config.h"
#include "wire/log.h"

#define CACHE_MAX 128

typedef struct {
    char *sql;
    MYSQL_STMT *stmt;
} s_cached;

struct ab_db {
    MYSQL *conn;
    uint64_t writes;
    unsigned last_errno;
    char dup_key[96];
    s_cached cache[CACHE_MAX];
    int ncached;
};

static void s_note_error(ab_db *db, unsigned errnum, const char *text, const char *sql)
{
    db->last_errno = errnum;
    db->dup_key[0] = '\0';
    if (errnum == AB_ER_DUP_ENTRY) {
        /* "Duplicate entry 'x' for key 'organisations_name'": keep the key's name. */
        const char *k = strstr(text, "for key '");
        if (k) {
            snprintf(db->dup_key, sizeof db->dup_key, "%s", k + 9);
            char *q = strchr(db->dup_key, '\'');
            if (q)
                *q = '\0';
        }
        AB_DEBUG("db: %u %s", errnum, text);
        return;
    }
    AB_WARN("db: error %u: %s (in: %.120s)", errnum, text, sql ? sql : "");
}

static int s_fail(ab_db *db, ab_error *err, unsigned errnum, const char *text, const char *sql)
{
    s_note_error(db, errnum, text, sql);
    if (ab_db_batch_broken(db))
        return ab_fail(err, AB_E_UNAVAILABLE, NULL, "the database is busy or unreachable; retry");
    return ab_fail(err, AB_E_INTERNAL, NULL, "database error %u; the change was not applied",
                   errnum);
}

static bool s_safe_identifier(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static MYSQL *s_connect(const ab_dsn *d, const char *database)
{
    MYSQL *m = mysql_init(NULL);
    if (!m)
        return NULL;
    unsigned timeout = 10, io_timeout = d->timeout_s ? d->timeout_s : AB_DSN_TIMEOUT_S;
    my_bool no = 0;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    /* A server that stops answering (stopped, wedged, a network partition that keeps the
     * connection open) fails the statement after io_timeout instead of blocking this
     * process for ever: the engine answers `unavailable` and reconnects, a worker's lease
     * lapses and the job runs elsewhere. */
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &io_timeout);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &io_timeout);
    mysql_optionsv(m, MYSQL_OPT_RECONNECT, &no);
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    const char *host = d->host && *d->host ? d->host : "localhost";
    if (!mysql_real_connect(m, host, d->user, d->password, database, d->port, d->socket, 0))
        return m; /* caller inspects mysql_errno */
    return m;
}

/* Create the database when it is missing: a newcomer's first start needs no DBA. */
static int s_create_database(const ab_dsn *d, char *errbuf, size_t errlen)
{
    if (!s_safe_identifier(d->database)) {
        snprintf(errbuf, errlen, "database name '%s' must be letters, digits and _", d->database);
        return -1;
    }
    MYSQL *m = s_connect(d, NULL);
    char sql[160];
    snprintf(sql, sizeof sql,
             "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
             d->database);
    int rc = (m && mysql_errno(m) == 0 && mysql_query(m, sql) == 0) ? 0 : -1;
    if (rc < 0)
        snprintf(errbuf, errlen, "cannot create database %s: %s", d->database,
                 m ? mysql_error(m) : "out of memory");
    mysql_close(m);
    return rc;
}

static int s_session_setup(MYSQL *m)
{
    return mysql_query(m, "SET time_zone = '+00:00'") ||
                   mysql_query(m, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED") ||
                   mysql_autocommit(m, 0)
               ? -1
               : 0;
}

ab_db *ab_db_open(const char *dsn, char *errbuf, size_t errlen)
{
    ab_dsn d;
    if (ab_dsn_parse(dsn, &d, errbuf, errlen) < 0)
        return NULL;
    MYSQL *m = s_connect(&d, d.database);
    if (m && mysql_errno(m) == ER_BAD_DB_ERROR) {
        mysql_close(m);
        m = s_create_database(&d, errbuf, errlen) == 0 ? s_connect(&d, d.database) : NULL;
        if (!m) {
            ab_dsn_free(&d);
            return NULL;
        }
    }
    if (!m || mysql_errno(m) != 0 || s_session_setup(m) < 0) {
        snprintf(errbuf, errlen, "cannot connect to MariaDB (%s@%s%s%s/%s): %s", d.user,
                 d.host && *d.host ? d.host : "localhost", d.socket ? " via " : "",
                 d.socket ? d.socket : "", d.database, m ? mysql_error(m) : "out of memory");
        mysql_close(m);
        ab_dsn_free(&d);
        return NULL;
    }
    ab_dsn_free(&d);
    ab_db *db = calloc(1, sizeof *db);
    if (!db) {
        mysql_close(m);
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    db->conn = m;
    return db;
}

void ab_db_close(ab_db **dbp)
{
    if (!dbp || !*dbp)
        return;
    ab_db *db = *dbp;
    for (int i = 0; i < db->ncached; i++) {
        mysql_stmt_close(db->cache[i].stmt);
        free(db->cache[i].sql);
    }
    mysql_close(db->conn);
    free(db);
    *dbp = NULL;
}

/* A statement for a connection that could not be had (a handler given NULL by
 * ab_job_db): unavailable, so the caller retries later. */
static int s_no_connection(ab_error *err)
{
    return ab_fail(err, AB_E_UNAVAILABLE, NULL, "no database connection");
}

int ab_db_exec(ab_db *db, const char *sql, ab_error *err)
{
    if (!db)
        return s_no_connection(err);
    if (mysql_query(db->conn, sql) != 0)
        return s_fail(db, err, mysql_errno(db->conn), mysql_error(db->conn), sql);
    db->last_errno = 0;
    return 0;
}

uint64_t ab_db_writes(const ab_db *db)
{
    return db->writes;
}

unsigned ab_db_errno(const ab_db *db)
{
    return db->last_errno;
}

const char *ab_db_dup_key(const ab_db *db)
{
    return db->last_errno == AB_ER_DUP_ENTRY ? db->dup_key : "";
}

bool ab_db_connection_lost(const ab_db *db)
{
    unsigned e = db->last_errno;
    return e == CR_SERVER_GONE_ERROR || e == CR_SERVER_LOST || e == CR_CONNECTION_ERROR ||
           e == CR_CONN_HOST_ERROR || e == ER_CONNECTION_KILLED || e == CR_COMMANDS_OUT_OF_SYNC;
}

bool ab_db_batch_broken(const ab_db *db)
{
    unsigned e = db->last_errno;
    return e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT || ab_db_connection_lost(db);
}

/* The prepared statement for sql, prepared on first use and kept for the connection. */
static MYSQL_STMT *s_stmt(ab_db *db, const char *sql, ab_error *err, bool *cached)
{
    for (int i = 0; i < db->ncached; i++)
        if (db->cache[i].sql == sql || strcmp(db->cache[i].sql, sql) == 0) {
            *cached = true;
            return db->cache[i].stmt;
        }
    MYSQL_STMT *st = mysql_stmt_init(db->conn);
    if (!st) {
        s_fail(db, err, mysql_errno(db->conn), "out of memory", sql);
        return NULL;
    }
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0) {
        s_fail(db, err, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
        mysql_stmt_close(st);
        return NULL;
    }
    *cached = db->ncached < CACHE_MAX;
    if (*cached) {
        db->cache[db->ncached].sql = strdup(sql);
        db->cache[db->ncached++].stmt = st;
    }
    return st;
}

static void s_release(MYSQL_STMT *st, bool cached)
{
    if (!cached)
        mysql_stmt_close(st);
}

void ab_params_init(ab_params *p)
{
    memset(p, 0, sizeof *p);
}

static MYSQL_BIND *s_next(ab_params *p)
{
    if (p->n >= AB_PARAMS_MAX)
        return NULL; /* programmer error: the statement has too many parameters */
    return &p->bind[p->n++];
}

void ab_param_str(ab_params *p, const char *s, size_t len)
{
    MYSQL_BIND *b = s_next(p);
    if (!b)
        return;
    if (!s) {
        b->buffer_type = MYSQL_TYPE_NULL;
        return;
    }
    p->lens[p->n - 1] = (unsigned long)len;
    b->buffer_type = MYSQL_TYPE_STRING;
    b->buffer = (void *)s;
    b->buffer_length = (unsigned long)len;
    b->length = &p->lens[p->n - 1];
}

void ab_param_cstr(ab_params *p, const char *s)
{
    ab_param_str(p, s, s ? strlen(s) : 0);
}

void ab_param_int(ab_params *p, int64_t v)
{
    MYSQL_BIND *b = s_next(p);
    if (!b)
        return;
    p->ints[p->n - 1] = v;
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = &p->ints[p->n - 1];
}

void ab_param_blob(ab_params *p, const void *data, size_t len)
{
    ab_param_str(p, data, len);
    if (data)
        p->bind[p->n - 1].buffer_type = MYSQL_TYPE_BLOB;
}

static MYSQL_STMT *s_execute(ab_db *db, const char *sql, ab_params *p, ab_error *err, bool *cached,
                             bool want_max_length)
{
    MYSQL_STMT *st = s_stmt(db, sql, err, cached);
    if (!st)
        return NULL;
    my_bool on = want_max_length;
    mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &on);
    unsigned expected = mysql_stmt_param_count(st);
    if ((int)expected != (p ? p->n : 0)) {
        ab_fail(err, AB_E_INTERNAL, NULL, "statement expects %u parameters", expected);
        AB_ERROR("db: %s expects %u parameters, got %d", sql, expected, p ? p->n : 0);
        s_release(st, *cached);
        return NULL;
    }
    if ((p && p->n && mysql_stmt_bind_param(st, p->bind) != 0) || mysql_stmt_execute(st) != 0) {
        s_fail(db, err, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
        s_release(st, *cached);
        return NULL;
    }
    db->last_errno = 0;
    return st;
}

int ab_db_run(ab_db *db, const char *sql, ab_params *p, uint64_t *insert_id, uint64_t *affected,
              ab_error *err)
{
    if (!db)
        return s_no_connection(err);
    bool cached;
    MYSQL_STMT *st = s_execute(db, sql, p, err, &cached, false);
    if (!st)
        return -1;
    db->writes++;
    if (insert_id)
        *insert_id = mysql_stmt_insert_id(st);
    if (affected)
        *affected = mysql_stmt_affected_rows(st);
    s_release(st, cached);
    return 0;
}

int ab_db_query(ab_db *db, const char *sql, ab_params *p, ab_rows *rows, ab_error *err)
{
    memset(rows, 0, sizeof *rows);
    if (!db)
        return s_no_connection(err);
    bool cached;
    MYSQL_STMT *st = s_execute(db, sql, p, err, &cached, true);
    if (!st)
        return -1;
    if (mysql_stmt_store_result(st) != 0) {
        int rc = s_fail(db, err, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
        s_release(st, cached);
        return rc;
    }
    MYSQL_RES *meta = mysql_stmt_result_metadata(st);
    int n = meta ? (int)mysql_num_fields(meta) : 0;
    rows->stmt = st;
    rows->ncols = n;
    rows->bind = calloc((size_t)n + 1, sizeof *rows->bind);
    rows->buf = calloc((size_t)n + 1, sizeof *rows->buf);
    rows->len = calloc((size_t)n + 1, sizeof *rows->len);
    rows->null = calloc((size_t)n + 1, sizeof *rows->null);
    for (int i = 0; i < n; i++) {
        MYSQL_FIELD *f = mysql_fetch_field_direct(meta, (unsigned)i);
        unsigned long size = (f->max_length > 64 ? f->max_length : 64) + 1;
        rows->buf[i] = malloc(size);
        rows->bind[i].buffer_type = MYSQL_TYPE_STRING;
        rows->bind[i].buffer = rows->buf[i];
        rows->bind[i].buffer_length = size;
        rows->bind[i].length = &rows->len[i];
        rows->bind[i].is_null = &rows->null[i];
    }
    if (meta)
        mysql_free_result(meta);
    if (n && mysql_stmt_bind_result(st, rows->bind) != 0) {
        ab_rows_close(rows);
        return s_fail(db, err, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
    }
    if (!cached) /* an uncached statement is closed by ab_rows_close */
        rows->ncols = -n - 1;
    return 0;
}

static int s_ncols(const ab_rows *rows)
{
    return rows->ncols < 0 ? -rows->ncols - 1 : rows->ncols;
}

int ab_rows_next(ab_rows *rows)
{
    int rc = mysql_stmt_fetch(rows->stmt);
    if (rc == MYSQL_NO_DATA)
        return 0;
    if (rc == 1)
        return -1;
    for (int i = 0; i < s_ncols(rows); i++) {
        if (rows->null[i])
            continue;
        unsigned long cap = rows->bind[i].buffer_length;
        if (rows->len[i] >= cap) { /* truncated: fetch the column again, whole */
            char *bigger = realloc(rows->buf[i], rows->len[i] + 1);
            if (!bigger)
                return -1;
            rows->buf[i] = bigger;
            rows->bind[i].buffer = bigger;
            rows->bind[i].buffer_length = rows->len[i] + 1;
            if (mysql_stmt_fetch_column(rows->stmt, &rows->bind[i], (unsigned)i, 0) != 0)
                return -1;
        }
        rows->buf[i][rows->len[i]] = '\0';
    }
    return 1;
}

const char *ab_rows_str(const ab_rows *rows, int col, size_t *len)
{
    if (col >= s_ncols(rows) || rows->null[col])
        return NULL;
    if (len)
        *len = rows->len[col];
    return rows->buf[col];
}

int64_t ab_rows_int(const ab_rows *rows, int col)
{
    const char *s = ab_rows_str(rows, col, NULL);
    return s ? strtoll(s, NULL, 10) : 0;
}

void ab_rows_close(ab_rows *rows)
{
    if (!rows->stmt)
        return;
    int n = s_ncols(rows);
    mysql_stmt_free_result(rows->stmt);
    if (rows->ncols < 0)
        mysql_stmt_close(rows->stmt);
    for (int i = 0; i < n; i++)
        free(rows->buf[i]);
    free(rows->buf);
    free(rows->bind);
    free(rows->len);
    free(rows->null);
    memset(rows, 0, sizeof *rows);
}

int ab_db_scalar(ab_db *db, const char *sql, ab_params *p, int64_t *out, ab_error *err)
{
    ab_rows rows;
    *out = 0;
    if (ab_db_query(db, sql, p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        *out = ab_rows_int(&rows, 0);
    ab_rows_close(&rows);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : 0;
}

int ab_db_bulk(ab_db *db, const char *sql, int ncols, const ab_col_type *types, void **cols,
               unsigned long **lens, unsigned nrows, ab_error *err)
{
    if (!db)
        return s_no_connection(err);
    if (nrows == 0)
        return 0;
    bool cached;
    MYSQL_STMT *st = s_stmt(db, sql, err, &cached);
    if (!st)
        return -1;
    MYSQL_BIND bind[AB_PARAMS_MAX];
    char *ind = calloc((size_t)ncols * nrows, 1);
    memset(bind, 0, sizeof bind);
    for (int c = 0; c < ncols && c < AB_PARAMS_MAX; c++) {
        bind[c].buffer = cols[c];
        if (types[c] == AB_COL_INT) {
            bind[c].buffer_type = MYSQL_TYPE_LONGLONG;
            continue;
        }
        bind[c].buffer_type = types[c] == AB_COL_BLOB ? MYSQL_TYPE_BLOB : MYSQL_TYPE_STRING;
        bind[c].length = lens[c];
        bind[c].u.indicator = ind + (size_t)c * nrows;
        const char **v = cols[c];
        for (unsigned r = 0; r < nrows; r++)
            bind[c].u.indicator[r] = v[r] ? STMT_INDICATOR_NONE : STMT_INDICATOR_NULL;
    }
    int rc = 0;
    if (mysql_stmt_attr_set(st, STMT_ATTR_ARRAY_SIZE, &nrows) != 0 ||
        mysql_stmt_bind_param(st, bind) != 0 || mysql_stmt_execute(st) != 0)
        rc = s_fail(db, err, mysql_stmt_errno(st), mysql_stmt_error(st), sql);
    unsigned none = 0; /* back to single-row execution */
    mysql_stmt_attr_set(st, STMT_ATTR_ARRAY_SIZE, &none);
    if (rc == 0)
        db->last_errno = 0;
    free(ind);
    s_release(st, cached);
    return rc;
}
