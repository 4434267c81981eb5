/* bootstrap.h — the first start of an instance: the host organisation, the first site
 * administrator and their authkey. */
#ifndef AB_BOOTSTRAP_H
#define AB_BOOTSTRAP_H

#include "core/db.h"
#include "auth/secret.h"

/* When the database has no user yet, create the host organisation (named host_org, or
 * reuse one of that name), record it as the host, create the site administrator email
 * with the admin role and a new authkey, audit all of it as SYSTEM, and commit.
 * Returns 1 and the raw key in key_out (shown once, stored only as a digest), 0 when
 * users exist already (nothing is done), or -1 with *err. */
int ab_bootstrap(ab_db *db, const ab_secret *secret, const char *host_org, const char *email,
                 char key_out[AB_AUTHKEY_LEN + 1], ab_error *err);

#endif
