/* log.c — log.search: the manual's "Searching Logs". email, org, title and change
 * match as sub-strings; action, model and model_id exactly; filters combine with AND;
 * newest first, paged. Anyone but a site admin (the command needs perm_audit) sees only the
 * rows of their own organisation: those whose org, the acting user's organisation name as
 * the row was written (audit.c), is theirs, as MISP's log index does. Rows written before
 * an organisation was renamed keep the old name and drop out of its view. The WHERE clause is
 * assembled from fixed fragments only; every value is a bound parameter. */
#include <stdlib.h>
#include <string.h>

#include "core/handlers.h"

#define LOG_COLS                                                                                   \
    "id, title, " AB_SQL_MS("created") ", model, model_id, action, user_id, email, org, "          \
                                       "`change`, description, ip"

typedef struct {
    const char *arg;
    const char *fragment;
    bool substring;
} s_filter;

static const s_filter s_filters[] = {
    {"email", " AND email LIKE ?", true}, {"org", " AND org LIKE ?", true},
    {"title", " AND title LIKE ?", true}, {"change", " AND `change` LIKE ?", true},
    {"action", " AND action = ?", false}, {"model", " AND model = ?", false},
};

/* "%value%" with LIKE's own wildcards escaped, so a search for "50%" means "50%". */
static char *s_like_pattern(const char *v, size_t len, size_t *outlen)
{
    char *p = malloc(len * 2 + 3);
    size_t n = 0;
    p[n++] = '%';
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '%' || v[i] == '_' || v[i] == '\\')
            p[n++] = '\\';
        p[n++] = v[i];
    }
    p[n++] = '%';
    p[n] = '\0';
    *outlen = n;
    return p;
}

/* Build the WHERE clause and bind its values; patterns[] receives what must be freed. */
static void s_where(ab_ctx *ctx, char *where, size_t cap, ab_params *p, char **patterns)
{
    strcpy(where, " WHERE 1 = 1");
    size_t np = 0;
    for (size_t i = 0; i < sizeof s_filters / sizeof s_filters[0]; i++) {
        size_t len = 0;
        const char *v = ab_arg_str(ctx, s_filters[i].arg, &len);
        if (!v)
            continue;
        strncat(where, s_filters[i].fragment, cap - strlen(where) - 1);
        if (s_filters[i].substring) {
            size_t plen;
            patterns[np] = s_like_pattern(v, len, &plen);
            ab_param_str(p, patterns[np++], plen);
        } else {
            ab_param_str(p, v, len);
        }
    }
    if (ab_arg_has(ctx, "model_id")) {
        strncat(where, " AND model_id = ?", cap - strlen(where) - 1);
        ab_param_int(p, ab_arg_int(ctx, "model_id", 0));
    }
    if (!ctx->who->site_admin) {
        strncat(where, " AND org = ?", cap - strlen(where) - 1);
        ab_param_cstr(p, ctx->who->org_name);
    }
}

static void s_pack_log(msgpack_packer *pk, const ab_rows *r, const void *arg)
{
    static const char *const text[] = {"title", "model",  "action",      "email",
                                       "org",   "change", "description", "ip"};
    static const int textcol[] = {1, 3, 5, 7, 8, 9, 10, 11};
    msgpack_pack_map(pk, 12);
    ab_pack_kv_int(pk, "id", ab_rows_int(r, 0));
    ab_pack_kv_int(pk, "created", ab_rows_int(r, 2));
    ab_pack_kv_int(pk, "model_id", ab_rows_int(r, 4));
    ab_pack_kv_int(pk, "user_id", ab_rows_int(r, 6));
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++) {
        size_t len = 0;
        const char *v = ab_rows_str(r, textcol[i], &len);
        ab_pack_kv_str(pk, text[i], v, len);
    }
}

int ab_log_search(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    char *patterns[8] = {0};
    ab_params p;
    ab_params_init(&p);
    char where[512];
    s_where(ctx, where, sizeof where, &p, patterns);
    ab_list_query q = {LOG_COLS, " FROM logs", where, "id DESC", &p, s_pack_log, NULL};
    int rc = ab_pack_list(ctx, pk, &q, err);
    for (int i = 0; i < 8; i++)
        free(patterns[i]);
    return rc;
}
