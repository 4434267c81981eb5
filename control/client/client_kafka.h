/* client_kafka.h — adminctl over Kafka: ADMINBUS_URL / ADMINBUS_EVENTS of the form
 *
 *   kafka://HOST:PORT[,HOST:PORT…]/[?commands=T&replies=T&events=T&PROPERTY=VALUE…]
 *
 * commands, replies and events name the topics (defaults adminbus.commands,
 * adminbus.replies, adminbus.events: the engine's defaults); any other parameter with a
 * dot in its name is a librdkafka property passed through (security.protocol=SASL_SSL,
 * sasl.mechanisms=PLAIN, ssl.ca.location=…; values percent-encoded).
 *
 * A command goes to the commands topic keyed by its id, with reply_to set to a fresh
 * address of this process (adminctl-<uuid>); the reply is the record on the replies topic
 * whose key is that address and whose id is the command's. The replies consumer is placed
 * at the end of every partition before the command is produced, so the reply cannot be
 * missed, and it joins no group (nothing is committed). */
#ifndef AB_CTL_CLIENT_KAFKA_H
#define AB_CTL_CLIENT_KAFKA_H

#include <stdbool.h>
#include <stdio.h>

#include "cli/cli.h"

#define CTL_KAFKA_SCHEME "kafka://"

/* True when url is a kafka:// URL. */
bool ctl_is_kafka(const char *url);

/* ctl_request over Kafka (same contract; see cli.h). */
int ctl_kafka_request(const char *url, const char *body, size_t len, const char *id, int timeout_ms,
                      ctl_reply *reply, char *err, size_t errlen);

/* ctl_events over Kafka (same contract): events from now on, filtered by record key (the
 * event's topic) against the prefixes. */
int ctl_kafka_events(const char *url, const char *const *topics, size_t n, long count,
                     int timeout_ms, FILE *out, char *err, size_t errlen);

/* client.c's printer of one event body as a JSON line (shared by both transports). */
void ctl_print_event(const char *body, size_t len, const char *frame_topic, FILE *out);

#endif
