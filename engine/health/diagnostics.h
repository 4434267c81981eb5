/* diagnostics.h — the health report (diagnostics.run, and part of setting.report): each
 * check gives a status, what it found and what to do. See diagnostics.c for the checks. */
#ifndef AB_DIAGNOSTICS_H
#define AB_DIAGNOSTICS_H

#include "core/engine.h"
#include "settings.h"

typedef enum { AB_DIAG_OK, AB_DIAG_WARNING, AB_DIAG_CRITICAL } ab_diag_status;

#define AB_DIAG_MAX 48

typedef struct {
    char name[64]; /* "gnupg", "workers.default", "folder.tmp", … */
    ab_diag_status status;
    char found[512];
    char action[512]; /* "" when there is nothing to do */
} ab_diag_check;

typedef struct {
    ab_diag_check checks[AB_DIAG_MAX];
    int n;
} ab_diag_report;

/* "ok", "warning", "critical". */
const char *ab_diag_status_name(ab_diag_status st);

/* Run every check inside the caller's transaction (reads only; the bus probe and GnuPG run
 * beside it). Fills *r. Returns 0, or -1 with *err when the database itself failed. */
int ab_diagnostics_run(ab_ctx *ctx, ab_diag_report *r, ab_error *err);

/* Pack the report as one map {status, critical, counts {ok, warning, critical}, checks
 * [{name, status, found, action}]}. */
void ab_diagnostics_pack(msgpack_packer *pk, const ab_diag_report *r);

/* --- from commands/setting.c ---------------------------------------------------------- */

/* Count the settings' problems by tab and priority (as setting list reports them), and
 * list the names of those of priority prio_names (comma-separated, cut to fit names).
 * Returns 0, or -1 with *err. */
int ab_setting_problem_counts(ab_ctx *ctx, int counts[AB_TAB__COUNT][AB_PRIO__COUNT],
                              ab_setting_priority prio_names, char *names, size_t len,
                              ab_error *err);

#endif
