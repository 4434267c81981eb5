/* adminbus-catalog — prints the command catalog: --markdown gives docs/commands.md;
 * --settings gives docs/settings.md from the settings catalog; --json gives every command
 * with its permission, whether it writes and its arguments, for tests and tools (the
 * authorisation test reads the commands to cover from it, the limits test the text
 * arguments to fill to their limits). */
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "settings.h"

/* s as a JSON string: quotes, backslashes and control characters escaped; other bytes
 * (UTF-8) as they are. */
static void s_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

static void s_json_arg(FILE *f, const ab_arg *a)
{
    fputs("{\"name\": ", f);
    s_json_str(f, a->name);
    fputs(", \"type\": ", f);
    s_json_str(f, ab_arg_type_name(a->type));
    fprintf(f,
            ", \"required\": %s, \"positional\": %s, \"not_blank\": %s, \"bytes\": %s, "
            "\"min\": %lld, \"max\": %lld",
            a->required ? "true" : "false", a->positional ? "true" : "false",
            a->flags & AB_ARG_NOT_BLANK ? "true" : "false",
            a->flags & AB_ARG_BYTES ? "true" : "false", (long long)a->min, (long long)a->max);
    fputs(", \"choices\": ", f);
    if (!a->choices) {
        fputs("null", f);
    } else {
        fputc('[', f);
        for (const char *const *c = a->choices; *c; c++) {
            if (c != a->choices)
                fputs(", ", f);
            s_json_str(f, *c);
        }
        fputc(']', f);
    }
    fputc('}', f);
}

static void s_json_catalog(FILE *f)
{
    fputs("[\n", f);
    for (size_t i = 0; i < ab_catalog_len; i++) {
        const ab_command *c = &ab_catalog[i];
        fputs("  {\"type\": ", f);
        s_json_str(f, c->type);
        fputs(", \"cli\": ", f);
        s_json_str(f, c->cli);
        fputs(", \"summary\": ", f);
        s_json_str(f, c->summary);
        fputs(", \"permission\": ", f);
        s_json_str(f, ab_permission_name(c->permission));
        fprintf(f, ", \"writes\": %s, \"args\": [", c->writes ? "true" : "false");
        for (size_t j = 0; j < c->nargs; j++) {
            if (j)
                fputs(", ", f);
            s_json_arg(f, &c->args[j]);
        }
        fprintf(f, "]}%s\n", i + 1 < ab_catalog_len ? "," : "");
    }
    fputs("]\n", f);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--markdown") == 0) {
        ab_catalog_markdown(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--settings") == 0) {
        ab_settings_markdown(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < ab_catalog_len; i++)
            printf("%s\t%s\t%s\n", ab_catalog[i].type, ab_catalog[i].cli, ab_catalog[i].summary);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--json") == 0) {
        s_json_catalog(stdout);
        return 0;
    }
    fprintf(stderr,
            "usage: adminbus-catalog --markdown | --settings | --list | --json\n"
            "  --markdown  print docs/commands.md, generated from the catalog\n"
            "  --settings  print docs/settings.md, generated from the settings catalog\n"
            "  --list      print type, CLI words and summary of every command\n"
            "  --json      print every command's type, CLI words, summary, permission, whether\n"
            "              it writes, and its arguments, as a JSON array\n");
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
