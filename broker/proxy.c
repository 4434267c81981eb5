/* proxy.c — resolving proxy_endpoint and checking the addresses a proxy sends (proxy.h). */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

__attribute__((format(printf, 4, 5))) static int s_why(char *why, size_t whylen, int rc,
                                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return rc;
}

/* auto: $home/proxy.sock, by its absolute path (the shim may run in another folder). */
static int s_auto(const char *home, char *out, size_t outlen, char *why, size_t whylen)
{
    char abs[PATH_MAX];
    if (!realpath(home, abs))
        return s_why(why, whylen, 0, "cannot resolve ADMINBUS_HOME %s: %s", home, strerror(errno));
    if (strlen(abs) + 1 + strlen(AB_PROXY_AUTO_FILE) > AB_PROXY_PATH_MAX)
        return s_why(why, whylen, 0,
                     "%s/" AB_PROXY_AUTO_FILE " is longer than the 107 bytes a Unix socket path "
                     "may have; set proxy_endpoint=ipc:///SHORT/PATH (in a folder only this user "
                     "can write)",
                     abs);
    snprintf(out, outlen, "ipc://%s/" AB_PROXY_AUTO_FILE, abs);
    return 1;
}

int ab_proxy_endpoint(const char *setting, const char *home, char *out, size_t outlen, char *why,
                      size_t whylen)
{
    out[0] = why[0] = '\0';
    if (!strcmp(setting, "off"))
        return s_why(why, whylen, 0, "proxy_endpoint=off");
    if (!strcmp(setting, "auto"))
        return s_auto(home, out, outlen, why, whylen);
    if (strncmp(setting, "ipc://", 6) != 0)
        return s_why(why, whylen, -1,
                     "proxy_endpoint must be auto, off or ipc:///PATH, not '%s': the client "
                     "address a proxy sends there is believed, so only local processes that can "
                     "open the socket file may use it (tcp:// would let anyone who reaches the "
                     "port choose the address their commands are checked against)",
                     setting);
    const char *path = setting + 6;
    if (path[0] != '/')
        return s_why(why, whylen, -1,
                     "proxy_endpoint %s: the path must be absolute (the broker and the HTTP shim "
                     "may run in different folders; an abstract socket, ipc://@…, has no file "
                     "permissions)",
                     setting);
    if (strlen(path) > AB_PROXY_PATH_MAX)
        return s_why(why, whylen, -1,
                     "proxy_endpoint %s: the path is longer than the 107 bytes a Unix socket "
                     "path may have",
                     setting);
    snprintf(out, outlen, "%s", setting);
    return 1;
}

bool ab_proxy_ip_valid(const void *data, size_t len)
{
    char ip[AB_IP_MAX + 1];
    unsigned char bin[16];
    if (len == 0 || len > AB_IP_MAX || memchr(data, '\0', len))
        return false;
    memcpy(ip, data, len);
    ip[len] = '\0';
    return inet_pton(AF_INET, ip, bin) == 1 || inet_pton(AF_INET6, ip, bin) == 1;
}
