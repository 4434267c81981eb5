/* test_config.c — bootstrap configuration (broker/wire/config.h): defaults < file <
 * environment < flags, the file's strictness, DSN parsing, and the internal endpoints'
 * auto and checks (broker/wire/endpoint.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "wire/config.h"
#include "wire/endpoint.h"

static const char *const s_env[] = {
    "ADMINBUS_HOME",
    "ADMINBUS_DB_DSN",
    "ADMINBUS_COMMANDS_ENDPOINT",
    "ADMINBUS_EVENTS_ENDPOINT",
    "ADMINBUS_ENGINE_ENDPOINT",
    "ADMINBUS_PUBLISH_ENDPOINT",
    "ADMINBUS_NOTICES_ENDPOINT",
    "ADMINBUS_MAX_FRAME",
    "ADMINBUS_BATCH_MAX",
    "ADMINBUS_COMMAND_RETENTION_DAYS",
    "ADMINBUS_LOG_LEVEL",
};

typedef struct {
    char home[64];
    char conf[128];
} fixture;

/* Each test gets an empty home folder and an environment without ADMINBUS_*. */
static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    snprintf(fx->home, sizeof fx->home, "/tmp/abcfg.XXXXXX");
    if (!mkdtemp(fx->home))
        return -1;
    snprintf(fx->conf, sizeof fx->conf, "%s/adminbus.conf", fx->home);
    for (size_t i = 0; i < sizeof s_env / sizeof s_env[0]; i++)
        unsetenv(s_env[i]);
    setenv("ADMINBUS_HOME", fx->home, 1);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    unlink(fx->conf);
    rmdir(fx->home);
    free(fx);
    return 0;
}

static void write_conf(const fixture *fx, const char *text)
{
    FILE *f = fopen(fx->conf, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Load with the given arguments (argv[0] added); returns the rc. */
static int load(ab_config *cfg, int *argc, char **argv, char *err, size_t errlen)
{
    err[0] = '\0';
    return ab_config_load(cfg, argc, argv, err, errlen);
}

static void test_defaults(void **state)
{
    fixture *fx = *state;
    char *argv[] = {"prog", NULL};
    int argc = 1;
    ab_config cfg;
    char err[256];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), 0);
    assert_string_equal(cfg.home, fx->home);
    assert_string_equal(cfg.commands_endpoint, "tcp://127.0.0.1:7810");
    assert_string_equal(cfg.max_frame, "1048576");
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.db_dsn, "");
    assert_string_equal(ab_config_get(&cfg, "events_endpoint"), "tcp://127.0.0.1:7811");
    assert_string_equal(ab_config_get(&cfg, "events-endpoint"), "tcp://127.0.0.1:7811");
    assert_null(ab_config_get(&cfg, "no_such_key"));
    ab_config_free(&cfg);
    ab_config_free(&cfg); /* safe twice */
}

/* Load with one flag; expect the internal check of key to fail saying needle. */
static void s_internal_refused(const char *flag, const char *key, const char *needle)
{
    char *argv[] = {"prog", (char *)flag, NULL};
    int argc = 2;
    ab_config cfg;
    char err[1024];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), 0);
    assert_int_equal(ab_internal_check(&cfg, key, err, sizeof err), -1);
    if (!strstr(err, needle))
        fail_msg("%s: expected '%s' in: %s", flag, needle, err);
    ab_config_free(&cfg);
}

static void test_internal_endpoints(void **state)
{
    fixture *fx = *state;
    char *argv[] = {"prog", "--publish-endpoint=tcp://127.0.0.1:1", NULL};
    int argc = 2;
    ab_config cfg;
    char err[1024], want[256], real[128];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), 0);
    /* auto is resolved at load to the home's absolute path, for every process alike */
    assert_non_null(realpath(fx->home, real));
    snprintf(want, sizeof want, "ipc://%s/engine.sock", real);
    assert_string_equal(cfg.engine_endpoint, want);
    snprintf(want, sizeof want, "ipc://%s/notices.sock", real);
    assert_string_equal(ab_config_get(&cfg, "notices_endpoint"), want);
    assert_string_equal(cfg.publish_endpoint, "tcp://127.0.0.1:1");
    assert_true(ab_internal_is(&cfg, cfg.engine_endpoint));
    assert_true(ab_internal_is(&cfg, "tcp://127.0.0.1:1"));
    assert_false(ab_internal_is(&cfg, cfg.commands_endpoint));
    assert_int_equal(ab_internal_check(&cfg, "engine_endpoint", err, sizeof err), 0);
    assert_int_equal(ab_internal_check(&cfg, "publish_endpoint", err, sizeof err), 0);
    assert_int_equal(ab_internal_check(&cfg, "notices_endpoint", err, sizeof err), 0);
    ab_config_free(&cfg);

    s_internal_refused("--engine-endpoint=ipc://relative.sock", "engine_endpoint",
                       "must be absolute");
    s_internal_refused("--engine-endpoint=ipc://@abstract", "engine_endpoint", "must be absolute");
    s_internal_refused("--publish-endpoint=ipc:///tmp/x.sock", "publish_endpoint",
                       "writable by nobody else");
    s_internal_refused("--notices-endpoint=ipc:///no/such/folder/x.sock", "notices_endpoint",
                       "No such file");
    s_internal_refused("--notices-endpoint=ws://127.0.0.1:1", "notices_endpoint",
                       "must be auto, ipc:///PATH or tcp://HOST:PORT");
    char over[160] = "--engine-endpoint=ipc:///";
    memset(over + strlen(over), 'x', 110);
    s_internal_refused(over, "engine_endpoint", "longer than the 107 bytes");
}

/* A home whose socket paths would be too long: auto stays auto, and the check says why
 * and what to set instead. */
static void test_internal_endpoints_long_home(void **state)
{
    fixture *fx = *state;
    char home[256];
    snprintf(home, sizeof home, "%s/", fx->home);
    memset(home + strlen(home), 'h', 100);
    assert_int_equal(mkdir(home, 0700), 0);
    setenv("ADMINBUS_HOME", home, 1);
    char *argv[] = {"prog", NULL};
    int argc = 1;
    ab_config cfg;
    char err[1024];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), 0);
    assert_string_equal(cfg.engine_endpoint, "auto");
    assert_int_equal(ab_internal_check(&cfg, "engine_endpoint", err, sizeof err), -1);
    assert_non_null(strstr(err, "engine.sock is longer than the 107 bytes"));
    assert_non_null(strstr(err, "set engine_endpoint=ipc:///SHORT/PATH"));
    ab_config_free(&cfg);
    rmdir(home);
}

static void test_precedence(void **state)
{
    fixture *fx = *state;
    write_conf(fx, "# comment\n\n  max_frame = 100  \nlog_level=warn\nbatch_max=7\n"
                   "commands_endpoint=ipc:///tmp/file\n");
    setenv("ADMINBUS_MAX_FRAME", "200", 1);
    setenv("ADMINBUS_LOG_LEVEL", "error", 1);
    char *argv[] = {"prog", "--max-frame", "300", "positional", "--unknown", "--batch_max=9", NULL};
    int argc = 6;
    ab_config cfg;
    char err[256];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), 0);
    assert_string_equal(cfg.max_frame, "300");   /* flag beats env and file */
    assert_string_equal(cfg.log_level, "error"); /* env beats file */
    assert_string_equal(cfg.batch_max, "9");     /* flag (--key=value) beats file */
    assert_string_equal(cfg.commands_endpoint, "ipc:///tmp/file"); /* file beats default */
    assert_string_equal(cfg.events_endpoint, "tcp://127.0.0.1:7811");
    /* Config flags are consumed; the rest stay in order for the caller. */
    assert_int_equal(argc, 3);
    assert_string_equal(argv[1], "positional");
    assert_string_equal(argv[2], "--unknown");
    assert_null(argv[3]);
    ab_config_free(&cfg);
}

/* Pass-through Kafka properties (issue 7): kafka.<property> in the file, then
 * ADMINBUS_KAFKA__<PROPERTY>, then --kafka.<property>; ab_config_export writes them back. */
static const char *prop(const ab_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nkafka; i++)
        if (strcmp(cfg->kafka[i].name, name) == 0)
            return cfg->kafka[i].value;
    return NULL;
}

static void test_kafka_properties(void **state)
{
    fixture *fx = *state;
    write_conf(fx, "transport = kafka\nkafka.security.protocol = SSL\n"
                   "kafka.sasl.username = file\nkafka.ssl.ca.location = /ca.pem\n");
    setenv("ADMINBUS_KAFKA__SASL_USERNAME", "env", 1);
    setenv("ADMINBUS_KAFKA__SECURITY_PROTOCOL", "SASL_SSL", 1);
    char *argv[] = {
        "prog", "--kafka.security.protocol", "SASL_PLAINTEXT", "--kafka.linger.ms=7", "rest", NULL};
    int argc = 5;
    ab_config cfg;
    char err[256];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), 0);
    unsetenv("ADMINBUS_KAFKA__SASL_USERNAME");
    unsetenv("ADMINBUS_KAFKA__SECURITY_PROTOCOL");
    assert_string_equal(cfg.transport, "kafka");
    assert_string_equal(cfg.kafka_commands_topic, "adminbus.commands");
    assert_string_equal(prop(&cfg, "security.protocol"), "SASL_PLAINTEXT"); /* flag wins */
    assert_string_equal(prop(&cfg, "sasl.username"), "env");                /* env beats file */
    assert_string_equal(prop(&cfg, "ssl.ca.location"), "/ca.pem");
    assert_string_equal(prop(&cfg, "linger.ms"), "7");
    assert_int_equal(cfg.nkafka, 4);
    assert_int_equal(argc, 2);
    assert_string_equal(argv[1], "rest");
    assert_int_equal(ab_config_export(&cfg), 0);
    assert_string_equal(getenv("ADMINBUS_KAFKA__LINGER_MS"), "7");
    unsetenv("ADMINBUS_KAFKA__LINGER_MS");
    unsetenv("ADMINBUS_KAFKA__SECURITY_PROTOCOL");
    unsetenv("ADMINBUS_KAFKA__SASL_USERNAME");
    unsetenv("ADMINBUS_KAFKA__SSL_CA_LOCATION");
    ab_config_free(&cfg);
    assert_int_equal(cfg.nkafka, 0);
}

static void test_home_flag_finds_file(void **state)
{
    fixture *fx = *state;
    write_conf(fx, "log_level=debug\n");
    unsetenv("ADMINBUS_HOME");
    char home[80];
    snprintf(home, sizeof home, "--home=%s", fx->home);
    char *argv[] = {"prog", home, NULL};
    int argc = 2;
    ab_config cfg;
    char err[256];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), 0);
    assert_string_equal(cfg.home, fx->home);
    assert_string_equal(cfg.log_level, "debug");
    assert_int_equal(argc, 1);
    ab_config_free(&cfg);
}

static void test_file_unknown_key(void **state)
{
    fixture *fx = *state;
    write_conf(fx, "log_level=info\nlog_levle=debug\n");
    char *argv[] = {"prog", NULL};
    int argc = 1;
    ab_config cfg;
    char err[256];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown key"));
    assert_non_null(strstr(err, "log_levle"));
    assert_non_null(strstr(err, ":2:")); /* names the line */
    ab_config_free(&cfg);
}

static void test_file_bad_line(void **state)
{
    fixture *fx = *state;
    write_conf(fx, "just words\n");
    char *argv[] = {"prog", NULL};
    int argc = 1;
    ab_config cfg;
    char err[256];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), -1);
    assert_non_null(strstr(err, "KEY=value"));
    ab_config_free(&cfg);
}

static void test_flag_without_value(void **state)
{
    (void)state;
    char *argv[] = {"prog", "--log-level", NULL};
    int argc = 2;
    ab_config cfg;
    char err[256];
    assert_int_equal(load(&cfg, &argc, argv, err, sizeof err), -1);
    assert_non_null(strstr(err, "--log-level"));
    ab_config_free(&cfg);
}

static void test_usage_lists_keys(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ab_config_usage(f);
    fclose(f);
    assert_non_null(strstr(buf, "--commands_endpoint"));
    assert_non_null(strstr(buf, "--max_frame"));
    assert_non_null(strstr(buf, "1048576"));
    free(buf);
}

/* --- DSN -------------------------------------------------------------------------- */

static void test_dsn_full(void **state)
{
    (void)state;
    ab_dsn d;
    char err[256];
    assert_int_equal(ab_dsn_parse("mariadb://misp:s3cret@db.local:3307/misp", &d, err, sizeof err),
                     0);
    assert_string_equal(d.user, "misp");
    assert_string_equal(d.password, "s3cret");
    assert_string_equal(d.host, "db.local");
    assert_int_equal(d.port, 3307);
    assert_string_equal(d.database, "misp");
    assert_null(d.socket);
    ab_dsn_free(&d);
}

static void test_dsn_socket(void **state)
{
    (void)state;
    ab_dsn d;
    char err[256];
    assert_int_equal(
        ab_dsn_parse("mariadb://root@/adminbus?socket=/tmp/ab.sock", &d, err, sizeof err), 0);
    assert_string_equal(d.user, "root");
    assert_null(d.password);
    assert_string_equal(d.host, "");
    assert_int_equal(d.port, 0);
    assert_string_equal(d.database, "adminbus");
    assert_string_equal(d.socket, "/tmp/ab.sock");
    ab_dsn_free(&d);
}

static void test_dsn_host_without_port(void **state)
{
    (void)state;
    ab_dsn d;
    char err[256];
    assert_int_equal(ab_dsn_parse("mariadb://u:p@127.0.0.1/db", &d, err, sizeof err), 0);
    assert_string_equal(d.host, "127.0.0.1");
    assert_int_equal(d.port, 0);
    assert_string_equal(d.database, "db");
    ab_dsn_free(&d);
}

static void test_dsn_errors(void **state)
{
    (void)state;
    const char *bad[] = {"", "mysql://u@h/db", "mariadb://u@h", "mariadb://host/db",
                         "mariadb://u@h/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ab_dsn d;
        char err[256] = "";
        assert_int_equal(ab_dsn_parse(bad[i], &d, err, sizeof err), -1);
        assert_true(err[0] != '\0');
        ab_dsn_free(&d);
    }
    ab_dsn d;
    char err[256];
    assert_int_equal(ab_dsn_parse(NULL, &d, err, sizeof err), -1);
    /* parameters: precise refusals */
    const char *bad_params[] = {
        "mariadb://u@h/db?timeout=0",          "mariadb://u@h/db?timeout=-5",
        "mariadb://u@h/db?timeout=86401",      "mariadb://u@h/db?timeout=2s",
        "mariadb://u@h/db?timeout=",           "mariadb://u@h/db?colour=red",
        "mariadb://u@h/db?socket=/a&socket=/b"};
    for (size_t i = 0; i < sizeof bad_params / sizeof bad_params[0]; i++) {
        err[0] = '\0';
        assert_int_equal(ab_dsn_parse(bad_params[i], &d, err, sizeof err), -1);
        assert_non_null(strstr(err, i < 5 ? "timeout" : "parameter"));
        ab_dsn_free(&d);
    }
}

static void test_dsn_timeout(void **state)
{
    (void)state;
    ab_dsn d;
    char err[256];
    assert_int_equal(ab_dsn_parse("mariadb://u@h/db", &d, err, sizeof err), 0);
    assert_int_equal(d.timeout_s, AB_DSN_TIMEOUT_S);
    ab_dsn_free(&d);
    assert_int_equal(
        ab_dsn_parse("mariadb://u@/db?socket=/tmp/x.sock&timeout=7", &d, err, sizeof err), 0);
    assert_string_equal(d.socket, "/tmp/x.sock");
    assert_int_equal(d.timeout_s, 7);
    ab_dsn_free(&d);
    assert_int_equal(ab_dsn_parse("mariadb://u@/db?timeout=86400&socket=/s", &d, err, sizeof err),
                     0);
    assert_string_equal(d.socket, "/s");
    assert_int_equal(d.timeout_s, 86400);
    ab_dsn_free(&d);
}

/* User and password are percent-decoded; the host begins after the last '@' of the
 * authority, so '@' and ':' may also stay as they are. */
static void test_dsn_encoded_credentials(void **state)
{
    (void)state;
    ab_dsn d;
    char err[256];
    assert_int_equal(ab_dsn_parse("mariadb://u:p%40ss@db.example/adminbus", &d, err, sizeof err),
                     0);
    assert_string_equal(d.user, "u");
    assert_string_equal(d.password, "p@ss");
    assert_string_equal(d.host, "db.example");
    assert_string_equal(d.database, "adminbus");
    ab_dsn_free(&d);
    assert_int_equal(ab_dsn_parse("mariadb://a%3Ab%2f:p%40%3a%2F%25%3F%23x@h:3307/db?timeout=9", &d,
                                  err, sizeof err),
                     0);
    assert_string_equal(d.user, "a:b/");
    assert_string_equal(d.password, "p@:/%?#x");
    assert_string_equal(d.host, "h");
    assert_int_equal(d.port, 3307);
    assert_int_equal(d.timeout_s, 9);
    ab_dsn_free(&d);
    assert_int_equal(ab_dsn_parse("mariadb://u:p@ss:w:x@/db?socket=/s@k", &d, err, sizeof err), 0);
    assert_string_equal(d.password, "p@ss:w:x");
    assert_string_equal(d.host, "");
    assert_string_equal(d.socket, "/s@k");
    ab_dsn_free(&d);
    assert_int_equal(ab_dsn_parse("mariadb://u:@h/db", &d, err, sizeof err), 0);
    assert_string_equal(d.password, "");
    ab_dsn_free(&d);
}

/* A '%' that starts no escape, %00, a bad port, a raw '/' '?' or '#' in a password: each
 * refused with a message that says what and where, and never shows the password. */
static void test_dsn_encoding_errors(void **state)
{
    (void)state;
    const struct {
        const char *dsn, *needle;
    } bad[] = {
        {"mariadb://u:se%zzcret@h/db", "password has a '%' at character 3"},
        {"mariadb://u:secret%4@h/db", "password has a '%' at character 7"},
        {"mariadb://u:secret%@h/db", "password has a '%' at character 7"},
        {"mariadb://u:se%00cret@h/db", "password has a '%' at character 3"},
        {"mariadb://us%g1:secret@h/db", "user has a '%' at character 3"},
        {"mariadb://u:sec/ret@h/db", "'/', '?' and '#' are written %2F, %3F and %23"},
        {"mariadb://u:sec?ret@h/db", "'/', '?' and '#' are written %2F, %3F and %23"},
        {"mariadb://u:sec#ret@h/db", "'/', '?' and '#' are written %2F, %3F and %23"},
        {"mariadb://u:secret@h:0/db", "port must be a number from 1 to 65535 (got '0')"},
        {"mariadb://u:secret@h:65536/db", "port must be a number from 1 to 65535"},
        {"mariadb://u:secret@h:/db", "port must be a number from 1 to 65535 (got '')"},
        {"mariadb://u:secret@h:33o6/db", "port must be a number from 1 to 65535 (got '33o6')"},
        {"mysql://u:secret@h/db", "must start with mariadb:// (got 'mysql…')"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ab_dsn d;
        char err[256] = "";
        assert_int_equal(ab_dsn_parse(bad[i].dsn, &d, err, sizeof err), -1);
        if (!strstr(err, bad[i].needle))
            fail_msg("%s: got '%s', expected '%s'", bad[i].dsn, err, bad[i].needle);
        assert_null(strstr(err, "cret"));
        assert_null(d.user);
        assert_null(d.password);
        ab_dsn_free(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test(test_dsn_timeout),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_internal_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_internal_endpoints_long_home, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kafka_properties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_home_flag_finds_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_bad_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flag_without_value, setup, teardown),
        cmocka_unit_test(test_usage_lists_keys),
        cmocka_unit_test(test_dsn_full),
        cmocka_unit_test(test_dsn_socket),
        cmocka_unit_test(test_dsn_host_without_port),
        cmocka_unit_test(test_dsn_errors),
        cmocka_unit_test(test_dsn_encoded_credentials),
        cmocka_unit_test(test_dsn_encoding_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
