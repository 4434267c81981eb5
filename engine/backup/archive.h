/* archive.h — a gzip-compressed tar (POSIX ustar) producer with a SHA-256 per member, for
 * backups (engine/backup/backup.c).
 *
 * Pull model: the caller adds members (files by path, an open file, or bytes in memory),
 * then calls ab_archive_read() for the next compressed bytes until it returns 0. Nothing
 * is staged on disk, so the same producer feeds a plain file or GnuPG's encryption (which
 * pulls through a read callback). Each member's SHA-256 is computed while it is read; a
 * final member (the manifest) can be generated from those hashes when the producer reaches
 * it (ab_archive_set_last).
 *
 * Members are regular files only, owner 0/0; names are relative, without "." or ".."
 * components, at most 255 bytes (ustar's prefix + name). Sizes beyond 8 GiB use GNU tar's
 * base-256 size field. */
#ifndef AB_ARCHIVE_H
#define AB_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define AB_ARCHIVE_NAME_MAX 255

typedef struct ab_archive ab_archive;

/* What the producer knows of one member once it has been read. */
typedef struct {
    const char *name;
    uint64_t size;
    unsigned mode;
    uint8_t sha256[32];
} ab_archive_member;

/* Builds the last member's content from the members before it (their hashes are final).
 * Returns a malloc'd buffer (the producer frees it) with its length in *len, or NULL. */
typedef char *(*ab_archive_last_fn)(const ab_archive *a, void *arg, size_t *len);

/* A new, empty archive; level is zlib's compression level (1-9). Caller owns it. */
ab_archive *ab_archive_new(int level);

/* Free everything, closing any file still open; sets *a to NULL; safe on NULL. */
void ab_archive_destroy(ab_archive **a);

/* True when name can be a member name (see above): 1-255 bytes, printable ASCII or UTF-8
 * (valid UTF-8) without control characters or backslashes, relative, no "."/".."/empty components,
 * and splittable into ustar's prefix and name fields. */
bool ab_archive_name_ok(const char *name);

/* Add the file at path as member name, with the size and mode given (from a stat made by
 * the caller). The file is opened when the producer reaches it; it must still have at
 * least size bytes then (only size bytes are read). Returns 0, or -1 (bad name, memory). */
int ab_archive_add_path(ab_archive *a, const char *name, const char *path, uint64_t size,
                        unsigned mode, int64_t mtime);

/* Add size bytes of the open file fd, read from offset 0 with pread; the archive takes the
 * descriptor (closes it). Returns 0 or -1. */
int ab_archive_add_fd(ab_archive *a, const char *name, int fd, uint64_t size, unsigned mode,
                      int64_t mtime);

/* The member written after all others, its content made by fn when it is reached. */
int ab_archive_set_last(ab_archive *a, const char *name, unsigned mode, ab_archive_last_fn fn,
                        void *arg);

/* Up to len compressed bytes into buf. Returns how many (0 once the archive is complete),
 * or -1 with a message in ab_archive_error(). */
ssize_t ab_archive_read(ab_archive *a, void *buf, size_t len);

/* The last error, "" when none. */
const char *ab_archive_error(const ab_archive *a);

/* Members added so far (not counting the last one until it is reached), and member i. */
size_t ab_archive_count(const ab_archive *a);
ab_archive_member ab_archive_member_at(const ab_archive *a, size_t i);

/* Bytes of the files read so far, and the total of their sizes (neither counts the last
 * member): for progress reports. */
uint64_t ab_archive_bytes_done(const ab_archive *a);
uint64_t ab_archive_bytes_total(const ab_archive *a);

/* Lower-case hex of a 32-byte digest into out[65]. */
void ab_hex32(const uint8_t in[32], char out[65]);

#endif
