/* catalog.h — the declarative command catalog: the one source of truth for every
 * command's name, handler, write shape, arguments (types, limits, help), required
 * permission, how adminctl shows its result, and help text. Each command is one row of
 * commands.def; its arguments are a table of catalog.c. The engine validates against it and
 * dispatches by it, adminctl builds its parser, help and rendering from it, the HTTP shim
 * names its routes' commands by it, and docs/commands.md is generated from it
 * (build/bin/adminbus-catalog --markdown). */
#ifndef AB_CATALOG_H
#define AB_CATALOG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wire/errors.h"

typedef enum {
    AB_ARG_STR,  /* UTF-8 string without NUL, length bounds in characters (min..max) */
    AB_ARG_INT,  /* integer, value bounds min..max */
    AB_ARG_BOOL, /* true/false */
    AB_ARG_UUID, /* canonical UUID string */
    AB_ARG_ENUM, /* one of choices (strings) */
    AB_ARG_MAP,  /* a map of str keys to scalar values, at most max entries; the handler
                    checks the entries (e.g. job arguments against the job type) */
    AB_ARG_LIST, /* an array of min..max maps; the handler checks each (job.enqueue_many
                    checks each against job.enqueue's arguments) */
    /* A string (at most max characters), integer, boolean or nil; the handler casts it
     * (setting.set casts it to the setting's type; the CLI sends text). */
    AB_ARG_SCALAR,
    /* An array of min..max distinct strings, each one of choices (NULL-terminated; NULL:
     * any string of 1..255 characters). The CLI repeats the flag, which also answers to
     * its singular: --perm a --perm b for "perms". */
    AB_ARG_STRS,
} ab_arg_type;

/* Flags of an argument (ab_arg.flags), or-ed. */
enum {
    /* STR: a value of white space alone (spaces, tabs, line breaks, Unicode spaces) is
     * invalid, as MISP's valueNotEmpty refuses it: names, and references to records. */
    AB_ARG_NOT_BLANK = 1u << 0,
    /* STR: min and max count bytes of UTF-8, not characters, where what consumes the value
     * limits bytes (passwords: libxcrypt). Docs and error messages say "bytes". */
    AB_ARG_BYTES = 1u << 1,
};

typedef struct {
    const char *name; /* key in args; the CLI flag is --name with '_' shown as '-' */
    ab_arg_type type;
    bool required;
    bool positional;            /* the CLI takes it as the bare word after the verb */
    int64_t min, max;           /* STR: length in characters (bytes: AB_ARG_BYTES); INT: value */
    const char *const *choices; /* ENUM, STRS: NULL-terminated */
    const char *help;           /* one line */
    unsigned flags;             /* AB_ARG_NOT_BLANK, AB_ARG_BYTES, or-ed; 0 for none */
} ab_arg;

/* What a command needs, from least to most. The authorisation table is the catalog's
 * permission column (docs/commands.md shows it); ab_authorise applies it and handlers
 * that act on one user or organisation narrow it with ab_may_act_on_user,
 * ab_may_act_in_org and ab_may_grant_role (identity.h):
 * site admins act everywhere, org admins (perm_admin) only inside their organisation,
 * a "self" command also on the caller's own account. */
typedef enum {
    AB_PERM_PUBLIC,     /* no authentication (auth.login: it is how one gets a session) */
    AB_PERM_NONE,       /* any authenticated user (e.g. whoami) */
    AB_PERM_SELF,       /* any user on their own account; admins on others (see above) */
    AB_PERM_AUTH,       /* perm_auth: authkeys (own; admins also others') */
    AB_PERM_AUDIT,      /* perm_audit: the logs (own organisation's unless site admin) */
    AB_PERM_ORG_ADMIN,  /* perm_admin: inside the caller's own organisation */
    AB_PERM_SITE_ADMIN, /* site administrators only */
} ab_permission;

/* How a command's handler writes. A handler that runs at most ONE statement that changes
 * rows needs no SAVEPOINT: InnoDB rolls a failed statement back by itself, which saves a
 * round trip per command. Any other writing handler gets a SAVEPOINT around it. */
typedef enum {
    AB_READS,       /* changes nothing: not audited, its id not recorded */
    AB_WRITES_ONE,  /* at most one row-changing statement */
    AB_WRITES_MANY, /* more than one: the apply loop sets a SAVEPOINT around it */
} ab_write_shape;

/* How adminctl shows a command's result to people (--json always prints JSON). */
typedef enum {
    AB_SHOW_TEXT,  /* key: value lines; a list of items as a table of the first's scalars */
    AB_SHOW_TABLE, /* the same, the items' table with the command's own columns */
    AB_SHOW_JSON,  /* JSON always: a document to keep (MISP's "download report") */
} ab_show;

typedef struct {
    const char *type;    /* wire name "noun.verb" */
    const char *cli;     /* CLI words: "org add", or "whoami" for a shortcut */
    const char *summary; /* one line */
    const char *help;    /* a paragraph: behaviour, errors, examples */
    bool writes;         /* changes state (shape is not AB_READS): audited, id recorded */
    ab_permission permission;
    const ab_arg *args;
    size_t nargs;
    ab_write_shape shape;
    ab_show show;
    const char *const *columns; /* AB_SHOW_TABLE: the items' columns, NULL-terminated */
} ab_command;

/* Every command's id, AB_CMD_<ID>, in the order of commands.def: ab_catalog[AB_CMD_ORG_ADD]
 * is org.add's row. */
typedef enum {
#define AB_COMMAND(id, ...) AB_CMD_##id,
#include "commands.def"
#undef AB_COMMAND
    AB_COMMAND_COUNT
} ab_command_id;

/* The catalog: one row per command, indexed by id. */
extern const ab_command ab_catalog[AB_COMMAND_COUNT];
extern const size_t ab_catalog_len; /* AB_COMMAND_COUNT */

/* MISP's role permission levels by number (read_only = 0 … publish = 3) and the extra
 * flags a role may have (column perm_<name>); both NULL-terminated. */
extern const char *const ab_role_levels[];
extern const char *const ab_role_perms[];

/* The command whose wire type is type (len bytes); NULL when there is none. */
const ab_command *ab_catalog_find(const char *type, size_t len);

/* The argument called name in cmd; NULL when there is none. */
const ab_arg *ab_command_arg(const ab_command *cmd, const char *name, size_t len);

/* Name of an argument type for help and docs ("string", "integer", …). */
const char *ab_arg_type_name(ab_arg_type type);

/* Name of a permission for help and docs ("site_admin", "any"). */
const char *ab_permission_name(ab_permission perm);

/* Check args (a msgpack map, or NULL meaning empty) against cmd: every key known,
 * every value of its type and within its limits, every required argument present.
 * Returns 0, or -1 with *err = invalid and field = the argument's name. */
int ab_catalog_validate(const ab_command *cmd, const msgpack_object *args, ab_error *err);

/* Print docs/commands.md for the whole catalog to f. */
void ab_catalog_markdown(FILE *f);

#endif
