/* test_engine_units — engine pieces that need no database: the audit change text, cuts
 * at character boundaries, handler coverage of the catalog, secrets and identifiers, the
 * supervisor's `workers` option, the authorisation rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/audit.h"
#include "catalog.h"
#include "core/engine.h"
#include "wire/envelope.h"
#include "auth/identity.h"
#include "core/idempotency.h"
#include "jobs/jobcounts.h"
#include "jobs/jobs.h"
#include "jobs/scheduler.h"
#include "auth/secret.h"
#include "jobs/supervisor.h"

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

/* org.merge renames the acting organisation of the rows its batch queued: exactly those
 * of the old name, once. */
static void test_audit_rename_org(void **state)
{
    ab_audit *a = ab_audit_new();
    assert_non_null(a);
    ab_actor old = {1, "a@old", "Old Org", ""}, other = {2, "b@x", "Old Org 2", ""};
    assert_int_equal(ab_audit_add(a, &old, "User", 1, "edit", "t", ""), 0);
    assert_int_equal(ab_audit_add(a, &other, "User", 2, "edit", "t", ""), 0);
    assert_int_equal(ab_audit_add(a, &old, "Organisation", 3, "merge", "t", ""), 0);
    assert_int_equal(ab_audit_add(a, NULL, "Job", 4, "add", "t", ""), 0); /* SYSTEM */
    assert_int_equal(ab_audit_rename_org(a, "Old Org", "New Org"), 2);
    assert_int_equal(ab_audit_rename_org(a, "Old Org", "New Org"), 0);
    assert_int_equal(ab_audit_rename_org(a, "New Org", "Third"), 2);
    assert_int_equal(ab_audit_rename_org(a, "SYSTEM", "SYSTEM"), 1);
    assert_int_equal(ab_audit_count(a), 4);
    ab_audit_destroy(&a);
}

/* The dispatch table is built from schemas/commands.def: every row has a handler (else the
 * link fails), and no two rows share one (a row copied without changing its handler). */
static void test_every_catalog_command_has_its_own_handler(void **state)
{
    for (size_t i = 0; i < ab_catalog_len; i++) {
        ab_handler h = ab_handler_for(&ab_catalog[i]);
        if (!h)
            fail_msg("catalog command %s has no handler", ab_catalog[i].type);
        for (size_t j = 0; j < i; j++)
            if (ab_handler_for(&ab_catalog[j]) == h)
                fail_msg("%s and %s share a handler in schemas/commands.def", ab_catalog[j].type,
                         ab_catalog[i].type);
    }
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

static void test_backoff_doubles_with_jitter_and_a_cap(void **state)
{
    const ab_job_type *t = ab_job_type_find("sleep", 5);
    assert_non_null(t);
    for (int attempt = 1; attempt <= 30; attempt++) {
        int64_t base = t->backoff_base_ms;
        for (int i = 1; i < attempt && base < 3600000; i++)
            base *= 2;
        if (base > 3600000)
            base = 3600000;
        for (int k = 0; k < 20; k++) {
            int64_t d = ab_job_backoff_ms(t, attempt);
            assert_true(d >= base * 3 / 4 && d <= base * 5 / 4);
        }
    }
}

static void test_queues_states_and_misp_codes(void **state)
{
    assert_true(ab_queue_valid("email", 5));
    assert_false(ab_queue_valid("emails", 6));
    assert_string_equal(ab_job_state_name(AB_JOB_RETRYING), "retrying");
    assert_int_equal(ab_job_misp_status(AB_JOB_QUEUED), 1);
    assert_int_equal(ab_job_misp_status(AB_JOB_RETRYING), 1);
    assert_int_equal(ab_job_misp_status(AB_JOB_RUNNING), 2);
    assert_int_equal(ab_job_misp_status(AB_JOB_FAILED), 3);
    assert_int_equal(ab_job_misp_status(AB_JOB_CANCELLED), 3);
    assert_int_equal(ab_job_misp_status(AB_JOB_DONE), 4);
}

static void test_job_arguments_are_checked_against_the_type(void **state)
{
    const ab_job_type *t = ab_job_type_find("sleep", 5);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    ab_pack_cstr(&pk, "ms");
    ab_pack_cstr(&pk, "soon");
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    ab_error err;
    assert_int_equal(ab_job_args_validate(t, &u.data, &err), -1);
    assert_int_equal(err.code, AB_E_INVALID);
    assert_string_equal(err.field, "ms");
    assert_int_equal(ab_job_args_validate(t, NULL, &err), 0);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    for (size_t i = 0; i < ab_job_types_len; i++) {
        assert_true(ab_queue_valid(ab_job_types[i].queue, strlen(ab_job_types[i].queue)));
        assert_non_null(ab_job_types[i].handler);
        assert_true(ab_job_types[i].max_attempts >= 1);
    }
}

static void test_supervisor_workers_option(void **state)
{
    int c[AB_SUPERVISOR_NQUEUES];
    char err[300];
    assert_int_equal(ab_supervisor_parse_workers("default:1,prio:1,cache:1,email:1,update:1", c,
                                                 err, sizeof err),
                     0);
    for (int i = 0; i < AB_SUPERVISOR_NQUEUES; i++)
        assert_int_equal(c[i], 1);
    /* blanks, a bare queue (one), repeats add up, empty items and "" are fine */
    assert_int_equal(
        ab_supervisor_parse_workers(" default : 2 , email,,default:1", c, err, sizeof err), 0);
    assert_int_equal(c[0], 3);
    assert_int_equal(c[3], 1);
    assert_int_equal(c[1] + c[2] + c[4], 0);
    assert_int_equal(ab_supervisor_parse_workers("", c, err, sizeof err), 0);
    assert_int_equal(c[0] + c[1] + c[2] + c[3] + c[4], 0);
    assert_int_equal(ab_supervisor_parse_workers("mail:1", c, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown queue 'mail'"));
    assert_int_equal(ab_supervisor_parse_workers("email:x", c, err, sizeof err), -1);
    assert_non_null(strstr(err, "count of queue email"));
    assert_int_equal(ab_supervisor_parse_workers("email:", c, err, sizeof err), -1);
    assert_int_equal(ab_supervisor_parse_workers("email:-1", c, err, sizeof err), -1);
    assert_int_equal(ab_supervisor_parse_workers("email:65", c, err, sizeof err), -1);
    assert_int_equal(ab_supervisor_parse_workers("email:40,email:40", c, err, sizeof err), -1);
    assert_non_null(strstr(err, "more than 64"));
}

/* The authorisation rules of identity.c on identities made here (no database). */
static void test_authorisation_rules(void **state)
{
    const ab_command *view = ab_catalog_find("user.view", 9);
    const ab_command *pw = ab_catalog_find("user.change_pw", 14);
    const ab_command *logs = ab_catalog_find("log.search", 10);
    const ab_command *org_add = ab_catalog_find("org.add", 7);
    ab_identity site = {.user_id = 1,
                        .org_id = 1,
                        .site_admin = true,
                        .perm_level = 3,
                        .flags = AB_RF_SITE_ADMIN | AB_RF_ADMIN | AB_RF_AUTH | AB_RF_AUDIT};
    ab_identity boss = {.user_id = 2,
                        .org_id = 5,
                        .perm_level = 3,
                        .flags = AB_RF_ADMIN | AB_RF_AUTH | AB_RF_AUDIT | AB_RF_TAGGER};
    ab_identity plain = {.user_id = 3, .org_id = 5, .perm_level = 2, .flags = AB_RF_AUTH};
    ab_error err;
    /* the command level: the catalog's permission, a read-only key runs reads only */
    assert_int_equal(ab_authorise(view, &boss, &err), 0);
    assert_int_equal(ab_authorise(view, &plain, &err), -1);
    assert_int_equal(err.code, AB_E_FORBIDDEN);
    assert_int_equal(ab_authorise(pw, &plain, &err), 0);
    assert_int_equal(ab_authorise(logs, &plain, &err), -1);
    assert_int_equal(ab_authorise(org_add, &boss, &err), -1);
    ab_identity ro = site;
    ro.key_read_only = true;
    assert_int_equal(ab_authorise(view, &ro, &err), 0);
    assert_int_equal(ab_authorise(org_add, &ro, &err), -1);
    assert_string_equal(err.field, "auth");
    /* one user: site admins anyone, org admins their org's non-site-admins, self for self */
    assert_int_equal(ab_may_act_on_user(view, &site, 9, 7, true, &err), 0);
    assert_int_equal(ab_may_act_on_user(view, &boss, 9, 5, false, &err), 0);
    assert_int_equal(ab_may_act_on_user(view, &boss, 9, 5, true, &err), -1);
    assert_non_null(strstr(err.message, "site administrator"));
    assert_int_equal(err.code, AB_E_FORBIDDEN); /* boss sees that site admin in user.list */
    /* out of reach reads as missing: nobody learns whether an address exists elsewhere */
    assert_int_equal(ab_may_act_on_user(view, &boss, 9, 7, false, &err), -1);
    assert_int_equal(err.code, AB_E_NOT_FOUND);
    char hidden[sizeof err.message];
    snprintf(hidden, sizeof hidden, "%s", err.message);
    assert_int_equal(ab_user_not_found(&boss, "nobody@x.test", 13, &err), -1);
    assert_string_equal(err.message, hidden);
    assert_int_equal(ab_user_not_found(&site, "nobody@x.test", 13, &err), -1);
    assert_non_null(strstr(err.message, "nobody@x.test"));
    assert_int_equal(ab_may_act_on_user(pw, &plain, 3, 5, false, &err), 0);
    assert_int_equal(ab_may_act_on_user(pw, &plain, 9, 5, false, &err), -1);
    assert_int_equal(err.code, AB_E_NOT_FOUND);
    assert_string_equal(err.field, "user");
    /* organisations and roles an org admin may use */
    assert_int_equal(ab_may_act_in_org(view, &boss, 5, "org", &err), 0);
    assert_int_equal(ab_may_act_in_org(view, &boss, 7, "org", &err), -1);
    assert_int_equal(ab_may_act_in_org(view, &site, 7, "org", &err), 0);
    assert_int_equal(ab_may_grant_role(view, &boss, "User", 2, AB_RF_AUTH, &err), 0);
    assert_int_equal(ab_may_grant_role(view, &boss, "admin", 3, site.flags, &err), -1);
    assert_int_equal(ab_may_grant_role(view, &boss, "Sync", 3, AB_RF_AUTH | AB_RF_SYNC, &err), -1);
    assert_non_null(strstr(err.message, "sync"));
    assert_int_equal(ab_may_grant_role(view, &plain, "Pub", 3, AB_RF_AUTH, &err), -1);
    assert_non_null(strstr(err.message, "level"));
    assert_int_equal(ab_may_grant_role(view, &site, "admin", 3, site.flags, &err), 0);
}

static void test_job_counts_buckets_and_keys(void **state)
{
    (void)state;
    /* a bound belongs to its own bucket; the last bucket has no bound */
    assert_int_equal(ab_job_bucket_of(0), 0);
    assert_int_equal(ab_job_bucket_of(1000), 0);
    assert_int_equal(ab_job_bucket_of(1001), 1);
    assert_int_equal(ab_job_bucket_of(3600000000LL), AB_JOB_BUCKETS - 2);
    assert_int_equal(ab_job_bucket_of(3600000001LL), AB_JOB_BUCKETS - 1);
    ab_job_counts c;
    ab_job_counts_clear(&c);
    assert_int_equal(ab_job_counts_add(&c, "default", "noop", "done", 1, 300), 0);
    assert_int_equal(ab_job_counts_add(&c, "default", "noop", "done", 1, 7000), 0);
    assert_int_equal(ab_job_counts_add(&c, "default", "noop", "cancelled", 3, -1), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.rows[0].finished, 2);
    assert_int_equal(c.rows[0].ran, 2);
    assert_int_equal(c.rows[0].run_us, 7300);
    assert_int_equal(c.rows[0].buckets[0], 1);
    assert_int_equal(c.rows[0].buckets[2], 1);
    assert_int_equal(c.rows[1].finished, 3); /* never ran: not in the histogram */
    assert_int_equal(c.rows[1].ran, 0);
    char type[16];
    for (int i = 2; i < AB_JOB_COUNTS_MAX; i++) {
        snprintf(type, sizeof type, "t%d", i);
        assert_int_equal(ab_job_counts_add(&c, "default", type, "done", 1, 1), 0);
    }
    assert_int_equal(ab_job_counts_add(&c, "default", "one-more", "done", 1, 1), -1);
    assert_int_equal(ab_job_counts_add(&c, "default", "noop", "done", 1, 1), 0); /* known key */
    assert_int_equal(c.n, AB_JOB_COUNTS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_change_text_has_misp_shape),
        cmocka_unit_test(test_change_value_cut_keeps_utf8_whole),
        cmocka_unit_test(test_audit_rename_org),
        cmocka_unit_test(test_every_catalog_command_has_its_own_handler),
        cmocka_unit_test(test_authkeys_and_uuids_have_their_shape),
        cmocka_unit_test(test_digest_depends_on_secret_and_key),
        cmocka_unit_test(test_command_digest_separates_type_and_args),
        cmocka_unit_test(test_backoff_doubles_with_jitter_and_a_cap),
        cmocka_unit_test(test_queues_states_and_misp_codes),
        cmocka_unit_test(test_job_arguments_are_checked_against_the_type),
        cmocka_unit_test(test_task_next_run_skips_missed_periods),
        cmocka_unit_test(test_supervisor_workers_option),
        cmocka_unit_test(test_authorisation_rules),
        cmocka_unit_test(test_job_counts_buckets_and_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
