/* Outcomes per model version (see outcomes.h): a fixed open-addressing table of entries that are
 * never removed, so lookups need no lock; relaxed atomic counters per entry for the in-memory
 * snapshot, mirrored into core/metrics series for Prometheus. */
#include "gateway/outcomes.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define N_SLOTS 2048 /* a power of two, at least twice SL_OUTCOMES_MAX_VERSIONS */
_Static_assert(N_SLOTS >= 2 * SL_OUTCOMES_MAX_VERSIONS, "outcome table too small");

typedef struct {
    _Atomic uint64_t counts[SL_OUTCOMES_MAX_BUCKETS + 1];
    _Atomic uint64_t sum_ns;
} hist_t;

struct sl_outcomes_version {
    char model[SL_OUTCOMES_NAME_MAX + 1];
    char version[SL_OUTCOMES_NAME_MAX + 1];
    _Atomic uint64_t by_outcome[SL_OUTCOME__COUNT];
    _Atomic uint64_t shadow[SL_SHADOW__COUNT];
    hist_t latency;
    hist_t shadow_latency;
    /* Prometheus series (NULL when the store has no registry). */
    sl_counter_t *c_outcome[SL_OUTCOME__COUNT];
    sl_counter_t *c_shadow[SL_SHADOW__COUNT];
    sl_histogram_t *h_latency;
};

struct sl_outcomes {
    pthread_mutex_t mu;                              /* serialises inserts */
    _Atomic(sl_outcomes_version_t *) slots[N_SLOTS]; /* lock-free reads */
    size_t n;                                        /* entries in slots, under mu */
    _Atomic(sl_outcomes_version_t *) overflow;       /* created on first use, under mu */
    sl_metric_family_t *f_requests, *f_latency, *f_shadow;
};

static const char *const outcome_names[SL_OUTCOME__COUNT] = {
    "success", "client_error", "server_error", "timeout", "unavailable"};
static const char *const shadow_names[SL_SHADOW__COUNT] = {"agree", "disagree", "error"};

const char *sl_outcome_name(sl_outcome_t o) {
    SL_ASSERT((unsigned)o < SL_OUTCOME__COUNT);
    return outcome_names[o];
}

const char *sl_shadow_result_name(sl_shadow_result_t r) {
    SL_ASSERT((unsigned)r < SL_SHADOW__COUNT);
    return shadow_names[r];
}

const double *sl_outcomes_bounds(unsigned *n_bounds) {
    /* The same buckets as every other latency histogram of the process, so the snapshot and
     * the Prometheus series agree bucket for bucket. */
    SL_ASSERT(sl_metrics_latency_buckets_n <= SL_OUTCOMES_MAX_BUCKETS);
    *n_bounds = sl_metrics_latency_buckets_n;
    return sl_metrics_latency_buckets;
}

sl_outcomes_t *sl_outcomes_new(sl_metrics_t *metrics) {
    sl_outcomes_t *o = sl_calloc(1, sizeof *o);
    pthread_mutex_init(&o->mu, NULL);
    if (metrics) {
        static const char *const req_labels[] = {"model", "version", "outcome"};
        static const char *const lat_labels[] = {"model", "version"};
        static const char *const sh_labels[] = {"model", "version", "result"};
        const unsigned pairs = SL_OUTCOMES_MAX_VERSIONS + 1;
        o->f_requests =
            sl_metrics_counter_family(metrics, "sluice_gateway_version_requests_total",
                                      "Client requests served by a model version, by outcome.", 3,
                                      req_labels, pairs * SL_OUTCOME__COUNT);
        o->f_latency = sl_metrics_histogram_family(
            metrics, "sluice_gateway_version_latency_seconds",
            "Latency of client requests served by a model version, from pick to answer.", 2,
            lat_labels, pairs, sl_metrics_latency_buckets, sl_metrics_latency_buckets_n);
        o->f_shadow = sl_metrics_counter_family(
            metrics, "sluice_gateway_shadow_total",
            "Shadow requests mirrored to a model version, by agreement with the primary answer.", 3,
            sh_labels, pairs * SL_SHADOW__COUNT);
    }
    return o;
}

void sl_outcomes_free(sl_outcomes_t *o) {
    if (!o) return;
    for (size_t i = 0; i < N_SLOTS; i++)
        free(atomic_load_explicit(&o->slots[i], memory_order_relaxed));
    free(atomic_load_explicit(&o->overflow, memory_order_relaxed));
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* ---- lookup -------------------------------------------------------------------------------- */

static uint64_t pair_hash(sl_str_t model, sl_str_t version) {
    uint64_t h = sl_fnv64(SL_FNV64_INIT, model.ptr, model.len);
    h = sl_fnv64(h, "", 1); /* a 0 byte between the two names */
    return sl_mix64(sl_fnv64(h, version.ptr, version.len));
}

static bool name_is(const char *stored, sl_str_t s) {
    return strncmp(stored, s.ptr, s.len) == 0 && stored[s.len] == '\0';
}

static sl_outcomes_version_t *entry_new(sl_outcomes_t *o, sl_str_t model, sl_str_t version) {
    sl_outcomes_version_t *v = sl_calloc(1, sizeof *v);
    memcpy(v->model, model.ptr, model.len);
    memcpy(v->version, version.ptr, version.len);
    if (o->f_requests) {
        for (unsigned i = 0; i < SL_OUTCOME__COUNT; i++) {
            const char *labels[] = {v->model, v->version, outcome_names[i]};
            v->c_outcome[i] = sl_metric_counter(o->f_requests, labels);
        }
        for (unsigned i = 0; i < SL_SHADOW__COUNT; i++) {
            const char *labels[] = {v->model, v->version, shadow_names[i]};
            v->c_shadow[i] = sl_metric_counter(o->f_shadow, labels);
        }
        const char *labels[] = {v->model, v->version};
        v->h_latency = sl_metric_histogram(o->f_latency, labels);
    }
    return v;
}

static sl_outcomes_version_t *overflow_entry(sl_outcomes_t *o) {
    sl_outcomes_version_t *v = atomic_load_explicit(&o->overflow, memory_order_acquire);
    if (v) return v;
    pthread_mutex_lock(&o->mu);
    v = atomic_load_explicit(&o->overflow, memory_order_relaxed);
    if (!v) {
        v = entry_new(o, SL_STR("other"), SL_STR("other"));
        atomic_store_explicit(&o->overflow, v, memory_order_release);
    }
    pthread_mutex_unlock(&o->mu);
    return v;
}

/* Probes from the pair's home slot; returns the entry, or NULL and the first empty slot. */
static sl_outcomes_version_t *probe(sl_outcomes_t *o, uint64_t h, sl_str_t model, sl_str_t version,
                                    size_t *empty) {
    for (size_t i = 0; i < N_SLOTS; i++) {
        size_t at = (size_t)(h + i) & (N_SLOTS - 1);
        sl_outcomes_version_t *v = atomic_load_explicit(&o->slots[at], memory_order_acquire);
        if (!v) {
            *empty = at;
            return NULL;
        }
        if (name_is(v->model, model) && name_is(v->version, version)) return v;
    }
    SL_ASSERT(!"outcome table full"); /* n is capped well below N_SLOTS */
    return NULL;
}

sl_outcomes_version_t *sl_outcomes_version(sl_outcomes_t *o, sl_str_t model, sl_str_t version) {
    if (!model.ptr || !version.ptr || model.len > SL_OUTCOMES_NAME_MAX ||
        version.len > SL_OUTCOMES_NAME_MAX || memchr(model.ptr, 0, model.len) ||
        memchr(version.ptr, 0, version.len)) {
        return overflow_entry(o);
    }
    uint64_t h = pair_hash(model, version);
    size_t empty;
    sl_outcomes_version_t *v = probe(o, h, model, version, &empty);
    if (v) return v;
    pthread_mutex_lock(&o->mu);
    v = probe(o, h, model, version, &empty); /* another thread may have inserted it */
    if (!v && o->n < SL_OUTCOMES_MAX_VERSIONS) {
        v = entry_new(o, model, version);
        atomic_store_explicit(&o->slots[empty], v, memory_order_release);
        o->n++;
    }
    pthread_mutex_unlock(&o->mu);
    return v ? v : overflow_entry(o);
}

/* ---- recording ----------------------------------------------------------------------------- */

static void hist_observe(hist_t *h, double s) {
    if (!(s >= 0)) s = 0; /* negative or NaN: a clock glitch; counted as zero */
    unsigned n;
    const double *bounds = sl_outcomes_bounds(&n);
    unsigned i = 0;
    while (i < n && s > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    double ns = s * 1e9;
    uint64_t add = ns >= 1.8e19 ? UINT64_C(1) << 63 : (uint64_t)(ns + 0.5);
    atomic_fetch_add_explicit(&h->sum_ns, add, memory_order_relaxed);
}

void sl_outcomes_record(sl_outcomes_version_t *v, sl_outcome_t outcome, double latency_s) {
    SL_ASSERT((unsigned)outcome < SL_OUTCOME__COUNT);
    atomic_fetch_add_explicit(&v->by_outcome[outcome], 1, memory_order_relaxed);
    hist_observe(&v->latency, latency_s);
    if (v->c_outcome[outcome]) sl_counter_inc(v->c_outcome[outcome]);
    if (v->h_latency) sl_histogram_observe(v->h_latency, latency_s >= 0 ? latency_s : 0);
}

void sl_outcomes_record_shadow(sl_outcomes_version_t *v, sl_shadow_result_t result,
                               double latency_s) {
    SL_ASSERT((unsigned)result < SL_SHADOW__COUNT);
    atomic_fetch_add_explicit(&v->shadow[result], 1, memory_order_relaxed);
    hist_observe(&v->shadow_latency, latency_s);
    if (v->c_shadow[result]) sl_counter_inc(v->c_shadow[result]);
}

/* ---- snapshots ----------------------------------------------------------------------------- */

static void hist_copy(const hist_t *h, sl_outcomes_latency_t *out) {
    unsigned n;
    sl_outcomes_bounds(&n);
    out->count = 0;
    for (unsigned i = 0; i <= n; i++) {
        out->counts[i] = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        out->count += out->counts[i];
    }
    out->sum_s = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
}

static void copy_entry(const sl_outcomes_version_t *v, sl_outcomes_snapshot_t *s) {
    memset(s, 0, sizeof *s);
    memcpy(s->model, v->model, sizeof s->model);
    memcpy(s->version, v->version, sizeof s->version);
    /* The histogram first, then the counters: a request recorded in between shows up in the
     * counters only, so requests may exceed latency.count by the requests in flight; the totals
     * below are sums of what was read, so they always add up. */
    hist_copy(&v->latency, &s->latency);
    hist_copy(&v->shadow_latency, &s->shadow_latency);
    for (unsigned i = 0; i < SL_OUTCOME__COUNT; i++) {
        s->by_outcome[i] = atomic_load_explicit(&v->by_outcome[i], memory_order_relaxed);
        s->requests += s->by_outcome[i];
    }
    s->failures = s->requests - s->by_outcome[SL_OUTCOME_SUCCESS];
    for (unsigned i = 0; i < SL_SHADOW__COUNT; i++) {
        s->shadow[i] = atomic_load_explicit(&v->shadow[i], memory_order_relaxed);
        s->shadow_requests += s->shadow[i];
    }
}

static int cmp_snap(const void *a, const void *b) {
    const sl_outcomes_snapshot_t *x = a, *y = b;
    int c = strcmp(x->model, y->model);
    return c ? c : strcmp(x->version, y->version);
}

void sl_outcomes_snapshot(sl_outcomes_t *o, sl_outcomes_snapshot_t **out, size_t *n) {
    pthread_mutex_lock(&o->mu); /* a stable entry count; recording goes on meanwhile */
    sl_outcomes_version_t *overflow = atomic_load_explicit(&o->overflow, memory_order_relaxed);
    size_t count = o->n + (overflow ? 1 : 0);
    sl_outcomes_snapshot_t *s = count ? sl_calloc(count, sizeof *s) : NULL;
    size_t k = 0;
    for (size_t i = 0; i < N_SLOTS && k < o->n; i++) {
        sl_outcomes_version_t *v = atomic_load_explicit(&o->slots[i], memory_order_relaxed);
        if (v) copy_entry(v, &s[k++]);
    }
    if (overflow) copy_entry(overflow, &s[k++]);
    pthread_mutex_unlock(&o->mu);
    SL_ASSERT(k == count);
    if (count > 1) qsort(s, count, sizeof *s, cmp_snap);
    *out = s;
    *n = count;
}

const sl_outcomes_snapshot_t *sl_outcomes_snapshot_find(const sl_outcomes_snapshot_t *snap,
                                                        size_t n, const char *model,
                                                        const char *version) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(snap[i].model, model) && !strcmp(snap[i].version, version)) return &snap[i];
    return NULL;
}

double sl_outcomes_latency_quantile(const sl_outcomes_latency_t *h, double q) {
    if (h->count == 0 || !(q >= 0 && q <= 1)) return NAN;
    unsigned n;
    const double *bounds = sl_outcomes_bounds(&n);
    double rank = q * (double)h->count;
    uint64_t below = 0;
    for (unsigned i = 0; i < n; i++) {
        if (h->counts[i] > 0 && (double)(below + h->counts[i]) >= rank) {
            double lo = i ? bounds[i - 1] : 0;
            return lo + (bounds[i] - lo) * ((rank - (double)below) / (double)h->counts[i]);
        }
        below += h->counts[i];
    }
    return bounds[n - 1];
}
