/* adminbus-worker — runs the jobs of one queue (see engine/jobs/worker.h, docs/architecture.md).
 *
 *   adminbus-worker --queue QUEUE [--supervisor ID] [config flags]
 *                                                    serve until SIGINT/SIGTERM or `stop`
 *
 * This file owns the worker's bus (daemonbus.h: the broker's event intake and fan-out, or
 * the Kafka events topic when transport = kafka), following the queue's wake-up notices
 * and the worker's control and hand-over notices. The worker itself sees it through
 * ab_worker_bus. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wire/config.h"
#include "daemonbus.h"
#include "jobs/jobs.h"
#include "wire/log.h"
#include "core/migrate.h"
#include "wire/stopsig.h"
#include "jobs/worker.h"

#define DB_WAIT_S 30 /* MariaDB or the engine's migration may still be starting */

static ab_worker *volatile s_worker; /* for the signal handler */

static void s_on_stop(void)
{
    ab_worker_request_stop(s_worker);
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: adminbus-worker --queue QUEUE [--supervisor ID] [config flags]\n\n"
               "Runs the jobs of one queue (default, prio, cache, email, update): claims them\n"
               "from MariaDB under a lease, runs their handlers, retries with back-off, and\n"
               "puts back the jobs of workers that died (docs/architecture.md).\n"
               "SIGTERM/SIGINT: no new claims; the running job may finish within worker_grace_s,\n"
               "then it is told to stop and handed back.\n\n"
               "  --queue QUEUE   the queue to serve (required)\n"
               "  --supervisor ID set by adminbus-supervisor for the workers it starts (its\n"
               "                  id, host:pid): recorded in the workers table\n"
               "  --help, --version\n\n");
    ab_config_usage(f);
}

/* Returns 0, or 2 for a usage error (--help and --version: ab_config_start). */
static int s_parse(int argc, char **argv, const char **queue, const char **supervisor)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--queue") == 0 && i + 1 < argc)
            *queue = argv[++i];
        else if (strncmp(a, "--queue=", 8) == 0)
            *queue = a + 8;
        else if (strcmp(a, "--supervisor") == 0 && i + 1 < argc)
            *supervisor = argv[++i];
        else if (strncmp(a, "--supervisor=", 13) == 0)
            *supervisor = a + 13;
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

static int s_options(const ab_config *cfg, const char *queue, const char *supervisor,
                     ab_worker_options *o)
{
    *o = (ab_worker_options){.db_dsn = cfg->db_dsn, .queue = queue, .supervisor = supervisor};
    if (s_int_key(cfg, "job_lease_s", 2, 3600, &o->lease_s) < 0 ||
        s_int_key(cfg, "worker_poll_ms", 1, 3600000, &o->poll_ms) < 0 ||
        s_int_key(cfg, "worker_grace_s", 0, 86400, &o->grace_s) < 0 ||
        s_int_key(cfg, "job_heartbeat_ms", 0, o->lease_s * 1000 / 4, &o->heartbeat_ms) < 0)
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

/* The queue's wake-up notices, and the notice the engine publishes after changing the
 * worker's row (pause, resume, stop): it makes an idle worker look at its row now. */
static int s_bus_open(const ab_config *cfg, const char *queue, ab_daemon_bus *bus)
{
    char topic[48], err[1024];
    ab_job_wake_topic(queue, topic, sizeof topic);
    if (ab_daemon_bus_open(cfg, "worker", topic, 0, bus, err, sizeof err) == 0)
        return 0;
    if (!ab_stopsig_raised())
        fprintf(stderr, "adminbus-worker: %s\n", err);
    return -1;
}

static int s_bus_follow(const ab_daemon_bus *bus, const char *worker_id)
{
    char control[160], assign[160];
    snprintf(control, sizeof control, "worker.%s.control", worker_id);
    snprintf(assign, sizeof assign, "worker.%s.assign", worker_id);
    int rc = bus->follow(bus->ctx, control) < 0 || bus->follow(bus->ctx, assign) < 0 ? -1 : 0;
    bus->settle();
    return rc;
}

/* --- the database ----------------------------------------------------------------------- */

/* A connection to a database at the schema version the worker needs, waiting a little for
 * MariaDB and for the engine's migration (ops/run starts them just before). */
static ab_db *s_open_db(const char *dsn)
{
    char msg[512] = "";
    for (int waited = 0; waited <= DB_WAIT_S && !ab_stopsig_raised(); waited++) {
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

static int s_serve(const ab_worker_options *opt, const ab_daemon_bus *bus)
{
    ab_db *db = s_open_db(opt->db_dsn);
    if (!db)
        return ab_stopsig_raised() ? 0 : 1; /* told to stop while waiting: not a failure */
    ab_worker_bus wb = {bus->ctx, bus->publish, bus->wait};
    char msg[512];
    ab_worker *w = ab_worker_new(opt, &wb, db, msg, sizeof msg);
    if (!w) {
        AB_ERROR("worker: %s; is MariaDB running? (ops/db status)", msg);
        return 1;
    }
    s_worker = w;
    if (s_bus_follow(bus, ab_worker_id(w)) != 0)
        AB_WARN("worker: cannot subscribe to control notices");
    if (ab_stopsig_raised()) /* a signal before the worker existed */
        ab_worker_request_stop(w);
    int rc = ab_worker_run(w);
    s_worker = NULL;
    ab_worker_destroy(&w);
    return rc;
}

int main(int argc, char **argv)
{
    ab_config cfg;
    int start = ab_config_start(&cfg, &argc, argv, "adminbus-worker", s_usage);
    if (start >= 0)
        return start;
    const char *queue = "", *supervisor = NULL;
    ab_worker_options opt;
    int prc = s_parse(argc, argv, &queue, &supervisor);
    if (prc == 0 && s_options(&cfg, queue, supervisor, &opt) < 0)
        prc = 2;
    if (prc != 0) {
        ab_config_free(&cfg);
        return prc;
    }
    if (ab_log_set_level(cfg.log_level) < 0)
        fprintf(stderr, "adminbus-worker: unknown log_level '%s'; using info\n", cfg.log_level);
    if (ab_stopsig_install(s_on_stop) < 0) {
        fprintf(stderr, "adminbus-worker: cannot install the stop signal handlers\n");
        ab_config_free(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    ab_daemon_bus bus;
    int rc = s_bus_open(&cfg, queue, &bus) == 0 ? s_serve(&opt, &bus)
             : ab_stopsig_raised()              ? 0 /* told to stop while opening it */
                                                : 1;
    ab_daemon_bus_close(&bus);
    ab_config_free(&cfg);
    return rc;
}
