/* curve_zap.h — the broker's ZAP handler (ZeroMQ RFC 27): libzmq asks it, over
 * inproc://zeromq.zap.01, whether a CURVE client may connect. On the clients' endpoints
 * (domain AB_ZAP_DOMAIN) it accepts the internal key (the daemons') and the keys listed in
 * the allowed-clients file, read again for each request so that a key removed from the
 * file is refused from the next connection on; on the internal endpoints (domain
 * AB_ZAP_DOMAIN_INTERNAL) only the internal key: a client's key lets it send commands
 * under its authkey, never take other clients' commands or publish events. Each refusal is
 * logged with the client's public key and address. */
#ifndef AB_CURVE_ZAP_H
#define AB_CURVE_ZAP_H

#include <stddef.h>
#include <stdint.h>

#include "zmq/curve.h"

#define AB_ZAP_DOMAIN          "adminbus"
#define AB_ZAP_DOMAIN_INTERNAL "adminbus-internal"

typedef struct {
    void *sock; /* REP bound to inproc://zeromq.zap.01 */
    char allowed[4096];
    char internal_pub[AB_CURVE_KEY_LEN + 1];
    uint64_t accepted, refused;
    char last_refused[AB_CURVE_KEY_LEN + 1]; /* log rate limit: a refused client retries */
    int64_t last_log_ms;
} ab_zap;

/* Bind the handler in ctx (before any CURVE socket binds). Returns 0, or -1 with a
 * message in err. */
int ab_zap_open(ab_zap *zap, void *ctx, const char *allowed_path, const char *internal_pub,
                char *err, size_t errlen);

/* Answer one waiting request. Returns 1 when one was answered, 0 when none waits, -1. */
int ab_zap_handle(ab_zap *zap);

/* Close the socket (safe when never opened). */
void ab_zap_close(ab_zap *zap);

#endif
