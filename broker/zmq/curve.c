/* curve.c — ZeroMQ CURVE keys and options (see curve.h). */
#include "zmq/curve.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "wire/endpoint.h"

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* --- which endpoints ---------------------------------------------------------------- */

/* The host of a tcp:// or ws:// endpoint ("src;host:port" connects name their peer last),
 * without brackets, into host. Returns false when there is none. */
static bool s_host(const char *rest, char *host, size_t len)
{
    const char *semi = strrchr(rest, ';');
    if (semi)
        rest = semi + 1;
    size_t n = strcspn(rest, "/"); /* ws:// paths */
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (rest[i] == ':')
            colon = rest + i;
    if (!colon || (size_t)(colon - rest) >= len)
        return false;
    size_t hl = (size_t)(colon - rest);
    if (hl >= 2 && rest[0] == '[' && rest[hl - 1] == ']') {
        rest++;
        hl -= 2;
    }
    memcpy(host, rest, hl);
    host[hl] = '\0';
    return true;
}

bool ab_curve_loopback(const char *endpoint)
{
    if (!strncmp(endpoint, "ipc://", 6) || !strncmp(endpoint, "inproc://", 9))
        return true;
    const char *rest = NULL;
    if (!strncmp(endpoint, "tcp://", 6))
        rest = endpoint + 6;
    else if (!strncmp(endpoint, "ws://", 5))
        rest = endpoint + 5;
    char host[256];
    if (!rest || !s_host(rest, host, sizeof host))
        return false;
    unsigned char a[16];
    if (!strcmp(host, "localhost") || !strcmp(host, "::1"))
        return true;
    return inet_pton(AF_INET, host, a) == 1 && a[0] == 127;
}

int ab_curve_mode_check(const char *mode, char *err, size_t errlen)
{
    if (!strcmp(mode, "auto") || !strcmp(mode, "on"))
        return 0;
    return s_fail(err, errlen, "curve must be auto or on (got '%s')", mode);
}

static bool s_tcp(const char *endpoint)
{
    return strncmp(endpoint, "ipc://", 6) != 0 && strncmp(endpoint, "inproc://", 9) != 0;
}

/* One endpoint on its own: beyond loopback, or forced (curve=on) on a tcp:// one. */
static bool s_wanted_alone(const ab_config *cfg, const char *endpoint)
{
    return !ab_curve_loopback(endpoint) || (!strcmp(cfg->curve, "on") && s_tcp(endpoint));
}

bool ab_curve_clients(const ab_config *cfg)
{
    /* Clients reach commands and events with one set of keys: both or neither. */
    return s_wanted_alone(cfg, cfg->commands_endpoint) || s_wanted_alone(cfg, cfg->events_endpoint);
}

bool ab_curve_wanted(const ab_config *cfg, const char *endpoint)
{
    if (!strcmp(endpoint, cfg->commands_endpoint) || !strcmp(endpoint, cfg->events_endpoint))
        return ab_curve_clients(cfg);
    /* Any local user reaches a loopback port: an internal one off the file system is
     * CURVE, always. */
    if (ab_internal_is(cfg, endpoint))
        return s_tcp(endpoint);
    return s_wanted_alone(cfg, endpoint);
}

bool ab_curve_internal(const ab_config *cfg)
{
    return ab_curve_wanted(cfg, cfg->engine_endpoint) ||
           ab_curve_wanted(cfg, cfg->publish_endpoint) ||
           ab_curve_wanted(cfg, cfg->notices_endpoint);
}

bool ab_curve_any(const ab_config *cfg)
{
    return ab_curve_clients(cfg) || ab_curve_internal(cfg);
}

/* --- keys and key files ------------------------------------------------------------- */

bool ab_curve_key_valid(const char *z85)
{
    uint8_t raw[32];
    return z85 && strlen(z85) == AB_CURVE_KEY_LEN && zmq_z85_decode(raw, z85) != NULL;
}

void ab_curve_path(const char *home, const char *file, char *out, size_t len)
{
    snprintf(out, len, "%s/curve/%s", home, file);
}

void ab_curve_pair_wipe(ab_curve_pair *pair)
{
    volatile char *p = pair->sec;
    for (size_t i = 0; i < sizeof pair->sec; i++)
        p[i] = 0;
}

bool ab_curve_pair_matches(const ab_curve_pair *pair)
{
    char derived[AB_CURVE_KEY_LEN + 1];
    return zmq_curve_public(derived, pair->sec) == 0 && !strcmp(derived, pair->pub);
}

int ab_curve_pair_generate(ab_curve_pair *pair)
{
    memset(pair, 0, sizeof *pair);
    return zmq_curve_keypair(pair->pub, pair->sec) == 0 ? 0 : -1;
}

/* The value of a `name = "…"` line of a certificate into out (AB_CURVE_KEY_LEN + 1). */
static bool s_cert_value(const char *line, const char *name, char *out)
{
    size_t n = strlen(name);
    if (strncmp(line, name, n) != 0)
        return false;
    const char *eq = strchr(line + n, '=');
    if (!eq)
        return false;
    const char *v = eq + 1;
    while (*v == ' ' || *v == '\t' || *v == '"' || *v == '\'')
        v++;
    size_t len = strcspn(v, " \t\"'\r\n");
    if (len != AB_CURVE_KEY_LEN)
        return false;
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

static int s_check_private(FILE *f, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        return s_fail(err, errlen,
                      "%s holds a secret key but is readable by others (mode %03o): chmod 600 %s",
                      path, (unsigned)(st.st_mode & 0777), path);
    return 0;
}

int ab_curve_pair_read(const char *path, ab_curve_pair *pair, bool need_secret, char *err,
                       size_t errlen)
{
    memset(pair, 0, sizeof *pair);
    FILE *f = fopen(path, "r");
    if (!f)
        return s_fail(err, errlen, "cannot read the key file %s: %s", path, strerror(errno));
    if (need_secret && s_check_private(f, path, err, errlen) < 0) {
        fclose(f);
        return -1;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (*s != '#' && !s_cert_value(s, "public-key", pair->pub))
            s_cert_value(s, "secret-key", pair->sec);
    }
    memset(line, 0, sizeof line);
    fclose(f);
    if (!ab_curve_key_valid(pair->pub))
        return s_fail(err, errlen, "%s holds no valid public-key line", path);
    if (need_secret && !ab_curve_key_valid(pair->sec)) {
        ab_curve_pair_wipe(pair);
        return s_fail(err, errlen, "%s holds no valid secret-key line", path);
    }
    if (need_secret && !ab_curve_pair_matches(pair)) {
        ab_curve_pair_wipe(pair);
        return s_fail(err, errlen, "%s: its public key does not belong to its secret key", path);
    }
    if (!need_secret)
        ab_curve_pair_wipe(pair);
    return 0;
}

static void s_cert_text(FILE *f, const ab_curve_pair *pair, bool with_secret)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    fprintf(f, "#   ****  Generated on %s by adminbus  ****\n", when);
    if (with_secret)
        fprintf(f, "#   ZeroMQ CURVE **Secret** Certificate\n"
                   "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n");
    else
        fprintf(f, "#   ZeroMQ CURVE Public Certificate\n"
                   "#   Exchange securely, or use a secure mechanism to verify the contents\n"
                   "#   of this file after exchange.\n");
    fprintf(f, "\nmetadata\ncurve\n    public-key = \"%s\"\n", pair->pub);
    if (with_secret)
        fprintf(f, "    secret-key = \"%s\"\n", pair->sec);
}

int ab_curve_pair_write(const char *path, const ab_curve_pair *pair, bool with_secret, char *err,
                        size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, with_secret ? 0600 : 0644);
    if (fd < 0) {
        int e = errno;
        s_fail(err, errlen, "cannot create %s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return s_fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
    }
    s_cert_text(f, pair, with_secret);
    bool ok = fflush(f) == 0 && fsync(fd) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(path);
        return s_fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

/* Create home/curve (0700) when absent. */
static int s_folder(const char *home, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/curve", home);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return s_fail(err, errlen, "cannot create %s: %s", dir, strerror(errno));
    return 0;
}

/* Write a fresh pair to a temporary name, then link it to path: link refuses an existing
 * path, so when two processes race, one pair wins and both read it. */
static int s_create(const char *path, char *err, size_t errlen)
{
    char tmp[4200];
    ab_curve_pair pair;
    if (ab_curve_pair_generate(&pair) < 0)
        return s_fail(err, errlen, "cannot generate a CURVE key pair: %s", zmq_strerror(errno));
    /* unique per call: an engine's apply threads may get here at once */
    uint64_t nonce = 0;
    if (getrandom(&nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
        nonce = (uint64_t)(uintptr_t)&pair ^ (uint64_t)time(NULL);
    snprintf(tmp, sizeof tmp, "%s.%ld.%016llx.tmp", path, (long)getpid(),
             (unsigned long long)nonce);
    int rc = ab_curve_pair_write(tmp, &pair, true, err, errlen);
    ab_curve_pair_wipe(&pair);
    if (rc < 0)
        return -1;
    if (link(tmp, path) < 0 && errno != EEXIST)
        rc = s_fail(err, errlen, "cannot create %s: %s", path, strerror(errno));
    unlink(tmp);
    return rc;
}

int ab_curve_pair_ensure(const char *home, const char *name, ab_curve_pair *pair, char *err,
                         size_t errlen)
{
    char path[4096];
    ab_curve_path(home, name, path, sizeof path);
    if (access(path, F_OK) < 0 &&
        (s_folder(home, err, errlen) < 0 || s_create(path, err, errlen) < 0))
        return -1;
    return ab_curve_pair_read(path, pair, true, err, errlen);
}

/* --- the allowed clients ------------------------------------------------------------ */

int ab_curve_allowed_scan(const char *path, const char *key, int *nkeys, bool *found, char *err,
                          size_t errlen)
{
    *nkeys = 0;
    *found = false;
    FILE *f = fopen(path, "r");
    if (!f)
        return s_fail(err, errlen, "cannot read the allowed-clients file %s: %s", path,
                      strerror(errno));
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        s[strcspn(s, " \t\r\n")] = '\0'; /* the first word: Z85 keys may hold a '#' */
        if (!*s || *s == '#')
            continue;
        if (!ab_curve_key_valid(s)) {
            rc = s_fail(err, errlen,
                        "%s:%d: not a Z85 public key of 40 characters (one key per line, '#' "
                        "comments)",
                        path, lineno);
            break;
        }
        (*nkeys)++;
        if (key && !strcmp(s, key))
            *found = true;
    }
    fclose(f);
    return rc;
}

/* --- the connecting side ------------------------------------------------------------ */

int ab_curve_client_set(void *sock, const char *server_pub, const ab_curve_pair *client, char *err,
                        size_t errlen)
{
    if (!ab_curve_key_valid(server_pub))
        return s_fail(err, errlen, "the server's public key must be 40 Z85 characters");
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, AB_CURVE_KEY_LEN + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, client->pub, AB_CURVE_KEY_LEN + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, client->sec, AB_CURVE_KEY_LEN + 1) != 0)
        return s_fail(err, errlen, "cannot set the CURVE keys: %s", zmq_strerror(errno));
    return 0;
}

/* The keys of a daemon on an internal tcp:// endpoint, never made here: a pair made on a
 * host other than the broker's would not be the broker's. The server's public key comes
 * from server.pub (the broker rewrites it at each start; the file other hosts get a copy
 * of), else from server.key. */
static int s_internal_keys(const ab_config *cfg, const char *endpoint, ab_curve_pair *server,
                           ab_curve_pair *internal, char *err, size_t errlen)
{
    char path[4096], why[4400];
    ab_curve_path(cfg->home, "server.pub", path, sizeof path);
    int rc = ab_curve_pair_read(path, server, false, why, sizeof why);
    if (rc < 0 && access(path, F_OK) < 0) {
        ab_curve_path(cfg->home, "server.key", path, sizeof path);
        rc = ab_curve_pair_read(path, server, false, why, sizeof why);
    }
    if (rc == 0) {
        ab_curve_path(cfg->home, "internal.key", path, sizeof path);
        rc = ab_curve_pair_read(path, internal, true, why, sizeof why);
    }
    if (rc < 0)
        s_fail(err, errlen,
               "%s uses CURVE with the daemons' key: %s. On the broker's host, run "
               "'adminbus-broker --curve-init'; on any other host, copy curve/internal.key "
               "(keep it mode 0600) and curve/server.pub from the broker's $ADMINBUS_HOME to "
               "%s/curve/",
               endpoint, why, cfg->home);
    return rc;
}

int ab_curve_daemon_set(void *sock, const char *endpoint, char *err, size_t errlen)
{
    const ab_config *cfg = ab_config_process();
    if (!cfg || !ab_curve_wanted(cfg, endpoint))
        return 0;
    ab_curve_pair server, internal;
    int rc = 0;
    if (ab_internal_is(cfg, endpoint))
        rc = s_internal_keys(cfg, endpoint, &server, &internal, err, errlen);
    else if ((rc = ab_curve_pair_ensure(cfg->home, "server.key", &server, err, errlen)) == 0)
        rc = ab_curve_pair_ensure(cfg->home, "internal.key", &internal, err, errlen);
    ab_curve_pair_wipe(&server); /* a client needs only the server's public key */
    if (rc == 0)
        rc = ab_curve_client_set(sock, server.pub, &internal, err, errlen);
    ab_curve_pair_wipe(&internal);
    return rc;
}
