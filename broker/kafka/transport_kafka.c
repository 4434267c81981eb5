/* transport_kafka.c — the Kafka transport of an engine (see transport.h; docs/architecture.md,
 * "Kafka transport").
 *
 * Commands come from a consumer in the engines' group, subscribed to the commands topic.
 * Offsets are never committed for what was merely read: enable.auto.offset.store is off,
 * and a batch's offsets are stored only once the engine has committed the batch's transaction
 * (done) and the cluster has acknowledged every reply of the batch and of the batches before it
 * on the same partitions (kafka_pending.h; librdkafka's auto-commit then sends the stored
 * offsets, and on a rebalance or close). done() does not wait for those acknowledgements: the
 * delivery reports, served by the producer polls of recv and done, store the offsets as they
 * come. A reply lost for good makes its partition read again from its batch's first command:
 * a command read again after a crash, a rebalance or a rewind is answered from the stored reply
 * of its id (engine/core/idempotency.c). Replies and events go out through one producer: replies to
 * the replies topic keyed by the command's reply_to (else its id), events to the events topic
 * keyed by their topic. One transport serves one apply loop (one thread): no lock. */
#include "wire/transport.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka/kafka_conf.h"
#include "kafka/kafka_pending.h"
#include "wire/log.h"

/* Batches whose offsets may wait for their replies before done() waits too (back-pressure
 * when the replies cannot get out: a replies broker down). */
#define S_PENDING_MAX 256
/* How long done() then waits for the replies to reach the cluster. */
#define S_REPLY_FLUSH_MS 2000
/* How long a revocation waits for the replies of what the engine read (their offsets are
 * stored before the partitions go, else the next owner reads those commands again). */
#define S_REVOKE_FLUSH_MS 1000
/* While batches wait for their replies, a recv wait serves the delivery reports this
 * often. */
#define S_REPORT_EVERY_MS 10
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
    rd_kafka_topic_t *warm[2]; /* the replies and events topics, known from the start */
    char *commands_topic, *replies_topic, *events_topic;
    ab_kpending *pending;   /* batches whose offsets wait for their replies */
    int batch_max;          /* the most commands a recv takes (room in a pending batch) */
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

/* msg_opaque of an event record: their failures count for flush. A reply's is its part of
 * the pending batch (ab_kpart), or NULL when its partition was revoked meanwhile. */
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

/* A reply that failed with e: true when reading its command again may get it out (the
 * cluster was out of reach), false when it never will (too large, not allowed, no such
 * topic): reading it again would only loop, so it is given up (logged) and the offsets go
 * on, as for any reply lost on the way to its client, who retries with the same id. */
static bool s_retry(s_kafka *self, rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        AB_ERROR("kafka: a reply cannot go to %s (%s); given up", self->replies_topic,
                 rd_kafka_err2str(e));
        return false;
    default:
        return true;
    }
}

static void s_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    s_kafka *self = opaque;
    if (m->_private == &s_event_tag) {
        if (m->err)
            self->events_failed++;
        return;
    }
    bool retry = m->err && s_retry(self, m->err);
    if (retry)
        /* (message.timeout.ms over, or purged at exit): its offset is not stored; the
         * partition is read again from its batch and the command answered from its stored
         * reply (s_settle), or by the next owner after an exit. */
        s_warn_throttled(self, "a reply was not delivered; its command will be read again",
                         rd_kafka_err2str(m->err));
    if (m->_private)
        ab_kpending_acked(m->_private, !retry);
}

/* --- offsets ---------------------------------------------------------------------------- */

/* Where ab_kpending's (partition, offset) pairs go: a list of the commands topic. */
typedef struct {
    rd_kafka_topic_partition_list_t *list;
    const char *topic;
} s_positions_of;

static void s_add_position(void *arg, int32_t partition, int64_t offset)
{
    s_positions_of *to = arg;
    rd_kafka_topic_partition_t *p =
        rd_kafka_topic_partition_list_find(to->list, to->topic, partition);
    if (!p)
        p = rd_kafka_topic_partition_list_add(to->list, to->topic, partition);
    p->offset = offset;
}

/* Store the offsets of what is fully answered (the head of each partition's batches). */
static void s_store(s_kafka *self)
{
    s_positions_of to = {rd_kafka_topic_partition_list_new(4), self->commands_topic};
    if (ab_kpending_ready(self->pending, s_add_position, &to) > 0) {
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(self->consumer, to.list);
        if (e)
            /* The partitions went to another engine meanwhile: it reads these commands
             * again and answers them from their stored replies. */
            AB_WARN("kafka: offsets not stored (%s)", rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(to.list);
}

/* Read again the partitions where a reply was lost for good, from the first command of its
 * batch there: those commands are answered from their stored replies. */
static void s_rewind(s_kafka *self)
{
    s_positions_of to = {rd_kafka_topic_partition_list_new(4), self->commands_topic};
    if (ab_kpending_rewinds(self->pending, s_add_position, &to) > 0) {
        AB_WARN("kafka: %d partition(s) read again from a command whose reply was lost",
                to.list->cnt);
        rd_kafka_error_t *e = rd_kafka_seek_partitions(self->consumer, to.list, 5000);
        if (e) {
            /* revoked meanwhile: the next owner reads them from the committed offset */
            AB_WARN("kafka: cannot rewind: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
    }
    rd_kafka_topic_partition_list_destroy(to.list);
}

/* Serve the delivery reports, then act on them. */
static void s_settle(s_kafka *self)
{
    rd_kafka_poll(self->producer, 0);
    s_rewind(self);
    s_store(self);
}

/* Before partitions go: store what their replies allow (auto-commit sends it with the
 * revocation), after a short wait for those replies, and forget the rest: the next owner
 * reads it again and answers from the stored replies. Offsets of a partition no longer ours
 * must never be stored: another engine may have moved it on. */
static void s_revoke(s_kafka *self, const rd_kafka_topic_partition_list_t *parts)
{
    if (ab_kpending_count(self->pending) > 0)
        rd_kafka_flush(self->producer, S_REVOKE_FLUSH_MS);
    rd_kafka_poll(self->producer, 0);
    s_store(self);
    for (int i = 0; i < parts->cnt; i++)
        if (strcmp(parts->elems[i].topic, self->commands_topic) == 0)
            ab_kpending_drop(self->pending, parts->elems[i].partition);
}

static void s_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    s_kafka *self = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *e = NULL;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        AB_INFO("kafka: %d partition(s) assigned", parts->cnt);
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
    } else {
        AB_INFO("kafka: %d partition(s) revoked", parts->cnt);
        s_revoke(self, parts);
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

static void s_release(ab_transport *t, ab_inbound *msgs, int n);

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

/* Take m into msg; returns 0, -1 when m is not a command (an error event: logged), -2 out of
 * memory. */
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
    if (ab_kpending_read(self->pending, self->batch_max, m->partition, m->offset) < 0) {
        free(r);
        rd_kafka_message_destroy(m);
        return -2;
    }
    r->m = m;
    s_reply_key(m, r);
    msg->body = m->payload ? m->payload : "";
    msg->body_len = m->len;
    msg->ip[0] = '\0'; /* a record has no peer address */
    msg->route = r;
    return 0;
}

/* The consumer's wait for the first record, cut in slices while batches wait for their
 * replies: their delivery reports come through the producer's poll, not this one. */
static rd_kafka_message_t *s_wait(s_kafka *self, int timeout_ms)
{
    int64_t until = s_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = until - s_now_ms();
        if (left < 0)
            left = 0;
        bool waiting = ab_kpending_count(self->pending) > 0;
        int slice = waiting && left > S_REPORT_EVERY_MS ? S_REPORT_EVERY_MS : (int)left;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(self->consumer, slice);
        if (m || slice == left)
            return m;
        s_settle(self);
    }
}

static int s_recv(ab_transport *t, ab_inbound *msgs, int max, int timeout_ms)
{
    s_kafka *self = (s_kafka *)t;
    self->batch_max = max;
    s_settle(self); /* delivery reports */
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
    rd_kafka_message_t *m = s_wait(self, timeout_ms);
    while (m) {
        int rc = s_take(self, m, &msgs[taken]);
        if (rc == -2) {
            AB_ERROR("kafka: out of memory for the pending offsets");
            s_release(t, msgs, taken);
            return -1;
        }
        if (rc == 0)
            taken++;
        if (taken == max)
            break;
        m = rd_kafka_consumer_poll(self->consumer, 0);
    }
    return taken;
}

/* --- sending ------------------------------------------------------------------------ */

/* Returns 0 or the error of the last try. */
static rd_kafka_resp_err_t s_produce(s_kafka *self, const char *topic, const void *key,
                                     size_t key_len, const void *buf, size_t len, void *tag)
{
    for (int step = 0;; step++) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            self->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(tag), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return e;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || step >= S_QUEUE_WAIT_STEPS) {
            s_warn_throttled(self, topic, rd_kafka_err2str(e));
            return e;
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
    ab_kpart *part = ab_kpending_part(self->pending, r->m->partition);
    if (part)
        ab_kpending_sent(part);
    rd_kafka_resp_err_t e = s_produce(self, self->replies_topic, r->key_len ? r->key : NULL,
                                      r->key_len, buf, len, part);
    if (e && part)
        ab_kpending_acked(part, !s_retry(self, e)); /* never went out */
    return e ? -1 : 0;
}

static int s_publish(ab_transport *t, const char *topic, const void *buf, size_t len)
{
    s_kafka *self = (s_kafka *)t;
    return s_produce(self, self->events_topic, topic, strlen(topic), buf, len, &s_event_tag) ? -1
                                                                                             : 0;
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

/* Per partition of the batch: the offset of its first record. */
static rd_kafka_topic_partition_list_t *s_first_positions(const ab_inbound *msgs, int n)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        const s_route *r = msgs[i].route;
        if (!r)
            continue;
        const char *topic = rd_kafka_topic_name(r->m->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(list, topic, r->m->partition);
        if (!p)
            rd_kafka_topic_partition_list_add(list, topic, r->m->partition)->offset = r->m->offset;
        else if (r->m->offset < p->offset)
            p->offset = r->m->offset;
    }
    return list;
}

/* Rewind the batch's partitions to its first commands: the database could not apply them. */
static void s_redeliver(s_kafka *self, const ab_inbound *msgs, int n)
{
    rd_kafka_topic_partition_list_t *list = s_first_positions(msgs, n);
    if (list->cnt > 0) {
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

/* The batch is committed (or to be read again): its offsets wait for its replies in the
 * pending FIFO, stored by s_settle as the delivery reports come, so the apply loop goes on at
 * once. Only when too many batches wait (the replies cannot get out) does it wait here. */
static void s_done(ab_transport *t, const ab_inbound *msgs, int n, bool redeliver)
{
    s_kafka *self = (s_kafka *)t;
    /* a redelivered batch is never stored: its commands come again, later batches store
     * them */
    ab_kpending_close(self->pending, redeliver);
    if (redeliver)
        s_redeliver(self, msgs, n);
    s_settle(self);
    if (ab_kpending_count(self->pending) > S_PENDING_MAX) {
        rd_kafka_flush(self->producer, S_REPLY_FLUSH_MS);
        s_settle(self);
    }
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
    if (self->producer && self->consumer) {
        /* Every batch read is done (the loop stops between batches): let its replies out,
         * store what they allow, and commit it before leaving starts a rebalance that could
         * refuse it. What stays unacknowledged is not stored: the next owner reads those
         * commands again and answers them from their stored replies. */
        if (rd_kafka_flush(self->producer, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
            AB_WARN("kafka: %d record(s) not delivered at exit", rd_kafka_outq_len(self->producer));
        s_settle(self);
        rd_kafka_resp_err_t e = rd_kafka_commit(self->consumer, NULL, 0);
        if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
            AB_WARN("kafka: offsets not committed at exit (%s): the next owner reads those "
                    "commands again and answers them from their stored replies",
                    rd_kafka_err2str(e));
    }
    if (self->consumer) {
        rd_kafka_consumer_close(self->consumer); /* leaves the group */
        rd_kafka_destroy(self->consumer);
    }
    for (int i = 0; i < 2; i++)
        if (self->warm[i])
            rd_kafka_topic_destroy(self->warm[i]);
    if (self->producer) {
        /* the undelivered records' reports point into the pending FIFO: serve them first */
        rd_kafka_purge(self->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(self->producer, 0);
        rd_kafka_destroy(self->producer);
    }
    ab_kpending_free(&self->pending);
    free(self->commands_topic);
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
        /* stored only after COMMIT and the replies (s_done, s_store): */
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
    if (consumer) {
        rd_kafka_conf_set_rebalance_cb(conf, s_rebalance_cb);
    } else {
        rd_kafka_conf_set_dr_msg_cb(conf, s_delivery_cb);
        ab_kafka_order_events(conf, self->events_topic);
    }
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
    self->commands_topic = strdup(opt->commands_topic);
    self->replies_topic = strdup(opt->replies_topic);
    self->pending = ab_kpending_new();
    self->batch_max = 1;
    self->events_topic = strdup(opt->events_topic);
    ab_transport *t = &self->base;
    if (!self->commands_topic || !self->replies_topic || !self->events_topic || !self->pending) {
        snprintf(err, errlen, "out of memory");
        s_destroy(&t);
        return NULL;
    }
    self->producer = s_client(self, RD_KAFKA_PRODUCER, opt, err, errlen);
    if (self->producer) {
        self->warm[0] = ab_kafka_topic_warm(self->producer, self->replies_topic, AB_KAFKA_WARM_MS);
        self->warm[1] = ab_kafka_topic_warm(self->producer, self->events_topic, AB_KAFKA_WARM_MS);
        self->consumer = s_client(self, RD_KAFKA_CONSUMER, opt, err, errlen);
    }
    if (!self->consumer || s_subscribe(self, opt->commands_topic, err, errlen) < 0)
        s_destroy(&t);
    return t;
}
