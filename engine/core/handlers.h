/* handlers.h — every command handler (see engine.h for the contract). */
#ifndef AB_HANDLERS_H
#define AB_HANDLERS_H

#include "core/engine.h"
#include "wire/envelope.h"
#include "jobs/jobs.h"

/* Organisations (commands/org.c). */
int ab_org_add(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_org_edit(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_org_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_org_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_org_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
/* org.merge (commands/org_merge.c). */
int ab_org_merge(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* Roles (commands/role.c). */
int ab_role_add(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_role_edit(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_role_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_role_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_role_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_role_set_default(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* Users (commands/user.c). */
int ab_user_add(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_edit(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_disable(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_enable(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_change_pw(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* Authkeys (commands/authkey.c). */
int ab_user_authkey(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_authkey_add(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_authkey_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_authkey_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_authkey_edit(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_authkey_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
/* Logins, sessions, brute force, login addresses (commands/login.c) and OTP (commands/otp.c). */
int ab_auth_login(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_auth_logout(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_bruteforce_clear(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_ips(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_by_ip(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_otp_enrol(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_otp_delete(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* The audit log (commands/log.c). */
int ab_log_search(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* Jobs, workers, queues (commands/job.c). */
/* Enqueue one job of type t for the caller's organisation and user, with payload (the job's
 * msgpack arguments; destroyed here, whatever happens) and input (MISP's job_input text).
 * Returns 0 with *id, or -1 with *err. */
int ab_job_enqueue_for(ab_ctx *ctx, const ab_job_type *t, msgpack_sbuffer *payload,
                       const char *input, uint64_t *id, ab_error *err);
/* For a command that enqueued job id of type t (backup, mail): queue its audit row (MISP's
 * "Job (id): type" with job_type, worker and job_input, then extra_change when not NULL)
 * and its queued event, and pack the start of the reply: a map of 4 + extra entries, id,
 * queue, type and state; the caller packs its extra entries. */
int ab_job_queued_reply(ab_ctx *ctx, msgpack_packer *pk, uint64_t id, const ab_job_type *t,
                        const char *input, const char *extra_change, uint32_t extra, ab_error *err);
int ab_job_enqueue_cmd(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_job_enqueue_many(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_job_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_job_view(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_job_retry(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_job_cancel(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_job_purge(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_worker_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_queue_clear(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_queue_stats(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_job_stats(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* Workers: control and the supervisor's requests (commands/worker.c). */
int ab_worker_start(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_worker_pause(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_worker_resume(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_worker_stop(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_worker_restart(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_worker_kill(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_worker_cleanup(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* Scheduled tasks (commands/task.c). */
int ab_task_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_task_set(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_task_run(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* Backups (commands/backup.c). */
int ab_backup_run(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
/* Mail (commands/mail.c; the sending is mail/mail.c). */
int ab_contact(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_mail_test(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_gpg_fetch(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_mail_status(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_user_reset_password(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* Server settings (commands/setting.c) and the health report (health/diagnostics.c). */
int ab_setting_list(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_setting_get(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_setting_set(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_setting_reset(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_setting_baseurl(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_setting_report(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_diagnostics_run_cmd(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

/* The instance (commands/system.c). */
int ab_auth_whoami(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);
int ab_db_update(ab_ctx *ctx, msgpack_packer *pk, ab_error *err);

#endif
