/* authfail.c — see authfail.h.
 *
 * The groups live in a binary tree (POSIX tsearch; glibc's is a red-black tree), keyed by
 * the address in binary form and the user: look-ups cost O(log n) whatever addresses an
 * attacker picks, where a hash table would need a keyed hash to resist chosen collisions.
 * (twalk_r is a GNU extension; the build defines _GNU_SOURCE.) */
#include "auth/authfail.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <pthread.h>
#include <search.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire/envelope.h"
#include "wire/log.h"
#include "core/settings_cache.h"

/* Sweeps: forget idle groups at least every SWEEP_IDLE_MS; with a full table look for idle
 * groups at most every SWEEP_FULL_MS; while an address is blocked, look every
 * SWEEP_BLOCKED_MS whether its block should end. */
#define SWEEP_IDLE_MS    10000
#define SWEEP_FULL_MS    1000
#define SWEEP_BLOCKED_MS 1000
#define NEVER            INT64_MAX

enum { FAM_UNKNOWN, FAM_OVERFLOW, FAM_V4, FAM_V6, FAM_TEXT };

typedef struct {
    uint8_t family;
    uint8_t addr[16];
    uint32_t user;
} s_key;

typedef struct {
    s_key key;
    char ip[AB_IP_MAX + 1]; /* as the transport gave it, for the rows' ip column */
    char *email;            /* the user's, for the group's rows; NULL for user 0 */
    /* audit rows */
    int64_t row_at;    /* when the group's last row was queued; 0: none yet */
    uint64_t pending;  /* failures since then, in no row yet */
    int64_t first_at;  /* when the first of them came */
    char *first_title; /* its own title, which the row that carries them quotes */
    /* throttle (kept by an address's user-0 group) */
    int64_t period_start;
    uint32_t fails;        /* failures since period_start */
    int64_t blocked_until; /* 0: not blocked */
} s_group;

struct ab_authfail {
    pthread_mutex_t lock;
    void *root; /* tsearch tree of s_group */
    size_t count, max;
    s_group overflow;    /* new sources once the tree is full */
    atomic_int nblocked; /* groups with blocked_until set: phase one's fast path */
    int64_t next_due;    /* earliest end of a window with pending failures (NEVER: none) */
    int64_t last_sweep;
};

/* One change of an account, to undo. */
typedef enum { CH_ADD, CH_ROW, CH_THROTTLE } s_change_kind;
typedef struct {
    s_change_kind kind;
    s_key key;
    uint32_t n; /* CH_ADD: failures added to pending; CH_THROTTLE: counted against the address */
    /* CH_ROW: the group's log state before the row */
    int64_t prev_row_at, prev_first_at;
    uint64_t prev_pending;
    char *prev_first_title;
    /* CH_THROTTLE: the block this account started (0: none) */
    int64_t blocked;
} s_change;

struct ab_authfail_undo {
    s_change *v;
    size_t n, cap;
};

/* --- keys and groups ------------------------------------------------------------------- */

static void s_key_of(const char *ip, uint32_t user, s_key *k)
{
    memset(k, 0, sizeof *k);
    k->user = user;
    struct in6_addr a6;
    if (!ip || !*ip) {
        k->family = FAM_UNKNOWN;
    } else if (inet_pton(AF_INET, ip, k->addr) == 1) {
        k->family = FAM_V4;
    } else if (inet_pton(AF_INET6, ip, &a6) == 1 && IN6_IS_ADDR_V4MAPPED(&a6)) {
        k->family = FAM_V4; /* ::ffff:10.0.0.1 is 10.0.0.1 */
        memcpy(k->addr, a6.s6_addr + 12, 4);
    } else if (inet_pton(AF_INET6, ip, &a6) == 1) {
        k->family = FAM_V6;
        memcpy(k->addr, a6.s6_addr, 16);
    } else { /* never from a transport; kept apart from the unknown address all the same */
        k->family = FAM_TEXT;
        size_t len = strlen(ip);
        memcpy(k->addr, ip, len < sizeof k->addr ? len : sizeof k->addr);
    }
}

/* Field by field: a struct copy need not copy padding, so memcmp of whole keys could see
 * two equal keys differ. */
static int s_cmp(const void *pa, const void *pb)
{
    const s_key *a = &((const s_group *)pa)->key, *b = &((const s_group *)pb)->key;
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    if (a->user != b->user)
        return a->user < b->user ? -1 : 1;
    return memcmp(a->addr, b->addr, sizeof a->addr);
}

static s_group *s_find(ab_authfail *f, const s_key *k)
{
    if (k->family == FAM_OVERFLOW)
        return &f->overflow;
    s_group probe = {.key = *k};
    void *node = tfind(&probe, &f->root, s_cmp);
    return node ? *(s_group **)node : NULL;
}

static void s_group_free(void *p)
{
    s_group *g = p;
    free(g->email);
    free(g->first_title);
    free(g);
}

static void s_sweep_idle(ab_authfail *f, const ab_authfail_limits *lim, int64_t now);

/* The group of (ip, user), created when missing; the overflow group when the table is full
 * (after a look for idle groups to forget). NULL when out of memory. */
static s_group *s_find_or_add(ab_authfail *f, const ab_authfail_limits *lim, const char *ip,
                              uint32_t user, const char *email, int64_t now)
{
    s_key k;
    s_key_of(ip, user, &k);
    s_group *g = s_find(f, &k);
    if (g)
        return g;
    if (f->count >= f->max && now - f->last_sweep >= SWEEP_FULL_MS)
        s_sweep_idle(f, lim, now);
    if (f->count >= f->max)
        return &f->overflow;
    g = calloc(1, sizeof *g);
    if (!g || (user && email && *email && !(g->email = strdup(email)))) {
        free(g);
        return NULL;
    }
    g->key = k;
    snprintf(g->ip, sizeof g->ip, "%s", ip ? ip : "");
    void *node = tsearch(g, &f->root, s_cmp);
    if (!node) {
        s_group_free(g);
        return NULL;
    }
    f->count++;
    return g;
}

/* --- the table ------------------------------------------------------------------------- */

/* A setting's value within lo..hi: a value forced past the catalog's limits (setting.set
 * force) counts as the nearest one. */
static int64_t s_setting(const char *name, int64_t def, int64_t lo, int64_t hi)
{
    int64_t v = ab_settings_int(name, def);
    return v < lo ? lo : v > hi ? hi : v;
}

void ab_authfail_limits_now(ab_authfail_limits *lim)
{
    bool each = ab_settings_bool("Security.log_each_individual_auth_fail");
    lim->window_ms = each ? 0 : s_setting("Security.auth_fail_log_window", 10, 0, 86400) * 1000;
    lim->amount = s_setting("Security.auth_fail_throttle_amount", 100, 0, 1000000);
    lim->period_ms = s_setting("Security.auth_fail_throttle_period", 60, 1, 86400) * 1000;
}

ab_authfail *ab_authfail_new(size_t max_sources)
{
    ab_authfail *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->lock, NULL);
    f->max = max_sources;
    f->overflow.key.family = FAM_OVERFLOW;
    f->next_due = NEVER;
    atomic_init(&f->nblocked, 0);
    return f;
}

void ab_authfail_destroy(ab_authfail **fp)
{
    if (!fp || !*fp)
        return;
    ab_authfail *f = *fp;
    tdestroy(f->root, s_group_free);
    free(f->overflow.first_title);
    pthread_mutex_destroy(&f->lock);
    free(f);
    *fp = NULL;
}

static void s_unblock(ab_authfail *f, s_group *g)
{
    if (g->blocked_until) {
        g->blocked_until = 0;
        atomic_fetch_sub(&f->nblocked, 1);
    }
}

int ab_authfail_throttled(ab_authfail *f, const char *ip, int64_t now_ms, ab_error *err)
{
    if (!f || atomic_load(&f->nblocked) == 0)
        return 0;
    s_key k;
    s_key_of(ip, 0, &k);
    int64_t left = 0;
    uint32_t fails = 0;
    pthread_mutex_lock(&f->lock);
    s_group *g = s_find(f, &k);
    if (g && g->blocked_until > now_ms) {
        left = g->blocked_until - now_ms;
        fails = g->fails;
    } else if (g) {
        s_unblock(f, g);
    }
    pthread_mutex_unlock(&f->lock);
    if (left == 0)
        return 0;
    ab_fail(err, AB_E_UNAVAILABLE, NULL,
            "%u failed authentications from %s: every command from this address is refused "
            "for %lld s more (Security.auth_fail_throttle_amount, "
            "Security.auth_fail_throttle_period)",
            fails, ip, (long long)(left + 999) / 1000);
    err->retry_after = (int)((left + 999) / 1000);
    return -1;
}

/* --- undo ------------------------------------------------------------------------------ */

ab_authfail_undo *ab_authfail_undo_new(void)
{
    return calloc(1, sizeof(ab_authfail_undo));
}

static void s_undo_clear(ab_authfail_undo *u)
{
    for (size_t i = 0; i < u->n; i++)
        free(u->v[i].prev_first_title);
    u->n = 0;
}

void ab_authfail_undo_destroy(ab_authfail_undo **up)
{
    if (!up || !*up)
        return;
    s_undo_clear(*up);
    free((*up)->v);
    free(*up);
    *up = NULL;
}

static s_change *s_undo_push(ab_authfail_undo *u, s_change_kind kind, const s_key *k)
{
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 64;
        s_change *v = realloc(u->v, cap * sizeof *v);
        if (!v)
            return NULL;
        u->v = v;
        u->cap = cap;
    }
    s_change *c = &u->v[u->n++];
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->key = *k;
    return c;
}

/* --- rows ------------------------------------------------------------------------------ */

/* The title of a row standing for n failures, the first of which (at first_at, monotonic)
 * was titled first. */
static void s_summary_title(const s_group *g, uint64_t n, int64_t first_at, const char *first,
                            int64_t now, const ab_authfail_limits *lim, char *out, size_t len)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    time_t t = (time_t)(wall.tv_sec - (now - first_at) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    const char *from =
        g->key.family == FAM_OVERFLOW ? "addresses beyond those the engine tracks" : "one address";
    snprintf(out, len,
             "Failed authentication %" PRIu64 " times from %s since %02d:%02d:%02d UTC (one row "
             "per %lld s: Security.auth_fail_log_window); the first: %s",
             n, from, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)(lim->window_ms / 1000), first);
}

/* Queue the group's row standing for n failures, titled title. Returns 0 or -1. */
static int s_queue_row(const s_group *g, uint64_t n, const char *title, ab_audit *audit)
{
    char count[24];
    snprintf(count, sizeof count, "%" PRIu64, n);
    ab_change change;
    ab_change_init(&change);
    ab_change_add(&change, "failures", NULL, 0, count, strlen(count));
    ab_actor actor = {g->key.user, g->email ? g->email : "", "SYSTEM", g->ip};
    int rc = change.buf ? ab_audit_add(audit, &actor, "User", actor.user_id, "auth_fail", title,
                                       change.buf)
                        : -1;
    ab_change_free(&change);
    return rc;
}

/* Write the group's row: it carries the failures pending since its last row, and n more
 * titled title (n = 0 for a row at the end of a window). Opens the group's next window. */
static int s_write_row(s_group *g, uint32_t n, const char *title, const ab_authfail_limits *lim,
                       int64_t now, ab_audit *audit, ab_authfail_undo *u)
{
    char summary[600];
    uint64_t total = g->pending + n;
    if (g->pending > 0) {
        s_summary_title(g, total, g->first_at, g->first_title ? g->first_title : "", now, lim,
                        summary, sizeof summary);
        title = summary;
    } else if (n > 1 && lim->window_ms > 0) {
        s_summary_title(g, total, now, title, now, lim, summary, sizeof summary);
        title = summary;
    }
    s_change *c = s_undo_push(u, CH_ROW, &g->key);
    if (!c || s_queue_row(g, total, title, audit) < 0) {
        if (c)
            u->n--;
        return -1;
    }
    c->prev_row_at = g->row_at;
    c->prev_pending = g->pending;
    c->prev_first_at = g->first_at;
    c->prev_first_title = g->first_title;
    g->first_title = NULL;
    g->pending = 0;
    g->row_at = now;
    return 0;
}

static bool s_window_open(const s_group *g, const ab_authfail_limits *lim, int64_t now)
{
    return lim->window_ms > 0 && g->row_at > 0 && now < g->row_at + lim->window_ms;
}

/* Count n failures titled title against the group: a row when its window is closed, else
 * pending for the next one. */
static int s_log(ab_authfail *f, s_group *g, uint32_t n, const char *title,
                 const ab_authfail_limits *lim, int64_t now, ab_audit *audit, ab_authfail_undo *u)
{
    if (!s_window_open(g, lim, now))
        return s_write_row(g, n, title, lim, now, audit, u);
    s_change *c = s_undo_push(u, CH_ADD, &g->key);
    if (!c || (g->pending == 0 && !(g->first_title = strdup(title)))) {
        if (c)
            u->n--;
        return -1;
    }
    c->n = n;
    if (g->pending == 0) {
        g->first_at = now;
        if (g->row_at + lim->window_ms < f->next_due)
            f->next_due = g->row_at + lim->window_ms;
    }
    g->pending += n;
    return 0;
}

/* Count n failures against the address of group g (its user-0 group holds the throttle);
 * block it when they reach the limit within the period. */
static int s_throttle(ab_authfail *f, s_group *g, uint32_t n, const ab_authfail_limits *lim,
                      int64_t now, ab_authfail_undo *u)
{
    if (g->key.family == FAM_UNKNOWN || g->key.family == FAM_OVERFLOW || lim->amount <= 0)
        return 0;
    s_change *c = s_undo_push(u, CH_THROTTLE, &g->key);
    if (!c)
        return -1;
    c->n = n;
    if (now >= g->period_start + lim->period_ms) {
        g->period_start = now;
        g->fails = 0;
    }
    g->fails += n;
    if (g->fails >= (uint64_t)lim->amount && g->blocked_until <= now) {
        if (!g->blocked_until)
            atomic_fetch_add(&f->nblocked, 1);
        g->blocked_until = g->period_start + lim->period_ms;
        c->blocked = g->blocked_until;
        AB_WARN("engine: %u failed authentications from %s within %lld s: refusing its "
                "commands for %lld s",
                g->fails, g->ip, (long long)(now - g->period_start) / 1000,
                (long long)(g->blocked_until - now + 999) / 1000);
    }
    return 0;
}

static int s_note(ab_authfail *f, const ab_authfail_limits *lim, const ab_authfail_note *note,
                  int64_t now, ab_audit *audit, ab_authfail_undo *u)
{
    s_group *g = s_find_or_add(f, lim, note->ip, note->user_id, note->email, now);
    if (!g || s_log(f, g, note->count, note->title, lim, now, audit, u) < 0)
        return -1;
    if (note->user_id != 0)
        g = s_find_or_add(f, lim, note->ip, 0, NULL, now);
    return g ? s_throttle(f, g, note->count, lim, now, u) : -1;
}

/* --- sweeping -------------------------------------------------------------------------- */

typedef struct {
    ab_authfail *f;
    const ab_authfail_limits *lim;
    int64_t now;
    ab_audit *audit; /* NULL: only forget idle groups */
    bool all;        /* write every group's pending failures, window or not */
    ab_authfail_undo *u;
    int rc;
    s_group **idle; /* groups to forget once the walk is over */
    size_t nidle, capidle;
} s_walk;

static bool s_idle(const s_group *g, const ab_authfail_limits *lim, int64_t now)
{
    return g->pending == 0 && !s_window_open(g, lim, now) && !g->blocked_until &&
           now >= g->period_start + lim->period_ms;
}

static void s_visit_group(s_group *g, s_walk *w)
{
    ab_authfail *f = w->f;
    if (g->blocked_until && (g->blocked_until <= w->now || w->lim->amount <= 0))
        s_unblock(f, g); /* ended, or the throttle was turned off */
    if (g->pending > 0 && w->audit && w->rc == 0 && (w->all || !s_window_open(g, w->lim, w->now)))
        w->rc = s_write_row(g, 0, "", w->lim, w->now, w->audit, w->u);
    else if (g->pending > 0 && g->row_at + w->lim->window_ms < f->next_due)
        f->next_due = g->row_at + w->lim->window_ms;
    if (g == &f->overflow || !s_idle(g, w->lim, w->now))
        return;
    if (w->nidle == w->capidle) {
        size_t cap = w->capidle ? w->capidle * 2 : 64;
        s_group **v = realloc(w->idle, cap * sizeof *v);
        if (!v)
            return; /* forgotten at a later sweep */
        w->idle = v;
        w->capidle = cap;
    }
    w->idle[w->nidle++] = g;
}

static void s_visit(const void *node, VISIT which, void *closure)
{
    if (which == postorder || which == leaf)
        s_visit_group(*(s_group *const *)node, closure);
}

/* Walk every group: write the rows of ended windows (when w->audit), recompute next_due,
 * clear ended blocks, forget idle groups. Returns w->rc. */
static int s_sweep(s_walk *w)
{
    ab_authfail *f = w->f;
    f->next_due = NEVER;
    f->last_sweep = w->now;
    twalk_r(f->root, s_visit, w);
    s_visit_group(&f->overflow, w);
    for (size_t i = 0; i < w->nidle; i++) {
        tdelete(w->idle[i], &f->root, s_cmp);
        s_group_free(w->idle[i]);
        f->count--;
    }
    free(w->idle);
    return w->rc;
}

static void s_sweep_idle(ab_authfail *f, const ab_authfail_limits *lim, int64_t now)
{
    s_walk w = {.f = f, .lim = lim, .now = now};
    s_sweep(&w);
}

/* A sweep writes the rows of ended windows, and ends blocks whose period has passed or whose
 * throttle was turned off: while an address is blocked, at least once a second. */
static bool s_sweep_due(ab_authfail *f, int64_t now)
{
    int64_t since = now - f->last_sweep;
    return f->next_due <= now || (f->count > 0 && since >= SWEEP_IDLE_MS) ||
           (atomic_load(&f->nblocked) > 0 && since >= SWEEP_BLOCKED_MS);
}

/* --- accounting ------------------------------------------------------------------------ */

static void s_revert_locked(ab_authfail *f, ab_authfail_undo *u);

int ab_authfail_account(ab_authfail *f, const ab_authfail_limits *lim,
                        const ab_authfail_note *notes, size_t n, int64_t now_ms, ab_audit *audit,
                        ab_authfail_undo *u)
{
    s_undo_clear(u);
    int rc = 0;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = s_note(f, lim, &notes[i], now_ms, audit, u);
    if (rc == 0 && s_sweep_due(f, now_ms)) {
        s_walk w = {.f = f, .lim = lim, .now = now_ms, .audit = audit, .u = u};
        rc = s_sweep(&w);
    }
    if (rc < 0)
        s_revert_locked(f, u);
    pthread_mutex_unlock(&f->lock);
    return rc;
}

int ab_authfail_flush(ab_authfail *f, const ab_authfail_limits *lim, int64_t now_ms,
                      ab_audit *audit, ab_authfail_undo *u)
{
    s_undo_clear(u);
    pthread_mutex_lock(&f->lock);
    s_walk w = {.f = f, .lim = lim, .now = now_ms, .audit = audit, .all = true, .u = u};
    int rc = s_sweep(&w);
    if (rc < 0)
        s_revert_locked(f, u);
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static void s_revert_row(ab_authfail *f, s_group *g, s_change *c)
{
    g->row_at = c->prev_row_at;
    if (c->prev_pending > 0) { /* they are older than anything pending since */
        free(g->first_title);
        g->first_title = c->prev_first_title;
        g->first_at = c->prev_first_at;
        c->prev_first_title = NULL;
    }
    g->pending += c->prev_pending;
    if (g->pending > 0)
        f->next_due = 0; /* the row is due again: the next account writes it */
}

static void s_revert_locked(ab_authfail *f, ab_authfail_undo *u)
{
    for (size_t i = u->n; i-- > 0;) {
        s_change *c = &u->v[i];
        /* A group the account touched is not idle, so no sweep forgot it since; only a
         * window just set to 0 could let one go, and then its count is lost. */
        s_group *g = s_find(f, &c->key);
        if (!g)
            continue;
        if (c->kind == CH_ROW) {
            s_revert_row(f, g, c);
        } else if (c->kind == CH_ADD) {
            g->pending -= c->n < g->pending ? c->n : g->pending;
            if (g->pending == 0) {
                free(g->first_title);
                g->first_title = NULL;
            }
        } else {
            g->fails -= c->n < g->fails ? c->n : g->fails;
            if (c->blocked && g->blocked_until == c->blocked)
                s_unblock(f, g);
        }
    }
    s_undo_clear(u);
}

void ab_authfail_revert(ab_authfail *f, ab_authfail_undo *u)
{
    pthread_mutex_lock(&f->lock);
    s_revert_locked(f, u);
    pthread_mutex_unlock(&f->lock);
}

bool ab_authfail_due(ab_authfail *f, int64_t now_ms)
{
    pthread_mutex_lock(&f->lock);
    bool due = s_sweep_due(f, now_ms) && (f->next_due <= now_ms || atomic_load(&f->nblocked) > 0);
    pthread_mutex_unlock(&f->lock);
    return due;
}
