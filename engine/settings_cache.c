/* settings_cache.c — see settings_cache.h. */
#include "settings_cache.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define SEAL_PREFIX "enc:v1:"
#define NONCE_LEN   12
#define TAG_LEN     16

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

/* --- sealing secrets -------------------------------------------------------------------- */

static void s_seal_key(const ab_secret *key, uint8_t out[AB_DIGEST_LEN])
{
    static const char label[] = "adminbus settings v1";
    ab_secret_digest(key, label, sizeof label - 1, out);
}

char *ab_settings_seal(const ab_secret *key, const char *name, const char *plain)
{
    size_t plen = strlen(plain);
    size_t blen = NONCE_LEN + plen + TAG_LEN;
    uint8_t k[AB_DIGEST_LEN];
    uint8_t *buf = malloc(blen);
    char *out = malloc(sizeof SEAL_PREFIX + (blen + 2) / 3 * 4 + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = buf && out && c && ab_random_bytes(buf, NONCE_LEN) == 0;
    s_seal_key(key, k);
    ok = ok && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
         EVP_EncryptInit_ex(c, NULL, NULL, k, buf) == 1 &&
         EVP_EncryptUpdate(c, NULL, &len, (const uint8_t *)name, (int)strlen(name)) == 1 &&
         EVP_EncryptUpdate(c, buf + NONCE_LEN, &len, (const uint8_t *)plain, (int)plen) == 1 &&
         EVP_EncryptFinal_ex(c, buf + NONCE_LEN + len, &len) == 1 &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, buf + NONCE_LEN + plen) == 1;
    if (ok) {
        memcpy(out, SEAL_PREFIX, sizeof SEAL_PREFIX - 1);
        EVP_EncodeBlock((uint8_t *)out + sizeof SEAL_PREFIX - 1, buf, (int)blen);
    }
    EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(k, sizeof k);
    if (buf)
        OPENSSL_cleanse(buf, blen);
    free(buf);
    if (!ok) {
        free(out);
        return NULL;
    }
    return out;
}

char *ab_settings_open(const ab_secret *key, const char *name, const char *sealed)
{
    size_t plen = sizeof SEAL_PREFIX - 1;
    if (!sealed || strncmp(sealed, SEAL_PREFIX, plen) != 0)
        return NULL;
    const char *b64 = sealed + plen;
    size_t b64len = strlen(b64);
    if (b64len % 4 != 0)
        return NULL;
    uint8_t *buf = malloc(b64len / 4 * 3 + 1);
    if (!buf)
        return NULL;
    int n = EVP_DecodeBlock(buf, (const uint8_t *)b64, (int)b64len);
    if (n >= 0) /* EVP_DecodeBlock counts the padding as bytes */
        n -= (b64len >= 1 && b64[b64len - 1] == '=') + (b64len >= 2 && b64[b64len - 2] == '=');
    if (n < NONCE_LEN + TAG_LEN) {
        free(buf);
        return NULL;
    }
    int clen = n - NONCE_LEN - TAG_LEN, len = 0;
    char *out = malloc((size_t)clen + 1);
    uint8_t k[AB_DIGEST_LEN];
    s_seal_key(key, k);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = out && c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
             EVP_DecryptInit_ex(c, NULL, NULL, k, buf) == 1 &&
             EVP_DecryptUpdate(c, NULL, &len, (const uint8_t *)name, (int)strlen(name)) == 1 &&
             EVP_DecryptUpdate(c, (uint8_t *)out, &len, buf + NONCE_LEN, clen) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, buf + NONCE_LEN + clen) == 1 &&
             EVP_DecryptFinal_ex(c, (uint8_t *)out + len, &len) == 1;
    EVP_CIPHER_CTX_free(c);
    OPENSSL_cleanse(k, sizeof k);
    free(buf);
    if (!ok) {
        if (out)
            OPENSSL_cleanse(out, (size_t)clen + 1);
        free(out);
        return NULL;
    }
    out[clen] = '\0';
    return out;
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
