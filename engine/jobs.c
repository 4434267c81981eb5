/* jobs.c — queues, states and enqueueing (see jobs.h). */
#include "jobs.h"

#include "envelope.h"

#include <stdio.h>
#include <string.h>

static const char *const s_queues[] = {
#define AB_X_QUEUE(q) #q,
    AB_QUEUES(AB_X_QUEUE)
#undef AB_X_QUEUE
};

bool ab_queue_valid(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof s_queues / sizeof s_queues[0]; i++)
        if (strlen(s_queues[i]) == len && memcmp(s_queues[i], name, len) == 0)
            return true;
    return false;
}

static const char *const s_states[] = {"queued", "running", "retrying",
                                       "done",   "failed",  "cancelled"};
static const int s_misp_status[] = {1, 2, 1, 4, 3, 3};

const char *ab_job_state_name(ab_job_state s)
{
    return (unsigned)s <= AB_JOB_CANCELLED ? s_states[s] : "unknown";
}

int ab_job_misp_status(ab_job_state s)
{
    return (unsigned)s <= AB_JOB_CANCELLED ? s_misp_status[s] : 0;
}

void ab_job_wake_topic(const char *queue, char *out, size_t len)
{
    snprintf(out, len, "wake.%s", queue);
}

void ab_job_topic(uint64_t id, const char *event, char *out, size_t len)
{
    snprintf(out, len, "job.%llu.%s", (unsigned long long)id, event);
}

typedef struct {
    uint64_t id;
    const char *queue, *type, *state;
} s_job_event;

static void s_pack_job_event(msgpack_packer *pk, const void *ctx)
{
    const s_job_event *e = ctx;
    msgpack_pack_map(pk, 4);
    ab_pack_cstr(pk, "id");
    msgpack_pack_uint64(pk, e->id);
    ab_pack_cstr(pk, "queue");
    ab_pack_cstr(pk, e->queue);
    ab_pack_cstr(pk, "type");
    ab_pack_cstr(pk, e->type);
    ab_pack_cstr(pk, "state");
    ab_pack_cstr(pk, e->state);
}

static void s_pack_queue(msgpack_packer *pk, const void *ctx)
{
    msgpack_pack_map(pk, 1);
    ab_pack_cstr(pk, "queue");
    ab_pack_cstr(pk, ctx);
}

int ab_job_events_queue(ab_events *ev, int64_t ts_ms, uint64_t id, const char *event,
                        const char *queue, const char *type, const char *state, bool wake)
{
    char topic[96];
    s_job_event e = {id, queue, type, state};
    ab_job_topic(id, event, topic, sizeof topic);
    if (ab_events_push(ev, topic, ts_ms, s_pack_job_event, &e) < 0)
        return -1;
    if (!wake)
        return 0;
    ab_job_wake_topic(queue, topic, sizeof topic);
    return ab_events_push(ev, topic, ts_ms, s_pack_queue, queue);
}

static int s_find_unique(ab_db *db, const char *key, uint64_t *id, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, key);
    int64_t found = 0;
    if (ab_db_scalar(db, "SELECT id FROM jobs WHERE unique_key = ?", &p, &found, err) < 0)
        return -1;
    *id = (uint64_t)found;
    return 0;
}

int ab_job_enqueue(ab_db *db, const ab_job_spec *s, int64_t now_ms, uint64_t *id, bool *existed,
                   ab_error *err)
{
    *existed = false;
    if (s->unique_key) {
        if (s_find_unique(db, s->unique_key, id, err) < 0)
            return -1;
        if (*id) {
            *existed = true;
            return 0;
        }
    }
    int64_t run_at = s->run_at_ms > 0 ? s->run_at_ms : now_ms;
    int max_attempts = s->max_attempts > 0 ? s->max_attempts : s->type->max_attempts;
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, s->type->queue);
    ab_param_cstr(&p, s->type->type);
    ab_param_cstr(&p, s->input);
    ab_param_blob(&p, s->payload, s->payload_len);
    ab_param_int(&p, s->priority);
    ab_param_int(&p, run_at);
    ab_param_int(&p, max_attempts);
    ab_param_int(&p, s->org_id);
    ab_param_int(&p, s->created_by);
    ab_param_cstr(&p, s->unique_key);
    ab_param_int(&p, now_ms);
    ab_param_int(&p, now_ms);
    if (ab_db_run(db,
                  "INSERT INTO jobs (worker, job_type, job_input, payload, priority, run_at, "
                  "max_attempts, org_id, created_by, unique_key, state, status, message, "
                  "date_created, date_modified) VALUES (?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000), "
                  "?, ?, ?, ?, 'queued', 1, 'Queued', FROM_UNIXTIME(? / 1000), "
                  "FROM_UNIXTIME(? / 1000))",
                  &p, id, NULL, err) < 0) {
        if (s->unique_key && ab_db_errno(db) == AB_ER_DUP_ENTRY) /* enqueued concurrently */
            return ab_fail(err, AB_E_UNAVAILABLE, NULL, "job enqueued concurrently; retrying");
        return -1;
    }
    ab_params_init(&p);
    ab_param_cstr(&p, s->type->queue);
    ab_param_int(&p, -s->priority);
    ab_param_int(&p, run_at);
    ab_param_int(&p, (int64_t)*id);
    return ab_db_run(db,
                     "INSERT INTO job_ready (worker, prank, run_at, job_id) "
                     "VALUES (?, ?, FROM_UNIXTIME(? / 1000), ?)",
                     &p, NULL, NULL, err);
}
