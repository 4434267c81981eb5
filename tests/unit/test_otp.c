/* test_otp.c — engine/auth/otp.h and engine/auth/seal.h: HOTP and TOTP against the RFC 4226 and RFC
 * 6238 test vectors, the TOTP window and replay rule, HOTP's counter, malformed codes,
 * enrolment (secret, base32, otpauth:// URI with percent-encoding), and seeds sealed at
 * rest (round trip, tampering, another key, user or purpose). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/otp.h"
#include "auth/seal.h"
#include "core/settings_cache.h"

/* The RFC 4226 Appendix D / RFC 6238 Appendix B (SHA-1) secret. */
static const uint8_t rfc_secret[] = "12345678901234567890";
#define RFC_LEN 20

static void test_hotp_rfc4226_vectors(void **state)
{
    (void)state;
    static const char *const want[] = {"755224", "287082", "359152", "969429", "338314",
                                       "254676", "287922", "162583", "399871", "520489"};
    for (uint64_t c = 0; c < 10; c++) {
        char code[AB_OTP_DIGITS_MAX + 1];
        assert_int_equal(ab_otp_hotp_code(rfc_secret, RFC_LEN, c, 6, code), 0);
        assert_string_equal(code, want[c]);
        uint64_t next = 999;
        assert_int_equal(ab_otp_hotp_verify(rfc_secret, RFC_LEN, c, want[c], 6, 0, &next),
                         AB_OTP_OK);
        assert_int_equal(next, c + 1);
    }
}

static void test_totp_rfc6238_vectors(void **state)
{
    (void)state;
    static const struct {
        int64_t t;
        const char *code;
    } rows[] = {
        {59, "94287082"},         {1111111109, "07081804"}, {1111111111, "14050471"},
        {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        char code[AB_OTP_DIGITS_MAX + 1];
        assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, (time_t)rows[i].t, 8, code), 0);
        assert_string_equal(code, rows[i].code);
        int64_t step = -5;
        assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, (time_t)rows[i].t, rows[i].code, 8,
                                            0, -1, &step),
                         AB_OTP_OK);
        assert_int_equal(step, rows[i].t / 30);
        assert_int_equal(ab_otp_totp_step((time_t)rows[i].t), rows[i].t / 30);
    }
}

static void test_totp_window(void **state)
{
    (void)state;
    const time_t now = 1111111111;
    char prev2[9], prev[9], cur[9], next[9], next2[9];
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, now - 60, 6, prev2), 0);
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, now - 30, 6, prev), 0);
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, now, 6, cur), 0);
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, now + 30, 6, next), 0);
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, now + 60, 6, next2), 0);
    int64_t s = ab_otp_totp_step(now), got;
    /* window 0: only now */
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, cur, 6, 0, -1, &got), AB_OTP_OK);
    assert_int_equal(got, s);
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, prev, 6, 0, -1, &got),
                     AB_OTP_WRONG);
    assert_int_equal(got, -1); /* unchanged on failure */
    /* the default window, ±1 step */
    assert_int_equal(
        ab_otp_totp_verify(rfc_secret, RFC_LEN, now, prev, 6, AB_OTP_TOTP_WINDOW, -1, &got),
        AB_OTP_OK);
    assert_int_equal(got, s - 1);
    assert_int_equal(
        ab_otp_totp_verify(rfc_secret, RFC_LEN, now, next, 6, AB_OTP_TOTP_WINDOW, -1, &got),
        AB_OTP_OK);
    assert_int_equal(got, s + 1);
    assert_int_equal(
        ab_otp_totp_verify(rfc_secret, RFC_LEN, now, prev2, 6, AB_OTP_TOTP_WINDOW, -1, &got),
        AB_OTP_WRONG);
    assert_int_equal(
        ab_otp_totp_verify(rfc_secret, RFC_LEN, now, next2, 6, AB_OTP_TOTP_WINDOW, -1, &got),
        AB_OTP_WRONG);
    /* a wider window */
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, prev2, 6, 2, -1, &got),
                     AB_OTP_OK);
    assert_int_equal(got, s - 2);
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, next2, 6, 2, -1, &got),
                     AB_OTP_OK);
    assert_int_equal(got, s + 2);
    /* another secret's code */
    uint8_t other[AB_OTP_SECRET_LEN];
    memset(other, 0x5a, sizeof other);
    char theirs[9];
    assert_int_equal(ab_otp_totp_code(other, sizeof other, now, 6, theirs), 0);
    if (strcmp(theirs, cur) != 0)
        assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, theirs, 6, 0, -1, &got),
                         AB_OTP_WRONG);
    /* near the epoch: no negative steps are tried */
    char zero[9];
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, 10, 6, zero), 0);
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, 10, zero, 6, 3, -1, &got), AB_OTP_OK);
    assert_int_equal(got, 0);
}

static void test_totp_replay_is_refused(void **state)
{
    (void)state;
    const time_t now = 1234567890;
    char prev[9], cur[9], next[9];
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, now - 30, 6, prev), 0);
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, now, 6, cur), 0);
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, now + 30, 6, next), 0);
    int64_t last = -1, got;
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, cur, 6, 1, last, &got),
                     AB_OTP_OK);
    last = got;
    /* the same code again, at once and later in its window */
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, cur, 6, 1, last, &got),
                     AB_OTP_REPLAYED);
    assert_int_equal(got, last);
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now + 29, cur, 6, 1, last, &got),
                     AB_OTP_REPLAYED);
    /* an older code after a newer one */
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, prev, 6, 1, last, &got),
                     AB_OTP_REPLAYED);
    /* the next step's code is fresh */
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now + 30, next, 6, 1, last, &got),
                     AB_OTP_OK);
    assert_int_equal(got, last + 1);
    last = got;
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now + 30, next, 6, 1, last, &got),
                     AB_OTP_REPLAYED);
    /* a wrong code stays wrong, whatever last_step says */
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, "000000", 6, 0, last, &got),
                     strcmp(cur, "000000") == 0 ? AB_OTP_REPLAYED : AB_OTP_WRONG);
}

static void test_hotp_counter_advances(void **state)
{
    (void)state;
    char c3[9], c14[9], c15[9];
    assert_int_equal(ab_otp_hotp_code(rfc_secret, RFC_LEN, 3, 6, c3), 0);
    assert_int_equal(ab_otp_hotp_code(rfc_secret, RFC_LEN, 14, 6, c14), 0);
    assert_int_equal(ab_otp_hotp_code(rfc_secret, RFC_LEN, 15, 6, c15), 0);
    uint64_t counter = 0, next;
    /* a code a few presses ahead is found within the look-ahead window */
    assert_int_equal(
        ab_otp_hotp_verify(rfc_secret, RFC_LEN, counter, c3, 6, AB_OTP_HOTP_WINDOW, &next),
        AB_OTP_OK);
    assert_int_equal(next, 4);
    counter = next;
    /* used up, as is every code before it */
    assert_int_equal(
        ab_otp_hotp_verify(rfc_secret, RFC_LEN, counter, c3, 6, AB_OTP_HOTP_WINDOW, &next),
        AB_OTP_WRONG);
    assert_int_equal(next, counter);
    assert_int_equal(
        ab_otp_hotp_verify(rfc_secret, RFC_LEN, counter, "755224", 6, AB_OTP_HOTP_WINDOW, &next),
        AB_OTP_WRONG);
    /* counter 4 + 10 is the farthest looked at */
    assert_int_equal(
        ab_otp_hotp_verify(rfc_secret, RFC_LEN, counter, c15, 6, AB_OTP_HOTP_WINDOW, &next),
        AB_OTP_WRONG);
    assert_int_equal(
        ab_otp_hotp_verify(rfc_secret, RFC_LEN, counter, c14, 6, AB_OTP_HOTP_WINDOW, &next),
        AB_OTP_OK);
    assert_int_equal(next, 15);
    /* the largest counters do not wrap */
    assert_int_equal(ab_otp_hotp_verify(rfc_secret, RFC_LEN, UINT64_MAX - 2, "123456", 6,
                                        AB_OTP_HOTP_WINDOW, &next),
                     AB_OTP_MALFORMED);
}

static void test_bad_codes_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",       "12345",  "1234567", "12345a",       "abcdef",  " 123456", "123456 ",
        "12 456", "-12345", "+12345",  "１２３４５６", "12345\n", "0x1234"};
    const time_t now = 59;
    int64_t step;
    uint64_t next;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, bad[i], 6, 1, -1, &step),
                         AB_OTP_MALFORMED);
        assert_int_equal(ab_otp_hotp_verify(rfc_secret, RFC_LEN, 0, bad[i], 6, 10, &next),
                         AB_OTP_MALFORMED);
    }
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, NULL, 6, 1, -1, &step),
                     AB_OTP_MALFORMED);
    assert_int_equal(ab_otp_hotp_verify(rfc_secret, RFC_LEN, 0, NULL, 6, 1, &next),
                     AB_OTP_MALFORMED);
    /* an 8-digit code where 6 are expected, and digit counts liboath cannot make */
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, "94287082", 6, 1, -1, &step),
                     AB_OTP_MALFORMED);
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, "28708", 5, 1, -1, &step),
                     AB_OTP_MALFORMED);
    assert_int_equal(ab_otp_hotp_verify(rfc_secret, RFC_LEN, 0, "123456789", 9, 1, &next),
                     AB_OTP_MALFORMED);
    /* no secret */
    assert_int_equal(ab_otp_totp_verify(NULL, 0, now, "287082", 6, 1, -1, &step), AB_OTP_MALFORMED);
    assert_int_equal(ab_otp_hotp_verify(rfc_secret, 0, 0, "755224", 6, 1, &next), AB_OTP_MALFORMED);
    char code[9];
    assert_int_equal(ab_otp_hotp_code(rfc_secret, RFC_LEN, 0, 5, code), -1);
    assert_int_equal(ab_otp_hotp_code(NULL, 0, 0, 6, code), -1);
    assert_int_equal(ab_otp_totp_code(rfc_secret, RFC_LEN, -31, 6, code), -1);
    /* a huge code string */
    char huge[10001];
    memset(huge, '1', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_int_equal(ab_otp_totp_verify(rfc_secret, RFC_LEN, now, huge, 6, 1, -1, &step),
                     AB_OTP_MALFORMED);
}

static void test_enrolment_secret_base32_and_uri(void **state)
{
    (void)state;
    uint8_t a[AB_OTP_SECRET_LEN], b[AB_OTP_SECRET_LEN];
    assert_int_equal(ab_otp_secret_new(a), 0);
    assert_int_equal(ab_otp_secret_new(b), 0);
    assert_memory_not_equal(a, b, sizeof a);
    char *b32 = ab_otp_base32(a, sizeof a);
    assert_non_null(b32);
    assert_int_equal(strlen(b32), 32); /* 160 bits, no padding */
    assert_int_equal(strspn(b32, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), 32);
    uint8_t *back = NULL;
    size_t blen = 0;
    assert_int_equal(ab_otp_base32_decode(b32, &back, &blen), 0);
    assert_int_equal(blen, sizeof a);
    assert_memory_equal(back, a, sizeof a);
    ab_otp_free(back, blen);
    ab_otp_free(b32, strlen(b32));

    b32 = ab_otp_base32(rfc_secret, RFC_LEN);
    assert_string_equal(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_int_equal(ab_otp_base32_decode("gezdgnbvgy3tqojqgezdgnbvgy3tqojq", &back, &blen), 0);
    assert_int_equal(blen, RFC_LEN);
    assert_memory_equal(back, rfc_secret, RFC_LEN);
    ab_otp_free(back, blen);
    assert_int_equal(ab_otp_base32_decode("not base32!", &back, &blen), -1);
    assert_null(back);
    assert_int_equal(ab_otp_base32_decode("", &back, &blen), -1);
    assert_int_equal(ab_otp_base32_decode(NULL, &back, &blen), -1);
    assert_null(ab_otp_base32(NULL, 0));

    char *uri = ab_otp_uri(AB_OTP_TOTP, "ACME Corp", "ana maria@circl.lu", b32, 0);
    assert_string_equal(uri, "otpauth://totp/ACME%20Corp:ana%20maria%40circl.lu"
                             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ACME%20Corp"
                             "&digits=6&period=30");
    free(uri);
    uri = ab_otp_uri(AB_OTP_HOTP, "MISP", "a+b:c/d?e&f=g#h%i~j_k.l-m", b32, 7);
    assert_string_equal(uri, "otpauth://hotp/MISP:a%2Bb%3Ac%2Fd%3Fe%26f%3Dg%23h%25i~j_k.l-m"
                             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=MISP"
                             "&digits=6&counter=7");
    free(uri);
    uri = ab_otp_uri(AB_OTP_TOTP, "Ünïcödé", "ana@circl.lu", b32, 0); /* UTF-8 bytes encoded */
    assert_string_equal(uri, "otpauth://totp/%C3%9Cn%C3%AFc%C3%B6d%C3%A9:ana%40circl.lu"
                             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                             "&issuer=%C3%9Cn%C3%AFc%C3%B6d%C3%A9&digits=6&period=30");
    free(uri);
    uri = ab_otp_uri(AB_OTP_TOTP, NULL, "ana@circl.lu", b32, 0); /* no issuer */
    assert_string_equal(uri, "otpauth://totp/ana%40circl.lu"
                             "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=6&period=30");
    free(uri);
    assert_null(ab_otp_uri(AB_OTP_TOTP, "MISP", NULL, b32, 0));
    assert_null(ab_otp_uri(AB_OTP_TOTP, "MISP", "", b32, 0));
    assert_null(ab_otp_uri(AB_OTP_TOTP, "MISP", "ana", NULL, 0));
    assert_null(ab_otp_uri((ab_otp_kind)7, "MISP", "ana", b32, 0));
    ab_otp_free(b32, strlen(b32));
}

static void test_seed_sealing(void **state)
{
    (void)state;
    ab_secret k1, k2;
    memset(&k1, 1, sizeof k1);
    memset(&k2, 2, sizeof k2);
    uint8_t seed[AB_OTP_SECRET_LEN];
    assert_int_equal(ab_otp_secret_new(seed), 0);
    char *a = ab_otp_seal(&k1, 42, seed, sizeof seed);
    char *b = ab_otp_seal(&k1, 42, seed, sizeof seed);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b); /* a fresh nonce each time */
    assert_int_equal(strncmp(a, AB_SEAL_PREFIX, strlen(AB_SEAL_PREFIX)), 0);
    char *b32 = ab_otp_base32(seed, sizeof seed);
    assert_null(strstr(a, b32)); /* neither form of the seed shows */
    ab_otp_free(b32, strlen(b32));

    uint8_t *clear = NULL;
    size_t len = 0;
    assert_int_equal(ab_otp_unseal(&k1, 42, a, &clear, &len), 0);
    assert_int_equal(len, sizeof seed);
    assert_memory_equal(clear, seed, sizeof seed);
    ab_otp_free(clear, len);

    assert_int_equal(ab_otp_unseal(&k2, 42, a, &clear, &len), -1); /* another server secret */
    assert_null(clear);
    assert_int_equal(ab_otp_unseal(&k1, 43, a, &clear, &len), -1); /* moved to another user */
    assert_null(ab_unseal(&k1, AB_SEAL_PURPOSE_SETTINGS, "user:42", 7, a, NULL)); /* purpose */
    assert_null(ab_settings_open(&k1, "user:42", a));
    /* every character of the sealed text changed in turn */
    char *t = strdup(a);
    for (size_t i = strlen(AB_SEAL_PREFIX); i < strlen(a); i++) {
        strcpy(t, a);
        if (t[i] == '=')
            continue;
        t[i] = t[i] == 'A' ? 'B' : 'A';
        if (ab_otp_unseal(&k1, 42, t, &clear, &len) == 0) {
            /* only the unused low bits of the last base64 character may change nothing */
            assert_memory_equal(clear, seed, sizeof seed);
            ab_otp_free(clear, len);
            assert_true(i + 3 >= strlen(a));
        }
    }
    strcpy(t, a);
    t[strlen(t) - 8] = '\0'; /* truncated */
    assert_int_equal(ab_otp_unseal(&k1, 42, t, &clear, &len), -1);
    free(t);
    assert_int_equal(ab_otp_unseal(&k1, 42, "enc:v1:", &clear, &len), -1);
    assert_int_equal(ab_otp_unseal(&k1, 42, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", &clear, &len), -1);
    assert_int_equal(ab_otp_unseal(&k1, 42, NULL, &clear, &len), -1);
    assert_null(ab_otp_seal(&k1, 42, NULL, 0));
    free(a);
    free(b);
}

static void test_settings_sealed_before_the_refactor_still_open(void **state)
{
    (void)state;
    /* made by settings_cache.c before seal.c existed (key: 32 bytes of 7) */
    ab_secret k;
    memset(&k, 7, sizeof k);
    char *clear = ab_settings_open(
        &k, "GnuPG.password",
        "enc:v1:YqiteoG/WQ9kI+35yGESWw/cHfpLDTu5R6DJ6SZBzxfbwADwWKxCgBqn1hAxjh0IGIHe8HQJ");
    assert_non_null(clear);
    assert_string_equal(clear, "sealed before the refactor");
    free(clear);
    clear =
        ab_settings_open(&k, "Proxy.password", "enc:v1:ZELGVYlVNLt2R7wZVrykUooNlTUbML+Z/MxAoQ==");
    assert_non_null(clear);
    assert_string_equal(clear, "");
    free(clear);
    /* and ab_seal with the settings purpose is what ab_settings_seal writes */
    char *s = ab_seal(&k, AB_SEAL_PURPOSE_SETTINGS, "MISP.x", 6, "v", 1);
    clear = ab_settings_open(&k, "MISP.x", s);
    assert_string_equal(clear, "v");
    free(clear);
    free(s);
    /* empty associated data and a long clear text */
    static char big[100000];
    memset(big, 'z', sizeof big);
    s = ab_seal(&k, AB_SEAL_PURPOSE_OTP, NULL, 0, big, sizeof big);
    size_t n = 0;
    uint8_t *back = ab_unseal(&k, AB_SEAL_PURPOSE_OTP, NULL, 0, s, &n);
    assert_int_equal(n, sizeof big);
    assert_memory_equal(back, big, sizeof big);
    ab_seal_free(back, n);
    free(s);
    assert_null(ab_seal(NULL, AB_SEAL_PURPOSE_OTP, NULL, 0, "x", 1));
    assert_null(ab_seal(&k, NULL, NULL, 0, "x", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hotp_rfc4226_vectors),
        cmocka_unit_test(test_totp_rfc6238_vectors),
        cmocka_unit_test(test_totp_window),
        cmocka_unit_test(test_totp_replay_is_refused),
        cmocka_unit_test(test_hotp_counter_advances),
        cmocka_unit_test(test_bad_codes_are_refused),
        cmocka_unit_test(test_enrolment_secret_base32_and_uri),
        cmocka_unit_test(test_seed_sealing),
        cmocka_unit_test(test_settings_sealed_before_the_refactor_still_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
