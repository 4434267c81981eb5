/* test_catalog.c — the command catalog (schemas/catalog.h): argument validation and the
 * catalog's own consistency (unique names, help everywhere, types the envelope accepts). */
#include <ctype.h>
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

/* An args map built with msgpack, kept decoded for ab_catalog_validate. */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
} args;

static void a_init(args *a, size_t n)
{
    msgpack_sbuffer_init(&a->sb);
    msgpack_packer_init(&a->pk, &a->sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&a->u);
    msgpack_pack_map(&a->pk, n);
}

static const msgpack_object *a_done(args *a)
{
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&a->u, a->sb.data, a->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    return &a->u.data;
}

static void a_free(args *a)
{
    msgpack_unpacked_destroy(&a->u);
    msgpack_sbuffer_destroy(&a->sb);
}

static const ab_command *cmd(const char *type)
{
    const ab_command *c = ab_catalog_find(type, strlen(type));
    assert_non_null(c);
    return c;
}

/* Validate a (consumed) against type; expect rc, and on failure invalid on field. */
static void expect(const char *type, args *a, int rc, const char *field)
{
    ab_error err;
    ab_error_clear(&err);
    int got = ab_catalog_validate(cmd(type), a_done(a), &err);
    assert_int_equal(got, rc);
    if (rc < 0) {
        assert_int_equal(err.code, AB_E_INVALID);
        assert_string_equal(err.field, field);
        assert_true(err.message[0] != '\0');
    }
    a_free(a);
}

/* A string of n copies of the UTF-8 character ch. */
static char *repeat(const char *ch, size_t n)
{
    size_t len = strlen(ch);
    char *s = malloc(n * len + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * len, ch, len);
    s[n * len] = '\0';
    return s;
}

static void pack_name(args *a, const char *value)
{
    ab_pack_cstr(&a->pk, "name");
    ab_pack_cstr(&a->pk, value);
}

static void test_valid(void **state)
{
    (void)state;
    args a;
    a_init(&a, 3);
    pack_name(&a, "CIRCL");
    ab_pack_cstr(&a.pk, "local");
    msgpack_pack_true(&a.pk);
    ab_pack_cstr(&a.pk, "uuid");
    ab_pack_cstr(&a.pk, "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f");
    expect("org.add", &a, 0, NULL);

    ab_error err;
    assert_int_equal(ab_catalog_validate(cmd("auth.whoami"), NULL, &err), 0);
}

static void test_unknown_arg(void **state)
{
    (void)state;
    args a;
    a_init(&a, 2);
    pack_name(&a, "CIRCL");
    ab_pack_cstr(&a.pk, "colour");
    ab_pack_cstr(&a.pk, "blue");
    expect("org.add", &a, -1, "colour");

    a_init(&a, 1);
    ab_pack_cstr(&a.pk, "anything");
    msgpack_pack_nil(&a.pk);
    expect("auth.whoami", &a, -1, "anything");
}

static void test_wrong_type(void **state)
{
    (void)state;
    args a;
    a_init(&a, 1);
    ab_pack_cstr(&a.pk, "name");
    msgpack_pack_int(&a.pk, 42);
    expect("org.add", &a, -1, "name");

    a_init(&a, 2);
    pack_name(&a, "CIRCL");
    ab_pack_cstr(&a.pk, "local");
    ab_pack_cstr(&a.pk, "yes");
    expect("org.add", &a, -1, "local");

    a_init(&a, 1);
    ab_pack_cstr(&a.pk, "limit");
    ab_pack_cstr(&a.pk, "10");
    expect("org.list", &a, -1, "limit");

    a_init(&a, 2);
    pack_name(&a, "CIRCL");
    ab_pack_cstr(&a.pk, "uuid");
    ab_pack_cstr(&a.pk, "not-a-uuid");
    expect("org.add", &a, -1, "uuid");
}

static void test_name_length(void **state)
{
    (void)state;
    char *s255 = repeat("n", 255), *s256 = repeat("n", 256);
    args a;
    a_init(&a, 1);
    pack_name(&a, s255);
    expect("org.add", &a, 0, NULL);
    a_init(&a, 1);
    pack_name(&a, s256);
    expect("org.add", &a, -1, "name");
    a_init(&a, 1);
    pack_name(&a, "");
    expect("org.add", &a, -1, "name"); /* at least one character */
    free(s255);
    free(s256);
}

/* Limits count characters, not bytes: 255 two-byte or four-byte characters fit. */
static void test_name_length_utf8(void **state)
{
    (void)state;
    const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < 3; i++) {
        char *ok = repeat(chars[i], 255), *over = repeat(chars[i], 256);
        args a;
        a_init(&a, 1);
        pack_name(&a, ok);
        expect("org.add", &a, 0, NULL);
        a_init(&a, 1);
        pack_name(&a, over);
        expect("org.add", &a, -1, "name");
        free(ok);
        free(over);
    }
    args a;
    a_init(&a, 1);
    pack_name(&a, "caf\xc3");
    expect("org.add", &a, -1, "name"); /* not UTF-8 */
}

/* A name of white space alone is refused where the catalog says not blank (MISP's
 * valueNotEmpty); white space around other characters is kept, and optional text without
 * the flag (description) may be blank. */
static void test_not_blank(void **state)
{
    (void)state;
    const char *blank[] = {" ", "   ", "\t\r\n", "\xc2\xa0", "\xe3\x80\x80 \xe2\x80\x8a"};
    for (size_t i = 0; i < sizeof blank / sizeof blank[0]; i++) {
        args a;
        a_init(&a, 1);
        pack_name(&a, blank[i]);
        ab_error err;
        assert_int_equal(ab_catalog_validate(cmd("org.add"), a_done(&a), &err), -1);
        assert_string_equal(err.field, "name");
        assert_non_null(strstr(err.message, "must not be blank"));
        a_free(&a);
    }
    args a;
    a_init(&a, 1);
    pack_name(&a, " CIRCL ");
    expect("org.add", &a, 0, NULL);
    a_init(&a, 2);
    pack_name(&a, "CIRCL");
    ab_pack_cstr(&a.pk, "description");
    ab_pack_cstr(&a.pk, "   ");
    expect("org.add", &a, 0, NULL);
    a_init(&a, 1);
    ab_pack_cstr(&a.pk, "name");
    ab_pack_cstr(&a.pk, "\t");
    expect("role.add", &a, -1, "name");
}

/* A NUL character is refused as such, not as invalid UTF-8. */
static void test_nul(void **state)
{
    (void)state;
    args a;
    a_init(&a, 1);
    ab_pack_cstr(&a.pk, "name");
    ab_pack_str(&a.pk, "a\0b", 3);
    ab_error err;
    assert_int_equal(ab_catalog_validate(cmd("org.add"), a_done(&a), &err), -1);
    assert_string_equal(err.field, "name");
    assert_string_equal(err.message, "name contains a NUL character");
    a_free(&a);
}

static void test_missing_required(void **state)
{
    (void)state;
    args a;
    a_init(&a, 1);
    ab_pack_cstr(&a.pk, "sector");
    ab_pack_cstr(&a.pk, "financial");
    expect("org.add", &a, -1, "name");

    a_init(&a, 0);
    expect("org.delete", &a, -1, "org");

    ab_error err;
    assert_int_equal(ab_catalog_validate(cmd("org.add"), NULL, &err), -1);
    assert_string_equal(err.field, "name");
}

static void test_enum(void **state)
{
    (void)state;
    const char *good[] = {"local", "external", "remote", "all"};
    for (size_t i = 0; i < 4; i++) {
        args a;
        a_init(&a, 1);
        ab_pack_cstr(&a.pk, "scope");
        ab_pack_cstr(&a.pk, good[i]);
        expect("org.list", &a, 0, NULL);
    }
    args a;
    a_init(&a, 1);
    ab_pack_cstr(&a.pk, "scope");
    ab_pack_cstr(&a.pk, "everything");
    expect("org.list", &a, -1, "scope");
    a_init(&a, 1);
    ab_pack_cstr(&a.pk, "scope");
    msgpack_pack_int(&a.pk, 1);
    expect("org.list", &a, -1, "scope");
}

/* Pack key => [strs...] as the next entry of a. */
static void pack_strs(args *a, const char *key, const char *const *strs, size_t n)
{
    ab_pack_cstr(&a->pk, key);
    msgpack_pack_array(&a->pk, n);
    for (size_t i = 0; i < n; i++)
        ab_pack_cstr(&a->pk, strs[i]);
}

/* AB_ARG_STRS: an array of distinct strings, each one of the choices, within min..max. */
static void test_strs(void **state)
{
    (void)state;
    const char *good[] = {"tagger", "audit", "site_admin"};
    args a;
    a_init(&a, 2);
    pack_name(&a, "Analyst");
    pack_strs(&a, "perms", good, 3);
    expect("role.add", &a, 0, NULL);
    a_init(&a, 2); /* add takes an empty list */
    pack_name(&a, "Analyst");
    pack_strs(&a, "perms", good, 0);
    expect("role.add", &a, 0, NULL);

    const char *bad[] = {"tagger", "superpowers"};
    a_init(&a, 2);
    pack_name(&a, "Analyst");
    pack_strs(&a, "perms", bad, 2);
    ab_error err;
    ab_error_clear(&err);
    assert_int_equal(ab_catalog_validate(cmd("role.add"), a_done(&a), &err), -1);
    assert_string_equal(err.field, "perms");
    assert_non_null(strstr(err.message, "'superpowers' is not one of: delegate, sync"));
    a_free(&a);

    const char *twice[] = {"audit", "tagger", "audit"};
    a_init(&a, 2);
    pack_name(&a, "Analyst");
    pack_strs(&a, "perms", twice, 3);
    expect("role.add", &a, -1, "perms");

    a_init(&a, 2); /* edit needs at least one entry */
    ab_pack_cstr(&a.pk, "role");
    ab_pack_cstr(&a.pk, "User");
    pack_strs(&a, "no_perms", good, 0);
    expect("role.edit", &a, -1, "no_perms");

    a_init(&a, 2); /* not an array; an entry that is not a string */
    pack_name(&a, "Analyst");
    ab_pack_cstr(&a.pk, "perms");
    ab_pack_cstr(&a.pk, "tagger");
    expect("role.add", &a, -1, "perms");
    a_init(&a, 2);
    pack_name(&a, "Analyst");
    ab_pack_cstr(&a.pk, "perms");
    msgpack_pack_array(&a.pk, 1);
    msgpack_pack_int(&a.pk, 7);
    expect("role.add", &a, -1, "perms");

    const char *all[] = {"delegate", "sync",          "admin",         "audit",
                         "auth",     "site_admin",    "regexp_access", "tagger",
                         "template", "sharing_group", "tag_editor",    "tagger"};
    a_init(&a, 2); /* twelve entries: more than the eleven allowed */
    pack_name(&a, "Analyst");
    pack_strs(&a, "perms", all, 12);
    expect("role.add", &a, -1, "perms");
    a_init(&a, 2);
    pack_name(&a, "Analyst");
    pack_strs(&a, "perms", all, 11);
    expect("role.add", &a, 0, NULL);
    assert_string_equal(ab_arg_type_name(AB_ARG_STRS), "strings");
}

static void test_int_bounds(void **state)
{
    (void)state;
    struct {
        int64_t v;
        int rc;
    } cases[] = {{0, -1}, {1, 0}, {1000, 0}, {1001, -1}, {-1, -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        args a;
        a_init(&a, 1);
        ab_pack_cstr(&a.pk, "limit");
        msgpack_pack_int64(&a.pk, cases[i].v);
        expect("org.list", &a, cases[i].rc, "limit");
    }
    args a;
    a_init(&a, 1);
    ab_pack_cstr(&a.pk, "model_id");
    msgpack_pack_uint64(&a.pk, UINT64_MAX);
    expect("log.search", &a, -1, "model_id");
}

static void test_duplicate_arg(void **state)
{
    (void)state;
    args a;
    a_init(&a, 2);
    pack_name(&a, "A");
    pack_name(&a, "B");
    expect("org.add", &a, -1, "name");
}

static void test_non_string_arg_name(void **state)
{
    (void)state;
    args a;
    a_init(&a, 1);
    msgpack_pack_int(&a.pk, 1);
    msgpack_pack_nil(&a.pk);
    expect("org.list", &a, -1, "args");
}

static void test_find(void **state)
{
    (void)state;
    assert_null(ab_catalog_find("org.nope", 8));
    assert_null(ab_catalog_find("org.ad", 6)); /* no prefix match */
    const ab_command *c = cmd("org.add");
    assert_non_null(ab_command_arg(c, "name", 4));
    assert_null(ab_command_arg(c, "nam", 3));
    assert_string_equal(ab_arg_type_name(AB_ARG_STR), "string");
    assert_string_equal(ab_permission_name(AB_PERM_SITE_ADMIN), "site_admin");
}

/* Every catalog type is one the envelope accepts (noun.verb, lower case, ≤64 bytes). */
static bool type_decodes(const char *type)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    ab_pack_cstr(&pk, "v");
    msgpack_pack_int(&pk, 1);
    ab_pack_cstr(&pk, "id");
    ab_pack_cstr(&pk, "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f");
    ab_pack_cstr(&pk, "type");
    ab_pack_cstr(&pk, type);
    ab_pack_cstr(&pk, "args");
    msgpack_pack_map(&pk, 0);
    ab_command_msg m;
    ab_error err;
    int rc = ab_command_decode(sb.data, sb.size, &m, &err);
    ab_command_msg_release(&m);
    msgpack_sbuffer_destroy(&sb);
    return rc == 0;
}

static void test_catalog_consistent(void **state)
{
    (void)state;
    assert_true(ab_catalog_len > 0);
    for (size_t i = 0; i < ab_catalog_len; i++) {
        const ab_command *c = &ab_catalog[i];
        assert_true(type_decodes(c->type));
        assert_true(c->cli && c->cli[0]);
        assert_true(c->summary && c->summary[0]);
        assert_true(c->help && c->help[0]);
        assert_true(c->nargs == 0 || c->args != NULL);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(ab_catalog[j].type, c->type) == 0 || strcmp(ab_catalog[j].cli, c->cli) == 0)
                fail_msg("%s and %s share a type or CLI words", ab_catalog[j].type, c->type);
        }
        for (size_t k = 0; k < c->nargs; k++) {
            const ab_arg *a = &c->args[k];
            if (!a->help || !a->help[0])
                fail_msg("%s: argument %s has no help", c->type, a->name);
            assert_true(a->name && a->name[0]);
            assert_true(a->type != AB_ARG_ENUM || a->choices != NULL);
            assert_true(a->type != AB_ARG_STRS || (a->min >= 0 && a->max <= 32)); /* CLI room */
            assert_true(a->min <= a->max);
            assert_true(!(a->flags & AB_ARG_NOT_BLANK) || (a->type == AB_ARG_STR && a->min > 0));
            for (size_t l = 0; l < k; l++)
                if (strcmp(c->args[l].name, a->name) == 0)
                    fail_msg("%s: argument %s appears twice", c->type, a->name);
        }
    }
}

/* Each row of commands.def is where its id says: ab_catalog[AB_CMD_ORG_ADD] is org.add (the
 * id is the type in capitals, '.' as '_'); its writes flag follows its shape, and what
 * adminctl shows is complete. */
static void test_rows_by_id(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        ab_command_id id;
    } ids[] = {
#define AB_COMMAND(id, ...) {#id, AB_CMD_##id},
#include "commands.def"
#undef AB_COMMAND
    };
    assert_int_equal(sizeof ids / sizeof ids[0], ab_catalog_len);
    for (size_t i = 0; i < ab_catalog_len; i++) {
        const ab_command *c = &ab_catalog[ids[i].id];
        assert_int_equal(ids[i].id, i);
        assert_non_null(c->type);
        char expect[64];
        snprintf(expect, sizeof expect, "%s", c->type);
        for (char *p = expect; *p; p++)
            *p = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
        if (strcmp(expect, ids[i].name) != 0)
            fail_msg("the row AB_CMD_%s has the type %s", ids[i].name, c->type);
        assert_true(c->writes == (c->shape != AB_READS));
        assert_true((c->show == AB_SHOW_TABLE) == (c->columns != NULL));
        assert_true(!c->columns || c->columns[0]);
    }
    assert_ptr_equal(ab_catalog_find("org.add", 7), &ab_catalog[AB_CMD_ORG_ADD]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_unknown_arg),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_name_length),
        cmocka_unit_test(test_name_length_utf8),
        cmocka_unit_test(test_not_blank),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_enum),
        cmocka_unit_test(test_strs),
        cmocka_unit_test(test_int_bounds),
        cmocka_unit_test(test_duplicate_arg),
        cmocka_unit_test(test_non_string_arg_name),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_catalog_consistent),
        cmocka_unit_test(test_rows_by_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
