/* settings_cache.h — the server settings as a running process sees them: one cache per
 * process, shared by its threads, stamped with the version in `settings_version`.
 *
 * Truth lives in the database; the cache only saves reads. ab_settings_sync reads the
 * version (one primary-key read) and reloads every value when it moved; the engine calls it
 * at the start of each batch's transaction, a job handler that reads a setting calls it
 * before the read. So a change acknowledged to its client is seen by the next batch of
 * every engine and by every job claimed after it, without a restart.
 *
 * Also here: sealing and opening the values of secret settings (seal.h, purpose "adminbus
 * settings v1", bound to the setting's name), so the database never holds them in clear. */
#ifndef AB_SETTINGS_CACHE_H
#define AB_SETTINGS_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/db.h"
#include "auth/secret.h"
#include "settings.h"

/* Re-read the settings version on db and reload the values when it changed (also the first
 * time). Runs the process-side apply hooks of the settings that changed (debug → log
 * level). Returns 0, or -1 with *err (the cache keeps what it had). Thread-safe. */
int ab_settings_sync(ab_db *db, ab_error *err);

/* The version the cache holds (0 before the first sync). */
uint64_t ab_settings_version(void);

/* The effective value of a setting (its stored value, else its default) as canonical text,
 * copied: the caller frees it. NULL when unset or unknown. For a secret setting this is the
 * sealed text; use ab_settings_secret. */
char *ab_settings_get(const char *name);

/* The effective value as a boolean (false when unset or unknown). */
bool ab_settings_bool(const char *name);

/* The effective value as an integer, or fallback when unset or unknown. */
int64_t ab_settings_int(const char *name, int64_t fallback);

/* The clear value of a secret setting, opened with key: 0 with *out (malloc'd, caller
 * frees; NULL when unset), or -1 when it cannot be opened (another server secret). */
int ab_settings_secret(const char *name, const ab_secret *key, char **out);

/* Seal plain for the setting name (the name is bound in, so a value cannot be moved to
 * another setting): "enc:v1:" + base64(nonce, ciphertext, tag). Caller frees; NULL on
 * failure. */
char *ab_settings_seal(const ab_secret *key, const char *name, const char *plain);

/* Open a sealed value of name. Caller frees; NULL when it is not sealed or does not open. */
char *ab_settings_open(const ab_secret *key, const char *name, const char *sealed);

#endif
