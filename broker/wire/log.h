/* log.h — levelled logging to stderr, one line per event, UTC timestamp first.
 * The macro checks the level before any formatting is done. */
#ifndef AB_LOG_H
#define AB_LOG_H

typedef enum { AB_LOG_ERROR, AB_LOG_WARN, AB_LOG_INFO, AB_LOG_DEBUG } ab_log_level;

extern ab_log_level ab_log_threshold;

/* Set the threshold from a name (error, warn, info, debug); -1 for an unknown name. */
int ab_log_set_level(const char *name);

void ab_log_write(ab_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define AB_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= ab_log_threshold)                                                           \
            ab_log_write((level), __VA_ARGS__);                                                    \
    } while (0)
#define AB_ERROR(...) AB_LOG(AB_LOG_ERROR, __VA_ARGS__)
#define AB_WARN(...)  AB_LOG(AB_LOG_WARN, __VA_ARGS__)
#define AB_INFO(...)  AB_LOG(AB_LOG_INFO, __VA_ARGS__)
#define AB_DEBUG(...) AB_LOG(AB_LOG_DEBUG, __VA_ARGS__)

#endif
