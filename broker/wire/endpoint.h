/* endpoint.h — the bus's private endpoints: where they are and who can reach them
 * (docs/architecture.md, "Who can reach what").
 *
 * The internal endpoints carry what no other user may see or write: engine_endpoint the
 * commands on their way to the engines (authkeys and passwords in clear, answered by
 * whoever holds the socket), publish_endpoint the events every subscriber believes,
 * notices_endpoint the notices the daemons follow (wake-ups, control). Each is one of
 *   auto             ipc://<absolute $ADMINBUS_HOME>/<engine|publish|notices>.sock, the
 *                    default
 *   ipc:///PATH      an absolute path of at most AB_IPC_PATH_MAX bytes in a folder owned by
 *                    this user that nobody else can write
 *   tcp://HOST:PORT  engines or workers on other hosts; always CURVE with the daemons' key,
 *                    loopback included (curve.h)
 * The broker binds its ipc sockets with mode 0600. The proxy intake (proxy.h) follows the
 * same ipc rules. */
#ifndef AB_ENDPOINT_H
#define AB_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/config.h"

/* The longest path a Unix socket address holds (sun_path, 108 bytes with its NUL). */
#define AB_IPC_PATH_MAX 107

/* Room for a resolved ipc:// endpoint, with its NUL. */
#define AB_IPC_ENDPOINT_MAX (AB_IPC_PATH_MAX + 8)

/* ipc://<absolute home>/<file> into out, for the setting key's auto. Returns 1, or 0 with
 * the reason in why when home cannot be resolved or the path would be longer than
 * AB_IPC_PATH_MAX (why then says to set key=ipc:///SHORT/PATH). */
int ab_ipc_auto(const char *key, const char *home, const char *file, char *out, size_t outlen,
                char *why, size_t whylen);

/* Check the path of the ipc:// endpoint of setting key: absolute (an abstract socket,
 * ipc://@…, has no file permissions: anyone may connect), at most AB_IPC_PATH_MAX bytes.
 * Returns 0, or -1 with the reason in why. */
int ab_ipc_path_check(const char *key, const char *endpoint, char *why, size_t whylen);

/* The folder of an ipc:// endpoint must exist, belong to this process's user and be
 * writable by nobody else: otherwise another user could put a socket of their own in the
 * file's place. Returns 0, or -1 with the reason in why. */
int ab_ipc_folder_check(const char *key, const char *endpoint, char *why, size_t whylen);

/* Replace auto in cfg's internal endpoints by their ipc:// path where it can be resolved
 * (ab_config_load calls it: every process, and the children it exports its configuration
 * to, see the same path); an auto that cannot be resolved stays auto, and
 * ab_internal_check says why. */
void ab_internal_resolve(ab_config *cfg);

/* True when endpoint is one of cfg's internal endpoints. */
bool ab_internal_is(const ab_config *cfg, const char *endpoint);

/* Check cfg's internal endpoint key ("engine_endpoint", "publish_endpoint" or
 * "notices_endpoint") before binding or connecting it. Returns 0, or -1 with the reason in
 * why. */
int ab_internal_check(const ab_config *cfg, const char *key, char *why, size_t whylen);

#endif
