/* JSON-lines logger on stderr with a per-call-site repeat limiter. Logging is process-wide by
 * nature (one stderr), so its level and limiter live here rather than in a component context. */
#include "core/log.h"

#include "core/buf.h"
#include "core/common.h"

#include <math.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_level = SL_LOG_INFO;
static atomic_int g_fd = 2;
static atomic_uint g_rate = 20;
static atomic_uint_fast64_t g_suppressed_total;

static _Thread_local const char *t_trace_id;
static _Thread_local const char *t_span_id;

/* The limiter: a small open-addressed table keyed by (level, component, msg) addresses. A
 * collision evicts the older site, which at worst lets a burst through; it never drops a line
 * from a site that is under its limit. */
#define LIMITER_SLOTS 256
typedef struct {
    const char *component;
    const char *msg;
    int level;
    uint64_t window_start_ms;
    uint32_t count;
    uint32_t suppressed;
} limiter_slot_t;

static limiter_slot_t g_slots[LIMITER_SLOTS];
static pthread_mutex_t g_limiter_mu = PTHREAD_MUTEX_INITIALIZER;

sl_log_level_t sl_log_level_get(void) {
    return (sl_log_level_t)atomic_load_explicit(&g_level, memory_order_relaxed);
}

void sl_log_level_set(sl_log_level_t level) {
    atomic_store(&g_level, (int)level);
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

const char *sl_log_level_name(sl_log_level_t level) {
    return (unsigned)level < SL_ARRAY_LEN(level_names) ? level_names[level] : "info";
}

int sl_log_level_parse(const char *s, sl_log_level_t *out) {
    for (unsigned i = 0; i < SL_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (sl_log_level_t)i;
            return SL_OK;
        }
    }
    return SL_EINVAL;
}

void sl_log_set_rate_limit(uint32_t lines_per_sec) {
    atomic_store(&g_rate, lines_per_sec);
}

void sl_log_set_fd(int fd) {
    atomic_store(&g_fd, fd);
}

void sl_log_set_trace(const char *trace_id_hex, const char *span_id_hex) {
    t_trace_id = trace_id_hex;
    t_span_id = span_id_hex;
}

uint64_t sl_log_suppressed_total(void) {
    return atomic_load(&g_suppressed_total);
}

/* Returns false when the line must be suppressed; otherwise stores in *reported how many lines
 * of this site were suppressed since the last one written. */
static bool limiter_admit(int level, const char *component, const char *msg, uint32_t *reported) {
    uint32_t rate = atomic_load_explicit(&g_rate, memory_order_relaxed);
    *reported = 0;
    if (rate == 0) return true;
    uintptr_t h = ((uintptr_t)msg >> 3) ^ ((uintptr_t)component >> 5) ^ (uintptr_t)level;
    h ^= h >> 17;
    limiter_slot_t *s = &g_slots[h % LIMITER_SLOTS];
    uint64_t now = sl_now_ms();
    bool admit;
    pthread_mutex_lock(&g_limiter_mu);
    if (s->msg != msg || s->component != component || s->level != level) {
        *s = (limiter_slot_t){component, msg, level, now, 0, 0};
    }
    if (now - s->window_start_ms >= 1000) {
        s->window_start_ms = now;
        s->count = 0;
    }
    admit = s->count < rate;
    if (admit) {
        s->count++;
        *reported = s->suppressed;
        s->suppressed = 0;
    } else {
        s->suppressed++;
    }
    pthread_mutex_unlock(&g_limiter_mu);
    if (!admit) atomic_fetch_add(&g_suppressed_total, 1);
    return admit;
}

static void put_key(sl_buf_t *b, const char *key) {
    sl_buf_puts(b, ",\"");
    sl_buf_json_escape(b, key, strlen(key));
    sl_buf_puts(b, "\":");
}

static void put_str(sl_buf_t *b, const char *s) {
    sl_buf_putc(b, '"');
    if (s) sl_buf_json_escape(b, s, strlen(s));
    sl_buf_putc(b, '"');
}

static void log_emit(sl_log_level_t level, const char *component, const char *msg,
                     const char *trace_id, const char *span_id, uint32_t suppressed,
                     const sl_log_field_t *fields, size_t n_fields);

void sl_log_fields(sl_log_level_t level, const char *component, const char *msg,
                   const sl_log_field_t *fields, size_t n_fields) {
    if (level < sl_log_level_get()) return;
    uint32_t suppressed;
    if (!limiter_admit((int)level, component, msg, &suppressed)) return;
    log_emit(level, component, msg, t_trace_id, t_span_id, suppressed, fields, n_fields);
}

void sl_log_fields_nolimit(sl_log_level_t level, const char *component, const char *msg,
                           const char *trace_id, const char *span_id, const sl_log_field_t *fields,
                           size_t n_fields) {
    if (level < sl_log_level_get()) return;
    if (!trace_id) {
        trace_id = t_trace_id;
        span_id = t_span_id;
    }
    log_emit(level, component, msg, trace_id, span_id, 0, fields, n_fields);
}

static void log_emit(sl_log_level_t level, const char *component, const char *msg,
                     const char *trace_id, const char *span_id, uint32_t suppressed,
                     const sl_log_field_t *fields, size_t n_fields) {
    sl_buf_t line = SL_BUF_INIT, *b = &line;
    sl_buf_reserve(b, 256);
    uint64_t now = sl_wall_time_ns();
    time_t secs = (time_t)(now / 1000000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%06uZ", (unsigned)((now / 1000u) % 1000000u));

    sl_buf_puts(b, "{\"ts\":\"");
    sl_buf_puts(b, ts);
    sl_buf_puts(b, "\",\"level\":\"");
    sl_buf_puts(b, sl_log_level_name(level));
    sl_buf_puts(b, "\",\"component\":");
    put_str(b, component);
    sl_buf_puts(b, ",\"msg\":");
    put_str(b, msg);
    if (trace_id) {
        put_key(b, "trace_id");
        put_str(b, trace_id);
        put_key(b, "span_id");
        put_str(b, span_id);
    }
    for (size_t i = 0; i < n_fields; i++) {
        const sl_log_field_t *f = &fields[i];
        put_key(b, f->key);
        switch (f->type) {
        case SL_LF_STR:
            put_str(b, f->v.s);
            break;
        case SL_LF_INT:
            sl_buf_printf(b, "%lld", (long long)f->v.i);
            break;
        case SL_LF_UINT:
            sl_buf_printf(b, "%llu", (unsigned long long)f->v.u);
            break;
        case SL_LF_DBL:
            /* JSON has no NaN/Inf: write them as strings. */
            if (!isfinite(f->v.d)) {
                sl_buf_printf(b, "\"%g\"", f->v.d);
            } else {
                sl_buf_printf(b, "%.15g",
                              f->v.d); /* 15 digits: 23.704371, not 23.704370999999998 */
            }
            break;
        case SL_LF_BOOL:
            sl_buf_puts(b, f->v.b ? "true" : "false");
            break;
        case SL_LF_END:
            break;
        }
    }
    if (suppressed) sl_buf_printf(b, ",\"suppressed\":%u", suppressed);
    sl_buf_puts(b, "}\n");

    /* One write(2) per line keeps lines from different threads whole. */
    int fd = atomic_load_explicit(&g_fd, memory_order_relaxed);
    const char *p = b->data;
    size_t left = b->len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        p += w;
        left -= (size_t)w;
    }
    sl_buf_free(b);
}
