/* handlers.h — every command handler (see engine.h for the contract), and what handlers of
 * several files share. */
#ifndef AB_HANDLERS_H
#define AB_HANDLERS_H

#include "core/engine.h"
#include "wire/envelope.h"
#include "jobs/jobs.h"

/* Every command handler (engine.h says what a handler does): one prototype per row of
 * schemas/commands.def, whose handler column names it; each is defined in the file of its
 * domain (commands/<domain>.c; diagnostics.run in health/diagnostics.c). */
#define AB_COMMAND(id, type, cli, handler, ...)                                                    \
    int handler(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
#include "commands.def"
#undef AB_COMMAND

/* Enqueue one job of type t for the caller's organisation and user, with payload (the job's
 * msgpack arguments; destroyed here, whatever happens) and input (MISP's job_input text).
 * Returns 0 with *id, or -1 with *err. Shared by the commands that enqueue (commands/job.c). */
int ab_job_enqueue_for(ab_ctx *ctx, const ab_job_type *t, msgpack_sbuffer *payload,
                       const char *input, uint64_t *id, ab_error *err);
/* For a command that enqueued job id of type t (backup, mail): queue its audit row (MISP's
 * "Job (id): type" with job_type, worker and job_input, then extra_change when not NULL)
 * and its queued event, and pack the start of the reply: a map of 4 + extra entries, id,
 * queue, type and state; the caller packs its extra entries. */
int ab_job_queued_reply(ab_ctx *ctx, msgpack_packer *pk, uint64_t id, const ab_job_type *t,
                        const char *input, const char *extra_change, uint32_t extra, ab_error *err);

#endif
