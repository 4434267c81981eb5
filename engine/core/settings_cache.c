/* settings_cache.c — see settings_cache.h. */
#include "core/settings_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "wire/log.h"
#include "auth/seal.h"

static struct {
    pthread_mutex_t lock;
    bool loaded;
    uint64_t version;
    char **stored; /* by catalog index; NULL = not stored (the default applies) */
    bool have_base_level;
    ab_log_level base_level; /* the configured log level, restored when debug is 0 */
} s_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* --- loading --------------------------------------------------------------------------- */

static void s_free_values(char **v)
{
    for (size_t i = 0; v && i < ab_settings_len; i++)
        free(v[i]);
    free(v);
}

static int s_put(char **values, const char *name, size_t len, const char *value)
{
    const ab_setting *s = ab_setting_find(name, len);
    if (!s)
        return 0; /* a row of a newer catalog: ignored */
    size_t i = (size_t)(s - ab_settings);
    free(values[i]);
    values[i] = strdup(value ? value : "");
    return values[i] ? 0 : -1;
}

/* Every stored value: the settings table, and the host organisation kept in
 * admin_settings. */
static char **s_load(ab_db *db, ab_error *err)
{
    char **values = calloc(ab_settings_len, sizeof *values);
    if (!values) {
        ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        return NULL;
    }
    static const char *const queries[] = {
        "SELECT name, value FROM settings",
        "SELECT 'MISP.host_org_id', value FROM admin_settings WHERE setting = 'host_org_id'"};
    for (size_t q = 0; q < 2; q++) {
        ab_rows rows;
        if (ab_db_query(db, queries[q], NULL, &rows, err) < 0) {
            s_free_values(values);
            return NULL;
        }
        int rc;
        while ((rc = ab_rows_next(&rows)) == 1) {
            size_t len = 0;
            const char *name = ab_rows_str(&rows, 0, &len);
            if (name && s_put(values, name, len, ab_rows_str(&rows, 1, NULL)) < 0)
                rc = -1;
            if (rc < 0)
                break;
        }
        ab_rows_close(&rows);
        if (rc < 0) {
            s_free_values(values);
            ab_fail(err, AB_E_INTERNAL, NULL, "reading the settings failed");
            return NULL;
        }
    }
    return values;
}

static const char *s_effective(char **values, size_t i)
{
    return values && values[i] ? values[i] : ab_settings[i].def;
}

static bool s_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The process-side apply hooks of the settings whose effective value changed. Called with
 * the lock held. */
static void s_apply_hooks(char **before, char **after, bool first)
{
    for (size_t i = 0; i < ab_settings_len; i++) {
        const ab_setting *s = &ab_settings[i];
        if (s->hook != AB_HOOK_LOG_LEVEL)
            continue;
        const char *now = s_effective(after, i);
        if (!first && s_same(s_effective(before, i), now))
            continue;
        if (!s_cache.have_base_level) {
            s_cache.base_level = ab_log_threshold;
            s_cache.have_base_level = true;
        }
        bool debug = now && strcmp(now, "0") != 0;
        ab_log_threshold = debug ? AB_LOG_DEBUG : s_cache.base_level;
        if (!first || debug)
            AB_INFO("settings: %s is %s: logging at %s level", s->name, now ? now : "unset",
                    debug ? "debug" : "the configured");
    }
}

int ab_settings_sync(ab_db *db, ab_error *err)
{
    int64_t version = 0;
    if (ab_db_scalar(db, "SELECT version FROM settings_version WHERE id = 1", NULL, &version, err) <
        0)
        return -1;
    pthread_mutex_lock(&s_cache.lock);
    bool current = s_cache.loaded && s_cache.version == (uint64_t)version;
    pthread_mutex_unlock(&s_cache.lock);
    if (current)
        return 0;
    char **values = s_load(db, err);
    if (!values)
        return -1;
    pthread_mutex_lock(&s_cache.lock);
    char **old = NULL;
    if (!s_cache.loaded || (uint64_t)version > s_cache.version) {
        bool first = !s_cache.loaded;
        old = s_cache.stored;
        s_cache.stored = values;
        s_cache.version = (uint64_t)version;
        s_cache.loaded = true;
        s_apply_hooks(old, values, first);
        values = NULL;
    }
    pthread_mutex_unlock(&s_cache.lock);
    s_free_values(old);
    s_free_values(values); /* another thread loaded a newer version meanwhile */
    return 0;
}

uint64_t ab_settings_version(void)
{
    pthread_mutex_lock(&s_cache.lock);
    uint64_t v = s_cache.version;
    pthread_mutex_unlock(&s_cache.lock);
    return v;
}

char *ab_settings_get(const char *name)
{
    const ab_setting *s = ab_setting_find(name, strlen(name));
    if (!s)
        return NULL;
    pthread_mutex_lock(&s_cache.lock);
    const char *v = s_effective(s_cache.stored, (size_t)(s - ab_settings));
    char *copy = v && *v ? strdup(v) : NULL;
    pthread_mutex_unlock(&s_cache.lock);
    return copy;
}

bool ab_settings_bool(const char *name)
{
    const ab_setting *s = ab_setting_find(name, strlen(name));
    if (!s)
        return false;
    pthread_mutex_lock(&s_cache.lock);
    const char *v = s_effective(s_cache.stored, (size_t)(s - ab_settings));
    bool on = v && strcmp(v, "true") == 0;
    pthread_mutex_unlock(&s_cache.lock);
    return on;
}

int64_t ab_settings_int(const char *name, int64_t fallback)
{
    char *v = ab_settings_get(name);
    char *end = NULL;
    int64_t n = v ? strtoll(v, &end, 10) : fallback;
    if (v && (end == v || *end))
        n = fallback;
    free(v);
    return n;
}

/* --- sealing secrets (seal.c, under the settings purpose, bound to the setting's name) --- */

char *ab_settings_seal(const ab_secret *key, const char *name, const char *plain)
{
    return ab_seal(key, AB_SEAL_PURPOSE_SETTINGS, name, strlen(name), plain, strlen(plain));
}

char *ab_settings_open(const ab_secret *key, const char *name, const char *sealed)
{
    return (char *)ab_unseal(key, AB_SEAL_PURPOSE_SETTINGS, name, strlen(name), sealed, NULL);
}

int ab_settings_secret(const char *name, const ab_secret *key, char **out)
{
    *out = NULL;
    char *sealed = ab_settings_get(name);
    if (!sealed)
        return 0;
    *out = ab_settings_open(key, name, sealed);
    free(sealed);
    return *out ? 0 : -1;
}
