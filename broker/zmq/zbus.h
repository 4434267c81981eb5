/* zbus.h — a daemon's side of the event bus: a PUB into the broker's event intake
 * (publish_endpoint) and a SUB on its fan-out for the notices the daemon follows (wake-ups,
 * control): the daemons' own, notices_endpoint, which only they can reach, not the clients'
 * events feed. Workers and the scheduler use it; their logic reaches it only through the
 * publish/wait function pointers below, so it never includes zmq.h. */
#ifndef AB_ZBUS_H
#define AB_ZBUS_H

#include <stddef.h>

typedef struct ab_zbus ab_zbus;

/* Connect to publish_endpoint (PUB) and to a fan-out of the broker, sub_endpoint (SUB,
 * subscribed to topic): notices_endpoint for a daemon, events_endpoint for the probe.
 * Returns NULL with a message in err saying which endpoint failed. Caller owns the
 * result. */
ab_zbus *ab_zbus_open(const char *publish_endpoint, const char *sub_endpoint, const char *topic,
                      char *err, size_t errlen);

/* Also follow notices whose topic starts with topic. Returns 0 or -1. */
int ab_zbus_follow(ab_zbus *bus, const char *topic);

/* Give new connections and subscriptions a moment to settle: a fresh PUB drops what it
 * sends before it is connected. */
void ab_zbus_settle(void);

/* Publish topic + body without blocking (events are at-most-once: an absent broker must
 * not stall a job). bus is an ab_zbus *. Returns 0 or -1. */
int ab_zbus_publish(void *bus, const char *topic, const void *body, size_t len);

/* Wait up to timeout_ms for a notice and drain every waiting one (one look at the database
 * serves them all). Returns 2 when only wake-up notices ("wake.…") came, 3 when only those
 * and hand-over notices ("….assign") came, at least one of the latter, 1 when others came
 * too, 0 on timeout or a signal (also one that came before the wait, see stopsig.h), -1
 * on a fault. */
int ab_zbus_wait(void *bus, int timeout_ms);

/* Check the event path end to end: connect a fresh PUB and SUB, publish an event with a
 * topic of its own (diagnostics.probe.…) until it comes back through the broker, or until
 * timeout_ms. Returns 0 with found = how long it took, or -1 with found = what failed. */
int ab_zbus_probe(const char *publish_endpoint, const char *events_endpoint, int timeout_ms,
                  char *found, size_t len);

/* Close (letting the last events out for a moment) and free; sets *bus to NULL. */
void ab_zbus_close(ab_zbus **bus);

#endif
