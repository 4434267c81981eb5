/* events.h — events produced by a batch, published only after its COMMIT. */
#ifndef AB_EVENTS_H
#define AB_EVENTS_H

#include <msgpack.h>
#include <stddef.h>

typedef struct ab_events ab_events;

typedef struct {
    char topic[160];
    msgpack_sbuffer body; /* the whole event map */
} ab_event;

ab_events *ab_events_new(void);
void ab_events_destroy(ab_events **e);

/* Queue an audit notification: topic audit.<model>.<action>, data {model, id, action,
 * user_id}. The raw stream carries ids and states only, never the detail. */
int ab_events_audit(ab_events *e, int64_t ts_ms, const char *model, uint64_t id, const char *action,
                    uint32_t user_id);

/* Queue an event with topic; pack_data packs exactly one value (the data) from ctx. */
int ab_events_push(ab_events *e, const char *topic, int64_t ts_ms,
                   void (*pack_data)(msgpack_packer *pk, const void *ctx), const void *ctx);

size_t ab_events_count(const ab_events *e);
const ab_event *ab_events_at(const ab_events *e, size_t i);
size_t ab_events_mark(const ab_events *e);
void ab_events_rewind(ab_events *e, size_t mark);
void ab_events_clear(ab_events *e);

#endif
