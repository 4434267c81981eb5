/* bench_commands.c — adminbus-bench: durable commands per second (issue 2, acceptance 7).
 *
 *   --mode bus: C client threads, each with its own DEALER socket, keep a window of W
 *     org.add commands in flight against the broker and count the ok replies (a reply
 *     means committed). Reports commands/s over the wall clock of the whole run (first
 *     send to last reply) and the latency p50/p99. With --random-keys each command is
 *     signed with a fresh guess and --expect names the error codes that count as answers
 *     (tests/bench/run-flood: what a flood of guesses costs).
 *   --mode raw: C threads, each with its own MariaDB connection, insert the rows the
 *     engine writes per org.add (organisation, audit row, command id) in transactions of
 *     B commands, with the fastest honest client: prepared statements, one INSERT per
 *     organisation (its id is needed for the audit row and the reply), the audit rows
 *     and command ids of a batch as one array-bound bulk INSERT each, one COMMIT per
 *     batch. The tables come from the engine's own migrations, in a separate database.
 *
 * Each mode prints a human line and one JSON line; tests/bench/run combines them. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <msgpack.h>
#include <mysql.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "benchutil.h"
#include "wire/config.h"

#include "migrations.h"

#define UUID_LEN     36
#define NAME_MAX_LEN 96
#define CHANGE_MAX   512
#define TITLE_MAX    160
#define REPLY_MAX    512
#define BATCH_LIMIT  4096
#define EXPECT_MAX   4
#define KEY_LEN      40

#define ADMIN_EMAIL "admin@admin.test"
#define ADMIN_ORG   "ORGNAME"
#define ADMIN_ID    1u
#define CLIENT_IP   "127.0.0.1"
#define NATIONALITY "LU"
#define SECTOR      "CERT"
#define ORG_TYPE    "CSIRT"

typedef struct {
    const char *mode;
    const char *url;
    const char *key;
    const char *dsn;
    const char *tag;
    int clients;
    long commands; /* total, split across the clients */
    int window;
    int batch;
    int timeout_s;
    bool org_multi; /* raw: --org-insert multi */
    bool whoami;    /* bus: --command whoami (read-only: authentication alone) */
    char **keys;    /* bus: --keys-file: each command signs with one of these at random */
    size_t nkeys;
    bool random_keys;               /* bus: --random-keys: a fresh guess per command */
    const char *expect[EXPECT_MAX]; /* bus: --expect: error codes counted as answers */
    int nexpect;
} options;

static options s_opt = {
    .clients = 4, .commands = 20000, .window = 64, .batch = 256, .timeout_s = 30};
static atomic_bool s_failed;
static const unsigned s_admin_id = ADMIN_ID;
static pthread_mutex_t s_print_lock = PTHREAD_MUTEX_INITIALIZER;

/* --- common helpers ---------------------------------------------------------------- */

static void s_failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void s_failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&s_print_lock);
    fputs("adminbus-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&s_print_lock);
    va_end(ap);
    atomic_store(&s_failed, true);
}

static int64_t s_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- bus mode ---------------------------------------------------------------------- */

typedef struct {
    char id[UUID_LEN + 1];
    uint64_t sent_ns;
    bool busy;
} slot;

typedef struct {
    int index;
    void *zmq;
    long todo;
    long sent, done;
    int inflight;
    slot *slots;
    uint64_t *lat_ns; /* one per reply */
    uint64_t first_ns, last_ns;
    uint64_t rng;
    msgpack_sbuffer buf;
    char guess[KEY_LEN + 1]; /* --random-keys: the key of the command being packed */
    long codes[EXPECT_MAX];  /* --expect: replies with each of those error codes */
} bus_client;

static void s_pack_kv(msgpack_packer *pk, const char *k, const char *v)
{
    bench_pack_str(pk, k);
    bench_pack_str(pk, v);
}

/* The key of the next command: --key, or one of --keys-file's drawn at random, so that a
 * batch holds many distinct keys and the engine's per-batch cache of them saves little. */
static const char *s_bus_key(bus_client *c)
{
    static const char alnum[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if (s_opt.random_keys) {
        unsigned char r[KEY_LEN];
        bench_random_bytes(&c->rng, r, sizeof r);
        for (int i = 0; i < KEY_LEN; i++)
            c->guess[i] = alnum[r[i] % (sizeof alnum - 1)];
        c->guess[KEY_LEN] = '\0';
        return c->guess;
    }
    if (s_opt.nkeys == 0)
        return s_opt.key;
    uint64_t r;
    bench_random_bytes(&c->rng, (unsigned char *)&r, sizeof r);
    return s_opt.keys[r % s_opt.nkeys];
}

static void s_bus_pack(bus_client *c, const char *id, long n)
{
    msgpack_sbuffer_clear(&c->buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    bench_pack_str(&pk, "v");
    msgpack_pack_int(&pk, 1);
    s_pack_kv(&pk, "id", id);
    s_pack_kv(&pk, "auth", s_bus_key(c));
    if (s_opt.whoami) {
        s_pack_kv(&pk, "type", "auth.whoami");
        bench_pack_str(&pk, "args");
        msgpack_pack_map(&pk, 0);
        return;
    }
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, "bench-%s-%d-%ld", s_opt.tag, c->index, n);
    s_pack_kv(&pk, "type", "org.add");
    bench_pack_str(&pk, "args");
    msgpack_pack_map(&pk, 4);
    s_pack_kv(&pk, "name", name);
    s_pack_kv(&pk, "nationality", NATIONALITY);
    s_pack_kv(&pk, "sector", SECTOR);
    s_pack_kv(&pk, "type", ORG_TYPE);
}

/* --keys-file: one authkey per line. Returns 0, or -1 with a message on stderr. */
static int s_load_keys(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "adminbus-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[128];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!*line)
            continue;
        if (s_opt.nkeys == cap) {
            cap = cap ? cap * 2 : 1024;
            s_opt.keys = realloc(s_opt.keys, cap * sizeof *s_opt.keys);
        }
        s_opt.keys[s_opt.nkeys++] = strdup(line);
    }
    fclose(f);
    if (s_opt.nkeys == 0) {
        fprintf(stderr, "adminbus-bench: %s holds no key\n", path);
        return -1;
    }
    return 0;
}

static slot *s_bus_free_slot(bus_client *c)
{
    for (int i = 0; i < s_opt.window; i++)
        if (!c->slots[i].busy)
            return &c->slots[i];
    return NULL;
}

static int s_bus_send_one(bus_client *c)
{
    slot *s = s_bus_free_slot(c);
    bench_uuid4(&c->rng, s->id);
    s_bus_pack(c, s->id, c->sent);
    s->sent_ns = bench_now_ns();
    if (c->sent == 0)
        c->first_ns = s->sent_ns;
    if (zmq_send(c->zmq, "", 0, ZMQ_SNDMORE) < 0 ||
        zmq_send(c->zmq, c->buf.data, c->buf.size, 0) < 0) {
        s_failf("client %d: send: %s", c->index, zmq_strerror(errno));
        return -1;
    }
    s->busy = true;
    c->sent++;
    c->inflight++;
    return 0;
}

static void s_print_error_reply(bus_client *c, const msgpack_object *root)
{
    char text[1024];
    msgpack_object_print_buffer(text, sizeof text, *root);
    s_failf("client %d: error reply: %s", c->index, text);
}

static slot *s_bus_match(bus_client *c, const msgpack_object *id)
{
    if (!id || id->type != MSGPACK_OBJECT_STR || id->via.str.size != UUID_LEN)
        return NULL;
    for (int i = 0; i < s_opt.window; i++) {
        slot *s = &c->slots[i];
        if (s->busy && memcmp(s->id, id->via.str.ptr, UUID_LEN) == 0)
            return s;
    }
    return NULL;
}

/* The index in --expect of the error code of reply root, or -1. */
static int s_expected_error(const msgpack_object *root)
{
    const msgpack_object *err = bench_map_get(root, "error");
    const msgpack_object *code = err ? bench_map_get(err, "code") : NULL;
    for (int i = 0; code && code->type == MSGPACK_OBJECT_STR && i < s_opt.nexpect; i++)
        if (code->via.str.size == strlen(s_opt.expect[i]) &&
            memcmp(code->via.str.ptr, s_opt.expect[i], code->via.str.size) == 0)
            return i;
    return -1;
}

/* Check one reply body: ok:true (or an error --expect names), and an id we are waiting
 * for. */
static int s_bus_take_reply(bus_client *c, const char *data, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = -1;
    if (msgpack_unpack_next(&u, data, len, NULL) != MSGPACK_UNPACK_SUCCESS) {
        s_failf("client %d: a reply that is not msgpack (%zu bytes)", c->index, len);
        goto out;
    }
    const msgpack_object *ok = bench_map_get(&u.data, "ok");
    int expected = -1;
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN ||
        (!ok->via.boolean && (expected = s_expected_error(&u.data)) < 0)) {
        s_print_error_reply(c, &u.data);
        goto out;
    }
    slot *s = s_bus_match(c, bench_map_get(&u.data, "id"));
    if (!s) {
        s_failf("client %d: a reply for an id we did not send (or sent twice)", c->index);
        goto out;
    }
    if (expected >= 0)
        c->codes[expected]++;
    uint64_t now = bench_now_ns();
    c->lat_ns[c->done++] = now - s->sent_ns;
    c->last_ns = now;
    s->busy = false;
    c->inflight--;
    rc = 0;
out:
    msgpack_unpacked_destroy(&u);
    return rc;
}

/* Read one [empty][reply] message; 1 = got one, 0 = none waiting, -1 = failure. */
static int s_bus_recv_one(bus_client *c)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, c->zmq, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        if (errno == EAGAIN)
            return 0;
        s_failf("client %d: recv: %s", c->index, zmq_strerror(errno));
        return -1;
    }
    bool delimiter = zmq_msg_size(&part) == 0 && zmq_msg_more(&part);
    if (delimiter) {
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        zmq_msg_recv(&part, c->zmq, 0);
    }
    int rc = -1;
    if (!delimiter || zmq_msg_more(&part))
        s_failf("client %d: a reply that is not [empty][body]", c->index);
    else
        rc = s_bus_take_reply(c, zmq_msg_data(&part), zmq_msg_size(&part)) == 0 ? 1 : -1;
    zmq_msg_close(&part);
    return rc;
}

static int s_bus_wait(bus_client *c)
{
    zmq_pollitem_t item = {.socket = c->zmq, .events = ZMQ_POLLIN};
    int n = zmq_poll(&item, 1, (long)s_opt.timeout_s * 1000);
    if (n < 0) {
        s_failf("client %d: poll: %s", c->index, zmq_strerror(errno));
        return -1;
    }
    if (n == 0) {
        s_failf("client %d: timeout: no reply within %d s (%d in flight, %ld done)", c->index,
                s_opt.timeout_s, c->inflight, c->done);
        return -1;
    }
    int got;
    while ((got = s_bus_recv_one(c)) == 1)
        ;
    return got;
}

static void *s_bus_thread(void *arg)
{
    bus_client *c = arg;
    while (c->done < c->todo && !atomic_load(&s_failed)) {
        while (c->sent < c->todo && c->inflight < s_opt.window)
            if (s_bus_send_one(c) < 0)
                return NULL;
        if (s_bus_wait(c) < 0)
            return NULL;
    }
    return NULL;
}

static int s_bus_client_init(bus_client *c, void *ctx, int index)
{
    memset(c, 0, sizeof *c);
    c->index = index;
    c->todo = bench_share(s_opt.commands, s_opt.clients, index);
    c->slots = calloc((size_t)s_opt.window, sizeof *c->slots);
    c->lat_ns = calloc((size_t)c->todo + 1, sizeof *c->lat_ns);
    c->rng = bench_seed();
    msgpack_sbuffer_init(&c->buf);
    c->zmq = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    if (!c->slots || !c->lat_ns || !c->zmq)
        return -1;
    zmq_setsockopt(c->zmq, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(c->zmq, s_opt.url) < 0) {
        fprintf(stderr, "adminbus-bench: connect %s: %s\n", s_opt.url, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

static void s_bus_client_free(bus_client *c)
{
    if (c->zmq)
        zmq_close(c->zmq);
    free(c->slots);
    free(c->lat_ns);
    msgpack_sbuffer_destroy(&c->buf);
}

static void s_bus_report(bus_client *cl)
{
    long done = 0;
    uint64_t first = UINT64_MAX, last = 0;
    for (int i = 0; i < s_opt.clients; i++) {
        done += cl[i].done;
        first = cl[i].first_ns < first ? cl[i].first_ns : first;
        last = cl[i].last_ns > last ? cl[i].last_ns : last;
    }
    uint64_t *all = malloc((size_t)(done + 1) * sizeof *all);
    size_t n = 0;
    for (int i = 0; i < s_opt.clients; i++)
        for (long j = 0; j < cl[i].done; j++)
            all[n++] = cl[i].lat_ns[j];
    double secs = (double)(last - first) / 1e9;
    double rate = secs > 0 ? (double)done / secs : 0.0;
    double p50 = bench_percentile_ms(all, n, 0.50), p99 = bench_percentile_ms(all, n, 0.99);
    long codes[EXPECT_MAX] = {0}, oks = done;
    char counts[64 * EXPECT_MAX] = "";
    size_t used = 0;
    for (int e = 0; e < s_opt.nexpect; e++) {
        for (int i = 0; i < s_opt.clients; i++)
            codes[e] += cl[i].codes[e];
        oks -= codes[e];
        used += (size_t)snprintf(counts + used, sizeof counts - used, ",\"%s\":%ld",
                                 s_opt.expect[e], codes[e]);
    }
    printf("bus: %ld commands, %d clients, window %d: %.0f commands/s (%.2f s); "
           "latency p50 %.2f ms, p99 %.2f ms\n",
           done, s_opt.clients, s_opt.window, rate, secs, p50, p99);
    printf("{\"mode\":\"bus\",\"commands\":%ld,\"clients\":%d,\"window\":%d,\"seconds\":%.3f,"
           "\"cmds_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"ok\":%ld%s}\n",
           done, s_opt.clients, s_opt.window, secs, rate, p50, p99, oks, counts);
    free(all);
}

static int s_run_bus(void)
{
    if (!s_opt.url || (!s_opt.key && s_opt.nkeys == 0 && !s_opt.random_keys)) {
        fprintf(stderr, "adminbus-bench: --mode bus needs --url and --key (or ADMINBUS_URL, "
                        "ADMINBUS_AUTHKEY)\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    bus_client *cl = calloc((size_t)s_opt.clients, sizeof *cl);
    pthread_t *th = calloc((size_t)s_opt.clients, sizeof *th);
    int rc = 0, started = 0;
    for (int i = 0; i < s_opt.clients && rc == 0; i++)
        rc = s_bus_client_init(&cl[i], ctx, i);
    for (int i = 0; i < s_opt.clients && rc == 0; i++, started++)
        pthread_create(&th[i], NULL, s_bus_thread, &cl[i]);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (rc == 0 && !atomic_load(&s_failed))
        s_bus_report(cl);
    for (int i = 0; i < s_opt.clients; i++)
        s_bus_client_free(&cl[i]);
    free(cl);
    free(th);
    zmq_ctx_term(ctx);
    return rc == 0 && !atomic_load(&s_failed) ? 0 : 1;
}

/* --- raw mode: connection ------------------------------------------------------------ */

static MYSQL *s_connect(const ab_dsn *d, const char *db)
{
    MYSQL *m = mysql_init(NULL);
    if (!m)
        return NULL;
    const char *host = d->host && *d->host ? d->host : "localhost";
    if (!mysql_real_connect(m, host, d->user, d->password, db, d->port, d->socket, 0)) {
        s_failf("connect: %s", mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    if (mysql_query(m, "SET time_zone = '+00:00'") != 0 || mysql_autocommit(m, 0) != 0) {
        s_failf("session set-up: %s", mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    return m;
}

static bool s_identifier_ok(const char *s)
{
    for (const char *p = s; *p; p++)
        if (!(*p == '_' || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
              (*p >= 'A' && *p <= 'Z')))
            return false;
    return *s != '\0';
}

/* Run one migration's statements, split as the engine splits them (engine/core/migrate.c): each
 * ends with ';' at the end of a line; text after the last one is not a statement. */
static int s_run_script(MYSQL *m, const char *sql)
{
    const char *stmt = sql;
    for (const char *p = sql; *p; p++) {
        if (*p != ';' || (p[1] != '\n' && p[1] != '\0'))
            continue;
        size_t n = (size_t)(p - stmt);
        if (strspn(stmt, " \t\r\n") < n && mysql_real_query(m, stmt, n) != 0) {
            s_failf("migration: %s", mysql_error(m));
            return -1;
        }
        stmt = p + 1;
    }
    return 0;
}

/* Create the raw database when missing and bring its tables to the engine's schema. */
static int s_raw_prepare_db(const ab_dsn *d)
{
    if (!s_identifier_ok(d->database)) {
        s_failf("database name '%s' is not a plain identifier", d->database);
        return -1;
    }
    MYSQL *m = s_connect(d, NULL);
    if (!m)
        return -1;
    char sql[256];
    snprintf(sql, sizeof sql,
             "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4 "
             "COLLATE utf8mb4_unicode_ci",
             d->database);
    int rc = mysql_query(m, sql) == 0 && mysql_select_db(m, d->database) == 0 ? 0 : -1;
    if (rc != 0)
        s_failf("create database: %s", mysql_error(m));
    for (int i = 0; rc == 0 && i < ab_migrations_count; i++)
        rc = s_run_script(m, ab_migrations[i].sql);
    if (rc == 0 && mysql_commit(m) != 0)
        rc = -1;
    mysql_close(m);
    return rc;
}

/* --- raw mode: one writer ------------------------------------------------------------- */

#define ORG_COLS 9
#define LOG_COLS 9
#define CMD_COLS 4

typedef struct {
    int index;
    MYSQL *m;
    MYSQL_STMT *org, *org_multi, *log, *cmd; /* org_multi: for full batches, made on first use */
    long todo, done;
    uint64_t rng;
    MYSQL_BIND *org_bind; /* ORG_COLS per row (multi) or for one row */
    /* per-row data of a batch (column arrays for the bulk INSERTs) */
    char (*name)[NAME_MAX_LEN], (*uuid)[UUID_LEN + 1];
    char (*title)[TITLE_MAX], (*change)[CHANGE_MAX], (*cmd_id)[UUID_LEN + 1];
    unsigned char (*digest)[32], (*reply)[REPLY_MAX];
    char **title_p, **change_p, **cmd_id_p, **digest_p, **reply_p, **model_p, **action_p, **email_p,
        **orgname_p, **ip_p;
    unsigned long *name_l, *uuid_l, *title_l, *change_l, *cmd_id_l, *digest_l, *reply_l, *model_l,
        *action_l, *email_l, *orgname_l, *ip_l;
    unsigned long long *model_id;
    unsigned *user_id;
    uint64_t first_ns, last_ns;
} raw_writer;

#define ORG_INSERT                                                                                 \
    "INSERT INTO organisations (name, uuid, description, type, nationality, sector, "              \
    "created_by, contacts, local, date_created, date_modified) VALUES "
#define ORG_VALUES "(?, ?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))"
static const char s_sql_org[] = ORG_INSERT ORG_VALUES;
static const char s_sql_log[] =
    "INSERT INTO logs (title, created, model, model_id, action, user_id, `change`, email, org, "
    "ip) VALUES (?, UTC_TIMESTAMP(3), ?, ?, ?, ?, ?, ?, ?, ?)";
static const char s_sql_cmd[] = "INSERT INTO command_ids (user_id, cmd_id, digest, reply, "
                                "created) VALUES (?, ?, ?, ?, UTC_TIMESTAMP(3))";

static MYSQL_STMT *s_prepare(MYSQL *m, const char *sql)
{
    MYSQL_STMT *st = mysql_stmt_init(m);
    if (!st || mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
        s_failf("prepare: %s", st ? mysql_stmt_error(st) : mysql_error(m));
        if (st)
            mysql_stmt_close(st);
        return NULL;
    }
    return st;
}

/* One multi-row INSERT of `rows` organisations that returns their ids, in VALUES order. */
static MYSQL_STMT *s_prepare_org_multi(MYSQL *m, int rows)
{
    size_t cap = sizeof ORG_INSERT + (size_t)rows * (sizeof ORG_VALUES + 2) + 32;
    char *sql = malloc(cap), *p = sql;
    p += sprintf(p, "%s", ORG_INSERT);
    for (int i = 0; i < rows; i++)
        p += sprintf(p, "%s%s", i ? ", " : "", ORG_VALUES);
    strcpy(p, " RETURNING id");
    MYSQL_STMT *st = s_prepare(m, sql);
    free(sql);
    return st;
}

#define ALLOC(field, n) (w->field = calloc((size_t)(n), sizeof *w->field))

static int s_raw_alloc(raw_writer *w, int b)
{
    bool ok = ALLOC(name, b) && ALLOC(uuid, b) && ALLOC(name_l, b) && ALLOC(uuid_l, b) &&
              ALLOC(org_bind, b * ORG_COLS) && ALLOC(title, b) && ALLOC(change, b) &&
              ALLOC(cmd_id, b) && ALLOC(digest, b) && ALLOC(reply, b) && ALLOC(title_p, b) &&
              ALLOC(change_p, b) && ALLOC(cmd_id_p, b) && ALLOC(digest_p, b) && ALLOC(reply_p, b) &&
              ALLOC(model_p, b) && ALLOC(action_p, b) && ALLOC(email_p, b) && ALLOC(orgname_p, b) &&
              ALLOC(ip_p, b) && ALLOC(title_l, b) && ALLOC(change_l, b) && ALLOC(cmd_id_l, b) &&
              ALLOC(digest_l, b) && ALLOC(reply_l, b) && ALLOC(model_l, b) && ALLOC(action_l, b) &&
              ALLOC(email_l, b) && ALLOC(orgname_l, b) && ALLOC(ip_l, b) && ALLOC(model_id, b) &&
              ALLOC(user_id, b);
    return ok ? 0 : -1;
}

static void s_const_col(char **p, unsigned long *l, int b, const char *s)
{
    for (int i = 0; i < b; i++) {
        p[i] = (char *)s;
        l[i] = strlen(s);
    }
}

/* Point the row pointers at the row buffers and fill the columns that never change. */
static void s_raw_fill_constants(raw_writer *w, int b)
{
    for (int i = 0; i < b; i++) {
        w->title_p[i] = w->title[i];
        w->change_p[i] = w->change[i];
        w->cmd_id_p[i] = w->cmd_id[i];
        w->digest_p[i] = (char *)w->digest[i];
        w->reply_p[i] = (char *)w->reply[i];
        w->digest_l[i] = 32;
        w->cmd_id_l[i] = UUID_LEN;
        w->uuid_l[i] = UUID_LEN;
        w->user_id[i] = ADMIN_ID;
    }
    s_const_col(w->model_p, w->model_l, b, "Organisation");
    s_const_col(w->action_p, w->action_l, b, "add");
    s_const_col(w->email_p, w->email_l, b, ADMIN_EMAIL);
    s_const_col(w->orgname_p, w->orgname_l, b, ADMIN_ORG);
    s_const_col(w->ip_p, w->ip_l, b, CLIENT_IP);
}

static void s_bind_strs(MYSQL_BIND *b, enum enum_field_types t, char **p, unsigned long *l)
{
    b->buffer_type = t;
    b->buffer = p;
    b->length = l;
}

static void s_bind_ints(MYSQL_BIND *b, enum enum_field_types t, void *p)
{
    b->buffer_type = t;
    b->buffer = p;
    b->is_unsigned = 1;
}

static int s_raw_bind_bulk(raw_writer *w, unsigned int rows)
{
    MYSQL_BIND lb[LOG_COLS], cb[CMD_COLS];
    memset(lb, 0, sizeof lb);
    memset(cb, 0, sizeof cb);
    s_bind_strs(&lb[0], MYSQL_TYPE_STRING, w->title_p, w->title_l);
    s_bind_strs(&lb[1], MYSQL_TYPE_STRING, w->model_p, w->model_l);
    s_bind_ints(&lb[2], MYSQL_TYPE_LONGLONG, w->model_id);
    s_bind_strs(&lb[3], MYSQL_TYPE_STRING, w->action_p, w->action_l);
    s_bind_ints(&lb[4], MYSQL_TYPE_LONG, w->user_id);
    s_bind_strs(&lb[5], MYSQL_TYPE_STRING, w->change_p, w->change_l);
    s_bind_strs(&lb[6], MYSQL_TYPE_STRING, w->email_p, w->email_l);
    s_bind_strs(&lb[7], MYSQL_TYPE_STRING, w->orgname_p, w->orgname_l);
    s_bind_strs(&lb[8], MYSQL_TYPE_STRING, w->ip_p, w->ip_l);
    s_bind_ints(&cb[0], MYSQL_TYPE_LONG, w->user_id);
    s_bind_strs(&cb[1], MYSQL_TYPE_STRING, w->cmd_id_p, w->cmd_id_l);
    s_bind_strs(&cb[2], MYSQL_TYPE_BLOB, w->digest_p, w->digest_l);
    s_bind_strs(&cb[3], MYSQL_TYPE_BLOB, w->reply_p, w->reply_l);
    if (mysql_stmt_attr_set(w->log, STMT_ATTR_ARRAY_SIZE, &rows) != 0 ||
        mysql_stmt_attr_set(w->cmd, STMT_ATTR_ARRAY_SIZE, &rows) != 0 ||
        mysql_stmt_bind_param(w->log, lb) != 0 || mysql_stmt_bind_param(w->cmd, cb) != 0) {
        s_failf("writer %d: bind: %s %s", w->index, mysql_stmt_error(w->log),
                mysql_stmt_error(w->cmd));
        return -1;
    }
    return 0;
}

static void s_bind_one(MYSQL_BIND *b, enum enum_field_types t, const void *p, unsigned long *l)
{
    b->buffer_type = t;
    b->buffer = (void *)p;
    b->length = l;
    b->is_unsigned = 1;
}

/* Bind every column of organisation `row` to b[0..ORG_COLS), as the engine does (no value
 * is written into the SQL). */
static void s_raw_bind_org(raw_writer *w, MYSQL_BIND *b, int row)
{
    static my_bool is_null = 1;
    static const unsigned one = 1;
    static unsigned long type_l = sizeof ORG_TYPE - 1, nat_l = sizeof NATIONALITY - 1,
                         sector_l = sizeof SECTOR - 1;
    memset(b, 0, ORG_COLS * sizeof *b);
    s_bind_one(&b[0], MYSQL_TYPE_STRING, w->name[row], &w->name_l[row]);
    s_bind_one(&b[1], MYSQL_TYPE_STRING, w->uuid[row], &w->uuid_l[row]);
    s_bind_one(&b[2], MYSQL_TYPE_NULL, NULL, NULL);
    b[2].is_null = &is_null;
    s_bind_one(&b[3], MYSQL_TYPE_STRING, ORG_TYPE, &type_l);
    s_bind_one(&b[4], MYSQL_TYPE_STRING, NATIONALITY, &nat_l);
    s_bind_one(&b[5], MYSQL_TYPE_STRING, SECTOR, &sector_l);
    s_bind_one(&b[6], MYSQL_TYPE_LONG, &s_admin_id, NULL);
    s_bind_one(&b[7], MYSQL_TYPE_NULL, NULL, NULL);
    b[7].is_null = &is_null;
    s_bind_one(&b[8], MYSQL_TYPE_LONG, &one, NULL);
}

static int s_raw_open(raw_writer *w, const ab_dsn *d)
{
    w->m = s_connect(d, d->database);
    if (!w->m)
        return -1;
    w->org = s_prepare(w->m, s_sql_org);
    w->log = s_prepare(w->m, s_sql_log);
    w->cmd = s_prepare(w->m, s_sql_cmd);
    return w->org && w->log && w->cmd ? 0 : -1;
}

/* The reply the engine stores for an org.add: {v, id, ok, result: the organisation}. */
static size_t s_raw_pack_reply(raw_writer *w, int row, int64_t now_ms)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    bench_pack_str(&pk, "v");
    msgpack_pack_int(&pk, 1);
    s_pack_kv(&pk, "id", w->cmd_id[row]);
    bench_pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    bench_pack_str(&pk, "result");
    msgpack_pack_map(&pk, 12);
    bench_pack_str(&pk, "id");
    msgpack_pack_uint64(&pk, w->model_id[row]);
    s_pack_kv(&pk, "name", w->name[row]);
    s_pack_kv(&pk, "uuid", w->uuid[row]);
    bench_pack_str(&pk, "description");
    msgpack_pack_nil(&pk);
    s_pack_kv(&pk, "type", ORG_TYPE);
    s_pack_kv(&pk, "nationality", NATIONALITY);
    s_pack_kv(&pk, "sector", SECTOR);
    bench_pack_str(&pk, "contacts");
    msgpack_pack_nil(&pk);
    bench_pack_str(&pk, "local");
    msgpack_pack_true(&pk);
    bench_pack_str(&pk, "created_by");
    msgpack_pack_uint32(&pk, ADMIN_ID);
    bench_pack_str(&pk, "date_created");
    msgpack_pack_int64(&pk, now_ms);
    bench_pack_str(&pk, "date_modified");
    msgpack_pack_int64(&pk, now_ms);
    size_t n = sb.size < REPLY_MAX ? sb.size : REPLY_MAX;
    memcpy(w->reply[row], sb.data, n);
    msgpack_sbuffer_destroy(&sb);
    return n;
}

/* What the client knows before the INSERTs: names, uuids, command ids, digests. */
static void s_raw_make_rows(raw_writer *w, int rows)
{
    for (int i = 0; i < rows; i++) {
        w->name_l[i] = (unsigned long)snprintf(w->name[i], NAME_MAX_LEN, "bench-%s-%d-%ld",
                                               s_opt.tag, w->index, w->done + i);
        bench_uuid4(&w->rng, w->uuid[i]);
        bench_uuid4(&w->rng, w->cmd_id[i]);
        bench_random_bytes(&w->rng, w->digest[i], 32);
    }
}

/* The audit row and the stored reply, once the organisation's id is known. */
static void s_raw_finish_rows(raw_writer *w, int rows)
{
    int64_t now_ms = s_unix_ms();
    for (int i = 0; i < rows; i++) {
        w->title_l[i] = (unsigned long)snprintf(w->title[i], TITLE_MAX, "Organisation: %s (%llu)",
                                                w->name[i], w->model_id[i]);
        w->change_l[i] = (unsigned long)snprintf(
            w->change[i], CHANGE_MAX,
            "name () => (%s), uuid () => (%s), type () => (" ORG_TYPE "), nationality () => "
            "(" NATIONALITY "), sector () => (" SECTOR "), local () => (1), created_by () => (1)",
            w->name[i], w->uuid[i]);
        w->reply_l[i] = (unsigned long)s_raw_pack_reply(w, i, now_ms);
    }
}

/* --org-insert row: one prepared INSERT per organisation; its id from the OK packet. */
static int s_raw_orgs_row(raw_writer *w, int rows)
{
    for (int i = 0; i < rows; i++) {
        s_raw_bind_org(w, w->org_bind, i);
        if (mysql_stmt_bind_param(w->org, w->org_bind) != 0 || mysql_stmt_execute(w->org) != 0) {
            s_failf("writer %d: insert organisation: %s", w->index, mysql_stmt_error(w->org));
            return -1;
        }
        w->model_id[i] = mysql_stmt_insert_id(w->org);
    }
    return 0;
}

static int s_raw_fetch_ids(raw_writer *w, MYSQL_STMT *st, int rows)
{
    unsigned long long id = 0;
    MYSQL_BIND rb;
    memset(&rb, 0, sizeof rb);
    s_bind_ints(&rb, MYSQL_TYPE_LONGLONG, &id);
    if (mysql_stmt_bind_result(st, &rb) != 0)
        return -1;
    int n = 0;
    while (mysql_stmt_fetch(st) == 0)
        if (n < rows)
            w->model_id[n++] = id;
    mysql_stmt_free_result(st);
    return n == rows ? 0 : -1;
}

/* --org-insert multi: the batch's organisations in one INSERT … RETURNING id. */
static int s_raw_orgs_multi(raw_writer *w, int rows)
{
    bool full = rows == s_opt.batch;
    if (full && !w->org_multi)
        w->org_multi = s_prepare_org_multi(w->m, rows);
    MYSQL_STMT *st = full ? w->org_multi : s_prepare_org_multi(w->m, rows);
    if (!st)
        return -1;
    for (int i = 0; i < rows; i++)
        s_raw_bind_org(w, w->org_bind + i * ORG_COLS, i);
    int rc = mysql_stmt_bind_param(st, w->org_bind) == 0 && mysql_stmt_execute(st) == 0 &&
                     s_raw_fetch_ids(w, st, rows) == 0
                 ? 0
                 : -1;
    if (rc != 0)
        s_failf("writer %d: insert organisations: %s", w->index, mysql_stmt_error(st));
    if (!full)
        mysql_stmt_close(st);
    return rc;
}

static int s_raw_batch(raw_writer *w, int rows)
{
    s_raw_make_rows(w, rows);
    int rc = s_opt.org_multi ? s_raw_orgs_multi(w, rows) : s_raw_orgs_row(w, rows);
    if (rc < 0)
        return -1;
    s_raw_finish_rows(w, rows);
    if (s_raw_bind_bulk(w, (unsigned)rows) < 0)
        return -1;
    if (mysql_stmt_execute(w->log) != 0 || mysql_stmt_execute(w->cmd) != 0) {
        s_failf("writer %d: bulk insert: %s %s", w->index, mysql_stmt_error(w->log),
                mysql_stmt_error(w->cmd));
        return -1;
    }
    if (mysql_commit(w->m) != 0) {
        s_failf("writer %d: commit: %s", w->index, mysql_error(w->m));
        return -1;
    }
    w->done += rows;
    return 0;
}

static void *s_raw_thread(void *arg)
{
    raw_writer *w = arg;
    w->first_ns = bench_now_ns();
    while (w->done < w->todo && !atomic_load(&s_failed)) {
        long left = w->todo - w->done;
        if (s_raw_batch(w, left < s_opt.batch ? (int)left : s_opt.batch) < 0)
            break;
    }
    w->last_ns = bench_now_ns();
    return NULL;
}

static void s_raw_free(raw_writer *w)
{
    MYSQL_STMT *stmts[] = {w->org, w->org_multi, w->log, w->cmd};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        if (stmts[i])
            mysql_stmt_close(stmts[i]);
    if (w->m)
        mysql_close(w->m);
    void *arrays[] = {
        w->name,      w->uuid,     w->name_l,   w->uuid_l,  w->org_bind,  w->title,    w->change,
        w->cmd_id,    w->digest,   w->reply,    w->title_p, w->change_p,  w->cmd_id_p, w->digest_p,
        w->reply_p,   w->model_p,  w->action_p, w->email_p, w->orgname_p, w->ip_p,     w->title_l,
        w->change_l,  w->cmd_id_l, w->digest_l, w->reply_l, w->model_l,   w->action_l, w->email_l,
        w->orgname_l, w->ip_l,     w->model_id, w->user_id};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
        free(arrays[i]);
}

static void s_raw_report(raw_writer *w)
{
    long done = 0;
    uint64_t first = UINT64_MAX, last = 0;
    for (int i = 0; i < s_opt.clients; i++) {
        done += w[i].done;
        first = w[i].first_ns < first ? w[i].first_ns : first;
        last = w[i].last_ns > last ? w[i].last_ns : last;
    }
    double secs = (double)(last - first) / 1e9;
    double rate = secs > 0 ? (double)done / secs : 0.0;
    const char *how = s_opt.org_multi ? "multi" : "row";
    printf("raw: %ld commands, %d clients, batch %d, org-insert %s: %.0f commands/s (%.2f s)\n",
           done, s_opt.clients, s_opt.batch, how, rate, secs);
    printf("{\"mode\":\"raw\",\"commands\":%ld,\"clients\":%d,\"batch\":%d,"
           "\"org_insert\":\"%s\",\"seconds\":%.3f,\"cmds_per_s\":%.1f}\n",
           done, s_opt.clients, s_opt.batch, how, secs, rate);
}

static int s_raw_start(raw_writer *w, const ab_dsn *d, int i)
{
    w->index = i;
    w->todo = bench_share(s_opt.commands, s_opt.clients, i);
    w->rng = bench_seed();
    if (s_raw_alloc(w, s_opt.batch) < 0)
        return -1;
    s_raw_fill_constants(w, s_opt.batch);
    return s_raw_open(w, d);
}

static int s_run_raw(void)
{
    ab_dsn d;
    char err[256];
    if (ab_dsn_parse(s_opt.dsn, &d, err, sizeof err) < 0) {
        fprintf(stderr, "adminbus-bench: --dsn: %s\n", err);
        return 2;
    }
    raw_writer *w = calloc((size_t)s_opt.clients, sizeof *w);
    pthread_t *th = calloc((size_t)s_opt.clients, sizeof *th);
    int rc = s_raw_prepare_db(&d), started = 0;
    for (int i = 0; i < s_opt.clients && rc == 0; i++)
        rc = s_raw_start(&w[i], &d, i);
    for (int i = 0; i < s_opt.clients && rc == 0; i++, started++)
        pthread_create(&th[i], NULL, s_raw_thread, &w[i]);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    if (rc == 0 && !atomic_load(&s_failed))
        s_raw_report(w);
    for (int i = 0; i < s_opt.clients; i++)
        s_raw_free(&w[i]);
    free(w);
    free(th);
    ab_dsn_free(&d);
    return rc == 0 && !atomic_load(&s_failed) ? 0 : 1;
}

/* --- main -------------------------------------------------------------------------- */

static void s_usage(FILE *f)
{
    fputs("usage: adminbus-bench --mode bus --url URL --key AUTHKEY [options]\n"
          "       adminbus-bench --mode raw --dsn DSN [options]\n"
          "  --clients C    concurrent clients / connections (default 4)\n"
          "  --commands N   org.add commands in total, split across clients (default 20000)\n"
          "  --window W     bus: commands in flight per client (default 64)\n"
          "  --batch B      raw: commands per transaction (default 256)\n"
          "  --tag T        part of every organisation name (default: pid and time)\n"
          "  --timeout S    bus: seconds without a reply before failing (default 30)\n"
          "  --org-insert row|multi\n"
          "                 raw: one INSERT per organisation (default, as the engine: each\n"
          "                 command is its own statement), or one multi-row INSERT … RETURNING\n"
          "                 id per batch (the ceiling when no per-command isolation is needed)\n"
          "  --command org.add|whoami\n"
          "                 bus: what each command does (default org.add; whoami reads only,\n"
          "                 so the run measures authentication and the round trip)\n"
          "  --keys-file F  bus: sign each command with a key drawn at random from F (one\n"
          "                 per line) instead of --key\n"
          "  --random-keys  bus: sign each command with a fresh random key (a guess)\n"
          "  --expect CODE  bus: count an error reply with this code as an answer, not a\n"
          "                 failure (repeatable, up to 4: unauthenticated, unavailable, …)\n"
          "URL, AUTHKEY and DSN default to $ADMINBUS_URL, $ADMINBUS_AUTHKEY and\n"
          "$ADMINBUS_BENCH_DSN. Exit 0 when every command succeeded, 1 otherwise, 2 on usage.\n",
          f);
}

static int s_parse_args(int argc, char **argv)
{
    static const struct option opts[] = {{"mode", 1, NULL, 'm'},
                                         {"url", 1, NULL, 'u'},
                                         {"key", 1, NULL, 'k'},
                                         {"dsn", 1, NULL, 'd'},
                                         {"clients", 1, NULL, 'c'},
                                         {"commands", 1, NULL, 'n'},
                                         {"window", 1, NULL, 'w'},
                                         {"batch", 1, NULL, 'b'},
                                         {"tag", 1, NULL, 't'},
                                         {"timeout", 1, NULL, 'T'},
                                         {"org-insert", 1, NULL, 'o'},
                                         {"help", 0, NULL, 'h'},
                                         {"command", 1, NULL, 'C'},
                                         {"keys-file", 1, NULL, 'K'},
                                         {"random-keys", 0, NULL, 'R'},
                                         {"expect", 1, NULL, 'E'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            s_opt.mode = optarg;
            break;
        case 'u':
            s_opt.url = optarg;
            break;
        case 'k':
            s_opt.key = optarg;
            break;
        case 'd':
            s_opt.dsn = optarg;
            break;
        case 'c':
            s_opt.clients = atoi(optarg);
            break;
        case 'n':
            s_opt.commands = atol(optarg);
            break;
        case 'w':
            s_opt.window = atoi(optarg);
            break;
        case 'b':
            s_opt.batch = atoi(optarg);
            break;
        case 't':
            s_opt.tag = optarg;
            break;
        case 'T':
            s_opt.timeout_s = atoi(optarg);
            break;
        case 'o':
            if (strcmp(optarg, "row") != 0 && strcmp(optarg, "multi") != 0)
                return -1;
            s_opt.org_multi = strcmp(optarg, "multi") == 0;
            break;
        case 'C':
            if (strcmp(optarg, "org.add") != 0 && strcmp(optarg, "whoami") != 0)
                return -1;
            s_opt.whoami = strcmp(optarg, "whoami") == 0;
            break;
        case 'K':
            if (s_load_keys(optarg) < 0)
                exit(2);
            break;
        case 'R':
            s_opt.random_keys = true;
            break;
        case 'E':
            if (s_opt.nexpect == EXPECT_MAX)
                return -1;
            s_opt.expect[s_opt.nexpect++] = optarg;
            break;
        case 'h':
            s_usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return optind == argc ? 0 : -1;
}

static bool s_options_valid(void)
{
    return s_opt.mode && s_opt.clients >= 1 && s_opt.clients <= 256 &&
           s_opt.commands >= s_opt.clients && s_opt.window >= 1 && s_opt.window <= 4096 &&
           s_opt.batch >= 1 && s_opt.batch <= BATCH_LIMIT && s_opt.timeout_s >= 1;
}

int main(int argc, char **argv)
{
    s_opt.url = getenv("ADMINBUS_URL");
    s_opt.key = getenv("ADMINBUS_AUTHKEY");
    s_opt.dsn = getenv("ADMINBUS_BENCH_DSN");
    if (s_parse_args(argc, argv) < 0 || !s_options_valid()) {
        s_usage(stderr);
        return 2;
    }
    static char tag[48];
    if (!s_opt.tag) {
        snprintf(tag, sizeof tag, "%x%x", (unsigned)getpid(), (unsigned)time(NULL));
        s_opt.tag = tag;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(s_opt.mode, "bus") == 0)
        return s_run_bus();
    if (strcmp(s_opt.mode, "raw") == 0) {
        if (mysql_library_init(0, NULL, NULL) != 0)
            return 1;
        int rc = s_run_raw();
        mysql_library_end();
        return rc;
    }
    s_usage(stderr);
    return 2;
}
