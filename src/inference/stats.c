/* Per model version statistics: exact atomic counters for Triton's statistics extension and the
 * Prometheus series (labels model, version) in the default metrics registry. Every update is a
 * few relaxed atomic adds, safe from the I/O threads and the instance threads alike. */
#include "inference/stats.h"

#include "core/common.h"
#include "core/metrics.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Model/version label combinations per family. Beyond it a family's overflow series ("other")
 * takes the observations, so a repository with thousands of versions cannot grow /metrics
 * without bound; the exact counters below are per version and unaffected. */
#define STATS_MAX_SERIES 1000

/* Batch-size histogram buckets: 1, 2, 4, ... 65536. The family is shared by every model, and a
 * family's buckets are fixed at registration, so the bounds cannot follow each model's
 * max_batch_size; powers of two up to 2^16 cover any batch a model config allows in practice
 * (larger batches land in +Inf). */
#define BATCH_BUCKETS 17
/* Exact per-size execution counts are kept for sizes up to this bound (the arrays are sized by
 * max_batch, so an absurd max_batch_size must not allocate gigabytes). */
#define MAX_TRACKED_BATCH (1u << 16)

struct sl_model_stats {
    char *model, *version;
    uint32_t max_batch; /* sizes 1..max_batch are tracked per size */

    _Atomic uint64_t last_inference_ms;
    _Atomic uint64_t inference_count, execution_count;
    _Atomic uint64_t success_count, success_ns, fail_count, fail_ns;
    _Atomic uint64_t queue_count, queue_ns, compute_count, compute_ns;
    _Atomic uint64_t cache_hit_count, cache_hit_ns, cache_miss_count, cache_miss_ns;
    _Atomic uint64_t *exec_by_size;       /* max_batch + 1 entries, index = batch size */
    _Atomic uint64_t *compute_ns_by_size; /* same */

    sl_counter_t *m_success, *m_failure, *m_infer_count, *m_exec_count;
    sl_counter_t *m_cache_hit, *m_cache_miss;
    sl_histogram_t *m_queue, *m_compute, *m_request, *m_batch;
    sl_gauge_t *m_depth;
};

static const char *const mv_labels[] = {"model", "version"};
static const char *const outcome_labels[] = {"model", "version", "outcome"};
static const char *const cache_labels[] = {"model", "version", "result"};

static const double batch_buckets[BATCH_BUCKETS] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
};

static sl_histogram_t *latency_hist(sl_metrics_t *r, const char *name, const char *help,
                                    const char *const *vals) {
    sl_metric_family_t *f =
        sl_metrics_histogram_family(r, name, help, 2, mv_labels, STATS_MAX_SERIES,
                                    sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
    return sl_metric_histogram(f, vals);
}

sl_model_stats_t *sl_model_stats_new(const char *model, const char *version, uint32_t max_batch) {
    sl_model_stats_t *s = sl_calloc(1, sizeof *s);
    s->model = sl_strdup(model);
    s->version = sl_strdup(version);
    /* A non-batching model runs batches of 1. */
    s->max_batch = max_batch == 0 ? 1 : SL_MIN(max_batch, MAX_TRACKED_BATCH);
    s->exec_by_size = sl_calloc(s->max_batch + 1, sizeof *s->exec_by_size);
    s->compute_ns_by_size = sl_calloc(s->max_batch + 1, sizeof *s->compute_ns_by_size);

    sl_metrics_t *r = sl_metrics_default();
    const char *mv[2] = {s->model, s->version};

    sl_metric_family_t *req = sl_metrics_counter_family(
        r, "sluice_inference_requests_total",
        "Inference requests answered, by model, version and outcome (success or failure).", 3,
        outcome_labels, STATS_MAX_SERIES * 2);
    const char *ok[3] = {s->model, s->version, "success"};
    const char *bad[3] = {s->model, s->version, "failure"};
    s->m_success = sl_metric_counter(req, ok);
    s->m_failure = sl_metric_counter(req, bad);

    sl_metric_family_t *cnt = sl_metrics_counter_family(
        r, "sluice_inference_count_total",
        "Batch items inferred successfully (a request with a batch of 8 counts 8).", 2, mv_labels,
        STATS_MAX_SERIES);
    s->m_infer_count = sl_metric_counter(cnt, mv);
    sl_metric_family_t *exe = sl_metrics_counter_family(r, "sluice_inference_executions_total",
                                                        "Successful backend executions (batches).",
                                                        2, mv_labels, STATS_MAX_SERIES);
    s->m_exec_count = sl_metric_counter(exe, mv);

    s->m_queue = latency_hist(r, "sluice_inference_queue_seconds",
                              "Time a request waited in the scheduler's queue.", mv);
    s->m_compute = latency_hist(r, "sluice_inference_compute_seconds",
                                "Backend execution time of the batch a request was part of, "
                                "observed once per request.",
                                mv);
    s->m_request = latency_hist(r, "sluice_inference_request_seconds",
                                "Time from receipt of a request to its response being ready.", mv);

    sl_metric_family_t *bs = sl_metrics_histogram_family(
        r, "sluice_inference_batch_size", "Batch size (items) of each successful execution.", 2,
        mv_labels, STATS_MAX_SERIES, batch_buckets, BATCH_BUCKETS);
    s->m_batch = sl_metric_histogram(bs, mv);

    sl_metric_family_t *depth = sl_metrics_gauge_family(
        r, "sluice_inference_queue_depth",
        "Requests queued and not yet executing (for autoscaling and routing).", 2, mv_labels,
        STATS_MAX_SERIES);
    s->m_depth = sl_metric_gauge(depth, mv);

    sl_metric_family_t *cache = sl_metrics_counter_family(
        r, "sluice_inference_cache_total", "Response cache lookups, by result (hit or miss).", 3,
        cache_labels, STATS_MAX_SERIES * 2);
    const char *hit[3] = {s->model, s->version, "hit"};
    const char *miss[3] = {s->model, s->version, "miss"};
    s->m_cache_hit = sl_metric_counter(cache, hit);
    s->m_cache_miss = sl_metric_counter(cache, miss);
    return s;
}

void sl_model_stats_free(sl_model_stats_t *s) {
    if (!s) return;
    /* The series stay in the registry (it is never freed): a version loaded again continues
     * its counters, as Prometheus expects of a counter. */
    free(s->exec_by_size);
    free(s->compute_ns_by_size);
    free(s->model);
    free(s->version);
    free(s);
}

static inline void add(_Atomic uint64_t *a, uint64_t v) {
    atomic_fetch_add_explicit(a, v, memory_order_relaxed);
}

static inline uint64_t get(const _Atomic uint64_t *a) {
    return atomic_load_explicit(a, memory_order_relaxed);
}

void sl_model_stats_request(sl_model_stats_t *s, bool ok, uint64_t total_ns) {
    if (ok) {
        add(&s->success_count, 1);
        add(&s->success_ns, total_ns);
        atomic_store_explicit(&s->last_inference_ms, sl_wall_time_ns() / 1000000u,
                              memory_order_relaxed);
        sl_counter_inc(s->m_success);
    } else {
        add(&s->fail_count, 1);
        add(&s->fail_ns, total_ns);
        sl_counter_inc(s->m_failure);
    }
    sl_histogram_observe(s->m_request, (double)total_ns / 1e9);
}

void sl_model_stats_queued(sl_model_stats_t *s, uint64_t queue_ns) {
    add(&s->queue_count, 1);
    add(&s->queue_ns, queue_ns);
    sl_histogram_observe(s->m_queue, (double)queue_ns / 1e9);
}

void sl_model_stats_execution(sl_model_stats_t *s, uint32_t batch_size, uint32_t n_requests,
                              uint64_t compute_ns) {
    add(&s->execution_count, 1);
    add(&s->inference_count, batch_size);
    /* The statistics extension reports compute time per request: each request of the batch
     * spent the whole execution in compute. */
    add(&s->compute_count, n_requests);
    add(&s->compute_ns, compute_ns * n_requests);
    if (batch_size >= 1 && batch_size <= s->max_batch) {
        add(&s->exec_by_size[batch_size], 1);
        add(&s->compute_ns_by_size[batch_size], compute_ns);
    }
    sl_counter_inc(s->m_exec_count);
    sl_counter_add(s->m_infer_count, batch_size);
    sl_histogram_observe(s->m_batch, (double)batch_size);
    for (uint32_t i = 0; i < n_requests; i++) {
        sl_histogram_observe(s->m_compute, (double)compute_ns / 1e9);
    }
}

void sl_model_stats_cache(sl_model_stats_t *s, bool hit, uint64_t lookup_ns) {
    if (hit) {
        add(&s->cache_hit_count, 1);
        add(&s->cache_hit_ns, lookup_ns);
        sl_counter_inc(s->m_cache_hit);
    } else {
        add(&s->cache_miss_count, 1);
        add(&s->cache_miss_ns, lookup_ns);
        sl_counter_inc(s->m_cache_miss);
    }
}

void sl_model_stats_queue_add(sl_model_stats_t *s, int delta) {
    sl_gauge_add(s->m_depth, (double)delta);
}

void sl_model_stats_snapshot(const sl_model_stats_t *s, sl_model_stats_snapshot_t *out) {
    memset(out, 0, sizeof *out);
    out->last_inference_ms = get(&s->last_inference_ms);
    out->inference_count = get(&s->inference_count);
    out->execution_count = get(&s->execution_count);
    out->success_count = get(&s->success_count);
    out->success_ns = get(&s->success_ns);
    out->fail_count = get(&s->fail_count);
    out->fail_ns = get(&s->fail_ns);
    out->queue_count = get(&s->queue_count);
    out->queue_ns = get(&s->queue_ns);
    out->compute_count = get(&s->compute_count);
    out->compute_ns = get(&s->compute_ns);
    out->cache_hit_count = get(&s->cache_hit_count);
    out->cache_hit_ns = get(&s->cache_hit_ns);
    out->cache_miss_count = get(&s->cache_miss_count);
    out->cache_miss_ns = get(&s->cache_miss_ns);
    out->max_batch = s->max_batch;
    out->executions_by_size = sl_calloc(s->max_batch + 1, sizeof *out->executions_by_size);
    out->compute_ns_by_size = sl_calloc(s->max_batch + 1, sizeof *out->compute_ns_by_size);
    for (uint32_t i = 1; i <= s->max_batch; i++) {
        out->executions_by_size[i] = get(&s->exec_by_size[i]);
        out->compute_ns_by_size[i] = get(&s->compute_ns_by_size[i]);
    }
}

void sl_model_stats_snapshot_free(sl_model_stats_snapshot_t *snap) {
    if (!snap) return;
    free(snap->executions_by_size);
    free(snap->compute_ns_by_size);
    snap->executions_by_size = NULL;
    snap->compute_ns_by_size = NULL;
}
