/* proxy.c — resolving proxy_endpoint and checking the addresses a proxy sends (proxy.h). */
#include "zmq/proxy.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "wire/endpoint.h"
#include "wire/envelope.h"

int ab_proxy_endpoint(const char *setting, const char *home, char *out, size_t outlen, char *why,
                      size_t whylen)
{
    out[0] = why[0] = '\0';
    if (!strcmp(setting, "off")) {
        snprintf(why, whylen, "proxy_endpoint=off");
        return 0;
    }
    if (!strcmp(setting, "auto")) {
        /* by its absolute path: the shim may run in another folder */
        if (ab_ipc_auto("proxy_endpoint", home, AB_PROXY_AUTO_FILE, out, outlen, why, whylen) < 1)
            return 0;
    } else if (strncmp(setting, "ipc://", 6) != 0) {
        snprintf(why, whylen,
                 "proxy_endpoint must be auto, off or ipc:///PATH, not '%s': the client address "
                 "a proxy sends there is believed, so only local processes that can open the "
                 "socket file may use it (tcp:// would let anyone who reaches the port choose "
                 "the address their commands are checked against)",
                 setting);
        return -1;
    } else if (ab_ipc_path_check("proxy_endpoint", setting, why, whylen) < 0) {
        return -1;
    } else {
        snprintf(out, outlen, "%s", setting);
    }
    /* the shim hands it its HTTP clients' authkeys: no one else's socket may be there */
    return ab_ipc_folder_check("proxy_endpoint", out, why, whylen) < 0 ? -1 : 1;
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
