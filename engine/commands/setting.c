/* setting.c — the server-settings commands: setting.list, setting.get, setting.set,
 * setting.reset, setting.baseurl (MISP's cake Baseurl) and setting.report (MISP's "download
 * report"). The catalog of settings is schemas/settings.c; the values live in the table
 * `settings` (MISP.host_org_id in admin_settings); processes read them through
 * settings_cache.h.
 *
 * Handlers read the table itself, not the cache, so that they see the changes of earlier
 * commands of their own batch. Secret values are sealed before they are written and are
 * never packed, logged or audited in clear. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "health/diagnostics.h"
#include "core/handlers.h"
#include "core/migrate.h"
#include "core/settings_cache.h"

/* A setting's row in the database. */
typedef struct {
    char *value; /* stored text (sealed for a secret); NULL = not stored: the default applies */
    bool forced;
    uint32_t modified_by;
    int64_t modified_ms;
} s_stored;

static size_t s_index(const ab_setting *s)
{
    return (size_t)(s - ab_settings);
}

static void s_free_stored(s_stored *rows)
{
    for (size_t i = 0; rows && i < ab_settings_len; i++)
        free(rows[i].value);
    free(rows);
}

/* Every stored value; NULL with *err on failure. Caller frees with s_free_stored. */
static s_stored *s_load(ab_ctx *ctx, ab_error *err)
{
    s_stored *rows = calloc(ab_settings_len, sizeof *rows);
    if (!rows) {
        ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        return NULL;
    }
    static const char *const queries[] = {
        "SELECT name, value, forced, modified_by, " AB_SQL_MS("date_modified") " FROM settings",
        "SELECT 'MISP.host_org_id', value, 0, 0, NULL FROM admin_settings "
        "WHERE setting = 'host_org_id'"};
    for (size_t q = 0; q < 2; q++) {
        ab_rows r;
        if (ab_db_query(ctx->db, queries[q], NULL, &r, err) < 0) {
            s_free_stored(rows);
            return NULL;
        }
        int rc;
        while ((rc = ab_rows_next(&r)) == 1) {
            size_t len = 0;
            const char *name = ab_rows_str(&r, 0, &len);
            const ab_setting *s = name ? ab_setting_find(name, len) : NULL;
            if (!s)
                continue; /* stored by a newer catalog */
            s_stored *st = &rows[s_index(s)];
            free(st->value);
            st->value = strdup(ab_rows_str(&r, 1, NULL) ? ab_rows_str(&r, 1, NULL) : "");
            st->forced = ab_rows_int(&r, 2) != 0;
            st->modified_by = (uint32_t)ab_rows_int(&r, 3);
            st->modified_ms = ab_rows_int(&r, 4);
        }
        ab_rows_close(&r);
        if (rc < 0) {
            s_free_stored(rows);
            ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
            return NULL;
        }
    }
    return rows;
}

/* The effective text: stored, else the default; NULL when unset. */
static const char *s_effective(const ab_setting *s, const s_stored *st)
{
    const char *v = st && st->value ? st->value : s->def;
    return v && *v ? v : NULL;
}

/* The text a setting's problem is judged on: a set secret is judged by its mask. */
static const char *s_problem(const ab_setting *s, const s_stored *st, char *buf, size_t len)
{
    const char *v = s_effective(s, st);
    if (v && (s->flags & AB_SETF_SECRET))
        v = AB_SECRET_MASK;
    return ab_setting_problem(s, v, buf, len);
}

/* A value as shown: nil when unset, ***** for a secret, typed for booleans and numbers. */
static void s_pack_shown(msgpack_packer *pk, const ab_setting *s, const char *text)
{
    if (!text || !*text) {
        msgpack_pack_nil(pk);
        return;
    }
    if (s->flags & AB_SETF_SECRET) {
        ab_pack_cstr(pk, AB_SECRET_MASK);
        return;
    }
    char *end = NULL;
    long long n = s->type == AB_SET_NUMERIC ? strtoll(text, &end, 10) : 0;
    if (s->type == AB_SET_BOOL && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)) {
        if (text[0] == 't')
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    } else if (s->type == AB_SET_NUMERIC && end && end != text && !*end)
        msgpack_pack_int64(pk, n);
    else
        ab_pack_cstr(pk, text);
}

/* The text an audit row shows for a value: ***** for a set secret. */
static const char *s_audit_text(const ab_setting *s, const char *text)
{
    if (!text || !*text)
        return "";
    return (s->flags & AB_SETF_SECRET) ? AB_SECRET_MASK : text;
}

#define ITEM_KEYS 12

/* The keys every item has (setting list); detail adds the limits and the last change. */
static void s_pack_item(msgpack_packer *pk, const ab_setting *s, const s_stored *st, bool detail)
{
    char buf[300];
    const char *problem = s_problem(s, st, buf, sizeof buf);
    msgpack_pack_map(pk, ITEM_KEYS + (detail ? 7 : 0));
    ab_pack_kv_cstr(pk, "name", s->name);
    ab_pack_kv_cstr(pk, "tab", ab_setting_tab_name(s->tab));
    ab_pack_kv_cstr(pk, "type", ab_setting_type_name(s->type));
    ab_pack_kv_cstr(pk, "priority", ab_setting_priority_name(s->priority));
    ab_pack_cstr(pk, "value");
    s_pack_shown(pk, s, s_effective(s, st));
    ab_pack_cstr(pk, "default");
    s_pack_shown(pk, s, s->def);
    ab_pack_kv_bool(pk, "set", st && st->value);
    ab_pack_kv_cstr(pk, "error", problem);
    ab_pack_kv_cstr(pk, "description", s->description);
    ab_pack_kv_bool(pk, "secret", s->flags & AB_SETF_SECRET);
    ab_pack_kv_bool(pk, "cli_only", s->flags & AB_SETF_CLI_ONLY);
    ab_pack_kv_bool(pk, "editable", !(s->flags & AB_SETF_READONLY));
    if (!detail)
        return;
    ab_pack_cstr(pk, "options");
    if (s->type == AB_SET_ENUM) {
        uint32_t n = 0;
        while (s->choices[n].value)
            n++;
        msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            msgpack_pack_map(pk, 2);
            ab_pack_kv_cstr(pk, "value", s->choices[i].value);
            ab_pack_kv_cstr(pk, "label", s->choices[i].label);
        }
    } else {
        msgpack_pack_nil(pk);
    }
    bool bounded = s->type == AB_SET_NUMERIC || s->type == AB_SET_STRING;
    ab_pack_cstr(pk, "min");
    if (bounded)
        msgpack_pack_int64(pk, s->min);
    else
        msgpack_pack_nil(pk);
    ab_pack_cstr(pk, "max");
    if (bounded)
        msgpack_pack_int64(pk, s->max);
    else
        msgpack_pack_nil(pk);
    ab_pack_kv_bool(pk, "null_ok", s->flags & AB_SETF_NULL_OK);
    ab_pack_kv_bool(pk, "forced", st && st->forced);
    ab_pack_kv_int(pk, "modified_by", st ? st->modified_by : 0);
    ab_pack_cstr(pk, "date_modified");
    if (st && st->modified_ms)
        msgpack_pack_int64(pk, st->modified_ms);
    else
        msgpack_pack_nil(pk);
}

/* Problems by tab and priority. */
static void s_count(const s_stored *rows, int counts[AB_TAB__COUNT][AB_PRIO__COUNT])
{
    memset(counts, 0, sizeof(int) * AB_TAB__COUNT * AB_PRIO__COUNT);
    char buf[300];
    for (size_t i = 0; i < ab_settings_len; i++)
        if (s_problem(&ab_settings[i], &rows[i], buf, sizeof buf))
            counts[ab_settings[i].tab][ab_settings[i].priority]++;
}

static void s_pack_counts(msgpack_packer *pk, int counts[AB_TAB__COUNT][AB_PRIO__COUNT])
{
    msgpack_pack_map(pk, AB_TAB__COUNT);
    for (int t = 0; t < AB_TAB__COUNT; t++) {
        ab_pack_cstr(pk, ab_setting_tab_name((ab_setting_tab)t));
        msgpack_pack_map(pk, AB_PRIO__COUNT);
        for (int p = 0; p < AB_PRIO__COUNT; p++)
            ab_pack_kv_int(pk, ab_setting_priority_name((ab_setting_priority)p), counts[t][p]);
    }
}

int ab_setting_problem_counts(ab_ctx *ctx, int counts[AB_TAB__COUNT][AB_PRIO__COUNT],
                              ab_setting_priority prio_names, char *names, size_t len,
                              ab_error *err)
{
    s_stored *rows = s_load(ctx, err);
    if (!rows)
        return -1;
    s_count(rows, counts);
    char buf[300];
    size_t n = 0;
    names[0] = '\0';
    for (size_t i = 0; i < ab_settings_len && n < len; i++) {
        const ab_setting *s = &ab_settings[i];
        if (s->priority != prio_names || !s_problem(s, &rows[i], buf, sizeof buf))
            continue;
        int k = snprintf(names + n, len - n, "%s%s", n ? ", " : "", s->name);
        n = k < 0 || (size_t)k >= len - n ? len : n + (size_t)k;
    }
    s_free_stored(rows);
    return 0;
}

/* The row called by the argument name; NULL with not_found (a hint for a wrong case). */
static const ab_setting *s_find(const char *name, size_t len, ab_error *err)
{
    const ab_setting *s = ab_setting_find(name, len);
    if (s)
        return s;
    for (size_t i = 0; i < ab_settings_len; i++)
        if (strlen(ab_settings[i].name) == len &&
            strncasecmp(ab_settings[i].name, name, len) == 0) {
            ab_fail(err, AB_E_NOT_FOUND, "name", "no setting is called '%.*s'; did you mean %s?",
                    (int)(len > 128 ? 128 : len), name, ab_settings[i].name);
            return NULL;
        }
    ab_fail(err, AB_E_NOT_FOUND, "name", "no setting is called '%.*s' (adminctl setting list)",
            (int)(len > 128 ? 128 : len), name);
    return NULL;
}

static const ab_setting *s_arg_setting(ab_ctx *ctx, ab_error *err)
{
    size_t len = 0;
    const char *name = ab_arg_str(ctx, "name", &len);
    return s_find(name ? name : "", name ? len : 0, err);
}

/* MISP's cli_only settings (paths the server reads or runs, switches that let it reach
 * internal addresses) are changed on the host, never through the web: a command the HTTP
 * shim sent (via = "http") may not set or reset them, whoever's key it carries. */
static int s_refuse_over_http(const ab_ctx *ctx, const ab_setting *s, ab_error *err)
{
    if (!ctx->via_http || !(s->flags & AB_SETF_CLI_ONLY))
        return 0;
    return ab_fail(err, AB_E_FORBIDDEN, "name",
                   "%s can only be changed from the command line (adminctl setting set or "
                   "reset over the bus), not over HTTP",
                   s->name);
}

/* The setting a change names, if this command may change it. */
static const ab_setting *s_arg_changeable(ab_ctx *ctx, ab_error *err)
{
    const ab_setting *s = s_arg_setting(ctx, err);
    return s && s_refuse_over_http(ctx, s, err) == 0 ? s : NULL;
}

/* --- reads ------------------------------------------------------------------------------ */

int ab_setting_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t tlen = 0;
    const char *tab_name = ab_arg_str(ctx, "tab", &tlen);
    int tab = tab_name ? ab_setting_tab_from_name(tab_name, tlen) : -1;
    bool problems_only = ab_arg_bool(ctx, "problems", false);
    s_stored *rows = s_load(ctx, err);
    if (!rows)
        return -1;
    bool *pick = calloc(ab_settings_len, sizeof *pick);
    if (!pick) {
        s_free_stored(rows);
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    }
    uint32_t n = 0;
    char buf[300];
    for (size_t i = 0; i < ab_settings_len; i++) {
        const ab_setting *s = &ab_settings[i];
        pick[i] = (tab < 0 || (int)s->tab == tab) &&
                  (!problems_only || s_problem(s, &rows[i], buf, sizeof buf));
        n += pick[i];
    }
    int counts[AB_TAB__COUNT][AB_PRIO__COUNT];
    s_count(rows, counts);
    msgpack_pack_map(pk, 3);
    ab_pack_cstr(pk, "items");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < ab_settings_len; i++)
        if (pick[i])
            s_pack_item(pk, &ab_settings[i], &rows[i], false);
    ab_pack_kv_int(pk, "total", n);
    ab_pack_cstr(pk, "problems");
    s_pack_counts(pk, counts);
    free(pick);
    s_free_stored(rows);
    return 0;
}

int ab_setting_get(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    const ab_setting *s = s_arg_setting(ctx, err);
    if (!s)
        return -1;
    s_stored *rows = s_load(ctx, err);
    if (!rows)
        return -1;
    s_pack_item(pk, s, &rows[s_index(s)], true);
    s_free_stored(rows);
    return 0;
}

int ab_setting_report(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    ab_diag_report *diag = calloc(1, sizeof *diag);
    if (!diag)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    int version = ab_schema_current(ctx->db, err);
    s_stored *rows = version < 0 ? NULL : s_load(ctx, err);
    if (!rows || ab_diagnostics_run(ctx, diag, err) < 0) {
        s_free_stored(rows);
        free(diag);
        return -1;
    }
    int counts[AB_TAB__COUNT][AB_PRIO__COUNT];
    s_count(rows, counts);
    msgpack_pack_map(pk, 5);
    ab_pack_kv_int(pk, "generated", ctx->now_ms);
    ab_pack_cstr(pk, "engine");
    msgpack_pack_map(pk, 3);
    ab_pack_kv_cstr(pk, "name", ctx->engine->name);
    ab_pack_kv_cstr(pk, "version", AB_VERSION);
    ab_pack_kv_int(pk, "schema_version", version);
    ab_pack_cstr(pk, "settings");
    msgpack_pack_array(pk, (uint32_t)ab_settings_len);
    for (size_t i = 0; i < ab_settings_len; i++)
        s_pack_item(pk, &ab_settings[i], &rows[i], false);
    ab_pack_cstr(pk, "problems");
    s_pack_counts(pk, counts);
    ab_pack_cstr(pk, "diagnostics");
    ab_diagnostics_pack(pk, diag);
    s_free_stored(rows);
    free(diag);
    return 0;
}

/* --- changes ------------------------------------------------------------------------------ */

/* A change being made: the row, the old and new effective clear values. */
typedef struct {
    const ab_setting *s;
    bool reset, forced;
    char *old_text;       /* effective before, in clear (NULL = unset) */
    const char *new_text; /* effective after, in clear (NULL = unset) */
    bool was_stored;      /* a value was stored (not only the default) */
    uint64_t version;
} s_change;

/* Lock the settings version (serialising changes), return the old effective value of s in
 * clear in ch->old_text. */
static int s_lock_old(ab_ctx *ctx, s_change *ch, ab_error *err)
{
    int64_t v = 0;
    if (ab_db_scalar(ctx->db, "SELECT version FROM settings_version WHERE id = 1 FOR UPDATE", NULL,
                     &v, err) < 0)
        return -1;
    s_stored *rows = s_load(ctx, err);
    if (!rows)
        return -1;
    const ab_setting *s = ch->s;
    const char *old = s_effective(s, &rows[s_index(s)]);
    ch->was_stored = rows[s_index(s)].value != NULL;
    if (old && (s->flags & AB_SETF_SECRET) && rows[s_index(s)].value) {
        ch->old_text =
            ctx->engine->secret ? ab_settings_open(ctx->engine->secret, s->name, old) : NULL;
        if (!ch->old_text) /* sealed under another server secret: unreadable, so "changed" */
            ch->old_text = strdup("(unreadable)");
    } else {
        ch->old_text = old ? strdup(old) : NULL;
    }
    s_free_stored(rows);
    return 0;
}

/* MISP.host_org_id: an existing local organisation, kept in admin_settings. */
static int s_store_host_org(ab_ctx *ctx, const char *text, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, strtoll(text, NULL, 10));
    ab_rows r;
    if (ab_db_query(ctx->db, "SELECT local FROM organisations WHERE id = ?", &p, &r, err) < 0)
        return -1;
    int rc = ab_rows_next(&r);
    bool local = rc == 1 && ab_rows_int(&r, 0) != 0;
    ab_rows_close(&r);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return ab_fail(err, AB_E_NOT_FOUND, "value", "no organisation has id %s (org list)", text);
    if (!local)
        return ab_fail(err, AB_E_INVALID, "value",
                       "organisation %s is not local: the host organisation must be", text);
    ab_params_init(&p);
    ab_param_cstr(&p, text);
    return ab_db_run(ctx->db,
                     "INSERT INTO admin_settings (setting, value) VALUES ('host_org_id', ?) "
                     "ON DUPLICATE KEY UPDATE value = VALUES(value)",
                     &p, NULL, NULL, err);
}

static int s_store(ab_ctx *ctx, s_change *ch, ab_error *err)
{
    const ab_setting *s = ch->s;
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, s->name);
    if (ch->reset)
        return ab_db_run(ctx->db, "DELETE FROM settings WHERE name = ?", &p, NULL, NULL, err);
    if (s->hook == AB_HOOK_HOST_ORG)
        return s_store_host_org(ctx, ch->new_text, err);
    char *sealed = NULL;
    if (s->flags & AB_SETF_SECRET) {
        if (!ctx->engine->secret)
            return ab_fail(err, AB_E_UNAVAILABLE, NULL,
                           "this engine has no server secret to seal %s with", s->name);
        sealed = ab_settings_seal(ctx->engine->secret, s->name, ch->new_text);
        if (!sealed)
            return ab_fail(err, AB_E_INTERNAL, NULL, "sealing the value failed");
    }
    ab_param_cstr(&p, sealed ? sealed : ch->new_text);
    ab_param_int(&p, ch->forced);
    ab_param_int(&p, ctx->who->user_id);
    int rc = ab_db_run(ctx->db,
                       "INSERT INTO settings (name, value, forced, modified_by, date_modified) "
                       "VALUES (?, ?, ?, ?, UTC_TIMESTAMP(3)) ON DUPLICATE KEY UPDATE value = "
                       "VALUES(value), forced = VALUES(forced), modified_by = "
                       "VALUES(modified_by), date_modified = VALUES(date_modified)",
                       &p, NULL, NULL, err);
    free(sealed);
    return rc;
}

typedef struct {
    const s_change *ch;
    uint32_t user_id;
} s_event_data;

static void s_pack_event(msgpack_packer *pk, const void *arg)
{
    const s_event_data *d = arg;
    msgpack_pack_map(pk, 5);
    ab_pack_kv_cstr(pk, "name", d->ch->s->name);
    ab_pack_kv_int(pk, "version", (int64_t)d->ch->version);
    ab_pack_kv_bool(pk, "forced", d->ch->forced);
    ab_pack_kv_bool(pk, "reset", d->ch->reset);
    ab_pack_kv_int(pk, "user_id", d->user_id);
}

/* Bump the version, audit, announce. */
static int s_record(ab_ctx *ctx, s_change *ch, ab_error *err)
{
    const ab_setting *s = ch->s;
    if (ab_db_run(ctx->db,
                  "UPDATE settings_version SET version = LAST_INSERT_ID(version + 1) "
                  "WHERE id = 1",
                  NULL, &ch->version, NULL, err) < 0)
        return -1;
    ab_change c;
    ab_change_init(&c);
    const char *old = s_audit_text(s, ch->old_text), *now = s_audit_text(s, ch->new_text);
    ab_change_add(&c, s->name, old, strlen(old), now, strlen(now));
    const char *title = ch->reset    ? "Server setting reset to its default"
                        : ch->forced ? "Server setting changed (forced: validation skipped)"
                                     : "Server setting changed";
    char topic[160];
    snprintf(topic, sizeof topic, "setting.%s.changed", s->name);
    s_event_data d = {ch, ctx->who->user_id};
    int rc = ab_ctx_audit(ctx, "Server", 0, "serverSettingsEdit", title, ab_change_text(&c));
    if (rc == 0)
        rc = ab_events_push(ctx->events, topic, ctx->now_ms, s_pack_event, &d);
    ab_change_free(&c);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "out of memory") : 0;
}

static bool s_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Apply a change (new_text NULL with reset) and pack the result. */
static int s_apply(ab_ctx *ctx, s_change *ch, msgpack_packer *pk, ab_error *err)
{
    const ab_setting *s = ch->s;
    if (s->flags & AB_SETF_READONLY)
        return ab_fail(err, AB_E_INVALID, "name", "%s is not editable: %s", s->name,
                       s->description);
    if (ch->reset && s->hook == AB_HOOK_HOST_ORG)
        return ab_fail(err, AB_E_INVALID, "name",
                       "%s has no default to return to: set another local organisation", s->name);
    if (s_lock_old(ctx, ch, err) < 0)
        return -1;
    if (ch->reset)
        ch->new_text = s->def && *s->def ? s->def : NULL;
    /* A reset changes something only when a value was stored. */
    bool changed = ch->reset ? ch->was_stored : !s_same(ch->old_text, ch->new_text);
    if (changed && (s_store(ctx, ch, err) < 0 || s_record(ctx, ch, err) < 0))
        return -1;
    msgpack_pack_map(pk, 6);
    ab_pack_kv_cstr(pk, "name", s->name);
    ab_pack_cstr(pk, "value");
    s_pack_shown(pk, s, ch->new_text);
    ab_pack_cstr(pk, "previous");
    s_pack_shown(pk, s, ch->old_text);
    ab_pack_kv_bool(pk, "changed", changed);
    ab_pack_kv_bool(pk, "forced", ch->forced && changed);
    ab_pack_kv_int(pk, "version", (int64_t)(changed ? ch->version : ab_settings_version()));
    return 0;
}

/* Remove the stored value of s: its default applies (setting.reset, and setting.set of an
 * empty value, which a row cannot hold). */
static int s_reset(ab_ctx *ctx, const ab_setting *s, msgpack_packer *pk, ab_error *err)
{
    s_change ch = {.s = s, .reset = true};
    int rc = s_apply(ctx, &ch, pk, err);
    free(ch.old_text);
    return rc;
}

/* setting.set and setting.baseurl: cast, validate (unless forced), apply. */
static int s_set(ab_ctx *ctx, const ab_setting *s, const msgpack_object *value, msgpack_packer *pk,
                 ab_error *err)
{
    s_change ch = {.s = s, .forced = ab_arg_bool(ctx, "force", false)};
    if (s->flags & AB_SETF_READONLY)
        return ab_fail(err, AB_E_INVALID, "name", "%s is not editable: %s", s->name,
                       s->description);
    char *text = ab_setting_cast(s, value, err);
    if (!text)
        return -1;
    if (!ch.forced && ab_setting_validate(s, text, err) < 0) {
        free(text);
        return -1;
    }
    if (!*text) { /* empty: nothing to store, so the setting is unset and its default applies */
        free(text);
        return s_reset(ctx, s, pk, err);
    }
    ch.new_text = text;
    int rc = s_apply(ctx, &ch, pk, err);
    free(ch.old_text);
    free(text);
    return rc;
}

int ab_setting_set(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    const ab_setting *s = s_arg_changeable(ctx, err);
    const msgpack_object *value = ctx->args ? ab_map_get(ctx->args, "value") : NULL;
    if (!s)
        return -1;
    if (!value)
        return ab_fail(err, AB_E_INVALID, "value", "value is required");
    return s_set(ctx, s, value, pk, err);
}

int ab_setting_baseurl(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    const ab_setting *s = ab_setting_find("MISP.baseurl", strlen("MISP.baseurl"));
    size_t len = 0;
    const char *url = ab_arg_str(ctx, "baseurl", &len);
    msgpack_object value = {.type = MSGPACK_OBJECT_STR};
    value.via.str.ptr = url ? url : "";
    value.via.str.size = url ? (uint32_t)len : 0;
    if (s_refuse_over_http(ctx, s, err) < 0)
        return -1;
    int rc = s_set(ctx, s, &value, pk, err);
    if (rc < 0 && strcmp(err->field, "value") == 0) /* the argument is called baseurl here */
        snprintf(err->field, sizeof err->field, "baseurl");
    return rc;
}

int ab_setting_reset(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    const ab_setting *s = s_arg_changeable(ctx, err);
    return s ? s_reset(ctx, s, pk, err) : -1;
}
