/* bus.c — the shim's bus client: a pool of ZMQ_DEALER sockets to the broker.
 *
 * Why a pool: libmicrohttpd runs a thread per connection, so many requests wait for
 * replies at once. A ZeroMQ socket must not be used by two threads at the same time,
 * and one shared DEALER would need a dispatcher thread to hand replies back by id. A pool
 * is simpler and as fast: a request takes an idle socket (or opens one), has exactly one
 * command in flight on it, and gives it back; the mutex that guards the pool is the full
 * memory barrier ZeroMQ asks for when a socket moves between threads. A socket whose
 * reply did not come is closed, never returned (a late reply must not reach the next
 * request), and the command is re-sent once with the same id on a fresh socket, as
 * adminctl does: the engine answers a repeated id from its stored result.
 *
 * With the broker's proxy intake (proxy_endpoint, broker/zmq/proxy.h) the sockets connect there
 * and send [empty][client ip][command]: the engine then checks allowed_ips against, and
 * audits, the HTTP client's address instead of the shim's.
 *
 * When the broker wants CURVE on the commands endpoint, each socket connects with a key
 * pair (hs_zmq_curve); the ipc:// proxy intake is always plain. Over Kafka (transport =
 * kafka) there are no sockets: kafka.c produces the command and hands its reply back. */
#include "http/http.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zmq.h>

#include "catalog.h"
#include "cli/cli.h"
#include "wire/envelope.h"

#define S_POOL_MAX  256               /* idle sockets kept; more are closed on return */
#define S_REPLY_MAX (64u << 20)       /* protects memory only */
#define S_OUTCOMES  (AB_E__COUNT + 1) /* ok, each error code, and "no reply" (last) */

struct hs_bus {
    void *ctx;
    char *url;
    bool proxied; /* url is the proxy intake: each command carries its client's address */
    int timeout_ms;
    pthread_mutex_t lock;
    void *idle[S_POOL_MAX];
    int nidle;
    uint64_t *counts; /* [catalog index][outcome] */
    hs_kbus *kafka;   /* transport = kafka: commands over Kafka instead of the pool */
};

/* The address of the HTTP client this thread serves: libmicrohttpd runs one thread per
 * connection, and main.c sets it on every callback before any command is sent. */
static _Thread_local char s_client_ip[AB_IP_MAX + 1];

void hs_bus_client_ip(const char *ip)
{
    snprintf(s_client_ip, sizeof s_client_ip, "%s", ip ? ip : "");
}

hs_bus *hs_bus_new(const hs_options *o, char *err, size_t errlen)
{
    hs_bus *bus = calloc(1, sizeof *bus);
    snprintf(err, errlen, "out of memory");
    if (!bus)
        return NULL;
    pthread_mutex_init(&bus->lock, NULL);
    bus->timeout_ms = o->bus_timeout_ms;
    bus->counts = calloc(ab_catalog_len * S_OUTCOMES, sizeof *bus->counts);
    if (o->kafka) {
        bus->kafka = bus->counts ? hs_kbus_new(o, err, errlen) : NULL;
        if (!bus->kafka) {
            hs_bus_free(bus);
            return NULL;
        }
        return bus;
    }
    bus->ctx = zmq_ctx_new();
    if (bus->ctx) /* a DEALER per request in flight, and the idle ones (ZeroMQ's default: 1023) */
        zmq_ctx_set(bus->ctx, ZMQ_MAX_SOCKETS, (int)o->max_conns + S_POOL_MAX + 64);
    bus->proxied = o->proxy != NULL;
    bus->url = strdup(o->proxy ? o->proxy : o->url);
    if (!bus->ctx || !bus->url || !bus->counts) {
        hs_bus_free(bus);
        return NULL;
    }
    return bus;
}

void hs_bus_free(hs_bus *bus)
{
    if (!bus)
        return;
    hs_kbus_free(bus->kafka);
    for (int i = 0; i < bus->nidle; i++)
        zmq_close(bus->idle[i]);
    if (bus->ctx)
        zmq_ctx_term(bus->ctx);
    pthread_mutex_destroy(&bus->lock);
    free(bus->counts);
    free(bus->url);
    free(bus);
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A CURVE setting that cannot work (a key file missing or unreadable): every request
 * answers unavailable; say why on stderr, once. */
static void s_curve_failed(const char *why)
{
    static atomic_flag said = ATOMIC_FLAG_INIT;
    if (!atomic_flag_test_and_set(&said))
        fprintf(stderr, "adminbus-http: cannot set up CURVE for the bus: %s\n", why);
}

/* An idle socket from the pool, or a new one connected to the broker; NULL on a fault. */
static void *s_take(hs_bus *bus)
{
    void *s = NULL;
    pthread_mutex_lock(&bus->lock);
    if (bus->nidle > 0)
        s = bus->idle[--bus->nidle];
    pthread_mutex_unlock(&bus->lock);
    if (s)
        return s;
    s = zmq_socket(bus->ctx, ZMQ_DEALER);
    if (!s)
        return NULL;
    int zero = 0;
    int64_t max = S_REPLY_MAX;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
    char err[512];
    if (hs_zmq_curve(s, bus->url, err, sizeof err) < 0) {
        s_curve_failed(err);
        zmq_close(s);
        return NULL;
    }
    if (zmq_connect(s, bus->url) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

static void s_give_back(hs_bus *bus, void *s)
{
    pthread_mutex_lock(&bus->lock);
    if (bus->nidle < S_POOL_MAX) {
        bus->idle[bus->nidle++] = s;
        s = NULL;
    }
    pthread_mutex_unlock(&bus->lock);
    if (s)
        zmq_close(s);
}

/* --- JSON → msgpack, with MISP's loose scalars cast to the catalog's types ------------- */

static bool s_digits(const char *s)
{
    if (*s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* One top-level argument: MISP clients send ids as strings ("5") and booleans as 0/1 or
 * "1"; the catalog says what the engine takes. Only the JSON type is changed, never the
 * value, and anything else goes as sent (the engine then names the field). */
static void s_pack_arg(msgpack_packer *pk, const ab_arg *a, const json_t *v)
{
    if (a && a->type == AB_ARG_INT && json_is_string(v) && s_digits(json_string_value(v))) {
        msgpack_pack_int64(pk, strtoll(json_string_value(v), NULL, 10));
        return;
    }
    if (a && a->type == AB_ARG_BOOL) {
        if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
            json_integer_value(v) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
            return;
        }
        const char *s = json_is_string(v) ? json_string_value(v) : NULL;
        if (s && (!strcmp(s, "1") || !strcasecmp(s, "true"))) {
            msgpack_pack_true(pk);
            return;
        }
        if (s && (!strcmp(s, "0") || !strcasecmp(s, "false"))) {
            msgpack_pack_false(pk);
            return;
        }
    }
    if (a && (a->type == AB_ARG_STR || a->type == AB_ARG_ENUM) && json_is_integer(v)) {
        char num[32];
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        ab_pack_cstr(pk, num);
        return;
    }
    ctl_pack_json(pk, v);
}

static void s_pack_command(msgpack_packer *pk, const char *id, const char *type, json_t *args,
                           const char *auth, const char *reply_to)
{
    msgpack_pack_map(pk, 5 + (auth != NULL) + (reply_to != NULL));
    /* Every command the shim sends says it came over HTTP: the engine refuses what MISP
     * keeps off the web (CLI-only settings), on every transport (docs/protocol.md). */
    ab_pack_cstr(pk, "via");
    ab_pack_cstr(pk, AB_VIA_HTTP);
    if (reply_to) { /* Kafka: where the engine sends the reply (the record's key) */
        ab_pack_cstr(pk, "reply_to");
        ab_pack_cstr(pk, reply_to);
    }
    ab_pack_cstr(pk, "v");
    msgpack_pack_int(pk, AB_WIRE_VERSION);
    ab_pack_cstr(pk, "id");
    ab_pack_cstr(pk, id);
    ab_pack_cstr(pk, "type");
    ab_pack_cstr(pk, type);
    ab_pack_cstr(pk, "args");
    const ab_command *cmd = ab_catalog_find(type, strlen(type));
    msgpack_pack_map(pk, args ? json_object_size(args) : 0);
    const char *k;
    json_t *x;
    if (args)
        json_object_foreach(args, k, x)
        {
            ab_pack_cstr(pk, k);
            s_pack_arg(pk, cmd ? ab_command_arg(cmd, k, strlen(k)) : NULL, x);
        }
    if (auth) {
        ab_pack_cstr(pk, "auth");
        ab_pack_cstr(pk, auth);
    }
}

/* --- one exchange ------------------------------------------------------------------------ */

/* Receive one message; returns its last frame (malloc'd) when it is [empty][body]. */
static char *s_recv(void *s, size_t *len)
{
    int frames = 0;
    bool first_empty = false;
    char *body = NULL;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) < 0) {
            zmq_msg_close(&m);
            free(body);
            return NULL;
        }
        if (frames++ == 0)
            first_empty = zmq_msg_size(&m) == 0;
        free(body);
        *len = zmq_msg_size(&m);
        body = malloc(*len ? *len : 1);
        if (body)
            memcpy(body, zmq_msg_data(&m), *len);
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    if (frames != 2 || !first_empty) {
        free(body);
        return NULL;
    }
    return body;
}

static bool s_id_matches(const char *buf, size_t len, const char *id)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    bool ok = msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
              u.data.type == MSGPACK_OBJECT_MAP;
    const msgpack_object *rid = ok ? ab_map_get(&u.data, "id") : NULL;
    if (rid && rid->type == MSGPACK_OBJECT_STR && rid->via.str.size > 0)
        ok = rid->via.str.size == strlen(id) &&
             strncasecmp(rid->via.str.ptr, id, rid->via.str.size) == 0;
    msgpack_unpacked_destroy(&u);
    return ok;
}

/* Send body on s (after the client's address ip when not NULL: the proxy intake) and wait
 * for the reply to id. Returns the reply bytes or NULL. */
static char *s_exchange(void *s, const char *ip, const char *body, size_t blen, const char *id,
                        int timeout_ms, size_t *len)
{
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    if (zmq_send(s, "", 0, ZMQ_SNDMORE) < 0 ||
        (ip && zmq_send(s, ip, strlen(ip), ZMQ_SNDMORE) < 0) || zmq_send(s, body, blen, 0) < 0)
        return NULL;
    int64_t deadline = s_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - s_now_ms();
        if (left <= 0)
            return NULL;
        zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, (long)left);
        if (rc < 0 && errno != EINTR)
            return NULL;
        if (rc <= 0)
            continue;
        char *reply = s_recv(s, len);
        if (reply && s_id_matches(reply, *len, id))
            return reply;
        free(reply);
    }
}

/* --- the reply ------------------------------------------------------------------------------ */

static void s_copy_str(const msgpack_object *o, char *out, size_t cap)
{
    out[0] = '\0';
    if (o && o->type == MSGPACK_OBJECT_STR) {
        size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
        memcpy(out, o->via.str.ptr, n);
        out[n] = '\0';
    }
}

static void s_decode(const char *buf, size_t len, hs_reply *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        snprintf(out->code, sizeof out->code, "internal");
        snprintf(out->message, sizeof out->message, "the engine's reply is not a msgpack map");
        msgpack_unpacked_destroy(&u);
        return;
    }
    out->replied = true;
    const msgpack_object *ok = ab_map_get(&u.data, "ok");
    out->ok = ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
    if (out->ok) {
        const msgpack_object *res = ab_map_get(&u.data, "result");
        out->result = res ? ctl_to_json(res) : json_null();
    } else {
        const msgpack_object *e = ab_map_get(&u.data, "error");
        s_copy_str(ab_map_get(e, "code"), out->code, sizeof out->code);
        s_copy_str(ab_map_get(e, "field"), out->field, sizeof out->field);
        s_copy_str(ab_map_get(e, "message"), out->message, sizeof out->message);
        const msgpack_object *ra = ab_map_get(e, "retry_after");
        if (ra && ra->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            out->retry_after = (int)ra->via.u64;
        if (!out->code[0])
            snprintf(out->code, sizeof out->code, "internal");
    }
    msgpack_unpacked_destroy(&u);
}

static void s_count(hs_bus *bus, const char *type, const hs_reply *r)
{
    const ab_command *cmd = ab_catalog_find(type, strlen(type));
    if (!cmd)
        return;
    size_t outcome = S_OUTCOMES - 1;
    if (r->replied)
        outcome = r->ok ? 0 : (size_t)ab_code_from_name(r->code, strlen(r->code));
    pthread_mutex_lock(&bus->lock);
    bus->counts[(size_t)(cmd - ab_catalog) * S_OUTCOMES + outcome]++;
    pthread_mutex_unlock(&bus->lock);
}

void hs_bus_call(hs_bus *bus, const char *type, json_t *args, const char *auth, hs_reply *out)
{
    memset(out, 0, sizeof *out);
    char id[37];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (ctl_uuid_v4(id) == 0)
        s_pack_command(&pk, id, type, args, auth, bus->kafka ? hs_kbus_reply_to(bus->kafka) : NULL);
    char *reply = NULL, why[256] = "";
    size_t len = 0;
    if (bus->kafka && sb.size)
        reply = hs_kbus_request(bus->kafka, sb.data, sb.size, id, bus->timeout_ms, &len, why,
                                sizeof why);
    for (int attempt = 0; !bus->kafka && attempt < 2 && !reply && sb.size; attempt++) {
        void *s = s_take(bus);
        if (!s)
            break;
        reply = s_exchange(s, bus->proxied ? s_client_ip : NULL, sb.data, sb.size, id,
                           bus->timeout_ms, &len);
        if (reply)
            s_give_back(bus, s);
        else
            zmq_close(s); /* a late reply must not reach the next request */
    }
    msgpack_sbuffer_destroy(&sb);
    if (reply) {
        s_decode(reply, len, out);
        free(reply);
    } else {
        snprintf(out->code, sizeof out->code, "unavailable");
        if (why[0])
            snprintf(out->message, sizeof out->message, "%s", why);
        else
            snprintf(out->message, sizeof out->message,
                     "no reply from the engine within %g s (sent twice with the same id): is the "
                     "stack running?",
                     bus->timeout_ms / 1000.0);
        out->retry_after = 1;
    }
    s_count(bus, type, out);
}

void hs_reply_release(hs_reply *r)
{
    json_decref(r->result);
    r->result = NULL;
}

/* Prometheus text: adminbus_http_commands_total{type, outcome}, only the non-zero ones. */
void hs_bus_metrics(hs_bus *bus, char **text, size_t *len)
{
    FILE *f = open_memstream(text, len);
    if (!f)
        return;
    fputs("# HELP adminbus_http_commands_total Commands the HTTP shim sent, by type and "
          "outcome (ok, an error code, or no_reply).\n"
          "# TYPE adminbus_http_commands_total counter\n",
          f);
    pthread_mutex_lock(&bus->lock);
    for (size_t c = 0; c < ab_catalog_len; c++)
        for (size_t o = 0; o < S_OUTCOMES; o++) {
            uint64_t n = bus->counts[c * S_OUTCOMES + o];
            if (!n)
                continue;
            const char *outcome = o == 0                ? "ok"
                                  : o == S_OUTCOMES - 1 ? "no_reply"
                                                        : ab_code_name((ab_code)o);
            fprintf(f, "adminbus_http_commands_total{type=\"%s\",outcome=\"%s\"} %llu\n",
                    ab_catalog[c].type, outcome, (unsigned long long)n);
        }
    pthread_mutex_unlock(&bus->lock);
    fclose(f);
}
