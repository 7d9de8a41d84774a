/* Tracing: W3C Trace Context (level 1) parsing and formatting, spans with a parent-based ratio
 * sampler, and the tracer that hands sampled spans to the OTLP exporter (otlp.c). A span is one
 * allocation: its strings live in a small arena inside it, so starting one costs one malloc and
 * two random numbers, and an unsampled span records nothing. */
#include "core/trace.h"

#include "core/otlp.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define SPAN_ARENA             448
#define SPAN_MAX_HEAP          (2 * SL_OTLP_MAX_ATTRS + 4)
#define TRACESTATE_MAX_MEMBERS 32

struct sl_tracer {
    _Atomic uint64_t ratio_bits; /* the sample ratio as double bits, for lock-free reload */
    sl_otlp_exporter_t *ex;      /* NULL: spans are not exported */
    void (*done)(void *arg);
    void *done_arg;
};

struct sl_span {
    sl_otlp_span_t rec; /* what the exporter encodes */
    sl_tracer_t *t;
    bool recording; /* sampled and exported: attributes and times are kept */
    sl_trace_ctx_t ctx;
    uint16_t arena_used;
    uint8_t n_heap;
    char *heap[SPAN_MAX_HEAP]; /* strings that did not fit the arena */
    char arena[SPAN_ARENA];
};

/* ---- W3C Trace Context ------------------------------------------------------------------- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1; /* uppercase is invalid per the spec */
}

static bool parse_hex(const char *s, uint8_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i]) return false;
    }
    return true;
}

static void to_hex(const uint8_t *p, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int sl_traceparent_parse(sl_str_t value, sl_trace_ctx_t *out) {
    const char *s = value.ptr;
    uint8_t version, trace_id[16], span_id[8], flags;
    if (!s || value.len < SL_TRACEPARENT_LEN || !parse_hex(s, &version, 1) || version == 0xff)
        return SL_EPARSE;
    /* Version 00 is exactly 55 characters; a later version may append fields after a '-'. */
    if (version == 0 && value.len != SL_TRACEPARENT_LEN) return SL_EPARSE;
    if (value.len > SL_TRACEPARENT_LEN && s[SL_TRACEPARENT_LEN] != '-') return SL_EPARSE;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-') return SL_EPARSE;
    if (!parse_hex(s + 3, trace_id, 16) || !parse_hex(s + 36, span_id, 8) ||
        !parse_hex(s + 53, &flags, 1))
        return SL_EPARSE;
    if (all_zero(trace_id, 16) || all_zero(span_id, 8)) return SL_EPARSE;
    memcpy(out->trace_id, trace_id, 16);
    memcpy(out->span_id, span_id, 8);
    out->flags = flags;
    out->tracestate[0] = '\0';
    return 0;
}

static bool key_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' ||
           c == '/';
}

/* key = simple-key / multi-tenant-key (W3C Trace Context level 1, section 3.3.1.3.1). */
static bool tracestate_key_ok(const char *k, size_t n) {
    const char *at = memchr(k, '@', n);
    if (!at) {
        if (n < 1 || n > 256 || !(k[0] >= 'a' && k[0] <= 'z')) return false;
        for (size_t i = 1; i < n; i++) {
            if (!key_char(k[i])) return false;
        }
        return true;
    }
    size_t tn = (size_t)(at - k), sn = n - tn - 1;
    const char *sys = at + 1;
    if (tn < 1 || tn > 241 || sn < 1 || sn > 14) return false;
    if (!((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9'))) return false;
    for (size_t i = 1; i < tn; i++) {
        if (!key_char(k[i])) return false;
    }
    if (!(sys[0] >= 'a' && sys[0] <= 'z')) return false;
    for (size_t i = 1; i < sn; i++) {
        if (!key_char(sys[i])) return false;
    }
    return true;
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E. */
static bool tracestate_value_ok(const char *v, size_t n) {
    if (n < 1 || n > 256 || v[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
    }
    return true;
}

static bool ows(char c) {
    return c == ' ' || c == '\t';
}

int sl_tracestate_parse(sl_str_t value, sl_trace_ctx_t *ctx) {
    ctx->tracestate[0] = '\0';
    if (!value.ptr || value.len == 0 || value.len > SL_TRACESTATE_MAX) return SL_EPARSE;
    struct {
        const char *p;
        size_t n;
    } keys[TRACESTATE_MAX_MEMBERS];
    unsigned members = 0;
    const char *s = value.ptr, *end = s + value.len;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *me = comma ? comma : end, *ms = s;
        while (ms < me && ows(*ms))
            ms++;
        while (me > ms && ows(me[-1]))
            me--;
        if (ms < me) { /* empty list members are allowed and not counted */
            const char *eq = memchr(ms, '=', (size_t)(me - ms));
            if (!eq || members == TRACESTATE_MAX_MEMBERS) return SL_EPARSE;
            size_t kn = (size_t)(eq - ms);
            if (!tracestate_key_ok(ms, kn) || !tracestate_value_ok(eq + 1, (size_t)(me - eq - 1)))
                return SL_EPARSE;
            for (unsigned i = 0; i < members; i++) {
                if (keys[i].n == kn && memcmp(keys[i].p, ms, kn) == 0) return SL_EPARSE;
            }
            keys[members].p = ms;
            keys[members].n = kn;
            members++;
        }
        if (!comma) break;
        s = comma + 1;
    }
    if (members == 0) return SL_EPARSE;
    memcpy(ctx->tracestate, value.ptr, value.len);
    ctx->tracestate[value.len] = '\0';
    return 0;
}

void sl_traceparent_format(const sl_trace_ctx_t *ctx, char out[SL_TRACEPARENT_LEN + 1]) {
    memcpy(out, "00-", 3);
    to_hex(ctx->trace_id, 16, out + 3);
    out[35] = '-';
    to_hex(ctx->span_id, 8, out + 36);
    out[52] = '-';
    to_hex(&ctx->flags, 1, out + 53);
}

void sl_trace_id_hex(const sl_trace_ctx_t *ctx, char out[33]) {
    to_hex(ctx->trace_id, 16, out);
}

void sl_span_id_hex(const sl_trace_ctx_t *ctx, char out[17]) {
    to_hex(ctx->span_id, 8, out);
}

/* ---- tracer ------------------------------------------------------------------------------ */

static double clamp_ratio(double r) {
    return isnan(r) || r < 0 ? 0 : r > 1 ? 1 : r;
}

static void span_free(sl_span_t *s) {
    for (unsigned i = 0; i < s->n_heap; i++)
        free(s->heap[i]);
    free(s);
}

static void record_free(sl_otlp_span_t *rec) {
    span_free((sl_span_t *)rec); /* rec is the span's first member */
}

sl_tracer_t *sl_tracer_new(const sl_tracer_opts_t *opts, uv_loop_t *export_loop, int *err) {
    int dummy;
    if (!err) err = &dummy;
    *err = 0;
    if (!opts || isnan(opts->sample_ratio)) {
        *err = SL_EINVAL;
        return NULL;
    }
    sl_tracer_t *t = sl_calloc(1, sizeof *t);
    atomic_store(&t->ratio_bits, sl_double_bits(clamp_ratio(opts->sample_ratio)));
    if (opts->endpoint && opts->endpoint[0]) {
        uint32_t q = opts->queue_size ? opts->queue_size : 2048;
        sl_otlp_exporter_opts_t eo = {
            .service_name = opts->service_name,
            .endpoint = opts->endpoint,
            .queue_size = q,
            .batch_size = SL_MIN(opts->batch_size ? opts->batch_size : 512, q),
            .flush_interval_ms = opts->flush_interval_ms,
            .export_timeout_ms = opts->export_timeout_ms,
            .span_free = record_free,
        };
        int rc = sl_otlp__exporter_new(&eo, export_loop, &t->ex);
        if (rc < 0) {
            free(t);
            *err = rc;
            return NULL;
        }
    }
    return t;
}

static void exporter_done(void *arg) {
    sl_tracer_t *t = arg;
    void (*done)(void *) = t->done;
    void *done_arg = t->done_arg;
    free(t);
    if (done) done(done_arg);
}

void sl_tracer_shutdown(sl_tracer_t *t, void (*done)(void *arg), void *arg) {
    if (!t) {
        if (done) done(arg);
        return;
    }
    t->done = done;
    t->done_arg = arg;
    if (t->ex)
        sl_otlp__exporter_shutdown(t->ex, exporter_done, t);
    else
        exporter_done(t);
}

void sl_tracer_set_sample_ratio(sl_tracer_t *t, double ratio) {
    atomic_store(&t->ratio_bits, sl_double_bits(clamp_ratio(ratio)));
}

uint64_t sl_tracer_dropped(const sl_tracer_t *t) {
    return t && t->ex ? sl_otlp__exporter_dropped_full(t->ex) : 0;
}

uint64_t sl_tracer_exported(const sl_tracer_t *t) {
    return t && t->ex ? sl_otlp__exporter_exported(t->ex) : 0;
}

/* Root sampling is a function of the trace id alone (its lower 8 bytes as a big-endian uint64
 * against ratio * 2^64), so every service with the same ratio makes the same decision. */
static bool sample_root(const sl_tracer_t *t, const uint8_t trace_id[16]) {
    double r = sl_bits_double(atomic_load_explicit(&t->ratio_bits, memory_order_relaxed));
    if (r >= 1) return true;
    if (r <= 0) return false;
    uint64_t low = 0;
    for (int i = 8; i < 16; i++)
        low = low << 8 | trace_id[i];
    return low < (uint64_t)(r * 18446744073709551616.0);
}

static void random_nonzero(uint8_t *p, size_t n) {
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = sl_rand64();
            memcpy(p + i, &r, SL_MIN(8, n - i));
        }
    } while (all_zero(p, n));
}

/* ---- spans ------------------------------------------------------------------------------- */

/* A copy of str owned by the span: in its arena when it fits, on the heap otherwise (NULL when
 * the span has no room left to track one more heap string). */
static const char *span_strdup(sl_span_t *s, const char *str) {
    size_t n = strlen(str) + 1;
    if (n <= (size_t)(SPAN_ARENA - s->arena_used)) {
        char *p = s->arena + s->arena_used;
        memcpy(p, str, n);
        s->arena_used = (uint16_t)(s->arena_used + n);
        return p;
    }
    if (s->n_heap == SPAN_MAX_HEAP) return NULL;
    return s->heap[s->n_heap++] = sl_strdup(str);
}

static bool ctx_valid(const sl_trace_ctx_t *c) {
    return c && !all_zero(c->trace_id, 16) && !all_zero(c->span_id, 8);
}

sl_span_t *sl_span_start(sl_tracer_t *t, const char *name, sl_span_kind_t kind,
                         const sl_trace_ctx_t *parent) {
    sl_span_t *s = sl_malloc(sizeof *s);
    /* Only the header is cleared: the arena and heap table are used as they fill. */
    memset(s, 0, offsetof(sl_span_t, heap));
    s->t = t;
    bool sampled;
    if (ctx_valid(parent)) {
        memcpy(s->ctx.trace_id, parent->trace_id, 16);
        memcpy(s->rec.parent_span_id, parent->span_id, 8);
        s->rec.has_parent = true;
        sampled = parent->flags & 1;
        size_t tl = strnlen(parent->tracestate, SL_TRACESTATE_MAX);
        memcpy(s->ctx.tracestate, parent->tracestate, tl);
        s->ctx.tracestate[tl] = '\0';
    } else {
        random_nonzero(s->ctx.trace_id, 16);
        sampled = t && sample_root(t, s->ctx.trace_id);
    }
    random_nonzero(s->ctx.span_id, 8);
    s->ctx.flags = sampled ? 1 : 0;
    s->recording = sampled && t && t->ex;
    if (s->recording) {
        memcpy(s->rec.trace_id, s->ctx.trace_id, 16);
        memcpy(s->rec.span_id, s->ctx.span_id, 8);
        s->rec.name = span_strdup(s, name ? name : "");
        s->rec.trace_state = s->ctx.tracestate;
        s->rec.kind = (int)kind;
        s->rec.start_ns = sl_wall_time_ns();
    }
    return s;
}

const sl_trace_ctx_t *sl_span_ctx(const sl_span_t *s) {
    return &s->ctx;
}

bool sl_span_sampled(const sl_span_t *s) {
    return s->ctx.flags & 1;
}

const sl_otlp_span_t *sl_span__record(const sl_span_t *s) {
    return &s->rec;
}

/* The attribute slot for key: the existing one (set again overwrites) or a new one; NULL when
 * the span is not recording or already has the maximum. */
static sl_otlp_attr_t *attr_slot(sl_span_t *s, const char *key) {
    if (!s || !s->recording || !key) return NULL;
    for (unsigned i = 0; i < s->rec.n_attrs; i++) {
        if (strcmp(s->rec.attrs[i].key, key) == 0) return &s->rec.attrs[i];
    }
    if (s->rec.n_attrs == SL_OTLP_MAX_ATTRS) return NULL;
    const char *k = span_strdup(s, key);
    if (!k) return NULL;
    sl_otlp_attr_t *a = &s->rec.attrs[s->rec.n_attrs++];
    *a = (sl_otlp_attr_t){.key = k};
    return a;
}

void sl_span_attr_str(sl_span_t *s, const char *key, const char *value) {
    sl_otlp_attr_t *a = attr_slot(s, key);
    if (!a) return;
    const char *v = span_strdup(s, value ? value : "");
    a->str = v ? v : "";
}

void sl_span_attr_int(sl_span_t *s, const char *key, int64_t value) {
    sl_otlp_attr_t *a = attr_slot(s, key);
    if (!a) return;
    a->str = NULL;
    a->i = value;
}

void sl_span_set_error(sl_span_t *s, const char *message) {
    if (!s || !s->recording) return;
    s->rec.status_code = 2;
    s->rec.status_message = message ? span_strdup(s, message) : NULL;
}

void sl_span_end(sl_span_t *s) {
    if (!s) return;
    if (s->recording) {
        s->rec.end_ns = sl_wall_time_ns();
        if (s->rec.end_ns < s->rec.start_ns) s->rec.end_ns = s->rec.start_ns; /* clock stepped */
        if (sl_otlp__exporter_enqueue(s->t->ex, &s->rec)) return;
    }
    span_free(s);
}
