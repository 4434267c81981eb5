/* env.c — where adminctl finds the stack: flags, then the environment, then the
 * operator's credentials file $ADMINBUS_HOME/env that ops/run writes (see cli.h). */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- the env file ----------------------------------------------------------------- */

/* A single-quoted value: everything up to the closing quote. */
static char *s_single_quoted(const char *p)
{
    size_t len = strcspn(p, "'");
    return strndup(p, len);
}

/* A double-quoted value: backslash escapes \" \\ \$ \` and the rest literally. */
static char *s_double_quoted(const char *p)
{
    char *out = malloc(strlen(p) + 1);
    size_t n = 0;
    if (!out)
        return NULL;
    for (; *p && *p != '"'; p++) {
        if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
            p++;
        out[n++] = *p;
    }
    out[n] = '\0';
    return out;
}

/* A bare value: up to white space or a comment; backslash escapes the next character. */
static char *s_bare(const char *p)
{
    char *out = malloc(strlen(p) + 1);
    size_t n = 0;
    if (!out)
        return NULL;
    for (; *p && !isspace((unsigned char)*p) && *p != '#'; p++) {
        if (*p == '\\' && p[1])
            p++;
        out[n++] = *p;
    }
    out[n] = '\0';
    return out;
}

static char *s_value(const char *p)
{
    if (*p == '\'')
        return s_single_quoted(p + 1);
    if (*p == '"')
        return s_double_quoted(p + 1);
    return s_bare(p);
}

/* If line assigns key, the start of its value, else NULL. */
static const char *s_assigns(const char *line, const char *key)
{
    while (isspace((unsigned char)*line))
        line++;
    if (strncmp(line, "export", 6) == 0 && isspace((unsigned char)line[6])) {
        line += 6;
        while (isspace((unsigned char)*line))
            line++;
    }
    size_t klen = strlen(key);
    if (strncmp(line, key, klen) != 0 || line[klen] != '=')
        return NULL;
    return line + klen + 1;
}

int ctl_envfile_get(const char *path, const char *key, char **value)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char *line = NULL, *found = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) != -1) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *v = s_assigns(line, key);
        if (!v)
            continue;
        free(found);
        found = s_value(v);
    }
    free(line);
    fclose(f);
    *value = found;
    return found ? 1 : 0;
}

/* The lines of path with every assignment of key replaced by key=value (appended when
 * none), written to out. Returns 0, or -1 when path cannot be read. */
static int s_copy_setting(const char *path, const char *key, const char *value, FILE *out)
{
    FILE *in = fopen(path, "r");
    if (!in)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    bool done = false;
    while (getline(&line, &cap, in) != -1) {
        if (!s_assigns(line, key)) {
            fputs(line, out);
            if (line[strlen(line) - 1] != '\n')
                fputc('\n', out);
        } else if (!done) {
            fprintf(out, "%s=%s\n", key, value);
            done = true;
        }
    }
    free(line);
    fclose(in);
    if (!done)
        fprintf(out, "%s=%s\n", key, value);
    return 0;
}

int ctl_envfile_set(const char *path, const char *key, const char *value)
{
    struct stat st;
    if (strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+/=:") !=
        strlen(value)) {
        errno = EINVAL;
        return -1;
    }
    if (stat(path, &st) != 0)
        return -1;
    size_t len = strlen(path) + sizeof ".XXXXXX";
    char *tmp = malloc(len);
    if (!tmp)
        return -1;
    snprintf(tmp, len, "%s.XXXXXX", path);
    int fd = mkstemp(tmp); /* mode 0600 */
    FILE *out = fd < 0 ? NULL : fdopen(fd, "w");
    int rc = out ? s_copy_setting(path, key, value, out) : -1;
    if (fd >= 0 && fchown(fd, st.st_uid, st.st_gid) < 0 && errno != EPERM)
        rc = -1;
    if (out && (fflush(out) != 0 || fsync(fd) != 0))
        rc = -1;
    if (out ? fclose(out) != 0 : (fd >= 0 && close(fd) != 0))
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    int saved = errno;
    if (rc < 0 && fd >= 0)
        unlink(tmp);
    free(tmp);
    errno = saved;
    return rc;
}

/* --- where the settings come from ------------------------------------------------- */

char *ctl_default_home(void)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return strdup("var");
    exe[n] = '\0';
    /* strip the file name, bin/ and the build folder: what is left is the checkout */
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            return strdup("var");
        *slash = '\0';
    }
    size_t len = strlen(exe) + sizeof "/var";
    char *home = malloc(len);
    if (home)
        snprintf(home, len, "%s/var", exe);
    return home;
}

static void s_from_env(char **slot, const char *name)
{
    const char *v = getenv(name);
    if (!*slot && v && *v)
        *slot = strdup(v);
}

static void s_from_file(char **slot, const char *path, const char *name)
{
    char *v = NULL;
    if (*slot || ctl_envfile_get(path, name, &v) != 1)
        return;
    if (*v)
        *slot = v;
    else
        free(v);
}

void ctl_conn_fill(ctl_conn *conn)
{
    s_from_env(&conn->url, "ADMINBUS_URL");
    s_from_env(&conn->authkey, "ADMINBUS_AUTHKEY");
    s_from_env(&conn->events, "ADMINBUS_EVENTS");
    if (conn->url && conn->authkey && conn->events)
        return;
    const char *home_env = getenv("ADMINBUS_HOME");
    char *home = home_env && *home_env ? strdup(home_env) : ctl_default_home();
    if (!home)
        return;
    size_t len = strlen(home) + sizeof "/env";
    free(conn->envfile);
    conn->envfile = malloc(len);
    if (conn->envfile) {
        snprintf(conn->envfile, len, "%s/env", home);
        s_from_file(&conn->url, conn->envfile, "ADMINBUS_URL");
        s_from_file(&conn->authkey, conn->envfile, "ADMINBUS_AUTHKEY");
        s_from_file(&conn->events, conn->envfile, "ADMINBUS_EVENTS");
    }
    free(home);
}

void ctl_conn_free(ctl_conn *conn)
{
    free(conn->url);
    free(conn->authkey);
    free(conn->events);
    free(conn->envfile);
    memset(conn, 0, sizeof *conn);
}

/* --- command ids ------------------------------------------------------------------ */

int ctl_uuid_v4(char out[37])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}
