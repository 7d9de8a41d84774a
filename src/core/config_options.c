/* The option table behind sl_config_t: one row per option (name, type, offset, default, bounds,
 * reloadable, doc), the value syntaxes (durations, sizes, ports...) in both directions, and
 * everything derived from the table: defaults, comparisons for reload, docs/configuration.md. */
#include "core/config.h"

#include "core/common.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(f) .offset = offsetof(sl_config_t, f), .size = sizeof(((sl_config_t *)0)->f)

#define MS_S 1000ull
#define MS_M (60ull * MS_S)
#define MS_H (60ull * MS_M)
#define KIB  1024ull
#define MIB  (1024ull * KIB)
#define GIB  (1024ull * MIB)

static const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};

static void apply_log_level(const sl_config_t *cfg) {
    sl_log_level_set(cfg->log.level);
}

static void apply_log_rate_limit(const sl_config_t *cfg) {
    sl_log_set_rate_limit(cfg->log.rate_limit);
}

/* Row builders, so the table reads as a table. NUM: integer kinds (uint, duration in ms, size in
 * bytes, port) with a default; EXT: the same without one; STR: strings, bounds on the length. */
#define NUM(name_, type_, f, def_, lo, hi, doc_)                                                   \
    {                                                                                              \
        .name = name_, .type = SL_CONFIG_##type_, FIELD(f), .has_default = true, .def.u = (def_),  \
        .min = (lo), .max = (hi), .doc = doc_                                                      \
    }
#define EXT(name_, type_, f, lo, hi, doc_)                                                         \
    { .name = name_, .type = SL_CONFIG_##type_, FIELD(f), .min = (lo), .max = (hi), .doc = doc_ }
#define STR(name_, f, def_, lo, hi, doc_)                                                          \
    {                                                                                              \
        .name = name_, .type = SL_CONFIG_STRING, FIELD(f), .has_default = true, .def.s = (def_),   \
        .min = (lo), .max = (hi), .doc = doc_                                                      \
    }

/* http.* rows have no default of their own: sl_config_defaults() takes them from
 * sl_http_limits_default() so the numbers live in one place (http_server.c). */
// clang-format off
static const sl_config_option_t options[] = {
    STR("server.bind_host", server.bind_host, "0.0.0.0", 1, 255,
        "Address every listener binds (0.0.0.0 = all IPv4 interfaces, 127.0.0.1 = local)."),
    NUM("server.io_threads", UINT, server.io_threads, 0, 0, 1024,
        "I/O threads, each with its own event loop and listening sockets; 0 = one per CPU."),
    NUM("server.worker_threads", UINT, server.worker_threads, 4, 1, 1024,
        "Thread pool for blocking work (file I/O, model loading)."),
    NUM("server.drain_timeout", DURATION, server.drain_timeout_ms, 15 * MS_S, 0, MS_H,
        "On SIGTERM, how long in-flight requests may finish before connections are closed."),
    NUM("server.drain_delay", DURATION, server.drain_delay_ms, 0, 0, 10 * MS_M,
        "On SIGTERM, keep serving (reporting not ready) this long before draining, so load "
        "balancers stop sending first."),

    EXT("http.max_request_line", SIZE, http.max_request_line, 64, MIB,
        "Longest request line (method, target, version); 414 beyond."),
    EXT("http.max_header_bytes", SIZE, http.max_header_bytes, 64, 16 * MIB,
        "All request header lines together; 431 beyond."),
    EXT("http.max_headers", UINT, http.max_headers, 1, 10000,
        "Most request headers; 431 beyond."),
    EXT("http.max_body_bytes", SIZE, http.max_body_bytes, 0, 64 * GIB,
        "Largest decoded request body; 413 beyond."),
    EXT("http.max_connections", UINT, http.max_connections, 1, 1000000,
        "Open connections per HTTP listener; 503 beyond."),
    EXT("http.header_timeout", DURATION, http.header_timeout_ms, 1, MS_H,
        "The whole request head must arrive within this; 408 after."),
    EXT("http.body_timeout", DURATION, http.body_timeout_ms, 1, 24 * MS_H,
        "The whole body must arrive within this after the head; 408 after."),
    EXT("http.idle_timeout", DURATION, http.idle_timeout_ms, 1, 24 * MS_H,
        "A keep-alive connection without a request is closed."),
    EXT("http.write_timeout", DURATION, http.write_timeout_ms, 1, 24 * MS_H,
        "A response not written within this closes the connection."),

    NUM("grpc.max_message_bytes", SIZE, grpc.max_message_bytes, 4 * MIB, 1, GIB,
        "Largest gRPC message, either direction; RESOURCE_EXHAUSTED beyond."),
    NUM("grpc.max_concurrent_streams", UINT, grpc.max_concurrent_streams, 100, 1, 2147483647u,
        "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection."),
    NUM("grpc.max_connections", UINT, grpc.max_connections, 10000, 1, 1000000,
        "Open connections per gRPC listener."),
    NUM("grpc.idle_timeout", DURATION, grpc.idle_timeout_ms, 300 * MS_S, 1, 24 * MS_H,
        "A connection without open streams is closed (GOAWAY) after this."),

    {.name = "log.level", .type = SL_CONFIG_ENUM, FIELD(log.level), .has_default = true,
     .def.u = SL_LOG_INFO, .enum_names = log_level_names, .reloadable = true,
     .apply = apply_log_level, .doc = "Lowest level written."},
    {.name = "log.rate_limit", .type = SL_CONFIG_UINT, FIELD(log.rate_limit), .has_default = true,
     .def.u = 20, .min = 0, .max = 1000000, .reloadable = true, .apply = apply_log_rate_limit,
     .doc = "Identical lines per second per call site before the rest are suppressed (and "
            "counted); 0 = unlimited."},

    STR("tracing.endpoint", tracing.endpoint, "", 0, 2048,
        "OTLP/HTTP traces URL (http://collector:4318/v1/traces); empty = no export."),
    STR("tracing.service_name", tracing.service_name, "sluice", 1, 255,
        "Resource attribute service.name on exported spans."),
    /* 1% of root traces: enough to see latency structure at production volume without the
     * exporter becoming a cost; raise it on a reload while investigating. */
    {.name = "tracing.sample_ratio", .type = SL_CONFIG_DOUBLE, FIELD(tracing.sample_ratio),
     .has_default = true, .def.d = 0.01, .dmin = 0.0, .dmax = 1.0, .reloadable = true,
     .doc = "Share of new (root) traces sampled; requests with a traceparent follow its flag."},
    NUM("tracing.queue_size", UINT, tracing.queue_size, 2048, 1, 1000000,
        "Spans waiting for export; beyond it spans are dropped and counted."),
    NUM("tracing.batch_size", UINT, tracing.batch_size, 256, 1, 100000,
        "Spans per OTLP request; at most tracing.queue_size."),
    NUM("tracing.flush_interval", DURATION, tracing.flush_interval_ms, MS_S, 1, MS_H,
        "A partial batch is exported after this."),
    NUM("tracing.export_timeout", DURATION, tracing.export_timeout_ms, 5 * MS_S, 1, 10 * MS_M,
        "Time limit of one OTLP request."),

    NUM("gateway.http_port", PORT, gateway.http_port, 8080, 0, 65535,
        "Gateway public HTTP port (REST, /metrics, health)."),
    STR("gateway.keys_file", gateway.keys_file, "", 0, 4096,
        "API keys file (`sluice keys`), relative to this file; \"\" = no keys: every request is refused 401."),
    NUM("gateway.reload_interval", DURATION, gateway.reload_interval_ms, 2 * MS_S, 100, MS_H,
        "How often the gateway checks the keys file for changes (its policies reload with this file)."),
    NUM("inference.http_port", PORT, inference.http_port, 8000, 0, 65535,
        "Inference HTTP port (Open Inference Protocol REST, /metrics, health)."),
    NUM("inference.grpc_port", PORT, inference.grpc_port, 8001, 0, 65535,
        "Inference gRPC port (inference.GRPCInferenceService)."),
    STR("inference.model_repository", inference.model_repository, "", 0, 4096,
        "Model repository directory (models/<name>/config.yaml, <semver>/manifest.json); \"\" serves no models."),
    STR("inference.backend_dir", inference.backend_dir, "", 0, 4096,
        "Directory searched for shared-object backends (libsluice_backend_<name>.so); \"\" = built-ins only."),
    NUM("inference.poll_interval", DURATION, inference.poll_interval_ms, 0, 0, MS_H,
        "Rescan the model repository this often and load, reload or unload what changed; 0 = off."),
    NUM("features.http_port", PORT, features.http_port, 8100, 0, 65535,
        "Feature service HTTP port."),
    NUM("features.grpc_port", PORT, features.grpc_port, 8101, 0, 65535,
        "Feature service gRPC port."),
    NUM("registry.http_port", PORT, registry.http_port, 9000, 0, 65535,
        "Registry HTTP port (admin API, console)."),
    NUM("registry.grpc_port", PORT, registry.grpc_port, 9001, 0, 65535,
        "Registry gRPC port (config watch)."),
    NUM("worker.http_port", PORT, worker.http_port, 8200, 0, 65535,
        "Worker HTTP port (/metrics, health)."),

    {.name = "debug.echo", .type = SL_CONFIG_BOOL, FIELD(debug.echo), .has_default = true,
     .def.b = false,
     .doc = "Serve echo endpoints for benchmarks: POST /v1/echo and gRPC sluice.v1.Echo/Echo."},
};
// clang-format on

static const struct {
    const char *name;
    const char *doc;
} sections[] = {
    {"server", "The process: bind address, threads and graceful shutdown."},
    {"http", "Limits and timeouts of every HTTP/1.1 listener."},
    {"grpc", "Limits of every gRPC (HTTP/2) listener."},
    {"log", "JSON-lines logging on stderr."},
    {"tracing", "OpenTelemetry traces, exported as OTLP/HTTP JSON."},
    {"gateway", "The public edge."},
    {"inference", "The model-inference service."},
    {"features", "The feature service."},
    {"registry", "The control plane."},
    {"worker", "The batch worker."},
    {"debug", "Switches for benchmarks and troubleshooting; keep them off in production."},
};

/* Keys whose values are nested, data-driven structures that the owning component parses from
 * the same file itself (see sl_config_owned_keys in config.h). */
static const sl_config_owned_key_t owned_keys[] = {
    {"gateway.upstreams", "Inference pools: endpoints, timeouts, retries, breakers, ejection."},
    {"gateway.limits", "Rate-limit classes, daily quotas per tier, peak hours, local or Redis."},
    {"gateway.routes",
     "Per-model routing of the /v2 API: pool, timeout, fallback, fault injection."},
    {"gateway.pipelines", "POST /v1/predict/{name}: named fields to a model's tensors and back."},
    {"gateway.traffic", "Per-model version splits, sticky A/B, shadow traffic, override header."},
    {"gateway.access_log", "Access log sampling, logged fields and PII scrubbing."},
    {"gateway.fallback_cache", "Bounds of the last-good-answer cache behind fallbacks."},
};

const sl_config_owned_key_t *sl_config_owned_keys(size_t *n) {
    *n = SL_ARRAY_LEN(owned_keys);
    return owned_keys;
}

const sl_config_option_t *sl_config_options(size_t *n) {
    *n = SL_ARRAY_LEN(options);
    return options;
}

const sl_config_option_t *sl_config_option_find(const char *name) {
    for (size_t i = 0; i < SL_ARRAY_LEN(options); i++) {
        if (strcmp(options[i].name, name) == 0) return &options[i];
    }
    return NULL;
}

const char *sl_config_type_name(sl_config_type_t type) {
    switch (type) {
    case SL_CONFIG_BOOL:
        return "bool";
    case SL_CONFIG_UINT:
        return "integer";
    case SL_CONFIG_DOUBLE:
        return "number";
    case SL_CONFIG_STRING:
        return "string";
    case SL_CONFIG_ENUM:
        return "enum";
    case SL_CONFIG_DURATION:
        return "duration";
    case SL_CONFIG_SIZE:
        return "size";
    case SL_CONFIG_PORT:
        return "port";
    }
    return "?";
}

/* Field access: integers and enums by width, through memcpy (the field's declared type varies). */
static void *field(const sl_config_option_t *o, const sl_config_t *cfg) {
    return (char *)cfg + o->offset;
}

static uint64_t load_uint(const sl_config_option_t *o, const sl_config_t *cfg) {
    void *p = field(o, cfg);
    switch (o->size) {
    case 2: {
        uint16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    case 8: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v;
    }
    }
    SL_ASSERT(!"integer option of unsupported width");
    return 0;
}

static void store_uint(const sl_config_option_t *o, sl_config_t *cfg, uint64_t v) {
    void *p = field(o, cfg);
    switch (o->size) {
    case 2: {
        uint16_t x = (uint16_t)v;
        memcpy(p, &x, 2);
        return;
    }
    case 4: {
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, 4);
        return;
    }
    case 8:
        memcpy(p, &v, 8);
        return;
    }
    SL_ASSERT(!"integer option of unsupported width");
}

static char **string_field(const sl_config_option_t *o, const sl_config_t *cfg) {
    return (char **)field(o, cfg);
}

/* A bug in the table (a bound the field cannot hold, a default outside its bounds) aborts on
 * the first sl_config_defaults(), i.e. in every test run, instead of misbehaving later. */
static void check_row(const sl_config_option_t *o) {
    switch (o->type) {
    case SL_CONFIG_UINT:
    case SL_CONFIG_DURATION:
    case SL_CONFIG_SIZE:
    case SL_CONFIG_PORT:
    case SL_CONFIG_ENUM:
        SL_ASSERT(o->size == 2 || o->size == 4 || o->size == 8);
        if (o->type != SL_CONFIG_ENUM) {
            SL_ASSERT(o->min <= o->max);
            SL_ASSERT(o->size == 8 || o->max < (1ull << (8 * o->size)));
            SL_ASSERT(!o->has_default || (o->def.u >= o->min && o->def.u <= o->max));
        }
        break;
    case SL_CONFIG_DOUBLE:
        SL_ASSERT(o->size == sizeof(double));
        SL_ASSERT(!o->has_default || (o->def.d >= o->dmin && o->def.d <= o->dmax));
        break;
    case SL_CONFIG_STRING:
        SL_ASSERT(o->size == sizeof(char *) && o->has_default);
        SL_ASSERT(strlen(o->def.s) >= o->min && strlen(o->def.s) <= o->max);
        break;
    case SL_CONFIG_BOOL:
        SL_ASSERT(o->size == sizeof(bool));
        break;
    }
    SL_ASSERT(!o->apply || o->reloadable);
    /* The reloader updates the live config in place; a reloaded string would free memory that
     * other code may still point into. */
    SL_ASSERT(!o->reloadable || o->type != SL_CONFIG_STRING);
}

void sl_config_defaults(sl_config_t *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->http = sl_http_limits_default();
    for (size_t i = 0; i < SL_ARRAY_LEN(options); i++) {
        const sl_config_option_t *o = &options[i];
        check_row(o);
        if (!o->has_default) continue;
        switch (o->type) {
        case SL_CONFIG_BOOL:
            *(bool *)field(o, cfg) = o->def.b;
            break;
        case SL_CONFIG_DOUBLE:
            *(double *)field(o, cfg) = o->def.d;
            break;
        case SL_CONFIG_STRING:
            *string_field(o, cfg) = sl_strdup(o->def.s);
            break;
        default:
            store_uint(o, cfg, o->def.u);
        }
    }
}

void sl_config_free(sl_config_t *cfg) {
    if (!cfg) return;
    free(cfg->path);
    for (size_t i = 0; i < SL_ARRAY_LEN(options); i++) {
        if (options[i].type == SL_CONFIG_STRING) free(*string_field(&options[i], cfg));
    }
    memset(cfg, 0, sizeof *cfg);
}

bool sl_config_option_equal(const sl_config_option_t *o, const sl_config_t *a,
                            const sl_config_t *b) {
    switch (o->type) {
    case SL_CONFIG_BOOL:
        return *(bool *)field(o, a) == *(bool *)field(o, b);
    case SL_CONFIG_DOUBLE:
        return *(double *)field(o, a) == *(double *)field(o, b);
    case SL_CONFIG_STRING: {
        const char *x = *string_field(o, a), *y = *string_field(o, b);
        return strcmp(x ? x : "", y ? y : "") == 0;
    }
    default:
        return load_uint(o, a) == load_uint(o, b);
    }
}

void sl_config_option_copy(const sl_config_option_t *o, sl_config_t *dst, const sl_config_t *src) {
    if (o->type == SL_CONFIG_STRING) {
        char **d = string_field(o, dst);
        const char *s = *string_field(o, src);
        free(*d);
        *d = s ? sl_strdup(s) : NULL;
        return;
    }
    memcpy(field(o, dst), field(o, src), o->size);
}

size_t sl_config_diff_restart(const sl_config_t *a, const sl_config_t *b, sl_buf_t *names) {
    size_t n = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(options); i++) {
        if (options[i].reloadable || sl_config_option_equal(&options[i], a, b)) continue;
        if (names) {
            if (n) sl_buf_puts(names, ", ");
            sl_buf_puts(names, options[i].name);
        }
        n++;
    }
    return n;
}

/* Value syntaxes. */

static void format_duration(sl_buf_t *out, uint64_t ms) {
    if (ms == 0)
        sl_buf_puts(out, "0");
    else if (ms % MS_H == 0)
        sl_buf_printf(out, "%lluh", (unsigned long long)(ms / MS_H));
    else if (ms % MS_M == 0)
        sl_buf_printf(out, "%llum", (unsigned long long)(ms / MS_M));
    else if (ms % MS_S == 0)
        sl_buf_printf(out, "%llus", (unsigned long long)(ms / MS_S));
    else
        sl_buf_printf(out, "%llums", (unsigned long long)ms);
}

static void format_size(sl_buf_t *out, uint64_t n) {
    if (n != 0 && n % GIB == 0)
        sl_buf_printf(out, "%lluGiB", (unsigned long long)(n / GIB));
    else if (n != 0 && n % MIB == 0)
        sl_buf_printf(out, "%lluMiB", (unsigned long long)(n / MIB));
    else if (n != 0 && n % KIB == 0)
        sl_buf_printf(out, "%lluKiB", (unsigned long long)(n / KIB));
    else
        sl_buf_printf(out, "%llu", (unsigned long long)n);
}

static void format_uint(const sl_config_option_t *o, sl_buf_t *out, uint64_t v) {
    if (o->type == SL_CONFIG_DURATION)
        format_duration(out, v);
    else if (o->type == SL_CONFIG_SIZE)
        format_size(out, v);
    else
        sl_buf_printf(out, "%llu", (unsigned long long)v);
}

void sl_config_option_format(const sl_config_option_t *o, const sl_config_t *cfg, sl_buf_t *out) {
    switch (o->type) {
    case SL_CONFIG_BOOL:
        sl_buf_puts(out, *(bool *)field(o, cfg) ? "true" : "false");
        break;
    case SL_CONFIG_DOUBLE: {
        /* The shortest form that reads back the same: 0.01, not 0.010000000000000000208. */
        double v = *(double *)field(o, cfg);
        char tmp[40];
        for (int prec = 6; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) break;
        }
        sl_buf_puts(out, tmp);
        break;
    }
    case SL_CONFIG_STRING: {
        const char *s = *string_field(o, cfg);
        sl_buf_puts(out, s ? s : "");
        break;
    }
    case SL_CONFIG_ENUM: {
        uint64_t v = load_uint(o, cfg);
        size_t n = 0;
        while (o->enum_names[n])
            n++;
        sl_buf_puts(out, v < n ? o->enum_names[v] : "?");
        break;
    }
    default:
        format_uint(o, out, load_uint(o, cfg));
    }
}

void sl_config__quote(sl_buf_t *out, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const size_t max = 64;
    sl_buf_putc(out, '\'');
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
            sl_buf_putc(out, (char)c);
        } else {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            sl_buf_append(out, esc, 4);
        }
    }
    sl_buf_putc(out, '\'');
    if (len > max) sl_buf_printf(out, "... (%zu bytes)", len);
}

/* Digits with an optional fraction: "15", "1.5". Returns false on anything else or overflow. */
typedef struct {
    uint64_t whole;
    uint64_t frac;       /* fraction digits as an integer */
    uint64_t frac_scale; /* 10^number of fraction digits (1 if none) */
    size_t end;          /* index of the first byte after the number */
} decimal_t;

static int parse_decimal(const char *s, size_t len, bool allow_frac, decimal_t *d) {
    size_t i = 0;
    *d = (decimal_t){0, 0, 1, 0};
    if (i >= len || s[i] < '0' || s[i] > '9') return SL_EINVAL;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (__builtin_mul_overflow(d->whole, 10, &d->whole) ||
            __builtin_add_overflow(d->whole, (uint64_t)(s[i] - '0'), &d->whole))
            return SL_ERANGE;
    }
    if (allow_frac && i < len && s[i] == '.') {
        i++;
        if (i >= len || s[i] < '0' || s[i] > '9') return SL_EINVAL;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (d->frac_scale >= 1000000000000ull) return SL_EINVAL; /* 12 digits are plenty */
            d->frac = d->frac * 10 + (uint64_t)(s[i] - '0');
            d->frac_scale *= 10;
        }
    }
    d->end = i;
    return SL_OK;
}

/* whole * unit + frac * unit / scale, which must be a whole number. */
static int scale_decimal(const decimal_t *d, uint64_t unit, uint64_t *out) {
    uint64_t v, f;
    if (__builtin_mul_overflow(d->whole, unit, &v)) return SL_ERANGE;
    if (d->frac) {
        if (__builtin_mul_overflow(d->frac, unit, &f)) return SL_ERANGE;
        if (f % d->frac_scale != 0) return SL_EINVAL;
        if (__builtin_add_overflow(v, f / d->frac_scale, &v)) return SL_ERANGE;
    }
    *out = v;
    return SL_OK;
}

typedef struct {
    const char *name;
    uint64_t mult;
} unit_t;

static const unit_t duration_units[] = {{"ms", 1}, {"s", MS_S}, {"m", MS_M}, {"h", MS_H}};
static const unit_t size_units[] = {
    {"B", 1},     {"KiB", KIB}, {"Ki", KIB},    {"MiB", MIB},      {"Mi", MIB},
    {"GiB", GIB}, {"Gi", GIB},  {"KB", 1000},   {"MB", 1000000},   {"GB", 1000000000},
    {"k", 1000},  {"K", 1000},  {"M", 1000000}, {"G", 1000000000},
};

/* "<decimal> [unit]"; no unit means unit 1 and no fraction. */
static int parse_with_units(const char *s, size_t len, const unit_t *units, size_t n_units,
                            uint64_t *out) {
    decimal_t d;
    int rc = parse_decimal(s, len, true, &d);
    if (rc) return rc;
    size_t i = d.end;
    while (i < len && s[i] == ' ')
        i++;
    if (i == len) {
        if (d.frac || i != d.end) return SL_EINVAL;
        *out = d.whole;
        return SL_OK;
    }
    for (size_t u = 0; u < n_units; u++) {
        size_t ul = strlen(units[u].name);
        if (len - i == ul && memcmp(s + i, units[u].name, ul) == 0) {
            return scale_decimal(&d, units[u].mult, out);
        }
    }
    return SL_EINVAL;
}

static void describe(sl_buf_t *msg, const char *text, size_t len, const char *shown) {
    if (shown)
        sl_buf_puts(msg, shown);
    else
        sl_config__quote(msg, text, len);
}

static void bounds_text(const sl_config_option_t *o, sl_buf_t *out) {
    if (o->type == SL_CONFIG_DOUBLE) {
        sl_buf_printf(out, "%g..%g", o->dmin, o->dmax);
        return;
    }
    format_uint(o, out, o->min);
    sl_buf_puts(out, "..");
    format_uint(o, out, o->max);
}

static int bad_type(const sl_config_option_t *o, sl_buf_t *msg, const char *expected,
                    const char *text, size_t len, const char *shown) {
    sl_buf_printf(msg, "%s: expected %s, got ", o->name, expected);
    describe(msg, text, len, shown);
    return SL_EINVAL;
}

static int out_of_bounds(const sl_config_option_t *o, sl_buf_t *msg, const char *text, size_t len,
                         const char *shown) {
    sl_buf_printf(msg, "%s: ", o->name);
    describe(msg, text, len, shown);
    sl_buf_puts(msg, " is out of bounds (");
    bounds_text(o, msg);
    sl_buf_putc(msg, ')');
    return SL_ERANGE;
}

static const char *expected_text(sl_config_type_t t) {
    switch (t) {
    case SL_CONFIG_DURATION:
        return "a duration (250ms, 15s, 2m, 1h; a plain integer is milliseconds)";
    case SL_CONFIG_SIZE:
        return "a size (1024, 64KiB, 16MiB, 1GiB, 1GB)";
    case SL_CONFIG_PORT:
        return "a port number (0-65535)";
    default:
        return "an unsigned integer";
    }
}

static int set_integer(const sl_config_option_t *o, sl_config_t *cfg, const char *text, size_t len,
                       const char *shown, sl_buf_t *msg) {
    uint64_t v = 0;
    int rc;
    bool negative = len > 1 && text[0] == '-';
    const char *s = negative || (len > 1 && text[0] == '+') ? text + 1 : text;
    size_t n = len - (size_t)(s - text);
    if (o->type == SL_CONFIG_DURATION) {
        rc = parse_with_units(s, n, duration_units, SL_ARRAY_LEN(duration_units), &v);
    } else if (o->type == SL_CONFIG_SIZE) {
        rc = parse_with_units(s, n, size_units, SL_ARRAY_LEN(size_units), &v);
    } else {
        decimal_t d;
        rc = parse_decimal(s, n, false, &d);
        if (rc == SL_OK && d.end != n) rc = SL_EINVAL;
        v = d.whole;
    }
    if (rc == SL_EINVAL) return bad_type(o, msg, expected_text(o->type), text, len, shown);
    if (rc == SL_ERANGE || (negative && v != 0) || v < o->min || v > o->max) {
        return out_of_bounds(o, msg, text, len, shown);
    }
    store_uint(o, cfg, v);
    return SL_OK;
}

static int set_double(const sl_config_option_t *o, sl_config_t *cfg, const char *text, size_t len,
                      const char *shown, sl_buf_t *msg) {
    /* Only plain decimal notation: strtod would also take hex, "inf" and "nan". */
    char tmp[64];
    bool digit = false;
    if (len == 0 || len >= sizeof tmp) return bad_type(o, msg, "a number", text, len, shown);
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c >= '0' && c <= '9')
            digit = true;
        else if (!strchr("+-.eE", c) || c == '\0')
            return bad_type(o, msg, "a number", text, len, shown);
    }
    memcpy(tmp, text, len);
    tmp[len] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    if (!digit || end != tmp + len) return bad_type(o, msg, "a number", text, len, shown);
    if (!isfinite(v) || v < o->dmin || v > o->dmax) return out_of_bounds(o, msg, text, len, shown);
    *(double *)field(o, cfg) = v;
    return SL_OK;
}

int sl_config__set(const sl_config_option_t *o, sl_config_t *cfg, const char *text, size_t len,
                   const char *shown, sl_buf_t *msg) {
    switch (o->type) {
    case SL_CONFIG_BOOL:
        if ((len == 4 &&
             (!memcmp(text, "true", 4) || !memcmp(text, "True", 4) || !memcmp(text, "TRUE", 4)))) {
            *(bool *)field(o, cfg) = true;
            return SL_OK;
        }
        if ((len == 5 && (!memcmp(text, "false", 5) || !memcmp(text, "False", 5) ||
                          !memcmp(text, "FALSE", 5)))) {
            *(bool *)field(o, cfg) = false;
            return SL_OK;
        }
        return bad_type(o, msg, "true or false", text, len, shown);
    case SL_CONFIG_DOUBLE:
        return set_double(o, cfg, text, len, shown, msg);
    case SL_CONFIG_STRING: {
        if (memchr(text, '\0', len)) {
            sl_buf_printf(msg, "%s: the value contains a NUL byte", o->name);
            return SL_EINVAL;
        }
        if (len < o->min || len > o->max) {
            sl_buf_printf(msg, "%s: the value is %zu bytes long, allowed are %llu..%llu", o->name,
                          len, (unsigned long long)o->min, (unsigned long long)o->max);
            return SL_ERANGE;
        }
        char **p = string_field(o, cfg);
        free(*p);
        *p = sl_strndup(text, len);
        return SL_OK;
    }
    case SL_CONFIG_ENUM:
        for (size_t i = 0; o->enum_names[i]; i++) {
            if (strlen(o->enum_names[i]) == len && memcmp(o->enum_names[i], text, len) == 0) {
                store_uint(o, cfg, i);
                return SL_OK;
            }
        }
        sl_buf_printf(msg, "%s: expected one of ", o->name);
        for (size_t i = 0; o->enum_names[i]; i++) {
            sl_buf_printf(msg, "%s%s", i ? ", " : "", o->enum_names[i]);
        }
        sl_buf_puts(msg, ", got ");
        describe(msg, text, len, shown);
        return SL_EINVAL;
    default:
        return set_integer(o, cfg, text, len, shown, msg);
    }
}

/* docs/configuration.md */

static void docs_bounds(const sl_config_option_t *o, sl_buf_t *out) {
    switch (o->type) {
    case SL_CONFIG_BOOL:
        sl_buf_puts(out, "true, false");
        break;
    case SL_CONFIG_ENUM:
        for (size_t i = 0; o->enum_names[i]; i++) {
            sl_buf_printf(out, "%s`%s`", i ? ", " : "", o->enum_names[i]);
        }
        break;
    case SL_CONFIG_STRING:
        sl_buf_printf(out, "length %llu..%llu", (unsigned long long)o->min,
                      (unsigned long long)o->max);
        break;
    default:
        bounds_text(o, out);
    }
}

static const char docs_intro[] =
    "# Sluice configuration\n"
    "\n"
    "<!-- Generated from src/core/config_options.c by `sluice config docs`; do not edit. -->\n"
    "\n"
    "Sluice reads one YAML file: `sluice serve --config FILE`; `sluice config check FILE`\n"
    "validates one offline. Every option is optional: without a file (or with an empty one)\n"
    "Sluice runs with the defaults below. Options are nested maps named by their dotted path,\n"
    "so `server.io_threads` is written\n"
    "\n"
    "```yaml\n"
    "server:\n"
    "  io_threads: 2\n"
    "```\n"
    "\n"
    "Every mistake is reported, all at once, as `file:line: message`: YAML syntax, unknown\n"
    "options (with the closest known name), wrong types, values out of bounds, duplicate keys\n"
    "and scalars where a section is expected. The loader refuses anchors and aliases, nesting\n"
    "deeper than 16 levels, scalars over 64 KiB and files over 1 MiB.\n"
    "\n"
    "## Values\n"
    "\n"
    "- **duration**: an integer with a unit `ms`, `s`, `m` or `h` (`250ms`, `15s`, `1.5s`,\n"
    "  `2m`); a plain integer is milliseconds.\n"
    "- **size**: bytes, optionally with a unit: `KiB`, `MiB`, `GiB` (also `Ki`, `Mi`, `Gi`) are\n"
    "  powers of 1024; `KB`, `MB`, `GB` (also `k`/`K`, `M`, `G`) powers of 1000.\n"
    "- **port**: 0 to 65535; 0 picks a free port.\n"
    "- **bool**: `true` or `false`.\n"
    "\n"
    "## References and secrets\n"
    "\n"
    "Any value may reference the environment or a file, so secrets stay out of the file:\n"
    "\n"
    "- `${NAME}`: the environment variable NAME; unset is an error naming it.\n"
    "- `${NAME:-default}`: NAME, or `default` when NAME is unset or empty.\n"
    "- `${file:/abs/path}`: the contents of the file (at most 64 KiB; one trailing newline\n"
    "  removed), e.g. a mounted Kubernetes Secret. An unreadable file is an error.\n"
    "- `$${` is a literal `${`.\n"
    "\n"
    "Error messages show the reference, never the value it resolved to.\n"
    "\n"
    "## Reload\n"
    "\n"
    "Sluice watches the file's directory (Kubernetes ConfigMap volumes included) and reloads on\n"
    "change or SIGHUP. Options marked reloadable take effect at once; changes to any other\n"
    "option are logged as \"restart required\" and keep their old value until a restart. A file\n"
    "that fails to load is logged with every error and the last good configuration stays in\n"
    "effect; `sluice_config_last_reload_success` (0/1) and\n"
    "`sluice_config_last_reload_success_timestamp_seconds` report the outcome.\n";

void sl_config_docs_markdown(sl_buf_t *out) {
    sl_config_t def;
    sl_config_defaults(&def);
    sl_buf_puts(out, docs_intro);
    for (size_t s = 0; s < SL_ARRAY_LEN(sections); s++) {
        size_t sl = strlen(sections[s].name);
        sl_buf_printf(out, "\n## %s\n\n%s\n\n", sections[s].name, sections[s].doc);
        sl_buf_puts(out, "| option | type | default | bounds | reloadable | description |\n"
                         "|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < SL_ARRAY_LEN(options); i++) {
            const sl_config_option_t *o = &options[i];
            if (strncmp(o->name, sections[s].name, sl) != 0 || o->name[sl] != '.') continue;
            sl_buf_printf(out, "| `%s` | %s | `", o->name, sl_config_type_name(o->type));
            size_t before = out->len;
            sl_config_option_format(o, &def, out);
            if (out->len == before) sl_buf_puts(out, "\"\"");
            sl_buf_puts(out, "` | ");
            docs_bounds(o, out);
            sl_buf_printf(out, " | %s | %s |\n", o->reloadable ? "yes" : "no", o->doc);
        }
        bool any = false;
        for (size_t i = 0; i < SL_ARRAY_LEN(owned_keys); i++) {
            const sl_config_owned_key_t *k = &owned_keys[i];
            if (strncmp(k->name, sections[s].name, sl) != 0 || k->name[sl] != '.') continue;
            if (!any) {
                sl_buf_printf(out,
                              "\nNested sections that the %s parses itself (reloaded with "
                              "the file; docs/%s.md describes them):\n\n",
                              sections[s].name, sections[s].name);
                any = true;
            }
            sl_buf_printf(out, "- `%s`: %s\n", k->name, k->doc);
        }
    }
    sl_config_free(&def);
}
