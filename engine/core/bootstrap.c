/* bootstrap.c — see bootstrap.h. */
#include "core/bootstrap.h"

#include <stdio.h>
#include <string.h>

#include "core/audit.h"

static const ab_actor s_system = {0, "", "SYSTEM", NULL};

static int s_host_org(ab_db *db, const char *name, ab_audit *audit, uint64_t *id, ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, name);
    int64_t existing = 0;
    if (ab_db_scalar(db, "SELECT id FROM organisations WHERE name = ?", &p, &existing, err) < 0)
        return -1;
    if (existing) {
        *id = (uint64_t)existing;
        return 0;
    }
    char uuid[37];
    if (ab_uuid_v4(uuid) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "no randomness available");
    ab_params_init(&p);
    ab_param_cstr(&p, name);
    ab_param_cstr(&p, uuid);
    if (ab_db_run(db,
                  "INSERT INTO organisations (name, uuid, description, local, created_by, "
                  "date_created, date_modified) VALUES (?, ?, 'The host organisation', 1, 0, "
                  "UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))",
                  &p, id, NULL, err) < 0)
        return -1;
    char title[1400], change[400];
    snprintf(title, sizeof title, "Organisation (%llu): %s", (unsigned long long)*id, name);
    snprintf(change, sizeof change, "name () => (%s), uuid () => (%s), local () => (1)", name,
             uuid);
    return ab_audit_add(audit, &s_system, "Organisation", *id, "add", title, change);
}

static int s_record_host(ab_db *db, uint64_t org_id, ab_error *err)
{
    char value[24];
    snprintf(value, sizeof value, "%llu", (unsigned long long)org_id);
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, "host_org_id");
    ab_param_cstr(&p, value);
    return ab_db_run(db,
                     "INSERT INTO admin_settings (setting, value) VALUES (?, ?) "
                     "ON DUPLICATE KEY UPDATE value = VALUES(value)",
                     &p, NULL, NULL, err);
}

static int s_admin(ab_db *db, uint64_t org_id, const char *email, ab_audit *audit, uint64_t *id,
                   ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, email);
    ab_param_int(&p, (int64_t)org_id);
    if (ab_db_run(db,
                  "INSERT INTO users (email, org_id, role_id, termsaccepted, change_pw, "
                  "date_created, date_modified) VALUES (?, ?, 1, 1, 0, UTC_TIMESTAMP(3), "
                  "UTC_TIMESTAMP(3))",
                  &p, id, NULL, err) < 0)
        return -1;
    char title[1400], change[400];
    snprintf(title, sizeof title, "User (%llu): %s", (unsigned long long)*id, email);
    snprintf(change, sizeof change, "email () => (%s), org_id () => (%llu), role_id () => (1)",
             email, (unsigned long long)org_id);
    return ab_audit_add(audit, &s_system, "User", *id, "add", title, change);
}

static int s_authkey(ab_db *db, const ab_secret *secret, uint64_t user_id, ab_audit *audit,
                     char key[AB_AUTHKEY_LEN + 1], ab_error *err)
{
    if (ab_authkey_new(key) < 0)
        return ab_fail(err, AB_E_INTERNAL, NULL, "no randomness available");
    uint8_t digest[AB_DIGEST_LEN];
    ab_secret_digest(secret, key, AB_AUTHKEY_LEN, digest);
    ab_params p;
    ab_params_init(&p);
    ab_param_int(&p, (int64_t)user_id);
    ab_param_blob(&p, digest, sizeof digest);
    ab_param_str(&p, key, 4);
    ab_param_str(&p, key + AB_AUTHKEY_LEN - 4, 4);
    uint64_t id = 0;
    if (ab_db_run(db,
                  "INSERT INTO auth_keys (user_id, digest, authkey_start, authkey_end, comment, "
                  "created) VALUES (?, ?, ?, ?, 'Created at first start', UTC_TIMESTAMP(3))",
                  &p, &id, NULL, err) < 0)
        return -1;
    char title[1400], change[200];
    snprintf(title, sizeof title, "AuthKey (%llu): %.4s********************************%.4s",
             (unsigned long long)id, key, key + AB_AUTHKEY_LEN - 4);
    snprintf(change, sizeof change, "user_id () => (%llu)", (unsigned long long)user_id);
    return ab_audit_add(audit, &s_system, "AuthKey", id, "add", title, change);
}

static int s_create(ab_db *db, const ab_secret *secret, const char *host_org, const char *email,
                    ab_audit *audit, char key[AB_AUTHKEY_LEN + 1], ab_error *err)
{
    uint64_t org_id = 0, user_id = 0;
    if (s_host_org(db, host_org, audit, &org_id, err) < 0 || s_record_host(db, org_id, err) < 0 ||
        s_admin(db, org_id, email, audit, &user_id, err) < 0 ||
        s_authkey(db, secret, user_id, audit, key, err) < 0 || ab_audit_flush(audit, db, err) < 0)
        return -1;
    return ab_db_exec(db, "COMMIT", err);
}

int ab_bootstrap(ab_db *db, const ab_secret *secret, const char *host_org, const char *email,
                 char key_out[AB_AUTHKEY_LEN + 1], ab_error *err)
{
    ab_params p;
    ab_params_init(&p);
    ab_param_cstr(&p, "adminbus.bootstrap");
    int64_t locked = 0, users = 0;
    if (ab_db_scalar(db, "SELECT GET_LOCK(?, 30)", &p, &locked, err) < 0)
        return -1;
    if (locked != 1)
        return ab_fail(err, AB_E_UNAVAILABLE, NULL, "another process is bootstrapping");
    int rc = ab_db_exec(db, "START TRANSACTION", err);
    if (rc == 0)
        rc = ab_db_scalar(db, "SELECT COUNT(*) FROM users", NULL, &users, err);
    ab_audit *audit = ab_audit_new();
    if (rc == 0 && users == 0)
        rc = s_create(db, secret, host_org, email, audit, key_out, err) == 0 ? 1 : -1;
    ab_audit_destroy(&audit);
    ab_error ignored;
    if (rc <= 0)
        ab_db_exec(db, "ROLLBACK", &ignored);
    ab_params_init(&p);
    ab_param_cstr(&p, "adminbus.bootstrap");
    ab_db_scalar(db, "SELECT RELEASE_LOCK(?)", &p, &locked, &ignored);
    return rc;
}
