/* benchutil.c — see benchutil.h. */
#include "benchutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "wire/config.h"

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = bench_now_ns() ^ (uint64_t)getpid();
    return seed;
}

/* splitmix64: fast, per thread, good enough for command ids in a benchmark. */
static uint64_t s_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void bench_random_bytes(uint64_t *state, unsigned char *out, size_t len)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t r = s_rand(state);
        memcpy(out + i, &r, len - i < 8 ? len - i : 8);
    }
}

void bench_uuid4(uint64_t *state, char out[BENCH_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    bench_random_bytes(state, b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

long bench_share(long total, int parts, int index)
{
    return total / parts + (index < total % parts ? 1 : 0);
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

double bench_percentile_ms(uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, s_cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6;
}

void bench_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

const msgpack_object *bench_map_get(const msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == klen &&
            memcmp(kv->key.via.str.ptr, key, klen) == 0)
            return &kv->val;
    }
    return NULL;
}

MYSQL *bench_mysql_connect(const char *dsn, const char *db, char *err, size_t errlen)
{
    ab_dsn d;
    if (ab_dsn_parse(dsn, &d, err, errlen) < 0)
        return NULL;
    MYSQL *m = mysql_init(NULL);
    const char *host = d.host && *d.host ? d.host : "localhost";
    if (m && (!mysql_real_connect(m, host, d.user, d.password, db ? db : d.database, d.port,
                                  d.socket, 0) ||
              mysql_query(m, "SET time_zone = '+00:00'") != 0)) {
        snprintf(err, errlen, "MariaDB: %s", mysql_error(m));
        mysql_close(m);
        m = NULL;
    }
    ab_dsn_free(&d);
    return m;
}
