/* proxy.h — the broker's trusted proxy intake (docs/architecture.md, "Client addresses
 * through the HTTP shim").
 *
 * A process in front of the broker (the HTTP shim) serves clients the broker never sees:
 * their commands would all carry the proxy's own address. On proxy_endpoint, a second
 * ROUTER, a proxy sends [empty][client ip][command] and the broker passes that address on
 * to the engine instead of the connection's. The address is believed, so the endpoint is
 * ipc:// only: just the local processes that may open the socket file (mode 0600, the
 * broker's user) can use it. Both the broker and the shim resolve the setting here, so
 * they agree on the path. */
#ifndef AB_PROXY_H
#define AB_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/endpoint.h"

/* The first frame of a proxied command on its way to an engine (and of its reply on the
 * way back): it tells the broker which ROUTER the reply goes out on. ROUTER sockets make
 * up 5-byte identities starting with a zero byte, so this 15-byte one is never such an
 * identity; a client that names itself so on the commands endpoint is refused. */
#define AB_PROXY_MARKER     "\0adminbus-proxy"
#define AB_PROXY_MARKER_LEN (sizeof AB_PROXY_MARKER - 1)

/* The longest path a Unix socket address holds (endpoint.h). */
#define AB_PROXY_PATH_MAX AB_IPC_PATH_MAX

/* The socket file of proxy_endpoint=auto, inside $ADMINBUS_HOME. */
#define AB_PROXY_AUTO_FILE "proxy.sock"

/* Resolve the proxy_endpoint setting (auto, off or ipc:///absolute/path) against home.
 * Returns 1 with the endpoint in out; 0 when there is no proxy intake, with the reason in
 * why (off, or auto with a home whose socket path would be too long or cannot be
 * resolved: the caller warns); -1 when the setting is not acceptable, with the reason in
 * why (the broker refuses to start): not ipc://, a relative, abstract or too long path, or
 * a folder that is not this user's alone (endpoint.h). */
int ab_proxy_endpoint(const char *setting, const char *home, char *out, size_t outlen, char *why,
                      size_t whylen);

/* Is data[0..len) an IPv4 or IPv6 address in text form (at most AB_IP_MAX characters)? */
bool ab_proxy_ip_valid(const void *data, size_t len);

#endif
