/* test_settings.c — the server-settings catalog (schemas/settings.h), table-driven: every
 * row is consistent and its default passes its own validation; for each type, valid and
 * invalid values get the expected canonical text or a precise error (code invalid, field
 * value, a message saying why); problems are reported as MISP's error column does; secret
 * values are sealed and never echoed (engine/core/settings_cache.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog.h"
#include "wire/envelope.h"
#include "settings.h"
#include "core/settings_cache.h"

/* --- one msgpack value, kept decoded --------------------------------------------------- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
} value;

static msgpack_packer *v_begin(value *v)
{
    msgpack_sbuffer_init(&v->sb);
    msgpack_packer_init(&v->pk, &v->sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&v->u);
    return &v->pk;
}

static const msgpack_object *v_done(value *v)
{
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&v->u, v->sb.data, v->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    return &v->u.data;
}

static void v_free(value *v)
{
    msgpack_unpacked_destroy(&v->u);
    msgpack_sbuffer_destroy(&v->sb);
}

/* What a test value is on the wire. */
typedef enum { W_STR, W_INT, W_BOOL, W_NIL, W_FLOAT, W_ARRAY } wire;

typedef struct {
    const char *setting;
    wire kind;
    const char *str;   /* W_STR */
    int64_t num;       /* W_INT, W_BOOL (0/1) */
    const char *want;  /* canonical text when valid; NULL when it must be refused */
    const char *error; /* a sub-string of the refusal's message */
} s_case;

static void pack_case(msgpack_packer *pk, const s_case *c)
{
    switch (c->kind) {
    case W_STR:
        ab_pack_str(pk, c->str, strlen(c->str));
        break;
    case W_INT:
        msgpack_pack_int64(pk, c->num);
        break;
    case W_BOOL:
        if (c->num)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case W_NIL:
        msgpack_pack_nil(pk);
        break;
    case W_FLOAT:
        msgpack_pack_double(pk, 1.5);
        break;
    case W_ARRAY:
        msgpack_pack_array(pk, 0);
        break;
    }
}

static const ab_setting *row(const char *name)
{
    const ab_setting *s = ab_setting_find(name, strlen(name));
    assert_non_null(s);
    return s;
}

/* Cast then validate, as setting.set does without --force. */
static void run_case(const s_case *c)
{
    value v;
    pack_case(v_begin(&v), c);
    const ab_setting *s = row(c->setting);
    ab_error err;
    ab_error_clear(&err);
    char *text = ab_setting_cast(s, v_done(&v), &err);
    int rc = text ? ab_setting_validate(s, text, &err) : -1;
    if (c->want) {
        if (rc != 0)
            fail_msg("%s: %s refused: %s", c->setting, c->str ? c->str : "(non-string)",
                     err.message);
        assert_string_equal(text, c->want);
    } else {
        if (rc == 0)
            fail_msg("%s: %s accepted as '%s'", c->setting, c->str ? c->str : "(non-string)", text);
        assert_int_equal(err.code, AB_E_INVALID);
        assert_string_equal(err.field, "value");
        if (!strstr(err.message, c->error))
            fail_msg("%s: message '%s' lacks '%s'", c->setting, err.message, c->error);
    }
    free(text);
    v_free(&v);
}

/* --- the catalog itself ----------------------------------------------------------------- */

static void test_rows_are_consistent(void **state)
{
    (void)state;
    assert_true(ab_settings_len >= 90);
    for (size_t i = 0; i < ab_settings_len; i++) {
        const ab_setting *s = &ab_settings[i];
        assert_non_null(s->name);
        assert_true(strlen(s->name) > 0 && strlen(s->name) <= 128);
        assert_ptr_equal(ab_setting_find(s->name, strlen(s->name)), s);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ab_settings[j].name, s->name) == 0)
                fail_msg("%s is in the catalog twice", s->name);
        if (!s->description || strlen(s->description) < 10)
            fail_msg("%s has no description", s->name);
        assert_true(s->tab < AB_TAB__COUNT);
        assert_true(s->priority <= AB_PRIO_DEPRECATED);
        assert_string_not_equal(ab_setting_type_name(s->type), "?");
        if (s->type == AB_SET_ENUM) {
            assert_non_null(s->choices);
            assert_non_null(s->choices[0].value);
        }
        if (s->type == AB_SET_NUMERIC || s->type == AB_SET_STRING)
            assert_true(s->min <= s->max && s->max > 0);
        if (s->flags & AB_SETF_SECRET)
            assert_null(s->def); /* a secret default would be a secret in the source */
        if ((s->flags & AB_SETF_DIR) && s->type != AB_SET_PATH)
            fail_msg("%s: only paths can be directories", s->name);
        if ((s->flags & (AB_SETF_PREFER_TRUE | AB_SETF_PREFER_FALSE)) && !s->def)
            fail_msg("%s: a recommended value needs a default", s->name);
    }
}

static void test_every_default_passes_its_own_validation(void **state)
{
    (void)state;
    char buf[300];
    for (size_t i = 0; i < ab_settings_len; i++) {
        const ab_setting *s = &ab_settings[i];
        ab_error err;
        ab_error_clear(&err);
        if (s->def) {
            if (ab_setting_validate(s, s->def, &err) != 0)
                fail_msg("the default of %s fails: %s", s->name, err.message);
            if (ab_setting_problem(s, s->def, buf, sizeof buf))
                fail_msg("the default of %s is a problem: %s", s->name, buf);
            /* and it is already canonical: casting its text gives it back */
            value v;
            ab_pack_cstr(v_begin(&v), s->def);
            char *again = ab_setting_cast(s, v_done(&v), &err);
            assert_non_null(again);
            assert_string_equal(again, s->def);
            free(again);
            v_free(&v);
        } else if (!(s->flags & AB_SETF_NULL_OK) && s->priority != AB_PRIO_DEPRECATED) {
            /* no default and may not be unset: reported until an administrator sets it */
            const char *p = ab_setting_problem(s, NULL, buf, sizeof buf);
            assert_non_null(p);
            assert_string_equal(p, "Value not set");
        } else {
            assert_int_equal(ab_setting_validate(s, NULL, &err), 0);
            assert_null(ab_setting_problem(s, NULL, buf, sizeof buf));
        }
    }
}

static void test_the_issue_names_are_there(void **state)
{
    (void)state;
    static const char *const names[] = {"MISP.baseurl",
                                        "MISP.log_auth",
                                        "MISP.log_client_ip",
                                        "MISP.extended_alert_subject",
                                        "MISP.enableEventBlocklisting",
                                        "MISP.enableOrgBlocklisting",
                                        "MISP.default_event_distribution",
                                        "MISP.default_attribute_distribution",
                                        "Security.otp_required",
                                        "Security.password_policy_length",
                                        "Security.password_policy_complexity",
                                        "Security.salt",
                                        "SecureAuth.amount",
                                        "SecureAuth.expire",
                                        "GnuPG.email",
                                        "GnuPG.homedir",
                                        "GnuPG.password",
                                        "Proxy.host",
                                        "Proxy.port",
                                        "SimpleBackgroundJobs.max_job_history_ttl",
                                        "debug"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        row(names[i]);
    assert_true(row("GnuPG.password")->flags & AB_SETF_SECRET);
    assert_true(row("Security.salt")->flags & AB_SETF_READONLY);
    assert_string_equal(row("SecureAuth.amount")->def, "5");
    assert_string_equal(row("SecureAuth.expire")->def, "300");
    assert_string_equal(row("Security.password_policy_length")->def, "12");
    assert_int_equal(row("Security.password_policy_length")->min, 8);
}

static void test_unknown_names_are_not_found(void **state)
{
    (void)state;
    assert_null(ab_setting_find("MISP.nope", 9));
    assert_null(ab_setting_find("misp.baseurl", 12)); /* names are case-sensitive */
    assert_null(ab_setting_find("MISP.baseur", 11));  /* no prefix matches */
    assert_null(ab_setting_find("MISP.baseurlx", 13));
    assert_null(ab_setting_find("", 0));
    assert_int_equal(ab_setting_tab_from_name("gnupg", 5), AB_TAB_GNUPG);
    assert_int_equal(ab_setting_tab_from_name("GnuPG", 5), -1);
}

/* --- each type: valid and invalid values ----------------------------------------------- */

static const s_case s_cases[] = {
    /* boolean */
    {"MISP.log_client_ip", W_BOOL, NULL, 1, "true", NULL},
    {"MISP.log_client_ip", W_BOOL, NULL, 0, "false", NULL},
    {"MISP.log_client_ip", W_STR, "true", 0, "true", NULL},
    {"MISP.log_client_ip", W_STR, " FALSE ", 0, "false", NULL},
    {"MISP.log_client_ip", W_STR, "1", 0, "true", NULL},
    {"MISP.log_client_ip", W_INT, NULL, 0, "false", NULL},
    {"MISP.log_client_ip", W_STR, "maybe", 0, NULL, "is a boolean: give true or false"},
    {"MISP.log_client_ip", W_INT, NULL, 2, NULL, "is a boolean"},
    {"MISP.log_client_ip", W_FLOAT, NULL, 0, NULL, "is a boolean"},
    {"MISP.log_client_ip", W_ARRAY, NULL, 0, NULL, "is a boolean"},
    /* numeric, with limits */
    {"Security.password_policy_length", W_INT, NULL, 12, "12", NULL},
    {"Security.password_policy_length", W_STR, " 16 ", 0, "16", NULL},
    {"Security.password_policy_length", W_STR, "+8", 0, "8", NULL},
    {"Security.password_policy_length", W_INT, NULL, 4, NULL, "must be at least 8 (got 4)"},
    {"Security.password_policy_length", W_STR, "4", 0, NULL, "must be at least 8 (got 4)"},
    {"Security.password_policy_length", W_INT, NULL, -3, NULL, "must be at least 8 (got -3)"},
    {"Security.password_policy_length", W_INT, NULL, 257, NULL, "must be at most 256 (got 257)"},
    {"Security.password_policy_length", W_STR, "12abc", 0, NULL, "is numeric: give an integer"},
    {"Security.password_policy_length", W_STR, "", 0, NULL, "is numeric"},
    {"Security.password_policy_length", W_BOOL, NULL, 1, NULL, "is numeric"},
    {"Security.password_policy_length", W_FLOAT, NULL, 0, NULL, "is numeric"},
    {"Security.password_policy_length", W_STR, "99999999999999999999", 0, NULL, "is numeric"},
    {"Proxy.port", W_INT, NULL, 3128, "3128", NULL},
    {"Proxy.port", W_INT, NULL, 0, NULL, "must be at least 1 (got 0)"},
    {"Proxy.port", W_INT, NULL, 65536, NULL, "must be at most 65535"},
    /* string */
    {"MISP.uuid", W_STR, "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f", 0,
     "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f", NULL},
    {"MISP.uuid", W_STR, "abc", 0, NULL, "must have exactly 36 characters"},
    {"MISP.uuid", W_STR, "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5g", 0, NULL, "must be a UUID"},
    {"MISP.uuid", W_INT, NULL, 5, NULL, "is a string setting: give a string"},
    {"MISP.org", W_STR, "CIRCL", 0, "CIRCL", NULL},
    {"MISP.org", W_STR, "bad\x01name", 0, NULL, "must not contain control characters"},
    {"MISP.org", W_BOOL, NULL, 1, NULL, "give a string"},
    {"Proxy.host", W_STR, "proxy.example.org", 0, "proxy.example.org", NULL},
    {"Proxy.host", W_STR, "proxy example", 0, NULL, "must be a host name"},
    /* enum */
    {"MISP.default_event_distribution", W_INT, NULL, 3, "3", NULL},
    {"MISP.default_event_distribution", W_STR, "0", 0, "0", NULL},
    {"MISP.default_event_distribution", W_INT, NULL, 4, NULL, "must be one of: 0, 1, 2, 3"},
    {"MISP.default_event_distribution", W_STR, "event", 0, NULL, "must be one of: 0, 1, 2, 3"},
    {"MISP.default_event_distribution", W_BOOL, NULL, 1, NULL, "give a string"},
    {"MISP.default_attribute_distribution", W_STR, "event", 0, "event", NULL},
    {"MISP.default_attribute_distribution", W_STR, "Event", 0, NULL, "must be one of"},
    {"Proxy.method", W_STR, "Digest", 0, "Digest", NULL},
    {"Proxy.method", W_STR, "NTLM", 0, NULL, "must be one of: Basic, Digest"},
    /* regex (PCRE2), bare or delimited as MISP writes it */
    {"Security.password_policy_complexity", W_STR, "/^[a-z]{3,}$/i", 0, "/^[a-z]{3,}$/i", NULL},
    {"Security.password_policy_complexity", W_STR, "^(?=.*\\d).{12,}$", 0, "^(?=.*\\d).{12,}$",
     NULL},
    {"Security.password_policy_complexity", W_STR, "/(unclosed/", 0, NULL,
     "the regular expression does not compile: missing closing parenthesis (at offset 9)"},
    {"Security.password_policy_complexity", W_STR, "a{2,1}", 0, NULL, "does not compile"},
    {"Security.password_policy_complexity", W_STR, "/abc/q", 0, NULL, "unknown modifier 'q'"},
    {"Security.password_policy_complexity", W_STR, "/abc", 0, NULL, "does not end with it"},
    {"Security.password_policy_complexity", W_INT, NULL, 7, NULL, "give a string"},
    /* url */
    {"MISP.baseurl", W_STR, "https://misp.example.org", 0, "https://misp.example.org", NULL},
    {"MISP.baseurl", W_STR, " https://misp.example.org/// ", 0, "https://misp.example.org", NULL},
    {"MISP.baseurl", W_STR, "http://10.1.2.3:8443/misp", 0, "http://10.1.2.3:8443/misp", NULL},
    {"MISP.baseurl", W_STR, "https://[2001:db8::1]", 0, "https://[2001:db8::1]", NULL},
    {"MISP.baseurl", W_STR, "ftp://misp.example.org", 0, NULL, "must start with https://"},
    {"MISP.baseurl", W_STR, "misp.example.org", 0, NULL, "must start with https://"},
    {"MISP.baseurl", W_STR, "https://", 0, NULL, "must name a host"},
    {"MISP.baseurl", W_STR, "https://exa mple.org", 0, NULL, "must name a host"},
    {"MISP.baseurl", W_STR, "https://misp.example.org:99999", 0, NULL, "port that is not 1-65535"},
    {"MISP.baseurl", W_STR, "https://admin:pw@misp.example.org", 0, NULL, "credentials"},
    {"MISP.baseurl", W_STR, "https://misp.example.org/a b", 0, NULL, "spaces"},
    {"MISP.baseurl", W_STR, "", 0, NULL, "must not be empty (critical setting)"},
    {"MISP.baseurl", W_INT, NULL, 80, NULL, "is a url setting: give a string"},
    /* path */
    {"GnuPG.homedir", W_STR, "/tmp", 0, "/tmp", NULL},
    {"GnuPG.homedir", W_STR, "gnupg", 0, NULL, "must be an absolute path"},
    {"GnuPG.homedir", W_STR, "/nonexistent/adminbus/gnupg", 0, NULL,
     "/nonexistent/adminbus/gnupg is not an existing directory"},
    {"GnuPG.binary", W_STR, "/opt/gnupg/bin/gpg", 0, "/opt/gnupg/bin/gpg", NULL},
    /* email */
    {"MISP.email", W_STR, "misp@example.org", 0, "misp@example.org", NULL},
    {"MISP.email", W_STR, "not-an-email", 0, NULL, "must be an e-mail address"},
    {"MISP.email", W_STR, "misp@", 0, NULL, "must be an e-mail address"},
    {"MISP.email", W_STR, "@example.org", 0, NULL, "must be an e-mail address"},
    {"MISP.email", W_STR, "mi sp@example.org", 0, NULL, "must be an e-mail address"},
    {"MISP.email", W_STR, "misp@exa mple.org", 0, NULL, "must be an e-mail address"},
    /* any type: nil is not a value */
    {"MISP.log_auth", W_NIL, NULL, 0, NULL, "needs a value (adminctl setting reset MISP.log_auth"},
    {"MISP.baseurl", W_NIL, NULL, 0, NULL, "needs a value"},
};

static void test_values_of_each_type(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++)
        run_case(&s_cases[i]);
}

static void test_invalid_utf8_and_nul_are_refused(void **state)
{
    (void)state;
    static const char bad[] = {'a', (char)0xC3, 'b'}, nul[] = {'a', '\0', 'b'};
    const char *const texts[] = {bad, nul};
    const char *const says[] = {"is not valid UTF-8", "contains a NUL character"};
    for (int i = 0; i < 2; i++) {
        value v;
        ab_pack_str(v_begin(&v), texts[i], 3);
        ab_error err;
        assert_null(ab_setting_cast(row("MISP.org"), v_done(&v), &err));
        assert_int_equal(err.code, AB_E_INVALID);
        assert_string_equal(err.field, "value");
        assert_non_null(strstr(err.message, says[i]));
        v_free(&v);
    }
}

/* A text of n copies of the UTF-8 character ch (caller frees). */
static char *repeat(const char *ch, size_t n)
{
    size_t w = strlen(ch);
    char *s = malloc(n * w + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * w, ch, w);
    s[n * w] = '\0';
    return s;
}

/* Text settings count characters, not bytes: 65,535 four-byte characters fit (the column
 * is MEDIUMTEXT), one more does not. */
static void test_text_limits_count_characters(void **state)
{
    (void)state;
    for (size_t n = 65535; n <= 65536; n++) {
        char *text = repeat("\xf0\x9f\x98\x80", n);
        value v;
        ab_pack_str(v_begin(&v), text, strlen(text));
        ab_error err;
        char *got = ab_setting_cast(row("MISP.welcome_text_top"), v_done(&v), &err);
        if (n == 65535) {
            assert_non_null(got);
            assert_string_equal(got, text);
        } else {
            assert_null(got);
            assert_string_equal(err.field, "value");
            assert_non_null(strstr(err.message, "65535 characters"));
        }
        free(got);
        v_free(&v);
        free(text);
    }
}

static void test_secret_values_are_never_echoed(void **state)
{
    (void)state;
    char long_secret[1100];
    memset(long_secret, 'S', sizeof long_secret - 1);
    long_secret[sizeof long_secret - 1] = '\0';
    ab_error err;
    assert_int_equal(ab_setting_validate(row("GnuPG.password"), long_secret, &err), -1);
    assert_null(strstr(err.message, "SSSS"));
    assert_non_null(strstr(err.message, "GnuPG.password"));
    char buf[300];
    /* the problem column judges a set secret by its mask, without looking at it */
    assert_null(ab_setting_problem(row("GnuPG.password"), AB_SECRET_MASK, buf, sizeof buf));
}

static void test_problems_as_misp_reports_them(void **state)
{
    (void)state;
    char buf[300];
    assert_string_equal(ab_setting_problem(row("MISP.baseurl"), NULL, buf, sizeof buf),
                        "Value not set");
    assert_string_equal(ab_setting_problem(row("MISP.baseurl"), "", buf, sizeof buf),
                        "Value not set");
    assert_null(ab_setting_problem(row("MISP.baseurl"), "https://a.example", buf, sizeof buf));
    assert_null(ab_setting_problem(row("MISP.org"), NULL, buf, sizeof buf)); /* may be unset */
    const char *p = ab_setting_problem(row("MISP.baseurl"), "ftp://x", buf, sizeof buf);
    assert_non_null(p);
    assert_non_null(strstr(p, "Invalid value: MISP.baseurl must start with https://"));
    p = ab_setting_problem(row("MISP.name"), "old", buf, sizeof buf);
    assert_non_null(p);
    assert_non_null(strstr(p, "Deprecated"));
    assert_null(ab_setting_problem(row("MISP.name"), NULL, buf, sizeof buf));
    p = ab_setting_problem(row("MISP.background_jobs"), "false", buf, sizeof buf);
    assert_string_equal(p, "Should be true");
    p = ab_setting_problem(row("debug"), "1", buf, sizeof buf);
    assert_non_null(p);
    assert_non_null(strstr(p, "Should be 0"));
}

static void test_setting_set_takes_any_scalar(void **state)
{
    (void)state;
    const ab_command *set = ab_catalog_find("setting.set", strlen("setting.set"));
    assert_non_null(set);
    for (int kind = 0; kind < 4; kind++) {
        value v;
        msgpack_packer *pk = v_begin(&v);
        msgpack_pack_map(pk, 2);
        ab_pack_cstr(pk, "name");
        ab_pack_cstr(pk, "MISP.live");
        ab_pack_cstr(pk, "value");
        if (kind == 0)
            ab_pack_cstr(pk, "true");
        else if (kind == 1)
            msgpack_pack_int(pk, 1);
        else if (kind == 2)
            msgpack_pack_true(pk);
        else
            msgpack_pack_map(pk, 0);
        ab_error err;
        ab_error_clear(&err);
        int rc = ab_catalog_validate(set, v_done(&v), &err);
        if (kind < 3) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(err.field, "value");
        }
        v_free(&v);
    }
}

static void test_sealed_secrets_open_only_under_their_key_and_name(void **state)
{
    (void)state;
    ab_secret k1, k2;
    memset(&k1, 1, sizeof k1);
    memset(&k2, 2, sizeof k2);
    char *a = ab_settings_seal(&k1, "GnuPG.password", "hunter2 secret");
    char *b = ab_settings_seal(&k1, "GnuPG.password", "hunter2 secret");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_not_equal(a, b); /* a fresh nonce each time */
    assert_null(strstr(a, "hunter2"));
    assert_int_equal(strncmp(a, "enc:v1:", 7), 0);
    char *clear = ab_settings_open(&k1, "GnuPG.password", a);
    assert_non_null(clear);
    assert_string_equal(clear, "hunter2 secret");
    free(clear);
    assert_null(ab_settings_open(&k2, "GnuPG.password", a)); /* another server secret */
    assert_null(ab_settings_open(&k1, "Proxy.password", a)); /* moved to another setting */
    a[strlen(a) - 3] = a[strlen(a) - 3] == 'A' ? 'B' : 'A';  /* tampered */
    assert_null(ab_settings_open(&k1, "GnuPG.password", a));
    assert_null(ab_settings_open(&k1, "GnuPG.password", "hunter2"));
    char *empty = ab_settings_seal(&k1, "Proxy.password", "");
    clear = ab_settings_open(&k1, "Proxy.password", empty);
    assert_non_null(clear);
    assert_string_equal(clear, "");
    free(clear);
    free(empty);
    free(a);
    free(b);
}

static void test_markdown_lists_every_setting(void **state)
{
    (void)state;
    char *doc = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&doc, &len);
    ab_settings_markdown(f);
    fclose(f);
    for (size_t i = 0; i < ab_settings_len; i++) {
        char needle[160];
        snprintf(needle, sizeof needle, "| `%s` |", ab_settings[i].name);
        if (!strstr(doc, needle))
            fail_msg("docs/settings.md lacks %s", ab_settings[i].name);
    }
    assert_non_null(strstr(doc, "Generated from schemas/settings.c"));
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_are_consistent),
        cmocka_unit_test(test_every_default_passes_its_own_validation),
        cmocka_unit_test(test_the_issue_names_are_there),
        cmocka_unit_test(test_unknown_names_are_not_found),
        cmocka_unit_test(test_values_of_each_type),
        cmocka_unit_test(test_invalid_utf8_and_nul_are_refused),
        cmocka_unit_test(test_text_limits_count_characters),
        cmocka_unit_test(test_secret_values_are_never_echoed),
        cmocka_unit_test(test_problems_as_misp_reports_them),
        cmocka_unit_test(test_setting_set_takes_any_scalar),
        cmocka_unit_test(test_sealed_secrets_open_only_under_their_key_and_name),
        cmocka_unit_test(test_markdown_lists_every_setting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
