/* gpgme_util.c — see gpgme_util.h. */
#include "mail/gpgme_util.h"

#include <locale.h>
#include <pthread.h>
#include <string.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_start(void)
{
    gpgme_check_version(NULL);
    gpgme_set_locale(NULL, LC_CTYPE, setlocale(LC_CTYPE, NULL));
}

void ab_gpgme_init(void)
{
    pthread_once(&s_once, s_start);
}

gpgme_error_t ab_gpgme_passphrase(void *hook, const char *uid_hint, const char *info, int bad,
                                  int fd)
{
    (void)uid_hint;
    (void)info;
    const char *pw = hook ? hook : "";
    if (bad)
        return gpg_error(GPG_ERR_BAD_PASSPHRASE);
    if (gpgme_io_writen(fd, pw, strlen(pw)) < 0 || gpgme_io_writen(fd, "\n", 1) < 0)
        return gpg_error(GPG_ERR_CANCELED);
    return 0;
}

gpgme_error_t ab_gpgme_context(gpgme_ctx_t *out, const char *binary, const char *home, char *pw)
{
    ab_gpgme_init();
    gpgme_ctx_t c = NULL;
    gpgme_error_t e = gpgme_new(&c);
    if (!e)
        e = gpgme_set_protocol(c, GPGME_PROTOCOL_OpenPGP);
    if (!e)
        e = gpgme_ctx_set_engine_info(c, GPGME_PROTOCOL_OpenPGP, binary, home);
    if (!e)
        e = gpgme_set_pinentry_mode(c, GPGME_PINENTRY_MODE_LOOPBACK);
    if (e) {
        gpgme_release(c);
        return e;
    }
    gpgme_set_passphrase_cb(c, ab_gpgme_passphrase, pw);
    *out = c;
    return 0;
}

const char *ab_gpgme_key_unusable(gpgme_key_t k, bool sign)
{
    if (k->revoked)
        return "is revoked";
    if (k->expired)
        return "has expired";
    if (k->disabled)
        return "is disabled";
    if (k->invalid)
        return "is invalid";
    if (sign && !k->can_sign)
        return "cannot sign (no usable signing key: expired or revoked?)";
    if (!sign && !k->can_encrypt)
        return "has no usable encryption subkey (expired, revoked or missing)";
    return NULL;
}
