/* evsrc.c — where the shim's events come from (/events, the engines' stats for /metrics):
 * the broker's ZeroMQ fan-out (a SUB socket), or the Kafka events topic (kafka.c), behind
 * one interface: open with topic prefixes, next event, close.
 *
 * Also the CURVE settings of the shim's ZeroMQ sockets (hs_zmq_curve), shared with bus.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cli/cli.h"
#include "wire/config.h"
#include "zmq/curve.h"
#include "http/http.h"

/* --- CURVE ----------------------------------------------------------------------------------- */

int hs_zmq_curve(void *sock, const char *endpoint, char *err, size_t errlen)
{
    /* The proxy intake is ipc:// and never CURVE (the broker binds it plain). */
    if (strncmp(endpoint, "ipc://", strlen("ipc://")) == 0)
        return 0;
    /* On the broker's host, reading its adminbus.conf and home (as ops/run runs it), the
     * shim is one of the local daemons: the internal key pair, as the workers use.
     * Its --url and --events are the clients' pair (commands and events), which use CURVE
     * together, whatever form of the address it was given (tcp://127.0.0.1:N for a
     * commands_endpoint bound to tcp://0.0.0.0:N): the pair's rule decides. */
    const ab_config *cfg = ab_config_process();
    if (cfg && (ab_curve_wanted(cfg, cfg->commands_endpoint) || ab_curve_wanted(cfg, endpoint)))
        return ab_curve_daemon_set(sock, cfg->commands_endpoint, err, errlen);
    /* Elsewhere, a client like adminctl: ADMINBUS_CURVE_SERVERKEY and an allowed key. */
    return ctl_curve_apply(sock, err, errlen);
}

/* --- events --------------------------------------------------------------------------------- */

void hs_event_release(hs_event *ev)
{
    free(ev->topic);
    free(ev->body);
    memset(ev, 0, sizeof *ev);
}

int hs_evsrc_next(hs_evsrc *e, int timeout_ms, hs_event *ev)
{
    memset(ev, 0, sizeof *ev);
    return e->next(e, timeout_ms, ev);
}

void hs_evsrc_close(hs_evsrc *e)
{
    if (e)
        e->close(e);
}

typedef struct {
    hs_evsrc base;
    void *sub;
} s_zsrc;

static char *s_copy(zmq_msg_t *m, bool text)
{
    size_t n = zmq_msg_size(m);
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, zmq_msg_data(m), n);
        out[n] = '\0';
    }
    if (text && out && strlen(out) != n) { /* a topic with a NUL byte is not ours */
        free(out);
        out = NULL;
    }
    return out;
}

/* One [topic][body] message; any further frames of a malformed one are dropped. */
static int s_zreceive(void *sub, hs_event *ev)
{
    zmq_msg_t topic, body;
    zmq_msg_init(&topic);
    zmq_msg_init(&body);
    int rc = 0;
    if (zmq_msg_recv(&topic, sub, 0) >= 0 && zmq_msg_more(&topic) &&
        zmq_msg_recv(&body, sub, 0) >= 0) {
        ev->topic = s_copy(&topic, true);
        ev->body = s_copy(&body, false);
        ev->len = zmq_msg_size(&body);
        rc = ev->topic && ev->body ? 1 : 0;
        if (!rc)
            hs_event_release(ev);
    }
    while (zmq_msg_more(&body) && zmq_msg_recv(&body, sub, 0) >= 0) {
    }
    zmq_msg_close(&topic);
    zmq_msg_close(&body);
    return rc;
}

static int s_znext(hs_evsrc *base, int timeout_ms, hs_event *ev)
{
    s_zsrc *z = (s_zsrc *)base;
    zmq_pollitem_t item = {z->sub, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&item, 1, timeout_ms);
    if (rc < 0)
        return zmq_errno() == EINTR ? 0 : -1;
    return rc == 0 ? 0 : s_zreceive(z->sub, ev);
}

static void s_zclose(hs_evsrc *base)
{
    s_zsrc *z = (s_zsrc *)base;
    zmq_close(z->sub);
    free(z);
}

static hs_evsrc *s_zmq_open(hs_server *srv, const char *const *prefixes, size_t n, char *err,
                            size_t errlen)
{
    s_zsrc *z = calloc(1, sizeof *z);
    void *sub = z ? zmq_socket(srv->zctx, ZMQ_SUB) : NULL;
    if (!sub) {
        snprintf(err, errlen, "cannot open a subscriber: %s", zmq_strerror(zmq_errno()));
        free(z);
        return NULL;
    }
    z->sub = sub;
    z->base.next = s_znext;
    z->base.close = s_zclose;
    int zero = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
    for (size_t i = 0; i < n; i++)
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, prefixes[i], strlen(prefixes[i]));
    if (n == 0)
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    if (hs_zmq_curve(sub, srv->opt.events, err, errlen) < 0) {
        s_zclose(&z->base);
        return NULL;
    }
    if (zmq_connect(sub, srv->opt.events) != 0) {
        snprintf(err, errlen, "cannot subscribe to %s: %s", srv->opt.events,
                 zmq_strerror(zmq_errno()));
        s_zclose(&z->base);
        return NULL;
    }
    return &z->base;
}

hs_evsrc *hs_evsrc_open(hs_server *srv, const char *const *prefixes, size_t n, char *err,
                        size_t errlen)
{
    if (srv->opt.kafka)
        return hs_evsrc_kafka_open(&srv->opt, prefixes, n, err, errlen);
    return s_zmq_open(srv, prefixes, n, err, errlen);
}
