/* audit.c — see audit.h. */
#include "core/audit.h"

#include <stdlib.h>
#include <string.h>

#include "wire/envelope.h"
#include "core/settings_cache.h"

#define VALUE_MAX 1000 /* bytes of one value in a change text */
#define TITLE_MAX 255  /* characters: the width of logs.title */

/* The byte length of the first max characters of the NUL-terminated s. */
static size_t s_cut_chars(const char *s, size_t max)
{
    size_t i = 0, chars = 0;
    for (; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == max)
            break;
    return i;
}

void ab_change_init(ab_change *c)
{
    memset(c, 0, sizeof *c);
}

static void s_append(ab_change *c, const char *s, size_t len)
{
    if (c->len + len + 1 > c->cap) {
        size_t cap = (c->cap ? c->cap * 2 : 256);
        while (cap < c->len + len + 1)
            cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b)
            return;
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, s, len);
    c->len += len;
    c->buf[c->len] = '\0';
}

static void s_append_value(ab_change *c, const char *v, size_t len)
{
    s_append(c, "(", 1);
    if (v)
        s_append(c, v, ab_utf8_cut(v, len, VALUE_MAX));
    if (v && len > VALUE_MAX)
        s_append(c, "…", strlen("…"));
    s_append(c, ")", 1);
}

void ab_change_add(ab_change *c, const char *field, const char *old, size_t oldlen, const char *now,
                   size_t nowlen)
{
    if (c->len)
        s_append(c, ", ", 2);
    s_append(c, field, strlen(field));
    s_append(c, " ", 1);
    s_append_value(c, old, oldlen);
    s_append(c, " => ", 4);
    s_append_value(c, now, nowlen);
}

const char *ab_change_text(const ab_change *c)
{
    return c->buf ? c->buf : "";
}

void ab_change_free(ab_change *c)
{
    free(c->buf);
    memset(c, 0, sizeof *c);
}

enum {
    C_TITLE,
    C_MODEL,
    C_MODEL_ID,
    C_ACTION,
    C_USER_ID,
    C_CHANGE,
    C_EMAIL,
    C_ORG,
    C_IP,
    C_DESCRIPTION,
    NCOLS
};

typedef struct {
    char *str[NCOLS];
    long long num[NCOLS];
} s_row;

struct ab_audit {
    s_row *rows;
    size_t n, cap;
    char *description; /* for every row queued while set (ab_audit_set_description) */
};

ab_audit *ab_audit_new(void)
{
    return calloc(1, sizeof(ab_audit));
}

static void s_row_free(s_row *r)
{
    for (int c = 0; c < NCOLS; c++)
        free(r->str[c]);
}

void ab_audit_rewind(ab_audit *a, size_t mark)
{
    while (a->n > mark)
        s_row_free(&a->rows[--a->n]);
}

void ab_audit_destroy(ab_audit **ap)
{
    if (!ap || !*ap)
        return;
    ab_audit_rewind(*ap, 0);
    free((*ap)->description);
    free((*ap)->rows);
    free(*ap);
    *ap = NULL;
}

size_t ab_audit_count(const ab_audit *a)
{
    return a->n;
}

static char *s_dup(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int ab_audit_add(ab_audit *a, const ab_actor *who, const char *model, uint64_t model_id,
                 const char *action, const char *title, const char *change)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        s_row *rows = realloc(a->rows, cap * sizeof *rows);
        if (!rows)
            return -1;
        a->rows = rows;
        a->cap = cap;
    }
    s_row *r = &a->rows[a->n++];
    memset(r, 0, sizeof *r);
    title = title ? title : "";
    r->str[C_TITLE] = strndup(title, s_cut_chars(title, TITLE_MAX));
    r->str[C_MODEL] = strdup(model);
    r->num[C_MODEL_ID] = (long long)model_id;
    r->str[C_ACTION] = strdup(action);
    r->num[C_USER_ID] = who ? who->user_id : 0;
    r->str[C_CHANGE] = s_dup(change);
    /* Titles and changes are formatted into byte-sized buffers that may end inside a
     * character the caller quoted; one such row would fail the whole batch's insert. */
    if (r->str[C_TITLE])
        ab_utf8_scrub(r->str[C_TITLE]);
    if (r->str[C_CHANGE])
        ab_utf8_scrub(r->str[C_CHANGE]);
    r->str[C_EMAIL] = strdup(who && who->email ? who->email : "");
    r->str[C_ORG] = strdup(who && who->org && *who->org ? who->org : "SYSTEM");
    /* MISP keeps the client's address only when MISP.log_client_ip is on. */
    r->str[C_IP] = who && ab_settings_bool("MISP.log_client_ip") ? s_dup(who->ip) : NULL;
    r->str[C_DESCRIPTION] = s_dup(a->description);
    return 0;
}

int ab_audit_set_description(ab_audit *a, const char *description)
{
    free(a->description);
    a->description = description ? strdup(description) : NULL;
    return description && !a->description ? -1 : 0;
}

long ab_audit_rename_org(ab_audit *a, const char *from, const char *to)
{
    long n = 0;
    for (size_t i = 0; i < a->n; i++) {
        char **org = &a->rows[i].str[C_ORG];
        if (!*org || strcmp(*org, from) != 0)
            continue;
        char *copy = strdup(to);
        if (!copy)
            return -1;
        free(*org);
        *org = copy;
        n++;
    }
    return n;
}

int ab_audit_flush(ab_audit *a, ab_db *db, ab_error *err)
{
    static const ab_col_type types[NCOLS] = {AB_COL_STR, AB_COL_STR, AB_COL_INT, AB_COL_STR,
                                             AB_COL_INT, AB_COL_STR, AB_COL_STR, AB_COL_STR,
                                             AB_COL_STR, AB_COL_STR};
    size_t n = a->n;
    if (n == 0)
        return 0;
    void *cols[NCOLS];
    unsigned long *lens[NCOLS] = {0};
    for (int c = 0; c < NCOLS; c++) {
        if (types[c] == AB_COL_INT) {
            long long *v = malloc(n * sizeof *v);
            for (size_t i = 0; v && i < n; i++)
                v[i] = a->rows[i].num[c];
            cols[c] = v;
            continue;
        }
        const char **v = malloc(n * sizeof *v);
        lens[c] = malloc(n * sizeof **lens);
        for (size_t i = 0; v && lens[c] && i < n; i++) {
            v[i] = a->rows[i].str[c];
            lens[c][i] = v[i] ? (unsigned long)strlen(v[i]) : 0;
        }
        cols[c] = v;
    }
    int rc = ab_db_bulk(db,
                        "INSERT INTO logs (title, created, model, model_id, action, user_id, "
                        "`change`, email, org, ip, description) "
                        "VALUES (?, UTC_TIMESTAMP(3), ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        NCOLS, types, cols, lens, (unsigned)n, err);
    for (int c = 0; c < NCOLS; c++) {
        free(cols[c]);
        free(lens[c]);
    }
    if (rc == 0)
        ab_audit_rewind(a, 0);
    return rc;
}
