/* fuzz_envelope.c — libFuzzer harness for the envelope codec (broker/wire/envelope.c).
 *
 * Any input must give either a decoded command or an error naming a field, never a crash,
 * a leak or undefined behaviour. A decoded command is then used the way the engine uses
 * it: its args bytes are read in full and an ok reply echoing its id is packed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/envelope.h"

/* Like assert, but also in builds with NDEBUG: a broken invariant is a finding. */
#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check_failure(const ab_command_msg *cmd, const ab_error *err)
{
    /* A refused command always says why and where, and leaves nothing to release. */
    S_CHECK(err->code != AB_OK);
    S_CHECK(err->field[0] != '\0');
    S_CHECK(err->message[0] != '\0');
    S_CHECK(cmd->args == NULL && cmd->args_raw == NULL && cmd->unpacked.zone == NULL);
    S_CHECK(cmd->id[0] == '\0' || ab_uuid_valid(cmd->id, strlen(cmd->id)));
}

static void s_use(const ab_command_msg *cmd)
{
    S_CHECK(ab_uuid_valid(cmd->id, strlen(cmd->id)));
    S_CHECK(cmd->args && cmd->args->type == MSGPACK_OBJECT_MAP);
    S_CHECK(cmd->args_raw && cmd->args_raw_len > 0);
    /* The args bytes must be a whole msgpack map on their own (the digest's input). */
    msgpack_unpacked args;
    msgpack_unpacked_init(&args);
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack_next(&args, cmd->args_raw, cmd->args_raw_len, &off);
    S_CHECK(rc == MSGPACK_UNPACK_SUCCESS && off == cmd->args_raw_len);
    S_CHECK(args.data.type == MSGPACK_OBJECT_MAP);
    msgpack_unpacked_destroy(&args);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ab_reply_begin_ok(&pk, cmd->id);
    msgpack_pack_object(&pk, *cmd->args);
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ab_command_msg cmd;
    ab_error err;
    if (ab_command_decode(data, size, &cmd, &err) < 0) {
        s_check_failure(&cmd, &err);
        return 0;
    }
    s_use(&cmd);
    ab_command_msg_release(&cmd);
    ab_command_msg_release(&cmd); /* safe twice */
    return 0;
}
