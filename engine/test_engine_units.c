/* test_engine_units — engine pieces that need no database: the audit change text, cuts
 * at character boundaries, handler coverage of the catalog, secrets and identifiers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audit.h"
#include "catalog.h"
#include "engine.h"
#include "envelope.h"
#include "idempotency.h"
#include "scheduler.h"
#include "secret.h"

static void test_change_text_has_misp_shape(void **state)
{
    ab_change c;
    ab_change_init(&c);
    assert_string_equal(ab_change_text(&c), "");
    ab_change_add(&c, "name", NULL, 0, "CIRCL", 5);
    ab_change_add(&c, "sector", "CERT", 4, "Finance", 7);
    assert_string_equal(ab_change_text(&c), "name () => (CIRCL), sector (CERT) => (Finance)");
    ab_change_free(&c);
}

static void test_change_value_cut_keeps_utf8_whole(void **state)
{
    /* 600 two-byte characters = 1200 bytes, over the 1000-byte cut. */
    char v[1201];
    for (int i = 0; i < 600; i++)
        memcpy(v + 2 * i, "\xc3\xa9", 2);
    v[1200] = '\0';
    ab_change c;
    ab_change_init(&c);
    ab_change_add(&c, "description", NULL, 0, v, 1200);
    const char *t = ab_change_text(&c);
    assert_true(ab_utf8_valid(t, strlen(t)));
    assert_true(strlen(t) < 1100);
    ab_change_free(&c);
}

static void test_every_catalog_command_has_a_handler(void **state)
{
    for (size_t i = 0; i < ab_catalog_len; i++) {
        ab_write_shape shape;
        if (!ab_handler_for(ab_catalog[i].type, &shape))
            fail_msg("catalog command %s has no handler in engine/handler.c", ab_catalog[i].type);
    }
    assert_null(ab_handler_for("org.nonexistent", NULL));
}

static void test_authkeys_and_uuids_have_their_shape(void **state)
{
    char key[AB_AUTHKEY_LEN + 1], other[AB_AUTHKEY_LEN + 1], uuid[37];
    assert_int_equal(ab_authkey_new(key), 0);
    assert_int_equal(ab_authkey_new(other), 0);
    assert_int_equal(strlen(key), AB_AUTHKEY_LEN);
    assert_string_not_equal(key, other);
    for (int i = 0; i < AB_AUTHKEY_LEN; i++)
        assert_non_null(
            strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", key[i]));
    assert_int_equal(ab_uuid_v4(uuid), 0);
    assert_true(ab_uuid_valid(uuid, 36));
    assert_int_equal(uuid[14], '4');
}

static void test_digest_depends_on_secret_and_key(void **state)
{
    ab_secret a, b;
    memset(&a, 1, sizeof a);
    memset(&b, 2, sizeof b);
    uint8_t d1[AB_DIGEST_LEN], d2[AB_DIGEST_LEN], d3[AB_DIGEST_LEN];
    ab_secret_digest(&a, "key-one", 7, d1);
    ab_secret_digest(&b, "key-one", 7, d2);
    ab_secret_digest(&a, "key-two", 7, d3);
    assert_memory_not_equal(d1, d2, AB_DIGEST_LEN);
    assert_memory_not_equal(d1, d3, AB_DIGEST_LEN);
}

static void test_command_digest_separates_type_and_args(void **state)
{
    ab_cmdkey x, y, z;
    ab_cmdkey_digest(&x, "org.add", "\x80", 1);
    ab_cmdkey_digest(&y, "org.edit", "\x80", 1);
    ab_cmdkey_digest(&z, "org.add",
                     "\x81\xa1"
                     "a\x01",
                     4);
    assert_memory_not_equal(x.digest, y.digest, AB_DIGEST_LEN);
    assert_memory_not_equal(x.digest, z.digest, AB_DIGEST_LEN);
}

/* MISP's re-queue: add the period until the next run is in the future, so a missed
 * task runs once after downtime; timer 0 is never scheduled again. */
static void test_task_next_run_skips_missed_periods(void **state)
{
    const int64_t due = 1764550800; /* 2025-12-01T01:00:00Z */
    assert_int_equal(ab_task_next_after(due, 1, due + 5), due + 3600);
    assert_int_equal(ab_task_next_after(due, 1, due + 5 * 3600 + 600), due + 6 * 3600);
    assert_int_equal(ab_task_next_after(due, 24, due + 86400), due + 2 * 86400);
    assert_int_equal(ab_task_next_after(due, 0, due + 5), 0);
    char iso[32];
    ab_iso_utc(due, iso, sizeof iso);
    assert_string_equal(iso, "2025-12-01T01:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_change_text_has_misp_shape),
        cmocka_unit_test(test_change_value_cut_keeps_utf8_whole),
        cmocka_unit_test(test_every_catalog_command_has_a_handler),
        cmocka_unit_test(test_authkeys_and_uuids_have_their_shape),
        cmocka_unit_test(test_digest_depends_on_secret_and_key),
        cmocka_unit_test(test_command_digest_separates_type_and_args),
        cmocka_unit_test(test_task_next_run_skips_missed_periods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
