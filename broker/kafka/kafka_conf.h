/* kafka_conf.h — one way to build a librdkafka configuration, shared by the engine's
 * Kafka transport and adminctl: our defaults first, then the operator's pass-through
 * properties (security.protocol, sasl.*, ssl.*, …), which therefore win. */
#ifndef AB_KAFKA_CONF_H
#define AB_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
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

/* A handle on topic for producer rk, its metadata fetched now (timeout_ms at most). A
 * producer learns a topic's partitions only when it first has a record for it, and that
 * record then waits for the lookup (about a second here): the engine's first event, its
 * first reply on a new partition leader. Kept while the producer runs, the handle also
 * keeps the topic in librdkafka's periodic metadata refresh. Returns the handle even when
 * the lookup failed (the first record then waits as before); NULL only when out of memory.
 * Release it with rd_kafka_topic_destroy before destroying rk. */
rd_kafka_topic_t *ab_kafka_topic_warm(rd_kafka_t *rk, const char *topic, int timeout_ms);

/* The wait the callers give ab_kafka_topic_warm: a healthy cluster answers in
 * milliseconds, and a cluster that is down must not hold a start-up up for long. */
#define AB_KAFKA_WARM_MS 2000

/* Give conf (a consumer's) a group id of its own, prefix-<pid>-<random>: assign() needs
 * one, but a tail (ab_kafka_assign_end) never joins that group and never commits to it.
 * Returns 0, or -1 with err. */
int ab_kafka_set_tail_group(rd_kafka_conf_t *conf, const char *prefix, char *err, size_t errlen);

/* Assign rk (a consumer) to every partition of topic at its current end, so that what is
 * produced from now on is read and nothing before it: how the event followers (adminctl
 * events, workers, the HTTP shim) tail the events topic without joining a group. Returns 0,
 * or -1 with err when the topic is unknown, has no partitions or the cluster does not
 * answer within timeout_ms. */
int ab_kafka_assign_end(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
                        size_t errlen);

/* The part of an event topic that orders it: its first two segments ("job.42" of
 * "job.42.progress", "audit.User" of "audit.User.edit"), else the whole topic. */
size_t ab_event_stream_len(const char *topic, size_t len);

/* Make a producer built from conf place each record of events_topic on the partition of its
 * key's stream (ab_event_stream_len), so that one job's events, from whichever process,
 * share a partition and keep the order each producer sent them in; records of other topics
 * keep librdkafka's default placement. events_topic must outlive the producer. The
 * operator's topic-level kafka.* properties are kept. */
void ab_kafka_order_events(rd_kafka_conf_t *conf, const char *events_topic);

/* Whether the record key of m starts with one of prefixes[0..n) (n == 0: every key). Event
 * records are keyed by their bus topic, so this is the Kafka form of a ZeroMQ
 * subscription. */
bool ab_kafka_key_matches(const rd_kafka_message_t *m, const char *const *prefixes, size_t n);

#endif
