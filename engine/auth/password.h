/* password.h — passwords: hashing (yescrypt through libxcrypt), verification, the policy of
 * the settings catalog (Security.password_policy_length / _complexity, MISP's rules and
 * defaults), and generated temporary passwords.
 *
 * Passwords are C strings (the command layer refuses a wire string with a NUL byte). At most
 * AB_PASSWORD_MAX_BYTES bytes are accepted anywhere; a longer input is refused, never cut.
 * Nothing here logs, and buffers that held a password are wiped before they are freed. */
#ifndef AB_PASSWORD_H
#define AB_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* yescrypt cost factor (libxcrypt's crypt_gensalt count, 1..11): 5 is libxcrypt's and
 * Debian's default (N = 4096, r = 32: 16 MiB and some tens of ms per hash). */
#define AB_PASSWORD_COST     5
#define AB_PASSWORD_COST_MAX 11
/* The longest password accepted (libxcrypt's own limit is 511 bytes). */
#define AB_PASSWORD_MAX_BYTES 256
/* Generated passwords have this many characters, or the policy's minimum if longer (MISP
 * generates 40). */
#define AB_PASSWORD_GENERATED_LEN 40
/* MISP's default minimum length, used when the policy says nothing usable. */
#define AB_PASSWORD_MIN_LENGTH_DEFAULT 12

/* Hash password with yescrypt at cost (0 = AB_PASSWORD_COST) and a fresh 16-byte random
 * salt. Returns 0 with *out = "$y$…" (caller frees), or -1 (NULL, empty or too long
 * password, bad cost, no randomness, libxcrypt failure) with *out = NULL. */
int ab_password_hash(const char *password, int cost, char **out);

/* Whether password matches hash. The final comparison is constant-time. Accepts yescrypt
 * and, for accounts carried over from MISP, bcrypt ($2y$, $2b$, $2a$) and sha512crypt ($6$)
 * hashes (ab_password_needs_rehash says they should be replaced at the next login); any other
 * hash, a damaged one, or a NULL / empty / too long password gives false. */
bool ab_password_verify(const char *password, const char *hash);

/* Whether hash should be replaced by a new hash of the same password (after a successful
 * verify): it is not yescrypt, or its yescrypt parameters are weaker than those of cost
 * (0 = AB_PASSWORD_COST) or unknown. NULL gives true. */
bool ab_password_needs_rehash(const char *hash, int cost);

/* --- policy ------------------------------------------------------------------------------ */

typedef struct {
    int64_t min_length; /* in characters (UTF-8 code points); < 1 = MISP's default, 12 */
    char *complexity;   /* MISP-style PCRE (bare or /delimited/flags); NULL = MISP's default;
                           one that does not compile falls back to the default, as in MISP */
} ab_password_policy;

/* Fill p from the process's settings cache (engine/core/settings_cache.h: the stored values, else
 * the catalog's defaults). Returns 0 or -1 (out of memory). ab_password_policy_clear frees. */
int ab_password_policy_from_settings(ab_password_policy *p);
void ab_password_policy_clear(ab_password_policy *p);

typedef enum {
    AB_PW_OK = 0,
    AB_PW_EMPTY,      /* NULL or "" */
    AB_PW_TOO_SHORT,  /* fewer characters than min_length */
    AB_PW_TOO_LONG,   /* more than AB_PASSWORD_MAX_BYTES bytes */
    AB_PW_COMPLEXITY, /* does not match the complexity rule */
} ab_password_problem;

/* Check password against p (NULL = MISP's defaults). Returns AB_PW_OK, or the problem with a
 * message in msg saying what is required (the minimum length; what the complexity rule
 * asks for) — never the password itself. msg may be NULL when len is 0. */
ab_password_problem ab_password_check(const ab_password_policy *p, const char *password, char *msg,
                                      size_t len);

/* A random temporary password that passes p (NULL = MISP's defaults): letters, digits and a
 * few punctuation characters that need no quoting in a shell, at least one of each kind,
 * AB_PASSWORD_GENERATED_LEN characters or the policy's minimum if longer. Returns 0 with *out
 * (caller frees, ideally with ab_password_free), or -1 (no randomness, or a complexity rule
 * that 100 candidates did not satisfy) with *out = NULL. */
int ab_password_generate(const ab_password_policy *p, char **out);

/* Wipe and free a password string (NULL is fine). */
void ab_password_free(char *password);

#endif
