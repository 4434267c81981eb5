/* zbus.c — see zbus.h. */
#include "zmq/zbus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "zmq/curve.h"
#include "wire/envelope.h"
#include "wire/stopsig.h"

#include "zmq/zframes.h"

#define S_LINGER_MS    1000 /* lets the last events get out at exit */
#define S_SLOW_JOIN_MS 200

struct ab_zbus {
    void *ctx, *pub, *sub;
};

int ab_zbus_follow(ab_zbus *b, const char *topic)
{
    return zmq_setsockopt(b->sub, ZMQ_SUBSCRIBE, topic, strlen(topic)) == 0 ? 0 : -1;
}

void ab_zbus_settle(void)
{
    zmq_poll(NULL, 0, S_SLOW_JOIN_MS);
}

ab_zbus *ab_zbus_open(const char *publish_endpoint, const char *sub_endpoint, const char *topic,
                      char *err, size_t errlen)
{
    ab_zbus *b = calloc(1, sizeof *b);
    int linger = S_LINGER_MS, none = 0;
    if (b)
        b->ctx = zmq_ctx_new();
    if (b && b->ctx) {
        b->pub = zmq_socket(b->ctx, ZMQ_PUB);
        b->sub = zmq_socket(b->ctx, ZMQ_SUB);
    }
    if (!b || !b->pub || !b->sub ||
        zmq_setsockopt(b->pub, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(b->sub, ZMQ_LINGER, &none, sizeof none) != 0) {
        snprintf(err, errlen, "cannot open a socket: %s", zmq_strerror(errno));
        ab_zbus_close(&b);
        return NULL;
    }
    /* the daemons' CURVE keys, when the endpoints use CURVE (curve.h) */
    if (ab_curve_daemon_set(b->pub, publish_endpoint, err, errlen) < 0 ||
        ab_curve_daemon_set(b->sub, sub_endpoint, err, errlen) < 0) {
        ab_zbus_close(&b);
        return NULL;
    }
    if (zmq_connect(b->pub, publish_endpoint) != 0 || ab_zbus_follow(b, topic) != 0 ||
        zmq_connect(b->sub, sub_endpoint) != 0) {
        snprintf(err, errlen,
                 "cannot connect to the broker (publish %s, subscribe %s): %s; check the "
                 "endpoints in adminbus.conf",
                 publish_endpoint, sub_endpoint, zmq_strerror(errno));
        ab_zbus_close(&b);
        return NULL;
    }
    return b;
}

int ab_zbus_publish(void *bus, const char *topic, const void *body, size_t len)
{
    ab_zbus *b = bus;
    if (zmq_send(b->pub, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    return zmq_send(b->pub, body, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

int ab_zbus_wait(void *bus, int timeout_ms)
{
    ab_zbus *b = bus;
    /* The stop pipe too: a stop signal ends the wait whichever thread it landed on. */
    zmq_pollitem_t items[2] = {{b->sub, 0, ZMQ_POLLIN, 0}, {NULL, ab_stopsig_fd(), ZMQ_POLLIN, 0}};
    int nitems = items[1].fd >= 0 ? 2 : 1;
    if (zmq_poll(items, nitems, timeout_ms) < 0)
        return errno == EINTR ? 0 : -1; /* a signal: the caller looks at its stop flag */
    if (nitems == 2 && (items[1].revents & ZMQ_POLLIN))
        return 0;
    int got = 0;
    bool work_only = true, assign = false;
    for (;;) {
        zmq_msg_t frames[AB_FRAMES_MAX];
        int extra;
        int n = ab_zframes_recv(b->sub, frames, &extra);
        if (n <= 0) {
            if (n < 0 && !got)
                return -1;
            return !got ? 0 : !work_only ? 1 : assign ? 3 : 2;
        }
        const char *t = zmq_msg_data(&frames[0]);
        size_t len = zmq_msg_size(&frames[0]);
        bool is_wake = len >= 5 && memcmp(t, "wake.", 5) == 0;
        bool is_assign = len > 7 && memcmp(t + len - 7, ".assign", 7) == 0;
        work_only = work_only && (is_wake || is_assign);
        assign = assign || is_assign;
        for (int i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
        got = 1;
    }
}

void ab_zbus_close(ab_zbus **bp)
{
    if (!bp || !*bp)
        return;
    ab_zbus *b = *bp;
    if (b->pub)
        zmq_close(b->pub);
    if (b->sub)
        zmq_close(b->sub);
    if (b->ctx)
        zmq_ctx_term(b->ctx);
    free(b);
    *bp = NULL;
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ab_zbus_probe(const char *publish_endpoint, const char *events_endpoint, int timeout_ms,
                  char *found, size_t len)
{
    char topic[96];
    msgpack_sbuffer body;
    ab_probe_event(topic, sizeof topic, &body);
    ab_zbus *b = ab_zbus_open(publish_endpoint, events_endpoint, topic, found, len);
    if (!b) {
        msgpack_sbuffer_destroy(&body);
        return -1;
    }
    int64_t start = s_mono_ms(), waited = 0;
    int got = 0;
    /* A fresh PUB drops what it sends until the broker has passed the subscription on:
     * publish again every 50 ms until the probe comes back. */
    while (got == 0 && waited < timeout_ms) {
        if (ab_zbus_publish(b, topic, body.data, body.size) < 0 && errno != EAGAIN)
            break;
        got = ab_zbus_wait(b, 50);
        waited = s_mono_ms() - start;
    }
    msgpack_sbuffer_destroy(&body);
    ab_zbus_close(&b);
    if (got > 0) {
        snprintf(found, len,
                 "an event published to %s came back from %s through the broker in %lld ms",
                 publish_endpoint, events_endpoint, (long long)waited);
        return 0;
    }
    snprintf(found, len,
             "an event published to %s did not come back from %s within %d ms: the broker "
             "does not carry events",
             publish_endpoint, events_endpoint, timeout_ms);
    return -1;
}
