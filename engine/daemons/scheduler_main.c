/* adminbus-scheduler — fires MISP's scheduled tasks as jobs (see engine/jobs/scheduler.h).
 *
 *   adminbus-scheduler [config flags]     serve until SIGINT/SIGTERM
 *
 * Run as many as you like: the one holding the MariaDB lock `adminbus.scheduler` leads,
 * the others take over within a second when it goes. This file owns the bus (daemonbus.h:
 * the broker's, or the Kafka events topic): it publishes job.<id>.queued and wake.<queue>
 * after each firing and follows task.<id>.changed, so a changed task is looked at at once. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wire/config.h"
#include "daemonbus.h"
#include "wire/log.h"
#include "jobs/scheduler.h"
#include "wire/stopsig.h"

static ab_scheduler *volatile s_sched; /* for the signal handler */

static void s_on_stop(void)
{
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

/* 0, or 2 for a usage error (--help and --version: ab_config_start). */
static int s_parse(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        fprintf(stderr, "adminbus-scheduler: unknown argument '%s'\n\n", argv[i]);
        s_usage(stderr);
        return 2;
    }
    return 0;
}

/* --- main -------------------------------------------------------------------------------- */

static int s_serve(const ab_config *cfg, const ab_daemon_bus *bus)
{
    char name[300], host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(name, sizeof name, "%s:%d", host, (int)getpid());
    ab_scheduler_options opt = {.db_dsn = cfg->db_dsn, .name = name, .tick_ms = 1000};
    ab_scheduler_bus sb = {bus->ctx, bus->publish, bus->wait};
    ab_scheduler *s = ab_scheduler_new(&opt, &sb);
    if (!s) {
        AB_ERROR("scheduler: out of memory");
        return 1;
    }
    s_sched = s;
    if (ab_stopsig_raised()) /* a signal before the scheduler existed */
        ab_scheduler_request_stop(s);
    int rc = ab_scheduler_run(s);
    s_sched = NULL;
    ab_scheduler_destroy(&s);
    return rc;
}

int main(int argc, char **argv)
{
    ab_config cfg;
    int start = ab_config_start(&cfg, &argc, argv, "adminbus-scheduler", s_usage);
    if (start >= 0)
        return start;
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
        return prc;
    }
    if (ab_log_set_level(cfg.log_level) < 0)
        fprintf(stderr, "adminbus-scheduler: unknown log_level '%s'; using info\n", cfg.log_level);
    if (ab_stopsig_install(s_on_stop) < 0) {
        fprintf(stderr, "adminbus-scheduler: cannot install the stop signal handlers\n");
        ab_config_free(&cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    char err[1024];
    ab_daemon_bus bus;
    int rc = 1;
    /* task.<id>.changed: a changed task is looked at at once */
    if (ab_daemon_bus_open(&cfg, "scheduler", "task.", 0, &bus, err, sizeof err) < 0) {
        if (ab_stopsig_raised())
            rc = 0; /* told to stop while opening it */
        else
            fprintf(stderr, "adminbus-scheduler: %s\n", err);
    } else {
        bus.settle();
        rc = s_serve(&cfg, &bus);
    }
    ab_daemon_bus_close(&bus);
    ab_config_free(&cfg);
    return rc;
}
