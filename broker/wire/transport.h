/* transport.h — how the engine receives commands, sends replies and publishes events,
 * independent of the bus (ZeroMQ today, Kafka later). The engine core includes only
 * this header, never zmq.h or rdkafka.h.
 *
 * Ownership: ab_inbound messages returned by recv belong to the transport until they are
 * handed back with release. */
#ifndef AB_TRANSPORT_H
#define AB_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/envelope.h"

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
    /* Optional (NULL: nothing to do). Called once per batch, before release, when every
     * command of msgs[0..n) has been answered and what it changed is committed (or it
     * needed no database). A transport with durable intake (Kafka) commits their offsets
     * only now. redeliver: the database could not apply them (they were answered
     * `unavailable`); such a transport hands them out again a little later instead. */
    void (*done)(ab_transport *t, const ab_inbound *msgs, int n, bool redeliver);
    /* Optional (NULL: events are best-effort). Wait up to timeout_ms until every event
     * published so far is acknowledged by the bus. Returns 0, or -1 (some may be lost:
     * keep them in the outbox and try again). */
    int (*flush)(ab_transport *t, int timeout_ms);
} ab_transport_ops;

struct ab_transport {
    const ab_transport_ops *ops;
    /* Events must not be lost on this transport: the engine writes them to the outbox
     * table in the command's transaction and relays them after COMMIT (engine/core/outbox.h). */
    bool durable_events;
};

/* Kafka settings of an engine (broker/wire/config.h's kafka_* keys and pass-through
 * properties). */
typedef struct {
    const char *brokers; /* bootstrap.servers */
    const char *commands_topic, *replies_topic, *events_topic;
    const char *group; /* group.id: every engine joins the same group */
    const char *const *prop_names, *const *prop_values; /* librdkafka properties, as given */
    size_t nprops;
} ab_kafka_options;

/* Create the ZeroMQ transport of an engine: a DEALER connected to the broker's engine
 * endpoint (commands in, replies out) and a PUB connected to the broker's event intake.
 * Returns NULL on failure (with a message on stderr). Caller owns the result. */
ab_transport *ab_transport_zmq_new(const char *engine_endpoint, const char *publish_endpoint);

/* Create the Kafka transport of an engine: a consumer in opt->group on the commands topic
 * (offsets committed only through done), a producer for replies (keyed by the command's
 * reply_to, else its id) and events (keyed by topic). Returns NULL on failure (with a
 * message in err). Caller owns the result. */
ab_transport *ab_transport_kafka_new(const ab_kafka_options *opt, char *err, size_t errlen);

#endif
