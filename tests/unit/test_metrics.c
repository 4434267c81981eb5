/* test_metrics — the engine's command counters (metrics.h): outcomes, latency buckets, the
 * stats event's shape (only the types seen), and loops counting while the publisher sums. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "catalog.h"
#include "wire/envelope.h"
#include "core/metrics.h"

static const ab_command *s_cmd(const char *type)
{
    const ab_command *c = ab_catalog_find(type, strlen(type));
    assert_non_null(c);
    return c;
}

/* The event's data map, decoded into u from body (strings point into body: the caller
 * destroys u, then body). */
static const msgpack_object *s_event_data(ab_metrics *m, msgpack_sbuffer *body, msgpack_unpacked *u,
                                          char *topic, size_t tlen)
{
    msgpack_sbuffer_init(body);
    assert_int_equal(ab_metrics_event(m, 1700000000000, 5000, topic, tlen, body), 0);
    msgpack_unpacked_init(u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(u, body->data, body->size, &off), MSGPACK_UNPACK_SUCCESS);
    return ab_map_get(&u->data, "data");
}

static uint64_t s_uint(const msgpack_object *map, const char *key)
{
    const msgpack_object *v = ab_map_get(map, key);
    assert_non_null(v);
    assert_int_equal(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    return v->via.u64;
}

static void test_outcome_names(void **state)
{
    (void)state;
    assert_string_equal(ab_metrics_outcome_name(AB_OK), "ok");
    assert_string_equal(ab_metrics_outcome_name(AB_E_FORBIDDEN), "forbidden");
    assert_string_equal(ab_metrics_outcome_name(AB_OUTCOME_REPLAYED), "replayed");
}

static void test_event_has_only_the_types_seen(void **state)
{
    (void)state;
    ab_metrics *m = ab_metrics_new(2, "e1", 1690000000000);
    assert_non_null(m);
    ab_metrics_loop *a = ab_metrics_loop_at(m, 0), *b = ab_metrics_loop_at(m, 1);
    assert_null(ab_metrics_loop_at(m, 2));
    ab_metrics_count(a, s_cmd("org.add"), AB_OK, 1000);                   /* <= 1 ms */
    ab_metrics_count(b, s_cmd("org.add"), AB_OK, 1001);                   /* <= 5 ms */
    ab_metrics_count(b, s_cmd("org.add"), AB_OUTCOME_REPLAYED, 20000000); /* +Inf */
    ab_metrics_count(a, NULL, AB_E_INVALID, 0);                           /* unknown type */
    assert_int_equal(ab_metrics_total(m, s_cmd("org.add"), AB_OK), 2);
    char topic[300];
    msgpack_sbuffer body;
    msgpack_unpacked u;
    const msgpack_object *d = s_event_data(m, &body, &u, topic, sizeof topic);
    assert_string_equal(topic, "engine.e1.stats");
    assert_int_equal(s_uint(d, "seq"), 1);
    assert_int_equal(s_uint(d, "loops"), 2);
    const msgpack_object *cmds = ab_map_get(d, "commands");
    assert_int_equal(cmds->via.map.size, 2); /* org.add and unknown, nothing else */
    const msgpack_object *org = ab_map_get(cmds, "org.add");
    assert_int_equal(org->via.map.size, 2);
    assert_int_equal(s_uint(org, "ok"), 2);
    assert_int_equal(s_uint(org, "replayed"), 1);
    assert_int_equal(s_uint(ab_map_get(cmds, "unknown"), "invalid"), 1);
    const msgpack_object *buckets = ab_map_get(ab_map_get(d, "duration"), "buckets");
    assert_int_equal(buckets->via.array.size, AB_METRICS_BUCKETS);
    uint64_t want[AB_METRICS_BUCKETS] = {2, 3, 3, 3, 3, 3, 3, 3, 4}; /* cumulative */
    for (int i = 0; i < AB_METRICS_BUCKETS; i++)
        assert_int_equal(buckets->via.array.ptr[i].via.u64, want[i]);
    assert_int_equal(s_uint(ab_map_get(d, "duration"), "count"), 4);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&body);
    d = s_event_data(m, &body, &u, topic, sizeof topic);
    assert_int_equal(s_uint(d, "seq"), 2);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&body);
    ab_metrics_free(&m);
    assert_null(m);
}

#define S_PER_THREAD 200000

static void *s_count_many(void *arg)
{
    ab_metrics_loop *l = arg;
    const ab_command *c = ab_catalog_find("org.list", 8);
    for (int i = 0; i < S_PER_THREAD; i++)
        ab_metrics_count(l, c, AB_OK, i % 7000);
    return NULL;
}

/* Loops count while the publisher packs events: every event's total is between 0 and the
 * end, totals never go down, and after the loops stop the sum is exact. */
static void test_loops_count_while_the_publisher_sums(void **state)
{
    (void)state;
    ab_metrics *m = ab_metrics_new(2, "e2", 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, s_count_many, ab_metrics_loop_at(m, i)), 0);
    const ab_command *c = s_cmd("org.list");
    uint64_t last = 0;
    for (int k = 0; k < 200; k++) {
        uint64_t now = ab_metrics_total(m, c, AB_OK);
        assert_true(now >= last && now <= 2 * S_PER_THREAD);
        last = now;
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(ab_metrics_total(m, c, AB_OK), 2 * S_PER_THREAD);
    ab_metrics_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_names),
        cmocka_unit_test(test_event_has_only_the_types_seen),
        cmocka_unit_test(test_loops_count_while_the_publisher_sums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
