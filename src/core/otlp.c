/* The OTLP/HTTP JSON exporter behind sl_tracer: spans ended on any thread enter a bounded ring
 * under a mutex (a full ring drops and counts, never blocks); the exporter loop's thread wakes on
 * a uv_async when a batch is full or on a uv_timer every flush interval, and sends one batch at a
 * time with the HTTP client. A failed batch is dropped and counted, never retried. */
#include "core/otlp.h"

#include "core/http_client.h"
#include "core/log.h"
#include "core/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding ---------------------------------------------------------------------------- */

/* A JSON string; sl_buf_json_escape replaces ill-formed UTF-8 with U+FFFD. */
static void put_str(sl_buf_t *b, const char *s) {
    sl_buf_putc(b, '"');
    if (s) sl_buf_json_escape(b, s, strlen(s));
    sl_buf_putc(b, '"');
}

static void put_hex(sl_buf_t *b, const uint8_t *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    sl_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        char two[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        sl_buf_append(b, two, 2);
    }
    sl_buf_putc(b, '"');
}

static void put_span(sl_buf_t *b, const sl_otlp_span_t *s) {
    sl_buf_puts(b, "{\"traceId\":");
    put_hex(b, s->trace_id, sizeof s->trace_id);
    sl_buf_puts(b, ",\"spanId\":");
    put_hex(b, s->span_id, sizeof s->span_id);
    if (s->trace_state && s->trace_state[0]) {
        sl_buf_puts(b, ",\"traceState\":");
        put_str(b, s->trace_state);
    }
    if (s->has_parent) {
        sl_buf_puts(b, ",\"parentSpanId\":");
        put_hex(b, s->parent_span_id, sizeof s->parent_span_id);
    }
    sl_buf_puts(b, ",\"name\":");
    put_str(b, s->name);
    /* int64 and fixed64 travel as decimal strings in OTLP JSON. */
    sl_buf_printf(b, ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\"",
                  s->kind, (unsigned long long)s->start_ns, (unsigned long long)s->end_ns);
    if (s->n_attrs > 0) {
        sl_buf_puts(b, ",\"attributes\":[");
        for (unsigned i = 0; i < s->n_attrs; i++) {
            const sl_otlp_attr_t *a = &s->attrs[i];
            sl_buf_puts(b, i ? ",{\"key\":" : "{\"key\":");
            put_str(b, a->key);
            if (a->str) {
                sl_buf_puts(b, ",\"value\":{\"stringValue\":");
                put_str(b, a->str);
                sl_buf_puts(b, "}}");
            } else {
                sl_buf_printf(b, ",\"value\":{\"intValue\":\"%lld\"}}", (long long)a->i);
            }
        }
        sl_buf_putc(b, ']');
    }
    if (s->status_code != 0) {
        sl_buf_printf(b, ",\"status\":{\"code\":%d", s->status_code);
        if (s->status_message && s->status_message[0]) {
            sl_buf_puts(b, ",\"message\":");
            put_str(b, s->status_message);
        }
        sl_buf_putc(b, '}');
    }
    sl_buf_putc(b, '}');
}

void sl_otlp__encode(const char *service_name, const sl_otlp_span_t *const *spans, size_t n,
                     sl_buf_t *out) {
    sl_buf_puts(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                     "\"value\":{\"stringValue\":");
    put_str(out, service_name);
    sl_buf_puts(out, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"sluice\"},\"spans\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) sl_buf_putc(out, ',');
        put_span(out, spans[i]);
    }
    sl_buf_puts(out, "]}]}]}");
}

/* ---- the exporter ------------------------------------------------------------------------ */

struct sl_otlp_exporter {
    char *service_name;
    char *host, *path;
    uint16_t port;
    uint32_t batch_size, flush_interval_ms, export_timeout_ms;
    void (*span_free)(sl_otlp_span_t *span);
    uv_loop_t *loop;

    /* The ring: producers on any thread, the consumer on the loop's thread. */
    pthread_mutex_t mu;
    sl_otlp_span_t **ring;
    uint32_t cap, head, count;
    bool stopped; /* no more spans accepted and no more wake-ups sent */

    /* Loop-thread state. */
    uv_async_t wake;
    uv_timer_t timer; /* flush interval; the shutdown deadline once shutting down */
    sl_http_client_t *client;
    bool in_flight;
    size_t in_flight_n;
    sl_otlp_span_t **batch;
    sl_buf_t body;
    bool shutting_down, deadline_passed;
    unsigned open_handles;
    void (*done)(void *arg);
    void *done_arg;

    _Atomic uint64_t exported, dropped_full, dropped_failed;
    sl_counter_t *m_exported, *m_full, *m_failed;
};

static void send_batch(sl_otlp_exporter_t *ex, bool partial);
static void shutdown_step(sl_otlp_exporter_t *ex);

static void count_failed(sl_otlp_exporter_t *ex, size_t n) {
    if (n == 0) return;
    atomic_fetch_add_explicit(&ex->dropped_failed, n, memory_order_relaxed);
    sl_counter_add(ex->m_failed, n);
}

/* Takes up to max spans off the ring into out. */
static size_t ring_pop(sl_otlp_exporter_t *ex, sl_otlp_span_t **out, size_t max) {
    pthread_mutex_lock(&ex->mu);
    size_t n = SL_MIN((size_t)ex->count, max);
    for (size_t i = 0; i < n; i++) {
        out[i] = ex->ring[ex->head];
        ex->head = (ex->head + 1) % ex->cap;
    }
    ex->count -= (uint32_t)n;
    pthread_mutex_unlock(&ex->mu);
    return n;
}

static uint32_t ring_count(sl_otlp_exporter_t *ex) {
    pthread_mutex_lock(&ex->mu);
    uint32_t n = ex->count;
    pthread_mutex_unlock(&ex->mu);
    return n;
}

static void export_cb(int status, const sl_http_response_t *resp, void *arg) {
    sl_otlp_exporter_t *ex = arg;
    size_t n = ex->in_flight_n;
    ex->in_flight = false;
    ex->in_flight_n = 0;
    if (status == 0 && resp->status >= 200 && resp->status < 300) {
        atomic_fetch_add_explicit(&ex->exported, n, memory_order_relaxed);
        sl_counter_add(ex->m_exported, n);
    } else {
        count_failed(ex, n);
        SL_WARN("trace", "span export failed, batch dropped", SL_LF_U("spans", n),
                SL_LF_S("error", status ? sl_strerror(status) : "collector error"),
                SL_LF_I("http_status", status ? 0 : resp->status));
    }
    if (ex->shutting_down)
        shutdown_step(ex);
    else if (ring_count(ex) >= ex->batch_size)
        send_batch(ex, false);
}

/* Sends one batch if none is in flight: a full one, or (partial) whatever is queued. */
static void send_batch(sl_otlp_exporter_t *ex, bool partial) {
    if (ex->in_flight || !ex->client) return;
    if (!partial && ring_count(ex) < ex->batch_size) return;
    size_t n = ring_pop(ex, ex->batch, ex->batch_size);
    if (n == 0) return;
    sl_buf_reset(&ex->body);
    sl_otlp__encode(ex->service_name, (const sl_otlp_span_t *const *)ex->batch, n, &ex->body);
    for (size_t i = 0; i < n; i++)
        ex->span_free(ex->batch[i]);
    const sl_http_header_t ct = {SL_STR("Content-Type"), SL_STR("application/json")};
    sl_http_client_req_t req = {.method = "POST",
                                .host = ex->host,
                                .port = ex->port,
                                .path = ex->path,
                                .headers = &ct,
                                .n_headers = 1,
                                .body = ex->body.data,
                                .body_len = ex->body.len,
                                .timeout_ms = ex->export_timeout_ms};
    ex->in_flight = true;
    ex->in_flight_n = n;
    if (sl_http_client_request(ex->client, &req, export_cb, ex) < 0) {
        ex->in_flight = false;
        ex->in_flight_n = 0;
        count_failed(ex, n);
    }
}

static void wake_cb(uv_async_t *a) {
    sl_otlp_exporter_t *ex = a->data;
    if (ex->shutting_down)
        shutdown_step(ex);
    else
        send_batch(ex, false);
}

static void flush_timer_cb(uv_timer_t *t) {
    send_batch(t->data, true);
}

int sl_otlp__exporter_new(const sl_otlp_exporter_opts_t *opts, uv_loop_t *loop,
                          sl_otlp_exporter_t **out) {
    char *host, *path;
    uint16_t port;
    *out = NULL;
    SL_ASSERT(opts->queue_size > 0 && opts->batch_size > 0 && opts->span_free);
    if (!loop || sl_http_url_parse(opts->endpoint, &host, &port, &path) < 0) return SL_EINVAL;
    sl_otlp_exporter_t *ex = sl_calloc(1, sizeof *ex);
    ex->service_name = sl_strdup(opts->service_name ? opts->service_name : "sluice");
    ex->host = host;
    ex->path = path;
    ex->port = port;
    ex->batch_size = SL_MIN(opts->batch_size, opts->queue_size);
    ex->flush_interval_ms = opts->flush_interval_ms ? opts->flush_interval_ms : 5000;
    ex->export_timeout_ms = opts->export_timeout_ms ? opts->export_timeout_ms : 10000;
    ex->span_free = opts->span_free;
    ex->loop = loop;
    pthread_mutex_init(&ex->mu, NULL);
    ex->cap = opts->queue_size;
    ex->ring = sl_calloc(ex->cap, sizeof *ex->ring);
    ex->batch = sl_calloc(ex->batch_size, sizeof *ex->batch);

    sl_metrics_t *m = sl_metrics_default();
    ex->m_exported = sl_metrics_counter(m, "sluice_trace_spans_exported_total",
                                        "Spans accepted by the OTLP collector.");
    const char *labels[] = {"reason"};
    sl_metric_family_t *f = sl_metrics_counter_family(
        m, "sluice_trace_spans_dropped_total",
        "Spans not exported: the queue was full, or the collector failed.", 1, labels, 2);
    ex->m_full = sl_metric_counter(f, (const char *const[]){"queue_full"});
    ex->m_failed = sl_metric_counter(f, (const char *const[]){"export_failed"});

    sl_http_client_opts_t co = {.request_timeout_ms = ex->export_timeout_ms,
                                .connect_timeout_ms = SL_MIN(ex->export_timeout_ms, 2000u),
                                .max_conns_per_host = 1,
                                .max_response_bytes = 1u << 20};
    ex->client = sl_http_client_new(loop, &co);
    uv_async_init(loop, &ex->wake, wake_cb);
    ex->wake.data = ex;
    uv_timer_init(loop, &ex->timer);
    ex->timer.data = ex;
    uv_timer_start(&ex->timer, flush_timer_cb, ex->flush_interval_ms, ex->flush_interval_ms);
    ex->open_handles = 2;
    *out = ex;
    return 0;
}

bool sl_otlp__exporter_enqueue(sl_otlp_exporter_t *ex, sl_otlp_span_t *span) {
    pthread_mutex_lock(&ex->mu);
    if (ex->stopped || ex->count == ex->cap) {
        pthread_mutex_unlock(&ex->mu);
        atomic_fetch_add_explicit(&ex->dropped_full, 1, memory_order_relaxed);
        sl_counter_inc(ex->m_full);
        return false;
    }
    ex->ring[(ex->head + ex->count) % ex->cap] = span;
    ex->count++;
    /* Wake the exporter once per full batch; under the lock, so shutdown cannot close the
     * async handle between our check of stopped and the send. */
    if (ex->count == ex->batch_size) uv_async_send(&ex->wake);
    pthread_mutex_unlock(&ex->mu);
    return true;
}

static void handle_closed(uv_handle_t *h) {
    sl_otlp_exporter_t *ex = h->data;
    if (--ex->open_handles > 0) return;
    void (*done)(void *) = ex->done;
    void *arg = ex->done_arg;
    pthread_mutex_destroy(&ex->mu);
    sl_buf_free(&ex->body);
    free(ex->ring);
    free(ex->batch);
    free(ex->service_name);
    free(ex->host);
    free(ex->path);
    free(ex);
    if (done) done(arg);
}

static void shutdown_finish(sl_otlp_exporter_t *ex) {
    pthread_mutex_lock(&ex->mu);
    ex->stopped = true;
    pthread_mutex_unlock(&ex->mu);
    sl_otlp_span_t *left[64];
    size_t n;
    while ((n = ring_pop(ex, left, SL_ARRAY_LEN(left))) > 0) {
        count_failed(ex, n);
        for (size_t i = 0; i < n; i++)
            ex->span_free(left[i]);
    }
    if (ex->client) {
        sl_http_client_t *c = ex->client;
        ex->client = NULL;
        sl_http_client_free(c);
    }
    uv_close((uv_handle_t *)&ex->wake, handle_closed);
    uv_close((uv_handle_t *)&ex->timer, handle_closed);
}

static void shutdown_step(sl_otlp_exporter_t *ex) {
    if (ex->in_flight || uv_is_closing((uv_handle_t *)&ex->timer)) return;
    if (!ex->deadline_passed && ex->client && ring_count(ex) > 0) {
        send_batch(ex, true);
        if (ex->in_flight) return;
    }
    shutdown_finish(ex);
}

static void deadline_cb(uv_timer_t *t) {
    sl_otlp_exporter_t *ex = t->data;
    ex->deadline_passed = true;
    if (ex->client) {
        /* Cancels the request in flight; its callback counts the batch and steps on. */
        sl_http_client_t *c = ex->client;
        ex->client = NULL;
        sl_http_client_free(c);
    }
    shutdown_step(ex);
}

void sl_otlp__exporter_shutdown(sl_otlp_exporter_t *ex, void (*done)(void *arg), void *arg) {
    SL_ASSERT(!ex->shutting_down);
    ex->shutting_down = true;
    ex->done = done;
    ex->done_arg = arg;
    uv_timer_stop(&ex->timer);
    uv_timer_start(&ex->timer, deadline_cb, ex->export_timeout_ms, 0);
    shutdown_step(ex);
}

uint64_t sl_otlp__exporter_exported(const sl_otlp_exporter_t *ex) {
    return atomic_load_explicit(&ex->exported, memory_order_relaxed);
}

uint64_t sl_otlp__exporter_dropped_full(const sl_otlp_exporter_t *ex) {
    return atomic_load_explicit(&ex->dropped_full, memory_order_relaxed);
}

uint64_t sl_otlp__exporter_dropped_failed(const sl_otlp_exporter_t *ex) {
    return atomic_load_explicit(&ex->dropped_failed, memory_order_relaxed);
}
