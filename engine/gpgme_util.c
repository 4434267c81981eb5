/* gpgme_util.c — see gpgme_util.h. */
#include "gpgme_util.h"

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
