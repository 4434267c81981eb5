/* envelope.c — the v1 envelope codec (see envelope.h and docs/protocol.md).
 *
 * Decoding runs in three steps:
 *  1. s_scan walks the raw bytes once without allocating: it proves the frame is one
 *     well-formed msgpack map with nothing after it, bounds the nesting depth, and finds
 *     the exact bytes of `args`. msgpack-c allocates a container's elements as soon as it
 *     reads the header, so a 5-byte "array of 4 billion" would otherwise make it try to
 *     allocate ~100 GB; after the scan every count is bounded by the frame's length.
 *  2. msgpack_unpack_next builds the object tree from a private copy of the frame, so the
 *     command owns its bytes and outlives the caller's buffer.
 *  3. s_check_keys enforces the contract on the tree, key by key, in wire order. */
#include "wire/envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Containers allowed on any path through a frame, the envelope map included. msgpack-c's
 * unpacker has a fixed stack of 32 containers; staying within it keeps its NOMEM error,
 * which says nothing about the cause, out of reach. */
#define S_NEST_MAX 32

/* --- validators ------------------------------------------------------------------- */

static int s_hex(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool ab_uuid_valid(const char *s, size_t len)
{
    if (!s || len != AB_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !s_hex((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* Length of the UTF-8 sequence starting at p (n bytes left), or 0 when it is invalid:
 * truncated, a stray continuation byte, overlong, a surrogate or beyond U+10FFFF. */
static size_t s_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    /* Second-byte range per lead byte (Unicode 15, table 3-7) rules out overlongs,
     * surrogates and code points past U+10FFFF in one comparison. */
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

ab_text_fault ab_text_check(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] == 0)
            return AB_TEXT_NUL;
        size_t n = s_utf8_seq(p + i, len - i);
        if (n == 0)
            return AB_TEXT_NOT_UTF8;
        i += n;
    }
    return AB_TEXT_OK;
}

const char *ab_text_fault_text(ab_text_fault f)
{
    switch (f) {
    case AB_TEXT_NOT_UTF8:
        return "is not valid UTF-8";
    case AB_TEXT_NUL:
        return "contains a NUL character";
    case AB_TEXT_OK:
        break;
    }
    return "";
}

bool ab_utf8_valid(const char *s, size_t len)
{
    return ab_text_check(s, len) == AB_TEXT_OK;
}

size_t ab_utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80; /* every byte but continuation bytes */
    return n;
}

size_t ab_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return max;
}

size_t ab_utf8_scrub(char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s), out = 0;
    for (size_t i = 0; i < len;) {
        size_t n = s_utf8_seq(p + i, len - i);
        if (n == 0) {
            i++; /* a stray or cut byte: dropped */
            continue;
        }
        memmove(s + out, s + i, n);
        out += n;
        i += n;
    }
    s[out] = '\0';
    return out;
}

/* ^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$, 1..AB_TYPE_MAX bytes: noun.verb. */
static bool s_type_valid(const char *s, size_t len)
{
    if (len == 0 || len > AB_TYPE_MAX)
        return false;
    size_t i = 0;
    bool dot = false;
    for (int part = 0; part < 2; part++) {
        if (i >= len || s[i] < 'a' || s[i] > 'z')
            return false;
        for (i++; i < len; i++) {
            char c = s[i];
            bool word = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
            if (c == '.' && part == 0) {
                dot = true;
                i++;
                break;
            }
            if (!word && !(c == '.' && part == 1))
                return false;
        }
    }
    return dot && i == len;
}

/* --- step 1: the raw scan --------------------------------------------------------- */

typedef struct {
    const unsigned char *p;
    size_t len, off;
} s_reader;

typedef enum { S_SCALAR, S_STR, S_ARRAY, S_MAP } s_kind;

enum { S_MALFORMED = -1, S_TOO_DEEP = -2 };

static int s_be(s_reader *r, size_t n, uint64_t *v)
{
    if (r->len - r->off < n)
        return S_MALFORMED;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = *v << 8 | r->p[r->off++];
    return 0;
}

/* Headers 0xC4..0xDF: a size or count follows in 1, 2 or 4 big-endian bytes, or the
 * payload has a fixed size. */
static int s_head_long(s_reader *r, unsigned c, s_kind *kind, uint64_t *n)
{
    if (c >= 0xC4 && c <= 0xC6) /* bin 8/16/32 */
        return s_be(r, (size_t)1 << (c - 0xC4), n);
    if (c >= 0xC7 && c <= 0xC9) { /* ext 8/16/32: size, then a type byte */
        int rc = s_be(r, (size_t)1 << (c - 0xC7), n);
        *n += 1;
        return rc;
    }
    if (c == 0xCA || c == 0xCB) { /* float 32/64 */
        *n = c == 0xCA ? 4 : 8;
        return 0;
    }
    if (c >= 0xCC && c <= 0xD3) { /* uint 8..64, int 8..64 */
        *n = (uint64_t)1 << ((c - 0xCC) % 4);
        return 0;
    }
    if (c >= 0xD4 && c <= 0xD8) { /* fixext 1..16, plus a type byte */
        *n = ((uint64_t)1 << (c - 0xD4)) + 1;
        return 0;
    }
    if (c >= 0xD9 && c <= 0xDB) { /* str 8/16/32 */
        *kind = S_STR;
        return s_be(r, (size_t)1 << (c - 0xD9), n);
    }
    *kind = c <= 0xDD ? S_ARRAY : S_MAP; /* array 16/32, map 16/32 */
    return s_be(r, (c - 0xDC) % 2 ? 4 : 2, n);
}

/* Read one header: *kind, and *n = payload bytes (scalars, str) or element count. */
static int s_head(s_reader *r, s_kind *kind, uint64_t *n)
{
    if (r->off >= r->len)
        return S_MALFORMED;
    unsigned c = r->p[r->off++];
    *kind = S_SCALAR;
    *n = 0;
    if (c <= 0x7F || c >= 0xE0 || c == 0xC0 || c == 0xC2 || c == 0xC3)
        return 0; /* fixint, nil, false, true */
    if (c == 0xC1)
        return S_MALFORMED; /* never used */
    if (c >= 0xC4)
        return s_head_long(r, c, kind, n);
    /* 0x80..0xBF: fixmap, fixarray, fixstr with the size in the low bits */
    *kind = c <= 0x8F ? S_MAP : c <= 0x9F ? S_ARRAY : S_STR;
    *n = c <= 0x9F ? (c & 0x0F) : (c & 0x1F);
    return 0;
}

/* Skip one object; depth = containers already open around it. */
static int s_skip(s_reader *r, int depth)
{
    s_kind kind;
    uint64_t n;
    if (s_head(r, &kind, &n) < 0)
        return S_MALFORMED;
    if (kind == S_SCALAR || kind == S_STR) {
        if (r->len - r->off < n)
            return S_MALFORMED;
        r->off += (size_t)n;
        return 0;
    }
    if (depth + 1 > S_NEST_MAX)
        return S_TOO_DEEP;
    uint64_t items = kind == S_MAP ? 2 * n : n;
    /* Every element takes at least one byte: a larger count cannot be honest. */
    if (items > r->len - r->off)
        return S_MALFORMED;
    for (uint64_t i = 0; i < items; i++) {
        int rc = s_skip(r, depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* What the scan learns about the frame. */
typedef struct {
    size_t args_off, args_len; /* args_len 0: no args key */
    size_t id_off, id_len;     /* id_len 0: no str id key */
} s_scan_info;

/* True when the object at offset start is a str equal to name; r is not moved. */
static bool s_key_is(s_reader *r, size_t start, const char *name)
{
    s_reader k = {r->p, r->len, start};
    s_kind kind;
    uint64_t n;
    size_t want = strlen(name);
    if (s_head(&k, &kind, &n) < 0 || kind != S_STR || n != want || k.len - k.off < n)
        return false;
    return memcmp(k.p + k.off, name, want) == 0;
}

/* Offset and length of the str payload at start (already proven well-formed). */
static void s_str_at(const s_reader *r, size_t start, size_t *off, size_t *len)
{
    s_reader v = {r->p, r->len, start};
    s_kind kind;
    uint64_t n;
    *off = *len = 0;
    if (s_head(&v, &kind, &n) == 0 && kind == S_STR && n <= v.len - v.off) {
        *off = v.off;
        *len = (size_t)n;
    }
}

static int s_scan_pairs(s_reader *r, uint64_t pairs, s_scan_info *info, ab_error *err)
{
    for (uint64_t i = 0; i < pairs; i++) {
        size_t key = r->off;
        int rc = s_skip(r, 1);
        if (rc == S_TOO_DEEP)
            return ab_fail(err, AB_E_INVALID, "frame", "nested deeper than %d levels", S_NEST_MAX);
        if (rc < 0)
            return ab_fail(err, AB_E_INVALID, "frame", "not msgpack (truncated or malformed)");
        size_t val = r->off;
        rc = s_skip(r, 1);
        bool is_args = s_key_is(r, key, "args");
        if (rc == S_TOO_DEEP && is_args)
            return ab_fail(err, AB_E_INVALID, "args",
                           "args nest too deeply: at most %d levels, the command map included",
                           S_NEST_MAX);
        if (rc == S_TOO_DEEP)
            return ab_fail(err, AB_E_INVALID, "frame", "nested deeper than %d levels", S_NEST_MAX);
        if (rc < 0)
            return ab_fail(err, AB_E_INVALID, "frame", "not msgpack (truncated or malformed)");
        if (is_args && info->args_len == 0) {
            info->args_off = val;
            info->args_len = r->off - val;
        }
        if (info->id_len == 0 && s_key_is(r, key, "id"))
            s_str_at(r, val, &info->id_off, &info->id_len);
    }
    return 0;
}

static int s_scan(const unsigned char *p, size_t len, s_scan_info *info, ab_error *err)
{
    s_reader r = {p, len, 0};
    s_kind kind;
    uint64_t pairs;
    memset(info, 0, sizeof *info);
    if (s_head(&r, &kind, &pairs) < 0)
        return ab_fail(err, AB_E_INVALID, "frame", "not msgpack");
    if (kind != S_MAP)
        return ab_fail(err, AB_E_INVALID, "frame", "not a msgpack map");
    if (pairs > len - r.off)
        return ab_fail(err, AB_E_INVALID, "frame", "not msgpack (truncated or malformed)");
    if (s_scan_pairs(&r, pairs, info, err) < 0)
        return -1;
    if (r.off != len)
        return ab_fail(err, AB_E_INVALID, "frame", "%zu trailing byte(s) after the command map",
                       len - r.off);
    return 0;
}

/* --- step 3: the contract, key by key --------------------------------------------- */

typedef enum {
    K_V,
    K_ID,
    K_TYPE,
    K_ARGS,
    K_AUTH,
    K_SESSION,
    K_KEY,
    K_REPLY_TO,
    K_TS,
    K_VIA,
    K__N
} s_key;

static const char *const s_key_names[K__N] = {"v",       "id",  "type",     "args", "auth",
                                              "session", "key", "reply_to", "ts",   "via"};

static int s_key_find(const msgpack_object *k)
{
    for (int i = 0; i < K__N; i++)
        if (strlen(s_key_names[i]) == k->via.str.size &&
            memcmp(s_key_names[i], k->via.str.ptr, k->via.str.size) == 0)
            return i;
    return -1;
}

/* A name from the wire fit to be echoed as an error's field (valid UTF-8 that fits);
 * fallback when it is not. */
static const char *s_field_name(const msgpack_object *k, char *buf, size_t size,
                                const char *fallback)
{
    if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 || k->via.str.size >= size ||
        !ab_utf8_valid(k->via.str.ptr, k->via.str.size))
        return fallback;
    memcpy(buf, k->via.str.ptr, k->via.str.size);
    buf[k->via.str.size] = '\0';
    return buf;
}

static bool s_get_int(const msgpack_object *v, int64_t *out)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)v->via.u64;
        return true;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return true;
    }
    return false;
}

/* A str of at most max bytes, valid UTF-8; stores pointer and length. */
static int s_take_str(const msgpack_object *v, const char *name, size_t max, const char **ptr,
                      size_t *len, ab_error *err)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return ab_fail(err, AB_E_INVALID, name, "%s must be a string", name);
    if (v->via.str.size > max)
        return ab_fail(err, AB_E_INVALID, name, "%s is too long: %u bytes, at most %zu", name,
                       v->via.str.size, max);
    ab_text_fault fault = ab_text_check(v->via.str.ptr, v->via.str.size);
    if (fault != AB_TEXT_OK)
        return ab_fail(err, AB_E_INVALID, name, "%s %s", name, ab_text_fault_text(fault));
    *ptr = v->via.str.ptr;
    *len = v->via.str.size;
    return 0;
}

static int s_take_v(const msgpack_object *v, ab_error *err)
{
    int64_t n;
    if (!s_get_int(v, &n))
        return ab_fail(err, AB_E_INVALID, "v", "v must be an integer");
    if (n != AB_WIRE_VERSION)
        return ab_fail(err, AB_E_INVALID, "v",
                       "unsupported wire version %lld; this server speaks %d", (long long)n,
                       AB_WIRE_VERSION);
    return 0;
}

static int s_take_id(const msgpack_object *v, ab_command_msg *out, ab_error *err)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return ab_fail(err, AB_E_INVALID, "id", "id must be a string");
    if (!ab_uuid_valid(v->via.str.ptr, v->via.str.size))
        return ab_fail(err, AB_E_INVALID, "id",
                       "id must be a UUID like 5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f");
    for (size_t i = 0; i < AB_ID_LEN; i++) {
        char c = v->via.str.ptr[i];
        out->id[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    out->id[AB_ID_LEN] = '\0';
    return 0;
}

static int s_take_type(const msgpack_object *v, ab_command_msg *out, ab_error *err)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return ab_fail(err, AB_E_INVALID, "type", "type must be a string");
    if (!s_type_valid(v->via.str.ptr, v->via.str.size))
        return ab_fail(err, AB_E_INVALID, "type",
                       "type must be noun.verb in lower case (like org.add), at most %d bytes",
                       AB_TYPE_MAX);
    memcpy(out->type, v->via.str.ptr, v->via.str.size);
    out->type[v->via.str.size] = '\0';
    return 0;
}

/* Every str anywhere inside v is valid UTF-8 without NUL; field names the argument holding
 * v. top: v is the argument's value itself (the message then speaks of the argument). */
static int s_strings_valid(const msgpack_object *v, const char *field, bool top, ab_error *err)
{
    switch (v->type) {
    case MSGPACK_OBJECT_STR: {
        ab_text_fault fault = ab_text_check(v->via.str.ptr, v->via.str.size);
        if (fault == AB_TEXT_OK)
            return 0;
        if (top)
            return ab_fail(err, AB_E_INVALID, field, "%s %s", field, ab_text_fault_text(fault));
        return ab_fail(err, AB_E_INVALID, field, "%s holds a string that %s", field,
                       ab_text_fault_text(fault));
    }
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < v->via.array.size; i++)
            if (s_strings_valid(&v->via.array.ptr[i], field, false, err) < 0)
                return -1;
        return 0;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < v->via.map.size; i++)
            if (s_strings_valid(&v->via.map.ptr[i].key, field, false, err) < 0 ||
                s_strings_valid(&v->via.map.ptr[i].val, field, false, err) < 0)
                return -1;
        return 0;
    default:
        return 0;
    }
}

static int s_take_args(const msgpack_object *v, ab_command_msg *out, ab_error *err)
{
    if (v->type != MSGPACK_OBJECT_MAP)
        return ab_fail(err, AB_E_INVALID, "args", "args must be a map");
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return ab_fail(err, AB_E_INVALID, "args", "argument names must be strings");
        ab_text_fault fault = ab_text_check(k->via.str.ptr, k->via.str.size);
        if (fault != AB_TEXT_OK)
            return ab_fail(err, AB_E_INVALID, "args", "an argument name %s",
                           ab_text_fault_text(fault));
        char buf[sizeof err->field];
        const char *field = s_field_name(k, buf, sizeof buf, "args");
        if (s_strings_valid(&v->via.map.ptr[i].val, field, true, err) < 0)
            return -1;
    }
    out->args = v;
    return 0;
}

static int s_take_ts(const msgpack_object *v, ab_command_msg *out, ab_error *err)
{
    if (!s_get_int(v, &out->ts))
        return ab_fail(err, AB_E_INVALID, "ts", "ts must be an integer (unix milliseconds)");
    return 0;
}

/* via: the channel a command came through, set by the proxy that turned a request into
 * it. Only "http" exists, and it only takes rights away (docs/protocol.md), so a client
 * that sends it limits itself and nobody gains by forging it. */
static int s_take_via(const msgpack_object *v, ab_command_msg *out, ab_error *err)
{
    if (v->type != MSGPACK_OBJECT_STR || v->via.str.size != strlen(AB_VIA_HTTP) ||
        memcmp(v->via.str.ptr, AB_VIA_HTTP, v->via.str.size) != 0)
        return ab_fail(err, AB_E_INVALID, "via", "via must be \"%s\" when present", AB_VIA_HTTP);
    out->via_http = true;
    return 0;
}

static int s_take(s_key key, const msgpack_object *v, ab_command_msg *out, ab_error *err)
{
    switch (key) {
    case K_V:
        return s_take_v(v, err);
    case K_ID:
        return s_take_id(v, out, err);
    case K_TYPE:
        return s_take_type(v, out, err);
    case K_ARGS:
        return s_take_args(v, out, err);
    case K_AUTH:
        return s_take_str(v, "auth", AB_AUTH_MAX, &out->auth, &out->auth_len, err);
    case K_SESSION:
        return s_take_str(v, "session", AB_AUTH_MAX, &out->session, &out->session_len, err);
    case K_KEY:
        return s_take_str(v, "key", AB_KEY_MAX, &out->key, &out->key_len, err);
    case K_REPLY_TO:
        return s_take_str(v, "reply_to", AB_KEY_MAX, &out->reply_to, &out->reply_to_len, err);
    case K_TS:
        return s_take_ts(v, out, err);
    case K_VIA:
        return s_take_via(v, out, err);
    default:
        return ab_fail(err, AB_E_INTERNAL, "frame", "unhandled envelope key");
    }
}

/* Before the key-by-key pass: the id, so that every later error can echo it, and the
 * version, so that a newer client hears "unsupported version" rather than about a key
 * it had every right to send. */
static int s_check_early(const msgpack_object *map, ab_command_msg *out, ab_error *err)
{
    const msgpack_object *id = ab_map_get(map, "id");
    ab_error ignored;
    if (id)
        s_take_id(id, out, &ignored);
    const msgpack_object *v = ab_map_get(map, "v");
    return v ? s_take_v(v, err) : 0;
}

static int s_check_keys(const msgpack_object *map, ab_command_msg *out, ab_error *err)
{
    if (s_check_early(map, out, err) < 0)
        return -1;
    unsigned seen = 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        char buf[sizeof err->field];
        if (k->type != MSGPACK_OBJECT_STR)
            return ab_fail(err, AB_E_INVALID, "frame", "envelope keys must be strings");
        int key = s_key_find(k);
        if (key < 0) {
            const char *f = s_field_name(k, buf, sizeof buf, NULL);
            if (!f)
                return ab_fail(err, AB_E_INVALID, "frame",
                               "unknown envelope key (empty, too long or not UTF-8)");
            return ab_fail(err, AB_E_INVALID, f, "unknown envelope key '%s'", f);
        }
        if (seen & (1u << key))
            return ab_fail(err, AB_E_INVALID, s_key_names[key], "%s is given twice",
                           s_key_names[key]);
        seen |= 1u << key;
        if (s_take((s_key)key, &map->via.map.ptr[i].val, out, err) < 0)
            return -1;
    }
    for (int key = K_V; key <= K_ARGS; key++)
        if (!(seen & (1u << key)))
            return ab_fail(err, AB_E_INVALID, s_key_names[key], "%s is required", s_key_names[key]);
    return 0;
}

/* --- decoding: the three steps together ------------------------------------------- */

/* Step 2: unpack a private copy of the frame that the zone frees with everything else. */
static int s_unpack(const void *buf, size_t len, ab_command_msg *out, char **copy, ab_error *err)
{
    *copy = malloc(len);
    if (!*copy)
        return ab_fail(err, AB_E_INTERNAL, "frame", "out of memory");
    memcpy(*copy, buf, len);
    size_t off = 0;
    msgpack_unpacked_init(&out->unpacked);
    msgpack_unpack_return rc = msgpack_unpack_next(&out->unpacked, *copy, len, &off);
    if (!out->unpacked.zone)
        out->unpacked.zone = msgpack_zone_new(256);
    bool owned = out->unpacked.zone && msgpack_zone_push_finalizer(out->unpacked.zone, free, *copy);
    if (!owned) {
        free(*copy);
        *copy = NULL;
    }
    if (rc != MSGPACK_UNPACK_SUCCESS || off != len || !owned)
        return ab_fail(err,
                       rc == MSGPACK_UNPACK_NOMEM_ERROR || !owned ? AB_E_INTERNAL : AB_E_INVALID,
                       "frame", "could not decode the frame (msgpack error %d)", (int)rc);
    if (out->unpacked.data.type != MSGPACK_OBJECT_MAP)
        return ab_fail(err, AB_E_INVALID, "frame", "not a msgpack map");
    return 0;
}

/* Keep id and type (a failure reply may echo them) and drop everything else. */
static int s_decode_failed(ab_command_msg *out)
{
    char id[sizeof out->id], type[sizeof out->type];
    memcpy(id, out->id, sizeof id);
    memcpy(type, out->type, sizeof type);
    ab_command_msg_release(out);
    memcpy(out->id, id, sizeof id);
    memcpy(out->type, type, sizeof type);
    return -1;
}

/* After a failed scan, the id is still worth echoing when the scan found it. */
static void s_echo_scanned_id(const char *buf, const s_scan_info *info, ab_command_msg *out)
{
    msgpack_object v = {.type = MSGPACK_OBJECT_STR};
    v.via.str.ptr = buf + info->id_off;
    v.via.str.size = (uint32_t)info->id_len;
    ab_error ignored;
    if (info->id_len == AB_ID_LEN)
        s_take_id(&v, out, &ignored);
}

int ab_command_decode(const void *buf, size_t len, ab_command_msg *out, ab_error *err)
{
    memset(out, 0, sizeof *out);
    if (err)
        ab_error_clear(err);
    s_scan_info info;
    if (!buf || len == 0)
        return ab_fail(err, AB_E_INVALID, "frame", "not msgpack (empty frame)");
    if (s_scan(buf, len, &info, err) < 0) {
        s_echo_scanned_id(buf, &info, out);
        return -1;
    }
    char *copy = NULL;
    if (s_unpack(buf, len, out, &copy, err) < 0 || s_check_keys(&out->unpacked.data, out, err) < 0)
        return s_decode_failed(out);
    out->args_raw = copy + info.args_off;
    out->args_raw_len = info.args_len;
    return 0;
}

void ab_command_msg_release(ab_command_msg *msg)
{
    if (!msg)
        return;
    msgpack_unpacked_destroy(&msg->unpacked);
    memset(msg, 0, sizeof *msg);
}

/* --- encoding --------------------------------------------------------------------- */

void ab_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

void ab_pack_cstr(msgpack_packer *pk, const char *s)
{
    ab_pack_str(pk, s ? s : "", s ? strlen(s) : 0);
}

/* v and id, the first two entries of every reply. */
static void s_reply_head(msgpack_packer *pk, const char *id, bool ok)
{
    msgpack_pack_map(pk, 4);
    ab_pack_cstr(pk, "v");
    msgpack_pack_int(pk, AB_WIRE_VERSION);
    ab_pack_cstr(pk, "id");
    if (id && *id)
        ab_pack_cstr(pk, id);
    else
        msgpack_pack_nil(pk);
    ab_pack_cstr(pk, "ok");
    if (ok)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

void ab_reply_begin_ok(msgpack_packer *pk, const char *id)
{
    s_reply_head(pk, id, true);
    ab_pack_cstr(pk, "result");
}

void ab_reply_pack_error(msgpack_packer *pk, const char *id, const ab_error *err)
{
    /* An error reply must carry an error code: "ok" (or garbage) here is a bug upstream,
     * and the client is better served by "internal" than by a contradiction. */
    ab_code code = err->code > AB_OK && err->code < AB_E__COUNT ? err->code : AB_E_INTERNAL;
    bool field = err->field[0] != '\0';
    bool retry = err->retry_after > 0;
    s_reply_head(pk, id, false);
    ab_pack_cstr(pk, "error");
    msgpack_pack_map(pk, 2 + field + retry);
    ab_pack_cstr(pk, "code");
    ab_pack_cstr(pk, ab_code_name(code));
    ab_pack_cstr(pk, "message");
    ab_pack_str(pk, err->message, strnlen(err->message, sizeof err->message));
    if (field) {
        ab_pack_cstr(pk, "field");
        ab_pack_str(pk, err->field, strnlen(err->field, sizeof err->field));
    }
    if (retry) {
        ab_pack_cstr(pk, "retry_after");
        msgpack_pack_int(pk, err->retry_after);
    }
}

void ab_event_begin(msgpack_packer *pk, const char *topic, int64_t ts_ms)
{
    msgpack_pack_map(pk, 4);
    ab_pack_cstr(pk, "v");
    msgpack_pack_int(pk, AB_WIRE_VERSION);
    ab_pack_cstr(pk, "topic");
    ab_pack_cstr(pk, topic);
    ab_pack_cstr(pk, "ts");
    msgpack_pack_int64(pk, ts_ms);
    ab_pack_cstr(pk, "data");
}

void ab_probe_event(char *topic, size_t topic_len, msgpack_sbuffer *body)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(topic, topic_len, "diagnostics.probe.%d-%lld.", (int)getpid(),
             (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    msgpack_sbuffer_init(body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, body, msgpack_sbuffer_write);
    ab_event_begin(&pk, topic, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    msgpack_pack_map(&pk, 1);
    ab_pack_cstr(&pk, "probe");
    msgpack_pack_true(&pk);
}

const msgpack_object *ab_map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP || !key)
        return NULL;
    size_t len = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
            memcmp(k->via.str.ptr, key, len) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}
