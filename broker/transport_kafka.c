/* transport_kafka.c — the Kafka transport of an engine (see transport.h; docs/architecture.md,
 * "Kafka transport").
 *
 * Commands come from a consumer in the engines' group, subscribed to the commands topic.
 * Offsets are never committed for what was merely read: enable.auto.offset.store is off,
 * and done() stores a batch's offsets only once the engine has committed the batch's
 * transaction and the cluster has the batch's replies (librdkafka's auto-commit then sends the
 * stored offsets, and on a rebalance or close). A command read again after a crash or a rebalance
 * is answered from the stored reply of its id (engine/idempotency.c). Replies and events go out
 * through one producer: replies to the replies topic keyed by the command's reply_to (else its id),
 * events to the events topic keyed by their topic. */
#include "transport.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka_conf.h"
#include "log.h"

/* How long the end of a batch waits for its replies to reach the cluster before it stores
 * the batch's offsets. */
#define S_REPLY_FLUSH_MS 2000
/* Back-off before commands the database could not apply are handed out again. */
#define S_REDELIVER_MS 1000
/* How long a produce call waits for room in a full local queue, in 10 ms steps. */
#define S_QUEUE_WAIT_STEPS 500
/* One warning per this many ms about a broker trouble that repeats (a broker down). */
#define S_WARN_EVERY_MS 5000

typedef struct {
    ab_transport base; /* first, so an ab_transport * is an s_kafka * */
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    char *replies_topic, *events_topic;
    int64_t pause_until_ms; /* redelivery back-off */
    unsigned events_failed; /* event deliveries that failed since the last flush */
    int64_t last_warn_ms;
} s_kafka;

/* What ab_inbound.route points to: the record and where its reply goes. */
typedef struct {
    rd_kafka_message_t *m;
    size_t key_len;
    char key[AB_KEY_MAX + 1];
} s_route;

/* msg_opaque of an event record (replies carry NULL): their failures count for flush. */
static char s_event_tag;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_warn_throttled(s_kafka *self, const char *what, const char *why)
{
    int64_t now = s_now_ms();
    if (now - self->last_warn_ms < S_WARN_EVERY_MS)
        return;
    self->last_warn_ms = now;
    AB_WARN("kafka: %s: %s", what, why);
}

/* --- callbacks (served by our own poll calls, on the engine's thread) ---------------- */

static void s_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* A pass-through property meant for the other client type (consumer or producer):
     * expected, since both get every property. */
    if (strcmp(fac, "CONFWARN") == 0)
        AB_DEBUG("kafka: %s: %s", fac, buf);
    else if (level <= 3)
        AB_ERROR("kafka: %s: %s", fac, buf);
    else if (level <= 4)
        AB_WARN("kafka: %s: %s", fac, buf);
    else
        AB_DEBUG("kafka: %s: %s", fac, buf);
}

static void s_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    s_kafka *self = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL)
        AB_ERROR("kafka: fatal: %s", reason);
    else
        s_warn_throttled(self, rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

static void s_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    s_kafka *self = opaque;
    if (!m->err)
        return;
    if (m->_private == &s_event_tag)
        self->events_failed++;
    else
        AB_WARN("kafka: a reply was lost (%s); the client will retry with the same id",
                rd_kafka_err2str(m->err));
}

static void s_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        AB_INFO("kafka: %d partition(s) assigned", parts->cnt);
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
    } else {
        /* Nothing of ours is in flight here (a batch ends before the next poll), and what
         * it committed is stored: auto-commit sends it before the partitions go. */
        AB_INFO("kafka: %d partition(s) revoked", parts->cnt);
        if (cooperative)
            e = rd_kafka_incremental_unassign(rk, parts);
        else
            rd_kafka_assign(rk, NULL);
    }
    if (e) {
        AB_WARN("kafka: rebalance: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

/* --- receiving ---------------------------------------------------------------------- */

/* The reply's record key: the command's reply_to, else its id, else nothing. */
static void s_reply_key(const rd_kafka_message_t *m, s_route *r)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, m->payload, m->len, &off) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *v = ab_map_get(&u.data, "reply_to");
        if (!v || v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0)
            v = ab_map_get(&u.data, "id");
        if (v && v->type == MSGPACK_OBJECT_STR && v->via.str.size <= AB_KEY_MAX) {
            memcpy(r->key, v->via.str.ptr, v->via.str.size);
            r->key_len = v->via.str.size;
        }
    }
    msgpack_unpacked_destroy(&u);
}

/* Take m into msg; returns 0, or -1 when m is not a command (an error event: logged). */
static int s_take(s_kafka *self, rd_kafka_message_t *m, ab_inbound *msg)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            s_warn_throttled(self, "consumer", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return -1;
    }
    s_route *r = calloc(1, sizeof *r);
    if (!r) {
        rd_kafka_message_destroy(m);
        return -1;
    }
    r->m = m;
    s_reply_key(m, r);
    msg->body = m->payload ? m->payload : "";
    msg->body_len = m->len;
    msg->ip[0] = '\0'; /* a record has no peer address */
    msg->route = r;
    return 0;
}

static int s_recv(ab_transport *t, ab_inbound *msgs, int max, int timeout_ms)
{
    s_kafka *self = (s_kafka *)t;
    rd_kafka_poll(self->producer, 0); /* delivery reports */
    int64_t wait = self->pause_until_ms - s_now_ms();
    if (wait > 0) {
        /* Keep serving the group (heartbeats run on librdkafka's threads; rebalances are
         * served by poll) but take nothing until the back-off is over. */
        int64_t ms = wait < timeout_ms ? wait : timeout_ms;
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return 0;
    }
    char why[512];
    if (rd_kafka_fatal_error(self->consumer, why, sizeof why)) {
        AB_ERROR("kafka: the consumer cannot go on: %s", why);
        return -1;
    }
    int taken = 0;
    rd_kafka_message_t *m = rd_kafka_consumer_poll(self->consumer, timeout_ms);
    while (m) {
        if (s_take(self, m, &msgs[taken]) == 0)
            taken++;
        if (taken == max)
            break;
        m = rd_kafka_consumer_poll(self->consumer, 0);
    }
    return taken;
}

/* --- sending ------------------------------------------------------------------------ */

static int s_produce(s_kafka *self, const char *topic, const void *key, size_t key_len,
                     const void *buf, size_t len, void *tag)
{
    for (int step = 0;; step++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            self->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || step >= S_QUEUE_WAIT_STEPS) {
            s_warn_throttled(self, topic, rd_kafka_err2str(e));
            return -1;
        }
        rd_kafka_poll(self->producer, 10); /* room comes as deliveries complete */
    }
}

static int s_reply(ab_transport *t, const ab_inbound *msg, const void *buf, size_t len)
{
    s_kafka *self = (s_kafka *)t;
    const s_route *r = msg->route;
    if (!r)
        return -1;
    return s_produce(self, self->replies_topic, r->key_len ? r->key : NULL, r->key_len, buf, len,
                     NULL);
}

static int s_publish(ab_transport *t, const char *topic, const void *buf, size_t len)
{
    s_kafka *self = (s_kafka *)t;
    return s_produce(self, self->events_topic, topic, strlen(topic), buf, len, &s_event_tag);
}

static int s_flush(ab_transport *t, int timeout_ms)
{
    s_kafka *self = (s_kafka *)t;
    rd_kafka_resp_err_t e = rd_kafka_flush(self->producer, timeout_ms);
    unsigned failed = self->events_failed;
    self->events_failed = 0;
    return e == RD_KAFKA_RESP_ERR_NO_ERROR && failed == 0 ? 0 : -1;
}

/* --- the end of a batch -------------------------------------------------------------- */

/* Per partition of the batch: the offset after its last record (commit) or its first
 * record (redeliver). */
static rd_kafka_topic_partition_list_t *s_positions(const ab_inbound *msgs, int n, bool first)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        const s_route *r = msgs[i].route;
        if (!r)
            continue;
        const char *topic = rd_kafka_topic_name(r->m->rkt);
        int64_t at = first ? r->m->offset : r->m->offset + 1;
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(list, topic, r->m->partition);
        if (!p)
            rd_kafka_topic_partition_list_add(list, topic, r->m->partition)->offset = at;
        else if (first ? at < p->offset : at > p->offset)
            p->offset = at;
    }
    return list;
}

static void s_done(ab_transport *t, const ab_inbound *msgs, int n, bool redeliver)
{
    s_kafka *self = (s_kafka *)t;
    rd_kafka_topic_partition_list_t *list = s_positions(msgs, n, redeliver);
    if (list->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(list);
        return;
    }
    if (!redeliver) {
        /* The replies first: an offset committed while a reply still waits in the producer's
         * queue would lose that reply with the process (a kill -9), and the command, never
         * read again, would leave its client unanswered. A flush that times out (a replies
         * broker down) stores nothing now: the next batch's flush waits for these replies
         * too, and its offsets cover these commands. */
        if (rd_kafka_flush(self->producer, S_REPLY_FLUSH_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_topic_partition_list_destroy(list);
            return;
        }
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(self->consumer, list);
        if (e)
            /* The partitions went to another engine meanwhile: it reads these commands
             * again and answers them from their stored replies. */
            AB_WARN("kafka: offsets not stored (%s)", rd_kafka_err2str(e));
    } else {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(self->consumer, list, 5000);
        if (e) {
            AB_WARN("kafka: cannot rewind for redelivery: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        self->pause_until_ms = s_now_ms() + S_REDELIVER_MS;
        AB_WARN("kafka: %d command(s) not applied (database unavailable); reading them again "
                "in %d ms",
                n, S_REDELIVER_MS);
    }
    rd_kafka_topic_partition_list_destroy(list);
}

static void s_release(ab_transport *t, ab_inbound *msgs, int n)
{
    (void)t;
    for (int i = 0; i < n; i++) {
        s_route *r = msgs[i].route;
        if (r) {
            rd_kafka_message_destroy(r->m);
            free(r);
        }
        msgs[i].route = NULL;
        msgs[i].body = NULL;
        msgs[i].body_len = 0;
    }
}

static void s_destroy(ab_transport **tp)
{
    if (!tp || !*tp)
        return;
    s_kafka *self = (s_kafka *)*tp;
    if (self->consumer) {
        /* Every command read has been finished (a batch ends before the loop stops): commit
         * the positions now, before leaving starts a rebalance that could refuse it. */
        rd_kafka_resp_err_t e = rd_kafka_commit(self->consumer, NULL, 0);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            AB_WARN("kafka: offsets not committed at exit (%s): the next owner reads those "
                    "commands again and answers them from their stored replies",
                    rd_kafka_err2str(e));
        rd_kafka_consumer_close(self->consumer); /* leaves the group */
        rd_kafka_destroy(self->consumer);
    }
    if (self->producer) {
        if (rd_kafka_flush(self->producer, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            AB_WARN("kafka: %d record(s) not delivered at exit", rd_kafka_outq_len(self->producer));
        rd_kafka_destroy(self->producer);
    }
    free(self->replies_topic);
    free(self->events_topic);
    free(self);
    *tp = NULL;
}

static const ab_transport_ops s_ops = {s_recv,    s_reply, s_publish, s_release,
                                       s_destroy, s_done,  s_flush};

/* --- creation ----------------------------------------------------------------------- */

static rd_kafka_t *s_client(s_kafka *self, rd_kafka_type_t type, const ab_kafka_options *opt,
                            char *err, size_t errlen)
{
    static const char *const consumer_defaults[] = {
        "client.id", "adminbus-engine", "enable.auto.commit", "true",
        /* stored only after COMMIT (s_done): */
        "enable.auto.offset.store", "false", "auto.commit.interval.ms", "200",
        /* a new group starts with the commands already waiting */
        "auto.offset.reset", "earliest"};
    static const char *const producer_defaults[] = {"client.id", "adminbus-engine", "linger.ms",
                                                    "2"};
    bool consumer = type == RD_KAFKA_CONSUMER;
    rd_kafka_conf_t *conf =
        ab_kafka_conf_new(opt->brokers, consumer ? consumer_defaults : producer_defaults,
                          consumer ? sizeof consumer_defaults / sizeof *consumer_defaults / 2 : 2,
                          opt->prop_names, opt->prop_values, opt->nprops, err, errlen);
    if (!conf)
        return NULL;
    char why[512];
    if (consumer && rd_kafka_conf_set(conf, "group.id", opt->group, why, sizeof why) != 0) {
        snprintf(err, errlen, "kafka group %s: %s", opt->group, why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, self);
    rd_kafka_conf_set_log_cb(conf, s_log_cb);
    rd_kafka_conf_set_error_cb(conf, s_error_cb);
    if (consumer)
        rd_kafka_conf_set_rebalance_cb(conf, s_rebalance_cb);
    else
        rd_kafka_conf_set_dr_msg_cb(conf, s_delivery_cb);
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
    if (!rk) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static int s_subscribe(s_kafka *self, const char *topic, char *err, size_t errlen)
{
    rd_kafka_poll_set_consumer(self->consumer);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(self->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) {
        snprintf(err, errlen, "kafka: cannot subscribe to %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

ab_transport *ab_transport_kafka_new(const ab_kafka_options *opt, char *err, size_t errlen)
{
    if (!opt->brokers || !*opt->brokers) {
        snprintf(err, errlen, "transport kafka needs kafka_brokers (host:port,…)");
        return NULL;
    }
    s_kafka *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->base.ops = &s_ops;
    self->base.durable_events = true;
    self->replies_topic = strdup(opt->replies_topic);
    self->events_topic = strdup(opt->events_topic);
    ab_transport *t = &self->base;
    self->producer = s_client(self, RD_KAFKA_PRODUCER, opt, err, errlen);
    if (self->producer)
        self->consumer = s_client(self, RD_KAFKA_CONSUMER, opt, err, errlen);
    if (!self->consumer || s_subscribe(self, opt->commands_topic, err, errlen) < 0)
        s_destroy(&t);
    return t;
}
