/* settings.h — the server-settings catalog: one row per MISP-level administration setting
 * (name, tab, type, default, priority, description, limits, flags, apply hook). The values
 * live in MariaDB (table `settings`, migration 0005); the engine validates changes against
 * these rows, adminctl and docs/settings.md (build/bin/adminbus-catalog --settings) are
 * generated from them.
 *
 * This is not the bootstrap configuration (broker/wire/config.h: DSN, endpoints, paths a process
 * needs before it can reach the database). See docs/settings.md for the split. */
#ifndef AB_SETTINGS_H
#define AB_SETTINGS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wire/errors.h"

/* The tabs of MISP's "Server settings & Maintenance" page that hold settings. */
#define AB_SETTING_TABS(X)                                                                         \
    X(MISP, "misp") X(GNUPG, "gnupg") X(PROXY, "proxy") X(SECURITY, "security") X(MISC, "misc")

typedef enum {
#define AB_X_TAB(e, name) AB_TAB_##e,
    AB_SETTING_TABS(AB_X_TAB)
#undef AB_X_TAB
        AB_TAB__COUNT
} ab_setting_tab;

typedef enum {
    AB_SET_BOOL,    /* true / false */
    AB_SET_NUMERIC, /* an integer within min..max */
    AB_SET_STRING,  /* text of min..max characters */
    AB_SET_ENUM,    /* one of choices */
    AB_SET_REGEX,   /* a PCRE2 pattern, bare or /delimited/flags as MISP writes them */
    AB_SET_URL,     /* http(s)://host[:port][/path] */
    AB_SET_PATH,    /* an absolute path */
    AB_SET_EMAIL,   /* local@domain */
} ab_setting_type;

/* MISP's levels: 0 critical, 1 recommended, 2 optional, 3 deprecated. */
typedef enum {
    AB_PRIO_CRITICAL,
    AB_PRIO_RECOMMENDED,
    AB_PRIO_OPTIONAL,
    AB_PRIO_DEPRECATED,
} ab_setting_priority;
#define AB_PRIO__COUNT 4

/* Flags of a row. */
enum {
    AB_SETF_NULL_OK = 1 << 0,      /* unset (or empty) is not a problem */
    AB_SETF_SECRET = 1 << 1,       /* shown as *****, never logged, stored encrypted */
    AB_SETF_CLI_ONLY = 1 << 2,     /* the HTTP shim refuses to change it (MISP's cli_only) */
    AB_SETF_READONLY = 1 << 3,     /* not editable at all (MISP's editable = false) */
    AB_SETF_DIR = 1 << 4,          /* PATH: must name an existing directory */
    AB_SETF_PREFER_TRUE = 1 << 5,  /* BOOL: false is reported as a problem (testBoolTrue) */
    AB_SETF_PREFER_FALSE = 1 << 6, /* BOOL / ENUM: anything but the default is a problem */
};

/* What happens beside storing the value (the engine runs the hook, see
 * engine/commands/setting.c). */
typedef enum {
    AB_HOOK_NONE,
    AB_HOOK_BASEURL,   /* trailing slashes are removed before validation */
    AB_HOOK_HOST_ORG,  /* must be a local organisation; kept in admin_settings.host_org_id */
    AB_HOOK_LOG_LEVEL, /* running engines and workers log at debug while it is not 0 */
} ab_setting_hook;

/* One choice of an ENUM row. */
typedef struct {
    const char *value;
    const char *label;
} ab_setting_choice;

typedef struct {
    const char *name; /* MISP's name: "MISP.baseurl" */
    ab_setting_tab tab;
    ab_setting_type type;
    const char *def; /* the default as canonical text; NULL = unset */
    ab_setting_priority priority;
    unsigned flags;
    int64_t min, max;                 /* NUMERIC: value; STRING: length in characters */
    const ab_setting_choice *choices; /* ENUM: terminated by a {NULL, NULL} entry */
    int (*check)(const char *value, char *msg, size_t len); /* extra test of a value; 0/-1 */
    ab_setting_hook hook;
    const char *description; /* what it does, in our words */
} ab_setting;

extern const ab_setting ab_settings[];
extern const size_t ab_settings_len;

/* The mask shown for a secret value that is set. */
#define AB_SECRET_MASK "*****"

/* The row called name (len bytes); NULL when there is none. O(log n). */
const ab_setting *ab_setting_find(const char *name, size_t len);

/* Names for docs, replies and the CLI. */
const char *ab_setting_tab_name(ab_setting_tab tab);
const char *ab_setting_type_name(ab_setting_type type);
const char *ab_setting_priority_name(ab_setting_priority prio);

/* The tab called name ("misp", …); -1 when there is none. */
int ab_setting_tab_from_name(const char *name, size_t len);

/* Turn a value from the wire (or the CLI, which sends text) into the row's canonical text:
 * booleans "true"/"false", integers in decimal, text trimmed of surrounding white space
 * (and, for MISP.baseurl, of trailing slashes). Only the type is checked here.
 * Returns a malloc'd string (caller frees), or NULL with *err = invalid, field "value".
 * For a secret row the message never repeats the value. */
char *ab_setting_cast(const ab_setting *s, const msgpack_object *v, ab_error *err);

/* Check canonical text against the row: limits, choices, URL / e-mail / path shape, that a
 * regular expression compiles, the row's own check. "" is accepted only for NULL_OK rows.
 * Returns 0, or -1 with *err = invalid, field "value", and a message that says why (and,
 * except for secrets, what was given). */
int ab_setting_validate(const ab_setting *s, const char *text, ab_error *err);

/* The problem a row has with its effective value text (NULL or "" = unset), as MISP's
 * error column shows it: NULL when there is none, else a message in buf. */
const char *ab_setting_problem(const ab_setting *s, const char *text, char *buf, size_t len);

/* Compile a REGEX value (bare or /delimited/flags). Returns 0, or -1 with a message. */
int ab_setting_regex_check(const char *text, char *msg, size_t len);

/* Match subject (slen bytes, not as UTF-8: PHP's preg_match without /u, as MISP does)
 * against a REGEX value. Returns 1 on a match, 0 on none, or -1 with a message when the
 * pattern does not compile or matching fails (e.g. the match limit). */
int ab_setting_regex_match(const char *pattern, const char *subject, size_t slen, char *msg,
                           size_t len);

/* Print docs/settings.md for the whole catalog to f. */
void ab_settings_markdown(FILE *f);

#endif
