/* Configuration: the one YAML file every component reads, described by an option table (name,
 * type, offset, default, bounds, reloadable) from which loading, validation, `sluice config
 * check` and docs/configuration.md are all derived. Values may reference secrets: ${NAME},
 * ${NAME:-default} and ${file:/abs/path}. Hot reload lives in core/config_reload.h. */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include "core/buf.h"
#include "core/common.h"
#include "core/http.h"
#include "core/log.h"

#include <stdbool.h>
#include <stdint.h>

/* The configuration the rest of the program reads. Field names are the YAML option names:
 * `server: {io_threads: 2}` sets server.io_threads. Durations are milliseconds (the _ms fields),
 * sizes bytes. Strings are owned by the struct (free with sl_config_free). */
typedef struct sl_config {
    char *path; /* file it was loaded from, NULL for built-in defaults */
    struct {
        char *bind_host;
        unsigned io_threads; /* 0 = number of online CPUs */
        unsigned worker_threads;
        uint32_t drain_timeout_ms;
        uint32_t drain_delay_ms;
    } server;
    sl_http_limits_t http; /* defaults = sl_http_limits_default() */
    struct {
        uint32_t max_message_bytes;
        uint32_t max_concurrent_streams;
        uint32_t max_connections;
        uint32_t idle_timeout_ms;
    } grpc;
    struct {
        sl_log_level_t level;
        uint32_t rate_limit; /* lines per second per call site, 0 = unlimited */
    } log;
    struct {
        char *endpoint; /* "" = no export */
        char *service_name;
        double sample_ratio;
        uint32_t queue_size;
        uint32_t batch_size;
        uint32_t flush_interval_ms;
        uint32_t export_timeout_ms;
    } tracing;
    struct {
        uint16_t http_port;
        char *keys_file;             /* "" = no keys file */
        uint32_t reload_interval_ms; /* keys file poll */
    } gateway;
    struct {
        uint16_t http_port;
        uint16_t grpc_port;
        char *model_repository;    /* "" = no repository: no models, ready */
        char *backend_dir;         /* "" = built-in backends only */
        uint32_t poll_interval_ms; /* 0 = no polling */
    } inference;
    struct {
        uint16_t http_port;
        uint16_t grpc_port;
    } features;
    struct {
        uint16_t http_port;
        uint16_t grpc_port;
    } registry;
    struct {
        uint16_t http_port;
    } worker;
    struct {
        bool echo; /* echo endpoints for benchmarks: POST /v1/echo, gRPC sluice.v1.Echo/Echo */
    } debug;
} sl_config_t;

/* Hostile-input limits of the loader. */
#define SL_CONFIG_MAX_FILE_BYTES   (1u << 20)  /* the whole file */
#define SL_CONFIG_MAX_DEPTH        16          /* nested mappings/sequences */
#define SL_CONFIG_MAX_SCALAR_BYTES (64u << 10) /* one scalar, before and after ${} expansion */
#define SL_CONFIG_MAX_SECRET_BYTES (64u << 10) /* one ${file:...} */
#define SL_CONFIG_MAX_ERRORS       1000

/* Every error of one load, each "file:line: message" (or "file: message" without a line). */
typedef struct sl_config_errors {
    char **msgs; /* owned, n entries */
    size_t n;
    size_t cap;
    bool truncated; /* SL_CONFIG_MAX_ERRORS was reached and loading stopped there */
} sl_config_errors_t;

#define SL_CONFIG_ERRORS_INIT                                                                      \
    { NULL, 0, 0, false }

/* Fills cfg with the built-in defaults (cfg->path NULL). Free with sl_config_free. */
void sl_config_defaults(sl_config_t *cfg);

/* Loads path: defaults, overridden by the file's options. An empty file gives the defaults.
 * On success returns 0 and cfg (caller frees with sl_config_free) has cfg->path = a copy of path.
 * On failure returns SL_EIO (unreadable), SL_ELIMIT (larger than SL_CONFIG_MAX_FILE_BYTES) or
 * SL_EPARSE (any error in the content), leaves cfg zeroed (nothing to free; sl_config_free on it is
 * harmless), and appends every error found to errs (caller frees with sl_config_errors_free; errs
 * may be NULL). */
int sl_config_load_file(const char *path, sl_config_t *cfg, sl_config_errors_t *errs);

/* The same on a buffer (data borrowed; need not be NUL-terminated); name is the file name used
 * in error messages. cfg->path is left NULL. Same returns and ownership as sl_config_load_file. */
int sl_config_load_buffer(const char *name, const void *data, size_t len, sl_config_t *cfg,
                          sl_config_errors_t *errs);

/* Frees what cfg owns and zeroes it. NULL is fine. */
void sl_config_free(sl_config_t *cfg);
/* Frees the messages and resets errs to SL_CONFIG_ERRORS_INIT. NULL is fine. */
void sl_config_errors_free(sl_config_errors_t *errs);

/* The option table. */
typedef enum sl_config_type {
    SL_CONFIG_BOOL,     /* true / false */
    SL_CONFIG_UINT,     /* decimal integer within [min, max] */
    SL_CONFIG_DOUBLE,   /* decimal number within [dmin, dmax] */
    SL_CONFIG_STRING,   /* length within [min, max] bytes */
    SL_CONFIG_ENUM,     /* one of enum_names; stored as its index */
    SL_CONFIG_DURATION, /* "250ms", "15s", "2m", "1h", "1.5s"; a plain integer is milliseconds */
    SL_CONFIG_SIZE,     /* "1024", "64KiB", "16MiB", "1GiB" (also Ki/Mi/Gi); KB/MB/GB are 1000s */
    SL_CONFIG_PORT,     /* 0-65535; 0 picks a free port */
} sl_config_type_t;

typedef struct sl_config_option {
    const char *name; /* dotted path, "server.io_threads" */
    sl_config_type_t type;
    size_t offset;    /* offsetof(sl_config_t, ...) */
    size_t size;      /* sizeof the field: integers and enums are 2, 4 or 8 bytes wide */
    bool has_default; /* false: the default comes from the owning component (HTTP limits) */
    union {
        bool b;
        uint64_t u;
        double d;
        const char *s;
    } def;
    uint64_t min, max; /* integer kinds: value bounds (ms for durations); strings: length */
    double dmin, dmax; /* SL_CONFIG_DOUBLE */
    const char *const *enum_names; /* SL_CONFIG_ENUM: NULL-terminated, indexed by value */
    bool reloadable;               /* takes effect on reload; the others need a restart */
    /* For reloadable options the reloader applies itself (log.level, log.rate_limit); NULL for
     * ones the application applies in its on_apply callback (tracing.sample_ratio). */
    void (*apply)(const sl_config_t *cfg);
    const char *doc; /* one line */
} sl_config_option_t;

/* The table (static, never NULL); *n receives its length. */
const sl_config_option_t *sl_config_options(size_t *n);
/* The option named name ("log.level"), or NULL. */
const sl_config_option_t *sl_config_option_find(const char *name);
/* True when opt's value is the same in a and b. */
bool sl_config_option_equal(const sl_config_option_t *opt, const sl_config_t *a,
                            const sl_config_t *b);
/* Copies opt's value from src into dst (strings duplicated, dst's old string freed). */
void sl_config_option_copy(const sl_config_option_t *opt, sl_config_t *dst, const sl_config_t *src);
/* Appends opt's value in cfg as the config file would spell it ("15s", "16MiB", "info"). */
void sl_config_option_format(const sl_config_option_t *opt, const sl_config_t *cfg, sl_buf_t *out);
/* Appends a type's name for docs and messages ("duration", "size", ...). */
const char *sl_config_type_name(sl_config_type_t type);

/* Keys under a section whose values are nested structures parsed by the component that owns
 * them, from the same file (the gateway's pools, limits, routes...): the loader accepts any
 * value there without looking inside, and the component reports its own file:line errors. */
typedef struct sl_config_owned_key {
    const char *name; /* "gateway.upstreams" */
    const char *doc;
} sl_config_owned_key_t;
const sl_config_owned_key_t *sl_config_owned_keys(size_t *n);

/* Counts the options that need a restart (not reloadable) whose values differ between a and b;
 * when names is not NULL, appends their names to it separated by ", ". */
size_t sl_config_diff_restart(const sl_config_t *a, const sl_config_t *b, sl_buf_t *names);

/* Appends docs/configuration.md (Markdown, generated from the table) to out. */
void sl_config_docs_markdown(sl_buf_t *out);

/* Internal to config*.c: sets opt in cfg from a scalar's text (already ${}-expanded, text[len]
 * is NUL). Returns 0, or SL_EINVAL / SL_ERANGE with a message naming the option ("x.y: expected
 * ..., got ...", "x.y: ... is out of bounds (lo..hi)") appended to msg. shown describes the
 * value in that message; NULL quotes text itself. The loader passes the raw text when the value
 * came from a ${} reference, so a secret never reaches a message or a log. */
int sl_config__set(const sl_config_option_t *opt, sl_config_t *cfg, const char *text, size_t len,
                   const char *shown, sl_buf_t *msg);
/* Internal: reads a regular file of at most max bytes into out (reset first). Returns 0, or
 * SL_EIO / SL_ELIMIT with one "path: message" error appended to errs (which may be NULL). */
int sl_config__read_file(const char *path, size_t max, sl_buf_t *out, sl_config_errors_t *errs);
/* Internal: appends s as a quoted, escaped, truncated string for error messages. */
void sl_config__quote(sl_buf_t *out, const char *s, size_t len);

#endif
