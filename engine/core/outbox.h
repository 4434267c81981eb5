/* outbox.h — events that must not be lost (design.md, "Dual writes"; issue 7): written to
 * the event_outbox table in the transaction of the change they describe, relayed to the
 * bus after COMMIT, deleted once the bus has acknowledged them. At least once: a relay cut
 * short (crash, bus down) leaves the rows for the next one, which may send some again. */
#ifndef AB_OUTBOX_H
#define AB_OUTBOX_H

#include "core/db.h"
#include "core/events.h"
#include "wire/transport.h"

/* Write events[0..n) (each its topic and whole body) in one bulk insert, inside the
 * caller's transaction. Returns 0 or -1 with err. */
int ab_outbox_write(ab_db *db, const ab_event *const *events, size_t n, ab_error *err);

/* Relay up to limit waiting rows (oldest first, skipping rows another engine is relaying)
 * to t, wait for t to acknowledge them, delete them and commit; on a bus failure roll back
 * so they stay. Runs its own transaction: call it outside the batch's. Returns the number
 * relayed, or -1 with err (database fault, or the bus did not acknowledge). */
int ab_outbox_relay(ab_db *db, ab_transport *t, int limit, ab_error *err);

#endif
