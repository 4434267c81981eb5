/* test_authfail — the table of failed authentications (authfail.h) without a database: rows
 * per source and window, the throttle, undoing an account whose transaction failed, the
 * table's bound. Times are made-up monotonic milliseconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/authfail.h"

#define T0 1000000 /* an arbitrary monotonic start */

static const ab_authfail_limits s_lim = {10000, 100, 60000}; /* the defaults */

static ab_authfail_note s_guess(const char *ip, uint32_t count)
{
    return (ab_authfail_note){ip, 0, "", "Failed authentication using authkey abcd…wxyz", count};
}

/* Rows one account queued: it counts n notes at now. */
static size_t s_rows(ab_authfail *f, const ab_authfail_limits *lim, const ab_authfail_note *notes,
                     size_t n, int64_t now)
{
    ab_audit *audit = ab_audit_new();
    ab_authfail_undo *u = ab_authfail_undo_new();
    assert_int_equal(ab_authfail_account(f, lim, notes, n, now, audit, u), 0);
    size_t rows = ab_audit_count(audit);
    ab_authfail_undo_destroy(&u);
    ab_audit_destroy(&audit);
    return rows;
}

static void test_one_row_per_source_and_window(void **state)
{
    ab_authfail *f = ab_authfail_new(16);
    ab_authfail_note one = s_guess("192.0.2.1", 1), other = s_guess("192.0.2.2", 1);
    assert_int_equal(s_rows(f, &s_lim, &one, 1, T0), 1);         /* the first: at once */
    assert_int_equal(s_rows(f, &s_lim, &one, 1, T0 + 100), 0);   /* counted */
    assert_int_equal(s_rows(f, &s_lim, &other, 1, T0 + 200), 1); /* another address */
    assert_false(ab_authfail_due(f, T0 + 9999));
    assert_true(ab_authfail_due(f, T0 + 10000));
    assert_int_equal(s_rows(f, &s_lim, NULL, 0, T0 + 10000), 1); /* the window's count */
    assert_false(ab_authfail_due(f, T0 + 30000));
    /* a failure right after that row is inside the window it opened */
    assert_int_equal(s_rows(f, &s_lim, &one, 1, T0 + 10001), 0);
    assert_int_equal(s_rows(f, &s_lim, &one, 1, T0 + 20000), 1);
    ab_authfail_destroy(&f);
    assert_null(f);
}

static void test_a_users_failures_are_a_group_of_their_own(void **state)
{
    ab_authfail *f = ab_authfail_new(16);
    ab_authfail_note guess = s_guess("192.0.2.1", 1), expired = guess;
    expired.user_id = 7;
    expired.email = "ana@circl.lu";
    ab_authfail_note both[] = {guess, expired, guess, expired};
    assert_int_equal(s_rows(f, &s_lim, both, 4, T0), 2);
    ab_authfail_destroy(&f);
}

static void test_window_zero_writes_a_row_per_note(void **state)
{
    ab_authfail_limits each = s_lim;
    each.window_ms = 0;
    ab_authfail *f = ab_authfail_new(16);
    ab_authfail_note notes[] = {s_guess("192.0.2.1", 3), s_guess("192.0.2.1", 1)};
    assert_int_equal(s_rows(f, &each, notes, 2, T0), 2);
    assert_int_equal(s_rows(f, &each, notes, 2, T0 + 1), 2);
    ab_authfail_destroy(&f);
}

static void test_throttle_from_the_amount_until_the_period_ends(void **state)
{
    ab_authfail *f = ab_authfail_new(16);
    ab_error err;
    ab_authfail_note many = s_guess("2001:db8::1", 99), last = s_guess("2001:db8::1", 1);
    s_rows(f, &s_lim, &many, 1, T0);
    assert_int_equal(ab_authfail_throttled(f, "2001:db8::1", T0 + 1, &err), 0);
    s_rows(f, &s_lim, &last, 1, T0 + 500);
    assert_int_equal(ab_authfail_throttled(f, "2001:db8::1", T0 + 1000, &err), -1);
    assert_int_equal(err.code, AB_E_UNAVAILABLE);
    assert_int_equal(err.retry_after, 59);
    assert_non_null(strstr(err.message, "2001:db8::1"));
    assert_int_equal(ab_authfail_throttled(f, "2001:db8::2", T0 + 1000, &err), 0);
    assert_int_equal(ab_authfail_throttled(f, "2001:db8::1", T0 + 60000, &err), 0);
    /* blocked again; turning the throttle off lifts it within a second: an idle loop looks */
    s_rows(f, &s_lim, &many, 1, T0 + 60001);
    s_rows(f, &s_lim, &last, 1, T0 + 60002);
    assert_int_equal(ab_authfail_throttled(f, "2001:db8::1", T0 + 60003, &err), -1);
    assert_true(ab_authfail_due(f, T0 + 61100));
    ab_authfail_limits off = s_lim;
    off.amount = 0;
    s_rows(f, &off, NULL, 0, T0 + 61100);
    assert_int_equal(ab_authfail_throttled(f, "2001:db8::1", T0 + 61101, &err), 0);
    ab_authfail_destroy(&f);
}

static void test_mapped_ipv4_is_the_same_address_and_unknown_is_never_throttled(void **state)
{
    ab_authfail *f = ab_authfail_new(16);
    ab_error err;
    ab_authfail_note v4 = s_guess("10.0.0.1", 100), unknown = s_guess("", 1000);
    s_rows(f, &s_lim, &v4, 1, T0);
    assert_int_equal(ab_authfail_throttled(f, "::ffff:10.0.0.1", T0 + 1, &err), -1);
    s_rows(f, &s_lim, &unknown, 1, T0);
    assert_int_equal(ab_authfail_throttled(f, "", T0 + 1, &err), 0);
    ab_authfail_limits off = s_lim;
    off.amount = 0;
    ab_authfail_note other = s_guess("10.0.0.2", 1000);
    s_rows(f, &off, &other, 1, T0);
    assert_int_equal(ab_authfail_throttled(f, "10.0.0.2", T0 + 1, &err), 0);
    ab_authfail_destroy(&f);
}

static void test_revert_gives_back_rows_and_counts(void **state)
{
    ab_authfail *f = ab_authfail_new(16);
    ab_error err;
    ab_audit *audit = ab_audit_new();
    ab_authfail_undo *u = ab_authfail_undo_new();
    ab_authfail_note guess = s_guess("192.0.2.9", 100);
    assert_int_equal(ab_authfail_account(f, &s_lim, &guess, 1, T0, audit, u), 0);
    assert_int_equal(ab_audit_count(audit), 1);
    assert_int_equal(ab_authfail_throttled(f, "192.0.2.9", T0, &err), -1);
    ab_authfail_revert(f, u); /* the transaction did not commit */
    assert_int_equal(ab_authfail_throttled(f, "192.0.2.9", T0, &err), 0);
    /* the retry writes the row again, and counts once */
    assert_int_equal(s_rows(f, &s_lim, &guess, 1, T0 + 1), 1);
    assert_int_equal(ab_authfail_throttled(f, "192.0.2.9", T0 + 2, &err), -1);
    ab_authfail_undo_destroy(&u);
    ab_audit_destroy(&audit);
    ab_authfail_destroy(&f);
}

static void test_a_reverted_window_row_is_due_again(void **state)
{
    ab_authfail *f = ab_authfail_new(16);
    ab_authfail_note guess = s_guess("192.0.2.9", 1);
    s_rows(f, &s_lim, &guess, 1, T0);
    s_rows(f, &s_lim, &guess, 1, T0 + 1); /* pending */
    ab_audit *audit = ab_audit_new();
    ab_authfail_undo *u = ab_authfail_undo_new();
    assert_int_equal(ab_authfail_account(f, &s_lim, NULL, 0, T0 + 10000, audit, u), 0);
    assert_int_equal(ab_audit_count(audit), 1);
    ab_authfail_revert(f, u);
    assert_true(ab_authfail_due(f, T0 + 10001));
    assert_int_equal(s_rows(f, &s_lim, NULL, 0, T0 + 10001), 1);
    assert_false(ab_authfail_due(f, T0 + 10002));
    ab_authfail_undo_destroy(&u);
    ab_audit_destroy(&audit);
    ab_authfail_destroy(&f);
}

static void test_flush_writes_every_pending_count(void **state)
{
    ab_authfail *f = ab_authfail_new(16);
    ab_authfail_note a = s_guess("192.0.2.1", 1), b = s_guess("192.0.2.2", 1);
    ab_authfail_note notes[] = {a, a, b, b, b};
    assert_int_equal(s_rows(f, &s_lim, notes, 5, T0), 2);
    ab_audit *audit = ab_audit_new();
    ab_authfail_undo *u = ab_authfail_undo_new();
    assert_int_equal(ab_authfail_flush(f, &s_lim, T0 + 1, audit, u), 0);
    assert_int_equal(ab_audit_count(audit), 2);
    ab_authfail_undo_destroy(&u);
    ab_audit_destroy(&audit);
    ab_authfail_destroy(&f);
}

static void test_a_full_table_shares_one_overflow_group(void **state)
{
    ab_authfail *f = ab_authfail_new(2);
    ab_error err;
    ab_authfail_note notes[] = {s_guess("192.0.2.1", 1), s_guess("192.0.2.2", 1),
                                s_guess("192.0.2.3", 100), s_guess("192.0.2.4", 1)};
    /* two addresses fill it; the next two share the overflow group: one row between them */
    assert_int_equal(s_rows(f, &s_lim, notes, 4, T0), 3);
    assert_int_equal(ab_authfail_throttled(f, "192.0.2.3", T0, &err), 0);
    /* once their window and period have passed the groups are forgotten: room again */
    ab_authfail_note later = s_guess("192.0.2.5", 100);
    assert_int_equal(s_rows(f, &s_lim, &later, 1, T0 + 120000), 2); /* overflow's count too */
    assert_int_equal(ab_authfail_throttled(f, "192.0.2.5", T0 + 120001, &err), -1);
    ab_authfail_destroy(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_row_per_source_and_window),
        cmocka_unit_test(test_a_users_failures_are_a_group_of_their_own),
        cmocka_unit_test(test_window_zero_writes_a_row_per_note),
        cmocka_unit_test(test_throttle_from_the_amount_until_the_period_ends),
        cmocka_unit_test(test_mapped_ipv4_is_the_same_address_and_unknown_is_never_throttled),
        cmocka_unit_test(test_revert_gives_back_rows_and_counts),
        cmocka_unit_test(test_a_reverted_window_row_is_due_again),
        cmocka_unit_test(test_flush_writes_every_pending_count),
        cmocka_unit_test(test_a_full_table_shares_one_overflow_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
