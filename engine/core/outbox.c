/* outbox.c — see outbox.h. */
#include "core/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How long a relay waits for the bus to acknowledge what it sent. */
#define S_FLUSH_MS 1000

int ab_outbox_write(ab_db *db, const ab_event *const *events, size_t n, ab_error *err)
{
    static const ab_col_type types[2] = {AB_COL_STR, AB_COL_BLOB};
    if (n == 0)
        return 0;
    const char **topics = malloc(n * sizeof *topics), **bodies = malloc(n * sizeof *bodies);
    unsigned long *tlens = malloc(n * sizeof *tlens), *blens = malloc(n * sizeof *blens);
    int rc;
    if (!topics || !bodies || !tlens || !blens) {
        rc = ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            topics[i] = events[i]->topic;
            tlens[i] = (unsigned long)strlen(events[i]->topic);
            bodies[i] = events[i]->body.data;
            blens[i] = (unsigned long)events[i]->body.size;
        }
        void *cols[2] = {topics, bodies};
        unsigned long *lens[2] = {tlens, blens};
        rc = ab_db_bulk(db,
                        "INSERT INTO event_outbox (topic, body, created) "
                        "VALUES (?, ?, UTC_TIMESTAMP(3))",
                        2, types, cols, lens, (unsigned)n, err);
    }
    free(topics);
    free(bodies);
    free(tlens);
    free(blens);
    return rc;
}

/* Publish the claimed rows; their ids go to ids[] (*n of them). */
static int s_publish_rows(ab_db *db, ab_transport *t, int limit, long long *ids, unsigned *n,
                          ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, limit);
    ab_rows rows;
    if (ab_db_query(db,
                    "SELECT id, topic, body FROM event_outbox ORDER BY id LIMIT ? "
                    "FOR UPDATE SKIP LOCKED",
                    &p, &rows, err) < 0)
        return -1;
    int rc;
    while ((rc = ab_rows_next(&rows)) == 1) {
        size_t tlen, blen;
        const char *topic = ab_rows_str(&rows, 1, &tlen);
        const char *body = ab_rows_str(&rows, 2, &blen);
        char name[sizeof((ab_event *)0)->topic];
        snprintf(name, sizeof name, "%.*s", (int)tlen, topic);
        ids[(*n)++] = ab_rows_int(&rows, 0);
        if (t->ops->publish(t, name, body, blen) < 0) {
            rc = -2;
            break;
        }
    }
    ab_rows_close(&rows);
    if (rc == -2)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL, "the bus refused an event; kept in the outbox");
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : 0;
}

static int s_delete_rows(ab_db *db, long long *ids, unsigned n, ab_error *err)
{
    static const ab_col_type types[1] = {AB_COL_INT};
    void *cols[1] = {ids};
    unsigned long *lens[1] = {NULL};
    return ab_db_bulk(db, "DELETE FROM event_outbox WHERE id = ?", 1, types, cols, lens, n, err);
}

int ab_outbox_relay(ab_db *db, ab_transport *t, int limit, ab_error *err)
{
    long long *ids = malloc((size_t)(limit > 0 ? limit : 1) * sizeof *ids);
    unsigned n = 0;
    if (!ids)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    int rc = ab_db_exec(db, "START TRANSACTION", err);
    if (rc == 0)
        rc = s_publish_rows(db, t, limit, ids, &n, err);
    /* Delete only what the bus has acknowledged: a row deleted first and lost on the way
     * would be an event missed. */
    if (rc == 0 && n > 0 && t->ops->flush && t->ops->flush(t, S_FLUSH_MS) < 0)
        rc = ab_fail(err, AB_E_UNAVAILABLE, NULL,
                     "the bus did not acknowledge %u event(s); kept in the outbox", n);
    if (rc == 0 && n > 0)
        rc = s_delete_rows(db, ids, n, err);
    if (rc == 0)
        rc = ab_db_exec(db, "COMMIT", err);
    if (rc < 0 && !ab_db_connection_lost(db)) {
        ab_error ignored;
        ab_db_exec(db, "ROLLBACK", &ignored);
    }
    free(ids);
    return rc < 0 ? -1 : (int)n;
}
