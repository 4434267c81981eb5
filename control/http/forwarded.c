/* forwarded.c — which client a request is from when it came through a reverse proxy the
 * operator trusts (--trust-forwarded-for CIDR, docs/architecture.md, "Client addresses
 * through the HTTP shim"): the request's Forwarded and X-Forwarded-For headers, handed to
 * fwdparse.c (forwarded.h), which reads them from the right. */
#include "http/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/forwarded.h"
#include "wire/iprange.h"

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

#define S_FWD_LINES_MAX 16 /* Forwarded header lines read; more: the proxy's address */

typedef struct {
    char xff[S_XFF_MAX]; /* every X-Forwarded-For line, joined with ',' (RFC 9110) */
    size_t xff_len;
    const char *fwd[S_FWD_LINES_MAX]; /* the Forwarded lines (libmicrohttpd's copies) */
    int nfwd;
    bool fwd_overflow, xff_overflow; /* too much to read whole */
} s_headers;

static enum MHD_Result s_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    s_headers *h = cls;
    if (!key || !value)
        return MHD_YES;
    if (strcasecmp(key, "Forwarded") == 0) {
        if (h->nfwd == S_FWD_LINES_MAX) {
            h->fwd_overflow = true;
            return MHD_NO;
        }
        h->fwd[h->nfwd++] = value;
        return MHD_YES;
    }
    if (strcasecmp(key, "X-Forwarded-For") != 0 || h->xff_overflow)
        return MHD_YES;
    size_t n = strlen(value);
    if (h->xff_len + n + 2 > sizeof h->xff) {
        h->xff_overflow = true; /* goes on: a Forwarded line, which wins, may still come */
        return MHD_YES;
    }
    if (h->xff_len)
        h->xff[h->xff_len++] = ',';
    memcpy(h->xff + h->xff_len, value, n + 1);
    h->xff_len += n;
    return MHD_YES;
}

void hs_client_address(const hs_options *o, struct MHD_Connection *c, const char *peer, char *out,
                       size_t outlen)
{
    snprintf(out, outlen, "%s", peer);
    if (!hs_trusted(o->trusted, o->ntrusted, peer))
        return;
    s_headers h = {.xff_len = 0, .nfwd = 0, .fwd_overflow = false, .xff_overflow = false};
    MHD_get_connection_values(c, MHD_HEADER_KIND, s_collect, &h);
    if (h.fwd_overflow || (h.nfwd == 0 && h.xff_overflow))
        return; /* the header that counts is too long to read whole: the proxy's address */
    hs_forwarded_client(o->trusted, o->ntrusted, peer, h.fwd, h.nfwd, h.xff, out, outlen);
}
