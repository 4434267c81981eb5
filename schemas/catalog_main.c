/* adminbus-catalog — prints the command catalog: --markdown gives docs/commands.md;
 * --settings gives docs/settings.md from the settings catalog. */
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "settings.h"

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
    fprintf(stderr, "usage: adminbus-catalog --markdown | --settings | --list\n"
                    "  --markdown  print docs/commands.md, generated from the catalog\n"
                    "  --settings  print docs/settings.md, generated from the settings catalog\n"
                    "  --list      print type, CLI words and summary of every command\n");
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
