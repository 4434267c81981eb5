/* engine.h — what a command handler sees: the caller, the arguments, the database inside
 * the batch's transaction, and the batch's audit and event queues. */
#ifndef AB_ENGINE_H
#define AB_ENGINE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/audit.h"
#include "catalog.h"
#include "core/db.h"
#include "wire/errors.h"
#include "core/events.h"
#include "auth/secret.h"

/* Role flags (roles.perm_<name>) as bits, in the order of ab_role_perms. */
enum {
    AB_RF_DELEGATE = 1u << 0,
    AB_RF_SYNC = 1u << 1,
    AB_RF_ADMIN = 1u << 2,
    AB_RF_AUDIT = 1u << 3,
    AB_RF_AUTH = 1u << 4,
    AB_RF_SITE_ADMIN = 1u << 5,
    AB_RF_REGEXP_ACCESS = 1u << 6,
    AB_RF_TAGGER = 1u << 7,
    AB_RF_TEMPLATE = 1u << 8,
    AB_RF_SHARING_GROUP = 1u << 9,
    AB_RF_TAG_EDITOR = 1u << 10,
};

/* How the caller proved who they are. */
typedef enum {
    AB_VIA_KEY,     /* an authkey in the envelope's auth */
    AB_VIA_SESSION, /* a session from auth.login */
    AB_VIA_LOCAL,   /* adminctl --local on the host: no key, audited as local */
    AB_VIA_NONE,    /* nobody (a public command such as auth.login) */
} ab_auth_via;

/* The authenticated caller. */
typedef struct {
    uint32_t user_id;
    char email[256];
    uint32_t org_id;
    char org_name[256];
    char org_uuid[37];
    uint32_t role_id;
    char role_name[101];
    bool site_admin;
    int perm_level; /* 0 read_only … 3 publish (ab_role_levels) */
    uint32_t flags; /* AB_RF_* */
    ab_auth_via via;
    uint32_t key_id;     /* auth_keys.id when via a key, else 0 */
    bool key_read_only;  /* the key may only run commands that change nothing */
    uint64_t session_id; /* sessions.id when via a session, else 0 */
    /* A session of a user who must change their password (users.change_pw) or set up an
     * OTP (Security.otp_required) runs only what does that (session.h). */
    bool must_change_pw, must_enrol_otp;
} ab_identity;

/* Process-wide facts handlers may report (whoami) or need (db.update). */
typedef struct {
    const char *name;   /* host:pid, or --name */
    const char *db_dsn; /* for work that needs its own connection (migrations) */
    int job_lease_ms;   /* the lease of a job handed straight to an idle worker */
    /* $ADMINBUS_HOME: the data folders diagnostics checks; may be NULL. */
    const char *home;
    /* Seals and opens secret settings; NULL: they cannot be set. */
    const ab_secret *secret;
    /* Diagnostics' look at the event bus: publish a probe and wait for it to come back
     * through the broker. Returns 0 (found says how long it took) or -1 (found says what
     * failed). NULL when the process has no bus. */
    int (*bus_probe)(const void *bus_ctx, char *found, size_t len);
    const void *bus_ctx;
} ab_engine_info;

typedef struct ab_ctx {
    const ab_engine_info *engine;
    ab_db *db;
    const ab_identity *who;
    const char *ip; /* "" when unknown */
    bool via_http;  /* the envelope's via = "http": the HTTP shim sent it (protocol.md) */
    const ab_command *cmd;
    const msgpack_object *args; /* validated against cmd; may be NULL (no args) */
    int64_t now_ms;
    ab_audit *audit;
    ab_events *events;
    /* A one-time secret in the result (user.add's generated password): its bytes are
     * result[secret_at .. secret_at + secret_len). The handler sets them; the apply loop
     * sends the reply as it is but stores it for its command id (and answers repeats of
     * the id) with those bytes masked as '*'. 0 / 0: none. */
    size_t secret_at, secret_len;
    /* A second one (otp.enrol: the base32 secret and the otpauth:// URI that holds it). */
    size_t secret2_at, secret2_len;
    /* Work a FAILED command must still commit (a failed login's audit row and brute-force
     * row): the handler sets it before failing; the apply loop calls it after rolling the
     * command's savepoint back, inside the batch's transaction, with the handler's error;
     * what it writes and audits commits with the batch. note carries what the handler knew
     * (auth.login: the user id and the reason). Returns 0, or -1 with *err when the
     * transaction broke. NULL: nothing to keep. */
    int (*after_failure)(struct ab_ctx *ctx, const ab_error *failed, ab_error *err);
    int64_t note[2];
} ab_ctx;

/* A handler runs one command inside the batch transaction (its writes inside a SAVEPOINT
 * the apply loop set). On success it packs exactly one value (the result) into pk and
 * returns 0; on failure it returns -1 with *err set and must not have packed anything. */
typedef int (*ab_handler)(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* The handler of cmd, a row of ab_catalog (its write shape is the row's shape). Every row
 * has one: the dispatch table is built from the rows (schemas/commands.def). */
ab_handler ab_handler_for(const ab_command *cmd);

/* --- argument access (values were validated against the catalog) ------------------ */

/* The string argument name; NULL when absent. *len receives its length. */
const char *ab_arg_str(const ab_ctx *ctx, const char *name, size_t *len);
/* The integer argument name, or def when absent. */
int64_t ab_arg_int(const ab_ctx *ctx, const char *name, int64_t def);
/* The boolean argument name, or def when absent. */
bool ab_arg_bool(const ab_ctx *ctx, const char *name, bool def);
/* True when the argument is present. */
bool ab_arg_has(const ab_ctx *ctx, const char *name);

/* True when s (len bytes, len > 0) is all decimal digits. */
bool ab_all_digits(const char *s, size_t len);
/* True when a reference argument (a user, an organisation, a role) names a row by id:
 * 1 to 10 digits (an UNSIGNED INT); anything else is a name, an e-mail or a uuid. */
bool ab_ref_is_id(const char *s, size_t len);

/* Bind a reference that is an id or a name (ab_ref_is_id says which) to p: an integer or a
 * string. Returns true for an id, so the caller picks its "… WHERE id = ?" query. */
bool ab_param_ref(ab_params *p, const char *ref, size_t len);

/* --- packing helpers ----------------------------------------------------------------- */
void ab_pack_kv_str(msgpack_packer *pk, const char *key, const char *val, size_t len);
void ab_pack_kv_cstr(msgpack_packer *pk, const char *key, const char *val); /* NULL → nil */
void ab_pack_kv_int(msgpack_packer *pk, const char *key, int64_t val);
void ab_pack_kv_bool(msgpack_packer *pk, const char *key, bool val);

/* Packs one row of a stored result; arg is the caller's. */
typedef void (*ab_row_packer)(msgpack_packer *pk, const ab_rows *row, const void *arg);

/* Pack a page of a list, {items, total, page, limit}: items are the rows of a stored
 * result (ab_db_query), each packed by pack_row. Closes rows. */
void ab_pack_page(msgpack_packer *pk, ab_rows *rows, ab_row_packer pack_row, const void *arg,
                  int64_t total, int64_t page, int64_t limit);

/* A page of a list, {items, total, page, limit}: one COUNT(*) and one SELECT of cols over
 * from and where (where: "" or " WHERE …", its placeholders bound by params, which may be
 * NULL), ordered by order; page and limit from the command's page and limit arguments
 * (defaults 1 and 100). Each row is packed by pack_row(arg). */
typedef struct {
    const char *cols;  /* the SELECT list */
    const char *from;  /* " FROM t [JOIN …]" */
    const char *where; /* "" or " WHERE …" */
    const char *order; /* the ORDER BY list */
    const ab_params *params;
    ab_row_packer pack_row;
    const void *arg;
} ab_list_query;
int ab_pack_list(ab_ctx *ctx, msgpack_packer *pk, const ab_list_query *q, ab_error *err);

/* Record a change made by the caller: queue its audit row (MISP's shape: title, model,
 * model id, action, the change text) and its audit.<model>.<action> event. */
int ab_ctx_audit(ab_ctx *ctx, const char *model, uint64_t model_id, const char *action,
                 const char *title, const char *change);

/* SQL expression turning a DATETIME(3) column into unix milliseconds. */
#define AB_SQL_MS(col) "CAST(ROUND(UNIX_TIMESTAMP(" col ") * 1000) AS SIGNED)"

#endif
