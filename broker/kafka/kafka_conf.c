/* kafka_conf.c — see kafka_conf.h. */
#include "kafka/kafka_conf.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static int s_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                 size_t errlen)
{
    char why[512];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof why) == RD_KAFKA_CONF_OK)
        return 0;
    snprintf(err, errlen, "kafka property %s: %s", name, why);
    return -1;
}

rd_kafka_conf_t *ab_kafka_conf_new(const char *brokers, const char *const *defaults,
                                   size_t ndefaults, const char *const *names,
                                   const char *const *values, size_t nprops, char *err,
                                   size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = s_set(conf, "bootstrap.servers", brokers, err, errlen);
    for (size_t i = 0; i + 1 < 2 * ndefaults && rc == 0; i += 2)
        rc = s_set(conf, defaults[i], defaults[i + 1], err, errlen);
    for (size_t i = 0; i < nprops && rc == 0; i++)
        rc = s_set(conf, names[i], values[i], err, errlen);
    if (rc < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

int ab_kafka_partitions(rd_kafka_t *rk, const char *topic, int32_t *parts, int max, int timeout_ms,
                        char *err, size_t errlen)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "no metadata for topic %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    int n = -1;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        n = 0;
        for (int i = 0; i < md->topics[0].partition_cnt && n < max; i++)
            parts[n++] = md->topics[0].partitions[i].id;
    } else {
        snprintf(
            err, errlen, "topic %s: %s", topic,
            rd_kafka_err2str(md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

rd_kafka_topic_t *ab_kafka_topic_warm(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (t && rd_kafka_metadata(rk, 0, t, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_metadata_destroy(md);
    return t;
}

int ab_kafka_set_tail_group(rd_kafka_conf_t *conf, const char *prefix, char *err, size_t errlen)
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
        struct timespec now; /* no entropy yet (early boot): the clock still differs */
        clock_gettime(CLOCK_REALTIME, &now);
        r = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    }
    char group[160];
    snprintf(group, sizeof group, "%s-%d-%016llx", prefix, (int)getpid(), (unsigned long long)r);
    return s_set(conf, "group.id", group, err, errlen);
}

int ab_kafka_assign_end(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err, size_t errlen)
{
    enum { PARTS_MAX = 1024 };
    int32_t parts[PARTS_MAX];
    int n = ab_kafka_partitions(rk, topic, parts, PARTS_MAX, timeout_ms, err, errlen);
    if (n == 0)
        snprintf(err, errlen, "topic %s has no partitions", topic);
    if (n <= 0)
        return -1;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, parts[i], &lo, &hi, timeout_ms);
        if (e) {
            snprintf(err, errlen, "topic %s partition %d: %s", topic, (int)parts[i],
                     rd_kafka_err2str(e));
            rc = -1;
        } else {
            rd_kafka_topic_partition_list_add(list, topic, parts[i])->offset = hi;
        }
    }
    if (rc == 0 && rd_kafka_assign(rk, list) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "cannot read topic %s", topic);
        rc = -1;
    }
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

size_t ab_event_stream_len(const char *topic, size_t len)
{
    const char *first = memchr(topic, '.', len);
    const char *second = first ? memchr(first + 1, '.', len - (size_t)(first + 1 - topic)) : NULL;
    return second ? (size_t)(second - topic) : len;
}

/* librdkafka's partitioner callback; rkt_opaque is the events topic's name. */
static int32_t s_event_partitioner(const rd_kafka_topic_t *rkt, const void *key, size_t key_len,
                                   int32_t partitions, void *rkt_opaque, void *msg_opaque)
{
    if (key && strcmp(rd_kafka_topic_name(rkt), (const char *)rkt_opaque) == 0)
        key_len = ab_event_stream_len(key, key_len);
    return rd_kafka_msg_partitioner_consistent_random(rkt, key, key_len, partitions, rkt_opaque,
                                                      msg_opaque);
}

void ab_kafka_order_events(rd_kafka_conf_t *conf, const char *events_topic)
{
    rd_kafka_topic_conf_t *tconf = rd_kafka_conf_get_default_topic_conf(conf);
    bool fresh = tconf == NULL;
    if (fresh)
        tconf = rd_kafka_topic_conf_new();
    rd_kafka_topic_conf_set_partitioner_cb(tconf, s_event_partitioner);
    rd_kafka_topic_conf_set_opaque(tconf, (void *)events_topic);
    if (fresh)
        rd_kafka_conf_set_default_topic_conf(conf, tconf);
}

bool ab_kafka_key_matches(const rd_kafka_message_t *m, const char *const *prefixes, size_t n)
{
    if (n == 0)
        return true;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(prefixes[i]);
        if (m->key_len >= len && memcmp(m->key, prefixes[i], len) == 0)
            return true;
    }
    return false;
}
