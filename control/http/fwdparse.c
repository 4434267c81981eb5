/* fwdparse.c — Forwarded (RFC 7239) and X-Forwarded-For, read from the right (forwarded.h).
 *
 * Both headers are written by whoever sends the request, so forwarded.c reads them only
 * when the connection comes from a trusted proxy, and then from the right: each trusted hop
 * appended the address it saw, and the first address (from the right) that is not a
 * trusted proxy is the client. A hop that is not an address stops the walk at the hop that
 * appended it: a forged or garbled list never yields more than the last trusted hop vouches
 * for. Forwarded wins over X-Forwarded-For when a request has both (a proxy that writes
 * Forwarded says more, and one header must decide). */
#include "http/forwarded.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* One hop: its address, or ok = false (unknown, obfuscated, garbled). */
typedef struct {
    char ip[INET6_ADDRSTRLEN];
    bool ok;
} s_hop;

typedef struct {
    s_hop hop[HS_FWD_HOPS_MAX];
    int n;
    bool overflow;
} s_hops;

static void s_push(s_hops *h, const char *node, size_t len)
{
    if (h->n == HS_FWD_HOPS_MAX) {
        h->overflow = true;
        return;
    }
    s_hop *p = &h->hop[h->n++];
    p->ok = node && hs_node_address(node, len, p->ip, sizeof p->ip);
}

static bool s_port(const char *s, size_t n)
{
    if (n == 0)
        return false;
    if (s[0] == '_') { /* RFC 7239 obfport: "_" 1*(ALPHA / DIGIT / "." / "_" / "-") */
        if (n == 1)
            return false;
        for (size_t i = 1; i < n; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", s[i]))
                return false;
        return true;
    }
    unsigned long port = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (unsigned long)(s[i] - '0');
        if (port > 65535)
            return false;
    }
    return true;
}

/* text[0..n) as an address of family af, canonical into out. */
static bool s_ip(int af, const char *text, size_t n, char *out, size_t outlen)
{
    char buf[INET6_ADDRSTRLEN];
    unsigned char bin[16];
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, text, n);
    buf[n] = '\0';
    return inet_pton(af, buf, bin) == 1 && inet_ntop(af, bin, out, (socklen_t)outlen) != NULL;
}

bool hs_node_address(const char *node, size_t len, char *out, size_t outlen)
{
    if (len > 0 && node[0] == '[') {
        const char *close = memchr(node, ']', len);
        if (!close)
            return false;
        size_t rest = len - (size_t)(close + 1 - node);
        if (rest > 0 && (close[1] != ':' || !s_port(close + 2, rest - 1)))
            return false;
        return s_ip(AF_INET6, node + 1, (size_t)(close - node - 1), out, outlen);
    }
    if (s_ip(AF_INET6, node, len, out, outlen) || s_ip(AF_INET, node, len, out, outlen))
        return true;
    const char *colon = memchr(node, ':', len); /* IPv4:port (one colon: IPv6 has more) */
    if (!colon || memchr(colon + 1, ':', len - (size_t)(colon + 1 - node)))
        return false;
    return s_port(colon + 1, len - (size_t)(colon + 1 - node)) &&
           s_ip(AF_INET, node, (size_t)(colon - node), out, outlen);
}

/* --- Forwarded ------------------------------------------------------------------------ */

static bool s_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A value's characters when not quoted: a token, and (leniently: proxies write
 * for=192.0.2.1:4711 and for=[2001:db8::1] unquoted) ':' '[' ']'. */
static bool s_bare(char c)
{
    return s_tchar(c) || c == ':' || c == '[' || c == ']';
}

static const char *s_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* One value (token or quoted-string) at *p, unquoted into val (*vlen; too long: vlen =
 * vmax + 1); *p moves past it. false: not a value. */
static bool s_value(const char **p, char *val, size_t vmax, size_t *vlen)
{
    const char *s = *p;
    size_t n = 0;
    if (*s != '"') {
        while (s_bare(*s)) {
            if (n < vmax)
                val[n] = *s;
            n++, s++;
        }
        *vlen = n > vmax ? vmax + 1 : n;
        *p = s;
        return n > 0;
    }
    for (s++; *s != '"'; s++) {
        if (*s == '\\')
            s++;
        if (*s == '\0' ||
            ((unsigned char)*s < 0x20 && *s != '\t')) /* unterminated, or a control byte */
            return false;
        if (n < vmax)
            val[n] = *s;
        n++;
    }
    *vlen = n > vmax ? vmax + 1 : n;
    *p = s + 1;
    return true;
}

/* One element (pairs separated by ';') at *p: its for= node pushed (no for=: an unknown
 * hop). false: it does not parse. */
static bool s_element(const char **p, s_hops *h)
{
    char node[64], val[64];
    size_t nlen = 0, vlen;
    bool have_for = false;
    const char *s = *p;
    for (;;) {
        s = s_ows(s);
        if (*s == ',' || *s == '\0')
            break;
        const char *name = s;
        while (s_tchar(*s))
            s++;
        size_t name_len = (size_t)(s - name);
        if (name_len == 0 || *s++ != '=' || !s_value(&s, val, sizeof val, &vlen))
            return false;
        if (name_len == 3 && strncasecmp(name, "for", 3) == 0) {
            if (have_for) /* a parameter twice in one element (RFC 7239 4) */
                return false;
            have_for = true;
            memcpy(node, val, vlen > sizeof val ? sizeof val : vlen);
            nlen = vlen; /* longer than val: no address, hs_node_address says so */
        }
        s = s_ows(s);
        if (*s == ';')
            s++;
        else if (*s != ',' && *s != '\0')
            return false;
    }
    *p = s;
    s_push(h, have_for && nlen <= sizeof node ? node : NULL, nlen);
    return true;
}

/* One Forwarded line: its elements' hops, or one unknown hop when it does not parse (its
 * elements cannot be told apart then). */
static void s_forwarded_line(const char *line, s_hops *h)
{
    int first = h->n;
    const char *p = line;
    for (;;) {
        p = s_ows(p);
        if (*p == ',') { /* empty list elements are allowed (RFC 9110 5.6.1) */
            p++;
            continue;
        }
        if (*p == '\0')
            return;
        if (!s_element(&p, h)) {
            h->n = first;
            s_push(h, NULL, 0);
            return;
        }
    }
}

/* --- X-Forwarded-For ------------------------------------------------------------------ */

static void s_xff(const char *xff, s_hops *h)
{
    const char *p = xff;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *s = s_ows(p);
        while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        s_push(h, s, (size_t)(end - s));
        if (!comma)
            return;
        p = comma + 1;
    }
}

/* --- the walk --------------------------------------------------------------------------- */

bool hs_trusted(const ab_cidr *trusted, int ntrusted, const char *ip)
{
    for (int i = 0; i < ntrusted; i++)
        if (ab_cidr_contains(&trusted[i], ip))
            return true;
    return false;
}

void hs_forwarded_client(const ab_cidr *trusted, int ntrusted, const char *peer,
                         const char *const *forwarded, int n, const char *xff, char *out,
                         size_t outlen)
{
    snprintf(out, outlen, "%s", peer);
    s_hops h = {.n = 0, .overflow = false};
    if (n > 0)
        for (int i = 0; i < n; i++)
            s_forwarded_line(forwarded[i], &h);
    else if (xff && *xff)
        s_xff(xff, &h);
    if (h.overflow)
        return; /* too many hops to read whole: the proxy's own address */
    for (int i = h.n - 1; i >= 0 && h.hop[i].ok; i--) {
        snprintf(out, outlen, "%s", h.hop[i].ip);
        if (!hs_trusted(trusted, ntrusted, h.hop[i].ip))
            return;
    }
}
