/* clientutil.h — what both of adminctl's transports (client.c: ZeroMQ, client_kafka.c:
 * Kafka) need alike: an interrupt flag for long waits, a monotonic clock, the
 * "message into err, return rc" idiom, and the check that a reply is ours. */
#ifndef AB_CTL_CLIENTUTIL_H
#define AB_CTL_CLIENTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli.h"

/* SIGINT/SIGTERM set a flag instead of killing the process (no SA_RESTART, so a poll
 * returns EINTR): an events monitor or a wait ends cleanly. */
void ctl_catch_interrupts(void);

/* True once SIGINT or SIGTERM came after ctl_catch_interrupts. */
bool ctl_interrupted(void);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t ctl_now_ms(void);

/* Format the message into err (len bytes) and return rc. */
int ctl_fail(char *err, size_t len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Take body (malloc'd; ownership passes) as the reply to command id when it is a map whose
 * id is id or absent. Returns true when taken; otherwise body is freed. (client.c) */
bool ctl_reply_accept(char *body, size_t len, const char *id, ctl_reply *reply);

#endif
