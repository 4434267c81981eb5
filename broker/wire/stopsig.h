/* stopsig.h — SIGINT/SIGTERM for a daemon: a flag and a self-pipe. A wait that also polls
 * the pipe wakes whichever thread the kernel delivered the signal to, and wakes even when
 * the signal came between the last look at the flag and the start of the wait (a plain
 * EINTR catches neither: the signal may land on a library's thread, or before the poll). */
#ifndef AB_STOPSIG_H
#define AB_STOPSIG_H

#include <stdbool.h>

/* Install the handlers (no SA_RESTART). on_stop, when given, runs inside the handler and
 * must be async-signal-safe (an atomic store). Returns 0 or -1 when no pipe can be made. */
int ab_stopsig_install(void (*on_stop)(void));

/* True once SIGINT or SIGTERM has arrived. */
bool ab_stopsig_raised(void);

/* The pipe's read end, readable for good once a stop signal has arrived; -1 before
 * ab_stopsig_install. */
int ab_stopsig_fd(void);

#endif
