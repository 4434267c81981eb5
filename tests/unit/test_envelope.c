/* test_envelope.c — the v1 envelope codec: strict decoding of commands, and the shape of
 * replies and events (broker/wire/envelope.h, docs/protocol.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire/envelope.h"

#define ID       "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f"
#define ID_UPPER "5F6C3A1E-8B2D-4C1A-9E7F-0A1B2C3D4E5F"

/* --- building frames -------------------------------------------------------------- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} frame;

static void f_init(frame *f)
{
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
}

static void f_free(frame *f)
{
    msgpack_sbuffer_destroy(&f->sb);
}

static void f_str(frame *f, const char *s)
{
    ab_pack_cstr(&f->pk, s);
}

/* The usual envelope keys in order, after a map header of n entries in all. */
static void f_head(frame *f, size_t n, const char *type)
{
    msgpack_pack_map(&f->pk, n);
    f_str(f, "v");
    msgpack_pack_int(&f->pk, 1);
    f_str(f, "id");
    f_str(f, ID);
    f_str(f, "type");
    f_str(f, type);
}

/* {v:1, id, type:"org.add", args:{name:"CIRCL"}} plus extra pairs the caller packs. */
static void f_command(frame *f, size_t extra)
{
    f_init(f);
    f_head(f, 4 + extra, "org.add");
    f_str(f, "args");
    msgpack_pack_map(&f->pk, 1);
    f_str(f, "name");
    f_str(f, "CIRCL");
}

/* Decode f and expect a failure with code invalid on field, echoing id; frees f. */
static void expect_invalid(frame *f, const char *field, const char *id)
{
    ab_command_msg cmd;
    ab_error err;
    int rc = ab_command_decode(f->sb.data, f->sb.size, &cmd, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, AB_E_INVALID);
    assert_string_equal(err.field, field);
    assert_true(err.message[0] != '\0');
    assert_string_equal(cmd.id, id);
    assert_null(cmd.unpacked.zone); /* nothing to release after a failure */
    f_free(f);
}

static void expect_invalid_bytes(const char *bytes, size_t len, const char *field)
{
    frame f;
    f_init(&f);
    if (len > 0) /* msgpack's sbuffer would memcpy into a NULL buffer */
        msgpack_sbuffer_write(&f.sb, bytes, len);
    expect_invalid(&f, field, "");
}

/* --- validators ------------------------------------------------------------------- */

static void test_uuid(void **state)
{
    (void)state;
    assert_true(ab_uuid_valid(ID, strlen(ID)));
    assert_true(ab_uuid_valid(ID_UPPER, strlen(ID_UPPER)));
    assert_false(ab_uuid_valid(ID, strlen(ID) - 1));
    assert_false(ab_uuid_valid("5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5g", 36));
    assert_false(ab_uuid_valid("5f6c3a1e8b2d-4c1a-9e7f-0a1b2c3d4e5f0", 36));
    assert_false(ab_uuid_valid("{f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5}", 36));
    assert_false(ab_uuid_valid(NULL, 0));
}

static void test_utf8(void **state)
{
    (void)state;
    const char *good[] = {"",
                          "plain",
                          "caf\xc3\xa9",
                          "\xe2\x82\xac",
                          "\xf0\x9f\x98\x80",
                          "\xf4\x8f\xbf\xbf" /* U+10FFFF */,
                          "\xed\x9f\xbf" /* U+D7FF */};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(ab_utf8_valid(good[i], strlen(good[i])));
    const char *bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong, 3 bytes */
        "\xf0\x80\x80\xaf", /* overlong, 4 bytes */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xed\xbf\xbf",     /* surrogate U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* beyond */
        "\xff",             /* never valid */
        "\x80",             /* stray continuation */
        "\xc3",             /* truncated */
        "\xe2\x82",         /* truncated */
        "a\xc3(",           /* bad continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ab_utf8_valid(bad[i], strlen(bad[i])));
    assert_false(ab_utf8_valid("a\0b", 3)); /* NUL */
    assert_int_equal(ab_text_check("a\0b", 3), AB_TEXT_NUL);
    assert_int_equal(ab_text_check("\xc3", 1), AB_TEXT_NOT_UTF8);
    assert_int_equal(ab_text_check("caf\xc3\xa9", 5), AB_TEXT_OK);
    assert_int_equal(ab_utf8_chars("caf\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80", 13), 7);
}

/* --- decoding valid commands ------------------------------------------------------ */

static void test_decode_minimal(void **state)
{
    (void)state;
    frame f;
    f_command(&f, 0);
    ab_command_msg cmd;
    ab_error err;
    assert_int_equal(ab_command_decode(f.sb.data, f.sb.size, &cmd, &err), 0);
    assert_string_equal(cmd.id, ID);
    assert_string_equal(cmd.type, "org.add");
    assert_non_null(cmd.args);
    assert_int_equal(cmd.args->type, MSGPACK_OBJECT_MAP);
    const msgpack_object *name = ab_map_get(cmd.args, "name");
    assert_non_null(name);
    assert_int_equal(name->type, MSGPACK_OBJECT_STR);
    assert_memory_equal(name->via.str.ptr, "CIRCL", 5);
    assert_null(cmd.auth);
    assert_null(cmd.session);
    assert_null(cmd.key);
    assert_null(cmd.reply_to);
    assert_int_equal(cmd.ts, 0);
    assert_false(cmd.via_http);
    assert_string_equal(cmd.ip, "");
    ab_command_msg_release(&cmd);
    ab_command_msg_release(&cmd); /* safe twice */
    f_free(&f);
}

static void test_decode_all_keys(void **state)
{
    (void)state;
    frame f;
    f_init(&f);
    msgpack_pack_map(&f.pk, 10);
    f_str(&f, "via");
    f_str(&f, "http");
    f_str(&f, "ts");
    msgpack_pack_int64(&f.pk, 1700000000123);
    f_str(&f, "auth");
    f_str(&f, "k3y");
    f_str(&f, "args");
    msgpack_pack_map(&f.pk, 0);
    f_str(&f, "session");
    f_str(&f, "s3ss");
    f_str(&f, "key");
    f_str(&f, "order-1");
    f_str(&f, "reply_to");
    f_str(&f, "client-7");
    f_str(&f, "type");
    f_str(&f, "db.update");
    f_str(&f, "id");
    f_str(&f, ID_UPPER);
    f_str(&f, "v");
    msgpack_pack_int(&f.pk, 1);
    ab_command_msg cmd;
    ab_error err;
    assert_int_equal(ab_command_decode(f.sb.data, f.sb.size, &cmd, &err), 0);
    assert_string_equal(cmd.id, ID); /* lower-cased */
    assert_string_equal(cmd.type, "db.update");
    assert_int_equal(cmd.args->via.map.size, 0);
    assert_int_equal(cmd.ts, 1700000000123);
    assert_int_equal(cmd.auth_len, 3);
    assert_memory_equal(cmd.auth, "k3y", 3);
    assert_int_equal(cmd.session_len, 4);
    assert_memory_equal(cmd.session, "s3ss", 4);
    assert_int_equal(cmd.key_len, 7);
    assert_memory_equal(cmd.key, "order-1", 7);
    assert_int_equal(cmd.reply_to_len, 8);
    assert_memory_equal(cmd.reply_to, "client-7", 8);
    assert_true(cmd.via_http);
    ab_command_msg_release(&cmd);
    f_free(&f);
}

/* args_raw is the args map exactly as sent, and the command outlives the caller's buffer. */
static void test_decode_args_raw(void **state)
{
    (void)state;
    frame args;
    f_init(&args);
    msgpack_pack_map(&args.pk, 2);
    f_str(&args, "name");
    f_str(&args, "CIRCL");
    f_str(&args, "local");
    msgpack_pack_true(&args.pk);

    frame f;
    f_init(&f);
    f_head(&f, 5, "org.add");
    f_str(&f, "args");
    msgpack_sbuffer_write(&f.sb, args.sb.data, args.sb.size);
    f_str(&f, "ts");
    msgpack_pack_int(&f.pk, -5);
    char *copy = malloc(f.sb.size);
    memcpy(copy, f.sb.data, f.sb.size);

    ab_command_msg cmd;
    ab_error err;
    assert_int_equal(ab_command_decode(copy, f.sb.size, &cmd, &err), 0);
    memset(copy, 0xA5, f.sb.size);
    free(copy);
    assert_int_equal(cmd.args_raw_len, args.sb.size);
    assert_memory_equal(cmd.args_raw, args.sb.data, args.sb.size);
    assert_int_equal(cmd.ts, -5);
    const msgpack_object *name = ab_map_get(cmd.args, "name");
    assert_non_null(name);
    assert_memory_equal(name->via.str.ptr, "CIRCL", 5);
    ab_command_msg_release(&cmd);
    f_free(&f);
    f_free(&args);
}

static void test_decode_type_forms(void **state)
{
    (void)state;
    const char *good[] = {"org.add", "a.b", "job_2.list", "setting.misp.baseurl", "a.b.", "x0.y_1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        frame f;
        f_init(&f);
        f_head(&f, 4, good[i]);
        f_str(&f, "args");
        msgpack_pack_map(&f.pk, 0);
        ab_command_msg cmd;
        ab_error err;
        assert_int_equal(ab_command_decode(f.sb.data, f.sb.size, &cmd, &err), 0);
        assert_string_equal(cmd.type, good[i]);
        ab_command_msg_release(&cmd);
        f_free(&f);
    }
}

/* --- strictness: every rule gives invalid and the right field --------------------- */

static void test_frame_not_msgpack(void **state)
{
    (void)state;
    expect_invalid_bytes("", 0, "frame");
    expect_invalid_bytes("\xc1", 1, "frame");             /* never-used byte */
    expect_invalid_bytes("\x81\xa1", 2, "frame");         /* truncated */
    expect_invalid_bytes("\xde\x00", 2, "frame");         /* truncated map16 header */
    expect_invalid_bytes("\x93\x01\x02\x03", 4, "frame"); /* an array */
    expect_invalid_bytes("\xa3"
                         "abc",
                         4, "frame");              /* a string */
    expect_invalid_bytes("{\"v\":1}", 7, "frame"); /* JSON is not msgpack */
    /* A count far beyond the frame's size must be refused, not allocated. */
    expect_invalid_bytes("\x81\xa4"
                         "args"
                         "\xdd\xff\xff\xff\xff",
                         10, "frame");
    expect_invalid_bytes("\xdf\xff\xff\xff\xff", 5, "frame");
}

static void test_frame_trailing_bytes(void **state)
{
    (void)state;
    frame f;
    f_command(&f, 0);
    msgpack_pack_nil(&f.pk);
    expect_invalid(&f, "frame", ID);
}

static void test_unknown_keys(void **state)
{
    (void)state;
    frame f;
    f_command(&f, 1);
    f_str(&f, "ip");
    f_str(&f, "10.0.0.1");
    expect_invalid(&f, "ip", ID); /* only the transport sets ip */

    f_command(&f, 1);
    f_str(&f, "colour");
    msgpack_pack_nil(&f.pk);
    expect_invalid(&f, "colour", ID);

    f_command(&f, 1);
    f_str(&f, "\xc0\xaf");
    msgpack_pack_nil(&f.pk);
    expect_invalid(&f, "frame", ID); /* a key that is not UTF-8 is not echoed */

    char longkey[101];
    memset(longkey, 'k', 100);
    longkey[100] = '\0';
    f_command(&f, 1);
    f_str(&f, longkey);
    msgpack_pack_nil(&f.pk);
    expect_invalid(&f, "frame", ID); /* nor one too long to be a field */

    f_command(&f, 1);
    msgpack_pack_int(&f.pk, 7);
    msgpack_pack_nil(&f.pk);
    expect_invalid(&f, "frame", ID); /* keys are strings */
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    frame f;
    f_command(&f, 1);
    f_str(&f, "type");
    f_str(&f, "org.delete");
    expect_invalid(&f, "type", ID);

    f_command(&f, 1);
    f_str(&f, "args");
    msgpack_pack_map(&f.pk, 0);
    expect_invalid(&f, "args", ID);
}

static void test_missing_keys(void **state)
{
    (void)state;
    const char *keys[] = {"v", "id", "type", "args"};
    for (size_t skip = 0; skip < 4; skip++) {
        frame f;
        f_init(&f);
        msgpack_pack_map(&f.pk, 3);
        for (size_t k = 0; k < 4; k++) {
            if (k == skip)
                continue;
            f_str(&f, keys[k]);
            if (k == 0)
                msgpack_pack_int(&f.pk, 1);
            else if (k == 1)
                f_str(&f, ID);
            else if (k == 2)
                f_str(&f, "org.add");
            else
                msgpack_pack_map(&f.pk, 0);
        }
        ab_command_msg cmd;
        ab_error err;
        assert_int_equal(ab_command_decode(f.sb.data, f.sb.size, &cmd, &err), -1);
        assert_int_equal(err.code, AB_E_INVALID);
        assert_string_equal(err.field, keys[skip]);
        char want[32];
        snprintf(want, sizeof want, "%s is required", keys[skip]);
        assert_string_equal(err.message, want);
        assert_string_equal(cmd.id, skip == 1 ? "" : ID);
        f_free(&f);
    }
}

static void test_version(void **state)
{
    (void)state;
    frame f;
    f_init(&f);
    msgpack_pack_map(&f.pk, 5);
    f_str(&f, "id");
    f_str(&f, ID);
    f_str(&f, "future_key");
    msgpack_pack_nil(&f.pk);
    f_str(&f, "v");
    msgpack_pack_int(&f.pk, 2);
    f_str(&f, "type");
    f_str(&f, "org.add");
    f_str(&f, "args");
    msgpack_pack_map(&f.pk, 0);
    expect_invalid(&f, "v", ID); /* the version is judged before any other key */

    f_init(&f);
    msgpack_pack_map(&f.pk, 4);
    f_str(&f, "v");
    f_str(&f, "1");
    f_str(&f, "id");
    f_str(&f, ID);
    f_str(&f, "type");
    f_str(&f, "org.add");
    f_str(&f, "args");
    msgpack_pack_map(&f.pk, 0);
    expect_invalid(&f, "v", ID);

    f_init(&f);
    msgpack_pack_map(&f.pk, 1);
    f_str(&f, "v");
    msgpack_pack_double(&f.pk, 1.0);
    expect_invalid(&f, "v", "");
}

static void test_bad_id(void **state)
{
    (void)state;
    const char *bad[] = {"", "not-a-uuid", "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5", ID "0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        frame f;
        f_init(&f);
        msgpack_pack_map(&f.pk, 4);
        f_str(&f, "v");
        msgpack_pack_int(&f.pk, 1);
        f_str(&f, "id");
        f_str(&f, bad[i]);
        f_str(&f, "type");
        f_str(&f, "org.add");
        f_str(&f, "args");
        msgpack_pack_map(&f.pk, 0);
        expect_invalid(&f, "id", "");
    }
    frame f;
    f_init(&f);
    msgpack_pack_map(&f.pk, 1);
    f_str(&f, "id");
    msgpack_pack_int(&f.pk, 42);
    expect_invalid(&f, "id", "");
}

static void test_bad_type(void **state)
{
    (void)state;
    char long_type[70] = "org.";
    memset(long_type + 4, 'a', 61);
    long_type[65] = '\0'; /* 65 bytes */
    const char *bad[] = {"",         "org",      "Org.add",  "org.Add", ".add",         "org.",
                         "1org.add", "org..add", "org.add!", "org add", "org.\xc3\xa9", long_type};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        frame f;
        f_init(&f);
        f_head(&f, 4, bad[i]);
        f_str(&f, "args");
        msgpack_pack_map(&f.pk, 0);
        expect_invalid(&f, "type", ID);
    }
    frame f;
    f_init(&f);
    msgpack_pack_map(&f.pk, 2);
    f_str(&f, "id");
    f_str(&f, ID);
    f_str(&f, "type");
    msgpack_pack_true(&f.pk);
    expect_invalid(&f, "type", ID);
}

static void test_bad_args(void **state)
{
    (void)state;
    frame f;
    f_init(&f);
    f_head(&f, 4, "org.add");
    f_str(&f, "args");
    msgpack_pack_array(&f.pk, 0);
    expect_invalid(&f, "args", ID);

    f_init(&f);
    f_head(&f, 4, "org.add");
    f_str(&f, "args");
    msgpack_pack_map(&f.pk, 1);
    msgpack_pack_int(&f.pk, 1);
    f_str(&f, "x");
    expect_invalid(&f, "args", ID); /* argument names are strings */

    f_init(&f);
    f_head(&f, 4, "org.add");
    f_str(&f, "args");
    msgpack_pack_map(&f.pk, 1);
    f_str(&f, "name");
    f_str(&f, "bad \xed\xa0\x80 surrogate");
    expect_invalid(&f, "name", ID); /* strings inside args are UTF-8 too */

    f_init(&f);
    f_head(&f, 4, "org.add");
    f_str(&f, "args");
    msgpack_pack_map(&f.pk, 1);
    f_str(&f, "contacts");
    msgpack_pack_map(&f.pk, 1);
    f_str(&f, "email");
    ab_pack_str(&f.pk, "nul\0inside", 10);
    expect_invalid(&f, "contacts", ID);

    /* A NUL is named as such, apart from bytes that are not UTF-8. */
    const char *texts[] = {"a\0b", "a\xc3"
                                   "b"};
    const char *says[] = {"name contains a NUL character", "name is not valid UTF-8"};
    for (int i = 0; i < 2; i++) {
        f_init(&f);
        f_head(&f, 4, "org.add");
        f_str(&f, "args");
        msgpack_pack_map(&f.pk, 1);
        f_str(&f, "name");
        ab_pack_str(&f.pk, texts[i], 3);
        ab_command_msg cmd;
        ab_error err;
        assert_int_equal(ab_command_decode(f.sb.data, f.sb.size, &cmd, &err), -1);
        assert_string_equal(err.field, "name");
        assert_string_equal(err.message, says[i]);
        f_free(&f);
    }
}

/* Nesting inside args is bounded; the id is still echoed. */
static void test_args_too_deep(void **state)
{
    (void)state;
    for (int depth = 29; depth <= 40; depth++) {
        frame f;
        f_init(&f);
        f_head(&f, 4, "org.add");
        f_str(&f, "args");
        for (int i = 0; i < depth; i++) {
            msgpack_pack_map(&f.pk, 1);
            f_str(&f, "a");
        }
        msgpack_pack_nil(&f.pk);
        ab_command_msg cmd;
        ab_error err;
        int rc = ab_command_decode(f.sb.data, f.sb.size, &cmd, &err);
        /* The envelope map is level 1, args level 2: 31 levels of args fit in 32. */
        if (depth <= 31) {
            assert_int_equal(rc, 0);
            ab_command_msg_release(&cmd);
            f_free(&f);
        } else {
            expect_invalid(&f, "args", ID);
        }
    }
}

static void test_credentials_limits(void **state)
{
    (void)state;
    struct {
        const char *key;
        size_t max;
    } limits[] = {{"auth", AB_AUTH_MAX},
                  {"session", AB_AUTH_MAX},
                  {"key", AB_KEY_MAX},
                  {"reply_to", AB_KEY_MAX}};
    char big[300];
    for (size_t i = 0; i < 4; i++) {
        for (size_t len = limits[i].max; len <= limits[i].max + 1; len++) {
            memset(big, 'x', len);
            big[len] = '\0';
            frame f;
            f_command(&f, 1);
            f_str(&f, limits[i].key);
            f_str(&f, big);
            if (len == limits[i].max) {
                ab_command_msg cmd;
                ab_error err;
                assert_int_equal(ab_command_decode(f.sb.data, f.sb.size, &cmd, &err), 0);
                ab_command_msg_release(&cmd);
                f_free(&f);
            } else {
                expect_invalid(&f, limits[i].key, ID);
            }
        }
        frame f;
        f_command(&f, 1);
        f_str(&f, limits[i].key);
        msgpack_pack_bin(&f.pk, 3);
        msgpack_pack_bin_body(&f.pk, "abc", 3);
        expect_invalid(&f, limits[i].key, ID); /* bin is not str */

        f_command(&f, 1);
        f_str(&f, limits[i].key);
        f_str(&f, "caf\xc3");
        expect_invalid(&f, limits[i].key, ID);
    }
}

static void test_bad_ts(void **state)
{
    (void)state;
    frame f;
    f_command(&f, 1);
    f_str(&f, "ts");
    f_str(&f, "2024-01-01T00:00:00Z");
    expect_invalid(&f, "ts", ID);

    f_command(&f, 1);
    f_str(&f, "ts");
    msgpack_pack_uint64(&f.pk, UINT64_MAX);
    expect_invalid(&f, "ts", ID);
}

/* via names a channel that restricts; "http" is the only one, and it is a string. */
static void test_bad_via(void **state)
{
    (void)state;
    frame f;
    f_command(&f, 1);
    f_str(&f, "via");
    f_str(&f, "cli");
    expect_invalid(&f, "via", ID);

    f_command(&f, 1);
    f_str(&f, "via");
    f_str(&f, "HTTP");
    expect_invalid(&f, "via", ID);

    f_command(&f, 1);
    f_str(&f, "via");
    msgpack_pack_true(&f.pk);
    expect_invalid(&f, "via", ID);

    f_command(&f, 2);
    f_str(&f, "via");
    f_str(&f, "http");
    f_str(&f, "via");
    f_str(&f, "http");
    expect_invalid(&f, "via", ID);
}

/* The first fault in wire order is the one reported. */
static void test_deterministic_order(void **state)
{
    (void)state;
    frame f;
    f_init(&f);
    msgpack_pack_map(&f.pk, 3);
    f_str(&f, "type");
    msgpack_pack_nil(&f.pk);
    f_str(&f, "bogus");
    msgpack_pack_nil(&f.pk);
    f_str(&f, "id");
    f_str(&f, ID);
    for (int i = 0; i < 3; i++) {
        ab_command_msg cmd;
        ab_error err;
        assert_int_equal(ab_command_decode(f.sb.data, f.sb.size, &cmd, &err), -1);
        assert_string_equal(err.field, "type");
        assert_string_equal(cmd.id, ID); /* read before the fault, though sent after it */
    }
    f_free(&f);
}

/* --- encoding: pack, then read back with msgpack ---------------------------------- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
} packed;

static const msgpack_object *p_unpack(packed *p)
{
    msgpack_unpacked_init(&p->u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&p->u, p->sb.data, p->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, p->sb.size);
    assert_int_equal(p->u.data.type, MSGPACK_OBJECT_MAP);
    return &p->u.data;
}

static void p_free(packed *p)
{
    msgpack_unpacked_destroy(&p->u);
    msgpack_sbuffer_destroy(&p->sb);
}

static void assert_str(const msgpack_object *o, const char *want)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, strlen(want));
}

static void assert_uint(const msgpack_object *o, uint64_t want)
{
    assert_non_null(o);
    assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(o->via.u64, want);
}

static void test_reply_ok(void **state)
{
    (void)state;
    packed p;
    msgpack_sbuffer_init(&p.sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p.sb, msgpack_sbuffer_write);
    ab_reply_begin_ok(&pk, ID);
    msgpack_pack_map(&pk, 1);
    ab_pack_cstr(&pk, "org_id");
    msgpack_pack_int(&pk, 7);
    const msgpack_object *r = p_unpack(&p);
    assert_int_equal(r->via.map.size, 4);
    assert_uint(ab_map_get(r, "v"), 1);
    assert_str(ab_map_get(r, "id"), ID);
    const msgpack_object *ok = ab_map_get(r, "ok");
    assert_non_null(ok);
    assert_int_equal(ok->type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(ok->via.boolean);
    assert_uint(ab_map_get(ab_map_get(r, "result"), "org_id"), 7);
    assert_null(ab_map_get(r, "error"));
    p_free(&p);

    msgpack_sbuffer_init(&p.sb);
    msgpack_packer_init(&pk, &p.sb, msgpack_sbuffer_write);
    ab_reply_begin_ok(&pk, NULL);
    msgpack_pack_nil(&pk);
    r = p_unpack(&p);
    assert_int_equal(ab_map_get(r, "id")->type, MSGPACK_OBJECT_NIL);
    p_free(&p);
}

static void test_reply_error(void **state)
{
    (void)state;
    packed p;
    msgpack_sbuffer_init(&p.sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p.sb, msgpack_sbuffer_write);
    ab_error err;
    ab_fail(&err, AB_E_UNAVAILABLE, "frame", "no engine is connected");
    err.retry_after = 1;
    ab_reply_pack_error(&pk, ID, &err);
    const msgpack_object *r = p_unpack(&p);
    assert_int_equal(r->via.map.size, 4);
    assert_uint(ab_map_get(r, "v"), 1);
    assert_str(ab_map_get(r, "id"), ID);
    assert_false(ab_map_get(r, "ok")->via.boolean);
    assert_null(ab_map_get(r, "result"));
    const msgpack_object *e = ab_map_get(r, "error");
    assert_non_null(e);
    assert_int_equal(e->via.map.size, 4);
    assert_str(ab_map_get(e, "code"), "unavailable");
    assert_str(ab_map_get(e, "message"), "no engine is connected");
    assert_str(ab_map_get(e, "field"), "frame");
    assert_uint(ab_map_get(e, "retry_after"), 1);
    p_free(&p);

    /* No field, no retry hint, no id: those keys are absent (id nil). */
    msgpack_sbuffer_init(&p.sb);
    msgpack_packer_init(&pk, &p.sb, msgpack_sbuffer_write);
    ab_fail(&err, AB_E_FORBIDDEN, NULL, "site admins only");
    ab_reply_pack_error(&pk, "", &err);
    r = p_unpack(&p);
    assert_int_equal(ab_map_get(r, "id")->type, MSGPACK_OBJECT_NIL);
    e = ab_map_get(r, "error");
    assert_int_equal(e->via.map.size, 2);
    assert_str(ab_map_get(e, "code"), "forbidden");
    assert_null(ab_map_get(e, "field"));
    assert_null(ab_map_get(e, "retry_after"));
    p_free(&p);
}

static void test_reply_error_codes(void **state)
{
    (void)state;
    const char *names[] = {"invalid",  "unauthenticated", "forbidden", "not_found",
                           "conflict", "unavailable",     "internal"};
    for (int c = AB_E_INVALID; c < AB_E__COUNT; c++) {
        packed p;
        msgpack_sbuffer_init(&p.sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &p.sb, msgpack_sbuffer_write);
        ab_error err;
        ab_fail(&err, (ab_code)c, NULL, "x");
        ab_reply_pack_error(&pk, ID, &err);
        const msgpack_object *r = p_unpack(&p);
        assert_str(ab_map_get(ab_map_get(r, "error"), "code"), names[c - AB_E_INVALID]);
        p_free(&p);
    }
}

static void test_event(void **state)
{
    (void)state;
    packed p;
    msgpack_sbuffer_init(&p.sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p.sb, msgpack_sbuffer_write);
    ab_event_begin(&pk, "job.42.progress", 1700000000123);
    msgpack_pack_map(&pk, 1);
    ab_pack_cstr(&pk, "progress");
    msgpack_pack_int(&pk, 50);
    const msgpack_object *r = p_unpack(&p);
    assert_int_equal(r->via.map.size, 4);
    assert_uint(ab_map_get(r, "v"), 1);
    assert_str(ab_map_get(r, "topic"), "job.42.progress");
    assert_uint(ab_map_get(r, "ts"), 1700000000123);
    assert_uint(ab_map_get(ab_map_get(r, "data"), "progress"), 50);
    p_free(&p);
}

static void test_pack_helpers(void **state)
{
    (void)state;
    packed p;
    msgpack_sbuffer_init(&p.sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p.sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    ab_pack_cstr(&pk, "a");
    ab_pack_str(&pk, "xyz", 2);
    ab_pack_cstr(&pk, "b");
    ab_pack_cstr(&pk, NULL);
    const msgpack_object *r = p_unpack(&p);
    assert_str(ab_map_get(r, "a"), "xy");
    assert_str(ab_map_get(r, "b"), "");
    assert_null(ab_map_get(r, "c"));
    assert_null(ab_map_get(NULL, "a"));
    assert_null(ab_map_get(ab_map_get(r, "a"), "a")); /* not a map */
    p_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_decode_minimal),
        cmocka_unit_test(test_decode_all_keys),
        cmocka_unit_test(test_decode_args_raw),
        cmocka_unit_test(test_decode_type_forms),
        cmocka_unit_test(test_frame_not_msgpack),
        cmocka_unit_test(test_frame_trailing_bytes),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_missing_keys),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_bad_id),
        cmocka_unit_test(test_bad_type),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_args_too_deep),
        cmocka_unit_test(test_credentials_limits),
        cmocka_unit_test(test_bad_ts),
        cmocka_unit_test(test_bad_via),
        cmocka_unit_test(test_deterministic_order),
        cmocka_unit_test(test_reply_ok),
        cmocka_unit_test(test_reply_error),
        cmocka_unit_test(test_reply_error_codes),
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_pack_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
