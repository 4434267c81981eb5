/* errors.c — names and mappings of the wire error codes (see errors.h). */
#include "wire/errors.h"

#include <stdio.h>
#include <string.h>

#include "wire/envelope.h"

/* clang-format off: the X-macro rows read best one per line */
static const char *const s_names[] = {"ok",
#define AB_X_NAME(name, wire, http, text) wire,
                                      AB_ERROR_MAP(AB_X_NAME)
#undef AB_X_NAME
};

static const int s_http[] = {200,
#define AB_X_HTTP(name, wire, http, text) http,
                             AB_ERROR_MAP(AB_X_HTTP)
#undef AB_X_HTTP
};
/* clang-format on */

const char *ab_code_name(ab_code code)
{
    if ((int)code < 0 || code >= AB_E__COUNT)
        return "internal";
    return s_names[code];
}

ab_code ab_code_from_name(const char *name, size_t len)
{
    for (int i = 1; i < AB_E__COUNT; i++)
        if (strlen(s_names[i]) == len && memcmp(s_names[i], name, len) == 0)
            return (ab_code)i;
    return AB_E_INTERNAL;
}

int ab_code_http_status(ab_code code)
{
    if ((int)code < 0 || code >= AB_E__COUNT)
        return 500;
    return s_http[code];
}

int ab_fail(ab_error *err, ab_code code, const char *field, const char *fmt, ...)
{
    if (!err)
        return -1;
    err->code = code;
    err->retry_after = 0;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    /* Messages quote what the client sent, cut to fit: the reply must stay UTF-8. */
    ab_utf8_scrub(err->message);
    return -1;
}

void ab_error_clear(ab_error *err)
{
    memset(err, 0, sizeof *err);
}
