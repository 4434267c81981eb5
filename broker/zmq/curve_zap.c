/* curve_zap.c — the broker's ZAP handler (see curve_zap.h). */
#include "zmq/curve_zap.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "wire/log.h"

#define S_ENDPOINT     "inproc://zeromq.zap.01"
#define S_FRAMES       8     /* a CURVE request has 7 */
#define S_LOG_AGAIN_MS 10000 /* a refused client reconnects: one line per key per 10 s */

int ab_zap_open(ab_zap *zap, void *ctx, const char *allowed_path, const char *internal_pub,
                char *err, size_t errlen)
{
    memset(zap, 0, sizeof *zap);
    snprintf(zap->allowed, sizeof zap->allowed, "%s", allowed_path);
    snprintf(zap->internal_pub, sizeof zap->internal_pub, "%s", internal_pub);
    zap->sock = zmq_socket(ctx, ZMQ_REP);
    int zero = 0;
    if (!zap->sock || zmq_setsockopt(zap->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(zap->sock, S_ENDPOINT) != 0) {
        snprintf(err, errlen, "cannot start the CURVE authenticator (%s): %s", S_ENDPOINT,
                 zmq_strerror(errno));
        ab_zap_close(zap);
        return -1;
    }
    return 0;
}

void ab_zap_close(ab_zap *zap)
{
    if (zap->sock)
        zmq_close(zap->sock);
    zap->sock = NULL;
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Receive one request into frames; returns how many were kept (extra ones are dropped),
 * 0 when none waits, -1 on a fault. */
static int s_recv(void *sock, zmq_msg_t *frames)
{
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n && i < S_FRAMES; i++)
                zmq_msg_close(&frames[i]);
            return n == 0 && errno == EAGAIN ? 0 : -1;
        }
        more = zmq_msg_more(&m);
        if (n < S_FRAMES)
            frames[n] = m;
        else
            zmq_msg_close(&m);
        n++;
    }
    return n < S_FRAMES ? n : S_FRAMES;
}

static void s_reply(void *sock, zmq_msg_t *request_id, const char *code, const char *text,
                    const char *user)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    if (request_id)
        zmq_msg_send(request_id, sock, ZMQ_SNDMORE);
    else
        zmq_send(sock, "", 0, ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

static bool s_frame_is(zmq_msg_t *m, const char *text)
{
    return zmq_msg_size(m) == strlen(text) && !memcmp(zmq_msg_data(m), text, strlen(text));
}

/* Whether key may connect to an endpoint of the domain; why in *reason when not. */
static bool s_allowed(ab_zap *zap, const char *key, bool internal, const char **reason)
{
    if (!strcmp(key, zap->internal_pub))
        return true;
    if (internal) {
        *reason = "only the daemons' internal key may connect to an internal endpoint";
        return false;
    }
    int nkeys = 0;
    bool found = false;
    char err[512];
    if (ab_curve_allowed_scan(zap->allowed, key, &nkeys, &found, err, sizeof err) < 0) {
        AB_ERROR("CURVE: %s; refusing every client key until it is fixed", err);
        *reason = "the allowed-clients file is unreadable";
        return false;
    }
    *reason = "key not allowed";
    return found;
}

static void s_log_refusal(ab_zap *zap, const char *key, zmq_msg_t *address, bool internal)
{
    int64_t now = s_now_ms();
    if (!strcmp(key, zap->last_refused) && now - zap->last_log_ms < S_LOG_AGAIN_MS)
        return;
    snprintf(zap->last_refused, sizeof zap->last_refused, "%s", key);
    zap->last_log_ms = now;
    if (internal)
        AB_WARN("CURVE: refused client key %s from %.*s on an internal endpoint: only the "
                "daemons' internal key may connect there (%" PRIu64 " refusal(s) so far)",
                key, (int)zmq_msg_size(address), (const char *)zmq_msg_data(address), zap->refused);
    else
        AB_WARN("CURVE: refused client key %s from %.*s: not in %s (%" PRIu64 " refusal(s) so far)",
                key, (int)zmq_msg_size(address), (const char *)zmq_msg_data(address), zap->allowed,
                zap->refused);
}

/* frames: version, request id, domain, address, routing id, mechanism, credentials. */
static void s_decide(ab_zap *zap, zmq_msg_t *frames, int n)
{
    if (n < 7 || !s_frame_is(&frames[0], "1.0") || !s_frame_is(&frames[5], "CURVE") ||
        zmq_msg_size(&frames[6]) != 32) {
        AB_WARN("CURVE: refused a malformed or non-CURVE authentication request");
        /* REP must answer before it can take the next request */
        s_reply(zap->sock, n >= 2 ? &frames[1] : NULL, "400", "CURVE only", "");
        return;
    }
    char key[AB_CURVE_KEY_LEN + 1];
    zmq_z85_encode(key, zmq_msg_data(&frames[6]), 32);
    /* the domain is the binding socket's (brokerd.c): not the client's to choose */
    bool internal = s_frame_is(&frames[2], AB_ZAP_DOMAIN_INTERNAL);
    const char *reason = "";
    if (s_allowed(zap, key, internal, &reason)) {
        zap->accepted++;
        AB_DEBUG("CURVE: accepted client key %s", key);
        s_reply(zap->sock, &frames[1], "200", "OK", key);
        return;
    }
    zap->refused++;
    s_log_refusal(zap, key, &frames[3], internal);
    s_reply(zap->sock, &frames[1], "400", reason, "");
}

int ab_zap_handle(ab_zap *zap)
{
    zmq_msg_t frames[S_FRAMES];
    int n = s_recv(zap->sock, frames);
    if (n <= 0)
        return n;
    s_decide(zap, frames, n);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
    return 1;
}
