/* violations.c — the SQL check's own test: one case of each violation tests/lint/check_sql.py
 * must report, each on a line so marked (a comment at its end), beside lawful code it must let
 * pass. Never compiled; `check_sql.py --expect tests/lint/violations.c` runs it (ctest
 * lint_sql_catches_violations). Its builders are listed in check_sql.py's BUILDERS. */
#include <stdio.h>
#include <string.h>

#include "core/engine.h"

#define ORDER_SQL " ORDER BY id"

/* --- lawful ------------------------------------------------------------------------------ */

static int s_lawful(ab_ctx *ctx, bool lock, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, ab_arg_str(ctx, "name", NULL));
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    lock ? "SELECT id FROM users WHERE email = ? FOR UPDATE"
                         : "SELECT id FROM users WHERE email = ?" ORDER_SQL,
                    &p, &rows, err) < 0)
        return -1;
    ab_rows_close(&rows);
    return ab_db_exec(ctx->db, "COMMIT", err);
}

/* A reviewed builder: a column chosen between literals, a condition from its callers. */
static int s_builder(ab_ctx *ctx, const char *cond, bool by_id, ab_error *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id FROM users WHERE %s = ? AND %s", by_id ? "id" : "email",
             cond);
    int64_t n = 0;
    return ab_db_scalar(ctx->db, sql, NULL, &n, err);
}

static int s_lawful_builder_call(ab_ctx *ctx, ab_error *err)
{
    return s_builder(ctx, "disabled = 0", true, err);
}

/* --- violations ----------------------------------------------------------------------------- */

static int s_raw_query(MYSQL *m, const char *email)
{
    char sql[256], quoted[128];
    mysql_real_escape_string(m, quoted, email, strlen(email));                 // expect-violation
    snprintf(sql, sizeof sql, "DELETE FROM users WHERE email = '%s'", quoted); // expect-violation
    return mysql_query(m, sql);                                                // expect-violation
}

static int s_spliced(ab_ctx *ctx, ab_error *err)
{
    char where[128] = " WHERE 1 = 1";
    strcat(where, " AND name = "); // expect-violation
    strcat(where, ab_arg_str(ctx, "name", NULL));
    return ab_db_run(ctx->db, where, NULL, NULL, NULL, err);
}

/* Listed in BUILDERS (pieces: where): the rules for what a builder may splice. */
static int s_bad_builder(ab_ctx *ctx, const char *name, long long limit, ab_error *err)
{
    char sql[256], where[128] = " WHERE 1 = 1";
    strcat(where, name);                                                        // expect-violation
    snprintf(sql, sizeof sql, "SELECT id FROM u%s LIMIT %lld", where, limit);   // expect-violation
    snprintf(sql, sizeof sql, "SELECT id FROM users WHERE email = '%s'", name); // expect-violation
    snprintf(sql, sizeof sql, "SELECT id FROM users WHERE email = ?%s", name);  // expect-violation
    return ab_db_query(ctx->db, sql, NULL, NULL, err);
}

static int s_bad_calls(ab_ctx *ctx, ab_error *err)
{
    const char *name = ab_arg_str(ctx, "name", NULL);
    if (s_builder(ctx, name, true, err) < 0) // expect-violation
        return -1;
    ab_list_query q = {"id", " FROM users", name, "id", NULL, NULL, NULL}; // expect-violation
    if (ab_pack_list(ctx, NULL, &q, err) < 0)
        return -1;
    ab_rows rows;
    if (ab_db_query(ctx->db, ab_arg_str(ctx, "q", 0), 0, &rows, err) < 0) // expect-violation
        return -1;
    char sql[64];
    memcpy(sql, "COMMIT", 7);
    return ab_db_exec(ctx->db, sql, err); // expect-violation
}
