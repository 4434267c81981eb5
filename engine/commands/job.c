/* job.c — the commands that manage jobs and queues (issue 3): enqueue, list, view,
 * retry, cancel, purge; worker list; queue clear, stats. The other worker commands are in
 * commands/worker.c; the workers themselves are jobs/worker.c; what all share is
 * jobs/jobs.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/handlers.h"
#include "jobs/jobcounts.h"
#include "jobs/jobs.h"
#include "jobs/workerctl.h"

/* A column of a result row and how to pack it. */
typedef enum { K_INT, K_STR, K_BOOL } s_kind;
typedef struct {
    const char *name;
    s_kind kind;
} s_col;

#define JOB_SQL                                                                                    \
    "SELECT id, worker, job_type, job_input, state, status, progress, message, retries, "          \
    "attempts, max_attempts, priority, " AB_SQL_MS(                                                \
        "run_at") ", org_id, process_id, last_error, "                                             \
                  "cancel_requested, created_by, " AB_SQL_MS("date_created") ", " AB_SQL_MS(       \
                      "date_modified") ", " AB_SQL_MS("date_finished") " FROM jobs"

static const s_col s_job_cols[] = {
    {"id", K_INT},
    {"queue", K_STR},
    {"type", K_STR},
    {"input", K_STR},
    {"state", K_STR},
    {"status", K_INT},
    {"progress", K_INT},
    {"message", K_STR},
    {"retries", K_INT},
    {"attempts", K_INT},
    {"max_attempts", K_INT},
    {"priority", K_INT},
    {"run_at", K_INT},
    {"org_id", K_INT},
    {"process_id", K_STR},
    {"last_error", K_STR},
    {"cancel_requested", K_BOOL},
    {"created_by", K_INT},
    {"date_created", K_INT},
    {"date_modified", K_INT},
    {"date_finished", K_INT},
};

#define WORKER_SQL                                                                                 \
    "SELECT id, queue, host, pid, status, desired, current_job, done_count, "                      \
    "failed_count, " AB_SQL_MS("started") ", " AB_SQL_MS(                                          \
        "last_heartbeat") ", "                                                                     \
                          "(" AB_SQL_WORKER_ALIVE "), supervisor FROM workers"

static const s_col s_worker_cols[] = {
    {"id", K_STR},           {"queue", K_STR},   {"host", K_STR},           {"pid", K_INT},
    {"status", K_STR},       {"desired", K_STR}, {"current_job", K_INT},    {"done_count", K_INT},
    {"failed_count", K_INT}, {"started", K_INT}, {"last_heartbeat", K_INT}, {"alive", K_BOOL},
    {"supervisor", K_STR},
};

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

static void s_pack_row(msgpack_packer *pk, const ab_rows *r, const s_col *cols, size_t n)
{
    msgpack_pack_map(pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        const char *v = ab_rows_str(r, (int)i, &len);
        ab_pack_cstr(pk, cols[i].name);
        if (!v)
            msgpack_pack_nil(pk);
        else if (cols[i].kind == K_INT)
            msgpack_pack_int64(pk, strtoll(v, NULL, 10));
        else if (cols[i].kind == K_BOOL && strtoll(v, NULL, 10))
            msgpack_pack_true(pk);
        else if (cols[i].kind == K_BOOL)
            msgpack_pack_false(pk);
        else
            ab_pack_str(pk, v, len);
    }
}

typedef struct {
    const s_col *cols;
    size_t n;
} s_cols;

static void s_pack_spec(msgpack_packer *pk, const ab_rows *r, const void *arg)
{
    const s_cols *c = arg;
    s_pack_row(pk, r, c->cols, c->n);
}

/* Binds the values of a list's filters, in the order its WHERE clause names them. */
typedef void (*s_binder)(const ab_ctx *ctx, ab_params *p);

/* Pack {items, total, page, limit}: select is "SELECT … FROM t", where the filters'
 * clause (fixed fragments only), order the ORDER BY. */
static int s_pack_page(ab_ctx *ctx, msgpack_packer *pk, const char *select, const char *table,
                       const char *where, const char *order, s_binder bind, const s_col *cols,
                       size_t ncols, ab_error *err)
{
    int64_t limit = ab_arg_int(ctx, "limit", 100), page = ab_arg_int(ctx, "page", 1), total;
    char sql[1500];
    ab_params p;
    ab_params_init(&p);
    bind(ctx, &p);
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s%s", table, where);
    if (ab_db_scalar(ctx->db, sql, &p, &total, err) < 0)
        return -1;
    ab_params_init(&p);
    bind(ctx, &p);
    ab_param_int(&p, limit);
    ab_param_int(&p, (page - 1) * limit);
    snprintf(sql, sizeof sql, "%s%s ORDER BY %s LIMIT ? OFFSET ?", select, where, order);
    ab_rows rows;
    if (ab_db_query(ctx->db, sql, &p, &rows, err) < 0)
        return -1;
    s_cols spec = {cols, ncols};
    ab_pack_page(pk, &rows, s_pack_spec, &spec, total, page, limit);
    return 0;
}

static int s_pack_job(ab_ctx *ctx, msgpack_packer *pk, uint64_t id, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)id);
    ab_rows rows;
    if (ab_db_query(ctx->db, JOB_SQL " WHERE id = ?", &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        s_pack_row(pk, &rows, s_job_cols, NCOLS(s_job_cols));
    ab_rows_close(&rows);
    if (rc == 0)
        return ab_fail(err, AB_E_NOT_FOUND, "job", "no job has id %llu", (unsigned long long)id);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : 0;
}

/* --- events ----------------------------------------------------------------------------- */

/* job.<id>.<event>, and for a job that may run now a wake-up for its queue's workers. */
static int s_job_events(ab_ctx *ctx, uint64_t id, const char *event, const char *queue,
                        const char *type, const char *state, bool wake)
{
    return ab_job_events_queue(ctx->events, ctx->now_ms, id, event, queue, type, state, wake);
}

static int s_audit_job(ab_ctx *ctx, uint64_t id, const char *action, const char *type,
                       const char *change)
{
    char title[96];
    snprintf(title, sizeof title, "Job (%llu): %s", (unsigned long long)id, type);
    return ab_ctx_audit(ctx, "Job", id, action, title, change);
}

int ab_job_enqueue_for(ab_ctx *ctx, const ab_job_type *t, msgpack_sbuffer *payload,
                       const char *input, uint64_t *id, ab_error *err)
{
    ab_job_spec spec = {.type = t,
                        .payload = payload->data,
                        .payload_len = payload->size,
                        .input = input,
                        .org_id = ctx->who->org_id,
                        .created_by = ctx->who->user_id};
    bool existed = false;
    *id = 0;
    int rc = ab_job_enqueue(ctx->db, &spec, ctx->now_ms, id, &existed, err);
    msgpack_sbuffer_destroy(payload);
    return rc;
}

int ab_job_queued_reply(ab_ctx *ctx, msgpack_packer *pk, uint64_t id, const ab_job_type *t,
                        const char *input, const char *extra_change, uint32_t extra, ab_error *err)
{
    char change[1000];
    snprintf(change, sizeof change,
             "job_type () => (%s), worker () => (%s), job_input () => (%s)%s%s", t->type, t->queue,
             input, extra_change ? ", " : "", extra_change ? extra_change : "");
    if (s_audit_job(ctx, id, "add", t->type, change) < 0 ||
        s_job_events(ctx, id, "queued", t->queue, t->type, "queued", true) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, 4 + extra);
    ab_pack_kv_int(pk, "id", (int64_t)id);
    ab_pack_kv_cstr(pk, "queue", t->queue);
    ab_pack_kv_cstr(pk, "type", t->type);
    ab_pack_kv_cstr(pk, "state", "queued");
    return 0;
}

/* --- job.enqueue ------------------------------------------------------------------------- */

int ab_job_enqueue_cmd(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    const msgpack_object *args = NULL;
    const ab_job_type *t = ab_job_type_of(ctx->args, &args, "", err);
    if (!t)
        return -1;
    msgpack_sbuffer payload;
    msgpack_sbuffer_init(&payload);
    msgpack_packer ppk;
    msgpack_packer_init(&ppk, &payload, msgpack_sbuffer_write);
    if (args)
        msgpack_pack_object(&ppk, *args);
    else
        msgpack_pack_map(&ppk, 0);
    char input[512], key[AB_JOB_KEY_SIZE] = "";
    ab_job_summarise(args, input, sizeof input);
    size_t klen = 0;
    const char *k = ab_arg_str(ctx, "unique_key", &klen);
    if (k)
        snprintf(key, sizeof key, "%.*s", (int)klen, k);
    ab_job_spec spec = {t,
                        payload.data,
                        payload.size,
                        input,
                        (int)ab_arg_int(ctx, "priority", 0),
                        ab_arg_int(ctx, "run_at", 0),
                        (int)ab_arg_int(ctx, "max_attempts", 0),
                        ctx->who->org_id,
                        ctx->who->user_id,
                        k ? key : NULL};
    uint64_t id = 0;
    bool existed = false;
    int rc = ab_job_enqueue(ctx->db, &spec, ctx->now_ms, &id, &existed, err);
    msgpack_sbuffer_destroy(&payload);
    if (rc < 0)
        return -1;
    int handed = 0; /* 1: given straight to an idle worker (no claim, no wake-up) */
    char worker[100] = "";
    if (!existed) {
        char change[700];
        snprintf(change, sizeof change,
                 "job_type () => (%s), worker () => (%s), job_input () => (%s)", t->type, t->queue,
                 input);
        bool now = spec.run_at_ms <= ctx->now_ms;
        if (now && ctx->engine->job_lease_ms > 0)
            handed = ab_job_dispatch(ctx->db, id, t->queue, ctx->engine->job_lease_ms, worker,
                                     sizeof worker, err);
        if (handed < 0)
            return -1;
        if (s_audit_job(ctx, id, "add", t->type, change) < 0 ||
            s_job_events(ctx, id, "queued", t->queue, t->type, handed ? "running" : "queued",
                         now && !handed) < 0 ||
            (handed && ab_job_assign_notice(ctx->events, ctx->now_ms, worker, id) < 0))
            return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    }
    ab_job_head h = {.priority = 0};
    if (existed && ab_job_head_load(ctx->db, id, false, &h, err) < 0)
        return -1;
    msgpack_pack_map(pk, 5);
    ab_pack_kv_int(pk, "id", (int64_t)id);
    ab_pack_kv_cstr(pk, "queue", existed ? h.queue : t->queue);
    ab_pack_kv_cstr(pk, "type", existed ? h.type : t->type);
    ab_pack_kv_cstr(pk, "state", existed ? h.state : handed ? "running" : "queued");
    ab_pack_kv_bool(pk, "existed", existed);
    return 0;
}

/* --- job.enqueue_many -------------------------------------------------------------------- */

static int64_t s_map_int(const msgpack_object *map, const char *name, int64_t def)
{
    const msgpack_object *v = ab_map_get(map, name);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (int64_t)v->via.u64;
    if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return v->via.i64;
    return def;
}

/* Everything one entry names, checked; its payload and summary kept for the inserts. */
typedef struct {
    ab_job_spec spec;
    size_t payload_off;
    char input[256], key[AB_JOB_KEY_SIZE];
    bool existed;
} s_entry;

static int s_entry_check(const msgpack_object *map, uint32_t i, s_entry *e, msgpack_packer *ppk,
                         msgpack_sbuffer *payloads, ab_ctx *ctx, ab_error *err)
{
    static const ab_command *one;
    if (!one)
        one = ab_catalog_find("job.enqueue", strlen("job.enqueue"));
    char prefix[24];
    snprintf(prefix, sizeof prefix, "jobs[%u].", i);
    if (ab_catalog_validate(one, map, err) < 0) {
        char inner[sizeof err->field];
        snprintf(inner, sizeof inner, "%s", err->field);
        snprintf(err->field, sizeof err->field, "%s%.32s", prefix, inner);
        return -1;
    }
    const msgpack_object *args = NULL;
    const ab_job_type *t = ab_job_type_of(map, &args, prefix, err);
    if (!t)
        return -1;
    e->payload_off = payloads->size;
    if (args)
        msgpack_pack_object(ppk, *args);
    else
        msgpack_pack_map(ppk, 0);
    ab_job_summarise(args, e->input, sizeof e->input);
    const msgpack_object *k = ab_map_get(map, "unique_key");
    if (k)
        snprintf(e->key, sizeof e->key, "%.*s", (int)k->via.str.size, k->via.str.ptr);
    e->spec = (ab_job_spec){t,
                            NULL,
                            payloads->size - e->payload_off,
                            e->input,
                            (int)s_map_int(map, "priority", 0),
                            s_map_int(map, "run_at", 0),
                            (int)s_map_int(map, "max_attempts", 0),
                            ctx->who->org_id,
                            ctx->who->user_id,
                            k ? e->key : NULL};
    return 0;
}

/* Enqueue the checked entries: those with a unique key one by one (they may find a job),
 * the rest together. ids[i] for entry i. */
static int s_entries_enqueue(ab_ctx *ctx, s_entry *e, uint32_t n, uint64_t *ids, ab_error *err)
{
    ab_job_spec *plain = calloc(n, sizeof *plain);
    uint32_t *where = calloc(n, sizeof *where);
    uint64_t *got = calloc(n, sizeof *got);
    uint32_t np = 0;
    int rc = -1;
    if (!plain || !where || !got) {
        ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (e[i].spec.unique_key) {
            if (ab_job_enqueue(ctx->db, &e[i].spec, ctx->now_ms, &ids[i], &e[i].existed, err) < 0)
                goto out;
            continue;
        }
        where[np] = i;
        plain[np++] = e[i].spec;
    }
    if (np && ab_job_enqueue_batch(ctx->db, plain, np, ctx->now_ms, got, err) < 0)
        goto out;
    for (uint32_t k = 0; k < np; k++)
        ids[where[k]] = got[k];
    rc = 0;
out:
    free(plain);
    free(where);
    free(got);
    return rc;
}

/* "12-75, 80" for ascending ids (new jobs get ascending ids), cut with "…" to fit. */
static void s_id_ranges(const s_entry *e, uint32_t n, const uint64_t *ids, char *out, size_t len)
{
    size_t off = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < n && off + 24 < len; i++) {
        if (e[i].existed)
            continue;
        uint32_t j = i;
        while (j + 1 < n && !e[j + 1].existed && ids[j + 1] == ids[j] + 1)
            j++;
        off += (size_t)snprintf(out + off, len - off, j > i ? "%s%llu-%llu" : "%s%llu",
                                off ? ", " : "", (unsigned long long)ids[i],
                                (unsigned long long)ids[j]);
        i = j;
    }
    if (off + 24 >= len)
        snprintf(out + off, len - off, ", …");
}

/* One audit row for the command (a human reads one change, not a thousand): the new jobs'
 * ids and their types; one job.<id>.queued event per new job; one wake-up per queue that
 * got a job it may run now. */
static int s_entries_announce(ab_ctx *ctx, const s_entry *e, uint32_t n, const uint64_t *ids)
{
    static const char *const queues[] = {
#define AB_X_QUEUE(q) #q,
        AB_QUEUES(AB_X_QUEUE)
#undef AB_X_QUEUE
    };
    bool wake[sizeof queues / sizeof queues[0]] = {false};
    uint32_t queued = 0, first = n;
    char types[256] = "";
    for (uint32_t i = 0; i < n; i++) {
        const ab_job_type *t = e[i].spec.type;
        if (e[i].existed)
            continue;
        if (s_job_events(ctx, ids[i], "queued", t->queue, t->type, "queued", false) < 0)
            return -1;
        for (size_t q = 0; q < sizeof queues / sizeof queues[0]; q++)
            if (strcmp(queues[q], t->queue) == 0)
                wake[q] = wake[q] || e[i].spec.run_at_ms <= ctx->now_ms;
        if (!strstr(types, t->type) && strlen(types) + strlen(t->type) + 3 < sizeof types)
            snprintf(types + strlen(types), sizeof types - strlen(types), "%s%s",
                     types[0] ? ", " : "", t->type);
        first = first < n ? first : i;
        queued++;
    }
    for (size_t q = 0; q < sizeof queues / sizeof queues[0]; q++)
        if (wake[q] && ab_job_wake_queue(ctx->events, ctx->now_ms, queues[q]) < 0)
            return -1;
    if (queued == 0)
        return 0;
    char ranges[600], change[1000], title[96];
    s_id_ranges(e, n, ids, ranges, sizeof ranges);
    snprintf(change, sizeof change, "job_ids () => (%s), job_type () => (%s), count () => (%u)",
             ranges, types, queued);
    snprintf(title, sizeof title, "Jobs (%u): enqueued in one command", queued);
    return ab_ctx_audit(ctx, "Job", ids[first], "add", title, change);
}

static void s_pack_many(msgpack_packer *pk, const s_entry *e, uint32_t n, const uint64_t *ids)
{
    uint32_t queued = 0;
    for (uint32_t i = 0; i < n; i++)
        queued += !e[i].existed;
    msgpack_pack_map(pk, 4);
    ab_pack_kv_int(pk, "count", n);
    ab_pack_kv_int(pk, "queued", queued);
    ab_pack_cstr(pk, "ids");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint64(pk, ids[i]);
    ab_pack_cstr(pk, "existed");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        e[i].existed ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

int ab_job_enqueue_many(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    const msgpack_object *list = ab_map_get(ctx->args, "jobs"); /* checked: 1..1000 maps */
    uint32_t n = list->via.array.size;
    s_entry *e = calloc(n, sizeof *e);
    uint64_t *ids = calloc(n, sizeof *ids);
    msgpack_sbuffer payloads;
    msgpack_sbuffer_init(&payloads);
    msgpack_packer ppk;
    msgpack_packer_init(&ppk, &payloads, msgpack_sbuffer_write);
    int rc = -1;
    if (!e || !ids) {
        ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++)
        if (s_entry_check(&list->via.array.ptr[i], i, &e[i], &ppk, &payloads, ctx, err) < 0)
            goto out;
    for (uint32_t i = 0; i < n; i++) /* the buffer has stopped moving */
        e[i].spec.payload = payloads.data + e[i].payload_off;
    if (s_entries_enqueue(ctx, e, n, ids, err) < 0)
        goto out;
    if (s_entries_announce(ctx, e, n, ids) < 0) {
        ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        goto out;
    }
    s_pack_many(pk, e, n, ids);
    rc = 0;
out:
    msgpack_sbuffer_destroy(&payloads);
    free(e);
    free(ids);
    return rc;
}

/* --- job.list, job.view ----------------------------------------------------------------- */

/* MISP's status name (checked by the catalog) as its code: waiting 1 … completed 4. */
static int64_t s_misp_status(const ab_ctx *ctx)
{
    static const char *const names[] = {"waiting", "running", "failed", "completed"};
    size_t len = 0;
    const char *v = ab_arg_str(ctx, "status", &len);
    for (int i = 0; v && i < 4; i++)
        if (strlen(names[i]) == len && memcmp(names[i], v, len) == 0)
            return i + 1;
    return 0;
}

/* Binds in the order ab_job_list names them: queue, state, status, org (twice), type. */
static void s_bind_job_filters(const ab_ctx *ctx, ab_params *p)
{
    static const char *const names[] = {"queue", "state", "status", "org", "type"};
    for (size_t i = 0; i < 5; i++) {
        size_t len = 0;
        const char *v = ab_arg_str(ctx, names[i], &len);
        if (!v)
            continue;
        if (strcmp(names[i], "status") == 0) {
            ab_param_int(p, s_misp_status(ctx));
            continue;
        }
        ab_param_str(p, v, len);
        if (strcmp(names[i], "org") == 0)
            ab_param_str(p, v, len);
    }
}

int ab_job_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    char where[300] = " WHERE 1 = 1";
    if (ab_arg_has(ctx, "queue"))
        strcat(where, " AND worker = ?");
    if (ab_arg_has(ctx, "state"))
        strcat(where, " AND state = ?");
    if (ab_arg_has(ctx, "status"))
        strcat(where, " AND status = ?");
    if (ab_arg_has(ctx, "org"))
        strcat(where, " AND org_id IN (SELECT id FROM organisations WHERE name = ? OR "
                      "CAST(id AS CHAR) = ?)");
    if (ab_arg_has(ctx, "type"))
        strcat(where, " AND job_type = ?");
    return s_pack_page(ctx, pk, JOB_SQL, "jobs", where, "id DESC", s_bind_job_filters, s_job_cols,
                       NCOLS(s_job_cols), err);
}

int ab_job_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    return s_pack_job(ctx, pk, (uint64_t)ab_arg_int(ctx, "job", 0), err);
}

/* --- job.retry, job.cancel, job.purge ----------------------------------------------------- */

static int s_make_ready(ab_ctx *ctx, uint64_t id, const ab_job_head *h, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, h->queue);
    ab_param_int(&p, -h->priority);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, (int64_t)id);
    return ab_db_run(ctx->db,
                     "INSERT INTO job_ready (worker, prank, run_at, job_id) "
                     "VALUES (?, ?, FROM_UNIXTIME(? / 1000), ?)",
                     &p, NULL, NULL, err);
}

static int s_set_state(ab_ctx *ctx, uint64_t id, const char *sql, const char *message,
                       ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, message);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, (int64_t)id);
    return ab_db_run(ctx->db, sql, &p, NULL, NULL, err);
}

int ab_job_retry(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    uint64_t id = (uint64_t)ab_arg_int(ctx, "job", 0);
    ab_job_head h;
    if (ab_job_head_load(ctx->db, id, true, &h, err) < 0)
        return -1;
    if (strcmp(h.state, "failed") != 0 && strcmp(h.state, "cancelled") != 0)
        return ab_fail(err, AB_E_CONFLICT, "job",
                       "job %llu is %s: only failed or cancelled jobs can be retried",
                       (unsigned long long)id, h.state);
    char message[320], change[64];
    snprintf(message, sizeof message, "Queued again by %s", ctx->who->email);
    snprintf(change, sizeof change, "state (%s) => (queued)", h.state);
    if (s_set_state(ctx, id,
                    "UPDATE jobs SET state = 'queued', status = 1, attempts = 0, "
                    "cancel_requested = 0, lease_token = NULL, date_finished = NULL, message = ?, "
                    "run_at = FROM_UNIXTIME(? / 1000), date_modified = run_at WHERE id = ?",
                    message, err) < 0 ||
        s_make_ready(ctx, id, &h, err) < 0)
        return -1;
    if (s_audit_job(ctx, id, "edit", h.type, change) < 0 ||
        s_job_events(ctx, id, "queued", h.queue, h.type, "queued", true) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return s_pack_job(ctx, pk, id, err);
}

static int s_cancel_waiting(ab_ctx *ctx, uint64_t id, const ab_job_head *h, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)id);
    char message[320];
    snprintf(message, sizeof message, "Cancelled by %s", ctx->who->email);
    ab_job_counts counts; /* it ends without a run of its own: no run time */
    ab_job_counts_clear(&counts);
    ab_job_counts_add(&counts, h->queue, h->type, "cancelled", 1, -1);
    if (ab_db_run(ctx->db, "DELETE FROM job_ready WHERE job_id = ?", &p, NULL, NULL, err) < 0 ||
        ab_job_counts_write(ctx->db, AB_JOB_COUNTS_SHARED, &counts, err) < 0)
        return -1;
    return s_set_state(ctx, id,
                       "UPDATE jobs SET state = 'cancelled', status = 3, message = ?, "
                       "date_finished = FROM_UNIXTIME(? / 1000), date_modified = date_finished "
                       "WHERE id = ?",
                       message, err);
}

int ab_job_cancel(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    uint64_t id = (uint64_t)ab_arg_int(ctx, "job", 0);
    ab_job_head h;
    if (ab_job_head_load(ctx->db, id, true, &h, err) < 0)
        return -1;
    bool waiting = strcmp(h.state, "queued") == 0 || strcmp(h.state, "retrying") == 0;
    bool running = strcmp(h.state, "running") == 0;
    if (!waiting && !running)
        return ab_fail(err, AB_E_CONFLICT, "job", "job %llu has already ended (%s)",
                       (unsigned long long)id, h.state);
    char message[320], change[80];
    snprintf(message, sizeof message, "Cancel requested by %s", ctx->who->email);
    int rc = waiting ? s_cancel_waiting(ctx, id, &h, err)
                     : s_set_state(ctx, id,
                                   /* left to right: the first request's time is kept */
                                   "UPDATE jobs SET message = ?, date_modified = "
                                   "FROM_UNIXTIME(? / 1000), cancel_requested_at = "
                                   "IF(cancel_requested = 1, COALESCE(cancel_requested_at, "
                                   "date_modified), date_modified), cancel_requested = 1 "
                                   "WHERE id = ?",
                                   message, err);
    if (rc < 0)
        return -1;
    snprintf(change, sizeof change,
             waiting ? "state (%s) => (cancelled)" : "cancel_requested (0) => (1), state (%s)",
             h.state);
    if (s_audit_job(ctx, id, "edit", h.type, change) < 0 ||
        (waiting && s_job_events(ctx, id, "cancelled", h.queue, h.type, "cancelled", false) < 0))
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return s_pack_job(ctx, pk, id, err);
}

int ab_job_purge(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    bool all = ab_arg_bool(ctx, "all", false);
    uint64_t deleted = 0;
    if (ab_db_run(ctx->db,
                  all ? "DELETE FROM jobs WHERE state IN ('done', 'failed', 'cancelled') "
                        "LIMIT 100000"
                      : "DELETE FROM jobs WHERE state = 'done' LIMIT 100000",
                  NULL, NULL, &deleted, err) < 0)
        return -1;
    char title[96];
    snprintf(title, sizeof title, "Purged %llu %s jobs", (unsigned long long)deleted,
             all ? "finished" : "completed");
    if (ab_ctx_audit(ctx, "Job", 0, "delete", title, NULL) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, 1);
    ab_pack_kv_int(pk, "deleted", (int64_t)deleted);
    return 0;
}

/* --- workers ------------------------------------------------------------------------------ */

static void s_bind_worker_filters(const ab_ctx *ctx, ab_params *p)
{
    size_t len = 0;
    const char *q = ab_arg_str(ctx, "queue", &len);
    if (q)
        ab_param_str(p, q, len);
}

int ab_worker_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    return s_pack_page(ctx, pk, WORKER_SQL, "workers",
                       ab_arg_has(ctx, "queue") ? " WHERE queue = ?" : "", "queue, id",
                       s_bind_worker_filters, s_worker_cols, NCOLS(s_worker_cols), err);
}

/* --- queue.clear ---------------------------------------------------------------------- */

static void s_pack_cleared(msgpack_packer *pk, const void *ctx)
{
    const int64_t *n = ctx;
    msgpack_pack_map(pk, 1);
    ab_pack_kv_int(pk, "cleared", *n);
}

/* The types of the queue's waiting jobs (at most AB_JOB_COUNTS_MAX). Returns how many. */
static int s_waiting_types(ab_ctx *ctx, const char *q, char types[][33], ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, q);
    ab_param_int(&p, AB_JOB_COUNTS_MAX);
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    "SELECT DISTINCT job_type FROM jobs WHERE worker = ? AND state IN "
                    "('queued', 'retrying') LIMIT ?",
                    &p, &rows, err) < 0)
        return -1;
    int n = 0, rc = 0;
    while (n < AB_JOB_COUNTS_MAX && (rc = ab_rows_next(&rows)) == 1)
        snprintf(types[n++], 33, "%s", ab_rows_str(&rows, 0, NULL));
    ab_rows_close(&rows);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : n;
}

/* Cancel the waiting jobs of queue q of each of types[0..ntypes), one UPDATE per type, so
 * that each UPDATE's count of changed rows is exactly what the job counters get
 * (jobcounts.h). Adds to *n. */
static int s_cancel_types(ab_ctx *ctx, const char *q, char types[][33], int ntypes,
                          const char *message, int64_t *n, ab_error *err)
{
    ab_job_counts counts;
    ab_job_counts_clear(&counts);
    for (int i = 0; i < ntypes; i++) {
        ab_params p;
        ab_params_init(&p);
        ab_param_cstr(&p, message);
        ab_param_int(&p, ctx->now_ms);
        ab_param_cstr(&p, q);
        ab_param_cstr(&p, types[i]);
        uint64_t cleared = 0;
        if (ab_db_run(ctx->db,
                      "UPDATE jobs SET state = 'cancelled', status = 3, message = ?, "
                      "date_finished = FROM_UNIXTIME(? / 1000), date_modified = date_finished "
                      "WHERE worker = ? AND state IN ('queued', 'retrying') AND job_type = ?",
                      &p, NULL, &cleared, err) < 0)
            return -1;
        if (cleared > 0)
            ab_job_counts_add(&counts, q, types[i], "cancelled", (long long)cleared, -1);
        *n += (int64_t)cleared;
    }
    return ab_job_counts_write(ctx->db, AB_JOB_COUNTS_SHARED, &counts, err);
}

/* Cancel every waiting job of queue q, type by type. A job enqueued meanwhile with a type
 * not seen yet stays queued, as one enqueued just after the clear. */
static int s_cancel_waiting_of(ab_ctx *ctx, const char *q, const char *message, int64_t *n,
                               ab_error *err)
{
    *n = 0;
    int ntypes;
    do {
        char types[AB_JOB_COUNTS_MAX][33];
        ntypes = s_waiting_types(ctx, q, types, err);
        if (ntypes < 0 || s_cancel_types(ctx, q, types, ntypes, message, n, err) < 0)
            return -1;
    } while (ntypes == AB_JOB_COUNTS_MAX);
    return 0;
}

int ab_queue_clear(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    size_t len = 0;
    const char *queue = ab_arg_str(ctx, "queue", &len);
    char q[33], message[320];
    snprintf(q, sizeof q, "%.*s", (int)(len > 32 ? 32 : len), queue);
    snprintf(message, sizeof message, "Cleared from queue %s by %s", q, ctx->who->email);
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, q);
    int64_t n = 0;
    if (ab_db_run(ctx->db, "DELETE FROM job_ready WHERE worker = ?", &p, NULL, NULL, err) < 0 ||
        s_cancel_waiting_of(ctx, q, message, &n, err) < 0)
        return -1;
    char title[96], topic[64];
    snprintf(title, sizeof title, "Queue %s cleared: %lld job(s) cancelled", q, (long long)n);
    snprintf(topic, sizeof topic, "queue.%s.cleared", q);
    if (ab_ctx_audit(ctx, "Job", 0, "edit", title, NULL) < 0 ||
        ab_events_push(ctx->events, topic, ctx->now_ms, s_pack_cleared, &n) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    msgpack_pack_map(pk, 2);
    ab_pack_kv_cstr(pk, "queue", q);
    ab_pack_kv_int(pk, "cleared", n);
    return 0;
}

/* --- queue.stats ------------------------------------------------------------------------- */

static const char *const s_queue_list[] = {"default", "prio", "cache", "email", "update"};
static const char *const s_state_list[] = {"queued", "running", "retrying",
                                           "done",   "failed",  "cancelled"};
enum { NQ = 5, NS = 6 };

static int s_queue_index(const char *q)
{
    for (int i = 0; i < NQ; i++)
        if (q && strcmp(q, s_queue_list[i]) == 0)
            return i;
    return -1;
}

/* Add the counts of a "queue, [state,] count" query into counts[queue][column]. */
static int s_count_into(ab_ctx *ctx, const char *sql, bool with_state, int64_t counts[NQ][NS + 2],
                        int column, ab_error *err)
{
    ab_rows rows;
    if (ab_db_query(ctx->db, sql, NULL, &rows, err) < 0)
        return -1;
    int rc;
    while ((rc = ab_rows_next(&rows)) == 1) {
        int q = s_queue_index(ab_rows_str(&rows, 0, NULL)), c = column;
        if (with_state)
            for (c = 0; c < NS && strcmp(s_state_list[c], ab_rows_str(&rows, 1, NULL)); c++)
                ;
        if (q >= 0 && c < NS + 2)
            counts[q][c] += ab_rows_int(&rows, with_state ? 2 : 1);
    }
    ab_rows_close(&rows);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : 0;
}

/* Per queue, how long (ms) the oldest ready job that is due has waited, into age[queue].
 * The claim order is the key of job_ready (queue, prank, run_at, job_id), so the oldest due
 * time of each (queue, priority) is one index dive ("Using index for group-by"), however
 * many jobs wait; a queue's oldest is the oldest of its priorities. */
static int s_oldest_ready(ab_ctx *ctx, int64_t age[NQ], ab_error *err)
{
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    "SELECT worker, TIMESTAMPDIFF(MICROSECOND, MIN(run_at), UTC_TIMESTAMP(3)) "
                    "DIV 1000 FROM job_ready GROUP BY worker, prank",
                    NULL, &rows, err) < 0)
        return -1;
    int rc;
    while ((rc = ab_rows_next(&rows)) == 1) {
        int q = s_queue_index(ab_rows_str(&rows, 0, NULL));
        int64_t waited = ab_rows_int(&rows, 1); /* < 0: due later */
        if (q >= 0 && waited > age[q])
            age[q] = waited;
    }
    ab_rows_close(&rows);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : 0;
}

int ab_queue_stats(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    int64_t counts[NQ][NS + 2], age[NQ] = {0};
    memset(counts, 0, sizeof counts);
    if (s_oldest_ready(ctx, age, err) < 0)
        return -1;
    if (s_count_into(ctx, "SELECT worker, state, COUNT(*) FROM jobs GROUP BY worker, state", true,
                     counts, 0, err) < 0 ||
        s_count_into(ctx, "SELECT worker, COUNT(*) FROM job_ready GROUP BY worker", false, counts,
                     NS, err) < 0 ||
        s_count_into(ctx,
                     "SELECT queue, COUNT(*) FROM workers WHERE status <> 'dead' AND "
                     "last_heartbeat > UTC_TIMESTAMP(3) - INTERVAL 30 SECOND GROUP BY queue",
                     false, counts, NS + 1, err) < 0)
        return -1;
    msgpack_pack_map(pk, 1);
    ab_pack_cstr(pk, "items");
    msgpack_pack_array(pk, NQ);
    for (int q = 0; q < NQ; q++) {
        msgpack_pack_map(pk, NS + 4);
        ab_pack_kv_cstr(pk, "queue", s_queue_list[q]);
        for (int c = 0; c < NS; c++)
            ab_pack_kv_int(pk, s_state_list[c], counts[q][c]);
        ab_pack_kv_int(pk, "ready", counts[q][NS]);
        ab_pack_kv_int(pk, "workers", counts[q][NS + 1]);
        ab_pack_kv_int(pk, "oldest_ready_age_ms", age[q]);
    }
    return 0;
}

/* --- job.stats ---------------------------------------------------------------------------- */

static void s_pack_bounds(msgpack_packer *pk)
{
    ab_pack_cstr(pk, "le");
    msgpack_pack_array(pk, AB_JOB_BUCKETS - 1);
    for (int b = 0; b < AB_JOB_BUCKETS - 1; b++)
        msgpack_pack_double(pk, (double)ab_job_bucket_us[b] / 1e6);
}

/* One row of the sums: queue, type, state, finished, ran, run_us, b0 … b12. */
static void s_pack_count(msgpack_packer *pk, const ab_rows *rows)
{
    msgpack_pack_map(pk, 7);
    ab_pack_kv_cstr(pk, "queue", ab_rows_str(rows, 0, NULL));
    ab_pack_kv_cstr(pk, "type", ab_rows_str(rows, 1, NULL));
    ab_pack_kv_cstr(pk, "state", ab_rows_str(rows, 2, NULL));
    ab_pack_kv_int(pk, "finished", ab_rows_int(rows, 3));
    ab_pack_kv_int(pk, "ran", ab_rows_int(rows, 4));
    ab_pack_kv_int(pk, "run_us", ab_rows_int(rows, 5));
    ab_pack_cstr(pk, "buckets"); /* cumulative, as Prometheus wants them */
    msgpack_pack_array(pk, AB_JOB_BUCKETS);
    int64_t sum = 0;
    for (int b = 0; b < AB_JOB_BUCKETS; b++)
        msgpack_pack_int64(pk, sum += ab_rows_int(rows, 6 + b));
}

int ab_job_stats(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    "SELECT queue, job_type, state, SUM(finished), SUM(ran), SUM(run_us), "
                    "SUM(b0), SUM(b1), SUM(b2), SUM(b3), SUM(b4), SUM(b5), SUM(b6), SUM(b7), "
                    "SUM(b8), SUM(b9), SUM(b10), SUM(b11), SUM(b12) FROM job_counts "
                    "GROUP BY queue, job_type, state ORDER BY queue, job_type, state",
                    NULL, &rows, err) < 0)
        return -1;
    msgpack_sbuffer items;
    msgpack_sbuffer_init(&items);
    msgpack_packer ipk;
    msgpack_packer_init(&ipk, &items, msgpack_sbuffer_write);
    uint32_t n = 0;
    int rc;
    while ((rc = ab_rows_next(&rows)) == 1 && ++n)
        s_pack_count(&ipk, &rows);
    ab_rows_close(&rows);
    if (rc == 0) {
        msgpack_pack_map(pk, 2);
        s_pack_bounds(pk);
        ab_pack_cstr(pk, "items");
        msgpack_pack_array(pk, n);
        pk->callback(pk->data, items.data, items.size);
    }
    msgpack_sbuffer_destroy(&items);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : 0;
}
