/* test_cli — unit tests of adminctl's parts: the catalog-driven parser, packing (checked
 * by the real envelope decoder and catalog validator), the env file, rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/cli.h"
#include "wire/envelope.h"

#define UUID "5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f"

static char s_err[1024];

/* Parse a NULL-terminated list of words (argv[0] added). */
static int s_parse(ctl_cli *cli, ...)
{
    char *argv[64] = {"adminctl"};
    int argc = 1;
    va_list ap;
    va_start(ap, cli);
    for (char *w; (w = va_arg(ap, char *)) != NULL && argc < 63;)
        argv[argc++] = w;
    va_end(ap);
    s_err[0] = '\0';
    return ctl_parse(argc, argv, cli, s_err, sizeof s_err);
}

static const ctl_value *s_value(const ctl_cli *cli, const char *name)
{
    const ab_arg *a = ab_command_arg(cli->cmd, name, strlen(name));
    assert_non_null(a);
    return &cli->values[a - cli->cmd->args];
}

/* --- parsing ---------------------------------------------------------------------- */

static void test_words_and_flags(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, "org", "add", "--name", "ACME", "--local", NULL), 0);
    assert_int_equal(cli.action, CTL_RUN);
    assert_string_equal(cli.cmd->type, "org.add");
    assert_string_equal(s_value(&cli, "name")->str, "ACME");
    assert_true(s_value(&cli, "local")->given);
    assert_true(s_value(&cli, "local")->flag);
    assert_false(s_value(&cli, "uuid")->given);
    assert_int_equal(cli.timeout_ms, CTL_TIMEOUT_DEFAULT_MS);
}

static void test_plural_and_shortcut(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, "orgs", "list", "--scope", "all", "--limit=5", NULL), 0);
    assert_string_equal(cli.cmd->type, "org.list");
    assert_string_equal(s_value(&cli, "scope")->str, "all");
    assert_int_equal(s_value(&cli, "limit")->num, 5);
    assert_int_equal(s_parse(&cli, "logs", "search", "--model-id", "42", NULL), 0);
    assert_string_equal(cli.cmd->type, "log.search");
    assert_int_equal(s_value(&cli, "model_id")->num, 42);
    assert_int_equal(s_parse(&cli, "whoami", NULL), 0);
    assert_string_equal(cli.cmd->type, "auth.whoami");
    assert_int_equal(s_parse(&cli, "db", "update", NULL), 0);
    assert_string_equal(cli.cmd->type, "db.update");
}

static void test_bool_forms(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, "org", "add", "--name", "A", "--no-local", NULL), 0);
    assert_false(s_value(&cli, "local")->flag);
    assert_int_equal(s_parse(&cli, "org", "add", "--name", "A", "--local", "false", NULL), 0);
    assert_false(s_value(&cli, "local")->flag);
    assert_int_equal(s_parse(&cli, "org", "add", "--local=true", "--name", "A", NULL), 0);
    assert_true(s_value(&cli, "local")->flag);
    assert_int_equal(s_parse(&cli, "org", "add", "--name", "A", "--local=maybe", NULL), -1);
    assert_non_null(strstr(s_err, "--local"));
    assert_int_equal(s_parse(&cli, "org", "add", "--name", "A", "--no-local=1", NULL), -1);
}

static void test_int_strict(void **state)
{
    (void)state;
    ctl_cli cli;
    const char *bad[] = {"12x", "", " 1", "0x10", "1.5", "99999999999999999999", NULL};
    for (const char **b = bad; *b; b++) {
        assert_int_equal(s_parse(&cli, "log", "search", "--model-id", *b, NULL), -1);
        assert_non_null(strstr(s_err, "--model-id"));
    }
    assert_int_equal(s_parse(&cli, "org", "list", "--limit", "0", NULL), -1);
    assert_non_null(strstr(s_err, "between 1 and 1000"));
    assert_int_equal(s_parse(&cli, "log", "search", "--model-id", NULL), -1);
    assert_string_equal(s_err, "--model-id needs a value");
}

static void test_enum_choices(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, "org", "list", "--scope", "nope", NULL), -1);
    assert_non_null(strstr(s_err, "--scope must be one of: local, external, remote, all"));
}

/* A list-of-strings argument: the flag repeats, answers to its singular, checks each
 * value against the choices, refuses a repeat; it packs as an array the catalog takes. */
static void test_strs_flags(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, "role", "add", "--name", "Analyst", "--permission", "manage_org",
                             "--perm", "tagger", "--perms=audit", "--perm", "auth", NULL),
                     0);
    const ctl_value *v = s_value(&cli, "perms");
    assert_true(v->given);
    assert_int_equal(v->npairs, 3);
    assert_string_equal(v->pairs[0], "tagger");
    assert_string_equal(v->pairs[1], "audit");
    assert_string_equal(v->pairs[2], "auth");

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ctl_pack_command(&cli, UUID, "authkey-0123456789", &pk);
    ab_command_msg msg;
    ab_error err;
    memset(&msg, 0, sizeof msg);
    assert_int_equal(ab_command_decode(sb.data, sb.size, &msg, &err), 0);
    assert_int_equal(ab_catalog_validate(cli.cmd, msg.args, &err), 0);
    const msgpack_object *perms = ab_map_get(msg.args, "perms");
    assert_non_null(perms);
    assert_int_equal(perms->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(perms->via.array.size, 3);
    assert_memory_equal(perms->via.array.ptr[1].via.str.ptr, "audit", 5);
    ab_command_msg_release(&msg);
    msgpack_sbuffer_destroy(&sb);

    assert_int_equal(s_parse(&cli, "role", "edit", "Analyst", "--no-perm", "tagger", "--perm",
                             "sync", "--no-perm", "audit", NULL),
                     0);
    assert_int_equal(s_value(&cli, "no_perms")->npairs, 2);
    assert_string_equal(s_value(&cli, "no_perms")->pairs[1], "audit");
    assert_int_equal(s_value(&cli, "perms")->npairs, 1);

    assert_int_equal(s_parse(&cli, "role", "add", "--name", "A", "--perm", "wizard", NULL), -1);
    assert_non_null(strstr(s_err, "--perm must be one of: delegate, sync"));
    assert_non_null(strstr(s_err, "(not 'wizard')"));
    assert_int_equal(
        s_parse(&cli, "role", "add", "--name", "A", "--perm", "audit", "--perm", "audit", NULL),
        -1);
    assert_string_equal(s_err, "--perm audit is given twice");
    assert_int_equal(s_parse(&cli, "role", "add", "--name", "A", "--perm", NULL), -1);
    assert_string_equal(s_err, "--perm needs a value");
    /* --no-perm belongs to edit only */
    assert_int_equal(s_parse(&cli, "role", "add", "--name", "A", "--no-perm", "audit", NULL), -1);
    assert_non_null(strstr(s_err, "unknown option --no-perm"));
}

static void test_unknown_option(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, "org", "add", "--x", "1", NULL), -1);
    assert_string_equal(s_err, "unknown option --x for 'org add'; see adminctl org add --help");
    assert_int_equal(s_parse(&cli, "--bogus", "whoami", NULL), -1);
    assert_non_null(strstr(s_err, "unknown option --bogus"));
    assert_int_equal(s_parse(&cli, "org", "add", "--name", "A", "--name", "B", NULL), -1);
    assert_string_equal(s_err, "--name is given twice");
}

static void test_positional(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, "org", "view", "ACME", NULL), 0);
    assert_string_equal(s_value(&cli, "org")->str, "ACME");
    assert_int_equal(s_parse(&cli, "org", "edit", "--org", "7", "--sector", "x", NULL), 0);
    assert_string_equal(s_value(&cli, "org")->str, "7");
    assert_int_equal(s_parse(&cli, "org", "delete", "--", "-odd-name", NULL), 0);
    assert_string_equal(s_value(&cli, "org")->str, "-odd-name");
    assert_int_equal(s_parse(&cli, "org", "view", "A", "B", NULL), -1);
    assert_non_null(strstr(s_err, "unexpected argument 'B' for 'org view'"));
    assert_int_equal(s_parse(&cli, "org", "view", NULL), -1);
    assert_non_null(strstr(s_err, "'org view' needs org"));
    assert_int_equal(s_parse(&cli, "org", "add", "ACME", NULL), -1);
    assert_int_equal(s_parse(&cli, "org", "add", NULL), -1);
    assert_non_null(strstr(s_err, "'org add' needs --name VALUE"));
}

static void test_globals(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, "--json", "--timeout", "2.5", "org", "list", "--url",
                             "tcp://h:1", "--id", UUID, "--key=k", NULL),
                     0);
    assert_true(cli.json);
    assert_int_equal(cli.timeout_ms, 2500);
    assert_true(cli.timeout_given);
    assert_string_equal(cli.url, "tcp://h:1");
    assert_string_equal(cli.id, UUID);
    assert_string_equal(cli.key, "k");
    assert_int_equal(s_parse(&cli, "whoami", "--id", "nope", NULL), -1);
    assert_non_null(strstr(s_err, "--id needs a UUID"));
    assert_int_equal(s_parse(&cli, "whoami", "--timeout", "0", NULL), -1);
    assert_int_equal(s_parse(&cli, "whoami", "--timeout", "x", NULL), -1);
}

static void test_command_words(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, NULL), -1);
    assert_non_null(strstr(s_err, "no command"));
    assert_int_equal(s_parse(&cli, "frobnicate", NULL), -1);
    assert_string_equal(s_err, "unknown command 'frobnicate'; see adminctl --help");
    assert_int_equal(s_parse(&cli, "org", "fly", NULL), -1);
    assert_non_null(strstr(s_err, "unknown command 'org fly'"));
    assert_int_equal(s_parse(&cli, "org", NULL), -1);
    assert_non_null(strstr(s_err, "'org' needs one of: add, edit, delete, merge, view, list"));
}

static void test_help_and_version(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(s_parse(&cli, "--help", NULL), 0);
    assert_int_equal(cli.action, CTL_HELP);
    assert_null(cli.cmd);
    assert_string_equal(cli.prefix, "");
    assert_int_equal(s_parse(&cli, "orgs", "--help", NULL), 0);
    assert_string_equal(cli.prefix, "org");
    assert_int_equal(s_parse(&cli, "--url", "x", "org", "add", "-h", NULL), 0);
    assert_string_equal(cli.cmd->type, "org.add");
    assert_int_equal(s_parse(&cli, "org", "add", "--name", "--bogus", "--help", NULL), 0);
    assert_string_equal(cli.cmd->type, "org.add");
    assert_int_equal(s_parse(&cli, "events", "--help", NULL), 0);
    assert_true(cli.events);
    assert_int_equal(s_parse(&cli, "nope", "--help", NULL), -1);
    assert_int_equal(s_parse(&cli, "whoami", "--version", NULL), 0);
    assert_int_equal(cli.action, CTL_VERSION);
}

static void test_events(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(
        s_parse(&cli, "events", "--topic", "job.", "--topic=audit.", "--count", "3", NULL), 0);
    assert_int_equal(cli.action, CTL_EVENTS);
    assert_int_equal(cli.ntopics, 2);
    assert_string_equal(cli.topics[1], "audit.");
    assert_int_equal(cli.count, 3);
    assert_int_equal(s_parse(&cli, "events", "--count", "x", NULL), -1);
    assert_int_equal(s_parse(&cli, "events", "extra", NULL), -1);
    assert_int_equal(s_parse(&cli, "events", "--name", "x", NULL), -1);
}

/* --- packing: what we send must pass the engine's own decoder and validator ------- */

static void test_pack_decodes(void **state)
{
    (void)state;
    ctl_cli cli;
    assert_int_equal(
        s_parse(&cli, "org", "add", "--name", "ACME", "--no-local", "--sector", "finance", NULL),
        0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ctl_pack_command(&cli, UUID, "authkey-0123456789", &pk);
    ab_command_msg msg;
    ab_error err;
    memset(&msg, 0, sizeof msg);
    assert_int_equal(ab_command_decode(sb.data, sb.size, &msg, &err), 0);
    assert_string_equal(msg.id, UUID);
    assert_string_equal(msg.type, "org.add");
    assert_int_equal(msg.args->via.map.size, 3);
    assert_int_equal(ab_catalog_validate(cli.cmd, msg.args, &err), 0);
    const msgpack_object *local = ab_map_get(msg.args, "local");
    assert_non_null(local);
    assert_int_equal(local->type, MSGPACK_OBJECT_BOOLEAN);
    assert_false(local->via.boolean);
    ab_command_msg_release(&msg);
    msgpack_sbuffer_destroy(&sb);
}

/* --- connection settings ---------------------------------------------------------- */

static void test_envfile(void **state)
{
    (void)state;
    char path[] = "/tmp/test_cli_envXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# written by ops/run\n"
                       "ADMINBUS_URL=tcp://127.0.0.1:1\n"
                       "export ADMINBUS_URL='tcp://127.0.0.1:7810'\n"
                       "ADMINBUS_AUTHKEY=\"ab\\\"cd\"  # comment\n"
                       "  ADMINBUS_EVENTS=ipc:///x/y # trailing\n"
                       "ADMINBUS_URLX=nope\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char *v = NULL;
    assert_int_equal(ctl_envfile_get(path, "ADMINBUS_URL", &v), 1);
    assert_string_equal(v, "tcp://127.0.0.1:7810");
    free(v);
    assert_int_equal(ctl_envfile_get(path, "ADMINBUS_AUTHKEY", &v), 1);
    assert_string_equal(v, "ab\"cd");
    free(v);
    assert_int_equal(ctl_envfile_get(path, "ADMINBUS_EVENTS", &v), 1);
    assert_string_equal(v, "ipc:///x/y");
    free(v);
    assert_int_equal(ctl_envfile_get(path, "ADMINBUS_HOME", &v), 0);
    unlink(path);
    assert_int_equal(ctl_envfile_get(path, "ADMINBUS_URL", &v), -1);
}

/* --NAME-file PATH reads a text argument from a file: whole, checked, and only for text
 * arguments; given twice (inline and from a file) is a usage error. */
static void test_text_from_file(void **state)
{
    (void)state;
    char path[] = "/tmp/test_cli_keyXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGé\n=abcd\n"
                      "-----END PGP PUBLIC KEY BLOCK-----\n";
    assert_int_equal(write(fd, key, strlen(key)), (ssize_t)strlen(key));
    close(fd);
    ctl_cli cli;
    assert_int_equal(
        s_parse(&cli, "user", "add", "--email", "a@b.c", "--org", "X", "--gpgkey-file", path, NULL),
        0);
    assert_true(s_value(&cli, "gpgkey")->given);
    assert_string_equal(s_value(&cli, "gpgkey")->str, key);
    ctl_release(&cli);
    assert_int_equal(s_parse(&cli, "user", "edit", "5", "--gpgkey=x", "--gpgkey-file", path, NULL),
                     -1);
    assert_non_null(strstr(s_err, "given twice"));
    ctl_release(&cli);
    assert_int_equal(s_parse(&cli, "user", "add", "--email-file", path, "--org", "X", NULL), 0);
    ctl_release(&cli);
    assert_int_equal(s_parse(&cli, "user", "add", "--autoalert-file", path, NULL), -1);
    assert_non_null(strstr(s_err, "unknown option --autoalert-file"));
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "a\0b", 3), 3);
    close(fd);
    assert_int_equal(s_parse(&cli, "user", "edit", "5", "--gpgkey-file", path, NULL), -1);
    assert_non_null(strstr(s_err, "is not UTF-8 text"));
    unlink(path);
    assert_int_equal(s_parse(&cli, "user", "edit", "5", "--gpgkey-file", path, NULL), -1);
    assert_non_null(strstr(s_err, "cannot open"));
}

static void test_conn_precedence(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_cli_homeXXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/env", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "ADMINBUS_URL=tcp://file:1\nADMINBUS_AUTHKEY=filekey\n");
    fclose(f);
    setenv("ADMINBUS_HOME", dir, 1);
    setenv("ADMINBUS_URL", "tcp://env:1", 1);
    unsetenv("ADMINBUS_AUTHKEY");
    unsetenv("ADMINBUS_EVENTS");
    ctl_conn conn = {0};
    conn.authkey = strdup("flagkey");
    ctl_conn_fill(&conn);
    assert_string_equal(conn.url, "tcp://env:1");
    assert_string_equal(conn.authkey, "flagkey");
    assert_null(conn.events);
    ctl_conn_free(&conn);
    unsetenv("ADMINBUS_URL");
    ctl_conn_fill(&conn);
    assert_string_equal(conn.url, "tcp://file:1");
    assert_string_equal(conn.authkey, "filekey");
    ctl_conn_free(&conn);
    ctl_conn_free(&conn);
    unlink(path);
    rmdir(dir);
    unsetenv("ADMINBUS_HOME");
}

static void test_uuid_and_home(void **state)
{
    (void)state;
    char a[37], b[37];
    assert_int_equal(ctl_uuid_v4(a), 0);
    assert_int_equal(ctl_uuid_v4(b), 0);
    assert_true(ab_uuid_valid(a, strlen(a)));
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
    assert_string_not_equal(a, b);
    char *home = ctl_default_home();
    size_t n = strlen(home);
    assert_true(n >= 4 && strcmp(home + n - 4, "/var") == 0);
    free(home);
}

/* --- rendering -------------------------------------------------------------------- */

static void test_format_time(void **state)
{
    (void)state;
    char buf[48];
    ctl_format_time(0, buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    ctl_format_time(1795334462123LL, buf, sizeof buf);
    assert_string_equal(buf, "2026-11-22T08:01:02.123Z");
    ctl_format_time(-1, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

/* Unpack bytes packed by fill into *u. */
static const msgpack_object *s_build(msgpack_sbuffer *sb, msgpack_unpacked *u,
                                     void (*fill)(msgpack_packer *))
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    fill(&pk);
    msgpack_unpacked_init(u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(u, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    return &u->data;
}

static void s_fill_org_list(msgpack_packer *pk)
{
    ab_reply_begin_ok(pk, UUID);
    msgpack_pack_map(pk, 3);
    ab_pack_cstr(pk, "items");
    msgpack_pack_array(pk, 2);
    for (int i = 1; i <= 2; i++) {
        msgpack_pack_map(pk, 4);
        ab_pack_cstr(pk, "id");
        msgpack_pack_int(pk, i);
        ab_pack_cstr(pk, "name");
        ab_pack_cstr(pk, i == 1 ? "ACME" : "Ünïcode Org");
        ab_pack_cstr(pk, "local");
        msgpack_pack_true(pk);
        ab_pack_cstr(pk, "date_created");
        msgpack_pack_int64(pk, 1795334462123LL);
    }
    ab_pack_cstr(pk, "total");
    msgpack_pack_int(pk, 2);
    ab_pack_cstr(pk, "page");
    msgpack_pack_int(pk, 1);
}

/* Render reply as type into strings *out and *errs (caller frees). */
static int s_render(const msgpack_object *reply, const char *type, bool json, char **out,
                    char **errs)
{
    size_t n1, n2;
    FILE *fo = open_memstream(out, &n1), *fe = open_memstream(errs, &n2);
    int rc = ctl_render_reply(reply, type, json, fo, fe);
    fclose(fo);
    fclose(fe);
    return rc;
}

static void test_render_table(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    const msgpack_object *reply = s_build(&sb, &u, s_fill_org_list);
    char *out, *errs;
    assert_int_equal(s_render(reply, "org.list", false, &out, &errs), 0);
    assert_non_null(strstr(out, "ID  NAME         UUID  NATIONALITY"));
    assert_non_null(strstr(out, "\n1   ACME                           "));
    assert_non_null(strstr(out, "\n2   Ünïcode Org"));
    assert_non_null(strstr(out, "\n2 of 2 (page 1)\n"));
    free(out);
    free(errs);
    assert_int_equal(s_render(reply, "thing.list", false, &out, &errs), 0);
    assert_non_null(strstr(out, "ID  NAME         LOCAL  DATE_CREATED\n"));
    assert_non_null(strstr(out, "2026-11-22T08:01:02.123Z"));
    free(out);
    free(errs);
    assert_int_equal(s_render(reply, "org.list", true, &out, &errs), 0);
    assert_non_null(strstr(out, "\"date_created\": 1795334462123"));
    assert_non_null(strstr(out, "\"total\": 2"));
    free(out);
    free(errs);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void s_fill_role_list(msgpack_packer *pk)
{
    ab_reply_begin_ok(pk, UUID);
    msgpack_pack_map(pk, 1);
    ab_pack_cstr(pk, "items");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 4);
    ab_pack_cstr(pk, "id");
    msgpack_pack_int(pk, 7);
    ab_pack_cstr(pk, "name");
    ab_pack_cstr(pk, "Analyst");
    ab_pack_cstr(pk, "permission");
    ab_pack_cstr(pk, "manage_org");
    ab_pack_cstr(pk, "perms");
    msgpack_pack_array(pk, 2);
    ab_pack_cstr(pk, "audit");
    ab_pack_cstr(pk, "tagger");
}

/* A list of strings in a table cell is joined with ", " (JSON keeps the array). */
static void test_render_role_list(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    const msgpack_object *reply = s_build(&sb, &u, s_fill_role_list);
    char *out, *errs;
    assert_int_equal(s_render(reply, "role.list", false, &out, &errs), 0);
    assert_non_null(strstr(out, "ID  NAME     PERMISSION  PERMS"));
    assert_non_null(strstr(out, "\n7   Analyst  manage_org  audit, tagger"));
    free(out);
    free(errs);
    assert_int_equal(s_render(reply, "role.list", true, &out, &errs), 0);
    assert_non_null(strstr(out, "\"audit\","));
    free(out);
    free(errs);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void s_fill_log(msgpack_packer *pk)
{
    ab_reply_begin_ok(pk, UUID);
    msgpack_pack_map(pk, 1);
    ab_pack_cstr(pk, "items");
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 2);
    ab_pack_cstr(pk, "id");
    msgpack_pack_int(pk, 9);
    ab_pack_cstr(pk, "change");
    ab_pack_cstr(pk, "name (A) => (B), description (a very long text\nthat goes on and on and on "
                     "and on)");
}

static void test_render_truncates_change(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    const msgpack_object *reply = s_build(&sb, &u, s_fill_log);
    char *out, *errs;
    assert_int_equal(s_render(reply, "log.search", false, &out, &errs), 0);
    assert_non_null(strstr(out, "a very long text that goes"));
    assert_non_null(strstr(out, "\xE2\x80\xA6\n"));
    assert_null(strstr(out, "and on)"));
    free(out);
    free(errs);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void s_fill_map(msgpack_packer *pk)
{
    ab_reply_begin_ok(pk, UUID);
    msgpack_pack_map(pk, 3);
    ab_pack_cstr(pk, "user");
    msgpack_pack_map(pk, 2);
    ab_pack_cstr(pk, "email");
    ab_pack_cstr(pk, "admin@example.org");
    ab_pack_cstr(pk, "last_login");
    msgpack_pack_int(pk, 0);
    ab_pack_cstr(pk, "engine");
    ab_pack_cstr(pk, "e1");
    ab_pack_cstr(pk, "bad");
    msgpack_pack_str(pk, 2);
    msgpack_pack_str_body(pk,
                          "\xff"
                          "a",
                          2);
}

static void test_render_map(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    const msgpack_object *reply = s_build(&sb, &u, s_fill_map);
    char *out, *errs;
    assert_int_equal(s_render(reply, "auth.whoami", false, &out, &errs), 0);
    assert_string_equal(out, "user:\n"
                             "  email:      admin@example.org\n"
                             "  last_login: -\n"
                             "engine: e1\n"
                             "bad:    \xEF\xBF\xBD"
                             "a\n");
    free(out);
    free(errs);
    assert_int_equal(s_render(reply, "auth.whoami", true, &out, &errs), 0);
    assert_non_null(strstr(out, "\"bad\": \"\xEF\xBF\xBD"
                                "a\""));
    free(out);
    free(errs);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

/* Times by the naming rule: ms for "ts" and keys ending in a moment word, seconds for
 * "…_time"; integers only; other numbers (counts, ids, "…_by", "last_job_id") as they are. */
static void s_fill_times(msgpack_packer *pk)
{
    static const char *const keys[] = {"modified", "expires", "first_seen",         "last_seen",
                                       "run_at",   "ts",      "created_by",         "last_job_id",
                                       "sent",     "logins",  "next_execution_time"};
    ab_reply_begin_ok(pk, UUID);
    msgpack_pack_map(pk, 12);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        ab_pack_cstr(pk, keys[i]);
        if (i < 6)
            msgpack_pack_int64(pk, 1795334462123LL);
        else if (i < 10)
            msgpack_pack_int(pk, 42);
        else
            msgpack_pack_int64(pk, 1795334462LL);
    }
    ab_pack_cstr(pk, "created");
    msgpack_pack_true(pk);
}

static void test_render_times_by_name(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    const msgpack_object *reply = s_build(&sb, &u, s_fill_times);
    char *out, *errs;
    assert_int_equal(s_render(reply, "role.view", false, &out, &errs), 0);
    assert_string_equal(out, "modified:            2026-11-22T08:01:02.123Z\n"
                             "expires:             2026-11-22T08:01:02.123Z\n"
                             "first_seen:          2026-11-22T08:01:02.123Z\n"
                             "last_seen:           2026-11-22T08:01:02.123Z\n"
                             "run_at:              2026-11-22T08:01:02.123Z\n"
                             "ts:                  2026-11-22T08:01:02.123Z\n"
                             "created_by:          42\n"
                             "last_job_id:         42\n"
                             "sent:                42\n"
                             "logins:              42\n"
                             "next_execution_time: 2026-11-22T08:01:02Z\n"
                             "created:             true\n");
    free(out);
    free(errs);
    assert_int_equal(s_render(reply, "role.view", true, &out, &errs), 0);
    assert_non_null(strstr(out, "\"modified\": 1795334462123"));
    assert_non_null(strstr(out, "\"next_execution_time\": 1795334462"));
    free(out);
    free(errs);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

static void s_fill_error(msgpack_packer *pk)
{
    ab_error err;
    ab_fail(&err, AB_E_INVALID, "name", "name is required");
    ab_reply_pack_error(pk, UUID, &err);
}

static void s_fill_garbage(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    ab_pack_cstr(pk, "v");
    msgpack_pack_int(pk, 1);
}

static void test_render_error(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    const msgpack_object *reply = s_build(&sb, &u, s_fill_error);
    char *out, *errs;
    assert_int_equal(s_render(reply, "org.add", false, &out, &errs), CTL_EXIT_REFUSED);
    assert_string_equal(errs, "adminctl: invalid: name is required (field: name)\n");
    assert_string_equal(out, "");
    free(out);
    free(errs);
    assert_int_equal(s_render(reply, "org.add", true, &out, &errs), CTL_EXIT_REFUSED);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_false(json_object_get(j, "ok")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "invalid");
    json_decref(j);
    free(out);
    free(errs);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    reply = s_build(&sb, &u, s_fill_garbage);
    assert_int_equal(s_render(reply, "org.add", false, &out, &errs), CTL_EXIT_UNREACHABLE);
    free(out);
    free(errs);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

/* --- help ------------------------------------------------------------------------- */

static void test_help_mentions_every_flag(void **state)
{
    (void)state;
    for (size_t i = 0; i < ab_catalog_len; i++) {
        const ab_command *c = &ab_catalog[i];
        char *text;
        size_t n;
        FILE *f = open_memstream(&text, &n);
        ctl_help_command(f, c);
        fclose(f);
        assert_non_null(strstr(text, c->summary));
        for (size_t j = 0; j < c->nargs; j++) {
            char flag[160];
            ctl_flag_name(c->args[j].name, flag, sizeof flag);
            if (!strstr(text, flag))
                fail_msg("help of %s lacks %s", c->type, flag);
        }
        free(text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words_and_flags),
        cmocka_unit_test(test_plural_and_shortcut),
        cmocka_unit_test(test_bool_forms),
        cmocka_unit_test(test_int_strict),
        cmocka_unit_test(test_enum_choices),
        cmocka_unit_test(test_strs_flags),
        cmocka_unit_test(test_unknown_option),
        cmocka_unit_test(test_positional),
        cmocka_unit_test(test_globals),
        cmocka_unit_test(test_command_words),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_pack_decodes),
        cmocka_unit_test(test_envfile),
        cmocka_unit_test(test_text_from_file),
        cmocka_unit_test(test_conn_precedence),
        cmocka_unit_test(test_uuid_and_home),
        cmocka_unit_test(test_format_time),
        cmocka_unit_test(test_render_table),
        cmocka_unit_test(test_render_role_list),
        cmocka_unit_test(test_render_truncates_change),
        cmocka_unit_test(test_render_map),
        cmocka_unit_test(test_render_times_by_name),
        cmocka_unit_test(test_render_error),
        cmocka_unit_test(test_help_mentions_every_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
