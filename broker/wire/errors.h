/* errors.h — the closed set of error codes of the v1 wire contract.
 *
 * One X-macro list gives the enum, the wire names, the HTTP statuses and the CLI
 * exit codes, so the four can never disagree (see docs/protocol.md). */
#ifndef AB_ERRORS_H
#define AB_ERRORS_H

#include <stdarg.h>
#include <stddef.h>

/*       enum       wire name          HTTP  meaning */
#define AB_ERROR_MAP(X)                                                                            \
    X(INVALID, "invalid", 400, "the command or an argument is malformed")                          \
    X(UNAUTHENTICATED, "unauthenticated", 401, "no valid credential was presented")                \
    X(FORBIDDEN, "forbidden", 403, "the credential may not run this command")                      \
    X(NOT_FOUND, "not_found", 404, "the target does not exist")                                    \
    X(CONFLICT, "conflict", 409, "the change collides with existing state")                        \
    X(UNAVAILABLE, "unavailable", 503, "try again later")                                          \
    X(INTERNAL, "internal", 500, "an unexpected fault; the change was not applied")

typedef enum {
    AB_OK = 0,
#define AB_X_ENUM(name, wire, http, text) AB_E_##name,
    AB_ERROR_MAP(AB_X_ENUM)
#undef AB_X_ENUM
        AB_E__COUNT
} ab_code;

/* An error as carried in a reply: code, message, optional field and retry hint. */
typedef struct {
    ab_code code;
    int retry_after; /* seconds; 0 = not given */
    char field[64];  /* "" = not given */
    char message[256];
} ab_error;

/* Wire name of a code ("invalid", …); "ok" for AB_OK, "internal" for out-of-range values. */
const char *ab_code_name(ab_code code);

/* Code for a wire name; AB_E_INTERNAL when the name is unknown. */
ab_code ab_code_from_name(const char *name, size_t len);

/* HTTP status for a code (200 for AB_OK). */
int ab_code_http_status(ab_code code);

/* Fill *err and return -1, so callers can write `return ab_fail(err, …);`.
 * field may be NULL. The message is printf-formatted and truncated to fit; bytes of a
 * character that a limit cut (%.*s, the buffer's end) are dropped, so it stays UTF-8. */
int ab_fail(ab_error *err, ab_code code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reset *err to "no error". */
void ab_error_clear(ab_error *err);

#endif
