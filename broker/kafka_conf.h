/* kafka_conf.h — one way to build a librdkafka configuration, shared by the engine's
 * Kafka transport and adminctl: our defaults first, then the operator's pass-through
 * properties (security.protocol, sasl.*, ssl.*, …), which therefore win. */
#ifndef AB_KAFKA_CONF_H
#define AB_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* A new configuration with bootstrap.servers = brokers, then each (name, value) of
 * defaults (ndefaults pairs, may be 0) and of props (nprops pairs). Returns NULL with a
 * message in err when a property is unknown or its value invalid. */
rd_kafka_conf_t *ab_kafka_conf_new(const char *brokers, const char *const *defaults,
                                   size_t ndefaults, const char *const *names,
                                   const char *const *values, size_t nprops, char *err,
                                   size_t errlen);

/* Write the partitions of topic (at most max) to parts; returns how many, or -1 with err
 * when the cluster does not answer within timeout_ms or does not know the topic. */
int ab_kafka_partitions(rd_kafka_t *rk, const char *topic, int32_t *parts, int max, int timeout_ms,
                        char *err, size_t errlen);

#endif
