/* forwarded.c — which client a request is from when it came through a reverse proxy the
 * operator trusts (--trust-forwarded-for CIDR, docs/architecture.md, "Client addresses
 * through the HTTP shim").
 *
 * X-Forwarded-For is written by whoever sends the request, so it is read only when the
 * connection itself comes from a trusted proxy, and then from the right: each trusted hop
 * appended the address it saw, and the first address (from the right) that is not a
 * trusted proxy is the client. An entry that is not an address stops the walk at the hop
 * that appended it: a forged or garbled list never yields more than the last trusted hop
 * vouches for. */
#include "http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "iprange.h"

#define S_XFF_MAX 4096 /* X-Forwarded-For text kept, all headers together */

int hs_trust_add(hs_options *o, const char *cidr)
{
    const char *why = NULL;
    if (o->ntrusted >= HS_TRUSTED_MAX) {
        fprintf(stderr, "adminbus-http: --trust-forwarded-for: at most %d ranges\n",
                HS_TRUSTED_MAX);
        return -1;
    }
    if (ab_cidr_parse(cidr, strlen(cidr), &o->trusted[o->ntrusted], &why) < 0) {
        fprintf(stderr,
                "adminbus-http: --trust-forwarded-for wants an address range such as "
                "10.0.0.0/8 or 2001:db8::/32, not '%s': %s\n",
                cidr, why ? why : "not a range");
        return -1;
    }
    o->ntrusted++;
    return 0;
}

static bool s_trusted(const hs_options *o, const char *ip)
{
    for (int i = 0; i < o->ntrusted; i++)
        if (ab_cidr_contains(&o->trusted[i], ip))
            return true;
    return false;
}

typedef struct {
    char text[S_XFF_MAX];
    size_t len;
    bool overflow;
} s_xff;

/* Every X-Forwarded-For header, in order, joined with ',' (as RFC 9110 combines them). */
static enum MHD_Result s_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    s_xff *x = cls;
    if (!key || strcasecmp(key, "X-Forwarded-For") != 0 || !value)
        return MHD_YES;
    size_t n = strlen(value);
    if (x->len + n + 2 > sizeof x->text) {
        x->overflow = true;
        return MHD_NO;
    }
    if (x->len)
        x->text[x->len++] = ',';
    memcpy(x->text + x->len, value, n + 1);
    x->len += n;
    return MHD_YES;
}

/* The last entry of list[0..*len) (trimmed, into out) and shorten *len before it. Returns
 * false when it is no address. */
static bool s_pop(const char *list, size_t *len, char *out, size_t outlen)
{
    size_t end = *len, start = end;
    while (start > 0 && list[start - 1] != ',')
        start--;
    *len = start ? start - 1 : 0;
    while (start < end && (list[start] == ' ' || list[start] == '\t'))
        start++;
    while (end > start && (list[end - 1] == ' ' || list[end - 1] == '\t'))
        end--;
    unsigned char bin[16];
    if (end - start == 0 || end - start >= outlen)
        return false;
    memcpy(out, list + start, end - start);
    out[end - start] = '\0';
    return inet_pton(AF_INET, out, bin) == 1 || inet_pton(AF_INET6, out, bin) == 1;
}

void hs_client_address(const hs_options *o, struct MHD_Connection *c, const char *peer, char *out,
                       size_t outlen)
{
    snprintf(out, outlen, "%s", peer);
    if (o->ntrusted == 0 || !s_trusted(o, peer))
        return;
    s_xff x = {.len = 0, .overflow = false};
    MHD_get_connection_values(c, MHD_HEADER_KIND, s_collect, &x);
    if (x.overflow || x.len == 0)
        return; /* none, or too long to read whole: the proxy's own address */
    size_t len = x.len;
    char hop[INET6_ADDRSTRLEN];
    while (len > 0) {
        if (!s_pop(x.text, &len, hop, sizeof hop))
            return;
        snprintf(out, outlen, "%s", hop);
        if (!s_trusted(o, hop))
            return;
    }
}
