/* local.h — break-glass: run one catalog command on the host straight against the database
 * (adminctl --local), without a key and without the engine.
 *
 * Whoever can read $ADMINBUS_HOME's adminbus.conf (the database's credentials) and
 * secrets/server.key (mode 0600) can already change everything in the database; this
 * module lets them do it through the same catalog validation, authorisation hook and
 * handler as the engine, inside one transaction, with the audit rows saying who did it
 * and that it was done locally. The caller is a site administrator named after the Unix
 * account (local:<user>@<host>, user id 0, the host organisation), via AB_VIA_LOCAL.
 *
 * Differences from the bus, by design: no command id is recorded (nobody can re-send one:
 * the result is shown by the process that ran it), and events are handed to the caller
 * to publish after COMMIT, if it can reach a broker. */
#ifndef AB_LOCAL_H
#define AB_LOCAL_H

#include <msgpack.h>
#include <stddef.h>

#include "wire/config.h"
#include "core/events.h"

typedef struct ab_local ab_local;

/* Why ab_local_open failed, for the caller's exit code. */
typedef enum {
    AB_LOCAL_SETUP = 2,       /* no configuration, no database DSN, no server secret, or
                                 a schema this build does not match: fix the home */
    AB_LOCAL_UNREACHABLE = 3, /* the database did not answer */
} ab_local_failure;

typedef struct {
    const char *home;  /* $ADMINBUS_HOME: adminbus.conf and secrets/server.key live here */
    const char *actor; /* who, as the audit log names them: "local:root@host" */
    /* Diagnostics' look at the event bus (ab_engine_info.bus_probe); called with the loaded
     * configuration (const ab_config *) as bus_ctx. NULL: reported as not checked. */
    int (*bus_probe)(const void *bus_ctx, char *found, size_t len);
} ab_local_options;

/* Load home's configuration and server secret, connect to its database and check that its
 * schema is the one this build knows. Returns the session (caller owns it, free with
 * ab_local_close), or NULL with a message saying what to do in err and *why set. Nothing
 * is written. */
ab_local *ab_local_open(const ab_local_options *opt, char *err, size_t errlen,
                        ab_local_failure *why);

/* The configuration loaded (the event endpoints, for publishing). */
const ab_config *ab_local_config(const ab_local *l);

/* Run command type with args (a packed msgpack map, len bytes; NULL or 0 bytes = no
 * arguments) as the local site administrator: catalog validation, ab_authorise, the
 * handler, audit rows, COMMIT — or ROLLBACK on any error. reply receives a whole v1 reply
 * map ({v, id, ok, result} or {v, id, ok: false, error}); id is a fresh UUID unless given.
 * Returns 0 when the command succeeded, 1 when it was refused (reply holds the error). */
int ab_local_run(ab_local *l, const char *type, const char *args, size_t len, const char *id,
                 msgpack_sbuffer *reply);

/* The events of the last successful ab_local_run (already committed), to publish. */
const ab_events *ab_local_events(const ab_local *l);

/* Does key (an authkey, NUL-ended) authenticate now? As the engine would check it from the
 * host ("" as the address). Returns 1 with *user_id (may be NULL) its user, 0 when it does
 * not (unknown, revoked, expired, disabled user …), -1 when the database could not say. */
int ab_local_key_works(ab_local *l, const char *key, uint32_t *user_id);

/* Close the connection and free; sets *l to NULL; safe on NULL. */
void ab_local_close(ab_local **l);

#endif
