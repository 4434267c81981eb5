/* kbus.h — a daemon's side of the event bus in a Kafka deployment: the same contract as
 * zbus.h, with the events topic in place of the broker. Publishing produces a record keyed
 * by the event's bus topic (as the engine's outbox does); following tails the events topic
 * from its end without joining a consumer group and keeps the records whose key starts
 * with a followed prefix (the Kafka form of a ZeroMQ subscription).
 *
 * Workers, the scheduler, the supervisor and adminctl --local reach it through daemonbus.h,
 * which picks this or zbus.h from the configuration. */
#ifndef AB_KBUS_H
#define AB_KBUS_H

#include <stddef.h>

typedef struct ab_kbus ab_kbus;

typedef struct {
    const char *brokers;                                /* bootstrap servers, host:port,… */
    const char *events_topic;                           /* where events go and notices come from */
    const char *client;                                 /* for client.id: adminbus-<client> */
    const char *const *prop_names, *const *prop_values; /* kafka.<name> pass-through */
    size_t nprops;
    int open_wait_ms; /* how long ab_kbus_open waits for the topic's partitions (0: 30 s) */
} ab_kbus_options;

/* A producer to the events topic and a consumer placed at the topic's current end,
 * following notices whose key starts with topic. Waits up to open_wait_ms for the topic's
 * partitions (a fresh cluster may need a moment), less when a stop signal comes. Returns
 * NULL with a message in err saying what failed. Caller owns the result. */
ab_kbus *ab_kbus_open(const ab_kbus_options *opt, const char *topic, char *err, size_t errlen);

/* Also follow notices whose key starts with topic (takes effect at once: the filter is
 * ours, not the cluster's). Returns 0 or -1. */
int ab_kbus_follow(ab_kbus *bus, const char *topic);

/* Produce topic (as the key) + body without blocking; events are at-most-once, so a full
 * queue (errno EAGAIN) or an unreachable cluster only loses this event. bus is an
 * ab_kbus *. Returns 0 or -1. */
int ab_kbus_publish(void *bus, const char *topic, const void *body, size_t len);

/* Wait up to timeout_ms for a followed notice and drain every waiting record. Returns what
 * ab_zbus_wait returns: 2 only wake-ups, 3 wake-ups and hand-overs, 1 others too, 0 on
 * timeout or a signal (the stop pipe of stopsig.h is watched, and a signal delivered to the
 * waiting thread ends the wait as it ends zbus's), -1 on a fatal client error. */
int ab_kbus_wait(void *bus, int timeout_ms);

/* Wait up to timeout_ms for what was published to be delivered. Returns 0, or -1 when
 * records are still undelivered. */
int ab_kbus_flush(ab_kbus *bus, int timeout_ms);

/* Check the event path end to end: publish an event with a topic of its own
 * (diagnostics.probe.…) and read it back from the events topic through a tailing consumer.
 * Returns 0 with found = how long it took, or -1 with found = what failed. */
int ab_kbus_probe(const ab_kbus_options *opt, int timeout_ms, char *found, size_t len);

/* Close (letting the last events out for a moment) and free; sets *bus to NULL. */
void ab_kbus_close(ab_kbus **bus);

#endif
