/* client_kafka.c — adminctl over Kafka (see client_kafka.h). */
#include "client/client_kafka.h"

#include <ctype.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client/clientutil.h"
#include "wire/envelope.h"
#include "kafka/kafka_conf.h"

#define S_PROPS_MAX 32
#define S_META_MS   5000 /* metadata and watermark look-ups */

/* A parsed kafka:// URL; strings point into buf. */
typedef struct {
    char *buf;
    const char *brokers, *commands, *replies, *events;
    const char *names[S_PROPS_MAX], *values[S_PROPS_MAX];
    size_t nprops;
} s_url;

bool ctl_is_kafka(const char *url)
{
    return url && strncmp(url, CTL_KAFKA_SCHEME, strlen(CTL_KAFKA_SCHEME)) == 0;
}

/* Decode %XX in place. */
static void s_unescape(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (*s == '%' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
            char hex[3] = {s[1], s[2], 0};
            *out++ = (char)strtol(hex, NULL, 16);
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

static int s_param(s_url *u, char *name, char *value, char *err, size_t errlen)
{
    s_unescape(name);
    s_unescape(value);
    if (strcmp(name, "commands") == 0)
        u->commands = value;
    else if (strcmp(name, "replies") == 0)
        u->replies = value;
    else if (strcmp(name, "events") == 0)
        u->events = value;
    else if (strchr(name, '.') && u->nprops < S_PROPS_MAX) {
        u->names[u->nprops] = name;
        u->values[u->nprops++] = value;
    } else
        return ctl_fail(err, errlen, -2,
                        "kafka URL: unknown parameter '%s' (commands, replies, events, or a "
                        "librdkafka property such as security.protocol)",
                        name);
    return 0;
}

/* Parse url; returns 0, or -2 with err (a usage error). */
static int s_parse(const char *url, s_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    u->commands = "adminbus.commands";
    u->replies = "adminbus.replies";
    u->events = "adminbus.events";
    u->buf = strdup(url + strlen(CTL_KAFKA_SCHEME));
    if (!u->buf)
        return ctl_fail(err, errlen, -2, "out of memory");
    char *query = strchr(u->buf, '?');
    if (query)
        *query++ = '\0';
    char *slash = strchr(u->buf, '/');
    if (slash)
        *slash = '\0';
    u->brokers = u->buf;
    if (!*u->brokers)
        return ctl_fail(err, errlen, -2, "kafka URL names no broker: kafka://HOST:PORT[,…]/");
    for (char *save = NULL, *kv = query ? strtok_r(query, "&", &save) : NULL; kv;
         kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return ctl_fail(err, errlen, -2, "kafka URL: parameter '%s' has no value", kv);
        *eq = '\0';
        if (s_param(u, kv, eq + 1, err, errlen) < 0)
            return -2;
    }
    return 0;
}

/* A client of type with our defaults, then the URL's properties. */
static rd_kafka_t *s_client(const s_url *u, rd_kafka_type_t type, char *err, size_t errlen)
{
    static const char *const consumer_defaults[] = {
        "client.id", "adminctl", "enable.auto.commit", "false", "enable.partition.eof", "false"};
    static const char *const producer_defaults[] = {"client.id", "adminctl", "linger.ms", "0"};
    bool consumer = type == RD_KAFKA_CONSUMER;
    rd_kafka_conf_t *conf =
        ab_kafka_conf_new(u->brokers, consumer ? consumer_defaults : producer_defaults,
                          consumer ? 3 : 2, u->names, u->values, u->nprops, err, errlen);
    if (!conf)
        return NULL;
    /* librdkafka's own log lines would garble the CLI's output: only errors, on stderr. */
    char why[512];
    rd_kafka_conf_set(conf, "log_level", "3", why, sizeof why);
    if (consumer && ab_kafka_set_tail_group(conf, "adminctl", err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
    if (!rk) {
        ctl_fail(err, errlen, -2, "kafka: %s", why);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* --- one command ------------------------------------------------------------------ */

/* body (a packed map) with reply_to added, into out. Returns 0, or -1 when body is not a
 * map. */
static int s_with_reply_to(const char *body, size_t len, const char *reply_to, msgpack_sbuffer *out)
{
    const unsigned char *b = (const unsigned char *)body;
    uint32_t n;
    size_t head;
    if (len >= 1 && (b[0] & 0xf0) == 0x80)
        n = b[0] & 0x0f, head = 1;
    else if (len >= 3 && b[0] == 0xde)
        n = (uint32_t)b[1] << 8 | b[2], head = 3;
    else if (len >= 5 && b[0] == 0xdf)
        n = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4], head = 5;
    else
        return -1;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n + 1);
    msgpack_sbuffer_write(out, body + head, len - head);
    ab_pack_cstr(&pk, "reply_to");
    ab_pack_cstr(&pk, reply_to);
    return 0;
}

/* Take m's value as the reply when its key is ours and it is a map whose id is ours (or
 * absent: the engine could not read ours). */
static bool s_accept(const rd_kafka_message_t *m, const char *reply_to, const char *id,
                     ctl_reply *reply)
{
    if (m->err || m->key_len != strlen(reply_to) || memcmp(m->key, reply_to, m->key_len) != 0)
        return false;
    char *buf = malloc(m->len ? m->len : 1);
    if (!buf)
        return false;
    memcpy(buf, m->payload, m->len);
    return ctl_reply_accept(buf, m->len, id, reply);
}

static int s_produce(rd_kafka_t *p, const char *topic, const char *id, const msgpack_sbuffer *cmd,
                     int timeout_ms, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e =
        rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(id, strlen(id)),
                          RD_KAFKA_V_VALUE(cmd->data, cmd->size),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!e)
        e = rd_kafka_flush(p, timeout_ms);
    if (e)
        return ctl_fail(err, errlen, -1, "cannot send the command to topic %s: %s", topic,
                        rd_kafka_err2str(e));
    return 0;
}

static int s_wait_reply(rd_kafka_t *c, const char *reply_to, const char *id, int64_t deadline,
                        ctl_reply *reply)
{
    for (;;) {
        int64_t left = deadline - ctl_now_ms();
        if (left <= 0)
            return -1;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, (int)(left < 200 ? left : 200));
        if (!m)
            continue;
        bool taken = s_accept(m, reply_to, id, reply);
        rd_kafka_message_destroy(m);
        if (taken)
            return 0;
    }
}

static int s_request(const s_url *u, const char *body, size_t len, const char *id, int timeout_ms,
                     ctl_reply *reply, char *err, size_t errlen)
{
    int64_t deadline = ctl_now_ms() + timeout_ms;
    char uuid[37], reply_to[48];
    if (ctl_uuid_v4(uuid) < 0)
        return ctl_fail(err, errlen, -2, "no randomness for a reply address");
    snprintf(reply_to, sizeof reply_to, "adminctl-%s", uuid);
    msgpack_sbuffer cmd;
    msgpack_sbuffer_init(&cmd);
    if (s_with_reply_to(body, len, reply_to, &cmd) < 0) {
        msgpack_sbuffer_destroy(&cmd);
        return ctl_fail(err, errlen, -2, "the command is not a msgpack map");
    }
    rd_kafka_t *c = s_client(u, RD_KAFKA_CONSUMER, err, errlen);
    rd_kafka_t *p = c ? s_client(u, RD_KAFKA_PRODUCER, err, errlen) : NULL;
    int rc = p ? 0 : -2;
    if (rc == 0)
        rc = ab_kafka_assign_end(c, u->replies, S_META_MS, err, errlen);
    /* the commands topic's partitions asked for now: the record would wait longer for them */
    rd_kafka_topic_t *warm = rc == 0 ? ab_kafka_topic_warm(p, u->commands, AB_KAFKA_WARM_MS) : NULL;
    if (rc == 0)
        rc = s_produce(p, u->commands, id, &cmd, timeout_ms, err, errlen);
    if (rc == 0 && s_wait_reply(c, reply_to, id, deadline, reply) < 0)
        rc = ctl_fail(err, errlen, -1,
                      "no reply on %s within %g s (the command is in %s: an engine applies it "
                      "when one runs); retry safely with --id %s",
                      u->replies, timeout_ms / 1000.0, u->commands, id);
    if (warm)
        rd_kafka_topic_destroy(warm);
    if (p)
        rd_kafka_destroy(p);
    if (c) {
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
    }
    msgpack_sbuffer_destroy(&cmd);
    return rc;
}

int ctl_kafka_request(const char *url, const char *body, size_t len, const char *id, int timeout_ms,
                      ctl_reply *reply, char *err, size_t errlen)
{
    memset(reply, 0, sizeof *reply);
    s_url u;
    int rc = s_parse(url, &u, err, errlen);
    if (rc == 0)
        rc = s_request(&u, body, len, id, timeout_ms, reply, err, errlen);
    free(u.buf);
    return rc;
}

/* --- the event monitor ------------------------------------------------------------ */

static long s_monitor(rd_kafka_t *c, const char *const *topics, size_t n, long count,
                      int64_t deadline, FILE *out)
{
    long seen = 0;
    while (!ctl_interrupted() && (count == 0 || seen < count)) {
        int wait = 200;
        if (deadline >= 0) {
            int64_t left = deadline - ctl_now_ms();
            if (left <= 0)
                break;
            wait = left < wait ? (int)left : wait;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, wait);
        if (!m)
            continue;
        if (!m->err && ab_kafka_key_matches(m, topics, n)) {
            char topic[256];
            snprintf(topic, sizeof topic, "%.*s", (int)m->key_len, (const char *)m->key);
            ctl_print_event(m->payload, m->len, topic, out);
            seen++;
        }
        rd_kafka_message_destroy(m);
    }
    return seen;
}

int ctl_kafka_events(const char *url, const char *const *topics, size_t n, long count,
                     int timeout_ms, FILE *out, char *err, size_t errlen)
{
    s_url u;
    rd_kafka_t *c = NULL;
    int rc = s_parse(url, &u, err, errlen) < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    if (rc == CTL_EXIT_OK && !(c = s_client(&u, RD_KAFKA_CONSUMER, err, errlen)))
        rc = CTL_EXIT_USAGE;
    if (rc == CTL_EXIT_OK && ab_kafka_assign_end(c, u.events, S_META_MS, err, errlen) < 0)
        rc = CTL_EXIT_UNREACHABLE;
    if (rc == CTL_EXIT_OK) {
        ctl_catch_interrupts();
        int64_t deadline = timeout_ms < 0 ? -1 : ctl_now_ms() + timeout_ms;
        long seen = s_monitor(c, topics, n, count, deadline, out);
        if (count > 0 && seen < count && !ctl_interrupted())
            rc =
                ctl_fail(err, errlen, CTL_EXIT_UNREACHABLE, "%ld of %ld events from %s within %g s",
                         seen, count, url, timeout_ms / 1000.0);
    }
    if (c) {
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
    }
    free(u.buf);
    return rc;
}
