/* jsonarg.c — argument values read from elsewhere than the command line itself: a list
 * argument's JSON array given inline, in a file (@FILE) or on standard input (-), checked
 * and turned into msgpack before anything is sent; a text argument's value from a file
 * (--NAME-file PATH). */
#include <errno.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void ctl_pack_json(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, (uint32_t)json_object_size(j));
        json_object_foreach((json_t *)j, k, v)
        {
            msgpack_pack_str(pk, strlen(k));
            msgpack_pack_str_body(pk, k, strlen(k));
            ctl_pack_json(pk, v);
        }
        break;
    }
    case JSON_ARRAY:
        msgpack_pack_array(pk, (uint32_t)json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            ctl_pack_json(pk, json_array_get(j, i));
        break;
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(j));
        msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

static json_t *s_load(const char *source, const char *flag, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j;
    const char *from = source;
    if (strcmp(source, "-") == 0) {
        j = json_loadf(stdin, 0, &je);
        from = "standard input";
    } else if (source[0] == '@') {
        j = json_load_file(source + 1, 0, &je);
        from = source + 1;
    } else {
        j = json_loads(source, 0, &je);
        from = "its value";
    }
    if (!j)
        snprintf(err, errlen, "%s: %s is not JSON: %s (line %d)", flag, from, je.text, je.line);
    return j;
}

int ctl_list_load(const ab_arg *a, const char *flag, const char *source, ctl_value *v, char *err,
                  size_t errlen)
{
    json_t *j = s_load(source, flag, err, errlen);
    if (!j)
        return -1;
    size_t n = json_is_array(j) ? json_array_size(j) : 0;
    int rc = -1;
    if (!json_is_array(j)) {
        snprintf(err, errlen, "%s takes a JSON array", flag);
    } else if ((int64_t)n < a->min || (int64_t)n > a->max) {
        snprintf(err, errlen, "%s takes %lld to %lld entries, not %zu", flag, (long long)a->min,
                 (long long)a->max, n);
    } else {
        rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++)
            if (!json_is_object(json_array_get(j, i))) {
                snprintf(err, errlen, "%s: entry %zu is not a JSON object", flag, i);
                rc = -1;
            }
    }
    if (rc == 0) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        ctl_pack_json(&pk, j);
        free(v->packed);
        v->packed_len = sb.size;
        v->packed = msgpack_sbuffer_release(&sb);
    }
    json_decref(j);
    return rc;
}

/* Characters in s (len bytes) if it is valid UTF-8 without NUL, else -1. */
static long long s_utf8_chars(const char *s, size_t len)
{
    long long chars = 0;
    for (size_t i = 0; i < len; chars++) {
        unsigned char c = (unsigned char)s[i];
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (c == 0 || n == 0 || i + n > len)
            return -1;
        for (size_t k = 1; k < n; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80)
                return -1;
        i += n;
    }
    return chars;
}

int ctl_text_load(const ab_arg *a, const char *flag, const char *path, ctl_value *v, char *err,
                  size_t errlen)
{
    bool from_stdin = strcmp(path, "-") == 0;
    FILE *in = from_stdin ? stdin : fopen(path, "rb");
    if (!in) {
        snprintf(err, errlen, "%s: cannot open %s: %s", flag, path, strerror(errno));
        return -1;
    }
    size_t cap = (size_t)a->max * 4 + 1, len = 0; /* max characters of up to 4 bytes */
    char *buf = malloc(cap + 1);
    if (buf)
        len = fread(buf, 1, cap, in);
    bool failed = !buf || ferror(in);
    if (!from_stdin)
        fclose(in);
    long long chars = buf ? s_utf8_chars(buf, len) : -1;
    const char *what = from_stdin ? "standard input" : path;
    if (failed)
        snprintf(err, errlen, "%s: cannot read %s", flag, what);
    else if (chars < 0)
        snprintf(err, errlen, "%s: %s is not UTF-8 text", flag, what);
    else if (chars > a->max || len == cap)
        snprintf(err, errlen, "%s: %s is longer than %lld characters", flag, what,
                 (long long)a->max);
    else if (chars < a->min)
        snprintf(err, errlen, "%s: %s is shorter than %lld characters", flag, what,
                 (long long)a->min);
    if (failed || chars < 0 || chars > a->max || len == cap || chars < a->min) {
        free(buf);
        return -1;
    }
    buf[len] = '\0';
    free(v->packed);
    v->packed = buf;
    v->packed_len = len;
    v->str = buf;
    v->given = true;
    return 0;
}

void ctl_release(ctl_cli *cli)
{
    for (size_t i = 0; i < CTL_MAX_ARGS; i++) {
        free(cli->values[i].packed);
        cli->values[i].packed = NULL;
    }
}
