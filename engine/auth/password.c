/* password.c — see password.h. */
#include "auth/password.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/secret.h"
#include "settings.h"
#include "core/settings_cache.h"

#define SALT_BYTES         16
#define LEN_SETTING        "Security.password_policy_length"
#define COMPLEXITY_SETTING "Security.password_policy_complexity"

void ab_password_free(char *password)
{
    if (password)
        OPENSSL_cleanse(password, strlen(password));
    free(password);
}

/* --- hashing ----------------------------------------------------------------------------- */

static bool s_usable(const char *password)
{
    return password && *password && strlen(password) <= AB_PASSWORD_MAX_BYTES;
}

/* crypt_r into a heap crypt_data (it is ~32 KiB); the result copied, the state wiped.
 * NULL when libxcrypt fails (it then returns NULL or a string starting with '*'). */
static char *s_crypt(const char *password, const char *setting)
{
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (!cd)
        return NULL;
    const char *h = crypt_r(password, setting, cd);
    char *out = h && h[0] != '*' ? strdup(h) : NULL;
    OPENSSL_cleanse(cd, sizeof *cd);
    free(cd);
    return out;
}

int ab_password_hash(const char *password, int cost, char **out)
{
    *out = NULL;
    if (cost == 0)
        cost = AB_PASSWORD_COST;
    if (!s_usable(password) || cost < 1 || cost > AB_PASSWORD_COST_MAX)
        return -1;
    char rbytes[SALT_BYTES], setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (ab_random_bytes(rbytes, sizeof rbytes) != 0)
        return -1;
    const char *s = crypt_gensalt_rn("$y$", (unsigned long)cost, rbytes, (int)sizeof rbytes,
                                     setting, (int)sizeof setting);
    OPENSSL_cleanse(rbytes, sizeof rbytes);
    if (!s || s[0] == '*')
        return -1;
    *out = s_crypt(password, setting);
    return *out ? 0 : -1;
}

/* The hash methods verify accepts: ours, and what MISP accounts may carry. */
static bool s_known_method(const char *hash)
{
    static const char *const prefixes[] = {"$y$", "$2b$", "$2y$", "$2a$", "$6$"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncmp(hash, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

bool ab_password_verify(const char *password, const char *hash)
{
    if (!s_usable(password) || !hash || !s_known_method(hash))
        return false;
    char *mine = s_crypt(password, hash);
    if (!mine)
        return false;
    size_t n = strlen(hash);
    bool ok = strlen(mine) == n && CRYPTO_memcmp(mine, hash, n) == 0;
    OPENSSL_cleanse(mine, strlen(mine));
    free(mine);
    return ok;
}

/* yescrypt's parameter field ("j9T" in "$y$j9T$salt$hash") for each cost, as libxcrypt
 * writes it: a stored hash's field is looked up here to learn the cost it was made with. */
static struct {
    pthread_once_t once;
    char params[AB_PASSWORD_COST_MAX + 1][16];
} s_costs = {.once = PTHREAD_ONCE_INIT};

/* The parameter field of a "$y$…" string into out (empty when there is none). */
static void s_params(const char *h, char *out, size_t len)
{
    out[0] = '\0';
    if (strncmp(h, "$y$", 3) != 0)
        return;
    const char *end = strchr(h + 3, '$');
    if (!end || (size_t)(end - (h + 3)) >= len)
        return;
    memcpy(out, h + 3, (size_t)(end - (h + 3)));
    out[end - (h + 3)] = '\0';
}

static void s_costs_init(void)
{
    char rbytes[SALT_BYTES] = {0}, setting[CRYPT_GENSALT_OUTPUT_SIZE];
    for (int c = 1; c <= AB_PASSWORD_COST_MAX; c++) {
        const char *s = crypt_gensalt_rn("$y$", (unsigned long)c, rbytes, (int)sizeof rbytes,
                                         setting, (int)sizeof setting);
        if (s && s[0] != '*')
            s_params(s, s_costs.params[c], sizeof s_costs.params[c]);
    }
}

bool ab_password_needs_rehash(const char *hash, int cost)
{
    if (cost == 0)
        cost = AB_PASSWORD_COST;
    if (!hash)
        return true;
    char params[16];
    s_params(hash, params, sizeof params);
    if (!params[0])
        return true; /* not yescrypt */
    pthread_once(&s_costs.once, s_costs_init);
    for (int c = 1; c <= AB_PASSWORD_COST_MAX; c++)
        if (s_costs.params[c][0] && strcmp(s_costs.params[c], params) == 0)
            return c < cost;
    return true; /* parameters libxcrypt's cost factors do not make: replace them */
}

/* --- policy ------------------------------------------------------------------------------- */

/* The catalog's default complexity rule (MISP's). */
static const char *s_default_complexity(void)
{
    const ab_setting *s = ab_setting_find(COMPLEXITY_SETTING, strlen(COMPLEXITY_SETTING));
    return s ? s->def : NULL;
}

int ab_password_policy_from_settings(ab_password_policy *p)
{
    p->min_length = ab_settings_int(LEN_SETTING, AB_PASSWORD_MIN_LENGTH_DEFAULT);
    p->complexity = ab_settings_get(COMPLEXITY_SETTING); /* NULL when unset: the default */
    return 0;
}

void ab_password_policy_clear(ab_password_policy *p)
{
    free(p->complexity);
    p->complexity = NULL;
}

static size_t s_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void s_msg(char *msg, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_msg(char *msg, size_t len, const char *fmt, ...)
{
    if (!msg || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
}

ab_password_problem ab_password_check(const ab_password_policy *p, const char *password, char *msg,
                                      size_t len)
{
    s_msg(msg, len, "%s", "");
    if (!password || !*password) {
        s_msg(msg, len, "the password is empty");
        return AB_PW_EMPTY;
    }
    if (strlen(password) > AB_PASSWORD_MAX_BYTES) {
        s_msg(msg, len, "the password is too long: at most %d bytes", AB_PASSWORD_MAX_BYTES);
        return AB_PW_TOO_LONG;
    }
    int64_t min = p && p->min_length > 0 ? p->min_length : AB_PASSWORD_MIN_LENGTH_DEFAULT;
    if ((int64_t)s_chars(password) < min) {
        s_msg(msg, len, "the password is too short: at least %lld characters (%s)", (long long)min,
              LEN_SETTING);
        return AB_PW_TOO_SHORT;
    }
    const char *def = s_default_complexity();
    const char *rule = p && p->complexity && *p->complexity ? p->complexity : def;
    char why[256];
    int m = rule ? ab_setting_regex_match(rule, password, strlen(password), why, sizeof why) : 1;
    if (m < 0 && rule != def) { /* MISP: a rule that does not work means the default */
        rule = def;
        m = ab_setting_regex_match(rule, password, strlen(password), why, sizeof why);
    }
    if (m == 1)
        return AB_PW_OK;
    if (rule == def || (def && strcmp(rule, def) == 0))
        s_msg(msg, len,
              "the password is too simple: it needs upper and lower case letters and a digit or "
              "a special character, or at least 16 characters (%s)",
              COMPLEXITY_SETTING);
    else
        s_msg(msg, len, "the password does not meet the complexity rule: it must match %s (%s)",
              rule, COMPLEXITY_SETTING);
    return AB_PW_COMPLEXITY;
}

/* --- generation ------------------------------------------------------------------------- */

static const char s_upper[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
static const char s_lower[] = "abcdefghijklmnopqrstuvwxyz";
static const char s_digit[] = "0123456789";
static const char s_punct[] = "-_.+=@%";

/* Fill out[n] with characters of the four sets, each character uniform over their union
 * (random bytes beyond the largest multiple of the alphabet's size are drawn again). */
static int s_fill(char *out, size_t n)
{
    char alphabet[sizeof s_upper + sizeof s_lower + sizeof s_digit + sizeof s_punct];
    int k = snprintf(alphabet, sizeof alphabet, "%s%s%s%s", s_upper, s_lower, s_digit, s_punct);
    unsigned limit = 256 - 256 % (unsigned)k;
    uint8_t buf[64];
    size_t have = 0, used = sizeof buf;
    while (have < n) {
        if (used == sizeof buf) {
            if (ab_random_bytes(buf, sizeof buf) != 0) {
                OPENSSL_cleanse(buf, sizeof buf);
                return -1;
            }
            used = 0;
        }
        uint8_t b = buf[used++];
        if (b < limit)
            out[have++] = alphabet[b % (unsigned)k];
    }
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

static bool s_has(const char *pw, const char *set)
{
    return strpbrk(pw, set) != NULL;
}

int ab_password_generate(const ab_password_policy *p, char **out)
{
    *out = NULL;
    size_t n = AB_PASSWORD_GENERATED_LEN;
    if (p && p->min_length > (int64_t)n)
        n = p->min_length > AB_PASSWORD_MAX_BYTES ? AB_PASSWORD_MAX_BYTES : (size_t)p->min_length;
    char *pw = malloc(n + 1);
    if (!pw)
        return -1;
    for (int tries = 0; tries < 100; tries++) {
        if (s_fill(pw, n) != 0)
            break;
        pw[n] = '\0';
        if (s_has(pw, s_upper) && s_has(pw, s_lower) && s_has(pw, s_digit) && s_has(pw, s_punct) &&
            ab_password_check(p, pw, NULL, 0) == AB_PW_OK) {
            *out = pw;
            return 0;
        }
    }
    OPENSSL_cleanse(pw, n + 1);
    free(pw);
    return -1;
}
