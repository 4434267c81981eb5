/* kafka.c — the shim over Kafka (transport = kafka in adminbus.conf; docs/architecture.md,
 * "The HTTP shim over Kafka").
 *
 * Commands: one producer writes each command to the commands topic, keyed by its id (the
 * shim's commands have no ordering key), with reply_to set to this process's own address
 * (adminbus-http-<uuid>). One consumer tails the replies topic from its end, and a
 * dispatcher thread hands each record keyed by that address to the request waiting for
 * its id. libmicrohttpd runs a thread per connection, so many requests wait at once: each
 * waits on its own condition variable in a table of waiters, all under one mutex. A
 * request registers before its command is produced, so no reply can come before anyone
 * waits for it, and stays registered across its re-send (same id): a late reply to the
 * first send is as good as one to the second.
 *
 * Events: a consumer of the events topic assigned at its end (ab_kafka_assign_end), its
 * records filtered by key (the bus topic) like a ZeroMQ subscription
 * (ab_kafka_key_matches). */
#include <librdkafka/rdkafka.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "client/clientutil.h"
#include "wire/config.h"
#include "wire/envelope.h"
#include "http/http.h"
#include "kafka/kafka_conf.h"

#define S_META_MS     5000 /* metadata and watermarks at start */
#define S_PREFIX_MAX  16
#define S_REPLY_MAX   (64u << 20)
#define S_DISPATCH_MS 100

/* --- options ------------------------------------------------------------------------------ */

void hs_kafka_options(const ab_config *cfg, hs_options *o)
{
    o->kafka = strcmp(cfg->transport, "kafka") == 0;
    if (!o->kafka)
        return;
    o->kafka_brokers = strdup(cfg->kafka_brokers);
    o->kafka_commands = strdup(cfg->kafka_commands_topic);
    o->kafka_replies = strdup(cfg->kafka_replies_topic);
    o->kafka_events = strdup(cfg->kafka_events_topic);
    o->kafka_names = calloc(cfg->nkafka + 1, sizeof *o->kafka_names);
    o->kafka_values = calloc(cfg->nkafka + 1, sizeof *o->kafka_values);
    for (size_t i = 0; o->kafka_names && o->kafka_values && i < cfg->nkafka; i++) {
        o->kafka_names[i] = strdup(cfg->kafka[i].name);
        o->kafka_values[i] = strdup(cfg->kafka[i].value);
        o->nkafka = i + 1;
    }
}

void hs_kafka_options_free(hs_options *o)
{
    for (size_t i = 0; i < o->nkafka; i++) {
        free(o->kafka_names[i]);
        free(o->kafka_values[i]);
    }
    free(o->kafka_names);
    free(o->kafka_values);
    free(o->kafka_brokers);
    free(o->kafka_commands);
    free(o->kafka_replies);
    free(o->kafka_events);
}

/* A client of type: our low-latency defaults, then the operator's kafka.* properties. */
static rd_kafka_t *s_client(const hs_options *o, rd_kafka_type_t type, rd_kafka_conf_t **confp,
                            char *err, size_t errlen)
{
    /* fetch.wait.max.ms: an HTTP request waits for its reply, so the broker should not
     * hold an empty fetch long; a reply (a record) ends the wait anyway. */
    static const char *const consumer_defaults[] = {"client.id",
                                                    "adminbus-http",
                                                    "enable.auto.commit",
                                                    "false",
                                                    "enable.partition.eof",
                                                    "false",
                                                    "fetch.wait.max.ms",
                                                    "10",
                                                    "fetch.error.backoff.ms",
                                                    "50"};
    static const char *const producer_defaults[] = {"client.id", "adminbus-http", "linger.ms", "0"};
    bool consumer = type == RD_KAFKA_CONSUMER;
    rd_kafka_conf_t *conf =
        ab_kafka_conf_new(o->kafka_brokers, consumer ? consumer_defaults : producer_defaults,
                          consumer ? sizeof consumer_defaults / sizeof *consumer_defaults / 2 : 2,
                          (const char *const *)o->kafka_names, (const char *const *)o->kafka_values,
                          o->nkafka, err, errlen);
    if (!conf)
        return NULL;
    char why[512];
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    if (consumer && ab_kafka_set_tail_group(conf, "adminbus-http", err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (confp)
        *confp = conf; /* the caller adds callbacks */
    rd_kafka_t *rk = confp ? NULL : rd_kafka_new(type, conf, why, sizeof why);
    if (!confp && !rk) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

static void s_consumer_free(rd_kafka_t *c)
{
    if (!c)
        return;
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

/* --- events --------------------------------------------------------------------------------- */

typedef struct {
    hs_evsrc base;
    rd_kafka_t *c;
    char *prefixes[S_PREFIX_MAX];
    size_t n;
} s_evsrc;

static int s_ev_next(hs_evsrc *base, int timeout_ms, hs_event *ev)
{
    s_evsrc *e = (s_evsrc *)base;
    int64_t deadline = ctl_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - ctl_now_ms();
        if (left <= 0)
            return 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(e->c, (int)left);
        if (!m)
            return 0;
        bool take =
            !m->err && m->key && ab_kafka_key_matches(m, (const char *const *)e->prefixes, e->n);
        if (take) {
            ev->topic = strndup(m->key, m->key_len);
            ev->body = malloc(m->len ? m->len : 1);
            ev->len = m->len;
            if (ev->body)
                memcpy(ev->body, m->payload, m->len);
        }
        rd_kafka_message_destroy(m);
        if (take) {
            if (ev->topic && ev->body)
                return 1;
            hs_event_release(ev);
            return -1;
        }
    }
}

static void s_ev_close(hs_evsrc *base)
{
    s_evsrc *e = (s_evsrc *)base;
    s_consumer_free(e->c);
    for (size_t i = 0; i < e->n; i++)
        free(e->prefixes[i]);
    free(e);
}

hs_evsrc *hs_evsrc_kafka_open(const hs_options *o, const char *const *prefixes, size_t n, char *err,
                              size_t errlen)
{
    s_evsrc *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->base.next = s_ev_next;
    e->base.close = s_ev_close;
    for (size_t i = 0; i < n && i < S_PREFIX_MAX; i++)
        if ((e->prefixes[e->n] = strdup(prefixes[i])) != NULL)
            e->n++;
    e->c = s_client(o, RD_KAFKA_CONSUMER, NULL, err, errlen);
    if (!e->c || ab_kafka_assign_end(e->c, o->kafka_events, S_META_MS, err, errlen) < 0) {
        s_ev_close(&e->base);
        return NULL;
    }
    return &e->base;
}

/* --- commands ------------------------------------------------------------------------------ */

typedef struct s_waiter {
    struct s_waiter *next;
    char id[37];
    pthread_cond_t cond;
    char *reply; /* set by the dispatcher */
    size_t len;
    char failed[256]; /* set by a delivery report: the command never reached the topic */
} s_waiter;

struct hs_kbus {
    rd_kafka_t *producer, *consumer;
    rd_kafka_topic_t *warm; /* the commands topic, its metadata fetched at start */
    char *commands, *replies;
    char reply_to[64];
    pthread_mutex_t lock;
    s_waiter *waiters;
    pthread_t thread;
    volatile int stop;
    bool started;
};

/* The waiter for id (len bytes), or NULL; with lock held. Ids are UUIDs in text, and the
 * engine may echo one in another case. */
static s_waiter *s_find(hs_kbus *k, const char *id, size_t len)
{
    for (s_waiter *w = k->waiters; w; w = w->next)
        if (strlen(w->id) == len && strncasecmp(w->id, id, len) == 0)
            return w;
    return NULL;
}

/* The reply's id, into out (at most 36 characters); false when it has none. */
static bool s_reply_id(const void *buf, size_t len, char out[37])
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    bool ok = msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
              u.data.type == MSGPACK_OBJECT_MAP;
    const msgpack_object *id = ok ? ab_map_get(&u.data, "id") : NULL;
    ok = id && id->type == MSGPACK_OBJECT_STR && id->via.str.size <= 36;
    if (ok) {
        memcpy(out, id->via.str.ptr, id->via.str.size);
        out[id->via.str.size] = '\0';
    }
    msgpack_unpacked_destroy(&u);
    return ok;
}

/* Hand m to the request waiting for its id, when it is a reply to this shim. */
static void s_dispatch(hs_kbus *k, const rd_kafka_message_t *m)
{
    char id[37];
    if (m->err || m->key_len != strlen(k->reply_to) ||
        memcmp(m->key, k->reply_to, m->key_len) != 0 || m->len > S_REPLY_MAX ||
        !s_reply_id(m->payload, m->len, id))
        return;
    pthread_mutex_lock(&k->lock);
    s_waiter *w = s_find(k, id, strlen(id));
    if (w && !w->reply && (w->reply = malloc(m->len ? m->len : 1)) != NULL) {
        memcpy(w->reply, m->payload, m->len);
        w->len = m->len;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&k->lock);
}

static void *s_dispatcher(void *arg)
{
    hs_kbus *k = arg;
    while (!k->stop) {
        rd_kafka_poll(k->producer, 0); /* delivery reports */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k->consumer, S_DISPATCH_MS);
        if (m) {
            s_dispatch(k, m);
            rd_kafka_message_destroy(m);
        }
    }
    return NULL;
}

/* A command that could not be written (the cluster unreachable for message.timeout.ms, a
 * topic refused): its request stops waiting at once, with the reason. */
static void s_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    hs_kbus *k = opaque;
    if (!m->err || !m->key)
        return;
    pthread_mutex_lock(&k->lock);
    s_waiter *w = s_find(k, m->key, m->key_len);
    if (w) {
        snprintf(w->failed, sizeof w->failed, "the command could not be written to topic %s: %s",
                 k->commands, rd_kafka_err2str(m->err));
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&k->lock);
}

static rd_kafka_t *s_producer(hs_kbus *k, const hs_options *o, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = NULL;
    s_client(o, RD_KAFKA_PRODUCER, &conf, err, errlen);
    if (!conf)
        return NULL;
    /* A command the shim has given up on must not be applied long after: undelivered
     * commands expire soon after the request's two waits. */
    char why[512], expiry[32];
    snprintf(expiry, sizeof expiry, "%d", 2 * o->bus_timeout_ms + 1000);
    rd_kafka_conf_set(conf, "message.timeout.ms", expiry, why, sizeof why);
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, s_delivery);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (!p) {
        snprintf(err, errlen, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
    }
    return p;
}

hs_kbus *hs_kbus_new(const hs_options *o, char *err, size_t errlen)
{
    hs_kbus *k = calloc(1, sizeof *k);
    char uuid[37];
    if (!k || ctl_uuid_v4(uuid) < 0) {
        free(k);
        snprintf(err, errlen, "out of memory or randomness");
        return NULL;
    }
    pthread_mutex_init(&k->lock, NULL);
    snprintf(k->reply_to, sizeof k->reply_to, "adminbus-http-%s", uuid);
    k->commands = strdup(o->kafka_commands);
    k->replies = strdup(o->kafka_replies);
    k->producer = s_producer(k, o, err, errlen);
    k->consumer = k->producer ? s_client(o, RD_KAFKA_CONSUMER, NULL, err, errlen) : NULL;
    /* at the end of the replies topic before any command goes out: no reply is missed */
    bool ok = k->consumer && k->commands && k->replies &&
              ab_kafka_assign_end(k->consumer, k->replies, S_META_MS, err, errlen) == 0;
    /* so that the first request's command does not wait for the topic's lookup */
    if (ok && !(k->warm = ab_kafka_topic_warm(k->producer, k->commands, AB_KAFKA_WARM_MS))) {
        snprintf(err, errlen, "out of memory");
        ok = false;
    }
    k->started = ok && pthread_create(&k->thread, NULL, s_dispatcher, k) == 0;
    if (!k->started) {
        if (ok)
            snprintf(err, errlen, "cannot start the reply dispatcher");
        hs_kbus_free(k);
        return NULL;
    }
    return k;
}

void hs_kbus_free(hs_kbus *k)
{
    if (!k)
        return;
    k->stop = 1;
    if (k->started)
        pthread_join(k->thread, NULL);
    s_consumer_free(k->consumer);
    if (k->warm)
        rd_kafka_topic_destroy(k->warm);
    if (k->producer) {
        rd_kafka_flush(k->producer, 2000);
        rd_kafka_destroy(k->producer);
    }
    pthread_mutex_destroy(&k->lock);
    free(k->commands);
    free(k->replies);
    free(k);
}

const char *hs_kbus_reply_to(const hs_kbus *k)
{
    return k->reply_to;
}

static int s_produce(hs_kbus *k, const char *body, size_t len, const char *id, char *err,
                     size_t errlen)
{
    rd_kafka_resp_err_t e =
        rd_kafka_producev(k->producer, RD_KAFKA_V_TOPIC(k->commands),
                          RD_KAFKA_V_KEY(id, strlen(id)), RD_KAFKA_V_VALUE((void *)body, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e)
        snprintf(err, errlen, "cannot send the command to topic %s: %s", k->commands,
                 rd_kafka_err2str(e));
    return e ? -1 : 0;
}

/* Wait for w's reply or failure until deadline (CLOCK_MONOTONIC); with lock held. */
static void s_wait(hs_kbus *k, s_waiter *w, const struct timespec *deadline)
{
    while (!w->reply && !w->failed[0])
        if (pthread_cond_timedwait(&w->cond, &k->lock, deadline) != 0)
            break;
}

static struct timespec s_deadline(int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

static void s_unlink(hs_kbus *k, s_waiter *w)
{
    for (s_waiter **p = &k->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

char *hs_kbus_request(hs_kbus *k, const char *body, size_t len, const char *id, int timeout_ms,
                      size_t *rlen, char *err, size_t errlen)
{
    s_waiter w = {0};
    snprintf(w.id, sizeof w.id, "%s", id);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_lock(&k->lock);
    w.next = k->waiters;
    k->waiters = &w;
    /* sent twice with the same id, as over ZeroMQ: the engine answers a repeat from its
     * stored result */
    for (int attempt = 0; attempt < 2 && !w.reply && !w.failed[0]; attempt++) {
        pthread_mutex_unlock(&k->lock);
        char why[256] = "";
        int rc = s_produce(k, body, len, id, why, sizeof why);
        pthread_mutex_lock(&k->lock);
        if (rc < 0) {
            snprintf(w.failed, sizeof w.failed, "%s", why);
            break;
        }
        struct timespec deadline = s_deadline(timeout_ms);
        s_wait(k, &w, &deadline);
    }
    s_unlink(k, &w);
    pthread_mutex_unlock(&k->lock);
    pthread_cond_destroy(&w.cond);
    if (!w.reply && w.failed[0])
        snprintf(err, errlen, "%s", w.failed);
    else if (!w.reply)
        snprintf(err, errlen,
                 "no reply on topic %s within %g s (sent twice with the same id to %s): is an "
                 "engine running?",
                 k->replies, timeout_ms / 1000.0, k->commands);
    *rlen = w.len;
    return w.reply;
}
