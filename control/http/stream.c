/* stream.c — the shim's own routes: GET /events (the event bus as Server-Sent Events),
 * GET /metrics (Prometheus text) and GET /health.
 *
 * /events is for site administrators only: the raw stream names every organisation's jobs,
 * every worker and every audited change (kinds and ids), which only a site admin may list
 * through commands (job.list, worker.list and log.search across organisations). The key is
 * checked when the stream opens and again every sse_recheck_s seconds: a revoked or
 * disabled key ends its stream within that time. */
#include <microhttpd.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "http/http.h"

#define S_TOPICS_MAX   16
#define S_KEEPALIVE_MS 15000

typedef struct {
    hs_server *srv;
    hs_evsrc *src; /* the broker's fan-out or the Kafka events topic (evsrc.c) */
    char *auth;    /* the caller's key, re-checked every sse_recheck_s */
    int64_t next_check_ms, last_write_ms;
    char *pending; /* text not yet handed to libmicrohttpd */
    size_t plen, poff;
    bool ending;  /* send what is pending, then end */
    bool counted; /* in srv->streams */
} s_stream;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Is the key (still) a site administrator's? 0 yes; else the reply's error is in *rep. */
static int s_check_admin(hs_server *srv, const char *auth, hs_reply *rep)
{
    hs_bus_call(srv->bus, "auth.whoami", NULL, auth[0] ? auth : NULL, rep);
    if (!rep->ok)
        return -1;
    json_t *admin = json_object_get(json_object_get(rep->result, "role"), "site_admin");
    if (json_is_true(admin))
        return 0;
    rep->ok = false;
    snprintf(rep->code, sizeof rep->code, "forbidden");
    snprintf(rep->field, sizeof rep->field, "auth");
    snprintf(rep->message, sizeof rep->message,
             "the event stream is for site administrators: it shows every organisation's jobs, "
             "workers and audited changes; use a site administrator's key");
    return -1;
}

static void s_set_pending(s_stream *st, char *text)
{
    free(st->pending);
    st->pending = text;
    st->plen = text ? strlen(text) : 0;
    st->poff = 0;
}

/* An event as an SSE message: data: {"topic", "ts", "data"} (as published); NULL when its
 * body is not msgpack. */
static char *s_sse(const hs_event *ev)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    json_t *j = NULL;
    if (msgpack_unpack_next(&u, ev->body, ev->len, &off) == MSGPACK_UNPACK_SUCCESS)
        j = ctl_to_json(&u.data);
    msgpack_unpacked_destroy(&u);
    char *data = j ? json_dumps(j, JSON_COMPACT) : NULL, *text = NULL;
    if (data && asprintf(&text, "data: %s\n\n", data) < 0)
        text = NULL;
    free(data);
    json_decref(j);
    return text;
}

/* Wait (a second at a time) for the next thing to send: an event, a keep-alive comment, the
 * end of the stream when the key no longer qualifies or the shim stops. */
static void s_fill(s_stream *st)
{
    while (!st->pending && !st->ending) {
        if (st->srv->stopping) {
            st->ending = true;
            return;
        }
        int64_t now = s_now_ms();
        if (now >= st->next_check_ms) {
            hs_reply rep;
            int rc = s_check_admin(st->srv, st->auth, &rep);
            hs_reply_release(&rep);
            st->next_check_ms = now + (int64_t)st->srv->opt.sse_recheck_s * 1000;
            if (rc < 0 && rep.replied) {
                char *text = NULL;
                if (asprintf(&text, "event: end\ndata: {\"code\":\"%s\",\"message\":\"%s\"}\n\n",
                             rep.code, "the key no longer opens this stream") < 0)
                    text = NULL;
                s_set_pending(st, text);
                st->ending = true;
                return;
            }
        }
        hs_event ev;
        if (hs_evsrc_next(st->src, 1000, &ev) > 0) {
            s_set_pending(st, s_sse(&ev));
            hs_event_release(&ev);
        } else if (s_now_ms() - st->last_write_ms >= S_KEEPALIVE_MS) {
            s_set_pending(st, strdup(": keep-alive\n\n"));
        }
    }
}

static ssize_t s_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    s_stream *st = cls;
    s_fill(st);
    if (!st->pending)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = st->plen - st->poff < max ? st->plen - st->poff : max;
    memcpy(buf, st->pending + st->poff, n);
    st->poff += n;
    if (st->poff == st->plen)
        s_set_pending(st, NULL);
    st->last_write_ms = s_now_ms();
    return (ssize_t)n;
}

static void s_free(void *cls)
{
    s_stream *st = cls;
    hs_evsrc_close(st->src);
    if (st->counted) {
        pthread_mutex_lock(&st->srv->lock);
        st->srv->streams--;
        pthread_mutex_unlock(&st->srv->lock);
    }
    free(st->pending);
    free(st->auth);
    free(st);
}

typedef struct {
    const char *topics[S_TOPICS_MAX]; /* the request's ?topic= values */
    size_t n;
    size_t given; /* topic= parameters in the request, beyond S_TOPICS_MAX too */
} s_subs;

static enum MHD_Result s_subscribe(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    s_subs *s = cls;
    if (strcmp(key, "topic") != 0)
        return MHD_YES;
    s->given++;
    if (value && s->n < S_TOPICS_MAX)
        s->topics[s->n++] = value;
    return MHD_YES;
}

void hs_events(hs_req *r)
{
    s_subs subs = {.n = 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, s_subscribe, &subs);
    if (subs.given > S_TOPICS_MAX) {
        hs_error(r, 400, "invalid", "Bad Request",
                 "%zu topic= parameters; at most %d topic prefixes per stream (open another "
                 "stream for more, or use a shorter prefix)",
                 subs.given, S_TOPICS_MAX);
        json_object_set_new(r->json, "field", json_string("topic"));
        return;
    }
    hs_reply rep;
    int rc = s_check_admin(r->srv, r->auth ? r->auth : "", &rep);
    if (rc < 0) {
        hs_reply_error(r, &rep, false, "stream");
        hs_reply_release(&rep);
        return;
    }
    hs_reply_release(&rep);
    s_stream *st = calloc(1, sizeof *st);
    if (!st) {
        hs_error(r, 500, "internal", "Internal Error", "out of memory");
        return;
    }
    st->srv = r->srv;
    st->auth = strdup(r->auth ? r->auth : "");
    if (!st->auth) {
        s_free(st);
        hs_error(r, 500, "internal", "Internal Error", "out of memory");
        return;
    }
    char err[512];
    st->src = hs_evsrc_open(r->srv, subs.topics, subs.n, err, sizeof err);
    if (!st->src) {
        s_free(st);
        hs_error(r, 503, "unavailable", "Service Unavailable", "cannot open the event stream: %s",
                 err);
        return;
    }
    st->next_check_ms = s_now_ms() + (int64_t)r->srv->opt.sse_recheck_s * 1000;
    /* The first lines go out at once, so that a client knows the stream is open. */
    s_set_pending(st, strdup(": adminbus event stream; one data: line per event\n\n"));
    pthread_mutex_lock(&r->srv->lock);
    r->srv->streams++;
    pthread_mutex_unlock(&r->srv->lock);
    st->counted = true;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, s_read, st, s_free);
    if (!resp) {
        s_free(st);
        hs_error(r, 500, "internal", "Internal Error", "cannot create the stream");
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_queue_response(r->conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    r->streamed = true;
}

/* --- /metrics ------------------------------------------------------------------------------ */

static void s_queue_metrics(FILE *f, json_t *stats)
{
    static const char *const states[] = {"queued", "running", "retrying",
                                         "done",   "failed",  "cancelled"};
    fputs("# HELP adminbus_queue_jobs Jobs per queue and state.\n"
          "# TYPE adminbus_queue_jobs gauge\n",
          f);
    size_t i;
    json_t *q;
    json_array_foreach(json_object_get(stats, "items"), i, q)
    {
        const char *name = json_string_value(json_object_get(q, "queue"));
        for (size_t s = 0; s < sizeof states / sizeof states[0]; s++)
            fprintf(f, "adminbus_queue_jobs{queue=\"%s\",state=\"%s\"} %lld\n", name, states[s],
                    (long long)json_integer_value(json_object_get(q, states[s])));
    }
    fputs("# HELP adminbus_queue_ready Jobs that may run now, per queue.\n"
          "# TYPE adminbus_queue_ready gauge\n",
          f);
    json_array_foreach(json_object_get(stats, "items"), i, q)
        fprintf(f, "adminbus_queue_ready{queue=\"%s\"} %lld\n",
                json_string_value(json_object_get(q, "queue")),
                (long long)json_integer_value(json_object_get(q, "ready")));
    fputs("# HELP adminbus_queue_workers Live workers per queue.\n"
          "# TYPE adminbus_queue_workers gauge\n",
          f);
    json_array_foreach(json_object_get(stats, "items"), i, q)
        fprintf(f, "adminbus_queue_workers{queue=\"%s\"} %lld\n",
                json_string_value(json_object_get(q, "queue")),
                (long long)json_integer_value(json_object_get(q, "workers")));
    fputs("# HELP adminbus_queue_oldest_ready_age_seconds How long the oldest job that may run "
          "now has been due, per queue (0: none waits).\n"
          "# TYPE adminbus_queue_oldest_ready_age_seconds gauge\n",
          f);
    json_array_foreach(json_object_get(stats, "items"), i, q)
        fprintf(f, "adminbus_queue_oldest_ready_age_seconds{queue=\"%s\"} %.3f\n",
                json_string_value(json_object_get(q, "queue")),
                (double)json_integer_value(json_object_get(q, "oldest_ready_age_ms")) / 1000.0);
}

static void s_worker_metrics(FILE *f, json_t *workers)
{
    fputs("# HELP adminbus_workers Registered workers by queue, status and liveness.\n"
          "# TYPE adminbus_workers gauge\n",
          f);
    json_t *counts = json_object();
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(workers, "items"), i, w)
    {
        char key[256];
        snprintf(key, sizeof key, "queue=\"%s\",status=\"%s\",alive=\"%s\"",
                 json_string_value(json_object_get(w, "queue")) ?: "",
                 json_string_value(json_object_get(w, "status")) ?: "",
                 json_is_true(json_object_get(w, "alive")) ? "true" : "false");
        json_int_t n = json_integer_value(json_object_get(counts, key));
        json_object_set_new(counts, key, json_integer(n + 1));
    }
    const char *k;
    json_t *v;
    json_object_foreach(counts, k, v)
        fprintf(f, "adminbus_workers{%s} %lld\n", k, (long long)json_integer_value(v));
    json_decref(counts);
}

/* queue="…",type="…",state="…" of a job.stats item. */
static void s_job_labels(FILE *f, const json_t *item)
{
    static const char *const names[] = {"queue", "type", "state"};
    for (size_t i = 0; i < 3; i++) {
        fprintf(f, "%s%s=\"", i ? "," : "", names[i]);
        hs_label_value(f, json_string_value(json_object_get(item, names[i])));
        fputc('"', f);
    }
}

/* The job counters (job.stats): every job that ended, counted in the transaction that ended
 * it, so the totals only grow, whatever is purged or restarted. */
static void s_job_finished(FILE *f, json_t *stats)
{
    fputs("# HELP adminbus_jobs_finished_total Jobs that ended, by queue, type and end state "
          "(done, failed, cancelled).\n"
          "# TYPE adminbus_jobs_finished_total counter\n",
          f);
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(stats, "items"), i, item)
    {
        fputs("adminbus_jobs_finished_total{", f);
        s_job_labels(f, item);
        fprintf(f, "} %lld\n", (long long)json_integer_value(json_object_get(item, "finished")));
    }
}

static void s_job_bucket(FILE *f, const json_t *item, const char *le, json_int_t n)
{
    fputs("adminbus_job_duration_seconds_bucket{", f);
    s_job_labels(f, item);
    fprintf(f, ",le=\"%s\"} %lld\n", le, (long long)n);
}

/* The run-time histogram of the jobs a worker ran to their end (job.stats `ran`). */
static void s_job_durations(FILE *f, json_t *stats)
{
    fputs("# HELP adminbus_job_duration_seconds How long the attempt that ended a job ran (its "
          "handler, in the worker), by queue, type and end state; jobs that ended without such "
          "a run (cancelled while waiting, ended by a reaper) are not in it.\n"
          "# TYPE adminbus_job_duration_seconds histogram\n",
          f);
    const json_t *le = json_object_get(stats, "le");
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(stats, "items"), i, item)
    {
        const json_t *buckets = json_object_get(item, "buckets");
        size_t nb = json_array_size(buckets);
        json_int_t ran = json_integer_value(json_object_get(item, "ran"));
        if (ran == 0 || nb != json_array_size(le) + 1)
            continue;
        for (size_t k = 0; k + 1 < nb; k++) {
            char bound[32];
            snprintf(bound, sizeof bound, "%g", json_number_value(json_array_get(le, k)));
            s_job_bucket(f, item, bound, json_integer_value(json_array_get(buckets, k)));
        }
        s_job_bucket(f, item, "+Inf", ran);
        fputs("adminbus_job_duration_seconds_sum{", f);
        s_job_labels(f, item);
        fprintf(f, "} %.6f\n", (double)json_integer_value(json_object_get(item, "run_us")) / 1e6);
        fputs("adminbus_job_duration_seconds_count{", f);
        s_job_labels(f, item);
        fprintf(f, "} %lld\n", (long long)ran);
    }
}

static json_t *s_call(hs_req *r, const char *type, json_t *args)
{
    hs_reply rep;
    hs_bus_call(r->srv->bus, type, args, r->auth, &rep);
    json_decref(args);
    if (rep.ok)
        return rep.result;
    if (!r->json)
        hs_reply_error(r, &rep, false, "metrics");
    hs_reply_release(&rep);
    return NULL;
}

void hs_metrics(hs_req *r)
{
    json_t *stats = s_call(r, "queue.stats", NULL);
    json_t *workers = stats ? s_call(r, "worker.list", NULL) : NULL;
    json_t *jobs = workers ? s_call(r, "job.stats", NULL) : NULL;
    if (jobs) {
        char *text = NULL, *bus = NULL;
        size_t len = 0, blen = 0;
        FILE *f = open_memstream(&text, &len);
        if (f) {
            fputs("# HELP adminbus_build_info The build of this HTTP shim (engines and workers "
                  "are built from the same tree).\n"
                  "# TYPE adminbus_build_info gauge\n"
                  "adminbus_build_info{version=\"" AB_VERSION "\"} 1\n",
                  f);
            pthread_mutex_lock(&r->srv->lock);
            fprintf(f,
                    "# HELP adminbus_http_requests_total Requests the HTTP shim routed.\n"
                    "# TYPE adminbus_http_requests_total counter\n"
                    "adminbus_http_requests_total %llu\n"
                    "# HELP adminbus_http_errors_total Requests answered with a status >= 400.\n"
                    "# TYPE adminbus_http_errors_total counter\n"
                    "adminbus_http_errors_total %llu\n"
                    "# HELP adminbus_http_streams Open /events streams.\n"
                    "# TYPE adminbus_http_streams gauge\n"
                    "adminbus_http_streams %llu\n",
                    (unsigned long long)r->srv->requests, (unsigned long long)r->srv->errors,
                    (unsigned long long)r->srv->streams);
            pthread_mutex_unlock(&r->srv->lock);
            hs_bus_metrics(r->srv->bus, &bus, &blen);
            if (bus)
                fputs(bus, f);
            hs_engine_stats_render(r->srv->stats, f);
            s_queue_metrics(f, stats);
            s_worker_metrics(f, workers);
            s_job_finished(f, jobs);
            s_job_durations(f, jobs);
            fclose(f);
        }
        free(bus);
        r->text = text;
        r->ctype = "text/plain; version=0.0.4; charset=utf-8";
    }
    json_decref(stats);
    json_decref(workers);
    json_decref(jobs);
}

/* --- /health --------------------------------------------------------------------------------- */

/* Healthy when an engine answers through the broker. The probe is a command of a type no
 * catalog has, without a credential: the engine refuses it as invalid (field type) before
 * any authentication, so it writes nothing (no auth_fail row), while the broker answers
 * unavailable itself when no engine is connected. */
void hs_health(hs_req *r)
{
    hs_reply rep;
    hs_bus_call(r->srv->bus, "health.probe", NULL, NULL, &rep);
    bool engine = rep.replied && strcmp(rep.code, "unavailable") != 0;
    r->status = engine ? 200 : 503;
    r->json = json_pack("{s:s, s:b, s:b}", "status", engine ? "ok" : "unavailable", "bus",
                        rep.replied, "engine", engine);
    if (!engine)
        json_object_set_new(r->json, "message", json_string(rep.message));
    hs_reply_release(&rep);
}
