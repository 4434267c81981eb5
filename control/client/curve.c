/* curve.c — adminctl and ZeroMQ CURVE: the client key a socket connects with, and the
 * client-side verb `adminctl curve` (keygen, allow, revoke, server-key). See cli.h and
 * broker/zmq/curve.h.
 *
 * A client uses CURVE when ADMINBUS_CURVE_SERVERKEY is set (environment, then
 * $ADMINBUS_HOME/env); its own pair comes from ADMINBUS_CURVE_KEYFILE (a key file from
 * `adminctl curve keygen`) or from ADMINBUS_CURVE_PUBLICKEY and ADMINBUS_CURVE_SECRETKEY.
 * A secret key is never taken from the command line (argv is visible to every user). */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zmq/curve.h"

/* --- the client's keys ---------------------------------------------------------------- */

/* A setting from the environment, else from $ADMINBUS_HOME/env; NULL when absent. */
static char *s_setting(const char *name)
{
    const char *v = getenv(name);
    if (v && *v)
        return strdup(v);
    const char *home_env = getenv("ADMINBUS_HOME");
    char *home = home_env && *home_env ? strdup(home_env) : ctl_default_home();
    char path[4096], *found = NULL;
    if (!home)
        return NULL;
    snprintf(path, sizeof path, "%s/env", home);
    free(home);
    if (ctl_envfile_get(path, name, &found) == 1 && *found)
        return found;
    free(found);
    return NULL;
}

/* The client's pair: from the key file, else from the two variables. */
static int s_client_pair(ab_curve_pair *pair, char *err, size_t errlen)
{
    char *file = s_setting("ADMINBUS_CURVE_KEYFILE");
    if (file) {
        int rc = ab_curve_pair_read(file, pair, true, err, errlen);
        free(file);
        return rc;
    }
    char *pub = s_setting("ADMINBUS_CURVE_PUBLICKEY"), *sec = s_setting("ADMINBUS_CURVE_SECRETKEY");
    int rc = -1;
    memset(pair, 0, sizeof *pair);
    if (!pub || !sec) {
        snprintf(err, errlen,
                 "ADMINBUS_CURVE_SERVERKEY is set but no client key: set "
                 "ADMINBUS_CURVE_KEYFILE (a file from 'adminctl curve keygen FILE'), "
                 "or ADMINBUS_CURVE_PUBLICKEY and ADMINBUS_CURVE_SECRETKEY");
    } else if (!ab_curve_key_valid(pub) || !ab_curve_key_valid(sec)) {
        snprintf(err, errlen,
                 "ADMINBUS_CURVE_PUBLICKEY and ADMINBUS_CURVE_SECRETKEY must be 40 "
                 "Z85 characters each");
    } else {
        memcpy(pair->pub, pub, sizeof pair->pub);
        memcpy(pair->sec, sec, sizeof pair->sec);
        rc = ab_curve_pair_matches(pair) ? 0 : -1;
        if (rc < 0)
            snprintf(err, errlen,
                     "ADMINBUS_CURVE_PUBLICKEY is not the public key of "
                     "ADMINBUS_CURVE_SECRETKEY");
    }
    if (sec)
        memset(sec, 0, strlen(sec));
    free(pub);
    free(sec);
    return rc;
}

int ctl_curve_apply(void *sock, char *err, size_t errlen)
{
    char *server = s_setting("ADMINBUS_CURVE_SERVERKEY");
    if (!server)
        return 0; /* plain: loopback and ipc:// need no key */
    ab_curve_pair pair;
    int rc = s_client_pair(&pair, err, errlen);
    if (rc == 0 && !ab_curve_key_valid(server)) {
        snprintf(err, errlen,
                 "ADMINBUS_CURVE_SERVERKEY must be 40 Z85 characters (adminctl "
                 "curve server-key prints it on the broker's host)");
        rc = -1;
    }
    if (rc == 0)
        rc = ab_curve_client_set(sock, server, &pair, err, errlen);
    ab_curve_pair_wipe(&pair);
    free(server);
    return rc;
}

void ctl_curve_hint(FILE *f)
{
    char *server = s_setting("ADMINBUS_CURVE_SERVERKEY");
    ab_curve_pair pair;
    char err[1024];
    if (server && s_client_pair(&pair, err, sizeof err) == 0)
        fprintf(f,
                "adminctl: with CURVE, a key the broker does not allow gets no reply: if its log "
                "says it refused %s, ask its operator to run: adminctl curve allow '%s'\n",
                pair.pub, pair.pub);
    if (server)
        ab_curve_pair_wipe(&pair);
    free(server);
}

/* --- adminctl curve ---------------------------------------------------------------------- */

static char *s_home(void)
{
    const char *home = getenv("ADMINBUS_HOME");
    return home && *home ? strdup(home) : ctl_default_home();
}

static int s_keygen(const char *path)
{
    ab_curve_pair pair;
    char err[1024];
    if (ab_curve_pair_generate(&pair) < 0) {
        fprintf(stderr, "adminctl: cannot generate a CURVE key pair\n");
        return CTL_EXIT_REFUSED;
    }
    int rc = ab_curve_pair_write(path, &pair, true, err, sizeof err);
    ab_curve_pair_wipe(&pair);
    if (rc < 0) {
        fprintf(stderr, "adminctl: %s%s\n", err,
                errno == EEXIST ? " (a key file is never overwritten: choose another name)" : "");
        return CTL_EXIT_REFUSED;
    }
    printf("%s\n", pair.pub);
    fprintf(stderr,
            "adminctl: wrote a CURVE key pair to %s (mode 0600; the secret key stays there).\n"
            "  On the broker's host, allow it:  adminctl curve allow '%s'\n"
            "  Here, connect with it:           ADMINBUS_CURVE_KEYFILE=%s\n"
            "                                   ADMINBUS_CURVE_SERVERKEY=<adminctl curve "
            "server-key on the broker's host>\n",
            path, pair.pub, path);
    return CTL_EXIT_OK;
}

/* KEY itself, or the public key of a key file named KEY. */
static int s_public_key(const char *arg, char out[AB_CURVE_KEY_LEN + 1])
{
    ab_curve_pair pair;
    char err[1024];
    if (ab_curve_key_valid(arg)) {
        snprintf(out, AB_CURVE_KEY_LEN + 1, "%s", arg);
        return 0;
    }
    if (access(arg, R_OK) == 0 && ab_curve_pair_read(arg, &pair, false, err, sizeof err) == 0) {
        snprintf(out, AB_CURVE_KEY_LEN + 1, "%s", pair.pub);
        return 0;
    }
    fprintf(stderr, "adminctl: '%s' is neither a Z85 public key (40 characters) nor a key file\n",
            arg);
    return -1;
}

static void s_allowed_path(char *out, size_t len)
{
    char *home = s_home();
    ab_curve_path(home ? home : "var", "allowed_clients", out, len);
    free(home);
}

static int s_allow(const char *arg, const char *comment)
{
    char key[AB_CURVE_KEY_LEN + 1], path[4096], err[1024];
    if (s_public_key(arg, key) < 0)
        return CTL_EXIT_USAGE;
    s_allowed_path(path, sizeof path);
    int nkeys = 0;
    bool found = false;
    if (access(path, F_OK) == 0 &&
        ab_curve_allowed_scan(path, key, &nkeys, &found, err, sizeof err) < 0) {
        fprintf(stderr, "adminctl: %s: fix that line first\n", err);
        return CTL_EXIT_REFUSED;
    }
    if (found) {
        printf("%s is already allowed (%s)\n", key, path);
        return CTL_EXIT_OK;
    }
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash) {
        *slash = '\0';
        mkdir(dir, 0700); /* the curve folder; an error shows at fopen */
    }
    free(dir);
    FILE *f = fopen(path, "a");
    if (!f || fprintf(f, "%s%s%s\n", key, comment ? "  # " : "", comment ? comment : "") < 0 ||
        fclose(f) != 0) {
        fprintf(stderr, "adminctl: cannot write %s: %s\n", path, strerror(errno));
        return CTL_EXIT_REFUSED;
    }
    printf("allowed %s (%s); new connections with it are accepted now\n", key, path);
    return CTL_EXIT_OK;
}

/* Copy path to a temporary file without the lines whose key is key; rename it over path. */
static int s_revoke(const char *arg)
{
    char key[AB_CURVE_KEY_LEN + 1], path[4096], tmp[4200], line[1024];
    if (s_public_key(arg, key) < 0)
        return CTL_EXIT_USAGE;
    s_allowed_path(path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *in = fopen(path, "r"), *out = in ? fopen(tmp, "w") : NULL;
    int removed = 0;
    while (out && fgets(line, sizeof line, in)) {
        char *s = line + strspn(line, " \t");
        if (!strncmp(s, key, AB_CURVE_KEY_LEN) && strchr(" \t#\r\n", s[AB_CURVE_KEY_LEN]))
            removed++;
        else
            fputs(line, out);
    }
    bool ok = out && fclose(out) == 0 && (removed == 0 || rename(tmp, path) == 0);
    if (in)
        fclose(in);
    unlink(tmp);
    if (!ok) {
        fprintf(stderr, "adminctl: cannot rewrite %s: %s\n", path, strerror(errno));
        return CTL_EXIT_REFUSED;
    }
    if (!removed) {
        fprintf(stderr, "adminctl: %s is not in %s\n", key, path);
        return CTL_EXIT_REFUSED;
    }
    printf("revoked %s (%s); new connections with it are refused now\n", key, path);
    return CTL_EXIT_OK;
}

static int s_server_key(void)
{
    char path[4096], err[1024];
    char *home = s_home();
    ab_curve_pair pair;
    ab_curve_path(home ? home : "var", "server.pub", path, sizeof path);
    free(home);
    if (ab_curve_pair_read(path, &pair, false, err, sizeof err) < 0) {
        fprintf(stderr, "adminctl: %s (the broker writes it when an endpoint uses CURVE)\n", err);
        return CTL_EXIT_REFUSED;
    }
    printf("%s\n", pair.pub);
    return CTL_EXIT_OK;
}

void ctl_help_curve(FILE *f)
{
    fprintf(
        f, "Usage: adminctl curve keygen FILE | allow KEY|FILE [COMMENT] | revoke KEY|FILE |\n"
           "                      server-key\n"
           "\n"
           "ZeroMQ CURVE keys. Endpoints bound beyond loopback (or all tcp:// ones with curve=on)\n"
           "accept only clients whose public key is allowed on the broker's host.\n"
           "\n"
           "  keygen FILE      write a new client key pair to FILE (mode 0600, never overwritten)\n"
           "                   and print its public key; the secret key is never printed\n"
           "  allow KEY        add a client's public key (or a key file's) to\n"
           "                   $ADMINBUS_HOME/curve/allowed_clients; effective at once\n"
           "  revoke KEY       remove it; new connections with it are refused at once\n"
           "  server-key       print the broker's public key ($ADMINBUS_HOME/curve/server.pub)\n"
           "\n"
           "A client connects with CURVE when ADMINBUS_CURVE_SERVERKEY is set (environment or\n"
           "$ADMINBUS_HOME/env), with ADMINBUS_CURVE_KEYFILE=FILE, or ADMINBUS_CURVE_PUBLICKEY\n"
           "and ADMINBUS_CURVE_SECRETKEY; never on the command line.\n");
}

int ctl_curve_main(int argc, char **argv)
{
    const char *verb = argc > 1 ? argv[1] : "";
    if (argc == 3 && !strcmp(verb, "keygen"))
        return s_keygen(argv[2]);
    if ((argc == 3 || argc == 4) && !strcmp(verb, "allow"))
        return s_allow(argv[2], argc == 4 ? argv[3] : NULL);
    if (argc == 3 && !strcmp(verb, "revoke"))
        return s_revoke(argv[2]);
    if (argc == 2 && !strcmp(verb, "server-key"))
        return s_server_key();
    if (argc == 2 && (!strcmp(verb, "--help") || !strcmp(verb, "-h") || !strcmp(verb, "help"))) {
        ctl_help_curve(stdout);
        return CTL_EXIT_OK;
    }
    fprintf(stderr, "adminctl: curve: expected keygen FILE, allow KEY, revoke KEY or server-key "
                    "(adminctl curve --help)\n");
    return CTL_EXIT_USAGE;
}
