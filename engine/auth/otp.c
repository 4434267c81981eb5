/* otp.c — see otp.h. */
#include "auth/otp.h"

#include <liboath/oath.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/seal.h"

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static int s_init_rc = OATH_OK;

static void s_init(void)
{
    s_init_rc = oath_init();
}

static bool s_ready(void)
{
    pthread_once(&s_once, s_init);
    return s_init_rc == OATH_OK;
}

void ab_otp_free(void *p, size_t len)
{
    if (p)
        OPENSSL_cleanse(p, len);
    free(p);
}

int ab_otp_secret_new(uint8_t secret[AB_OTP_SECRET_LEN])
{
    return ab_random_bytes(secret, AB_OTP_SECRET_LEN);
}

char *ab_otp_base32(const uint8_t *secret, size_t len)
{
    char *out = NULL;
    size_t olen = 0;
    if (!secret || !len || !s_ready() ||
        oath_base32_encode((const char *)secret, len, &out, &olen) != OATH_OK)
        return NULL;
    return out;
}

int ab_otp_base32_decode(const char *text, uint8_t **secret, size_t *len)
{
    char *out = NULL;
    size_t olen = 0;
    *secret = NULL;
    *len = 0;
    if (!text || !*text || !s_ready() ||
        oath_base32_decode(text, strlen(text), &out, &olen) != OATH_OK)
        return -1;
    if (olen == 0) {
        free(out);
        return -1;
    }
    *secret = (uint8_t *)out;
    *len = olen;
    return 0;
}

/* --- URI ------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    bool failed;
} s_str;

static void s_put(s_str *s, const char *p, size_t n)
{
    if (s->failed)
        return;
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *b = realloc(s->buf, cap);
        if (!b) {
            s->failed = true;
            return;
        }
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
}

static void s_puts(s_str *s, const char *p)
{
    s_put(s, p, strlen(p));
}

/* Percent-encode everything but RFC 3986's unreserved characters. */
static void s_put_encoded(s_str *s, const char *p)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            s_put(s, p, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            s_put(s, e, 3);
        }
    }
}

char *ab_otp_uri(ab_otp_kind kind, const char *issuer, const char *account, const char *base32,
                 uint64_t counter)
{
    if (!account || !*account || !base32 || !*base32 ||
        (kind != AB_OTP_TOTP && kind != AB_OTP_HOTP))
        return NULL;
    bool has_issuer = issuer && *issuer;
    s_str s = {0};
    s_puts(&s, kind == AB_OTP_TOTP ? "otpauth://totp/" : "otpauth://hotp/");
    if (has_issuer) {
        s_put_encoded(&s, issuer);
        s_puts(&s, ":");
    }
    s_put_encoded(&s, account);
    s_puts(&s, "?secret=");
    s_put_encoded(&s, base32);
    if (has_issuer) {
        s_puts(&s, "&issuer=");
        s_put_encoded(&s, issuer);
    }
    char tail[64];
    if (kind == AB_OTP_TOTP)
        snprintf(tail, sizeof tail, "&digits=%d&period=%d", AB_OTP_DIGITS, AB_OTP_PERIOD);
    else
        snprintf(tail, sizeof tail, "&digits=%d&counter=%llu", AB_OTP_DIGITS,
                 (unsigned long long)counter);
    s_puts(&s, tail);
    if (s.failed) {
        free(s.buf);
        return NULL;
    }
    return s.buf;
}

/* --- codes ---------------------------------------------------------------------------- */

static bool s_digits_ok(unsigned digits)
{
    return digits >= AB_OTP_DIGITS_MIN && digits <= AB_OTP_DIGITS_MAX;
}

int ab_otp_hotp_code(const uint8_t *secret, size_t len, uint64_t counter, unsigned digits,
                     char out[AB_OTP_DIGITS_MAX + 1])
{
    out[0] = '\0';
    if (!secret || !len || !s_digits_ok(digits) || !s_ready())
        return -1;
    int rc = oath_hotp_generate((const char *)secret, len, counter, digits, false,
                                OATH_HOTP_DYNAMIC_TRUNCATION, out);
    return rc == OATH_OK ? 0 : -1;
}

int64_t ab_otp_totp_step(time_t now)
{
    int64_t t = (int64_t)now;
    /* floor division, so times before the epoch do not share step 0 */
    return t >= 0 ? t / AB_OTP_PERIOD : -((-t + AB_OTP_PERIOD - 1) / AB_OTP_PERIOD);
}

int ab_otp_totp_code(const uint8_t *secret, size_t len, time_t now, unsigned digits,
                     char out[AB_OTP_DIGITS_MAX + 1])
{
    int64_t step = ab_otp_totp_step(now);
    if (step < 0) {
        out[0] = '\0';
        return -1;
    }
    return ab_otp_hotp_code(secret, len, (uint64_t)step, digits, out);
}

/* code is exactly digits ASCII digits. */
static bool s_code_ok(const char *code, unsigned digits)
{
    if (!code || !s_digits_ok(digits))
        return false;
    for (unsigned i = 0; i < digits; i++)
        if (code[i] < '0' || code[i] > '9')
            return false;
    return code[digits] == '\0';
}

/* Whether counter's code equals code (constant-time); -1 when liboath fails. */
static int s_matches(const uint8_t *secret, size_t len, uint64_t counter, const char *code,
                     unsigned digits)
{
    char mine[AB_OTP_DIGITS_MAX + 1];
    if (ab_otp_hotp_code(secret, len, counter, digits, mine) != 0)
        return -1;
    int eq = CRYPTO_memcmp(mine, code, digits) == 0;
    OPENSSL_cleanse(mine, sizeof mine);
    return eq;
}

ab_otp_result ab_otp_totp_verify(const uint8_t *secret, size_t len, time_t now, const char *code,
                                 unsigned digits, unsigned window, int64_t last_step,
                                 int64_t *new_step)
{
    *new_step = last_step;
    if (!secret || !len || !s_code_ok(code, digits) || window > 100)
        return AB_OTP_MALFORMED;
    int64_t now_step = ab_otp_totp_step(now);
    int64_t fresh = -1; /* the matched step nearest now that is not used up */
    bool replayed = false;
    /* every candidate is computed (no early exit): now first, then ±1, ±2, … */
    for (int64_t d = 0; d <= (int64_t)window; d++) {
        for (int sign = 1; sign >= -1; sign -= 2) {
            if (d == 0 && sign < 0)
                continue;
            int64_t step = now_step + sign * d;
            if (step < 0)
                continue;
            int m = s_matches(secret, len, (uint64_t)step, code, digits);
            if (m < 0)
                return AB_OTP_FAILED;
            if (!m)
                continue;
            if (step <= last_step)
                replayed = true;
            else if (fresh < 0)
                fresh = step;
        }
    }
    if (fresh >= 0) {
        *new_step = fresh;
        return AB_OTP_OK;
    }
    return replayed ? AB_OTP_REPLAYED : AB_OTP_WRONG;
}

ab_otp_result ab_otp_hotp_verify(const uint8_t *secret, size_t len, uint64_t counter,
                                 const char *code, unsigned digits, unsigned window,
                                 uint64_t *new_counter)
{
    *new_counter = counter;
    if (!secret || !len || !s_code_ok(code, digits) || window > 1000 ||
        counter > UINT64_MAX - window - 1)
        return AB_OTP_MALFORMED;
    bool found = false;
    uint64_t at = 0;
    for (uint64_t c = counter; c <= counter + window; c++) {
        int m = s_matches(secret, len, c, code, digits);
        if (m < 0)
            return AB_OTP_FAILED;
        if (m && !found) {
            found = true;
            at = c;
        }
    }
    if (!found)
        return AB_OTP_WRONG;
    *new_counter = at + 1;
    return AB_OTP_OK;
}

/* --- sealing ---------------------------------------------------------------------------- */

static int s_aad(uint64_t user_id, char out[32])
{
    return snprintf(out, 32, "user:%llu", (unsigned long long)user_id);
}

char *ab_otp_seal(const ab_secret *key, uint64_t user_id, const uint8_t *secret, size_t len)
{
    if (!secret || !len)
        return NULL;
    char aad[32];
    int alen = s_aad(user_id, aad);
    return ab_seal(key, AB_SEAL_PURPOSE_OTP, aad, (size_t)alen, secret, len);
}

int ab_otp_unseal(const ab_secret *key, uint64_t user_id, const char *sealed, uint8_t **secret,
                  size_t *len)
{
    char aad[32];
    int alen = s_aad(user_id, aad);
    *len = 0;
    *secret = ab_unseal(key, AB_SEAL_PURPOSE_OTP, aad, (size_t)alen, sealed, len);
    if (*secret && *len == 0) {
        ab_otp_free(*secret, 1);
        *secret = NULL;
    }
    return *secret ? 0 : -1;
}
