/* test_kafka_pending.c — the FIFO that decides which command offsets the Kafka transport may
 * store (broker/kafka/kafka_pending.h): in batch order per partition, only once every reply is
 * acknowledged, never for a redelivered or revoked batch, and a lost reply rewinds its
 * partition. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kafka/kafka_pending.h"

#define MAX 8

typedef struct {
    int n;
    int32_t partition[16];
    int64_t offset[16];
} s_seen;

static void s_emit(void *arg, int32_t partition, int64_t offset)
{
    s_seen *s = arg;
    s->partition[s->n] = partition;
    s->offset[s->n] = offset;
    s->n++;
}

/* The last offset emitted for partition in s, or -1. */
static int64_t s_at(const s_seen *s, int32_t partition)
{
    int64_t at = -1;
    for (int i = 0; i < s->n; i++)
        if (s->partition[i] == partition)
            at = s->offset[i];
    return at;
}

static s_seen s_ready(ab_kpending *p)
{
    s_seen s = {0};
    ab_kpending_ready(p, s_emit, &s);
    return s;
}

static s_seen s_rewinds(ab_kpending *p)
{
    s_seen s = {0};
    ab_kpending_rewinds(p, s_emit, &s);
    return s;
}

/* Read commands at offsets [from, to) of partition, send one reply each; returns the part. */
static ab_kpart *s_batch_part(ab_kpending *p, int32_t partition, int64_t from, int64_t to)
{
    for (int64_t o = from; o < to; o++)
        assert_int_equal(ab_kpending_read(p, MAX, partition, o), 0);
    ab_kpart *part = ab_kpending_part(p, partition);
    assert_non_null(part);
    for (int64_t o = from; o < to; o++)
        ab_kpending_sent(part);
    return part;
}

static void s_ack(ab_kpart *part, int n, bool delivered)
{
    for (int i = 0; i < n; i++)
        ab_kpending_acked(part, delivered);
}

static void test_offsets_wait_for_every_reply(void **state)
{
    (void)state;
    ab_kpending *p = ab_kpending_new();
    ab_kpart *a = s_batch_part(p, 0, 10, 13);
    ab_kpending_close(p, false);
    s_ack(a, 2, true);
    assert_int_equal(s_ready(p).n, 0); /* one reply of three still out */
    s_ack(a, 1, true);
    s_seen s = s_ready(p);
    assert_int_equal(s.n, 1);
    assert_int_equal(s_at(&s, 0), 13);
    assert_int_equal(ab_kpending_count(p), 0); /* stored and acknowledged: freed */
    ab_kpending_free(&p);
    assert_null(p);
}

static void test_open_batch_is_never_stored(void **state)
{
    (void)state;
    ab_kpending *p = ab_kpending_new();
    ab_kpart *a = s_batch_part(p, 0, 0, 2);
    s_ack(a, 2, true); /* replies out before done: the transaction may not be over */
    assert_int_equal(s_ready(p).n, 0);
    ab_kpending_close(p, false);
    s_seen s = s_ready(p);
    assert_int_equal(s_at(&s, 0), 2);
    ab_kpending_free(&p);
}

static void test_batch_order_per_partition(void **state)
{
    (void)state;
    ab_kpending *p = ab_kpending_new();
    ab_kpart *a0 = s_batch_part(p, 0, 0, 5); /* batch 1: partitions 0 and 1 */
    ab_kpart *a1 = s_batch_part(p, 1, 0, 5);
    ab_kpending_close(p, false);
    ab_kpart *b0 = s_batch_part(p, 0, 5, 9); /* batch 2: partitions 0 and 2 */
    ab_kpart *b2 = s_batch_part(p, 2, 0, 3);
    ab_kpending_close(p, false);
    /* batch 2 fully acknowledged, batch 1's partition 0 not yet: partition 0 waits, the
     * partitions nobody holds up go out */
    s_ack(b0, 4, true);
    s_ack(b2, 3, true);
    s_ack(a1, 5, true);
    s_seen s = s_ready(p);
    assert_int_equal(s_at(&s, 0), -1);
    assert_int_equal(s_at(&s, 1), 5);
    assert_int_equal(s_at(&s, 2), 3);
    assert_int_equal(ab_kpending_count(p), 2);
    s_ack(a0, 5, true);
    s = s_ready(p);
    assert_int_equal(s_at(&s, 0), 9); /* both batches' partition 0, the later offset last */
    assert_int_equal(ab_kpending_count(p), 0);
    ab_kpending_free(&p);
}

static void test_redelivered_batch_is_dropped(void **state)
{
    (void)state;
    ab_kpending *p = ab_kpending_new();
    ab_kpart *a = s_batch_part(p, 0, 0, 4);
    ab_kpending_close(p, true); /* the database was down: read again */
    s_ack(a, 4, true);
    assert_int_equal(s_ready(p).n, 0);
    assert_int_equal(ab_kpending_count(p), 0);
    /* read again: stored as usual */
    ab_kpart *b = s_batch_part(p, 0, 0, 4);
    ab_kpending_close(p, false);
    s_ack(b, 4, true);
    s_seen s = s_ready(p);
    assert_int_equal(s_at(&s, 0), 4);
    ab_kpending_free(&p);
}

static void test_dropped_batch_waits_for_its_reports_but_blocks_nothing(void **state)
{
    (void)state;
    ab_kpending *p = ab_kpending_new();
    ab_kpart *a = s_batch_part(p, 3, 0, 2); /* partition 3: its replies stuck */
    ab_kpending_close(p, false);
    ab_kpart *b = s_batch_part(p, 1, 0, 2);
    ab_kpending_close(p, false);
    s_ack(b, 2, true);
    s_seen s = s_ready(p);
    assert_int_equal(s_at(&s, 1), 2);
    ab_kpending_drop(p, 3); /* revoked */
    assert_int_equal(s_ready(p).n, 0);
    /* still held: the reports to come point into it */
    assert_int_equal(ab_kpending_count(p), 1);
    s_ack(a, 2, true);
    assert_int_equal(s_ready(p).n, 0); /* a revoked partition is never stored */
    assert_int_equal(ab_kpending_count(p), 0);
    ab_kpending_free(&p);
}

static void test_revoked_in_the_open_batch(void **state)
{
    (void)state;
    ab_kpending *p = ab_kpending_new();
    assert_int_equal(ab_kpending_read(p, MAX, 2, 7), 0);
    ab_kpending_drop(p, 2);
    assert_null(ab_kpending_part(p, 2)); /* its reply goes out unaccounted */
    /* re-assigned within the same batch: a new part */
    assert_int_equal(ab_kpending_read(p, MAX, 2, 20), 0);
    ab_kpart *part = ab_kpending_part(p, 2);
    assert_non_null(part);
    ab_kpending_sent(part);
    ab_kpending_close(p, false);
    ab_kpending_acked(part, true);
    s_seen s = s_ready(p);
    assert_int_equal(s.n, 1);
    assert_int_equal(s_at(&s, 2), 21);
    ab_kpending_free(&p);
}

static void test_lost_reply_rewinds_its_partition(void **state)
{
    (void)state;
    ab_kpending *p = ab_kpending_new();
    ab_kpart *a = s_batch_part(p, 0, 0, 3);
    ab_kpending_close(p, false);
    ab_kpart *b = s_batch_part(p, 0, 3, 6);
    ab_kpart *b1 = s_batch_part(p, 1, 0, 2);
    ab_kpending_close(p, false);
    ab_kpart *c = s_batch_part(p, 0, 6, 8);
    ab_kpending_close(p, false);
    s_ack(a, 3, true);
    s_ack(b, 2, true);
    s_ack(b, 1, false); /* message timeout */
    s_ack(b1, 2, true);
    s_ack(c, 2, true);
    /* a failed reply holds its partition up... */
    s_seen s = s_ready(p);
    assert_int_equal(s_at(&s, 0), 3);
    assert_int_equal(s_at(&s, 1), 2);
    /* ...until it is read again from its batch's first command there */
    s = s_rewinds(p);
    assert_int_equal(s.n, 1);
    assert_int_equal(s_at(&s, 0), 3);
    assert_int_equal(s_ready(p).n, 0); /* batch c (after the rewind point) dropped */
    assert_int_equal(ab_kpending_count(p), 0);
    assert_int_equal(s_rewinds(p).n, 0); /* once */
    ab_kpending_free(&p);
}

static void test_reply_never_produced_rewinds(void **state)
{
    (void)state;
    ab_kpending *p = ab_kpending_new();
    ab_kpart *a = s_batch_part(p, 5, 40, 42);
    ab_kpending_acked(a, false); /* the produce call failed */
    ab_kpending_close(p, false);
    ab_kpending_acked(a, true);
    assert_int_equal(s_ready(p).n, 0);
    s_seen s = s_rewinds(p);
    assert_int_equal(s_at(&s, 5), 40);
    assert_int_equal(ab_kpending_count(p), 0);
    ab_kpending_free(&p);
}

static void test_free_with_reports_outstanding(void **state)
{
    (void)state;
    ab_kpending *p = ab_kpending_new();
    s_batch_part(p, 0, 0, 3);
    ab_kpending_close(p, false);
    s_batch_part(p, 1, 0, 3); /* open */
    assert_int_equal(ab_kpending_count(p), 2);
    ab_kpending_free(&p); /* at exit: everything goes */
    assert_null(p);
    ab_kpending_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets_wait_for_every_reply),
        cmocka_unit_test(test_open_batch_is_never_stored),
        cmocka_unit_test(test_batch_order_per_partition),
        cmocka_unit_test(test_redelivered_batch_is_dropped),
        cmocka_unit_test(test_dropped_batch_waits_for_its_reports_but_blocks_nothing),
        cmocka_unit_test(test_revoked_in_the_open_batch),
        cmocka_unit_test(test_lost_reply_rewinds_its_partition),
        cmocka_unit_test(test_reply_never_produced_rewinds),
        cmocka_unit_test(test_free_with_reports_outstanding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
