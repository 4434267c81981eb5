/* daemonbus.c — see daemonbus.h. */
#include "daemonbus.h"

#include <stdio.h>
#include <string.h>

#include "wire/endpoint.h"
#include "kafka/kbus.h"
#include "zmq/zbus.h"

static bool s_is_kafka(const ab_config *cfg)
{
    return strcmp(cfg->transport, "kafka") == 0;
}

static int s_zbus_follow(void *ctx, const char *topic)
{
    return ab_zbus_follow(ctx, topic);
}

static int s_kbus_follow(void *ctx, const char *topic)
{
    return ab_kbus_follow(ctx, topic);
}

static void s_no_settle(void) {}

/* The Kafka options of cfg; names and values (cfg->nkafka each) hold the pass-through
 * properties. */
static ab_kbus_options s_kafka_options(const ab_config *cfg, const char *client, const char **names,
                                       const char **values)
{
    for (size_t i = 0; i < cfg->nkafka; i++) {
        names[i] = cfg->kafka[i].name;
        values[i] = cfg->kafka[i].value;
    }
    return (ab_kbus_options){
        cfg->kafka_brokers, cfg->kafka_events_topic, client, names, values, cfg->nkafka, 0};
}

static int s_check_transport(const ab_config *cfg, char *err, size_t errlen)
{
    if (strcmp(cfg->transport, "zmq") == 0 || s_is_kafka(cfg))
        return 0;
    snprintf(err, errlen, "transport must be zmq or kafka (got '%s')", cfg->transport);
    return -1;
}

int ab_daemon_bus_open(const ab_config *cfg, const char *client, const char *topic, int wait_ms,
                       ab_daemon_bus *bus, char *err, size_t errlen)
{
    memset(bus, 0, sizeof *bus);
    if (s_check_transport(cfg, err, errlen) < 0)
        return -1;
    bus->kafka = s_is_kafka(cfg);
    if (bus->kafka) {
        const char *names[cfg->nkafka + 1], *values[cfg->nkafka + 1];
        ab_kbus_options o = s_kafka_options(cfg, client, names, values);
        o.open_wait_ms = wait_ms;
        bus->ctx = ab_kbus_open(&o, topic, err, errlen);
        bus->publish = ab_kbus_publish;
        bus->wait = ab_kbus_wait;
        bus->follow = s_kbus_follow;
        bus->settle = s_no_settle;
        snprintf(bus->where, sizeof bus->where, "topic %s on %s", cfg->kafka_events_topic,
                 cfg->kafka_brokers);
    } else {
        if (ab_internal_check(cfg, "publish_endpoint", err, errlen) < 0 ||
            ab_internal_check(cfg, "notices_endpoint", err, errlen) < 0)
            return -1;
        bus->ctx = ab_zbus_open(cfg->publish_endpoint, cfg->notices_endpoint, topic, err, errlen);
        bus->publish = ab_zbus_publish;
        bus->wait = ab_zbus_wait;
        bus->follow = s_zbus_follow;
        bus->settle = ab_zbus_settle;
        snprintf(bus->where, sizeof bus->where, "%s", cfg->publish_endpoint);
    }
    return bus->ctx ? 0 : -1;
}

void ab_daemon_bus_close(ab_daemon_bus *bus)
{
    if (!bus || !bus->ctx)
        return;
    if (bus->kafka) {
        ab_kbus *k = bus->ctx;
        ab_kbus_close(&k);
    } else {
        ab_zbus *z = bus->ctx;
        ab_zbus_close(&z);
    }
    bus->ctx = NULL;
}

int ab_daemon_bus_probe(const ab_config *cfg, int timeout_ms, char *found, size_t len)
{
    if (s_check_transport(cfg, found, len) < 0)
        return -1;
    /* the way an event goes from a daemon to the clients' feed, which subscribers use */
    if (!s_is_kafka(cfg))
        return ab_internal_check(cfg, "publish_endpoint", found, len) < 0
                   ? -1
                   : ab_zbus_probe(cfg->publish_endpoint, cfg->events_endpoint, timeout_ms, found,
                                   len);
    const char *names[cfg->nkafka + 1], *values[cfg->nkafka + 1];
    ab_kbus_options o = s_kafka_options(cfg, "diagnostics", names, values);
    return ab_kbus_probe(&o, timeout_ms, found, len);
}
