/* cli.h — the parts of adminctl: catalog-driven argument parsing (cli_parse.c) and help
 * (help.c), connection settings (client/env.c), the ZeroMQ request and the event monitor
 * (client/client.c), and reply rendering (render.c).
 *
 * No business rule lives here: every check made on the client side is there only to
 * give a quick, precise usage error; the engine validates every command again. */
#ifndef AB_CTL_CLI_H
#define AB_CTL_CLI_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "catalog.h"

/* Exit codes of the CLI (docs/protocol.md). */
enum {
    CTL_EXIT_OK = 0,          /* done */
    CTL_EXIT_REFUSED = 1,     /* the engine answered with an error reply */
    CTL_EXIT_USAGE = 2,       /* bad command line or missing connection settings */
    CTL_EXIT_UNREACHABLE = 3, /* no (usable) reply: engine unreachable or timed out */
    CTL_EXIT_CRITICAL = 4,    /* done, and the result reports something critical
                                 (diagnostics: a result with critical: true) */
};

#define CTL_TIMEOUT_DEFAULT_MS 10000
#define CTL_MAX_ARGS           32 /* most arguments one catalog command may have */
#define CTL_MAX_TOPICS         64 /* most --topic prefixes of `adminctl events` */
#define CTL_WORDS_MAX          128

typedef enum {
    CTL_RUN,     /* send cmd with values */
    CTL_HELP,    /* print help: for cmd, for the commands under prefix, or for all */
    CTL_VERSION, /* print the version */
    CTL_EVENTS,  /* the client-side event monitor */
} ctl_action;

/* One parsed argument value; which member is set follows the argument's type. */
#define CTL_MAP_MAX 32

typedef struct {
    bool given;
    const char *str;                /* STR, UUID, ENUM: points into argv */
    int64_t num;                    /* INT */
    bool flag;                      /* BOOL */
    const char *pairs[CTL_MAP_MAX]; /* MAP: "key=value" words; STRS: the strings (each flag's
                                       value, in order); point into argv */
    int npairs;
    char *packed; /* LIST: the value as msgpack (owned: ctl_release frees it) */
    size_t packed_len;
} ctl_value;

/* A parsed command line. Strings point into argv: keep argv alive. */
typedef struct {
    ctl_action action;
    bool json;                          /* --json */
    bool local;                         /* --local: break-glass, straight to the database */
    const char *url;                    /* --url; NULL when not given */
    const char *key;                    /* --key; NULL when not given */
    const char *id;                     /* --id; NULL when not given */
    int timeout_ms;                     /* --timeout, default CTL_TIMEOUT_DEFAULT_MS */
    bool timeout_given;                 /* --timeout was on the command line */
    const ab_command *cmd;              /* CTL_RUN; CTL_HELP about one command; else NULL */
    char prefix[CTL_WORDS_MAX];         /* CTL_HELP about a noun ("org"); "" otherwise */
    bool events;                        /* CTL_EVENTS, or CTL_HELP about `events` */
    ctl_value values[CTL_MAX_ARGS];     /* CTL_RUN: by index in cmd->args */
    const char *topics[CTL_MAX_TOPICS]; /* CTL_EVENTS: --topic prefixes */
    size_t ntopics;
    long count; /* CTL_EVENTS: stop after this many events; 0 = never */
} ctl_cli;

/* --- cli_parse.c ------------------------------------------------------------------ */

/* Parse argv (argc words, argv[0] the program) into *cli, driven by the catalog.
 * Returns 0, or -1 with a one-line usage error in err (the caller exits 2). */
int ctl_parse(int argc, char *const *argv, ctl_cli *cli, char *err, size_t errlen);

/* Load the value of text argument a from the file path ("-": standard input) into v
 * (owned: ctl_release frees it): at most a->max characters, valid UTF-8 without NUL.
 * Returns 0, or -1 with a usage error naming flag. */
int ctl_text_load(const ab_arg *a, const char *flag, const char *path, ctl_value *v, char *err,
                  size_t errlen);

/* Free what ctl_parse allocated (list values). */
void ctl_release(ctl_cli *cli);

/* --- jsonarg.c ---------------------------------------------------------------------- */

/* Load a list argument's value from source (a JSON array inline, @FILE, or - for standard
 * input), check its size and that its entries are objects, and keep it in v as msgpack.
 * Returns 0, or -1 with a message naming flag in err. */
int ctl_list_load(const ab_arg *a, const char *flag, const char *source, ctl_value *v, char *err,
                  size_t errlen);

/* Pack a JSON value as msgpack: objects as maps, arrays, strings, integers, reals,
 * booleans and null as themselves (adminctl's list arguments, the HTTP shim's bodies). */
struct json_t;
void ctl_pack_json(msgpack_packer *pk, const struct json_t *j);

/* Pack the arguments of a CTL_RUN command line as one msgpack map (in catalog order). */
void ctl_pack_args(const ctl_cli *cli, msgpack_packer *pk);

/* Pack the whole v1 command {v, id, type, args, auth} for cli (a CTL_RUN). */
void ctl_pack_command(const ctl_cli *cli, const char *id, const char *auth, msgpack_packer *pk);
/* The same with the credential under cred_name ("auth" or "session"); cred NULL: none (a
 * public command such as auth.login). */
void ctl_pack_command_as(const ctl_cli *cli, const char *id, const char *cred_name,
                         const char *cred, msgpack_packer *pk);

/* The CLI flag for an argument name: "--" then name with '_' written '-'. */
void ctl_flag_name(const char *name, char *out, size_t outlen);

/* --- login.c ---------------------------------------------------------------------- */

/* For `auth login`: remove --password-stdin from argv (not a catalog argument) and say
 * whether it was there. Other command lines are left alone (false). */
bool ctl_login_take_flags(int *argc, char **argv);

/* Fill the password argument of a parsed auth.login: from standard input's first line
 * (from_stdin) or from the terminal with echo off; buf (cap bytes) holds it. A password
 * given on the command line is refused. Returns 0, or -1 with a usage error in err. */
int ctl_login_password(ctl_cli *cli, bool from_stdin, char *buf, size_t cap, char *err,
                       size_t errlen);

/* True for an argument the CLI never takes as a word but asks for (auth.login's password):
 * help shows --password-stdin in its place. */
bool ctl_login_prompted(const ab_command *cmd, const ab_arg *arg);

/* --- help.c ----------------------------------------------------------------------- */

/* Everything: usage, every command (cli words + summary), client-side verbs, options. */
void ctl_help_all(FILE *f);

/* The commands whose CLI words start with prefix (a noun such as "org"). */
void ctl_help_prefix(FILE *f, const char *prefix);

/* One command: usage line, summary, help paragraph, each argument, permission. */
void ctl_help_command(FILE *f, const ab_command *cmd);

/* The client-side verb `events`. */
void ctl_help_events(FILE *f);

/* --- client/env.c ----------------------------------------------------------------- */

/* Connection settings. Strings are owned by the struct (free with ctl_conn_free). */
typedef struct {
    char *url;     /* command endpoint (ADMINBUS_URL) */
    char *authkey; /* ADMINBUS_AUTHKEY */
    char *events;  /* event endpoint (ADMINBUS_EVENTS) */
    char *envfile; /* the env file consulted, for messages; NULL when none was needed */
} ctl_conn;

/* Fill the members of *conn that are still NULL from the environment, then from
 * $ADMINBUS_HOME/env (ADMINBUS_HOME defaulting to ctl_default_home()). Members already
 * set (from flags) are kept. A missing or unreadable file is not an error: the caller
 * checks what it needs. */
void ctl_conn_fill(ctl_conn *conn);

/* Free the strings of *conn and zero it; safe twice. */
void ctl_conn_free(ctl_conn *conn);

/* Look key up in a sourceable KEY=value file (optionally `export KEY=...`, values
 * bare, '…' or "…"; '#' comments). The last assignment wins. Returns 1 with a malloc'd
 * *value (caller frees), 0 when the key is absent, -1 when the file cannot be read. */
int ctl_envfile_get(const char *path, const char *key, char **value);

/* Set key to value in the env file at path: every line that assigns key is replaced by
 * KEY=value (appended when none does); the other lines are kept as they are. Written to a
 * temporary file beside it (mode 0600, the old file's owner when we may), then renamed
 * over it: a reader sees the old file or the new one. value must be letters, digits and
 * ._-+/= (as an authkey or URL is). Returns 0, or -1 with errno. */
int ctl_envfile_set(const char *path, const char *key, const char *value);

/* The default ADMINBUS_HOME: <dir of /proc/self/exe>/../../var, normalised (the binary
 * lives in build/bin/). Caller frees. Falls back to "var" when the link is unreadable. */
char *ctl_default_home(void);

/* Write a fresh random UUID v4 (lower case, 36 characters + NUL) to out.
 * Returns 0, or -1 when no randomness could be had. */
int ctl_uuid_v4(char out[37]);

/* --- client/client.c -------------------------------------------------------------- */

/* A reply received. root points into buf and msg; release with ctl_reply_release. */
typedef struct {
    char *buf;
    size_t len;
    msgpack_unpacked msg;
    const msgpack_object *root; /* a map */
} ctl_reply;

/* Send body (a packed command with the given id) to url over a ZMQ_DEALER as
 * [empty][body] and wait up to timeout_ms for [empty][reply]. With no reply, close the
 * socket, open a fresh one and resend once with the same id. A reply whose id differs
 * from id is ignored (one with no id is accepted: the engine could not read ours).
 * Returns 0 with *reply filled, -1 with no reply (err says so), or -2 when url cannot
 * be used at all (err says why). */
int ctl_request(const char *url, const char *body, size_t len, const char *id, int timeout_ms,
                ctl_reply *reply, char *err, size_t errlen);

/* Free what ctl_request put in *reply; safe on a zeroed struct and twice. */
void ctl_reply_release(ctl_reply *reply);

/* The event monitor: subscribe at url to each of topics (all when n = 0) and print one
 * JSON line {"topic", "ts", "data"} per event to out. Stops after count events
 * (0 = never), on SIGINT/SIGTERM, or after timeout_ms (< 0 = never). Returns an exit
 * code: 0, 2 for an unusable url, 3 when count events did not come within timeout_ms;
 * err holds the message for a non-zero code. */
int ctl_events(const char *url, const char *const *topics, size_t n, long count, int timeout_ms,
               FILE *out, char *err, size_t errlen);

/* --- client/curve.c ---------------------------------------------------------------- */

/* Before zmq_connect: when ADMINBUS_CURVE_SERVERKEY is set (environment, then
 * $ADMINBUS_HOME/env), make sock a CURVE client with the key pair of ADMINBUS_CURVE_KEYFILE
 * or of ADMINBUS_CURVE_PUBLICKEY/SECRETKEY. Returns 0 (also when none is set), or -1 with
 * a message in err. */
int ctl_curve_apply(void *sock, char *err, size_t errlen);

/* `adminctl curve …` (argv[0] is "curve"): keygen, allow, revoke, server-key. Returns the
 * exit code. */
int ctl_curve_main(int argc, char **argv);

/* After no reply came: when CURVE is in use, say that a key the broker does not allow looks
 * just like that, and which public key to allow (never the secret). */
void ctl_curve_hint(FILE *f);

/* Help of `adminctl curve`. */
void ctl_help_curve(FILE *f);

/* --- local.c (linked into adminctl only: it needs the engine library) ---------------- */

/* adminctl --local: run cli's command (a CTL_RUN) as the local site administrator straight
 * against $ADMINBUS_HOME's database (engine/core/local.h), render the reply, publish its events
 * when a broker carries them. Returns the exit code: 0, 1 refused, 2 the home has no
 * configuration or secret, 3 the database is unreachable. */
int ctl_local(const ctl_cli *cli);

/* --- render.c --------------------------------------------------------------------- */

/* A msgpack value as JSON. Non-string map keys become their text; bin becomes base64;
 * invalid UTF-8 bytes become U+FFFD. Caller owns the result (json_decref). */
json_t *ctl_to_json(const msgpack_object *o);

/* Render a reply map for command type: ok → the result to out (JSON with --json or for a
 * command whose output is a document, such as setting.report; else a table or key: value
 * lines), error → "adminctl: code: message (field: f)" to errf (with --json:
 * {"ok":false,"error":{…}} to out). Returns the exit code: 0, 1, 3 for a reply that is
 * not one (no boolean ok), or 4 for a result whose top-level critical is true. */
int ctl_render_reply(const msgpack_object *reply, const char *type, bool json, FILE *out,
                     FILE *errf);

/* Unix milliseconds as ISO 8601 UTC with milliseconds: 2026-11-22T08:01:02.123Z. */
void ctl_format_time(int64_t ms, char *out, size_t outlen);

/* `adminctl job track ID`: follow job (cli holds a parsed job.view) until it ends, with a
 * progress bar on a terminal, a line per change elsewhere, JSON lines with --json. Exit
 * 0 when it is done, 1 when it failed or was cancelled (or an error reply), 3 when the
 * engine cannot be reached. */
int ctl_track(const ctl_cli *cli, const ctl_conn *conn, int64_t job);

#endif
