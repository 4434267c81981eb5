/* log.c — see log.h. */
#include "wire/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

ab_log_level ab_log_threshold = AB_LOG_INFO;

static const char *const s_names[] = {"error", "warn", "info", "debug"};

int ab_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, s_names[i]) == 0) {
            ab_log_threshold = (ab_log_level)i;
            return 0;
        }
    return -1;
}

void ab_log_write(ab_log_level level, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, s_names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
