/* catalog.h — the declarative command catalog: the one source of truth for every
 * command's name, arguments (types, limits, help), required permission and help text.
 * The engine validates against it, adminctl builds its parser and help from it, and
 * docs/commands.md is generated from it (build/bin/adminbus-catalog --markdown). */
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

typedef struct {
    const char *type;    /* wire name "noun.verb" */
    const char *cli;     /* CLI words: "org add", or "whoami" for a shortcut */
    const char *summary; /* one line */
    const char *help;    /* a paragraph: behaviour, errors, examples */
    bool writes;         /* changes state: audited, its id recorded for idempotency */
    ab_permission permission;
    const ab_arg *args;
    size_t nargs;
} ab_command;

extern const ab_command ab_catalog[];
extern const size_t ab_catalog_len;

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
