/* Outcomes per model version, for canary analysis: how many requests each version served, how
 * they ended (success or a failure class), how often its shadow answers agreed with the primary
 * version's, and latency histograms. Kept in memory for the registry to read as plain structs
 * (sl_outcomes_snapshot), and exported as Prometheus series through core/metrics:
 *
 *   sluice_gateway_version_requests_total{model,version,outcome}   counter
 *   sluice_gateway_version_latency_seconds{model,version}          histogram (client requests)
 *   sluice_gateway_shadow_total{model,version,result}              counter (agree|disagree|error)
 *
 * Threads: recording is lock-free from any thread (relaxed atomic adds on the version's cells);
 * the first lookup of a (model, version) pair takes a lock to create it. Pairs are never
 * removed, so the number of pairs is bounded (SL_OUTCOMES_MAX_VERSIONS); pairs past the bound
 * share one overflow entry named "other"/"other". */
#ifndef SL_GATEWAY_OUTCOMES_H
#define SL_GATEWAY_OUTCOMES_H

#include "core/common.h"
#include "core/metrics.h"

#include <stddef.h>
#include <stdint.h>

#define SL_OUTCOMES_MAX_VERSIONS 1024 /* (model, version) pairs, the overflow entry excluded */
#define SL_OUTCOMES_NAME_MAX     128  /* bytes of a model name or version kept */
#define SL_OUTCOMES_MAX_BUCKETS  16   /* latency bucket bounds (+Inf is one more) */

/* How a request that reached a version ended. Requests refused before a version was picked
 * (authentication, rate limits, validation) are not outcomes of any version. */
typedef enum sl_outcome {
    SL_OUTCOME_SUCCESS = 0,
    SL_OUTCOME_CLIENT_ERROR, /* the version refused the request as bad (4xx from upstream) */
    SL_OUTCOME_SERVER_ERROR, /* the version failed (5xx, broken answer, internal error) */
    SL_OUTCOME_TIMEOUT,      /* the deadline passed before the version answered */
    SL_OUTCOME_UNAVAILABLE,  /* no endpoint could take it (breaker open, all ejected, shed) */
    SL_OUTCOME__COUNT
} sl_outcome_t;

typedef enum sl_shadow_result {
    SL_SHADOW_AGREE = 0, /* the shadow answered and matched the primary answer */
    SL_SHADOW_DISAGREE,  /* the shadow answered differently */
    SL_SHADOW_ERROR,     /* the shadow failed or timed out: no comparison */
    SL_SHADOW__COUNT
} sl_shadow_result_t;

/* Label values: "success", "client_error", "server_error", "timeout", "unavailable" and
 * "agree", "disagree", "error". Static strings. */
const char *sl_outcome_name(sl_outcome_t o);
const char *sl_shadow_result_name(sl_shadow_result_t r);

typedef struct sl_outcomes sl_outcomes_t;
typedef struct sl_outcomes_version sl_outcomes_version_t;

/* Creates the store. metrics (borrowed; must outlive the store) receives the Prometheus series;
 * NULL keeps the outcomes in memory only. Free with sl_outcomes_free, which frees every entry
 * (pointers from sl_outcomes_version die with it; the metric series stay in the registry). */
sl_outcomes_t *sl_outcomes_new(sl_metrics_t *metrics);
void sl_outcomes_free(sl_outcomes_t *o);

/* The entry for (model, version), created on first use (both borrowed, NUL not required). The
 * pointer is owned by the store and valid until sl_outcomes_free, so a caller may keep it for
 * the life of a request or cache it. Names longer than SL_OUTCOMES_NAME_MAX bytes, and pairs
 * beyond SL_OUTCOMES_MAX_VERSIONS, get the overflow entry. Lock-free once the pair exists. */
sl_outcomes_version_t *sl_outcomes_version(sl_outcomes_t *o, sl_str_t model, sl_str_t version);

/* Records one client request served by v: its outcome and its latency in seconds (from the
 * moment the gateway picked the version to the answer; a negative or NaN latency is observed
 * as 0). Lock-free. */
void sl_outcomes_record(sl_outcomes_version_t *v, sl_outcome_t outcome, double latency_s);
/* Records one shadow request mirrored to v: whether its answer agreed with the primary answer,
 * and its latency (kept in the snapshot's shadow histogram, not in the Prometheus latency
 * series, which describes what clients saw). Lock-free. */
void sl_outcomes_record_shadow(sl_outcomes_version_t *v, sl_shadow_result_t result,
                               double latency_s);

/* A latency histogram: counts[i] is the number of observations in (bounds[i-1], bounds[i]]
 * (bucket 0 starts at 0, bucket n_bounds is (bounds[n_bounds-1], +Inf)), not cumulative. */
typedef struct sl_outcomes_latency {
    uint64_t counts[SL_OUTCOMES_MAX_BUCKETS + 1];
    uint64_t count; /* the sum of counts */
    double sum_s;
} sl_outcomes_latency_t;

/* One version's outcomes at the moment of the snapshot. Plain data. Totals are sums of the
 * parts read, so they always add up: requests == sum(by_outcome), failures == requests -
 * by_outcome[SUCCESS], shadow_requests == sum(shadow), latency.count == sum(latency.counts).
 * Every recorded request is observed once in its latency histogram (negative or NaN latencies
 * as 0), so latency.count == requests whenever no request is being recorded during the
 * snapshot. */
typedef struct sl_outcomes_snapshot {
    char model[SL_OUTCOMES_NAME_MAX + 1];
    char version[SL_OUTCOMES_NAME_MAX + 1];
    uint64_t requests;
    uint64_t by_outcome[SL_OUTCOME__COUNT];
    uint64_t failures; /* requests - by_outcome[SUCCESS] */
    sl_outcomes_latency_t latency;
    uint64_t shadow_requests;
    uint64_t shadow[SL_SHADOW__COUNT];
    sl_outcomes_latency_t shadow_latency;
} sl_outcomes_snapshot_t;

/* The bucket upper bounds of every histogram in a snapshot (seconds; static, ascending). */
const double *sl_outcomes_bounds(unsigned *n_bounds);

/* Copies every entry (overflow included when it was used), sorted by model then version, into
 * a new array *out of *n items (free it with free(); NULL when *n is 0). Counters are read one
 * by one while other threads record, so two snapshots a second apart may differ by requests in
 * flight, but each snapshot is internally consistent (see above). Any thread. */
void sl_outcomes_snapshot(sl_outcomes_t *o, sl_outcomes_snapshot_t **out, size_t *n);
/* The entry of one pair in a snapshot array, or NULL. */
const sl_outcomes_snapshot_t *sl_outcomes_snapshot_find(const sl_outcomes_snapshot_t *snap,
                                                        size_t n, const char *model,
                                                        const char *version);

/* The q-quantile (0 <= q <= 1) of a histogram, interpolated linearly inside the bucket it falls
 * in (as Prometheus' histogram_quantile does); NaN when the histogram is empty, the last finite
 * bound when it falls in the +Inf bucket. */
double sl_outcomes_latency_quantile(const sl_outcomes_latency_t *h, double q);

#endif
