/* stopsig.c — see stopsig.h. The pipe is never drained: a stop is final, so every later
 * wait returns at once. */
#define _POSIX_C_SOURCE 200809L
#include "wire/stopsig.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <unistd.h>

static volatile sig_atomic_t s_raised;
static int s_pipe[2] = {-1, -1};
static void (*s_on_stop)(void);

static void s_handler(int sig)
{
    (void)sig;
    int saved = errno; /* the interrupted code may be about to read errno */
    s_raised = 1;
    if (s_on_stop)
        s_on_stop();
    if (s_pipe[1] >= 0) {
        ssize_t ignored = write(s_pipe[1], "x", 1); /* full pipe: it is readable already */
        (void)ignored;
    }
    errno = saved;
}

static int s_set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0
               ? -1
               : 0;
}

int ab_stopsig_install(void (*on_stop)(void))
{
    if (s_pipe[0] < 0) {
        if (pipe(s_pipe) < 0)
            return -1;
        if (s_set_flags(s_pipe[0]) < 0 || s_set_flags(s_pipe[1]) < 0)
            return -1;
    }
    s_on_stop = on_stop;
    struct sigaction sa = {.sa_handler = s_handler};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        return -1;
    return 0;
}

bool ab_stopsig_raised(void)
{
    return s_raised != 0;
}

int ab_stopsig_fd(void)
{
    return s_pipe[0];
}
