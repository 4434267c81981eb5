/* kafka_pending.h — which offsets of the commands topic the Kafka transport may store: a FIFO
 * of batches whose replies the cluster has not all acknowledged yet (docs/architecture.md,
 * "Kafka transport"). Pure bookkeeping, no librdkafka: the transport feeds it what it reads,
 * produces and hears back, and asks it what to store and what to read again.
 *
 * A batch holds one part per partition it read from: the offsets it read there (first, and
 * the one after the last) and how many of those commands' replies are still unacknowledged.
 * A part's offset may be stored once its batch is closed (done), its replies are all
 * acknowledged, and every earlier part of the same partition is stored or dropped: offsets go
 * out in batch order, per partition, so a partition whose replies wait never holds up
 * another. A part whose reply failed makes its partition read again from the part's first
 * offset (a rewind); that part and the later ones of its partition are dropped. Single
 * thread: the transport's own. */
#ifndef AB_KAFKA_PENDING_H
#define AB_KAFKA_PENDING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ab_kpending ab_kpending;
/* One partition of one batch; a reply's msg_opaque points to it. */
typedef struct ab_kpart ab_kpart;

/* Receives (partition, offset) pairs from ab_kpending_rewinds / ab_kpending_ready. */
typedef void ab_kpending_emit(void *arg, int32_t partition, int64_t offset);

ab_kpending *ab_kpending_new(void);
/* Frees every batch, acknowledged or not: call it once nothing can report any more. */
void ab_kpending_free(ab_kpending **pp);

/* A command read at (partition, offset) joins the open batch, opened now (room for max
 * partitions: the most commands one batch takes) if none is. Returns 0, or -1 out of
 * memory. */
int ab_kpending_read(ab_kpending *p, int max, int32_t partition, int64_t offset);
/* The open batch's part of partition, or NULL (none, or dropped by a rebalance). */
ab_kpart *ab_kpending_part(ab_kpending *p, int32_t partition);
/* A reply of part's commands was handed to the producer. */
void ab_kpending_sent(ab_kpart *part);
/* A reply sent was acknowledged (delivered) or is lost for good (!delivered; also for a
 * reply sent whose produce call failed after all). */
void ab_kpending_acked(ab_kpart *part, bool delivered);
/* The open batch is finished (the transport's done); drop: its commands are read again
 * (redelivery), so nothing of it is ever stored. */
void ab_kpending_close(ab_kpending *p, bool drop);
/* The partition went to another engine: forget its parts (nothing of them is stored). */
void ab_kpending_drop(ab_kpending *p, int32_t partition);

/* Emits (partition, first offset) for each partition to read again (the earliest part with
 * a failed reply), dropping that part and the later ones of its partition. Returns how many
 * were emitted. */
int ab_kpending_rewinds(ab_kpending *p, ab_kpending_emit *emit, void *arg);
/* Emits (partition, next offset) for every part that may be stored now, in batch order
 * (a partition may come several times, growing), marks them stored and frees the batches
 * that are over. Returns how many were emitted. */
int ab_kpending_ready(ab_kpending *p, ab_kpending_emit *emit, void *arg);
/* Batches held: open, waiting for acknowledgements, or waiting for an earlier one. */
size_t ab_kpending_count(const ab_kpending *p);

#endif
