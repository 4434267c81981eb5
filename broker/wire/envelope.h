/* envelope.h — the v1 envelope codec: commands in, replies and events out.
 *
 * Decoding is strict (docs/protocol.md): the top level is a msgpack map with only the
 * keys of the contract, each of its type and within its size; strings must be valid
 * UTF-8. Any fault gives an `invalid` error naming the offending key. Argument values
 * inside `args` are checked later, against the command catalog (schemas/catalog.h). */
#ifndef AB_ENVELOPE_H
#define AB_ENVELOPE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/errors.h"

#define AB_WIRE_VERSION 1
#define AB_ID_LEN       36  /* canonical UUID text */
#define AB_TYPE_MAX     64  /* longest command type */
#define AB_AUTH_MAX     128 /* longest credential accepted */
#define AB_KEY_MAX      255 /* ordering key / reply_to */
#define AB_IP_MAX       45  /* longest textual IPv6 address */

/* The envelope's via, the only value it takes: the command came through the HTTP shim. */
#define AB_VIA_HTTP "http"

/* A decoded command. Strings point into the decoded zone and are NOT NUL-terminated
 * unless noted; they live as long as the command (until ab_command_msg_release). */
typedef struct {
    char id[AB_ID_LEN + 1];     /* NUL-terminated, lower case; "" when absent/unreadable */
    char type[AB_TYPE_MAX + 1]; /* NUL-terminated */
    const msgpack_object *args; /* a map (possibly empty) */
    const char *args_raw;       /* the args map's bytes as sent (for the idempotency digest) */
    size_t args_raw_len;
    const char *auth; /* NULL when absent */
    size_t auth_len;
    const char *session; /* NULL when absent */
    size_t session_len;
    const char *key; /* NULL when absent */
    size_t key_len;
    const char *reply_to; /* NULL when absent */
    size_t reply_to_len;
    int64_t ts;                /* 0 when absent */
    char ip[AB_IP_MAX + 1];    /* set by the transport from the connection, never from the body */
    msgpack_unpacked unpacked; /* owns the zone */
    /* via = "http": the HTTP shim sent it, and the engine refuses what MISP keeps off the
     * web (CLI-only settings) */
    bool via_http;
} ab_command_msg;

/* Decode one command from buf (len bytes). On success returns 0 and *out owns its
 * data (release with ab_command_msg_release). On failure returns -1 with *err set
 * (code invalid, field = the offending envelope key, or "frame" for bytes that are
 * not a msgpack map); out->id holds the id if it could be read, so the reply can echo
 * it; out needs no release after a failure. */
int ab_command_decode(const void *buf, size_t len, ab_command_msg *out, ab_error *err);

/* Free what ab_command_decode allocated. Safe on a zeroed struct. */
void ab_command_msg_release(ab_command_msg *msg);

/* True when s (len bytes) is a canonical lower- or upper-case UUID (8-4-4-4-12 hex). */
bool ab_uuid_valid(const char *s, size_t len);

/* What is wrong with a string from the wire: nothing, a byte sequence that is not UTF-8
 * (truncated, overlong, a surrogate, past U+10FFFF), or a NUL character (valid UTF-8, but
 * no text we store or compare may hold one: C strings and MISP's columns end there). */
typedef enum { AB_TEXT_OK, AB_TEXT_NOT_UTF8, AB_TEXT_NUL } ab_text_fault;

/* The first fault of s (len bytes), AB_TEXT_OK when there is none. */
ab_text_fault ab_text_check(const char *s, size_t len);

/* What an error message says of a string with fault f: "is not valid UTF-8", "contains a
 * NUL character" ("" for AB_TEXT_OK). Static storage. */
const char *ab_text_fault_text(ab_text_fault f);

/* True when s (len bytes) is valid UTF-8 with no NUL byte (ab_text_check gives OK). */
bool ab_utf8_valid(const char *s, size_t len);

/* The number of characters (code points) of s (len bytes of valid UTF-8): the length the
 * catalog's limits count. */
size_t ab_utf8_chars(const char *s, size_t len);

/* The length of the longest prefix of s (len bytes of valid UTF-8) that has at most max
 * bytes and does not cut a character in two: where to cut text to fit a byte limit. */
size_t ab_utf8_cut(const char *s, size_t len, size_t max);

/* Remove from the NUL-terminated s, in place, every byte that is not part of a valid UTF-8
 * sequence (what a byte limit leaves of a character it cut); returns the new length. For
 * text made with printf-style limits (%.*s, a buffer's size) that must go out as UTF-8. */
size_t ab_utf8_scrub(char *s);

/* --- encoding --------------------------------------------------------------------- */

/* Start an ok reply: writes the map header and v, id, ok:true, and the key "result";
 * the caller then packs exactly one value (the result). id may be NULL or "". */
void ab_reply_begin_ok(msgpack_packer *pk, const char *id);

/* Pack a complete error reply for err. id may be NULL or "". */
void ab_reply_pack_error(msgpack_packer *pk, const char *id, const ab_error *err);

/* Pack a complete event {v, topic, ts, data}; the caller then packs exactly one value
 * (data) after this call. ts_ms = unix milliseconds. */
void ab_event_begin(msgpack_packer *pk, const char *topic, int64_t ts_ms);

/* A diagnostics probe event: a topic of its own, diagnostics.probe.<pid>-<ns>., into
 * topic[0..topic_len), and the event {probe: true} under it into body, which this
 * initialises (the caller destroys it). Both daemon buses' probes send one and wait for it
 * to come back (zbus.h, kbus.h). */
void ab_probe_event(char *topic, size_t topic_len, msgpack_sbuffer *body);

/* Pack a NUL-terminated C string as msgpack str. */
void ab_pack_cstr(msgpack_packer *pk, const char *s);

/* Pack len bytes as msgpack str. */
void ab_pack_str(msgpack_packer *pk, const char *s, size_t len);

/* Find key in a msgpack map; NULL when absent or obj is not a map. */
const msgpack_object *ab_map_get(const msgpack_object *map, const char *key);

#endif
