/* adminbus-supervisor — starts and keeps the workers of one host (see engine/jobs/supervisor.h).
 *
 *   adminbus-supervisor [--worker-exe PATH] [config flags]     serve until SIGINT/SIGTERM
 *
 * This file owns the bus (daemonbus.h: the broker's, or the Kafka events topic; it publishes
 * worker, job and supervisor events and follows supervisor.<host>.request notices), the signal
 * handlers (SIGTERM/SIGINT stop; SIGCHLD only interrupts the wait) and the environment the
 * workers inherit: every configuration key, exported as ADMINBUS_<KEY>, so a worker runs with
 * exactly the supervisor's configuration, flags included. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wire/config.h"
#include "daemonbus.h"
#include "wire/log.h"
#include "jobs/supervisor.h"
#include "jobs/workerctl.h"

static ab_supervisor *volatile s_sup; /* for the signal handler */
static volatile sig_atomic_t s_signalled;

static void s_on_signal(int sig)
{
    (void)sig;
    s_signalled = 1;
    ab_supervisor_request_stop(s_sup);
}

static void s_on_child(int sig)
{
    (void)sig; /* only to interrupt the wait: the loop reaps */
}

static void s_usage(FILE *f)
{
    fprintf(f, "usage: adminbus-supervisor [--worker-exe PATH] [config flags]\n\n"
               "Starts the workers of this host (config key `workers`, e.g. default:2,email:1),\n"
               "starts a worker again when it dies (at once after a requested restart, with\n"
               "back-off after a crash), and carries out the engine's worker.start and\n"
               "worker.kill requests for this host. One runs per host: a second one waits.\n"
               "SIGTERM/SIGINT: SIGTERM to each of its workers (they finish or hand back their\n"
               "jobs within worker_grace_s), SIGKILL to any still running 10 s after that.\n\n"
               "  --worker-exe PATH  the worker executable (default: adminbus-worker beside\n"
               "                     this program)\n"
               "  --help, --version\n\n");
    ab_config_usage(f);
}

/* 0, or 2 for a usage error (--help and --version: ab_config_start). */
static int s_parse(int argc, char **argv, const char **exe)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--worker-exe") == 0 && i + 1 < argc)
            *exe = argv[++i];
        else if (strncmp(a, "--worker-exe=", 13) == 0)
            *exe = a + 13;
        else {
            fprintf(stderr, "adminbus-supervisor: unknown or incomplete argument '%s'\n\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    return 0;
}

/* adminbus-worker in the folder of this executable. */
static int s_default_exe(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    return snprintf(out, len, "%s/adminbus-worker", self) < (int)len ? 0 : -1;
}

static int s_grace(const ab_config *cfg, int *out)
{
    const char *v = ab_config_get(cfg, "worker_grace_s");
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 0 || n > 86400) {
        fprintf(stderr,
                "adminbus-supervisor: worker_grace_s must be an integer from 0 to 86400 (got "
                "'%s')\n",
                v);
        return -1;
    }
    *out = (int)n;
    return 0;
}

static int s_serve(const ab_supervisor_options *opt, const ab_config *cfg)
{
    char err[1024], topic[160];
    ab_supervisor_bus sb = {NULL, NULL, NULL};
    ab_supervisor *s = ab_supervisor_new(opt, &sb, err, sizeof err);
    if (!s) {
        fprintf(stderr, "adminbus-supervisor: %s\n", err);
        return 1;
    }
    /* Follow "supervisor.<host>.": the engine's notice that requests are waiting. */
    ab_supervisor_request_topic(ab_supervisor_host(s), topic, sizeof topic);
    char *dot = strrchr(topic, '.');
    if (dot)
        dot[1] = '\0';
    ab_daemon_bus bus;
    if (ab_daemon_bus_open(cfg, "supervisor", topic, 0, &bus, err, sizeof err) < 0) {
        fprintf(stderr, "adminbus-supervisor: %s\n", err);
        ab_supervisor_destroy(&s);
        return 1;
    }
    bus.settle();
    sb.ctx = bus.ctx;
    sb.publish = bus.publish;
    sb.wait = bus.wait;
    s_sup = s;
    if (s_signalled) /* a signal before the supervisor existed */
        ab_supervisor_request_stop(s);
    int rc = ab_supervisor_run(s);
    s_sup = NULL;
    ab_supervisor_destroy(&s);
    ab_daemon_bus_close(&bus);
    return rc;
}

int main(int argc, char **argv)
{
    ab_config cfg;
    int start = ab_config_start(&cfg, &argc, argv, "adminbus-supervisor", s_usage);
    if (start >= 0)
        return start;
    char msg[512], exe_buf[PATH_MAX];
    const char *exe = NULL;
    ab_supervisor_options opt = {.db_dsn = cfg.db_dsn, .workers = cfg.workers};
    int prc = s_parse(argc, argv, &exe);
    if (prc == 0 && !exe && s_default_exe(exe_buf, sizeof exe_buf) == 0)
        exe = exe_buf;
    if (prc == 0 && (!exe || access(exe, X_OK) != 0)) {
        fprintf(stderr,
                "adminbus-supervisor: cannot run the worker executable %s (build it, or give "
                "--worker-exe PATH)\n",
                exe ? exe : "adminbus-worker");
        prc = 2;
    }
    if (prc == 0 && !*cfg.db_dsn) {
        fprintf(stderr,
                "adminbus-supervisor: no database: set db_dsn in %s/adminbus.conf, "
                "ADMINBUS_DB_DSN, or --db-dsn (ops/run sets up a private one)\n",
                cfg.home);
        prc = 2;
    }
    if (prc == 0 && s_grace(&cfg, &opt.grace_s) < 0)
        prc = 2;
    int counts[AB_SUPERVISOR_NQUEUES];
    if (prc == 0 && ab_supervisor_parse_workers(cfg.workers, counts, msg, sizeof msg) < 0) {
        fprintf(stderr, "adminbus-supervisor: %s\n", msg);
        prc = 2;
    }
    if (prc == 0 && ab_config_export(&cfg) < 0) {
        fprintf(stderr, "adminbus-supervisor: cannot set up the workers' environment\n");
        prc = 1;
    }
    if (prc != 0) {
        ab_config_free(&cfg);
        return prc;
    }
    opt.worker_exe = exe;
    if (ab_log_set_level(cfg.log_level) < 0)
        fprintf(stderr, "adminbus-supervisor: unknown log_level '%s'; using info\n", cfg.log_level);
    struct sigaction sa = {.sa_handler = s_on_signal}; /* no SA_RESTART: interrupt the wait */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* SIGCHLD: poll() returns EINTR whatever SA_RESTART says; database reads restart. */
    struct sigaction sc = {.sa_handler = s_on_child, .sa_flags = SA_RESTART | SA_NOCLDSTOP};
    sigemptyset(&sc.sa_mask);
    sigaction(SIGCHLD, &sc, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = s_serve(&opt, &cfg);
    ab_config_free(&cfg);
    return rc;
}
