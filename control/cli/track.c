/* track.c — `adminctl job track ID`: follow a job until it ends. It reads the job with
 * job.view (the database is the truth) every 250 ms, sooner when one of the job's events
 * arrives; on a terminal it redraws one progress-bar line, elsewhere it prints a line per
 * change (a JSON line with --json). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "cli/cli.h"
#include "wire/envelope.h"

#define POLL_MS   250
#define BAR_WIDTH 30

typedef struct {
    char state[16];
    char message[200];
    int64_t progress, attempts;
} s_view;

static void s_copy_str(const msgpack_object *map, const char *key, char *out, size_t len)
{
    const msgpack_object *v = ab_map_get(map, key);
    if (v && v->type == MSGPACK_OBJECT_STR)
        snprintf(out, len, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    else
        out[0] = '\0';
}

static int64_t s_int(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = ab_map_get(map, key);
    return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)v->via.u64 : 0;
}

static bool s_final(const char *state)
{
    return !strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled");
}

static void s_draw(const s_view *v, int64_t job, bool tty, bool json)
{
    if (json) {
        printf("{\"id\":%lld,\"state\":\"%s\",\"progress\":%lld,\"attempts\":%lld,\"message\":",
               (long long)job, v->state, (long long)v->progress, (long long)v->attempts);
        json_t *m = json_string(v->message);
        char *s = m ? json_dumps(m, JSON_ENCODE_ANY) : NULL;
        printf("%s}\n", s ? s : "\"\"");
        free(s);
        json_decref(m);
    } else if (tty) {
        char bar[BAR_WIDTH + 1];
        int filled = (int)(v->progress * BAR_WIDTH / 100);
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        printf("\r[%s] %3lld%%  %-9s %s\033[K", bar, (long long)v->progress, v->state, v->message);
    } else {
        printf("%3lld%%  %-9s %s\n", (long long)v->progress, v->state, v->message);
    }
    fflush(stdout);
}

/* One job.view; 0 with *v, or an exit code. */
static int s_view_job(const ctl_cli *cli, const ctl_conn *conn, s_view *v)
{
    char id[37];
    if (ctl_uuid_v4(id) < 0)
        return CTL_EXIT_USAGE;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    ctl_pack_command(cli, id, conn->authkey, &pk);
    ctl_reply reply;
    char err[256];
    int rc =
        ctl_request(conn->url, sbuf.data, sbuf.size, id, cli->timeout_ms, &reply, err, sizeof err);
    msgpack_sbuffer_destroy(&sbuf);
    if (rc < 0) {
        fprintf(stderr, "\nadminctl: %s\n", err);
        return rc == -2 ? CTL_EXIT_USAGE : CTL_EXIT_UNREACHABLE;
    }
    const msgpack_object *ok = ab_map_get(reply.root, "ok");
    const msgpack_object *result = ab_map_get(reply.root, "result");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean || !result) {
        rc = ctl_render_reply(reply.root, "job.view", cli->json, stdout, stderr);
        ctl_reply_release(&reply);
        return rc ? rc : CTL_EXIT_REFUSED;
    }
    s_copy_str(result, "state", v->state, sizeof v->state);
    s_copy_str(result, "message", v->message, sizeof v->message);
    v->progress = s_int(result, "progress");
    v->attempts = s_int(result, "attempts");
    ctl_reply_release(&reply);
    return 0;
}

/* A SUB socket on the job's events, or NULL (then polling alone paces the loop). */
static void *s_subscribe(void *zctx, const char *events, int64_t job)
{
    if (!events || !*events)
        return NULL;
    void *sub = zmq_socket(zctx, ZMQ_SUB);
    char prefix[48];
    snprintf(prefix, sizeof prefix, "job.%lld.", (long long)job);
    int linger = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
    char err[512];
    if (ctl_curve_apply(sub, err, sizeof err) < 0 || zmq_connect(sub, events) != 0) {
        zmq_close(sub);
        return NULL;
    }
    return sub;
}

static void s_wait(void *sub)
{
    if (!sub) {
        usleep(POLL_MS * 1000);
        return;
    }
    zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, POLL_MS) > 0) /* drain: the next job.view tells the state */
        while (zmq_recv(sub, NULL, 0, ZMQ_DONTWAIT) >= 0)
            ;
}

int ctl_track(const ctl_cli *cli, const ctl_conn *conn, int64_t job)
{
    bool tty = isatty(STDOUT_FILENO) && !cli->json;
    void *zctx = zmq_ctx_new();
    void *sub = s_subscribe(zctx, conn->events, job);
    s_view last = {"", "", -1, -1}, now;
    int rc;
    while ((rc = s_view_job(cli, conn, &now)) == 0) {
        if (strcmp(now.state, last.state) || strcmp(now.message, last.message) ||
            now.progress != last.progress)
            s_draw(&now, job, tty, cli->json);
        last = now;
        if (s_final(now.state))
            break;
        s_wait(sub);
    }
    if (tty)
        printf("\n");
    if (sub)
        zmq_close(sub);
    zmq_ctx_term(zctx);
    if (rc != 0)
        return rc;
    return strcmp(now.state, "done") == 0 ? CTL_EXIT_OK : CTL_EXIT_REFUSED;
}
