/* enginestats.c — the engines' command counters for /metrics (docs/architecture.md,
 * "Engine metrics").
 *
 * Every engine publishes engine.<name>.stats every stats_every_s seconds and when it stops
 * cleanly: totals since it started, per command type and outcome, and a histogram of apply
 * latency. A thread here subscribes to them and keeps the latest per engine name; /metrics
 * renders them. The shim counts nothing itself: the totals are the engines'.
 *
 * Series stay monotonic: an event older than the one kept (a lower seq of the same run, or
 * an earlier run's late event) is ignored; a new run under the same name (--name) replaces
 * the old one, which Prometheus reads as a counter reset (its start time tells). An engine
 * not heard from for three of its periods is dropped (stopped or dead); if it comes back,
 * its totals carry on where they were. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "http/http.h"

#define S_POLL_MS     500
#define S_MISSED      3    /* periods without an event before an engine is dropped */
#define S_MIN_PERIOD  1000 /* ms; a period the event does not give (or gives < 1 s) */
#define S_TOPIC       "engine."
#define S_TOPIC_TAIL  ".stats"
#define S_MAX_ENGINES 256 /* a bound on labels: a new name waits until a silent one is dropped */

struct hs_engine_stats {
    hs_server *srv;
    pthread_t thread;
    pthread_mutex_t lock;
    json_t *engines; /* engine name -> {"data": the event's data, "seen_ms": monotonic} */
    volatile int stop;
};

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool s_is_stats_topic(const char *t, size_t len)
{
    size_t head = strlen(S_TOPIC), tail = strlen(S_TOPIC_TAIL);
    return len > head + tail && memcmp(t, S_TOPIC, head) == 0 &&
           memcmp(t + len - tail, S_TOPIC_TAIL, tail) == 0;
}

static json_int_t s_int(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* The event's data when it has the shape metrics.c packs, else NULL (owned). */
static json_t *s_decode(const void *body, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    json_t *ev = NULL;
    if (msgpack_unpack_next(&u, body, len, &off) == MSGPACK_UNPACK_SUCCESS)
        ev = ctl_to_json(&u.data);
    msgpack_unpacked_destroy(&u);
    json_t *data = json_incref(json_object_get(ev, "data"));
    if (json_is_object(data)) /* when it was packed: /metrics shows it */
        json_object_set_new(data, "ts", json_integer(s_int(ev, "ts")));
    json_decref(ev);
    if (!json_is_string(json_object_get(data, "engine")) ||
        !json_is_string(json_object_get(data, "instance")) ||
        !json_is_integer(json_object_get(data, "seq")) ||
        !json_is_object(json_object_get(data, "commands")) ||
        !json_is_array(json_object_get(json_object_get(data, "duration"), "buckets"))) {
        json_decref(data);
        return NULL;
    }
    return data;
}

/* Would data move its engine's series backwards? */
static bool s_is_stale(const json_t *kept, const json_t *data)
{
    if (!kept)
        return false;
    const char *was = json_string_value(json_object_get(kept, "instance"));
    if (strcmp(was, json_string_value(json_object_get(data, "instance"))) == 0)
        return s_int(data, "seq") <= s_int(kept, "seq");
    return s_int(data, "started") < s_int(kept, "started");
}

static void s_keep(hs_engine_stats *s, json_t *data)
{
    const char *name = json_string_value(json_object_get(data, "engine"));
    pthread_mutex_lock(&s->lock);
    json_t *entry = json_object_get(s->engines, name);
    bool room = entry || json_object_size(s->engines) < S_MAX_ENGINES;
    if (room && !s_is_stale(json_object_get(entry, "data"), data))
        json_object_set_new(s->engines, name,
                            json_pack("{s:O, s:I}", "data", data, "seen_ms", s_now_ms()));
    pthread_mutex_unlock(&s->lock);
}

static void s_receive(hs_engine_stats *s, const hs_event *ev)
{
    if (!s_is_stats_topic(ev->topic, strlen(ev->topic)))
        return;
    json_t *data = s_decode(ev->body, ev->len);
    if (data)
        s_keep(s, data);
    json_decref(data);
}

/* The event source, opened again a second later when it cannot open (a Kafka cluster not
 * reachable yet); the first failure is said on stderr. */
static hs_evsrc *s_open(hs_engine_stats *s, bool *said)
{
    static const char *const prefix[] = {S_TOPIC};
    char err[512];
    hs_evsrc *src = hs_evsrc_open(s->srv, prefix, 1, err, sizeof err);
    if (!src && !*said) {
        fprintf(stderr, "adminbus-http: cannot follow the engines' stats (retrying): %s\n", err);
        *said = true;
    }
    for (int i = 0; !src && i < 1000 / S_POLL_MS && !s->stop; i++)
        nanosleep(&(struct timespec){0, S_POLL_MS * 1000000L}, NULL);
    return src;
}

static void *s_listen(void *arg)
{
    hs_engine_stats *s = arg;
    hs_evsrc *src = NULL;
    bool said = false;
    while (!s->stop) {
        if (!src && !(src = s_open(s, &said)))
            continue;
        hs_event ev;
        if (hs_evsrc_next(src, S_POLL_MS, &ev) > 0)
            s_receive(s, &ev);
        hs_event_release(&ev);
    }
    hs_evsrc_close(src);
    return NULL;
}

hs_engine_stats *hs_engine_stats_start(hs_server *srv)
{
    hs_engine_stats *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->srv = srv;
    s->engines = json_object();
    pthread_mutex_init(&s->lock, NULL);
    if (!s->engines || pthread_create(&s->thread, NULL, s_listen, s) != 0) {
        json_decref(s->engines);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    return s;
}

void hs_engine_stats_stop(hs_engine_stats **sp)
{
    if (!sp || !*sp)
        return;
    hs_engine_stats *s = *sp;
    s->stop = 1;
    pthread_join(s->thread, NULL);
    json_decref(s->engines);
    pthread_mutex_destroy(&s->lock);
    free(s);
    *sp = NULL;
}

/* --- rendering --------------------------------------------------------------------------- */

void hs_label_value(FILE *f, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"')
            fputc('\\', f);
        if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void s_engine_label(FILE *f, const char *metric, const char *name)
{
    fprintf(f, "%s{engine=\"", metric);
    hs_label_value(f, name);
    fputc('"', f);
}

/* Engines heard from within three of their periods; the others are dropped. */
static void s_drop_silent(json_t *engines)
{
    int64_t now = s_now_ms();
    const char *name;
    json_t *e, *tmp;
    json_object_foreach_safe(engines, tmp, name, e)
    {
        json_int_t period = s_int(json_object_get(e, "data"), "period_ms");
        if (period < S_MIN_PERIOD)
            period = S_MIN_PERIOD;
        if (now - s_int(e, "seen_ms") > S_MISSED * period)
            json_object_del(engines, name);
    }
}

static void s_render_commands(FILE *f, json_t *engines)
{
    fputs("# HELP adminbus_commands_total Commands the engines answered since they started, by "
          "engine, type (unknown: not a catalog type) and outcome (ok, an error code, or "
          "replayed: a repeated id answered from its stored reply).\n"
          "# TYPE adminbus_commands_total counter\n",
          f);
    const char *name, *type, *outcome;
    json_t *e, *outcomes, *n;
    json_object_foreach(engines, name, e)
    {
        json_object_foreach(json_object_get(json_object_get(e, "data"), "commands"), type, outcomes)
        {
            json_object_foreach(outcomes, outcome, n)
            {
                s_engine_label(f, "adminbus_commands_total", name);
                fputs(",type=\"", f);
                hs_label_value(f, type);
                fputs("\",outcome=\"", f);
                hs_label_value(f, outcome);
                fprintf(f, "\"} %lld\n", (long long)json_integer_value(n));
            }
        }
    }
}

static void s_render_histogram(FILE *f, const char *name, const json_t *d)
{
    const json_t *le = json_object_get(d, "le"), *buckets = json_object_get(d, "buckets");
    size_t nb = json_array_size(buckets);
    if (nb == 0 || json_array_size(le) + 1 != nb)
        return;
    for (size_t b = 0; b < nb; b++) {
        s_engine_label(f, "adminbus_command_duration_seconds_bucket", name);
        if (b + 1 < nb)
            fprintf(f, ",le=\"%g\"}", json_number_value(json_array_get(le, b)));
        else
            fputs(",le=\"+Inf\"}", f);
        fprintf(f, " %lld\n", (long long)json_integer_value(json_array_get(buckets, b)));
    }
    s_engine_label(f, "adminbus_command_duration_seconds_sum", name);
    fprintf(f, "} %.6f\n", json_number_value(json_object_get(d, "sum")));
    s_engine_label(f, "adminbus_command_duration_seconds_count", name);
    fprintf(f, "} %lld\n", (long long)json_integer_value(json_array_get(buckets, nb - 1)));
}

static void s_render_durations(FILE *f, json_t *engines)
{
    fputs("# HELP adminbus_command_duration_seconds From an engine's receipt of a command's "
          "batch to its reply (the transaction included), by engine.\n"
          "# TYPE adminbus_command_duration_seconds histogram\n",
          f);
    const char *name;
    json_t *e;
    json_object_foreach(engines, name, e)
        s_render_histogram(f, name, json_object_get(json_object_get(e, "data"), "duration"));
}

/* Gauges of each engine's event: field (unix ms) as seconds. */
static void s_render_times(FILE *f, json_t *engines, const char *metric, const char *help,
                           const char *field)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", metric, help, metric);
    const char *name;
    json_t *e;
    json_object_foreach(engines, name, e)
    {
        s_engine_label(f, metric, name);
        fprintf(f, "} %.3f\n", (double)s_int(json_object_get(e, "data"), field) / 1000.0);
    }
}

void hs_engine_stats_render(hs_engine_stats *s, FILE *f)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s_drop_silent(s->engines);
    fprintf(f,
            "# HELP adminbus_engines Engines whose stats event came within three of their "
            "periods.\n# TYPE adminbus_engines gauge\nadminbus_engines %zu\n",
            json_object_size(s->engines));
    s_render_commands(f, s->engines);
    s_render_durations(f, s->engines);
    s_render_times(f, s->engines, "adminbus_engine_start_time_seconds",
                   "When the engine started (unix time): a change means its counters restarted.",
                   "started");
    s_render_times(f, s->engines, "adminbus_engine_stats_time_seconds",
                   "When the engine packed the stats shown here (unix time).", "ts");
    pthread_mutex_unlock(&s->lock);
}
