/* local.c — adminctl --local: the CLI's side of break-glass (engine/local.h does the work).
 * Linked into the adminctl executable only (not abctl), since it needs the engine library.
 *
 * It names the caller after the Unix account and host (local:<user>@<host>), runs the
 * command line's command through ab_local_run, renders the reply like any other, and
 * publishes the command's events when the daemon bus carries them (daemonbus.h: the broker,
 * or the Kafka events topic when transport = kafka) — checked end to end with a probe
 * first, because a ZeroMQ PUB silently drops what it sends before it is connected (on
 * Kafka the probe shows the cluster and the topic answer). Without a bus the events are
 * skipped with a note: the change is committed, and events are only notifications
 * (subscribers and workers re-read the database). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "daemonbus.h"
#include "envelope.h"
#include "local.h"

#define PROBE_MS 1500

static void s_actor(char *out, size_t len)
{
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    const struct passwd *pw = getpwuid(geteuid());
    if (pw && pw->pw_name)
        snprintf(out, len, "local:%s@%s", pw->pw_name, host);
    else
        snprintf(out, len, "local:uid%d@%s", (int)geteuid(), host);
}

/* Diagnostics' bus check (ab_local_options.bus_probe): ctx is the loaded configuration. */
static int s_bus_probe(const void *ctx, char *found, size_t len)
{
    const ab_config *cfg = ctx;
    return ab_daemon_bus_probe(cfg, 2000, found, len);
}

/* Publish a probe until it comes back through the bus: then a ZeroMQ PUB is connected and
 * the subscriptions have reached the broker (it drops what it sends before: publish again
 * every 50 ms); Kafka keeps what it accepted, so there one record is enough. Returns 0, or
 * -1 when nothing answered. */
static int s_bus_ready(const ab_daemon_bus *bus, const char *topic)
{
    msgpack_sbuffer body;
    msgpack_sbuffer_init(&body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &body, msgpack_sbuffer_write);
    ab_event_begin(&pk, topic, (int64_t)time(NULL) * 1000);
    msgpack_pack_map(&pk, 1);
    ab_pack_cstr(&pk, "probe");
    msgpack_pack_true(&pk);
    int got = 0;
    for (int waited = 0; got <= 0 && waited < PROBE_MS; waited += 50) {
        if (waited == 0 || !bus->kafka)
            bus->publish(bus->ctx, topic, body.data, body.size);
        got = bus->wait(bus->ctx, 50);
    }
    msgpack_sbuffer_destroy(&body);
    return got > 0 ? 0 : -1;
}

static void s_publish(const ab_config *cfg, const ab_events *events)
{
    size_t n = ab_events_count(events);
    if (n == 0)
        return;
    char topic[96], err[1024] = "";
    snprintf(topic, sizeof topic, "diagnostics.probe.local-%d.", (int)getpid());
    ab_daemon_bus bus;
    if (ab_daemon_bus_open(cfg, "adminctl-local", topic, PROBE_MS, &bus, err, sizeof err) < 0 ||
        s_bus_ready(&bus, topic) < 0) {
        fprintf(stderr,
                "adminctl: note: no %s carries events at %s: %zu event(s) not published "
                "(the change is committed; subscribers see it when they next read)\n",
                bus.kafka ? "Kafka cluster" : "broker",
                bus.where[0] ? bus.where : cfg->publish_endpoint, n);
        ab_daemon_bus_close(&bus);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const ab_event *ev = ab_events_at(events, i);
        bus.publish(bus.ctx, ev->topic, ev->body.data, ev->body.size);
    }
    ab_daemon_bus_close(&bus);
}

static char *s_home(void)
{
    const char *env = getenv("ADMINBUS_HOME");
    return env && *env ? strdup(env) : ctl_default_home();
}

int ctl_local(const ctl_cli *cli)
{
    char actor[600], err[1024];
    s_actor(actor, sizeof actor);
    char *home = s_home();
    ab_local_options opt = {home, actor, s_bus_probe};
    ab_local_failure why = AB_LOCAL_SETUP;
    ab_local *l = ab_local_open(&opt, err, sizeof err, &why);
    free(home);
    if (!l) {
        fprintf(stderr, "adminctl: %s\n", err);
        return why == AB_LOCAL_UNREACHABLE ? CTL_EXIT_UNREACHABLE : CTL_EXIT_USAGE;
    }
    msgpack_sbuffer args, reply;
    msgpack_sbuffer_init(&args);
    msgpack_sbuffer_init(&reply);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    ctl_pack_args(cli, &pk);
    int ok = ab_local_run(l, cli->cmd->type, args.data, args.size, cli->id, &reply) == 0;
    if (ok)
        s_publish(ab_local_config(l), ab_local_events(l));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = CTL_EXIT_UNREACHABLE;
    if (msgpack_unpack_next(&up, reply.data, reply.size, NULL) == MSGPACK_UNPACK_SUCCESS)
        rc = ctl_render_reply(&up.data, cli->cmd->type, cli->json, stdout, stderr);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&args);
    msgpack_sbuffer_destroy(&reply);
    ab_local_close(&l);
    return rc;
}
