/* Prometheus metrics registry: families and series are created under a mutex at setup time, and
 * observations are relaxed atomic adds on per-shard cells, each on its own cache line, so the hot
 * path never locks and never bounces a line between cores. Rendering sums the shards and writes
 * the text exposition format 0.0.4 (families sorted by name, series by label values). */
#include "core/metrics.h"

#include "core/common.h"
#include "core/log.h"
#include "core/utf8.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define CACHE_LINE     64
#define SLOTS_PER_LINE (CACHE_LINE / sizeof(uint64_t))
/* Per-series budget for a histogram's shards. A histogram whose buckets would need more than
 * this with SL_METRICS_SHARDS shards gets fewer shards (never fewer than MIN_HIST_SHARDS): with
 * the default latency buckets (14 bounds: 2 cache lines a shard) it keeps all 16 shards. */
#ifndef HIST_SERIES_BUDGET /* overridable for measurements */
#define HIST_SERIES_BUDGET 4096
#endif
#ifndef MIN_HIST_SHARDS
#define MIN_HIST_SHARDS 4
#endif

_Static_assert((SL_METRICS_SHARDS & (SL_METRICS_SHARDS - 1)) == 0, "shards: a power of two");

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

/* Values of a process_* family, read from /proc/self once per scrape. */
typedef enum {
    PROC_NONE = 0,
    PROC_CPU,
    PROC_OPEN_FDS,
    PROC_MAX_FDS,
    PROC_RSS,
    PROC_VSIZE,
    PROC_START,
    PROC_COUNT_
} proc_field_t;

typedef struct {
    _Alignas(CACHE_LINE) _Atomic uint64_t v;
} cell_t;

struct sl_counter {
    cell_t cells[SL_METRICS_SHARDS];
};

/* Gauges are set far more often than added to, and a set cannot be split over shards, so a gauge
 * is one atomic double (its bits) alone on a cache line. */
struct sl_gauge {
    _Alignas(CACHE_LINE) _Atomic uint64_t bits;
};

/* Shard s owns slots[s * stride ..]: n_bounds + 1 bucket counts (not cumulative, the last one is
 * +Inf), then the sum as double bits. The count is the sum of the buckets, so a scrape can never
 * show a _count that differs from the +Inf bucket. */
struct sl_histogram {
    const double *bounds; /* the family's */
    unsigned n_bounds;
    unsigned shard_mask;
    unsigned stride; /* slots per shard, a whole number of cache lines */
    _Atomic uint64_t *slots;
};

typedef struct series {
    char **labels; /* n_labels values, valid UTF-8 */
    unsigned n_labels;
    uint64_t hash;
    union {
        sl_counter_t *c;
        sl_gauge_t *g;
        sl_histogram_t *h;
    } v;
} series_t;

struct sl_metric_family {
    char *name, *help;
    kind_t kind;
    unsigned n_labels;
    char **label_names;
    unsigned max_series;
    double *bounds;
    unsigned n_bounds, hist_shards, hist_stride;
    proc_field_t proc;
    bool computed;           /* one value from proc or fn, no series */
    double (*fn)(void *arg); /* sl_metrics_gauge_fn; under mu */
    void *fn_arg;
    pthread_mutex_t mu; /* series list, index, fn */
    series_t **series;
    unsigned n_series, cap_series;
    series_t **index; /* open addressing by hash; capacity a power of two */
    unsigned index_cap;
    bool overflow_logged;
};

struct sl_metrics {
    pthread_mutex_t mu;
    sl_metric_family_t **fams; /* sorted by name */
    unsigned n_fams, cap_fams;
    bool has_process;
    double start_time;
};

const double sl_metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const unsigned sl_metrics_latency_buckets_n = SL_ARRAY_LEN(sl_metrics_latency_buckets);

/* ---- helpers ---------------------------------------------------------------------------- */

static void *cache_alloc(size_t n) {
    n = (n + CACHE_LINE - 1) & ~(size_t)(CACHE_LINE - 1);
    void *p = aligned_alloc(CACHE_LINE, n);
    if (!p) {
        fprintf(stderr, "sluice: out of memory allocating %zu bytes\n", n);
        abort();
    }
    memset(p, 0, n);
    return p;
}

static void atomic_add_double(_Atomic uint64_t *p, double delta) {
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old,
                                                  sl_double_bits(sl_bits_double(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* Each thread picks a shard once, round-robin, so the first SL_METRICS_SHARDS threads (the I/O
 * loops start first) never share one. Sharing is still correct: every update is atomic. */
static atomic_uint g_next_shard;
static _Thread_local unsigned t_shard = UINT32_MAX;

static inline unsigned my_shard(void) {
    unsigned s = t_shard;
    if (s == UINT32_MAX) {
        s = atomic_fetch_add_explicit(&g_next_shard, 1, memory_order_relaxed) % SL_METRICS_SHARDS;
        t_shard = s;
    }
    return s;
}

/* Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. Label names: the same without ':', and a leading "__"
 * is reserved for Prometheus itself. */
static bool valid_name(const char *s, bool metric) {
    if (!s || !*s || (!metric && s[0] == '_' && s[1] == '_')) return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (metric && c == ':') || (p != s && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static char *dup_utf8(const char *s) {
    char *clean = sl_utf8_sanitize(s);
    return clean ? clean : sl_strdup(s);
}

/* ---- registry and families -------------------------------------------------------------- */

sl_metrics_t *sl_metrics_new(void) {
    sl_metrics_t *r = sl_calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void series_free(const sl_metric_family_t *f, series_t *s) {
    for (unsigned i = 0; i < s->n_labels; i++)
        free(s->labels[i]);
    free(s->labels);
    if (f->kind == KIND_HISTOGRAM && s->v.h) free(s->v.h->slots);
    free(s->v.c); /* any member: they alias */
    free(s);
}

static void family_free(sl_metric_family_t *f) {
    for (unsigned i = 0; i < f->n_series; i++)
        series_free(f, f->series[i]);
    for (unsigned i = 0; i < f->n_labels; i++)
        free(f->label_names[i]);
    free(f->label_names);
    free(f->series);
    free(f->index);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static sl_metrics_t *g_default;

void sl_metrics_free(sl_metrics_t *r) {
    if (!r) return;
    SL_ASSERT(r != g_default); /* the default registry lives as long as the process */
    for (unsigned i = 0; i < r->n_fams; i++)
        family_free(r->fams[i]);
    free(r->fams);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

typedef struct {
    kind_t kind;
    const char *name, *help;
    unsigned n_labels;
    const char *const *label_names;
    unsigned max_series;
    const double *buckets;
    unsigned n_buckets;
    proc_field_t proc;
    double (*fn)(void *arg);
    void *fn_arg;
} family_spec_t;

static bool same_shape(const sl_metric_family_t *f, const family_spec_t *s, unsigned n_bounds) {
    if (f->kind != s->kind || f->n_labels != s->n_labels || f->proc != s->proc) return false;
    if ((f->fn != NULL) != (s->fn != NULL)) return false;
    for (unsigned i = 0; i < f->n_labels; i++) {
        if (strcmp(f->label_names[i], s->label_names[i]) != 0) return false;
    }
    if (f->kind == KIND_HISTOGRAM) {
        if (f->n_bounds != n_bounds) return false;
        for (unsigned i = 0; i < n_bounds; i++) {
            if (f->bounds[i] != s->buckets[i]) return false;
        }
    }
    return true;
}

static sl_metric_family_t *family_register(sl_metrics_t *r, const family_spec_t *s) {
    SL_ASSERT(r && valid_name(s->name, true));
    SL_ASSERT(s->n_labels <= SL_METRICS_MAX_LABELS && (s->n_labels == 0 || s->label_names));
    for (unsigned i = 0; i < s->n_labels; i++) {
        SL_ASSERT(valid_name(s->label_names[i], false));
        SL_ASSERT(s->kind != KIND_HISTOGRAM || strcmp(s->label_names[i], "le") != 0);
        for (unsigned j = 0; j < i; j++) {
            SL_ASSERT(strcmp(s->label_names[i], s->label_names[j]) != 0);
        }
    }
    unsigned n_bounds = s->n_buckets;
    if (s->kind == KIND_HISTOGRAM) {
        SL_ASSERT(n_bounds <= SL_METRICS_MAX_BUCKETS && (n_bounds == 0 || s->buckets));
        if (n_bounds && s->buckets[n_bounds - 1] == INFINITY) n_bounds--; /* +Inf is implicit */
        for (unsigned i = 0; i < n_bounds; i++) {
            SL_ASSERT(!isnan(s->buckets[i]) && (i == 0 || s->buckets[i] > s->buckets[i - 1]));
        }
    }

    pthread_mutex_lock(&r->mu);
    unsigned lo = 0, hi = r->n_fams;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (strcmp(r->fams[mid]->name, s->name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < r->n_fams && strcmp(r->fams[lo]->name, s->name) == 0) {
        sl_metric_family_t *f = r->fams[lo];
        pthread_mutex_unlock(&r->mu);
        SL_ASSERT(same_shape(f, s, n_bounds)); /* one name, two meanings: a bug */
        if (s->fn) {
            pthread_mutex_lock(&f->mu);
            f->fn = s->fn;
            f->fn_arg = s->fn_arg;
            pthread_mutex_unlock(&f->mu);
        }
        return f;
    }

    sl_metric_family_t *f = sl_calloc(1, sizeof *f);
    f->name = sl_strdup(s->name);
    f->help = dup_utf8(s->help ? s->help : "");
    f->kind = s->kind;
    f->n_labels = s->n_labels;
    f->label_names = sl_calloc(s->n_labels ? s->n_labels : 1, sizeof(char *));
    for (unsigned i = 0; i < s->n_labels; i++)
        f->label_names[i] = sl_strdup(s->label_names[i]);
    f->max_series = s->n_labels == 0 ? 1
                    : s->max_series  ? s->max_series
                                     : SL_METRICS_DEFAULT_MAX_SERIES;
    f->proc = s->proc;
    f->computed = s->proc != PROC_NONE || s->fn;
    f->fn = s->fn;
    f->fn_arg = s->fn_arg;
    pthread_mutex_init(&f->mu, NULL);
    if (s->kind == KIND_HISTOGRAM) {
        f->n_bounds = n_bounds;
        f->bounds = sl_malloc((n_bounds ? n_bounds : 1) * sizeof(double));
        if (n_bounds) memcpy(f->bounds, s->buckets, n_bounds * sizeof(double));
        /* Halve the shards while one series would exceed the budget (see HIST_SERIES_BUDGET). */
        f->hist_stride = (n_bounds + 2 + SLOTS_PER_LINE - 1) / SLOTS_PER_LINE * SLOTS_PER_LINE;
        f->hist_shards = SL_METRICS_SHARDS;
        while (f->hist_shards > MIN_HIST_SHARDS &&
               f->hist_shards * f->hist_stride * sizeof(uint64_t) > HIST_SERIES_BUDGET) {
            f->hist_shards /= 2;
        }
    }
    if (r->n_fams == r->cap_fams) {
        r->cap_fams = r->cap_fams ? r->cap_fams * 2 : 32;
        r->fams = sl_realloc(r->fams, r->cap_fams * sizeof *r->fams);
    }
    memmove(r->fams + lo + 1, r->fams + lo, (r->n_fams - lo) * sizeof *r->fams);
    r->fams[lo] = f;
    r->n_fams++;
    if (s->proc != PROC_NONE) r->has_process = true;
    pthread_mutex_unlock(&r->mu);
    return f;
}

static sl_metric_family_t *register_labelled(sl_metrics_t *r, kind_t kind, const char *name,
                                             const char *help, unsigned n_labels,
                                             const char *const *label_names, unsigned max_series,
                                             const double *buckets, unsigned n_buckets) {
    family_spec_t s = {.kind = kind, .name = name, .help = help, .n_labels = n_labels};
    s.label_names = label_names;
    s.max_series = max_series;
    s.buckets = buckets;
    s.n_buckets = n_buckets;
    return family_register(r, &s);
}

sl_metric_family_t *sl_metrics_counter_family(sl_metrics_t *r, const char *name, const char *help,
                                              unsigned n_labels, const char *const *label_names,
                                              unsigned max_series) {
    return register_labelled(r, KIND_COUNTER, name, help, n_labels, label_names, max_series, NULL,
                             0);
}

sl_metric_family_t *sl_metrics_gauge_family(sl_metrics_t *r, const char *name, const char *help,
                                            unsigned n_labels, const char *const *label_names,
                                            unsigned max_series) {
    return register_labelled(r, KIND_GAUGE, name, help, n_labels, label_names, max_series, NULL, 0);
}

sl_metric_family_t *sl_metrics_histogram_family(sl_metrics_t *r, const char *name, const char *help,
                                                unsigned n_labels, const char *const *label_names,
                                                unsigned max_series, const double *buckets,
                                                unsigned n_buckets) {
    return register_labelled(r, KIND_HISTOGRAM, name, help, n_labels, label_names, max_series,
                             buckets, n_buckets);
}

void sl_metrics_gauge_fn(sl_metrics_t *r, const char *name, const char *help,
                         double (*fn)(void *arg), void *arg) {
    SL_ASSERT(fn);
    family_spec_t s = {.kind = KIND_GAUGE, .name = name, .help = help, .fn = fn, .fn_arg = arg};
    family_register(r, &s);
}

/* ---- series ----------------------------------------------------------------------------- */

static uint64_t hash_labels(const char *const *v, unsigned n) {
    uint64_t h = SL_FNV64_INIT;
    for (unsigned i = 0; i < n; i++) {
        h = sl_fnv64(h, v[i], strlen(v[i]));
        h = sl_fnv64(h, "\xff", 1); /* 0xff never occurs in UTF-8: a safe separator */
    }
    return h;
}

static series_t *index_find(const sl_metric_family_t *f, const char *const *v, uint64_t h) {
    if (!f->index_cap) return NULL;
    for (unsigned i = (unsigned)h & (f->index_cap - 1);; i = (i + 1) & (f->index_cap - 1)) {
        series_t *s = f->index[i];
        if (!s) return NULL;
        if (s->hash != h) continue;
        unsigned k = 0;
        while (k < f->n_labels && strcmp(s->labels[k], v[k]) == 0)
            k++;
        if (k == f->n_labels) return s;
    }
}

static void index_put(series_t **index, unsigned cap, series_t *s) {
    unsigned i = (unsigned)s->hash & (cap - 1);
    while (index[i])
        i = (i + 1) & (cap - 1);
    index[i] = s;
}

static series_t *series_create(sl_metric_family_t *f, const char *const *v, uint64_t h) {
    series_t *s = sl_calloc(1, sizeof *s);
    s->n_labels = f->n_labels;
    s->hash = h;
    s->labels = sl_calloc(f->n_labels ? f->n_labels : 1, sizeof(char *));
    for (unsigned i = 0; i < f->n_labels; i++)
        s->labels[i] = sl_strdup(v[i]);
    switch (f->kind) {
    case KIND_COUNTER:
        s->v.c = cache_alloc(sizeof(sl_counter_t));
        break;
    case KIND_GAUGE:
        s->v.g = cache_alloc(sizeof(sl_gauge_t));
        break;
    case KIND_HISTOGRAM: {
        sl_histogram_t *hg = sl_calloc(1, sizeof *hg);
        hg->bounds = f->bounds;
        hg->n_bounds = f->n_bounds;
        hg->shard_mask = f->hist_shards - 1;
        hg->stride = f->hist_stride;
        hg->slots = cache_alloc((size_t)f->hist_shards * hg->stride * sizeof(uint64_t));
        s->v.h = hg;
        break;
    }
    }
    if (f->n_series == f->cap_series) {
        f->cap_series = f->cap_series ? f->cap_series * 2 : 4;
        f->series = sl_realloc(f->series, f->cap_series * sizeof *f->series);
    }
    f->series[f->n_series++] = s;
    if (f->n_series * 2 > f->index_cap) {
        unsigned cap = f->index_cap ? f->index_cap * 2 : 8;
        series_t **index = sl_calloc(cap, sizeof *index);
        for (unsigned i = 0; i < f->n_series; i++)
            index_put(index, cap, f->series[i]);
        free(f->index);
        f->index = index;
        f->index_cap = cap;
    } else {
        index_put(f->index, f->index_cap, s);
    }
    return s;
}

static series_t *series_get(sl_metric_family_t *f, const char *const *values) {
    SL_ASSERT(f && !f->computed);
    SL_ASSERT(f->n_labels == 0 || values);
    const char *v[SL_METRICS_MAX_LABELS + 1];
    char *clean[SL_METRICS_MAX_LABELS + 1] = {0};
    for (unsigned i = 0; i < f->n_labels; i++) {
        SL_ASSERT(values[i]);
        clean[i] = sl_utf8_sanitize(values[i]);
        v[i] = clean[i] ? clean[i] : values[i];
    }
    uint64_t h = hash_labels(v, f->n_labels);
    bool overflowed = false;
    pthread_mutex_lock(&f->mu);
    series_t *s = index_find(f, v, h);
    if (!s && f->n_series >= f->max_series) {
        /* The overflow series is the one whose values are all "other", made on first need even
         * past the limit, and shared with a caller who asked for exactly those values. */
        for (unsigned i = 0; i < f->n_labels; i++)
            v[i] = "other";
        h = hash_labels(v, f->n_labels);
        s = index_find(f, v, h);
        overflowed = !f->overflow_logged;
        f->overflow_logged = true;
    }
    if (!s) s = series_create(f, v, h);
    pthread_mutex_unlock(&f->mu);
    for (unsigned i = 0; i < f->n_labels; i++)
        free(clean[i]);
    if (overflowed) {
        SL_WARN("metrics", "series limit reached, new label values go to the overflow series",
                SL_LF_S("metric", f->name), SL_LF_U("max_series", f->max_series));
    }
    return s;
}

sl_counter_t *sl_metric_counter(sl_metric_family_t *f, const char *const *label_values) {
    SL_ASSERT(f && f->kind == KIND_COUNTER);
    return series_get(f, label_values)->v.c;
}

sl_gauge_t *sl_metric_gauge(sl_metric_family_t *f, const char *const *label_values) {
    SL_ASSERT(f && f->kind == KIND_GAUGE);
    return series_get(f, label_values)->v.g;
}

sl_histogram_t *sl_metric_histogram(sl_metric_family_t *f, const char *const *label_values) {
    SL_ASSERT(f && f->kind == KIND_HISTOGRAM);
    return series_get(f, label_values)->v.h;
}

sl_counter_t *sl_metrics_counter(sl_metrics_t *r, const char *name, const char *help) {
    return sl_metric_counter(sl_metrics_counter_family(r, name, help, 0, NULL, 1), NULL);
}

sl_gauge_t *sl_metrics_gauge(sl_metrics_t *r, const char *name, const char *help) {
    return sl_metric_gauge(sl_metrics_gauge_family(r, name, help, 0, NULL, 1), NULL);
}

/* ---- hot path and reads ----------------------------------------------------------------- */

void sl_counter_add(sl_counter_t *c, uint64_t n) {
    atomic_fetch_add_explicit(&c->cells[my_shard()].v, n, memory_order_relaxed);
}

void sl_gauge_set(sl_gauge_t *g, double v) {
    atomic_store_explicit(&g->bits, sl_double_bits(v), memory_order_relaxed);
}

void sl_gauge_add(sl_gauge_t *g, double delta) {
    atomic_add_double(&g->bits, delta);
}

void sl_histogram_observe(sl_histogram_t *h, double v) {
    if (isnan(v)) return; /* one NaN would turn _sum into NaN for the life of the process */
    unsigned lo = 0, hi = h->n_bounds; /* first bound >= v (le is inclusive), else +Inf */
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (v <= h->bounds[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    _Atomic uint64_t *shard = h->slots + (size_t)(my_shard() & h->shard_mask) * h->stride;
    atomic_fetch_add_explicit(&shard[lo], 1, memory_order_relaxed);
    atomic_add_double(&shard[h->n_bounds + 1], v);
}

uint64_t sl_counter_value(const sl_counter_t *c) {
    uint64_t sum = 0;
    for (unsigned i = 0; i < SL_METRICS_SHARDS; i++) {
        sum += atomic_load_explicit(&c->cells[i].v, memory_order_relaxed);
    }
    return sum;
}

double sl_gauge_value(const sl_gauge_t *g) {
    return sl_bits_double(atomic_load_explicit(&g->bits, memory_order_relaxed));
}

/* Bucket counts (not cumulative, n_bounds + 1 of them) summed over shards; returns the sum. */
static double histogram_read(const sl_histogram_t *h, uint64_t *counts) {
    double sum = 0;
    memset(counts, 0, (h->n_bounds + 1) * sizeof *counts);
    for (unsigned s = 0; s <= h->shard_mask; s++) {
        const _Atomic uint64_t *shard = h->slots + (size_t)s * h->stride;
        for (unsigned i = 0; i <= h->n_bounds; i++) {
            counts[i] += atomic_load_explicit(&shard[i], memory_order_relaxed);
        }
        sum += sl_bits_double(atomic_load_explicit(&shard[h->n_bounds + 1], memory_order_relaxed));
    }
    return sum;
}

uint64_t sl_histogram_count(const sl_histogram_t *h) {
    uint64_t counts[SL_METRICS_MAX_BUCKETS + 1], total = 0;
    histogram_read(h, counts);
    for (unsigned i = 0; i <= h->n_bounds; i++) {
        total += counts[i];
    }
    return total;
}

double sl_histogram_sum(const sl_histogram_t *h) {
    uint64_t counts[SL_METRICS_MAX_BUCKETS + 1];
    return histogram_read(h, counts);
}

/* ---- process metrics -------------------------------------------------------------------- */

/* Fields 3..24 of /proc/self/stat (state is 3; utime 14, stime 15, starttime 22, vsize 23,
 * rss 24), parsed after the last ')' since the command name may hold spaces and parentheses.
 * Returns false when the file cannot be read. */
static bool proc_stat(unsigned long long f[25]) {
    char buf[1024];
    FILE *fp = fopen("/proc/self/stat", "r");
    if (!fp) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    int field = 3;
    for (p = p ? p + 2 : NULL; p && field <= 24; field++) {
        char *end;
        f[field] = strtoull(p, &end, 10);
        p = strchr(end, ' ');
        if (p) p++;
    }
    return field > 24;
}

/* Reads what one scrape needs; a value that cannot be read is NaN and its family is left out. */
static void proc_read(const sl_metrics_t *r, double *out) {
    for (int i = 0; i < PROC_COUNT_; i++)
        out[i] = NAN;
    out[PROC_START] = r->start_time;
    unsigned long long f[25] = {0};
    if (proc_stat(f)) {
        out[PROC_CPU] = (double)(f[14] + f[15]) / (double)sysconf(_SC_CLK_TCK);
        out[PROC_VSIZE] = (double)f[23];
        out[PROC_RSS] = (double)f[24] * (double)sysconf(_SC_PAGESIZE);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int n = 0;
        for (struct dirent *e; (e = readdir(d));)
            n += e->d_name[0] != '.';
        closedir(d);
        out[PROC_OPEN_FDS] = n - 1; /* not the directory stream's own fd */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        out[PROC_MAX_FDS] = rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
    }
}

/* Process start: boot time (btime in /proc/stat) plus starttime, in ticks since boot. */
static double proc_start_time(void) {
    char line[256];
    double btime = NAN;
    FILE *fp = fopen("/proc/stat", "r");
    if (fp) {
        unsigned long long v;
        while (fgets(line, sizeof line, fp)) {
            if (sscanf(line, "btime %llu", &v) == 1) btime = (double)v;
        }
        fclose(fp);
    }
    unsigned long long f[25] = {0};
    if (!proc_stat(f)) return NAN;
    return btime + (double)f[22] / (double)sysconf(_SC_CLK_TCK);
}

static void add_process_metrics(sl_metrics_t *r) {
    static const struct {
        proc_field_t proc;
        kind_t kind;
        const char *name, *help;
    } defs[] = {
        {PROC_CPU, KIND_COUNTER, "process_cpu_seconds_total",
         "Total user and system CPU time spent in seconds."},
        {PROC_OPEN_FDS, KIND_GAUGE, "process_open_fds", "Number of open file descriptors."},
        {PROC_MAX_FDS, KIND_GAUGE, "process_max_fds", "Maximum number of open file descriptors."},
        {PROC_RSS, KIND_GAUGE, "process_resident_memory_bytes", "Resident memory size in bytes."},
        {PROC_VSIZE, KIND_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes."},
        {PROC_START, KIND_GAUGE, "process_start_time_seconds",
         "Start time of the process since unix epoch in seconds."},
    };
    r->start_time = proc_start_time();
    for (unsigned i = 0; i < SL_ARRAY_LEN(defs); i++) {
        family_spec_t s = {
            .kind = defs[i].kind, .name = defs[i].name, .help = defs[i].help, .proc = defs[i].proc};
        family_register(r, &s);
    }
    const char *label = "version", *version = SL_VERSION;
    sl_gauge_set(sl_metric_gauge(sl_metrics_gauge_family(r, "sluice_build_info",
                                                         "Sluice build information; always 1.", 1,
                                                         &label, 1),
                                 &version),
                 1);
}

static pthread_once_t g_default_once = PTHREAD_ONCE_INIT;

static void default_init(void) {
    g_default = sl_metrics_new();
    add_process_metrics(g_default);
}

sl_metrics_t *sl_metrics_default(void) {
    pthread_once(&g_default_once, default_init);
    return g_default;
}

/* ---- rendering -------------------------------------------------------------------------- */

/* Numbers as Prometheus parses them: integral values without exponent, others in the shortest
 * form that reads back to the same double (%.17g always would, but prints 0.1 as
 * 0.10000000000000001), and the special values spelled +Inf, -Inf and NaN. */
static void put_number(sl_buf_t *b, double v) {
    if (isnan(v)) {
        sl_buf_puts(b, "NaN");
    } else if (isinf(v)) {
        sl_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    } else if (v == trunc(v) && fabs(v) < 1e21) {
        sl_buf_printf(b, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
    } else {
        char tmp[40];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, v);
            if (strtod(tmp, NULL) == v) break;
        }
        sl_buf_puts(b, tmp);
    }
}

/* Escapes backslash and newline, plus the double quote inside label values. */
static void put_escaped(sl_buf_t *b, const char *s, bool quote) {
    const char *special = quote ? "\\\n\"" : "\\\n";
    for (size_t run; *s; s += run) {
        run = strcspn(s, special);
        sl_buf_append(b, s, run);
        if (!s[run]) break;
        sl_buf_append(b, s[run] == '\\' ? "\\\\" : s[run] == '"' ? "\\\"" : "\\n", 2);
        run++;
    }
}

/* name{labels[,le="bound"]} */
static void put_series_name(sl_buf_t *b, const sl_metric_family_t *f, const char *suffix,
                            const series_t *s, const double *le) {
    sl_buf_puts(b, f->name);
    sl_buf_puts(b, suffix);
    if (s->n_labels == 0 && !le) return;
    sl_buf_putc(b, '{');
    for (unsigned i = 0; i < s->n_labels; i++) {
        if (i) sl_buf_putc(b, ',');
        sl_buf_puts(b, f->label_names[i]);
        sl_buf_puts(b, "=\"");
        put_escaped(b, s->labels[i], true);
        sl_buf_putc(b, '"');
    }
    if (le) {
        sl_buf_puts(b, s->n_labels ? ",le=\"" : "le=\"");
        put_number(b, *le);
        sl_buf_putc(b, '"');
    }
    sl_buf_putc(b, '}');
}

static int series_cmp(const void *a, const void *b) {
    const series_t *x = *(series_t *const *)a, *y = *(series_t *const *)b;
    for (unsigned i = 0; i < x->n_labels; i++) {
        int c = strcmp(x->labels[i], y->labels[i]);
        if (c) return c;
    }
    return 0;
}

static void render_family(sl_buf_t *b, sl_metric_family_t *f, const double *proc) {
    double value = NAN;
    if (f->proc != PROC_NONE) {
        value = proc[f->proc];
        if (isnan(value)) return;
    } else if (f->fn) {
        pthread_mutex_lock(&f->mu);
        double (*fn)(void *) = f->fn;
        void *arg = f->fn_arg;
        pthread_mutex_unlock(&f->mu);
        value = fn(arg); /* outside the lock: fn may take its own */
    }
    if (f->help[0]) {
        sl_buf_printf(b, "# HELP %s ", f->name);
        put_escaped(b, f->help, false);
        sl_buf_putc(b, '\n');
    }
    static const char *const types[] = {"counter", "gauge", "histogram"};
    sl_buf_printf(b, "# TYPE %s %s\n", f->name, types[f->kind]);
    if (f->computed) {
        sl_buf_printf(b, "%s ", f->name);
        put_number(b, value);
        sl_buf_putc(b, '\n');
        return;
    }

    pthread_mutex_lock(&f->mu);
    unsigned n = f->n_series;
    series_t **list = sl_malloc((n ? n : 1) * sizeof *list);
    if (n) memcpy(list, f->series, n * sizeof *list);
    pthread_mutex_unlock(&f->mu);
    if (f->n_labels) qsort(list, n, sizeof *list, series_cmp);
    for (unsigned i = 0; i < n; i++) {
        const series_t *s = list[i];
        if (f->kind == KIND_HISTOGRAM) {
            uint64_t counts[SL_METRICS_MAX_BUCKETS + 1], cum = 0;
            double sum = histogram_read(s->v.h, counts);
            for (unsigned k = 0; k <= f->n_bounds; k++) {
                double le = k < f->n_bounds ? f->bounds[k] : INFINITY;
                cum += counts[k];
                put_series_name(b, f, "_bucket", s, &le);
                sl_buf_printf(b, " %llu\n", (unsigned long long)cum);
            }
            put_series_name(b, f, "_sum", s, NULL);
            sl_buf_putc(b, ' ');
            put_number(b, sum);
            sl_buf_putc(b, '\n');
            put_series_name(b, f, "_count", s, NULL);
            sl_buf_printf(b, " %llu\n", (unsigned long long)cum);
            continue;
        }
        put_series_name(b, f, "", s, NULL);
        sl_buf_putc(b, ' ');
        if (f->kind == KIND_COUNTER) {
            sl_buf_printf(b, "%llu", (unsigned long long)sl_counter_value(s->v.c));
        } else {
            put_number(b, sl_gauge_value(s->v.g));
        }
        sl_buf_putc(b, '\n');
    }
    free(list);
}

void sl_metrics_render(sl_metrics_t *r, sl_buf_t *out) {
    /* Families are never removed before the registry is freed, so a snapshot of the pointers
     * can be rendered without the registry lock (and gauge callbacks may register metrics). */
    pthread_mutex_lock(&r->mu);
    unsigned n = r->n_fams;
    sl_metric_family_t **fams = sl_malloc((n ? n : 1) * sizeof *fams);
    if (n) memcpy(fams, r->fams, n * sizeof *fams);
    bool process = r->has_process;
    pthread_mutex_unlock(&r->mu);
    double proc[PROC_COUNT_] = {0};
    if (process) proc_read(r, proc);
    for (unsigned i = 0; i < n; i++)
        render_family(out, fams[i], proc);
    free(fams);
}
