/* config.h — bootstrap configuration: what a process needs before it can reach the
 * database (DSN, endpoints, paths, limits). Runtime settings live in MariaDB instead.
 *
 * Precedence, lowest first: built-in defaults, $ADMINBUS_HOME/adminbus.conf (KEY=value
 * lines, '#' comments), the environment (ADMINBUS_<KEY in upper case>), command-line
 * flags (--key value or --key=value, '-' and '_' alike). */
#ifndef AB_CONFIG_H
#define AB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define AB_CONFIG_X(X)                                                                             \
    X(home, "var", "state folder: data, secrets, sockets, logs")                                   \
    X(db_dsn, "",                                                                                  \
      "mariadb://user:password@host:port/database or mariadb://user@/db?socket=PATH; "             \
      "&timeout=SECONDS bounds each wait for the server (default 120)")                            \
    X(commands_endpoint, "tcp://127.0.0.1:7810", "broker: where clients send commands")            \
    X(events_endpoint, "tcp://127.0.0.1:7811", "broker: where subscribers receive events")         \
    X(engine_endpoint, "auto",                                                                     \
      "broker: where engines fetch commands: auto ($ADMINBUS_HOME/engine.sock), ipc:///PATH, or "  \
      "tcp://HOST:PORT for engines on other hosts (always CURVE with the daemons' key)")           \
    X(publish_endpoint, "auto",                                                                    \
      "broker: where engines and daemons publish events: auto ($ADMINBUS_HOME/publish.sock), "     \
      "ipc:///PATH, or tcp://HOST:PORT (always CURVE with the daemons' key)")                      \
    X(notices_endpoint, "auto",                                                                    \
      "broker: where workers, scheduler and supervisor follow their notices: auto "                \
      "($ADMINBUS_HOME/notices.sock), ipc:///PATH, or tcp://HOST:PORT (always CURVE with the "     \
      "daemons' key)")                                                                             \
    X(proxy_endpoint, "auto",                                                                      \
      "broker: the HTTP shim's intake, which passes on its clients' addresses: auto "              \
      "($ADMINBUS_HOME/proxy.sock), off, or ipc:///PATH (never tcp://: the address is "            \
      "believed)")                                                                                 \
    X(max_frame, "1048576", "largest command accepted, bytes (larger: invalid, field frame)")      \
    X(batch_max, "256", "most commands an engine applies in one transaction")                      \
    X(apply_threads, "2", "apply loops per engine, each with its own database connection")         \
    X(stats_every_s, "5", "engine: seconds between its engine.<name>.stats events (0: none)")      \
    X(command_retention_days, "7", "days a command id and its reply are kept")                     \
    X(job_lease_s, "10", "worker: seconds a dead worker keeps its jobs (heartbeat: lease/10)")     \
    X(job_heartbeat_ms, "0",                                                                       \
      "worker: ms between heartbeats (leases extended, cancels and control read); 0: lease/10, "   \
      "at least 200; at most lease/4")                                                             \
    X(worker_poll_ms, "1000", "worker: longest idle wait without a wake-up notice, ms")            \
    X(worker_grace_s, "30",                                                                        \
      "worker: after SIGTERM or a restart, seconds a running job may go on (and a cancelled "      \
      "one before worker cleanup may force it)")                                                   \
    X(workers, "default:1,prio:1,cache:1,email:1,update:1",                                        \
      "supervisor: the workers it keeps running, queue:count,…")                                   \
    X(log_level, "info", "error, warn, info or debug")                                             \
    X(curve, "auto",                                                                               \
      "ZeroMQ CURVE on the clients' endpoints: auto (when bound beyond loopback) or on (on "       \
      "tcp:// loopback too); internal tcp:// endpoints always use it; keys in "                    \
      "$ADMINBUS_HOME/curve/")                                                                     \
    X(transport, "zmq", "engine: where commands come from: zmq (the broker) or kafka")             \
    X(kafka_brokers, "", "kafka: bootstrap servers, host:port,…")                                  \
    X(kafka_commands_topic, "adminbus.commands", "kafka: the topic engines consume commands from") \
    X(kafka_replies_topic, "adminbus.replies",                                                     \
      "kafka: the topic replies go to, keyed by reply_to")                                         \
    X(kafka_events_topic, "adminbus.events", "kafka: the topic events go to (from the outbox)")    \
    X(kafka_group, "adminbus-engines", "kafka: the consumer group all engines join")

/* A librdkafka client property passed through unchanged: `kafka.<name> = value` in
 * adminbus.conf, --kafka.<name>=value, or ADMINBUS_KAFKA__<NAME> in the environment (upper
 * case, '.' written '_'), e.g. kafka.security.protocol = SASL_SSL. */
typedef struct {
    char *name, *value;
} ab_config_prop;

#define AB_KAFKA_PREFIX     "kafka."
#define AB_KAFKA_ENV_PREFIX "ADMINBUS_KAFKA__"

typedef struct {
#define AB_CONFIG_FIELD(name, def, help) char *name;
    AB_CONFIG_X(AB_CONFIG_FIELD)
#undef AB_CONFIG_FIELD
    ab_config_prop *kafka; /* pass-through properties, in the order given (later wins) */
    size_t nkafka;
} ab_config;

/* Load the configuration. argv flags that are config keys are consumed; other
 * arguments are left in order in argv (argc updated), for the caller to parse.
 * Returns 0, or -1 with a message in errbuf (unknown --key is not an error: it is left
 * for the caller). Caller frees with ab_config_free. */
int ab_config_load(ab_config *cfg, int *argc, char **argv, char *errbuf, size_t errlen);

/* The configuration this process loaded first (its main's), kept for the parts that get
 * only an endpoint but must know the home and the CURVE mode (broker/zmq/curve.h, the sockets
 * daemons connect to the broker); NULL before any load succeeded. */
const ab_config *ab_config_process(void);

/* Free the strings of cfg; safe twice. */
void ab_config_free(ab_config *cfg);

/* Value of a key by name; NULL for an unknown key. */
const char *ab_config_get(const ab_config *cfg, const char *key);

/* --help (-h) or --version anywhere in argv: print usage(stdout) or "NAME VERSION" and
 * return 0, the status the caller exits with, before any configuration is read, so both
 * work when adminbus.conf is broken. -1: neither is there, go on. */
int ab_config_early_flags(int argc, char **argv, const char *name, void (*usage)(FILE *));

/* The start of a daemon's main: ab_config_early_flags, then ab_config_load into cfg, its
 * error printed as "NAME: message". Returns -1 to go on (cfg loaded, caller frees), or the
 * status to exit with: 0 after --help/--version, 2 when the configuration is broken (cfg
 * already freed). */
int ab_config_start(ab_config *cfg, int *argc, char **argv, const char *name,
                    void (*usage)(FILE *));

/* Print every key with its default and help, for --help. */
void ab_config_usage(void *file);

/* Put every key into this process's environment as ADMINBUS_<KEY>, so that the processes it
 * starts load exactly its configuration (environment beats the file). Returns 0 or -1. */
int ab_config_export(const ab_config *cfg);

/* A parsed DSN. Strings are owned by the struct; free with ab_dsn_free. */
typedef struct {
    char *user, *password, *host, *database, *socket;
    unsigned port;
    unsigned timeout_s; /* longest wait for the server to answer one read or write */
} ab_dsn;

/* The default of ab_dsn.timeout_s: above InnoDB's lock wait (50 s), so a statement that
 * waits on a lock fails with the server's own lock-wait error first. */
#define AB_DSN_TIMEOUT_S 120

/* Parse mariadb://user[:password]@[host][:port]/database[?socket=PATH][&timeout=SECONDS]
 * (parameters in any order; timeout 1–86400, default AB_DSN_TIMEOUT_S). The host begins
 * after the last '@' before the first '/', '?' or '#'; user and password are
 * percent-decoded (a malformed escape is an error). Returns 0 or -1 with a message in
 * errbuf that never holds the password; out is then empty. */
int ab_dsn_parse(const char *dsn, ab_dsn *out, char *errbuf, size_t errlen);
void ab_dsn_free(ab_dsn *dsn);

#endif
