/* endpoint.c — the private endpoints' rules (see endpoint.h). */
#include "wire/endpoint.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_IPC "ipc://"
#define S_TCP "tcp://"

/* The internal endpoints and the socket files of their auto. */
static const struct {
    const char *key, *file;
    size_t offset;
} s_internal[] = {
    {"engine_endpoint", "engine.sock", offsetof(ab_config, engine_endpoint)},
    {"publish_endpoint", "publish.sock", offsetof(ab_config, publish_endpoint)},
    {"notices_endpoint", "notices.sock", offsetof(ab_config, notices_endpoint)},
};
#define S_NINTERNAL (sizeof s_internal / sizeof s_internal[0])

static char **s_slot(const ab_config *cfg, size_t i)
{
    return (char **)((char *)cfg + s_internal[i].offset);
}

__attribute__((format(printf, 4, 5))) static int s_why(char *why, size_t whylen, int rc,
                                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return rc;
}

int ab_ipc_auto(const char *key, const char *home, const char *file, char *out, size_t outlen,
                char *why, size_t whylen)
{
    char abs[PATH_MAX];
    if (!realpath(home, abs))
        return s_why(why, whylen, 0, "cannot resolve ADMINBUS_HOME %s: %s", home, strerror(errno));
    if (strlen(abs) + 1 + strlen(file) > AB_IPC_PATH_MAX)
        return s_why(why, whylen, 0,
                     "%s/%s is longer than the %d bytes a Unix socket path may have; set "
                     "%s=ipc:///SHORT/PATH (in a folder only this user can write), or use a "
                     "shorter ADMINBUS_HOME",
                     abs, file, AB_IPC_PATH_MAX, key);
    snprintf(out, outlen, S_IPC "%s/%s", abs, file);
    return 1;
}

int ab_ipc_path_check(const char *key, const char *endpoint, char *why, size_t whylen)
{
    const char *path = endpoint + strlen(S_IPC);
    if (path[0] != '/')
        return s_why(why, whylen, -1,
                     "%s %s: the path must be absolute (the broker and the processes that "
                     "connect may run in different folders; an abstract socket, ipc://@…, has "
                     "no file permissions: any user could connect)",
                     key, endpoint);
    if (strlen(path) > AB_IPC_PATH_MAX)
        return s_why(why, whylen, -1,
                     "%s %s: the path is longer than the %d bytes a Unix socket path may have", key,
                     endpoint, AB_IPC_PATH_MAX);
    return 0;
}

int ab_ipc_folder_check(const char *key, const char *endpoint, char *why, size_t whylen)
{
    const char *path = endpoint + strlen(S_IPC);
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash && slash > path ? (int)(slash - path) : 1, path);
    struct stat st;
    if (stat(dir, &st) < 0)
        return s_why(why, whylen, -1, "%s %s: its folder %s: %s", key, endpoint, dir,
                     strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return s_why(why, whylen, -1, "%s %s: %s is not a folder", key, endpoint, dir);
    if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
        return s_why(why, whylen, -1,
                     "%s %s: its folder %s (owner uid %u, mode %03o) must belong to this user "
                     "(uid %u) and be writable by nobody else, or another user could put a "
                     "socket of their own in its place (chmod go-w, or choose a private folder)",
                     key, endpoint, dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777),
                     (unsigned)geteuid());
    return 0;
}

void ab_internal_resolve(ab_config *cfg)
{
    for (size_t i = 0; i < S_NINTERNAL; i++) {
        char **slot = s_slot(cfg, i), ep[AB_IPC_ENDPOINT_MAX], why[64];
        if (!*slot || strcmp(*slot, "auto") != 0 ||
            ab_ipc_auto(s_internal[i].key, cfg->home, s_internal[i].file, ep, sizeof ep, why,
                        sizeof why) != 1)
            continue;
        char *copy = strdup(ep);
        if (copy) {
            free(*slot);
            *slot = copy;
        }
    }
}

bool ab_internal_is(const ab_config *cfg, const char *endpoint)
{
    for (size_t i = 0; i < S_NINTERNAL; i++)
        if (*s_slot(cfg, i) && !strcmp(*s_slot(cfg, i), endpoint))
            return true;
    return false;
}

int ab_internal_check(const ab_config *cfg, const char *key, char *why, size_t whylen)
{
    size_t i = 0;
    while (i < S_NINTERNAL && strcmp(s_internal[i].key, key) != 0)
        i++;
    if (i == S_NINTERNAL)
        return s_why(why, whylen, -1, "%s is no internal endpoint", key);
    const char *ep = *s_slot(cfg, i);
    if (!strcmp(ep, "auto")) {
        char out[AB_IPC_ENDPOINT_MAX];
        ab_ipc_auto(key, cfg->home, s_internal[i].file, out, sizeof out, why, whylen);
        return -1; /* resolved at load when it could be: here it cannot */
    }
    if (!strncmp(ep, S_TCP, strlen(S_TCP)))
        return 0; /* CURVE with the daemons' key, always (curve.h) */
    if (strncmp(ep, S_IPC, strlen(S_IPC)) != 0)
        return s_why(why, whylen, -1,
                     "%s must be auto, ipc:///PATH or tcp://HOST:PORT (got '%s'): it carries "
                     "commands with their secrets, or events everyone believes",
                     key, ep);
    if (ab_ipc_path_check(key, ep, why, whylen) < 0)
        return -1;
    return ab_ipc_folder_check(key, ep, why, whylen);
}
