/* help.c — adminctl's help, derived only from the command catalog (see cli.h). The
 * drift test (tests/drift/check_drift.sh) checks it against the catalog and the docs. */
#include "cli/cli.h"

#include <ctype.h>
#include <string.h>

#define WRAP_WIDTH 80

static const char *const s_global_options[][2] = {
    {"--json", "print the result as JSON for scripts (error replies too, on stdout)"},
    {"--url URL", "command endpoint (default: $ADMINBUS_URL, else $ADMINBUS_HOME/env)"},
    {"--key AUTHKEY", "authkey to present (default: $ADMINBUS_AUTHKEY, else $ADMINBUS_HOME/env)"},
    {"--timeout SECONDS", "wait this long for a reply, then resend once (default 10)"},
    {"--id UUID", "command id to send (default: a fresh random one); reuse it to retry safely"},
    {"--local", "break-glass on the host: run the command straight against the database of "
                "$ADMINBUS_HOME (its adminbus.conf and secrets/server.key), no authkey, no "
                "engine needed; audited as local:<unix user>@<host>"},
    {"-h, --help", "this help; adminctl NOUN --help and adminctl NOUN VERB --help for more"},
    {"--version", "print the version"},
};

/* Print text wrapped to WRAP_WIDTH columns, every line indented by indent spaces. */
static void s_wrap(FILE *f, const char *text, int indent)
{
    int col = 0;
    while (*text) {
        size_t w = strcspn(text, " ");
        if (col > 0 && col + 1 + (int)w > WRAP_WIDTH) {
            fputc('\n', f);
            col = 0;
        }
        if (col == 0)
            col = fprintf(f, "%*s", indent, "");
        else
            col += fprintf(f, " ");
        col += fprintf(f, "%.*s", (int)w, text);
        text += w;
        while (*text == ' ')
            text++;
    }
    if (col > 0)
        fputc('\n', f);
}

static int s_cli_width(const char *prefix)
{
    size_t width = strlen("events");
    for (size_t i = 0; i < ab_catalog_len; i++)
        if (strncmp(ab_catalog[i].cli, prefix, strlen(prefix)) == 0 &&
            strlen(ab_catalog[i].cli) > width)
            width = strlen(ab_catalog[i].cli);
    return (int)width;
}

/* The commands whose cli starts with prefix + (prefix ? " " : ""); returns how many. */
static int s_list_commands(FILE *f, const char *prefix)
{
    size_t plen = strlen(prefix);
    int width = s_cli_width(prefix), n = 0;
    for (size_t i = 0; i < ab_catalog_len; i++) {
        const ab_command *c = &ab_catalog[i];
        if (plen && (strncmp(c->cli, prefix, plen) != 0 || c->cli[plen] != ' '))
            continue;
        fprintf(f, "  %-*s  %s\n", width, c->cli, c->summary);
        n++;
    }
    return n;
}

static void s_list_options(FILE *f)
{
    fprintf(f, "Global options (before or after the command words):\n");
    for (size_t i = 0; i < sizeof s_global_options / sizeof s_global_options[0]; i++)
        fprintf(f, "  %-18s  %s\n", s_global_options[i][0], s_global_options[i][1]);
}

void ctl_help_all(FILE *f)
{
    fprintf(f, "usage: adminctl [options] COMMAND [ARGUMENT] [--name value]...\n\n"
               "Sends one command to the adminbus engine and prints its reply.\n\n"
               "Commands:\n");
    s_list_commands(f, "");
    fprintf(f,
            "\nClient-side verbs (not commands of the engine):\n"
            "  %-*s  %s\n"
            "  %-*s  %s\n"
            "  %-*s  %s\n\n",
            s_cli_width(""), "events", "Print the event stream as JSON lines (--topic, --count)",
            s_cli_width(""), "job track",
            "Follow a job until it ends: a live progress bar (JSON lines with --json)",
            s_cli_width(""), "curve", "ZeroMQ CURVE keys: keygen, allow, revoke, server-key");
    s_list_options(f);
    fprintf(f, "\nPlural nouns are accepted: 'adminctl orgs list' is 'adminctl org list'.\n"
               "Connection: ADMINBUS_URL and ADMINBUS_AUTHKEY from the environment, else from\n"
               "$ADMINBUS_HOME/env (default: the checkout's var/), as ops/run writes them.\n"
               "ADMINBUS_URL is tcp://host:port or ipc://path for the ZeroMQ broker, or\n"
               "kafka://host:port[,host:port]/[?commands=T&replies=T&events=T&PROPERTY=V]\n"
               "for a Kafka cluster (librdkafka properties such as security.protocol).\n"
               "With CURVE (docs/architecture.md): ADMINBUS_CURVE_SERVERKEY and\n"
               "ADMINBUS_CURVE_KEYFILE (or ADMINBUS_CURVE_PUBLICKEY/SECRETKEY), never argv.\n"
               "Exit status: 0 done, 1 refused (an error reply), 2 usage error,\n"
               "3 engine unreachable or timed out, 4 done but something critical was reported\n"
               "(diagnostics).\n");
}

void ctl_help_prefix(FILE *f, const char *prefix)
{
    fprintf(f,
            "usage: adminctl [options] %s VERB [ARGUMENT] [--name value]...\n\n"
            "Commands:\n",
            prefix);
    s_list_commands(f, prefix);
    fprintf(f, "\nSee adminctl %s VERB --help for one command, adminctl --help for all.\n", prefix);
}

/* The placeholder of an argument's value: NAME, or the choices of an enum. */
static void s_metavar(const ab_arg *a, char *out, size_t outlen)
{
    size_t n = 0;
    out[0] = '\0';
    if (a->type == AB_ARG_ENUM) {
        for (const char *const *c = a->choices; c && *c && n < outlen; c++)
            n += (size_t)snprintf(out + n, outlen - n, "%s%s", n ? "|" : "", *c);
        return;
    }
    if (a->type == AB_ARG_MAP) { /* repeatable: --args k=v --args k2=v2 (or --arg) */
        snprintf(out, outlen, "KEY=VALUE");
        return;
    }
    if (a->type == AB_ARG_STRS) { /* repeatable: --perm NAME --perm NAME (or --perms) */
        snprintf(out, outlen, "NAME");
        return;
    }
    for (const char *p = a->name; *p && n + 1 < outlen; p++)
        out[n++] = (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

/* The flag of a list argument as it is repeated on the command line: its singular
 * ("--perm" for perms), or the flag itself when the name does not end in 's'. */
static void s_singular_flag(const ab_arg *a, char *out, size_t outlen)
{
    ctl_flag_name(a->name, out, outlen);
    size_t len = strlen(out);
    if (len > 3 && out[len - 1] == 's')
        out[len - 1] = '\0';
}

/* Print token on the current line (at column *col) or, when it would pass WRAP_WIDTH,
 * on a new line indented by indent. */
static void s_token(FILE *f, int *col, int indent, const char *token)
{
    int len = (int)strlen(token);
    if (*col > indent && *col + 1 + len > WRAP_WIDTH)
        *col = fprintf(f, "\n%*s", indent, "") - 1;
    *col += fprintf(f, " %s", token);
}

static void s_usage_line(FILE *f, const ab_command *c)
{
    int col = fprintf(f, "usage: adminctl %s", c->cli);
    int indent = col;
    for (size_t i = 0; i < c->nargs; i++) {
        const ab_arg *a = &c->args[i];
        char flag[CTL_WORDS_MAX + 2], meta[256], token[600];
        ctl_flag_name(a->name, flag, sizeof flag);
        s_metavar(a, meta, sizeof meta);
        if (ctl_login_prompted(c, a))
            snprintf(token, sizeof token, "[%s-stdin]", flag);
        else if (a->positional)
            snprintf(token, sizeof token, a->required ? "%s" : "[%s]", meta);
        else if (a->type == AB_ARG_BOOL)
            snprintf(token, sizeof token, "[%s|--no-%s]", flag, flag + 2);
        else if (a->type == AB_ARG_STRS) {
            char one[CTL_WORDS_MAX + 2];
            s_singular_flag(a, one, sizeof one);
            snprintf(token, sizeof token, "[%s %s]...", one, meta);
        } else
            snprintf(token, sizeof token, a->required ? "%s %s" : "[%s %s]", flag, meta);
        s_token(f, &col, indent, token);
    }
    fprintf(f, "\n");
}

static void s_limits(const ab_arg *a, char *out, size_t outlen)
{
    out[0] = '\0';
    const char *unit = a->flags & AB_ARG_BYTES ? "bytes" : "characters";
    if (a->type == AB_ARG_STR && a->min > 0)
        snprintf(out, outlen, ", %lld..%lld %s%s", (long long)a->min, (long long)a->max, unit,
                 a->flags & AB_ARG_NOT_BLANK ? ", not blank" : "");
    else if (a->type == AB_ARG_STR)
        snprintf(out, outlen, ", at most %lld %s", (long long)a->max, unit);
    else if (a->type == AB_ARG_INT && a->max == INT64_MAX)
        snprintf(out, outlen, ", at least %lld", (long long)a->min);
    else if (a->type == AB_ARG_INT)
        snprintf(out, outlen, ", %lld..%lld", (long long)a->min, (long long)a->max);
    else if (a->type == AB_ARG_STRS)
        snprintf(out, outlen, ", repeatable, at most %lld", (long long)a->max);
}

/* An argument the CLI asks for instead of taking it as a word (auth.login's password). */
static void s_prompted_argument(FILE *f, const ab_arg *a)
{
    char flag[CTL_WORDS_MAX + 2], text[3 * (CTL_WORDS_MAX + 2) + 256];
    ctl_flag_name(a->name, flag, sizeof flag);
    fprintf(f, "  %s-stdin\n", flag);
    snprintf(text, sizeof text,
             "Read the %s from standard input's first line; without %s-stdin adminctl asks on "
             "the terminal with echo off. %s VALUE is refused: a command-line word can be read "
             "by every user of the host.",
             a->name, flag, flag);
    s_wrap(f, text, 6);
}

static void s_argument(FILE *f, const ab_arg *a)
{
    char flag[CTL_WORDS_MAX + 2], meta[256], limits[128];
    ctl_flag_name(a->name, flag, sizeof flag);
    s_metavar(a, meta, sizeof meta);
    s_limits(a, limits, sizeof limits);
    if (a->type == AB_ARG_BOOL)
        fprintf(f, "  %s, --no-%s", flag, flag + 2);
    else if (a->type == AB_ARG_STRS) {
        char one[CTL_WORDS_MAX + 2];
        s_singular_flag(a, one, sizeof one);
        if (strcmp(one, flag) != 0)
            fprintf(f, "  %s %s, %s %s", one, meta, flag, meta);
        else
            fprintf(f, "  %s %s", flag, meta);
    } else if (a->positional)
        fprintf(f, "  %s, %s %s", meta, flag, meta);
    else
        fprintf(f, "  %s %s", flag, meta);
    fprintf(f, "  (%s, %s%s)\n", ab_arg_type_name(a->type), a->required ? "required" : "optional",
            limits);
    s_wrap(f, a->help, 6);
    if (a->type == AB_ARG_STRS && a->choices) {
        char list[512] = "NAME is one of:";
        for (const char *const *c = a->choices; *c; c++) {
            strncat(list, " ", sizeof list - strlen(list) - 1);
            strncat(list, *c, sizeof list - strlen(list) - 1);
        }
        s_wrap(f, list, 6);
    }
}

void ctl_help_command(FILE *f, const ab_command *c)
{
    s_usage_line(f, c);
    fprintf(f, "\n%s.\n\n", c->summary);
    s_wrap(f, c->help, 0);
    if (c->nargs) {
        fprintf(f, "\nArguments:\n");
        for (size_t i = 0; i < c->nargs; i++) {
            if (ctl_login_prompted(c, &c->args[i]))
                s_prompted_argument(f, &c->args[i]);
            else
                s_argument(f, &c->args[i]);
        }
    } else {
        fprintf(f, "\nNo arguments.\n");
    }
    fprintf(f, "\nPermission: %s. %s\nWire type: %s. Global options: see adminctl --help.\n",
            ab_permission_name(c->permission),
            c->writes ? "Changes state: audited; resending the same --id is safe." : "Read only.",
            c->type);
}

void ctl_help_events(FILE *f)
{
    fprintf(f,
            "usage: adminctl events [--topic PREFIX]... [--count N] [--timeout SECONDS]\n\n"
            "Print the event stream, one JSON line {\"topic\", \"ts\", \"data\"} per event.\n"
            "A client-side verb, not a command of the engine.\n\n"
            "  --topic PREFIX     only topics that start with PREFIX (repeatable; default all),\n"
            "                     e.g. job.42. (with the dot) for exactly job 42\n"
            "  --count N          stop after N events\n"
            "  --timeout SECONDS  stop after SECONDS (exit 3 when --count events did not come)\n"
            "  --url URL          event endpoint (default: $ADMINBUS_EVENTS, else\n"
            "                     $ADMINBUS_HOME/env)\n\n"
            "Stops on Ctrl-C otherwise. Events are at-most-once notifications: re-read state\n"
            "with a command when one matters.\n");
}
