/* task.c — the scheduled-task commands (issue 3): task.list, task.set, task.run. The
 * scheduler that fires tasks is engine/jobs/scheduler.c; a task's job type is its `type`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/handlers.h"
#include "jobs/jobs.h"
#include "jobs/scheduler.h"

/* tasks.description is VARCHAR(255), counted in characters: up to 4 bytes each. */
#define DESCRIPTION_SIZE (255 * 4 + 1)

#define TASK_SQL                                                                                   \
    "SELECT id, type, timer, scheduled_time, process_id, description, next_execution_time, "       \
    "message, enabled, last_job_id, " AB_SQL_MS("last_run") ", " AB_SQL_MS(                        \
        "date_modified") " FROM tasks"

/* Columns of TASK_SQL: 'i' integer, 's' string, 'b' boolean. */
static const struct {
    const char *name;
    char kind;
} s_cols[] = {
    {"id", 'i'},
    {"type", 's'},
    {"timer", 'i'},
    {"scheduled_time", 's'},
    {"process_id", 's'},
    {"description", 's'},
    {"next_execution_time", 'i'},
    {"message", 's'},
    {"enabled", 'b'},
    {"last_job_id", 'i'},
    {"last_run", 'i'},
    {"date_modified", 'i'},
};
#define NCOLS (sizeof s_cols / sizeof s_cols[0])

/* One task as a map: its columns, next_run (ISO 8601 UTC or nil), runnable (its job type
 * exists in this build) and the queue its jobs go to. */
static void s_pack_row(msgpack_packer *pk, const ab_rows *r)
{
    msgpack_pack_map(pk, NCOLS + 3);
    for (size_t i = 0; i < NCOLS; i++) {
        size_t len = 0;
        const char *v = ab_rows_str(r, (int)i, &len);
        ab_pack_cstr(pk, s_cols[i].name);
        if (!v)
            msgpack_pack_nil(pk);
        else if (s_cols[i].kind == 'i')
            msgpack_pack_int64(pk, strtoll(v, NULL, 10));
        else if (s_cols[i].kind == 'b' && strtoll(v, NULL, 10))
            msgpack_pack_true(pk);
        else if (s_cols[i].kind == 'b')
            msgpack_pack_false(pk);
        else
            ab_pack_str(pk, v, len);
    }
    char next[32];
    int64_t next_s = ab_rows_int(r, 6);
    ab_iso_utc(next_s, next, sizeof next);
    ab_pack_kv_cstr(pk, "next_run", next_s > 0 ? next : NULL);
    size_t tlen = 0;
    const char *type = ab_rows_str(r, 1, &tlen);
    const ab_job_type *jt = ab_job_type_find(type, tlen);
    ab_pack_kv_bool(pk, "runnable", jt != NULL);
    ab_pack_kv_cstr(pk, "queue", jt ? jt->queue : NULL);
}

static int s_pack_task(ab_ctx *ctx, msgpack_packer *pk, uint32_t id, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, id);
    ab_rows rows;
    if (ab_db_query(ctx->db, TASK_SQL " WHERE id = ?", &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1)
        s_pack_row(pk, &rows);
    ab_rows_close(&rows);
    if (rc == 0)
        return ab_fail(err, AB_E_NOT_FOUND, "task", "no task has id %u", id);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : 0;
}

int ab_task_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    ab_rows rows;
    if (ab_db_query(ctx->db, TASK_SQL " ORDER BY id", NULL, &rows, err) < 0)
        return -1;
    uint32_t n = (uint32_t)mysql_stmt_num_rows(rows.stmt);
    msgpack_pack_map(pk, 1);
    ab_pack_cstr(pk, "items");
    msgpack_pack_array(pk, n);
    uint32_t i = 0;
    for (; i < n && ab_rows_next(&rows) == 1; i++)
        s_pack_row(pk, &rows);
    ab_rows_close(&rows);
    for (; i < n; i++) /* keep the array's promised length even if a read failed */
        msgpack_pack_nil(pk);
    return 0;
}

/* --- the task's row, locked for a change ------------------------------------------------ */

typedef struct {
    uint32_t id;
    char type[101], time[9], description[DESCRIPTION_SIZE];
    int64_t timer, next_s;
    bool enabled;
} s_task;

static int s_load(ab_ctx *ctx, s_task *t, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, t->id);
    ab_rows rows;
    if (ab_db_query(ctx->db,
                    "SELECT type, scheduled_time, description, timer, next_execution_time, "
                    "enabled FROM tasks WHERE id = ? FOR UPDATE",
                    &p, &rows, err) < 0)
        return -1;
    int rc = ab_rows_next(&rows);
    if (rc == 1) {
        snprintf(t->type, sizeof t->type, "%s", ab_rows_str(&rows, 0, NULL));
        snprintf(t->time, sizeof t->time, "%s", ab_rows_str(&rows, 1, NULL));
        snprintf(t->description, sizeof t->description, "%s", ab_rows_str(&rows, 2, NULL));
        t->timer = ab_rows_int(&rows, 3);
        t->next_s = ab_rows_int(&rows, 4);
        t->enabled = ab_rows_int(&rows, 5) != 0;
    }
    ab_rows_close(&rows);
    if (rc < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "database read failed");
    if (rc == 0)
        return ab_fail(err, AB_E_NOT_FOUND, "task", "no task has id %u (adminctl task list)",
                       t->id);
    return 0;
}

/* --- parsing --time and --next ------------------------------------------------------------ */

static bool s_digits(const char *s, const char *pattern)
{
    for (size_t i = 0; pattern[i]; i++)
        if (pattern[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pattern[i])
            return false;
    return true;
}

static int s_num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* "HH:MM" → minutes after midnight, or -1. */
static int s_parse_hhmm(const char *s, size_t len)
{
    if (len != 5 || !s_digits(s, "dd:dd"))
        return -1;
    int h = s_num(s, 2), m = s_num(s + 3, 2);
    return h < 24 && m < 60 ? h * 60 + m : -1;
}

/* Days since 1970-01-01 of a civil date (proleptic Gregorian; Howard Hinnant's method). */
static int64_t s_days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM" (UTC) → unix seconds of the day's midnight in *day_s,
 * and the minutes after midnight in *minutes (-1 when no time was given). 0 or -1. */
static int s_parse_next(const char *s, size_t len, int64_t *day_s, int *minutes)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if ((len != 10 && len != 16) || !s_digits(s, "dddd-dd-dd"))
        return -1;
    int y = s_num(s, 4), m = s_num(s + 5, 2), d = s_num(s + 8, 2);
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
        return -1;
    *minutes = -1;
    if (len == 16 && (s[10] != 'T' || (*minutes = s_parse_hhmm(s + 11, 5)) < 0))
        return -1;
    *day_s = s_days_from_civil(y, m, d) * 86400;
    return 0;
}

/* --- task.set ----------------------------------------------------------------------------- */

/* The new values a task.set asks for, checked. */
typedef struct {
    int64_t timer, next_s;
    char time[16], description[DESCRIPTION_SIZE];
    bool enabled;
} s_wanted;

/* When only --time changes, the next run keeps its day and takes the new time; a time
 * already past moves on by the task's period (a day for a one-off), never into the past. */
static int64_t s_retime(int64_t next_s, int minutes, int64_t timer_h, int64_t now_s)
{
    int64_t t = next_s - next_s % 86400 + minutes * 60;
    int64_t period = (timer_h > 0 ? timer_h : 24) * 3600;
    while (t <= now_s)
        t += period;
    return t;
}

static int s_want_time(ab_ctx *ctx, const s_task *t, s_wanted *w, ab_error *err)
{
    size_t len = 0;
    const char *v = ab_arg_str(ctx, "time", &len);
    int minutes = v ? s_parse_hhmm(v, len) : -1;
    if (v && minutes < 0)
        return ab_fail(err, AB_E_INVALID, "time", "time must be HH:MM (00:00 to 23:59), UTC");
    if (v) {
        snprintf(w->time, sizeof w->time, "%.5s", v);
        if (!ab_arg_has(ctx, "next") && t->next_s > 0)
            w->next_s = s_retime(t->next_s, minutes, w->timer, ctx->now_ms / 1000);
    }
    return 0;
}

static int s_want_next(ab_ctx *ctx, s_wanted *w, ab_error *err)
{
    size_t len = 0;
    const char *v = ab_arg_str(ctx, "next", &len);
    if (!v)
        return 0;
    int64_t day_s = 0;
    int minutes = -1;
    if (s_parse_next(v, len, &day_s, &minutes) < 0)
        return ab_fail(err, AB_E_INVALID, "next",
                       "next must be YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), a real date");
    if (minutes >= 0 && !ab_arg_has(ctx, "time")) /* the given time becomes the task's time */
        snprintf(w->time, sizeof w->time, "%02d:%02d", minutes / 60, minutes % 60);
    if (minutes < 0)
        minutes = s_parse_hhmm(w->time, strlen(w->time));
    w->next_s = day_s + (minutes < 0 ? 12 * 60 : minutes) * 60;
    return 0;
}

static int s_want(ab_ctx *ctx, const s_task *t, s_wanted *w, ab_error *err)
{
    w->timer = ab_arg_int(ctx, "frequency", t->timer);
    w->next_s = t->next_s;
    w->enabled = ab_arg_bool(ctx, "enabled", t->enabled);
    snprintf(w->time, sizeof w->time, "%s", t->time);
    size_t len = 0;
    const char *d = ab_arg_str(ctx, "description", &len);
    snprintf(w->description, sizeof w->description, "%.*s",
             d ? (int)len : (int)strlen(t->description), d ? d : t->description);
    if (s_want_time(ctx, t, w, err) < 0 || s_want_next(ctx, w, err) < 0)
        return -1;
    if (w->enabled && !t->enabled && !ab_job_type_find(t->type, strlen(t->type)))
        return ab_fail(err, AB_E_CONFLICT, "enabled",
                       "task %u cannot be enabled: no job type %s in this build", t->id, t->type);
    return 0;
}

static void s_change_int(ab_change *c, const char *field, int64_t old, int64_t now)
{
    char a[24], b[24];
    if (old == now)
        return;
    snprintf(a, sizeof a, "%lld", (long long)old);
    snprintf(b, sizeof b, "%lld", (long long)now);
    ab_change_add(c, field, a, strlen(a), b, strlen(b));
}

static void s_change_str(ab_change *c, const char *field, const char *old, const char *now)
{
    if (strcmp(old, now) != 0)
        ab_change_add(c, field, old, strlen(old), now, strlen(now));
}

static void s_describe(const s_task *t, const s_wanted *w, ab_change *c)
{
    s_change_int(c, "timer", t->timer, w->timer);
    s_change_str(c, "scheduled_time", t->time, w->time);
    s_change_int(c, "next_execution_time", t->next_s, w->next_s);
    s_change_int(c, "enabled", t->enabled, w->enabled);
    s_change_str(c, "description", t->description, w->description);
}

static int s_update(ab_ctx *ctx, uint32_t id, const s_wanted *w, bool rescheduled, ab_error *err)
{
    char next[32], msg[96];
    ab_iso_utc(w->next_s, next, sizeof next);
    snprintf(msg, sizeof msg, w->next_s > 0 ? "Next run %s." : "Not scheduled yet.", next);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, w->timer);
    ab_param_cstr(&p, w->time);
    ab_param_int(&p, w->next_s);
    ab_param_int(&p, w->enabled);
    ab_param_cstr(&p, w->description);
    ab_param_int(&p, rescheduled);
    ab_param_cstr(&p, msg);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, id);
    return ab_db_run(ctx->db,
                     "UPDATE tasks SET timer = ?, scheduled_time = ?, next_execution_time = ?, "
                     "enabled = ?, description = ?, message = IF(?, ?, message), "
                     "date_modified = FROM_UNIXTIME(? / 1000) WHERE id = ?",
                     &p, NULL, NULL, err);
}

typedef struct {
    uint32_t id;
    const s_wanted *w;
} s_changed;

static void s_pack_changed(msgpack_packer *pk, const void *ctx)
{
    const s_changed *c = ctx;
    msgpack_pack_map(pk, 3);
    ab_pack_kv_int(pk, "id", c->id);
    ab_pack_kv_bool(pk, "enabled", c->w->enabled);
    ab_pack_kv_int(pk, "next_execution_time", c->w->next_s);
}

/* The audit row and the task.<id>.changed notice (the scheduler listens for it). */
static int s_record_change(ab_ctx *ctx, const s_task *t, const s_wanted *w, const char *change)
{
    char title[140], topic[48];
    snprintf(title, sizeof title, "Task (%u): %s", t->id, t->type);
    snprintf(topic, sizeof topic, "task.%u.changed", t->id);
    s_changed c = {t->id, w};
    if (ab_ctx_audit(ctx, "Task", t->id, "edit", title, change) < 0 ||
        ab_events_push(ctx->events, topic, ctx->now_ms, s_pack_changed, &c) < 0)
        return -1;
    return 0;
}

int ab_task_set(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_task t = {.id = (uint32_t)ab_arg_int(ctx, "task", 0)};
    s_wanted w;
    if (s_load(ctx, &t, err) < 0 || s_want(ctx, &t, &w, err) < 0)
        return -1;
    ab_change c;
    ab_change_init(&c);
    s_describe(&t, &w, &c);
    int rc = 0;
    if (c.len > 0) {
        rc = s_update(ctx, t.id, &w, w.next_s != t.next_s, err);
        if (rc == 0 && s_record_change(ctx, &t, &w, ab_change_text(&c)) < 0)
            rc = ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    }
    ab_change_free(&c);
    return rc < 0 ? -1 : s_pack_task(ctx, pk, t.id, err);
}

/* --- task.run ------------------------------------------------------------------------------ */

typedef struct {
    uint64_t id;
    const ab_job_type *jt;
} s_job_event;

static void s_pack_job_event(msgpack_packer *pk, const void *ctx)
{
    const s_job_event *e = ctx;
    msgpack_pack_map(pk, 4);
    ab_pack_kv_int(pk, "id", (int64_t)e->id);
    ab_pack_kv_cstr(pk, "queue", e->jt->queue);
    ab_pack_kv_cstr(pk, "type", e->jt->type);
    ab_pack_kv_cstr(pk, "state", "queued");
}

static void s_pack_queue(msgpack_packer *pk, const void *ctx)
{
    msgpack_pack_map(pk, 1);
    ab_pack_kv_cstr(pk, "queue", ctx);
}

static int s_job_events(ab_ctx *ctx, uint64_t id, const ab_job_type *jt)
{
    char topic[96];
    s_job_event e = {id, jt};
    ab_job_topic(id, "queued", topic, sizeof topic);
    if (ab_events_push(ctx->events, topic, ctx->now_ms, s_pack_job_event, &e) < 0)
        return -1;
    ab_job_wake_topic(jt->queue, topic, sizeof topic);
    return ab_events_push(ctx->events, topic, ctx->now_ms, s_pack_queue, jt->queue);
}

/* "task:<id>:<now, ISO 8601 UTC with milliseconds>": a manual run is its own due run. */
static void s_run_key(const ab_ctx *ctx, uint32_t id, char *out, size_t len)
{
    char iso[32];
    ab_iso_utc(ctx->now_ms / 1000, iso, sizeof iso);
    iso[19] = '\0'; /* drop the Z, add the milliseconds */
    snprintf(out, len, "task:%u:%s.%03dZ", id, iso, (int)(ctx->now_ms % 1000));
}

static int s_mark_run(ab_ctx *ctx, uint32_t id, uint64_t job, ab_error *err)
{
    char msg[320], pid[24];
    snprintf(msg, sizeof msg, "Job %llu queued by %s (run now).", (unsigned long long)job,
             ctx->who->email);
    snprintf(pid, sizeof pid, "%llu", (unsigned long long)job);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, ctx->now_ms);
    ab_param_int(&p, (int64_t)job);
    ab_param_cstr(&p, pid);
    ab_param_cstr(&p, msg);
    ab_param_int(&p, id);
    return ab_db_run(ctx->db,
                     "UPDATE tasks SET last_run = FROM_UNIXTIME(? / 1000), date_modified = "
                     "last_run, last_job_id = ?, process_id = ?, message = ? WHERE id = ?",
                     &p, NULL, NULL, err);
}

static int s_run_record(ab_ctx *ctx, const s_task *t, uint64_t job, const ab_job_type *jt)
{
    char title[140], change[64];
    snprintf(title, sizeof title, "Task (%u): %s run now", t->id, t->type);
    snprintf(change, sizeof change, "last_job_id () => (%llu)", (unsigned long long)job);
    if (ab_ctx_audit(ctx, "Task", t->id, "run", title, change) < 0 ||
        s_job_events(ctx, job, jt) < 0)
        return -1;
    return 0;
}

int ab_task_run(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    s_task t = {.id = (uint32_t)ab_arg_int(ctx, "task", 0)};
    if (s_load(ctx, &t, err) < 0)
        return -1;
    const ab_job_type *jt = ab_job_type_find(t.type, strlen(t.type));
    if (!jt)
        return ab_fail(err, AB_E_CONFLICT, "task",
                       "task %u cannot run: no job type %s in this "
                       "build",
                       t.id, t.type);
    char key[64], input[160];
    s_run_key(ctx, t.id, key, sizeof key);
    snprintf(input, sizeof input, "task %u (%s) run now", t.id, t.type);
    ab_job_spec spec = {.type = jt,
                        .payload = "\x80",
                        .payload_len = 1,
                        .input = input,
                        .org_id = ctx->who->org_id,
                        .created_by = ctx->who->user_id,
                        .unique_key = key};
    uint64_t job = 0;
    bool existed = false;
    if (ab_job_enqueue(ctx->db, &spec, ctx->now_ms, &job, &existed, err) < 0 ||
        s_mark_run(ctx, t.id, job, err) < 0)
        return -1;
    if (!existed && s_run_record(ctx, &t, job, jt) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    ab_job_head h = {.priority = 0};
    if (existed && ab_job_head_load(ctx->db, job, false, &h, err) < 0)
        return -1;
    msgpack_pack_map(pk, 7);
    ab_pack_kv_int(pk, "id", (int64_t)job);
    ab_pack_kv_int(pk, "task", t.id);
    ab_pack_kv_cstr(pk, "queue", jt->queue);
    ab_pack_kv_cstr(pk, "type", jt->type);
    ab_pack_kv_cstr(pk, "state", existed ? h.state : "queued");
    ab_pack_kv_bool(pk, "existed", existed);
    ab_pack_kv_cstr(pk, "unique_key", key);
    return 0;
}
