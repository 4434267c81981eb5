/* apply.h — the engine's apply loop (design.md, "The engine's apply loop"): take what is
 * waiting, apply it in one transaction with one SAVEPOINT per command, COMMIT once, then
 * reply and publish. A reply therefore always describes committed state. */
#ifndef AB_APPLY_H
#define AB_APPLY_H

#include "auth/authfail.h"
#include "core/engine.h"
#include "core/metrics.h"
#include "auth/secret.h"
#include "wire/transport.h"

typedef struct ab_applier ab_applier;

typedef struct {
    const char *db_dsn;
    int batch_max;
    size_t max_frame;
    ab_metrics_loop *metrics; /* this loop's counters (metrics.h); NULL: not counted */
    ab_authfail *authfail;    /* failed authentications per address, shared by the engine's
                                 loops (authfail.h); required */
} ab_applier_options;

/* Create an applier over an open connection. It borrows t, secret and info (they must
 * outlive it) and takes *db (reopening it after a lost connection). Caller owns it. */
ab_applier *ab_applier_new(const ab_applier_options *opt, ab_transport *t, ab_db **db,
                           const ab_secret *secret, const ab_engine_info *info);

/* Wait up to timeout_ms for commands and apply one batch. Returns the number of
 * commands handled (0 on timeout), -1 on a transport fault. */
int ab_applier_step(ab_applier *a, int timeout_ms);

/* Totals since start, for the periodic log line. */
void ab_applier_stats(const ab_applier *a, uint64_t *commands, uint64_t *batches);

void ab_applier_destroy(ab_applier **a);

#endif
