/* test_password.c — engine/auth/password.h: yescrypt hashes (round trip, salt, tampering, rehash
 * after a cost change, MISP's bcrypt carried over), the policy of the settings catalog with
 * MISP's defaults (a table of passwords and the exact reasons), generated passwords that
 * always pass, and NULL / empty / very long inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <crypt.h>

#include "auth/password.h"

static void test_hash_and_verify_round_trip(void **state)
{
    (void)state;
    char *h = NULL;
    assert_int_equal(ab_password_hash("Correct horse 9", 0, &h), 0);
    assert_non_null(h);
    assert_int_equal(strncmp(h, "$y$", 3), 0);
    assert_null(strstr(h, "Correct horse")); /* not the password */
    assert_true(ab_password_verify("Correct horse 9", h));
    assert_false(ab_password_verify("Correct horse 8", h));  /* wrong password */
    assert_false(ab_password_verify("correct horse 9", h));  /* case matters */
    assert_false(ab_password_verify("Correct horse 9 ", h)); /* nothing trimmed */
    assert_false(ab_password_verify("Correct horse", h));    /* nor a prefix */
    assert_false(ab_password_needs_rehash(h, 0));
    free(h);
}

static void test_two_hashes_of_one_password_differ(void **state)
{
    (void)state;
    char *a = NULL, *b = NULL;
    assert_int_equal(ab_password_hash("Same password 1", 0, &a), 0);
    assert_int_equal(ab_password_hash("Same password 1", 0, &b), 0);
    assert_string_not_equal(a, b); /* per-hash random salt */
    /* the salt field differs, not only the hash */
    const char *sa = strchr(a + 3, '$'), *sb = strchr(b + 3, '$');
    assert_non_null(sa);
    assert_non_null(sb);
    assert_int_not_equal(strncmp(sa, sb, 10), 0);
    assert_true(ab_password_verify("Same password 1", a));
    assert_true(ab_password_verify("Same password 1", b));
    free(a);
    free(b);
}

static void test_a_tampered_hash_is_refused(void **state)
{
    (void)state;
    char *h = NULL;
    assert_int_equal(ab_password_hash("Tamper proof 42", 0, &h), 0);
    size_t n = strlen(h);
    char *t = strdup(h);
    /* every position of the salt and hash, one character changed */
    const char *salt = strchr(h + 3, '$');
    for (size_t i = (size_t)(salt + 1 - h); i < n; i++) {
        if (h[i] == '$')
            continue;
        strcpy(t, h);
        t[i] = t[i] == '.' ? '/' : '.';
        assert_false(ab_password_verify("Tamper proof 42", t));
    }
    strcpy(t, h);
    t[n - 1] = '\0'; /* truncated */
    assert_false(ab_password_verify("Tamper proof 42", t));
    assert_false(ab_password_verify("Tamper proof 42", "$y$"));
    assert_false(ab_password_verify("Tamper proof 42", ""));
    assert_false(ab_password_verify("Tamper proof 42", "*0"));
    assert_false(ab_password_verify("Tamper proof 42", NULL));
    /* a method we do not accept, though libxcrypt would (traditional DES) */
    char des[CRYPT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof *cd);
    const char *d = crypt_r("Tamper proof 42", "ab", cd);
    if (d && d[0] != '*') {
        snprintf(des, sizeof des, "%s", d);
        assert_false(ab_password_verify("Tamper proof 42", des));
    }
    free(cd);
    free(t);
    free(h);
}

static void test_needs_rehash(void **state)
{
    (void)state;
    char *weak = NULL, *cur = NULL, *strong = NULL;
    assert_int_equal(ab_password_hash("Rehash me 12345", 3, &weak), 0);
    assert_int_equal(ab_password_hash("Rehash me 12345", 0, &cur), 0);
    assert_int_equal(ab_password_hash("Rehash me 12345", 6, &strong), 0);
    assert_true(ab_password_verify("Rehash me 12345", weak));
    assert_true(ab_password_verify("Rehash me 12345", strong));
    assert_true(ab_password_needs_rehash(weak, 0));    /* weaker than current (5) */
    assert_false(ab_password_needs_rehash(cur, 0));    /* current */
    assert_false(ab_password_needs_rehash(strong, 0)); /* stronger: keep */
    assert_true(ab_password_needs_rehash(cur, 6));     /* the cost was raised */
    assert_false(ab_password_needs_rehash(weak, 3));
    /* MISP's bcrypt hashes verify, and ask to be replaced */
    struct crypt_data *cd = calloc(1, sizeof *cd);
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    assert_non_null(crypt_gensalt_rn("$2y$", 4, "0123456789abcdef", 16, setting, sizeof setting));
    const char *b = crypt_r("Imported from MISP 1", setting, cd);
    assert_non_null(b);
    char *bcrypt = strdup(b);
    assert_true(ab_password_verify("Imported from MISP 1", bcrypt));
    assert_false(ab_password_verify("Imported from MISP 2", bcrypt));
    assert_true(ab_password_needs_rehash(bcrypt, 0));
    assert_true(ab_password_needs_rehash(NULL, 0));
    assert_true(ab_password_needs_rehash("", 0));
    assert_true(ab_password_needs_rehash("$y$zzzz$abc$def", 0)); /* unknown parameters */
    free(bcrypt);
    free(cd);
    free(weak);
    free(cur);
    free(strong);
}

static void test_empty_null_and_long_inputs(void **state)
{
    (void)state;
    char *h = (char *)"untouched";
    assert_int_equal(ab_password_hash(NULL, 0, &h), -1);
    assert_null(h);
    assert_int_equal(ab_password_hash("", 0, &h), -1);
    assert_null(h);
    assert_int_equal(ab_password_hash("Bad cost 123456", 12, &h), -1);
    assert_int_equal(ab_password_hash("Bad cost 123456", -1, &h), -1);
    char max[AB_PASSWORD_MAX_BYTES + 1], over[AB_PASSWORD_MAX_BYTES + 2], huge[100001];
    memset(max, 'a', sizeof max - 1);
    max[sizeof max - 1] = '\0';
    memset(over, 'a', sizeof over - 1);
    over[sizeof over - 1] = '\0';
    memset(huge, 'x', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(ab_password_hash(max, 0, &h), 0); /* the longest accepted */
    assert_true(ab_password_verify(max, h));
    assert_false(ab_password_verify(over, h)); /* never cut to fit */
    assert_false(ab_password_verify(huge, h));
    assert_false(ab_password_verify(NULL, h));
    assert_false(ab_password_verify("", h));
    free(h);
    assert_int_equal(ab_password_hash(over, 0, &h), -1);
    assert_int_equal(ab_password_hash(huge, 0, &h), -1);
    char msg[256];
    assert_int_equal(ab_password_check(NULL, huge, msg, sizeof msg), AB_PW_TOO_LONG);
    assert_string_equal(msg, "the password is too long: at most 256 bytes");
    assert_int_equal(ab_password_check(NULL, NULL, msg, sizeof msg), AB_PW_EMPTY);
    assert_string_equal(msg, "the password is empty");
    assert_int_equal(ab_password_check(NULL, "", NULL, 0), AB_PW_EMPTY);
    ab_password_free(NULL);
}

/* --- policy --------------------------------------------------------------------------- */

#define SHORT12                                                                                    \
    "the password is too short: at least 12 characters (Security.password_policy_length)"
#define SIMPLE                                                                                     \
    "the password is too simple: it needs upper and lower case letters and a digit or a special "  \
    "character, or at least 16 characters (Security.password_policy_complexity)"

static void test_policy_table_with_misp_defaults(void **state)
{
    (void)state;
    static const struct {
        const char *pw;
        ab_password_problem want;
        const char *msg;
    } rows[] = {
        {"Abcdefghij1k", AB_PW_OK, ""},     /* 12, upper + lower + digit */
        {"Abcdefghij!k", AB_PW_OK, ""},     /* special instead of a digit */
        {"abcdefghijklmnop", AB_PW_OK, ""}, /* 16 of anything */
        {"                ", AB_PW_OK, ""}, /* 16 spaces: MISP's rule allows it */
        {"Ab1defghijk", AB_PW_TOO_SHORT, SHORT12},
        {"A1!", AB_PW_TOO_SHORT, SHORT12},
        {"Ünïcödé1234", AB_PW_TOO_SHORT, SHORT12},  /* 11 characters, 15 bytes */
        {"abcdefghij1k", AB_PW_COMPLEXITY, SIMPLE}, /* no upper case */
        {"ABCDEFGHIJ1K", AB_PW_COMPLEXITY, SIMPLE}, /* no lower case */
        {"Abcdefghijkl", AB_PW_COMPLEXITY, SIMPLE}, /* no digit nor special */
        {"abcdefghijklmno", AB_PW_COMPLEXITY, SIMPLE},
        {"", AB_PW_EMPTY, "the password is empty"},
    };
    ab_password_policy defaults = {0}; /* MISP's */
    ab_password_policy settings;
    assert_int_equal(ab_password_policy_from_settings(&settings), 0); /* no database: defaults */
    assert_int_equal(settings.min_length, 12);
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        const ab_password_policy *ps[] = {NULL, &defaults, &settings};
        for (size_t j = 0; j < 3; j++) {
            char msg[256] = "junk";
            ab_password_problem got = ab_password_check(ps[j], rows[i].pw, msg, sizeof msg);
            if (got != rows[i].want || strcmp(msg, rows[i].msg) != 0)
                fail_msg("row %zu policy %zu: got %d '%s', want %d '%s'", i, j, got, msg,
                         rows[i].want, rows[i].msg);
        }
    }
    ab_password_policy_clear(&settings);
    assert_null(settings.complexity);
}

static void test_policy_with_other_settings(void **state)
{
    (void)state;
    char msg[256];
    ab_password_policy p = {.min_length = 20, .complexity = NULL};
    assert_int_equal(ab_password_check(&p, "Abcdefghij1k", msg, sizeof msg), AB_PW_TOO_SHORT);
    assert_string_equal(
        msg, "the password is too short: at least 20 characters (Security.password_policy_length)");
    assert_int_equal(ab_password_check(&p, "abcdefghijklmnopqrst", msg, sizeof msg), AB_PW_OK);

    p.min_length = 8;
    p.complexity = strdup("/^(?=.*[0-9].*[0-9])(?=.*[a-z]).*$/");
    assert_int_equal(ab_password_check(&p, "abcdefg12", msg, sizeof msg), AB_PW_OK);
    assert_int_equal(ab_password_check(&p, "abcdefgh1", msg, sizeof msg), AB_PW_COMPLEXITY);
    assert_string_equal(msg, "the password does not meet the complexity rule: it must match "
                             "/^(?=.*[0-9].*[0-9])(?=.*[a-z]).*$/ "
                             "(Security.password_policy_complexity)");
    free(p.complexity);

    p.complexity = strdup("/^[a-z]+$/i"); /* a flag */
    assert_int_equal(ab_password_check(&p, "AbcdEFGH", msg, sizeof msg), AB_PW_OK);
    free(p.complexity);

    /* a rule that does not compile falls back to MISP's default, as MISP does */
    p.complexity = strdup("/([a-z]/");
    assert_int_equal(ab_password_check(&p, "Abcdefghij1k", msg, sizeof msg), AB_PW_OK);
    assert_int_equal(ab_password_check(&p, "abcdefghij1k", msg, sizeof msg), AB_PW_COMPLEXITY);
    assert_string_equal(msg, SIMPLE);
    free(p.complexity);

    /* the default written out is described, not printed */
    p.complexity = strdup("/^((?=.*\\d)|(?=.*\\W+))(?![\\n])(?=.*[A-Z])(?=.*[a-z]).*$|.{16,}/");
    assert_int_equal(ab_password_check(&p, "abcdefghij1k", msg, sizeof msg), AB_PW_COMPLEXITY);
    assert_string_equal(msg, SIMPLE);
    free(p.complexity);

    p.min_length = 0; /* unusable: MISP's 12 */
    p.complexity = NULL;
    assert_int_equal(ab_password_check(&p, "Abcdefghij1", msg, sizeof msg), AB_PW_TOO_SHORT);
    assert_string_equal(msg, SHORT12);
    /* a message buffer too small is cut, not overrun */
    char tiny[8];
    assert_int_equal(ab_password_check(&p, "Abc", tiny, sizeof tiny), AB_PW_TOO_SHORT);
    assert_string_equal(tiny, "the pas");
}

/* --- generation --------------------------------------------------------------------------- */

static void test_generated_passwords_pass_the_policy(void **state)
{
    (void)state;
    ab_password_policy defaults = {0};
    char *prev = NULL;
    for (int i = 0; i < 1000; i++) {
        char *pw = NULL;
        assert_int_equal(ab_password_generate(i % 2 ? &defaults : NULL, &pw), 0);
        assert_int_equal(strlen(pw), AB_PASSWORD_GENERATED_LEN);
        char msg[256];
        if (ab_password_check(NULL, pw, msg, sizeof msg) != AB_PW_OK)
            fail_msg("generated password %d refused: %s", i, msg);
        /* at least one of each kind, nothing that needs quoting */
        assert_non_null(strpbrk(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
        assert_non_null(strpbrk(pw, "abcdefghijklmnopqrstuvwxyz"));
        assert_non_null(strpbrk(pw, "0123456789"));
        assert_non_null(strpbrk(pw, "-_.+=@%"));
        assert_int_equal(strspn(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789-_.+=@%"),
                         strlen(pw));
        if (prev)
            assert_string_not_equal(prev, pw);
        ab_password_free(prev);
        prev = pw;
    }
    ab_password_free(prev);

    /* a stricter policy: longer, and a custom rule (two digits in a row) */
    ab_password_policy p = {.min_length = 64, .complexity = strdup("/[0-9]{2}/")};
    for (int i = 0; i < 1000; i++) {
        char *pw = NULL;
        assert_int_equal(ab_password_generate(&p, &pw), 0);
        assert_int_equal(strlen(pw), 64);
        assert_int_equal(ab_password_check(&p, pw, NULL, 0), AB_PW_OK);
        ab_password_free(pw);
    }
    free(p.complexity);

    /* a rule no generated password can meet: refused, not looped forever */
    p.min_length = 12;
    p.complexity = strdup("/^[a-z]+$/");
    char *pw = (char *)"untouched";
    assert_int_equal(ab_password_generate(&p, &pw), -1);
    assert_null(pw);
    free(p.complexity);

    /* a generated password hashes and verifies */
    assert_int_equal(ab_password_generate(NULL, &pw), 0);
    char *h = NULL;
    assert_int_equal(ab_password_hash(pw, 0, &h), 0);
    assert_true(ab_password_verify(pw, h));
    free(h);
    ab_password_free(pw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_and_verify_round_trip),
        cmocka_unit_test(test_two_hashes_of_one_password_differ),
        cmocka_unit_test(test_a_tampered_hash_is_refused),
        cmocka_unit_test(test_needs_rehash),
        cmocka_unit_test(test_empty_null_and_long_inputs),
        cmocka_unit_test(test_policy_table_with_misp_defaults),
        cmocka_unit_test(test_policy_with_other_settings),
        cmocka_unit_test(test_generated_passwords_pass_the_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
