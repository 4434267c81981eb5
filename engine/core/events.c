/* events.c — see events.h. */
#include "core/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/envelope.h"

struct ab_events {
    ab_event *items;
    size_t n, cap;
};

ab_events *ab_events_new(void)
{
    return calloc(1, sizeof(ab_events));
}

void ab_events_rewind(ab_events *e, size_t mark)
{
    while (e->n > mark)
        msgpack_sbuffer_destroy(&e->items[--e->n].body);
}

void ab_events_clear(ab_events *e)
{
    ab_events_rewind(e, 0);
}

void ab_events_destroy(ab_events **ep)
{
    if (!ep || !*ep)
        return;
    ab_events_clear(*ep);
    free((*ep)->items);
    free(*ep);
    *ep = NULL;
}

size_t ab_events_count(const ab_events *e)
{
    return e->n;
}

size_t ab_events_mark(const ab_events *e)
{
    return e->n;
}

const ab_event *ab_events_at(const ab_events *e, size_t i)
{
    return i < e->n ? &e->items[i] : NULL;
}

int ab_events_push(ab_events *e, const char *topic, int64_t ts_ms,
                   void (*pack_data)(msgpack_packer *pk, const void *ctx), const void *ctx)
{
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        ab_event *items = realloc(e->items, cap * sizeof *items);
        if (!items)
            return -1;
        e->items = items;
        e->cap = cap;
    }
    ab_event *ev = &e->items[e->n++];
    snprintf(ev->topic, sizeof ev->topic, "%s", topic);
    msgpack_sbuffer_init(&ev->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &ev->body, msgpack_sbuffer_write);
    ab_event_begin(&pk, ev->topic, ts_ms);
    pack_data(&pk, ctx);
    return 0;
}

typedef struct {
    const char *model, *action;
    uint64_t id;
    uint32_t user_id;
} s_audit_data;

static void s_pack_audit(msgpack_packer *pk, const void *ctx)
{
    const s_audit_data *d = ctx;
    msgpack_pack_map(pk, 4);
    ab_pack_cstr(pk, "model");
    ab_pack_cstr(pk, d->model);
    ab_pack_cstr(pk, "id");
    msgpack_pack_uint64(pk, d->id);
    ab_pack_cstr(pk, "action");
    ab_pack_cstr(pk, d->action);
    ab_pack_cstr(pk, "user_id");
    msgpack_pack_uint32(pk, d->user_id);
}

int ab_events_audit(ab_events *e, int64_t ts_ms, const char *model, uint64_t id, const char *action,
                    uint32_t user_id)
{
    char topic[160];
    snprintf(topic, sizeof topic, "audit.%s.%s", model, action);
    s_audit_data d = {model, action, id, user_id};
    return ab_events_push(e, topic, ts_ms, s_pack_audit, &d);
}
