/* backup.c — the `backup` job: a consistent database dump, the settings, the server secrets
 * and the data folder in one archive with a checksummed manifest (see backup.h and
 * docs/architecture.md, "Backup and restore").
 *
 * The steps, each reporting progress and stopping when the job is cancelled:
 *   1. find the GnuPG key when encrypt_to is given (before any work: a wrong key fails fast);
 *   2. dump the database with `mariadb-dump --single-transaction` (one consistent snapshot
 *      of our InnoDB tables) into an unlinked temporary file; the credentials go in a 0600
 *      option file, never on a command line;
 *   3. stream a tar.gz of the dump, adminbus.conf, secrets/, files/ and curve/ (manifest last) into
 *      a 0600 temporary file in backups/, through GnuPG when encrypting (nothing plain is
 *      staged on disk but the dump);
 *   4. fsync, rename to the final name, fsync the folder: never a half archive under the
 *      final name. */
#include "backup/backup.h"
#include "mail/gpgme_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gpgme.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backup/archive.h"
#include "wire/config.h"
#include "wire/envelope.h"
#include "wire/log.h"
#include "core/migrate.h"
#include "auth/secret.h"
#include "core/settings_cache.h"

extern char **environ;

#define DATA_DIR "files"
/* The broker's CURVE keys (server pair, the daemons' internal pair, allowed clients):
 * without them a restored broker would have a new server key and every client's
 * ADMINBUS_CURVE_SERVERKEY would stop matching. */
#define CURVE_DIR    "curve"
#define SECRETS_DIR  "secrets"
#define SERVER_KEY   "secrets/server.key"
#define GNUPG_PREFIX "home/gnupg" /* the instance's GnuPG home (GnuPG.homedir) in the archive */
#define WALK_DEPTH   32
#define POLL_MS      200
#define REPORT_BYTES (4u << 20) /* report archive progress at least every 4 MiB */
#define CNF_FD       3          /* the option file's descriptor in mariadb-dump */

const ab_arg ab_backup_args[AB_BACKUP_NARGS] = {
    {"encrypt_to", AB_ARG_STR, false, false, 3, 254, NULL,
     "Encrypt the archive to this GnuPG key: fingerprint, long key id or e-mail address "
     "(the worker's keyring)",
     0},
};

typedef struct {
    ab_job_run *run;
    ab_config cfg;
    bool cfg_loaded;
    char home[PATH_MAX];
    char dir[PATH_MAX + 16];  /* home/backups */
    char name[128];           /* the archive's final name */
    char tmp[PATH_MAX + 160]; /* its temporary path while written */
    char final[PATH_MAX + 160];
    bool renamed;
    int out_fd;
    int64_t created_s;
    int schema;
    char database[256];
    char host[256];
    char recipient[256]; /* as given */
    char fpr[64];        /* the key's fingerprint, "" when not encrypting */
    gpgme_ctx_t gctx;
    gpgme_key_t key;
    ab_archive *ar;
    uint64_t written;
    uint64_t reported_bytes;
    size_t skipped;
    bool stopped;
    ab_error read_err;         /* why the producer failed inside GnuPG's read callback */
    char gnupg_home[PATH_MAX]; /* GnuPG.homedir as archived, "" when none */
    bool in_gnupg_home;        /* walking it: GnuPG's sockets and locks are not news */
} s_backup;

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Report progress; -1 (with *err) when the job must stop. */
static int s_progress(s_backup *b, int pct, ab_error *err, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ab_job_progress(b->run, pct, msg) < 0) {
        b->stopped = true;
        return ab_fail(err, AB_E_UNAVAILABLE, NULL,
                       "backup stopped (cancelled or worker stopping)");
    }
    return 0;
}

/* --- the recipient ------------------------------------------------------------------------ */

static bool s_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

/* The hex digits of a fingerprint or key id without 0x; NULL when s is not one. */
static const char *s_key_hex(const char *s, size_t len, size_t *hexlen)
{
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        len -= 2;
    }
    *hexlen = len;
    return (len == 40 || len == 16) && s_hex(s, len) ? s : NULL;
}

static bool s_email(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (!at || at == s || at == s + len - 1 || memchr(at + 1, '@', (size_t)(s + len - at - 1)))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == '\\' || c == ',')
            return false;
    }
    return memchr(at + 1, '.', (size_t)(s + len - at - 1)) != NULL;
}

int ab_backup_check_recipient(const char *s, size_t len, ab_error *err)
{
    size_t hl;
    if (s_key_hex(s, len, &hl) || s_email(s, len))
        return 0;
    return ab_fail(err, AB_E_INVALID, "encrypt_to",
                   "encrypt_to must be a GnuPG key fingerprint (40 hex digits), a long key id "
                   "(16 hex digits) or an e-mail address");
}

static const char *s_gnupg_home(void)
{
    const char *h = getenv("GNUPGHOME");
    return h && *h ? h : "~/.gnupg";
}

static bool s_usable(gpgme_key_t k)
{
    return !k->revoked && !k->expired && !k->disabled && !k->invalid && k->can_encrypt;
}

/* Find exactly one usable public key for b->recipient in the worker's keyring. */
static int s_find_key(s_backup *b, ab_error *err)
{
    ab_gpgme_init();
    if (gpgme_engine_check_version(GPGME_PROTOCOL_OpenPGP) != 0)
        return ab_fail(err, AB_E_INVALID, "encrypt_to",
                       "cannot encrypt: GnuPG (gpg) is not installed on the worker's host "
                       "(ops/deps installs it)");
    gpgme_error_t e = gpgme_new(&b->gctx);
    if (e)
        return ab_fail(err, AB_E_INTERNAL, NULL, "GnuPG: %s", gpgme_strerror(e));
    gpgme_set_protocol(b->gctx, GPGME_PROTOCOL_OpenPGP);
    gpgme_set_armor(b->gctx, 0);
    char pattern[300];
    size_t hl;
    const char *hex = s_key_hex(b->recipient, strlen(b->recipient), &hl);
    if (hex)
        snprintf(pattern, sizeof pattern, "%.*s", (int)hl, hex);
    else /* an e-mail address: <addr> matches it exactly, not as a sub-string */
        snprintf(pattern, sizeof pattern, "<%s>", b->recipient);
    e = gpgme_op_keylist_start(b->gctx, pattern, 0);
    int found = 0, unusable = 0;
    char fprs[200] = "";
    gpgme_key_t k = NULL;
    while (!e && !(e = gpgme_op_keylist_next(b->gctx, &k))) {
        if (!s_usable(k)) {
            unusable++;
            gpgme_key_unref(k);
            continue;
        }
        found++;
        if (strlen(fprs) + 45 < sizeof fprs)
            snprintf(fprs + strlen(fprs), sizeof fprs - strlen(fprs), "%s%s", *fprs ? ", " : "",
                     k->fpr ? k->fpr : "?");
        if (!b->key)
            b->key = k;
        else
            gpgme_key_unref(k);
    }
    gpgme_op_keylist_end(b->gctx);
    if (e && gpgme_err_code(e) != GPG_ERR_EOF)
        return ab_fail(err, AB_E_INTERNAL, "encrypt_to", "GnuPG cannot list keys in %s: %s",
                       s_gnupg_home(), gpgme_strerror(e));
    if (found == 0)
        return ab_fail(err, AB_E_INVALID, "encrypt_to",
                       "no usable public key for encrypt_to '%.80s' in the worker's GnuPG home "
                       "%.60s%s: import it there (gpg --import) or name another key",
                       b->recipient, s_gnupg_home(),
                       unusable ? " (matching keys are expired, revoked or cannot encrypt)" : "");
    if (found > 1)
        return ab_fail(err, AB_E_INVALID, "encrypt_to",
                       "encrypt_to '%.60s' matches %d keys (%s): give the fingerprint",
                       b->recipient, found, fprs);
    snprintf(b->fpr, sizeof b->fpr, "%s", b->key->fpr ? b->key->fpr : "");
    return 0;
}

/* --- paths ------------------------------------------------------------------------------- */

/* The job's ids in file names. */
static void s_job_tag(const s_backup *b, char *out, size_t len)
{
    snprintf(out, len, "-job%llu.tar.gz", (unsigned long long)ab_job_id(b->run));
}

/* Temporary files of earlier attempts of this job (a worker that died mid-backup). */
static void s_remove_stale(const s_backup *b)
{
    DIR *d = opendir(b->dir);
    if (!d)
        return;
    char tag[64];
    s_job_tag(b, tag, sizeof tag);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 4 && e->d_name[0] == '.' &&
            strncmp(e->d_name + 1, AB_BACKUP_PREFIX, strlen(AB_BACKUP_PREFIX)) == 0 &&
            strcmp(e->d_name + n - 4, ".tmp") == 0 && strstr(e->d_name, tag)) {
            if (unlinkat(dirfd(d), e->d_name, 0) == 0)
                AB_INFO("backup job %llu: removed %s/%s left by an earlier attempt",
                        (unsigned long long)ab_job_id(b->run), b->dir, e->d_name);
        }
    }
    closedir(d);
}

static int s_paths(s_backup *b, ab_error *err)
{
    /* Job handlers do not see the worker's flags: home and db_dsn come from the
     * environment and adminbus.conf, as for every process of this home. */
    char msg[256], prog[] = "adminbus-worker", *argv[] = {prog, NULL};
    int argc = 1;
    if (ab_config_load(&b->cfg, &argc, argv, msg, sizeof msg) < 0) {
        ab_config_free(&b->cfg);
        return ab_fail(err, AB_E_INTERNAL, NULL, "configuration: %s", msg);
    }
    b->cfg_loaded = true;
    if (!realpath(b->cfg.home, b->home))
        return ab_fail(err, AB_E_INTERNAL, NULL, "ADMINBUS_HOME %s: %s", b->cfg.home,
                       strerror(errno));
    if (!*b->cfg.db_dsn)
        return ab_fail(err, AB_E_INTERNAL, NULL, "no db_dsn in %s/adminbus.conf or ADMINBUS_DB_DSN",
                       b->home);
    snprintf(b->dir, sizeof b->dir, "%s/%s", b->home, AB_BACKUP_DIR);
    if (mkdir(b->dir, 0700) != 0 && errno != EEXIST)
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot create %s: %s", b->dir, strerror(errno));
    struct tm tm;
    time_t now = time(NULL);
    b->created_s = (int64_t)now;
    gmtime_r(&now, &tm);
    char stamp[32], tag[64];
    strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", &tm);
    s_job_tag(b, tag, sizeof tag);
    snprintf(b->name, sizeof b->name, "%s%s%s%s", AB_BACKUP_PREFIX, stamp, tag,
             *b->recipient ? ".gpg" : "");
    snprintf(b->final, sizeof b->final, "%s/%s", b->dir, b->name);
    snprintf(b->tmp, sizeof b->tmp, "%s/.%s.tmp", b->dir, b->name);
    gethostname(b->host, sizeof b->host - 1);
    s_remove_stale(b);
    return 0;
}

/* An unlinked temporary file in the backups folder (it vanishes with the process). */
static int s_anon_file(const s_backup *b, ab_error *err)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/.%sscratch.XXXXXX", b->dir, AB_BACKUP_PREFIX);
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot create a file in %s: %s", b->dir,
                       strerror(errno));
    unlink(path);
    return fd;
}

/* --- the database dump ----------------------------------------------------------------- */

/* One option-file line key=value; the value quoted (the file format knows \\ escapes). */
static int s_cnf_line(FILE *f, const char *key, const char *value)
{
    if (!value || !*value)
        return 0;
    if (strpbrk(value, "\n\r"))
        return -1;
    char q = strchr(value, '"') ? '\'' : '"';
    if (q == '\'' && strchr(value, '\''))
        return -1;
    fprintf(f, "%s=%c", key, q);
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            fputc('\\', f);
        fputc(*p, f);
    }
    fprintf(f, "%c\n", q);
    return 0;
}

/* The connection settings of db_dsn as a MariaDB option file, in an unlinked 0600 file:
 * mariadb-dump reads it as /proc/self/fd/3, so the credentials are never on a command
 * line nor under a name on disk. Returns the descriptor or -1. */
static int s_write_cnf(s_backup *b, const ab_dsn *d, ab_error *err)
{
    int fd = s_anon_file(b, err);
    if (fd < 0)
        return -1;
    if (fd == CNF_FD) { /* dup2 onto itself would keep close-on-exec */
        int moved = fcntl(fd, F_DUPFD_CLOEXEC, CNF_FD + 1);
        close(fd);
        if ((fd = moved) < 0)
            return ab_fail(err, AB_E_INTERNAL, NULL, "out of file descriptors");
    }
    FILE *f = fdopen(dup(fd), "w");
    if (!f) {
        close(fd);
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    }
    char port[16] = "";
    if (d->port)
        snprintf(port, sizeof port, "%u", d->port);
    fprintf(f, "[client]\n");
    int rc = 0;
    rc |= s_cnf_line(f, "user", d->user);
    rc |= s_cnf_line(f, "password", d->password);
    rc |= s_cnf_line(f, "host", d->host);
    rc |= s_cnf_line(f, "port", port);
    rc |= s_cnf_line(f, "socket", d->socket);
    if (fclose(f) != 0)
        rc = -1;
    if (rc < 0) {
        close(fd);
        return ab_fail(err, AB_E_INTERNAL, NULL,
                       "db_dsn has a value mariadb-dump cannot take (a newline, or both kinds "
                       "of quotes)");
    }
    return fd;
}

/* The last line the child wrote to its error file, for the job's message. */
static void s_last_line(int fd, char *out, size_t len)
{
    char buf[2048];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, from);
    buf[n > 0 ? n : 0] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    const char *line = strrchr(buf, '\n');
    line = line ? line + 1 : buf;
    size_t l = strlen(line) < len - 1 ? strlen(line) : len - 1;
    memcpy(out, line, l);
    out[l] = '\0';
    if (!*out)
        snprintf(out, len, "no message");
}

static int s_spawn_dump(const char *db, int cnf, int out, int errfd, pid_t *pid, ab_error *err)
{
    char *argv[] = {"mariadb-dump",
                    "--defaults-file=/proc/self/fd/3", /* CNF_FD; must come first */
                    "--single-transaction",
                    "--quick",
                    "--hex-blob",
                    "--no-tablespaces",
                    "--skip-lock-tables",
                    "--triggers",
                    "--default-character-set=utf8mb4",
                    "--",
                    (char *)db,
                    NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, errfd, 2);
    posix_spawn_file_actions_adddup2(&fa, cnf, CNF_FD);
    posix_spawnattr_init(&at);
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    sigaddset(&dflt, SIGTERM);
    sigaddset(&dflt, SIGINT);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawnp(pid, "mariadb-dump", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc == ENOENT)
        return ab_fail(err, AB_E_INVALID, NULL,
                       "mariadb-dump not found in the worker's PATH: install mariadb-client "
                       "(ops/deps)");
    if (rc != 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot start mariadb-dump: %s", strerror(rc));
    return 0;
}

/* Wait for the dump, reporting its size against the estimate; kill it when told to stop. */
static int s_wait_dump(s_backup *b, pid_t pid, int out, int64_t estimate, int *status,
                       ab_error *err)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return ab_fail(err, AB_E_INTERNAL, NULL, "waiting for mariadb-dump: %s",
                           strerror(errno));
        struct timespec ts = {0, POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        struct stat st;
        int64_t size = fstat(out, &st) == 0 ? (int64_t)st.st_size : 0;
        int pct = 5 + (int)(55 * (size < estimate ? size : estimate) / estimate);
        if (s_progress(b, pct, err, "Dumping the database: %lld KiB written",
                       (long long)(size / 1024)) < 0) {
            kill(pid, SIGTERM);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
    }
}

/* Dump the database into an unlinked temporary file; its descriptor in *out. */
static int s_dump(s_backup *b, int *out, ab_error *err)
{
    ab_dsn d;
    char msg[256];
    if (ab_dsn_parse(b->cfg.db_dsn, &d, msg, sizeof msg) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "db_dsn: %s", msg);
    snprintf(b->database, sizeof b->database, "%s", d.database);
    int64_t estimate = 0;
    ab_error ignored;
    ab_db_scalar(ab_job_db(b->run),
                 "SELECT COALESCE(SUM(data_length), 0) FROM information_schema.tables WHERE "
                 "table_schema = DATABASE()",
                 NULL, &estimate, &ignored);
    estimate = estimate > 0 ? estimate : 1;
    int rc = -1, dfd = -1, efd = -1, cnf = -1, status = 0;
    pid_t pid = 0;
    if ((dfd = s_anon_file(b, err)) < 0 || (efd = s_anon_file(b, err)) < 0 ||
        (cnf = s_write_cnf(b, &d, err)) < 0 ||
        s_spawn_dump(d.database, cnf, dfd, efd, &pid, err) < 0 ||
        s_wait_dump(b, pid, dfd, estimate, &status, err) < 0)
        goto out;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        s_last_line(efd, msg, sizeof msg);
        ab_fail(err, AB_E_UNAVAILABLE, NULL, "mariadb-dump failed (%s %d): %.180s",
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), msg);
        goto out;
    }
    *out = dfd;
    dfd = -1;
    rc = 0;
out:
    if (cnf >= 0)
        close(cnf);
    if (dfd >= 0)
        close(dfd);
    if (efd >= 0)
        close(efd);
    ab_dsn_free(&d);
    return rc;
}

/* --- the members ------------------------------------------------------------------------ */

static int s_name_cmp(const struct dirent **x, const struct dirent **y)
{
    return strcmp((*x)->d_name, (*y)->d_name);
}

/* In the GnuPG home: what a running gpg-agent or gpg leaves beside the keys (sockets, lock
 * files), which a restored home must not inherit (a stale lock makes gpg wait). */
static bool s_gnupg_transient(const char *name, const struct stat *st)
{
    size_t n = strlen(name);
    return S_ISSOCK(st->st_mode) || S_ISFIFO(st->st_mode) || strncmp(name, ".#lk", 4) == 0 ||
           (n > 5 && strcmp(name + n - 5, ".lock") == 0);
}

/* Add every regular file under path (a folder) as prefix/…; other kinds and names a tar
 * member cannot have are skipped with a warning. */
static int s_walk(s_backup *b, const char *path, const char *prefix, int depth, ab_error *err)
{
    if (depth > WALK_DEPTH) {
        AB_WARN("backup: %s is nested deeper than %d folders: skipped", path, WALK_DEPTH);
        b->skipped++;
        return 0;
    }
    struct dirent **list = NULL;
    int n = scandir(path, &list, NULL, s_name_cmp);
    if (n < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot read %.150s: %s", path, strerror(errno));
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *e = list[i]->d_name;
        if (rc == 0 && strcmp(e, ".") != 0 && strcmp(e, "..") != 0) {
            char full[PATH_MAX], name[PATH_MAX];
            struct stat st;
            if (snprintf(full, sizeof full, "%s/%s", path, e) >= (int)sizeof full ||
                snprintf(name, sizeof name, "%s/%s", prefix, e) >= (int)sizeof name) {
                AB_WARN("backup: a path under %s is too long: skipped", path);
                b->skipped++;
            } else if (lstat(full, &st) != 0) {
                AB_WARN("backup: %s: %s: skipped", full, strerror(errno));
                b->skipped++;
            } else if (b->in_gnupg_home && s_gnupg_transient(e, &st)) {
                /* gpg-agent's sockets and GnuPG's lock files: nothing to restore */
            } else if (S_ISDIR(st.st_mode)) {
                rc = s_walk(b, full, name, depth + 1, err);
            } else if (!S_ISREG(st.st_mode) || !ab_archive_name_ok(name)) {
                AB_WARN("backup: %s is not a regular file or has a name a backup cannot carry: "
                        "skipped",
                        full);
                b->skipped++;
            } else if (ab_archive_add_path(b->ar, name, full, (uint64_t)st.st_size, st.st_mode,
                                           (int64_t)st.st_mtime) < 0) {
                rc = ab_fail(err, AB_E_INTERNAL, NULL, "archive: %s", ab_archive_error(b->ar));
            }
        }
        free(list[i]);
    }
    free(list);
    return rc;
}

/* The manifest (the archive's last member): what ops/restore checks. */
static char *s_manifest(const ab_archive *a, void *arg, size_t *len)
{
    const s_backup *b = arg;
    size_t n = ab_archive_count(a), cap = 1024 + n * (AB_ARCHIVE_NAME_MAX + 120), used = 0;
    char *m = malloc(cap);
    if (!m)
        return NULL;
    char created[32];
    struct tm tm;
    time_t t = (time_t)b->created_s;
    gmtime_r(&t, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    used +=
        (size_t)snprintf(m + used, cap - used,
                         "adminbus backup manifest\n"
                         "format: %d\n"
                         "created: %s\n"
                         "host: %s\n"
                         "job: %llu\n"
                         "adminbus_version: %s\n"
                         "schema_version: %d\n"
                         "database: %s\n"
                         "encrypted_to: %s\n"
                         "gnupg_home: %s\n"
                         "members: %zu\n",
                         AB_BACKUP_FORMAT, created, b->host, (unsigned long long)ab_job_id(b->run),
                         AB_VERSION, b->schema, b->database, *b->fpr ? b->fpr : "none",
                         *b->gnupg_home ? b->gnupg_home : "none", n);
    for (size_t i = 0; i < n; i++) {
        ab_archive_member mb = ab_archive_member_at(a, i);
        char hex[65];
        ab_hex32(mb.sha256, hex);
        used += (size_t)snprintf(m + used, cap - used, "file: %s %llu %04o %s\n", hex,
                                 (unsigned long long)mb.size, mb.mode, mb.name);
    }
    uint8_t self[32];
    char hex[65];
    ab_sha256_pair(m, used, NULL, 0, self);
    ab_hex32(self, hex);
    used += (size_t)snprintf(m + used, cap - used, "manifest_sha256: %s\n", hex);
    *len = used;
    return m;
}

static int s_add_file(s_backup *b, const char *rel, bool required, ab_error *err)
{
    char full[PATH_MAX * 2], name[PATH_MAX];
    snprintf(full, sizeof full, "%s/%s", b->home, rel);
    snprintf(name, sizeof name, "home/%s", rel);
    struct stat st;
    if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (required)
            return ab_fail(err, AB_E_INTERNAL, NULL,
                           "%.150s is missing: a backup without it could not be restored", full);
        return 0;
    }
    if (ab_archive_add_path(b->ar, name, full, (uint64_t)st.st_size, st.st_mode,
                            (int64_t)st.st_mtime) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "archive: %s", ab_archive_error(b->ar));
    return 0;
}

static int s_add_tree(s_backup *b, const char *rel, ab_error *err)
{
    char full[PATH_MAX * 2], prefix[PATH_MAX];
    snprintf(full, sizeof full, "%s/%s", b->home, rel);
    snprintf(prefix, sizeof prefix, "home/%s", rel);
    struct stat st;
    if (stat(full, &st) != 0 || !S_ISDIR(st.st_mode)) /* a symlinked folder is followed */
        return 0;
    return s_walk(b, full, prefix, 0, err);
}

/* The instance's GnuPG home (GnuPG.homedir: the key that signs every e-mail) as
 * home/gnupg/…, wherever it lives: without it a restored instance could not sign
 * (issue 6, acceptance 6). The secret key travels as GnuPG keeps it, protected by its
 * passphrase (GnuPG.password, sealed in the settings table under the server secret); the
 * archive is 0600 and holds the server secret anyway. ops/restore puts it back as
 * $ADMINBUS_HOME/gnupg and points GnuPG.homedir there. */
static int s_add_gnupg_home(s_backup *b, ab_error *err)
{
    if (ab_settings_sync(ab_job_db(b->run), err) < 0)
        return -1;
    char *home = ab_settings_get("GnuPG.homedir");
    char real[PATH_MAX];
    struct stat st;
    bool usable = home && *home && realpath(home, real) && stat(real, &st) == 0 &&
                  S_ISDIR(st.st_mode) && !strpbrk(real, "\r\n");
    if (home && *home && !usable)
        AB_WARN("backup: GnuPG.homedir %s is not a readable folder: the instance's GnuPG key is "
                "not in this backup",
                home);
    free(home);
    if (!usable)
        return 0;
    snprintf(b->gnupg_home, sizeof b->gnupg_home, "%s", real);
    b->in_gnupg_home = true;
    int rc = s_walk(b, real, GNUPG_PREFIX, 0, err);
    b->in_gnupg_home = false;
    return rc;
}

static int s_members(s_backup *b, int dump_fd, ab_error *err)
{
    b->ar = ab_archive_new(6);
    if (!b->ar) {
        close(dump_fd);
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    }
    struct stat st;
    fstat(dump_fd, &st);
    if (ab_archive_add_fd(b->ar, "db/adminbus.sql", dump_fd, (uint64_t)st.st_size, 0600,
                          (int64_t)b->created_s) < 0 ||
        ab_archive_set_last(b->ar, "MANIFEST", 0600, s_manifest, b) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "archive: %s", ab_archive_error(b->ar));
    /* The server key first (required), then anything else in secrets/, the settings file,
     * and the data folder. */
    if (s_add_file(b, SERVER_KEY, true, err) < 0)
        return -1;
    struct dirent **list = NULL;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/%s", b->home, SECRETS_DIR);
    int n = scandir(dir, &list, NULL, s_name_cmp);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char rel[PATH_MAX];
        snprintf(rel, sizeof rel, "%s/%s", SECRETS_DIR, list[i]->d_name);
        if (rc == 0 && list[i]->d_name[0] != '.' && strcmp(rel, SERVER_KEY) != 0)
            rc = s_add_file(b, rel, false, err);
        free(list[i]);
    }
    free(list);
    if (rc < 0 || s_add_file(b, "adminbus.conf", false, err) < 0 ||
        s_add_tree(b, DATA_DIR, err) < 0 || s_add_tree(b, CURVE_DIR, err) < 0 ||
        s_add_gnupg_home(b, err) < 0)
        return -1;
    return 0;
}

/* --- writing ------------------------------------------------------------------------------ */

static int s_report_archive(s_backup *b, ab_error *err)
{
    uint64_t total = ab_archive_bytes_total(b->ar), done = ab_archive_bytes_done(b->ar);
    int pct = 60 + (int)(35 * (total ? (done > total ? total : done) : 1) / (total ? total : 1));
    b->reported_bytes = done;
    return s_progress(b, pct, err, "Archiving%s: %llu of %llu KiB",
                      *b->fpr ? " and encrypting" : "", (unsigned long long)(done / 1024),
                      (unsigned long long)(total / 1024));
}

static int s_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int s_write_plain(s_backup *b, ab_error *err)
{
    char buf[64 * 1024];
    int64_t last = s_mono_ms();
    for (;;) {
        ssize_t n = ab_archive_read(b->ar, buf, sizeof buf);
        if (n < 0)
            return ab_fail(err, AB_E_UNAVAILABLE, NULL, "archive: %s", ab_archive_error(b->ar));
        if (n == 0)
            return 0;
        if (s_write_all(b->out_fd, buf, (size_t)n) < 0)
            return ab_fail(err, AB_E_INTERNAL, NULL, "cannot write %.150s: %s", b->tmp,
                           strerror(errno));
        b->written += (uint64_t)n;
        if (ab_archive_bytes_done(b->ar) - b->reported_bytes >= REPORT_BYTES ||
            s_mono_ms() - last >= POLL_MS) {
            last = s_mono_ms();
            if (s_report_archive(b, err) < 0)
                return -1;
        }
    }
}

/* GnuPG pulls the plain archive through this callback. */
static ssize_t s_gpg_read(void *handle, void *buf, size_t size)
{
    s_backup *b = handle;
    if (ab_archive_bytes_done(b->ar) - b->reported_bytes >= REPORT_BYTES &&
        s_report_archive(b, &b->read_err) < 0) {
        errno = ECANCELED;
        return -1;
    }
    ssize_t n = ab_archive_read(b->ar, buf, size);
    if (n < 0) {
        ab_fail(&b->read_err, AB_E_UNAVAILABLE, NULL, "archive: %s", ab_archive_error(b->ar));
        errno = EIO;
    }
    return n;
}

static int s_write_encrypted(s_backup *b, ab_error *err)
{
    struct gpgme_data_cbs cbs = {.read = s_gpg_read};
    gpgme_data_t plain = NULL, cipher = NULL;
    gpgme_error_t e = gpgme_data_new_from_cbs(&plain, &cbs, b);
    if (!e)
        e = gpgme_data_new_from_fd(&cipher, b->out_fd);
    gpgme_key_t keys[2] = {b->key, NULL};
    b->read_err.code = AB_E_INTERNAL;
    b->read_err.message[0] = '\0';
    if (!e)
        e = gpgme_op_encrypt(b->gctx, keys, GPGME_ENCRYPT_ALWAYS_TRUST | GPGME_ENCRYPT_NO_COMPRESS,
                             plain, cipher);
    gpgme_data_release(plain);
    gpgme_data_release(cipher);
    if (!e)
        return 0;
    if (b->read_err.message[0]) {
        *err = b->read_err;
        return -1;
    }
    return ab_fail(err, AB_E_INTERNAL, NULL, "GnuPG could not encrypt to %s: %s", b->fpr,
                   gpgme_strerror(e));
}

static int s_write(s_backup *b, ab_error *err)
{
    b->out_fd = open(b->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (b->out_fd < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot create %.150s: %s", b->tmp,
                       strerror(errno));
    fchmod(b->out_fd, 0600);
    if (s_report_archive(b, err) < 0)
        return -1;
    if ((*b->fpr ? s_write_encrypted(b, err) : s_write_plain(b, err)) < 0)
        return -1;
    if (fsync(b->out_fd) != 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot write %.150s: %s", b->tmp,
                       strerror(errno));
    struct stat st;
    if (fstat(b->out_fd, &st) == 0)
        b->written = (uint64_t)st.st_size;
    close(b->out_fd);
    b->out_fd = -1;
    if (s_progress(b, 98, err, "Archive complete: %llu bytes", (unsigned long long)b->written) < 0)
        return -1;
    if (rename(b->tmp, b->final) != 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "cannot rename %.100s to %.100s: %s", b->tmp,
                       b->final, strerror(errno));
    b->renamed = true;
    int dfd = open(b->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* --- the job ------------------------------------------------------------------------------- */

static int s_schema(s_backup *b, int *version, ab_error *err)
{
    *version = ab_schema_current(ab_job_db(b->run), err);
    return *version < 0 ? -1 : 0;
}

static int s_run(s_backup *b, const msgpack_object *args, ab_error *err)
{
    const msgpack_object *to = args ? ab_map_get(args, "encrypt_to") : NULL;
    if (to && to->type == MSGPACK_OBJECT_STR) {
        if (ab_backup_check_recipient(to->via.str.ptr, to->via.str.size, err) < 0)
            return -1;
        snprintf(b->recipient, sizeof b->recipient, "%.*s", (int)to->via.str.size, to->via.str.ptr);
    }
    if (s_progress(b, 1, err, "Starting the backup") < 0 || s_paths(b, err) < 0 ||
        (*b->recipient && s_find_key(b, err) < 0) || s_schema(b, &b->schema, err) < 0 ||
        s_progress(b, 5, err, "Dumping the database") < 0)
        return -1;
    int dump_fd = -1, after = 0;
    if (s_dump(b, &dump_fd, err) < 0)
        return -1;
    if (s_schema(b, &after, err) < 0) {
        close(dump_fd);
        return -1;
    }
    if (after != b->schema) {
        close(dump_fd);
        return ab_fail(err, AB_E_UNAVAILABLE, NULL,
                       "the schema changed from version %d to %d during the dump (a migration "
                       "ran): the backup will be retried",
                       b->schema, after);
    }
    if (s_members(b, dump_fd, err) < 0 || s_write(b, err) < 0)
        return -1;
    size_t files = ab_archive_count(b->ar) - 1; /* not the manifest */
    char skipped[64] = "", enc[64] = "";
    if (b->skipped)
        snprintf(skipped, sizeof skipped, ", %zu skipped (see the worker's log)", b->skipped);
    if (*b->fpr)
        snprintf(enc, sizeof enc, ", encrypted to %.40s", b->fpr);
    AB_INFO("backup job %llu: wrote %s (%llu bytes, %zu files and a manifest%s%s)",
            (unsigned long long)ab_job_id(b->run), b->final, (unsigned long long)b->written, files,
            skipped, enc);
    /* The job's message, kept when it is done: where the archive is, relative to the home. */
    char msg[256];
    snprintf(msg, sizeof msg,
             "Backup written: %s/%s (%llu bytes, %zu files and a manifest, schema version %d%s%s)",
             AB_BACKUP_DIR, b->name, (unsigned long long)b->written, files, b->schema, enc,
             skipped);
    ab_job_progress(b->run, 100, msg);
    return 0;
}

int ab_backup_job(ab_job_run *run, const msgpack_object *args, ab_error *err)
{
    s_backup *b = calloc(1, sizeof *b);
    if (!b)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    b->run = run;
    b->out_fd = -1;
    int rc = s_run(b, args, err);
    if (b->out_fd >= 0)
        close(b->out_fd);
    if (!b->renamed && *b->tmp)
        unlink(b->tmp);
    if (rc < 0)
        AB_WARN("backup job %llu failed: %s", (unsigned long long)ab_job_id(run), err->message);
    ab_archive_destroy(&b->ar);
    if (b->key)
        gpgme_key_unref(b->key);
    if (b->gctx)
        gpgme_release(b->gctx);
    if (b->cfg_loaded)
        ab_config_free(&b->cfg);
    free(b);
    return rc;
}
