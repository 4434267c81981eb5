/* adminbus-kafka-mock — librdkafka's mock cluster (rdkafka_mock.h) in a process of its own,
 * so that engines, adminctl, kcat and the Python tests can all reach it (design.md, "Traps").
 * Built for the tests only; it listens on loopback.
 *
 *   adminbus-kafka-mock [--brokers N] [--topic NAME:PARTITIONS]…
 *
 * Prints `BOOTSTRAP host:port,…` then `READY` on standard output, then reads one request a
 * line on standard input and answers each with `ok` or `error: …`:
 *   down ID | up ID              take broker ID (1…N) down or bring it back
 *   topic NAME PARTITIONS         create a topic (replication: every broker)
 *   leader TOPIC PARTITION ID     move a partition's leadership
 *   coordinator GROUP ID          make broker ID the coordinator of consumer group GROUP
 *                                 (the mock never moves a coordinator off a down broker)
 * It stops on end of input, SIGTERM or SIGINT. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_topic(rd_kafka_mock_cluster_t *mc, const char *name, int parts, int brokers)
{
    if (parts < 1 || !*name)
        return -1;
    return rd_kafka_mock_topic_create(mc, name, parts, brokers) ? -1 : 0;
}

/* One request line; writes the answer. */
static void s_request(rd_kafka_mock_cluster_t *mc, int brokers, char *line)
{
    char verb[16] = "", name[250] = "";
    int a = 0, b = 0;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    bool bad = false;
    if (sscanf(line, "down %d", &a) == 1)
        e = rd_kafka_mock_broker_set_down(mc, a);
    else if (sscanf(line, "up %d", &a) == 1)
        e = rd_kafka_mock_broker_set_up(mc, a);
    else if (sscanf(line, "topic %249s %d", name, &a) == 2)
        bad = s_topic(mc, name, a, brokers) < 0;
    else if (sscanf(line, "leader %249s %d %d", name, &a, &b) == 3)
        e = rd_kafka_mock_partition_set_leader(mc, name, a, b);
    else if (sscanf(line, "coordinator %249s %d", name, &a) == 2)
        e = rd_kafka_mock_coordinator_set(mc, "group", name, a);
    else
        bad = sscanf(line, "%15s", verb) >= 0;
    if (bad)
        printf("error: cannot do '%s'\n", strtok(line, "\n") ? line : "");
    else if (e)
        printf("error: %s\n", rd_kafka_err2str(e));
    else
        printf("ok\n");
    fflush(stdout);
}

static int s_serve(rd_kafka_mock_cluster_t *mc, int brokers)
{
    char line[512];
    size_t used = 0;
    while (!s_stop) {
        struct pollfd p = {STDIN_FILENO, POLLIN, 0};
        int rc = poll(&p, 1, 200);
        if (rc < 0 && errno != EINTR)
            return 1;
        if (rc <= 0)
            continue;
        ssize_t n = read(STDIN_FILENO, line + used, sizeof line - 1 - used);
        if (n <= 0)
            return 0; /* end of input: the harness is gone */
        used += (size_t)n;
        line[used] = '\0';
        char *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            if (*line)
                s_request(mc, brokers, line);
            used -= (size_t)(nl + 1 - line);
            memmove(line, nl + 1, used + 1);
        }
        if (used == sizeof line - 1)
            used = 0; /* an over-long line: drop it */
    }
    return 0;
}

int main(int argc, char **argv)
{
    int brokers = 3;
    const char *topics[64];
    int ntopics = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--brokers") == 0 && i + 1 < argc)
            brokers = atoi(argv[++i]);
        else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc && ntopics < 64)
            topics[ntopics++] = argv[++i];
        else {
            fprintf(stderr, "usage: adminbus-kafka-mock [--brokers N] [--topic NAME:PARTS]…\n");
            return 2;
        }
    }
    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "adminbus-kafka-mock: %s\n", err);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "adminbus-kafka-mock: cannot create a cluster of %d brokers\n", brokers);
        rd_kafka_destroy(rk);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < ntopics && rc == 0; i++) {
        char name[250];
        int parts = 0;
        if (sscanf(topics[i], "%249[^:]:%d", name, &parts) != 2 ||
            s_topic(mc, name, parts, brokers) < 0) {
            fprintf(stderr, "adminbus-kafka-mock: bad --topic %s (NAME:PARTITIONS)\n", topics[i]);
            rc = 2;
        }
    }
    if (rc == 0) {
        printf("BOOTSTRAP %s\nREADY\n", rd_kafka_mock_cluster_bootstraps(mc));
        fflush(stdout);
        rc = s_serve(mc, brokers);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return rc;
}
