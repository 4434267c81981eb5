/* cli_parse.c — adminctl's command line, driven by the command catalog (see cli.h).
 *
 * adminctl [global options] WORDS... [positional] [--arg value]...
 * WORDS are a catalog entry's `cli` words (a plural first word is accepted: "orgs");
 * the client-side verb `events` is not in the catalog. Global options may come before
 * or after the words; after the words a command's own argument of the same name wins. */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/envelope.h"

typedef enum { S_NONE, S_PREFIX, S_MATCH } s_lookup_result;

/* Parser state beside the result. */
typedef struct {
    char words[CTL_WORDS_MAX]; /* the command words so far, normalised, space-separated */
    size_t nwords;
    bool rest_bare; /* after "--": every word is a bare word */
} s_state;

static int s_fail(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

void ctl_flag_name(const char *name, char *out, size_t outlen)
{
    size_t n = 0;
    if (outlen < 3) {
        if (outlen)
            out[0] = '\0';
        return;
    }
    out[n++] = '-';
    out[n++] = '-';
    for (; *name && n + 1 < outlen; name++)
        out[n++] = *name == '_' ? '-' : *name;
    out[n] = '\0';
}

/* --- command words ---------------------------------------------------------------- */

/* True when cli's first word is word (len bytes) and cli has more than one word. */
static bool s_is_noun_of(const char *cli, const char *word, size_t len)
{
    return strncmp(cli, word, len) == 0 && cli[len] == ' ';
}

static bool s_is_noun(const char *word, size_t len)
{
    for (size_t i = 0; i < ab_catalog_len; i++)
        if (s_is_noun_of(ab_catalog[i].cli, word, len))
            return true;
    return false;
}

/* Length of word once a plural noun is made singular ("orgs" → 3), else its length. */
static size_t s_noun_len(const char *word)
{
    size_t len = strlen(word);
    if (len > 1 && word[len - 1] == 's' && !s_is_noun(word, len) && s_is_noun(word, len - 1))
        return len - 1;
    return len;
}

/* Is words a whole catalog command, the beginning of some, or neither? */
static s_lookup_result s_lookup(const char *words, const ab_command **cmd)
{
    size_t len = strlen(words);
    s_lookup_result r = S_NONE;
    for (size_t i = 0; i < ab_catalog_len; i++) {
        const char *cli = ab_catalog[i].cli;
        if (strcmp(cli, words) == 0) {
            *cmd = &ab_catalog[i];
            return S_MATCH;
        }
        if (strncmp(cli, words, len) == 0 && cli[len] == ' ')
            r = S_PREFIX;
    }
    return r;
}

/* Append word to st->words; the first word loses a plural 's' when that names a noun. */
static int s_add_word(s_state *st, const char *word, char *err, size_t errlen)
{
    size_t have = strlen(st->words);
    size_t len = st->nwords == 0 ? s_noun_len(word) : strlen(word);
    if (have + len + 2 > sizeof st->words)
        return s_fail(err, errlen, "unknown command '%s'; see adminctl --help", word);
    if (st->nwords)
        st->words[have++] = ' ';
    memcpy(st->words + have, word, len);
    st->words[have + len] = '\0';
    st->nwords++;
    return 0;
}

/* The verbs that may follow prefix, as "add, edit, …". */
static void s_next_words(const char *prefix, char *out, size_t outlen)
{
    size_t plen = strlen(prefix), n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ab_catalog_len; i++) {
        const char *cli = ab_catalog[i].cli;
        if (strncmp(cli, prefix, plen) != 0 || cli[plen] != ' ')
            continue;
        const char *next = cli + plen + 1;
        int w = (int)strcspn(next, " ");
        int k = snprintf(out + n, outlen - n, "%s%.*s", n ? ", " : "", w, next);
        if (k < 0 || (size_t)k >= outlen - n)
            return;
        n += (size_t)k;
    }
}

/* --- values ----------------------------------------------------------------------- */

static int s_parse_int(const ab_arg *a, const char *flag, const char *text, int64_t *out, char *err,
                       size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    bool digits = isdigit((unsigned char)text[0]) ||
                  ((text[0] == '-' || text[0] == '+') && isdigit((unsigned char)text[1]));
    if (!digits || *end != '\0' || errno == ERANGE)
        return s_fail(err, errlen, "%s needs an integer, not '%s'", flag, text);
    if (v < a->min || v > a->max)
        return s_fail(err, errlen, "%s must be between %lld and %lld, not %lld", flag,
                      (long long)a->min, (long long)a->max, v);
    *out = v;
    return 0;
}

static int s_parse_bool(const char *flag, const char *text, bool *out, char *err, size_t errlen)
{
    if (strcmp(text, "true") == 0)
        *out = true;
    else if (strcmp(text, "false") == 0)
        *out = false;
    else
        return s_fail(err, errlen, "%s takes true or false, not '%s'", flag, text);
    return 0;
}

static int s_check_enum(const ab_arg *a, const char *flag, const char *text, char *err,
                        size_t errlen)
{
    char list[256] = "";
    for (const char *const *c = a->choices; c && *c; c++) {
        if (strcmp(*c, text) == 0)
            return 0;
        strncat(list, *c, sizeof list - strlen(list) - 1);
        if (c[1])
            strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return s_fail(err, errlen, "%s must be one of: %s (not '%s')", flag, list, text);
}

/* One more string of a repeatable list flag: one of the choices, not given before. */
static int s_add_str(const ab_arg *a, const char *flag, const char *text, ctl_value *v, char *err,
                     size_t errlen)
{
    if (a->choices && s_check_enum(a, flag, text, err, errlen) < 0)
        return -1;
    if (!a->choices && text[0] == '\0')
        return s_fail(err, errlen, "%s needs a non-empty value", flag);
    for (int i = 0; i < v->npairs; i++)
        if (strcmp(v->pairs[i], text) == 0)
            return s_fail(err, errlen, "%s %s is given twice", flag, text);
    if (v->npairs == CTL_MAP_MAX || v->npairs >= a->max)
        return s_fail(err, errlen, "at most %lld %s options",
                      (long long)(a->max < CTL_MAP_MAX ? a->max : CTL_MAP_MAX), flag);
    v->pairs[v->npairs++] = text;
    return 0;
}

/* Store text as the value of argument a (from flag, for messages). */
static int s_set_value(ctl_value *v, const ab_arg *a, const char *flag, const char *text, char *err,
                       size_t errlen)
{
    int rc = 0;
    switch (a->type) {
    case AB_ARG_INT:
        rc = s_parse_int(a, flag, text, &v->num, err, errlen);
        break;
    case AB_ARG_BOOL:
        rc = s_parse_bool(flag, text, &v->flag, err, errlen);
        break;
    case AB_ARG_ENUM:
        rc = s_check_enum(a, flag, text, err, errlen);
        break;
    case AB_ARG_STR:
    case AB_ARG_UUID:
    case AB_ARG_SCALAR: /* sent as text: the engine casts it */
        break;
    case AB_ARG_MAP:
        if (!strchr(text, '=') || text[0] == '=')
            return s_fail(err, errlen, "%s takes key=value, not '%s'", flag, text);
        if (v->npairs == CTL_MAP_MAX)
            return s_fail(err, errlen, "at most %d %s options", CTL_MAP_MAX, flag);
        v->pairs[v->npairs++] = text;
        break;
    case AB_ARG_LIST:
        rc = ctl_list_load(a, flag, text, v, err, errlen);
        break;
    case AB_ARG_STRS:
        rc = s_add_str(a, flag, text, v, err, errlen);
        break;
    }
    v->str = text;
    v->given = rc == 0;
    return rc;
}

/* --- flags ------------------------------------------------------------------------ */

/* A flag as written: "--model-id=3" gives name "model_id" and inline value "3". */
typedef struct {
    char name[CTL_WORDS_MAX];
    const char *inline_value; /* NULL when none */
    const char *text;         /* as written, for messages */
} s_flag;

static bool s_is_flag(const char *word)
{
    return word[0] == '-' && word[1] != '\0' && !isdigit((unsigned char)word[1]);
}

static void s_split_flag(const char *word, s_flag *f)
{
    const char *p = word + (word[1] == '-' ? 2 : 1);
    size_t len = strcspn(p, "=");
    if (len >= sizeof f->name)
        len = sizeof f->name - 1;
    for (size_t i = 0; i < len; i++)
        f->name[i] = p[i] == '-' ? '_' : p[i];
    f->name[len] = '\0';
    f->inline_value = p[len] == '=' ? p + len + 1 : NULL;
    f->text = word;
}

/* The value of a flag that takes one: inline, or the next word. Returns the number of
 * words consumed (1 or 2), or -1. */
static int s_take_value(const s_flag *f, int left, char *const *av, const char **value, char *err,
                        size_t errlen)
{
    if (f->inline_value) {
        *value = f->inline_value;
        return 1;
    }
    if (left < 2)
        return s_fail(err, errlen, "%s needs a value", f->text);
    *value = av[1];
    return 2;
}

/* --NAME-file PATH: the value of the text argument NAME is the content of a file ("-":
 * standard input), for values too long or too awkward to type (user add --gpgkey-file).
 * Returns words consumed, 0 when f is not such a flag, -1 on error. */
static int s_file_flag(ctl_cli *cli, const s_flag *f, int left, char *const *av, char *err,
                       size_t errlen)
{
    size_t n = strlen(f->name);
    if (n <= 5 || strcmp(f->name + n - 5, "_file") != 0)
        return 0;
    const ab_arg *a = ab_command_arg(cli->cmd, f->name, n - 5);
    if (!a || a->type != AB_ARG_STR)
        return 0;
    char flag[CTL_WORDS_MAX + 2];
    ctl_flag_name(a->name, flag, sizeof flag);
    ctl_value *v = &cli->values[a - cli->cmd->args];
    if (v->given)
        return s_fail(err, errlen, "%s is given twice (or with %s-file)", flag, flag);
    const char *path = NULL;
    int used = s_take_value(f, left, av, &path, err, errlen);
    if (used < 0 || ctl_text_load(a, f->text, path, v, err, errlen) < 0)
        return -1;
    return used;
}

/* A command argument flag; returns words consumed, 0 when f is not one, -1 on error. */
static int s_arg_flag(ctl_cli *cli, const s_flag *f, int left, char *const *av, char *err,
                      size_t errlen)
{
    const ab_command *cmd = cli->cmd;
    const ab_arg *a = ab_command_arg(cmd, f->name, strlen(f->name));
    bool negated = false;
    if (!a && strncmp(f->name, "no_", 3) == 0) {
        a = ab_command_arg(cmd, f->name + 3, strlen(f->name) - 3);
        negated = a && a->type == AB_ARG_BOOL;
        a = negated ? a : NULL;
    }
    if (!a) { /* a map or list argument also answers to its singular: --arg k=v for "args",
                 --no-perm NAME for "no_perms" */
        char plural[CTL_WORDS_MAX + 2];
        snprintf(plural, sizeof plural, "%ss", f->name);
        a = ab_command_arg(cmd, plural, strlen(plural));
        a = a && (a->type == AB_ARG_MAP || a->type == AB_ARG_STRS) ? a : NULL;
    }
    if (!a)
        return s_file_flag(cli, f, left, av, err, errlen);
    char flag[CTL_WORDS_MAX + 2];
    ctl_flag_name(a->name, flag, sizeof flag);
    if (a->type == AB_ARG_STRS) /* messages use the flag as written: --perm, or --perms */
        ctl_flag_name(f->name, flag, sizeof flag);
    ctl_value *v = &cli->values[a - cmd->args];
    if (v->given && a->type != AB_ARG_MAP && a->type != AB_ARG_STRS)
        return s_fail(err, errlen, "%s is given twice", flag);
    if (a->type == AB_ARG_BOOL) {
        if (negated && f->inline_value)
            return s_fail(err, errlen, "%s takes no value", f->text);
        if (f->inline_value)
            return s_set_value(v, a, flag, f->inline_value, err, errlen) < 0 ? -1 : 1;
        bool next = left > 1 && (strcmp(av[1], "true") == 0 || strcmp(av[1], "false") == 0);
        if (next)
            return s_set_value(v, a, flag, av[1], err, errlen) < 0 ? -1 : 2;
        v->given = true;
        v->flag = !negated;
        return 1;
    }
    const char *value = NULL;
    int used = s_take_value(f, left, av, &value, err, errlen);
    if (used < 0 || s_set_value(v, a, flag, value, err, errlen) < 0)
        return -1;
    return used;
}

static int s_parse_timeout(ctl_cli *cli, const char *text, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    double s = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !(s > 0) || s > 86400)
        return s_fail(err, errlen, "--timeout needs seconds between 0 and 86400, not '%s'", text);
    cli->timeout_ms = s * 1000 < 1 ? 1 : (int)(s * 1000);
    cli->timeout_given = true;
    return 0;
}

/* A global option taking a value; returns words consumed, 0 when f is not one, -1. */
static int s_global_value(ctl_cli *cli, const s_flag *f, int left, char *const *av, char *err,
                          size_t errlen)
{
    static const char *const names[] = {"url", "key", "id", "timeout"};
    size_t i = 0;
    while (i < 4 && strcmp(f->name, names[i]) != 0)
        i++;
    if (i == 4)
        return 0;
    const char *value = NULL;
    int used = s_take_value(f, left, av, &value, err, errlen);
    if (used < 0)
        return -1;
    if (i == 0)
        cli->url = value;
    else if (i == 1)
        cli->key = value;
    else if (i == 3)
        return s_parse_timeout(cli, value, err, errlen) < 0 ? -1 : used;
    else if (!ab_uuid_valid(value, strlen(value)))
        return s_fail(err, errlen, "--id needs a UUID like 5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f");
    else
        cli->id = value;
    return used;
}

/* A global option; returns words consumed, 0 when f is not one, -1 on error. */
static int s_global(ctl_cli *cli, const s_flag *f, int left, char *const *av, char *err,
                    size_t errlen)
{
    if (strcmp(f->name, "json") == 0 && !f->inline_value) {
        cli->json = true;
        return 1;
    }
    if (strcmp(f->name, "local") == 0 && !f->inline_value) {
        cli->local = true;
        return 1;
    }
    return s_global_value(cli, f, left, av, err, errlen);
}

/* A flag of `adminctl events`; returns words consumed, 0 when f is not one, -1. */
static int s_events_flag(ctl_cli *cli, const s_flag *f, int left, char *const *av, char *err,
                         size_t errlen)
{
    bool topic = strcmp(f->name, "topic") == 0;
    if (!topic && strcmp(f->name, "count") != 0)
        return 0;
    const char *value = NULL;
    int used = s_take_value(f, left, av, &value, err, errlen);
    if (used < 0)
        return -1;
    if (topic) {
        if (cli->ntopics == CTL_MAX_TOPICS)
            return s_fail(err, errlen, "at most %d --topic options", CTL_MAX_TOPICS);
        cli->topics[cli->ntopics++] = value;
        return used;
    }
    static const ab_arg count = {"count", AB_ARG_INT, false, false, 1, 1000000000, NULL, "", 0};
    int64_t n;
    if (s_parse_int(&count, "--count", value, &n, err, errlen) < 0)
        return -1;
    cli->count = (long)n;
    return used;
}

static int s_unknown_flag(const ctl_cli *cli, const s_state *st, const s_flag *f, char *err,
                          size_t errlen)
{
    if (cli->cmd)
        return s_fail(err, errlen, "unknown option %s for '%s'; see adminctl %s --help", f->text,
                      cli->cmd->cli, cli->cmd->cli);
    if (cli->events)
        return s_fail(err, errlen, "unknown option %s for 'events'; see adminctl events --help",
                      f->text);
    if (st->nwords)
        return s_fail(err, errlen,
                      "unknown option %s: '%s' is not a whole command; see adminctl "
                      "%s --help",
                      f->text, st->words, st->words);
    return s_fail(err, errlen, "unknown option %s; see adminctl --help", f->text);
}

static int s_flag_word(ctl_cli *cli, s_state *st, int left, char *const *av, char *err,
                       size_t errlen)
{
    s_flag f;
    s_split_flag(av[0], &f);
    int used = 0;
    if (cli->cmd)
        used = s_arg_flag(cli, &f, left, av, err, errlen);
    else if (cli->events)
        used = s_events_flag(cli, &f, left, av, err, errlen);
    if (used == 0)
        used = s_global(cli, &f, left, av, err, errlen);
    if (used == 0)
        return s_unknown_flag(cli, st, &f, err, errlen);
    return used;
}

/* --- bare words ------------------------------------------------------------------- */

static int s_positional(ctl_cli *cli, const char *word, char *err, size_t errlen)
{
    const ab_command *cmd = cli->cmd;
    for (size_t i = 0; i < cmd->nargs; i++) {
        const ab_arg *a = &cmd->args[i];
        if (!a->positional || cli->values[i].given)
            continue;
        char flag[CTL_WORDS_MAX + 2];
        ctl_flag_name(a->name, flag, sizeof flag);
        return s_set_value(&cli->values[i], a, flag, word, err, errlen);
    }
    return s_fail(err, errlen, "unexpected argument '%s' for '%s'; see adminctl %s --help", word,
                  cmd->cli, cmd->cli);
}

static int s_bare_word(ctl_cli *cli, s_state *st, const char *word, char *err, size_t errlen)
{
    if (cli->cmd)
        return s_positional(cli, word, err, errlen);
    if (cli->events)
        return s_fail(err, errlen,
                      "unexpected argument '%s' for 'events'; see adminctl events "
                      "--help",
                      word);
    if (st->nwords == 0 && (strcmp(word, "events") == 0 || strcmp(word, "event") == 0)) {
        cli->events = true;
        return 0;
    }
    if (s_add_word(st, word, err, errlen) < 0)
        return -1;
    s_lookup_result r = s_lookup(st->words, &cli->cmd);
    if (r == S_NONE)
        return s_fail(err, errlen, "unknown command '%s'; see adminctl --help", st->words);
    return 0;
}

/* --- help and version: decided before anything else is checked -------------------- */

static bool s_is_help(const char *w)
{
    return strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0;
}

/* Scan for --help / --version (before any "--"): 1 help, 2 version, 0 neither. */
static int s_scan_meta(int argc, char *const *argv)
{
    int meta = 0;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (s_is_help(argv[i]))
            return 1;
        if (strcmp(argv[i], "--version") == 0)
            meta = 2;
    }
    return meta;
}

/* Collect the command words for help: bare words up to the first flag that is not a
 * global option (whose value is skipped). */
static int s_parse_help(int argc, char *const *argv, ctl_cli *cli, char *err, size_t errlen)
{
    s_state st = {0};
    cli->action = CTL_HELP;
    for (int i = 1; i < argc && !cli->cmd && !cli->events; i++) {
        if (s_is_help(argv[i]))
            continue;
        if (!s_is_flag(argv[i])) {
            if (s_bare_word(cli, &st, argv[i], err, errlen) < 0)
                return -1;
            continue;
        }
        s_flag f;
        s_split_flag(argv[i], &f);
        int used = s_global(cli, &f, argc - i, argv + i, err, errlen);
        if (used <= 0)
            break;
        i += used - 1;
    }
    if (!cli->cmd && !cli->events)
        snprintf(cli->prefix, sizeof cli->prefix, "%s", st.words);
    return 0;
}

/* --- the end: is the command line whole? ------------------------------------------ */

static int s_check_required(const ctl_cli *cli, char *err, size_t errlen)
{
    const ab_command *cmd = cli->cmd;
    for (size_t i = 0; i < cmd->nargs; i++) {
        const ab_arg *a = &cmd->args[i];
        if (!a->required || cli->values[i].given)
            continue;
        char flag[CTL_WORDS_MAX + 2];
        ctl_flag_name(a->name, flag, sizeof flag);
        if (a->positional)
            return s_fail(err, errlen, "'%s' needs %s (adminctl %s %s, or %s VALUE)", cmd->cli,
                          a->name, cmd->cli, a->name, flag);
        return s_fail(err, errlen, "'%s' needs %s VALUE; see adminctl %s --help", cmd->cli, flag,
                      cmd->cli);
    }
    return 0;
}

static int s_finish(ctl_cli *cli, const s_state *st, char *err, size_t errlen)
{
    if (cli->events) {
        cli->action = CTL_EVENTS;
        return 0;
    }
    if (st->nwords == 0)
        return s_fail(err, errlen, "no command given; see adminctl --help");
    if (!cli->cmd) {
        char verbs[256];
        s_next_words(st->words, verbs, sizeof verbs);
        return s_fail(err, errlen, "'%s' needs one of: %s; see adminctl %s --help", st->words,
                      verbs, st->words);
    }
    cli->action = CTL_RUN;
    return s_check_required(cli, err, errlen);
}

static void s_init(ctl_cli *cli)
{
    memset(cli, 0, sizeof *cli);
    cli->timeout_ms = CTL_TIMEOUT_DEFAULT_MS;
}

int ctl_parse(int argc, char *const *argv, ctl_cli *cli, char *err, size_t errlen)
{
    s_init(cli);
    int meta = s_scan_meta(argc, argv);
    if (meta == 1)
        return s_parse_help(argc, argv, cli, err, errlen);
    if (meta == 2) {
        cli->action = CTL_VERSION;
        return 0;
    }
    s_state st = {0};
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (!st.rest_bare && strcmp(w, "--") == 0) {
            st.rest_bare = true;
            continue;
        }
        bool flag = !st.rest_bare && s_is_flag(w);
        int used = flag ? s_flag_word(cli, &st, argc - i, argv + i, err, errlen)
                        : s_bare_word(cli, &st, w, err, errlen);
        if (used < 0)
            return -1;
        i += used > 1 ? used - 1 : 0;
        if (cli->cmd && cli->cmd->nargs > CTL_MAX_ARGS)
            return s_fail(err, errlen, "'%s' has more arguments than adminctl can hold",
                          cli->cmd->cli);
    }
    return s_finish(cli, &st, err, errlen);
}

/* --- packing ---------------------------------------------------------------------- */

/* key=value words as a map; a value is an integer when it looks like one, a boolean for
 * true/false, else a string (the engine checks them against what the target expects). */
static void s_pack_pairs(const ctl_value *v, msgpack_packer *pk)
{
    msgpack_pack_map(pk, (uint32_t)v->npairs);
    for (int i = 0; i < v->npairs; i++) {
        const char *eq = strchr(v->pairs[i], '=');
        ab_pack_str(pk, v->pairs[i], (size_t)(eq - v->pairs[i]));
        const char *val = eq + 1;
        char *end = NULL;
        errno = 0;
        long long n = strtoll(val, &end, 10);
        if (*val && *end == '\0' && errno == 0)
            msgpack_pack_int64(pk, n);
        else if (strcmp(val, "true") == 0)
            msgpack_pack_true(pk);
        else if (strcmp(val, "false") == 0)
            msgpack_pack_false(pk);
        else
            ab_pack_cstr(pk, val);
    }
}

static void s_pack_value(const ab_arg *a, const ctl_value *v, msgpack_packer *pk)
{
    switch (a->type) {
    case AB_ARG_INT:
        msgpack_pack_int64(pk, v->num);
        break;
    case AB_ARG_BOOL:
        if (v->flag)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    case AB_ARG_STR:
    case AB_ARG_UUID:
    case AB_ARG_ENUM:
    case AB_ARG_SCALAR:
        ab_pack_cstr(pk, v->str);
        break;
    case AB_ARG_MAP:
        s_pack_pairs(v, pk);
        break;
    case AB_ARG_LIST:
        pk->callback(pk->data, v->packed, v->packed_len);
        break;
    case AB_ARG_STRS:
        msgpack_pack_array(pk, (uint32_t)v->npairs);
        for (int i = 0; i < v->npairs; i++)
            ab_pack_cstr(pk, v->pairs[i]);
        break;
    }
}

void ctl_pack_args(const ctl_cli *cli, msgpack_packer *pk)
{
    const ab_command *cmd = cli->cmd;
    uint32_t n = 0;
    for (size_t i = 0; cmd && i < cmd->nargs; i++)
        n += cli->values[i].given;
    msgpack_pack_map(pk, n);
    for (size_t i = 0; cmd && i < cmd->nargs; i++) {
        if (!cli->values[i].given)
            continue;
        ab_pack_cstr(pk, cmd->args[i].name);
        s_pack_value(&cmd->args[i], &cli->values[i], pk);
    }
}

void ctl_pack_command(const ctl_cli *cli, const char *id, const char *auth, msgpack_packer *pk)
{
    ctl_pack_command_as(cli, id, "auth", auth, pk);
}

void ctl_pack_command_as(const ctl_cli *cli, const char *id, const char *cred_name,
                         const char *cred, msgpack_packer *pk)
{
    msgpack_pack_map(pk, cred ? 5 : 4);
    ab_pack_cstr(pk, "v");
    msgpack_pack_int(pk, AB_WIRE_VERSION);
    ab_pack_cstr(pk, "id");
    ab_pack_cstr(pk, id);
    ab_pack_cstr(pk, "type");
    ab_pack_cstr(pk, cli->cmd->type);
    ab_pack_cstr(pk, "args");
    ctl_pack_args(cli, pk);
    if (cred) {
        ab_pack_cstr(pk, cred_name);
        ab_pack_cstr(pk, cred);
    }
}
