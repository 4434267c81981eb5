/* jobcounts.c — see jobcounts.h. */
#include "jobs/jobcounts.h"

#include <stdio.h>
#include <string.h>

const int64_t ab_job_bucket_us[AB_JOB_BUCKETS - 1] = {
    1000,      5000,      10000,      50000,      100000,      500000,
    1000000LL, 5000000LL, 10000000LL, 60000000LL, 600000000LL, 3600000000LL};

/* The table's columns after its key: finished, ran, run_us, b0 … b12. */
#define S_NUMBERS (3 + AB_JOB_BUCKETS)
#define S_COLUMNS (4 + S_NUMBERS)

/* Each number column adds what the statement brings. */
static const char *const s_upsert =
    "INSERT INTO job_counts (shard, queue, job_type, state, finished, ran, run_us, b0, b1, b2, "
    "b3, b4, b5, b6, b7, b8, b9, b10, b11, b12) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON DUPLICATE KEY UPDATE finished = finished + VALUES(finished), ran = ran + VALUES(ran), "
    "run_us = run_us + VALUES(run_us), b0 = b0 + VALUES(b0), b1 = b1 + VALUES(b1), "
    "b2 = b2 + VALUES(b2), b3 = b3 + VALUES(b3), b4 = b4 + VALUES(b4), b5 = b5 + VALUES(b5), "
    "b6 = b6 + VALUES(b6), b7 = b7 + VALUES(b7), b8 = b8 + VALUES(b8), b9 = b9 + VALUES(b9), "
    "b10 = b10 + VALUES(b10), b11 = b11 + VALUES(b11), b12 = b12 + VALUES(b12)";

void ab_job_counts_clear(ab_job_counts *c)
{
    c->n = 0;
}

int ab_job_bucket_of(int64_t run_us)
{
    int b = 0;
    while (b < AB_JOB_BUCKETS - 1 && run_us > ab_job_bucket_us[b])
        b++;
    return b;
}

/* The row of (queue, type, state), added empty when new; NULL when c is full. */
static ab_job_count *s_row(ab_job_counts *c, const char *queue, const char *type, const char *state)
{
    for (int i = 0; i < c->n; i++) {
        ab_job_count *r = &c->rows[i];
        if (!strcmp(r->queue, queue) && !strcmp(r->type, type) && !strcmp(r->state, state))
            return r;
    }
    if (c->n == AB_JOB_COUNTS_MAX)
        return NULL;
    ab_job_count *r = &c->rows[c->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->queue, sizeof r->queue, "%s", queue);
    snprintf(r->type, sizeof r->type, "%s", type);
    snprintf(r->state, sizeof r->state, "%s", state);
    return r;
}

int ab_job_counts_add(ab_job_counts *c, const char *queue, const char *type, const char *state,
                      long long n, int64_t run_us)
{
    ab_job_count *r = s_row(c, queue, type, state);
    if (!r)
        return -1;
    r->finished += n;
    if (run_us >= 0) {
        r->ran += n;
        r->run_us += run_us * n;
        r->buckets[ab_job_bucket_of(run_us)] += n;
    }
    return 0;
}

/* Number column k (0 … S_NUMBERS - 1, after the key) of r. */
static long long *s_number(ab_job_count *r, int k)
{
    return k == 0 ? &r->finished : k == 1 ? &r->ran : k == 2 ? &r->run_us : &r->buckets[k - 3];
}

static long long s_number_of(const ab_job_count *r, int k)
{
    return k == 0 ? r->finished : k == 1 ? r->ran : k == 2 ? r->run_us : r->buckets[k - 3];
}

int ab_job_counts_write(ab_db *db, const char *shard, const ab_job_counts *c, ab_error *err)
{
    unsigned n = (unsigned)c->n;
    if (n == 0)
        return 0;
    const char *keys[4][AB_JOB_COUNTS_MAX];
    unsigned long key_lens[4][AB_JOB_COUNTS_MAX];
    long long numbers[S_NUMBERS][AB_JOB_COUNTS_MAX];
    for (unsigned i = 0; i < n; i++) {
        const ab_job_count *r = &c->rows[i];
        const char *key[4] = {shard, r->queue, r->type, r->state};
        for (int k = 0; k < 4; k++) {
            keys[k][i] = key[k];
            key_lens[k][i] = (unsigned long)strlen(key[k]);
        }
        for (int k = 0; k < S_NUMBERS; k++)
            numbers[k][i] = s_number_of(r, k);
    }
    ab_col_type types[S_COLUMNS];
    void *cols[S_COLUMNS];
    unsigned long *lens[S_COLUMNS];
    for (int k = 0; k < S_COLUMNS; k++) {
        types[k] = k < 4 ? AB_COL_STR : AB_COL_INT;
        cols[k] = k < 4 ? (void *)keys[k] : (void *)numbers[k - 4];
        lens[k] = k < 4 ? key_lens[k] : NULL;
    }
    return ab_db_bulk(db, s_upsert, S_COLUMNS, types, cols, lens, n, err);
}

/* --- folding the rows of workers that are gone ------------------------------------------- */

typedef struct {
    char shard[97], queue[33], type[33], state[10];
} s_key;

/* Read (locked) up to AB_JOB_COUNTS_MAX rows of gone workers into keys and their sums per
 * (queue, type, state) into sums. Returns how many rows, or -1. */
static int s_read_gone(ab_db *db, s_key *keys, ab_job_counts *sums, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, AB_JOB_COUNTS_MAX);
    ab_rows rows;
    if (ab_db_query(db,
                    "SELECT c.shard, c.queue, c.job_type, c.state, c.finished, c.ran, c.run_us, "
                    "c.b0, c.b1, c.b2, c.b3, c.b4, c.b5, c.b6, c.b7, c.b8, c.b9, c.b10, c.b11, "
                    "c.b12 FROM job_counts c LEFT JOIN workers w ON w.id = c.shard "
                    "WHERE c.shard <> '' AND w.id IS NULL LIMIT ? FOR UPDATE",
                    &p, &rows, err) < 0)
        return -1;
    int n = 0, rc = 0;
    while (n < AB_JOB_COUNTS_MAX && (rc = ab_rows_next(&rows)) == 1) {
        s_key *k = &keys[n++];
        snprintf(k->shard, sizeof k->shard, "%s", ab_rows_str(&rows, 0, NULL));
        snprintf(k->queue, sizeof k->queue, "%s", ab_rows_str(&rows, 1, NULL));
        snprintf(k->type, sizeof k->type, "%s", ab_rows_str(&rows, 2, NULL));
        snprintf(k->state, sizeof k->state, "%s", ab_rows_str(&rows, 3, NULL));
        ab_job_count *r = s_row(sums, k->queue, k->type, k->state); /* never full: n rows */
        for (int c = 0; c < S_NUMBERS; c++)
            *s_number(r, c) += ab_rows_int(&rows, 4 + c);
    }
    ab_rows_close(&rows);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : n;
}

/* Delete exactly the rows read (a row added since is left for the next fold). */
static int s_delete(ab_db *db, const s_key *keys, int n, ab_error *err)
{
    const char *cols[4][AB_JOB_COUNTS_MAX];
    unsigned long lens[4][AB_JOB_COUNTS_MAX];
    for (int i = 0; i < n; i++) {
        const char *key[4] = {keys[i].shard, keys[i].queue, keys[i].type, keys[i].state};
        for (int k = 0; k < 4; k++) {
            cols[k][i] = key[k];
            lens[k][i] = (unsigned long)strlen(key[k]);
        }
    }
    ab_col_type types[4] = {AB_COL_STR, AB_COL_STR, AB_COL_STR, AB_COL_STR};
    void *colp[4] = {cols[0], cols[1], cols[2], cols[3]};
    unsigned long *lenp[4] = {lens[0], lens[1], lens[2], lens[3]};
    return ab_db_bulk(db,
                      "DELETE FROM job_counts WHERE shard = ? AND queue = ? AND job_type = ? AND "
                      "state = ?",
                      4, types, colp, lenp, (unsigned)n, err);
}

int ab_job_counts_fold(ab_db *db, ab_error *err)
{
    int n;
    do {
        s_key keys[AB_JOB_COUNTS_MAX];
        ab_job_counts sums;
        ab_job_counts_clear(&sums);
        n = s_read_gone(db, keys, &sums, err);
        if (n < 0 || ab_job_counts_write(db, AB_JOB_COUNTS_SHARED, &sums, err) < 0 ||
            s_delete(db, keys, n, err) < 0)
            return -1;
    } while (n == AB_JOB_COUNTS_MAX);
    return 0;
}
