/* kafka_pending.c — the FIFO of batches whose offsets wait for their replies (see
 * kafka_pending.h). */
#include "kafka/kafka_pending.h"

#include <stdlib.h>

struct ab_kpart {
    struct s_batch *batch;
    int32_t partition;
    int64_t first, next; /* the first offset read, the one after the last */
    unsigned unacked;    /* replies sent, not yet reported */
    bool failed;         /* a reply lost for good: read the partition again from first */
    bool dropped;        /* never to be stored (rebalance, redelivery, rewind) */
    bool stored;
};

typedef struct s_batch {
    struct s_batch *next;
    bool closed;
    unsigned unacked; /* over every part: the batch is freed only at 0 (reports point here) */
    int nparts, cap;
    ab_kpart parts[];
} s_batch;

struct ab_kpending {
    s_batch *head, *tail; /* oldest first; the tail may be the open batch */
    size_t count;
    int32_t *seen; /* scratch: partitions met in a pass */
    int nseen, capseen;
};

ab_kpending *ab_kpending_new(void)
{
    return calloc(1, sizeof(ab_kpending));
}

void ab_kpending_free(ab_kpending **pp)
{
    if (!pp || !*pp)
        return;
    s_batch *b = (*pp)->head;
    while (b) {
        s_batch *next = b->next;
        free(b);
        b = next;
    }
    free((*pp)->seen);
    free(*pp);
    *pp = NULL;
}

static s_batch *s_open(ab_kpending *p, int max)
{
    if (p->tail && !p->tail->closed)
        return p->tail;
    if (max < 1)
        max = 1;
    s_batch *b = calloc(1, sizeof *b + (size_t)max * sizeof(ab_kpart));
    if (!b)
        return NULL;
    b->cap = max;
    if (p->tail)
        p->tail->next = b;
    else
        p->head = b;
    p->tail = b;
    p->count++;
    return b;
}

ab_kpart *ab_kpending_part(ab_kpending *p, int32_t partition)
{
    s_batch *b = p->tail;
    if (!b || b->closed)
        return NULL;
    for (int i = 0; i < b->nparts; i++)
        if (b->parts[i].partition == partition && !b->parts[i].dropped)
            return &b->parts[i];
    return NULL;
}

int ab_kpending_read(ab_kpending *p, int max, int32_t partition, int64_t offset)
{
    s_batch *b = s_open(p, max);
    if (!b)
        return -1;
    ab_kpart *part = ab_kpending_part(p, partition);
    if (!part) {
        /* each part starts with a command read, so a batch of at most max commands never
         * has more than max parts */
        if (b->nparts == b->cap)
            return -1;
        part = &b->parts[b->nparts++];
        *part = (ab_kpart){.batch = b, .partition = partition, .first = offset};
    }
    if (offset < part->first)
        part->first = offset;
    if (offset + 1 > part->next)
        part->next = offset + 1;
    return 0;
}

void ab_kpending_sent(ab_kpart *part)
{
    part->unacked++;
    part->batch->unacked++;
}

void ab_kpending_acked(ab_kpart *part, bool delivered)
{
    if (part->unacked > 0) {
        part->unacked--;
        part->batch->unacked--;
    }
    if (!delivered)
        part->failed = true;
}

void ab_kpending_close(ab_kpending *p, bool drop)
{
    s_batch *b = p->tail;
    if (!b || b->closed)
        return;
    b->closed = true;
    for (int i = 0; drop && i < b->nparts; i++)
        b->parts[i].dropped = true;
}

void ab_kpending_drop(ab_kpending *p, int32_t partition)
{
    for (s_batch *b = p->head; b; b = b->next)
        for (int i = 0; i < b->nparts; i++)
            if (b->parts[i].partition == partition && !b->parts[i].stored)
                b->parts[i].dropped = true;
}

/* --- passes over the FIFO ------------------------------------------------------------- */

static bool s_seen(const ab_kpending *p, int32_t partition)
{
    for (int i = 0; i < p->nseen; i++)
        if (p->seen[i] == partition)
            return true;
    return false;
}

/* Returns false out of memory (the pass then stops short: it is safe to do less). */
static bool s_see(ab_kpending *p, int32_t partition)
{
    if (p->nseen == p->capseen) {
        int cap = p->capseen ? p->capseen * 2 : 16;
        int32_t *seen = realloc(p->seen, (size_t)cap * sizeof *seen);
        if (!seen)
            return false;
        p->seen = seen;
        p->capseen = cap;
    }
    p->seen[p->nseen++] = partition;
    return true;
}

/* A part still to be decided: neither stored nor dropped. */
static bool s_live(const ab_kpart *part)
{
    return !part->stored && !part->dropped;
}

static bool s_over(const s_batch *b)
{
    if (!b->closed || b->unacked > 0)
        return false;
    for (int i = 0; i < b->nparts; i++)
        if (s_live(&b->parts[i]))
            return false;
    return true;
}

/* Free the batches that are over (wherever they are: a dropped batch whose reports all came
 * need not wait for an earlier one). */
static void s_collect(ab_kpending *p)
{
    s_batch **at = &p->head, *prev = NULL;
    while (*at) {
        s_batch *b = *at;
        if (!s_over(b)) {
            prev = b;
            at = &b->next;
            continue;
        }
        *at = b->next;
        if (p->tail == b)
            p->tail = prev;
        free(b);
        p->count--;
    }
}

int ab_kpending_rewinds(ab_kpending *p, ab_kpending_emit *emit, void *arg)
{
    int n = 0;
    p->nseen = 0; /* partitions rewound in this pass */
    for (s_batch *b = p->head; b; b = b->next)
        for (int i = 0; i < b->nparts; i++) {
            ab_kpart *part = &b->parts[i];
            if (!s_live(part))
                continue;
            if (s_seen(p, part->partition)) {
                part->dropped = true; /* read again from the rewind point */
            } else if (part->failed && s_see(p, part->partition)) {
                part->dropped = true;
                emit(arg, part->partition, part->first);
                n++;
            }
        }
    s_collect(p);
    return n;
}

int ab_kpending_ready(ab_kpending *p, ab_kpending_emit *emit, void *arg)
{
    int n = 0;
    p->nseen = 0; /* partitions held up by an earlier part in this pass */
    for (s_batch *b = p->head; b; b = b->next)
        for (int i = 0; i < b->nparts; i++) {
            ab_kpart *part = &b->parts[i];
            if (!s_live(part) || s_seen(p, part->partition))
                continue;
            if (b->closed && part->unacked == 0 && !part->failed) {
                part->stored = true;
                emit(arg, part->partition, part->next);
                n++;
            } else if (!s_see(p, part->partition)) {
                s_collect(p);
                return n; /* out of memory: store the rest another time */
            }
        }
    s_collect(p);
    return n;
}

size_t ab_kpending_count(const ab_kpending *p)
{
    return p->count;
}
