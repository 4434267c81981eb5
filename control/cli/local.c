/* local.c — adminctl --local: the CLI's side of break-glass (engine/core/local.h does the work).
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

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "daemonbus.h"
#include "wire/envelope.h"
#include "core/local.h"

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

/* The operator's key in $ADMINBUS_HOME/env (ADMINBUS_AUTHKEY), when that file has one
 * that works now: what the command may revoke. */
typedef struct {
    char path[4200];
    char *key;        /* NULL: none, or one that did not work before the command */
    uint32_t user_id; /* its user */
} s_env_key;

static void s_env_key_read(ab_local *l, const char *home, s_env_key *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s/env", home);
    if (ctl_envfile_get(e->path, "ADMINBUS_AUTHKEY", &e->key) == 1 &&
        ab_local_key_works(l, e->key, &e->user_id) == 1)
        return;
    free(e->key);
    e->key = NULL;
}

/* The new authkey in a reply's result ("authkey", as user authkey --reset and authkey add
 * return it once), or NULL. */
static char *s_new_key(const msgpack_object *reply)
{
    const msgpack_object *res = ab_map_get(reply, "result");
    const msgpack_object *k = res ? ab_map_get(res, "authkey") : NULL;
    return k && k->type == MSGPACK_OBJECT_STR ? strndup(k->via.str.ptr, k->via.str.size) : NULL;
}

/* After a command that succeeded: if it revoked the key env holds, put the new key of that
 * user it returned there (and say so), or warn that env's key no longer works. */
static void s_env_key_follow(ab_local *l, s_env_key *e, const msgpack_object *reply)
{
    if (!e->key || ab_local_key_works(l, e->key, NULL) != 0)
        return;
    char *fresh = s_new_key(reply);
    uint32_t owner = 0;
    if (fresh && ab_local_key_works(l, fresh, &owner) == 1 && owner == e->user_id &&
        ctl_envfile_set(e->path, "ADMINBUS_AUTHKEY", fresh) == 0) {
        const char *exported = getenv("ADMINBUS_AUTHKEY");
        fprintf(stderr,
                "adminctl: %s held the authkey this command revoked: it now holds the new one "
                "(ADMINBUS_AUTHKEY, mode 0600)%s\n",
                e->path,
                exported && strcmp(exported, e->key) == 0
                    ? "; this shell exported the old one: export the new one, or unset "
                      "ADMINBUS_AUTHKEY so that adminctl reads the file"
                    : "");
    } else {
        fprintf(stderr,
                "adminctl: warning: the authkey in %s (ADMINBUS_AUTHKEY) no longer works: this "
                "command revoked it%s; put a valid key there (adminctl --local user authkey "
                "EMAIL --reset makes one)\n",
                e->path, fresh ? " (and the file could not take the new one)" : "");
    }
    if (fresh)
        OPENSSL_cleanse(fresh, strlen(fresh));
    free(fresh);
}

int ctl_local(const ctl_cli *cli)
{
    char actor[600], err[1024];
    s_actor(actor, sizeof actor);
    char *home = s_home();
    ab_local_options opt = {home, actor, s_bus_probe};
    ab_local_failure why = AB_LOCAL_SETUP;
    ab_local *l = ab_local_open(&opt, err, sizeof err, &why);
    if (!l) {
        free(home);
        fprintf(stderr, "adminctl: %s\n", err);
        return why == AB_LOCAL_UNREACHABLE ? CTL_EXIT_UNREACHABLE : CTL_EXIT_USAGE;
    }
    s_env_key env;
    s_env_key_read(l, home, &env);
    free(home);
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
    if (msgpack_unpack_next(&up, reply.data, reply.size, NULL) == MSGPACK_UNPACK_SUCCESS) {
        rc = ctl_render_reply(&up.data, cli->cmd->type, cli->json, stdout, stderr);
        if (ok)
            s_env_key_follow(l, &env, &up.data);
    }
    msgpack_unpacked_destroy(&up);
    if (env.key)
        OPENSSL_cleanse(env.key, strlen(env.key));
    free(env.key);
    msgpack_sbuffer_destroy(&args);
    msgpack_sbuffer_destroy(&reply);
    ab_local_close(&l);
    return rc;
}
