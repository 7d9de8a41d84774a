/* Structured logging: one JSON object per line on stderr with ts, level, component, msg,
 * trace_id/span_id (from the calling thread's current trace context) and typed fields.
 * The level is process-wide and changes on config reload; a line repeated faster than the
 * configured rate is suppressed and the count of suppressed lines is reported on the next one. */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sl_log_level {
    SL_LOG_DEBUG = 0,
    SL_LOG_INFO = 1,
    SL_LOG_WARN = 2,
    SL_LOG_ERROR = 3,
} sl_log_level_t;

typedef enum {
    SL_LF_END = 0,
    SL_LF_STR,
    SL_LF_INT,
    SL_LF_UINT,
    SL_LF_DBL,
    SL_LF_BOOL
} sl_lf_type_t;

typedef struct sl_log_field {
    sl_lf_type_t type;
    const char *key;
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        bool b;
    } v;
} sl_log_field_t;

#define SL_LF_S(k, val) ((sl_log_field_t){.type = SL_LF_STR, .key = (k), .v.s = (val)})
#define SL_LF_I(k, val) ((sl_log_field_t){.type = SL_LF_INT, .key = (k), .v.i = (int64_t)(val)})
#define SL_LF_U(k, val) ((sl_log_field_t){.type = SL_LF_UINT, .key = (k), .v.u = (uint64_t)(val)})
#define SL_LF_D(k, val) ((sl_log_field_t){.type = SL_LF_DBL, .key = (k), .v.d = (double)(val)})
#define SL_LF_B(k, val) ((sl_log_field_t){.type = SL_LF_BOOL, .key = (k), .v.b = (val)})

/* Writes one line if level is enabled. component and msg must be string literals or otherwise
 * outlive the process (msg's address keys the repeat limiter). fields (n of them, may be NULL
 * when n is 0) are read during the call only. */
void sl_log_fields(sl_log_level_t level, const char *component, const char *msg,
                   const sl_log_field_t *fields, size_t n);

/* The same without the repeat limiter, for lines whose volume the caller bounds itself (the
 * gateway's sampled access log, where a silently dropped line would be a lie). trace_id and
 * span_id (lowercase hex, borrowed for the call) override the thread's trace context for this
 * line; NULL trace_id means use the thread's context. component, msg and fields as above. */
void sl_log_fields_nolimit(sl_log_level_t level, const char *component, const char *msg,
                           const char *trace_id, const char *span_id, const sl_log_field_t *fields,
                           size_t n);

/* The array starts with a placeholder so that an empty field list still compiles (a trailing
 * comma is valid in an initializer); it is skipped. */
#define SL_LOG(level, component, msg, ...)                                                         \
    do {                                                                                           \
        if ((level) >= sl_log_level_get()) {                                                       \
            const sl_log_field_t sl__f[] = {{.type = SL_LF_END}, __VA_ARGS__};                     \
            sl_log_fields((level), (component), (msg), sl__f + 1,                                  \
                          sizeof sl__f / sizeof sl__f[0] - 1);                                     \
        }                                                                                          \
    } while (0)
#define SL_DEBUG(c, m, ...) SL_LOG(SL_LOG_DEBUG, c, m, __VA_ARGS__)
#define SL_INFO(c, m, ...)  SL_LOG(SL_LOG_INFO, c, m, __VA_ARGS__)
#define SL_WARN(c, m, ...)  SL_LOG(SL_LOG_WARN, c, m, __VA_ARGS__)
#define SL_ERROR(c, m, ...) SL_LOG(SL_LOG_ERROR, c, m, __VA_ARGS__)

sl_log_level_t sl_log_level_get(void);
void sl_log_level_set(sl_log_level_t level);
/* Parses "debug" / "info" / "warn" / "error"; returns 0 or SL_EINVAL. */
int sl_log_level_parse(const char *s, sl_log_level_t *out);
const char *sl_log_level_name(sl_log_level_t level);

/* How many identical lines (same level, component and message) may be written per second
 * before the rest are suppressed; 0 disables the limiter. */
void sl_log_set_rate_limit(uint32_t lines_per_sec);

/* Redirects output to fd (default 2); for tests. */
void sl_log_set_fd(int fd);

/* Trace correlation: the trace and span ids (lowercase hex, NUL-terminated, borrowed until the
 * next call on this thread) that lines logged on this thread should carry; NULL clears. */
void sl_log_set_trace(const char *trace_id_hex, const char *span_id_hex);

/* Total lines suppressed by the limiter since start (for a metric). */
uint64_t sl_log_suppressed_total(void);

#endif
