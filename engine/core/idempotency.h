/* idempotency.h — command ids: a committed command's reply is stored under (user, id)
 * with a digest of its type and arguments, so a re-sent id is answered from the store
 * and changes nothing, and the same id with other arguments is a conflict. */
#ifndef AB_IDEMPOTENCY_H
#define AB_IDEMPOTENCY_H

#include <stddef.h>
#include <stdint.h>

#include "core/db.h"
#include "auth/secret.h"

typedef struct {
    uint32_t user_id;
    const char *cmd_id; /* 36 characters, lower case */
    uint8_t digest[AB_DIGEST_LEN];
} ab_cmdkey;

typedef enum { AB_SEEN_NEW, AB_SEEN_SAME, AB_SEEN_CONFLICT } ab_seen;

/* The digest of a command's type and argument bytes (plain SHA-256; the apply loop keys it
 * with the server secret before it is stored, since arguments may hold a password). */
void ab_cmdkey_digest(ab_cmdkey *k, const char *type, const void *args, size_t args_len);

/* Look up n keys (one round trip per 32 keys of one user). For each i, seen[i] tells
 * whether the id is new, was stored with the same digest (replies[i] then holds a
 * malloc'd copy of the stored reply, length lens[i]; caller frees) or with another. */
int ab_idem_lookup(ab_db *db, const ab_cmdkey *keys, size_t n, ab_seen *seen, char **replies,
                   size_t *lens, ab_error *err);

/* Store n keys with their replies (one round trip). */
int ab_idem_record(ab_db *db, const ab_cmdkey *keys, const char *const *replies, const size_t *lens,
                   size_t n, ab_error *err);

/* Delete up to limit command ids older than days (retention); *deleted receives how
 * many. Commits its own short transaction: call it between batches. The job type
 * commands.purge (engine/jobs/jobtypes.c, a daily scheduled task) calls it in a loop. */
int ab_idem_purge(ab_db *db, int days, int limit, uint64_t *deleted, ab_error *err);

#endif
