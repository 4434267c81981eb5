/* transport_zmq.c — the ZeroMQ transport of an engine (see transport.h).
 *
 * A DEALER connected to the broker's engine endpoint receives
 * [route frames…][ip][body] and sends back [route frames…][reply]; the route frames are
 * opaque here (the client's identity and its empty delimiter, as the broker saw them).
 * A PUB connected to the broker's event intake publishes [topic][body]. */
#include "wire/transport.h"
#include "zmq/zframes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "zmq/curve.h"

/* Long enough for replies queued at exit to get out, short enough not to hang a stop. */
#define S_LINGER_MS 1000
/* Generous queues: a burst of commands waits in memory rather than being dropped. */
#define S_HWM 100000
/* More frames than any honest message has (identity, delimiter, ip, body, a few proxies). */

typedef struct {
    ab_transport base; /* first, so an ab_transport * is an s_zmq * */
    void *ctx;
    void *dealer;
    void *pub;
} s_zmq;

/* What ab_inbound.route points to: the frames the reply must be sent back with. */
typedef struct {
    int nroute;
    zmq_msg_t route[AB_FRAMES_MAX];
    zmq_msg_t body;
} s_route;

static void s_route_free(s_route *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->nroute; i++)
        zmq_msg_close(&r->route[i]);
    zmq_msg_close(&r->body);
    free(r);
}

/* Turn [route…][ip][body] into msg; returns 0, or -1 when the frames cannot be a command
 * from the broker (then they are freed and the message is dropped). */
static int s_take(zmq_msg_t *frames, int n, bool overflow, ab_inbound *msg)
{
    s_route *r = NULL;
    if (n >= 3 && !overflow)
        r = calloc(1, sizeof *r);
    if (!r) {
        for (int i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
        return -1;
    }
    r->nroute = n - 2;
    for (int i = 0; i < r->nroute; i++) {
        zmq_msg_init(&r->route[i]);
        zmq_msg_move(&r->route[i], &frames[i]);
    }
    zmq_msg_init(&r->body);
    zmq_msg_move(&r->body, &frames[n - 1]);
    size_t iplen = zmq_msg_size(&frames[n - 2]);
    if (iplen > AB_IP_MAX)
        iplen = 0; /* not an address: better none than a wrong one */
    memcpy(msg->ip, zmq_msg_data(&frames[n - 2]), iplen);
    msg->ip[iplen] = '\0';
    zmq_msg_close(&frames[n - 2]);
    zmq_msg_close(&frames[n - 1]); /* moved out: now empty */
    for (int i = 0; i < r->nroute; i++)
        zmq_msg_close(&frames[i]);
    /* The body's bytes may live inside its zmq_msg_t: point at it where it now rests. */
    msg->body = zmq_msg_data(&r->body);
    msg->body_len = zmq_msg_size(&r->body);
    msg->route = r;
    return 0;
}

static int s_recv(ab_transport *t, ab_inbound *msgs, int max, int timeout_ms)
{
    s_zmq *self = (s_zmq *)t;
    zmq_pollitem_t item = {self->dealer, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&item, 1, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -1; /* a signal: let the caller look at its flags */
    int taken = 0;
    while (rc > 0 && taken < max) {
        zmq_msg_t frames[AB_FRAMES_MAX];
        int extra;
        int n = ab_zframes_recv(self->dealer, frames, &extra);
        bool overflow = extra > 0;
        if (n < 0)
            return taken > 0 ? taken : -1;
        if (n == 0)
            break;
        if (s_take(frames, n, overflow, &msgs[taken]) == 0)
            taken++;
        else
            fprintf(stderr, "adminbus: dropped a message of %d frame(s) not from a broker\n", n);
    }
    return taken;
}

static int s_reply(ab_transport *t, const ab_inbound *msg, const void *buf, size_t len)
{
    s_zmq *self = (s_zmq *)t;
    const s_route *r = msg->route;
    if (!r)
        return -1;
    /* DONTWAIT: a broker that is gone or drowning must not stall the engine; the reply is
     * lost and the client retries with the same id. Once the first frame is accepted the
     * rest of the message is too (ZeroMQ queues whole messages). */
    for (int i = 0; i < r->nroute; i++) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, (zmq_msg_t *)&r->route[i]);
        if (zmq_msg_send(&copy, self->dealer, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&copy);
            return -1;
        }
    }
    return zmq_send(self->dealer, buf, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

static int s_publish(ab_transport *t, const char *topic, const void *buf, size_t len)
{
    s_zmq *self = (s_zmq *)t;
    /* Events are at-most-once here: drop rather than wait when the queue is full. */
    if (zmq_send(self->pub, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    return zmq_send(self->pub, buf, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

static void s_release(ab_transport *t, ab_inbound *msgs, int n)
{
    for (int i = 0; i < n; i++) {
        s_route_free(msgs[i].route);
        msgs[i].route = NULL;
        msgs[i].body = NULL;
        msgs[i].body_len = 0;
    }
}

static void s_destroy(ab_transport **tp)
{
    if (!tp || !*tp)
        return;
    s_zmq *self = (s_zmq *)*tp;
    if (self->dealer)
        zmq_close(self->dealer);
    if (self->pub)
        zmq_close(self->pub);
    if (self->ctx)
        zmq_ctx_term(self->ctx); /* waits up to S_LINGER_MS for queued replies */
    free(self);
    *tp = NULL;
}

/* No done (the broker holds nothing to commit) and no flush (events are at-most-once). */
static const ab_transport_ops s_ops = {s_recv,    s_reply, s_publish, s_release,
                                       s_destroy, NULL,    NULL};

static void *s_socket(void *ctx, int type, const char *endpoint)
{
    void *sock = zmq_socket(ctx, type);
    if (!sock) {
        fprintf(stderr, "adminbus: cannot create a socket: %s\n", zmq_strerror(errno));
        return NULL;
    }
    int linger = S_LINGER_MS, hwm = S_HWM;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    char err[512];
    if (ab_curve_daemon_set(sock, endpoint, err, sizeof err) < 0) {
        fprintf(stderr, "adminbus: cannot connect to %s with CURVE: %s\n", endpoint, err);
        zmq_close(sock);
        return NULL;
    }
    if (zmq_connect(sock, endpoint) < 0) {
        fprintf(stderr, "adminbus: cannot connect to %s: %s\n", endpoint, zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

ab_transport *ab_transport_zmq_new(const char *engine_endpoint, const char *publish_endpoint)
{
    s_zmq *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &s_ops;
    self->ctx = zmq_ctx_new();
    if (self->ctx) {
        self->dealer = s_socket(self->ctx, ZMQ_DEALER, engine_endpoint);
        self->pub = self->dealer ? s_socket(self->ctx, ZMQ_PUB, publish_endpoint) : NULL;
    }
    ab_transport *t = &self->base;
    if (!self->pub) {
        if (!self->ctx)
            fprintf(stderr, "adminbus: cannot create a ZeroMQ context: %s\n", zmq_strerror(errno));
        s_destroy(&t);
    }
    return t;
}
