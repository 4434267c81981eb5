/* idempotency.c — see idempotency.h. */
#include "core/idempotency.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK 32

void ab_cmdkey_digest(ab_cmdkey *k, const char *type, const void *args, size_t args_len)
{
    /* type then a NUL separator then the argument bytes: no two (type, args) pairs share
     * an input, since a type never contains NUL. */
    size_t tlen = strlen(type) + 1;
    ab_sha256_pair(type, tlen, args, args_len, k->digest);
}

/* 32 placeholders, spelled out at compile time: the statement is shared by every apply
 * loop, and a string built at first use would be a race between them. */
#define S_Q4  "?, ?, ?, ?"
#define S_Q16 S_Q4 ", " S_Q4 ", " S_Q4 ", " S_Q4
#define S_LOOKUP_SQL                                                                               \
    "SELECT cmd_id, digest, reply FROM command_ids WHERE user_id = ? AND cmd_id IN (" S_Q16        \
    ", " S_Q16 ")"
_Static_assert(CHUNK == 32, "S_LOOKUP_SQL spells out CHUNK placeholders");

/* Match the rows of one chunk back to the keys they answer. */
static void s_match(const ab_rows *rows, const ab_cmdkey *keys, size_t n, uint32_t user,
                    ab_seen *seen, char **replies, size_t *lens)
{
    size_t idlen, dlen, rlen;
    const char *id = ab_rows_str(rows, 0, &idlen);
    const char *digest = ab_rows_str(rows, 1, &dlen);
    const char *reply = ab_rows_str(rows, 2, &rlen);
    for (size_t i = 0; i < n; i++) {
        if (keys[i].user_id != user || seen[i] != AB_SEEN_NEW || strlen(keys[i].cmd_id) != idlen ||
            memcmp(keys[i].cmd_id, id, idlen) != 0)
            continue;
        if (dlen == AB_DIGEST_LEN && memcmp(digest, keys[i].digest, AB_DIGEST_LEN) == 0) {
            seen[i] = AB_SEEN_SAME;
            replies[i] = malloc(rlen ? rlen : 1);
            memcpy(replies[i], reply, rlen);
            lens[i] = rlen;
        } else {
            seen[i] = AB_SEEN_CONFLICT;
        }
    }
}

static int s_lookup_chunk(ab_db *db, const ab_cmdkey *keys, size_t n, const size_t *pick,
                          size_t npick, ab_seen *seen, char **replies, size_t *lens, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    uint32_t user = keys[pick[0]].user_id;
    ab_param_int(&p, user);
    for (size_t i = 0; i < CHUNK; i++) /* pad with the last id: IN () ignores repeats */
        ab_param_str(&p, keys[pick[i < npick ? i : npick - 1]].cmd_id, 36);
    ab_rows rows;
    if (ab_db_query(db, S_LOOKUP_SQL, &p, &rows, err) < 0)
        return -1;
    int rc;
    while ((rc = ab_rows_next(&rows)) == 1)
        s_match(&rows, keys, n, user, seen, replies, lens);
    ab_rows_close(&rows);
    return rc < 0 ? ab_fail(err, AB_E_INTERNAL, NULL, "database read failed") : 0;
}

int ab_idem_lookup(ab_db *db, const ab_cmdkey *keys, size_t n, ab_seen *seen, char **replies,
                   size_t *lens, ab_error *err)
{
    bool *done = calloc(n ? n : 1, sizeof *done);
    size_t *pick = malloc((n ? n : 1) * sizeof *pick);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        seen[i] = AB_SEEN_NEW;
        replies[i] = NULL;
        lens[i] = 0;
    }
    /* Group by user, CHUNK ids at a time. */
    size_t next = 0;
    while (rc == 0) {
        while (next < n && done[next])
            next++;
        if (next == n)
            break;
        size_t npick = 0;
        for (size_t j = next; j < n && npick < CHUNK; j++)
            if (!done[j] && keys[j].user_id == keys[next].user_id) {
                pick[npick++] = j;
                done[j] = true;
            }
        rc = s_lookup_chunk(db, keys, n, pick, npick, seen, replies, lens, err);
    }
    free(done);
    free(pick);
    return rc;
}

int ab_idem_record(ab_db *db, const ab_cmdkey *keys, const char *const *replies, const size_t *lens,
                   size_t n, ab_error *err)
{
    static const ab_col_type types[4] = {AB_COL_INT, AB_COL_STR, AB_COL_BLOB, AB_COL_BLOB};
    if (n == 0)
        return 0;
    long long *users = malloc(n * sizeof *users);
    const char **ids = malloc(n * sizeof *ids), **digests = malloc(n * sizeof *digests);
    const char **bodies = malloc(n * sizeof *bodies);
    unsigned long *idlens = malloc(n * sizeof *idlens), *dlens = malloc(n * sizeof *dlens);
    unsigned long *blens = malloc(n * sizeof *blens);
    for (size_t i = 0; i < n; i++) {
        users[i] = keys[i].user_id;
        ids[i] = keys[i].cmd_id;
        idlens[i] = (unsigned long)strlen(keys[i].cmd_id);
        digests[i] = (const char *)keys[i].digest;
        dlens[i] = AB_DIGEST_LEN;
        bodies[i] = replies[i];
        blens[i] = (unsigned long)lens[i];
    }
    void *cols[4] = {users, ids, digests, bodies};
    unsigned long *clens[4] = {NULL, idlens, dlens, blens};
    int rc = ab_db_bulk(db,
                        "INSERT INTO command_ids (user_id, cmd_id, digest, reply, created) "
                        "VALUES (?, ?, ?, ?, UTC_TIMESTAMP(3))",
                        4, types, cols, clens, (unsigned)n, err);
    if (rc < 0 && ab_db_errno(db) == AB_ER_DUP_ENTRY)
        /* Another apply loop committed the same (user, id) first: trying the batch again
         * finds its stored reply. */
        ab_fail(err, AB_E_UNAVAILABLE, "id", "command id recorded concurrently; retrying");
    free(users);
    free(ids);
    free(digests);
    free(bodies);
    free(idlens);
    free(dlens);
    free(blens);
    return rc;
}

int ab_idem_purge(ab_db *db, int days, int limit, uint64_t *deleted, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, days);
    ab_param_int(&p, limit);
    if (ab_db_run(db,
                  "DELETE FROM command_ids WHERE created < UTC_TIMESTAMP(3) - INTERVAL ? DAY "
                  "LIMIT ?",
                  &p, NULL, deleted, err) < 0) {
        ab_error ignored;
        ab_db_exec(db, "ROLLBACK", &ignored);
        return -1;
    }
    return ab_db_exec(db, "COMMIT", err);
}
