/* test_forwarded.c — control/http/fwdparse.c (forwarded.h): the client address behind
 * trusted reverse proxies from Forwarded (RFC 7239) and X-Forwarded-For: nodes with ports
 * and brackets, quoted strings, case-insensitive names, unknown and obfuscated nodes, the
 * walk from the right past trusted proxies, Forwarded over X-Forwarded-For, and malformed
 * values (never more than the last trusted hop vouches for). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/forwarded.h"

#define PEER "10.0.0.1" /* the trusted proxy the connection comes from */

static ab_cidr s_trusted[2];

static int s_setup(void **state)
{
    (void)state;
    const char *why = NULL;
    if (ab_cidr_parse("10.0.0.0/8", 10, &s_trusted[0], &why) < 0 ||
        ab_cidr_parse("2001:db8:ffff::/48", 18, &s_trusted[1], &why) < 0)
        return -1;
    return 0;
}

/* The client address for one Forwarded line (or none: fwd NULL) and xff (or NULL). */
static void s_client(const char *fwd, const char *xff, const char *want)
{
    char out[64];
    const char *lines[] = {fwd};
    hs_forwarded_client(s_trusted, 2, PEER, lines, fwd ? 1 : 0, xff, out, sizeof out);
    assert_string_equal(out, want);
}

static void s_node(const char *node, const char *want)
{
    char out[64];
    bool ok = hs_node_address(node, strlen(node), out, sizeof out);
    if (!want) {
        assert_false(ok);
        return;
    }
    assert_true(ok);
    assert_string_equal(out, want);
}

static void test_nodes(void **state)
{
    (void)state;
    s_node("192.0.2.1", "192.0.2.1");
    s_node("192.0.2.1:4711", "192.0.2.1");
    s_node("192.0.2.1:_port", "192.0.2.1");
    s_node("2001:db8::1", "2001:db8::1");
    s_node("[2001:db8::1]", "2001:db8::1");
    s_node("[2001:DB8:0::1]:4711", "2001:db8::1");
    s_node("[2001:db8::1]:_p", "2001:db8::1");
    s_node("unknown", NULL);
    s_node("_hidden", NULL);
    s_node("", NULL);
    s_node("192.0.2.1:", NULL);
    s_node("192.0.2.1:123456", NULL);
    s_node("192.0.2.1:65536", NULL);
    s_node("192.0.2.1:65535", "192.0.2.1");
    s_node("192.0.2.1:47a1", NULL);
    s_node("192.0.2.1:_", NULL);
    s_node("[2001:db8::1", NULL);
    s_node("[2001:db8::1]4711", NULL);
    s_node("[192.0.2.1]", NULL);
    s_node("2001:db8::1:4711x", NULL);
    s_node("999.0.2.1", NULL);
    s_node("[]", NULL);
}

static void test_x_forwarded_for(void **state)
{
    (void)state;
    s_client(NULL, "192.0.2.9", "192.0.2.9");
    s_client(NULL, "192.0.2.9:4711", "192.0.2.9");
    s_client(NULL, "[2001:db8::9]:4711", "2001:db8::9");
    s_client(NULL, "198.51.100.7, 192.0.2.9, 10.1.1.1", "192.0.2.9"); /* past a trusted hop */
    s_client(NULL, "192.0.2.9, garbage, 10.1.1.1", "10.1.1.1");       /* stops at bad hop */
    s_client(NULL, "10.2.2.2, 10.1.1.1", "10.2.2.2"); /* all trusted: the leftmost */
    s_client(NULL, "", PEER);
    s_client(NULL, NULL, PEER);
    s_client(NULL, " , ", PEER);
}

static void test_forwarded(void **state)
{
    (void)state;
    s_client("for=192.0.2.60;proto=http;by=203.0.113.43", NULL, "192.0.2.60");
    s_client("for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"", NULL,
             "2001:db8:cafe::17");
    s_client("For=\"192.0.2.60:4711\"", NULL, "192.0.2.60");
    s_client("FOR=192.0.2.43, for=10.3.3.3", NULL, "192.0.2.43"); /* past trusted */
    s_client("for=192.0.2.43, for=\"[2001:db8:ffff::5]\"", NULL, "192.0.2.43");
    s_client("for=\"\\192.0.2.7\"", NULL, "192.0.2.7");  /* quoted-pair */
    s_client("for=192.0.2.60:4711", NULL, "192.0.2.60"); /* lenient */
    s_client("for=[2001:db8::3]", NULL, "2001:db8::3");  /* lenient */
    s_client("proto=https; for=192.0.2.61 ;by=x", NULL, "192.0.2.61");
    s_client("for=192.0.2.1,,for=192.0.2.2", NULL, "192.0.2.2");
    /* Forwarded wins over X-Forwarded-For */
    s_client("for=192.0.2.60", "198.51.100.1", "192.0.2.60");
    /* unknown, obfuscated, no for=: the hop before (here the proxy itself) */
    s_client("for=unknown", "198.51.100.1", PEER);
    s_client("for=_hidden", NULL, PEER);
    s_client("for=_hidden, for=10.4.4.4", NULL, "10.4.4.4");
    s_client("for=192.0.2.1, proto=https", NULL, PEER);
    s_client("for=192.0.2.1, for=\"_gazonk\"", NULL, PEER);
}

static void test_malformed_forwarded(void **state)
{
    (void)state;
    const char *bad[] = {
        "for",
        "for=",
        "=192.0.2.1",
        "for=\"192.0.2.1",
        "for=\"192.0.2.1\\",
        "for=192.0.2.1;for=192.0.2.2",
        "for=192.0.2.1 x",
        "for=192.0.2.1;;",
        "for==1",
        "for=\"192.0.2.1\"x",
        "f o r=192.0.2.1",
        "for=\"\x01\"",
        "for=\"0123456789012345678901234567890123456789012345678901234567890123456789\"",
        ";",
        "\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        s_client(bad[i], "198.51.100.1", PEER);
    /* a line that does not parse stops the walk there: the lines right of it still count */
    char out[64];
    const char *lines[] = {"for=\"192.0.2.1", "for=192.0.2.2, for=10.5.5.5"};
    hs_forwarded_client(s_trusted, 2, PEER, lines, 2, NULL, out, sizeof out);
    assert_string_equal(out, "192.0.2.2");
    const char *lines2[] = {"for=192.0.2.3", "for=\"oops, for=10.5.5.5"};
    hs_forwarded_client(s_trusted, 2, PEER, lines2, 2, NULL, out, sizeof out);
    assert_string_equal(out, PEER);
}

static void test_too_many_hops(void **state)
{
    (void)state;
    char xff[HS_FWD_HOPS_MAX * 12 + 32] = "192.0.2.1";
    for (int i = 0; i < HS_FWD_HOPS_MAX; i++)
        strcat(xff, ", 10.0.0.9");
    s_client(NULL, xff, PEER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nodes),         cmocka_unit_test(test_x_forwarded_for),
        cmocka_unit_test(test_forwarded),     cmocka_unit_test(test_malformed_forwarded),
        cmocka_unit_test(test_too_many_hops),
    };
    return cmocka_run_group_tests(tests, s_setup, NULL);
}
