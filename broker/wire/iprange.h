/* iprange.h — address ranges (CIDR, IPv4 and IPv6) for an authkey's allowed_ips: parsing
 * what an administrator typed, the canonical form kept in auth_keys.allowed_ips (a JSON
 * array of strings, as MISP keeps it), and the test of a caller's address against it. */
#ifndef AB_IPRANGE_H
#define AB_IPRANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest canonical range: a full IPv6 address, '/', three digits. */
#define AB_CIDR_TEXT_MAX 64

typedef struct {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* the network address (host bits cleared); 4 bytes for IPv4 */
    unsigned prefix;  /* 0..32 or 0..128 */
} ab_cidr;

/* Parse "10.0.0.0/8", "192.0.2.7" (= /32), "2001:db8::/32" or "::1" (= /128); len bytes.
 * Host bits below the prefix are cleared ("10.1.2.3/8" is 10.0.0.0/8). Returns 0, or -1
 * with why (a phrase for an error message) set. */
int ab_cidr_parse(const char *text, size_t len, ab_cidr *out, const char **why);

/* The canonical text of r ("10.0.0.0/8", "2001:db8::/32") into out. */
void ab_cidr_format(const ab_cidr *r, char out[AB_CIDR_TEXT_MAX]);

/* True when the address ip (text as the transport gives it: IPv4, IPv6, or an IPv4-mapped
 * IPv6 address, which counts as its IPv4 address) lies inside r. False for an address that
 * does not parse. */
bool ab_cidr_contains(const ab_cidr *r, const char *ip);

/* The caller's address ip against a stored allowed_ips value (a JSON array of canonical
 * ranges; NULL, "" or "[]" = no restriction). True when ip may use the key. An entry that
 * does not parse never matches (so a damaged list refuses rather than opens). */
bool ab_ip_allowed(const char *allowed_ips, const char *ip);

#endif
