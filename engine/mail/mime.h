/* mime.h — building RFC 5322 / MIME messages for the mail-out (issue 6): headers that
 * cannot be injected into, UTF-8 encoded words (RFC 2047), quoted-printable and base64
 * bodies (RFC 2045), a deterministic Message-ID, and the two PGP/MIME wrappers of RFC 3156.
 *
 * Every line this module writes ends in CRLF: what is signed is exactly what is sent
 * (RFC 3156 §5 asks for the canonical form of the signed part). No function here reads a
 * setting or the database; mime.c is pure and unit-tested (tests/unit/test_mime.c). */
#ifndef AB_MIME_H
#define AB_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/errors.h"

/* A growing byte buffer, always NUL-terminated. Zero-initialise it ({0}); free with
 * ab_mime_buf_free. An allocation failure sets oom and later appends do nothing, so
 * callers check once at the end. */
typedef struct {
    char *data;
    size_t len, cap;
    bool oom;
} ab_mime_buf;

void ab_mime_buf_add(ab_mime_buf *b, const void *data, size_t len);
void ab_mime_buf_adds(ab_mime_buf *b, const char *s);
void ab_mime_buf_printf(ab_mime_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ab_mime_buf_free(ab_mime_buf *b);

/* True when s is an address we are willing to put in a header or give to the SMTP server:
 * local@domain, printable ASCII without spaces, quotes, angle brackets, commas, semicolons,
 * backslashes or control characters (so never CR or LF), at most 254 bytes, one '@'. */
bool ab_mime_address_ok(const char *s);

/* True when s (len bytes) is valid UTF-8 without CR, LF or other C0 control characters
 * except TAB: what a subject or display name may hold before it is encoded. */
bool ab_mime_header_text_ok(const char *s, size_t len);

/* Append "Name: value\r\n" for unstructured text (a Subject): printable ASCII short enough
 * stays as it is; anything else (UTF-8, control characters — a CR or LF included — or a
 * long line) becomes RFC 2047 B encoded words of at most 75 characters, folded on
 * separate lines. Whatever value holds, exactly one header is written. */
void ab_mime_header_text(ab_mime_buf *b, const char *name, const char *value, size_t len);

/* Append "Name: display <addr>\r\n" (display may be NULL or empty: the address alone).
 * The display name is a quoted string when it is plain printable ASCII, else encoded
 * words. Returns 0, or -1 with *err (invalid, field) when addr is not ab_mime_address_ok. */
int ab_mime_header_address(ab_mime_buf *b, const char *name, const char *display, const char *addr,
                           const char *field, ab_error *err);

/* RFC 5322 date of unix milliseconds, in UTC: "Sun, 22 Nov 2026 13:05:09 +0000". */
void ab_mime_date(int64_t ms, char *out, size_t len);

/* The Message-ID of the message of one job to one recipient, angle brackets included:
 * "<adminbus.<job>.<hex of SHA-256(job, recipient) 16 bytes>@<domain>>". The same job and
 * recipient always give the same id, so a message re-sent after a crash is recognisable. */
void ab_mime_message_id(uint64_t job_id, const char *recipient, const char *domain, char *out,
                        size_t len);

/* Quoted-printable (RFC 2045 §6.7) of text: lines end in CRLF (a bare LF or CR in the
 * input becomes a line break), at most 76 characters per encoded line, trailing white
 * space, '=' and every byte outside printable ASCII encoded; a line that is exactly "."
 * or starts with "From " is encoded too, so no relay changes it. */
void ab_mime_qp(ab_mime_buf *b, const char *text, size_t len);

/* Base64 (RFC 2045 §6.8) in lines of 76 characters, each ending in CRLF. */
void ab_mime_base64(ab_mime_buf *b, const void *data, size_t len);

/* The body part of a plain-text message: its Content-Type (UTF-8), transfer encoding
 * (quoted-printable), a blank line and the encoded text, in canonical CRLF form. This is
 * the entity that is signed, and encrypted. */
void ab_mime_text_part(ab_mime_buf *b, const char *text, size_t len);

/* A boundary that cannot occur in quoted-printable, base64 or ASCII-armoured content
 * ("=_" starts it): "=_adminbus_" and 24 random hex digits, into out[40]. */
int ab_mime_boundary(char out[40]);

/* RFC 3156 §5 multipart/signed: the Content-Type header (ending the message's headers),
 * the signed part as it was signed, and the armoured detached signature. micalg names the
 * signature's hash as RFC 3156 wants it ("pgp-sha256"). */
void ab_mime_signed(ab_mime_buf *b, const char *boundary, const char *micalg, const char *part,
                    size_t part_len, const char *signature, size_t sig_len);

/* RFC 3156 §4 multipart/encrypted: the Content-Type header, the version part and the
 * armoured OpenPGP message. */
void ab_mime_encrypted(ab_mime_buf *b, const char *boundary, const char *armour, size_t len);

/* Convert every line ending of text to CRLF (armour from gpg ends lines in LF). */
void ab_mime_crlf(ab_mime_buf *b, const char *text, size_t len);

#endif
