/* adminbus-scheduler — fires MISP's scheduled tasks as jobs (see engine/scheduler.h).
 *
 *   adminbus-scheduler [config flags]     serve until SIGINT/SIGTERM
 *
 * Run as many as you like: the one holding the MariaDB lock `adminbus.scheduler` leads,
 * the others take over within a second when it goes. This file owns the bus sockets: a PUB
 * to the broker's event intake (job.<id>.queued, wake.<queue> after each firing) and a SUB
 * on the fan-out for task.<id>.changed, so a changed task is looked at at once. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "log.h"
#include "scheduler.h"
#include "zframes.h"

#define S_LINGER_MS    1000 /* lets the last events get out at exit */
#define S_SLOW_JOIN_MS 200  /* a fresh PUB drops what it sends before it is connected */

static ab_scheduler *volatile s_sched; /* for the signal handler */
static volatile sig_atomic_t s_signalled;

static void s_on_signal(int sig)
{
    (void)sig;
    s_signalled = 1;
    ab_scheduler_request_stop(s_sched);
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: adminbus-scheduler [config flags]\n\n"
               "Turns due scheduled tasks (adminctl task list) into jobs. Any number may run:\n"
               "the holder of the MariaDB lock adminbus.scheduler leads, the others wait; a due\n"
               "run is enqueued exactly once (unique key task:<id>:<due time>).\n\n"
               "  --help, --version\n\n");
    ab_config_usage(f);
}

/* 0, 1 to exit successfully (help/version), or 2 for a usage error. */
static int s_parse(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return s_usage(stdout), 1;
        if (strcmp(argv[i], "--version") == 0)
            return printf("adminbus-scheduler %s\n", AB_VERSION), 1;
        fprintf(stderr, "adminbus-scheduler: unknown argument '%s'\n\n", argv[i]);
        s_usage(stderr);
        return 2;
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
    /* DONTWAIT: an absent broker must not stall the leader; events are at-most-once. */
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
        return errno == EINTR ? 0 : -1; /* a signal: the scheduler looks at its stop flag */
    int got = 0;
    for (;;) { /* drain: one look at the tasks serves every notice */
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

static int s_bus_open(s_bus *b, const ab_config *cfg)
{
    static const char topic[] = "task."; /* task.<id>.changed */
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
                "adminbus-scheduler: cannot connect to the broker (publish_endpoint %s, "
                "events_endpoint %s): %s; check the endpoints in adminbus.conf\n",
                cfg->publish_endpoint, cfg->events_endpoint, zmq_strerror(errno));
        return -1;
    }
    zmq_poll(NULL, 0, S_SLOW_JOIN_MS); /* let the connections and the subscription settle */
    return 0;
}

/* --- main -------------------------------------------------------------------------------- */

static int s_serve(const ab_config *cfg, s_bus *bus)
{
    char name[300], host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(name, sizeof name, "%s:%d", host, (int)getpid());
    ab_scheduler_options opt = {.db_dsn = cfg->db_dsn, .name = name, .tick_ms = 1000};
    ab_scheduler_bus sb = {bus, s_bus_publish, s_bus_wait};
    ab_scheduler *s = ab_scheduler_new(&opt, &sb);
    if (!s) {
        AB_ERROR("scheduler: out of memory");
        return 1;
    }
    s_sched = s;
    if (s_signalled) /* a signal before the scheduler existed */
        ab_scheduler_request_stop(s);
    int rc = ab_scheduler_run(s);
    s_sched = NULL;
    ab_scheduler_destroy(&s);
    return rc;
}

int main(int argc, char **argv)
{
    ab_config cfg;
    char msg[512];
    if (ab_config_load(&cfg, &argc, argv, msg, sizeof msg) < 0) {
        fprintf(stderr, "adminbus-scheduler: %s\n", msg);
        return 2;
    }
    int prc = s_parse(argc, argv);
    if (prc == 0 && !*cfg.db_dsn) {
        fprintf(stderr,
                "adminbus-scheduler: no database: set db_dsn in %s/adminbus.conf, "
                "ADMINBUS_DB_DSN, or --db-dsn (ops/run sets up a private one)\n",
                cfg.home);
        prc = 2;
    }
    if (prc != 0) {
        ab_config_free(&cfg);
        return prc == 1 ? 0 : 2;
    }
    if (ab_log_set_level(cfg.log_level) < 0)
        fprintf(stderr, "adminbus-scheduler: unknown log_level '%s'; using info\n", cfg.log_level);
    struct sigaction sa = {.sa_handler = s_on_signal}; /* no SA_RESTART: interrupt the wait */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    s_bus bus = {0};
    int rc = s_bus_open(&bus, &cfg) < 0 ? 1 : s_serve(&cfg, &bus);
    s_bus_close(&bus);
    ab_config_free(&cfg);
    return rc;
}
