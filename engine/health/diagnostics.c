/* diagnostics.c — the health report: MISP's Diagnostics tab, for adminbus's parts. Each check
 * says what it found and, when it is not ok, what to do:
 *
 *   database          reachable, at the schema version this engine expects
 *   database.durability
 *                     each COMMIT reaches the disk (and the binary log's, when it is on)
 *   folder.*, disk.*  data folders exist and are writable; free space on their file systems
 *   gnupg             GnuPG.homedir holds a secret key for GnuPG.email that signs with
 *                     GnuPG.password (a real signature, through gpgme)
 *   bus               an event published by this engine comes back through the broker
 *   workers.<queue>   a live worker serves each queue (workers.last_heartbeat)
 *   scheduler         a scheduler holds the lead (tasks fire)
 *   clock             this host's clock agrees with the database's (TOTP needs it) and is
 *                     synchronised
 *   settings          no critical setting is unset or invalid
 *
 * Settings are read through the settings cache, which the engine refreshed at the start of
 * this batch. The checks only read. */
#include "health/diagnostics.h"
#include "mail/gpgme_util.h"

#include <errno.h>
#include <fcntl.h>
#include <gpgme.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

#include "wire/envelope.h"
#include "jobs/jobs.h"
#include "core/handlers.h"
#include "core/migrate.h"
#include "jobs/scheduler.h"
#include "core/settings_cache.h"

#define MIB                 (1024.0 * 1024.0)
#define DISK_CRITICAL_BYTES (100.0 * MIB)
#define DISK_WARNING_BYTES  (1024.0 * MIB)
#define CLOCK_WARNING_MS    2000
#define CLOCK_CRITICAL_MS   30000 /* one TOTP step */
#define WORKER_ALIVE_S      30    /* as worker list counts a worker alive */

const char *ab_diag_status_name(ab_diag_status st)
{
    static const char *const names[] = {"ok", "warning", "critical"};
    return st <= AB_DIAG_CRITICAL ? names[st] : "?";
}

static void s_add(ab_diag_report *r, const char *name, ab_diag_status st, const char *action,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Add a check; action may be NULL (nothing to do). */
static void s_add(ab_diag_report *r, const char *name, ab_diag_status st, const char *action,
                  const char *fmt, ...)
{
    if (r->n >= AB_DIAG_MAX)
        return;
    ab_diag_check *c = &r->checks[r->n++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->found, sizeof c->found, fmt, ap);
    va_end(ap);
    snprintf(c->action, sizeof c->action, "%s", action ? action : "");
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the database ------------------------------------------------------------------------ */

static int s_query_text(ab_db *db, const char *sql, char *out, size_t len, ab_error *err)
{
    ab_rows r;
    out[0] = '\0';
    if (ab_db_query(db, sql, NULL, &r, err) < 0)
        return -1;
    if (ab_rows_next(&r) == 1 && ab_rows_str(&r, 0, NULL))
        snprintf(out, len, "%s", ab_rows_str(&r, 0, NULL));
    ab_rows_close(&r);
    return 0;
}

/* A reply promises that its change survives a crash of the database host: each COMMIT must
 * reach the disk (innodb_flush_log_at_trx_commit=1, MariaDB's default). With the binary log
 * on, its events must too (sync_binlog=1), or a replica or a point-in-time restore from it
 * misses acknowledged commands. */
static int s_check_durability(ab_ctx *ctx, ab_diag_report *r, ab_error *err)
{
    ab_rows rows;
    if (ab_db_query(ctx->db, "SELECT @@innodb_flush_log_at_trx_commit, @@log_bin, @@sync_binlog",
                    NULL, &rows, err) < 0)
        return -1;
    int64_t v[3] = {1, 0, 1}; /* innodb_flush_log_at_trx_commit, log_bin, sync_binlog */
    int got = ab_rows_next(&rows);
    for (int i = 0; got == 1 && i < 3; i++)
        v[i] = ab_rows_int(&rows, i);
    ab_rows_close(&rows);
    if (got != 1)
        return ab_fail(err, AB_E_INTERNAL, NULL, "reading the server's durability settings failed");
    int64_t flush = v[0], log_bin = v[1], sync_binlog = v[2];
    if (flush != 1)
        s_add(r, "database.durability", AB_DIAG_WARNING,
              "set innodb_flush_log_at_trx_commit=1 in the server's configuration ([mariadbd] "
              "section) and apply it at once: SET GLOBAL innodb_flush_log_at_trx_commit = 1",
              "innodb_flush_log_at_trx_commit is %lld: a crash of %s may lose commands that "
              "were acknowledged",
              (long long)flush, flush == 2 ? "the database host" : "MariaDB or its host");
    else if (log_bin && sync_binlog != 1)
        s_add(r, "database.durability", AB_DIAG_WARNING,
              "set sync_binlog=1 in the server's configuration ([mariadbd] section) and apply "
              "it at once: SET GLOBAL sync_binlog = 1",
              "the binary log is on with sync_binlog %lld: after a crash of the database host, "
              "replicas and restores from the binary log may miss acknowledged commands",
              (long long)sync_binlog);
    else
        s_add(r, "database.durability", AB_DIAG_OK, NULL,
              "every COMMIT reaches the disk before its reply (innodb_flush_log_at_trx_commit "
              "1%s)",
              log_bin ? ", sync_binlog 1" : "; no binary log");
    return 0;
}

static int s_check_database(ab_ctx *ctx, ab_diag_report *r, char *datadir, size_t dlen,
                            ab_error *err)
{
    char version[128];
    int current = ab_schema_current(ctx->db, err), latest = ab_schema_latest();
    if (current < 0 ||
        s_query_text(ctx->db, "SELECT VERSION()", version, sizeof version, err) < 0 ||
        s_query_text(ctx->db, "SELECT @@datadir", datadir, dlen, err) < 0)
        return -1;
    if (current < latest)
        s_add(r, "database", AB_DIAG_CRITICAL,
              "run: adminctl db update (engines also migrate at start)",
              "MariaDB %s is reachable, but the database is at schema version %d and this engine "
              "expects %d",
              version, current, latest);
    else if (current > latest)
        s_add(r, "database", AB_DIAG_CRITICAL,
              "upgrade this engine to the version that wrote the schema",
              "MariaDB %s is reachable, but the database is at schema version %d, newer than this "
              "engine's %d",
              version, current, latest);
    else
        s_add(r, "database", AB_DIAG_OK, NULL,
              "MariaDB %s is reachable; schema version %d, as this engine expects", version,
              current);
    return s_check_durability(ctx, r, err);
}

/* --- folders and disk space --------------------------------------------------------------- */

/* Try to create and remove a file in dir. 0 or -1 with errno. */
static int s_writable(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/.adminbus-diagnostics-XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    int rc = write(fd, "x", 1) == 1 ? 0 : -1;
    int saved = errno;
    close(fd);
    unlink(path);
    errno = saved;
    return rc;
}

typedef struct {
    char label[32];
    char path[4200];
} s_folder;

/* One folder: exists, is a directory, is writable. configured = named by a setting (a
 * missing one is then critical; a missing default only a warning). Returns true when the
 * folder exists (for the disk check). */
static bool s_check_folder(ab_diag_report *r, const char *label, const char *path,
                           const char *setting, bool configured)
{
    char name[64], action[512];
    snprintf(name, sizeof name, "folder.%s", label);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (setting)
            snprintf(action, sizeof action,
                     "create it (mkdir -p %.300s), or set %s to an existing "
                     "folder",
                     path, setting);
        else
            snprintf(action, sizeof action, "create it: mkdir -p %.300s", path);
        char why[96];
        if (!setting)
            snprintf(why, sizeof why, "$ADMINBUS_HOME");
        else if (configured)
            snprintf(why, sizeof why, "%s", setting);
        else
            snprintf(why, sizeof why, "the default of %s, which is unset", setting);
        s_add(r, name, configured ? AB_DIAG_CRITICAL : AB_DIAG_WARNING, action,
              "%s (%s) does not exist", path, why);
        return false;
    }
    if (s_writable(path) < 0) {
        int e = errno;
        snprintf(action, sizeof action,
                 "give the user the daemons run as (uid %d) write access: chown or chmod %.300s",
                 (int)geteuid(), path);
        s_add(r, name, AB_DIAG_CRITICAL, action, "%s is not writable: %s", path, strerror(e));
        return true;
    }
    s_add(r, name, AB_DIAG_OK, NULL, "%s is writable", path);
    return true;
}

/* The server secret's folder and file: only their owner may read them. */
static void s_check_secrets(ab_diag_report *r, const char *home)
{
    char dir[4200], key[4300], action[600];
    snprintf(dir, sizeof dir, "%s/secrets", home);
    snprintf(key, sizeof key, "%s/server.key", dir);
    struct stat sd, sk;
    if (stat(dir, &sd) != 0 || stat(key, &sk) != 0) {
        s_add(r, "folder.secrets", AB_DIAG_CRITICAL,
              "restore server.key from a backup (authkeys and secret settings depend on it)",
              "%s is missing", key);
        return;
    }
    if ((sd.st_mode & 077) || (sk.st_mode & 077)) {
        snprintf(action, sizeof action, "chmod 700 %.250s && chmod 600 %.250s", dir, key);
        s_add(r, "folder.secrets", AB_DIAG_WARNING, action,
              "%s (mode %03o) or %s (mode %03o) can be read by other users", dir,
              (unsigned)(sd.st_mode & 0777), key, (unsigned)(sk.st_mode & 0777));
        return;
    }
    s_add(r, "folder.secrets", AB_DIAG_OK, NULL, "%s is readable by its owner only", key);
}

static void s_check_disk(ab_diag_report *r, const s_folder *folders, int n)
{
    dev_t seen[8];
    int nseen = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        struct statvfs vfs;
        if (stat(folders[i].path, &st) != 0 || statvfs(folders[i].path, &vfs) != 0)
            continue;
        bool dup = false;
        for (int j = 0; j < nseen; j++)
            dup = dup || seen[j] == st.st_dev;
        if (dup || nseen == 8)
            continue;
        seen[nseen++] = st.st_dev;
        double total = (double)vfs.f_blocks * (double)vfs.f_frsize;
        double avail = (double)vfs.f_bavail * (double)vfs.f_frsize;
        double pct = total > 0 ? avail * 100.0 / total : 0;
        char name[64], action[600];
        snprintf(name, sizeof name, "disk.%s", folders[i].label);
        snprintf(
            action, sizeof action,
            "free space on the file system of %.300s (purge old jobs: adminctl job purge --all; "
            "move backups away)",
            folders[i].path);
        ab_diag_status st_ = AB_DIAG_OK;
        if (avail < DISK_CRITICAL_BYTES || pct < 1.0)
            st_ = AB_DIAG_CRITICAL;
        else if (avail < DISK_WARNING_BYTES || pct < 5.0)
            st_ = AB_DIAG_WARNING;
        s_add(r, name, st_, st_ == AB_DIAG_OK ? NULL : action,
              "%.0f MiB free of %.0f MiB (%.1f %%) on the file system of %s", avail / MIB,
              total / MIB, pct, folders[i].path);
    }
}

static void s_check_folders(ab_ctx *ctx, ab_diag_report *r, const char *datadir)
{
    s_folder folders[5];
    int n = 0;
    const char *home = ctx->engine->home;
    if (home) {
        if (s_check_folder(r, "home", home, NULL, true)) {
            snprintf(folders[n].label, sizeof folders[n].label, "home");
            snprintf(folders[n++].path, sizeof folders[0].path, "%s", home);
        }
        s_check_secrets(r, home);
    }
    static const struct {
        const char *label, *setting, *dflt;
    } dirs[] = {{"tmp", "MISP.tmpdir", "tmp"}, {"files", "MISP.attachments_dir", "files"}};
    for (size_t i = 0; i < 2; i++) {
        char *set = ab_settings_get(dirs[i].setting);
        char path[4200];
        if (!set && !home) {
            continue;
        }
        if (set)
            snprintf(path, sizeof path, "%s", set);
        else
            snprintf(path, sizeof path, "%s/%s", home, dirs[i].dflt);
        if (s_check_folder(r, dirs[i].label, path, dirs[i].setting, set != NULL)) {
            snprintf(folders[n].label, sizeof folders[n].label, "%s", dirs[i].label);
            snprintf(folders[n++].path, sizeof folders[0].path, "%s", path);
        }
        free(set);
    }
    struct stat st;
    if (datadir[0] && stat(datadir, &st) == 0 && S_ISDIR(st.st_mode)) { /* a local server */
        snprintf(folders[n].label, sizeof folders[n].label, "database");
        snprintf(folders[n++].path, sizeof folders[0].path, "%s", datadir);
    }
    s_check_disk(r, folders, n);
}

/* --- GnuPG -------------------------------------------------------------------------------- */

typedef struct {
    char found[512], action[512];
    ab_diag_status st;
} s_gpg_result;

static void s_gpg_fail(s_gpg_result *g, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_gpg_fail(s_gpg_result *g, const char *action, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->found, sizeof g->found, fmt, ap);
    va_end(ap);
    snprintf(g->action, sizeof g->action, "%s", action);
    g->st = AB_DIAG_CRITICAL;
}

/* Find the secret key of email in home and make a detached signature with it. */
static void s_gpg_sign(gpgme_ctx_t c, const char *home, const char *email, s_gpg_result *g)
{
    char action[512];
    gpgme_key_t key = NULL, k = NULL;
    const char *why = NULL;
    gpgme_error_t e = gpgme_op_keylist_start(c, email, 1);
    while (!e && !(e = gpgme_op_keylist_next(c, &k))) {
        const char *u = ab_gpgme_key_unusable(k, true);
        if (!u && !key) {
            key = k;
            continue;
        }
        why = why ? why : u;
        gpgme_key_unref(k);
    }
    gpgme_op_keylist_end(c);
    if (e && gpg_err_code(e) != GPG_ERR_EOF) {
        snprintf(action, sizeof action,
                 "check that gpg runs (GnuPG.binary) and that %s is a GnuPG home folder", home);
        s_gpg_fail(g, action, "listing the keys in %s failed: %s", home, gpgme_strerror(e));
    } else if (!key) {
        snprintf(action, sizeof action,
                 "import the instance's secret key (gpg --homedir %s --import KEY.asc) or set "
                 "GnuPG.email to the address of a key in that folder",
                 home);
        if (why)
            s_gpg_fail(g, action, "the secret key for %s in %s %s", email, home, why);
        else
            s_gpg_fail(g, action, "%s has no secret key for %s", home, email);
    }
    if (!key)
        return;
    gpgme_data_t in = NULL, out = NULL;
    static const char text[] = "adminbus diagnostics: can the instance key sign?\n";
    gpgme_signers_clear(c);
    e = gpgme_signers_add(c, key);
    if (!e)
        e = gpgme_data_new_from_mem(&in, text, sizeof text - 1, 0);
    if (!e)
        e = gpgme_data_new(&out);
    if (!e)
        e = gpgme_op_sign(c, in, out, GPGME_SIG_MODE_DETACH);
    gpgme_data_release(in);
    gpgme_data_release(out);
    const char *fpr = key->fpr ? key->fpr : "?";
    gpgme_error_t code = gpg_err_code(e);
    if (code == GPG_ERR_BAD_PASSPHRASE || code == GPG_ERR_NO_PASSPHRASE ||
        code == GPG_ERR_CANCELED) {
        s_gpg_fail(g, "set the key's passphrase: adminctl setting set GnuPG.password PASSPHRASE",
                   "GnuPG.password does not unlock the secret key %s of %s", fpr, email);
    } else if (e) {
        s_gpg_fail(g, "check the key with gpg --homedir HOME --list-secret-keys, and GnuPG.binary",
                   "signing with the key %s of %s failed: %s", fpr, email, gpgme_strerror(e));
    } else {
        g->st = AB_DIAG_OK;
        snprintf(g->found, sizeof g->found, "the secret key %s of %s in %s signs", fpr, email,
                 home);
    }
    gpgme_key_unref(key);
}

static void s_check_gnupg(ab_ctx *ctx, ab_diag_report *r)
{
    char *home = ab_settings_get("GnuPG.homedir"), *email = ab_settings_get("GnuPG.email");
    char *binary = ab_settings_get("GnuPG.binary"), *pw = NULL;
    s_gpg_result g = {.st = AB_DIAG_CRITICAL};
    char action[600];
    struct stat st;
    if (!home || !email) {
        s_gpg_fail(&g,
                   "adminctl setting set GnuPG.homedir FOLDER (the GnuPG home holding the "
                   "instance's key) and adminctl setting set GnuPG.email ADDRESS",
                   "%s not set: e-mails go out unsigned (still encrypted to users with a "
                   "key)",
                   !home && !email ? "GnuPG.homedir and GnuPG.email are"
                   : !home         ? "GnuPG.homedir is"
                                   : "GnuPG.email is");
    } else if (stat(home, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(action, sizeof action,
                 "create it (mkdir -m 700 %s) and import the instance's secret key (gpg --homedir "
                 "%s --import KEY.asc), or set GnuPG.homedir to the folder that holds it",
                 home, home);
        s_gpg_fail(&g, action, "GnuPG.homedir %s does not exist or is not a folder", home);
    } else if (access(home, R_OK | W_OK | X_OK) != 0) {
        snprintf(action, sizeof action,
                 "give the user the daemons run as (uid %d) access: chown -R that user %s; "
                 "chmod 700 %s",
                 (int)geteuid(), home, home);
        s_gpg_fail(&g, action, "GnuPG.homedir %s is not readable and writable by the engine", home);
    } else if (ctx->engine->secret &&
               ab_settings_secret("GnuPG.password", ctx->engine->secret, &pw) < 0) {
        s_gpg_fail(&g, "set it again: adminctl setting set GnuPG.password PASSPHRASE",
                   "GnuPG.password cannot be opened with this server's secret (it was sealed "
                   "under another server.key)");
    } else {
        gpgme_ctx_t c = NULL;
        gpgme_error_t e = ab_gpgme_context(&c, binary, home, pw);
        if (e) {
            snprintf(action, sizeof action, "install GnuPG, or set GnuPG.binary (now %s)",
                     binary ? binary : "unset");
            s_gpg_fail(&g, action, "GnuPG cannot be used: %s", gpgme_strerror(e));
        } else {
            s_gpg_sign(c, home, email, &g);
            gpgme_release(c);
        }
    }
    s_add(r, "gnupg", g.st, g.st == AB_DIAG_OK ? NULL : g.action, "%s", g.found);
    if (pw) {
        memset(pw, 0, strlen(pw));
        free(pw);
    }
    free(home);
    free(email);
    free(binary);
}

/* --- the bus, the workers, the scheduler --------------------------------------------------- */

static void s_check_bus(ab_ctx *ctx, ab_diag_report *r)
{
    if (!ctx->engine->bus_probe)
        return;
    char found[400];
    if (ctx->engine->bus_probe(ctx->engine->bus_ctx, found, sizeof found) == 0)
        s_add(r, "bus", AB_DIAG_OK, NULL, "commands reach this engine (this one did); %s", found);
    else
        s_add(r, "bus", AB_DIAG_CRITICAL,
              "check that adminbus-broker runs and that publish_endpoint and events_endpoint in "
              "adminbus.conf are the broker's",
              "commands reach this engine, but %s (job progress, worker wake-ups and "
              "monitors depend on it)",
              found);
}

#define NQUEUES 5
static const char *const s_queues[NQUEUES] = {"default", "prio", "cache", "email", "update"};

typedef struct {
    int live, paused, stale;
    int64_t ready;
    char live_ids[300];
    char last_gone[160]; /* the most recent worker that stopped or died */
    int64_t last_gone_ms;
} s_queue_state;

static int s_queue_of(const char *q)
{
    for (int i = 0; i < NQUEUES; i++)
        if (q && strcmp(q, s_queues[i]) == 0)
            return i;
    return -1;
}

static int s_load_workers(ab_ctx *ctx, s_queue_state *qs, ab_error *err)
{
    ab_rows r;
    if (ab_db_query(ctx->db,
                    "SELECT queue, id, status, last_heartbeat > UTC_TIMESTAMP(3) - INTERVAL 30 "
                    "SECOND, " AB_SQL_MS(
                        "last_heartbeat") " FROM workers WHERE status <> 'dead' "
                                          "OR last_heartbeat > UTC_TIMESTAMP(3) - INTERVAL 1 DAY",
                    NULL, &r, err) < 0)
        return -1;
    while (ab_rows_next(&r) == 1) {
        int q = s_queue_of(ab_rows_str(&r, 0, NULL));
        if (q < 0)
            continue;
        s_queue_state *s = &qs[q];
        const char *id = ab_rows_str(&r, 1, NULL), *status = ab_rows_str(&r, 2, NULL);
        bool alive = ab_rows_int(&r, 3) != 0, dead = status && strcmp(status, "dead") == 0;
        int64_t beat = ab_rows_int(&r, 4);
        if (alive && !dead && status && strcmp(status, "ok") == 0) {
            size_t n = strlen(s->live_ids);
            snprintf(s->live_ids + n, sizeof s->live_ids - n, "%s%s", n ? ", " : "", id);
            s->live++;
        } else if (alive && !dead && status && strcmp(status, "paused") == 0) {
            s->paused++;
        } else {
            s->stale += !dead; /* died without saying so: its heartbeat stopped */
            if (beat > s->last_gone_ms) {
                s->last_gone_ms = beat;
                snprintf(s->last_gone, sizeof s->last_gone, "%s (%s)", id,
                         dead ? "stopped" : "heartbeat lost");
            }
        }
    }
    ab_rows_close(&r);
    if (ab_db_query(ctx->db,
                    "SELECT worker, COUNT(*) FROM job_ready WHERE run_at <= UTC_TIMESTAMP(3) "
                    "GROUP BY worker",
                    NULL, &r, err) < 0)
        return -1;
    while (ab_rows_next(&r) == 1) {
        int q = s_queue_of(ab_rows_str(&r, 0, NULL));
        if (q >= 0)
            qs[q].ready = ab_rows_int(&r, 1);
    }
    ab_rows_close(&r);
    return 0;
}

static int s_check_workers(ab_ctx *ctx, ab_diag_report *r, ab_error *err)
{
    s_queue_state qs[NQUEUES];
    memset(qs, 0, sizeof qs);
    if (s_load_workers(ctx, qs, err) < 0)
        return -1;
    for (int q = 0; q < NQUEUES; q++) {
        const s_queue_state *s = &qs[q];
        char name[64], action[600], gone[300] = "";
        snprintf(name, sizeof name, "workers.%s", s_queues[q]);
        if (s->last_gone[0]) {
            char when[32];
            ab_iso_utc(s->last_gone_ms / 1000, when, sizeof when);
            snprintf(gone, sizeof gone, "; the last to go was %s at %s", s->last_gone, when);
        }
        snprintf(action, sizeof action,
                 "start one: adminbus-worker --queue %s (ops/run starts one per queue and "
                 "restarts those that die)",
                 s_queues[q]);
        if (s->live > 0 && s->stale == 0)
            s_add(r, name, AB_DIAG_OK, NULL, "%d worker(s) alive: %s; %lld job(s) ready", s->live,
                  s->live_ids, (long long)s->ready);
        else if (s->live > 0)
            s_add(r, name, AB_DIAG_WARNING,
                  "nothing urgent: the live workers serve the queue and the jobs of the lost one "
                  "run again when their lease ends; find out why it died (its log)",
                  "%d worker(s) alive (%s), %d lost without stopping%s", s->live, s->live_ids,
                  s->stale, gone);
        else if (s->paused > 0)
            s_add(r, name, AB_DIAG_WARNING,
                  "resume one: adminctl worker list, then adminctl worker resume ID",
                  "only paused workers (%d) serve queue %s; %lld job(s) wait", s->paused,
                  s_queues[q], (long long)s->ready);
        else
            s_add(r, name, AB_DIAG_CRITICAL, action,
                  "no live worker serves queue %s: its jobs do not run (%lld ready)%s", s_queues[q],
                  (long long)s->ready, gone);
    }
    return 0;
}

static int s_check_scheduler(ab_ctx *ctx, ab_diag_report *r, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, AB_SCHEDULER_LOCK);
    int64_t holder = 0;
    if (ab_db_scalar(ctx->db, "SELECT IS_USED_LOCK(?)", &p, &holder, err) < 0)
        return -1;
    if (holder > 0)
        s_add(r, "scheduler", AB_DIAG_OK, NULL,
              "a scheduler leads (it holds the lock %s on connection %lld)", AB_SCHEDULER_LOCK,
              (long long)holder);
    else
        s_add(r, "scheduler", AB_DIAG_WARNING,
              "start adminbus-scheduler (ops/run starts one); more than one may run",
              "no scheduler holds the lock %s: scheduled tasks (purges, pulls) do not fire",
              AB_SCHEDULER_LOCK);
    return 0;
}

/* --- clock and settings ---------------------------------------------------------------------- */

static int s_check_clock(ab_ctx *ctx, ab_diag_report *r, ab_error *err)
{
    int64_t t0 = s_now_ms(), db_ms = 0;
    if (ab_db_scalar(ctx->db, "SELECT " AB_SQL_MS("UTC_TIMESTAMP(3)"), NULL, &db_ms, err) < 0)
        return -1;
    int64_t t1 = s_now_ms();
    int64_t skew = db_ms - (t0 + t1) / 2, abs_skew = skew < 0 ? -skew : skew;
    struct timex tx;
    memset(&tx, 0, sizeof tx);
    int state = adjtimex(&tx);
    bool unsynced = state == TIME_ERROR || (state >= 0 && (tx.status & STA_UNSYNC));
    const char *action = "synchronise the clocks of this host and the database host with NTP "
                         "(chrony or systemd-timesyncd)";
    if (abs_skew > CLOCK_CRITICAL_MS)
        s_add(r, "clock", AB_DIAG_CRITICAL, action,
              "this host's clock is %lld ms %s the database's: more than a TOTP step (30 s), "
              "so one-time codes fail",
              (long long)abs_skew, skew > 0 ? "behind" : "ahead of");
    else if (abs_skew > CLOCK_WARNING_MS || unsynced)
        s_add(r, "clock", AB_DIAG_WARNING, action,
              "this host's clock is %lld ms %s the database's%s", (long long)abs_skew,
              skew > 0 ? "behind" : "ahead of",
              unsynced ? "; the kernel reports it as not synchronised" : "");
    else
        s_add(r, "clock", AB_DIAG_OK, NULL,
              "this host's clock agrees with the database's within %lld ms and is synchronised",
              (long long)abs_skew);
    return 0;
}

static int s_check_settings(ab_ctx *ctx, ab_diag_report *r, ab_error *err)
{
    int counts[AB_TAB__COUNT][AB_PRIO__COUNT];
    char names[300];
    if (ab_setting_problem_counts(ctx, counts, AB_PRIO_CRITICAL, names, sizeof names, err) < 0)
        return -1;
    int by[AB_PRIO__COUNT] = {0};
    for (int t = 0; t < AB_TAB__COUNT; t++)
        for (int p = 0; p < AB_PRIO__COUNT; p++)
            by[p] += counts[t][p];
    if (by[AB_PRIO_CRITICAL])
        s_add(r, "settings", AB_DIAG_CRITICAL,
              "adminctl setting list --problems; then adminctl setting set NAME VALUE",
              "%d critical setting(s) unset or invalid: %s", by[AB_PRIO_CRITICAL], names);
    else if (by[AB_PRIO_RECOMMENDED])
        s_add(r, "settings", AB_DIAG_WARNING, "adminctl setting list --problems",
              "%d recommended setting(s) have a problem", by[AB_PRIO_RECOMMENDED]);
    else
        s_add(r, "settings", AB_DIAG_OK, NULL,
              "no critical or recommended setting has a problem (%d optional, %d deprecated)",
              by[AB_PRIO_OPTIONAL], by[AB_PRIO_DEPRECATED]);
    return 0;
}

int ab_diagnostics_run(ab_ctx *ctx, ab_diag_report *r, ab_error *err)
{
    char datadir[1024];
    r->n = 0;
    if (s_check_database(ctx, r, datadir, sizeof datadir, err) < 0)
        return -1;
    s_check_folders(ctx, r, datadir);
    s_check_gnupg(ctx, r);
    s_check_bus(ctx, r);
    if (s_check_workers(ctx, r, err) < 0 || s_check_scheduler(ctx, r, err) < 0 ||
        s_check_clock(ctx, r, err) < 0 || s_check_settings(ctx, r, err) < 0)
        return -1;
    return 0;
}

void ab_diagnostics_pack(msgpack_packer *pk, const ab_diag_report *r)
{
    int counts[3] = {0};
    ab_diag_status worst = AB_DIAG_OK;
    for (int i = 0; i < r->n; i++) {
        counts[r->checks[i].status]++;
        worst = r->checks[i].status > worst ? r->checks[i].status : worst;
    }
    msgpack_pack_map(pk, 4);
    ab_pack_kv_cstr(pk, "status", ab_diag_status_name(worst));
    ab_pack_kv_bool(pk, "critical", worst == AB_DIAG_CRITICAL);
    ab_pack_cstr(pk, "counts");
    msgpack_pack_map(pk, 3);
    for (int s = 0; s < 3; s++)
        ab_pack_kv_int(pk, ab_diag_status_name((ab_diag_status)s), counts[s]);
    ab_pack_cstr(pk, "checks");
    msgpack_pack_array(pk, (uint32_t)r->n);
    for (int i = 0; i < r->n; i++) {
        const ab_diag_check *c = &r->checks[i];
        msgpack_pack_map(pk, 4);
        ab_pack_kv_cstr(pk, "name", c->name);
        ab_pack_kv_cstr(pk, "status", ab_diag_status_name(c->status));
        ab_pack_kv_cstr(pk, "found", c->found);
        ab_pack_kv_cstr(pk, "action", c->action[0] ? c->action : NULL);
    }
}

int ab_diagnostics_run_cmd(ab_ctx *ctx, msgpack_packer *pk, ab_error *err)
{
    ab_diag_report *r = calloc(1, sizeof *r);
    if (!r)
        return ab_fail(err, AB_E_INTERNAL, NULL, "out of memory");
    int rc = ab_diagnostics_run(ctx, r, err);
    if (rc == 0)
        ab_diagnostics_pack(pk, r);
    free(r);
    return rc;
}
