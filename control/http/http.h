/* http.h — adminbus-http, the MISP-compatible HTTP shim (docs/architecture.md, "HTTP shim
 * (issue 7)").
 *
 * It turns HTTP requests into v1 commands on the ZeroMQ bus and replies into MISP-shaped
 * JSON. No business rule lives here: the engine authenticates (the authkey from
 * Authorization or X-MISP-AUTH becomes the command's auth), authorises and validates.
 * The shim only maps routes to commands, MISP field names to argument names, and results
 * to MISP's records; and it enforces the HTTP limits (body, headers, time, connections).
 *
 * Parts: main.c (options, the libmicrohttpd daemon, limits and error bodies), bus.c (a pool
 * of DEALER sockets: one command in flight per socket, many sockets; or kafka.c's producer
 * and reply dispatcher), misp.c (the MISP routes), stream.c (/events as Server-Sent Events,
 * /metrics, /health), enginestats.c (the engines' stats events that /metrics renders),
 * evsrc.c (where events come from: the broker's ZeroMQ fan-out or the Kafka events topic),
 * kafka.c (the shim over Kafka, transport = kafka). */
#ifndef AB_HTTP_H
#define AB_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wire/config.h"
#include "wire/iprange.h"

/* --- options ------------------------------------------------------------------------- */

typedef struct {
    char *listen;            /* address to bind (default 127.0.0.1) */
    int port;                /* 0: a free port, printed on stdout */
    char *url;               /* the broker's command endpoint (ADMINBUS_URL) */
    char *events;            /* the broker's event endpoint (ADMINBUS_EVENTS) */
    char *proxy;             /* the broker's proxy intake (proxy_endpoint); NULL: none */
    size_t max_body;         /* bytes; larger bodies get 413 */
    size_t max_header;       /* bytes of all request headers together; larger get 431 */
    unsigned max_conns;      /* concurrent connections; more are refused at accept */
    unsigned per_ip_conns;   /* concurrent connections per client address; 0 = no limit */
    unsigned reserved_conns; /* the last slots of max_conns: for addresses that hold none */
    unsigned idle_s;         /* a connection silent this long is closed (slowloris) */
    unsigned header_s;       /* a request whose head is still coming after this gets 408 */
    unsigned request_s;      /* a request whose body is still coming after this gets 408 */
    int bus_timeout_ms;      /* wait for a reply (sent twice with the same id) */
    unsigned sse_recheck_s;  /* /events re-checks the caller's key this often */
    char *tls_cert;          /* PEM paths: TLS when both are given */
    char *tls_key;
    char *port_file; /* write the bound port here once listening */
#define HS_TRUSTED_MAX 16
    ab_cidr trusted[HS_TRUSTED_MAX]; /* --trust-forwarded-for: reverse proxies believed */
    int ntrusted;
    /* transport = kafka in adminbus.conf: commands, replies and events over Kafka (kafka.c);
     * url, events and proxy are then unused */
    bool kafka;
    char *kafka_brokers, *kafka_commands, *kafka_replies, *kafka_events;
    char **kafka_names, **kafka_values; /* the kafka.* pass-through properties */
    size_t nkafka;
} hs_options;

/* --- forwarded.c: the client's address ----------------------------------------------- */

/* Add a --trust-forwarded-for range. Returns 0, or -1 after printing why. */
int hs_trust_add(hs_options *o, const char *cidr);

/* The address a request is from, into out: the connection's peer, unless the peer is a
 * trusted reverse proxy, then the first address from the right of Forwarded (RFC 7239; or,
 * without it, X-Forwarded-For) that is not a trusted proxy (or the last trusted hop, when
 * a hop is no address). See forwarded.h. */
void hs_client_address(const hs_options *o, struct MHD_Connection *c, const char *peer, char *out,
                       size_t outlen);

/* --- bus.c ----------------------------------------------------------------------------- */

typedef struct hs_bus hs_bus;

/* Commands go to o->url (the broker's commands endpoint), or, when o->proxy is not NULL, to
 * the broker's proxy intake with the HTTP client's address (hs_bus_client_ip); or, with
 * o->kafka, to the commands topic (kafka.c). NULL with a message in err. */
hs_bus *hs_bus_new(const hs_options *o, char *err, size_t errlen);

/* Name the HTTP client the calling thread serves (its address in text form, from the
 * connection): the commands this thread sends carry it through the proxy intake. */
void hs_bus_client_ip(const char *ip);
void hs_bus_free(hs_bus *bus);

/* The outcome of one command. */
typedef struct {
    bool replied; /* false: no reply (unreachable, timed out) */
    bool ok;
    json_t *result;    /* ok: the result (owned) */
    char code[32];     /* !ok: the error code ("invalid", …; "unavailable" with no reply) */
    char field[64];    /* !ok: the offending field, "" when none */
    char message[512]; /* !ok: the engine's message */
    int retry_after;   /* seconds, 0 when not given */
} hs_reply;

/* Send command type with args (a JSON object, may be NULL; values are cast to the catalog's
 * argument types where MISP sends another JSON type: "5" for an integer, 1 for a boolean)
 * and the credential auth (NULL: none) and wait for its reply. Always fills *out
 * (release with hs_reply_release). */
void hs_bus_call(hs_bus *bus, const char *type, json_t *args, const char *auth, hs_reply *out);
void hs_reply_release(hs_reply *r);

/* Counters of what went over the bus, for /metrics: per command type, ok and each error. */
void hs_bus_metrics(hs_bus *bus, char **text, size_t *len);

/* --- evsrc.c: where events come from -------------------------------------------------- */

typedef struct {
    char *topic; /* the bus topic (job.42.done, engine.e1.stats, …) */
    void *body;  /* the event, msgpack as published */
    size_t len;
} hs_event;

typedef struct hs_server hs_server;
typedef struct hs_evsrc hs_evsrc;
struct hs_evsrc { /* an implementation embeds this first */
    int (*next)(hs_evsrc *e, int timeout_ms, hs_event *ev);
    void (*close)(hs_evsrc *e);
};

/* The events whose topic starts with one of prefixes[0..n) (n == 0: all) from now on: a SUB
 * on srv->opt.events, or (opt.kafka) a consumer at the end of the events topic. NULL with
 * a message in err. */
hs_evsrc *hs_evsrc_open(hs_server *srv, const char *const *prefixes, size_t n, char *err,
                        size_t errlen);

/* The next event within timeout_ms: 1 (ev filled; release with hs_event_release), 0 none
 * (timeout), -1 a fault. */
int hs_evsrc_next(hs_evsrc *e, int timeout_ms, hs_event *ev);
void hs_event_release(hs_event *ev);
void hs_evsrc_close(hs_evsrc *e); /* NULL is fine */

/* Before zmq_connect of one of the shim's sockets to endpoint: CURVE when the broker wants
 * it there (the internal key pair, as the local daemons; else the client key of
 * ADMINBUS_CURVE_SERVERKEY as adminctl), never on the ipc:// proxy intake. Returns 0, or -1
 * with a message in err. */
int hs_zmq_curve(void *sock, const char *endpoint, char *err, size_t errlen);

/* --- kafka.c: the shim over Kafka ------------------------------------------------------ */

/* Copy cfg's transport and kafka_* settings into o (o->kafka when transport = kafka). */
void hs_kafka_options(const ab_config *cfg, hs_options *o);
void hs_kafka_options_free(hs_options *o);

hs_evsrc *hs_evsrc_kafka_open(const hs_options *o, const char *const *prefixes, size_t n, char *err,
                              size_t errlen);

typedef struct hs_kbus hs_kbus;
/* A producer to the commands topic and a consumer at the end of the replies topic with a
 * dispatcher thread; NULL with a message in err (the cluster unreachable at start). */
hs_kbus *hs_kbus_new(const hs_options *o, char *err, size_t errlen);
void hs_kbus_free(hs_kbus *k);
/* This shim's reply_to (unique per process): every command carries it. */
const char *hs_kbus_reply_to(const hs_kbus *k);
/* Produce body (a command for id, reply_to set) keyed by id and wait for its reply; re-sent
 * once with the same id. Returns the reply (malloc'd, *rlen bytes) or NULL with err. */
char *hs_kbus_request(hs_kbus *k, const char *body, size_t len, const char *id, int timeout_ms,
                      size_t *rlen, char *err, size_t errlen);

/* --- the request, as the route handlers see it -------------------------------------- */

typedef struct hs_server hs_server;

typedef struct {
    hs_server *srv;
    const char *method;
    const char *path;  /* without ".json" and a trailing slash */
    const char *param; /* the {id} segment of the route, "" when none */
    const char *auth;  /* the authkey from Authorization / X-MISP-AUTH, NULL when none */
    json_t *body;      /* the JSON object sent (unwrapped later by the handler), or NULL */
    void *conn;        /* struct MHD_Connection * */
    /* the response, set by the handler */
    int status;
    json_t *json;      /* a JSON body (owned), or */
    char *text;        /* a text body (owned, malloc'd) with content type: */
    const char *ctype; /* text's content type */
    char allow[48];    /* 405: the methods the route takes, for the Allow header */
    bool streamed;     /* the handler queued its own response (/events) */
} hs_req;

typedef struct hs_guard hs_guard;
typedef struct hs_engine_stats hs_engine_stats;
typedef struct hs_connlimit hs_connlimit;

struct hs_server {
    hs_options opt;
    hs_bus *bus;
    hs_guard *guard;
    void *zctx;            /* ZeroMQ context for the event subscribers */
    volatile int stopping; /* set on SIGTERM: streams end */
    pthread_mutex_t lock;  /* guards the counters below */
    uint64_t requests, errors, streams;
    hs_engine_stats *stats; /* the engines' stats events (enginestats.c) */
    hs_connlimit *conns;    /* connections per client address (connlimit.c) */
};

/* Route one request (misp.c). Returns true when a route matched (the handler set the
 * response), false for an unknown route. */
bool hs_route(hs_req *r);

/* Error responses (main.c): MISP's body {name, message, url} plus our code and field. */
void hs_error(hs_req *r, int status, const char *code, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Turn an error reply into the response: MISP's statuses (main.c). On a save route
 * (write = true), invalid and conflict are MISP's failed save: 403 with saved:false and
 * errors. what names the thing in the message ("User", "Organisation"). */
void hs_reply_error(hs_req *r, const hs_reply *rep, bool write, const char *what);

/* --- guard.c: the request deadlines (slowloris) --------------------------------------- */

/* Where a connection's current request is. */
enum {
    HS_WAITING,   /* headers not complete yet: the head's deadline runs */
    HS_RECEIVING, /* the body is coming: the request's deadline runs */
    HS_HANDLED,   /* a handler has it (or a response is queued): never touched */
    HS_EXPIRED,   /* answered on the socket (the watchdog's 408, hs_guard_refuse), shut down */
};

hs_guard *hs_guard_start(hs_server *srv);
void hs_guard_stop(hs_guard *g);

/* libmicrohttpd's connection notifier (MHD_OPTION_NOTIFY_CONNECTION; cls = the server). */
void hs_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);

/* Answer c's request at once with status and a JSON body, written on the socket itself,
 * and shut the connection down: for a request libmicrohttpd would fail on before any
 * handler runs (too many query parameters for its memory pool). Over TLS it only closes.
 * false when the watchdog had already answered it. Later calls of hs_guard_claim fail. */
bool hs_guard_refuse(hs_server *srv, struct MHD_Connection *c, int status, const char *reason,
                     const json_t *body);

/* Move c's request to state; false when the watchdog has already expired it (the caller
 * then gives the connection up: MHD_NO). */
bool hs_guard_claim(struct MHD_Connection *c, int state);

/* A response was sent: the next request on this connection gets a fresh deadline. */
void hs_guard_rearm(struct MHD_Connection *c);

/* --- connlimit.c: connections per client address --------------------------------- */

/* The limits of o (max_conns, per_ip_conns, reserved_conns); NULL when out of memory. */
hs_connlimit *hs_connlimit_new(const hs_options *o);
void hs_connlimit_free(hs_connlimit *l);

/* libmicrohttpd's accept policy callback (MHD_start_daemon's apc; cls = the hs_connlimit): MHD_NO
 * for an address at its limit, or one that holds a connection while only the reserved
 * slots are left. */
enum MHD_Result hs_connlimit_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen);

/* A connection from addr started / closed (from the notify-connection callback). */
void hs_connlimit_opened(hs_connlimit *l, const struct sockaddr *addr);
void hs_connlimit_closed(hs_connlimit *l, const struct sockaddr *addr);

/* --- enginestats.c: the engines' engine.<name>.stats events, for /metrics ----------- */

/* Follow the stats events (a thread, through evsrc.c); NULL when it cannot start. */
hs_engine_stats *hs_engine_stats_start(hs_server *srv);
void hs_engine_stats_stop(hs_engine_stats **s); /* before zmq_ctx_term */

/* The latest totals of each engine heard from lately, as Prometheus text (s may be NULL). */
void hs_engine_stats_render(hs_engine_stats *s, FILE *f);

/* A label value as the Prometheus text format wants it: backslash, double quote and newline
 * escaped. */
void hs_label_value(FILE *f, const char *v);

/* --- stream.c --------------------------------------------------------------------------- */

void hs_events(hs_req *r);  /* GET /events */
void hs_metrics(hs_req *r); /* GET /metrics */
void hs_health(hs_req *r);  /* GET /health */

#endif
