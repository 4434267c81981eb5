/* jobs.c — queues, states and enqueueing (see jobs.h). */
#include "jobs/jobs.h"

#include "wire/envelope.h"
#include "auth/secret.h"

#include <stdio.h>
#include <stdlib.h>
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

int ab_job_wake_queue(ab_events *ev, int64_t ts_ms, const char *queue)
{
    char topic[64];
    ab_job_wake_topic(queue, topic, sizeof topic);
    return ab_events_push(ev, topic, ts_ms, s_pack_queue, queue);
}

int ab_job_events_queue(ab_events *ev, int64_t ts_ms, uint64_t id, const char *event,
                        const char *queue, const char *type, const char *state, bool wake)
{
    char topic[96];
    s_job_event e = {id, queue, type, state};
    ab_job_topic(id, event, topic, sizeof topic);
    if (ab_events_push(ev, topic, ts_ms, s_pack_job_event, &e) < 0)
        return -1;
    return wake ? ab_job_wake_queue(ev, ts_ms, queue) : 0;
}

/* The values of one jobs row, as s_bind_job_row binds them: queue, type, input, payload,
 * priority, run_at, max_attempts, org_id, created_by, date_created, date_modified. */
#define S_JOB_ROW_VALUES                                                                           \
    "(?, ?, ?, ?, ?, FROM_UNIXTIME(? / 1000), ?, ?, ?, FROM_UNIXTIME(? / 1000), "                  \
    "FROM_UNIXTIME(? / 1000)"

static void s_bind_job_row(ab_params *p, const ab_job_spec *s, int64_t now_ms)
{
    ab_param_cstr(p, s->type->queue);
    ab_param_cstr(p, s->type->type);
    ab_param_cstr(p, s->input);
    ab_param_blob(p, s->payload, s->payload_len);
    ab_param_int(p, s->priority);
    ab_param_int(p, s->run_at_ms > 0 ? s->run_at_ms : now_ms);
    ab_param_int(p, s->max_attempts > 0 ? s->max_attempts : s->type->max_attempts);
    ab_param_int(p, s->org_id);
    ab_param_int(p, s->created_by);
    ab_param_int(p, now_ms);
    ab_param_int(p, now_ms);
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

int ab_job_head_load(ab_db *db, uint64_t id, bool for_update, ab_job_head *h, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)id);
    ab_rows rows;
    if (ab_db_query(
            db,
            for_update
                ? "SELECT state, worker, job_type, priority FROM jobs WHERE id = ? FOR UPDATE"
                : "SELECT state, worker, job_type, priority FROM jobs WHERE id = ?",
            &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1) {
        snprintf(h->state, sizeof h->state, "%s", ab_rows_str(&rows, 0, NULL));
        snprintf(h->queue, sizeof h->queue, "%s", ab_rows_str(&rows, 1, NULL));
        snprintf(h->type, sizeof h->type, "%s", ab_rows_str(&rows, 2, NULL));
        h->priority = ab_rows_int(&rows, 3);
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return ab_fail(err, AB_E_NOT_FOUND, "job", "no job has id %llu", (unsigned long long)id);
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
    ab_params p;
    ab_params_init(&p);
    s_bind_job_row(&p, s, now_ms);
    ab_param_cstr(&p, s->unique_key);
    if (ab_db_run(db,
                  "INSERT INTO jobs (worker, job_type, job_input, payload, priority, run_at, "
                  "max_attempts, org_id, created_by, date_created, date_modified, state, status, "
                  "message, unique_key) VALUES " S_JOB_ROW_VALUES ", 'queued', 1, 'Queued', ?)",
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

/* --- several at once ---------------------------------------------------------------- */

#define ROWS_PER_INSERT 7 /* 11 values a row: within AB_PARAMS_MAX */

/* One multi-row INSERT of n (<= ROWS_PER_INSERT) jobs; their ids in order. */
static int s_insert_jobs(ab_db *db, const ab_job_spec *specs, size_t n, int64_t now_ms,
                         uint64_t *ids, ab_error *err)
{
    static const char row[] = S_JOB_ROW_VALUES ", 'queued', 1, 'Queued')";
    char sql[2048];
    size_t off = (size_t)snprintf(sql, sizeof sql,
                                  "INSERT INTO jobs (worker, job_type, job_input, payload, "
                                  "priority, run_at, max_attempts, org_id, created_by, "
                                  "date_created, date_modified, state, status, message) VALUES ");
    ab_params p;
    ab_params_init(&p);
    for (size_t i = 0; i < n; i++) {
        off += (size_t)snprintf(sql + off, sizeof sql - off, "%s%s", i ? ", " : "", row);
        s_bind_job_row(&p, &specs[i], now_ms);
    }
    snprintf(sql + off, sizeof sql - off, " RETURNING id");
    ab_rows rows;
    if (ab_db_query(db, sql, &p, &rows, err) < 0)
        return -1;
    size_t got = 0;
    while (got < n && ab_rows_next(&rows) == 1)
        ids[got++] = (uint64_t)ab_rows_int(&rows, 0);
    ab_rows_close(&rows);
    if (got != n)
        return ab_fail(err, AB_E_INTERNAL, NULL, "the database returned %zu job ids for %zu jobs",
                       got, n);
    return 0;
}

static int s_insert_ready(ab_db *db, const ab_job_spec *specs, size_t n, int64_t now_ms,
                          const uint64_t *ids, ab_error *err)
{
    const char **queues = calloc(n, sizeof *queues);
    unsigned long *qlens = calloc(n, sizeof *qlens);
    long long *ranks = calloc(n, sizeof *ranks), *runs = calloc(n, sizeof *runs);
    long long *jids = calloc(n, sizeof *jids);
    int rc = -1;
    if (!queues || !qlens || !ranks || !runs || !jids) {
        ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        queues[i] = specs[i].type->queue;
        qlens[i] = (unsigned long)strlen(queues[i]);
        ranks[i] = -specs[i].priority;
        runs[i] = specs[i].run_at_ms > 0 ? specs[i].run_at_ms : now_ms;
        jids[i] = (long long)ids[i];
    }
    ab_col_type types[] = {AB_COL_STR, AB_COL_INT, AB_COL_INT, AB_COL_INT};
    void *cols[] = {(void *)queues, ranks, runs, jids};
    unsigned long *lens[] = {qlens, NULL, NULL, NULL};
    rc = ab_db_bulk(db,
                    "INSERT INTO job_ready (worker, prank, run_at, job_id) "
                    "VALUES (?, ?, FROM_UNIXTIME(? / 1000), ?)",
                    4, types, cols, lens, (unsigned)n, err);
out:
    free(queues);
    free(qlens);
    free(ranks);
    free(runs);
    free(jids);
    return rc;
}

int ab_job_enqueue_batch(ab_db *db, const ab_job_spec *specs, size_t n, int64_t now_ms,
                         uint64_t *ids, ab_error *err)
{
    for (size_t i = 0; i < n; i += ROWS_PER_INSERT) {
        size_t k = n - i < ROWS_PER_INSERT ? n - i : ROWS_PER_INSERT;
        if (s_insert_jobs(db, specs + i, k, now_ms, ids + i, err) < 0)
            return -1;
    }
    return s_insert_ready(db, specs, n, now_ms, ids, err);
}

/* --- what a job enqueue names ----------------------------------------------------------- */

const ab_job_type *ab_job_type_of(const msgpack_object *map, const msgpack_object **args,
                                  const char *prefix, ab_error *err)
{
    const msgpack_object *tv = map ? ab_map_get(map, "type") : NULL;
    size_t tlen = tv && tv->type == MSGPACK_OBJECT_STR ? tv->via.str.size : 0;
    const char *tname = tlen ? tv->via.str.ptr : "";
    const ab_job_type *t = ab_job_type_find(tname, tlen);
    if (!t) {
        ab_fail(err, AB_E_INVALID, NULL, "no job type '%.*s' (adminctl job enqueue --help)",
                (int)(tlen > 32 ? 32 : tlen), tname);
        snprintf(err->field, sizeof err->field, "%stype", prefix);
        return NULL;
    }
    *args = ab_map_get(map, "args");
    if (ab_job_args_validate(t, *args, err) < 0) {
        char inner[sizeof err->field];
        snprintf(inner, sizeof inner, "%s", err->field);
        snprintf(err->field, sizeof err->field, "%sargs.%.40s", prefix, inner);
        return NULL;
    }
    return t;
}

/* One "k=v" of a summary in piece; a text value is cut to at most
 * 64 bytes of whole characters, as job_input is text for humans and a column of UTF-8. */
static void s_summary_piece(const msgpack_object *k, const msgpack_object *v, char *piece,
                            size_t size)
{
    int klen = (int)(k->via.str.size > 64 ? 64 : k->via.str.size);
    if (v->type == MSGPACK_OBJECT_STR)
        snprintf(piece, size, "%.*s=%.*s", klen, k->via.str.ptr,
                 (int)ab_utf8_cut(v->via.str.ptr, v->via.str.size, 64), v->via.str.ptr);
    else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        snprintf(piece, size, "%.*s=%llu", klen, k->via.str.ptr, (unsigned long long)v->via.u64);
    else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        snprintf(piece, size, "%.*s=%lld", klen, k->via.str.ptr, (long long)v->via.i64);
    else
        snprintf(piece, size, "%.*s=%s", klen, k->via.str.ptr,
                 v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean ? "true" : "false");
}

void ab_job_summarise(const msgpack_object *args, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (uint32_t i = 0; args && i < args->via.map.size; i++) {
        char piece[160];
        s_summary_piece(&args->via.map.ptr[i].key, &args->via.map.ptr[i].val, piece, sizeof piece);
        size_t plen = strlen(piece);
        if (n + (n > 0) + plen + 1 > len)
            break; /* whole pieces only: a cut one could end inside a character */
        n += (size_t)snprintf(out + n, len - n, "%s%s", n ? " " : "", piece);
    }
}

/* --- hand-over to an idle worker -------------------------------------------------------- */

/* A worker counts as idle while its heartbeat is this fresh (it beats every lease / 10). */
#define IDLE_HEARTBEAT_S 3

static int s_idle_worker(ab_db *db, const char *queue, char *worker, size_t len, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, queue);
    ab_param_int(&p, IDLE_HEARTBEAT_S);
    ab_rows rows;
    if (ab_db_query(db,
                    "SELECT id FROM workers WHERE queue = ? AND idle = 1 AND status = 'ok' AND "
                    "desired = 'run' AND last_heartbeat > UTC_TIMESTAMP(3) - INTERVAL ? SECOND "
                    "ORDER BY last_heartbeat DESC LIMIT 1 FOR UPDATE SKIP LOCKED",
                    &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        snprintf(worker, len, "%s", ab_rows_str(&rows, 0, NULL));
    ab_rows_close(&rows);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : rc;
}

int ab_job_dispatch(ab_db *db, uint64_t id, const char *queue, int lease_ms, char *worker,
                    size_t len, ab_error *err)
{
    int found = s_idle_worker(db, queue, worker, len, err);
    if (found <= 0)
        return found;
    uint64_t token = 0;
    ab_random_bytes(&token, sizeof token);
    token &= (uint64_t)INT64_MAX; /* as the worker's claims: fits BIGINT and the signed bind */
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, worker);
    if (ab_db_run(db, "UPDATE workers SET idle = 0 WHERE id = ?", &p, NULL, NULL, err) < 0)
        return -1;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)(token ? token : 1));
    ab_param_int(&p, (int64_t)lease_ms * 1000);
    ab_param_cstr(&p, worker);
    ab_param_int(&p, (int64_t)id);
    if (ab_db_run(db,
                  "UPDATE jobs SET state = 'running', status = 2, attempts = attempts + 1, "
                  "lease_token = ?, lease_expires = UTC_TIMESTAMP(3) + INTERVAL ? MICROSECOND, "
                  "process_id = ?, message = 'Assigned', date_modified = UTC_TIMESTAMP(3) "
                  "WHERE id = ? AND state = 'queued'",
                  &p, NULL, NULL, err) < 0)
        return -1;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)id);
    if (ab_db_run(db, "DELETE FROM job_ready WHERE job_id = ?", &p, NULL, NULL, err) < 0)
        return -1;
    return 1;
}

typedef struct {
    uint64_t id;
} s_assign;

static void s_pack_assign(msgpack_packer *pk, const void *ctx)
{
    const s_assign *a = ctx;
    msgpack_pack_map(pk, 1);
    ab_pack_cstr(pk, "assign");
    msgpack_pack_uint64(pk, a->id);
}

int ab_job_assign_notice(ab_events *ev, int64_t ts_ms, const char *worker, uint64_t id)
{
    char topic[160];
    s_assign a = {id};
    snprintf(topic, sizeof topic, "worker.%s.assign", worker);
    return ab_events_push(ev, topic, ts_ms, s_pack_assign, &a);
}
