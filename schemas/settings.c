/* settings.c — the server-settings catalog and its validation (see settings.h).
 *
 * Add a setting: one row below (MISP's name when MISP has it). The unit test
 * tests/unit/test_settings checks every row (its default passes its own validation, its
 * limits make sense, names are unique); docs/settings.md is regenerated from the rows. */
#include "settings.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "wire/envelope.h"

#define COUNT(a)  (sizeof(a) / sizeof((a)[0]))
#define TEXT_MAX  65535 /* characters of a text setting (the column is MEDIUMTEXT) */
#define VALUE_MAX 65535 /* characters of any value (the column is MEDIUMTEXT) */
#define PATH_MAX_ 4096

/* --- extra checks of some rows ----------------------------------------------------- */

static int s_check_uuid(const char *v, char *msg, size_t len)
{
    if (ab_uuid_valid(v, strlen(v)))
        return 0;
    snprintf(msg, len, "must be a UUID like 5f6c3a1e-8b2d-4c1a-9e7f-0a1b2c3d4e5f");
    return -1;
}

static bool s_hostname_ok(const char *h, size_t n)
{
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-' || h[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
            return false;
    return true;
}

static int s_check_hostname(const char *v, char *msg, size_t len)
{
    if (s_hostname_ok(v, strlen(v)))
        return 0;
    snprintf(msg, len, "must be a host name or an IPv4 address (letters, digits, '.', '-')");
    return -1;
}

/* --- the rows ---------------------------------------------------------------------- */

static const ab_setting_choice s_distribution[] = {{"0", "Your organisation only"},
                                                   {"1", "This community only"},
                                                   {"2", "Connected communities"},
                                                   {"3", "All communities"},
                                                   {NULL, NULL}};
static const ab_setting_choice s_attribute_distribution[] = {
    {"0", "Your organisation only"},     {"1", "This community only"},
    {"2", "Connected communities"},      {"3", "All communities"},
    {"event", "Inherit from the event"}, {NULL, NULL}};
static const ab_setting_choice s_threat_levels[] = {
    {"1", "High"}, {"2", "Medium"}, {"3", "Low"}, {"4", "Undefined"}, {NULL, NULL}};
static const ab_setting_choice s_correlation_engines[] = {
    {"Default", "Correlations honour each user's access rights"},
    {"NoAcl", "Faster correlations without access checks (single-organisation instances)"},
    {NULL, NULL}};
static const ab_setting_choice s_proxy_methods[] = {
    {"Basic", "HTTP Basic authentication"}, {"Digest", "HTTP Digest authentication"}, {NULL, NULL}};
static const ab_setting_choice s_tls_versions[] = {
    {"tlsv1_2", "TLS 1.2"}, {"tlsv1_3", "TLS 1.3"}, {NULL, NULL}};
static const ab_setting_choice s_smtp_tls[] = {
    {"none", "Plain SMTP (loopback or a trusted network only)"},
    {"starttls", "STARTTLS, required"},
    {"tls", "Implicit TLS (SMTPS)"},
    {NULL, NULL}};
static const ab_setting_choice s_debug_levels[] = {
    {"0", "Off (production)"},
    {"1", "Debug messages in the logs of engines and workers"},
    {"2", "As 1 (MISP also dumps SQL; adminbus never logs values of secret settings)"},
    {NULL, NULL}};

/* Row builders: name, tab, default, priority, flags, …, description. */
#define BOOL(n, t, d, p, f, desc)                                                                  \
    {                                                                                              \
        n, AB_TAB_##t, AB_SET_BOOL, d, AB_PRIO_##p, f, 0, 0, NULL, NULL, AB_HOOK_NONE, desc        \
    }
#define NUM(n, t, d, p, f, lo, hi, desc)                                                           \
    {                                                                                              \
        n, AB_TAB_##t, AB_SET_NUMERIC, d, AB_PRIO_##p, f, lo, hi, NULL, NULL, AB_HOOK_NONE, desc   \
    }
#define STR(n, t, d, p, f, lo, hi, desc)                                                           \
    {                                                                                              \
        n, AB_TAB_##t, AB_SET_STRING, d, AB_PRIO_##p, f, lo, hi, NULL, NULL, AB_HOOK_NONE, desc    \
    }
#define ENUM(n, t, d, p, f, ch, desc)                                                              \
    {                                                                                              \
        n, AB_TAB_##t, AB_SET_ENUM, d, AB_PRIO_##p, f, 0, 0, ch, NULL, AB_HOOK_NONE, desc          \
    }
#define TYPED(ty, n, t, d, p, f, desc)                                                             \
    {                                                                                              \
        n, AB_TAB_##t, AB_SET_##ty, d, AB_PRIO_##p, f, 0, 0, NULL, NULL, AB_HOOK_NONE, desc        \
    }

#define NULL_OK  AB_SETF_NULL_OK
#define SECRET   AB_SETF_SECRET
#define CLI_ONLY AB_SETF_CLI_ONLY

static const char s_new_user_text[] =
    "Welcome to the $org MISP community.\\n\\nLog in at $misp as $username with the temporary "
    "password $password; you will be asked to choose your own.\\n\\nQuestions: $contact.";
static const char s_password_reset_text[] =
    "A password reset was requested for your account on $misp.\\n\\nLog in as $username with the "
    "temporary password $password; you will be asked to choose your own.\\n\\nQuestions: "
    "$contact.";
static const char s_password_complexity[] =
    "/^((?=.*\\d)|(?=.*\\W+))(?![\\n])(?=.*[A-Z])(?=.*[a-z]).*$|.{16,}/";

const ab_setting ab_settings[] = {
    /* --- MISP ----------------------------------------------------------------------- */
    {"MISP.baseurl", AB_TAB_MISP, AB_SET_URL, NULL, AB_PRIO_CRITICAL, 0, 0, 0, NULL, NULL,
     AB_HOOK_BASEURL,
     "The address at which users and other instances reach this instance, such as "
     "https://misp.example.org (a trailing slash is removed). Links in e-mails and "
     "synchronisation are built from it. `adminctl baseurl URL` sets it."},
    TYPED(URL, "MISP.external_baseurl", MISP, NULL, CRITICAL, NULL_OK,
          "The address other instances should use when it differs from MISP.baseurl (for "
          "example behind a reverse proxy); empty means MISP.baseurl."),
    BOOL("MISP.live", MISP, "true", CRITICAL, AB_SETF_PREFER_TRUE,
         "When false, only site administrators may use the instance (maintenance mode)."),
    {"MISP.host_org_id", AB_TAB_MISP, AB_SET_NUMERIC, NULL, AB_PRIO_CRITICAL, 0, 1, UINT32_MAX,
     NULL, NULL, AB_HOOK_HOST_ORG,
     "The id of the organisation that runs this instance; it must be a local organisation. "
     "`adminbus-engine --init` sets it; the engine keeps it in admin_settings.host_org_id and "
     "refuses to delete that organisation."},
    {"MISP.uuid", AB_TAB_MISP, AB_SET_STRING, NULL, AB_PRIO_CRITICAL, 0, 36, 36, NULL, s_check_uuid,
     AB_HOOK_NONE,
     "The identity of this instance towards other instances; generated once by migration "
     "0006. Change it only when you know why."},
    STR("MISP.org", MISP, NULL, RECOMMENDED, NULL_OK, 0, 255,
        "Short name of the hosting organisation, shown in e-mail subjects as [ORG MISP]."),
    TYPED(EMAIL, "MISP.email", MISP, NULL, CRITICAL, 0,
          "The sender address of every e-mail the instance sends (alerts, password resets)."),
    TYPED(EMAIL, "MISP.contact", MISP, NULL, RECOMMENDED, 0,
          "The address of the instance's support team, quoted in e-mails and error pages."),
    STR("MISP.email_from_name", MISP, NULL, OPTIONAL, NULL_OK, 0, 255,
        "The display name of the sender of notification e-mails."),
    BOOL("MISP.disable_emailing", MISP, "false", CRITICAL, AB_SETF_PREFER_FALSE,
         "Stops every outgoing e-mail; jobs that would send one record that they did not."),
    BOOL("MISP.extended_alert_subject", MISP, "false", RECOMMENDED, 0,
         "Puts the event's info (cut to 55 characters) into alert e-mail subjects. Subjects are "
         "never encrypted, so this reveals part of each event to every mail relay."),
    BOOL("MISP.threatlevel_in_email_subject", MISP, "true", OPTIONAL, 0,
         "Puts the event's threat level into alert e-mail subjects."),
    STR("MISP.email_subject_TLP_string", MISP, "tlp:amber", OPTIONAL, NULL_OK, 0, 255,
        "The TLP marking used in e-mail subjects when the event has no tag named by "
        "MISP.email_subject_tag."),
    STR("MISP.email_subject_tag", MISP, "tlp", OPTIONAL, NULL_OK, 0, 255,
        "Tag namespace whose value an event's alert subject shows (tlp: shows tlp:green)."),
    BOOL("MISP.email_subject_include_tag_name", MISP, "true", OPTIONAL, 0,
         "Shows the whole tag (tlp:green) rather than only its value (green) in subjects."),
    BOOL("MISP.event_alert_metadata_only", MISP, "false", OPTIONAL, 0,
         "Alert e-mails carry only the event's metadata, without attributes and objects."),
    BOOL("MISP.publish_alerts_summary_only", MISP, "false", DEPRECATED, 0,
         "Replaced by MISP.event_alert_metadata_only."),
    BOOL("MISP.disablerestalert", MISP, "true", RECOMMENDED, 0,
         "When true, events created or published through the API or synchronisation send no "
         "alert e-mails (useful during a first large pull)."),
    BOOL("MISP.default_publish_alert", MISP, "true", CRITICAL, 0,
         "Whether new users receive publish alerts unless told otherwise."),
    ENUM("MISP.default_event_distribution", MISP, "0", CRITICAL, 0, s_distribution,
         "The distribution new events get: 0 your organisation only, 1 this community only, 2 "
         "connected communities, 3 all communities."),
    ENUM("MISP.default_attribute_distribution", MISP, "event", CRITICAL, 0,
         s_attribute_distribution,
         "The distribution new attributes get: 0-3 as for events, or event to inherit the "
         "event's distribution."),
    ENUM("MISP.default_event_threat_level", MISP, "4", RECOMMENDED, 0, s_threat_levels,
         "The threat level new events get: 1 high, 2 medium, 3 low, 4 undefined."),
    BOOL("MISP.enableEventBlocklisting", MISP, "true", RECOMMENDED, 0,
         "Refuses events whose UUID is on the event blocklist; deleting an event adds it to the "
         "blocklist so that synchronisation does not bring it back."),
    BOOL("MISP.enableOrgBlocklisting", MISP, "true", RECOMMENDED, 0,
         "Refuses events created by organisations on the organisation blocklist."),
    BOOL("MISP.log_client_ip", MISP, "false", RECOMMENDED, 0,
         "Records the client's address in the ip column of every audit row (the address the "
         "broker saw). Running engines apply a change to the next batch they commit."),
    BOOL("MISP.log_auth", MISP, "false", RECOMMENDED, 0,
         "Writes an audit row (action auth) for every command authenticated with an authkey. "
         "Verbose: one row per command. With MISP.log_client_ip it answers 'who uses the API "
         "from where'."),
    BOOL("MISP.store_api_access_time", MISP, "false", RECOMMENDED, 0,
         "Keeps the time of each user's last API use."),
    BOOL("MISP.background_jobs", MISP, "true", RECOMMENDED, AB_SETF_PREFER_TRUE,
         "Hands long work to background workers. adminbus always does; false is reported "
         "because MISP administrators expect to see it on."),
    {"MISP.tmpdir", AB_TAB_MISP, AB_SET_PATH, NULL, AB_PRIO_OPTIONAL, NULL_OK | AB_SETF_DIR, 0, 0,
     NULL, NULL, AB_HOOK_NONE,
     "Folder for temporary files of jobs; unset means $ADMINBUS_HOME/tmp. Diagnostics checks "
     "that it is writable and has free space."},
    {"MISP.attachments_dir", AB_TAB_MISP, AB_SET_PATH, NULL, AB_PRIO_OPTIONAL,
     NULL_OK | AB_SETF_DIR | CLI_ONLY, 0, 0, NULL, NULL, AB_HOOK_NONE,
     "Folder for attachments and samples; unset means $ADMINBUS_HOME/files. Nothing is moved "
     "when it changes. Diagnostics checks that it is writable and has free space."},
    TYPED(PATH, "MISP.ca_path", MISP, NULL, RECOMMENDED, NULL_OK | CLI_ONLY,
          "A CA bundle for outgoing TLS connections (synchronisation, feeds); unset means the "
          "system's bundle."),
    BOOL("MISP.showorg", MISP, "true", CRITICAL, 0,
         "Shows organisation names and logos; false hides them everywhere."),
    BOOL("MISP.tagging", MISP, "true", RECOMMENDED, 0, "Enables tags on events and attributes."),
    BOOL("MISP.disable_threat_level", MISP, "false", RECOMMENDED, 0,
         "Hides the threat level of events and stops its changes."),
    BOOL("MISP.delegation", MISP, "false", RECOMMENDED, 0,
         "Lets an organisation ask another to publish an event in its stead."),
    BOOL("MISP.unpublishedprivate", MISP, "false", OPTIONAL, 0,
         "Hides unpublished events from users outside the creating organisation (site "
         "administrators still see them)."),
    NUM("MISP.correlation_limit", MISP, "100", CRITICAL, 0, 1, 1000000,
        "A value with more correlations than this is no longer correlated."),
    ENUM("MISP.correlation_engine", MISP, "Default", CRITICAL, 0, s_correlation_engines,
         "Which correlation engine runs: Default (access-aware) or NoAcl (faster)."),
    BOOL("MISP.disable_auto_logout", MISP, "false", RECOMMENDED, 0,
         "Stops the automatic logout of idle web sessions."),
    TYPED(URL, "MISP.cveurl", MISP, "https://cve.circl.lu/cve/", RECOMMENDED, NULL_OK,
          "Base address vulnerability attributes link to."),
    TYPED(URL, "MISP.cweurl", MISP, "https://cve.circl.lu/cwe/", RECOMMENDED, NULL_OK,
          "Base address weakness attributes link to."),
    STR("MISP.maintenance_message", MISP,
        "The instance is under maintenance and will be back shortly. Contact: $email.", OPTIONAL,
        NULL_OK, 0, TEXT_MAX, "Shown to users while MISP.live is false; $email is MISP.email."),
    STR("MISP.title_text", MISP, "MISP", OPTIONAL, NULL_OK, 0, 255,
        "Text after the page name in browser titles."),
    STR("MISP.welcome_text_top", MISP, NULL, OPTIONAL, NULL_OK, 0, TEXT_MAX,
        "Text above the logo on the login page."),
    STR("MISP.welcome_text_bottom", MISP, NULL, OPTIONAL, NULL_OK, 0, TEXT_MAX,
        "Text below the logo on the login page."),
    STR("MISP.footermidleft", MISP, NULL, OPTIONAL, NULL_OK, 0, 255,
        "Footer text before \"Powered by MISP\"."),
    STR("MISP.footermidright", MISP, NULL, OPTIONAL, NULL_OK, 0, 255,
        "Footer text after \"Powered by MISP\"."),
    STR("MISP.terms_file", MISP, NULL, OPTIONAL, NULL_OK, 0, 255,
        "File name of the terms and conditions users must accept."),
    BOOL("MISP.terms_download", MISP, "false", OPTIONAL, 0,
         "Offers the terms as a download instead of showing them inline."),
    STR("MISP.newUserText", MISP, s_new_user_text, RECOMMENDED, 0, 1, TEXT_MAX,
        "The welcome e-mail of a new user. \\n starts a new line; $password, $username, "
        "$misp (MISP.baseurl), $org (MISP.org) and $contact (MISP.contact) are replaced."),
    STR("MISP.passwordResetText", MISP, s_password_reset_text, RECOMMENDED, 0, 1, TEXT_MAX,
        "The e-mail sent when a password is reset; same placeholders as MISP.newUserText."),
    STR("MISP.name", MISP, NULL, DEPRECATED, 0, 0, 255, "No longer used by MISP; remove it."),
    STR("MISP.header", MISP, NULL, DEPRECATED, 0, 0, 255, "No longer used by MISP; remove it."),
    STR("MISP.footerpart1", MISP, NULL, DEPRECATED, 0, 0, 255,
        "No longer used by MISP; remove it."),

    /* --- background jobs (MISP tab: "whether background jobs are enabled, etc.") ------- */
    BOOL("SimpleBackgroundJobs.enabled", MISP, "true", RECOMMENDED, AB_SETF_PREFER_TRUE,
         "MISP's switch to its Redis-based job system. adminbus always keeps jobs in MariaDB "
         "and runs them on its own workers; false is reported."),
    NUM("SimpleBackgroundJobs.max_job_history_ttl", MISP, "2592000", RECOMMENDED, 0, 60, 315360000,
        "Seconds a finished job (done, failed or cancelled) is kept before the daily "
        "jobs.purge task deletes it. Running workers read it at the start of each purge. "
        "MISP's default is 86400; adminbus keeps 30 days."),
    STR("SimpleBackgroundJobs.redis_host", MISP, NULL, DEPRECATED, 0, 0, 255,
        "MISP's Redis host for jobs; adminbus keeps jobs in MariaDB and needs no Redis."),
    NUM("SimpleBackgroundJobs.redis_port", MISP, NULL, DEPRECATED, 0, 1, 65535,
        "MISP's Redis port for jobs; not used by adminbus."),
    {"SimpleBackgroundJobs.redis_password", AB_TAB_MISP, AB_SET_STRING, NULL, AB_PRIO_DEPRECATED,
     SECRET, 0, 255, NULL, NULL, AB_HOOK_NONE,
     "MISP's Redis password for jobs; not used by adminbus."},
    NUM("SimpleBackgroundJobs.redis_database", MISP, NULL, DEPRECATED, 0, 0, 255,
        "MISP's Redis database number for jobs; not used by adminbus."),
    STR("SimpleBackgroundJobs.redis_namespace", MISP, NULL, DEPRECATED, 0, 0, 255,
        "MISP's Redis key prefix for jobs; not used by adminbus."),
    STR("SimpleBackgroundJobs.supervisor_host", MISP, NULL, DEPRECATED, 0, 0, 255,
        "MISP's supervisord host; adminbus supervises its own workers."),
    NUM("SimpleBackgroundJobs.supervisor_port", MISP, NULL, DEPRECATED, 0, 1, 65535,
        "MISP's supervisord port; not used by adminbus."),
    STR("SimpleBackgroundJobs.supervisor_user", MISP, NULL, DEPRECATED, 0, 0, 255,
        "MISP's supervisord user; not used by adminbus."),
    {"SimpleBackgroundJobs.supervisor_password", AB_TAB_MISP, AB_SET_STRING, NULL,
     AB_PRIO_DEPRECATED, SECRET, 0, 255, NULL, NULL, AB_HOOK_NONE,
     "MISP's supervisord password; not used by adminbus."},

    /* --- Email: the SMTP connection (MISP keeps it in app/Config/email.php, CakeEmail's
     * smtp transport: host, port, username, password, tls, timeout) ------------------- */
    {"Email.host", AB_TAB_MISP, AB_SET_STRING, "localhost", AB_PRIO_CRITICAL, 0, 1, 253, NULL,
     s_check_hostname, AB_HOOK_NONE,
     "The SMTP server e-mail is submitted to (the email workers connect to it)."},
    NUM("Email.port", MISP, "25", CRITICAL, 0, 1, 65535,
        "TCP port of the SMTP server: 25 or 587 for plain and STARTTLS, 465 for implicit TLS."),
    ENUM("Email.tls", MISP, "none", RECOMMENDED, 0, s_smtp_tls,
         "How the connection to the SMTP server is protected: none, starttls (required: the "
         "message is not sent if the server does not offer it) or tls (implicit TLS, port 465)."),
    BOOL("Email.tls_verify", MISP, "true", RECOMMENDED, AB_SETF_PREFER_TRUE,
         "Checks the SMTP server's certificate and name (with starttls and tls)."),
    STR("Email.username", MISP, NULL, OPTIONAL, NULL_OK, 0, 255,
        "User name for SMTP authentication; empty means none."),
    {"Email.password", AB_TAB_MISP, AB_SET_STRING, NULL, AB_PRIO_OPTIONAL, NULL_OK | SECRET, 0,
     1024, NULL, NULL, AB_HOOK_NONE,
     "Password for SMTP authentication. Stored encrypted, never shown or logged."},
    NUM("Email.timeout", MISP, "30", OPTIONAL, 0, 1, 600,
        "Seconds to wait for the SMTP server (to connect, and for each reply) before the "
        "attempt counts as a temporary failure."),

    /* --- GnuPG and S/MIME ------------------------------------------------------------- */
    TYPED(EMAIL, "GnuPG.email", GNUPG, NULL, CRITICAL, 0,
          "The address the instance's own GnuPG key belongs to; e-mails are signed with that "
          "key. Diagnostics checks that the key is in GnuPG.homedir and can sign."),
    {"GnuPG.homedir", AB_TAB_GNUPG, AB_SET_PATH, NULL, AB_PRIO_CRITICAL, AB_SETF_DIR, 0, 0, NULL,
     NULL, AB_HOOK_NONE,
     "The GnuPG home folder holding the instance's key (mode 0700, readable by the daemons)."},
    {"GnuPG.password", AB_TAB_GNUPG, AB_SET_STRING, NULL, AB_PRIO_RECOMMENDED, NULL_OK | SECRET, 0,
     1024, NULL, NULL, AB_HOOK_NONE,
     "The passphrase of the instance's key, if it has one. Stored encrypted under the server "
     "secret, never shown or logged."},
    TYPED(PATH, "GnuPG.binary", GNUPG, "/usr/bin/gpg", OPTIONAL, CLI_ONLY,
          "The gpg program to run; the default suits Debian."),
    BOOL("GnuPG.onlyencrypted", GNUPG, "false", CRITICAL, 0,
         "When true, users without a GnuPG key (or S/MIME certificate) receive no e-mail."),
    BOOL("GnuPG.bodyonlyencrypted", GNUPG, "false", OPTIONAL, 0,
         "When true, unencrypted e-mails carry no event details, only a pointer to the "
         "instance."),
    BOOL("GnuPG.sign", GNUPG, "true", OPTIONAL, 0, "Signs outgoing e-mails with the key."),
    BOOL("GnuPG.obscure_subject", GNUPG, "false", OPTIONAL, 0,
         "Replaces the subject of encrypted e-mails by a neutral one."),
    BOOL("GnuPG.key_fetching_disabled", GNUPG, "false", OPTIONAL, 0,
         "Stops users from fetching their key from a public key server."),
    STR("GnuPG.keyserver", GNUPG, "https://openpgp.circl.lu", OPTIONAL, NULL_OK, 0, 255,
        "The HKP key server (http:// or https:// URL) adminctl user gpg fetch asks when the "
        "address's Web Key Directory has no key; empty: none."),
    STR("GnuPG.wkd_url", GNUPG, NULL, OPTIONAL, NULL_OK, 0, 255,
        "Where Web Key Directory lookups go instead of https://openpgpkey.DOMAIN (a WKD proxy, "
        "or a test server): URL/.well-known/openpgpkey/DOMAIN/hu/HASH?l=LOCAL; empty: the "
        "address's domain."),
    BOOL("SMIME.enabled", GNUPG, "false", OPTIONAL, 0,
         "Encrypts e-mails with S/MIME for users who have a certificate; the GnuPG.onlyencrypted "
         "and GnuPG.bodyonlyencrypted rules apply to it too."),
    TYPED(EMAIL, "SMIME.email", GNUPG, NULL, OPTIONAL, NULL_OK,
          "The address the instance's S/MIME certificate belongs to."),
    TYPED(PATH, "SMIME.cert_public_sign", GNUPG, NULL, OPTIONAL, NULL_OK,
          "The instance's signing certificate (public part, PEM)."),
    TYPED(PATH, "SMIME.key_sign", GNUPG, NULL, OPTIONAL, NULL_OK,
          "The instance's signing key (private part, PEM)."),
    {"SMIME.password", AB_TAB_GNUPG, AB_SET_STRING, NULL, AB_PRIO_OPTIONAL, NULL_OK | SECRET, 0,
     1024, NULL, NULL, AB_HOOK_NONE, "The passphrase of the S/MIME signing key, if any."},

    /* --- Proxy -------------------------------------------------------------------------- */
    {"Proxy.host", AB_TAB_PROXY, AB_SET_STRING, NULL, AB_PRIO_OPTIONAL, NULL_OK, 0, 253, NULL,
     s_check_hostname, AB_HOOK_NONE,
     "Host name of an HTTP proxy for outgoing connections (synchronisation, feeds); empty "
     "means none."},
    NUM("Proxy.port", PROXY, NULL, OPTIONAL, NULL_OK, 1, 65535, "TCP port of the HTTP proxy."),
    ENUM("Proxy.method", PROXY, NULL, OPTIONAL, NULL_OK, s_proxy_methods,
         "How to authenticate to the proxy: Basic or Digest; empty means no authentication."),
    STR("Proxy.user", PROXY, NULL, OPTIONAL, NULL_OK, 0, 255, "User name for the proxy."),
    {"Proxy.password", AB_TAB_PROXY, AB_SET_STRING, NULL, AB_PRIO_OPTIONAL, NULL_OK | SECRET, 0,
     1024, NULL, NULL, AB_HOOK_NONE, "Password for the proxy. Stored encrypted, never shown."},

    /* --- Security, brute-force protection, sessions -------------------------------------- */
    NUM("Security.password_policy_length", SECURITY, "12", OPTIONAL, 0, 8, 256,
        "The fewest characters a password may have (at least 8)."),
    TYPED(REGEX, "Security.password_policy_complexity", SECURITY, s_password_complexity, OPTIONAL,
          0,
          "A PCRE pattern every password must match, bare or /delimited/ as MISP writes it. The "
          "default asks for upper and lower case and a digit or special character, or 16 "
          "characters of anything."),
    BOOL("Security.require_password_confirmation", SECURITY, "false", RECOMMENDED, 0,
         "Asks for the current password before a profile or password change."),
    BOOL("Security.otp_required", SECURITY, "false", OPTIONAL, 0,
         "Every user must log in with a second factor (TOTP/HOTP) and sets one up at the next "
         "login. TOTP needs correct clocks: diagnostics checks them."),
    STR("Security.otp_issuer", SECURITY, NULL, OPTIONAL, NULL_OK, 0, 255,
        "The issuer name authenticator apps show; unset means \"MISP\" and MISP.org."),
    BOOL("Security.email_otp_enabled", SECURITY, "false", OPTIONAL, 0,
         "Sends a one-time code by e-mail as a second login step."),
    NUM("Security.email_otp_length", SECURITY, "6", OPTIONAL, 0, 4, 16,
        "Digits of an e-mailed one-time code."),
    NUM("Security.email_otp_validity", SECURITY, "5", OPTIONAL, 0, 1, 1440,
        "Minutes an e-mailed one-time code stays valid."),
    BOOL("Security.advanced_authkeys", SECURITY, "true", CRITICAL, AB_SETF_PREFER_TRUE,
         "Authkeys are stored only as digests, several per user, with expiry and allowed "
         "addresses. adminbus always works this way."),
    NUM("Security.advanced_authkeys_validity", SECURITY, NULL, OPTIONAL, NULL_OK, 1, 36500,
        "The longest life of a new authkey, in days; unset means no limit."),
    BOOL("Security.log_each_individual_auth_fail", SECURITY, "false", RECOMMENDED, 0,
         "Logs every refused authkey or session as its own auth_fail row, as "
         "Security.auth_fail_log_window 0 does, instead of one row per source and window."),
    NUM("Security.auth_fail_log_window", SECURITY, "10", RECOMMENDED, 0, 0, 86400,
        "Seconds: failed authentications from one address (and naming one user, when the key "
        "or session belongs to one) write at most one auth_fail row per window; the next row "
        "says how many it stands for. 0 writes a row per refused key or session."),
    NUM("Security.auth_fail_throttle_amount", SECURITY, "100", RECOMMENDED, 0, 0, 1000000,
        "Failed authentications from one address within Security.auth_fail_throttle_period "
        "after which every command from that address is refused (unavailable, with "
        "retry_after) until the period ends. 0 never throttles."),
    NUM("Security.auth_fail_throttle_period", SECURITY, "60", RECOMMENDED, 0, 1, 86400,
        "Seconds over which Security.auth_fail_throttle_amount is counted, from an "
        "address's first failure; a throttled address waits until they have passed."),
    BOOL("Security.do_not_log_authkeys", SECURITY, "false", CRITICAL, 0,
         "Masks authkeys in audit rows. adminbus never writes a key to any log: audit rows name "
         "a key by its first and last four characters."),
    BOOL("Security.allow_self_registration", SECURITY, "false", RECOMMENDED, 0,
         "Lets visitors ask for an account; administrators review the requests."),
    BOOL("Security.allow_password_forgotten", SECURITY, "false", RECOMMENDED, 0,
         "Lets users reset a forgotten password by e-mail."),
    BOOL("Security.hide_organisation_index_from_users", SECURITY, "false", RECOMMENDED, 0,
         "Only site administrators see the list of organisations."),
    BOOL("Security.disclose_user_emails", SECURITY, "false", CRITICAL, 0,
         "Shows users' e-mail addresses to users who are not site administrators."),
    BOOL("Security.allow_unsafe_apikey_named_param", SECURITY, "false", CRITICAL,
         AB_SETF_PREFER_FALSE,
         "Accepts an authkey in the URL (?apikey=), where proxies and logs keep it. Only for "
         "legacy tools that cannot send a header."),
    BOOL("Security.rest_client_enable_arbitrary_urls", SECURITY, "false", CRITICAL,
         CLI_ONLY | AB_SETF_PREFER_FALSE,
         "Lets the REST client query any address from the server, internal ones included."),
    BOOL("Security.syslog", SECURITY, "false", CRITICAL, 0,
         "Also sends every audit row to syslog."),
    ENUM("Security.min_tls_version", SECURITY, NULL, OPTIONAL, NULL_OK, s_tls_versions,
         "The oldest TLS version accepted for outgoing connections; unset means the library's "
         "default."),
    {"Security.salt", AB_TAB_SECURITY, AB_SET_STRING, NULL, AB_PRIO_DEPRECATED,
     SECRET | AB_SETF_READONLY, 0, 255, NULL, NULL, AB_HOOK_NONE,
     "MISP's password salt. adminbus hashes passwords on their own and keys with the server "
     "secret ($ADMINBUS_HOME/secrets/server.key), so it has no salt to set."},
    NUM("SecureAuth.amount", SECURITY, "5", CRITICAL, 0, 1, 1000,
        "Failed logins from one address for one account before the account is locked out "
        "(brute-force protection)."),
    NUM("SecureAuth.expire", SECURITY, "300", CRITICAL, 0, 1, 2592000,
        "Seconds a failed login counts against the limit, and so how long a lockout lasts."),
    NUM("Session.timeout", SECURITY, "60", CRITICAL, 0, 1, 525600,
        "Minutes of inactivity after which a web session ends."),
    NUM("Session.cookieTimeout", SECURITY, "10080", CRITICAL, 0, 1, 5256000,
        "Minutes the session cookie lives; keep it well above Session.timeout."),

    /* --- Misc ---------------------------------------------------------------------------- */
    {"debug", AB_TAB_MISC, AB_SET_ENUM, "0", AB_PRIO_CRITICAL, AB_SETF_PREFER_FALSE, 0, 0,
     s_debug_levels, NULL, AB_HOOK_LOG_LEVEL,
     "Debug output: 0 off, 1 or 2 make running engines (at their next batch) and workers (at "
     "their next settings read) log at debug level. Keep 0 in production."},
    BOOL("site_admin_debug", MISC, "false", OPTIONAL, AB_SETF_PREFER_FALSE,
         "Shows debug details to site administrators only."),
};

const size_t ab_settings_len = COUNT(ab_settings);

/* --- names ------------------------------------------------------------------------- */

static const char *const s_tab_names[] = {
#define AB_X_TAB(e, name) name,
    AB_SETTING_TABS(AB_X_TAB)
#undef AB_X_TAB
};

const char *ab_setting_tab_name(ab_setting_tab tab)
{
    return tab < AB_TAB__COUNT ? s_tab_names[tab] : "?";
}

int ab_setting_tab_from_name(const char *name, size_t len)
{
    for (int t = 0; t < AB_TAB__COUNT; t++)
        if (strlen(s_tab_names[t]) == len && memcmp(s_tab_names[t], name, len) == 0)
            return t;
    return -1;
}

const char *ab_setting_type_name(ab_setting_type type)
{
    static const char *const names[] = {"boolean", "numeric", "string", "enum",
                                        "regex",   "url",     "path",   "email"};
    return (size_t)type < COUNT(names) ? names[type] : "?";
}

const char *ab_setting_priority_name(ab_setting_priority prio)
{
    static const char *const names[] = {"critical", "recommended", "optional", "deprecated"};
    return (size_t)prio < COUNT(names) ? names[prio] : "?";
}

/* --- look-up by name: a sorted index built once ------------------------------------ */

static const ab_setting *s_sorted[COUNT(ab_settings)];
static pthread_once_t s_sorted_once = PTHREAD_ONCE_INIT;

static int s_cmp_rows(const void *a, const void *b)
{
    return strcmp((*(const ab_setting *const *)a)->name, (*(const ab_setting *const *)b)->name);
}

static void s_sort(void)
{
    for (size_t i = 0; i < ab_settings_len; i++)
        s_sorted[i] = &ab_settings[i];
    qsort(s_sorted, ab_settings_len, sizeof s_sorted[0], s_cmp_rows);
}

const ab_setting *ab_setting_find(const char *name, size_t len)
{
    if (!name || len == 0)
        return NULL;
    pthread_once(&s_sorted_once, s_sort);
    size_t lo = 0, hi = ab_settings_len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *n = s_sorted[mid]->name;
        size_t nlen = strlen(n);
        int c = memcmp(n, name, nlen < len ? nlen : len);
        if (c == 0)
            c = nlen < len ? -1 : nlen > len ? 1 : 0;
        if (c == 0)
            return s_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* --- casting a wire value to canonical text ----------------------------------------- */

static char *s_dup_trimmed(const char *s, size_t len)
{
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    return len ? strndup(s, len) : strdup(""); /* an empty msgpack str may have no pointer */
}

static char *s_int_text(int64_t n)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)n);
    return strdup(buf);
}

/* A decimal integer (optional sign) in s; 0 or -1. */
static int s_parse_int(const char *s, int64_t *out)
{
    const char *p = s + (*s == '-' || *s == '+');
    if (!isdigit((unsigned char)*p))
        return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return -1;
    errno = 0;
    long long n = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return -1;
    *out = n;
    return 0;
}

static char *s_cast_bool(const ab_setting *s, const msgpack_object *v, ab_error *err)
{
    if (v->type == MSGPACK_OBJECT_BOOLEAN)
        return strdup(v->via.boolean ? "true" : "false");
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= 1)
        return strdup(v->via.u64 ? "true" : "false");
    if (v->type == MSGPACK_OBJECT_STR) {
        char *t = s_dup_trimmed(v->via.str.ptr, v->via.str.size);
        const char *canon = NULL;
        if (t && (strcasecmp(t, "true") == 0 || strcmp(t, "1") == 0))
            canon = "true";
        else if (t && (strcasecmp(t, "false") == 0 || strcmp(t, "0") == 0))
            canon = "false";
        free(t);
        if (canon)
            return strdup(canon);
    }
    ab_fail(err, AB_E_INVALID, "value", "%s is a boolean: give true or false", s->name);
    return NULL;
}

static char *s_cast_numeric(const ab_setting *s, const msgpack_object *v, ab_error *err)
{
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX)
        return s_int_text((int64_t)v->via.u64);
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        return s_int_text(v->via.i64);
    if (v->type == MSGPACK_OBJECT_STR) {
        char *t = s_dup_trimmed(v->via.str.ptr, v->via.str.size);
        int64_t n;
        int rc = t ? s_parse_int(t, &n) : -1;
        free(t);
        if (rc == 0)
            return s_int_text(n);
    }
    ab_fail(err, AB_E_INVALID, "value", "%s is numeric: give an integer", s->name);
    return NULL;
}

char *ab_setting_cast(const ab_setting *s, const msgpack_object *v, ab_error *err)
{
    if (v->type == MSGPACK_OBJECT_NIL) {
        ab_fail(err, AB_E_INVALID, "value",
                "%s needs a value (adminctl setting reset %s returns it to its default)", s->name,
                s->name);
        return NULL;
    }
    if (v->type == MSGPACK_OBJECT_STR) {
        ab_text_fault fault = ab_text_check(v->via.str.ptr, v->via.str.size);
        if (fault != AB_TEXT_OK) {
            ab_fail(err, AB_E_INVALID, "value", "%s: the value %s", s->name,
                    ab_text_fault_text(fault));
            return NULL;
        }
        if (ab_utf8_chars(v->via.str.ptr, v->via.str.size) > VALUE_MAX) {
            ab_fail(err, AB_E_INVALID, "value", "%s: the value is too long (at most %d characters)",
                    s->name, VALUE_MAX);
            return NULL;
        }
    }
    switch (s->type) {
    case AB_SET_BOOL:
        return s_cast_bool(s, v, err);
    case AB_SET_NUMERIC:
        return s_cast_numeric(s, v, err);
    case AB_SET_ENUM:
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= (uint64_t)INT64_MAX)
            return s_int_text((int64_t)v->via.u64);
        if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return s_int_text(v->via.i64);
        break;
    default:
        break;
    }
    if (v->type != MSGPACK_OBJECT_STR) {
        ab_fail(err, AB_E_INVALID, "value", "%s is a %s setting: give a string", s->name,
                ab_setting_type_name(s->type));
        return NULL;
    }
    char *t = s_dup_trimmed(v->via.str.ptr, v->via.str.size);
    if (t && s->hook == AB_HOOK_BASEURL) { /* trailing slashes, not those of "https://" */
        const char *scheme = strstr(t, "://");
        size_t keep = scheme ? (size_t)(scheme - t) + 3 : 0, n = strlen(t);
        while (n > keep && t[n - 1] == '/')
            t[--n] = '\0';
    }
    if (!t)
        ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    return t;
}

/* --- validation ---------------------------------------------------------------------- */

/* A string flag letter of a delimited pattern → PCRE2 option; 0 for an unknown one. */
static uint32_t s_regex_flag(char c)
{
    switch (c) {
    case 'i':
        return PCRE2_CASELESS;
    case 'm':
        return PCRE2_MULTILINE;
    case 's':
        return PCRE2_DOTALL;
    case 'x':
        return PCRE2_EXTENDED;
    case 'u':
        return PCRE2_UTF;
    case 'D':
        return PCRE2_DOLLAR_ENDONLY;
    case 'U':
        return PCRE2_UNGREEDY;
    default:
        return 0;
    }
}

/* Compile a REGEX value (bare or /delimited/flags): the code (caller frees), or NULL with
 * a message. */
static pcre2_code *s_regex_compile(const char *text, char *msg, size_t len)
{
    const char *pat = text;
    size_t plen = strlen(text);
    uint32_t opts = 0;
    if (plen >= 2 && strchr("/#~@%!|", text[0])) {
        const char *end = strrchr(text + 1, text[0]);
        if (!end) {
            snprintf(msg, len, "the pattern starts with the delimiter %c but does not end with it",
                     text[0]);
            return NULL;
        }
        for (const char *f = end + 1; *f; f++) {
            uint32_t o = s_regex_flag(*f);
            if (!o) {
                snprintf(msg, len, "unknown modifier '%c' after the pattern (i, m, s, x, u, D, U)",
                         *f);
                return NULL;
            }
            opts |= o;
        }
        pat = text + 1;
        plen = (size_t)(end - pat);
    }
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, plen, opts, &code, &offset, NULL);
    if (re)
        return re;
    PCRE2_UCHAR why[160];
    if (pcre2_get_error_message(code, why, sizeof why) < 0)
        snprintf((char *)why, sizeof why, "error %d", code);
    snprintf(msg, len, "the regular expression does not compile: %s (at offset %zu)",
             (const char *)why, (size_t)offset);
    return NULL;
}

int ab_setting_regex_check(const char *text, char *msg, size_t len)
{
    pcre2_code *re = s_regex_compile(text, msg, len);
    pcre2_code_free(re);
    return re ? 0 : -1;
}

int ab_setting_regex_match(const char *pattern, const char *subject, size_t slen, char *msg,
                           size_t len)
{
    pcre2_code *re = s_regex_compile(pattern, msg, len);
    if (!re)
        return -1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)subject, slen, 0, 0, md, NULL) : PCRE2_ERROR_NOMEMORY;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    if (rc >= 0)
        return 1;
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    PCRE2_UCHAR why[160];
    if (pcre2_get_error_message(rc, why, sizeof why) < 0)
        snprintf((char *)why, sizeof why, "error %d", rc);
    snprintf(msg, len, "the regular expression failed: %s", (const char *)why);
    return -1;
}

/* http(s)://host[:port][/path?query#fragment]; 0 or -1 with a message. */
static int s_url_check(const char *v, char *msg, size_t len)
{
    const char *p = NULL;
    if (strncasecmp(v, "https://", 8) == 0)
        p = v + 8;
    else if (strncasecmp(v, "http://", 7) == 0)
        p = v + 7;
    if (!p) {
        snprintf(msg, len, "must start with https:// or http://");
        return -1;
    }
    size_t hostlen = strcspn(p, ":/?#");
    if (memchr(p, '@', strcspn(p, "/?#"))) {
        snprintf(msg, len, "must not carry credentials (user@host)");
        return -1;
    }
    if (p[0] == '[') { /* an IPv6 literal */
        const char *close = strchr(p, ']');
        if (!close || close == p + 1 ||
            strspn(p + 1, "0123456789abcdefABCDEF:.") != (size_t)(close - p - 1)) {
            snprintf(msg, len, "has a malformed IPv6 address (use [2001:db8::1])");
            return -1;
        }
        hostlen = (size_t)(close - p) + 1;
    } else if (!s_hostname_ok(p, hostlen)) {
        snprintf(msg, len, "must name a host: https://misp.example.org[:port][/path]");
        return -1;
    }
    const char *q = p + hostlen;
    if (*q == ':') {
        q++;
        size_t digits = strspn(q, "0123456789");
        long port = digits && digits <= 5 ? strtol(q, NULL, 10) : 0;
        if (port < 1 || port > 65535) {
            snprintf(msg, len, "has a port that is not 1-65535");
            return -1;
        }
        q += digits;
    }
    if (*q && *q != '/' && *q != '?' && *q != '#') {
        snprintf(msg, len, "must be https://host[:port][/path]");
        return -1;
    }
    for (; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7F) {
            snprintf(msg, len, "must not contain spaces or control characters");
            return -1;
        }
    return 0;
}

static int s_email_check(const char *v, char *msg, size_t len)
{
    const char *at = strrchr(v, '@');
    size_t n = strlen(v);
    bool ok = at && at != v && at[1] && n <= 254 && (size_t)(at - v) <= 64 &&
              s_hostname_ok(at + 1, strlen(at + 1));
    for (const char *p = v; ok && p < at; p++)
        ok = (unsigned char)*p > 0x20 && *p != 0x7F && !strchr("<>()[]\\,;:\"@", *p);
    if (ok)
        return 0;
    snprintf(msg, len, "must be an e-mail address like misp@example.org");
    return -1;
}

static int s_path_check(const ab_setting *s, const char *v, char *msg, size_t len)
{
    if (v[0] != '/') {
        snprintf(msg, len, "must be an absolute path (starting with /)");
        return -1;
    }
    if (strlen(v) > PATH_MAX_) {
        snprintf(msg, len, "is longer than %d bytes", PATH_MAX_);
        return -1;
    }
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7F) {
            snprintf(msg, len, "must not contain control characters");
            return -1;
        }
    struct stat st;
    if ((s->flags & AB_SETF_DIR) && (stat(v, &st) != 0 || !S_ISDIR(st.st_mode))) {
        snprintf(msg, len, "%s is not an existing directory", v);
        return -1;
    }
    return 0;
}

static int s_enum_check(const ab_setting *s, const char *v, char *msg, size_t len)
{
    char list[200] = "";
    for (const ab_setting_choice *c = s->choices; c && c->value; c++) {
        if (strcmp(c->value, v) == 0)
            return 0;
        strncat(list, c->value, sizeof list - strlen(list) - 1);
        if (c[1].value)
            strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    snprintf(msg, len, "must be one of: %s", list);
    return -1;
}

static int s_range_check(const ab_setting *s, const char *v, char *msg, size_t len)
{
    int64_t n;
    if (s_parse_int(v, &n) < 0) {
        snprintf(msg, len, "must be an integer");
        return -1;
    }
    if (n < s->min || n > s->max) {
        snprintf(msg, len, "must be %s %lld (got %lld)", n < s->min ? "at least" : "at most",
                 (long long)(n < s->min ? s->min : s->max), (long long)n);
        return -1;
    }
    return 0;
}

static int s_text_check(const ab_setting *s, const char *v, char *msg, size_t len)
{
    for (const char *p = v; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r') || *p == 0x7F) {
            snprintf(msg, len, "must not contain control characters");
            return -1;
        }
    size_t chars = ab_utf8_chars(v, strlen(v));
    if ((int64_t)chars < s->min || (int64_t)chars > s->max) {
        if (s->min == s->max)
            snprintf(msg, len, "must have exactly %lld characters", (long long)s->min);
        else
            snprintf(msg, len, "must have %lld to %lld characters (got %zu)", (long long)s->min,
                     (long long)s->max, chars);
        return -1;
    }
    return 0;
}

/* The type's own test of non-empty canonical text; 0 or -1 with a message. */
static int s_type_check(const ab_setting *s, const char *v, char *msg, size_t len)
{
    switch (s->type) {
    case AB_SET_BOOL:
        if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
            return 0;
        snprintf(msg, len, "must be true or false");
        return -1;
    case AB_SET_NUMERIC:
        return s_range_check(s, v, msg, len);
    case AB_SET_STRING:
        return s_text_check(s, v, msg, len);
    case AB_SET_ENUM:
        return s_enum_check(s, v, msg, len);
    case AB_SET_REGEX:
        return ab_setting_regex_check(v, msg, len);
    case AB_SET_URL:
        return s_url_check(v, msg, len);
    case AB_SET_PATH:
        return s_path_check(s, v, msg, len);
    case AB_SET_EMAIL:
        return s_email_check(v, msg, len);
    }
    snprintf(msg, len, "has an unknown type");
    return -1;
}

int ab_setting_validate(const ab_setting *s, const char *text, ab_error *err)
{
    char msg[200];
    if (!text || !*text) {
        if (s->flags & AB_SETF_NULL_OK || s->priority == AB_PRIO_DEPRECATED)
            return 0;
        return ab_fail(err, AB_E_INVALID, "value", "%s must not be empty (%s setting)", s->name,
                       ab_setting_priority_name(s->priority));
    }
    if (s_type_check(s, text, msg, sizeof msg) < 0 ||
        (s->check && s->check(text, msg, sizeof msg) < 0)) {
        /* Only the numeric and path tests quote what they were given; never for a secret. */
        if (s->flags & AB_SETF_SECRET)
            return ab_fail(err, AB_E_INVALID, "value", "%s: the value is not acceptable", s->name);
        return ab_fail(err, AB_E_INVALID, "value", "%s %s", s->name, msg);
    }
    return 0;
}

const char *ab_setting_problem(const ab_setting *s, const char *text, char *buf, size_t len)
{
    bool unset = !text || !*text;
    if (s->priority == AB_PRIO_DEPRECATED) {
        if (unset || (s->def && strcmp(text, s->def) == 0))
            return NULL;
        snprintf(buf, len, "Deprecated: nothing reads it; remove it (adminctl setting reset %s)",
                 s->name);
        return buf;
    }
    if (unset) {
        if (s->flags & AB_SETF_NULL_OK)
            return NULL;
        snprintf(buf, len, "Value not set");
        return buf;
    }
    if (s->flags & AB_SETF_SECRET) /* checked when set; stored encrypted */
        return NULL;
    ab_error err;
    if (ab_setting_validate(s, text, &err) < 0) {
        snprintf(buf, len, "Invalid value: %s", err.message);
        return buf;
    }
    if ((s->flags & AB_SETF_PREFER_TRUE) && strcmp(text, "true") != 0) {
        snprintf(buf, len, "Should be true");
        return buf;
    }
    if ((s->flags & AB_SETF_PREFER_FALSE) && s->def && strcmp(text, s->def) != 0) {
        snprintf(buf, len, "Should be %s on a production system", s->def);
        return buf;
    }
    return NULL;
}

/* --- docs/settings.md ---------------------------------------------------------------- */

/* Print s for a markdown table cell: '|' escaped, line breaks as spaces. */
static void s_md_cell(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

static void s_md_limits(FILE *f, const ab_setting *s)
{
    if (s->type == AB_SET_NUMERIC)
        fprintf(f, "%lld–%lld", (long long)s->min, (long long)s->max);
    else if (s->type == AB_SET_STRING)
        fprintf(f, "%lld–%lld characters", (long long)s->min, (long long)s->max);
    else if (s->type == AB_SET_ENUM)
        for (const ab_setting_choice *c = s->choices; c->value; c++)
            fprintf(f, "%s`%s` %s", c == s->choices ? "" : ", ", c->value, c->label);
    else if (s->type == AB_SET_PATH && (s->flags & AB_SETF_DIR))
        fputs("an existing directory", f);
}

static void s_md_flags(FILE *f, const ab_setting *s)
{
    static const struct {
        unsigned flag;
        const char *text;
    } names[] = {{AB_SETF_NULL_OK, "may be unset"},
                 {AB_SETF_SECRET, "secret"},
                 {AB_SETF_CLI_ONLY, "CLI only"},
                 {AB_SETF_READONLY, "not editable"},
                 {AB_SETF_PREFER_TRUE, "should be true"},
                 {AB_SETF_PREFER_FALSE, "should stay at its default"}};
    static const char *const hooks[] = {"", "trailing / removed", "kept in admin_settings",
                                        "sets the log level"};
    int n = 0;
    for (size_t i = 0; i < COUNT(names); i++)
        if (s->flags & names[i].flag)
            fprintf(f, "%s%s", n++ ? ", " : "", names[i].text);
    if (s->hook != AB_HOOK_NONE)
        fprintf(f, "%sapply: %s", n++ ? ", " : "", hooks[s->hook]);
}

void ab_settings_markdown(FILE *f)
{
    fprintf(f, "<!-- Generated from schemas/settings.c by `build/bin/adminbus-catalog --settings`;"
               " do not edit by hand. -->\n");
    fprintf(f, "# Server settings\n\n");
    fprintf(f,
            "The MISP-level administration settings: %zu rows, with MISP's names so that MISP "
            "administrators find them. Their values live in MariaDB (table `settings`); "
            "changes are validated against the row, audited as `serverSettingsEdit` with "
            "`name (old) => (new)` (secrets as `*****`), announced as the event "
            "`setting.<name>.changed`, and picked up by running engines at their next batch "
            "and by workers at their next read, without a restart.\n\n",
            ab_settings_len);
    fprintf(f,
            "```sh\n"
            "adminctl setting list [--tab misp|gnupg|proxy|security|misc] [--problems]\n"
            "adminctl setting get MISP.baseurl\n"
            "adminctl setting set MISP.default_event_distribution 3\n"
            "adminctl setting set GnuPG.homedir /srv/gnupg --force   # skip validation, audited\n"
            "adminctl setting reset MISP.log_auth                     # back to the default\n"
            "adminctl baseurl https://misp.example.org\n"
            "adminctl settings report > report.json                  # settings + diagnostics\n"
            "adminctl diagnostics                                    # exit 4 when critical\n"
            "```\n\n");
    fprintf(f, "**Settings and bootstrap configuration.** `$ADMINBUS_HOME/adminbus.conf` "
               "(`ADMINBUS_*` variables, flags; broker/wire/config.h) holds only what a process "
               "needs before it can reach the database: the DSN, the bus endpoints, paths, limits "
               "and the log level. Everything an administrator of the platform tunes at run time "
               "is a setting here, stored in the database, shared by every engine and worker, and "
               "changed with an audited command.\n\n");
    fprintf(f, "**Priorities** are MISP's: *critical* (a problem breaks the instance), "
               "*recommended*, *optional*, *deprecated* (nothing reads it; set, it is reported). "
               "A setting has a problem when it is unset and may not be, when its value fails "
               "validation (it was forced, or the rules changed), or when it is not at the "
               "recommended value; `setting list` shows the problem in its `error` column and "
               "counts problems per tab and priority. Types: boolean (true/false), numeric "
               "(integer within the limits), string, enum (one of the listed values), regex "
               "(PCRE2; bare or `/delimited/flags`), url (http(s)), path (absolute), email. "
               "`--force` (site administrators) skips validation but not the type; the audit "
               "row says so. Secret settings are stored encrypted under the server secret and "
               "shown as `*****`. *CLI only* settings will be refused by the HTTP shim.\n\n");
    for (int t = 0; t < AB_TAB__COUNT; t++) {
        fprintf(f, "## Tab `%s`\n\n", ab_setting_tab_name((ab_setting_tab)t));
        fprintf(f, "| setting | type | default | priority | limits | notes | description |\n");
        fprintf(f, "|---|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < ab_settings_len; i++) {
            const ab_setting *s = &ab_settings[i];
            if ((int)s->tab != t)
                continue;
            fprintf(f, "| `%s` | %s | ", s->name, ab_setting_type_name(s->type));
            if (s->def && (s->flags & AB_SETF_SECRET))
                fputs(AB_SECRET_MASK, f);
            else if (s->def && strlen(s->def) > 40)
                fputs("(text, see `setting get`)", f);
            else if (s->def) {
                fputs("`", f);
                s_md_cell(f, s->def);
                fputs("`", f);
            } else
                fputs("unset", f);
            fprintf(f, " | %s | ", ab_setting_priority_name(s->priority));
            s_md_limits(f, s);
            fputs(" | ", f);
            s_md_flags(f, s);
            fputs(" | ", f);
            s_md_cell(f, s->description);
            fputs(" |\n", f);
        }
        fputs("\n", f);
    }
}
