/* benchutil.h — what both benchmark programs need: clocks, per-thread random UUIDs,
 * percentiles, work shares, msgpack helpers and a MariaDB connection from a DSN. */
#ifndef AB_BENCHUTIL_H
#define AB_BENCHUTIL_H

#include <msgpack.h>
#include <mysql.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_UUID_LEN 36

/* Monotonic nanoseconds. */
uint64_t bench_now_ns(void);

/* A seed for a per-thread generator, from the kernel. */
uint64_t bench_seed(void);

/* Fill out with len pseudo-random bytes from a per-thread splitmix64 state. */
void bench_random_bytes(uint64_t *state, unsigned char *out, size_t len);

/* A random (version 4) UUID from a per-thread splitmix64 state, lower case, NUL-terminated. */
void bench_uuid4(uint64_t *state, char out[BENCH_UUID_LEN + 1]);

/* The share of total that part index of parts gets (the first ones get the remainder). */
long bench_share(long total, int parts, int index);

/* The p-th percentile (0..1) of n nanosecond values, in milliseconds; sorts v. */
double bench_percentile_ms(uint64_t *v, size_t n, double p);

/* Pack a NUL-terminated string as msgpack str. */
void bench_pack_str(msgpack_packer *pk, const char *s);

/* The value of key in a msgpack map, or NULL. */
const msgpack_object *bench_map_get(const msgpack_object *map, const char *key);

/* Connect to the DSN (broker/wire/config.h's form) using database db (NULL: the DSN's own), in
 * UTC. Returns NULL with a message in err. */
MYSQL *bench_mysql_connect(const char *dsn, const char *db, char *err, size_t errlen);

#endif
