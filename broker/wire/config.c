/* config.c — bootstrap configuration loader (see config.h). */
#include "wire/config.h"
#include "wire/endpoint.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name, *def, *help;
    size_t offset;
} s_key;

static const s_key s_keys[] = {
#define AB_CONFIG_ROW(n, d, h) {#n, d, h, offsetof(ab_config, n)},
    AB_CONFIG_X(AB_CONFIG_ROW)
#undef AB_CONFIG_ROW
};
#define NKEYS (sizeof s_keys / sizeof s_keys[0])

static char **s_slot(ab_config *cfg, size_t i)
{
    return (char **)((char *)cfg + s_keys[i].offset);
}

static int s_find(const char *name, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strlen(s_keys[i].name) != len)
            continue;
        size_t j = 0;
        for (; j < len; j++) {
            char c = name[j] == '-' ? '_' : name[j];
            if (c != s_keys[i].name[j])
                break;
        }
        if (j == len)
            return (int)i;
    }
    return -1;
}

static void s_set(ab_config *cfg, size_t i, const char *value)
{
    char **slot = s_slot(cfg, i);
    free(*slot);
    *slot = strdup(value);
}

/* Add (or replace) a pass-through Kafka property; name without the "kafka." prefix. */
static int s_add_prop(ab_config *cfg, const char *name, size_t len, const char *value)
{
    for (size_t i = 0; i < cfg->nkafka; i++)
        if (strlen(cfg->kafka[i].name) == len && strncmp(cfg->kafka[i].name, name, len) == 0) {
            free(cfg->kafka[i].value);
            cfg->kafka[i].value = strdup(value);
            return cfg->kafka[i].value ? 0 : -1;
        }
    ab_config_prop *more = realloc(cfg->kafka, (cfg->nkafka + 1) * sizeof *more);
    if (!more)
        return -1;
    cfg->kafka = more;
    cfg->kafka[cfg->nkafka].name = strndup(name, len);
    cfg->kafka[cfg->nkafka].value = strdup(value);
    cfg->nkafka++;
    return 0;
}

/* True when name (len bytes) is "kafka.<property>" with a property name after the dot. */
static bool s_is_prop(const char *name, size_t len)
{
    size_t plen = strlen(AB_KAFKA_PREFIX);
    return len > plen && strncmp(name, AB_KAFKA_PREFIX, plen) == 0;
}

static char *s_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int s_load_file(ab_config *cfg, const char *path, char *errbuf, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0
                               : (snprintf(errbuf, errlen, "%s: %s", path, strerror(errno)), -1);
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = s_trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(errbuf, errlen, "%s:%d: expected KEY=value", path, lineno);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        char *key = s_trim(s);
        if (s_is_prop(key, strlen(key))) {
            size_t plen = strlen(AB_KAFKA_PREFIX);
            s_add_prop(cfg, key + plen, strlen(key) - plen, s_trim(eq + 1));
            continue;
        }
        int k = s_find(key, strlen(key));
        if (k < 0) {
            snprintf(errbuf, errlen, "%s:%d: unknown key '%s'", path, lineno, key);
            fclose(f);
            return -1;
        }
        s_set(cfg, (size_t)k, s_trim(eq + 1));
    }
    fclose(f);
    return 0;
}

/* The environment variable of key i: ADMINBUS_<NAME IN UPPER CASE>. */
static void s_env_name(size_t i, char *env, size_t len)
{
    size_t n = (size_t)snprintf(env, len, "ADMINBUS_");
    for (const char *p = s_keys[i].name; *p && n < len - 1; p++)
        env[n++] = (char)toupper((unsigned char)*p);
    env[n] = '\0';
}

extern char **environ;

/* ADMINBUS_KAFKA__SECURITY_PROTOCOL=SSL → security.protocol = SSL. */
static void s_load_env_props(ab_config *cfg)
{
    size_t plen = strlen(AB_KAFKA_ENV_PREFIX);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, AB_KAFKA_ENV_PREFIX, plen) != 0 || !eq || eq == *e + plen)
            continue;
        char name[256];
        size_t n = 0;
        for (const char *p = *e + plen; p < eq && n < sizeof name - 1; p++)
            name[n++] = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
        s_add_prop(cfg, name, n, eq + 1);
    }
}

static void s_load_env(ab_config *cfg)
{
    s_load_env_props(cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        char env[64];
        s_env_name(i, env, sizeof env);
        const char *v = getenv(env);
        if (v && *v)
            s_set(cfg, i, v);
    }
}

int ab_config_export(const ab_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        char env[64];
        s_env_name(i, env, sizeof env);
        if (setenv(env, *s_slot((ab_config *)cfg, i), 1) != 0)
            return -1;
    }
    for (size_t i = 0; i < cfg->nkafka; i++) {
        char env[300];
        size_t n = (size_t)snprintf(env, sizeof env, "%s", AB_KAFKA_ENV_PREFIX);
        for (const char *p = cfg->kafka[i].name; *p && n < sizeof env - 1; p++)
            env[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
        env[n] = '\0';
        if (setenv(env, cfg->kafka[i].value, 1) != 0)
            return -1;
    }
    return 0;
}

#define S_PROP (-3) /* s_flag: a --kafka.<property> flag */

/* Parse argv[*i] as a config flag: returns the key index and sets *value (advancing *i
 * past a separate value), S_PROP for a --kafka.<property> flag, -1 when it is not a config
 * flag, -2 when its value is missing. */
static int s_flag(int argc, char **argv, int *i, const char **value)
{
    const char *a = argv[*i];
    if (strncmp(a, "--", 2) != 0 || !a[2])
        return -1;
    const char *eq = strchr(a + 2, '=');
    size_t nlen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    int k = s_is_prop(a + 2, nlen) ? S_PROP : s_find(a + 2, nlen);
    if (k == -1)
        return -1;
    if (eq) {
        *value = eq + 1;
    } else if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        return -2;
    }
    return k;
}

/* Take the flags that name config keys out of argv; keep the rest in order. */
static int s_load_flags(ab_config *cfg, int *argc, char **argv, char *errbuf, size_t errlen)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *value = NULL;
        int start = i;
        int k = s_flag(*argc, argv, &i, &value);
        if (k == -2) {
            snprintf(errbuf, errlen, "%s needs a value", argv[start]);
            return -1;
        }
        if (k == S_PROP) {
            const char *name = argv[start] + 2 + strlen(AB_KAFKA_PREFIX);
            const char *eq = strchr(name, '=');
            s_add_prop(cfg, name, eq ? (size_t)(eq - name) : strlen(name), value);
        } else if (k < 0) {
            argv[out++] = argv[i];
        } else {
            s_set(cfg, (size_t)k, value);
        }
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

/* The home folder decides where adminbus.conf is, so find it first: flag, then env. */
static const char *s_peek_home(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        int k = s_flag(argc, argv, &i, &value);
        if (k >= 0 && strcmp(s_keys[k].name, "home") == 0)
            return value;
    }
    const char *env = getenv("ADMINBUS_HOME");
    return env && *env ? env : NULL;
}

static ab_config s_process;
static bool s_process_set;

const ab_config *ab_config_process(void)
{
    return s_process_set ? &s_process : NULL;
}

/* Keep a copy of the first configuration loaded (see ab_config_process). */
static void s_remember(const ab_config *cfg)
{
    if (s_process_set)
        return;
    for (size_t i = 0; i < NKEYS; i++)
        *s_slot(&s_process, i) = strdup(*s_slot((ab_config *)cfg, i));
    s_process_set = true;
}

int ab_config_load(ab_config *cfg, int *argc, char **argv, char *errbuf, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++)
        s_set(cfg, i, s_keys[i].def);
    const char *home = s_peek_home(*argc, argv);
    if (home)
        s_set(cfg, 0, home);
    char path[4096];
    snprintf(path, sizeof path, "%s/adminbus.conf", cfg->home);
    if (s_load_file(cfg, path, errbuf, errlen) < 0)
        return -1;
    s_load_env(cfg);
    if (s_load_flags(cfg, argc, argv, errbuf, errlen) < 0)
        return -1;
    ab_internal_resolve(cfg);
    s_remember(cfg);
    return 0;
}

void ab_config_free(ab_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        free(*s_slot(cfg, i));
        *s_slot(cfg, i) = NULL;
    }
    for (size_t i = 0; i < cfg->nkafka; i++) {
        free(cfg->kafka[i].name);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    cfg->kafka = NULL;
    cfg->nkafka = 0;
}

const char *ab_config_get(const ab_config *cfg, const char *key)
{
    int k = s_find(key, strlen(key));
    return k < 0 ? NULL : *s_slot((ab_config *)cfg, (size_t)k);
}

void ab_config_usage(void *file)
{
    FILE *f = file;
    fprintf(f, "Configuration (flag, or ADMINBUS_<KEY> in the environment, or KEY=value in "
               "$ADMINBUS_HOME/adminbus.conf):\n");
    for (size_t i = 0; i < NKEYS; i++)
        fprintf(f, "  --%-24s %s (default: %s)\n", s_keys[i].name, s_keys[i].help,
                *s_keys[i].def ? s_keys[i].def : "none");
    fprintf(f, "  --kafka.<property>         any librdkafka client property, passed through "
               "(security.protocol, sasl.*, ssl.*; env ADMINBUS_KAFKA__<PROPERTY>)\n");
}

static char *s_dup_range(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* One DSN parameter, name=value (value up to end). */
static int s_dsn_param(const char *p, const char *end, ab_dsn *out, char *errbuf, size_t errlen)
{
    const char *eq = memchr(p, '=', (size_t)(end - p));
    size_t nlen = eq ? (size_t)(eq - p) : 0;
    if (eq && nlen == 6 && strncmp(p, "socket", 6) == 0 && !out->socket) {
        out->socket = s_dup_range(eq + 1, (size_t)(end - eq - 1));
        return 0;
    }
    if (eq && nlen == 7 && strncmp(p, "timeout", 7) == 0) {
        char digits[16];
        size_t vlen = (size_t)(end - eq - 1);
        snprintf(digits, sizeof digits, "%.*s", (int)(vlen < 15 ? vlen : 15), eq + 1);
        char *stop = NULL;
        unsigned long v = strtoul(digits, &stop, 10);
        if (vlen > 0 && vlen < 15 && *stop == '\0' && digits[0] != '-' && v >= 1 && v <= 86400) {
            out->timeout_s = (unsigned)v;
            return 0;
        }
        snprintf(errbuf, errlen, "db_dsn: timeout must be whole seconds, 1 to 86400 (got '%.*s')",
                 (int)(vlen < 40 ? vlen : 40), eq + 1);
        return -1;
    }
    snprintf(errbuf, errlen,
             "db_dsn: unknown or repeated parameter '%.*s' (known: socket=PATH, timeout=SECONDS)",
             (int)((end - p) < 40 ? (end - p) : 40), p);
    return -1;
}

/* The parameters after '?': name=value pairs separated by '&'. */
static int s_dsn_params(const char *q, ab_dsn *out, char *errbuf, size_t errlen)
{
    while (*q) {
        const char *end = strchr(q, '&');
        if (!end)
            end = q + strlen(q);
        if (s_dsn_param(q, end, out, errbuf, errlen) < 0)
            return -1;
        q = *end ? end + 1 : end;
    }
    return 0;
}

static int s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The user or password of a DSN, percent-decoded (RFC 3986): '%' must start an escape of
 * two hex digits, and %00 is refused (it would cut the value short). The error gives the
 * position, never the value: a password is secret. */
static int s_dsn_decode(const char *what, const char *s, const char *end, char **out, char *errbuf,
                        size_t errlen)
{
    char *d = *out = malloc((size_t)(end - s) + 1);
    if (!d) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    for (const char *c = s; c < end; c++, d++) {
        *d = *c;
        if (*c != '%')
            continue;
        int hi = end - c > 2 ? s_hex(c[1]) : -1, lo = end - c > 2 ? s_hex(c[2]) : -1;
        if (hi < 0 || lo < 0 || hi + lo == 0) {
            snprintf(errbuf, errlen,
                     "db_dsn: the %s has a '%%' at character %d that does not start an escape "
                     "(two hex digits, not 00); a %% itself is written %%25",
                     what, (int)(c - s) + 1);
            return -1;
        }
        *d = (char)(hi * 16 + lo);
        c += 2;
    }
    *d = '\0';
    return 0;
}

/* user[:password], between the scheme and the '@' before the host: split at the first ':'
 * (a ':' in the password may stay as it is), each part percent-decoded. */
static int s_dsn_userinfo(const char *p, const char *at, ab_dsn *out, char *errbuf, size_t errlen)
{
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (s_dsn_decode("user", p, colon ? colon : at, &out->user, errbuf, errlen) < 0)
        return -1;
    return colon ? s_dsn_decode("password", colon + 1, at, &out->password, errbuf, errlen) : 0;
}

/* [host][:port], between the '@' and the '/'; a port is 1 to 65535. */
static int s_dsn_hostport(const char *hp, const char *end, ab_dsn *out, char *errbuf, size_t errlen)
{
    const char *pc = memchr(hp, ':', (size_t)(end - hp));
    out->host = s_dup_range(hp, (size_t)((pc ? pc : end) - hp));
    if (!pc)
        return 0;
    size_t n = (size_t)(end - pc - 1);
    unsigned long port =
        n >= 1 && n <= 5 && strspn(pc + 1, "0123456789") >= n ? strtoul(pc + 1, NULL, 10) : 0;
    if (port < 1 || port > 65535) {
        snprintf(errbuf, errlen, "db_dsn: the port must be a number from 1 to 65535 (got '%.*s')",
                 (int)(n < 20 ? n : 20), pc + 1);
        return -1;
    }
    out->port = (unsigned)port;
    return 0;
}

/* The host part begins after the last '@' before the first '/', '?' or '#' (where RFC 3986
 * ends the authority), so a password may hold '@' and ':' as they are; '/', '?', '#' and
 * '%' in it are percent-encoded. libcurl's URL parser would do the splitting, but it
 * refuses the empty host of the socket form (mariadb://u@/db?socket=PATH) and splits at
 * the first '@'. */
int ab_dsn_parse(const char *dsn, ab_dsn *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *prefix = "mariadb://";
    if (!dsn || strncmp(dsn, prefix, strlen(prefix)) != 0) {
        /* only what stands before the first ':', '/' or '@': the rest may be a password */
        int shown = dsn ? (int)strcspn(dsn, ":/@") : 0;
        snprintf(errbuf, errlen, "db_dsn must start with %s (got '%.*s…')", prefix,
                 shown < 20 ? shown : 20, dsn ? dsn : "");
        return -1;
    }
    const char *p = dsn + strlen(prefix);
    const char *slash = p + strcspn(p, "/?#");
    const char *at = memrchr(p, '@', (size_t)(slash - p));
    if (!at || *slash != '/') {
        snprintf(errbuf, errlen,
                 "db_dsn must look like mariadb://user[:password]@[host][:port]/db%s",
                 strchr(slash, '@') ? " (in the user and password, '/', '?' and '#' are "
                                      "written %2F, %3F and %23)"
                                    : "");
        return -1;
    }
    out->timeout_s = AB_DSN_TIMEOUT_S;
    const char *q = strchr(slash, '?');
    if (s_dsn_userinfo(p, at, out, errbuf, errlen) < 0 ||
        s_dsn_hostport(at + 1, slash, out, errbuf, errlen) < 0)
        goto fail;
    out->database = s_dup_range(slash + 1, q ? (size_t)(q - slash - 1) : strlen(slash + 1));
    if (!out->database || !*out->database) {
        snprintf(errbuf, errlen, "db_dsn names no database");
        goto fail;
    }
    if (q && s_dsn_params(q + 1, out, errbuf, errlen) < 0)
        goto fail;
    return 0;
fail:
    ab_dsn_free(out);
    return -1;
}

void ab_dsn_free(ab_dsn *dsn)
{
    free(dsn->user);
    free(dsn->password);
    free(dsn->host);
    free(dsn->database);
    free(dsn->socket);
    memset(dsn, 0, sizeof *dsn);
}

int ab_config_early_flags(int argc, char **argv, const char *name, void (*usage)(FILE *))
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", name, AB_VERSION);
            return 0;
        }
    }
    return -1;
}

int ab_config_start(ab_config *cfg, int *argc, char **argv, const char *name, void (*usage)(FILE *))
{
    int early = ab_config_early_flags(*argc, argv, name, usage);
    if (early >= 0)
        return early;
    char msg[512];
    if (ab_config_load(cfg, argc, argv, msg, sizeof msg) < 0) {
        fprintf(stderr, "%s: %s\n", name, msg);
        ab_config_free(cfg); /* what it loaded before the error */
        return 2;
    }
    return -1;
}
