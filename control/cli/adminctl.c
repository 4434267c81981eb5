/* adminctl — the administrator's CLI: build one v1 command from the command line (the
 * catalog says which words and arguments exist), send it, render the reply. Also the
 * client-side verb `events`, a monitor of the event stream. See adminctl --help.
 *
 * Exit codes: 0 done, 1 refused (an error reply), 2 usage error, 3 engine unreachable
 * or timed out. With --local (control/cli/local.c): 2 also when $ADMINBUS_HOME has no
 * configuration or server secret, 3 when its database is unreachable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define ERR_LEN 1024

static int s_usage_error(const char *msg)
{
    fprintf(stderr, "adminctl: %s\n", msg);
    return CTL_EXIT_USAGE;
}

static int s_help(const ctl_cli *cli)
{
    if (cli->cmd)
        ctl_help_command(stdout, cli->cmd);
    else if (cli->events)
        ctl_help_events(stdout);
    else if (cli->prefix[0])
        ctl_help_prefix(stdout, cli->prefix);
    else
        ctl_help_all(stdout);
    return CTL_EXIT_OK;
}

/* Where to look, for messages: the env file consulted, or how it would be found. */
static const char *s_where(const ctl_conn *conn)
{
    return conn->envfile ? conn->envfile : "$ADMINBUS_HOME/env";
}

static int s_missing(const ctl_conn *conn, bool url, bool key)
{
    fprintf(stderr,
            "adminctl: no %s%s%s in the environment or in %s: run ops/run, or export "
            "ADMINBUS_URL and ADMINBUS_AUTHKEY as it printed (or pass --url and --key)\n",
            url ? "command endpoint (ADMINBUS_URL)" : "", url && key ? " and no " : "",
            key ? "authkey (ADMINBUS_AUTHKEY)" : "", s_where(conn));
    return CTL_EXIT_USAGE;
}

/* The credential a command goes with: none for a public one (auth login), the session of
 * ADMINBUS_SESSION when set (from auth login), else the authkey. */
static const char *s_credential(const ctl_cli *cli, const ctl_conn *conn, const char **name)
{
    const char *session = getenv("ADMINBUS_SESSION");
    *name = "auth";
    if (cli->cmd->permission == AB_PERM_PUBLIC)
        return NULL;
    if (session && *session) {
        *name = "session";
        return session;
    }
    return conn->authkey;
}

static int s_send(const ctl_cli *cli, const ctl_conn *conn, const char *id)
{
    msgpack_sbuffer sbuf;
    const char *cred_name;
    const char *cred = s_credential(cli, conn, &cred_name);
    msgpack_packer pk;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    ctl_pack_command_as(cli, id, cred_name, cred, &pk);
    ctl_reply reply;
    char err[ERR_LEN];
    int rc =
        ctl_request(conn->url, sbuf.data, sbuf.size, id, cli->timeout_ms, &reply, err, sizeof err);
    msgpack_sbuffer_destroy(&sbuf);
    if (rc == -2)
        return s_usage_error(err);
    if (rc < 0) {
        fprintf(stderr, "adminctl: %s\n", err);
        ctl_curve_hint(stderr);
        return CTL_EXIT_UNREACHABLE;
    }
    rc = ctl_render_reply(reply.root, cli->cmd->type, cli->json, stdout, stderr);
    ctl_reply_release(&reply);
    return rc;
}

static int s_run(const ctl_cli *cli, bool track)
{
    ctl_conn conn = {0};
    conn.url = cli->url ? strdup(cli->url) : NULL;
    conn.authkey = cli->key ? strdup(cli->key) : NULL;
    /* The events endpoint only wakes `job track` sooner; plain commands do not need it. */
    conn.events = track ? NULL : strdup("");
    ctl_conn_fill(&conn);
    int rc;
    char id[37];
    const char *session = getenv("ADMINBUS_SESSION");
    bool need_key = cli->cmd->permission != AB_PERM_PUBLIC && !(session && *session);
    if (!conn.url || (need_key && !conn.authkey))
        rc = s_missing(&conn, !conn.url, need_key && !conn.authkey);
    else if (track)
        rc = ctl_track(cli, &conn, cli->values[0].num);
    else if (!cli->id && ctl_uuid_v4(id) < 0)
        rc = s_usage_error("no randomness for a command id: pass --id UUID");
    else
        rc = s_send(cli, &conn, cli->id ? cli->id : id);
    ctl_conn_free(&conn);
    return rc;
}

static int s_events(const ctl_cli *cli)
{
    ctl_conn conn = {0};
    conn.url = strdup(""); /* the command endpoint and key are not needed here */
    conn.authkey = strdup("");
    conn.events = cli->url ? strdup(cli->url) : NULL;
    ctl_conn_fill(&conn);
    int rc = CTL_EXIT_USAGE;
    char err[ERR_LEN] = "";
    if (!conn.events)
        fprintf(stderr,
                "adminctl: no event endpoint (ADMINBUS_EVENTS) in the environment or in %s: run "
                "ops/run, or export ADMINBUS_EVENTS as it printed (or pass --url)\n",
                s_where(&conn));
    else
        rc = ctl_events(conn.events, cli->topics, cli->ntopics, cli->count,
                        cli->timeout_given ? cli->timeout_ms : -1, stdout, err, sizeof err);
    if (err[0])
        fprintf(stderr, "adminctl: %s\n", err);
    ctl_conn_free(&conn);
    return rc;
}

/* `job track ID` is job.view followed until the job ends: find the word "track" after
 * the noun job(s), and parse the line as job view. Returns true when found. */
static bool s_track_verb(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i++)
        if ((!strcmp(argv[i], "job") || !strcmp(argv[i], "jobs")) &&
            !strcmp(argv[i + 1], "track")) {
            argv[i + 1] = "view";
            return true;
        }
    return false;
}

int main(int argc, char **argv)
{
    ctl_cli cli;
    char err[ERR_LEN];
    if (argc > 1 && !strcmp(argv[1], "curve")) /* client-side key tool, no catalog command */
        return ctl_curve_main(argc - 1, argv + 1);
    bool track = s_track_verb(argc, argv);
    bool pw_stdin = ctl_login_take_flags(&argc, argv);
    static char password[512];
    if (ctl_parse(argc, argv, &cli, err, sizeof err) < 0) {
        ctl_release(&cli);
        return s_usage_error(err);
    }
    if (cli.action == CTL_RUN && !strcmp(cli.cmd->type, "auth.login") &&
        ctl_login_password(&cli, pw_stdin, password, sizeof password, err, sizeof err) < 0) {
        ctl_release(&cli);
        return s_usage_error(err);
    }
    switch (cli.action) {
    case CTL_VERSION:
        printf("adminctl %s\n", AB_VERSION);
        return CTL_EXIT_OK;
    case CTL_HELP:
        return s_help(&cli);
    case CTL_EVENTS:
        if (cli.local)
            return s_usage_error("--local runs commands; events come from the broker");
        return s_events(&cli);
    case CTL_RUN:
        break;
    }
    int rc;
    if (cli.local && (track || cli.url || cli.key))
        rc = s_usage_error(track ? "--local runs one command; job track needs the engine"
                                 : "--local talks to the database itself: --url and --key do "
                                   "not apply");
    else
        rc = cli.local ? ctl_local(&cli) : s_run(&cli, track);
    ctl_release(&cli);
    memset(password, 0, sizeof password);
    return rc;
}
