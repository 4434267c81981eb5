/* thing.c — handlers for check_handlers.py's own test (never compiled): one with its row,
 * one without, one static that a row names, and a static helper with the same signature. */
#include "core/handlers.h"

int ab_thing_add(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    msgpack_pack_nil(pk);
    return 0;
}

/* EXPECT: ab_thing_stray (a handler that no row names: it would never be dispatched) */
int ab_thing_stray(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    msgpack_pack_nil(pk);
    return 0;
}

static int ab_thing_hidden(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    msgpack_pack_nil(pk);
    return 0;
}

/* A file's own helper with the handler's signature: not a handler. */
static int s_helper(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    return ab_thing_hidden(ctx, pk, err);
}
