/* transport.h — how the engine receives commands, sends replies and publishes events,
 * independent of the bus (ZeroMQ today, Kafka later). The engine core includes only
 * this header, never zmq.h or rdkafka.h.
 *
 * Ownership: ab_inbound messages returned by recv belong to the transport until they are
 * handed back with release. */
#ifndef AB_TRANSPORT_H
#define AB_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

/* One received command frame with what is needed to route its reply. */
typedef struct {
    const void *body; /* the msgpack bytes of the command */
    size_t body_len;
    char ip[AB_IP_MAX + 1]; /* peer address as seen by the broker; "" when unknown */
    void *route;            /* transport-private routing data */
} ab_inbound;

typedef struct ab_transport ab_transport;

typedef struct {
    /* Wait up to timeout_ms for at least one command, then take what is already waiting,
     * up to max. Returns the number taken (0 on timeout), -1 on a transport fault. */
    int (*recv)(ab_transport *t, ab_inbound *msgs, int max, int timeout_ms);
    /* Send reply bytes back to the sender of msg. Returns 0, or -1 (the reply is lost;
     * the client will retry with the same id). */
    int (*reply)(ab_transport *t, const ab_inbound *msg, const void *buf, size_t len);
    /* Publish one event: topic frame then body. Returns 0 or -1 (events are
     * at-most-once on this transport). */
    int (*publish)(ab_transport *t, const char *topic, const void *buf, size_t len);
    /* Hand back messages returned by recv. */
    void (*release)(ab_transport *t, ab_inbound *msgs, int n);
    /* Close sockets and free; sets *tp to NULL; safe on NULL. */
    void (*destroy)(ab_transport **tp);
} ab_transport_ops;

struct ab_transport {
    const ab_transport_ops *ops;
};

/* Create the ZeroMQ transport of an engine: a DEALER connected to the broker's engine
 * endpoint (commands in, replies out) and a PUB connected to the broker's event intake.
 * Returns NULL on failure (with a message on stderr). Caller owns the result. */
ab_transport *ab_transport_zmq_new(const char *engine_endpoint, const char *publish_endpoint);

#endif
