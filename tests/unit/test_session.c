/* test_session.c — engine/auth/session.h without a database: session tokens (shape, no repeats)
 * and what a restricted session may run (ab_session_may_run). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/session.h"

static void test_tokens_are_64_hex_and_differ(void **state)
{
    (void)state;
    char a[AB_SESSION_TOKEN_LEN + 1], b[AB_SESSION_TOKEN_LEN + 1];
    assert_int_equal(ab_session_token_new(a), 0);
    assert_int_equal(ab_session_token_new(b), 0);
    assert_int_equal(strlen(a), AB_SESSION_TOKEN_LEN);
    assert_int_equal(strspn(a, "0123456789abcdef"), AB_SESSION_TOKEN_LEN);
    assert_string_not_equal(a, b);
}

/* args {"user": user} as a msgpack object (unpacked into *u from sb, which the caller
 * releases: the object's strings point into sb's bytes). */
static const msgpack_object *s_args(msgpack_unpacked *u, msgpack_sbuffer *sb, const char *user)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "user", 4);
    msgpack_pack_str_with_body(&pk, user, strlen(user));
    msgpack_unpacked_init(u);
    assert_int_equal(msgpack_unpack_next(u, sb->data, sb->size, NULL), MSGPACK_UNPACK_SUCCESS);
    return &u->data;
}

static ab_identity s_who(bool change_pw, bool enrol)
{
    ab_identity w;
    memset(&w, 0, sizeof w);
    w.user_id = 42;
    snprintf(w.email, sizeof w.email, "Ana@Circl.lu");
    w.via = AB_VIA_SESSION;
    w.must_change_pw = change_pw;
    w.must_enrol_otp = enrol;
    return w;
}

static int s_may(const char *type, const char *user, const ab_identity *who, ab_error *err)
{
    const ab_command *cmd = ab_catalog_find(type, strlen(type));
    assert_non_null(cmd);
    msgpack_unpacked u;
    msgpack_sbuffer sb = {0};
    const msgpack_object *args = user ? s_args(&u, &sb, user) : NULL;
    int rc = ab_session_may_run(cmd, args, who, err);
    if (user) {
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
    }
    return rc;
}

static void test_unrestricted_sessions_and_keys_pass(void **state)
{
    (void)state;
    ab_error err;
    ab_identity free_session = s_who(false, false);
    assert_int_equal(s_may("org.list", NULL, &free_session, &err), 0);
    ab_identity key = s_who(true, true);
    key.via = AB_VIA_KEY; /* the restriction is about sessions: a key was made by an admin */
    assert_int_equal(s_may("org.list", NULL, &key, &err), 0);
}

static void test_must_change_password(void **state)
{
    (void)state;
    ab_error err;
    ab_identity w = s_who(true, false);
    assert_int_equal(s_may("auth.whoami", NULL, &w, &err), 0);
    assert_int_equal(s_may("auth.logout", NULL, &w, &err), 0);
    assert_int_equal(s_may("user.change_pw", "42", &w, &err), 0);
    assert_int_equal(s_may("user.change_pw", "ana@circl.lu", &w, &err), 0); /* any case */
    assert_int_equal(s_may("user.change_pw", "43", &w, &err), -1);
    assert_int_equal(err.code, AB_E_FORBIDDEN);
    assert_string_equal(err.field, "session");
    assert_non_null(strstr(err.message, "change their password"));
    assert_int_equal(s_may("user.change_pw", "bob@circl.lu", &w, &err), -1);
    assert_int_equal(s_may("org.list", NULL, &w, &err), -1);
    assert_int_equal(s_may("otp.enrol", "42", &w, &err), -1);
}

static void test_must_enrol_otp(void **state)
{
    (void)state;
    ab_error err;
    ab_identity w = s_who(false, true);
    assert_int_equal(s_may("otp.enrol", "42", &w, &err), 0);
    assert_int_equal(s_may("otp.enrol", "43", &w, &err), -1);
    assert_int_equal(s_may("user.change_pw", "42", &w, &err), -1);
    assert_non_null(strstr(err.message, "Security.otp_required"));
    assert_int_equal(s_may("auth.logout", NULL, &w, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_are_64_hex_and_differ),
        cmocka_unit_test(test_unrestricted_sessions_and_keys_pass),
        cmocka_unit_test(test_must_change_password),
        cmocka_unit_test(test_must_enrol_otp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
