/* archive.c — see archive.h. */
#include "backup/archive.h"

#include "wire/envelope.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define BLOCK          512
#define CHUNK          (64 * 1024)
#define OCTAL_SIZE_MAX 077777777777ULL /* 11 octal digits: 8 GiB - 1 */

typedef struct {
    char *name;
    char *path; /* read from this file… */
    int fd;     /* …or this open one (-1 until opened) */
    char *data; /* …or these bytes (the last member) */
    uint64_t size;
    unsigned mode;
    int64_t mtime;
    uint8_t sha256[32];
} s_member;

typedef enum { S_HEADER, S_DATA, S_PAD, S_END, S_FLUSHED } s_phase;

struct ab_archive {
    s_member *m;
    size_t n, cap;
    bool has_last, last_added;
    char *last_name;
    unsigned last_mode;
    ab_archive_last_fn last_fn;
    void *last_arg;

    z_stream z;
    bool z_ready, finished;
    s_phase phase;
    size_t cur;          /* member being written */
    uint64_t left;       /* its bytes still to read */
    EVP_MD_CTX *sha;     /* its running hash */
    uint8_t in[CHUNK];   /* uncompressed bytes waiting for deflate */
    uint64_t done_bytes; /* member bytes read so far */
    char err[256];
};

static int s_fail(ab_archive *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof a->err, fmt, ap);
    va_end(ap);
    return -1;
}

void ab_hex32(const uint8_t in[32], char out[65])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[64] = '\0';
}

ab_archive *ab_archive_new(int level)
{
    ab_archive *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    /* windowBits 15 + 16: a gzip wrapper, so `tar -xzf` and `gzip -t` read it. */
    if (deflateInit2(&a->z, level < 1 || level > 9 ? 6 : level, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(a);
        return NULL;
    }
    a->z_ready = true;
    a->sha = EVP_MD_CTX_new();
    if (!a->sha) {
        ab_archive_destroy(&a);
        return NULL;
    }
    return a;
}

static void s_member_free(s_member *m)
{
    free(m->name);
    free(m->path);
    free(m->data);
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

void ab_archive_destroy(ab_archive **ap)
{
    ab_archive *a = ap ? *ap : NULL;
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        s_member_free(&a->m[i]);
    free(a->m);
    free(a->last_name);
    if (a->z_ready)
        deflateEnd(&a->z);
    EVP_MD_CTX_free(a->sha);
    free(a);
    *ap = NULL;
}

/* The offset of the '/' splitting name into ustar's prefix (<= 155) and name (<= 100)
 * fields, 0 when the name fits the name field alone, -1 when no split fits. */
static int s_split(const char *name)
{
    size_t len = strlen(name);
    if (len <= 100)
        return 0;
    for (size_t i = len - 1; i > 0; i--)
        if (name[i] == '/' && i <= 155 && len - i - 1 <= 100 && len - i - 1 > 0)
            return (int)i;
    return -1;
}

bool ab_archive_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > AB_ARCHIVE_NAME_MAX || name[0] == '/' || s_split(name) < 0 ||
        !ab_utf8_valid(name, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            return false;
    }
    /* components: none empty, none "." or ".." */
    const char *p = name;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += n;
        if (*p == '/')
            p++;
        if (*p == '\0' && p[-1] == '/')
            return false; /* a trailing slash */
    }
    return true;
}

static s_member *s_push(ab_archive *a, const char *name, uint64_t size, unsigned mode,
                        int64_t mtime)
{
    if (!ab_archive_name_ok(name)) {
        s_fail(a, "%s: not a valid member name", name);
        return NULL;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        s_member *m = realloc(a->m, cap * sizeof *m);
        if (!m)
            return NULL;
        a->m = m;
        a->cap = cap;
    }
    s_member *m = &a->m[a->n];
    *m = (s_member){
        .name = strdup(name), .fd = -1, .size = size, .mode = mode & 07777, .mtime = mtime};
    if (!m->name)
        return NULL;
    a->n++;
    return m;
}

int ab_archive_add_path(ab_archive *a, const char *name, const char *path, uint64_t size,
                        unsigned mode, int64_t mtime)
{
    if (a->last_added)
        return s_fail(a, "members added after the last one");
    s_member *m = s_push(a, name, size, mode, mtime);
    if (!m || !(m->path = strdup(path)))
        return -1;
    return 0;
}

int ab_archive_add_fd(ab_archive *a, const char *name, int fd, uint64_t size, unsigned mode,
                      int64_t mtime)
{
    s_member *m = a->last_added ? NULL : s_push(a, name, size, mode, mtime);
    if (!m) {
        close(fd);
        return -1;
    }
    m->fd = fd;
    return 0;
}

int ab_archive_set_last(ab_archive *a, const char *name, unsigned mode, ab_archive_last_fn fn,
                        void *arg)
{
    if (!ab_archive_name_ok(name))
        return s_fail(a, "%s: not a valid member name", name);
    free(a->last_name);
    a->last_name = strdup(name);
    a->last_mode = mode & 07777;
    a->last_fn = fn;
    a->last_arg = arg;
    a->has_last = a->last_name != NULL;
    return a->has_last ? 0 : -1;
}

/* --- the ustar header ------------------------------------------------------------------ */

/* width - 1 octal digits, zero-padded, and a NUL (the caller checked that v fits). */
static void s_octal(char *field, size_t width, uint64_t v)
{
    field[width - 1] = '\0';
    for (size_t i = width - 1; i-- > 0; v >>= 3)
        field[i] = (char)('0' + (v & 7));
}

static void s_header(const s_member *m, uint8_t block[BLOCK])
{
    char *h = (char *)block;
    memset(h, 0, BLOCK);
    int split = s_split(m->name);
    if (split > 0) {
        memcpy(h + 345, m->name, (size_t)split); /* prefix */
        memcpy(h, m->name + split + 1, strlen(m->name) - (size_t)split - 1);
    } else {
        memcpy(h, m->name, strlen(m->name));
    }
    s_octal(h + 100, 8, m->mode);
    s_octal(h + 108, 8, 0); /* uid */
    s_octal(h + 116, 8, 0); /* gid */
    if (m->size <= OCTAL_SIZE_MAX) {
        s_octal(h + 124, 12, m->size);
    } else { /* GNU base-256: the high bit of the first byte, then big-endian */
        uint64_t v = m->size;
        for (int i = 11; i >= 1; i--, v >>= 8)
            block[124 + i] = (uint8_t)(v & 0xff);
        block[124] = 0x80;
    }
    s_octal(h + 136, 12, m->mtime > 0 ? (uint64_t)m->mtime : 0);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6); /* magic, NUL-terminated */
    memcpy(h + 263, "00", 2);    /* version */
    memset(h + 148, ' ', 8);     /* the checksum counts its own field as spaces */
    unsigned sum = 0;
    for (int i = 0; i < BLOCK; i++)
        sum += block[i];
    snprintf(h + 148, 8, "%06o", sum); /* six digits, NUL, and the space already there */
    h[155] = ' ';
}

/* --- producing the uncompressed stream -------------------------------------------------- */

static int s_open_member(ab_archive *a, s_member *m)
{
    if (m->fd >= 0 || m->data || !m->path)
        return 0;
    m->fd = open(m->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (m->fd < 0)
        return s_fail(a, "%s: cannot open: %s", m->path, strerror(errno));
    return 0;
}

/* Make the last member from the hashes so far (once). */
static int s_add_last(ab_archive *a)
{
    size_t len = 0;
    char *data = a->last_fn(a, a->last_arg, &len);
    if (!data)
        return s_fail(a, "cannot build %s", a->last_name);
    s_member *m = s_push(a, a->last_name, len, a->last_mode, (int64_t)time(NULL));
    if (!m) {
        free(data);
        return -1;
    }
    m->data = data;
    a->last_added = true;
    return 0;
}

/* Fill a->in with the next uncompressed bytes; *n receives how many (0 at the very end). */
static int s_fill(ab_archive *a, size_t *n)
{
    *n = 0;
    while (*n == 0) {
        if (a->phase == S_END)
            return 0;
        if (a->cur == a->n && a->phase == S_HEADER) {
            if (a->has_last && !a->last_added) {
                if (s_add_last(a) < 0)
                    return -1;
                continue;
            }
            memset(a->in, 0, 2 * BLOCK); /* two zero blocks end a tar */
            *n = 2 * BLOCK;
            a->phase = S_END;
            return 0;
        }
        s_member *m = &a->m[a->cur];
        switch (a->phase) {
        case S_HEADER:
            if (s_open_member(a, m) < 0)
                return -1;
            s_header(m, a->in);
            *n = BLOCK;
            a->left = m->size;
            EVP_DigestInit_ex(a->sha, EVP_sha256(), NULL);
            a->phase = S_DATA;
            break;
        case S_DATA: {
            if (a->left == 0) {
                EVP_DigestFinal_ex(a->sha, m->sha256, NULL);
                if (m->fd >= 0)
                    close(m->fd);
                m->fd = -1;
                a->phase = S_PAD;
                break;
            }
            size_t want = a->left < CHUNK ? (size_t)a->left : CHUNK;
            uint64_t off = m->size - a->left;
            if (m->data) {
                memcpy(a->in, m->data + off, want);
            } else {
                ssize_t got = pread(m->fd, a->in, want, (off_t)off);
                if (got < 0 && errno == EINTR)
                    continue;
                if (got < 0)
                    return s_fail(a, "%s: read failed: %s", m->name, strerror(errno));
                if (got == 0)
                    return s_fail(a, "%s shrank while being archived (%llu of %llu bytes)", m->name,
                                  (unsigned long long)off, (unsigned long long)m->size);
                want = (size_t)got;
            }
            EVP_DigestUpdate(a->sha, a->in, want);
            a->left -= want;
            if (!m->data) /* as in ab_archive_bytes_total: files, not the last member */
                a->done_bytes += want;
            *n = want;
            break;
        }
        case S_PAD: {
            size_t pad = (size_t)((BLOCK - m->size % BLOCK) % BLOCK);
            memset(a->in, 0, pad);
            *n = pad;
            a->cur++;
            a->phase = S_HEADER;
            break;
        }
        default:
            return 0;
        }
    }
    return 0;
}

ssize_t ab_archive_read(ab_archive *a, void *buf, size_t len)
{
    if (a->finished || len == 0)
        return 0;
    a->z.next_out = buf;
    a->z.avail_out = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
    uInt want = a->z.avail_out;
    while (a->z.avail_out > 0) {
        if (a->z.avail_in == 0 && a->phase != S_FLUSHED) {
            bool was_end = a->phase == S_END;
            size_t n = 0;
            if (!was_end && s_fill(a, &n) < 0)
                return -1;
            a->z.next_in = a->in;
            a->z.avail_in = (uInt)n;
            if (was_end)
                a->phase = S_FLUSHED; /* the end blocks went in: finish the stream */
        }
        int rc = deflate(&a->z, a->phase == S_FLUSHED ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            a->finished = true;
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return s_fail(a, "compression failed (zlib %d)", rc);
    }
    return (ssize_t)(want - a->z.avail_out);
}

const char *ab_archive_error(const ab_archive *a)
{
    return a->err;
}

size_t ab_archive_count(const ab_archive *a)
{
    return a->n;
}

ab_archive_member ab_archive_member_at(const ab_archive *a, size_t i)
{
    ab_archive_member r = {a->m[i].name, a->m[i].size, a->m[i].mode, {0}};
    memcpy(r.sha256, a->m[i].sha256, sizeof r.sha256);
    return r;
}

uint64_t ab_archive_bytes_done(const ab_archive *a)
{
    return a->done_bytes;
}

uint64_t ab_archive_bytes_total(const ab_archive *a)
{
    uint64_t t = 0;
    for (size_t i = 0; i < a->n; i++)
        if (!a->m[i].data)
            t += a->m[i].size;
    return t;
}
