/* test_curve.c — ZeroMQ CURVE helpers (broker/zmq/curve.h): which endpoints are beyond
 * loopback and which use CURVE, key files (layout, modes, creation once), and the
 * allowed-clients list. Real files in a temporary folder, real zmq_curve_keypair. */
#include <pthread.h>
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

#include "zmq/curve.h"

static void test_loopback(void **state)
{
    (void)state;
    const char *local[] = {"ipc:///tmp/x.sock",    "inproc://x",        "tcp://127.0.0.1:7810",
                           "tcp://127.1.2.3:*",    "tcp://localhost:1", "tcp://[::1]:7810",
                           "ws://127.0.0.1:80/bus"};
    const char *beyond[] = {"tcp://0.0.0.0:7810",        "tcp://*:7810",    "tcp://[::]:7810",
                            "tcp://10.0.0.5:7810",       "tcp://eth0:7810", "tcp://128.0.0.1:1",
                            "pgm://eth0;239.1.1.1:5555", "tcp://127.0.0.1", "ws://*:80"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        assert_true(ab_curve_loopback(local[i]));
    for (size_t i = 0; i < sizeof beyond / sizeof beyond[0]; i++)
        assert_false(ab_curve_loopback(beyond[i]));
}

static ab_config s_cfg(char *commands, char *events, char *engine, char *publish, char *notices,
                       char *mode)
{
    ab_config c;
    memset(&c, 0, sizeof c);
    c.commands_endpoint = commands;
    c.events_endpoint = events;
    c.engine_endpoint = engine;
    c.publish_endpoint = publish;
    c.notices_endpoint = notices;
    c.curve = mode;
    return c;
}

static void test_wanted(void **state)
{
    (void)state;
    char lo1[] = "tcp://127.0.0.1:1", lo2[] = "tcp://127.0.0.1:2", lo3[] = "tcp://127.0.0.1:3",
         wide[] = "tcp://0.0.0.0:1", ipc1[] = "ipc:///run/ab/engine.sock",
         ipc2[] = "ipc:///run/ab/publish.sock", ipc3[] = "ipc:///run/ab/notices.sock",
         other[] = "tcp://127.0.0.1:9", autom[] = "auto", on[] = "on";
    /* the default: clients on loopback, the internal endpoints ipc:// */
    ab_config plain = s_cfg(lo1, lo2, ipc1, ipc2, ipc3, autom);
    assert_false(ab_curve_any(&plain));
    assert_false(ab_curve_clients(&plain));
    assert_false(ab_curve_internal(&plain));
    /* commands beyond loopback: events follow it, the internal endpoints do not */
    ab_config open = s_cfg(wide, lo2, ipc1, ipc2, ipc3, autom);
    assert_true(ab_curve_wanted(&open, wide));
    assert_true(ab_curve_wanted(&open, lo2));
    assert_false(ab_curve_wanted(&open, ipc1));
    assert_false(ab_curve_internal(&open));
    /* an internal endpoint on tcp://, loopback included, is CURVE whatever the mode; the
     * clients' pair stays plain */
    ab_config eng = s_cfg(lo1, lo2, lo3, ipc2, ipc3, autom);
    assert_false(ab_curve_wanted(&eng, lo1));
    assert_true(ab_curve_wanted(&eng, lo3));
    assert_false(ab_curve_wanted(&eng, ipc2));
    assert_true(ab_curve_internal(&eng));
    assert_false(ab_curve_clients(&eng));
    assert_true(ab_curve_any(&eng));
    ab_config notices = s_cfg(lo1, lo2, ipc1, ipc2, wide, autom);
    assert_true(ab_curve_wanted(&notices, wide));
    assert_true(ab_curve_internal(&notices));
    /* an endpoint that is none of the five (a shim's --events written differently) is
     * judged alone, as before */
    assert_false(ab_curve_wanted(&eng, other));
    /* curve=on: the clients' tcp:// endpoints too; ipc:// stays plain */
    ab_config forced = s_cfg(lo1, lo2, ipc1, ipc2, ipc3, on);
    assert_true(ab_curve_wanted(&forced, lo1));
    assert_true(ab_curve_clients(&forced));
    assert_false(ab_curve_wanted(&forced, ipc1));
    assert_false(ab_curve_internal(&forced));
    char err[256];
    assert_int_equal(ab_curve_mode_check("auto", err, sizeof err), 0);
    assert_int_equal(ab_curve_mode_check("off", err, sizeof err), -1);
    assert_non_null(strstr(err, "auto or on"));
}

typedef struct {
    char dir[64];
} s_tmp;

static int setup(void **state)
{
    s_tmp *t = calloc(1, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/ab-curve-XXXXXX");
    if (!mkdtemp(t->dir))
        return -1;
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    s_tmp *t = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->dir);
    int rc = system(cmd);
    free(t);
    return rc == 0 ? 0 : -1;
}

static void test_pairs(void **state)
{
    s_tmp *t = *state;
    char err[1024], path[256];
    ab_curve_pair a, b, c;
    assert_int_equal(ab_curve_pair_ensure(t->dir, "server.key", &a, err, sizeof err), 0);
    assert_true(ab_curve_key_valid(a.pub) && ab_curve_key_valid(a.sec));
    assert_int_equal(ab_curve_pair_ensure(t->dir, "server.key", &b, err, sizeof err), 0);
    assert_string_equal(a.pub, b.pub); /* created once, then read */
    assert_string_equal(a.sec, b.sec);
    ab_curve_path(t->dir, "server.key", path, sizeof path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/curve", t->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* a public certificate: no secret in it, and never overwritten */
    ab_curve_path(t->dir, "server.pub", path, sizeof path);
    assert_int_equal(ab_curve_pair_write(path, &a, false, err, sizeof err), 0);
    assert_int_equal(ab_curve_pair_write(path, &a, false, err, sizeof err), -1);
    assert_int_equal(ab_curve_pair_read(path, &c, false, err, sizeof err), 0);
    assert_string_equal(c.pub, a.pub);
    assert_string_equal(c.sec, "");
    assert_int_equal(ab_curve_pair_read(path, &c, true, err, sizeof err), -1);
    /* a secret readable by others is refused */
    ab_curve_path(t->dir, "server.key", path, sizeof path);
    chmod(path, 0640);
    assert_int_equal(ab_curve_pair_read(path, &c, true, err, sizeof err), -1);
    assert_non_null(strstr(err, "readable by others"));
    /* a public key that is not the secret's is refused */
    ab_curve_pair other, mixed;
    assert_int_equal(ab_curve_pair_generate(&other), 0);
    mixed = a;
    memcpy(mixed.pub, other.pub, sizeof mixed.pub);
    assert_false(ab_curve_pair_matches(&mixed));
    assert_true(ab_curve_pair_matches(&a));
    snprintf(path, sizeof path, "%s/mixed.key", t->dir);
    assert_int_equal(ab_curve_pair_write(path, &mixed, true, err, sizeof err), 0);
    assert_int_equal(ab_curve_pair_read(path, &c, true, err, sizeof err), -1);
    assert_non_null(strstr(err, "does not belong to its secret key"));
    ab_curve_pair_wipe(&a);
    assert_string_equal(a.sec, "");
}

typedef struct {
    const char *home;
    ab_curve_pair pair;
    int rc;
} s_racer;

static void *s_race(void *arg)
{
    s_racer *r = arg;
    char err[1024];
    r->rc = ab_curve_pair_ensure(r->home, "internal.key", &r->pair, err, sizeof err);
    return NULL;
}

/* An engine's apply threads (or several daemons) create the same pair at once: one pair
 * wins and every one of them reads it. */
static void test_pairs_created_at_once(void **state)
{
    s_tmp *t = *state;
    s_racer racers[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        racers[i].home = t->dir;
        assert_int_equal(pthread_create(&th[i], NULL, s_race, &racers[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(racers[i].rc, 0);
        assert_string_equal(racers[i].pair.pub, racers[0].pair.pub);
        assert_string_equal(racers[i].pair.sec, racers[0].pair.sec);
    }
}

static void test_allowed(void **state)
{
    s_tmp *t = *state;
    char err[1024], path[256];
    ab_curve_pair k1, k2, k3;
    assert_int_equal(ab_curve_pair_generate(&k1), 0);
    assert_int_equal(ab_curve_pair_generate(&k3), 0);
    /* Z85 keys may hold a '#': a comment must follow white space */
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(ab_curve_pair_generate(&k2), 0);
        if (strchr(k2.pub, '#'))
            break;
    }
    assert_non_null(strchr(k2.pub, '#'));
    snprintf(path, sizeof path, "%s/allowed", t->dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# operators\n\n  %s  # laptop\n%s\n#%s\n", k1.pub, k2.pub, "comment");
    fclose(f);
    int n = 0;
    bool found = false;
    assert_int_equal(ab_curve_allowed_scan(path, k1.pub, &n, &found, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_true(found);
    assert_int_equal(ab_curve_allowed_scan(path, k2.pub, &n, &found, err, sizeof err), 0);
    assert_true(found);
    assert_int_equal(ab_curve_allowed_scan(path, k3.pub, &n, &found, err, sizeof err), 0);
    assert_false(found);
    f = fopen(path, "a");
    fprintf(f, "tooshort\n");
    fclose(f);
    assert_int_equal(ab_curve_allowed_scan(path, k1.pub, &n, &found, err, sizeof err), -1);
    assert_non_null(strstr(err, ":6: not a Z85 public key"));
    snprintf(path, sizeof path, "%s/none", t->dir);
    assert_int_equal(ab_curve_allowed_scan(path, NULL, &n, &found, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_wanted),
        cmocka_unit_test_setup_teardown(test_pairs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairs_created_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allowed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
