/* guard.c — the request deadlines: a client that has not sent its request head within
 * header_s seconds, or its whole request (head and body) within request_s, gets a JSON 408
 * and its connection is closed.
 *
 * libmicrohttpd's own timeout is an idle timeout: a slowloris client that sends a byte now
 * and then is never idle, and would hold its thread for ever. libmicrohttpd has no
 * deadline for a whole request and calls us only once the headers are complete, so a
 * watchdog thread keeps each connection's state: waiting for headers, receiving the body,
 * or handled. A connection still waiting or receiving past its deadline is claimed by the
 * watchdog (an atomic compare-and-swap, so it never races the handler): nobody else writes
 * on it at that moment, so the watchdog writes the 408 itself (plain HTTP; over TLS it
 * only closes) and shuts the socket down; libmicrohttpd then cleans up as for any closed
 * connection. A handled connection is never touched. A keep-alive connection waiting
 * for its next request is closed without a 408 (its client may not have begun one).
 *
 * hs_guard_refuse answers a request the same way, at once, for the shim's own refusals
 * that cannot wait for libmicrohttpd to call a handler. */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"

typedef struct s_watch {
    struct s_watch *prev, *next;
    int fd;
    _Atomic int state;
    _Atomic int64_t start_ms;
    _Atomic bool reused; /* a response went out: this is a keep-alive connection */
} s_watch;

struct hs_guard {
    hs_server *srv;
    pthread_mutex_t lock; /* guards the list; held while the watchdog uses an fd */
    s_watch head;         /* sentinel of a circular list */
    pthread_t thread;
    _Atomic int stop;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write a JSON error on fd (plain HTTP only: over TLS the bytes would have to go through
 * the session), best effort and without blocking, then shut the connection down. Only for
 * a connection nobody else writes on: its state was just moved to HS_EXPIRED. */
static void s_answer_raw(const hs_server *srv, int fd, int status, const char *reason,
                         const json_t *body)
{
    char *text = srv->opt.tls_cert ? NULL : json_dumps(body, JSON_COMPACT);
    if (text) {
        char *msg = NULL;
        int mlen = asprintf(&msg,
                            "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                            status, reason, strlen(text) + 1, text);
        if (mlen > 0 && send(fd, msg, (size_t)mlen, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            /* the client is gone or not reading: closing is all that is left */
        }
        free(msg);
    }
    free(text);
    shutdown(fd, SHUT_RDWR);
}

static void s_count_error(hs_server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->errors++;
    pthread_mutex_unlock(&srv->lock);
}

/* The 408 of a request past its deadline (waiting: the head's). A keep-alive connection
 * waiting for its next head is only closed, as libmicrohttpd's idle timeout would: its
 * client may not have begun a request, and could read a 408 as the answer to its next. */
static void s_expire(hs_guard *g, s_watch *w, bool head)
{
    const hs_options *o = &g->srv->opt;
    if (head && atomic_load(&w->reused)) {
        shutdown(w->fd, SHUT_RDWR);
        return;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "the request %swas not complete within %u s",
             head ? "head (request line and headers) " : "",
             head && o->header_s < o->request_s ? o->header_s : o->request_s);
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "name", "Request Timeout", "message", msg,
                             "url", "", "code", "invalid");
    s_answer_raw(g->srv, w->fd, 408, "Request Timeout", body);
    json_decref(body);
    s_count_error(g->srv);
}

/* How long a request may be in state st: the head has header_s, the whole request
 * request_s (both from the start of the request). */
static int64_t s_limit_ms(const hs_options *o, int st)
{
    unsigned s = st == HS_WAITING && o->header_s < o->request_s ? o->header_s : o->request_s;
    return (int64_t)s * 1000;
}

static void *s_watchdog(void *arg)
{
    hs_guard *g = arg;
    while (!atomic_load(&g->stop)) {
        struct timespec tick = {0, 200 * 1000000L};
        nanosleep(&tick, NULL);
        int64_t now = s_now_ms();
        pthread_mutex_lock(&g->lock);
        for (s_watch *w = g->head.next; w != &g->head; w = w->next) {
            int st = atomic_load(&w->state);
            if ((st != HS_WAITING && st != HS_RECEIVING) ||
                now - atomic_load(&w->start_ms) <= s_limit_ms(&g->srv->opt, st))
                continue;
            if (atomic_compare_exchange_strong(&w->state, &st, HS_EXPIRED))
                s_expire(g, w, st == HS_WAITING);
        }
        pthread_mutex_unlock(&g->lock);
    }
    return NULL;
}

hs_guard *hs_guard_start(hs_server *srv)
{
    hs_guard *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->srv = srv;
    g->head.next = g->head.prev = &g->head;
    pthread_mutex_init(&g->lock, NULL);
    if (pthread_create(&g->thread, NULL, s_watchdog, g) != 0) {
        pthread_mutex_destroy(&g->lock);
        free(g);
        return NULL;
    }
    return g;
}

void hs_guard_stop(hs_guard *g)
{
    if (!g)
        return;
    atomic_store(&g->stop, 1);
    pthread_join(g->thread, NULL);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

void hs_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    hs_server *srv = cls;
    hs_guard *g = srv->guard;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        s_watch *w = calloc(1, sizeof *w);
        if (!w || !info) {
            free(w);
            return;
        }
        w->fd = info->connect_fd;
        atomic_store(&w->state, HS_WAITING);
        atomic_store(&w->start_ms, s_now_ms());
        pthread_mutex_lock(&g->lock);
        w->next = g->head.next;
        w->prev = &g->head;
        g->head.next->prev = w;
        g->head.next = w;
        pthread_mutex_unlock(&g->lock);
        *socket_context = w;
        return;
    }
    s_watch *w = *socket_context;
    if (!w)
        return;
    pthread_mutex_lock(&g->lock);
    w->prev->next = w->next;
    w->next->prev = w->prev;
    pthread_mutex_unlock(&g->lock);
    free(w);
    *socket_context = NULL;
}

static s_watch *s_watch_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

bool hs_guard_refuse(hs_server *srv, struct MHD_Connection *c, int status, const char *reason,
                     const json_t *body)
{
    s_watch *w = s_watch_of(c);
    int st = w ? atomic_load(&w->state) : HS_EXPIRED;
    while (st != HS_EXPIRED)
        if (atomic_compare_exchange_weak(&w->state, &st, HS_EXPIRED)) {
            s_answer_raw(srv, w->fd, status, reason, body);
            s_count_error(srv);
            return true;
        }
    return false;
}

bool hs_guard_claim(struct MHD_Connection *c, int state)
{
    s_watch *w = s_watch_of(c);
    if (!w)
        return true;
    int st = atomic_load(&w->state);
    while (st != HS_EXPIRED)
        if (atomic_compare_exchange_weak(&w->state, &st, state))
            return true;
    return false;
}

void hs_guard_rearm(struct MHD_Connection *c)
{
    s_watch *w = s_watch_of(c);
    if (!w)
        return;
    atomic_store(&w->start_ms, s_now_ms());
    atomic_store(&w->reused, true);
    int st = HS_HANDLED;
    atomic_compare_exchange_strong(&w->state, &st, HS_WAITING);
}
