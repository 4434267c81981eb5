/* kbus.c — see kbus.h.
 *
 * The wait is a poll(2) on two pipes, exactly as zbus's is a zmq_poll on the SUB and the
 * stop pipe: librdkafka writes a byte to our own pipe whenever its consumer queue turns
 * non-empty (rd_kafka_queue_io_event_enable), and stopsig.h's pipe turns readable on
 * SIGINT/SIGTERM. So a notice wakes the waiter at once, a stop signal ends the wait
 * whichever thread it landed on, and a signal delivered to the waiting thread (the
 * supervisor's SIGCHLD) interrupts it with EINTR, as before; an idle daemon does not spin.
 * (librdkafka blocks every signal in its own threads, so they never take one.) Polling the
 * consumer in short slices would have cost a wake-up per slice and up to a slice of
 * latency on every stop. */
#include "kafka/kbus.h"

#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wire/envelope.h"
#include "kafka/kafka_conf.h"
#include "wire/stopsig.h"

#define S_LINGER_MS    1000  /* lets the last events out at close */
#define S_OPEN_WAIT_MS 30000 /* a fresh cluster, or one still starting: the topic's partitions */
#define S_META_MS      2000  /* one metadata look-up */
#define S_SLICE_MS     1000  /* longest poll(2) without a look at the queue (a safety net) */
#define S_FOLLOW_MAX   16

struct ab_kbus {
    rd_kafka_t *producer, *consumer;
    rd_kafka_topic_t *warm;  /* the events topic, its metadata fetched at open */
    rd_kafka_queue_t *queue; /* the consumer's, which raises the io event */
    int wake[2];             /* librdkafka writes to wake[1] when queue turns non-empty */
    char *events_topic;
    char *follow[S_FOLLOW_MAX];
    size_t nfollow;
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A client of type with our defaults, then the operator's kafka.* properties. A consumer
 * gets a group id of its own that it never joins: assign() needs one, nothing is
 * committed. fetch.wait.max.ms is small because a worker waits on these notices: the
 * broker answers an idle fetch after 10 ms instead of 500. */
static rd_kafka_t *s_client(const ab_kbus_options *o, rd_kafka_type_t type,
                            const char *events_topic, char *err, size_t errlen)
{
    char id[96], why[512];
    snprintf(id, sizeof id, "adminbus-%s", o->client ? o->client : "daemon");
    const char *const consumer_defaults[] = {
        "client.id",         id,  "enable.auto.commit", "false", "enable.partition.eof", "false",
        "fetch.wait.max.ms", "10"};
    const char *const producer_defaults[] = {"client.id", id, "linger.ms", "2"};
    bool consumer = type == RD_KAFKA_CONSUMER;
    rd_kafka_conf_t *conf =
        ab_kafka_conf_new(o->brokers, consumer ? consumer_defaults : producer_defaults,
                          consumer ? 4 : 2, o->prop_names, o->prop_values, o->nprops, err, errlen);
    if (!conf)
        return NULL;
    if (!consumer)
        ab_kafka_order_events(conf, events_topic); /* b's copy: it outlives the producer */
    if (consumer && ab_kafka_set_tail_group(conf, id, err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
    if (!rk) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* The consumer's queue raises our pipe; the main queue (errors, logs) is forwarded to it,
 * so one poll serves everything. */
static int s_wire_queue(ab_kbus *b, char *err, size_t errlen)
{
    if (pipe(b->wake) != 0) {
        b->wake[0] = b->wake[1] = -1;
        snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(b->wake[i], F_SETFL, fcntl(b->wake[i], F_GETFL) | O_NONBLOCK);
        fcntl(b->wake[i], F_SETFD, FD_CLOEXEC); /* not inherited by the supervisor's workers */
    }
    rd_kafka_poll_set_consumer(b->consumer);
    b->queue = rd_kafka_queue_get_consumer(b->consumer);
    if (!b->queue) {
        snprintf(err, errlen, "kafka: no consumer queue");
        return -1;
    }
    rd_kafka_queue_io_event_enable(b->queue, b->wake[1], "!", 1);
    return 0;
}

/* Place the consumer at the topic's end, retrying while the cluster has no partitions for
 * it yet, until wait_ms or a stop signal. */
static int s_assign_end(ab_kbus *b, int wait_ms, char *err, size_t errlen)
{
    int64_t until = s_mono_ms() + wait_ms;
    for (;;) {
        int64_t left = until - s_mono_ms();
        int meta_ms = left < S_META_MS ? (int)(left > 100 ? left : 100) : S_META_MS;
        if (ab_kafka_assign_end(b->consumer, b->events_topic, meta_ms, err, errlen) == 0)
            return 0;
        if (s_mono_ms() + 250 >= until || ab_stopsig_raised())
            return -1;
        poll(NULL, 0, 250);
    }
}

static ab_kbus *s_open(const ab_kbus_options *o, const char *topic, int wait_ms, char *err,
                       size_t errlen)
{
    ab_kbus *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->wake[0] = b->wake[1] = -1;
    if (!o->brokers || !*o->brokers) {
        snprintf(err, errlen,
                 "transport = kafka but kafka_brokers is empty: set it in "
                 "adminbus.conf (host:port,…)");
        free(b);
        return NULL;
    }
    b->events_topic = strdup(o->events_topic);
    int rc = b->events_topic ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    if (rc == 0 && (!(b->producer = s_client(o, RD_KAFKA_PRODUCER, b->events_topic, err, errlen)) ||
                    !(b->consumer = s_client(o, RD_KAFKA_CONSUMER, NULL, err, errlen))))
        rc = -1;
    if (rc == 0)
        rc = s_wire_queue(b, err, errlen);
    if (rc == 0 && ab_kbus_follow(b, topic) < 0) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc == 0 && s_assign_end(b, wait_ms, err, errlen) < 0) {
        size_t n = strlen(err);
        snprintf(err + n, errlen - n,
                 " (kafka_brokers %s, kafka_events_topic %s: is the cluster up and the topic "
                 "created?)",
                 o->brokers, o->events_topic);
        rc = -1;
    }
    /* the topic is there: so the first event (a job's start) does not wait for its lookup */
    if (rc == 0 &&
        !(b->warm = ab_kafka_topic_warm(b->producer, b->events_topic, AB_KAFKA_WARM_MS))) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc < 0)
        ab_kbus_close(&b);
    return b;
}

ab_kbus *ab_kbus_open(const ab_kbus_options *opt, const char *topic, char *err, size_t errlen)
{
    return s_open(opt, topic, opt->open_wait_ms > 0 ? opt->open_wait_ms : S_OPEN_WAIT_MS, err,
                  errlen);
}

int ab_kbus_follow(ab_kbus *b, const char *topic)
{
    if (b->nfollow == S_FOLLOW_MAX)
        return -1;
    char *copy = strdup(topic);
    if (!copy)
        return -1;
    b->follow[b->nfollow++] = copy;
    return 0;
}

int ab_kbus_publish(void *bus, const char *topic, const void *body, size_t len)
{
    ab_kbus *b = bus;
    rd_kafka_poll(b->producer, 0); /* serve what the producer reported (errors, logs) */
    rd_kafka_resp_err_t e =
        rd_kafka_producev(b->producer, RD_KAFKA_V_TOPIC(b->events_topic),
                          RD_KAFKA_V_KEY(topic, strlen(topic)), RD_KAFKA_V_VALUE((void *)body, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    errno = e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? EAGAIN : EIO;
    return -1;
}

static void s_drain_pipe(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

/* Take every record waiting in the consumer's queue; fold the followed ones into *seen
 * (bit 0: some, bit 1: not only work notices, bit 2: a hand-over). Returns -1 on a fatal
 * client error, else 0. */
static int s_drain_queue(ab_kbus *b, int *seen)
{
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(b->consumer, 0)) != NULL) {
        bool fatal = m->err == RD_KAFKA_RESP_ERR__FATAL;
        /* Other errors (a broker down, a partition moving) are transient: librdkafka
         * recovers, and a lost notice only delays work until the fallback poll. */
        if (!m->err && m->key &&
            ab_kafka_key_matches(m, (const char *const *)b->follow, b->nfollow)) {
            const char *t = m->key;
            size_t len = m->key_len;
            bool is_wake = len >= 5 && memcmp(t, "wake.", 5) == 0;
            bool is_assign = len > 7 && memcmp(t + len - 7, ".assign", 7) == 0;
            *seen |= 1 | (is_wake || is_assign ? 0 : 2) | (is_assign ? 4 : 0);
        }
        rd_kafka_message_destroy(m);
        if (fatal)
            return -1;
    }
    return 0;
}

int ab_kbus_wait(void *bus, int timeout_ms)
{
    ab_kbus *b = bus;
    int64_t until = s_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    int stop_fd = ab_stopsig_fd();
    for (;;) {
        int seen = 0;
        /* what came before the wait, and what a lost io event would otherwise leave */
        s_drain_pipe(b->wake[0]);
        if (s_drain_queue(b, &seen) < 0)
            return -1;
        if (seen)
            return seen & 2 ? 1 : seen & 4 ? 3 : 2;
        int64_t left = until - s_mono_ms();
        if (left <= 0)
            return 0;
        struct pollfd fds[2] = {{b->wake[0], POLLIN, 0}, {stop_fd, POLLIN, 0}};
        int n = poll(fds, stop_fd >= 0 ? 2 : 1, (int)(left < S_SLICE_MS ? left : S_SLICE_MS));
        if (n < 0)
            return errno == EINTR ? 0 : -1; /* a signal: the caller looks at its stop flag */
        if (stop_fd >= 0 && (fds[1].revents & POLLIN))
            return 0;
    }
}

int ab_kbus_flush(ab_kbus *b, int timeout_ms)
{
    return rd_kafka_flush(b->producer, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                   rd_kafka_outq_len(b->producer) == 0
               ? 0
               : -1;
}

void ab_kbus_close(ab_kbus **bp)
{
    if (!bp || !*bp)
        return;
    ab_kbus *b = *bp;
    if (b->warm)
        rd_kafka_topic_destroy(b->warm);
    if (b->producer) {
        rd_kafka_flush(b->producer, S_LINGER_MS);
        /* what is still queued is dropped: events are at-most-once */
        rd_kafka_purge(b->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy(b->producer);
    }
    if (b->queue) {
        rd_kafka_queue_io_event_enable(b->queue, -1, NULL, 0);
        rd_kafka_queue_destroy(b->queue);
    }
    /* never joined its group: nothing to leave or commit */
    if (b->consumer)
        rd_kafka_destroy_flags(b->consumer, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    for (int i = 0; i < 2; i++)
        if (b->wake[i] >= 0)
            close(b->wake[i]);
    for (size_t i = 0; i < b->nfollow; i++)
        free(b->follow[i]);
    free(b->events_topic);
    free(b);
    *bp = NULL;
}

int ab_kbus_probe(const ab_kbus_options *opt, int timeout_ms, char *found, size_t len)
{
    char topic[96];
    msgpack_sbuffer body;
    ab_probe_event(topic, sizeof topic, &body);
    int64_t start = s_mono_ms();
    ab_kbus *b = s_open(opt, topic, timeout_ms, found, len);
    if (!b) {
        msgpack_sbuffer_destroy(&body);
        return -1;
    }
    /* Kafka keeps what it accepted: one record is enough, no re-publishing as on ZeroMQ */
    int got = ab_kbus_publish(b, topic, body.data, body.size) == 0 ? 0 : -1;
    int64_t waited = s_mono_ms() - start;
    while (got == 0 && waited < timeout_ms) {
        got = ab_kbus_wait(b, (int)(timeout_ms - waited));
        waited = s_mono_ms() - start;
        if (got == 0 && ab_stopsig_raised())
            break;
    }
    msgpack_sbuffer_destroy(&body);
    ab_kbus_close(&b);
    if (got > 0) {
        snprintf(found, len, "an event produced to %s on %s came back in %lld ms",
                 opt->events_topic, opt->brokers, (long long)waited);
        return 0;
    }
    snprintf(found, len,
             "an event produced to %s on %s did not come back within %d ms: the cluster does "
             "not carry events",
             opt->events_topic, opt->brokers, timeout_ms);
    return -1;
}
