/* client.c — adminctl on the bus: one command over a ZMQ_DEALER with one resend on a
 * fresh socket, and the event monitor over a ZMQ_SUB (see cli.h). */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zmq.h>

#include "client/client_kafka.h"
#include "client/clientutil.h"
#include "wire/envelope.h"

#define REPLY_MAX (64 * 1024 * 1024) /* protects memory only */

/* A socket of type with LINGER 0, connected to url; NULL with err set. */
static void *s_socket(void *ctx, int type, const char *url, char *err, size_t errlen)
{
    void *s = zmq_socket(ctx, type);
    if (!s) {
        ctl_fail(err, errlen, -2, "cannot open a socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int zero = 0;
    int64_t max = REPLY_MAX;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    if (ctl_curve_apply(s, err, errlen) < 0) {
        zmq_close(s);
        return NULL;
    }
    if (zmq_connect(s, url) != 0) {
        ctl_fail(err, errlen, -2, "cannot use %s: %s", url, zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Receive one whole multi-part message; its last frame is copied to a malloc'd *body.
 * Returns the number of frames (0 on error); *first_empty tells if frame 1 was empty. */
static int s_recv_message(void *s, char **body, size_t *len, bool *first_empty)
{
    int frames = 0;
    int more = 1;
    *body = NULL;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            free(*body);
            *body = NULL;
            return 0;
        }
        if (frames++ == 0)
            *first_empty = zmq_msg_size(&m) == 0;
        free(*body);
        *len = zmq_msg_size(&m);
        *body = malloc(*len ? *len : 1);
        if (*body)
            memcpy(*body, zmq_msg_data(&m), *len);
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return *body ? frames : 0;
}

/* --- one command ------------------------------------------------------------------ */

void ctl_reply_release(ctl_reply *reply)
{
    if (reply->buf)
        msgpack_unpacked_destroy(&reply->msg);
    free(reply->buf);
    memset(reply, 0, sizeof *reply);
}

bool ctl_reply_accept(char *body, size_t len, const char *id, ctl_reply *reply)
{
    msgpack_unpacked_init(&reply->msg);
    size_t off = 0;
    bool ok = msgpack_unpack_next(&reply->msg, body, len, &off) == MSGPACK_UNPACK_SUCCESS &&
              reply->msg.data.type == MSGPACK_OBJECT_MAP;
    const msgpack_object *rid = ok ? ab_map_get(&reply->msg.data, "id") : NULL;
    if (rid && rid->type == MSGPACK_OBJECT_STR && rid->via.str.size > 0)
        ok = rid->via.str.size == strlen(id) && strncasecmp(rid->via.str.ptr, id, strlen(id)) == 0;
    if (!ok) {
        msgpack_unpacked_destroy(&reply->msg);
        free(body);
        return false;
    }
    reply->buf = body;
    reply->len = len;
    reply->root = &reply->msg.data;
    return true;
}

/* Wait up to timeout_ms for our reply on s. Returns 0 with *reply, -1 on timeout. */
static int s_wait_reply(void *s, const char *id, int timeout_ms, ctl_reply *reply)
{
    int64_t deadline = ctl_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - ctl_now_ms();
        if (left <= 0)
            return -1;
        zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, (long)left);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc <= 0)
            continue;
        char *body;
        size_t len = 0;
        bool empty = false;
        int frames = s_recv_message(s, &body, &len, &empty);
        if (frames == 2 && empty && ctl_reply_accept(body, len, id, reply))
            return 0;
        if (frames != 2 || !empty)
            free(body);
    }
}

static int s_send(void *s, const char *body, size_t len, int timeout_ms)
{
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    if (zmq_send(s, "", 0, ZMQ_SNDMORE) < 0)
        return -1;
    return zmq_send(s, body, len, 0) < 0 ? -1 : 0;
}

/* One attempt on a fresh socket: 0 reply, -1 none, -2 unusable url. */
static int s_attempt(void *ctx, const char *url, const char *body, size_t len, const char *id,
                     int timeout_ms, ctl_reply *reply, char *err, size_t errlen)
{
    void *s = s_socket(ctx, ZMQ_DEALER, url, err, errlen);
    if (!s)
        return -2;
    int64_t start = ctl_now_ms();
    int rc = s_send(s, body, len, timeout_ms);
    if (rc == 0)
        rc = s_wait_reply(s, id, timeout_ms - (int)(ctl_now_ms() - start), reply);
    zmq_close(s);
    return rc;
}

int ctl_request(const char *url, const char *body, size_t len, const char *id, int timeout_ms,
                ctl_reply *reply, char *err, size_t errlen)
{
    if (ctl_is_kafka(url))
        return ctl_kafka_request(url, body, len, id, timeout_ms, reply, err, errlen);
    memset(reply, 0, sizeof *reply);
    void *ctx = zmq_ctx_new();
    if (!ctx)
        return ctl_fail(err, errlen, -2, "cannot start ZeroMQ: %s", zmq_strerror(errno));
    int rc = -1;
    for (int attempt = 0; attempt < 2 && rc == -1; attempt++)
        rc = s_attempt(ctx, url, body, len, id, timeout_ms, reply, err, errlen);
    zmq_ctx_term(ctx);
    if (rc == -1)
        ctl_fail(err, errlen, -1,
                 "no reply from %s within %g s (sent twice): is the stack running? (ops/run); "
                 "retry safely with --id %s",
                 url, timeout_ms / 1000.0, id);
    return rc;
}

/* --- the event monitor ------------------------------------------------------------ */

/* One event body as a JSON line on out; frame_topic is used when the body has none. */
void ctl_print_event(const char *body, size_t len, const char *frame_topic, FILE *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, body, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        fprintf(stderr, "adminctl: skipped an event on '%s' that is not a msgpack map\n",
                frame_topic);
        msgpack_unpacked_destroy(&u);
        return;
    }
    json_t *line = json_object();
    const char *keys[] = {"topic", "ts", "data"};
    for (int i = 0; i < 3; i++) {
        const msgpack_object *v = ab_map_get(&u.data, keys[i]);
        json_object_set_new(line, keys[i], v ? ctl_to_json(v) : json_null());
    }
    if (json_is_null(json_object_get(line, "topic")))
        json_object_set_new(line, "topic", json_string(frame_topic));
    json_dumpf(line, out, JSON_COMPACT);
    fputc('\n', out);
    fflush(out);
    json_decref(line);
    msgpack_unpacked_destroy(&u);
}

/* Receive and print one event from s; returns 1 printed, 0 skipped. */
static int s_one_event(void *s, FILE *out)
{
    char topic[256] = "";
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) < 0) {
        zmq_msg_close(&m);
        return 0;
    }
    size_t tlen = zmq_msg_size(&m) < sizeof topic - 1 ? zmq_msg_size(&m) : sizeof topic - 1;
    memcpy(topic, zmq_msg_data(&m), tlen);
    bool more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    char *body = NULL;
    size_t len = 0;
    bool empty;
    if (!more || s_recv_message(s, &body, &len, &empty) != 1) {
        free(body);
        return 0;
    }
    ctl_print_event(body, len, topic, out);
    free(body);
    return 1;
}

static void *s_subscriber(void *ctx, const char *url, const char *const *topics, size_t n,
                          char *err, size_t errlen)
{
    void *s = s_socket(ctx, ZMQ_SUB, url, err, errlen);
    if (!s)
        return NULL;
    if (n == 0)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    for (size_t i = 0; i < n; i++)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i]));
    return s;
}

/* Print events until count, a signal or the deadline (< 0: none); returns how many. */
static long s_monitor(void *s, long count, int64_t deadline, FILE *out)
{
    long seen = 0;
    while (!ctl_interrupted() && (count == 0 || seen < count)) {
        long wait = -1;
        if (deadline >= 0) {
            wait = (long)(deadline - ctl_now_ms());
            if (wait <= 0)
                break;
        }
        zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, wait);
        if (rc < 0 && errno != EINTR)
            break;
        if (rc > 0)
            seen += s_one_event(s, out);
    }
    return seen;
}

int ctl_events(const char *url, const char *const *topics, size_t n, long count, int timeout_ms,
               FILE *out, char *err, size_t errlen)
{
    if (ctl_is_kafka(url))
        return ctl_kafka_events(url, topics, n, count, timeout_ms, out, err, errlen);
    void *ctx = zmq_ctx_new();
    if (!ctx)
        return ctl_fail(err, errlen, CTL_EXIT_UNREACHABLE, "cannot start ZeroMQ: %s",
                        zmq_strerror(errno));
    void *s = s_subscriber(ctx, url, topics, n, err, errlen);
    if (!s) {
        zmq_ctx_term(ctx);
        return CTL_EXIT_USAGE;
    }
    ctl_catch_interrupts();
    int64_t deadline = timeout_ms < 0 ? -1 : ctl_now_ms() + timeout_ms;
    long seen = s_monitor(s, count, deadline, out);
    zmq_close(s);
    zmq_ctx_term(ctx);
    if (count > 0 && seen < count && !ctl_interrupted())
        return ctl_fail(err, errlen, CTL_EXIT_UNREACHABLE, "%ld of %ld events from %s within %g s",
                        seen, count, url, timeout_ms / 1000.0);
    return CTL_EXIT_OK;
}
