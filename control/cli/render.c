/* render.c — replies as people and scripts read them (see cli.h): msgpack to JSON via
 * jansson for --json; tables, key: value lines and ISO 8601 times for people. */
#include "cli/cli.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wire/envelope.h"

#define CHANGE_MAX_CHARS 60 /* log.search's change column is cut to this */
#define COLUMNS_MAX      16 /* most columns of a table */

/* Which integers are times, by the wire's naming convention (docs/protocol.md, "Times"):
 * "ts", or a key whose last word (after its last '_') names a moment — unix milliseconds
 * (date_created, modified, expires, first_seen, last_login, run_at …) — or is MISP's "time"
 * or "timestamp" — unix seconds, as MISP has them (next_execution_time). A rule, not a
 * list of fields: a field added later with such a name is shown as a time too. */
static const char *const s_ms_words[] = {
    "created", "modified", "finished",  "started", "generated", "expires", "expiration",
    "seen",    "login",    "heartbeat", "run",     "at",        NULL};
static const char *const s_seconds_words[] = {"time", "timestamp", NULL};

/* --- UTF-8 ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (left bytes available), or 0. */
static size_t s_utf8_seq(const unsigned char *p, size_t left)
{
    size_t n;
    uint32_t c;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        n = 2, c = p[0] & 0x1F;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        n = 3, c = p[0] & 0x0F;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        n = 4, c = p[0] & 0x07;
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3F);
    }
    bool overlong = (n == 3 && c < 0x800) || (n == 4 && c < 0x10000);
    if (overlong || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
        return 0;
    return n;
}

/* s (len bytes) as valid UTF-8, invalid bytes replaced by U+FFFD; NUL-terminated,
 * *outlen its length (it may hold NUL bytes). Caller frees; NULL when out of memory. */
static char *s_utf8_clean(const char *s, size_t len, size_t *outlen)
{
    char *out = malloc(len * 3 + 1);
    size_t n = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t k = s_utf8_seq((const unsigned char *)s + i, len - i);
        if (k == 0) {
            memcpy(out + n, "\xEF\xBF\xBD", 3);
            n += 3;
            i++;
            continue;
        }
        memcpy(out + n, s + i, k);
        n += k;
        i += k;
    }
    out[n] = '\0';
    *outlen = n;
    return out;
}

static size_t s_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* --- msgpack to JSON -------------------------------------------------------------- */

static json_t *s_json_str(const char *s, size_t len)
{
    size_t n;
    char *clean = s_utf8_clean(s, len, &n);
    json_t *j = clean ? json_stringn_nocheck(clean, n) : json_null();
    free(clean);
    return j;
}

static json_t *s_json_base64(const unsigned char *b, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1);
    size_t n = 0;
    if (!out)
        return json_null();
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < len ? (uint32_t)b[i + 1] << 8 : 0) |
                     (i + 2 < len ? b[i + 2] : 0);
        out[n++] = abc[v >> 18 & 63];
        out[n++] = abc[v >> 12 & 63];
        out[n++] = i + 1 < len ? abc[v >> 6 & 63] : '=';
        out[n++] = i + 2 < len ? abc[v & 63] : '=';
    }
    json_t *j = json_stringn_nocheck(out, n);
    free(out);
    return j;
}

static json_t *s_json_map(const msgpack_object_map *m)
{
    json_t *obj = json_object();
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        json_t *v = ctl_to_json(&m->ptr[i].val);
        if (k->type == MSGPACK_OBJECT_STR) {
            size_t n;
            char *clean = s_utf8_clean(k->via.str.ptr, k->via.str.size, &n);
            if (clean)
                json_object_setn_new_nocheck(obj, clean, n, v);
            else
                json_decref(v);
            free(clean);
            continue;
        }
        json_t *kj = ctl_to_json(k);
        char *text = json_dumps(kj, JSON_COMPACT | JSON_ENCODE_ANY);
        json_object_set_new(obj, text ? text : "?", v);
        free(text);
        json_decref(kj);
    }
    return obj;
}

json_t *ctl_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return s_json_str(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return s_json_base64((const unsigned char *)o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *arr = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++)
            json_array_append_new(arr, ctl_to_json(&o->via.array.ptr[i]));
        return arr;
    }
    case MSGPACK_OBJECT_MAP:
        return s_json_map(&o->via.map);
    default:
        return json_null(); /* nil, ext */
    }
}

/* --- values as text --------------------------------------------------------------- */

void ctl_format_time(int64_t ms, char *out, size_t outlen)
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, outlen, "%" PRId64, ms);
        return;
    }
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", base, (int)frac);
}

static bool s_word_in(const char *word, const char *const *words)
{
    for (const char *const *w = words; *w; w++)
        if (strcmp(*w, word) == 0)
            return true;
    return false;
}

/* 1000 when key names a time in milliseconds, 1 in seconds, 0 when it names none. */
static int s_time_unit(const char *key)
{
    const char *us = strrchr(key, '_'), *word = us ? us + 1 : key;
    if (strcmp(key, "ts") == 0 || s_word_in(word, s_ms_words))
        return 1000;
    return s_word_in(word, s_seconds_words) ? 1 : 0;
}

static bool s_is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static char *s_time_text(const msgpack_object *o, int unit)
{
    char buf[48];
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == 0)
        return strdup("-"); /* never (e.g. last_login) */
    int64_t v = o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)o->via.u64 : o->via.i64;
    if (unit == 1 && (v > INT64_MAX / 1000 || v < INT64_MIN / 1000))
        return NULL;
    ctl_format_time(v * (1000 / unit), buf, sizeof buf);
    size_t n = strlen(buf);
    if (unit == 1 && n > 5 && buf[n - 1] == 'Z') /* whole seconds: no ".000" */
        memcpy(buf + n - 5, "Z", 2);
    return strdup(buf);
}

/* A value as text for people; key (may be NULL) names it, for times. Caller frees. */
static char *s_text(const char *key, const msgpack_object *o)
{
    char buf[64];
    int unit = key && s_is_int(o) ? s_time_unit(key) : 0;
    char *time =
        unit && (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 <= (uint64_t)INT64_MAX)
            ? s_time_text(o, unit)
            : NULL;
    if (time)
        return time;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return strdup("");
    case MSGPACK_OBJECT_BOOLEAN:
        return strdup(o->via.boolean ? "true" : "false");
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(buf, sizeof buf, "%" PRIu64, o->via.u64);
        return strdup(buf);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(buf, sizeof buf, "%" PRId64, o->via.i64);
        return strdup(buf);
    case MSGPACK_OBJECT_STR: {
        size_t n;
        return s_utf8_clean(o->via.str.ptr, o->via.str.size, &n);
    }
    default: {
        json_t *j = ctl_to_json(o);
        char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(j);
        return text ? text : strdup("?");
    }
    }
}

/* Control characters (and NUL) become spaces: one value, one line. */
static void s_one_line(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7F)
            s[i] = ' ';
}

/* Cut s to max characters, the last one being "…". */
static void s_truncate(char **s, size_t max)
{
    if (s_chars(*s) <= max)
        return;
    size_t chars = 0, i = 0;
    for (; (*s)[i]; i++) {
        if (((unsigned char)(*s)[i] & 0xC0) != 0x80 && ++chars == max)
            break;
    }
    char *cut = realloc(*s, i + 4);
    if (!cut)
        return;
    memcpy(cut + i, "\xE2\x80\xA6", 4);
    *s = cut;
}

/* An array of strings as "a, b, c"; NULL when v is not one (or out of memory). */
static char *s_joined(const msgpack_object *v)
{
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return NULL;
    size_t len = 1;
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        if (v->via.array.ptr[i].type != MSGPACK_OBJECT_STR)
            return NULL;
        len += v->via.array.ptr[i].via.str.size + 2;
    }
    char *out = malloc(len), *p = out;
    if (!out)
        return NULL;
    for (uint32_t i = 0; i < v->via.array.size; i++) {
        const msgpack_object *e = &v->via.array.ptr[i];
        p += sprintf(p, "%s%.*s", i ? ", " : "", (int)e->via.str.size, e->via.str.ptr);
    }
    *p = '\0';
    size_t n;
    char *clean = s_utf8_clean(out, (size_t)(p - out), &n);
    free(out);
    return clean;
}

/* The text of a table cell (a list of strings joined by ", "). Caller frees. */
static char *s_cell(const char *column, const msgpack_object *item)
{
    const msgpack_object *v = ab_map_get(item, column);
    char *text = v ? s_joined(v) : NULL;
    if (!text)
        text = v ? s_text(column, v) : strdup("");
    if (!text)
        return NULL;
    s_one_line(text, strlen(text));
    if (strcmp(column, "change") == 0 || strcmp(column, "description") == 0)
        s_truncate(&text, CHANGE_MAX_CHARS);
    return text;
}

/* --- tables ----------------------------------------------------------------------- */

typedef struct {
    const char *names[COLUMNS_MAX + 1];
    char owned[COLUMNS_MAX][64];
    size_t n;
} s_columns;

/* The command's own columns (AB_SHOW_TABLE), else the first item's scalar fields. */
static void s_pick_columns(const ab_command *cmd, const msgpack_object *first, s_columns *cols)
{
    cols->n = 0;
    if (cmd && cmd->show == AB_SHOW_TABLE) {
        for (const char *const *c = cmd->columns; *c && cols->n < COLUMNS_MAX; c++)
            cols->names[cols->n++] = *c;
        return;
    }
    for (uint32_t i = 0; first && i < first->via.map.size && cols->n < COLUMNS_MAX; i++) {
        const msgpack_object_kv *kv = &first->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type == MSGPACK_OBJECT_MAP ||
            kv->val.type == MSGPACK_OBJECT_ARRAY || kv->key.via.str.size >= 64)
            continue;
        char *name = cols->owned[cols->n];
        snprintf(name, 64, "%.*s", (int)kv->key.via.str.size, kv->key.via.str.ptr);
        cols->names[cols->n++] = name;
    }
}

static bool s_all_maps(const msgpack_object *items)
{
    for (uint32_t i = 0; i < items->via.array.size; i++)
        if (items->via.array.ptr[i].type != MSGPACK_OBJECT_MAP)
            return false;
    return true;
}

static void s_print_row(FILE *f, char **cells, const size_t *widths, size_t ncols)
{
    for (size_t c = 0; c < ncols; c++) {
        const char *t = cells[c] ? cells[c] : "";
        if (c + 1 == ncols)
            fprintf(f, "%s\n", t);
        else
            fprintf(f, "%s%*s", t, (int)(widths[c] - s_chars(t) + 2), "");
    }
}

/* rows + 1 lines of ncols cells (the first line is the header); prints and frees them. */
static void s_print_cells(FILE *f, char **cells, size_t rows, size_t ncols)
{
    size_t widths[COLUMNS_MAX + 1] = {0};
    for (size_t r = 0; r <= rows; r++)
        for (size_t c = 0; c < ncols; c++) {
            size_t w = cells[r * ncols + c] ? s_chars(cells[r * ncols + c]) : 0;
            widths[c] = w > widths[c] ? w : widths[c];
        }
    for (size_t r = 0; r <= rows; r++)
        s_print_row(f, cells + r * ncols, widths, ncols);
    for (size_t i = 0; i < (rows + 1) * ncols; i++)
        free(cells[i]);
}

static void s_print_table(FILE *f, const ab_command *cmd, const msgpack_object *items)
{
    uint32_t rows = items->via.array.size;
    s_columns cols;
    s_pick_columns(cmd, rows ? &items->via.array.ptr[0] : NULL, &cols);
    if (rows == 0 || cols.n == 0)
        return;
    char **cells = calloc(((size_t)rows + 1) * cols.n, sizeof *cells);
    if (!cells)
        return;
    for (size_t c = 0; c < cols.n; c++) {
        cells[c] = strdup(cols.names[c]);
        for (char *p = cells[c]; p && *p; p++)
            *p = (char)toupper((unsigned char)*p);
    }
    for (uint32_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols.n; c++)
            cells[(r + 1) * cols.n + c] = s_cell(cols.names[c], &items->via.array.ptr[r]);
    s_print_cells(f, cells, rows, cols.n);
    free(cells);
}

/* "N of TOTAL (page P)" under a table, when the result says total (and page). */
static void s_print_count(FILE *f, const msgpack_object *result, uint32_t n)
{
    const msgpack_object *total = ab_map_get(result, "total");
    const msgpack_object *page = ab_map_get(result, "page");
    if (!total || !s_is_int(total)) {
        if (n == 0)
            fprintf(f, "(none)\n");
        return;
    }
    fprintf(f, "%" PRIu32 " of %" PRId64, n, total->via.i64);
    if (page && s_is_int(page))
        fprintf(f, " (page %" PRId64 ")", page->via.i64);
    fprintf(f, "\n");
}

/* --- key: value lines ------------------------------------------------------------- */

static void s_print_map(FILE *f, const msgpack_object *map, int indent, bool dash);

static bool s_is_nested(const msgpack_object *o)
{
    return (o->type == MSGPACK_OBJECT_MAP && o->via.map.size > 0) ||
           (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0);
}

static bool s_has_nested(const msgpack_object *arr)
{
    for (uint32_t i = 0; i < arr->via.array.size; i++)
        if (s_is_nested(&arr->via.array.ptr[i]))
            return true;
    return false;
}

/* Print text; line breaks inside it continue at column indent. */
static void s_print_text(FILE *f, const char *text, int indent)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            fprintf(f, "\n%*s", indent, "");
        else if ((unsigned char)*p < 0x20 || *p == 0x7F)
            fputc(' ', f);
        else
            fputc(*p, f);
    }
}

/* An array of scalars on one line: "a, b, c". */
static void s_print_inline_array(FILE *f, const char *key, const msgpack_object *arr)
{
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        char *t = s_text(key, &arr->via.array.ptr[i]);
        fprintf(f, "%s", i ? ", " : "");
        s_print_text(f, t ? t : "", 0);
        free(t);
    }
}

/* Each element as "- value", maps as "- key: value" blocks, at column indent. */
static void s_print_list(FILE *f, const char *key, const msgpack_object *arr, int indent)
{
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *e = &arr->via.array.ptr[i];
        if (e->type == MSGPACK_OBJECT_MAP && e->via.map.size > 0) {
            s_print_map(f, e, indent + 2, true);
            continue;
        }
        fprintf(f, "%*s-%s", indent, "", e->type == MSGPACK_OBJECT_NIL ? "" : " ");
        if (e->type == MSGPACK_OBJECT_ARRAY)
            s_print_inline_array(f, key, e);
        else {
            char *t = s_text(key, e);
            s_print_text(f, t ? t : "", indent + 2);
            free(t);
        }
        fputc('\n', f);
    }
}

static char *s_key_text(const msgpack_object *k)
{
    return s_text(NULL, k);
}

static size_t s_key_width(const msgpack_object *map)
{
    size_t w = 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        char *k = s_key_text(&map->via.map.ptr[i].key);
        size_t n = k ? s_chars(k) : 0;
        w = n > w ? n : w;
        free(k);
    }
    return w;
}

static void s_print_entry(FILE *f, const char *key, const msgpack_object *v, int indent,
                          size_t width)
{
    if (v->type == MSGPACK_OBJECT_MAP && v->via.map.size > 0) {
        fprintf(f, "%s:\n", key);
        s_print_map(f, v, indent + 2, false);
        return;
    }
    if (v->type == MSGPACK_OBJECT_ARRAY && s_has_nested(v)) {
        fprintf(f, "%s:\n", key);
        s_print_list(f, key, v, indent + 2);
        return;
    }
    int pad = (int)(width - s_chars(key)) + 1;
    fprintf(f, "%s:%*s", key, pad, "");
    if (v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size > 0) {
        s_print_inline_array(f, key, v);
    } else {
        char *t = s_text(key, v);
        s_print_text(f, t ? t : "", indent + (int)width + 2);
        free(t);
    }
    fputc('\n', f);
}

/* Every entry as "key: value" at column indent; with dash the first line starts "- ". */
static void s_print_map(FILE *f, const msgpack_object *map, int indent, bool dash)
{
    size_t width = s_key_width(map);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        char *key = s_key_text(&map->via.map.ptr[i].key);
        if (dash && i == 0)
            fprintf(f, "%*s- ", indent - 2, "");
        else
            fprintf(f, "%*s", indent, "");
        s_print_entry(f, key ? key : "?", &map->via.map.ptr[i].val, indent, width);
        free(key);
    }
}

/* --- replies ---------------------------------------------------------------------- */

/* A non-empty map whose values are maps of scalars (setting list's problems per tab). */
static bool s_is_table_of_counts(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size == 0)
        return false;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *v = &o->via.map.ptr[i].val;
        if (v->type != MSGPACK_OBJECT_MAP)
            return false;
        for (uint32_t j = 0; j < v->via.map.size; j++)
            if (s_is_nested(&v->via.map.ptr[j].val))
                return false;
    }
    return true;
}

/* key:, then one line per entry: "  name: k v, k v". */
static void s_print_counts(FILE *f, const char *key, const msgpack_object *o)
{
    fprintf(f, "%s:\n", key);
    size_t width = s_key_width(o);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        char *name = s_key_text(&o->via.map.ptr[i].key);
        const msgpack_object *v = &o->via.map.ptr[i].val;
        fprintf(f, "  %s:%*s", name ? name : "?", (int)(width - s_chars(name ? name : "?")) + 1,
                "");
        for (uint32_t j = 0; j < v->via.map.size; j++) {
            char *k = s_key_text(&v->via.map.ptr[j].key);
            char *t = s_text(k, &v->via.map.ptr[j].val);
            fprintf(f, "%s%s %s", j ? ", " : "", t ? t : "", k ? k : "?");
            free(k);
            free(t);
        }
        fputc('\n', f);
        free(name);
    }
}

/* After a table: the result's other members (setting list's problems per tab), as key:
 * value lines; the paging members are already said by s_print_count. */
static void s_print_rest(FILE *f, const msgpack_object *result)
{
    static const char *const skip[] = {"items", "total", "page", "limit", NULL};
    for (uint32_t i = 0; i < result->via.map.size; i++) {
        const msgpack_object_kv *kv = &result->via.map.ptr[i];
        bool listed = kv->key.type != MSGPACK_OBJECT_STR;
        for (const char *const *k = skip; !listed && *k; k++)
            listed = strlen(*k) == kv->key.via.str.size &&
                     memcmp(*k, kv->key.via.str.ptr, kv->key.via.str.size) == 0;
        if (listed)
            continue;
        char *key = s_key_text(&kv->key);
        if (s_is_table_of_counts(&kv->val))
            s_print_counts(f, key ? key : "?", &kv->val);
        else
            s_print_entry(f, key ? key : "?", &kv->val, 0, key ? s_chars(key) : 1);
        free(key);
    }
}

static void s_render_human(FILE *f, const ab_command *cmd, const msgpack_object *result)
{
    if (!result || result->type == MSGPACK_OBJECT_NIL)
        return;
    if (result->type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *items = ab_map_get(result, "items");
        if (items && items->type == MSGPACK_OBJECT_ARRAY && s_all_maps(items)) {
            s_print_table(f, cmd, items);
            s_print_count(f, result, items->via.array.size);
            s_print_rest(f, result);
        } else {
            s_print_map(f, result, 0, false);
        }
        return;
    }
    if (result->type == MSGPACK_OBJECT_ARRAY) {
        s_print_list(f, NULL, result, 0);
        return;
    }
    char *t = s_text(NULL, result);
    fprintf(f, "%s\n", t ? t : "");
    free(t);
}

static void s_print_json(FILE *f, json_t *j)
{
    json_dumpf(j, f, JSON_INDENT(2) | JSON_ENCODE_ANY);
    fputc('\n', f);
    json_decref(j);
}

/* The text of a string member of map, or "" (copied into buf). */
static const char *s_member(const msgpack_object *map, const char *key, char *buf, size_t len)
{
    const msgpack_object *v = map ? ab_map_get(map, key) : NULL;
    buf[0] = '\0';
    if (v && v->type == MSGPACK_OBJECT_STR)
        snprintf(buf, len, "%.*s", (int)v->via.str.size, v->via.str.ptr);
    s_one_line(buf, strlen(buf));
    return buf;
}

static int s_render_error(const msgpack_object *reply, bool json, FILE *out, FILE *errf)
{
    const msgpack_object *e = ab_map_get(reply, "error");
    if (e && e->type != MSGPACK_OBJECT_MAP)
        e = NULL;
    char code[64], message[1024], field[256];
    s_member(e, "code", code, sizeof code);
    s_member(e, "message", message, sizeof message);
    s_member(e, "field", field, sizeof field);
    fprintf(errf, "adminctl: %s: %s", code[0] ? code : "internal",
            message[0] ? message : "(no message)");
    if (field[0])
        fprintf(errf, " (field: %s)", field);
    const msgpack_object *retry = e ? ab_map_get(e, "retry_after") : NULL;
    if (retry && s_is_int(retry) && retry->via.i64 > 0)
        fprintf(errf, " (retry after %" PRId64 " s)", retry->via.i64);
    fputc('\n', errf);
    if (json) {
        json_t *j = json_object();
        json_object_set_new(j, "ok", json_false());
        json_object_set_new(j, "error", e ? ctl_to_json(e) : json_object());
        s_print_json(out, j);
    }
    return CTL_EXIT_REFUSED;
}

int ctl_render_reply(const msgpack_object *reply, const char *type, bool json, FILE *out,
                     FILE *errf)
{
    const msgpack_object *ok = ab_map_get(reply, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN) {
        fprintf(errf, "adminctl: the reply is malformed (no boolean 'ok')\n");
        return CTL_EXIT_UNREACHABLE;
    }
    if (!ok->via.boolean)
        return s_render_error(reply, json, out, errf);
    const msgpack_object *result = ab_map_get(reply, "result");
    const ab_command *cmd = ab_catalog_find(type, strlen(type));
    if (json || (cmd && cmd->show == AB_SHOW_JSON))
        s_print_json(out, result ? ctl_to_json(result) : json_null());
    else
        s_render_human(out, cmd, result);
    const msgpack_object *critical = result ? ab_map_get(result, "critical") : NULL;
    if (critical && critical->type == MSGPACK_OBJECT_BOOLEAN && critical->via.boolean)
        return CTL_EXIT_CRITICAL;
    return CTL_EXIT_OK;
}
