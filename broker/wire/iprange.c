/* iprange.c — see iprange.h. */
#include "wire/iprange.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void s_clear_host_bits(ab_cidr *r)
{
    unsigned bytes = r->family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < bytes; i++) {
        unsigned first_bit = i * 8;
        if (first_bit >= r->prefix)
            r->addr[i] = 0;
        else if (first_bit + 8 > r->prefix)
            r->addr[i] &= (uint8_t)(0xFF << (8 - (r->prefix - first_bit)));
    }
}

/* The prefix after '/': 1..3 digits, at most max. */
static int s_prefix(const char *p, unsigned max, unsigned *out)
{
    size_t n = strlen(p);
    if (n == 0 || n > 3)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)p[i]))
            return -1;
    unsigned v = (unsigned)strtoul(p, NULL, 10);
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int ab_cidr_parse(const char *text, size_t len, ab_cidr *out, const char **why)
{
    char buf[AB_CIDR_TEXT_MAX];
    memset(out, 0, sizeof *out);
    if (len == 0 || len >= sizeof buf || memchr(text, '\0', len)) {
        *why = "an address or range is 1 to 63 characters";
        return -1;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->prefix = 128;
    } else {
        *why = "not an IPv4 or IPv6 address (such as 10.0.0.0/8 or 2001:db8::/32)";
        return -1;
    }
    if (slash && s_prefix(slash + 1, out->prefix, &out->prefix) < 0) {
        *why = out->family == AF_INET ? "the prefix after '/' must be 0 to 32"
                                      : "the prefix after '/' must be 0 to 128";
        return -1;
    }
    s_clear_host_bits(out);
    return 0;
}

void ab_cidr_format(const ab_cidr *r, char out[AB_CIDR_TEXT_MAX])
{
    char addr[INET6_ADDRSTRLEN] = "";
    inet_ntop(r->family, r->addr, addr, sizeof addr);
    snprintf(out, AB_CIDR_TEXT_MAX, "%s/%u", addr, r->prefix);
}

/* The caller's address as bytes; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) as IPv4. */
static int s_address(const char *ip, int *family, uint8_t addr[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (!ip || !*ip)
        return -1;
    if (inet_pton(AF_INET, ip, addr) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, ip, addr) != 1)
        return -1;
    *family = AF_INET6;
    if (memcmp(addr, mapped, sizeof mapped) == 0) {
        memmove(addr, addr + 12, 4);
        *family = AF_INET;
    }
    return 0;
}

bool ab_cidr_contains(const ab_cidr *r, const char *ip)
{
    int family;
    uint8_t addr[16] = {0};
    if (s_address(ip, &family, addr) < 0 || family != r->family)
        return false;
    ab_cidr probe = *r;
    memcpy(probe.addr, addr, sizeof addr);
    s_clear_host_bits(&probe);
    return memcmp(probe.addr, r->addr, family == AF_INET ? 4 : 16) == 0;
}

bool ab_ip_allowed(const char *allowed_ips, const char *ip)
{
    if (!allowed_ips)
        return true;
    bool any_entry = false;
    const char *p = allowed_ips;
    /* The stored form is ["range","range"]: every quoted string is one range. */
    while ((p = strchr(p, '"')) != NULL) {
        const char *end = strchr(p + 1, '"');
        if (!end)
            return false;
        any_entry = true;
        ab_cidr r;
        const char *why;
        if (ab_cidr_parse(p + 1, (size_t)(end - p - 1), &r, &why) == 0 && ab_cidr_contains(&r, ip))
            return true;
        p = end + 1;
    }
    if (any_entry)
        return false;
    /* No range at all: unrestricted only when the value is really empty ("", "[]"). */
    return strspn(allowed_ips, " \t\r\n[]") == strlen(allowed_ips);
}
