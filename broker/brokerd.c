/* brokerd.c — adminbus-broker, the ZeroMQ broker daemon.
 *
 * Five sockets and one poll loop:
 *   clients ──▶ frontend ROUTER (commands_endpoint) ──▶ backend DEALER (engine_endpoint) ──▶
 *   engines; replies [client identity…][reply] come back the same way
 *   engines' and daemons' PUB ──▶ XSUB (publish_endpoint) ──▶ XPUB (events_endpoint) ──▶
 *   subscribers, and ──▶ XPUB (notices_endpoint) ──▶ the daemons' SUB (subscriptions travel
 *   the other way)
 * The broker knows the framing and nothing else: commands reach an engine as
 * [route…][peer ip][body]; it decodes a command only to echo its id when it must answer
 * for an engine (none connected). Limits on the body are the engine's business.
 * The internal endpoints (engine, publish, notices; endpoint.h) are ipc:// sockets of mode
 * 0600, or CURVE servers on tcp:// that accept only the daemons' key. The clients' ones are
 * CURVE servers when beyond loopback (or with curve=on); the same loop answers the
 * authentication requests (curve_zap.h).
 * A sixth socket, the proxy intake (proxy.h, proxy_endpoint, ipc:// only), takes commands
 * from the HTTP shim with its client's address: [empty][client ip][command]. They reach an
 * engine as [AB_PROXY_MARKER][route…][ip][body]; a reply whose first frame is the marker
 * goes back out on the proxy intake, every other one on the commands endpoint. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "wire/config.h"
#include "zmq/curve.h"
#include "zmq/curve_zap.h"
#include "wire/endpoint.h"
#include "wire/envelope.h"
#include "zmq/zframes.h"
#include "wire/log.h"
#include "wire/stopsig.h"
#include "zmq/proxy.h"

#define S_HWM           100000
#define S_BATCH         512         /* messages moved per socket per poll, for fairness */
#define S_HARD_CAP      (16u << 20) /* ZMQ_MAXMSGSIZE floor: protects memory only */
#define S_MAX_FRAME_MAX (1u << 30)

typedef struct {
    void *ctx;
    void *frontend, *backend, *xsub, *xpub;
    void *notices;                               /* the daemons' fan-out (notices_endpoint) */
    void *proxy;                                 /* the proxy intake; NULL when there is none */
    char proxy_endpoint[AB_PROXY_PATH_MAX + 16]; /* resolved; "" when there is none */
    size_t max_frame;
    bool tcp; /* clients come over TCP: Peer-Address is their IP address */
    uint64_t forwarded, unavailable, rejected, proxied; /* counters, logged at exit */
    time_t last_warn;                                   /* rate limit for the unavailable warning */
    ab_zap zap;           /* CURVE authenticator; zap.sock NULL: none */
    ab_curve_pair server; /* the broker's key pair, wiped once bound */
} s_broker;

/* --- signals: stopsig's pipe wakes zmq_poll without a race ------------------------ */

static int s_signals_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    return ab_stopsig_install(NULL);
}

/* --- frames ----------------------------------------------------------------------- */

static void s_close_frames(zmq_msg_t *frames, int from, int n)
{
    for (int i = from; i < n; i++)
        zmq_msg_close(&frames[i]);
}

/* The route of a client's message: its identity, then everything up to and including
 * the first empty delimiter (REQ and well-behaved DEALER clients), or only the identity
 * (a raw DEALER that sends no delimiter). */
static int s_route_len(zmq_msg_t *frames, int n)
{
    for (int i = 1; i < n; i++)
        if (zmq_msg_size(&frames[i]) == 0)
            return i + 1;
    return 1;
}

/* Send a reply the broker writes itself on sock (where the command came in): copies of the
 * route frames, then body. */
static void s_answer(void *sock, zmq_msg_t *route, int nroute, const char *id, const ab_error *err)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ab_reply_pack_error(&pk, id, err);
    bool ok = true;
    for (int i = 0; i < nroute && ok; i++) {
        zmq_msg_t copy;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, &route[i]);
        ok = zmq_msg_send(&copy, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0;
        if (!ok)
            zmq_msg_close(&copy);
    }
    if (ok)
        zmq_send(sock, sb.data, sb.size, ZMQ_DONTWAIT);
    msgpack_sbuffer_destroy(&sb);
}

/* The id of a command, when it can be read, so that an error reply can echo it. Frames
 * over the soft limit are not decoded: the broker must not spend memory on them. */
static void s_command_id(const s_broker *b, zmq_msg_t *body, char *id)
{
    ab_command_msg cmd;
    ab_error err;
    id[0] = '\0';
    if (zmq_msg_size(body) > b->max_frame)
        return;
    ab_command_decode(zmq_msg_data(body), zmq_msg_size(body), &cmd, &err);
    memcpy(id, cmd.id, sizeof cmd.id);
    ab_command_msg_release(&cmd);
}

static void s_answer_unavailable(s_broker *b, void *sock, zmq_msg_t *frames, int nroute,
                                 zmq_msg_t *body)
{
    char id[AB_ID_LEN + 1];
    ab_error err;
    s_command_id(b, body, id);
    ab_fail(&err, AB_E_UNAVAILABLE, NULL, "no engine is connected; retry with the same id");
    err.retry_after = 1;
    s_answer(sock, frames, nroute, id, &err);
    b->unavailable++;
    time_t now = time(NULL);
    if (now != b->last_warn) {
        b->last_warn = now;
        AB_WARN("no engine is connected: answered unavailable (%" PRIu64 " so far)",
                b->unavailable);
    }
}

/* Forward [route…][ip][body] to an engine (with the proxy marker first when the command
 * came in on the proxy intake, from); on EAGAIN (no engine, or all queues full) answer
 * on from instead. The caller closes the frames (a no-op for the ones sent). */
static void s_forward(s_broker *b, void *from, zmq_msg_t *frames, int nroute, const char *ip,
                      zmq_msg_t *body)
{
    bool proxied = from == b->proxy;
    /* The first frame is the only one that can be refused: ZeroMQ queues whole messages,
     * so once it is accepted the rest follow. */
    int rc = proxied ? zmq_send(b->backend, AB_PROXY_MARKER, AB_PROXY_MARKER_LEN,
                                ZMQ_SNDMORE | ZMQ_DONTWAIT)
                     : zmq_msg_send(&frames[0], b->backend, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc < 0) {
        if (errno == EAGAIN)
            s_answer_unavailable(b, from, frames, nroute, body);
        else
            AB_ERROR("forwarding to the engines: %s", zmq_strerror(errno));
        return;
    }
    for (int i = proxied ? 0 : 1; i < nroute; i++)
        zmq_msg_send(&frames[i], b->backend, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(b->backend, ip, strlen(ip), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_msg_send(body, b->backend, ZMQ_DONTWAIT);
    b->forwarded++;
    b->proxied += proxied;
}

static bool s_is_marker(zmq_msg_t *m)
{
    return zmq_msg_size(m) == AB_PROXY_MARKER_LEN &&
           memcmp(zmq_msg_data(m), AB_PROXY_MARKER, AB_PROXY_MARKER_LEN) == 0;
}

/* Refuse a message from sock (answering on it) and count it. */
static void s_refuse(s_broker *b, void *sock, zmq_msg_t *frames, int nroute, zmq_msg_t *body,
                     const char *field, const char *message)
{
    char id[AB_ID_LEN + 1] = "";
    ab_error err;
    if (body)
        s_command_id(b, body, id);
    ab_fail(&err, AB_E_INVALID, field, "%s", message);
    s_answer(sock, frames, nroute, id[0] ? id : NULL, &err);
    b->rejected++;
}

/* One message from a client. Returns 1 when one was handled, 0 when none waits, -1. */
static int s_from_client(s_broker *b)
{
    zmq_msg_t frames[AB_FRAMES_MAX];
    int extra;
    int n = ab_zframes_recv(b->frontend, frames, &extra);
    if (n <= 0)
        return n;
    int nroute = s_route_len(frames, n);
    if (n - nroute + extra != 1) {
        s_refuse(b, b->frontend, frames, nroute, NULL, "frame", "a command is one frame");
        AB_DEBUG("rejected a message of %d frame(s)", n + extra);
    } else if (s_is_marker(&frames[0])) {
        /* Its replies would go out on the proxy intake: refuse it, on its own connection. */
        s_refuse(b, b->frontend, frames, nroute, &frames[nroute], "frame",
                 "this routing id is reserved for the broker's proxy intake: connect without "
                 "setting ZMQ_ROUTING_ID, or choose another one");
    } else {
        char ip[AB_IP_MAX + 1] = "";
        /* Over ipc:// libzmq still reports a Peer-Address, but it is no IP address. */
        const char *peer = b->tcp ? zmq_msg_gets(&frames[nroute], "Peer-Address") : NULL;
        if (peer)
            snprintf(ip, sizeof ip, "%s", peer);
        s_forward(b, b->frontend, frames, nroute, ip, &frames[nroute]);
    }
    s_close_frames(frames, 0, n);
    return 1;
}

/* One message from a proxy: [identity][empty][client ip][command]. The address is
 * believed (only local processes can reach this ipc:// socket) once it is one. Returns 1
 * when one was handled, 0 when none waits, -1. */
static int s_from_proxy(s_broker *b)
{
    zmq_msg_t frames[AB_FRAMES_MAX];
    int extra;
    int n = ab_zframes_recv(b->proxy, frames, &extra);
    if (n <= 0)
        return n;
    int nroute = n > 1 && zmq_msg_size(&frames[1]) == 0 ? 2 : 1;
    if (nroute != 2 || n + extra != 4) {
        s_refuse(b, b->proxy, frames, nroute, NULL, "frame",
                 "a proxy sends [empty][client ip][command]: three frames");
    } else if (!ab_proxy_ip_valid(zmq_msg_data(&frames[2]), zmq_msg_size(&frames[2]))) {
        s_refuse(b, b->proxy, frames, nroute, &frames[3], "ip",
                 "the client address must be an IPv4 or IPv6 address in text form (at most 45 "
                 "characters)");
    } else {
        char ip[AB_IP_MAX + 1];
        memcpy(ip, zmq_msg_data(&frames[2]), zmq_msg_size(&frames[2]));
        ip[zmq_msg_size(&frames[2])] = '\0';
        s_forward(b, b->proxy, frames, nroute, ip, &frames[3]);
    }
    s_close_frames(frames, 0, n);
    return 1;
}

/* Move one whole message from one socket to another, frame by frame (to NULL: drop it).
 * Returns 1 when one was moved (or dropped by the far side), 0 when none waits, -1 on a
 * fault. With a reply router, a reply from the engines: one whose first frame is the
 * proxy marker goes, without it, to the proxy intake; every other one to the commands
 * endpoint. */
static int s_relay(void *from, void *to, const s_broker *reply_router)
{
    bool more = true, first = true, drop = to == NULL;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, from, first ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            return first && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        }
        more = zmq_msg_more(&m);
        if (first && reply_router && s_is_marker(&m)) {
            to = reply_router->proxy;
            drop = to == NULL;
            zmq_msg_close(&m);
            first = false;
            continue;
        }
        /* ROUTER drops replies to clients that are gone; XPUB drops at its queue limit.
         * A refused first frame means nothing was sent: drop the rest of the message. */
        if (drop || zmq_msg_send(&m, to, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
            drop = true;
            zmq_msg_close(&m);
        }
        first = false;
    }
    return 1;
}

/* One event from the intake to both fan-outs: the events feed (clients) and the notices
 * endpoint (daemons); each XPUB sends it only to its subscribers. Returns 1 when one was
 * moved, 0 when none waits, -1 on a fault. */
static int s_fanout(s_broker *b)
{
    bool more = true, first = true, drop_events = false, drop_notices = false;
    while (more) {
        zmq_msg_t m, copy;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, b->xsub, first ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            return first && (errno == EAGAIN || errno == EINTR) ? 0 : -1;
        }
        more = zmq_msg_more(&m);
        int flags = (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT;
        zmq_msg_init(&copy);
        zmq_msg_copy(&copy, &m); /* shares the data of large frames */
        /* as in s_relay: a refused first frame drops the rest of that message */
        if (drop_notices || zmq_msg_send(&copy, b->notices, flags) < 0) {
            drop_notices = true;
            zmq_msg_close(&copy);
        }
        if (drop_events || zmq_msg_send(&m, b->xpub, flags) < 0) {
            drop_events = true;
            zmq_msg_close(&m);
        }
        first = false;
    }
    return 1;
}

/* --- set-up ----------------------------------------------------------------------- */

/* Make sock a CURVE server authenticated by the broker's ZAP handler, in domain (which
 * keys it accepts: curve_zap.h). Options are taken at bind time, so this holds for this
 * socket's endpoint. */
static int s_curve_server(s_broker *b, void *sock, const char *domain)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, b->server.sec, AB_CURVE_KEY_LEN + 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0)
        return -1;
    return 0;
}

static void *s_bind(s_broker *b, const ab_config *cfg, int type, const char *what,
                    const char *endpoint)
{
    void *sock = zmq_socket(b->ctx, type);
    if (!sock) {
        fprintf(stderr, "adminbus-broker: cannot create the %s socket: %s\n", what,
                zmq_strerror(errno));
        return NULL;
    }
    int hwm = S_HWM;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (type == ZMQ_ROUTER) {
        int64_t cap = (int64_t)b->max_frame * 4;
        if (cap < (int64_t)S_HARD_CAP)
            cap = S_HARD_CAP;
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
    }
    if (type == ZMQ_DEALER) {
        /* Notice an engine whose host vanished without closing its connection. */
        int ivl = 1000, timeout = 5000;
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &timeout, sizeof timeout);
    }
    const char *domain = ab_internal_is(cfg, endpoint) ? AB_ZAP_DOMAIN_INTERNAL : AB_ZAP_DOMAIN;
    if (ab_curve_wanted(cfg, endpoint) && s_curve_server(b, sock, domain) < 0) {
        fprintf(stderr, "adminbus-broker: cannot make the %s socket a CURVE server: %s\n", what,
                zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    if (zmq_bind(sock, endpoint) < 0) {
        fprintf(stderr, "adminbus-broker: cannot bind the %s endpoint %s: %s\n", what, endpoint,
                zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* A socket of a private endpoint (an internal one, the proxy intake). On ipc:// its file
 * is created with mode 0600 (umask around the bind, then chmod), so only this user's
 * processes can connect, whatever the folder's mode and the broker's umask; tcp:// ones are
 * CURVE (s_bind). */
static void *s_bind_private(s_broker *b, const ab_config *cfg, int type, const char *what,
                            const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) != 0)
        return s_bind(b, cfg, type, what, endpoint);
    const char *path = endpoint + strlen("ipc://");
    mode_t old = umask(077);
    void *sock = s_bind(b, cfg, type, what, endpoint);
    umask(old);
    if (sock && chmod(path, 0600) < 0) {
        fprintf(stderr, "adminbus-broker: cannot make %s private (mode 0600): %s\n", path,
                strerror(errno));
        int zero = 0;
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

static void s_close(s_broker *b)
{
    void *socks[] = {b->frontend, b->backend, b->xsub, b->xpub, b->notices, b->proxy};
    int zero = 0;
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++) {
        if (socks[i]) {
            zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
            zmq_close(socks[i]);
        }
    }
    ab_zap_close(&b->zap);
    ab_curve_pair_wipe(&b->server);
    if (b->ctx)
        zmq_ctx_term(b->ctx);
    memset(b, 0, sizeof *b);
}

/* The endpoint a socket is bound to, with a wildcard port resolved (tcp://…:*). */
static const char *s_endpoint(void *sock, char *buf, size_t size)
{
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, buf, &size) < 0)
        snprintf(buf, size, "?");
    return buf;
}

/* Write the server's public key to home/curve/server.pub (replacing it), for clients. */
static int s_write_server_pub(const ab_config *cfg, const ab_curve_pair *server, char *err,
                              size_t errlen)
{
    char path[4096], tmp[4200];
    ab_curve_path(cfg->home, "server.pub", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    unlink(tmp);
    if (ab_curve_pair_write(tmp, server, false, err, errlen) < 0)
        return -1;
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* The server's pair (created on first use, its public part written to server.pub) and
 * the internal pair's public key. Returns 0, or -1 with a message in err. */
static int s_curve_keys(const ab_config *cfg, ab_curve_pair *server, char *internal_pub, char *err,
                        size_t errlen)
{
    ab_curve_pair internal;
    int rc = ab_curve_pair_ensure(cfg->home, "server.key", server, err, errlen);
    if (rc == 0)
        rc = s_write_server_pub(cfg, server, err, errlen);
    if (rc == 0)
        rc = ab_curve_pair_ensure(cfg->home, "internal.key", &internal, err, errlen);
    if (rc == 0)
        memcpy(internal_pub, internal.pub, AB_CURVE_KEY_LEN + 1);
    ab_curve_pair_wipe(&internal); /* only its public key is needed here */
    return rc;
}

/* Keys and the authenticator, before any CURVE socket binds. */
static int s_curve_open(s_broker *b, const ab_config *cfg)
{
    char err[4400 + 512], allowed[4096], internal_pub[AB_CURVE_KEY_LEN + 1];
    ab_curve_path(cfg->home, "allowed_clients", allowed, sizeof allowed);
    int rc = s_curve_keys(cfg, &b->server, internal_pub, err, sizeof err);
    if (rc == 0)
        rc = ab_zap_open(&b->zap, b->ctx, allowed, internal_pub, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "adminbus-broker: CURVE: %s\n", err);
        return -1;
    }
    const char *names[] = {"commands", "events", "engine", "publish", "notices"};
    const char *eps[] = {cfg->commands_endpoint, cfg->events_endpoint, cfg->engine_endpoint,
                         cfg->publish_endpoint, cfg->notices_endpoint};
    char which[64] = "";
    for (int i = 0; i < 5; i++)
        if (ab_curve_wanted(cfg, eps[i]))
            snprintf(which + strlen(which), sizeof which - strlen(which), "%s%s",
                     which[0] ? ", " : "", names[i]);
    AB_INFO("CURVE on %s: server public key %s; client keys allowed in %s", which, b->server.pub,
            allowed);
    return 0;
}

static int s_open(s_broker *b, const ab_config *cfg)
{
    b->ctx = zmq_ctx_new();
    if (!b->ctx) {
        fprintf(stderr, "adminbus-broker: cannot create a ZeroMQ context: %s\n",
                zmq_strerror(errno));
        return -1;
    }
    if (ab_curve_any(cfg) && s_curve_open(b, cfg) < 0)
        return -1;
    b->frontend = s_bind(b, cfg, ZMQ_ROUTER, "commands", cfg->commands_endpoint);
    if (b->frontend && b->proxy_endpoint[0] &&
        !(b->proxy = s_bind_private(b, cfg, ZMQ_ROUTER, "proxy", b->proxy_endpoint))) {
        ab_curve_pair_wipe(&b->server);
        return -1;
    }
    b->backend =
        b->frontend ? s_bind_private(b, cfg, ZMQ_DEALER, "engine", cfg->engine_endpoint) : NULL;
    b->xsub =
        b->backend ? s_bind_private(b, cfg, ZMQ_XSUB, "publish", cfg->publish_endpoint) : NULL;
    b->xpub = b->xsub ? s_bind(b, cfg, ZMQ_XPUB, "events", cfg->events_endpoint) : NULL;
    b->notices =
        b->xpub ? s_bind_private(b, cfg, ZMQ_XPUB, "notices", cfg->notices_endpoint) : NULL;
    ab_curve_pair_wipe(&b->server); /* each socket holds its copy */
    if (!b->notices)
        return -1;
    char e[5][256];
    fprintf(stderr,
            "adminbus-broker: commands %s events %s engines %s publish %s notices %s proxy %s\n",
            s_endpoint(b->frontend, e[0], sizeof e[0]), s_endpoint(b->xpub, e[1], sizeof e[1]),
            s_endpoint(b->backend, e[2], sizeof e[2]), s_endpoint(b->xsub, e[3], sizeof e[3]),
            s_endpoint(b->notices, e[4], sizeof e[4]), b->proxy ? b->proxy_endpoint : "off");
    return 0;
}

/* --- the loop --------------------------------------------------------------------- */

/* Up to S_BATCH messages from one socket, so no side can starve the others. */
static int s_drain(s_broker *b, int which)
{
    for (int i = 0; i < S_BATCH; i++) {
        int rc;
        if (which == 0)
            rc = s_from_client(b);
        else if (which == 1)
            rc = s_relay(b->backend, b->frontend, b);
        else if (which == 2)
            rc = s_fanout(b);
        else if (which == 3)
            rc = s_relay(b->xpub, b->xsub, NULL); /* subscriptions, upstream */
        else if (which == 4)
            rc = s_relay(b->notices, b->xsub, NULL);
        else
            rc = s_from_proxy(b);
        if (rc <= 0)
            return rc;
    }
    return 0;
}

static int s_run(s_broker *b)
{
    /* sockets first (their index is s_drain's which), then the signal pipe, then ZAP */
    zmq_pollitem_t items[8] = {
        {b->frontend, 0, ZMQ_POLLIN, 0}, {b->backend, 0, ZMQ_POLLIN, 0},
        {b->xsub, 0, ZMQ_POLLIN, 0},     {b->xpub, 0, ZMQ_POLLIN, 0},
        {b->notices, 0, ZMQ_POLLIN, 0},
    };
    int nsocks = 5;
    if (b->proxy)
        items[nsocks++] = (zmq_pollitem_t){b->proxy, 0, ZMQ_POLLIN, 0};
    int nitems = nsocks;
    items[nitems++] = (zmq_pollitem_t){NULL, ab_stopsig_fd(), ZMQ_POLLIN, 0};
    int zap = b->zap.sock ? nitems : -1;
    if (b->zap.sock)
        items[nitems++] = (zmq_pollitem_t){b->zap.sock, 0, ZMQ_POLLIN, 0};
    while (!ab_stopsig_raised()) {
        if (zmq_poll(items, nitems, -1) < 0) {
            if (errno == EINTR)
                continue;
            AB_ERROR("poll: %s", zmq_strerror(errno));
            return -1;
        }
        for (int i = 0; i < nsocks; i++) {
            if ((items[i].revents & ZMQ_POLLIN) && s_drain(b, i) < 0 && errno != EINTR) {
                AB_ERROR("receive: %s", zmq_strerror(errno));
                return -1;
            }
        }
        /* ZAP requests are answered at once: a handshake waits for them */
        if (zap >= 0 && (items[zap].revents & ZMQ_POLLIN))
            while (ab_zap_handle(&b->zap) > 0)
                ;
    }
    return 0;
}

/* --- command line ----------------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fprintf(f, "Usage: adminbus-broker [--KEY VALUE | --KEY=VALUE]...\n"
               "\n"
               "The ZeroMQ broker of adminbus. Clients send commands to commands_endpoint\n"
               "(ROUTER: REQ, or DEALER with an empty delimiter frame); engines fetch them at\n"
               "engine_endpoint and publish events to publish_endpoint; subscribers receive\n"
               "events at events_endpoint, and the daemons (workers, scheduler, supervisor)\n"
               "their notices at notices_endpoint. The internal endpoints (engine, publish,\n"
               "notices) are sockets in $ADMINBUS_HOME that only this user can open, or on\n"
               "tcp:// CURVE with the daemons' key. Stops cleanly on SIGINT or SIGTERM.\n"
               "\n"
               "  -h, --help     show this help and exit\n"
               "  --curve-init   when an endpoint uses CURVE, create the key pairs in\n"
               "                 $ADMINBUS_HOME/curve/; print ADMINBUS_CURVE_SERVERKEY=… when\n"
               "                 the clients' endpoints use it\n"
               "  --version      show the version and exit\n"
               "\n");
    ab_config_usage(f);
}

/* Two sockets bound to one ipc path would not fail: the second bind silently takes the
 * path over from the first. Refuse that configuration instead. */
static int s_distinct_ipc(const ab_config *cfg, const char *proxy)
{
    const char *names[] = {"commands_endpoint", "events_endpoint",  "engine_endpoint",
                           "publish_endpoint",  "notices_endpoint", "proxy_endpoint"};
    const char *eps[] = {cfg->commands_endpoint, cfg->events_endpoint,  cfg->engine_endpoint,
                         cfg->publish_endpoint,  cfg->notices_endpoint, proxy};
    for (int i = 0; i < 6; i++) {
        for (int j = 0; j < i; j++) {
            const char *a = eps[i], *b = eps[j];
            if (strncmp(a, "ipc://", 6) == 0 && strcmp(a, b) == 0) {
                fprintf(stderr, "adminbus-broker: %s and %s are both %s\n", names[j], names[i], a);
                return -1;
            }
        }
    }
    return 0;
}

static const char *const s_internal_keys[] = {"engine_endpoint", "publish_endpoint",
                                              "notices_endpoint"};

/* The internal endpoints: auto resolved, ipc paths usable and private, nothing but ipc://
 * or tcp:// (endpoint.h). Returns 0, or -1 after printing why. */
static int s_internal_settings(const ab_config *cfg)
{
    char why[1024];
    for (size_t i = 0; i < sizeof s_internal_keys / sizeof s_internal_keys[0]; i++)
        if (ab_internal_check(cfg, s_internal_keys[i], why, sizeof why) < 0) {
            fprintf(stderr, "adminbus-broker: %s\n", why);
            return -1;
        }
    return 0;
}

/* Why a clients' endpoint uses CURVE, for messages. */
static const char *s_curve_reason(const ab_config *cfg, const char *endpoint)
{
    if (!ab_curve_loopback(endpoint))
        return "it is bound beyond loopback, where CURVE is mandatory";
    if (!strcmp(cfg->curve, "on"))
        return "curve=on";
    return "the clients' other endpoint is beyond loopback (commands and events use CURVE "
           "together)";
}

/* CURVE is mandatory beyond loopback: with a clients' endpoint there (or curve=on), the
 * list of allowed client keys must exist and be well formed, or the broker does not start
 * (and binds nothing). */
static int s_curve_clients_settings(const ab_config *cfg)
{
    char err[4400 + 512], allowed[4096];
    ab_curve_path(cfg->home, "allowed_clients", allowed, sizeof allowed);
    int nkeys = 0;
    bool found;
    if (ab_curve_allowed_scan(allowed, NULL, &nkeys, &found, err, sizeof err) == 0) {
        if (nkeys == 0)
            AB_WARN("CURVE: %s lists no client key: only the local daemons can connect", allowed);
        return 0;
    }
    const char *names[] = {"commands_endpoint", "events_endpoint"};
    for (int i = 0; i < 2; i++) {
        const char *e = ab_config_get(cfg, names[i]);
        fprintf(stderr, "adminbus-broker: %s %s needs CURVE: %s\n", names[i], e,
                s_curve_reason(cfg, e));
    }
    fprintf(stderr,
            "adminbus-broker: refusing to start without CURVE client keys: %s.\n"
            "  Make a client key pair with 'adminctl curve keygen FILE' and allow its public key\n"
            "  with 'adminctl curve allow KEY' (an empty file allows only the local daemons),\n"
            "  or bind the endpoints to 127.0.0.1 or ipc:// instead.\n",
            err);
    return -1;
}

/* An internal endpoint on tcp:// (an engine or a worker on another host) is CURVE with the
 * daemons' key pair, loopback included. The broker does not make that pair itself: it must
 * be copied to the other hosts, so it starts only once the operator has made it
 * (--curve-init) and binds nothing until then. */
static int s_curve_internal_settings(const ab_config *cfg)
{
    char err[4400 + 512], path[4096];
    ab_curve_pair internal;
    ab_curve_path(cfg->home, "internal.key", path, sizeof path);
    int rc = ab_curve_pair_read(path, &internal, true, err, sizeof err);
    ab_curve_pair_wipe(&internal);
    if (rc == 0)
        return 0;
    for (size_t i = 0; i < sizeof s_internal_keys / sizeof s_internal_keys[0]; i++) {
        const char *e = ab_config_get(cfg, s_internal_keys[i]);
        if (ab_curve_wanted(cfg, e))
            fprintf(stderr,
                    "adminbus-broker: %s %s is tcp://: any local user (and, beyond loopback, "
                    "any host) can reach it, so it uses CURVE with the daemons' key\n",
                    s_internal_keys[i], e);
    }
    fprintf(stderr,
            "adminbus-broker: refusing to start without the daemons' CURVE key: %s.\n"
            "  Run 'adminbus-broker --curve-init' on this host: it makes %s/curve/internal.key\n"
            "  and server.key (and server.pub). Copy curve/internal.key (keep it mode 0600) and\n"
            "  curve/server.pub to $ADMINBUS_HOME/curve/ on each host that runs an engine or a\n"
            "  worker, with the same endpoints in its adminbus.conf. When every daemon runs on\n"
            "  this host, leave the internal endpoints at auto (ipc:// in $ADMINBUS_HOME).\n",
            err, cfg->home);
    return -1;
}

static int s_curve_settings(const ab_config *cfg)
{
    char err[512];
    if (ab_curve_mode_check(cfg->curve, err, sizeof err) < 0) {
        fprintf(stderr, "adminbus-broker: %s\n", err);
        return -1;
    }
    if (ab_curve_clients(cfg) && s_curve_clients_settings(cfg) < 0)
        return -1;
    return ab_curve_internal(cfg) ? s_curve_internal_settings(cfg) : 0;
}

/* Resolve proxy_endpoint: refused unless ipc:// (before anything binds); without a usable
 * path (auto with too long a home), no proxy intake, and the HTTP shim falls back. */
static int s_proxy_settings(const ab_config *cfg, s_broker *b)
{
    char why[1024];
    int rc = ab_proxy_endpoint(cfg->proxy_endpoint, cfg->home, b->proxy_endpoint,
                               sizeof b->proxy_endpoint, why, sizeof why);
    if (rc < 0) {
        fprintf(stderr, "adminbus-broker: %s\n", why);
        return -1;
    }
    if (rc == 0 && strcmp(cfg->proxy_endpoint, "off") != 0)
        AB_WARN("no proxy intake: %s; the HTTP shim then sends on the commands endpoint and "
                "every HTTP client's command carries the shim's address",
                why);
    return 0;
}

/* Check the values the broker uses. Returns 0, or -1 after printing why. */
static int s_settings(const ab_config *cfg, s_broker *b)
{
    char *end = NULL;
    errno = 0;
    unsigned long long mf = strtoull(cfg->max_frame, &end, 10);
    if (errno || !end || *end || end == cfg->max_frame || mf == 0 || mf > S_MAX_FRAME_MAX) {
        fprintf(stderr, "adminbus-broker: max_frame must be a number of bytes, 1..%u (got '%s')\n",
                S_MAX_FRAME_MAX, cfg->max_frame);
        return -1;
    }
    b->max_frame = (size_t)mf;
    b->tcp = strncmp(cfg->commands_endpoint, "tcp://", 6) == 0;
    if (ab_log_set_level(cfg->log_level) < 0) {
        fprintf(stderr,
                "adminbus-broker: log_level must be error, warn, info or debug (got '%s')\n",
                cfg->log_level);
        return -1;
    }
    if (s_internal_settings(cfg) < 0 || s_proxy_settings(cfg, b) < 0)
        return -1;
    return s_distinct_ipc(cfg, b->proxy_endpoint) < 0 ? -1 : s_curve_settings(cfg);
}

/* --curve-init (for ops/run): when an endpoint uses CURVE, make the key pairs now; print
 * ADMINBUS_CURVE_SERVERKEY=… for the clients' env file when the clients' endpoints use it,
 * and say what other hosts need when an internal one does; print nothing otherwise. */
static int s_curve_init(const ab_config *cfg)
{
    char err[4400 + 512], internal_pub[AB_CURVE_KEY_LEN + 1];
    ab_curve_pair server;
    if (s_internal_settings(cfg) < 0)
        return 2;
    if (ab_curve_mode_check(cfg->curve, err, sizeof err) < 0 ||
        (ab_curve_any(cfg) && s_curve_keys(cfg, &server, internal_pub, err, sizeof err) < 0)) {
        fprintf(stderr, "adminbus-broker: %s\n", err);
        return 2;
    }
    if (ab_curve_clients(cfg))
        printf("ADMINBUS_CURVE_SERVERKEY=%s\n", server.pub);
    if (ab_curve_internal(cfg))
        fprintf(stderr,
                "adminbus-broker: the internal endpoints on tcp:// use CURVE with the daemons' "
                "key: each other host that runs an engine or a worker needs copies of "
                "%s/curve/internal.key (mode 0600) and server.pub in its $ADMINBUS_HOME/curve/\n",
                cfg->home);
    ab_curve_pair_wipe(&server);
    return 0;
}

int main(int argc, char **argv)
{
    ab_config cfg;
    int start = ab_config_start(&cfg, &argc, argv, "adminbus-broker", s_usage);
    if (start >= 0)
        return start;
    if (argc == 2 && !strcmp(argv[1], "--curve-init")) {
        int rc = s_curve_init(&cfg);
        ab_config_free(&cfg);
        return rc;
    }
    s_broker b;
    memset(&b, 0, sizeof b);
    if (argc > 1 || s_settings(&cfg, &b) < 0) {
        if (argc > 1)
            fprintf(stderr, "adminbus-broker: unknown argument '%s'\n", argv[1]);
        fprintf(stderr, "Try 'adminbus-broker --help'.\n");
        ab_config_free(&cfg);
        return 2;
    }
    if (s_signals_init() < 0 || s_open(&b, &cfg) < 0) {
        s_close(&b);
        ab_config_free(&cfg);
        return 1;
    }
    ab_config_free(&cfg);
    int rc = s_run(&b);
    AB_INFO("stopping: %" PRIu64 " command(s) forwarded (%" PRIu64 " from a proxy), %" PRIu64
            " answered unavailable, %" PRIu64 " rejected",
            b.forwarded, b.proxied, b.unavailable, b.rejected);
    s_close(&b);
    return rc < 0 ? 1 : 0;
}
