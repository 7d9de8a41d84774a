/* Tracing: W3C Trace Context (traceparent/tracestate) parsing and formatting, spans with
 * parent-based ratio sampling, and a batched, asynchronous OTLP/HTTP JSON exporter fed through a
 * bounded queue (spans that do not fit are dropped and counted, never blocking a request). */
#ifndef SL_TRACE_H
#define SL_TRACE_H

#include "core/common.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define SL_TRACEPARENT_LEN 55
#define SL_TRACESTATE_MAX  512

typedef struct sl_trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;                          /* bit 0: sampled */
    char tracestate[SL_TRACESTATE_MAX + 1]; /* as received, "" when absent */
} sl_trace_ctx_t;

/* Parses a traceparent header value ("00-<32 hex>-<16 hex>-<2 hex>"; higher versions are
 * accepted by their first four fields as the spec asks). Returns 0 or SL_EPARSE (all-zero ids,
 * uppercase hex, version ff and bad lengths are rejected). tracestate is left empty. */
int sl_traceparent_parse(sl_str_t value, sl_trace_ctx_t *out);
/* Validates a tracestate value (list of key=value, at most 32 members, at most 512 bytes) and
 * stores it in ctx; returns 0 or SL_EPARSE (ctx->tracestate is then left empty). */
int sl_tracestate_parse(sl_str_t value, sl_trace_ctx_t *ctx);
/* Writes the 55-character traceparent of ctx and a NUL into out. */
void sl_traceparent_format(const sl_trace_ctx_t *ctx, char out[SL_TRACEPARENT_LEN + 1]);
/* Lowercase hex of the ids, NUL-terminated. */
void sl_trace_id_hex(const sl_trace_ctx_t *ctx, char out[33]);
void sl_span_id_hex(const sl_trace_ctx_t *ctx, char out[17]);

typedef struct sl_tracer sl_tracer_t;
typedef struct sl_span sl_span_t;

typedef enum {
    SL_SPAN_INTERNAL = 1,
    SL_SPAN_SERVER = 2,
    SL_SPAN_CLIENT = 3,
} sl_span_kind_t;

typedef struct sl_tracer_opts {
    const char *service_name; /* resource attribute service.name (copied) */
    const char *endpoint;     /* "http://host:port/v1/traces"; NULL or "": spans are not exported */
    double sample_ratio;      /* for root spans; children follow their parent's flag */
    uint32_t queue_size;      /* spans waiting for export; beyond it they are dropped */
    uint32_t batch_size;      /* spans per OTLP request */
    uint32_t flush_interval_ms; /* a partial batch is sent after this */
    uint32_t export_timeout_ms; /* per OTLP request */
} sl_tracer_opts_t;

/* Creates a tracer whose exporter runs on export_loop (its thread sends the batches).
 * Returns NULL with SL_EINVAL in *err for a bad endpoint URL. */
sl_tracer_t *sl_tracer_new(const sl_tracer_opts_t *opts, uv_loop_t *export_loop, int *err);
/* Exports what is queued (bounded by export_timeout_ms), then frees; on export_loop's thread,
 * which must run for the flush to happen; done(arg) is called when the tracer is gone. */
void sl_tracer_shutdown(sl_tracer_t *t, void (*done)(void *arg), void *arg);
/* Hot reload of the ratio (any thread). */
void sl_tracer_set_sample_ratio(sl_tracer_t *t, double ratio);
uint64_t sl_tracer_dropped(const sl_tracer_t *t);  /* spans dropped because the queue was full */
uint64_t sl_tracer_exported(const sl_tracer_t *t); /* spans accepted by the collector */

/* Starts a span (any thread). parent NULL or invalid: a new trace, sampled by ratio; otherwise
 * the same trace id, a new span id, and the parent's sampled flag and tracestate. Always returns
 * a span (unsampled ones carry context for propagation but are never exported). t may be NULL:
 * the span then only carries context. */
sl_span_t *sl_span_start(sl_tracer_t *t, const char *name, sl_span_kind_t kind,
                         const sl_trace_ctx_t *parent);
/* The span's own context (its span id), borrowed until sl_span_end. */
const sl_trace_ctx_t *sl_span_ctx(const sl_span_t *s);
bool sl_span_sampled(const sl_span_t *s);
/* Attributes (copied; at most 16 per span, the rest ignored). */
void sl_span_attr_str(sl_span_t *s, const char *key, const char *value);
void sl_span_attr_int(sl_span_t *s, const char *key, int64_t value);
/* Marks the span failed with a message (copied). */
void sl_span_set_error(sl_span_t *s, const char *message);
/* Ends the span: sampled ones go to the export queue, the rest are freed. s is gone after. */
void sl_span_end(sl_span_t *s);

#endif
