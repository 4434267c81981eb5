/* daemonbus.h — "the daemon bus": the event bus of a worker, the scheduler, the supervisor
 * and adminctl --local, chosen from the configuration. transport = kafka: the events topic
 * (kbus.h); otherwise the broker's event intake and the daemons' fan-out, publish_endpoint
 * and notices_endpoint (zbus.h). The daemons' logic
 * reaches it through the publish/wait pointers (their ab_*_bus structs), so it does not
 * know which. */
#ifndef AB_DAEMONBUS_H
#define AB_DAEMONBUS_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/config.h"

typedef struct {
    void *ctx; /* an ab_zbus * or an ab_kbus * */
    bool kafka;
    /* The contract of zbus.h / kbus.h: */
    int (*publish)(void *ctx, const char *topic, const void *body, size_t len);
    int (*wait)(void *ctx, int timeout_ms);
    int (*follow)(void *ctx, const char *topic);
    /* Give new subscriptions a moment to reach the broker (ZeroMQ); nothing on Kafka,
     * where following is a filter of our own. */
    void (*settle)(void);
    char where[512]; /* the endpoints or the cluster and topic, for messages */
} ab_daemon_bus;

/* Open the daemon bus of cfg following topic (a prefix); client names the program
 * (worker, scheduler, …) for Kafka's client.id; wait_ms bounds how long a Kafka bus waits
 * for the events topic's partitions (0: kbus.h's default). Returns 0, or -1 with a message
 * in err saying what failed and which settings to check. */
int ab_daemon_bus_open(const ab_config *cfg, const char *client, const char *topic, int wait_ms,
                       ab_daemon_bus *bus, char *err, size_t errlen);

/* Close (letting the last events out for a moment); safe twice. */
void ab_daemon_bus_close(ab_daemon_bus *bus);

/* Diagnostics: publish a probe event on cfg's bus and read it back (ab_zbus_probe or
 * ab_kbus_probe). Returns 0 or -1, found saying what happened. */
int ab_daemon_bus_probe(const ab_config *cfg, int timeout_ms, char *found, size_t len);

#endif
