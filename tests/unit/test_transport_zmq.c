/* test_transport_zmq.c — the engine's ZeroMQ transport (broker/wire/transport.h) against
 * sockets that play the broker's part: a DEALER that hands out [route…][ip][body] and an
 * XSUB that takes events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "wire/transport.h"

typedef struct {
    void *ctx;
    void *backend; /* the broker's DEALER towards engines */
    void *xsub;    /* the broker's event intake */
    ab_transport *t;
} fixture;

static void *bind_any(void *ctx, int type, char *endpoint, size_t size)
{
    void *s = zmq_socket(ctx, type);
    int linger = 0, timeout = 3000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, endpoint, &size), 0);
    return s;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    char engine_ep[256], publish_ep[256];
    fx->ctx = zmq_ctx_new();
    fx->backend = bind_any(fx->ctx, ZMQ_DEALER, engine_ep, sizeof engine_ep);
    fx->xsub = bind_any(fx->ctx, ZMQ_XSUB, publish_ep, sizeof publish_ep);
    fx->t = ab_transport_zmq_new(engine_ep, publish_ep);
    assert_non_null(fx->t);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    fx->t->ops->destroy(&fx->t);
    assert_null(fx->t);
    zmq_close(fx->backend);
    zmq_close(fx->xsub);
    zmq_ctx_term(fx->ctx);
    free(fx);
    return 0;
}

/* Send the frames of one message (NULL-terminated list of strings). */
static void send_frames(void *sock, const char *const *frames)
{
    for (size_t i = 0; frames[i]; i++) {
        int more = frames[i + 1] ? ZMQ_SNDMORE : 0;
        assert_true(zmq_send(sock, frames[i], strlen(frames[i]), more) >= 0);
    }
}

/* Receive up to want messages, waiting at most a few seconds in all. */
static int recv_some(ab_transport *t, ab_inbound *msgs, int max, int want)
{
    int got = 0;
    for (int round = 0; round < 30 && got < want; round++) {
        int n = t->ops->recv(t, msgs + got, max - got, 100);
        assert_true(n >= 0);
        got += n;
    }
    return got;
}

/* The next message on sock as frames; returns the number of frames. */
static int recv_frames(void *sock, char frames[][64], int max)
{
    int n = 0, more = 1;
    while (more && n < max) {
        int len = zmq_recv(sock, frames[n], 63, 0);
        assert_true(len >= 0);
        frames[n][len < 63 ? len : 63] = '\0';
        size_t sz = sizeof more;
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz);
        n++;
    }
    return n;
}

static void test_recv_timeout(void **state)
{
    fixture *fx = *state;
    ab_inbound msgs[4];
    assert_int_equal(fx->t->ops->recv(fx->t, msgs, 4, 20), 0);
}

static void test_round_trip(void **state)
{
    fixture *fx = *state;
    const char *const a[] = {"client-a", "", "10.0.0.1", "body-a", NULL};
    const char *const b[] = {"client-b", "", "", "body-b", NULL};
    const char *const c[] = {"client-c", "192.0.2.7", "body-c", NULL}; /* raw DEALER */
    send_frames(fx->backend, a);
    send_frames(fx->backend, b);
    send_frames(fx->backend, c);
    ab_inbound msgs[8];
    assert_int_equal(recv_some(fx->t, msgs, 8, 3), 3);
    assert_int_equal(msgs[0].body_len, 6);
    assert_memory_equal(msgs[0].body, "body-a", 6);
    assert_string_equal(msgs[0].ip, "10.0.0.1");
    assert_string_equal(msgs[1].ip, "");
    assert_memory_equal(msgs[2].body, "body-c", 6);
    assert_string_equal(msgs[2].ip, "192.0.2.7");
    /* Replies go back with the route frames as they came, in any order. */
    for (int i = 2; i >= 0; i--) {
        char reply[16];
        snprintf(reply, sizeof reply, "reply-%d", i);
        assert_int_equal(fx->t->ops->reply(fx->t, &msgs[i], reply, strlen(reply)), 0);
    }
    fx->t->ops->release(fx->t, msgs, 3);
    assert_null(msgs[0].route);
    char frames[8][64];
    assert_int_equal(recv_frames(fx->backend, frames, 8), 2);
    assert_string_equal(frames[0], "client-c");
    assert_string_equal(frames[1], "reply-2");
    assert_int_equal(recv_frames(fx->backend, frames, 8), 3);
    assert_string_equal(frames[0], "client-b");
    assert_string_equal(frames[1], "");
    assert_string_equal(frames[2], "reply-1");
    assert_int_equal(recv_frames(fx->backend, frames, 8), 3);
    assert_string_equal(frames[0], "client-a");
}

/* At most max are taken; the rest wait for the next call. */
static void test_recv_max(void **state)
{
    fixture *fx = *state;
    const char *const m[] = {"client", "", "", "x", NULL};
    for (int i = 0; i < 5; i++)
        send_frames(fx->backend, m);
    ab_inbound msgs[5];
    int got = 0;
    for (int round = 0; round < 30 && got < 5; round++) {
        int n = fx->t->ops->recv(fx->t, msgs + got, 2, 100);
        assert_true(n >= 0 && n <= 2);
        got += n;
    }
    assert_int_equal(got, 5);
    fx->t->ops->release(fx->t, msgs, got);
}

/* Messages that cannot come from a broker are dropped, and the next one still arrives. */
static void test_malformed_dropped(void **state)
{
    fixture *fx = *state;
    const char *const short_msg[] = {"ip", "body", NULL};
    char long_ip[80];
    memset(long_ip, '1', sizeof long_ip - 1);
    long_ip[sizeof long_ip - 1] = '\0';
    const char *const odd_ip[] = {"client", "", long_ip, "body-ok", NULL};
    send_frames(fx->backend, short_msg);
    send_frames(fx->backend, odd_ip);
    ab_inbound msgs[4];
    assert_int_equal(recv_some(fx->t, msgs, 4, 1), 1);
    assert_memory_equal(msgs[0].body, "body-ok", 7);
    assert_string_equal(msgs[0].ip, ""); /* not an address: none rather than a wrong one */
    fx->t->ops->release(fx->t, msgs, 1);
}

static void test_publish(void **state)
{
    fixture *fx = *state;
    const char sub[] = "\x01job.42.";
    assert_int_equal(zmq_send(fx->xsub, sub, sizeof sub - 1, 0), (int)sizeof sub - 1);
    /* The subscription reaches the PUB side asynchronously: publish until one arrives. */
    int timeout = 50;
    zmq_setsockopt(fx->xsub, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    char frames[4][64];
    int got = 0;
    for (int i = 0; i < 60 && !got; i++) {
        assert_int_equal(fx->t->ops->publish(fx->t, "job.7.done", "no", 2), 0);
        assert_int_equal(fx->t->ops->publish(fx->t, "job.42.done", "event", 5), 0);
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, fx->xsub, 0) >= 0) {
            got = 1;
            memcpy(frames[0], zmq_msg_data(&m), zmq_msg_size(&m));
            frames[0][zmq_msg_size(&m)] = '\0';
            assert_true(zmq_msg_more(&m));
            zmq_msg_close(&m);
            assert_int_equal(zmq_recv(fx->xsub, frames[1], 63, 0), 5);
            frames[1][5] = '\0';
        } else {
            zmq_msg_close(&m);
        }
    }
    assert_true(got);
    assert_string_equal(frames[0], "job.42.done");
    assert_string_equal(frames[1], "event");
}

static void test_destroy_null(void **state)
{
    fixture *fx = *state;
    ab_transport *none = NULL;
    fx->t->ops->destroy(&none);
    fx->t->ops->destroy(NULL);
}

static void test_bad_endpoint(void **state)
{
    (void)state;
    assert_null(ab_transport_zmq_new("bogus://nowhere", "tcp://127.0.0.1:1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recv_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_destroy_null, setup, teardown),
        cmocka_unit_test(test_bad_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
