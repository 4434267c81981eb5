/* forwarded.h — the client address behind trusted reverse proxies, from Forwarded (RFC 7239)
 * or X-Forwarded-For, without libmicrohttpd (forwarded.c feeds it the headers; the unit
 * test tests/unit/test_forwarded.c feeds it strings). docs/architecture.md, "Client
 * addresses through the HTTP shim". */
#ifndef AB_HTTP_FORWARDED_H
#define AB_HTTP_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>

#include "wire/iprange.h"

#define HS_FWD_HOPS_MAX 64 /* hops read from one request; more: the proxy's own address */

/* The address of one node, into out in its canonical text ("2001:db8::1", "192.0.2.1"):
 * an address alone, IPv4 with a port ("192.0.2.1:4711"), IPv6 in brackets with or without
 * a port ("[2001:db8::1]:4711"), IPv6 alone. A port may be RFC 7239's obfuscated "_x".
 * false for anything else ("unknown", "_hidden", garbage). */
bool hs_node_address(const char *node, size_t len, char *out, size_t outlen);

/* Whether ip is in one of the trusted ranges. */
bool hs_trusted(const ab_cidr *trusted, int ntrusted, const char *ip);

/* The client address of a request whose connection comes from peer, a trusted proxy, into
 * out. forwarded: its Forwarded header lines in order (n of them); when there are none,
 * xff: every X-Forwarded-For line joined with ',' (NULL: none). The walk starts at peer and
 * goes from the right: each hop that is an address becomes the answer, and the walk stops at
 * the first hop that is no trusted proxy. A hop that is no address (for=unknown, an
 * obfuscated "_name", an element without for=, garbage) stops the walk at the hop before it;
 * a Forwarded line that does not parse counts as one such hop. */
void hs_forwarded_client(const ab_cidr *trusted, int ntrusted, const char *peer,
                         const char *const *forwarded, int n, const char *xff, char *out,
                         size_t outlen);

#endif
