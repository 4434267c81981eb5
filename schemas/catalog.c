/* catalog.c — the command catalog (see catalog.h). Add a command: add its argument
 * table and one row below, then one handler in engine/dispatch.c. */
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

const ab_command ab_catalog[] = {
    {"org.add", "org add", "Add an organisation",
     "Creates an organisation. Names and uuids are unique (conflict otherwise); a uuid is "
     "generated when none is given. Returns the new organisation.",
     true, AB_PERM_SITE_ADMIN, s_org_add, COUNT(s_org_add)},
    {"org.edit", "org edit", "Change an organisation",
     "Changes the given fields of an organisation; the audit row lists each change as "
     "field (old) => (new). Returns the organisation as it is now.",
     true, AB_PERM_SITE_ADMIN, s_org_edit, COUNT(s_org_edit)},
    {"org.delete", "org delete", "Delete an organisation",
     "Deletes an organisation. Refused (conflict) for the host organisation and for an "
     "organisation that still has users.",
     true, AB_PERM_SITE_ADMIN, s_org_one, COUNT(s_org_one)},
    {"org.merge", "org merge", "Merge an organisation into another",
     "Moves every user and every row that belongs to org (users, jobs, and the audit rows "
     "that name it as the acting organisation) to into, then deletes org: all in one "
     "transaction, so an interruption leaves either nothing or everything done. One audit row "
     "(action merge) records what moved. Refused: org and into the same (invalid, field "
     "into), either missing (not_found), org the host organisation (conflict, field org). "
     "Returns both organisations and the rows moved per table and column.",
     true, AB_PERM_SITE_ADMIN, s_org_merge, COUNT(s_org_merge)},
    {"org.view", "org view", "Show one organisation",
     "Shows every field of an organisation, with the number of its users.", false, AB_PERM_NONE,
     s_org_one, COUNT(s_org_one)},
    {"org.list", "org list", "List organisations",
     "Lists organisations, local ones by default, ordered by name, with their user counts.", false,
     AB_PERM_NONE, s_org_list, COUNT(s_org_list)},
    {"role.add", "role add", "Add a role",
     "Creates a role with a permission level (default read_only) and extra permissions. "
     "Names are unique (conflict, field name). A role giving site_admin without admin, or "
     "sync without auth, is invalid (field perms). Returns the new role.",
     true, AB_PERM_SITE_ADMIN, s_role_add, COUNT(s_role_add)},
    {"role.edit", "role edit", "Change a role",
     "Renames a role, sets its permission level, grants (perms) and takes away (no_perms) "
     "extra permissions; the audit row lists each change as field (old) => (new). The same "
     "permission in perms and no_perms, or a result giving site_admin without admin or sync "
     "without auth, is invalid; taking site_admin or auth from the role of the last enabled "
     "site administrators who can use an authkey is a conflict (field no_perms). Returns the role "
     "as it is now.",
     true, AB_PERM_SITE_ADMIN, s_role_edit, COUNT(s_role_edit)},
    {"role.delete", "role delete", "Delete a role",
     "Deletes a role. Refused (conflict, field role) while users have it and for the "
     "default role.",
     true, AB_PERM_SITE_ADMIN, s_role_one, COUNT(s_role_one)},
    {"role.view", "role view", "Show one role",
     "Shows a role: permission level, extra permissions, whether it is the default, and the "
     "number of its users.",
     false, AB_PERM_NONE, s_role_one, COUNT(s_role_one)},
    {"role.list", "role list", "List roles",
     "Lists the roles by id with their permission level, extra permissions, default flag and "
     "user counts.",
     false, AB_PERM_NONE, s_role_list, COUNT(s_role_list)},
    {"role.set_default", "role set-default", "Make a role the default",
     "Makes a role the one new users get (MISP's setDefaultRole); the previous default loses "
     "the flag in the same transaction, so exactly one role is the default. Both changes are "
     "audited. Setting the current default again changes nothing.",
     true, AB_PERM_SITE_ADMIN, s_role_one, COUNT(s_role_one)},
    {"user.add", "user add", "Add a user",
     "Creates a user in an organisation with a role (the default role when none is given). "
     "E-mails are checked and unique, case-insensitively (conflict, field email). A given "
     "password must meet the password policy (invalid, field password, with the reason); "
     "without one a temporary password is generated and returned once, as password, in this "
     "reply only. Either way the user must change it at the next login unless "
     "no_password_change. Only the yescrypt hash is stored; the audit shows password as *****. "
     "A gpgkey must be exactly one OpenPGP public key with an encryption (sub)key that is "
     "neither expired nor revoked (invalid, field gpgkey, saying what is wrong); its "
     "fingerprint is stored with it. "
     "An org admin adds users to their own organisation only, and may give neither a site "
     "admin role nor a role with a permission they lack (forbidden).",
     true, AB_PERM_ORG_ADMIN, s_user_add, COUNT(s_user_add)},
    {"user.list", "user list", "List users",
     "Lists users by id with the manual's columns (id, org, role, email, autoalert, "
     "contactalert, nids_sid, termsaccepted, last_login, disabled, created), optionally only "
     "those of an organisation or role, or only disabled or enabled ones. An org admin sees "
     "the users of their own organisation only (org naming another is forbidden).",
     false, AB_PERM_ORG_ADMIN, s_user_list, COUNT(s_user_list)},
    {"user.view", "user view", "Show one user",
     "Shows every field of a user except the password hash. Org admins: users of their own "
     "organisation who are not site admins (forbidden otherwise), as for every user command.",
     false, AB_PERM_ORG_ADMIN, s_user_one, COUNT(s_user_one)},
    {"user.edit", "user edit", "Change a user",
     "Changes the given fields of a user; the audit row lists each change as field (old) => "
     "(new). Giving the last enabled site administrator a role that is not one is a conflict "
     "(field user). A gpgkey is checked as on add; an empty one removes the key. An org admin "
     "may not move a user to another organisation nor give a site admin role or a role with a "
     "permission they lack (forbidden). Returns the user as it is now.",
     true, AB_PERM_ORG_ADMIN, s_user_edit, COUNT(s_user_edit)},
    {"user.disable", "user disable", "Disable a user",
     "Disables a user (preferred to deleting): its authkeys stop working at once. Disabling "
     "the last enabled site administrator who can use an authkey is a conflict (field user).",
     true, AB_PERM_ORG_ADMIN, s_user_one, COUNT(s_user_one)},
    {"user.enable", "user enable", "Enable a user", "Enables a disabled user again.", true,
     AB_PERM_ORG_ADMIN, s_user_one, COUNT(s_user_one)},
    {"user.delete", "user delete", "Delete a user",
     "Deletes a user and its authkeys; its audit rows stay, with its e-mail. Deleting "
     "yourself, or the last enabled site administrator who can use an authkey, is a conflict "
     "(field user). Disabling is preferred.",
     true, AB_PERM_ORG_ADMIN, s_user_one, COUNT(s_user_one)},
    {"user.change_pw", "user change-pw", "Set a user's password",
     "Sets a new password, given (checked against the policy) or generated and returned once "
     "as password. The user must change it at the next login unless no_password_change, or "
     "unless users set their own (which lifts a must-change-password session's restriction). "
     "Audited as change_pw with the password shown as *****. Any user may set their own "
     "password; org admins also those of their organisation's users who are not site admins.",
     true, AB_PERM_SELF, s_user_change_pw, COUNT(s_user_change_pw)},
    {"user.authkey", "user authkey", "Get or reset a user's authkey",
     "MISP's getAuthkey and Authkey. Raw keys are never stored (only a keyed digest and the "
     "first and last four characters), so they cannot be shown again. Without reset: a user "
     "with no key gets one, returned once as authkey; a user with keys gets the list of them "
     "(start...end, expiry, read-only, allowed_ips) and a message to use reset. With reset: "
     "every key of the user is revoked and one new key is returned once, in the same "
     "transaction, so the old keys stop working for every engine at the next command. "
     "Audited as reset_auth_key (never the key). Your own keys, or, for an org admin, those "
     "of the organisation's users, or any for a site admin.",
     true, AB_PERM_AUTH, s_user_authkey, COUNT(s_user_authkey)},
    {"authkey.add", "authkey add", "Add an authkey",
     "Creates an authkey for a user: 40 random letters and digits, returned once as authkey "
     "in this reply only (a repeat of the command id gets it masked). Optional expiry, "
     "read-only flag, address ranges (allowed_ips) and comment. A role without the auth "
     "permission makes the key unusable (warning in the reply). Your own keys, or, for an "
     "org admin, those of the organisation's users, or any for a site admin.",
     true, AB_PERM_AUTH, s_authkey_add, COUNT(s_authkey_add)},
    {"authkey.list", "authkey list", "List authkeys",
     "Lists the authkeys you may manage (yours; an org admin's organisation's; every key for "
     "a site admin), or one user's: id, owner, first and last four characters, expiry, "
     "read-only, allowed_ips, comment, created. Never the key.",
     false, AB_PERM_AUTH, s_authkey_list, COUNT(s_authkey_list)},
    {"authkey.view", "authkey view", "Show one authkey", "Shows one authkey as authkey list does.",
     false, AB_PERM_AUTH, s_authkey_one, COUNT(s_authkey_one)},
    {"authkey.edit", "authkey edit", "Change an authkey",
     "Changes a key's expiry (never removes it), read-only flag, allowed_ips (replaced "
     "whole; any_ip removes the limit) or comment; the audit row lists each change. The key "
     "itself never changes: to replace it, add a new one and delete the old.",
     true, AB_PERM_AUTH, s_authkey_edit, COUNT(s_authkey_edit)},
    {"authkey.delete", "authkey delete", "Revoke an authkey",
     "Deletes (revokes) a key: the next command that presents it is refused, on every engine. "
     "Revoking the last usable key of the last enabled site administrator is allowed (a "
     "warning in the reply says so): adminctl --local user authkey EMAIL --reset on the host "
     "gives a new one.",
     true, AB_PERM_AUTH, s_authkey_one, COUNT(s_authkey_one)},
    {"log.search", "log search", "Search the audit log",
     "Lists audit rows, newest first. Text filters are sub-string matches; action and model "
     "match exactly. Filters combine with AND. Needs the audit permission; anyone but a site "
     "admin sees only the rows of their own organisation (the acting user's org, as MISP).",
     false, AB_PERM_AUDIT, s_log_search, COUNT(s_log_search)},
    {"auth.login", "auth login", "Log in with e-mail and password (and OTP)",
     "Checks e-mail and password (and the one-time code when the account has TOTP or HOTP) and "
     "returns a session token, once, as session: send it as the envelope's session instead of "
     "auth. It expires after Session.cookieTimeout minutes, or after Session.timeout minutes "
     "without use. An unknown e-mail and a wrong password get the same answer "
     "(unauthenticated). Every failure is audited as login_fail; after SecureAuth.amount "
     "failures for one e-mail from one address within SecureAuth.expire seconds the login is "
     "refused, even with the right password, and the message says how long to wait "
     "(bruteforce clear lifts it). A disabled user cannot log in. A user who must change the "
     "password gets a session that runs only user.change_pw on itself, whoami and logout; "
     "with Security.otp_required and no OTP yet, only otp.enrol on itself, whoami and logout. "
     "Needs no credential.",
     true, AB_PERM_PUBLIC, s_auth_login, COUNT(s_auth_login)},
    {"auth.logout", "auth logout", "End the session",
     "Ends the session this command came with, or with all every session of the caller. "
     "Audited as logout.",
     true, AB_PERM_NONE, s_auth_logout, COUNT(s_auth_logout)},
    {"bruteforce.clear", "bruteforce clear", "Clear brute-force entries",
     "Deletes the failed-login entries of one e-mail (all entries without one), so a "
     "blocked login works again at once (MISP's clearBruteforce). Audited.",
     true, AB_PERM_SITE_ADMIN, s_bruteforce_clear, COUNT(s_bruteforce_clear)},
    {"user.ips", "user ips", "Addresses a user logged in from",
     "Lists the addresses of a user's successful logins, most recent first, with first and "
     "last time and count (MISP's UserIP).",
     false, AB_PERM_SITE_ADMIN, s_user_one, COUNT(s_user_one)},
    {"user.by_ip", "user by-ip", "Users who logged in from an address",
     "Lists the users who logged in from an address, most recent first (MISP's IPUser).", false,
     AB_PERM_SITE_ADMIN, s_user_by_ip, COUNT(s_user_by_ip)},
    {"otp.enrol", "otp enrol", "Set up TOTP or HOTP for a user",
     "Makes a new OTP seed for the user (TOTP, or HOTP with hotp) and returns it once as "
     "secret (base32) and uri (otpauth://, for a QR code); the stored reply has both masked "
     "and the database keeps the seed only sealed. From then on auth.login needs a code. A "
     "user with an OTP must have it deleted first (conflict). Users enrol themselves; "
     "admins may enrol users they manage. Audited as otp_enrol.",
     true, AB_PERM_SELF, s_otp_enrol, COUNT(s_otp_enrol)},
    {"otp.delete", "otp delete", "Remove a user's TOTP or HOTP",
     "Deletes a user's OTP seed, so the login needs only the password until the user enrols "
     "again. Site administrators, and org admins for their organisation's users; as in MISP, "
     "users cannot remove their own. Audited as otp_delete.",
     true, AB_PERM_ORG_ADMIN, s_user_one, COUNT(s_user_one)},
    {"auth.whoami", "whoami", "Show who a key belongs to",
     "Shows the user, organisation and role the presented key belongs to, and which engine "
     "answered with its version and schema version.",
     false, AB_PERM_NONE, NULL, 0},
    {"job.enqueue", "job enqueue", "Enqueue a job of any registered type",
     "Enqueues a job for the workers of its type's queue and wakes them; returns the job. "
     "The arguments are checked against the job type (invalid, field args.NAME). With a "
     "unique_key already used, returns the existing job as it is now (existed: true; its "
     "queue, type and state) and enqueues nothing. Unique keys are UTF-8 and compared "
     "byte for byte: Nightly and NIGHTLY are two keys.",
     true, AB_PERM_SITE_ADMIN, s_job_enqueue, COUNT(s_job_enqueue)},
    {"job.enqueue_many", "job enqueue-many", "Enqueue many jobs in one command",
     "Enqueues up to 1000 jobs of any registered types at once, all or none: each entry is "
     "checked as job enqueue checks its arguments (invalid, field jobs[N].NAME) before any is "
     "written. Returns their ids in order, and for each whether a unique_key found an "
     "existing job. For automation that starts many jobs: one command, one round trip.",
     true, AB_PERM_SITE_ADMIN, s_job_enqueue_many, COUNT(s_job_enqueue_many)},
    {"job.list", "job list", "List jobs",
     "Lists jobs, newest first, with MISP's columns (queue, type, input, status, progress, "
     "message) and ours (state, attempts, last error).",
     false, AB_PERM_SITE_ADMIN, s_job_list, COUNT(s_job_list)},
    {"job.view", "job view", "Show one job", "Shows every field of a job.", false,
     AB_PERM_SITE_ADMIN, s_job_one, COUNT(s_job_one)},
    {"job.retry", "job retry", "Run a failed or cancelled job again",
     "Puts a failed or cancelled job back in its queue with a fresh set of attempts. Other "
     "states are a conflict.",
     true, AB_PERM_SITE_ADMIN, s_job_one, COUNT(s_job_one)},
    {"job.cancel", "job cancel", "Cancel a job",
     "A queued or retrying job is cancelled at once; a running one is asked to stop and its "
     "worker records it as cancelled. A finished job is a conflict.",
     true, AB_PERM_SITE_ADMIN, s_job_one, COUNT(s_job_one)},
    {"job.stats", "job stats", "Counts of the jobs that ended, and how long they ran",
     "Per queue, type and end state (done, failed, cancelled): how many jobs ended so since "
     "the job counters exist (finished; they only grow: purging jobs changes nothing), how "
     "many of them a worker ran to their end (ran), the sum of those runs (run_us) and how "
     "many fell within each bound of le, in seconds (buckets, cumulative, the last one "
     "unbounded). Jobs cancelled while waiting, or ended by a reaper or a cleanup, count as "
     "finished but not as ran. What /metrics shows as adminbus_jobs_finished_total and "
     "adminbus_job_duration_seconds.",
     false, AB_PERM_SITE_ADMIN, NULL, 0},
    {"job.purge", "job purge", "Delete finished jobs",
     "Deletes completed jobs (MISP's clearJobs completed), or with all every finished job: "
     "done, failed and cancelled. Queued and running jobs are never purged. Returns how "
     "many were deleted (at most 100,000 per call).",
     true, AB_PERM_SITE_ADMIN, s_job_purge, COUNT(s_job_purge)},
    {"worker.list", "worker list", "List workers",
     "Lists workers (host:pid:queue) with their status, current job, counts of jobs done "
     "and failed, last heartbeat and supervisor; alive is false when the worker is dead or its "
     "heartbeat is older than 30 s. Dead workers stay listed until worker cleanup removes "
     "them (or a day later, a supervisor does).",
     false, AB_PERM_SITE_ADMIN, s_worker_list, COUNT(s_worker_list)},
    {"worker.start", "worker start", "Start one more worker for a queue",
     "Asks the worker supervisor of a host (adminbus-supervisor; ops/run starts one) to start "
     "one more worker for the queue (MISP's startWorker). Replies once the request is stored; "
     "the new worker then registers (worker list) and announces worker.<id>.up. With no "
     "supervisor running (on the host, when given): unavailable, saying how to start one; a "
     "host no supervisor ever ran on: not_found (field host).",
     true, AB_PERM_SITE_ADMIN, s_worker_start, COUNT(s_worker_start)},
    {"worker.pause", "worker pause", "Pause a worker",
     "The worker finishes its current job and claims no more until resumed.", true,
     AB_PERM_SITE_ADMIN, s_worker_one, COUNT(s_worker_one)},
    {"worker.resume", "worker resume", "Resume a paused worker", "The worker claims jobs again.",
     true, AB_PERM_SITE_ADMIN, s_worker_one, COUNT(s_worker_one)},
    {"worker.stop", "worker stop", "Stop a worker",
     "The worker finishes its current job and exits. Its supervisor does not replace it.", true,
     AB_PERM_SITE_ADMIN, s_worker_one, COUNT(s_worker_one)},
    {"worker.restart", "worker restart", "Restart a worker, or every worker",
     "The worker stops as on SIGTERM (no new claims; its running job may finish within its "
     "worker_grace_s, else it is handed back without counting an attempt) and its supervisor "
     "starts a replacement at once (MISP's restartWorker; with all, restartWorkers: every "
     "live worker). A dead worker or one started by hand is a conflict; a worker whose "
     "supervisor is not running is unavailable (with all, both are listed as skipped).",
     true, AB_PERM_SITE_ADMIN, s_worker_restart, COUNT(s_worker_restart)},
    {"worker.kill", "worker kill", "Kill a worker at once",
     "The worker's supervisor kills its process with SIGKILL (MISP's killWorker), marks it "
     "dead and puts its running jobs back at once, each attempt counting, instead of waiting "
     "for their leases to expire. The killed worker is not replaced (worker start adds one). "
     "Replies once the request is stored. A worker started by hand or already dead is a "
     "conflict; one whose supervisor is not running is unavailable.",
     true, AB_PERM_SITE_ADMIN, s_worker_one, COUNT(s_worker_one)},
    {"worker.cleanup", "worker cleanup", "Clean up a dead or stuck worker",
     "For a worker that is dead or silent for 30 s: removes its registration and puts back "
     "the jobs it still holds (each attempt counting). For a live worker: every running job "
     "of it whose cancel (job cancel) is older than the worker's worker_grace_s is cancelled "
     "by force, and the worker, whose handler ignored the cancel, is killed and replaced by "
     "its supervisor (CakeResque's cleanup); cancels still within their grace are listed as "
     "pending. With dead: every dead or silent worker (MISP's dead workers) is removed.",
     true, AB_PERM_SITE_ADMIN, s_worker_cleanup, COUNT(s_worker_cleanup)},
    {"queue.clear", "queue clear", "Cancel every waiting job of a queue",
     "Cancels the queue's queued and retrying jobs at once (CakeResque's clear); running jobs "
     "are left to finish (cancel them one by one with job cancel). Returns how many were "
     "cancelled.",
     true, AB_PERM_SITE_ADMIN, s_queue_one, COUNT(s_queue_one)},
    {"queue.stats", "queue stats", "Jobs per queue and state, and workers per queue",
     "Counts jobs by queue and state, ready jobs, and live workers per queue, and how long "
     "the oldest job that may run now has been due (oldest_ready_age_ms, 0 when none "
     "waits).",
     false, AB_PERM_SITE_ADMIN, NULL, 0},
    {"task.list", "task list", "List scheduled tasks",
     "Lists MISP's scheduled tasks and ours: type (its job type), frequency in hours (timer, "
     "0 = once), scheduled time, next run (next_execution_time, unix seconds, and next_run, "
     "ISO 8601 UTC), message, enabled, last job. runnable is false for a task whose job type "
     "does not exist in this build: such a task stays disabled and never fires.",
     false, AB_PERM_SITE_ADMIN, NULL, 0},
    {"task.set", "task set", "Change a scheduled task",
     "Changes a task's frequency, time, next run, description or whether it is enabled "
     "(example: task set 3 --frequency 24 --time 01:00 --next 2026-12-01). --next without a "
     "time runs at the task's time; --time alone keeps the next run's day, moved on by the "
     "frequency while it is past. A next run in the past fires at once. Enabling a task whose "
     "job type does not exist is a conflict (field enabled). The scheduler fires each due run "
     "exactly once, and after downtime a missed task once, not once per missed period.",
     true, AB_PERM_SITE_ADMIN, s_task_set, COUNT(s_task_set)},
    {"task.run", "task run", "Run a scheduled task now",
     "Enqueues the task's job now (whether or not the task is enabled) and returns the job; "
     "the task's schedule is unchanged. A task whose job type does not exist is a conflict.",
     true, AB_PERM_SITE_ADMIN, s_task_one, COUNT(s_task_one)},
    {"setting.list", "setting list", "List the server settings",
     "Lists every server setting (docs/settings.md) with its tab, type, priority, value "
     "(secrets as *****), default, description and, when it has one, the problem: unset, "
     "invalid, or not at the recommended value. problems counts the problems of each tab by "
     "priority, as the tabs of MISP's server settings page do.",
     false, AB_PERM_SITE_ADMIN, s_setting_list, COUNT(s_setting_list)},
    {"setting.get", "setting get", "Show one server setting",
     "Shows a setting as setting list does, with its limits or choices and who changed it "
     "last (MISP's getSetting). An unknown name is not_found (field name).",
     false, AB_PERM_SITE_ADMIN, s_setting_one, COUNT(s_setting_one)},
    {"setting.set", "setting set", "Change a server setting",
     "Casts the value to the setting's type (true/false, integers, text), validates it "
     "(limits, choices, URL, e-mail and path shape, that a regular expression compiles) and "
     "stores it (MISP's setSetting). Refusals are invalid with field value and say why; an "
     "unknown name is not_found (field name); a setting that is not editable is invalid "
     "(field name). A change is audited as serverSettingsEdit with name (old) => (new), "
     "secrets as *****, published as setting.NAME.changed, and picked up by running "
     "processes without a restart. Setting the value it already has changes nothing. An "
     "empty value, where a setting may be empty, removes the stored value as setting reset "
     "does (its default applies). A CLI-only setting (cli_only) is forbidden (field name) for a "
     "command that came through "
     "the HTTP shim (via = http).",
     true, AB_PERM_SITE_ADMIN, s_setting_set, COUNT(s_setting_set)},
    {"setting.reset", "setting reset", "Return a server setting to its default",
     "Removes the stored value, so the setting takes its default (or becomes unset); "
     "audited and published like setting set; a CLI-only setting is refused through the "
     "HTTP shim as there.",
     true, AB_PERM_SITE_ADMIN, s_setting_one, COUNT(s_setting_one)},
    {"setting.baseurl", "baseurl", "Set MISP.baseurl",
     "Sets MISP.baseurl (MISP's cake Baseurl): an http(s) address without a trailing slash, "
     "as setting set MISP.baseurl does.",
     true, AB_PERM_SITE_ADMIN, s_setting_baseurl, COUNT(s_setting_baseurl)},
    {"setting.report", "setting report", "Every setting and every diagnostic, as JSON",
     "MISP's \"download report\": every setting as setting list shows it (secrets as *****), "
     "the problem counts, and the result of diagnostics. adminctl prints it as JSON.",
     false, AB_PERM_SITE_ADMIN, NULL, 0},
    {"diagnostics.run", "diagnostics", "Check the health of the instance",
     "Runs every check and reports, for each, its status (ok, warning, critical), what was "
     "found and what to do: data folders writable, free disk, database reachable at the "
     "schema version this engine expects, GnuPG usable with GnuPG.homedir, GnuPG.email and "
     "GnuPG.password, the event bus carrying events, live workers per queue, a scheduler "
     "leading, clocks in step (TOTP), settings without critical problems. critical is true "
     "when a check is critical; adminctl then exits 4.",
     false, AB_PERM_SITE_ADMIN, NULL, 0},
    {"db.update", "db update", "Apply pending database migrations",
     "Applies every schema migration the engine knows and the database lacks (MISP's "
     "updateDatabase); engines also do this at start. Returns the schema version.",
     true, AB_PERM_SITE_ADMIN, NULL, 0},
    {"backup.run", "backup", "Back up the instance (a job)",
     "Enqueues a backup job on the default queue and returns it (follow it with adminctl job "
     "track ID). The job writes one archive, mode 0600, to $ADMINBUS_HOME/backups: a "
     "consistent database dump, adminbus.conf, the server secrets and the files folder, with "
     "a manifest of SHA-256 checksums; with encrypt_to it is encrypted to that GnuPG key, "
     "which must be in the worker's keyring (else the job fails saying so). Restore with "
     "ops/restore. A malformed encrypt_to is invalid (field encrypt_to).",
     true, AB_PERM_SITE_ADMIN, s_backup_run, COUNT(s_backup_run)},
    {"mail.contact", "contact", "Write to one user, all users or a future user (a mail-out job)",
     "Enqueues an email job on the email queue that sends the message to the user (user), to "
     "every enabled user (all) or to an address that is not a user yet (future), one message "
     "each, signed with the instance's GnuPG key and encrypted to the user's key when the "
     "user has one (for future: to gpgkey when given); returns the job (adminctl job track "
     "ID, adminctl mail status ID). With future, welcome sends MISP.newUserText (its "
     "$password says that the password comes with the account). A subject with a line break "
     "or control character is invalid (field subject); not exactly one of user, all and "
     "future is invalid; gpgkey or welcome without future is invalid; an unknown user is "
     "not_found (field user); a future address that is a user's is a conflict (field "
     "future); a gpgkey that cannot encrypt is invalid (field gpgkey).",
     true, AB_PERM_SITE_ADMIN, s_contact, COUNT(s_contact)},
    {"user.reset_password", "user reset-password", "E-mail a user a new temporary password",
     "Enqueues an email job that, when the message is sent, sets a new temporary password "
     "(generated by the password policy; the user must change it at the next login) and "
     "sends it in the text of MISP.passwordResetText, or MISP.newUserText with first_time, "
     "or message; signed, and encrypted when the user has a GnuPG key. The password changes "
     "only when the SMTP server takes the message, and is never stored in clear or shown "
     "here. Returns the job. Org admins may reset the users of their own organisation who "
     "are not site admins (forbidden, field user); an unknown user is not_found.",
     true, AB_PERM_ORG_ADMIN, s_user_reset_password, COUNT(s_user_reset_password)},
    {"user.gpg_fetch", "user gpg fetch", "Fetch a user's GnuPG key (a job)",
     "Enqueues a gpgkey_fetch job on the default queue and returns it (adminctl job track ID). "
     "The worker looks the user's address up in the Web Key Directory of its domain "
     "(GnuPG.wkd_url in its place when set), then on the key server GnuPG.keyserver (HKP "
     "/pks/lookup?op=get), checks the key as user edit --gpgkey-file does (and that a user "
     "ID names the address) and stores it, "
     "audited as an edit of the user. No key anywhere, or a key that cannot be used, fails the "
     "job saying why and changes nothing; a key server that does not answer is retried. "
     "GnuPG.key_fetching_disabled makes it a conflict. Org admins fetch for the users of "
     "their own organisation who are not site admins (forbidden, field user).",
     true, AB_PERM_ORG_ADMIN, s_user_gpg_fetch, COUNT(s_user_gpg_fetch)},
    {"mail.test", "mail test", "Send one test message now",
     "Composes a test message, signed with the instance's key unless GnuPG.sign is false or "
     "GnuPG.homedir/GnuPG.email are unset (then unsigned, and the reply says why), encrypted "
     "when the address is a user's with a GnuPG key, "
     "and submits it to the SMTP server (settings Email.*) at once, waiting at most 10 "
     "seconds, and returns the server's reply: sent, code and text. A refusal or an "
     "unreachable server is unavailable (temporary) or invalid (permanent, field to), with "
     "the reply in the message; a refused login is invalid (field Email.password); a setting "
     "in the way (MISP.email unset, an instance key that is set but cannot sign, "
     "MISP.disable_emailing) is a "
     "conflict naming it. Audited as email.",
     true, AB_PERM_SITE_ADMIN, s_mail_test, COUNT(s_mail_test)},
    {"mail.status", "mail status", "Show a mail-out's recipients",
     "Lists the recipients of an email job with their state (queued, sending, sent, retrying, "
     "failed), attempts, whether the message was encrypted, its Message-ID, the SMTP server's "
     "reply code and the error (the server's reply or GnuPG's reason); then counts (per "
     "state, the whole job), the job's state and message, and a notice when recipients "
     "failed for good (each also has an audit row email_failed). A recipient not reached by a "
     "mail-out that has ended failed or cancelled is shown failed with the job's error (job "
     "retry sends to it). "
     "An unknown job, or one that is not an email job, is not_found (field job).",
     false, AB_PERM_SITE_ADMIN, s_mail_status, COUNT(s_mail_status)},
};

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
