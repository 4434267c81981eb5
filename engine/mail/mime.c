/* mime.c — RFC 5322 / MIME building blocks (see mime.h). */
#include "mail/mime.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/secret.h"

#define LINE_SOFT      78 /* RFC 5322 §2.1.1: lines SHOULD be at most 78 characters */
#define QP_LINE        76 /* RFC 2045 §6.7 rule 5 */
#define WORD_BYTES     42 /* input bytes per encoded word: 56 base64 characters, 68 in all */
#define ADDRESS_MAX    254
#define HEADER_NAME_OK 64

/* --- the buffer --------------------------------------------------------------------- */

static bool s_reserve(ab_mime_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void ab_mime_buf_add(ab_mime_buf *b, const void *data, size_t len)
{
    if (!s_reserve(b, len))
        return;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void ab_mime_buf_adds(ab_mime_buf *b, const char *s)
{
    ab_mime_buf_add(b, s, strlen(s));
}

void ab_mime_buf_printf(ab_mime_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !s_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ab_mime_buf_free(ab_mime_buf *b)
{
    if (b->data)
        memset(b->data, 0, b->cap); /* a body may hold a temporary password */
    free(b->data);
    *b = (ab_mime_buf){0};
}

/* --- checks ------------------------------------------------------------------------- */

static bool s_local_char(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~.", c));
}

static bool s_domain_char(unsigned char c)
{
    return isalnum(c) || c == '.' || c == '-';
}

bool ab_mime_address_ok(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    const char *at = strchr(s, '@');
    if (n == 0 || n > ADDRESS_MAX || !at || at == s || !at[1] || strchr(at + 1, '@'))
        return false;
    for (const char *p = s; p < at; p++)
        if (!s_local_char((unsigned char)*p))
            return false;
    for (const char *p = at + 1; *p; p++)
        if (!s_domain_char((unsigned char)*p))
            return false;
    return at[1] != '.' && at[1] != '-' && s[n - 1] != '.' && s[n - 1] != '-';
}

/* Length of the UTF-8 sequence at s (at most len bytes), 0 when it is not valid. */
static size_t s_utf8_len(const unsigned char *s, size_t len)
{
    size_t need = s[0] < 0x80             ? 1
                  : (s[0] & 0xE0) == 0xC0 ? 2
                  : (s[0] & 0xF0) == 0xE0 ? 3
                  : (s[0] & 0xF8) == 0xF0 ? 4
                                          : 0;
    if (need == 0 || need > len || (need == 2 && s[0] < 0xC2) || (need == 4 && s[0] > 0xF4))
        return 0;
    for (size_t i = 1; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

bool ab_mime_header_text_ok(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x20 && u[i] != '\t')
            return false;
        if (u[i] == 0x7F)
            return false;
        size_t n = s_utf8_len(u + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* --- headers ------------------------------------------------------------------------ */

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void s_base64_chunk(ab_mime_buf *b, const unsigned char *d, size_t len)
{
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)d[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)d[i + 1] << 8;
        if (i + 2 < len)
            v |= d[i + 2];
        char q[4] = {s_b64[(v >> 18) & 63], s_b64[(v >> 12) & 63],
                     i + 1 < len ? s_b64[(v >> 6) & 63] : '=', i + 2 < len ? s_b64[v & 63] : '='};
        ab_mime_buf_add(b, q, 4);
    }
}

/* True when text can stand in a header as it is: printable ASCII, nothing a reader would
 * take for an encoded word, short enough for one line after "Name: ". */
static bool s_plain_ok(const char *name, const char *s, size_t len, size_t extra)
{
    if (strlen(name) + 2 + len + extra > LINE_SOFT)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] > 0x7E)
            return false;
    return !memmem(s, len, "=?", 2);
}

/* Encoded words for s, cut only between UTF-8 characters (a byte that is not valid UTF-8
 * counts as one), separated by a fold: CRLF and a space. */
static void s_encoded_words(ab_mime_buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    do {
        size_t take = 0;
        while (i + take < len) {
            size_t n = s_utf8_len(u + i + take, len - i - take);
            n = n ? n : 1;
            if (take + n > WORD_BYTES)
                break;
            take += n;
        }
        if (i > 0)
            ab_mime_buf_adds(b, "\r\n ");
        ab_mime_buf_adds(b, "=?UTF-8?B?");
        s_base64_chunk(b, u + i, take);
        ab_mime_buf_adds(b, "?=");
        i += take;
    } while (i < len);
}

static bool s_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > HEADER_NAME_OK)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)name[i]) && name[i] != '-')
            return false;
    return true;
}

void ab_mime_header_text(ab_mime_buf *b, const char *name, const char *value, size_t len)
{
    if (!s_name_ok(name)) { /* a programmer's error: write nothing rather than a bad header */
        b->oom = true;
        return;
    }
    ab_mime_buf_printf(b, "%s: ", name);
    if (s_plain_ok(name, value, len, 0))
        ab_mime_buf_add(b, value, len);
    else
        s_encoded_words(b, value, len);
    ab_mime_buf_adds(b, "\r\n");
}

int ab_mime_header_address(ab_mime_buf *b, const char *name, const char *display, const char *addr,
                           const char *field, ab_error *err)
{
    if (!ab_mime_address_ok(addr))
        return ab_fail(err, AB_E_INVALID, field,
                       "'%.80s' is not an e-mail address we can send to (local@domain, no spaces, "
                       "quotes or line breaks)",
                       addr ? addr : "");
    if (!s_name_ok(name))
        return ab_fail(err, AB_E_INTERNAL, NULL, "bad header name");
    ab_mime_buf_printf(b, "%s: ", name);
    size_t dlen = display ? strlen(display) : 0;
    if (dlen > 0) {
        if (s_plain_ok(name, display, dlen, strlen(addr) + 5)) {
            ab_mime_buf_adds(b, "\"");
            for (size_t i = 0; i < dlen; i++) {
                if (display[i] == '"' || display[i] == '\\')
                    ab_mime_buf_adds(b, "\\");
                ab_mime_buf_add(b, display + i, 1);
            }
            ab_mime_buf_adds(b, "\"");
        } else {
            s_encoded_words(b, display, dlen);
        }
        ab_mime_buf_adds(b, " ");
    }
    ab_mime_buf_printf(b, "<%s>\r\n", addr);
    return 0;
}

void ab_mime_date(int64_t ms, char *out, size_t len)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void ab_mime_message_id(uint64_t job_id, const char *recipient, const char *domain, char *out,
                        size_t len)
{
    char job[24], lower[ADDRESS_MAX + 1];
    size_t n = strlen(recipient);
    n = n > ADDRESS_MAX ? ADDRESS_MAX : n;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)tolower((unsigned char)recipient[i]);
    lower[n] = '\0';
    int jl = snprintf(job, sizeof job, "%llu", (unsigned long long)job_id);
    uint8_t d[AB_DIGEST_LEN];
    ab_sha256_pair(job, (size_t)jl + 1, lower, n, d); /* the NUL separates the two */
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    bool domain_ok = domain && *domain && strlen(domain) < ADDRESS_MAX;
    for (const char *p = domain; domain_ok && *p; p++)
        domain_ok = s_domain_char((unsigned char)*p);
    snprintf(out, len, "<adminbus.%s.%s@%s>", job, hex, domain_ok ? domain : "localhost");
}

/* --- bodies ------------------------------------------------------------------------- */

/* One input line (no line break in it) as quoted-printable lines. */
static void s_qp_line(ab_mime_buf *b, const unsigned char *s, size_t len)
{
    size_t col = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        bool last = i + 1 == len;
        bool literal = c >= 0x21 && c <= 0x7E && c != '=';
        if ((c == ' ' || c == '\t') && !last)
            literal = true; /* white space only needs encoding at the end of a line */
        if (i == 0 && c == '.' && len == 1)
            literal = false; /* a line of one dot ends an SMTP message */
        if (i == 0 && c == 'F' && len >= 5 && memcmp(s, "From ", 5) == 0)
            literal = false; /* mbox writers would turn it into ">From " */
        size_t w = literal ? 1 : 3;
        if (col + w > QP_LINE - 1 && !(last && col + w <= QP_LINE)) {
            ab_mime_buf_adds(b, "=\r\n");
            col = 0;
        }
        if (literal)
            ab_mime_buf_add(b, &c, 1);
        else
            ab_mime_buf_printf(b, "=%02X", c);
        col += w;
    }
    ab_mime_buf_adds(b, "\r\n");
}

void ab_mime_qp(ab_mime_buf *b, const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '\n' && s[i] != '\r')
            continue;
        if (i == len && start == len && len > 0)
            break; /* the text ended with a line break: no empty line after it */
        s_qp_line(b, s + start, i - start);
        if (i + 1 < len && s[i] == '\r' && s[i + 1] == '\n')
            i++;
        start = i + 1;
    }
}

void ab_mime_base64(ab_mime_buf *b, const void *data, size_t len)
{
    const unsigned char *d = data;
    for (size_t i = 0; i < len; i += 57) { /* 57 bytes are 76 characters */
        s_base64_chunk(b, d + i, len - i < 57 ? len - i : 57);
        ab_mime_buf_adds(b, "\r\n");
    }
}

void ab_mime_crlf(ab_mime_buf *b, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r' && i + 1 < len && text[i + 1] == '\n')
            continue; /* the LF that follows writes the pair */
        if (text[i] == '\n' || text[i] == '\r')
            ab_mime_buf_adds(b, "\r\n");
        else
            ab_mime_buf_add(b, text + i, 1);
    }
}

void ab_mime_text_part(ab_mime_buf *b, const char *text, size_t len)
{
    ab_mime_buf_adds(b, "Content-Type: text/plain; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    ab_mime_qp(b, text, len);
}

int ab_mime_boundary(char out[40])
{
    uint8_t r[12];
    if (ab_random_bytes(r, sizeof r) < 0)
        return -1;
    int n = snprintf(out, 40, "=_adminbus_");
    for (size_t i = 0; i < sizeof r; i++)
        n += snprintf(out + n, (size_t)(40 - n), "%02x", r[i]);
    return 0;
}

void ab_mime_signed(ab_mime_buf *b, const char *boundary, const char *micalg, const char *part,
                    size_t part_len, const char *signature, size_t sig_len)
{
    ab_mime_buf_printf(b,
                       "Content-Type: multipart/signed; micalg=%s;\r\n"
                       " protocol=\"application/pgp-signature\"; boundary=\"%s\"\r\n\r\n"
                       "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n"
                       "--%s\r\n",
                       micalg, boundary, boundary);
    ab_mime_buf_add(b, part, part_len);
    ab_mime_buf_printf(b,
                       "\r\n--%s\r\n"
                       "Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n"
                       "Content-Description: OpenPGP digital signature\r\n"
                       "Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n",
                       boundary);
    ab_mime_crlf(b, signature, sig_len);
    ab_mime_buf_printf(b, "\r\n--%s--\r\n", boundary);
}

void ab_mime_encrypted(ab_mime_buf *b, const char *boundary, const char *armour, size_t len)
{
    ab_mime_buf_printf(b,
                       "Content-Type: multipart/encrypted;\r\n"
                       " protocol=\"application/pgp-encrypted\"; boundary=\"%s\"\r\n\r\n"
                       "This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n"
                       "--%s\r\n"
                       "Content-Type: application/pgp-encrypted\r\n"
                       "Content-Description: PGP/MIME version identification\r\n\r\n"
                       "Version: 1\r\n\r\n"
                       "--%s\r\n"
                       "Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
                       "Content-Description: OpenPGP encrypted message\r\n"
                       "Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n",
                       boundary, boundary, boundary);
    ab_mime_crlf(b, armour, len);
    ab_mime_buf_printf(b, "\r\n--%s--\r\n", boundary);
}
