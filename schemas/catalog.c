/* catalog.c — the command catalog (see catalog.h): the argument tables and the columns of
 * the commands' rows in commands.def, validation, and the generator of docs/commands.md.
 * Adding a command: docs/architecture.md, "Adding a command". */
#include "catalog.h"

#include <string.h>

#include "wire/envelope.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define TEXT_MAX 65535

static const char *const s_org_scopes[] = {"local", "external", "remote", "all", NULL};

/* The fields an organisation has, shared by add and edit. */
#define ORG_FIELDS                                                                                 \
    {"description", AB_ARG_STR, false, false, 0, TEXT_MAX, NULL, "A brief description", 0},        \
        {"nationality", AB_ARG_STR, false, false, 0, 255, NULL, "Country of the organisation", 0}, \
        {"sector", AB_ARG_STR, false, false,                                                       \
         0,        255,        NULL,  "Sector (financial, transport, telecom, …)",                 \
         0},                                                                                       \
        {"type", AB_ARG_STR, false, false, 0, 255, NULL, "Type of organisation (CSIRT, …)", 0},    \
        {"contacts", AB_ARG_STR, false, false, 0, TEXT_MAX, NULL, "Contact details", 0},           \
    {                                                                                              \
        "local", AB_ARG_BOOL, false, false, 0, 0, NULL,                                            \
            "Local: its users may use this instance (default true on add)", 0                      \
    }

#define ORG_REF(help)                                                                              \
    {                                                                                              \
        "org", AB_ARG_STR, true, true, 1, 255, NULL, help " (id, uuid or name)", AB_ARG_NOT_BLANK  \
    }

static const ab_arg s_org_add[] = {
    {"name", AB_ARG_STR, true, false, 1, 255, NULL, "Organisation identifier (unique)",
     AB_ARG_NOT_BLANK},
    {"uuid", AB_ARG_UUID, false, false, 0, 0, NULL, "UUID to keep (generated when absent)", 0},
    ORG_FIELDS,
};

static const ab_arg s_org_edit[] = {
    ORG_REF("The organisation to change"),
    {"name", AB_ARG_STR, false, false, 1, 255, NULL, "New name (unique)", AB_ARG_NOT_BLANK},
    ORG_FIELDS,
};

static const ab_arg s_org_one[] = {ORG_REF("The organisation")};

static const ab_arg s_org_merge[] = {
    ORG_REF("The organisation merged away (deleted)"),
    {"into", AB_ARG_STR, true, false, 1, 255, NULL,
     "The organisation that receives its users and rows (id, uuid or name)", AB_ARG_NOT_BLANK},
};

#define PAGING_ARGS                                                                                \
    {"limit", AB_ARG_INT, false, false, 1, 1000, NULL, "Rows per page (default 100)", 0},          \
    {                                                                                              \
        "page", AB_ARG_INT, false, false, 1, 1000000, NULL, "Page number, from 1", 0               \
    }

static const ab_arg s_org_list[] = {
    {"scope", AB_ARG_ENUM, false, false, 0, 0, s_org_scopes,
     "local (default), external (= remote) or all", 0},
    PAGING_ARGS,
};

static const ab_arg s_role_list[] = {PAGING_ARGS};

#define USER_REF(help)                                                                             \
    {                                                                                              \
        "user", AB_ARG_STR, true, true, 1, 255, NULL, help " (id or e-mail)", AB_ARG_NOT_BLANK     \
    }
#define USER_NIDS_SID                                                                              \
    {                                                                                              \
        "nids_sid", AB_ARG_INT, false, false, 0, 4294967295LL, NULL,                               \
            "NIDS SID offset (default on add: random in 1000000..9999900, as MISP)", 0             \
    }
#define USER_NO_PASSWORD_CHANGE                                                                    \
    {                                                                                              \
        "no_password_change", AB_ARG_BOOL, false, false, 0, 0, NULL,                               \
            "Do not make the user change the password at the next login", 0                        \
    }

#define USER_GPGKEY                                                                                \
    {                                                                                              \
        "gpgkey", AB_ARG_STR, false, false, 0, TEXT_MAX, NULL,                                     \
            "ASCII-armoured GnuPG public key that can encrypt (adminctl: --gpgkey-file FILE "      \
            "reads "                                                                               \
            "it from a file; empty: none)",                                                        \
            0                                                                                      \
    }

static const ab_arg s_user_add[] = {
    {"email", AB_ARG_STR, true, false, 3, 255, NULL, "E-mail address and login name (unique)",
     AB_ARG_NOT_BLANK},
    {"org", AB_ARG_STR, true, false, 1, 255, NULL, "Organisation (id or name)", AB_ARG_NOT_BLANK},
    {"role", AB_ARG_STR, false, false, 1, 100, NULL, "Role (id or name; default: the default role)",
     AB_ARG_NOT_BLANK},
    {"password", AB_ARG_STR, false, false, 1, 256, NULL,
     "Temporary password (checked against the policy; generated and shown once when absent)",
     AB_ARG_BYTES},
    USER_NIDS_SID,
    {"autoalert", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Receive alerts when events are published (default true)", 0},
    {"contactalert", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Receive alerts from \"contact reporter\" requests (default false)", 0},
    {"disabled", AB_ARG_BOOL, false, false, 0, 0, NULL, "Create the account disabled", 0},
    USER_NO_PASSWORD_CHANGE,
    USER_GPGKEY,
};

static const ab_arg s_user_edit[] = {
    USER_REF("The user to change"),
    {"email", AB_ARG_STR, false, false, 3, 255, NULL, "New e-mail address (unique)",
     AB_ARG_NOT_BLANK},
    {"org", AB_ARG_STR, false, false, 1, 255, NULL, "New organisation (id or name)",
     AB_ARG_NOT_BLANK},
    {"role", AB_ARG_STR, false, false, 1, 100, NULL, "New role (id or name)", AB_ARG_NOT_BLANK},
    {"autoalert", AB_ARG_BOOL, false, false, 0, 0, NULL, "Receive publish alerts", 0},
    {"contactalert", AB_ARG_BOOL, false, false, 0, 0, NULL, "Receive contact-reporter alerts", 0},
    USER_NIDS_SID,
    {"termsaccepted", AB_ARG_BOOL, false, false, 0, 0, NULL, "The terms of use are accepted", 0},
    USER_GPGKEY,
};

static const ab_arg s_user_one[] = {USER_REF("The user")};

static const ab_arg s_user_list[] = {
    {"org", AB_ARG_STR, false, false, 1, 255, NULL, "Only this organisation's users (id or name)",
     AB_ARG_NOT_BLANK},
    {"role", AB_ARG_STR, false, false, 1, 100, NULL, "Only users with this role (id or name)",
     AB_ARG_NOT_BLANK},
    {"disabled", AB_ARG_BOOL, false, false, 0, 0, NULL, "Only disabled (true) or enabled (false)",
     0},
    PAGING_ARGS,
};

static const ab_arg s_user_change_pw[] = {
    USER_REF("The user"),
    {"password", AB_ARG_STR, false, false, 1, 256, NULL,
     "New password (checked against the policy; generated and shown once when absent)",
     AB_ARG_BYTES},
    USER_NO_PASSWORD_CHANGE,
};

/* Authkeys (engine/commands/authkey.c). */
#define AUTHKEY_ID(help)                                                                           \
    {                                                                                              \
        "authkey_id", AB_ARG_INT, true, true, 1, 4294967295LL, NULL, help " (its id)", 0           \
    }
#define AUTHKEY_EXPIRATION                                                                         \
    {                                                                                              \
        "expiration", AB_ARG_STR, false, false, 1, 32, NULL,                                       \
            "When it stops working: a number of days from now (1-36500), a date YYYY-MM-DD "       \
            "(00:00 UTC that day), a time YYYY-MM-DDTHH:MM[:SS]Z (UTC), or never",                 \
            0                                                                                      \
    }
#define AUTHKEY_ALLOWED_IPS                                                                        \
    {                                                                                              \
        "allowed_ips", AB_ARG_STRS, false, false, 1, 32, NULL,                                     \
            "Only callers from these addresses or ranges (IPv4/IPv6, CIDR: 10.0.0.0/8, "           \
            "2001:db8::/32, 192.0.2.7); repeat --allowed-ip",                                      \
            0                                                                                      \
    }
#define AUTHKEY_COMMENT                                                                            \
    {                                                                                              \
        "comment", AB_ARG_STR, false, false, 0, 1000, NULL, "What the key is for", 0               \
    }

static const ab_arg s_user_authkey[] = {
    USER_REF("The user"),
    {"reset", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Revoke every key of the user and return one new key (shown once)", 0},
};

static const ab_arg s_authkey_add[] = {
    {"user", AB_ARG_STR, true, false, 1, 255, NULL, "The key's owner (id or e-mail)",
     AB_ARG_NOT_BLANK},
    AUTHKEY_EXPIRATION,
    {"read_only", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "The key may only run commands that change nothing", 0},
    AUTHKEY_ALLOWED_IPS,
    AUTHKEY_COMMENT,
};

static const ab_arg s_authkey_edit[] = {
    AUTHKEY_ID("The key to change"),
    AUTHKEY_EXPIRATION,
    {"read_only", AB_ARG_BOOL, false, false, 0, 0, NULL, "Read-only (true) or read-write (false)",
     0},
    AUTHKEY_ALLOWED_IPS,
    {"any_ip", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Remove the address limit (allowed_ips): the key works from anywhere", 0},
    AUTHKEY_COMMENT,
};

static const ab_arg s_authkey_one[] = {AUTHKEY_ID("The key")};

static const ab_arg s_authkey_list[] = {
    {"user", AB_ARG_STR, false, false, 1, 255, NULL,
     "Only this user's keys (id or e-mail; default: every key you may manage)", AB_ARG_NOT_BLANK},
    PAGING_ARGS,
};

static const ab_arg s_auth_login[] = {
    {"email", AB_ARG_STR, true, true, 3, 255, NULL, "E-mail address (the login name)",
     AB_ARG_NOT_BLANK},
    {"password", AB_ARG_STR, false, false, 1, 256, NULL,
     "The password; required (adminctl reads it from the terminal, or from standard input "
     "with --password-stdin, never from the command line)",
     AB_ARG_BYTES},
    {"otp", AB_ARG_STR, false, false, 1, 10, NULL,
     "One-time code (TOTP or HOTP) when the account has one", 0},
};

static const ab_arg s_auth_logout[] = {
    {"all", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "End every session of the caller, not only the one this command came with", 0},
};

static const ab_arg s_bruteforce_clear[] = {
    {"email", AB_ARG_STR, false, true, 1, 255, NULL,
     "Only the entries of this e-mail (default: all entries)", AB_ARG_NOT_BLANK},
};

static const ab_arg s_user_by_ip[] = {
    {"ip", AB_ARG_STR, true, true, 2, 45, NULL, "IPv4 or IPv6 address", AB_ARG_NOT_BLANK},
};

static const ab_arg s_otp_enrol[] = {
    USER_REF("The user"),
    {"hotp", AB_ARG_BOOL, false, false, 0, 0, NULL, "Counter-based HOTP instead of time-based TOTP",
     0},
};

static const ab_arg s_log_search[] = {
    {"email", AB_ARG_STR, false, false, 1, 255, NULL, "Sub-string of the acting user's e-mail", 0},
    {"org", AB_ARG_STR, false, false, 1, 255, NULL, "Sub-string of the acting user's org", 0},
    {"action", AB_ARG_STR, false, false, 1, 64, NULL, "Action, exactly (add, edit, auth_fail, …)",
     0},
    {"model", AB_ARG_STR, false, false, 1, 64, NULL, "Model, exactly (Organisation, User, …)", 0},
    {"model_id", AB_ARG_INT, false, false, 0, INT64_MAX, NULL, "Id of the changed record", 0},
    {"title", AB_ARG_STR, false, false, 1, 255, NULL, "Sub-string of the title", 0},
    {"change", AB_ARG_STR, false, false, 1, 255, NULL, "Sub-string of the change", 0},
    PAGING_ARGS,
};

/* MISP's four permission levels, by number (0..3), and the extra flags of a role: the
 * column of flag NAME is perm_NAME (engine/commands/role.c). */
const char *const ab_role_levels[] = {"read_only", "manage_own", "manage_org", "publish", NULL};
const char *const ab_role_perms[] = {"delegate", "sync",          "admin",         "audit",
                                     "auth",     "site_admin",    "regexp_access", "tagger",
                                     "template", "sharing_group", "tag_editor",    NULL};

#define ROLE_REF(help)                                                                             \
    {                                                                                              \
        "role", AB_ARG_STR, true, true, 1, 100, NULL, help " (id or name)", AB_ARG_NOT_BLANK       \
    }
#define ROLE_PERMISSION                                                                            \
    {                                                                                              \
        "permission", AB_ARG_ENUM, false, false, 0, 0, ab_role_levels,                             \
            "What its users may do with events: read_only; manage_own (add, modify their own); "   \
            "manage_org (also modify their organisation's); publish (also publish them)",          \
            0                                                                                      \
    }

static const ab_arg s_role_add[] = {
    {"name", AB_ARG_STR, true, false, 1, 100, NULL, "Role name (unique; not only digits)",
     AB_ARG_NOT_BLANK},
    ROLE_PERMISSION,
    {"perms", AB_ARG_STRS, false, false, 0, 11, ab_role_perms,
     "Extra permissions to grant (CLI: --perm NAME, repeatable); site_admin needs admin, "
     "sync needs auth",
     0},
};

static const ab_arg s_role_edit[] = {
    ROLE_REF("The role to change"),
    {"name", AB_ARG_STR, false, false, 1, 100, NULL, "New name (unique; not only digits)",
     AB_ARG_NOT_BLANK},
    ROLE_PERMISSION,
    {"perms", AB_ARG_STRS, false, false, 1, 11, ab_role_perms,
     "Extra permissions to grant (CLI: --perm NAME, repeatable); the others stay as they are", 0},
    {"no_perms", AB_ARG_STRS, false, false, 1, 11, ab_role_perms,
     "Extra permissions to take away (CLI: --no-perm NAME, repeatable)", 0},
};

static const ab_arg s_role_one[] = {ROLE_REF("The role")};

static const char *const s_queue_names[] = {"default", "prio", "cache", "email", "update", NULL};
static const char *const s_job_states[] = {"queued", "running",   "retrying", "done",
                                           "failed", "cancelled", NULL};
/* MISP's job status names, in its order: 1 waiting, 2 running, 3 failed, 4 completed. */
static const char *const s_misp_statuses[] = {"waiting", "running", "failed", "completed", NULL};

static const ab_arg s_job_enqueue[] = {
    {"type", AB_ARG_STR, true, true, 1, 32, NULL, "Job type (noop, sleep, …)", AB_ARG_NOT_BLANK},
    {"args", AB_ARG_MAP, false, false, 0, 32, NULL,
     "The job's arguments, checked against its type (CLI: --arg key=value, repeatable)", 0},
    {"priority", AB_ARG_INT, false, false, -100, 100, NULL, "Higher runs first (default 0)", 0},
    /* MariaDB 10.11's FROM_UNIXTIME ends at 2038-01-19 03:14:07 UTC: later is refused here,
     * precisely, instead of failing in the database. */
    {"run_at", AB_ARG_INT, false, false, 0, 2147483647000LL, NULL,
     "Not before this time, unix milliseconds UTC (default now; at most 2147483647000, "
     "2038-01-19)",
     0},
    {"max_attempts", AB_ARG_INT, false, false, 1, 100, NULL,
     "Attempts before the job fails (default: the type's policy)", 0},
    {"unique_key", AB_ARG_STR, false, false, 1, 191, NULL,
     "At most one job per key (compared byte for byte): a second enqueue returns the first job", 0},
};

static const ab_arg s_job_enqueue_many[] = {
    {"jobs", AB_ARG_LIST, true, false, 1, 1000, NULL,
     "The jobs, each a map of job enqueue's arguments (type, args, priority, …); CLI: a JSON "
     "array, @FILE holding one, or - to read it from standard input",
     0},
};

static const ab_arg s_job_list[] = {
    {"queue", AB_ARG_ENUM, false, false, 0, 0, s_queue_names, "Only this queue", 0},
    {"state", AB_ARG_ENUM, false, false, 0, 0, s_job_states, "Only jobs in this state", 0},
    {"status", AB_ARG_ENUM, false, false, 0, 0, s_misp_statuses,
     "Only jobs with this MISP status (waiting = queued or retrying; failed = failed or "
     "cancelled)",
     0},
    {"org", AB_ARG_STR, false, false, 1, 255, NULL,
     "Only jobs of this organisation (its name, or its id)", AB_ARG_NOT_BLANK},
    {"type", AB_ARG_STR, false, false, 1, 32, NULL, "Only this job type", AB_ARG_NOT_BLANK},
    PAGING_ARGS,
};

static const ab_arg s_job_one[] = {
    {"job", AB_ARG_INT, true, true, 1, INT64_MAX, NULL, "The job's id", 0},
};

static const ab_arg s_job_purge[] = {
    {"completed", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Completed jobs (the default, as MISP's purge of completed jobs)", 0},
    {"all", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Also failed and cancelled jobs (default: completed ones only)", 0},
};

static const ab_arg s_worker_list[] = {
    {"queue", AB_ARG_ENUM, false, false, 0, 0, s_queue_names, "Only workers of this queue", 0},
};

static const ab_arg s_queue_one[] = {
    {"queue", AB_ARG_ENUM, true, true, 0, 0, s_queue_names, "The queue", 0},
};

static const ab_arg s_worker_one[] = {
    {"worker", AB_ARG_STR, true, true, 1, 96, NULL, "The worker's id (host:pid:queue)",
     AB_ARG_NOT_BLANK},
};

static const ab_arg s_worker_start[] = {
    {"queue", AB_ARG_ENUM, true, true, 0, 0, s_queue_names, "The queue the new worker serves", 0},
    {"host", AB_ARG_STR, false, false, 1, 64, NULL,
     "The host whose supervisor starts it (default: the host with the fewest workers)",
     AB_ARG_NOT_BLANK},
};

static const ab_arg s_worker_restart[] = {
    {"worker", AB_ARG_STR, false, true, 1, 96, NULL, "The worker's id (host:pid:queue)",
     AB_ARG_NOT_BLANK},
    {"all", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Every live worker instead of one (MISP's restartWorkers)", 0},
};

static const ab_arg s_worker_cleanup[] = {
    {"worker", AB_ARG_STR, false, true, 1, 96, NULL, "The worker's id (host:pid:queue)",
     AB_ARG_NOT_BLANK},
    {"dead", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Every dead worker, and every one silent for 30 s, instead of one", 0},
};

static const ab_arg s_task_one[] = {
    {"task", AB_ARG_INT, true, true, 1, UINT32_MAX, NULL, "The task's id (adminctl task list)", 0},
};

static const ab_arg s_task_set[] = {
    {"task", AB_ARG_INT, true, true, 1, UINT32_MAX, NULL, "The task's id (adminctl task list)", 0},
    {"frequency", AB_ARG_INT, false, false, 0, 87600, NULL,
     "Hours between runs; 0 runs once and is not scheduled again", 0},
    {"time", AB_ARG_STR, false, false, 5, 5, NULL, "Time of day of the runs, HH:MM UTC", 0},
    {"next", AB_ARG_STR, false, false, 10, 16, NULL,
     "Next run: YYYY-MM-DD (at --time) or YYYY-MM-DDTHH:MM, UTC", 0},
    {"enabled", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Whether the scheduler fires the task (only when its job type exists)", 0},
    {"description", AB_ARG_STR, false, false, 0, 255, NULL, "What the task is for", 0},
};

static const ab_arg s_backup_run[] = {
    {"encrypt_to", AB_ARG_STR, false, false, 3, 254, NULL,
     "Encrypt the archive to this GnuPG key: fingerprint, long key id or e-mail address",
     AB_ARG_NOT_BLANK},
};

static const char *const s_mail_states[] = {"queued",   "sending", "sent",
                                            "retrying", "failed",  NULL};

static const ab_arg s_contact[] = {
    {"user", AB_ARG_STR, false, false, 1, 255, NULL, "The user to write to: e-mail address or id",
     AB_ARG_NOT_BLANK},
    {"all", AB_ARG_BOOL, false, false, 0, 0, NULL, "Write to every enabled user", 0},
    {"future", AB_ARG_STR, false, false, 3, 254, NULL,
     "Write to this address, of someone who is not a user (yet)", AB_ARG_NOT_BLANK},
    {"gpgkey", AB_ARG_STR, false, false, 1, TEXT_MAX, NULL,
     "With future: the person's ASCII-armoured GnuPG public key, to encrypt to; checked as "
     "user edit --gpgkey is (adminctl: --gpgkey-file FILE)",
     0},
    {"welcome", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "With future: the welcome text (MISP.newUserText, subject \"New user registration\") "
     "when no message is given",
     0},
    {"subject", AB_ARG_STR, false, false, 1, 200, NULL,
     "The subject (one line; [ORG MISP] is put in front); required unless welcome",
     AB_ARG_NOT_BLANK},
    {"message", AB_ARG_STR, false, false, 1, TEXT_MAX, NULL,
     "The text of the message (adminctl: --message-file FILE, or - for standard input); "
     "required unless welcome",
     AB_ARG_NOT_BLANK},
};

static const ab_arg s_user_reset_password[] = {
    {"user", AB_ARG_STR, true, true, 1, 255, NULL, "The user: e-mail address or id",
     AB_ARG_NOT_BLANK},
    {"first_time", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "A welcome message (MISP.newUserText) rather than a reset (MISP.passwordResetText)", 0},
    {"message", AB_ARG_STR, false, false, 1, TEXT_MAX, NULL,
     "Your own text instead of the setting's, with the same placeholders ($password, "
     "$username, $misp, $org, $contact; adminctl: --message-file FILE)",
     0},
};

static const ab_arg s_user_gpg_fetch[] = {
    {"user", AB_ARG_STR, true, true, 1, 255, NULL, "The user: e-mail address or id",
     AB_ARG_NOT_BLANK},
};

static const ab_arg s_mail_test[] = {
    {"to", AB_ARG_STR, true, true, 3, 254, NULL, "The address to send the test message to",
     AB_ARG_NOT_BLANK},
};

static const ab_arg s_mail_status[] = {
    {"job", AB_ARG_INT, true, true, 1, INT64_MAX, NULL, "The mail-out job's id", 0},
    {"state", AB_ARG_ENUM, false, false, 0, 0, s_mail_states, "Only recipients in this state", 0},
    PAGING_ARGS,
};

static const char *const s_setting_tabs[] = {"misp", "gnupg", "proxy", "security", "misc", NULL};

#define SETTING_NAME(help)                                                                         \
    {                                                                                              \
        "name", AB_ARG_STR, true, true, 1, 128, NULL, help " (as MISP spells it: MISP.baseurl)",   \
            AB_ARG_NOT_BLANK                                                                       \
    }
#define SETTING_FORCE                                                                              \
    {                                                                                              \
        "force", AB_ARG_BOOL, false, false, 0, 0, NULL,                                            \
            "Skip validation (not the type check); the audit row says so", 0                       \
    }

static const ab_arg s_setting_list[] = {
    {"tab", AB_ARG_ENUM, false, false, 0, 0, s_setting_tabs, "Only the settings of this tab", 0},
    {"problems", AB_ARG_BOOL, false, false, 0, 0, NULL,
     "Only settings that are unset, invalid or not at the recommended value", 0},
};

static const ab_arg s_setting_one[] = {SETTING_NAME("The setting")};

static const ab_arg s_setting_set[] = {
    SETTING_NAME("The setting"),
    {"value", AB_ARG_SCALAR, true, true, 0, 65535, NULL,
     "The new value: text from the CLI, or a string, integer or boolean over the wire; cast "
     "to the setting's type",
     0},
    SETTING_FORCE,
};

static const ab_arg s_setting_baseurl[] = {
    {"baseurl", AB_ARG_STR, true, true, 1, 2048, NULL,
     "The instance's address, such as https://misp.example.org", AB_ARG_NOT_BLANK},
    SETTING_FORCE,
};

/* What adminctl shows of a list (AB_SHOW_TABLE): the columns, in order. */
static const char *const s_org_columns[] = {"id",   "name",  "uuid",       "nationality", "sector",
                                            "type", "local", "user_count", NULL};
static const char *const s_role_columns[] = {"id",           "name",       "permission", "perms",
                                             "default_role", "user_count", NULL};
static const char *const s_log_columns[] = {"id",    "created",  "email", "org",    "action",
                                            "model", "model_id", "title", "change", NULL};
static const char *const s_job_columns[] = {
    "id", "queue", "type", "state", "progress", "attempts", "message", "date_created", NULL};
static const char *const s_worker_columns[] = {
    "id",           "queue",          "status", "current_job", "done_count",
    "failed_count", "last_heartbeat", "alive",  NULL};
static const char *const s_authkey_columns[] = {
    "id",        "email",       "authkey_start", "authkey_end", "expiration", "expired",
    "read_only", "allowed_ips", "comment",       "created",     NULL};
static const char *const s_setting_columns[] = {"priority", "name",        "value",
                                                "error",    "description", NULL};

/* The rows of commands.def (see there for the columns); the handler is the engine's. */
#define ARGS(table)         table, COUNT(table)
#define NO_ARGS             NULL, 0
#define SHOW_TEXT           AB_SHOW_TEXT, NULL
#define SHOW_TABLE(columns) AB_SHOW_TABLE, columns
#define SHOW_JSON           AB_SHOW_JSON, NULL
#define AB_COMMAND(id, type, cli, handler, shape, permission, args, show, summary, help)           \
    [AB_CMD_##id] = {type, cli, summary, help, (shape) != AB_READS, permission, args, shape, show},

const ab_command ab_catalog[AB_COMMAND_COUNT] = {
#include "commands.def"
};
#undef AB_COMMAND

const size_t ab_catalog_len = COUNT(ab_catalog);

const ab_command *ab_catalog_find(const char *type, size_t len)
{
    for (size_t i = 0; i < ab_catalog_len; i++)
        if (strlen(ab_catalog[i].type) == len && memcmp(ab_catalog[i].type, type, len) == 0)
            return &ab_catalog[i];
    return NULL;
}

const ab_arg *ab_command_arg(const ab_command *cmd, const char *name, size_t len)
{
    for (size_t i = 0; i < cmd->nargs; i++)
        if (strlen(cmd->args[i].name) == len && memcmp(cmd->args[i].name, name, len) == 0)
            return &cmd->args[i];
    return NULL;
}

const char *ab_arg_type_name(ab_arg_type type)
{
    switch (type) {
    case AB_ARG_STR:
        return "string";
    case AB_ARG_INT:
        return "integer";
    case AB_ARG_BOOL:
        return "boolean";
    case AB_ARG_UUID:
        return "uuid";
    case AB_ARG_ENUM:
        return "enum";
    case AB_ARG_MAP:
        return "map";
    case AB_ARG_LIST:
        return "list";
    case AB_ARG_SCALAR:
        return "scalar";
    case AB_ARG_STRS:
        return "strings";
    }
    return "?";
}

const char *ab_permission_name(ab_permission perm)
{
    switch (perm) {
    case AB_PERM_PUBLIC:
        return "public";
    case AB_PERM_NONE:
        return "any";
    case AB_PERM_SELF:
        return "self";
    case AB_PERM_AUTH:
        return "auth";
    case AB_PERM_AUDIT:
        return "audit";
    case AB_PERM_ORG_ADMIN:
        return "admin";
    case AB_PERM_SITE_ADMIN:
        return "site_admin";
    }
    return "?";
}

/* The length in bytes of the white-space character at s (len bytes left), 0 when s does
 * not start with one: Unicode's White_Space property (ASCII's \t \n \v \f \r and space,
 * U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). */
static size_t s_space_len(const unsigned char *s, size_t len)
{
    if (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r'))
        return 1;
    if (len >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0))
        return 2;
    if (len < 3)
        return 0;
    unsigned cp = (unsigned)(s[0] & 0x0F) << 12 | (unsigned)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    bool three = (s[0] & 0xF0) == 0xE0;
    if (three && (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
                  cp == 0x202F || cp == 0x205F || cp == 0x3000))
        return 3;
    return 0;
}

/* True when the UTF-8 text s (len bytes) is empty or white space alone. */
static bool s_blank(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = s_space_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

static int s_check_str(const ab_arg *a, const msgpack_object *v, ab_error *err)
{
    if (v->type != MSGPACK_OBJECT_STR)
        return ab_fail(err, AB_E_INVALID, a->name, "%s must be a string", a->name);
    const char *s = v->via.str.ptr;
    size_t len = v->via.str.size;
    ab_text_fault fault = ab_text_check(s, len);
    if (fault != AB_TEXT_OK)
        return ab_fail(err, AB_E_INVALID, a->name, "%s %s", a->name, ab_text_fault_text(fault));
    bool bytes = a->flags & AB_ARG_BYTES;
    size_t n = bytes ? len : ab_utf8_chars(s, len);
    const char *unit = bytes ? "bytes" : "characters";
    if ((int64_t)n < a->min)
        return ab_fail(err, AB_E_INVALID, a->name, "%s must have at least %lld %s", a->name,
                       (long long)a->min, bytes ? "byte(s)" : "character(s)");
    if ((int64_t)n > a->max)
        return ab_fail(err, AB_E_INVALID, a->name, "%s is too long: %zu %s, at most %lld", a->name,
                       n, unit, (long long)a->max);
    if ((a->flags & AB_ARG_NOT_BLANK) && s_blank(s, len))
        return ab_fail(err, AB_E_INVALID, a->name, "%s must not be blank (white space alone)",
                       a->name);
    return 0;
}

static int s_check_int(const ab_arg *a, const msgpack_object *v, ab_error *err)
{
    int64_t n;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->via.u64 > (uint64_t)INT64_MAX)
            return ab_fail(err, AB_E_INVALID, a->name, "%s is out of range", a->name);
        n = (int64_t)v->via.u64;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        n = v->via.i64;
    } else {
        return ab_fail(err, AB_E_INVALID, a->name, "%s must be an integer", a->name);
    }
    if (n < a->min || n > a->max)
        return ab_fail(err, AB_E_INVALID, a->name, "%s must be between %lld and %lld", a->name,
                       (long long)a->min, (long long)a->max);
    return 0;
}

static bool s_in_choices(const char *const *choices, const msgpack_object *v)
{
    if (v->type == MSGPACK_OBJECT_STR)
        for (const char *const *c = choices; *c; c++)
            if (strlen(*c) == v->via.str.size && memcmp(*c, v->via.str.ptr, v->via.str.size) == 0)
                return true;
    return false;
}

/* The choices as "a, b, c" in out. */
static void s_choice_list(const char *const *choices, char *out, size_t len)
{
    out[0] = '\0';
    for (const char *const *c = choices; *c; c++) {
        strncat(out, *c, len - strlen(out) - 1);
        if (c[1])
            strncat(out, ", ", len - strlen(out) - 1);
    }
}

static int s_check_enum(const ab_arg *a, const msgpack_object *v, ab_error *err)
{
    if (s_in_choices(a->choices, v))
        return 0;
    char list[200];
    s_choice_list(a->choices, list, sizeof list);
    return ab_fail(err, AB_E_INVALID, a->name, "%s must be one of: %s", a->name, list);
}

/* An array of distinct strings from the choices; errors name the argument (field) and
 * say which entry is wrong. */
static int s_check_strs(const ab_arg *a, const msgpack_object *v, ab_error *err)
{
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return ab_fail(err, AB_E_INVALID, a->name, "%s must be a list of strings", a->name);
    uint32_t n = v->via.array.size;
    if ((int64_t)n < a->min || (int64_t)n > a->max)
        return ab_fail(err, AB_E_INVALID, a->name, "%s must have %lld to %lld entries, not %u",
                       a->name, (long long)a->min, (long long)a->max, n);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = &v->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR)
            return ab_fail(err, AB_E_INVALID, a->name, "%s[%u] must be a string", a->name, i);
        ab_text_fault fault = ab_text_check(e->via.str.ptr, e->via.str.size);
        if (fault != AB_TEXT_OK)
            return ab_fail(err, AB_E_INVALID, a->name, "%s[%u] %s", a->name, i,
                           ab_text_fault_text(fault));
        int shown = e->via.str.size > 64 ? 64 : (int)e->via.str.size;
        if (a->choices && !s_in_choices(a->choices, e)) {
            char list[200];
            s_choice_list(a->choices, list, sizeof list);
            return ab_fail(err, AB_E_INVALID, a->name, "%s: '%.*s' is not one of: %s", a->name,
                           shown, e->via.str.ptr, list);
        }
        if (!a->choices &&
            (e->via.str.size == 0 || ab_utf8_chars(e->via.str.ptr, e->via.str.size) > 255))
            return ab_fail(err, AB_E_INVALID, a->name, "%s[%u] must have 1 to 255 characters",
                           a->name, i);
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *p = &v->via.array.ptr[j];
            if (p->via.str.size == e->via.str.size &&
                memcmp(p->via.str.ptr, e->via.str.ptr, e->via.str.size) == 0)
                return ab_fail(err, AB_E_INVALID, a->name, "%s lists '%.*s' twice", a->name, shown,
                               e->via.str.ptr);
        }
    }
    return 0;
}

static int s_check_map(const ab_arg *a, const msgpack_object *v, ab_error *err)
{
    if (v->type != MSGPACK_OBJECT_MAP)
        return ab_fail(err, AB_E_INVALID, a->name, "%s must be a map", a->name);
    if ((int64_t)v->via.map.size > a->max)
        return ab_fail(err, AB_E_INVALID, a->name, "%s has more than %lld entries", a->name,
                       (long long)a->max);
    for (uint32_t i = 0; i < v->via.map.size; i++) {
        const msgpack_object *k = &v->via.map.ptr[i].key, *val = &v->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 || k->via.str.size > 64)
            return ab_fail(err, AB_E_INVALID, a->name, "%s keys must be strings of 1-64 bytes",
                           a->name);
        if (val->type == MSGPACK_OBJECT_MAP || val->type == MSGPACK_OBJECT_ARRAY)
            return ab_fail(err, AB_E_INVALID, a->name, "%s values must be scalars", a->name);
    }
    return 0;
}

static int s_check_list(const ab_arg *a, const msgpack_object *v, ab_error *err)
{
    if (v->type != MSGPACK_OBJECT_ARRAY)
        return ab_fail(err, AB_E_INVALID, a->name, "%s must be a list", a->name);
    if ((int64_t)v->via.array.size < a->min || (int64_t)v->via.array.size > a->max)
        return ab_fail(err, AB_E_INVALID, a->name, "%s must have %lld to %lld entries, not %u",
                       a->name, (long long)a->min, (long long)a->max, v->via.array.size);
    for (uint32_t i = 0; i < v->via.array.size; i++)
        if (v->via.array.ptr[i].type != MSGPACK_OBJECT_MAP) {
            ab_fail(err, AB_E_INVALID, NULL, "each entry of %s must be a map", a->name);
            snprintf(err->field, sizeof err->field, "%s[%u]", a->name, i);
            return -1;
        }
    return 0;
}

static int s_check_value(const ab_arg *a, const msgpack_object *v, ab_error *err)
{
    switch (a->type) {
    case AB_ARG_STR:
        return s_check_str(a, v, err);
    case AB_ARG_INT:
        return s_check_int(a, v, err);
    case AB_ARG_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return ab_fail(err, AB_E_INVALID, a->name, "%s must be true or false", a->name);
        return 0;
    case AB_ARG_UUID:
        if (v->type != MSGPACK_OBJECT_STR || !ab_uuid_valid(v->via.str.ptr, v->via.str.size))
            return ab_fail(err, AB_E_INVALID, a->name,
                           "%s must be a UUID like 5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f", a->name);
        return 0;
    case AB_ARG_ENUM:
        return s_check_enum(a, v, err);
    case AB_ARG_MAP:
        return s_check_map(a, v, err);
    case AB_ARG_LIST:
        return s_check_list(a, v, err);
    case AB_ARG_STRS:
        return s_check_strs(a, v, err);
    case AB_ARG_SCALAR:
        if (v->type == MSGPACK_OBJECT_STR)
            return s_check_str(a, v, err);
        if (v->type == MSGPACK_OBJECT_MAP || v->type == MSGPACK_OBJECT_ARRAY ||
            v->type == MSGPACK_OBJECT_BIN || v->type == MSGPACK_OBJECT_EXT ||
            v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
            return ab_fail(err, AB_E_INVALID, a->name,
                           "%s must be a string, an integer, true, false or nil", a->name);
        return 0;
    }
    return ab_fail(err, AB_E_INTERNAL, a->name, "unknown argument type");
}

int ab_catalog_validate(const ab_command *cmd, const msgpack_object *args, ab_error *err)
{
    uint32_t n = args ? args->via.map.size : 0;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &args->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return ab_fail(err, AB_E_INVALID, "args", "argument names must be strings");
        const ab_arg *a = ab_command_arg(cmd, k->via.str.ptr, k->via.str.size);
        if (!a) {
            char name[64];
            int l = k->via.str.size < 63 ? (int)k->via.str.size : 63;
            snprintf(name, sizeof name, "%.*s", l, k->via.str.ptr);
            if (!ab_utf8_valid(name, strlen(name)))
                snprintf(name, sizeof name, "args");
            return ab_fail(err, AB_E_INVALID, name, "%s takes no argument '%s'", cmd->type, name);
        }
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *p = &args->via.map.ptr[j].key;
            if (p->via.str.size == k->via.str.size &&
                memcmp(p->via.str.ptr, k->via.str.ptr, k->via.str.size) == 0)
                return ab_fail(err, AB_E_INVALID, a->name, "%s is given twice", a->name);
        }
        if (s_check_value(a, &args->via.map.ptr[i].val, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < cmd->nargs; i++)
        if (cmd->args[i].required && !ab_map_get(args, cmd->args[i].name))
            return ab_fail(err, AB_E_INVALID, cmd->args[i].name, "%s is required",
                           cmd->args[i].name);
    return 0;
}

static void s_markdown_args(FILE *f, const ab_command *c)
{
    if (c->nargs == 0) {
        fprintf(f, "No arguments.\n\n");
        return;
    }
    fprintf(f, "| argument | type | required | limits | description |\n");
    fprintf(f, "|---|---|---|---|---|\n");
    for (size_t j = 0; j < c->nargs; j++) {
        const ab_arg *a = &c->args[j];
        char limits[256] = "";
        if (a->type == AB_ARG_STR)
            snprintf(limits, sizeof limits, "%lld–%lld %s%s", (long long)a->min, (long long)a->max,
                     a->flags & AB_ARG_BYTES ? "bytes of UTF-8" : "characters",
                     a->flags & AB_ARG_NOT_BLANK ? ", not blank" : "");
        else if (a->type == AB_ARG_SCALAR)
            snprintf(limits, sizeof limits, "string (at most %lld characters), integer, boolean",
                     (long long)a->max);
        else if (a->type == AB_ARG_INT)
            snprintf(limits, sizeof limits, "%lld–%lld", (long long)a->min, (long long)a->max);
        else if (a->type == AB_ARG_MAP)
            snprintf(limits, sizeof limits, "at most %lld entries", (long long)a->max);
        else if (a->type == AB_ARG_LIST)
            snprintf(limits, sizeof limits, "%lld–%lld entries", (long long)a->min,
                     (long long)a->max);
        else if (a->type == AB_ARG_ENUM)
            s_choice_list(a->choices, limits, sizeof limits);
        else if (a->type == AB_ARG_STRS && a->choices) {
            char list[200];
            s_choice_list(a->choices, list, sizeof list);
            snprintf(limits, sizeof limits, "%lld–%lld distinct, each one of: %s",
                     (long long)a->min, (long long)a->max, list);
        } else if (a->type == AB_ARG_STRS)
            snprintf(limits, sizeof limits, "%lld–%lld distinct strings of 1–255 characters",
                     (long long)a->min, (long long)a->max);
        fprintf(f, "| `%s`%s | %s | %s | %s | %s |\n", a->name,
                a->positional ? " (positional)" : "", ab_arg_type_name(a->type),
                a->required ? "yes" : "no", limits, a->help);
    }
    fprintf(f, "\n");
}

void ab_catalog_markdown(FILE *f)
{
    fprintf(f, "<!-- Generated from schemas/catalog.c by `build/bin/adminbus-catalog --markdown`;"
               " do not edit by hand. -->\n");
    fprintf(f, "# Commands\n\n");
    fprintf(f, "Every command of the v1 wire contract (docs/protocol.md). The CLI form is "
               "`adminctl WORDS [positional] --argument value`; flags spell `_` as `-`.\n\n");
    for (size_t i = 0; i < ab_catalog_len; i++) {
        const ab_command *c = &ab_catalog[i];
        fprintf(f, "## `%s`\n\n", c->type);
        fprintf(f, "%s. CLI: `adminctl %s`. Permission: %s. %s\n\n", c->summary, c->cli,
                ab_permission_name(c->permission),
                c->writes ? "Changes state (audited, idempotent by command id)." : "Read only.");
        fprintf(f, "%s\n\n", c->help);
        s_markdown_args(f, c);
    }
}
