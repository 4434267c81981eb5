/* curve.h — ZeroMQ CURVE for the bus: which endpoints use it, key pairs kept in
 * $ADMINBUS_HOME/curve/, the allowed-clients list, and the socket options of a connecting
 * side.
 *
 * Which endpoints: the commands and events endpoints (the clients' side) use CURVE
 * together when either is bound beyond loopback, or with curve=on when either is tcp://;
 * loopback tcp:// stays plain by default there. The internal endpoints (engine, publish,
 * notices: endpoint.h) use it whenever they are tcp://, loopback included: any local user
 * can reach a loopback port. ipc:// is guarded by the file system and stays plain.
 *
 * Files under $ADMINBUS_HOME/curve/ (folder 0700):
 *   server.key       the broker's key pair (0600), created on first use
 *   server.pub       its public part (the key clients put in ADMINBUS_CURVE_SERVERKEY)
 *   internal.key     the pair of the daemons (engine, workers, scheduler, supervisor,
 *                    adminctl --local), 0600, always accepted; the only key the internal
 *                    endpoints accept. The local daemons create it on first use for the
 *                    clients' endpoints; for internal tcp:// endpoints it must exist
 *                    (`adminbus-broker --curve-init`) and other hosts need copies of it
 *   allowed_clients  one Z85 public key per line, optionally followed by white space and
 *                    a comment; lines starting with '#' are comments (a key may contain
 *                    '#', never as its first character: Z85's first digit stays below 83)
 * Key files use the ZeroMQ certificate layout (public-key = "…", secret-key = "…"), which
 * CZMQ and pyzmq's zmq.auth.load_certificate read too. */
#ifndef AB_CURVE_H
#define AB_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/config.h"

#define AB_CURVE_KEY_LEN 40 /* Z85 text of a 32-byte key */

typedef struct {
    char pub[AB_CURVE_KEY_LEN + 1];
    char sec[AB_CURVE_KEY_LEN + 1]; /* "" when only the public part is known */
} ab_curve_pair;

/* True when endpoint cannot be reached from another host: ipc://, inproc://, or tcp:// (or
 * ws://) bound to 127.0.0.0/8, ::1 or localhost. A wildcard (*, 0.0.0.0, ::), another
 * address, an interface name or any other transport is beyond loopback. */
bool ab_curve_loopback(const char *endpoint);

/* Check the curve mode ("auto" or "on"). Returns 0, or -1 with a message in err. */
int ab_curve_mode_check(const char *mode, char *err, size_t errlen);

/* Whether endpoint (one of cfg's five) uses CURVE under cfg (see the top of this file). */
bool ab_curve_wanted(const ab_config *cfg, const char *endpoint);

/* True when the clients' endpoints (commands and events) use CURVE. */
bool ab_curve_clients(const ab_config *cfg);

/* True when one of the internal endpoints (engine, publish, notices) uses CURVE. */
bool ab_curve_internal(const ab_config *cfg);

/* True when any of cfg's endpoints uses CURVE. */
bool ab_curve_any(const ab_config *cfg);

/* True when z85 is a 40-character Z85 key. */
bool ab_curve_key_valid(const char *z85);

/* home/curve/file into out. */
void ab_curve_path(const char *home, const char *file, char *out, size_t len);

/* Read a key file: its public key, and its secret key when need_secret (then the file must
 * not be readable by group or others). Returns 0, or -1 with a message in err. */
int ab_curve_pair_read(const char *path, ab_curve_pair *pair, bool need_secret, char *err,
                       size_t errlen);

/* True when pair's public key is the one its secret key gives (zmq_curve_public). */
bool ab_curve_pair_matches(const ab_curve_pair *pair);

/* A fresh key pair (zmq_curve_keypair). Returns 0 or -1. */
int ab_curve_pair_generate(ab_curve_pair *pair);

/* Write pair to path, which must not exist: with its secret (mode 0600) or only its public
 * key (mode 0644). Returns 0, or -1 with a message in err (EEXIST: errno is kept). */
int ab_curve_pair_write(const char *path, const ab_curve_pair *pair, bool with_secret, char *err,
                        size_t errlen);

/* The pair in home/curve/name, created (with the folder) when absent; two processes
 * creating it at once get the same pair. Returns 0, or -1 with a message in err. */
int ab_curve_pair_ensure(const char *home, const char *name, ab_curve_pair *pair, char *err,
                         size_t errlen);

/* Forget a secret key held in memory. */
void ab_curve_pair_wipe(ab_curve_pair *pair);

/* Read the allowed-clients file at path: *nkeys = how many keys it lists, *found = whether
 * key (Z85; may be NULL) is one of them. Returns 0, or -1 with a message in err when the
 * file cannot be read or a line holds no valid key (line number given). */
int ab_curve_allowed_scan(const char *path, const char *key, int *nkeys, bool *found, char *err,
                          size_t errlen);

/* Make sock a CURVE client of the server whose public key is server_pub, as client.
 * Set before zmq_connect. Returns 0, or -1 with a message in err. */
int ab_curve_client_set(void *sock, const char *server_pub, const ab_curve_pair *client, char *err,
                        size_t errlen);

/* For a daemon's socket about to connect to endpoint: when the process's configuration
 * (ab_config_process) says the endpoint uses CURVE, make sock a client with the internal
 * key pair. On a clients' endpoint the pairs are created when absent (the local daemons
 * may start before the broker); on an internal one they must be there (internal.key, and
 * the server's public key in server.pub or server.key), since this host may not be the
 * broker's: err then says what to copy from it. Returns 0 (also when nothing was needed),
 * or -1 with a message in err. */
int ab_curve_daemon_set(void *sock, const char *endpoint, char *err, size_t errlen);

#endif
