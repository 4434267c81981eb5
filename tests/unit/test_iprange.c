/* test_iprange.c — broker/wire/iprange.h: parsing address ranges (IPv4, IPv6, host bits, bad
 * input), their canonical text, membership (IPv4-mapped IPv6 counts as IPv4), and the
 * stored allowed_ips lists as ab_authenticate reads them (empty = any, damaged = none). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wire/iprange.h"

static void s_canonical(const char *in, const char *want)
{
    ab_cidr r;
    const char *why = NULL;
    assert_int_equal(ab_cidr_parse(in, strlen(in), &r, &why), 0);
    char text[AB_CIDR_TEXT_MAX];
    ab_cidr_format(&r, text);
    assert_string_equal(text, want);
}

static void s_bad(const char *in)
{
    ab_cidr r;
    const char *why = NULL;
    assert_int_equal(ab_cidr_parse(in, strlen(in), &r, &why), -1);
    assert_non_null(why);
}

static void test_parse_and_canonical_form(void **state)
{
    (void)state;
    s_canonical("10.0.0.0/8", "10.0.0.0/8");
    s_canonical("10.1.2.3/8", "10.0.0.0/8");
    s_canonical("192.0.2.7", "192.0.2.7/32");
    s_canonical("192.0.2.77/30", "192.0.2.76/30");
    s_canonical("0.0.0.0/0", "0.0.0.0/0");
    s_canonical("2001:db8::1/32", "2001:db8::/32");
    s_canonical("::1", "::1/128");
    s_canonical("2001:db8:abcd:1234::/63", "2001:db8:abcd:1234::/63");
    s_canonical("2001:db8:abcd:1235::/63", "2001:db8:abcd:1234::/63");
}

static void test_bad_ranges(void **state)
{
    (void)state;
    s_bad("");
    s_bad("300.1.1.1");
    s_bad("10.0.0.0/33");
    s_bad("::1/129");
    s_bad("10.0.0.0/");
    s_bad("10.0.0.0/-1");
    s_bad("10.0.0.0/8/8");
    s_bad("localhost");
    s_bad("10.0.0.0 /8");
    char nul[] = "10.0.0.1\0/8";
    ab_cidr r;
    const char *why = NULL;
    assert_int_equal(ab_cidr_parse(nul, sizeof nul - 1, &r, &why), -1);
}

static bool s_in(const char *range, const char *ip)
{
    ab_cidr r;
    const char *why = NULL;
    assert_int_equal(ab_cidr_parse(range, strlen(range), &r, &why), 0);
    return ab_cidr_contains(&r, ip);
}

static void test_contains(void **state)
{
    (void)state;
    assert_true(s_in("10.0.0.0/8", "10.255.1.2"));
    assert_false(s_in("10.0.0.0/8", "11.0.0.1"));
    assert_true(s_in("127.0.0.1", "127.0.0.1"));
    assert_false(s_in("127.0.0.1", "127.0.0.2"));
    assert_true(s_in("192.0.2.76/30", "192.0.2.79"));
    assert_false(s_in("192.0.2.76/30", "192.0.2.80"));
    assert_true(s_in("0.0.0.0/0", "203.0.113.9"));
    assert_true(s_in("127.0.0.0/8", "::ffff:127.0.0.1")); /* IPv4-mapped IPv6 */
    assert_false(s_in("::/0", "127.0.0.1"));              /* families do not mix */
    assert_true(s_in("2001:db8::/32", "2001:db8:1::5"));
    assert_false(s_in("2001:db8::/32", "2001:db9::5"));
    assert_true(s_in("::1", "::1"));
    assert_false(s_in("10.0.0.0/8", ""));
    assert_false(s_in("10.0.0.0/8", "not an address"));
}

static void test_allowed_lists(void **state)
{
    (void)state;
    assert_true(ab_ip_allowed(NULL, "192.0.2.1"));
    assert_true(ab_ip_allowed("", "192.0.2.1"));
    assert_true(ab_ip_allowed("[]", ""));
    const char *list = "[\"10.0.0.0/8\",\"2001:db8::/32\",\"127.0.0.1/32\"]";
    assert_true(ab_ip_allowed(list, "10.9.8.7"));
    assert_true(ab_ip_allowed(list, "127.0.0.1"));
    assert_true(ab_ip_allowed(list, "2001:db8::42"));
    assert_false(ab_ip_allowed(list, "192.0.2.1"));
    assert_false(ab_ip_allowed(list, "")); /* unknown address: a limited key refuses */
    /* a damaged list refuses rather than opens */
    assert_false(ab_ip_allowed("10.0.0.0/8", "10.0.0.1"));
    assert_false(ab_ip_allowed("[\"10.0.0.0/8", "10.0.0.1"));
    assert_false(ab_ip_allowed("[\"garbage\"]", "10.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_canonical_form),
        cmocka_unit_test(test_bad_ranges),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_allowed_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
