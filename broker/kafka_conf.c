/* kafka_conf.c — see kafka_conf.h. */
#include "kafka_conf.h"

#include <stdio.h>
#include <string.h>

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
