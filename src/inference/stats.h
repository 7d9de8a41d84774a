/* Per model version statistics: the Prometheus series (labels model, version) and the exact
 * counters behind Triton's statistics extension (GET /v2/models/{m}/stats, ModelStatistics).
 * Updates are lock-free and safe from any thread. */
#ifndef SL_MODEL_STATS_H
#define SL_MODEL_STATS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_model_stats sl_model_stats_t;

/* Counters as the statistics extension reports them (durations in nanoseconds). */
typedef struct sl_model_stats_snapshot {
    uint64_t last_inference_ms;         /* wall clock (Unix ms) of the last success, 0 if none */
    uint64_t inference_count;           /* batch items inferred (a batch of 8 counts 8) */
    uint64_t execution_count;           /* backend executions (batches) */
    uint64_t success_count, success_ns; /* whole requests: received -> response ready */
    uint64_t fail_count, fail_ns;
    uint64_t queue_count, queue_ns;     /* time queued before a batch took them */
    uint64_t compute_count, compute_ns; /* execute() time, per request */
    uint64_t cache_hit_count, cache_hit_ns;
    uint64_t cache_miss_count, cache_miss_ns;
    /* batch_stats: executions per batch size (index = size, 1..max), only sizes seen */
    uint32_t max_batch;
    uint64_t
        *executions_by_size; /* owned by the snapshot: free with sl_model_stats_snapshot_free */
    uint64_t *compute_ns_by_size;
} sl_model_stats_snapshot_t;

/* Creates the statistics of one model version, registering (or reusing) the families in the
 * default metrics registry: sluice_inference_requests_total{model,version,outcome},
 * sluice_inference_count_total, sluice_inference_executions_total,
 * sluice_inference_queue_seconds, sluice_inference_compute_seconds,
 * sluice_inference_request_seconds, sluice_inference_batch_size (histograms),
 * sluice_inference_queue_depth (gauge), sluice_inference_cache_total{...,result=hit|miss}.
 * Strings are copied. max_batch bounds the batch sizes tracked. */
sl_model_stats_t *sl_model_stats_new(const char *model, const char *version, uint32_t max_batch);
void sl_model_stats_free(sl_model_stats_t *s);

/* One request finished: ok or failed, total_ns from receipt to answer. */
void sl_model_stats_request(sl_model_stats_t *s, bool ok, uint64_t total_ns);
/* One request left the queue after queue_ns. */
void sl_model_stats_queued(sl_model_stats_t *s, uint64_t queue_ns);
/* One execution of batch_size items holding n_requests requests took compute_ns. */
void sl_model_stats_execution(sl_model_stats_t *s, uint32_t batch_size, uint32_t n_requests,
                              uint64_t compute_ns);
void sl_model_stats_cache(sl_model_stats_t *s, bool hit, uint64_t lookup_ns);
/* Queue depth gauge: +1 on enqueue, -1 on dequeue. */
void sl_model_stats_queue_add(sl_model_stats_t *s, int delta);

void sl_model_stats_snapshot(const sl_model_stats_t *s, sl_model_stats_snapshot_t *out);
void sl_model_stats_snapshot_free(sl_model_stats_snapshot_t *snap);

#endif
