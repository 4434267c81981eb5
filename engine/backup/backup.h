/* backup.h — the `backup` job (engine/backup/backup.c) and the `backup.run` command that enqueues
 * it (engine/commands/backup.c). What goes into an archive and how ops/restore reads it:
 * docs/architecture.md, "Backup and restore". */
#ifndef AB_BACKUP_H
#define AB_BACKUP_H

#include <msgpack.h>
#include <stddef.h>

#include "catalog.h"
#include "wire/errors.h"
#include "jobs/jobs.h"

/* The archive format ops/restore reads (the manifest's `format:` line). */
#define AB_BACKUP_FORMAT 1

/* Archives go to $ADMINBUS_HOME/backups (mode 0700), named
 * adminbus-backup-YYYYMMDD_HHMMSS-job<ID>.tar.gz, with .gpg appended when encrypted. */
#define AB_BACKUP_DIR    "backups"
#define AB_BACKUP_PREFIX "adminbus-backup-"

/* The job type's arguments (validated like a command's). */
#define AB_BACKUP_NARGS 1
extern const ab_arg ab_backup_args[AB_BACKUP_NARGS];

/* Check the syntax of a GnuPG recipient: a fingerprint (40 hex digits), a long key id (16
 * hex digits), either with an optional 0x, or an e-mail address. Returns 0, or -1 with
 * *err invalid, field encrypt_to. Whether such a key exists is the worker's to find out
 * (its keyring). */
int ab_backup_check_recipient(const char *s, size_t len, ab_error *err);

/* The job: a consistent database dump, adminbus.conf, the server secrets and the data
 * folder in one 0600 archive with a checksummed manifest, optionally encrypted to
 * encrypt_to. Reports progress and stops when cancelled. */
int ab_backup_job(ab_job_run *run, const msgpack_object *args, ab_error *err);

#endif
