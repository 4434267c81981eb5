/* bench_jobs.c — adminbus-bench-jobs: durable no-op jobs per second and pick-up latency
 * (issue 3, acceptance 7), on adminbus and, with the same client and worker counts, on
 * beanstalkd and on Redis lists.
 *
 *   --mode bus: C client threads, each with its own DEALER socket, keep W `job.enqueue
 *     {type: noop}` commands in flight (a reply means the job is committed). The workers
 *     are adminbus-worker processes the runner started. Throughput is M jobs over the wall
 *     clock from the first enqueue to the last `done` as MariaDB recorded it
 *     (MAX(jobs.date_finished), read once all M are done: exact, and immune to a slow
 *     subscriber dropping events). Then pick-up latency: S jobs one at a time against idle
 *     workers, from the enqueue reply to the `job.<id>.started` event at a subscriber.
 *     With --drain, then the worker side alone: M more jobs enqueued with a run_at far
 *     enough ahead that all are in before the first is due; jobs/s from that run_at to
 *     the last `done` (the workers wake on their own look-ahead timer, no wake notice).
 *   --mode beanstalk | redis: the same M jobs put by C client threads (W pipelined puts
 *     each), taken by N worker threads (beanstalkd: reserve + delete; Redis: BLPOP, which
 *     is the whole of MISP's design: a popped job is gone), then S latency samples: put
 *     reply to the moment a blocked worker has the job. Minimal clients of the two text
 *     protocols over TCP, written here so that no client library differs in cost.
 *
 * Each mode prints a human line and one JSON line; tests/bench/run-jobs combines them. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <msgpack.h>
#include <mysql.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "benchutil.h"

#define UUID_LEN   36
#define IO_BUF     65536
#define BODY_MAX   256
#define PAUSE_US   5000 /* between latency samples: the workers are idle again */
#define QUEUE_NAME "bench"

typedef struct {
    const char *mode;
    const char *url, *events, *key, *dsn; /* bus */
    const char *host;                     /* beanstalk, redis */
    int port;
    int clients, workers, window, samples, timeout_s;
    int bulk;  /* jobs per enqueue command (job.enqueue_many, RPUSH of many, K puts) */
    long jobs; /* total, split across the clients */
    bool drain;
} options;

static options s_opt = {.host = "127.0.0.1",
                        .clients = 4,
                        .workers = 2,
                        .window = 64,
                        .bulk = 1,
                        .samples = 500,
                        .timeout_s = 30,
                        .jobs = 20000};
static atomic_bool s_failed;
static int64_t s_run_at_ms; /* bus: run_at of the enqueued jobs; 0 = now */
static pthread_mutex_t s_print_lock = PTHREAD_MUTEX_INITIALIZER;

/* --- common helpers ---------------------------------------------------------------- */

static void s_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&s_print_lock);
    fputs("adminbus-bench-jobs: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&s_print_lock);
    va_end(ap);
    atomic_store(&s_failed, true);
}

static double s_unix_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void s_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Keep the latest of several threads' end times. */
static void s_atomic_max(atomic_uint_fast64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);
    while (cur < v && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

/* Pick-up latencies: reply → taken (the acceptance figure, negative counts as 0: the
 * worker was faster than the reply), and send → taken (no such ambiguity). */
typedef struct {
    uint64_t *pickup_ns, *send_ns;
    int n, early; /* early: taken before the enqueue reply arrived */
} latencies;

static void s_lat_add(latencies *l, uint64_t sent, uint64_t replied, uint64_t taken)
{
    l->early += taken < replied;
    l->pickup_ns[l->n] = taken > replied ? taken - replied : 0;
    l->send_ns[l->n++] = taken - sent;
}

static int s_lat_init(latencies *l)
{
    *l = (latencies){.pickup_ns = calloc((size_t)s_opt.samples, sizeof(uint64_t)),
                     .send_ns = calloc((size_t)s_opt.samples, sizeof(uint64_t))};
    return l->pickup_ns && l->send_ns ? 0 : -1;
}

/* The mode's two lines: human, then JSON. */
static void s_report(const char *system, long jobs, double secs, double enqueue_secs, latencies *l,
                     const char *extra)
{
    double rate = secs > 0 ? (double)jobs / secs : 0.0;
    double erate = enqueue_secs > 0 ? (double)jobs / enqueue_secs : 0.0;
    double p50 = bench_percentile_ms(l->pickup_ns, (size_t)l->n, 0.50);
    double p99 = bench_percentile_ms(l->pickup_ns, (size_t)l->n, 0.99);
    double s50 = bench_percentile_ms(l->send_ns, (size_t)l->n, 0.50);
    double s99 = bench_percentile_ms(l->send_ns, (size_t)l->n, 0.99);
    printf(
        "%s: %ld jobs, %d clients x window %d x bulk %d, %d workers: %.0f jobs/s enqueue to done "
        "(%.2f s; enqueue alone %.0f/s); pick-up p50 %.3f ms, p99 %.3f ms "
        "(send to pick-up p50 %.3f, p99 %.3f; %d of %d picked up before the reply)\n",
        system, jobs, s_opt.clients, s_opt.window, s_opt.bulk, s_opt.workers, rate, secs, erate,
        p50, p99, s50, s99, l->early, l->n);
    printf("{\"system\":\"%s\",\"jobs\":%ld,\"clients\":%d,\"window\":%d,\"bulk\":%d,"
           "\"workers\":%d,"
           "\"seconds\":%.3f,\"jobs_per_s\":%.1f,\"enqueue_per_s\":%.1f,\"samples\":%d,"
           "\"pickup_p50_ms\":%.3f,\"pickup_p99_ms\":%.3f,\"send_pickup_p50_ms\":%.3f,"
           "\"send_pickup_p99_ms\":%.3f,\"early\":%d%s}\n",
           system, jobs, s_opt.clients, s_opt.window, s_opt.bulk, s_opt.workers, secs, rate, erate,
           l->n, p50, p99, s50, s99, l->early, extra ? extra : "");
}

/* --- bus: the wire format ------------------------------------------------------------ */

static void s_pack_noop(msgpack_packer *pk)
{
    msgpack_pack_map(pk, s_run_at_ms ? 2 : 1);
    bench_pack_str(pk, "type");
    bench_pack_str(pk, "noop");
    if (s_run_at_ms) {
        bench_pack_str(pk, "run_at");
        msgpack_pack_int64(pk, s_run_at_ms);
    }
}

/* {v, id, type: job.enqueue, args: {type: noop[, run_at]}, auth}, or for k > 1
 * {…, type: job.enqueue_many, args: {jobs: [k of those args]}, …} */
static void s_pack_enqueue(msgpack_sbuffer *buf, const char *id, int k)
{
    msgpack_sbuffer_clear(buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    bench_pack_str(&pk, "v");
    msgpack_pack_int(&pk, 1);
    bench_pack_str(&pk, "id");
    bench_pack_str(&pk, id);
    bench_pack_str(&pk, "type");
    bench_pack_str(&pk, k > 1 ? "job.enqueue_many" : "job.enqueue");
    bench_pack_str(&pk, "args");
    if (k > 1) {
        msgpack_pack_map(&pk, 1);
        bench_pack_str(&pk, "jobs");
        msgpack_pack_array(&pk, (uint32_t)k);
        for (int i = 0; i < k; i++)
            s_pack_noop(&pk);
    } else {
        s_pack_noop(&pk);
    }
    bench_pack_str(&pk, "auth");
    bench_pack_str(&pk, s_opt.key);
}

/* The job ids of an ok reply to job.enqueue (id) or job.enqueue_many (ids): their number,
 * with the lowest and highest in *lo, *hi; 0 (and a failure) otherwise. */
static int s_reply_job_ids(const char *data, size_t len, uint64_t *lo, uint64_t *hi)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int n = 0;
    *lo = UINT64_MAX;
    *hi = 0;
    if (msgpack_unpack_next(&u, data, len, NULL) == MSGPACK_UNPACK_SUCCESS) {
        const msgpack_object *ok = bench_map_get(&u.data, "ok");
        const msgpack_object *r = bench_map_get(&u.data, "result");
        const msgpack_object *jid = r ? bench_map_get(r, "id") : NULL;
        const msgpack_object *ids = r ? bench_map_get(r, "ids") : NULL;
        bool good = ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
        uint32_t count = ids && ids->type == MSGPACK_OBJECT_ARRAY ? ids->via.array.size : 1;
        for (uint32_t i = 0; good && i < count; i++) {
            const msgpack_object *v = ids ? &ids->via.array.ptr[i] : jid;
            if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                n = 0;
                break;
            }
            *lo = v->via.u64 < *lo ? v->via.u64 : *lo;
            *hi = v->via.u64 > *hi ? v->via.u64 : *hi;
            n++;
        }
    }
    if (!n) {
        char text[1024] = "";
        msgpack_object_print_buffer(text, sizeof text, u.data);
        s_failf("job.enqueue: not an ok reply with job ids: %s", text);
    }
    msgpack_unpacked_destroy(&u);
    return n;
}

static void *s_dealer(void *ctx)
{
    void *z = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    if (z)
        zmq_setsockopt(z, ZMQ_LINGER, &linger, sizeof linger);
    if (z && zmq_connect(z, s_opt.url) == 0)
        return z;
    s_failf("connect %s: %s", s_opt.url, zmq_strerror(errno));
    if (z)
        zmq_close(z);
    return NULL;
}

static int s_send_enqueue(void *z, msgpack_sbuffer *buf, uint64_t *rng, int k)
{
    char id[UUID_LEN + 1];
    bench_uuid4(rng, id);
    s_pack_enqueue(buf, id, k);
    if (zmq_send(z, "", 0, ZMQ_SNDMORE) < 0 || zmq_send(z, buf->data, buf->size, 0) < 0) {
        s_failf("send: %s", zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* Read one [empty][reply]: the number of its job ids (range in *lo, *hi), 0 on failure. */
static int s_recv_enqueue(void *z, uint64_t *lo, uint64_t *hi)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    int id = 0;
    if (zmq_msg_recv(&part, z, 0) >= 0 && zmq_msg_size(&part) == 0 && zmq_msg_more(&part)) {
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, z, 0) >= 0)
            id = s_reply_job_ids(zmq_msg_data(&part), zmq_msg_size(&part), lo, hi);
    } else {
        s_failf("recv: not an [empty][body] reply (%s)", zmq_strerror(errno));
    }
    zmq_msg_close(&part);
    return id;
}

static bool s_readable(void *z, long timeout_ms)
{
    zmq_pollitem_t item = {.socket = z, .events = ZMQ_POLLIN};
    return zmq_poll(&item, 1, timeout_ms) == 1;
}

/* --- bus: throughput ----------------------------------------------------------------- */

typedef struct {
    void *ctx;
    long todo;
    atomic_uint_fast64_t *lo, *hi; /* the range of job ids enqueued, for the count */
    uint64_t first_ns, last_ns;
    double first_unix;
} bus_client;

static void s_atomic_min(atomic_uint_fast64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load(a);
    while (cur > v && !atomic_compare_exchange_weak(a, &cur, v))
        ;
}

static int s_bus_client_run(bus_client *c, void *z)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    uint64_t rng = bench_seed();
    long sent = 0, done = 0, inflight = 0; /* jobs sent, jobs acknowledged; commands */
    c->first_ns = bench_now_ns();
    c->first_unix = s_unix_s();
    while (done < c->todo && !atomic_load(&s_failed)) {
        while (sent < c->todo && inflight < s_opt.window) {
            int k = c->todo - sent < s_opt.bulk ? (int)(c->todo - sent) : s_opt.bulk;
            if (s_send_enqueue(z, &buf, &rng, k) < 0)
                break;
            sent += k;
            inflight++;
        }
        if (!s_readable(z, (long)s_opt.timeout_s * 1000)) {
            s_failf("no enqueue reply within %d s (%ld done)", s_opt.timeout_s, done);
            break;
        }
        do {
            uint64_t lo, hi;
            int n = s_recv_enqueue(z, &lo, &hi);
            if (!n)
                break;
            s_atomic_min(c->lo, lo);
            s_atomic_max(c->hi, hi);
            done += n;
            inflight--;
        } while (inflight > 0 && s_readable(z, 0));
    }
    c->last_ns = bench_now_ns();
    msgpack_sbuffer_destroy(&buf);
    return done == c->todo ? 0 : -1;
}

static void *s_bus_client_thread(void *arg)
{
    bus_client *c = arg;
    void *z = s_dealer(c->ctx);
    if (z) {
        s_bus_client_run(c, z);
        zmq_close(z);
    }
    return NULL;
}

/* Pipelined enqueues from C threads; *first_unix is when the first was sent. */
static int s_bus_enqueue_all(void *ctx, uint64_t *lo, uint64_t *hi, double *first_unix,
                             double *enqueue_secs)
{
    atomic_uint_fast64_t alo = UINT64_MAX, ahi = 0;
    bus_client *cl = calloc((size_t)s_opt.clients, sizeof *cl);
    pthread_t *th = calloc((size_t)s_opt.clients, sizeof *th);
    for (int i = 0; i < s_opt.clients; i++) {
        cl[i] = (bus_client){ctx, bench_share(s_opt.jobs, s_opt.clients, i), &alo, &ahi, 0, 0, 0};
        pthread_create(&th[i], NULL, s_bus_client_thread, &cl[i]);
    }
    uint64_t first = UINT64_MAX, last = 0;
    *first_unix = 1e18;
    for (int i = 0; i < s_opt.clients; i++) {
        pthread_join(th[i], NULL);
        first = cl[i].first_ns < first ? cl[i].first_ns : first;
        last = cl[i].last_ns > last ? cl[i].last_ns : last;
        *first_unix = cl[i].first_unix < *first_unix ? cl[i].first_unix : *first_unix;
    }
    *lo = atomic_load(&alo);
    *hi = atomic_load(&ahi);
    *enqueue_secs = (double)(last - first) / 1e9;
    free(cl);
    free(th);
    return atomic_load(&s_failed) ? -1 : 0;
}

/* --- bus: counting in MariaDB -------------------------------------------------------- */

static MYSQL *s_db_open(void)
{
    char err[512];
    MYSQL *m = bench_mysql_connect(s_opt.dsn, NULL, err, sizeof err);
    if (!m)
        s_failf("--dsn: %s", err);
    return m;
}

typedef struct {
    long done, ended_badly;
    double last_finished_unix;
} job_counts;

/* Counts of the jobs lo..hi (ids only, no user text: a plain query is safe here). */
static int s_db_counts(MYSQL *m, uint64_t lo, uint64_t hi, job_counts *out)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT COALESCE(SUM(state = 'done'), 0), "
             "COALESCE(SUM(state IN ('failed', 'cancelled')), 0), "
             "COALESCE(UNIX_TIMESTAMP(MAX(date_finished)), 0) FROM jobs "
             "WHERE id BETWEEN %" PRIu64 " AND %" PRIu64 " AND job_type = 'noop'",
             lo, hi);
    MYSQL_RES *res = NULL;
    MYSQL_ROW row = NULL;
    if (mysql_query(m, sql) != 0 || !(res = mysql_store_result(m)) ||
        !(row = mysql_fetch_row(res))) {
        s_failf("count: %s", mysql_error(m));
        mysql_free_result(res);
        return -1;
    }
    *out = (job_counts){atol(row[0]), atol(row[1]), atof(row[2])};
    mysql_free_result(res);
    return 0;
}

/* Wait until every job of lo..hi has ended; 0 when all M are done. */
static int s_db_wait_done(MYSQL *m, uint64_t lo, uint64_t hi, job_counts *c)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)s_opt.timeout_s * 1000000000u;
    long seen = -1;
    for (;;) {
        if (s_db_counts(m, lo, hi, c) < 0)
            return -1;
        if (c->done + c->ended_badly >= s_opt.jobs)
            break;
        if (c->done != seen) /* progress: the timeout counts from the last one */
            deadline = bench_now_ns() + (uint64_t)s_opt.timeout_s * 1000000000u;
        seen = c->done;
        if (bench_now_ns() > deadline) {
            s_failf("only %ld of %ld jobs done after %d s without progress", c->done, s_opt.jobs,
                    s_opt.timeout_s);
            return -1;
        }
        s_sleep_us(100000); /* each count reads M rows: keep it off the workers' cores */
    }
    if (c->ended_badly || c->done != s_opt.jobs || hi - lo + 1 != (uint64_t)s_opt.jobs) {
        s_failf("%ld done, %ld failed or cancelled, ids %" PRIu64 "..%" PRIu64 " for %ld jobs",
                c->done, c->ended_badly, lo, hi, s_opt.jobs);
        return -1;
    }
    return 0;
}

/* --- bus: pick-up latency ------------------------------------------------------------ */

/* From "job.<id>.<event>": the id when event is `want`, else 0. */
static uint64_t s_topic_job(const char *t, size_t n, const char *want)
{
    char topic[96];
    if (n >= sizeof topic || n < 5 || memcmp(t, "job.", 4) != 0)
        return 0;
    memcpy(topic, t, n);
    topic[n] = '\0';
    char *end = NULL;
    unsigned long long id = strtoull(topic + 4, &end, 10);
    return end && *end == '.' && strcmp(end + 1, want) == 0 ? (uint64_t)id : 0;
}

/* Read one [topic][body] event: the job id if it is a `started` event. */
static uint64_t s_sub_started(void *sub)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    uint64_t id = 0;
    if (zmq_msg_recv(&part, sub, 0) >= 0)
        id = s_topic_job(zmq_msg_data(&part), zmq_msg_size(&part), "started");
    while (zmq_msg_more(&part)) {
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        zmq_msg_recv(&part, sub, 0);
    }
    zmq_msg_close(&part);
    return id;
}

/* Subscriptions travel upstream: enqueue until a job event arrives. */
static int s_sub_settle(void *z, void *sub)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    uint64_t rng = bench_seed();
    int rc = -1;
    for (int i = 0; i < 100 && rc < 0; i++) {
        uint64_t lo, hi;
        if (s_send_enqueue(z, &buf, &rng, 1) < 0 || !s_readable(z, 10000) ||
            !s_recv_enqueue(z, &lo, &hi))
            break;
        while (s_readable(sub, 100)) {
            s_sub_started(sub);
            rc = 0;
        }
    }
    msgpack_sbuffer_destroy(&buf);
    if (rc < 0)
        s_failf("no event reached the subscriber at %s", s_opt.events);
    return rc;
}

/* One sample: enqueue, then wait for the reply and the job's started event, which may
 * come first (both travel through the broker): every started event is kept with its time
 * until the reply names the job. */
static int s_bus_sample(void *z, void *sub, msgpack_sbuffer *buf, uint64_t *rng, latencies *l)
{
    struct {
        uint64_t id, at;
    } seen[16];
    int nseen = 0;
    uint64_t sent = bench_now_ns(), replied = 0, started = 0, id = 0;
    if (s_send_enqueue(z, buf, rng, 1) < 0)
        return -1;
    uint64_t deadline = sent + (uint64_t)s_opt.timeout_s * 1000000000u;
    while ((!replied || !started) && bench_now_ns() < deadline) {
        zmq_pollitem_t items[2] = {{.socket = z, .events = ZMQ_POLLIN},
                                   {.socket = sub, .events = ZMQ_POLLIN}};
        if (zmq_poll(items, 2, 100) < 0)
            return -1;
        uint64_t now = bench_now_ns();
        if ((items[0].revents & ZMQ_POLLIN) && !replied) {
            uint64_t hi;
            if (!s_recv_enqueue(z, &id, &hi))
                return -1;
            replied = now;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            uint64_t sid = s_sub_started(sub);
            if (sid && nseen < 16)
                seen[nseen++].id = sid, seen[nseen - 1].at = now;
        }
        for (int i = 0; i < nseen && id && !started; i++)
            started = seen[i].id == id ? seen[i].at : 0;
    }
    if (!replied || !started) {
        s_failf("sample: no %s within %d s", replied ? "started event" : "reply", s_opt.timeout_s);
        return -1;
    }
    s_lat_add(l, sent, replied, started);
    return 0;
}

static void *s_subscriber(void *ctx)
{
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "job.", 4);
    if (zmq_connect(sub, s_opt.events) == 0)
        return sub;
    s_failf("connect %s: %s", s_opt.events, zmq_strerror(errno));
    zmq_close(sub);
    return NULL;
}

static int s_bus_latency(void *ctx, latencies *l)
{
    void *z = s_dealer(ctx), *sub = s_subscriber(ctx);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    uint64_t rng = bench_seed();
    int rc = z && sub ? s_sub_settle(z, sub) : -1;
    s_sleep_us(200000); /* the settling jobs are done: the workers are idle */
    while (s_readable(sub, 0))
        s_sub_started(sub);
    for (int i = 0; i < s_opt.samples && rc == 0; i++) {
        rc = s_bus_sample(z, sub, &buf, &rng, l);
        s_sleep_us(PAUSE_US);
    }
    msgpack_sbuffer_destroy(&buf);
    if (z)
        zmq_close(z);
    if (sub)
        zmq_close(sub);
    return rc;
}

/* The worker side alone: M jobs due at one moment, all enqueued before it. Appends the
 * figures to extra (JSON members). */
static int s_bus_drain(MYSQL *m, void *ctx, char *extra, size_t len)
{
    double now = s_unix_s(), first_unix = 0, enqueue_secs = 0;
    /* Enqueueing has run at 2,000-4,000/s here: twice the time that needs, and 2 s more. */
    double due = now + (double)s_opt.jobs / 1000.0 + 2.0;
    s_run_at_ms = (int64_t)(due * 1000.0);
    uint64_t lo = 0, hi = 0;
    job_counts c = {0};
    int rc = s_bus_enqueue_all(ctx, &lo, &hi, &first_unix, &enqueue_secs);
    bool overlap = first_unix + enqueue_secs > due; /* some were not in yet at run_at */
    s_run_at_ms = 0;
    while (rc == 0 && s_unix_s() < due) /* no progress before it: not a stall */
        s_sleep_us(50000);
    if (rc == 0)
        rc = s_db_wait_done(m, lo, hi, &c);
    if (rc < 0)
        return -1;
    double secs = c.last_finished_unix - due, rate = secs > 0 ? (double)s_opt.jobs / secs : 0;
    printf("adminbus drain: %ld jobs due at once: %.0f jobs/s from run_at to the last done "
           "(%.2f s)%s\n",
           s_opt.jobs, rate, secs,
           overlap ? "; WARNING: enqueueing was still running at run_at" : "");
    snprintf(extra, len, ",\"drain_jobs_per_s\":%.1f,\"drain_overlap\":%s", rate,
             overlap ? "true" : "false");
    return 0;
}

static int s_run_bus(void)
{
    if (!s_opt.url || !s_opt.events || !s_opt.key || !s_opt.dsn) {
        fprintf(stderr, "adminbus-bench-jobs: --mode bus needs --url, --events, --dsn and "
                        "--key (or ADMINBUS_AUTHKEY)\n");
        return 2;
    }
    MYSQL *m = s_db_open();
    void *ctx = zmq_ctx_new();
    uint64_t lo = 0, hi = 0;
    double first_unix = 0, enqueue_secs = 0;
    job_counts c = {0};
    latencies l;
    int rc = m && s_lat_init(&l) == 0 ? 0 : -1;
    if (rc == 0)
        rc = s_bus_enqueue_all(ctx, &lo, &hi, &first_unix, &enqueue_secs);
    if (rc == 0)
        rc = s_db_wait_done(m, lo, hi, &c);
    if (rc == 0)
        rc = s_bus_latency(ctx, &l);
    char extra[128] = "";
    if (rc == 0 && s_opt.drain)
        rc = s_bus_drain(m, ctx, extra, sizeof extra);
    if (rc == 0)
        s_report("adminbus", s_opt.jobs, c.last_finished_unix - first_unix, enqueue_secs, &l,
                 extra);
    zmq_ctx_term(ctx);
    mysql_close(m);
    return rc == 0 && !atomic_load(&s_failed) ? 0 : 1;
}

/* --- a buffered TCP connection ------------------------------------------------------- */

typedef struct {
    int fd;
    size_t r, n, on; /* input read position and fill; output fill */
    char in[IO_BUF], out[IO_BUF];
} conn;

static conn *s_conn_open(void)
{
    conn *c = calloc(1, sizeof *c);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s_opt.port)};
    int one = 1;
    struct timeval tv = {s_opt.timeout_s, 0};
    if (!c || inet_pton(AF_INET, s_opt.host, &a.sin_addr) != 1 ||
        (c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
        s_failf("connect %s:%d: %s", s_opt.host, s_opt.port, strerror(errno));
        if (c && c->fd > 0)
            close(c->fd);
        free(c);
        return NULL;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv); /* a dead server fails us */
    return c;
}

static void s_conn_close(conn *c)
{
    if (c) {
        close(c->fd);
        free(c);
    }
}

static int s_flush(conn *c);

/* Buffer output; a full buffer is written out first (pipelines of many puts). */
static void s_out(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_out(conn *c, const char *fmt, ...)
{
    for (int tries = 0; tries < 2; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(c->out + c->on, sizeof c->out - c->on, fmt, ap);
        va_end(ap);
        if (n > 0 && (size_t)n < sizeof c->out - c->on) {
            c->on += (size_t)n;
            return;
        }
        if (c->on == 0 || s_flush(c) < 0)
            break;
    }
    s_failf("output line too long for the buffer");
}

static int s_flush(conn *c)
{
    size_t off = 0;
    while (off < c->on) {
        ssize_t w = write(c->fd, c->out + off, c->on - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s_failf("write: %s", strerror(errno));
            return -1;
        }
        off += (size_t)w;
    }
    c->on = 0;
    return 0;
}

static int s_fill(conn *c)
{
    if (c->r > 0) {
        memmove(c->in, c->in + c->r, c->n - c->r);
        c->n -= c->r;
        c->r = 0;
    }
    ssize_t got;
    do
        got = read(c->fd, c->in + c->n, sizeof c->in - c->n);
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
        s_failf("read: %s", got == 0 ? "connection closed" : strerror(errno));
        return -1;
    }
    c->n += (size_t)got;
    return 0;
}

/* True when a whole line is buffered (no read needed). */
static bool s_has_line(const conn *c)
{
    return memchr(c->in + c->r, '\n', c->n - c->r) != NULL;
}

/* One CRLF-terminated line, without its CRLF, NUL-terminated in line. */
static int s_line(conn *c, char *line, size_t cap)
{
    char *nl;
    while (!(nl = memchr(c->in + c->r, '\n', c->n - c->r)))
        if (s_fill(c) < 0)
            return -1;
    size_t len = (size_t)(nl - (c->in + c->r));
    size_t keep = len > 0 && nl[-1] == '\r' ? len - 1 : len;
    keep = keep < cap ? keep : cap - 1;
    memcpy(line, c->in + c->r, keep);
    line[keep] = '\0';
    c->r += len + 1;
    return 0;
}

/* n bytes and the CRLF after them; the first cap - 1 go to out, NUL-terminated. */
static int s_bytes(conn *c, size_t n, char *out, size_t cap)
{
    while (c->n - c->r < n + 2)
        if (s_fill(c) < 0)
            return -1;
    size_t keep = n < cap ? n : cap - 1;
    memcpy(out, c->in + c->r, keep);
    out[keep] = '\0';
    c->r += n + 2;
    return 0;
}

/* --- the two protocols --------------------------------------------------------------- */

typedef struct {
    const char *name;
    void (*put)(conn *c, const char *body, size_t len); /* buffered, not flushed */
    /* k jobs in one command with one reply (NULL: k puts, k replies) */
    void (*put_many)(conn *c, const char *body, size_t len, int k);
    int (*put_reply)(conn *c);
    int (*take)(conn *c, uint64_t *id, char *body, size_t cap); /* 1, 0 = timeout, -1 */
    int (*ack)(conn *c, uint64_t id);
} protocol;

/* beanstalkd: put <pri> <delay> <ttr> <bytes> → INSERTED <id> */
static void s_bs_put(conn *c, const char *body, size_t len)
{
    s_out(c, "put 1024 0 60 %zu\r\n%s\r\n", len, body);
}

static int s_bs_put_reply(conn *c)
{
    char line[128];
    if (s_line(c, line, sizeof line) < 0)
        return -1;
    if (strncmp(line, "INSERTED ", 9) == 0)
        return 0;
    s_failf("beanstalkd put: %s", line);
    return -1;
}

/* reserve-with-timeout 1 → RESERVED <id> <bytes>\r\n<body>\r\n | TIMED_OUT */
static int s_bs_take(conn *c, uint64_t *id, char *body, size_t cap)
{
    char line[128];
    unsigned long long jid = 0;
    size_t bytes = 0;
    s_out(c, "reserve-with-timeout 1\r\n");
    if (s_flush(c) < 0 || s_line(c, line, sizeof line) < 0)
        return -1;
    if (strcmp(line, "TIMED_OUT") == 0 || strcmp(line, "DEADLINE_SOON") == 0)
        return 0;
    if (sscanf(line, "RESERVED %llu %zu", &jid, &bytes) != 2) {
        s_failf("beanstalkd reserve: %s", line);
        return -1;
    }
    *id = jid;
    return s_bytes(c, bytes, body, cap) < 0 ? -1 : 1;
}

static int s_bs_ack(conn *c, uint64_t id)
{
    char line[128];
    s_out(c, "delete %" PRIu64 "\r\n", id);
    if (s_flush(c) < 0 || s_line(c, line, sizeof line) < 0)
        return -1;
    if (strcmp(line, "DELETED") == 0)
        return 0;
    s_failf("beanstalkd delete: %s", line);
    return -1;
}

/* Redis: RPUSH bench <body> → :<length> */
static void s_rd_put(conn *c, const char *body, size_t len)
{
    s_out(c, "*3\r\n$5\r\nRPUSH\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(QUEUE_NAME), QUEUE_NAME,
          len, body);
}

/* RPUSH bench <body> × k → :<length>: one command, one fsync, one reply */
static void s_rd_put_many(conn *c, const char *body, size_t len, int k)
{
    s_out(c, "*%d\r\n$5\r\nRPUSH\r\n$%zu\r\n%s\r\n", 2 + k, strlen(QUEUE_NAME), QUEUE_NAME);
    for (int i = 0; i < k; i++)
        s_out(c, "$%zu\r\n%s\r\n", len, body);
}

static int s_rd_put_reply(conn *c)
{
    char line[128];
    if (s_line(c, line, sizeof line) < 0)
        return -1;
    if (line[0] == ':')
        return 0;
    s_failf("redis RPUSH: %s", line);
    return -1;
}

/* BLPOP bench 1 → *2 [key, body] | *-1 (timeout). The id is the body's sample number. */
static int s_rd_take(conn *c, uint64_t *id, char *body, size_t cap)
{
    char line[128], key[64];
    size_t klen = 0, blen = 0;
    s_out(c, "*3\r\n$5\r\nBLPOP\r\n$%zu\r\n%s\r\n$1\r\n1\r\n", strlen(QUEUE_NAME), QUEUE_NAME);
    if (s_flush(c) < 0 || s_line(c, line, sizeof line) < 0)
        return -1;
    if (strcmp(line, "*-1") == 0)
        return 0;
    if (strcmp(line, "*2") != 0 || s_line(c, line, sizeof line) < 0 ||
        sscanf(line, "$%zu", &klen) != 1 || s_bytes(c, klen, key, sizeof key) < 0 ||
        s_line(c, line, sizeof line) < 0 || sscanf(line, "$%zu", &blen) != 1 ||
        s_bytes(c, blen, body, cap) < 0) {
        s_failf("redis BLPOP: unexpected reply '%s'", line);
        return -1;
    }
    *id = 0;
    return 1;
}

static int s_rd_ack(conn *c, uint64_t id)
{
    (void)c, (void)id; /* a popped job is gone: MISP's design has no acknowledgement */
    return 0;
}

static const protocol s_beanstalk = {"beanstalkd",   s_bs_put,  NULL,
                                     s_bs_put_reply, s_bs_take, s_bs_ack};
static const protocol s_redis = {"redis",        s_rd_put,  s_rd_put_many,
                                 s_rd_put_reply, s_rd_take, s_rd_ack};

/* --- queues: throughput and latency -------------------------------------------------- */

/* The body: "noop <sample>" padded like a small job payload; sample -1 in throughput runs. */
static size_t s_body(char *out, size_t cap, long sample)
{
    return (size_t)snprintf(out, cap, "{\"type\":\"noop\",\"args\":{},\"sample\":%ld}", sample);
}

typedef struct {
    const protocol *p;
    atomic_long taken;            /* jobs taken and acknowledged */
    atomic_uint_fast64_t last_ns; /* when the last one was */
    atomic_bool stop;             /* workers: leave when idle */
    pthread_mutex_t mu;           /* latency: the taken time of the current sample */
    pthread_cond_t cv;
    long sample;
    uint64_t sample_taken_ns;
} queue_run;

typedef struct {
    queue_run *q;
    conn *c;
    long todo;
    uint64_t first_ns, last_ns;
} queue_client;

static void s_note_sample(queue_run *q, const char *body, uint64_t now)
{
    const char *s = strstr(body, "\"sample\":");
    long sample = s ? strtol(s + 9, NULL, 10) : -1;
    if (sample < 0)
        return;
    pthread_mutex_lock(&q->mu);
    if (sample == q->sample) {
        q->sample_taken_ns = now;
        pthread_cond_signal(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
}

static void *s_queue_worker(void *arg)
{
    queue_run *q = arg;
    conn *c = s_conn_open();
    char body[BODY_MAX];
    while (c && !atomic_load(&q->stop) && !atomic_load(&s_failed)) {
        uint64_t id = 0;
        int got = q->p->take(c, &id, body, sizeof body);
        if (got < 0 || (got == 1 && q->p->ack(c, id) < 0))
            break;
        if (got == 0)
            continue;
        uint64_t now = bench_now_ns();
        s_note_sample(q, body, now);
        atomic_fetch_add(&q->taken, 1);
        s_atomic_max(&q->last_ns, now);
    }
    s_conn_close(c);
    return NULL;
}

/* W puts in flight: refill the window, then read every reply already buffered. */
static void *s_queue_client(void *arg)
{
    queue_client *qc = arg;
    char body[BODY_MAX];
    size_t len = s_body(body, sizeof body, -1);
    const protocol *p = qc->q->p;
    long sent = 0, done = 0; /* replies: one per job, or one per command of put_many */
    long todo = p->put_many ? (qc->todo + s_opt.bulk - 1) / s_opt.bulk : qc->todo;
    long window = p->put_many ? s_opt.window : (long)s_opt.window * s_opt.bulk;
    long jobs = 0;
    qc->first_ns = bench_now_ns();
    while (done < todo && !atomic_load(&s_failed)) {
        for (; sent < todo && sent - done < window; sent++) {
            int k = qc->todo - jobs < s_opt.bulk ? (int)(qc->todo - jobs) : s_opt.bulk;
            if (p->put_many && k > 1)
                p->put_many(qc->c, body, len, k);
            else
                p->put(qc->c, body, len);
            jobs += p->put_many ? k : 1;
        }
        if (s_flush(qc->c) < 0 || p->put_reply(qc->c) < 0)
            break;
        for (done++; done < sent && s_has_line(qc->c); done++)
            if (p->put_reply(qc->c) < 0)
                return NULL;
    }
    qc->last_ns = bench_now_ns();
    return NULL;
}

/* Wait until the workers took all M jobs; seconds from the first put to the last take. */
static int s_queue_throughput(queue_run *q, double *secs, double *enqueue_secs)
{
    queue_client *cl = calloc((size_t)s_opt.clients, sizeof *cl);
    pthread_t *th = calloc((size_t)s_opt.clients, sizeof *th);
    int started = 0;
    for (int i = 0; i < s_opt.clients; i++, started++) {
        cl[i] = (queue_client){q, s_conn_open(), bench_share(s_opt.jobs, s_opt.clients, i), 0, 0};
        if (!cl[i].c)
            break;
        pthread_create(&th[i], NULL, s_queue_client, &cl[i]);
    }
    uint64_t first = UINT64_MAX, last = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        s_conn_close(cl[i].c);
        first = cl[i].first_ns < first ? cl[i].first_ns : first;
        last = cl[i].last_ns > last ? cl[i].last_ns : last;
    }
    free(cl);
    free(th);
    uint64_t deadline = bench_now_ns() + (uint64_t)s_opt.timeout_s * 1000000000u;
    while (atomic_load(&q->taken) < s_opt.jobs && !atomic_load(&s_failed) &&
           bench_now_ns() < deadline)
        s_sleep_us(1000);
    if (atomic_load(&q->taken) != s_opt.jobs) {
        s_failf("%s: %ld of %ld jobs taken", q->p->name, (long)atomic_load(&q->taken), s_opt.jobs);
        return -1;
    }
    *secs = (double)(atomic_load(&q->last_ns) - first) / 1e9;
    *enqueue_secs = (double)(last - first) / 1e9;
    return 0;
}

/* One job at a time to idle workers: put reply → a worker has it. */
static int s_queue_latency(queue_run *q, latencies *l)
{
    conn *c = s_conn_open();
    char body[BODY_MAX];
    for (long i = 0; c && i < s_opt.samples && !atomic_load(&s_failed); i++) {
        size_t len = s_body(body, sizeof body, i);
        pthread_mutex_lock(&q->mu);
        q->sample = i;
        q->sample_taken_ns = 0;
        pthread_mutex_unlock(&q->mu);
        uint64_t sent = bench_now_ns();
        q->p->put(c, body, len);
        if (s_flush(c) < 0 || q->p->put_reply(c) < 0)
            break;
        uint64_t replied = bench_now_ns();
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += s_opt.timeout_s;
        pthread_mutex_lock(&q->mu);
        while (!q->sample_taken_ns && pthread_cond_timedwait(&q->cv, &q->mu, &until) != ETIMEDOUT)
            ;
        uint64_t taken = q->sample_taken_ns;
        pthread_mutex_unlock(&q->mu);
        if (!taken) {
            s_failf("%s: sample %ld not taken within %d s", q->p->name, i, s_opt.timeout_s);
            break;
        }
        s_lat_add(l, sent, replied, taken);
        s_sleep_us(PAUSE_US);
    }
    s_conn_close(c);
    return l->n == s_opt.samples ? 0 : -1;
}

static int s_run_queue(const protocol *p)
{
    queue_run q = {.p = p, .sample = -1};
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    pthread_t *th = calloc((size_t)s_opt.workers, sizeof *th);
    latencies l;
    int rc = s_lat_init(&l);
    for (int i = 0; i < s_opt.workers; i++)
        pthread_create(&th[i], NULL, s_queue_worker, &q);
    double secs = 0, enqueue_secs = 0;
    if (rc == 0)
        rc = s_queue_throughput(&q, &secs, &enqueue_secs);
    if (rc == 0)
        rc = s_queue_latency(&q, &l);
    atomic_store(&q.stop, true); /* workers leave within their 1 s take timeout */
    for (int i = 0; i < s_opt.workers; i++)
        pthread_join(th[i], NULL);
    if (rc == 0 && !atomic_load(&s_failed))
        s_report(p->name, s_opt.jobs, secs, enqueue_secs, &l, NULL);
    free(th);
    free(l.pickup_ns);
    free(l.send_ns);
    return rc == 0 && !atomic_load(&s_failed) ? 0 : 1;
}

/* --- options ------------------------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fputs("usage: adminbus-bench-jobs --mode bus --url URL --events URL --dsn DSN [options]\n"
          "       adminbus-bench-jobs --mode beanstalk|redis --port PORT [options]\n"
          "  --jobs M       no-op jobs in total, split across the clients (default 20000)\n"
          "  --clients C    enqueueing clients (default 4)\n"
          "  --window W     enqueues in flight per client (default 64)\n"
          "  --workers N    beanstalk, redis: worker threads (bus: the runner's worker\n"
          "                 processes; only reported) (default 2)\n"
          "  --samples S    pick-up latency samples, one job at a time (default 500)\n"
          "  --host ADDR    beanstalk, redis: IPv4 address (default 127.0.0.1)\n"
          "  --key AUTHKEY  bus: the site admin's authkey (default $ADMINBUS_AUTHKEY)\n"
          "  --timeout S    seconds without progress before failing (default 30)\n"
          "  --drain        bus: then M jobs due at one moment (the worker side alone)\n"
          "  --bulk K       jobs per enqueue command (default 1): job.enqueue_many of K, one\n"
          "                 RPUSH of K values, K pipelined beanstalkd puts\n"
          "Exit 0 when every job ran, 1 otherwise, 2 on usage.\n",
          f);
}

static int s_parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"mode", 1, NULL, 'm'},    {"url", 1, NULL, 'u'},     {"events", 1, NULL, 'e'},
        {"key", 1, NULL, 'k'},     {"dsn", 1, NULL, 'd'},     {"host", 1, NULL, 'H'},
        {"port", 1, NULL, 'p'},    {"clients", 1, NULL, 'c'}, {"workers", 1, NULL, 'n'},
        {"window", 1, NULL, 'w'},  {"jobs", 1, NULL, 'j'},    {"samples", 1, NULL, 's'},
        {"timeout", 1, NULL, 'T'}, {"help", 0, NULL, 'h'},    {"drain", 0, NULL, 'D'},
        {"bulk", 1, NULL, 'b'},    {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            s_opt.mode = optarg;
            break;
        case 'u':
            s_opt.url = optarg;
            break;
        case 'e':
            s_opt.events = optarg;
            break;
        case 'k':
            s_opt.key = optarg;
            break;
        case 'd':
            s_opt.dsn = optarg;
            break;
        case 'H':
            s_opt.host = optarg;
            break;
        case 'p':
            s_opt.port = atoi(optarg);
            break;
        case 'c':
            s_opt.clients = atoi(optarg);
            break;
        case 'n':
            s_opt.workers = atoi(optarg);
            break;
        case 'w':
            s_opt.window = atoi(optarg);
            break;
        case 'j':
            s_opt.jobs = atol(optarg);
            break;
        case 's':
            s_opt.samples = atoi(optarg);
            break;
        case 'T':
            s_opt.timeout_s = atoi(optarg);
            break;
        case 'D':
            s_opt.drain = true;
            break;
        case 'b':
            s_opt.bulk = atoi(optarg);
            break;
        case 'h':
            s_usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static bool s_options_valid(void)
{
    return s_opt.mode && s_opt.clients >= 1 && s_opt.clients <= 256 && s_opt.workers >= 1 &&
           s_opt.workers <= 256 && s_opt.jobs >= s_opt.clients && s_opt.window >= 1 &&
           s_opt.window <= 1024 && s_opt.samples >= 1 && s_opt.timeout_s >= 1 && s_opt.bulk >= 1 &&
           s_opt.bulk <= 1000;
}

int main(int argc, char **argv)
{
    s_opt.key = getenv("ADMINBUS_AUTHKEY");
    if (s_parse_args(argc, argv) < 0 || !s_options_valid()) {
        s_usage(stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(s_opt.mode, "bus") == 0) {
        if (mysql_library_init(0, NULL, NULL) != 0)
            return 1;
        int rc = s_run_bus();
        mysql_library_end();
        return rc;
    }
    bool queue = strcmp(s_opt.mode, "beanstalk") == 0 || strcmp(s_opt.mode, "redis") == 0;
    if (queue && s_opt.port > 0)
        return s_run_queue(strcmp(s_opt.mode, "redis") == 0 ? &s_redis : &s_beanstalk);
    s_usage(stderr);
    return 2;
}
