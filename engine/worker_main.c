/* adminbus-worker — runs the jobs of one queue (see engine/worker.h, docs/architecture.md).
 *
 *   adminbus-worker --queue QUEUE [config flags]     serve until SIGINT/SIGTERM or `stop`
 *
 * This file owns the worker's bus sockets: a PUB connected to the broker's event intake
 * (publish_endpoint) and a SUB on the broker's event fan-out (events_endpoint) subscribed
 * to the queue's wake-up notices and to the worker's control notices. The worker itself sees
 * them through ab_worker_bus. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "jobs.h"
#include "log.h"
#include "migrate.h"
#include "worker.h"
#include "zframes.h"

#define DB_WAIT_S      30   /* MariaDB or the engine's migration may still be starting */
#define S_LINGER_MS    1000 /* lets the last events (worker down) get out at exit */
#define S_SLOW_JOIN_MS 200  /* a fresh PUB drops what it sends before it is connected */

static ab_worker *volatile s_worker; /* for the signal handler */
static volatile sig_atomic_t s_signalled;

static void s_on_signal(int sig)
{
    (void)sig;
    s_signalled = 1;
    ab_worker_request_stop(s_worker);
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: adminbus-worker --queue QUEUE [config flags]\n\n"
               "Runs the jobs of one queue (default, prio, cache, email, update): claims them\n"
               "from MariaDB under a lease, runs their handlers, retries with back-off, and\n"
               "puts back the jobs of workers that died (docs/architecture.md).\n"
               "SIGTERM/SIGINT: no new claims; the running job may finish within worker_grace_s,\n"
               "then it is told to stop and handed back.\n\n"
               "  --queue QUEUE   the queue to serve (required)\n"
               "  --help, --version\n\n");
    ab_config_usage(f);
}

/* Returns 0, 1 to exit successfully (help/version), or 2 for a usage error. */
static int s_parse(int argc, char **argv, const char **queue)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--queue") == 0 && i + 1 < argc)
            *queue = argv[++i];
        else if (strncmp(a, "--queue=", 8) == 0)
            *queue = a + 8;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return s_usage(stdout), 1;
        else if (strcmp(a, "--version") == 0)
            return printf("adminbus-worker %s\n", AB_VERSION), 1;
        else {
            fprintf(stderr, "adminbus-worker: unknown or incomplete argument '%s'\n\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    if (!**queue) {
        fprintf(stderr, "adminbus-worker: --queue is required (default, prio, cache, email or "
                        "update)\n");
        return 2;
    }
    if (!ab_queue_valid(*queue, strlen(*queue))) {
        fprintf(stderr,
                "adminbus-worker: unknown queue '%s' (default, prio, cache, email or "
                "update)\n",
                *queue);
        return 2;
    }
    return 0;
}

/* An integer config value within [lo, hi]; -1 with a message when it is not. */
static int s_int_key(const ab_config *cfg, const char *key, long lo, long hi, int *out)
{
    const char *v = ab_config_get(cfg, key);
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "adminbus-worker: %s must be an integer from %ld to %ld (got '%s')\n", key,
                lo, hi, v);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static int s_options(const ab_config *cfg, const char *queue, ab_worker_options *o)
{
    *o = (ab_worker_options){.db_dsn = cfg->db_dsn, .queue = queue};
    if (s_int_key(cfg, "job_lease_s", 2, 3600, &o->lease_s) < 0 ||
        s_int_key(cfg, "worker_poll_ms", 1, 3600000, &o->poll_ms) < 0 ||
        s_int_key(cfg, "worker_grace_s", 0, 86400, &o->grace_s) < 0)
        return -1;
    if (!*cfg->db_dsn) {
        fprintf(stderr,
                "adminbus-worker: no database: set db_dsn in %s/adminbus.conf, "
                "ADMINBUS_DB_DSN, or --db-dsn (ops/run sets up a private one)\n",
                cfg->home);
        return -1;
    }
    return 0;
}

/* --- the bus ---------------------------------------------------------------------------- */

typedef struct {
    void *ctx, *pub, *sub;
} s_bus;

static int s_bus_publish(void *ctx, const char *topic, const void *body, size_t len)
{
    s_bus *b = ctx;
    /* DONTWAIT: a slow or absent broker must not stall a job; events are at-most-once. */
    if (zmq_send(b->pub, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    return zmq_send(b->pub, body, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

static int s_bus_wait(void *ctx, int timeout_ms)
{
    s_bus *b = ctx;
    zmq_pollitem_t item = {b->sub, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&item, 1, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : -1; /* a signal: the worker looks at its stop flag */
    int got = 0;
    for (;;) { /* drain: many enqueues make many notices, one look at the queue serves all */
        zmq_msg_t frames[AB_FRAMES_MAX];
        int extra;
        int n = ab_zframes_recv(b->sub, frames, &extra);
        if (n <= 0)
            return n < 0 && !got ? -1 : got;
        for (int i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
        got = 1;
    }
}

static void s_bus_close(s_bus *b)
{
    if (b->pub)
        zmq_close(b->pub);
    if (b->sub)
        zmq_close(b->sub);
    if (b->ctx)
        zmq_ctx_term(b->ctx);
}

static int s_bus_open(s_bus *b, const ab_config *cfg, const char *queue)
{
    char topic[48];
    ab_job_wake_topic(queue, topic, sizeof topic);
    int linger = S_LINGER_MS, none = 0;
    b->ctx = zmq_ctx_new();
    b->pub = b->ctx ? zmq_socket(b->ctx, ZMQ_PUB) : NULL;
    b->sub = b->ctx ? zmq_socket(b->ctx, ZMQ_SUB) : NULL;
    if (!b->pub || !b->sub || zmq_setsockopt(b->pub, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(b->sub, ZMQ_LINGER, &none, sizeof none) != 0 ||
        zmq_connect(b->pub, cfg->publish_endpoint) != 0 ||
        zmq_setsockopt(b->sub, ZMQ_SUBSCRIBE, topic, strlen(topic)) != 0 ||
        zmq_connect(b->sub, cfg->events_endpoint) != 0) {
        fprintf(stderr,
                "adminbus-worker: cannot connect to the broker (publish_endpoint %s, "
                "events_endpoint %s): %s; check the endpoints in adminbus.conf\n",
                cfg->publish_endpoint, cfg->events_endpoint, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

/* Also listen to the notice the engine publishes after changing the worker's row (pause,
 * resume, stop): it makes an idle worker look at its row now. */
static int s_bus_follow(s_bus *b, const char *worker_id)
{
    char topic[160];
    snprintf(topic, sizeof topic, "worker.%s.control", worker_id);
    int rc = zmq_setsockopt(b->sub, ZMQ_SUBSCRIBE, topic, strlen(topic));
    zmq_poll(NULL, 0, S_SLOW_JOIN_MS); /* let both connections and the subscriptions settle */
    return rc;
}

/* --- the database ----------------------------------------------------------------------- */

/* A connection to a database at the schema version the worker needs, waiting a little for
 * MariaDB and for the engine's migration (ops/run starts them just before). */
static ab_db *s_open_db(const char *dsn)
{
    char msg[512] = "";
    for (int waited = 0; waited <= DB_WAIT_S && !s_signalled; waited++) {
        ab_error err;
        ab_db *db = ab_db_open(dsn, msg, sizeof msg);
        int version = db ? ab_schema_current(db, &err) : -1;
        if (db)
            ab_db_exec(db, "COMMIT", &err);
        if (version >= AB_WORKER_SCHEMA_MIN)
            return db;
        if (db)
            snprintf(msg, sizeof msg,
                     "the database has schema version %d, the worker needs %d: start "
                     "adminbus-engine once (it migrates) or run `adminctl db update`",
                     version, AB_WORKER_SCHEMA_MIN);
        ab_db_close(&db);
        if (waited == 0)
            AB_WARN("worker: %s; retrying for %d s", msg, DB_WAIT_S);
        sleep(1);
    }
    AB_ERROR("worker: %s; is MariaDB running? (ops/db status)", msg);
    return NULL;
}

static int s_serve(const ab_worker_options *opt, s_bus *bus)
{
    ab_db *db = s_open_db(opt->db_dsn);
    if (!db)
        return s_signalled ? 0 : 1; /* told to stop while waiting: not a failure */
    ab_worker_bus wb = {bus, s_bus_publish, s_bus_wait};
    char msg[512];
    ab_worker *w = ab_worker_new(opt, &wb, db, msg, sizeof msg);
    if (!w) {
        AB_ERROR("worker: %s; is MariaDB running? (ops/db status)", msg);
        return 1;
    }
    s_worker = w;
    if (s_bus_follow(bus, ab_worker_id(w)) != 0)
        AB_WARN("worker: cannot subscribe to control notices: %s", zmq_strerror(errno));
    if (s_signalled) /* a signal before the worker existed */
        ab_worker_request_stop(w);
    int rc = ab_worker_run(w);
    s_worker = NULL;
    ab_worker_destroy(&w);
    return rc;
}

int main(int argc, char **argv)
{
    ab_config cfg;
    char msg[512];
    if (ab_config_load(&cfg, &argc, argv, msg, sizeof msg) < 0) {
        fprintf(stderr, "adminbus-worker: %s\n", msg);
        return 2;
    }
    const char *queue = "";
    ab_worker_options opt;
    int prc = s_parse(argc, argv, &queue);
    if (prc == 0 && s_options(&cfg, queue, &opt) < 0)
        prc = 2;
    if (prc != 0) {
        ab_config_free(&cfg);
        return prc == 1 ? 0 : 2;
    }
    if (ab_log_set_level(cfg.log_level) < 0)
        fprintf(stderr, "adminbus-worker: unknown log_level '%s'; using info\n", cfg.log_level);
    struct sigaction sa = {.sa_handler = s_on_signal}; /* no SA_RESTART: interrupt the wait */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    s_bus bus = {0};
    int rc = s_bus_open(&bus, &cfg, queue) < 0 ? 1 : s_serve(&opt, &bus);
    s_bus_close(&bus);
    ab_config_free(&cfg);
    return rc;
}
