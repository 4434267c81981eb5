/* adminbus-catalog — prints the command catalog: --markdown gives docs/commands.md. */
#include <stdio.h>
#include <string.h>

#include "catalog.h"

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--markdown") == 0) {
        ab_catalog_markdown(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < ab_catalog_len; i++)
            printf("%s\t%s\t%s\n", ab_catalog[i].type, ab_catalog[i].cli, ab_catalog[i].summary);
        return 0;
    }
    fprintf(stderr, "usage: adminbus-catalog --markdown | --list\n"
                    "  --markdown  print docs/commands.md, generated from the catalog\n"
                    "  --list      print type, CLI words and summary of every command\n");
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
