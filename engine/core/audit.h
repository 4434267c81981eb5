/* audit.h — the audit trail in MISP's log shape. Handlers queue rows for the batch; the
 * apply loop writes them all with one bulk insert inside the same transaction as the
 * changes they describe, so an audit row exists exactly when its change does. */
#ifndef AB_AUDIT_H
#define AB_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "core/db.h"

/* A change description: "field (old) => (new)" items joined by ", ". */
typedef struct {
    char *buf;
    size_t len, cap;
} ab_change;

void ab_change_init(ab_change *c);
/* Add one item; old/new may be NULL (shown empty). Values are cut at 1,000 bytes. */
void ab_change_add(ab_change *c, const char *field, const char *old, size_t oldlen, const char *now,
                   size_t nowlen);
/* The text so far ("" when empty); owned by c. */
const char *ab_change_text(const ab_change *c);
void ab_change_free(ab_change *c);

typedef struct ab_audit ab_audit;

/* Who did it, as the log records it: 0 / "" / "SYSTEM" for the system itself. */
typedef struct {
    uint32_t user_id;
    const char *email;
    const char *org;
    const char *ip; /* NULL or "" when unknown */
} ab_actor;

ab_audit *ab_audit_new(void);
void ab_audit_destroy(ab_audit **a);

/* Queue one row. Strings are copied. Returns 0 or -1 (out of memory). */
int ab_audit_add(ab_audit *a, const ab_actor *who, const char *model, uint64_t model_id,
                 const char *action, const char *title, const char *change);

/* Give every row queued from now on this description (logs.description; NULL: none).
 * adminctl --local sets it so that each of its rows says it was done on the host. The
 * text is copied. Returns 0 or -1 (out of memory). */
int ab_audit_set_description(ab_audit *a, const char *description);

/* Number of rows queued; rows past a mark can be dropped with ab_audit_rewind (used
 * when a command's savepoint is rolled back). */
size_t ab_audit_count(const ab_audit *a);
void ab_audit_rewind(ab_audit *a, size_t mark);

/* Rows queued so far whose acting organisation is from (exactly, as stored) take the name
 * to instead (org.merge: the batch's rows are inserted after its UPDATE of logs). Returns
 * how many changed, or -1 (out of memory; nothing half-changed in any row). */
long ab_audit_rename_org(ab_audit *a, const char *from, const char *to);

/* Insert every queued row (one round trip) and empty the queue. */
int ab_audit_flush(ab_audit *a, ab_db *db, ab_error *err);

#endif
