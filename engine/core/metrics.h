/* metrics.h — the engine's command counters and apply latency (docs/architecture.md,
 * "Engine metrics").
 *
 * Each apply loop owns one ab_metrics_loop and is its only writer: a count is a relaxed
 * load and store of a counter no other thread writes (no lock, no locked instruction, no
 * database write). The publisher sums the loops when it packs the stats event
 * (ab_metrics_event); a sum read while a loop counts may miss that one count, which the
 * next event includes: the totals only ever grow. */
#ifndef AB_METRICS_H
#define AB_METRICS_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "wire/errors.h"

/* Outcomes: AB_OK, each error code, and a repeated id answered from the stored reply. */
#define AB_OUTCOME_REPLAYED ((int)AB_E__COUNT)
#define AB_OUTCOMES         ((int)AB_E__COUNT + 1)

/* Latency buckets, upper bounds in microseconds; the last one is +Inf. */
#define AB_METRICS_BUCKETS 9

typedef struct ab_metrics ab_metrics;
typedef struct ab_metrics_loop ab_metrics_loop;

/* Counters for an engine named engine with loops apply loops, started at started_ms (unix
 * ms). NULL when out of memory. */
ab_metrics *ab_metrics_new(int loops, const char *engine, int64_t started_ms);
void ab_metrics_free(ab_metrics **m);

/* Loop i's counters (0 <= i < loops). */
ab_metrics_loop *ab_metrics_loop_at(ab_metrics *m, int i);

/* One command answered: cmd its catalog entry (NULL: not a known type, counted as
 * "unknown" so that a client cannot invent labels), outcome an ab_code or
 * AB_OUTCOME_REPLAYED, micros from its batch's receipt to its reply. Only loop's own
 * thread may call it. */
void ab_metrics_count(ab_metrics_loop *loop, const ab_command *cmd, int outcome, int64_t micros);

/* Wire name of an outcome: "ok", "invalid", …, "replayed". */
const char *ab_metrics_outcome_name(int outcome);

/* The stats event: topic engine.<engine>.stats and its body (a v1 event whose data holds
 * the totals since start: only the types seen, only non-zero outcomes). period_ms tells
 * subscribers when to expect the next one. Returns 0, -1 when out of memory. */
int ab_metrics_event(ab_metrics *m, int64_t now_ms, int period_ms, char *topic, size_t topic_len,
                     msgpack_sbuffer *body);

/* Sum of all loops' counts of (type, outcome), for tests and the log line. */
uint64_t ab_metrics_total(const ab_metrics *m, const ab_command *cmd, int outcome);

#endif
