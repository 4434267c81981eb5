/* adminbus-engine — applies commands from the bus to MariaDB (see docs/architecture.md).
 *
 *   adminbus-engine [config flags] [--name NAME]      serve until SIGINT/SIGTERM
 *   adminbus-engine [config flags] --init [--host-org NAME] [--admin-email EMAIL]
 *                                                     migrate + first-run bootstrap, then exit
 *   adminbus-engine --schema-version                  print the schema version this build
 *                                                     migrates to (ops/restore asks)
 *   adminbus-engine [config flags] --dsn-fields       print db_dsn's parts as the engine
 *                                                     reads them (ops/restore asks)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/apply.h"
#include "core/bootstrap.h"
#include "wire/config.h"
#include "daemonbus.h"
#include "wire/endpoint.h"
#include "wire/log.h"
#include "core/metrics.h"
#include "core/migrate.h"
#include "auth/secret.h"
#include "wire/transport.h"

#define DB_WAIT_S     30
#define STATS_EVERY_S 10
#define FINAL_WAIT_MS 3000 /* at exit, the publisher waits this long for the other loops */
#define NAME_SLOTS    64   /* engines of one home on one host that get a slot name */

static atomic_int s_stop;       /* set by signals and by a loop whose bus socket broke */
static atomic_int s_loops_done; /* loops (but the publisher) that will count no more */

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

typedef struct {
    bool init, dsn_fields;
    const char *name, *host_org, *admin_email;
} s_opts;

static void s_usage(FILE *f)
{
    fprintf(f, "usage: adminbus-engine [config flags] [--name NAME]\n"
               "       adminbus-engine [config flags] --init [--host-org NAME] "
               "[--admin-email EMAIL]\n\n"
               "Applies admin commands from the broker to MariaDB: one transaction per batch,\n"
               "reply after COMMIT, an audit row per change (docs/architecture.md).\n\n"
               "  --init               apply migrations and, on a database without users, create\n"
               "                       the host organisation and a site administrator; prints\n"
               "                       ADMINBUS_AUTHKEY=<key> once (it is stored only hashed)\n"
               "  --host-org NAME      host organisation for --init (default ORGNAME)\n"
               "  --admin-email EMAIL  first site administrator for --init (default "
               "admin@admin.test)\n"
               "  --name NAME          engine name shown by whoami and in its stats (default\n"
               "                       host:N, N the first slot of $ADMINBUS_HOME free)\n"
               "  --schema-version     print the schema version this build migrates to\n"
               "  --dsn-fields         print db_dsn's user, password, host, port, database\n"
               "                       and socket, percent-decoded, each ended by a NUL byte\n"
               "  --help, --version\n\n");
    ab_config_usage(f);
}

/* Returns 0, 1 to exit successfully (--schema-version), or 2 for a usage error (--help and
 * --version: ab_config_start). */
static int s_parse(int argc, char **argv, s_opts *o)
{
    o->host_org = "ORGNAME";
    o->admin_email = "admin@admin.test";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--init") == 0)
            o->init = true;
        else if (strcmp(a, "--name") == 0 && has_value)
            o->name = argv[++i];
        else if (strcmp(a, "--host-org") == 0 && has_value)
            o->host_org = argv[++i];
        else if (strcmp(a, "--admin-email") == 0 && has_value)
            o->admin_email = argv[++i];
        else if (strcmp(a, "--dsn-fields") == 0)
            o->dsn_fields = true;
        else if (strcmp(a, "--schema-version") == 0)
            return printf("%d\n", ab_schema_latest()), 1;
        else {
            fprintf(stderr, "adminbus-engine: unknown or incomplete argument '%s'\n\n", a);
            s_usage(stderr);
            return 2;
        }
    }
    return 0;
}

/* --dsn-fields: the DSN's parts as ab_dsn_parse reads them, for ops/restore, which thus
 * needs no parser of its own. NUL-ended: a password may hold any other byte. Returns the
 * exit status. */
static int s_print_dsn_fields(const char *dsn)
{
    ab_dsn d;
    char msg[256];
    if (ab_dsn_parse(dsn, &d, msg, sizeof msg) < 0) {
        fprintf(stderr, "adminbus-engine: %s\n", msg);
        return 2;
    }
    char port[16] = "";
    if (d.port)
        snprintf(port, sizeof port, "%u", d.port);
    const char *fields[] = {d.user, d.password, d.host, port, d.database, d.socket};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        printf("%s%c", fields[i] ? fields[i] : "", '\0');
    ab_dsn_free(&d);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* A DSN that cannot be read is refused at once: waiting for the database would not help. */
static int s_check_dsn(const char *dsn)
{
    ab_dsn d;
    char msg[256];
    if (ab_dsn_parse(dsn, &d, msg, sizeof msg) < 0) {
        fprintf(stderr, "adminbus-engine: %s\n", msg);
        return -1;
    }
    ab_dsn_free(&d);
    return 0;
}

/* The database may still be starting (ops/run starts it just before): wait a little. */
static ab_db *s_open_db(const char *dsn)
{
    char msg[512];
    for (int waited = 0;; waited++) {
        ab_db *db = ab_db_open(dsn, msg, sizeof msg);
        if (db || waited >= DB_WAIT_S || s_stop) {
            if (!db)
                AB_ERROR("engine: %s; is MariaDB running? (ops/db status)", msg);
            return db;
        }
        if (waited == 0)
            AB_WARN("engine: %s; retrying for %d s", msg, DB_WAIT_S);
        sleep(1);
    }
}

/* Diagnostics' look at the event bus (ab_engine_info.bus_probe): bus_ctx is the config.
 * The daemons' bus: the broker's, or the Kafka events topic in a Kafka deployment. The
 * budget covers a fresh Kafka client's metadata and watermark queries (or a CURVE
 * handshake) on a loaded host; it is only reached when the bus is in trouble. */
#define S_BUS_PROBE_MS 5000
static int s_bus_probe(const void *bus_ctx, char *found, size_t len)
{
    const ab_config *cfg = bus_ctx;
    return ab_daemon_bus_probe(cfg, S_BUS_PROBE_MS, found, len);
}

static int s_init(ab_db *db, const ab_secret *secret, const s_opts *o)
{
    char key[AB_AUTHKEY_LEN + 1];
    ab_error err;
    int rc = ab_bootstrap(db, secret, o->host_org, o->admin_email, key, &err);
    if (rc < 0) {
        AB_ERROR("engine: bootstrap failed: %s", err.message);
        return 1;
    }
    if (rc == 1) {
        printf("ADMINBUS_AUTHKEY=%s\n", key);
        fflush(stdout);
        AB_INFO("engine: created host organisation '%s' and site administrator %s", o->host_org,
                o->admin_email);
    }
    return 0;
}

typedef struct {
    const ab_config *cfg;
    const ab_secret *secret;
    const ab_engine_info *info;
    ab_db *db; /* handed to the loop */
    int index;
    int rc;
    ab_metrics *metrics; /* shared by the loops; loop 0 publishes it */
    int loops;
    ab_authfail *authfail; /* failed authentications per address, shared by the loops */
} s_loop;

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Publish the engine's counters as engine.<name>.stats (metrics.h). Straight to the bus,
 * never through the outbox: a lost stats event costs nothing, the next one has the totals. */
static void s_publish_stats(ab_transport *t, ab_metrics *m, int period_ms)
{
    char topic[300];
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    if (ab_metrics_event(m, s_unix_ms(), period_ms, topic, sizeof topic, &body) == 0 &&
        t->ops->publish(t, topic, body.data, body.size) < 0)
        AB_WARN("engine: stats event %s not published; the next one carries the totals", topic);
    msgpack_sbuffer_destroy(&body);
}

/* At a clean exit the publisher sends the final totals once the other loops stopped. */
static void s_publish_final(const s_loop *l, ab_transport *t, int period_ms)
{
    int64_t until = s_mono_ms() + FINAL_WAIT_MS;
    while (atomic_load(&s_loops_done) < l->loops - 1 && s_mono_ms() < until) {
        struct timespec pause = {0, 10 * 1000000};
        nanosleep(&pause, NULL);
    }
    s_publish_stats(t, l->metrics, period_ms);
}

static void s_log_stats(const ab_applier *a, int index, uint64_t *last_cmds, uint64_t *last_batches)
{
    uint64_t cmds, batches;
    ab_applier_stats(a, &cmds, &batches);
    if (cmds > *last_cmds)
        AB_INFO("engine loop %d: %llu commands in %llu batches (mean batch %.1f)", index,
                (unsigned long long)(cmds - *last_cmds),
                (unsigned long long)(batches - *last_batches),
                (double)(cmds - *last_cmds) / (double)(batches - *last_batches));
    *last_cmds = cmds;
    *last_batches = batches;
}

/* On ZeroMQ, the broker's internal endpoints the engine connects to (endpoint.h): checked
 * once at start, so a bad one stops the engine with a precise message. Returns 0 or -1. */
static int s_check_endpoints(const ab_config *cfg)
{
    char why[1024];
    if (strcmp(cfg->transport, "kafka") == 0)
        return 0;
    if (ab_internal_check(cfg, "engine_endpoint", why, sizeof why) < 0 ||
        ab_internal_check(cfg, "publish_endpoint", why, sizeof why) < 0) {
        fprintf(stderr, "adminbus-engine: %s\n", why);
        return -1;
    }
    return 0;
}

/* The transport of one apply loop: the broker's sockets, or a member of the Kafka group. */
static ab_transport *s_transport(const ab_config *cfg)
{
    if (strcmp(cfg->transport, "kafka") != 0)
        return ab_transport_zmq_new(cfg->engine_endpoint, cfg->publish_endpoint);
    const char *names[cfg->nkafka + 1], *values[cfg->nkafka + 1];
    for (size_t i = 0; i < cfg->nkafka; i++) {
        names[i] = cfg->kafka[i].name;
        values[i] = cfg->kafka[i].value;
    }
    ab_kafka_options opt = {cfg->kafka_brokers,
                            cfg->kafka_commands_topic,
                            cfg->kafka_replies_topic,
                            cfg->kafka_events_topic,
                            cfg->kafka_group,
                            names,
                            values,
                            cfg->nkafka};
    char err[600];
    ab_transport *t = ab_transport_kafka_new(&opt, err, sizeof err);
    if (!t)
        AB_ERROR("engine: %s", err);
    return t;
}

/* One apply loop: its own bus sockets, its own database connection, its own batches. */
static void *s_run_loop(void *arg)
{
    s_loop *l = arg;
    const ab_config *cfg = l->cfg;
    l->rc = 1;
    ab_transport *t = s_transport(cfg);
    if (!t) {
        ab_db_close(&l->db);
        s_stop = 1; /* a loop without a bus: stop the engine (its message is logged) */
        return NULL;
    }
    ab_applier_options opt = {cfg->db_dsn, atoi(cfg->batch_max),
                              (size_t)strtoull(cfg->max_frame, NULL, 10),
                              ab_metrics_loop_at(l->metrics, l->index), l->authfail};
    if (opt.batch_max < 1)
        opt.batch_max = 1;
    ab_applier *a = ab_applier_new(&opt, t, &l->db, l->secret, l->info);
    if (!a) {
        t->ops->destroy(&t);
        return NULL;
    }
    l->rc = 0;
    time_t last = time(NULL);
    uint64_t last_cmds = 0, last_batches = 0;
    /* Loop 0 publishes the engine's stats event every stats_every_s (0: never). */
    int every_s = l->index == 0 && l->metrics ? atoi(cfg->stats_every_s) : 0;
    int period_ms = every_s > 0 ? (every_s < 86400 ? every_s : 86400) * 1000 : 0;
    int64_t next_stats = s_mono_ms() + period_ms;
    while (!s_stop) {
        if (ab_applier_step(a, 200) < 0) {
            l->rc = 1;
            s_stop = 1; /* a broken bus socket: stop the engine, let the supervisor restart it */
            break;
        }
        if (time(NULL) - last >= STATS_EVERY_S) {
            s_log_stats(a, l->index, &last_cmds, &last_batches);
            last = time(NULL);
        }
        if (period_ms > 0 && s_mono_ms() >= next_stats) {
            s_publish_stats(t, l->metrics, period_ms);
            next_stats = s_mono_ms() + period_ms;
        }
    }
    if (l->index != 0)
        atomic_fetch_add(&s_loops_done, 1);
    else if (period_ms > 0 && l->rc == 0)
        s_publish_final(l, t, period_ms);
    ab_applier_destroy(&a);
    t->ops->destroy(&t);
    return NULL;
}

/* Run apply_threads loops: the broker spreads commands over their sockets, so the
 * database works on several transactions at once (one connection each). */
static int s_serve(const ab_config *cfg, ab_db **db, const ab_secret *secret,
                   const ab_engine_info *info)
{
    int n = atoi(cfg->apply_threads);
    if (n < 1 || n > 64)
        n = 1;
    s_loop loops[64];
    pthread_t threads[64];
    int started = 0, rc = 0;
    ab_metrics *metrics = ab_metrics_new(n, info->name, s_unix_ms());
    if (!metrics)
        AB_WARN("engine: out of memory for the command counters; no stats events");
    ab_authfail *authfail = ab_authfail_new(AB_AUTHFAIL_SOURCES);
    if (!authfail) {
        AB_ERROR("engine: out of memory");
        ab_metrics_free(&metrics);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        loops[i] = (s_loop){cfg, secret, info, NULL, i, 0, metrics, n, authfail};
        loops[i].db = i == 0 ? *db : s_open_db(cfg->db_dsn);
        if (i == 0)
            *db = NULL;
        if (!loops[i].db || pthread_create(&threads[i], NULL, s_run_loop, &loops[i]) != 0) {
            ab_db_close(&loops[i].db);
            s_stop = 1;
            rc = 1;
            break;
        }
        started++;
    }
    bool kafka = strcmp(cfg->transport, "kafka") == 0;
    if (started == n && kafka)
        AB_INFO("engine %s ready: %d apply loop(s) in Kafka group %s, commands from %s on %s, "
                "events to %s, schema version %d",
                info->name, n, cfg->kafka_group, cfg->kafka_commands_topic, cfg->kafka_brokers,
                cfg->kafka_events_topic, ab_schema_latest());
    else if (started == n)
        AB_INFO("engine %s ready: %d apply loop(s), commands from %s, events to %s, schema "
                "version %d",
                info->name, n, cfg->engine_endpoint, cfg->publish_endpoint, ab_schema_latest());
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        rc |= loops[i].rc;
    }
    AB_INFO("engine %s stopped", info->name);
    ab_metrics_free(&metrics);
    ab_authfail_destroy(&authfail);
    return rc;
}

/* Take the first free slot of home: an exclusive lock on $home/run/engine-<slot>.lock,
 * kept while the process runs (the kernel lets it go at exit, kill -9 included). Returns
 * the slot and the locked descriptor in *fd, or -1 when none could be taken. */
static int s_claim_slot(const char *home, int *fd)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/run", home);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -1;
    for (int slot = 0; slot < NAME_SLOTS; slot++) {
        snprintf(path, sizeof path, "%s/run/engine-%d.lock", home, slot);
        *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (*fd < 0)
            return -1;
        if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
            return slot;
        close(*fd);
    }
    *fd = -1;
    return -1;
}

/* The engine's name when --name does not give one: host:slot, stable across restarts (a
 * restarted engine takes its slot again), so its series in /metrics carry on, and distinct
 * for engines running side by side on one home. Without a slot (home not writable, or
 * NAME_SLOTS engines already), host:pid, which is distinct but changes at each start. */
static void s_default_name(const char *home, char *name, size_t len, int *fd)
{
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    int slot = s_claim_slot(home, fd);
    if (slot >= 0) {
        snprintf(name, len, "%s:%d", host, slot);
        return;
    }
    AB_WARN("engine: no free name slot under %s/run (%s): named by its pid", home, strerror(errno));
    snprintf(name, len, "%s:pid%d", host, (int)getpid());
}

int main(int argc, char **argv)
{
    ab_config cfg;
    int start = ab_config_start(&cfg, &argc, argv, "adminbus-engine", s_usage);
    if (start >= 0)
        return start;
    char msg[512];
    s_opts o = {0};
    int prc = s_parse(argc, argv, &o);
    if (prc != 0) {
        ab_config_free(&cfg);
        return prc == 1 ? 0 : 2;
    }
    if (strcmp(cfg.transport, "zmq") != 0 && strcmp(cfg.transport, "kafka") != 0) {
        fprintf(stderr, "adminbus-engine: transport must be zmq or kafka (got '%s')\n",
                cfg.transport);
        ab_config_free(&cfg);
        return 2;
    }
    if (ab_log_set_level(cfg.log_level) < 0)
        fprintf(stderr, "adminbus-engine: unknown log_level '%s'; using info\n", cfg.log_level);
    if (!*cfg.db_dsn) {
        fprintf(stderr,
                "adminbus-engine: no database: set db_dsn in %s/adminbus.conf, "
                "ADMINBUS_DB_DSN, or --db-dsn (ops/run sets up a private one)\n",
                cfg.home);
        ab_config_free(&cfg);
        return 2;
    }
    if (o.dsn_fields || s_check_dsn(cfg.db_dsn) < 0) {
        int done = o.dsn_fields ? s_print_dsn_fields(cfg.db_dsn) : 2;
        ab_config_free(&cfg);
        return done;
    }
    if (!o.init && s_check_endpoints(&cfg) < 0) {
        ab_config_free(&cfg);
        return 2;
    }
    signal(SIGINT, s_on_signal);
    signal(SIGTERM, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    char name[300] = "init";
    int slot_fd = -1; /* held until exit: the slot is this engine's while it serves */
    if (!o.name && !o.init)
        s_default_name(cfg.home, name, sizeof name, &slot_fd);
    ab_secret secret;
    /* A job handed to an idle worker gets the lease a worker's claim gives: job_lease_s
     * less one heartbeat period (lease / 10). The worker refuses a bad value; here it only
     * turns the hand-over off. */
    long lease_s = strtol(cfg.job_lease_s, NULL, 10);
    ab_engine_info info = {.name = o.name ? o.name : name,
                           .db_dsn = cfg.db_dsn,
                           .job_lease_ms = lease_s >= 2 && lease_s <= 3600 ? (int)lease_s * 900 : 0,
                           .home = cfg.home,
                           .secret = &secret,
                           .bus_probe = s_bus_probe,
                           .bus_ctx = &cfg};
    int rc = 1;
    ab_db *db = NULL;
    ab_error err;
    if (ab_secret_load(cfg.home, &secret, msg, sizeof msg) < 0)
        AB_ERROR("engine: %s", msg);
    else if (!(db = s_open_db(cfg.db_dsn)))
        ;
    else if (ab_migrate(db, NULL, &err) < 0)
        AB_ERROR("engine: migration failed: %s", err.message);
    else
        rc = o.init ? s_init(db, &secret, &o) : s_serve(&cfg, &db, &secret, &info);
    ab_db_close(&db);
    ab_config_free(&cfg);
    if (slot_fd >= 0)
        close(slot_fd);
    return rc;
}
