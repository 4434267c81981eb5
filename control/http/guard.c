/* guard.c — the request deadline: a client that has not sent its whole request (headers and
 * body) within request_s seconds gets a JSON 408 and its connection is closed.
 *
 * libmicrohttpd's own timeout is an idle timeout: a slowloris client that sends a byte now
 * and then is never idle, and would hold its thread for ever. libmicrohttpd has no
 * deadline for a whole request and calls us only once the headers are complete, so a
 * watchdog thread keeps each connection's state: waiting for headers, receiving the body,
 * or handled. A connection still waiting or receiving past its deadline is claimed by the
 * watchdog (an atomic compare-and-swap, so it never races the handler): nobody else writes
 * on it at that moment, so the watchdog writes the 408 itself (plain HTTP; over TLS it
 * only closes) and shuts the socket down; libmicrohttpd then cleans up as for any closed
 * connection. A handled connection is never touched. */
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"

typedef struct s_watch {
    struct s_watch *prev, *next;
    int fd;
    _Atomic int state;
    _Atomic int64_t start_ms;
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

/* Write the 408 on fd, best effort and without blocking, then shut it down. */
static void s_expire(hs_guard *g, s_watch *w)
{
    if (!g->srv->opt.tls_cert) {
        char body[256], msg[512];
        int blen = snprintf(body, sizeof body,
                            "{\"name\":\"Request Timeout\",\"message\":\"the request was not "
                            "complete within %u s\",\"url\":\"\",\"code\":\"invalid\"}\n",
                            g->srv->opt.request_s);
        int mlen = snprintf(msg, sizeof msg,
                            "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
                            "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                            blen, body);
        if (send(w->fd, msg, (size_t)mlen, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
            /* the client is gone or not reading: closing is all that is left */
        }
    }
    shutdown(w->fd, SHUT_RDWR);
    pthread_mutex_lock(&g->srv->lock);
    g->srv->errors++;
    pthread_mutex_unlock(&g->srv->lock);
}

static void *s_watchdog(void *arg)
{
    hs_guard *g = arg;
    while (!atomic_load(&g->stop)) {
        struct timespec tick = {0, 200 * 1000000L};
        nanosleep(&tick, NULL);
        int64_t limit = (int64_t)g->srv->opt.request_s * 1000, now = s_now_ms();
        pthread_mutex_lock(&g->lock);
        for (s_watch *w = g->head.next; w != &g->head; w = w->next) {
            int st = atomic_load(&w->state);
            if ((st != HS_WAITING && st != HS_RECEIVING) ||
                now - atomic_load(&w->start_ms) <= limit)
                continue;
            if (atomic_compare_exchange_strong(&w->state, &st, HS_EXPIRED))
                s_expire(g, w);
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
    int st = HS_HANDLED;
    atomic_compare_exchange_strong(&w->state, &st, HS_WAITING);
}
