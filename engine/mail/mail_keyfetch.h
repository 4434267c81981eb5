/* mail_keyfetch.h — the `gpgkey_fetch` job (adminctl user gpg fetch, issue 6): a user's
 * GnuPG key from the Web Key Directory of the address's domain (GnuPG.wkd_url in its
 * place when set), else from the key server (GnuPG.keyserver, HKP), checked as
 * --gpgkey-file is, stored and audited. See docs/architecture.md, "E-mail (issue 6)". */
#ifndef AB_MAIL_KEYFETCH_H
#define AB_MAIL_KEYFETCH_H

#include <msgpack.h>
#include <stddef.h>

#include "catalog.h"
#include "wire/errors.h"
#include "jobs/jobs.h"

#define AB_GPGKEY_FETCH_NARGS 2
extern const ab_arg ab_gpgkey_fetch_args[AB_GPGKEY_FETCH_NARGS];
int ab_gpgkey_fetch_job(ab_job_run *run, const msgpack_object *args, ab_error *err);

/* The Web Key Directory hash of a local part (len bytes): z-base-32 of the SHA-1 of it in
 * lower case, 32 characters and a NUL in out. Returns 0, or -1 (too long). */
int ab_wkd_hash(const char *local, size_t len, char out[33]);

#endif
