/* otp.h — one-time passwords for logins: TOTP (RFC 6238) and HOTP (RFC 4226) with liboath,
 * HMAC-SHA-1 as authenticator apps expect; enrolment (secret, base32, otpauth:// URI),
 * verification with a window and replay refusal, and the seed sealed at rest.
 *
 * Secrets are raw bytes; base32 is only for showing them once at enrolment (and for
 * importing MISP's users.totp). Codes are compared in constant time. Nothing here logs. */
#ifndef AB_OTP_H
#define AB_OTP_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "auth/secret.h"

#define AB_OTP_SECRET_LEN  20 /* bytes: RFC 4226's recommended 160 bits */
#define AB_OTP_DIGITS      6
#define AB_OTP_DIGITS_MIN  6
#define AB_OTP_DIGITS_MAX  8
#define AB_OTP_PERIOD      30 /* seconds per TOTP step, from the Unix epoch */
#define AB_OTP_TOTP_WINDOW 1  /* steps accepted either side of now: ±30 s of clock skew */
#define AB_OTP_HOTP_WINDOW 10 /* counters looked ahead of the stored one */

typedef enum {
    AB_OTP_OK = 0,
    AB_OTP_MALFORMED = -1, /* not exactly `digits` ASCII digits, or bad arguments */
    AB_OTP_WRONG = -2,     /* no step / counter in the window gives this code */
    AB_OTP_REPLAYED = -3,  /* TOTP: the code is right but its step was already used */
    AB_OTP_FAILED = -4,    /* liboath failed */
} ab_otp_result;

typedef enum { AB_OTP_TOTP, AB_OTP_HOTP } ab_otp_kind;

/* A new random secret of AB_OTP_SECRET_LEN bytes. Returns 0 or -1. */
int ab_otp_secret_new(uint8_t secret[AB_OTP_SECRET_LEN]);

/* secret as RFC 4648 base32 (upper case, no padding for 20 bytes). Caller frees (wiped with
 * ab_otp_free); NULL on failure. */
char *ab_otp_base32(const uint8_t *secret, size_t len);

/* Decode base32 text (case and spaces ignored, as liboath does). Returns 0 with *secret
 * (caller frees with ab_otp_free(*secret, *len)) and *len, or -1. */
int ab_otp_base32_decode(const char *text, uint8_t **secret, size_t *len);

/* The key URI authenticator apps read from a QR code:
 *   otpauth://totp/<issuer>:<account>?secret=<base32>&issuer=<issuer>&digits=6&period=30
 *   otpauth://hotp/<issuer>:<account>?secret=<base32>&issuer=<issuer>&digits=6&counter=<n>
 * issuer and account percent-encoded (everything but RFC 3986's unreserved characters,
 * so '@' is %40, a space %20, ':' %3A). issuer may be NULL or "" (no prefix, no parameter);
 * counter is used for HOTP only. Caller frees; NULL on bad arguments. */
char *ab_otp_uri(ab_otp_kind kind, const char *issuer, const char *account, const char *base32,
                 uint64_t counter);

/* The HOTP code for counter / the TOTP code for time now, digits (6..8) long, into out.
 * Returns 0 or -1. */
int ab_otp_hotp_code(const uint8_t *secret, size_t len, uint64_t counter, unsigned digits,
                     char out[AB_OTP_DIGITS_MAX + 1]);
int ab_otp_totp_code(const uint8_t *secret, size_t len, time_t now, unsigned digits,
                     char out[AB_OTP_DIGITS_MAX + 1]);

/* The TOTP step of time now (now / AB_OTP_PERIOD). */
int64_t ab_otp_totp_step(time_t now);

/* Verify a TOTP code at time now against the steps within ±window of now's step. last_step
 * is the step of the last code this user had accepted (-1 when none): a code whose step is
 * <= last_step is refused as AB_OTP_REPLAYED, so a code works once and an older one never
 * after a newer one. On AB_OTP_OK, *new_step is the matched step: store it as the next
 * last_step (in the same transaction as the login). */
ab_otp_result ab_otp_totp_verify(const uint8_t *secret, size_t len, time_t now, const char *code,
                                 unsigned digits, unsigned window, int64_t last_step,
                                 int64_t *new_step);

/* Verify an HOTP code against counters counter .. counter + window (counter is the next
 * unused one). On AB_OTP_OK, *new_counter is the matched counter + 1: store it, so the code
 * and every one before it are used up. */
ab_otp_result ab_otp_hotp_verify(const uint8_t *secret, size_t len, uint64_t counter,
                                 const char *code, unsigned digits, unsigned window,
                                 uint64_t *new_counter);

/* Seal a secret for storage (seal.h, purpose AB_SEAL_PURPOSE_OTP, bound to user_id so a seed
 * copied to another user's row does not open). Caller frees; NULL on failure. */
char *ab_otp_seal(const ab_secret *key, uint64_t user_id, const uint8_t *secret, size_t len);

/* Open a sealed secret of user_id. Returns 0 with *secret (caller frees with ab_otp_free) and
 * *len, or -1 (not sealed, damaged, another key or user). */
int ab_otp_unseal(const ab_secret *key, uint64_t user_id, const char *sealed, uint8_t **secret,
                  size_t *len);

/* Wipe and free len bytes at p (NULL is fine). */
void ab_otp_free(void *p, size_t len);

#endif
