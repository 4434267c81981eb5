/* metrics.c — see metrics.h. */
#include "core/metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wire/envelope.h"

/* 1, 5, 10, 50, 100, 500 ms, 1 s, 5 s, +Inf: admin commands take milliseconds; a batch that
 * waits on a lock or a slow disk shows in the upper buckets. */
static const int64_t s_bounds_us[AB_METRICS_BUCKETS - 1] = {1000,   5000,   10000,   50000,
                                                            100000, 500000, 1000000, 5000000};

struct ab_metrics_loop {
    _Atomic uint64_t *counts; /* (ab_catalog_len + 1 for "unknown") × AB_OUTCOMES */
    _Atomic uint64_t buckets[AB_METRICS_BUCKETS]; /* per bucket, not cumulative */
    _Atomic uint64_t sum_us;
};

struct ab_metrics {
    int nloops;
    ab_metrics_loop *loops;
    char engine[256];
    char instance[64];
    int64_t started_ms;
    uint64_t seq;
};

static size_t s_types(void)
{
    return ab_catalog_len + 1;
}

ab_metrics *ab_metrics_new(int loops, const char *engine, int64_t started_ms)
{
    ab_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nloops = loops > 0 ? loops : 1;
    m->loops = calloc((size_t)m->nloops, sizeof *m->loops);
    if (!m->loops) {
        free(m);
        return NULL;
    }
    for (int i = 0; i < m->nloops; i++) {
        m->loops[i].counts = calloc(s_types() * AB_OUTCOMES, sizeof *m->loops[i].counts);
        if (!m->loops[i].counts) {
            ab_metrics_free(&m);
            return NULL;
        }
    }
    snprintf(m->engine, sizeof m->engine, "%s", engine);
    /* The instance tells a restart under the same name (--name) from a late event. */
    snprintf(m->instance, sizeof m->instance, "%lld-%ld", (long long)started_ms, (long)getpid());
    m->started_ms = started_ms;
    return m;
}

void ab_metrics_free(ab_metrics **mp)
{
    if (!mp || !*mp)
        return;
    ab_metrics *m = *mp;
    for (int i = 0; i < m->nloops; i++)
        free(m->loops[i].counts);
    free(m->loops);
    free(m);
    *mp = NULL;
}

ab_metrics_loop *ab_metrics_loop_at(ab_metrics *m, int i)
{
    return m && i >= 0 && i < m->nloops ? &m->loops[i] : NULL;
}

/* Only the owning loop writes a counter: a plain load and store, no read-modify-write. */
static void s_bump(_Atomic uint64_t *c, uint64_t by)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

static size_t s_type_index(const ab_command *cmd)
{
    return cmd ? (size_t)(cmd - ab_catalog) : ab_catalog_len;
}

void ab_metrics_count(ab_metrics_loop *loop, const ab_command *cmd, int outcome, int64_t micros)
{
    if (!loop)
        return;
    if (outcome < 0 || outcome >= AB_OUTCOMES)
        outcome = AB_E_INTERNAL;
    s_bump(&loop->counts[s_type_index(cmd) * AB_OUTCOMES + (size_t)outcome], 1);
    if (micros < 0)
        micros = 0;
    int b = 0;
    while (b < AB_METRICS_BUCKETS - 1 && micros > s_bounds_us[b])
        b++;
    s_bump(&loop->buckets[b], 1);
    s_bump(&loop->sum_us, (uint64_t)micros);
}

const char *ab_metrics_outcome_name(int outcome)
{
    return outcome == AB_OUTCOME_REPLAYED ? "replayed" : ab_code_name((ab_code)outcome);
}

static uint64_t s_read(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static uint64_t s_sum(const ab_metrics *m, size_t type, int outcome)
{
    uint64_t n = 0;
    for (int i = 0; i < m->nloops; i++)
        n += s_read(&m->loops[i].counts[type * AB_OUTCOMES + (size_t)outcome]);
    return n;
}

uint64_t ab_metrics_total(const ab_metrics *m, const ab_command *cmd, int outcome)
{
    return s_sum(m, s_type_index(cmd), outcome);
}

/* Sum every loop once into a snapshot, so that the map sizes packed match the entries. */
static uint64_t *s_snapshot(const ab_metrics *m)
{
    size_t n = s_types() * AB_OUTCOMES;
    uint64_t *snap = calloc(n, sizeof *snap);
    if (!snap)
        return NULL;
    for (size_t k = 0; k < n; k++)
        snap[k] = s_sum(m, k / AB_OUTCOMES, (int)(k % AB_OUTCOMES));
    return snap;
}

static uint32_t s_nonzero(const uint64_t *row)
{
    uint32_t n = 0;
    for (int o = 0; o < AB_OUTCOMES; o++)
        n += row[o] != 0;
    return n;
}

/* commands: {type: {outcome: n}}, only the types seen and their non-zero outcomes. */
static void s_pack_commands(msgpack_packer *pk, const uint64_t *snap)
{
    uint32_t seen = 0;
    for (size_t t = 0; t < s_types(); t++)
        seen += s_nonzero(&snap[t * AB_OUTCOMES]) > 0;
    msgpack_pack_map(pk, seen);
    for (size_t t = 0; t < s_types(); t++) {
        const uint64_t *row = &snap[t * AB_OUTCOMES];
        uint32_t n = s_nonzero(row);
        if (n == 0)
            continue;
        ab_pack_cstr(pk, t < ab_catalog_len ? ab_catalog[t].type : "unknown");
        msgpack_pack_map(pk, n);
        for (int o = 0; o < AB_OUTCOMES; o++)
            if (row[o]) {
                ab_pack_cstr(pk, ab_metrics_outcome_name(o));
                msgpack_pack_uint64(pk, row[o]);
            }
    }
}

/* duration: {le: [upper bounds in s, without +Inf], buckets: [cumulative counts, the last
 * one +Inf = count], sum: seconds, count}. */
static void s_pack_duration(msgpack_packer *pk, const ab_metrics *m)
{
    uint64_t per[AB_METRICS_BUCKETS] = {0}, sum_us = 0, total = 0;
    for (int i = 0; i < m->nloops; i++) {
        for (int b = 0; b < AB_METRICS_BUCKETS; b++)
            per[b] += s_read(&m->loops[i].buckets[b]);
        sum_us += s_read(&m->loops[i].sum_us);
    }
    msgpack_pack_map(pk, 4);
    ab_pack_cstr(pk, "le");
    msgpack_pack_array(pk, AB_METRICS_BUCKETS - 1);
    for (int b = 0; b < AB_METRICS_BUCKETS - 1; b++)
        msgpack_pack_double(pk, (double)s_bounds_us[b] / 1e6);
    ab_pack_cstr(pk, "buckets");
    msgpack_pack_array(pk, AB_METRICS_BUCKETS);
    for (int b = 0; b < AB_METRICS_BUCKETS; b++) {
        total += per[b];
        msgpack_pack_uint64(pk, total);
    }
    ab_pack_cstr(pk, "sum");
    msgpack_pack_double(pk, (double)sum_us / 1e6);
    ab_pack_cstr(pk, "count");
    msgpack_pack_uint64(pk, total);
}

int ab_metrics_event(ab_metrics *m, int64_t now_ms, int period_ms, char *topic, size_t topic_len,
                     msgpack_sbuffer *body)
{
    uint64_t *snap = s_snapshot(m);
    if (!snap)
        return -1;
    snprintf(topic, topic_len, "engine.%s.stats", m->engine);
    msgpack_packer pk;
    msgpack_packer_init(&pk, body, msgpack_sbuffer_write);
    ab_event_begin(&pk, topic, now_ms);
    msgpack_pack_map(&pk, 8);
    ab_pack_cstr(&pk, "engine");
    ab_pack_cstr(&pk, m->engine);
    ab_pack_cstr(&pk, "instance");
    ab_pack_cstr(&pk, m->instance);
    ab_pack_cstr(&pk, "started");
    msgpack_pack_int64(&pk, m->started_ms);
    ab_pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, ++m->seq);
    ab_pack_cstr(&pk, "period_ms");
    msgpack_pack_int(&pk, period_ms);
    ab_pack_cstr(&pk, "loops");
    msgpack_pack_int(&pk, m->nloops);
    ab_pack_cstr(&pk, "commands");
    s_pack_commands(&pk, snap);
    ab_pack_cstr(&pk, "duration");
    s_pack_duration(&pk, m);
    free(snap);
    return 0;
}
