/* Prometheus metrics: counters, gauges and classic histograms in base units, grouped in families
 * whose label names are fixed and whose number of series is bounded when the family is
 * registered. Observations are lock-free: each series keeps one cell per shard (threads map to
 * shards), so the hot path is a relaxed atomic add on a cache line no other thread writes.
 * Rendering sums the shards and writes the text exposition format 0.0.4. */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include "core/buf.h"

#include <stdint.h>

/* Cells per counter series (and per histogram series, unless its buckets would make one series
 * bigger than 4 KiB: then fewer, at least 4). A power of two. */
#define SL_METRICS_SHARDS 16
/* max_series 0 means this many label value combinations. */
#define SL_METRICS_DEFAULT_MAX_SERIES 100
/* Limits checked at registration (exceeding one is a bug and aborts). */
#define SL_METRICS_MAX_LABELS  8
#define SL_METRICS_MAX_BUCKETS 64

typedef struct sl_metrics sl_metrics_t;
typedef struct sl_metric_family sl_metric_family_t;
typedef struct sl_counter sl_counter_t;
typedef struct sl_gauge sl_gauge_t;
typedef struct sl_histogram sl_histogram_t;

/* The process-wide registry behind every /metrics endpoint (one process, one exposition). */
sl_metrics_t *sl_metrics_default(void);
/* A private registry, for tests. Free with sl_metrics_free (which frees every family and series
 * in it; the default registry is never freed). */
sl_metrics_t *sl_metrics_new(void);
void sl_metrics_free(sl_metrics_t *r);

/* Families. Registering an existing name with the same type and labels returns the existing
 * family (so components can share one); a clash in type or labels is a bug and aborts.
 * label_names (copied) may be NULL when n_labels is 0. max_series bounds the label value
 * combinations: a series asked for beyond it is the family's overflow series, whose label values
 * are all "other", so cardinality can never grow without bound (a warning is logged the first
 * time). Names must match [a-zA-Z_:][a-zA-Z0-9_:]* (labels: [a-zA-Z_][a-zA-Z0-9_]*, no leading
 * "__", no "le" on histograms); a bad name aborts. The help text and label values may hold any
 * bytes: they are escaped, and bytes that are not UTF-8 become U+FFFD. The family pointer is
 * owned by the registry and valid until it is freed. Thread-safe. */
sl_metric_family_t *sl_metrics_counter_family(sl_metrics_t *r, const char *name, const char *help,
                                              unsigned n_labels, const char *const *label_names,
                                              unsigned max_series);
sl_metric_family_t *sl_metrics_gauge_family(sl_metrics_t *r, const char *name, const char *help,
                                            unsigned n_labels, const char *const *label_names,
                                            unsigned max_series);
/* buckets: strictly increasing upper bounds (copied, at most SL_METRICS_MAX_BUCKETS), +Inf is
 * implicit (a trailing +Inf is dropped). A re-registration must give the same buckets. */
sl_metric_family_t *sl_metrics_histogram_family(sl_metrics_t *r, const char *name, const char *help,
                                                unsigned n_labels, const char *const *label_names,
                                                unsigned max_series, const double *buckets,
                                                unsigned n_buckets);

/* Series: get-or-create by label values (copied); call at setup time and keep the pointer,
 * not per observation. Pointers stay valid until the registry is freed. */
sl_counter_t *sl_metric_counter(sl_metric_family_t *f, const char *const *label_values);
sl_gauge_t *sl_metric_gauge(sl_metric_family_t *f, const char *const *label_values);
sl_histogram_t *sl_metric_histogram(sl_metric_family_t *f, const char *const *label_values);

/* Unlabelled shorthands: family plus its one series. */
sl_counter_t *sl_metrics_counter(sl_metrics_t *r, const char *name, const char *help);
sl_gauge_t *sl_metrics_gauge(sl_metrics_t *r, const char *name, const char *help);

/* Hot path: lock-free, safe from any thread. */
void sl_counter_add(sl_counter_t *c, uint64_t n);
static inline void sl_counter_inc(sl_counter_t *c) {
    sl_counter_add(c, 1);
}
void sl_gauge_set(sl_gauge_t *g, double v);
void sl_gauge_add(sl_gauge_t *g, double delta);
/* v lands in the first bucket whose bound is >= v; NaN is ignored (it would make _sum NaN for
 * the life of the process). */
void sl_histogram_observe(sl_histogram_t *h, double v);

/* Reads (sum over shards), for tests and health checks. */
uint64_t sl_counter_value(const sl_counter_t *c);
double sl_gauge_value(const sl_gauge_t *g);
uint64_t sl_histogram_count(const sl_histogram_t *h);
double sl_histogram_sum(const sl_histogram_t *h);

/* A gauge computed at scrape time by fn(arg) (e.g. open connections, resident memory). fn runs
 * on the scraping thread without any registry lock held, so it must be thread-safe; arg is
 * borrowed until the registry is freed. Registering the name again replaces fn and arg. */
void sl_metrics_gauge_fn(sl_metrics_t *r, const char *name, const char *help,
                         double (*fn)(void *arg), void *arg);

/* Default latency buckets in seconds (0.0005 .. 10). */
extern const double sl_metrics_latency_buckets[];
extern const unsigned sl_metrics_latency_buckets_n;

/* Appends the whole registry in Prometheus text format 0.0.4, including the process_* metrics
 * (resident memory, CPU seconds, open fds, start time) and sluice_build_info{version} for the
 * default registry. Families come sorted by name, series by label values; any thread. */
void sl_metrics_render(sl_metrics_t *r, sl_buf_t *out);

#endif
