/* test_mime.c — engine/mail/mime.c: header injection cannot happen (acceptance 5 of issue 6),
 * encoded words and quoted-printable decode back to the input, lines keep their limits,
 * every line ends in CRLF, the Message-ID is deterministic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mail/mail_keyfetch.h"
#include "mail/mime.h"

/* --- small decoders, written independently of mime.c ----------------------------------- */

static int s_b64val(char c)
{
    const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(a, c);
    return c && p ? (int)(p - a) : -1;
}

static size_t s_b64dec(const char *in, size_t len, char *out)
{
    size_t n = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < len && in[i] != '='; i++) {
        int d = s_b64val(in[i]);
        assert_true(d >= 0);
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)((v >> bits) & 0xFF);
        }
    }
    return n;
}

/* The value of one header (unfolded, encoded words decoded) from a block of header lines;
 * also checks that every line ends in CRLF and counts the headers (lines not folded). */
static char *s_header_value(const char *block, int *headers)
{
    static char out[4096];
    size_t n = 0;
    *headers = 0;
    const char *p = block;
    while (*p) {
        const char *eol = strstr(p, "\r\n");
        assert_non_null(eol);
        for (const char *q = p; q < eol; q++)
            assert_true(*q != '\r' && *q != '\n'); /* no bare CR or LF anywhere */
        if (*p != ' ' && *p != '\t') {
            (*headers)++;
            p = strchr(p, ':') + 2;
        } else {
            p++;
        }
        while (p < eol) {
            if (strncmp(p, "=?UTF-8?B?", 10) == 0) {
                const char *end = strstr(p + 10, "?=");
                assert_true(end && end < eol);
                n += s_b64dec(p + 10, (size_t)(end - p - 10), out + n);
                p = end + 2;
                while (p < eol && *p == ' ')
                    p++; /* white space between encoded words is not part of the text */
            } else {
                out[n++] = *p++;
            }
        }
        p = eol + 2;
    }
    out[n] = '\0';
    return out;
}

static size_t s_longest_line(const char *s)
{
    size_t longest = 0;
    while (*s) {
        const char *eol = strstr(s, "\r\n");
        assert_non_null(eol);
        if ((size_t)(eol - s) > longest)
            longest = (size_t)(eol - s);
        s = eol + 2;
    }
    return longest;
}

static char *s_qp_decode(const char *in)
{
    static char out[8192];
    size_t n = 0;
    for (const char *p = in; *p;) {
        if (p[0] == '=' && p[1] == '\r' && p[2] == '\n') {
            p += 3;
        } else if (p[0] == '=') {
            char hex[3] = {p[1], p[2], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            p += 3;
        } else if (p[0] == '\r' && p[1] == '\n') {
            out[n++] = '\n';
            p += 2;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return out;
}

/* --- header injection ------------------------------------------------------------------- */

/* The Web Key Directory hash (key fetching): the example of the WKD draft
 * (draft-koch-openpgp-webkey-service, "Joe.Doe" of Joe.Doe@Example.ORG), case folded. */
static void test_wkd_hash(void **state)
{
    (void)state;
    char h[33];
    assert_int_equal(ab_wkd_hash("Joe.Doe", 7, h), 0);
    assert_string_equal(h, "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
    assert_int_equal(ab_wkd_hash("joe.doe", 7, h), 0);
    assert_string_equal(h, "iy9q119eutrkn8s1mk4r39qejnbu3n5q");
}

static void test_subject_crlf_cannot_add_a_header(void **state)
{
    (void)state;
    const char *evil[] = {"Hello\r\nBcc: evil@example.org", "Hello\nBcc: evil@example.org",
                          "Hello\rBcc: evil@example.org", "\r\n\r\nbody injected",
                          "x\r\n Bcc: folded@example.org"};
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        ab_mime_buf b = {0};
        ab_mime_header_text(&b, "Subject", evil[i], strlen(evil[i]));
        assert_false(b.oom);
        assert_null(strstr(b.data, "Bcc"));
        assert_null(strstr(b.data, "\r\n\r\n"));
        int headers = 0;
        assert_string_equal(s_header_value(b.data, &headers), evil[i]);
        assert_int_equal(headers, 1);
        ab_mime_buf_free(&b);
    }
    assert_false(ab_mime_header_text_ok("a\r\nb", 4));
    assert_false(ab_mime_header_text_ok("a\nb", 3));
    assert_false(ab_mime_header_text_ok("a\xff", 2));
    assert_true(ab_mime_header_text_ok("Caf\xc3\xa9\tok", 7));
}

static void test_display_name_crlf_is_encoded(void **state)
{
    (void)state;
    ab_mime_buf b = {0};
    ab_error err;
    assert_int_equal(ab_mime_header_address(&b, "From", "Ops\r\nBcc: evil@example.org",
                                            "misp@example.org", "from", &err),
                     0);
    assert_null(strstr(b.data, "Bcc"));
    assert_non_null(strstr(b.data, "<misp@example.org>\r\n"));
    int headers = 0;
    s_header_value(b.data, &headers);
    assert_int_equal(headers, 1);
    ab_mime_buf_free(&b);

    assert_int_equal(
        ab_mime_header_address(&b, "From", "A \"quoted\" \\ name", "a@example.org", "from", &err),
        0);
    assert_string_equal(b.data, "From: \"A \\\"quoted\\\" \\\\ name\" <a@example.org>\r\n");
    ab_mime_buf_free(&b);

    assert_int_equal(ab_mime_header_address(&b, "To", NULL, "ana@circl.lu", "to", &err), 0);
    assert_string_equal(b.data, "To: <ana@circl.lu>\r\n");
    ab_mime_buf_free(&b);
}

static void test_addresses(void **state)
{
    (void)state;
    assert_true(ab_mime_address_ok("ana@circl.lu"));
    assert_true(ab_mime_address_ok("first.last+tag@sub.example.org"));
    const char *bad[] = {"",
                         "ana",
                         "@circl.lu",
                         "ana@",
                         "ana@@circl.lu",
                         "a b@circl.lu",
                         "ana@circl.lu\r\nBcc: x@y.z",
                         "ana@circl.lu>",
                         "<ana@circl.lu",
                         "\"ana\"@circl.lu",
                         "ana@circl.lu,bob@circl.lu",
                         "ana@-circl.lu",
                         "ana@circl.lu."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ab_mime_address_ok(bad[i]));
    ab_mime_buf b = {0};
    ab_error err;
    assert_int_equal(ab_mime_header_address(&b, "To", "x", "a@b\r\nBcc: c@d", "to", &err), -1);
    assert_int_equal(err.code, AB_E_INVALID);
    assert_string_equal(err.field, "to");
    assert_true(b.len == 0);
    ab_mime_buf_free(&b);
}

static void test_subject_plain_and_utf8(void **state)
{
    (void)state;
    ab_mime_buf b = {0};
    ab_mime_header_text(&b, "Subject", "Maintenance window", 18);
    assert_string_equal(b.data, "Subject: Maintenance window\r\n");
    ab_mime_buf_free(&b);

    /* Long UTF-8: folded into encoded words, no line over 78, no character cut in two. */
    char subject[600] = "";
    for (int i = 0; i < 20; i++) /* 25 bytes each */
        strcat(subject, "Wartungsfenster f\xc3\xbcr \xe2\x82\xac ");
    ab_mime_header_text(&b, "Subject", subject, strlen(subject));
    assert_true(s_longest_line(b.data) <= 78);
    int headers = 0;
    assert_string_equal(s_header_value(b.data, &headers), subject);
    assert_int_equal(headers, 1);
    ab_mime_buf_free(&b);

    /* Something that looks like an encoded word is encoded, so it reads back as typed. */
    ab_mime_header_text(&b, "Subject", "=?UTF-8?B?QQ==?=", 16);
    assert_non_null(strstr(b.data, "=?UTF-8?B?PT9"));
    ab_mime_buf_free(&b);
}

/* --- dates and ids ------------------------------------------------------------------------ */

static void test_date(void **state)
{
    (void)state;
    char d[64];
    ab_mime_date(1795354509000LL, d, sizeof d); /* 2026-11-22 13:35:09 UTC, a Sunday */
    assert_string_equal(d, "Sun, 22 Nov 2026 13:35:09 +0000");
    ab_mime_date(0, d, sizeof d);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
}

static void test_message_id_is_deterministic(void **state)
{
    (void)state;
    char a[128], b[128], c[128], d[128], e[128];
    ab_mime_message_id(57, "ana@circl.lu", "misp.example.org", a, sizeof a);
    ab_mime_message_id(57, "ANA@circl.lu", "misp.example.org", b, sizeof b);
    ab_mime_message_id(57, "bob@circl.lu", "misp.example.org", c, sizeof c);
    ab_mime_message_id(58, "ana@circl.lu", "misp.example.org", d, sizeof d);
    ab_mime_message_id(57, "ana@circl.lu", "bad domain\r\nX: y", e, sizeof e);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    assert_int_equal(strncmp(a, "<adminbus.57.", 13), 0);
    assert_non_null(strstr(a, "@misp.example.org>"));
    assert_int_equal(strlen(a), strlen("<adminbus.57.") + 32 + strlen("@misp.example.org>"));
    assert_non_null(strstr(e, "@localhost>"));
}

/* --- bodies ------------------------------------------------------------------------------- */

static void test_quoted_printable(void **state)
{
    (void)state;
    ab_mime_buf b = {0};
    const char *text = "a=b caf\xc3\xa9 \nFrom here\n.\ntrailing space \nlast";
    ab_mime_qp(&b, text, strlen(text));
    assert_non_null(strstr(b.data, "a=3Db caf=C3=A9=20\r\n")); /* white space ending a line */
    assert_non_null(strstr(b.data, "\r\n=46rom here\r\n"));
    assert_non_null(strstr(b.data, "\r\n=2E\r\n"));
    assert_non_null(strstr(b.data, "trailing space=20\r\n"));
    char expect[256];
    snprintf(expect, sizeof expect, "%s\n", text);
    assert_string_equal(s_qp_decode(b.data), expect);
    ab_mime_buf_free(&b);

    /* Long lines: soft breaks keep every line within 76, and decode back exactly. */
    char long_text[3000] = "";
    for (int i = 0; i < 60; i++)
        strcat(long_text, "0123456789=\xc3\xa4 ");
    strcat(long_text, "\r\nsecond line\r\n");
    ab_mime_qp(&b, long_text, strlen(long_text));
    assert_true(s_longest_line(b.data) <= 76);
    char *dec = s_qp_decode(b.data);
    assert_int_equal(strncmp(dec, long_text, 12), 0);
    assert_non_null(strstr(dec, "\nsecond line\n"));
    ab_mime_buf_free(&b);
}

static void test_base64(void **state)
{
    (void)state;
    ab_mime_buf b = {0};
    ab_mime_base64(&b, "foobar", 6);
    assert_string_equal(b.data, "Zm9vYmFy\r\n");
    ab_mime_buf_free(&b);
    ab_mime_base64(&b, "fooba", 5);
    assert_string_equal(b.data, "Zm9vYmE=\r\n");
    ab_mime_buf_free(&b);
    char big[200];
    memset(big, 'x', sizeof big);
    ab_mime_base64(&b, big, sizeof big);
    assert_int_equal(s_longest_line(b.data), 76);
    ab_mime_buf_free(&b);
}

static void test_text_part_and_wrappers_are_canonical(void **state)
{
    (void)state;
    ab_mime_buf part = {0}, msg = {0};
    ab_mime_text_part(&part, "line one\nline two\n", 18);
    assert_string_equal(part.data, "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                                   "line one\r\nline two\r\n");
    char boundary[40];
    assert_int_equal(ab_mime_boundary(boundary), 0);
    assert_int_equal(strlen(boundary), 35);
    assert_int_equal(strncmp(boundary, "=_adminbus_", 11), 0);
    const char *sig = "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n";
    ab_mime_signed(&msg, boundary, "pgp-sha256", part.data, part.len, sig, strlen(sig));
    assert_non_null(strstr(msg.data, "micalg=pgp-sha256"));
    /* The signed part appears byte for byte between its delimiters. */
    char *start = strstr(msg.data, "--=_adminbus_");
    assert_non_null(start);
    start = strstr(start, "\r\n") + 2;
    assert_memory_equal(start, part.data, part.len);
    assert_int_equal(strncmp(start + part.len, "\r\n--", 4), 0);
    s_longest_line(msg.data); /* asserts CRLF line ends throughout */
    assert_null(strstr(msg.data, "\n\n"));
    ab_mime_buf_free(&msg);

    ab_mime_encrypted(&msg, boundary, "-----BEGIN PGP MESSAGE-----\n\nxyz\n", 33);
    assert_non_null(strstr(msg.data, "protocol=\"application/pgp-encrypted\""));
    assert_non_null(strstr(msg.data, "Version: 1\r\n"));
    s_longest_line(msg.data);
    ab_mime_buf_free(&msg);
    ab_mime_buf_free(&part);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wkd_hash),
        cmocka_unit_test(test_subject_crlf_cannot_add_a_header),
        cmocka_unit_test(test_display_name_crlf_is_encoded),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_subject_plain_and_utf8),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_message_id_is_deterministic),
        cmocka_unit_test(test_quoted_printable),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_text_part_and_wrappers_are_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
