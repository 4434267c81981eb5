/* main.c — adminbus-http: options, the libmicrohttpd daemon, the HTTP limits and the JSON
 * error bodies (see http.h and docs/architecture.md, "HTTP shim (issue 7)").
 *
 * libmicrohttpd runs one thread per connection: a handler may block on the bus (and an
 * /events stream on its subscriber) without holding up anyone else; the connection limit
 * bounds the threads. Every refusal the shim makes itself is a JSON body with a precise
 * status: 400 malformed JSON or a URL that is not clean text (a control byte such as %00,
 * invalid UTF-8, more query parameters than S_PARAMS_MAX), 404 unknown route, 405 wrong
 * method (with Allow), 408 a request head not complete after header_s or a request after
 * request_s (guard.c), 413 oversize body, 415 a body that is not JSON, 431 oversize
 * headers. Connections are limited per client address (connlimit.c). */
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "cli/cli.h"
#include "wire/config.h"
#include "wire/envelope.h"
#include "http/http.h"
#include "zmq/proxy.h"

#define S_NAME "adminbus-http"

/* Query parameters a request may have. Each costs libmicrohttpd a record in the
 * connection's memory pool, and past what the pool holds it closes the connection without
 * an answer; no route takes more than a handful (/events at most 16 topics). */
#define S_PARAMS_MAX 64

/* --reserved-connections not given: an eighth of --max-connections. */
#define S_RESERVED_AUTO 0xffffffffu

/* --- responses ------------------------------------------------------------------------------ */

void hs_error(hs_req *r, int status, const char *code, const char *name, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_decref(r->json);
    r->status = status;
    r->json = json_pack("{s:s, s:s, s:s, s:s}", "name", name, "message", msg, "url",
                        r->path ? r->path : "", "code", code);
}

void hs_reply_error(hs_req *r, const hs_reply *rep, bool write, const char *what)
{
    ab_code code = ab_code_from_name(rep->code, strlen(rep->code));
    int status = ab_code_http_status(code);
    const char *name = rep->message;
    bool failed_save = write && (code == AB_E_INVALID || code == AB_E_CONFLICT);
    if (failed_save)
        status = 403; /* MISP answers a refused save with 403 and saved: false */
    char title[128];
    snprintf(title, sizeof title, "%s %s", code == AB_E_NOT_FOUND ? "Invalid" : "Could not save",
             what);
    if (code == AB_E_NOT_FOUND || failed_save)
        name = title;
    else if (code == AB_E_UNAUTHENTICATED) /* MISP's words */
        name = "Authentication failed. Please make sure you pass the API key of an API enabled "
               "user along in the Authorization header.";
    else if (code == AB_E_FORBIDDEN)
        name = "You do not have permission to use this functionality.";
    hs_error(r, status, rep->code, name, "%s", rep->message);
    if (rep->field[0])
        json_object_set_new(r->json, "field", json_string(rep->field));
    if (rep->retry_after)
        json_object_set_new(r->json, "retry_after", json_integer(rep->retry_after));
    if (failed_save) {
        json_object_set_new(r->json, "saved", json_false());
        json_t *errors = json_object();
        json_object_set_new(errors, rep->field[0] ? rep->field : "error",
                            json_pack("[s]", rep->message));
        json_object_set_new(r->json, "errors", errors);
    }
}

static enum MHD_Result s_send(struct MHD_Connection *c, int status, char *body, size_t len,
                              const char *ctype, const char *allow)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (allow && allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result s_send_req(struct MHD_Connection *c, hs_req *r)
{
    if (r->text) {
        char *text = r->text; /* libmicrohttpd frees it */
        r->text = NULL;
        return s_send(c, r->status, text, strlen(text), r->ctype, r->allow);
    }
    char *body = r->json ? json_dumps(r->json, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("null");
    if (!body)
        return MHD_NO;
    size_t len = strlen(body);
    char *nl = realloc(body, len + 2); /* a newline: nicer for curl */
    if (nl) {
        body = nl;
        memcpy(body + len, "\n", 2);
        len++;
    }
    return s_send(c, r->status, body, len, "application/json", r->allow);
}

/* An error the shim makes before any route runs. */
static enum MHD_Result s_refuse(hs_server *srv, struct MHD_Connection *c, const char *url,
                                int status, const char *code, const char *name, const char *msg)
{
    hs_req r = {.srv = srv, .path = url};
    hs_error(&r, status, code, name, "%s", msg);
    pthread_mutex_lock(&srv->lock);
    srv->errors++;
    pthread_mutex_unlock(&srv->lock);
    enum MHD_Result rc = s_send_req(c, &r);
    json_decref(r.json);
    return rc;
}

/* --- one connection's request ---------------------------------------------------------------- */

typedef struct {
    char *body;
    size_t len;
    bool too_big;    /* the body went over max_body: the rest is dropped, the answer is 413 */
    bool answered;   /* a response is queued: ignore the rest */
    long control_at; /* where the raw URL holds a control byte once decoded; -1: nowhere */
} s_conn;

/* Where the raw URL of the request this thread reads holds a control byte (-1: nowhere),
 * from s_uri_seen for s_access: libmicrohttpd runs one thread per connection and calls the
 * URI log callback before the handler, on that thread. */
static _Thread_local long s_url_control_at = -1;

static enum MHD_Result s_sum_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

static bool s_is_json(const char *ctype)
{
    if (!ctype)
        return false;
    while (*ctype == ' ')
        ctype++;
    size_t n = strlen("application/json");
    return strncasecmp(ctype, "application/json", n) == 0 &&
           (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* Is a query parameter's name and value UTF-8? (cls: the name of the first one that is
 * not, else untouched) */
static enum MHD_Result s_query_text(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    if (ab_utf8_valid(key, strlen(key)) && (!value || ab_utf8_valid(value, strlen(value))))
        return MHD_YES;
    *(const char **)cls = key;
    return MHD_NO;
}

/* What is wrong with the URL, into msg; false when nothing is. libmicrohttpd hands the
 * handler the path and the query percent-decoded as C strings, so a %00 cuts them short
 * (/admin/users/view/3%00.json would read user 3): a URL that holds a control byte once
 * decoded is refused whole, before routing, as is one that is not UTF-8. */
static bool s_bad_url(struct MHD_Connection *c, const char *url, const s_conn *st, char *msg,
                      size_t len)
{
    const char *key = NULL;
    if (st->control_at >= 0)
        snprintf(msg, len,
                 "the URL holds a control byte (%%00-%%1F or %%7F, as sent or percent-encoded) "
                 "at byte %ld; no path or parameter may",
                 st->control_at);
    else if (!ab_utf8_valid(url, strlen(url)))
        snprintf(msg, len, "the URL's path is not valid UTF-8 once percent-decoded");
    else if (MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, s_query_text, &key) >= 0 && key)
        snprintf(msg, len, "the query parameter '%.64s' is not valid UTF-8 once percent-decoded",
                 ab_utf8_valid(key, strlen(key)) ? key : "?");
    else
        return false;
    return true;
}

/* The checks that need only the headers: a refusal is queued at once (st->answered);
 * otherwise the request goes on, its body (if any) under the watchdog's deadline. */
static enum MHD_Result s_first(hs_server *srv, struct MHD_Connection *c, const char *url,
                               s_conn *st)
{
    size_t hsize = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, s_sum_header, &hsize);
    char msg[256];
    if (s_bad_url(c, url, st, msg, sizeof msg)) {
        st->answered = true;
        return s_refuse(srv, c, ab_utf8_valid(url, strlen(url)) ? url : "", 400, "invalid",
                        "Bad Request", msg);
    }
    if (hsize > srv->opt.max_header) {
        st->answered = true;
        snprintf(msg, sizeof msg, "the request headers are %zu bytes; at most %zu are accepted",
                 hsize, srv->opt.max_header);
        return s_refuse(srv, c, url, 431, "invalid", "Request Header Fields Too Large", msg);
    }
    const char *clen = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
    unsigned long long declared = clen ? strtoull(clen, NULL, 10) : 0;
    if (declared > srv->opt.max_body) {
        st->answered = true;
        snprintf(msg, sizeof msg, "the body is %llu bytes; at most %zu are accepted", declared,
                 srv->opt.max_body);
        return s_refuse(srv, c, url, 413, "invalid", "Payload Too Large", msg);
    }
    const char *ctype = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if ((declared > 0 || te) && !s_is_json(ctype)) {
        st->answered = true;
        snprintf(msg, sizeof msg,
                 "the body must be JSON: send Content-Type: application/json (got %.100s)",
                 ctype ? ctype : "none");
        return s_refuse(srv, c, url, 415, "invalid", "Unsupported Media Type", msg);
    }
    bool body = declared > 0 || te;
    return hs_guard_claim(c, body ? HS_RECEIVING : HS_HANDLED) ? MHD_YES : MHD_NO;
}

/* A piece of the body. Past max_body the rest is read and dropped, and the final call
 * answers 413: libmicrohttpd (0.9.75) cannot queue a response while a body is coming. The
 * watchdog's deadline still bounds how long that can take. */
static enum MHD_Result s_upload(hs_server *srv, s_conn *st, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    if (st->answered || st->too_big)
        return MHD_YES;
    if (st->len + n > srv->opt.max_body) {
        st->too_big = true;
        return MHD_YES;
    }
    char *grown = realloc(st->body, st->len + n + 1);
    if (!grown)
        return MHD_NO;
    st->body = grown;
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = '\0';
    return MHD_YES;
}

/* The path as routes see it: MISP's optional ".json" suffix and a trailing slash removed. */
static char *s_route_path(const char *url)
{
    char *p = strdup(url);
    if (!p)
        return NULL;
    size_t n = strlen(p);
    if (n > 5 && strcmp(p + n - 5, ".json") == 0)
        p[n -= 5] = '\0';
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    return p;
}

/* The authkey from Authorization (or X-MISP-AUTH), up to the first blank, as sent: a key
 * of any length goes to the engine, which names its real size and the limit (AB_AUTH_MAX)
 * when it is too long. NULL when none (or out of memory). */
static char *s_authkey(struct MHD_Connection *c)
{
    const char *k = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!k || !*k)
        k = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-MISP-AUTH");
    if (!k)
        return NULL;
    while (*k == ' ')
        k++;
    return *k ? strndup(k, strcspn(k, " \t\r\n")) : NULL;
}

static enum MHD_Result s_dispatch(hs_server *srv, struct MHD_Connection *c, const char *url,
                                  const char *method, s_conn *st)
{
    hs_req r = {.srv = srv, .method = method, .conn = c, .status = 200};
    char *path = s_route_path(url), *auth = s_authkey(c);
    if (!path) {
        free(auth);
        return MHD_NO;
    }
    r.path = path;
    r.auth = auth;
    pthread_mutex_lock(&srv->lock);
    srv->requests++;
    pthread_mutex_unlock(&srv->lock);
    if (st->len > 0) {
        json_error_t jerr;
        r.body = json_loadb(st->body, st->len, JSON_REJECT_DUPLICATES, &jerr);
        if (!r.body)
            hs_error(&r, 400, "invalid", "Malformed JSON",
                     "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                     jerr.column);
        else if (!json_is_object(r.body))
            hs_error(&r, 400, "invalid", "Malformed JSON", "the body must be a JSON object");
    }
    if (!r.json && !hs_route(&r))
        hs_error(&r, 404, "not_found", "Not Found",
                 "no route %s %s (docs/architecture.md lists the routes)", method, path);
    enum MHD_Result rc = MHD_YES;
    if (!r.streamed)
        rc = s_send_req(c, &r);
    if (r.status >= 400) {
        pthread_mutex_lock(&srv->lock);
        srv->errors++;
        pthread_mutex_unlock(&srv->lock);
    }
    json_decref(r.json);
    json_decref(r.body);
    free(r.text);
    free(path);
    free(auth);
    return rc;
}

/* The client's address as the connection reports it (X-Forwarded-For, which the client
 * writes, only from a --trust-forwarded-for proxy): the commands of this thread carry it. */
static void s_client_ip(const hs_server *srv, struct MHD_Connection *c)
{
    char ip[INET6_ADDRSTRLEN] = "", client[INET6_ADDRSTRLEN];
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
    hs_client_address(&srv->opt, c, ip, client, sizeof client);
    hs_bus_client_ip(client);
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls)
{
    (void)version;
    hs_server *srv = cls;
    s_conn *st = *con_cls;
    s_client_ip(srv, c);
    if (!st) {
        /* a response may be queued below: the watchdog must leave the connection alone */
        if (!hs_guard_claim(c, HS_HANDLED))
            return MHD_NO;
        st = calloc(1, sizeof *st);
        if (!st)
            return MHD_NO;
        st->control_at = s_url_control_at;
        *con_cls = st;
        return s_first(srv, c, url, st);
    }
    if (*upload_size)
        return s_upload(srv, st, upload, upload_size);
    if (st->answered)
        return MHD_YES;
    st->answered = true;
    if (!hs_guard_claim(c, HS_HANDLED))
        return MHD_NO;
    if (st->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body is over %zu bytes, the most accepted",
                 srv->opt.max_body);
        return s_refuse(srv, c, url, 413, "invalid", "Payload Too Large", msg);
    }
    return s_dispatch(srv, c, url, method, st);
}

/* Where the raw URL holds a control byte (0x00-0x1F, 0x7F), as sent or percent-encoded;
 * -1 when it holds none. */
static long s_control_byte(const char *uri)
{
    for (const char *p = uri; *p; p++) {
        unsigned v = (unsigned char)*p;
        if (v == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
            char hex[3] = {p[1], p[2], '\0'};
            v = (unsigned)strtoul(hex, NULL, 16);
        }
        if (v < 0x20 || v == 0x7f)
            return p - uri;
    }
    return -1;
}

/* How many query parameters libmicrohttpd will make of uri: one per '&'-separated piece,
 * empty ones included. */
static size_t s_query_params(const char *uri)
{
    const char *q = strchr(uri, '?');
    if (!q || !q[1])
        return 0;
    size_t n = 1;
    for (q++; *q; q++)
        n += *q == '&';
    return n;
}

/* libmicrohttpd's URI log callback: the raw request target, before libmicrohttpd splits
 * and decodes it. What the handler needs of it goes through s_url_control_at (its return
 * value would become the request's state, but libmicrohttpd drops that without the
 * completion callback when it answers an error itself: allocated here, it would leak). A
 * request with more than S_PARAMS_MAX query parameters is answered here, on the socket
 * (guard.c): libmicrohttpd, short of pool memory for them, would close the connection
 * without an answer before any handler ran. */
static void *s_uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
    hs_server *srv = cls;
    s_url_control_at = s_control_byte(uri);
    size_t params = s_query_params(uri);
    if (params <= S_PARAMS_MAX)
        return NULL;
    char msg[128];
    snprintf(msg, sizeof msg, "the query has %zu parameters; at most %d are accepted", params,
             S_PARAMS_MAX);
    size_t plen = strcspn(uri, "?");
    json_t *url = json_stringn(uri, plen < 200 ? plen : 200);
    json_t *body =
        json_pack("{s:s, s:s, s:o, s:s, s:s}", "name", "Bad Request", "message", msg, "url",
                  url ? url : json_string(""), "code", "invalid", "field", "query");
    hs_guard_refuse(srv, c, 400, "Bad Request", body);
    json_decref(body);
    return NULL;
}

static void s_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)toe;
    hs_guard_rearm(c);
    s_conn *st = *con_cls;
    if (st)
        free(st->body);
    free(st);
    *con_cls = NULL;
}

/* --- options ------------------------------------------------------------------------------ */

static void s_usage(FILE *f)
{
    fprintf(f, "usage: " S_NAME " [options]\n"
               "The MISP-compatible HTTP shim of adminbus: MISP's admin REST routes turned into\n"
               "commands on the bus (docs/architecture.md, \"HTTP shim\"). Prints\n"
               "ADMINBUS_HTTP=<base url> once listening; stops on SIGINT or SIGTERM.\n\n"
               "  --listen ADDR           address to bind (default 127.0.0.1)\n"
               "  --port N                port (default 0: a free one)\n"
               "  --port-file PATH        write the bound port there\n"
               "  --url URL               broker command endpoint (default ADMINBUS_URL, from\n"
               "                          the environment or $ADMINBUS_HOME/env)\n"
               "  --events URL            broker event endpoint (default ADMINBUS_EVENTS)\n"
               "  --proxy-endpoint EP     the broker's proxy intake, where commands carry the\n"
               "                          HTTP client's address: auto (default, as the broker:\n"
               "                          $ADMINBUS_HOME/proxy.sock), off, or ipc:///PATH; also\n"
               "                          proxy_endpoint in adminbus.conf\n"
               "  --max-body BYTES        largest request body (default 1048576)\n"
               "  --max-header BYTES      largest request headers, all together (default 16384)\n"
               "  --max-connections N     concurrent connections (default 512)\n"
               "  --per-ip-connections N  concurrent connections per client address (default\n"
               "                          64; 0: no limit)\n"
               "  --reserved-connections N  the last N of --max-connections go only to\n"
               "                          addresses that hold none (default an eighth)\n"
               "  --idle-timeout S        close a connection silent this long (default 10)\n"
               "  --header-timeout S      408 for a request head still coming after this\n"
               "                          (default 10)\n"
               "  --request-timeout S     408 for a request (head and body) still coming after\n"
               "                          this (default 30)\n"
               "  --bus-timeout-ms MS     wait this long for a reply, twice (default 10000)\n"
               "  --sse-recheck S         /events re-checks the caller's key (default 30)\n"
               "  --tls-cert PEM --tls-key PEM   serve HTTPS (GnuTLS)\n"
               "  --trust-forwarded-for CIDR     believe Forwarded (RFC 7239) and X-Forwarded-For\n"
               "                          from reverse proxies in this range (repeatable;\n"
               "                          default: never believed)\n"
               "  --help, --version\n");
}

static int s_number(const char *flag, const char *v, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || end == v || n < min || n > max) {
        fprintf(stderr, S_NAME ": %s wants a number in %lld..%lld, not '%s'\n", flag, min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

static int s_parse(int argc, char **argv, hs_options *o)
{
    static const struct option longs[] = {{"listen", 1, 0, 'l'},
                                          {"port", 1, 0, 'p'},
                                          {"url", 1, 0, 'u'},
                                          {"events", 1, 0, 'e'},
                                          {"max-body", 1, 0, 'b'},
                                          {"max-header", 1, 0, 'H'},
                                          {"max-connections", 1, 0, 'c'},
                                          {"per-ip-connections", 1, 0, 'I'},
                                          {"reserved-connections", 1, 0, 'R'},
                                          {"idle-timeout", 1, 0, 'i'},
                                          {"header-timeout", 1, 0, 'T'},
                                          {"request-timeout", 1, 0, 'r'},
                                          {"bus-timeout-ms", 1, 0, 't'},
                                          {"sse-recheck", 1, 0, 's'},
                                          {"tls-cert", 1, 0, 'C'},
                                          {"tls-key", 1, 0, 'K'},
                                          {"port-file", 1, 0, 'P'},
                                          {"trust-forwarded-for", 1, 0, 'F'},
                                          {"help", 0, 0, 'h'},
                                          {0, 0, 0, 0}};
    int ch;
    long long n = 0;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        const char *flag = "option";
        for (const struct option *l = longs; l->name; l++)
            if (l->val == ch)
                flag = l->name;
        int rc = 0;
        switch (ch) {
        case 'l':
            free(o->listen);
            o->listen = strdup(optarg);
            break;
        case 'u':
            free(o->url);
            o->url = strdup(optarg);
            break;
        case 'e':
            free(o->events);
            o->events = strdup(optarg);
            break;
        case 'C':
            o->tls_cert = strdup(optarg);
            break;
        case 'K':
            o->tls_key = strdup(optarg);
            break;
        case 'P':
            o->port_file = strdup(optarg);
            break;
        case 'F':
            rc = hs_trust_add(o, optarg);
            break;
        case 'p':
            rc = s_number(flag, optarg, 0, 65535, &n);
            o->port = (int)n;
            break;
        case 'b':
            rc = s_number(flag, optarg, 1, 1LL << 30, &n);
            o->max_body = (size_t)n;
            break;
        case 'H':
            rc = s_number(flag, optarg, 256, 1 << 20, &n);
            o->max_header = (size_t)n;
            break;
        case 'c':
            rc = s_number(flag, optarg, 1, 100000, &n);
            o->max_conns = (unsigned)n;
            break;
        case 'I':
            rc = s_number(flag, optarg, 0, 100000, &n);
            o->per_ip_conns = (unsigned)n;
            break;
        case 'R':
            rc = s_number(flag, optarg, 0, 100000, &n);
            o->reserved_conns = (unsigned)n;
            break;
        case 'i':
            rc = s_number(flag, optarg, 1, 3600, &n);
            o->idle_s = (unsigned)n;
            break;
        case 'T':
            rc = s_number(flag, optarg, 1, 3600, &n);
            o->header_s = (unsigned)n;
            break;
        case 'r':
            rc = s_number(flag, optarg, 1, 3600, &n);
            o->request_s = (unsigned)n;
            break;
        case 't':
            rc = s_number(flag, optarg, 100, 600000, &n);
            o->bus_timeout_ms = (int)n;
            break;
        case 's':
            rc = s_number(flag, optarg, 1, 3600, &n);
            o->sse_recheck_s = (unsigned)n;
            break;
        case 'h':
            s_usage(stdout);
            exit(0);
        default:
            s_usage(stderr);
            return -1;
        }
        if (rc)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, S_NAME ": unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    return 0;
}

static int s_fill(hs_options *o)
{
    ctl_conn conn = {0};
    conn.url = o->url;
    conn.events = o->events;
    conn.authkey = strdup("-"); /* not needed: callers bring their own key */
    ctl_conn_fill(&conn);
    o->url = conn.url;
    o->events = conn.events;
    conn.url = conn.events = NULL;
    ctl_conn_free(&conn);
    if (o->kafka && !o->kafka_brokers[0]) {
        fprintf(stderr, S_NAME ": transport = kafka but kafka_brokers is empty: set it in "
                               "adminbus.conf (host:port,…)\n");
        return -1;
    }
    if (!o->kafka && (!o->url || !o->events)) {
        fprintf(stderr,
                S_NAME ": no broker endpoint: give --url and --events, or set ADMINBUS_URL and "
                       "ADMINBUS_EVENTS (or run ops/run, which writes $ADMINBUS_HOME/env)\n");
        return -1;
    }
    if (!o->tls_cert != !o->tls_key) {
        fprintf(stderr, S_NAME ": TLS needs both --tls-cert and --tls-key\n");
        return -1;
    }
    if (o->reserved_conns == S_RESERVED_AUTO)
        o->reserved_conns = o->max_conns / 8;
    if (o->reserved_conns >= o->max_conns) {
        fprintf(stderr,
                S_NAME ": --reserved-connections (%u) must be below --max-connections (%u)\n",
                o->reserved_conns, o->max_conns);
        return -1;
    }
    return 0;
}

/* The broker's proxy intake, from the configuration the broker reads too (adminbus.conf,
 * ADMINBUS_PROXY_ENDPOINT, --proxy-endpoint, which this consumes from argv), so both
 * resolve auto to the same path. Without one the shim still works, with the old
 * behaviour: every command carries the shim's own address, and it says so. */
static int s_load_proxy(int *argc, char **argv, hs_options *o)
{
    ab_config cfg;
    char err[1024], ep[AB_PROXY_PATH_MAX + 16];
    int rc = ab_config_load(&cfg, argc, argv, err, sizeof err);
    if (rc == 0)
        hs_kafka_options(&cfg, o); /* transport = kafka: no broker, no proxy intake */
    if (rc == 0 && !o->kafka)
        rc = ab_proxy_endpoint(cfg.proxy_endpoint, cfg.home, ep, sizeof ep, err, sizeof err);
    else if (rc == 0)
        rc = 2; /* over Kafka: no proxy intake to resolve, nothing to say */
    if (rc < 0)
        fprintf(stderr, S_NAME ": %s\n", err);
    else if (rc == 0 && strcmp(cfg.proxy_endpoint, "off") != 0)
        fprintf(stderr,
                S_NAME ": warning: no proxy intake (%s): commands go to the commands endpoint and "
                       "carry this shim's address, not the HTTP client's (allowed_ips and the "
                       "audit trail see the shim)\n",
                err);
    else if (rc == 1 && access(ep + strlen("ipc://"), F_OK) != 0)
        fprintf(stderr, S_NAME ": note: %s does not exist yet (is the broker started?)\n", ep);
    o->proxy = rc == 1 ? strdup(ep) : NULL;
    ab_config_free(&cfg);
    return rc < 0 ? -1 : 0;
}

static char *s_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, S_NAME ": cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *g = realloc(buf, cap);
            if (!g)
                break;
            buf = g;
        }
        memcpy(buf + len, chunk, n);
        len += n;
        buf[len] = '\0';
    }
    fclose(f);
    return buf;
}

/* --- the daemon ------------------------------------------------------------------------------ */

/* libmicrohttpd's notify-connection callback: the deadlines (guard.c) and the connections
 * per address (connlimit.c) follow each connection. */
static void s_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    hs_server *srv = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *addr = ci ? ci->client_addr : NULL;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        hs_connlimit_opened(srv->conns, addr);
    else
        hs_connlimit_closed(srv->conns, addr);
    hs_guard_notify(srv, c, socket_context, code);
}

/* Each connection holds a socket, and a request on the bus a DEALER (two descriptors in
 * ZeroMQ), as does an /events stream its SUB: raise the soft limit on open files to the
 * hard one, and say so when even that is short of what max_conns may need. */
static void s_raise_nofile(const hs_options *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t need = (rlim_t)o->max_conns * 3 + 640;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        fprintf(stderr,
                S_NAME ": warning: %llu open files allowed (ulimit -n); %u connections may need "
                       "%llu: raise the hard limit or lower --max-connections\n",
                (unsigned long long)rl.rlim_cur, o->max_conns, (unsigned long long)need);
}

static struct MHD_Daemon *s_start(hs_server *srv, char **pem)
{
    hs_options *o = &srv->opt;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->listen, &addr.sin_addr) != 1) {
        fprintf(stderr, S_NAME ": --listen wants an IPv4 address, not '%s'\n", o->listen);
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | MHD_USE_POLL;
    if (o->tls_cert) {
        pem[0] = s_slurp(o->tls_cert);
        pem[1] = s_slurp(o->tls_key);
        if (!pem[0] || !pem[1])
            return NULL;
        flags |= MHD_USE_TLS;
    }
    /* libmicrohttpd's own buffer must hold the headers we measure; it refuses larger ones
     * itself (with its own body), which only protects memory. */
    size_t memory = o->max_header + 32768;
    struct MHD_OptionItem tls[] = {{pem[0] ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, pem[0]},
                                   {pem[1] ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, pem[1]},
                                   {MHD_OPTION_END, 0, NULL}};
    return MHD_start_daemon(
        flags, 0, hs_connlimit_accept, srv->conns, s_access, srv, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, o->max_conns,
        MHD_OPTION_CONNECTION_TIMEOUT, o->idle_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory,
        MHD_OPTION_URI_LOG_CALLBACK, s_uri_seen, srv, MHD_OPTION_NOTIFY_COMPLETED, s_completed,
        NULL, MHD_OPTION_NOTIFY_CONNECTION, s_notify, srv, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
}

static void s_announce(hs_server *srv, struct MHD_Daemon *d)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    unsigned port = info ? info->port : (unsigned)srv->opt.port;
    printf("ADMINBUS_HTTP=%s://%s:%u\n", srv->opt.tls_cert ? "https" : "http", srv->opt.listen,
           port);
    fflush(stdout);
    if (srv->opt.kafka)
        fprintf(stderr, S_NAME ": listening on %s:%u (kafka %s, topics %s, %s, %s)\n",
                srv->opt.listen, port, srv->opt.kafka_brokers, srv->opt.kafka_commands,
                srv->opt.kafka_replies, srv->opt.kafka_events);
    else
        fprintf(stderr, S_NAME ": listening on %s:%u (bus %s, events %s)\n", srv->opt.listen, port,
                srv->opt.proxy ? srv->opt.proxy : srv->opt.url, srv->opt.events);
    if (srv->opt.port_file) {
        FILE *f = fopen(srv->opt.port_file, "w");
        if (f) {
            fprintf(f, "%u\n", port);
            fclose(f);
        }
    }
}

static void s_options_free(hs_options *o)
{
    free(o->listen);
    free(o->url);
    free(o->events);
    free(o->proxy);
    free(o->tls_cert);
    free(o->tls_key);
    free(o->port_file);
    hs_kafka_options_free(o);
}

int main(int argc, char **argv)
{
    static hs_server srv;
    int early = ab_config_early_flags(argc, argv, S_NAME, s_usage);
    if (early >= 0) /* before adminbus.conf is read: help works when it is broken */
        return early;
    srv.opt = (hs_options){.listen = strdup("127.0.0.1"),
                           .max_body = 1 << 20,
                           .max_header = 16384,
                           .max_conns = 512,
                           .per_ip_conns = 64,
                           .reserved_conns = S_RESERVED_AUTO,
                           .idle_s = 10,
                           .header_s = 10,
                           .request_s = 30,
                           .bus_timeout_ms = 10000,
                           .sse_recheck_s = 30};
    if (s_load_proxy(&argc, argv, &srv.opt) < 0 || s_parse(argc, argv, &srv.opt) < 0 ||
        s_fill(&srv.opt) < 0) {
        s_options_free(&srv.opt);
        return 2;
    }
    /* SIGINT and SIGTERM are taken by sigwait below: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&srv.lock, NULL);
    s_raise_nofile(&srv.opt);
    srv.conns = hs_connlimit_new(&srv.opt);
    char err[512];
    srv.bus = hs_bus_new(&srv.opt, err, sizeof err);
    if (!srv.bus)
        fprintf(stderr, S_NAME ": cannot reach the bus: %s\n", err);
    srv.zctx = zmq_ctx_new();
    if (srv.zctx) /* a SUB per /events stream, one stream per connection at most */
        zmq_ctx_set(srv.zctx, ZMQ_MAX_SOCKETS, (int)srv.opt.max_conns + 64);
    char *pem[2] = {NULL, NULL};
    srv.guard = hs_guard_start(&srv);
    srv.stats = srv.zctx && srv.bus ? hs_engine_stats_start(&srv) : NULL;
    struct MHD_Daemon *d =
        srv.bus && srv.zctx && srv.guard && srv.conns ? s_start(&srv, pem) : NULL;
    int rc = 1;
    if (d) {
        s_announce(&srv, d);
        int sig = 0;
        sigwait(&sigs, &sig);
        fprintf(stderr, S_NAME ": stopping on signal %d\n", sig);
        srv.stopping = 1;
        MHD_stop_daemon(d);
        rc = 0;
    } else if (srv.bus) { /* without a bus, the reason is said above */
        fprintf(stderr, S_NAME ": cannot start the HTTP server on %s:%d\n", srv.opt.listen,
                srv.opt.port);
    }
    hs_guard_stop(srv.guard);
    hs_connlimit_free(srv.conns);
    hs_engine_stats_stop(&srv.stats);
    free(pem[0]);
    free(pem[1]);
    hs_bus_free(srv.bus);
    if (srv.zctx)
        zmq_ctx_term(srv.zctx);
    pthread_mutex_destroy(&srv.lock);
    s_options_free(&srv.opt);
    return rc;
}
