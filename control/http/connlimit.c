/* connlimit.c — who may open one more connection (docs/architecture.md, "HTTP shim",
 * Connections).
 *
 * libmicrohttpd stops accepting at --max-connections, and each connection holds a thread:
 * one address that opens hundreds of idle or slow connections would shut everyone else
 * out. So the shim counts the connections of each client address and, at accept:
 * - refuses an address that holds --per-ip-connections already (default 64);
 * - keeps the last --reserved-connections slots (default an eighth of the total) for
 *   addresses that hold none yet: a few addresses together cannot fill the shim either.
 * A refused connection is closed at once, before it gets a thread (libmicrohttpd's accept
 * policy callback has no socket to answer on). Refusals are said on stderr: the first at
 * once, then a count at most every 10 s (with the next refusal).
 *
 * The counts change in libmicrohttpd's notify-connection callback (started, closed) and
 * are read in its accept policy callback; with a thread per connection libmicrohttpd calls
 * all three from its listening thread, the lock only makes that assumption harmless. The
 * table is libc's tsearch tree keyed by address (the port is not part of it). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/http.h"

#define S_REPORT_EVERY_MS 10000

typedef struct {
    int family;
    unsigned char addr[16];
    unsigned count;
} s_holder;

struct hs_connlimit {
    pthread_mutex_t lock;
    void *holders; /* tsearch tree of s_holder */
    unsigned total, max, per_ip, reserved;
    unsigned long refused;               /* since the last report */
    char last_refused[INET6_ADDRSTRLEN]; /* for the report */
    const char *last_reason;
    int64_t reported_ms;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_compare(const void *a, const void *b)
{
    const s_holder *x = a, *y = b;
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    return memcmp(x->addr, y->addr, sizeof x->addr);
}

/* The table's key for addr; false for an address family without one (not counted). */
static bool s_key(const struct sockaddr *addr, s_holder *key)
{
    memset(key, 0, sizeof *key);
    if (!addr)
        return false;
    key->family = addr->sa_family;
    if (addr->sa_family == AF_INET)
        memcpy(key->addr, &((const struct sockaddr_in *)addr)->sin_addr, 4);
    else if (addr->sa_family == AF_INET6)
        memcpy(key->addr, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
    else
        return false;
    return true;
}

hs_connlimit *hs_connlimit_new(const hs_options *o)
{
    hs_connlimit *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    pthread_mutex_init(&l->lock, NULL);
    l->max = o->max_conns;
    l->per_ip = o->per_ip_conns;
    l->reserved = o->reserved_conns;
    l->reported_ms = s_now_ms() - S_REPORT_EVERY_MS; /* the first refusal is said at once */
    return l;
}

void hs_connlimit_free(hs_connlimit *l)
{
    if (!l)
        return;
    tdestroy(l->holders, free);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* How many connections addr holds (lock held). */
static unsigned s_held(hs_connlimit *l, const s_holder *key)
{
    s_holder **found = tfind(key, &l->holders, s_compare);
    return found ? (*found)->count : 0;
}

/* Count one refusal and say so now and then (lock held). */
static void s_refused(hs_connlimit *l, const s_holder *key, const char *reason)
{
    l->refused++;
    inet_ntop(key->family, key->addr, l->last_refused, sizeof l->last_refused);
    l->last_reason = reason;
    int64_t now = s_now_ms();
    if (now - l->reported_ms < S_REPORT_EVERY_MS)
        return;
    fprintf(stderr,
            "adminbus-http: refused %lu connection(s) since the last report (the last from %s: "
            "%s); %u open\n",
            l->refused, l->last_refused, l->last_reason, l->total);
    l->refused = 0;
    l->reported_ms = now;
}

enum MHD_Result hs_connlimit_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addrlen;
    hs_connlimit *l = cls;
    s_holder key;
    if (!s_key(addr, &key))
        return MHD_YES;
    pthread_mutex_lock(&l->lock);
    unsigned held = s_held(l, &key);
    const char *reason = NULL;
    if (l->per_ip && held >= l->per_ip)
        reason = "it holds --per-ip-connections already";
    else if (held > 0 && l->total + l->reserved >= l->max)
        reason = "the last --reserved-connections are kept for addresses that hold none";
    if (reason)
        s_refused(l, &key, reason);
    pthread_mutex_unlock(&l->lock);
    return reason ? MHD_NO : MHD_YES;
}

void hs_connlimit_opened(hs_connlimit *l, const struct sockaddr *addr)
{
    s_holder key;
    bool keyed = s_key(addr, &key);
    pthread_mutex_lock(&l->lock);
    l->total++;
    s_holder *fresh = keyed ? malloc(sizeof *fresh) : NULL;
    if (fresh) {
        *fresh = key;
        s_holder **slot = tsearch(fresh, &l->holders, s_compare);
        if (slot && *slot != fresh)
            free(fresh);
        if (slot)
            (*slot)->count++;
        else
            free(fresh);
    }
    pthread_mutex_unlock(&l->lock);
}

void hs_connlimit_closed(hs_connlimit *l, const struct sockaddr *addr)
{
    s_holder key;
    bool keyed = s_key(addr, &key);
    pthread_mutex_lock(&l->lock);
    if (l->total > 0)
        l->total--;
    s_holder **found = keyed ? tfind(&key, &l->holders, s_compare) : NULL;
    if (found && --(*found)->count == 0) {
        s_holder *gone = *found;
        tdelete(&key, &l->holders, s_compare);
        free(gone);
    }
    pthread_mutex_unlock(&l->lock);
}
