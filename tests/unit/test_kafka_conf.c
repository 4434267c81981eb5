/* test_kafka_conf.c — where event records land (broker/kafka/kafka_conf.h): the stream part of an
 * event topic, and a producer made with ab_kafka_order_events putting every event of one
 * job on one partition, checked with the delivery reports of librdkafka's in-process mock
 * cluster (test.mock.num.brokers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kafka/kafka_conf.h"

static size_t s_stream(const char *topic)
{
    return ab_event_stream_len(topic, strlen(topic));
}

static void stream_is_the_first_two_segments(void **state)
{
    (void)state;
    assert_int_equal(s_stream("job.42.progress"), strlen("job.42"));
    assert_int_equal(s_stream("job.42.progress.extra"), strlen("job.42"));
    assert_int_equal(s_stream("audit.User.edit"), strlen("audit.User"));
    assert_int_equal(s_stream("wake.default"), strlen("wake.default"));
    assert_int_equal(s_stream("job"), strlen("job"));
    assert_int_equal(s_stream(""), 0);
    assert_int_equal(s_stream("a..b"), strlen("a."));
    /* only len bytes are read: "job.42" of a longer buffer */
    assert_int_equal(ab_event_stream_len("job.42.done", 6), 6);
}

enum { JOBS = 24, EVENTS = 4 };
static const char *const s_names[EVENTS] = {"queued", "started", "progress", "done"};

typedef struct {
    int32_t partition[JOBS][EVENTS];
    int reports, failed;
} s_placed;

static void s_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    s_placed *p = opaque;
    intptr_t tag = (intptr_t)m->_private;
    p->reports++;
    if (m->err) {
        p->failed++;
        return;
    }
    p->partition[tag / EVENTS][tag % EVENTS] = m->partition;
}

static void one_jobs_events_share_a_partition(void **state)
{
    (void)state;
    static const char *const defaults[] = {"test.mock.num.brokers", "1", "linger.ms", "1"};
    char err[512];
    rd_kafka_conf_t *conf = ab_kafka_conf_new("", defaults, 2, NULL, NULL, 0, err, sizeof err);
    assert_non_null(conf);
    static const char events[] = "ab-unit.events";
    s_placed placed = {0};
    rd_kafka_conf_set_opaque(conf, &placed);
    rd_kafka_conf_set_dr_msg_cb(conf, s_report);
    ab_kafka_order_events(conf, events);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    for (int j = 0; j < JOBS; j++)
        for (int e = 0; e < EVENTS; e++) {
            char key[64];
            snprintf(key, sizeof key, "job.%d.%s", 1000 + j, s_names[e]);
            intptr_t tag = j * EVENTS + e;
            assert_int_equal(rd_kafka_producev(
                                 rk, RD_KAFKA_V_TOPIC(events), RD_KAFKA_V_KEY(key, strlen(key)),
                                 RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_OPAQUE((void *)tag), RD_KAFKA_V_END),
                             RD_KAFKA_RESP_ERR_NO_ERROR);
        }
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
    assert_int_equal(placed.reports, JOBS * EVENTS);
    assert_int_equal(placed.failed, 0);
    int used[64] = {0};
    for (int j = 0; j < JOBS; j++) {
        for (int e = 1; e < EVENTS; e++)
            assert_int_equal(placed.partition[j][e], placed.partition[j][0]);
        assert_in_range(placed.partition[j][0], 0, 63);
        used[placed.partition[j][0]] = 1;
    }
    /* the jobs themselves are spread: the stream is hashed, not pinned to one partition */
    int n = 0;
    for (int i = 0; i < 64; i++)
        n += used[i];
    assert_true(n > 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream_is_the_first_two_segments),
        cmocka_unit_test(one_jobs_events_share_a_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
