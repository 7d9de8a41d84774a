/* OTLP/HTTP JSON export of finished spans: the span record, its JSON encoding and the batching
 * exporter behind sl_tracer. Private to trace.c (and its tests); components use core/trace.h. */
#ifndef SL_OTLP_H
#define SL_OTLP_H

#include "core/buf.h"
#include "core/common.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define SL_OTLP_MAX_ATTRS 16

typedef struct sl_otlp_attr {
    const char *key;
    const char *str; /* NULL: an int attribute, value in i */
    int64_t i;
} sl_otlp_attr_t;

/* What an exported span carries. Strings are owned by whoever owns the record (trace.c keeps
 * them in the span's allocation). */
typedef struct sl_otlp_span {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_span_id[8];
    bool has_parent;
    const char *name;
    const char *trace_state; /* NULL or "" when absent */
    int kind;                /* sl_span_kind_t: 1 internal, 2 server, 3 client */
    uint64_t start_ns, end_ns;
    sl_otlp_attr_t attrs[SL_OTLP_MAX_ATTRS];
    unsigned n_attrs;
    int status_code; /* 0 unset (omitted), 1 ok, 2 error */
    const char *status_message;
} sl_otlp_span_t;

/* Appends one ExportTraceServiceRequest in OTLP JSON for n spans of service_name to out:
 * lowercase hex ids, enum values as integers, int64 values as decimal strings, strings escaped
 * (invalid UTF-8 becomes U+FFFD). Borrowed arguments only. */
void sl_otlp__encode(const char *service_name, const sl_otlp_span_t *const *spans, size_t n,
                     sl_buf_t *out);

typedef struct sl_otlp_exporter sl_otlp_exporter_t;

typedef struct sl_otlp_exporter_opts {
    const char *service_name; /* copied */
    const char *endpoint;     /* "http://host:port/path" (copied) */
    uint32_t queue_size;      /* > 0 */
    uint32_t batch_size;      /* > 0, <= queue_size */
    uint32_t flush_interval_ms;
    uint32_t export_timeout_ms;
    /* Frees a record the exporter owns (after it was encoded, or dropped at shutdown). */
    void (*span_free)(sl_otlp_span_t *span);
} sl_otlp_exporter_opts_t;

/* Creates an exporter whose handles live on loop (they are created here, so call this on the
 * loop's thread or before the loop runs). Registers its counters in the default metrics
 * registry. Returns 0 and *out, or SL_EINVAL for an endpoint that is not an http:// URL. */
int sl_otlp__exporter_new(const sl_otlp_exporter_opts_t *opts, uv_loop_t *loop,
                          sl_otlp_exporter_t **out);

/* Queues a finished span; any thread, never blocks. Returns true when the exporter took
 * ownership; false when the queue was full or the exporter has stopped (the drop is counted
 * and the caller still owns span). */
bool sl_otlp__exporter_enqueue(sl_otlp_exporter_t *ex, sl_otlp_span_t *span);

/* On the loop's thread: sends what is queued (giving up after export_timeout_ms; what is left
 * is dropped and counted as export_failed), closes the handles, frees the exporter, then calls
 * done(arg). Spans enqueued after the last batch left are dropped as queue_full. */
void sl_otlp__exporter_shutdown(sl_otlp_exporter_t *ex, void (*done)(void *arg), void *arg);

/* Counters of this exporter (any thread). */
uint64_t sl_otlp__exporter_exported(const sl_otlp_exporter_t *ex);
uint64_t sl_otlp__exporter_dropped_full(const sl_otlp_exporter_t *ex);
uint64_t sl_otlp__exporter_dropped_failed(const sl_otlp_exporter_t *ex);

/* trace.c internal, for tests: the record behind a span (borrowed until sl_span_end). */
struct sl_span;
const sl_otlp_span_t *sl_span__record(const struct sl_span *s);

#endif
